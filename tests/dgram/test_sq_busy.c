/* A full submission queue whose early flush the kernel refuses: sends are
 * back-pressured, never failed.
 *
 * When more SQEs are queued in one turn than the SQ holds, the engine
 * hands them to the kernel early (dg__get_sqe). Kernels before 5.19
 * answer that io_uring_enter with EBUSY while the CQ has overflowed
 * entries; 6.x kernels keep the overflow on a list and never do (filling
 * a 16-entry CQ with 16,000 unreaped NOPs on 6.18 gets no EBUSY), so the
 * tests make the kernel say it: a seccomp user-notification filter
 * (tests/support/seccomp.c) fails chosen io_uring_enter calls of the
 * test's thread with EBUSY. Every send must still complete exactly once,
 * successfully and in order; a socket closed while its sends wait
 * completes the waiting ones with -ECANCELED.
 *
 * io_uring only: the epoll backend's SQ grows instead of flushing early,
 * so it has no early submit to refuse (skipped, visibly). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"
#include "support/seccomp.h"

TestSuite(sq_busy, .timeout = 60);

enum { SQ = 8, LEN = 64 };

/* Kept in a static: it lives as long as the test's process. */
static dgt_enter_faults *faults;

struct sends;

struct send_ctx {
    struct sends *all;
    int index;
};

struct sends {
    int calls;
    int ok;
    int cancelled;
    int other;
    int status[64];          /* by send index */
    struct send_ctx ctx[64]; /* each send's callback data */
};

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct send_ctx *c = data;
    (void)sock;
    (void)err;
    c->all->calls++;
    c->all->status[c->index] = status;
    if (status == LEN)
        c->all->ok++;
    else if (status == -ECANCELED)
        c->all->cancelled++;
    else
        c->all->other++;
}

/* A loop with an 8-entry SQ and the fault injector on this thread. */
static dg_loop *small_sq_loop(void)
{
    dg_loop_options o;

    if (dgt_backend_is_epoll())
        cr_skip_test("the epoll backend's SQ grows: it never submits early");
    dg_loop_options_init(&o);
    o.sq_entries = SQ;
    dg_loop *loop = dgt_loop_new(&o);
    faults = dgt_enter_faults_start();
    if (faults == NULL) {
        dgt_loop_finish(loop);
        cr_skip_test("no seccomp user notification here (%s)", strerror(errno));
    }
    return loop;
}

/* Sends n numbered datagrams from sock to port; each call must succeed. */
static void send_numbered(dg_socket *sock, int port, int n, struct sends *all)
{
    unsigned char buf[LEN];

    for (int i = 0; i < n; i++) {
        dgt_numbered_fill(buf, sizeof(buf), (uint32_t)i);
        all->ctx[i] = (struct send_ctx){.all = all, .index = i};
        dgt_assert_code_fmt(dg_socket_send(sock, buf, sizeof(buf), port, "127.0.0.1", on_sent,
                                           &all->ctx[i]),
                            0, "send %d of %d", i, n);
    }
}

/* Receives n datagrams on fd, numbered 0.. in order. */
static void expect_numbered(int fd, int n)
{
    unsigned char buf[LEN];

    for (int i = 0; i < n; i++) {
        ssize_t len = dgt_plain_recv(fd, buf, sizeof(buf), DGT_WAIT_MS, NULL);
        cr_assert_eq(len, LEN, "datagram %d: %zd bytes", i, len);
        uint32_t seq;
        memcpy(&seq, buf, sizeof(seq));
        cr_assert_eq(seq, (uint32_t)i, "datagram %d came as %u", i, seq);
    }
    cr_expect_eq(dgt_plain_recv_nowait(fd, buf, sizeof(buf)), -1, "more than %d arrived", n);
}

/* Sends that leave one SQE each (no GSO): the ninth finds the SQ full,
 * the early flush is refused, and it waits with the ones after it. */
Test(sq_busy, direct_sends_wait_and_leave_in_order)
{
    dg_loop *loop = small_sq_loop();
    int rx = dgt_plain_socket(AF_INET, 0);
    dg_socket *tx = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_NO_GSO, NULL, NULL);
    struct sends all = {0};

    dgt_bind(loop, tx, "127.0.0.1", 0);
    dgt_enter_faults_arm(faults, 3);
    send_numbered(tx, dgt_plain_port(rx), 40, &all);
    dgt_run_until(loop, &all.calls, 40, DGT_WAIT_MS);
    cr_expect_eq(all.ok, 40, "ok %d, cancelled %d, other %d", all.ok, all.cancelled, all.other);
    cr_expect_eq(dgt_enter_faults_injected(faults), 3, "the kernel refused 3 submits");
    expect_numbered(rx, 40);
    dgt_close_socket(loop, tx);
    close(rx);
    dgt_loop_finish(loop);
}

/* GSO runs of 12 sockets, flushed in one prepare step: 12 SQEs for an
 * 8-entry SQ, and the early flush refused. */
Test(sq_busy, runs_of_many_sockets_wait_and_leave)
{
    enum { SOCKETS = 12, EACH = 3 };
    dg_loop *loop = small_sq_loop();
    int rx[SOCKETS];
    dg_socket *tx[SOCKETS];
    struct sends all[SOCKETS];

    memset(all, 0, sizeof(all));
    for (int k = 0; k < SOCKETS; k++) {
        rx[k] = dgt_plain_socket(AF_INET, 0);
        tx[k] = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
        dgt_bind(loop, tx[k], "127.0.0.1", 0);
    }
    dgt_enter_faults_arm(faults, 2);
    for (int k = 0; k < SOCKETS; k++)
        send_numbered(tx[k], dgt_plain_port(rx[k]), EACH, &all[k]);
    for (int k = 0; k < SOCKETS; k++) {
        dgt_run_until(loop, &all[k].calls, EACH, DGT_WAIT_MS);
        cr_expect_eq(all[k].ok, EACH, "socket %d: ok %d, other %d", k, all[k].ok, all[k].other);
        expect_numbered(rx[k], EACH);
    }
    cr_expect_eq(dgt_enter_faults_injected(faults), 2);
    for (int k = 0; k < SOCKETS; k++) {
        dgt_close_socket(loop, tx[k]);
        close(rx[k]);
    }
    dgt_loop_finish(loop);
}

/* The socket closes while its sends wait for the ring: those complete
 * with -ECANCELED, once each; the sends that went out are the first ones,
 * in order. */
Test(sq_busy, close_cancels_waiting_sends)
{
    dg_loop *loop = small_sq_loop();
    int rx = dgt_plain_socket(AF_INET, 0);
    dg_socket *tx = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_NO_GSO, NULL, NULL);
    struct sends all = {0};

    dgt_bind(loop, tx, "127.0.0.1", 0);
    dgt_enter_faults_arm(faults, 1000);
    send_numbered(tx, dgt_plain_port(rx), 20, &all);
    cr_assert_eq(dg_socket_close(tx, NULL, NULL), 0);
    cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_expect_eq(all.cancelled, 20 - SQ, "the sends that found no SQE are cancelled");
    dgt_enter_faults_arm(faults, 0);
    dgt_run_until(loop, &all.calls, 20, DGT_WAIT_MS);
    cr_expect_eq(all.ok + all.cancelled, 20, "other %d", all.other);
    for (int i = 0; i < 20; i++)
        cr_expect_eq(all.status[i], i < all.ok ? LEN : -ECANCELED, "send %d: %d", i,
                     all.status[i]);
    expect_numbered(rx, all.ok);
    dgt_run(loop, DGT_WAIT_MS);
    close(rx);
    dgt_loop_finish(loop);
}

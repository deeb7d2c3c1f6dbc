/* Embedding: a dgring loop driven from an epoll loop through dg_loop_fd().
 * dg_loop_run(DG_RUN_NOWAIT) is only called when epoll reports the fd
 * readable, so datagrams, bind and close callbacks and timers must all
 * arrive through that path; work queued outside dg_loop_run (a send) must
 * make the fd readable by itself. */
#include <errno.h>
#include <linux/io_uring.h> /* IORING_SETUP_TASKRUN_FLAG, in dg_loop_caps.setup_flags */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(embed, .timeout = 30);

struct embedded {
    dg_loop *loop;
    int fd;
    int epfd;
    int readiness; /* epoll reports that led to a dg_loop_run */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void embed_open(struct embedded *e, dg_loop *loop)
{
    struct epoll_event ev = {.events = EPOLLIN};

    e->loop = loop;
    e->readiness = 0;
    e->fd = dg_loop_fd(loop);
    cr_assert_geq(e->fd, 0, "dg_loop_fd: %s", dg_err_name(e->fd));
    cr_assert_eq(dg_loop_fd(loop), e->fd, "dg_loop_fd must return the same fd each time");
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    cr_assert_geq(e->epfd, 0);
    ev.data.fd = e->fd;
    cr_assert_eq(epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->fd, &ev), 0, "epoll_ctl: %s",
                 strerror(errno));
}

static void embed_close(struct embedded *e)
{
    cr_assert_eq(close(e->epfd), 0);
}

/* epoll_wait with a fixed 100 ms timeout (never dg_loop_timeout: the fd
 * alone must wake us) and run NOWAIT only on readiness, until *counter
 * reaches target. */
static void pump(struct embedded *e, const int *counter, int target)
{
    uint64_t deadline = now_ms() + DGT_WAIT_MS;

    while (*counter < target) {
        struct epoll_event ev;
        int n = epoll_wait(e->epfd, &ev, 1, 100);

        cr_assert(n >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
        if (n > 0) {
            int rc;

            cr_assert_eq(ev.data.fd, e->fd);
            cr_assert(ev.events & EPOLLIN);
            e->readiness++;
            rc = dg_loop_run(e->loop, DG_RUN_NOWAIT);
            cr_assert_geq(rc, 0, "dg_loop_run: %s", dg_err_name(rc));
        }
        cr_assert_lt(now_ms(), deadline,
                     "waited %u ms through epoll for a count of %d, got %d (%d wakeups)",
                     DGT_WAIT_MS, target, *counter, e->readiness);
    }
}

/* Runs NOWAIT turns until epoll says the fd is no longer readable. */
static void drain(struct embedded *e)
{
    for (int i = 0; i < 200; i++) {
        struct epoll_event ev;
        int n = epoll_wait(e->epfd, &ev, 1, i == 0 ? 0 : 5);

        if (n == 0)
            return;
        cr_assert_geq(dg_loop_run(e->loop, DG_RUN_NOWAIT), 0);
    }
    cr_assert_fail("dg_loop_fd stays readable with no work to do (an embedder would spin)");
}

struct counts {
    int bound;
    int bind_status;
    int listening;
    int messages;
    int last_length;
    char last[64];
    int closed;
    int timer;
    int timer_closed;
    int sends;
    int send_status;
};

static void c_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    struct counts *c = data;

    (void)sock;
    c->bound++;
    c->bind_status = status;
}

static void c_listening(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct counts *)data)->listening++;
}

static void c_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct counts *c = data;

    (void)sock;
    c->messages++;
    c->last_length = (int)msg->length;
    if (msg->length < sizeof(c->last)) {
        memcpy(c->last, msg->data, msg->length);
        c->last[msg->length] = '\0';
    }
}

static void c_closed(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct counts *)data)->closed++;
}

static void c_timer(dg_timer *timer, void *data)
{
    (void)timer;
    ((struct counts *)data)->timer++;
}

static void c_timer_closed(dg_timer *timer, void *data)
{
    (void)timer;
    ((struct counts *)data)->timer_closed++;
}

static void c_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct counts *c = data;

    (void)sock;
    (void)err;
    c->sends++;
    c->send_status = status;
}

static const dg_socket_handlers c_handlers = {
    .on_message = c_message,
    .on_listening = c_listening,
};

Test(embed, datagrams_and_timers_arrive_through_epoll)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct embedded e;
    struct counts c;
    dg_socket *sock;
    dg_timer *timer;
    dg_address bound;
    int plain = dgt_plain_socket(AF_INET, 0);
    int wakeups_before;

    memset(&c, 0, sizeof(c));
    embed_open(&e, loop);
    sock = dgt_socket_new(loop, DG_UDP4, 0, &c_handlers, &c);
    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", c_bound, &c), 0);
    pump(&e, &c.bound, 1);
    cr_assert_eq(c.bind_status, 0);
    cr_assert_eq(c.listening, 1);
    cr_assert_eq(dg_socket_address(sock, &bound), 0);

    /* Datagrams from a plain socket. */
    for (int i = 0; i < 5; i++) {
        char text[16];
        int n = snprintf(text, sizeof(text), "dgram %d", i);

        dgt_plain_send(plain, AF_INET, bound.port, text, (size_t)n);
    }
    wakeups_before = e.readiness;
    pump(&e, &c.messages, 5);
    cr_assert_gt(e.readiness, wakeups_before);
    cr_assert_eq(c.messages, 5);
    cr_assert_str_eq(c.last, "dgram 4");

    /* A timer started outside dg_loop_run. */
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 20, 0, c_timer, &c), 0);
    wakeups_before = e.readiness;
    pump(&e, &c.timer, 1);
    cr_assert_gt(e.readiness, wakeups_before);
    cr_assert_eq(c.timer, 1);

    /* A repeating timer and traffic at once. */
    cr_assert_eq(dg_timer_start(timer, 5, 5, c_timer, &c), 0);
    dgt_plain_send(plain, AF_INET, bound.port, "late", 4);
    pump(&e, &c.messages, 6);
    pump(&e, &c.timer, 4);
    cr_assert_eq(c.messages, 6);
    cr_assert_str_eq(c.last, "late");

    /* Closing goes through epoll as well. */
    cr_assert_eq(dg_timer_close(timer, c_timer_closed, &c), 0);
    cr_assert_eq(dg_socket_close(sock, c_closed, &c), 0);
    pump(&e, &c.timer_closed, 1);
    pump(&e, &c.closed, 1);
    cr_assert_eq(c.timer_closed, 1);
    cr_assert_eq(c.closed, 1);
    cr_assert_eq(c.bound, 1);
    cr_assert_eq(c.listening, 1);
    cr_assert_eq(c.messages, 6);
    embed_close(&e);
    close(plain);
    dgt_loop_finish(loop);
}

Test(embed, a_send_queued_outside_run_makes_the_fd_readable)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct embedded e;
    struct counts c;
    struct epoll_event ev;
    dg_socket *sock;
    int plain = dgt_plain_socket(AF_INET, 0);
    char buf[32];
    int n;

    memset(&c, 0, sizeof(c));
    /* Bound by the ordinary loop first; the fd is created afterwards. */
    sock = dgt_socket_new(loop, DG_UDP4, 0, &c_handlers, &c);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    embed_open(&e, loop);
    drain(&e);

    cr_assert_eq(dg_socket_send(sock, "queued", 6, dgt_plain_port(plain), "127.0.0.1", c_sent, &c),
                 0);
    do
        n = epoll_wait(e.epfd, &ev, 1, DGT_WAIT_MS);
    while (n < 0 && errno == EINTR);
    cr_assert_eq(n, 1, "a send queued outside dg_loop_run did not make dg_loop_fd readable");
    cr_assert_eq(c.sends, 0, "the send callback ran without dg_loop_run");
    cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    pump(&e, &c.sends, 1);
    cr_assert_eq(c.sends, 1);
    cr_assert_eq(c.send_status, 6);
    cr_assert_eq(dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, NULL), 6);
    cr_assert_eq(memcmp(buf, "queued", 6), 0);

    cr_assert_eq(dg_socket_close(sock, c_closed, &c), 0);
    pump(&e, &c.closed, 1);
    embed_close(&e);
    close(plain);
    dgt_loop_finish(loop);
}

Test(embed, a_bind_queued_outside_run_makes_the_fd_readable)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct embedded e;
    struct counts c;
    struct epoll_event ev;
    dg_socket *sock;
    int n;

    memset(&c, 0, sizeof(c));
    embed_open(&e, loop);
    drain(&e);
    sock = dgt_socket_new(loop, DG_UDP4, 0, &c_handlers, &c);
    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", c_bound, &c), 0);
    do
        n = epoll_wait(e.epfd, &ev, 1, DGT_WAIT_MS);
    while (n < 0 && errno == EINTR);
    cr_assert_eq(n, 1, "a bind queued outside dg_loop_run did not make dg_loop_fd readable");
    pump(&e, &c.bound, 1);
    cr_assert_eq(c.bind_status, 0);
    cr_assert_eq(dg_socket_close(sock, c_closed, &c), 0);
    pump(&e, &c.closed, 1);
    cr_assert_eq(c.bound, 1);
    cr_assert_eq(c.closed, 1);
    embed_close(&e);
    dgt_loop_finish(loop);
}

Test(embed, loop_timeout_guides_an_embedder)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct embedded e;
    struct counts c;
    dg_timer *timer;
    int timeout;

    memset(&c, 0, sizeof(c));
    embed_open(&e, loop);
    drain(&e);
    cr_assert_eq(dg_loop_timeout(loop), -1, "no timer and nothing ready: -1");
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 200, 0, c_timer, &c), 0);
    timeout = dg_loop_timeout(loop);
    cr_assert(timeout >= 0 && timeout <= 200, "dg_loop_timeout = %d for a 200 ms timer", timeout);
    pump(&e, &c.timer, 1);
    cr_assert_eq(dg_loop_timeout(loop), -1, "the one-shot timer fired: -1 again");
    cr_assert_eq(dg_timer_close(timer, c_timer_closed, &c), 0);
    pump(&e, &c.timer_closed, 1);
    cr_assert_eq(c.timer, 1);
    embed_close(&e);
    dgt_loop_finish(loop);
}

/* A NOWAIT run with nothing to submit may skip its io_uring_enter
 * (docs/design.md, "One loop turn"), but under DEFER_TASKRUN a received
 * datagram reaches the CQ only through an enter: the run must see that
 * the kernel holds it. Each datagram arrives while the loop is idle,
 * after the fd went quiet, so its readiness can only come from the
 * datagram, and one NOWAIT run must then deliver it. */
Test(embed, one_nowait_run_delivers_what_made_the_fd_readable)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct embedded e;
    struct counts c;
    dg_socket *sock;
    dg_loop_stats before, after;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port;

    memset(&c, 0, sizeof(c));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &c_handlers, &c);
    port = dgt_bind(loop, sock, "127.0.0.1", 0);
    embed_open(&e, loop);
    for (int i = 0; i < 200; i++) {
        struct epoll_event ev;
        int n;

        drain(&e);
        dgt_plain_send(plain, AF_INET, port, "idle", 4);
        do
            n = epoll_wait(e.epfd, &ev, 1, DGT_WAIT_MS);
        while (n < 0 && errno == EINTR);
        cr_assert_eq(n, 1, "datagram %d did not make dg_loop_fd readable", i);
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
        cr_assert_eq(c.messages, i + 1, "datagram %d: one NOWAIT run after readiness delivered %d",
                     i, c.messages);
    }

    /* With nothing pending, NOWAIT runs enter only where the kernel cannot
     * say that it holds nothing (no IORING_SETUP_TASKRUN_FLAG). */
    drain(&e);
    cr_assert_eq(dg_loop_get_stats(loop, &before), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(dg_loop_get_stats(loop, &after), 0);
    if (dg_loop_capabilities(loop)->setup_flags & IORING_SETUP_TASKRUN_FLAG)
        cr_assert_eq(after.enters, before.enters, "%llu enters in 100 idle NOWAIT runs",
                     (unsigned long long)(after.enters - before.enters));
    else
        cr_log_info("no IORING_SETUP_TASKRUN_FLAG (%s): idle NOWAIT runs enter",
                    dg_loop_backend(loop));
    cr_assert_eq(c.messages, 200);

    cr_assert_eq(dg_socket_close(sock, c_closed, &c), 0);
    pump(&e, &c.closed, 1);
    embed_close(&e);
    close(plain);
    dgt_loop_finish(loop);
}

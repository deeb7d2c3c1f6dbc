/* The provided-buffer ring running dry: a loop with only a few receive
 * buffers gets numbered datagrams from a plain sender in bursts larger
 * than the ring. Every datagram must arrive exactly once and in order, and
 * the socket's counters must show the ring ran dry and the multishot
 * receive was armed again. The sender waits for each burst to be consumed
 * before the next, so the kernel's receive queue never overflows and no
 * loss can be blamed on the kernel.
 * And the opposite: with the default ring, a flood (a receive queue four
 * rings deep) is drained without the ring ever running dry. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(bufring, .timeout = 60);

enum { PAYLOAD = 64, MAX_SOCKETS = 2 };

struct sink {
    dg_socket *sock;
    int received;
    uint32_t next;
    int out_of_order;
    int bad;
    int *all_received;
};

static void sink_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct sink *s = data;
    uint32_t seq;

    (void)sock;
    s->received++;
    (*s->all_received)++;
    if (msg->length != PAYLOAD || msg->size != PAYLOAD || msg->flags != 0) {
        s->bad++;
        return;
    }
    memcpy(&seq, msg->data, sizeof(seq));
    if (seq != s->next)
        s->out_of_order++;
    s->next = seq + 1;
    if (dgt_check((const unsigned char *)msg->data + 4, PAYLOAD - 4, seq) != PAYLOAD - 4)
        s->bad++;
}

struct feed {
    int plain;
    int nsinks;
    int ports[MAX_SOCKETS];
    struct sink *sinks[MAX_SOCKETS];
    int sent[MAX_SOCKETS];
    int total;
    int burst;
    int ticks;
    dg_timer *timer;
};

/* Each tick sends a whole burst to every socket that consumed its last
 * one: bursts land while the loop is busy in this callback. */
static void feed_tick(dg_timer *timer, void *data)
{
    struct feed *f = data;
    bool done = true;

    f->ticks++;
    for (int j = 0; j < f->nsinks; j++) {
        /* The previous burst is not consumed yet: wait for the next tick. */
        bool ready = f->sinks[j]->received == f->sent[j];

        for (int k = 0; ready && k < f->burst && f->sent[j] < f->total; k++) {
            unsigned char payload[PAYLOAD];
            uint32_t seq = (uint32_t)f->sent[j];

            memcpy(payload, &seq, sizeof(seq));
            dgt_fill(payload + 4, PAYLOAD - 4, seq);
            dgt_plain_send(f->plain, AF_INET, f->ports[j], payload, PAYLOAD);
            f->sent[j]++;
        }
        if (f->sent[j] < f->total)
            done = false;
    }
    if (done)
        cr_expect_eq(dg_timer_stop(timer), 0);
}

static void run_dry(unsigned recv_buffers, int nsinks, int total, int burst)
{
    dg_loop *loop = dgt_loop_new_sized(recv_buffers, 256);
    struct sink sinks[MAX_SOCKETS];
    struct feed f;
    int all_received = 0;
    dg_socket_handlers h = {.on_message = sink_message};
    dg_socket_options options;

    memset(&f, 0, sizeof(f));
    memset(sinks, 0, sizeof(sinks));
    memset(&options, 0, sizeof(options));
    options.type = DG_UDP4;
    options.recv_buffer_size = 1 << 20;
    f.plain = dgt_plain_socket(AF_INET, 0);
    f.nsinks = nsinks;
    f.total = total;
    f.burst = burst;
    for (int j = 0; j < nsinks; j++) {
        int rc;

        sinks[j].all_received = &all_received;
        rc = dg_socket_create(loop, &options, &h, &sinks[j], &sinks[j].sock);
        cr_assert_eq(rc, 0, "dg_socket_create: %s", dg_err_name(rc));
        f.ports[j] = dgt_bind(loop, sinks[j].sock, "127.0.0.1", 0);
        f.sinks[j] = &sinks[j];
    }
    cr_assert_eq(dg_timer_new(loop, &f.timer), 0);
    cr_assert_eq(dg_timer_start(f.timer, 1, 1, feed_tick, &f), 0);
    if (!dgt_try_run_until(loop, &all_received, nsinks * total, 20000)) {
        for (int j = 0; j < nsinks; j++) {
            dg_socket_stats st;
            int queued = -1;

            dg_socket_get_stats(sinks[j].sock, &st);
            ioctl(dg_socket_fd(sinks[j].sock), FIONREAD, &queued);
            cr_log_error("socket %d: sent %d, received %d, rx_no_buffers %llu, rx_rearms %llu, "
                         "rx_kernel_drops %llu, next datagram waiting in the kernel: %d bytes",
                         j, f.sent[j], sinks[j].received, (unsigned long long)st.rx_no_buffers,
                         (unsigned long long)st.rx_rearms,
                         (unsigned long long)st.rx_kernel_drops, queued);
        }
        dg_loop_update_time(loop);
        cr_assert_fail("stalled: %d of %d datagrams arrived within 20 s; the 1 ms feeder timer "
                       "ticked %d times, active %d, dg_loop_timeout %d, loop alive %d",
                       all_received, nsinks * total, f.ticks, dg_timer_active(f.timer),
                       dg_loop_timeout(loop), dg_loop_alive(loop));
    }
    cr_assert(!dg_timer_active(f.timer), "the feeder stops itself after the last burst");

    for (int j = 0; j < nsinks; j++) {
        dg_socket_stats st;

        cr_assert_eq(sinks[j].received, total, "socket %d: %d of %d datagrams", j,
                     sinks[j].received, total);
        cr_assert_eq(sinks[j].bad, 0, "socket %d: %d damaged datagrams", j, sinks[j].bad);
        cr_assert_eq(sinks[j].out_of_order, 0, "socket %d: %d out of order", j,
                     sinks[j].out_of_order);
        cr_assert_eq(sinks[j].next, (uint32_t)total);
        cr_assert_eq(dg_socket_get_stats(sinks[j].sock, &st), 0);
        cr_assert_eq(st.rx_datagrams, (uint64_t)total);
        cr_assert_eq(st.rx_bytes, (uint64_t)total * PAYLOAD);
        cr_assert_eq(st.rx_truncated, 0);
        cr_assert_eq(st.rx_kernel_drops, 0,
                     "the kernel dropped datagrams: the sender's pacing "
                     "is wrong, not dgring");
        cr_assert(st.rx_no_buffers > 0 || st.rx_rearms > 0,
                  "socket %d: bursts of %d into %u buffers, yet rx_no_buffers = %llu and "
                  "rx_rearms = %llu",
                  j, burst, recv_buffers, (unsigned long long)st.rx_no_buffers,
                  (unsigned long long)st.rx_rearms);
    }

    dgt_close_timer(loop, f.timer);
    for (int j = 0; j < nsinks; j++)
        dgt_close_socket(loop, sinks[j].sock);
    cr_assert_eq(all_received, nsinks * total, "datagrams delivered after the end");
    close(f.plain);
    dgt_loop_finish(loop);
}

Test(bufring, eight_buffers_2000_datagrams_in_bursts_of_50)
{
    run_dry(8, 1, 2000, 50);
}

Test(bufring, one_buffer_300_datagrams_in_bursts_of_20)
{
    run_dry(1, 1, 300, 20);
}

Test(bufring, two_sockets_share_eight_buffers)
{
    run_dry(8, 2, 1000, 40);
}

/* A flood with the default options: 2048 datagrams wait in the socket's
 * queue before the loop runs. The batched waits after busy turns must
 * leave buffers in the ring (engine/core/ring.c, batch_wait_nr): a wait
 * that let the kernel run the receive through the whole ring ended it with
 * ENOBUFS once per 512 datagrams, for as long as the flood lasted. */
Test(bufring, a_flood_never_empties_the_default_ring)
{
    enum { FLOOD = 2048 };
    dg_loop *loop = dgt_loop_new(NULL);
    struct sink sink;
    int all_received = 0;
    dg_socket_handlers h = {.on_message = sink_message};

    memset(&sink, 0, sizeof(sink));
    sink.all_received = &all_received;
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &sink);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);
    int rcvbuf = 16 << 20;
    if (setsockopt(dg_socket_fd(sock), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        cr_skip_test("SO_RCVBUFFORCE refused (%s): the flood would not fit in the socket's queue",
                     strerror(errno));
    int plain = dgt_plain_socket(AF_INET, 0);
    for (uint32_t seq = 0; seq < FLOOD; seq++) {
        unsigned char payload[PAYLOAD];

        memcpy(payload, &seq, sizeof(seq));
        dgt_fill(payload + 4, PAYLOAD - 4, seq);
        dgt_plain_send(plain, AF_INET, port, payload, PAYLOAD);
    }
    dgt_run_until(loop, &all_received, FLOOD, DGT_WAIT_MS);

    dg_socket_stats st;
    cr_assert_eq(dg_socket_get_stats(sock, &st), 0);
    cr_assert_eq(st.rx_kernel_drops, 0, "the socket's queue overflowed: not dgring's doing");
    cr_assert_eq(sink.received, FLOOD);
    cr_assert_eq(sink.out_of_order, 0);
    cr_assert_eq(sink.bad, 0);
    cr_assert_eq(st.rx_no_buffers, 0, "the ring ran dry %llu times in a flood of %d",
                 (unsigned long long)st.rx_no_buffers, FLOOD);
    cr_assert_eq(st.rx_rearms, 0);
    close(plain);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* Batched waits adapt (engine/core/ring.c, batch_wait_adapt). A paced
 * flow: bursts of 64 datagrams with silence between them (a 1 ms feeder
 * timer sends the next burst once the last one is in). With 4096 buffers
 * the wait after a busy turn asks for 32 completions; the rest of a burst
 * is fewer, so that wait ends on its time limit (batch_wait_timeouts) and
 * held the burst's tail that long. Once one has, no later burst may pay it
 * again: a burst of 64 makes at most two busy turns, and each run of busy
 * turns now waits plainly for its first four. A flood afterwards gets its
 * batched waits back (its end costs one more timed-out wait). */
enum { PACE_BURST = 64, PACE_FIRST_MAX = 20, PACE_AFTER = 8 };

struct pace {
    dg_loop *loop;
    int plain, port, sent, bursts, phase2, done;
    uint64_t timeouts_first;
    struct sink sink;
};

static uint64_t batch_wait_timeouts(dg_loop *loop)
{
    dg_loop_stats stats;

    cr_assert_eq(dg_loop_get_stats(loop, &stats), 0);
    return stats.batch_wait_timeouts;
}

static void pace_send(struct pace *p, int n)
{
    for (int k = 0; k < n; k++) {
        unsigned char payload[PAYLOAD];
        uint32_t seq = (uint32_t)p->sent++;

        memcpy(payload, &seq, sizeof(seq));
        dgt_fill(payload + 4, PAYLOAD - 4, seq);
        dgt_plain_send(p->plain, AF_INET, p->port, payload, PAYLOAD);
    }
}

/* First phase: bursts until one batched wait timed out (at most 20);
 * second: eight more bursts. */
static void pace_tick(dg_timer *timer, void *data)
{
    struct pace *p = data;

    if (p->sink.received != p->sent)
        return; /* the burst is not all in yet */
    if (!p->phase2 && (batch_wait_timeouts(p->loop) > 0 || p->bursts == PACE_FIRST_MAX)) {
        p->phase2 = 1;
        p->timeouts_first = batch_wait_timeouts(p->loop);
        p->bursts = 0;
    }
    if (p->phase2 && p->bursts == PACE_AFTER) {
        cr_expect_eq(dg_timer_stop(timer), 0);
        p->done = 1;
        return;
    }
    p->bursts++;
    pace_send(p, PACE_BURST);
}

static void pace_quiet(dg_timer *timer, void *data)
{
    (void)timer;
    ((struct pace *)data)->done = 2;
}

Test(bufring, a_paced_flow_pays_a_timed_out_batched_wait_once)
{
    dg_loop *loop = dgt_loop_new_sized(4096, 2048);
    dg_socket_handlers h = {.on_message = sink_message};
    struct pace p;
    int all_received = 0;
    dg_timer *timer;

    memset(&p, 0, sizeof(p));
    p.loop = loop;
    p.sink.all_received = &all_received;
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &p.sink);
    p.port = dgt_bind(loop, sock, "127.0.0.1", 0);
    int rcvbuf = 16 << 20;
    if (setsockopt(dg_socket_fd(sock), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        cr_skip_test("SO_RCVBUFFORCE refused (%s): the flood would not fit in the socket's queue",
                     strerror(errno));
    p.plain = dgt_plain_socket(AF_INET, 0);
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 1, 1, pace_tick, &p), 0);
    dgt_run_until(loop, &p.done, 1, DGT_WAIT_MS);
    cr_assert_eq(p.sink.received, p.sent);
    uint64_t after = batch_wait_timeouts(loop);
    if (dgt_backend_is_epoll()) {
        cr_assert_eq(after, 0, "the epoll backend has no batched waits");
    } else {
        cr_assert_gt(p.timeouts_first, 0, "no burst of %d ended in a timed-out batched wait "
                                          "in %d bursts", PACE_BURST, PACE_FIRST_MAX);
        cr_assert_eq(after, p.timeouts_first,
                     "%llu timed-out batched waits in %d bursts after the first",
                     (unsigned long long)(after - p.timeouts_first), PACE_AFTER);
    }

    /* A flood (2048 datagrams queued before the loop runs): busy turns in
     * a row get batched waits back, still without running the ring dry. */
    int flood_from = p.sent;
    pace_send(&p, 2048);
    dgt_run_until(loop, &p.sink.received, p.sent, DGT_WAIT_MS);
    cr_assert_eq(dg_timer_start(timer, 5, 0, pace_quiet, &p), 0); /* then silence */
    dgt_run_until(loop, &p.done, 2, DGT_WAIT_MS);
    dg_socket_stats st;
    cr_assert_eq(dg_socket_get_stats(sock, &st), 0);
    cr_assert_eq(st.rx_kernel_drops, 0, "the socket's queue overflowed: not dgring's doing");
    cr_assert_eq(st.rx_no_buffers, 0);
    cr_assert_eq(p.sink.out_of_order, 0);
    cr_assert_eq(p.sink.bad, 0);
    if (!dgt_backend_is_epoll())
        cr_assert_gt(batch_wait_timeouts(loop), after,
                     "a flood of %d got no batched wait back", p.sent - flood_from);
    dgt_close_timer(loop, timer);
    close(p.plain);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

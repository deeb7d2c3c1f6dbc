/* The event loop: run modes (DEFAULT, ONCE, NOWAIT), dg_loop_stop from a
 * callback and from another thread, dg_loop_wake from another thread,
 * what keeps a loop alive (bound sockets, ref/unref), dg_loop_close on a
 * busy loop, reentrancy, capabilities, backend name and option checking. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(loop, .timeout = 20);

static void count_timer(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

Test(loop, options_init_gives_the_documented_defaults)
{
    dg_loop_options options;

    memset(&options, 0xff, sizeof(options));
    dg_loop_options_init(&options);
    cr_assert_eq(options.sq_entries, 256);
    cr_assert_eq(options.recv_buffers, 512);
    cr_assert_eq(options.recv_buffer_size, 65527); /* udp6's largest payload */
    cr_assert_eq(options.max_pending_sends, 4096);
    cr_assert_eq(options.max_fanout_destinations, 8192);
    for (size_t i = 0; i < sizeof(options.reserved) / sizeof(options.reserved[0]); i++)
        cr_assert_eq(options.reserved[i], 0);
}

Test(loop, new_rejects_bad_arguments)
{
    dg_loop_options options;
    dg_loop *loop = NULL;

    dgt_assert_code(dg_loop_new(NULL, NULL), DG_ERR_INVALID_ARG_VALUE);

    dg_loop_options_init(&options);
    options.recv_buffers = 3;
    dgt_assert_code(dg_loop_new(&loop, &options), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);

    options.recv_buffers = 65536;
    dgt_assert_code(dg_loop_new(&loop, &options), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);

    options.recv_buffers = 32768 + 1;
    dgt_assert_code(dg_loop_new(&loop, &options), DG_ERR_INVALID_ARG_VALUE);

    dg_loop_options_init(&options);
    options.batch_wait_us = 1000001; /* more than a second: a mistake */
    dgt_assert_code(dg_loop_new(&loop, &options), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);

    dg_loop_options_init(&options);
    options.max_fanout_destinations = 65537;
    dgt_assert_code(dg_loop_new(&loop, &options), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);
    options.max_fanout_destinations = 65536; /* the largest */
    cr_assert_eq(dg_loop_new(&loop, &options), 0);
    dgt_loop_finish(loop);
    loop = NULL;

    dgt_assert_code(dg_loop_close(NULL), DG_ERR_INVALID_ARG_VALUE);
}

Test(loop, null_options_and_zero_options_mean_defaults)
{
    dg_loop_options zero;
    dg_loop *a = dgt_loop_new(NULL);
    dg_loop *b;

    memset(&zero, 0, sizeof(zero));
    b = dgt_loop_new(&zero);
    cr_assert_geq(dg_loop_capabilities(a)->cq_entries, 512);
    cr_assert_geq(dg_loop_capabilities(b)->cq_entries, 512);
    dgt_loop_finish(a);
    dgt_loop_finish(b);
}

Test(loop, capabilities_and_backend)
{
    dg_loop *loop = dgt_loop_new_sized(1024, 2048);
    const dg_loop_caps *caps = dg_loop_capabilities(loop);

    cr_assert_not_null(caps);
    if (dgt_backend_is_epoll()) {
        cr_assert_str_eq(dg_loop_backend(loop), "epoll");
        cr_assert_not(caps->recvmsg_multishot, "epoll reports no io_uring features");
        cr_assert_not(caps->sync_cancel, "epoll reports no io_uring features");
        cr_assert_geq(caps->cq_entries, 1024);
        dgt_loop_finish(loop);
        return;
    }
    cr_assert(caps->recvmsg_multishot, "a loop exists, so multishot recvmsg must be there");
    cr_assert(caps->sync_cancel, "synchronous cancel came with multishot recvmsg (6.0)");
    cr_assert_geq(caps->cq_entries, 1024, "cq_entries %u < recv_buffers 1024", caps->cq_entries);
    cr_assert_gt(caps->sq_entries, 0);
    cr_assert_eq(dg_loop_capabilities(loop), caps, "capabilities moved during the loop's life");
    cr_assert_str_eq(dg_loop_backend(loop), "io_uring");
    dgt_loop_finish(loop);
}

Test(loop, user_data)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int x;

    cr_assert_null(dg_loop_get_data(loop));
    dg_loop_set_data(loop, &x);
    cr_assert_eq(dg_loop_get_data(loop), &x);
    dgt_loop_finish(loop);
}

Test(loop, default_on_empty_loop_returns_zero)
{
    dg_loop *loop = dgt_loop_new(NULL);

    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    /* (Before the first turn internal setup may still count as ready work.) */
    cr_assert_eq(dg_loop_timeout(loop), -1, "no timer and nothing ready");
    cr_assert_eq(dg_loop_run(loop, DG_RUN_ONCE), 0);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    dgt_loop_finish(loop);
}

Test(loop, now_is_monotonic)
{
    dg_loop *loop = dgt_loop_new(NULL);
    uint64_t a = dg_loop_now(loop);
    uint64_t b;

    dgt_sleep_ms(5);
    dg_loop_update_time(loop);
    b = dg_loop_now(loop);
    cr_assert_gt(b, a, "now went from %llu to %llu across a 5 ms sleep", (unsigned long long)a,
                 (unsigned long long)b);
    dgt_loop_finish(loop);
}

/* The suite timeout (20 s) is shorter than the timer (60 s): if NOWAIT
 * blocked for the timer the test would be killed. */
Test(loop, nowait_does_not_wait_for_a_timer)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer;
    int fired = 0;
    int timeout;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 60000, 0, count_timer, &fired), 0);
    cr_assert(dg_loop_alive(loop));
    timeout = dg_loop_timeout(loop);
    cr_assert(timeout >= 0 && timeout <= 60000, "dg_loop_timeout = %d", timeout);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    timeout = dg_loop_timeout(loop);
    cr_assert(timeout > 0 && timeout <= 60000, "dg_loop_timeout = %d after two turns", timeout);
    cr_assert_eq(fired, 0);
    dgt_close_timer(loop, timer);
    cr_assert_eq(fired, 0);
    dgt_loop_finish(loop);
}

Test(loop, once_blocks_until_the_timer_fires)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer;
    int fired = 0;
    uint64_t start;
    int rc;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dg_loop_update_time(loop);
    start = dg_loop_now(loop);
    cr_assert_eq(dg_timer_start(timer, 30, 0, count_timer, &fired), 0);
    rc = dg_loop_run(loop, DG_RUN_ONCE);
    cr_assert_eq(fired, 1, "one DG_RUN_ONCE returned (%d) without running the due timer", rc);
    cr_assert_eq(rc, 0, "a stopped timer must not keep the loop alive");
    cr_assert_geq(dg_loop_now(loop) - start, 30);
    dgt_close_timer(loop, timer);
    cr_assert_eq(fired, 1);
    dgt_loop_finish(loop);
}

struct stop_after {
    dg_loop *loop;
    int fired;
    int stop_at;
};

static void stop_after_cb(dg_timer *timer, void *data)
{
    struct stop_after *s = data;

    (void)timer;
    if (++s->fired == s->stop_at)
        dg_loop_stop(s->loop);
}

Test(loop, stop_from_a_callback_makes_default_return)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct stop_after s = {loop, 0, 3};
    dg_timer *timer;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    /* Repeat every 25 ms, not 1: a turn runs due timers before and after
     * its completions, and under valgrind 1 ms could pass in between, so
     * the third run's stop would be followed by a fourth in that turn. */
    cr_assert_eq(dg_timer_start(timer, 1, 25, stop_after_cb, &s), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 1, "a repeating timer still keeps it alive");
    cr_assert_eq(s.fired, 3);
    cr_assert(dg_timer_active(timer));
    dgt_close_timer(loop, timer);
    cr_assert_eq(s.fired, 3);
    dgt_loop_finish(loop);
}

/* A thread that keeps calling dg_loop_wake() or dg_loop_stop() until the
 * loop's thread says dg_loop_run returned (a call made before the loop
 * blocks must not be needed to land). */
struct poker {
    dg_loop *loop;
    bool use_stop;
    atomic_bool done;
    atomic_int calls;
    atomic_int failures;
};

static void *poker_main(void *arg)
{
    struct poker *p = arg;

    dgt_sleep_ms(20);
    while (!atomic_load(&p->done)) {
        if (p->use_stop) {
            dg_loop_stop(p->loop);
        } else if (dg_loop_wake(p->loop) != 0) {
            atomic_fetch_add(&p->failures, 1);
        }
        atomic_fetch_add(&p->calls, 1);
        dgt_sleep_ms(20);
    }
    return NULL;
}

static void run_poked(bool use_stop, dg_run_mode mode)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct poker p;
    pthread_t thread;
    dg_timer *timer;
    int fired = 0;
    int rc;

    memset(&p, 0, sizeof(p));
    p.loop = loop;
    p.use_stop = use_stop;
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 60000, 0, count_timer, &fired), 0);
    cr_assert_eq(pthread_create(&thread, NULL, poker_main, &p), 0);
    rc = dg_loop_run(loop, mode);
    atomic_store(&p.done, true);
    pthread_join(thread, NULL);
    cr_assert_eq(rc, 1, "the referenced timer keeps the loop alive");
    cr_assert_eq(fired, 0);
    cr_assert_geq(atomic_load(&p.calls), 1);
    cr_assert_eq(atomic_load(&p.failures), 0, "dg_loop_wake failed");
    dgt_close_timer(loop, timer);
    cr_assert_eq(fired, 0);
    dgt_loop_finish(loop);
}

Test(loop, wake_from_another_thread_unblocks_once)
{
    run_poked(false, DG_RUN_ONCE);
}

Test(loop, stop_from_another_thread_ends_default)
{
    run_poked(true, DG_RUN_DEFAULT);
}

Test(loop, stop_from_another_thread_ends_once)
{
    run_poked(true, DG_RUN_ONCE);
}

struct reentry {
    dg_loop *loop;
    int fired;
    int rc_default;
    int rc_once;
    int rc_nowait;
};

static void reenter_cb(dg_timer *timer, void *data)
{
    struct reentry *r = data;

    (void)timer;
    r->fired++;
    r->rc_default = dg_loop_run(r->loop, DG_RUN_DEFAULT);
    r->rc_once = dg_loop_run(r->loop, DG_RUN_ONCE);
    r->rc_nowait = dg_loop_run(r->loop, DG_RUN_NOWAIT);
}

Test(loop, run_inside_a_callback_is_ebusy)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct reentry r = {loop, 0, 0, 0, 0};
    dg_timer *timer;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 1, 0, reenter_cb, &r), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(r.fired, 1);
    cr_assert_eq(r.rc_default, -EBUSY);
    cr_assert_eq(r.rc_once, -EBUSY);
    cr_assert_eq(r.rc_nowait, -EBUSY);
    dgt_close_timer(loop, timer);
    dgt_loop_finish(loop);
}

struct counters {
    int listening;
    int closed;
};

static void on_listening(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct counters *)data)->listening++;
}

static void on_close(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct counters *)data)->closed++;
}

Test(loop, bound_socket_keeps_the_loop_alive_unless_unreferenced)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct counters c = {0, 0};
    dg_socket_handlers h = {.on_listening = on_listening, .on_close = on_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &c);
    struct stop_after s = {loop, 0, 1};
    dg_timer *timer;

    cr_assert(dg_socket_has_ref(sock));
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(c.listening, 1);
    cr_assert(dg_loop_alive(loop));

    dg_socket_unref(sock);
    dg_socket_unref(sock); /* idempotent */
    cr_assert(!dg_socket_has_ref(sock));
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);

    dg_socket_ref(sock);
    dg_socket_ref(sock);
    cr_assert(dg_socket_has_ref(sock));
    cr_assert(dg_loop_alive(loop));

    /* An unreferenced timer stops the loop: DEFAULT only returns because of
     * the stop, so the socket was what kept it running. */
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dg_timer_unref(timer);
    cr_assert_eq(dg_timer_start(timer, 20, 0, stop_after_cb, &s), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 1);
    cr_assert_eq(s.fired, 1);
    dgt_close_timer(loop, timer);

    dgt_close_socket(loop, sock);
    cr_assert_eq(c.closed, 1);
    cr_assert_eq(c.listening, 1);
    dgt_loop_finish(loop);
}

Test(loop, unbound_socket_does_not_keep_the_loop_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct counters c = {0, 0};
    dg_socket_handlers h = {.on_listening = on_listening, .on_close = on_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &c);

    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(c.closed, 1);
    cr_assert_eq(c.listening, 0);
    dgt_loop_finish(loop);
}

Test(loop, close_is_busy_while_handles_live)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_timer *timer;

    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "an unbound socket is still open");
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY);
    dgt_close_socket(loop, sock);

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "a stopped timer is still open");
    dgt_close_timer(loop, timer);
    dgt_loop_finish(loop);
}

Test(loop, close_is_busy_while_a_close_is_pending)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct counters c = {0, 0};
    dg_socket_handlers h = {.on_close = on_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &c);

    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    cr_assert(dg_loop_alive(loop), "a closing handle keeps the loop alive");
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c.closed, 1);
    dgt_loop_finish(loop);
}

/* DG_RUN_ONCE must not go to sleep after it ran callbacks that were ready
 * when it was called: here a bound socket keeps the loop alive with nothing
 * else to come, so a ONCE that waits on would hang until the watchdog. */
static void count_bind(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    (void)sock;
    cr_expect_eq(status, 0);
    (*(int *)data)++;
}

Test(loop, once_returns_after_running_a_ready_bind_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int bound = 0;

    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", count_bind, &bound), 0);
    cr_assert_eq(dgt_run_once(loop, 2000), 1, "the bound socket keeps the loop alive");
    cr_assert_eq(bound, 1, "DG_RUN_ONCE returned without running the bind callback");
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound, 1);
    dgt_loop_finish(loop);
}

Test(loop, once_returns_after_running_an_overdue_timer)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *due, *keep;
    int fired = 0, kept = 0;

    cr_assert_eq(dg_timer_new(loop, &due), 0);
    cr_assert_eq(dg_timer_new(loop, &keep), 0);
    cr_assert_eq(dg_timer_start(keep, 60000, 0, count_timer, &kept), 0);
    cr_assert_eq(dg_timer_start(due, 1, 0, count_timer, &fired), 0);
    dgt_sleep_ms(20);
    cr_assert_eq(dgt_run_once(loop, 2000), 1);
    cr_assert_eq(fired, 1);
    cr_assert_eq(kept, 0);
    dgt_close_timer(loop, due);
    dgt_close_timer(loop, keep);
    dgt_loop_finish(loop);
}

Test(loop, once_returns_after_running_a_close_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct counters c = {0, 0};
    dg_socket_handlers h = {.on_close = on_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &c);
    dg_timer *keep;
    int kept = 0;

    cr_assert_eq(dg_timer_new(loop, &keep), 0);
    cr_assert_eq(dg_timer_start(keep, 60000, 0, count_timer, &kept), 0);
    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    cr_assert_eq(dgt_run_once(loop, 2000), 1);
    cr_assert_eq(c.closed, 1);
    dgt_close_timer(loop, keep);
    dgt_loop_finish(loop);
}

/* Batched waits after busy turns: a flood of datagrams with a repeating
 * timer running. Every datagram arrives and the timer keeps firing while
 * the loop waits for batches (the wait never runs past the next timer),
 * with the default, a long and no batch wait. Counts only, no timing. */
struct flood {
    int received;
    int ticks;
    int ticks_during_flood;
    int total;
};

static void flood_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct flood *f = data;

    (void)sock;
    (void)msg;
    f->received++;
}

static void flood_tick(dg_timer *timer, void *data)
{
    struct flood *f = data;

    (void)timer;
    f->ticks++;
    if (f->received > 0 && f->received < f->total)
        f->ticks_during_flood++;
}

static void flood_with_timer(unsigned batch_wait_us)
{
    enum { TOTAL = 10000, BURST = 100 }; /* a burst fits the default rmem_max */
    dg_loop_options o;
    struct flood f = {.total = TOTAL};
    dg_socket_handlers h = {.on_message = flood_message};
    dg_timer *timer;
    char payload[32] = {0};

    dg_loop_options_init(&o);
    o.batch_wait_us = batch_wait_us;
    o.recv_buffers = 4096;
    o.recv_buffer_size = 64;
    dg_loop *loop = dgt_loop_new(&o);
    dg_socket_options so = {.type = DG_UDP4, .recv_buffer_size = 4 << 20};
    dg_socket *sock = NULL;
    cr_assert_eq(dg_socket_create(loop, &so, &h, &f, &sock), 0);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 1, 1, flood_tick, &f), 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    for (int sent = 0; sent < TOTAL; sent += BURST) {
        for (int i = 0; i < BURST; i++)
            dgt_plain_send(fd, AF_INET, port, payload, sizeof(payload));
        dgt_run_until(loop, &f.received, sent + BURST, 10000);
    }
    int before = f.ticks;
    dgt_run_until(loop, &f.ticks, before + 3, 10000); /* still firing after */
    cr_assert_eq(f.received, TOTAL);
    close(fd);
    dgt_close_timer(loop, timer);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(loop, flood_with_timer_default_batch_wait)
{
    flood_with_timer(0);
}

Test(loop, flood_with_timer_long_batch_wait)
{
    flood_with_timer(1000000);
}

Test(loop, flood_with_timer_no_batch_wait)
{
    flood_with_timer(DG_BATCH_WAIT_NONE);
}

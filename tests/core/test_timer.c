/* Timers: one-shot and repeating timers fire the right number of times and
 * never early by the loop clock, restart and stop from their own callback,
 * fire in deadline order (also when a later start has an earlier deadline,
 * which moves the ring's single timeout earlier), unref, and the close
 * protocol (close callback exactly once, no timer callback after close). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(timer, .timeout = 20);

struct tick {
    dg_loop *loop;
    dg_timer *timer;
    int fired;
    int limit;        /* stop, restart or close when fired reaches it */
    uint64_t started; /* dg_loop_now() when started */
    uint64_t first;   /* dg_loop_now() at the first callback */
    int closed;
    int fired_at_close;
};

static void tick_count(dg_timer *timer, void *data)
{
    struct tick *t = data;

    cr_expect_eq(timer, t->timer);
    if (t->fired++ == 0)
        t->first = dg_loop_now(t->loop);
}

static struct tick *tick_new(dg_loop *loop)
{
    struct tick *t = calloc(1, sizeof(*t));

    cr_assert_not_null(t);
    t->loop = loop;
    cr_assert_eq(dg_timer_new(loop, &t->timer), 0);
    cr_assert_not_null(t->timer);
    cr_assert(!dg_timer_active(t->timer));
    return t;
}

static void tick_start(struct tick *t, uint64_t timeout, uint64_t repeat, dg_timer_cb cb)
{
    dg_loop_update_time(t->loop);
    t->started = dg_loop_now(t->loop);
    cr_assert_eq(dg_timer_start(t->timer, timeout, repeat, cb, t), 0);
    cr_assert(dg_timer_active(t->timer));
}

Test(timer, one_shot_fires_once_and_not_early)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    tick_start(t, 50, 0, tick_count);
    cr_assert_eq(t->fired, 0, "the callback ran inside dg_timer_start");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 1);
    cr_assert_geq(t->first - t->started, 50, "fired after %llu ms of a 50 ms timeout",
                  (unsigned long long)(t->first - t->started));
    cr_assert(!dg_timer_active(t->timer), "a fired one-shot timer is no longer active");
    dgt_close_timer(loop, t->timer);
    cr_assert_eq(t->fired, 1);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, zero_timeout_fires_on_the_next_turn)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    tick_start(t, 0, 0, tick_count);
    cr_assert_eq(t->fired, 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 1);
    dgt_close_timer(loop, t->timer);
    dgt_loop_finish(loop);
    free(t);
}

static void tick_stop_at_limit(dg_timer *timer, void *data)
{
    struct tick *t = data;

    tick_count(timer, data);
    if (t->fired == t->limit) {
        cr_expect_eq(dg_timer_stop(timer), 0);
        cr_expect(!dg_timer_active(timer));
    }
}

Test(timer, repeating_fires_n_times_then_stops_itself)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    t->limit = 5;
    tick_start(t, 2, 3, tick_stop_at_limit);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0, "a stopped timer keeps nothing alive");
    cr_assert_eq(t->fired, 5);
    cr_assert(!dg_timer_active(t->timer));
    cr_assert_eq(dg_timer_stop(t->timer), 0, "stopping a stopped timer is a no-op");
    dgt_close_timer(loop, t->timer);
    cr_assert_eq(t->fired, 5);
    dgt_loop_finish(loop);
    free(t);
}

static void tick_restart_until_limit(dg_timer *timer, void *data)
{
    struct tick *t = data;

    tick_count(timer, data);
    if (t->fired < t->limit) {
        cr_expect_eq(dg_timer_start(timer, 2, 0, tick_restart_until_limit, t), 0);
        cr_expect(dg_timer_active(timer));
    }
}

Test(timer, restart_from_its_own_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    t->limit = 4;
    tick_start(t, 2, 0, tick_restart_until_limit);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 4);
    dgt_close_timer(loop, t->timer);
    dgt_loop_finish(loop);
    free(t);
}

/* A repeating timer restarted from its callback as a one-shot runs once
 * more, not on its old repeat. */
static void tick_repeat_to_one_shot(dg_timer *timer, void *data)
{
    struct tick *t = data;

    tick_count(timer, data);
    if (t->fired == 1)
        cr_expect_eq(dg_timer_start(timer, 5, 0, tick_repeat_to_one_shot, t), 0);
}

Test(timer, restart_replaces_the_repeat)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    tick_start(t, 1, 1, tick_repeat_to_one_shot);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 2);
    dgt_close_timer(loop, t->timer);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, stopped_before_due_never_fires)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *stopped = tick_new(loop);
    struct tick *later = tick_new(loop);

    /* 300 ms: the NOWAIT turn must come before the deadline even on a
     * loaded machine or under valgrind (10 ms was a timing bet). */
    tick_start(stopped, 300, 0, tick_count);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(dg_timer_stop(stopped->timer), 0);
    cr_assert(!dg_timer_active(stopped->timer));
    /* A later timer lets the loop run past the stopped one's deadline. */
    tick_start(later, 400, 0, tick_count);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(stopped->fired, 0);
    cr_assert_eq(later->fired, 1);
    dgt_close_timer(loop, stopped->timer);
    dgt_close_timer(loop, later->timer);
    dgt_loop_finish(loop);
    free(stopped);
    free(later);
}

struct order {
    int seq[64];
    int count;
};

struct ordered {
    struct order *order;
    int id;
    uint64_t deadline;
    dg_timer *timer;
};

static void record_order(dg_timer *timer, void *data)
{
    struct ordered *o = data;

    (void)timer;
    if (o->order->count < 64)
        o->order->seq[o->order->count] = o->id;
    o->order->count++;
}

Test(timer, several_timers_fire_in_deadline_order)
{
    static const uint64_t deadlines[] = {40, 10, 70, 25, 55, 5, 85};
    enum { N = sizeof(deadlines) / sizeof(deadlines[0]) };
    dg_loop *loop = dgt_loop_new(NULL);
    struct order order;
    struct ordered timers[N];
    int prev = -1;

    memset(&order, 0, sizeof(order));
    for (int i = 0; i < N; i++) {
        timers[i] = (struct ordered){&order, i, deadlines[i], NULL};
        cr_assert_eq(dg_timer_new(loop, &timers[i].timer), 0);
        cr_assert_eq(dg_timer_start(timers[i].timer, deadlines[i], 0, record_order, &timers[i]), 0);
    }
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(order.count, N);
    for (int i = 0; i < N; i++) {
        int id = order.seq[i];

        if (prev >= 0)
            cr_assert_lt(deadlines[prev], deadlines[id], "timer %llu ms fired before %llu ms",
                         (unsigned long long)deadlines[prev], (unsigned long long)deadlines[id]);
        prev = id;
    }
    for (int i = 0; i < N; i++)
        dgt_close_timer(loop, timers[i].timer);
    cr_assert_eq(order.count, N);
    dgt_loop_finish(loop);
}

/* 300 timers over 0..59 ms in scrambled start order: every one fires once,
 * in non-decreasing deadline order (the heap, not the ring, orders them). */
enum { MANY = 300 };

struct many_ctx {
    uint64_t deadline[MANY];
    int fired[MANY];
    int total;
    uint64_t last;
    int out_of_order;
};

struct many_item {
    struct many_ctx *ctx;
    int index;
};

static void many_cb(dg_timer *timer, void *data)
{
    struct many_item *item = data;
    struct many_ctx *c = item->ctx;

    (void)timer;
    c->fired[item->index]++;
    c->total++;
    if (c->deadline[item->index] < c->last)
        c->out_of_order++;
    c->last = c->deadline[item->index];
}

Test(timer, many_timers_fire_once_in_order)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct many_ctx *c = calloc(1, sizeof(*c));
    struct many_item *items = calloc(MANY, sizeof(*items));
    dg_timer **timers = calloc(MANY, sizeof(*timers));

    cr_assert(c && items && timers);
    for (int i = 0; i < MANY; i++) {
        c->deadline[i] = (uint64_t)((i * 37) % 60);
        items[i] = (struct many_item){c, i};
        cr_assert_eq(dg_timer_new(loop, &timers[i]), 0);
    }
    /* No clock update between starts: all deadlines count from one now. */
    dg_loop_update_time(loop);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(dg_timer_start(timers[i], c->deadline[i], 0, many_cb, &items[i]), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c->total, MANY);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(c->fired[i], 1, "timer %d fired %d times", i, c->fired[i]);
    cr_assert_eq(c->out_of_order, 0, "%d timers fired after a later deadline", c->out_of_order);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(dg_timer_close(timers[i], NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c->total, MANY);
    dgt_loop_finish(loop);
    free(timers);
    free(items);
    free(c);
}

/* The ring holds one timeout for the earliest deadline. A timer started
 * after it with an earlier deadline must move it: with a 60 s timer armed
 * first, the 10 ms timer can only fire within the watchdog (5 s) and the
 * suite timeout if the ring timeout was moved earlier. */
struct early_late {
    struct tick *early;
    struct tick *late;
    int late_fired_before_early;
};

static void early_cb(dg_timer *timer, void *data)
{
    struct early_late *el = data;

    (void)timer;
    el->early->fired++;
    if (el->late->fired)
        el->late_fired_before_early++;
    cr_expect_eq(dg_timer_stop(el->late->timer), 0);
}

Test(timer, later_start_with_earlier_deadline_fires_first)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *late = tick_new(loop);
    struct tick *early = tick_new(loop);
    struct early_late el = {early, late, 0};

    tick_start(late, 60000, 0, tick_count);
    /* Two turns: the 60 s ring timeout is submitted and armed. */
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    dg_loop_update_time(loop);
    cr_assert_eq(dg_timer_start(early->timer, 10, 0, early_cb, &el), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(early->fired, 1);
    cr_assert_eq(late->fired, 0);
    cr_assert_eq(el.late_fired_before_early, 0);
    dgt_close_timer(loop, late->timer);
    dgt_close_timer(loop, early->timer);
    dgt_loop_finish(loop);
    free(late);
    free(early);
}

/* The same when the earlier deadline is set from inside a callback (the
 * loop is between completions, not idle). */
static void arm_early_cb(dg_timer *timer, void *data)
{
    struct early_late *el = data;

    (void)timer;
    cr_expect_eq(dg_timer_start(el->early->timer, 10, 0, early_cb, el), 0);
}

Test(timer, earlier_deadline_from_a_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *late = tick_new(loop);
    struct tick *early = tick_new(loop);
    struct tick *kick = tick_new(loop);
    struct early_late el = {early, late, 0};

    tick_start(late, 60000, 0, tick_count);
    cr_assert_eq(dg_timer_start(kick->timer, 5, 0, arm_early_cb, &el), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(early->fired, 1);
    cr_assert_eq(late->fired, 0);
    dgt_close_timer(loop, late->timer);
    dgt_close_timer(loop, early->timer);
    dgt_close_timer(loop, kick->timer);
    dgt_loop_finish(loop);
    free(late);
    free(early);
    free(kick);
}

Test(timer, restarting_an_active_timer_shorter_moves_it_earlier)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    tick_start(t, 60000, 0, tick_count);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    tick_start(t, 10, 0, tick_count);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 1);
    cr_assert_geq(t->first - t->started, 10);
    dgt_close_timer(loop, t->timer);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, restarting_longer_does_not_fire_at_the_old_deadline)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    /* The first deadline only has to outlive one NOWAIT turn; 200 ms
     * leaves a slow sanitized build on a loaded machine room (5 ms did
     * not: that turn ran the timer and the loop was no longer alive). */
    tick_start(t, 200, 0, tick_count);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(t->fired, 0);
    tick_start(t, 400, 0, tick_count);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 1);
    cr_assert_geq(t->first - t->started, 400, "fired after %llu ms of the new 400 ms timeout",
                  (unsigned long long)(t->first - t->started));
    dgt_close_timer(loop, t->timer);
    dgt_loop_finish(loop);
    free(t);
}

struct stopper {
    struct tick *self;
    struct tick *victim;
    bool close_victim;
};

static void stop_other_cb(dg_timer *timer, void *data)
{
    struct stopper *s = data;

    (void)timer;
    s->self->fired++;
    if (s->close_victim) {
        cr_expect_eq(dg_timer_close(s->victim->timer, NULL, NULL), 0);
        s->victim->closed = 1;
    } else {
        cr_expect_eq(dg_timer_stop(s->victim->timer), 0);
    }
}

static void run_stop_other(bool close_victim)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *a = tick_new(loop);
    struct tick *b = tick_new(loop);
    struct stopper s = {a, b, close_victim};

    /* b is due 1 ms after a: often in the same turn, and must not run. */
    dg_loop_update_time(loop);
    cr_assert_eq(dg_timer_start(a->timer, 10, 0, stop_other_cb, &s), 0);
    cr_assert_eq(dg_timer_start(b->timer, 11, 0, tick_count, b), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(a->fired, 1);
    cr_assert_eq(b->fired, 0);
    dgt_close_timer(loop, a->timer);
    if (!close_victim)
        dgt_close_timer(loop, b->timer);
    dgt_loop_finish(loop);
    free(a);
    free(b);
}

Test(timer, stopping_another_due_timer_from_a_callback)
{
    run_stop_other(false);
}

Test(timer, closing_another_due_timer_from_a_callback)
{
    run_stop_other(true);
}

Test(timer, unreferenced_timer_does_not_keep_the_loop_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    dg_timer_unref(t->timer);
    tick_start(t, 60000, 0, tick_count);
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 0);
    cr_assert(dg_timer_active(t->timer), "unref does not stop the timer");
    dg_timer_ref(t->timer);
    cr_assert(dg_loop_alive(loop));
    dg_timer_unref(t->timer);
    cr_assert(!dg_loop_alive(loop));
    dgt_close_timer(loop, t->timer);
    cr_assert_eq(t->fired, 0);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, unreferenced_timer_still_fires_while_the_loop_runs)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *unrefd = tick_new(loop);
    struct tick *refd = tick_new(loop);

    dg_timer_unref(unrefd->timer);
    tick_start(unrefd, 5, 0, tick_count);
    tick_start(refd, 60, 0, tick_count);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(unrefd->fired, 1);
    cr_assert_eq(refd->fired, 1);
    dgt_close_timer(loop, unrefd->timer);
    dgt_close_timer(loop, refd->timer);
    dgt_loop_finish(loop);
    free(unrefd);
    free(refd);
}

static void tick_closed(dg_timer *timer, void *data)
{
    struct tick *t = data;

    cr_expect_eq(timer, t->timer);
    t->closed++;
    t->fired_at_close = t->fired;
}

Test(timer, close_of_an_active_timer_runs_close_cb_once_and_never_the_timer)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    tick_start(t, 0, 1, tick_count);
    cr_assert_eq(dg_timer_close(t->timer, tick_closed, t), 0);
    cr_assert_eq(t->closed, 0, "the close callback ran inside dg_timer_close");
    cr_assert(dg_loop_alive(loop), "a closing timer keeps the loop alive");
    dgt_assert_code(dg_timer_close(t->timer, tick_closed, t), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_timer_start(t->timer, 1, 0, tick_count, t), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->closed, 1);
    cr_assert_eq(t->fired, 0);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, close_of_a_stopped_timer_without_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_close(timer, NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_loop_finish(loop);
}

static void close_self_cb(dg_timer *timer, void *data)
{
    struct tick *t = data;

    t->fired++;
    cr_expect_eq(dg_timer_close(timer, tick_closed, t), 0);
    cr_expect_eq(t->closed, 0, "the close callback ran inside dg_timer_close");
    cr_expect_eq(dg_timer_close(timer, tick_closed, t), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
}

Test(timer, close_from_its_own_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    /* Repeating every 1 ms: without the close it would fire again. */
    tick_start(t, 1, 1, close_self_cb);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 1);
    cr_assert_eq(t->closed, 1);
    cr_assert_eq(t->fired_at_close, 1);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, close_after_it_fired_a_few_times)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct tick *t = tick_new(loop);

    t->limit = 3;
    tick_start(t, 1, 1, tick_stop_at_limit);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->fired, 3);
    cr_assert_eq(dg_timer_close(t->timer, tick_closed, t), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t->closed, 1);
    cr_assert_eq(t->fired, 3);
    dgt_loop_finish(loop);
    free(t);
}

Test(timer, bad_arguments)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer = NULL;
    int fired = 0;

    dgt_assert_code(dg_timer_new(NULL, &timer), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(timer);
    dgt_assert_code(dg_timer_new(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_start(NULL, 1, 0, (dg_timer_cb)NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_stop(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_close(NULL, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dgt_assert_code(dg_timer_start(timer, 1, 0, NULL, &fired), DG_ERR_INVALID_ARG_VALUE);
    cr_assert(!dg_timer_active(timer), "a refused start must change nothing");
    cr_assert(!dg_loop_alive(loop));
    dgt_close_timer(loop, timer);
    cr_assert_eq(fired, 0);
    dgt_loop_finish(loop);
}

/* ---- Microseconds and the schedule ---------------------------------------
 * Timers keep microsecond deadlines; a repeat is anchored to its schedule
 * (due times start + k * repeat, whatever the callbacks cost), and whole
 * periods the loop missed are skipped. The checks are on the computed due
 * times (dg_timer_due_us), which are exact, never on how late a callback
 * ran. */

struct sched {
    dg_loop *loop;
    dg_timer *timer;
    uint64_t repeat;     /* µs */
    uint64_t first_due;  /* due time of the first run */
    uint64_t prev_due;   /* due time of the run in progress */
    int runs;
    int limit;
    uint64_t busy_us;    /* each callback holds the thread this long */
    uint64_t busy_first_us; /* the first callback only (on top of busy_us) */
    uint64_t skipped;    /* periods skipped, from the due times */
    bool early;          /* a callback ran before its due time */
    bool off_grid;       /* a due time off start + k * repeat */
    bool not_ahead;      /* the next due time was not after the run's time */
};

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void hold_thread(uint64_t us)
{
    uint64_t until = monotonic_us() + us;
    while (monotonic_us() < until)
        ;
}

static void sched_tick(dg_timer *timer, void *data)
{
    struct sched *s = data;
    uint64_t now = dg_loop_now_us(s->loop);
    uint64_t next = dg_timer_due_us(timer);

    s->early |= now < s->prev_due;
    if (s->repeat > 0) {
        s->off_grid |= (next - s->first_due) % s->repeat != 0;
        s->not_ahead |= next <= now;
        s->skipped += (next - s->prev_due) / s->repeat - 1;
        s->prev_due = next;
    }
    hold_thread(s->busy_us + (s->runs == 0 ? s->busy_first_us : 0));
    if (++s->runs == s->limit)
        cr_expect_eq(dg_timer_stop(timer), 0);
}

static void sched_start(struct sched *s, dg_loop *loop, uint64_t timeout, uint64_t repeat)
{
    s->loop = loop;
    s->repeat = repeat;
    cr_assert_eq(dg_timer_new(loop, &s->timer), 0);
    dg_loop_update_time(loop);
    cr_assert_eq(dg_timer_start_us(s->timer, timeout, repeat, sched_tick, s), 0);
    s->first_due = s->prev_due = dg_timer_due_us(s->timer);
    cr_assert_eq(s->first_due, dg_loop_now_us(loop) + timeout,
                 "due at the loop clock plus the timeout, to the microsecond");
}

Test(timer, us_one_shot_is_due_to_the_microsecond)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct sched s = {.limit = 1};

    sched_start(&s, loop, 2500, 0);
    /* The embedding timeout rounds up: 2.5 ms is 3, never an early 2. */
    cr_assert_eq(dg_loop_timeout(loop), 3);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_DEFAULT), 0);
    cr_assert_eq(s.runs, 1);
    cr_assert(!s.early, "ran before its due time");
    cr_assert_eq(dg_timer_due_us(s.timer), 0, "a one-shot that ran is not due any more");
    cr_assert(!dg_timer_active(s.timer));
    dgt_close_timer(loop, s.timer);
    dgt_loop_finish(loop);
}

/* Each callback takes 60% of the period: a schedule counted from each run
 * ("now + repeat") would drift off the grid at once. */
Test(timer, repeat_stays_on_its_schedule)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct sched s = {.limit = 12, .busy_us = 4200};

    sched_start(&s, loop, 7000, 7000);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(s.runs, 12);
    cr_assert(!s.early, "a run came before its due time");
    cr_assert(!s.off_grid, "a due time left the schedule start + k * 7000 us");
    cr_assert(!s.not_ahead, "a next due time was not in the future");
    dgt_close_timer(loop, s.timer);
    dgt_loop_finish(loop);
}

/* The first callback holds the thread for 3.5 periods: the next run comes
 * late, once, and the periods that passed entirely are skipped (at least
 * two of them), not run in a burst. */
Test(timer, missed_periods_are_skipped_not_bunched)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct sched s = {.limit = 4, .busy_first_us = 7000};

    sched_start(&s, loop, 2000, 2000);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(s.runs, 4);
    cr_assert(!s.early && !s.off_grid && !s.not_ahead);
    cr_assert_geq(s.skipped, 2, "skipped %llu periods after a 3.5-period stall",
                  (unsigned long long)s.skipped);
    dgt_close_timer(loop, s.timer);
    dgt_loop_finish(loop);
}

/* Ticks in a window: never early, so never more than window / period + 1;
 * the lower bound is only "it ran at all" (a loaded machine may skip). */
static void stop_the_other(dg_timer *timer, void *data)
{
    (void)timer;
    cr_expect_eq(dg_timer_stop(data), 0);
}

Test(timer, ticks_in_a_window_never_exceed_the_schedule)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct sched s = {.limit = -1};
    dg_timer *end = NULL;

    sched_start(&s, loop, 2500, 2500);
    cr_assert_eq(dg_timer_new(loop, &end), 0);
    cr_assert_eq(dg_timer_start_us(end, 200000, 0, stop_the_other, s.timer), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_leq(s.runs, 200000 / 2500 + 1, "%d runs of a 2.5 ms tick in 200 ms", s.runs);
    cr_assert_geq(s.runs, 1);
    cr_assert(!s.early && !s.off_grid);
    dgt_close_timer(loop, s.timer);
    dgt_close_timer(loop, end);
    dgt_loop_finish(loop);
}

Test(timer, clock_in_ms_and_us_is_one_reading)
{
    dg_loop *loop = dgt_loop_new(NULL);

    for (int i = 0; i < 3; i++) {
        dg_loop_update_time(loop);
        cr_assert_eq(dg_loop_now(loop), dg_loop_now_us(loop) / 1000);
    }
    cr_assert_eq(dg_loop_now_us(NULL), 0);
    cr_assert_eq(dg_loop_now(NULL), 0);
    dgt_loop_finish(loop);
}

/* The ms call is the µs one times 1000; "for ever" stays for ever. */
static void never_runs(dg_timer *timer, void *data)
{
    (void)timer;
    (void)data;
    cr_assert_fail("the timer ran");
}

Test(timer, ms_start_is_the_us_start_times_1000)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer = NULL;
    int fired = 0;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dg_loop_update_time(loop);
    cr_assert_eq(dg_timer_start(timer, 40, 0, never_runs, &fired), 0);
    cr_assert_eq(dg_timer_due_us(timer), dg_loop_now_us(loop) + 40000);
    cr_assert_eq(dg_timer_start(timer, UINT64_MAX / 2, UINT64_MAX / 2, never_runs, NULL),
                 0);
    cr_assert_gt(dg_timer_due_us(timer), dg_loop_now_us(loop) + (1ull << 50),
                 "a far deadline saturates instead of wrapping into the past");
    cr_assert_eq(dg_timer_start_us(timer, UINT64_MAX / 2, 0, never_runs, NULL), 0);
    cr_assert_gt(dg_timer_due_us(timer), dg_loop_now_us(loop) + (1ull << 50));
    cr_assert_eq(dg_timer_stop(timer), 0);
    cr_assert_eq(dg_timer_due_us(timer), 0);
    dgt_close_timer(loop, timer);
    cr_assert_eq(fired, 0);
    dgt_loop_finish(loop);
}

Test(timer, us_bad_arguments)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer = NULL;

    dgt_assert_code(dg_timer_start_us(NULL, 1, 0, tick_count, NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_timer_due_us(NULL), 0);
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    dgt_assert_code(dg_timer_start_us(timer, 1, 0, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_start_us(timer, UINT64_MAX / 2 + 1, 0, tick_count, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_start_us(timer, 1, UINT64_MAX, tick_count, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_timer_start(timer, UINT64_MAX / 2 + 1, 0, tick_count, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert(!dg_timer_active(timer), "a refused start must change nothing");
    cr_assert_eq(dg_timer_close(timer, NULL, NULL), 0);
    dgt_assert_code(dg_timer_start_us(timer, 1, 0, tick_count, NULL),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_loop_finish(loop);
}

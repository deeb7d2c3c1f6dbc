/* Timers: a binary min-heap in the loop and one ring timeout for the
 * earliest deadline; and that single ring timeout itself (dg__timeout_arm),
 * which the resolver uses too. The ring timeout is absolute
 * (CLOCK_MONOTONIC, the loop clock's source, in nanoseconds) and is only
 * ever moved earlier, in place, with IORING_TIMEOUT_UPDATE; a later
 * deadline simply waits for the current timeout to fire, so steady ticking
 * costs no removals.
 *
 * Deadlines are microseconds of the loop clock. A repeating timer's next
 * deadline is its previous one plus the period (anchored to the schedule,
 * so the time its callbacks take never accumulates); periods that passed
 * entirely while the loop was busy are skipped rather than run in a
 * burst. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* ---- Heap -------------------------------------------------------------- */

static bool timer_before(const dg_timer *a, const dg_timer *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->order < b->order;
}

static void heap_place(struct dg__timer_heap *h, unsigned i, dg_timer *t)
{
    h->items[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(struct dg__timer_heap *h, unsigned i)
{
    dg_timer *t = h->items[i];
    while (i > 0) {
        unsigned parent = (i - 1) / 2;
        if (!timer_before(t, h->items[parent]))
            break;
        heap_place(h, i, h->items[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

static void heap_sift_down(struct dg__timer_heap *h, unsigned i)
{
    dg_timer *t = h->items[i];
    for (;;) {
        unsigned child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && timer_before(h->items[child + 1], h->items[child]))
            child++;
        if (!timer_before(h->items[child], t))
            break;
        heap_place(h, i, h->items[child]);
        i = child;
    }
    heap_place(h, i, t);
}

/* Capacity is reserved in dg_timer_new(), so insertion cannot fail. */
static void heap_insert(struct dg__timer_heap *h, dg_timer *t)
{
    heap_place(h, h->count++, t);
    heap_sift_up(h, t->heap_index);
}

static void heap_remove(struct dg__timer_heap *h, dg_timer *t)
{
    unsigned i = t->heap_index;
    dg_timer *last = h->items[--h->count];
    if (i == h->count)
        return;
    heap_place(h, i, last);
    if (i > 0 && timer_before(last, h->items[(i - 1) / 2]))
        heap_sift_up(h, i);
    else
        heap_sift_down(h, i);
}

static int heap_reserve(struct dg__timer_heap *h, unsigned want)
{
    if (want <= h->cap)
        return 0;
    unsigned cap = h->cap ? h->cap * 2 : 16;
    while (cap < want)
        cap *= 2;
    dg_timer **items = dg__realloc(h->items, (size_t)cap * sizeof(*items));
    if (!items)
        return -ENOMEM;
    h->items = items;
    h->cap = cap;
    return 0;
}

/* ---- Keep-alive -------------------------------------------------------- */

static void timer_deactivate(dg_timer *t)
{
    if (!t->active)
        return;
    heap_remove(&t->handle.core->timers, t);
    t->active = false;
    dg__handle_update_alive(&t->handle, false);
}

static void timer_activate(dg_timer *t, uint64_t deadline)
{
    struct dg__core *c = t->handle.core;
    t->deadline = deadline;
    t->order = c->timer_order++;
    t->active = true;
    heap_insert(&c->timers, t);
    dg__handle_update_alive(&t->handle, true);
    dg__loop_poke(c);
}

/* Deadlines saturate here: "for ever" (UINT64_MAX / 2 ms is accepted)
 * must neither wrap into the past nor overflow the ring's nanoseconds. */
#define DG__TIMER_NEVER_US (UINT64_MAX / 4000u)

static uint64_t deadline_after(uint64_t now_us, uint64_t delay_us)
{
    if (delay_us >= DG__TIMER_NEVER_US - now_us)
        return DG__TIMER_NEVER_US;
    return now_us + delay_us;
}

/* The repeat's next deadline: one period after the last one, or, if the
 * loop fell a whole period or more behind, the first point of the same
 * schedule after now (the missed periods are skipped). */
static uint64_t next_on_schedule(const dg_timer *t, uint64_t now_us)
{
    uint64_t next = deadline_after(t->deadline, t->repeat);
    if (next > now_us || next == DG__TIMER_NEVER_US)
        return next;
    uint64_t missed = (now_us - next) / t->repeat + 1;
    return deadline_after(next, missed * t->repeat);
}

/* ---- Public calls ------------------------------------------------------ */

DG_EXPORT int dg_timer_new(dg_loop *loop, dg_timer **out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    struct dg__core *c = dg__core_of(loop);
    if (c->closing)
        return -ECANCELED;
    if (heap_reserve(&c->timers, c->timers.count + c->handle_count + 1) < 0)
        return -ENOMEM;
    dg_timer *t = dg__calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    dg__handle_init(&t->handle, c);
    *out = t;
    return 0;
}

DG_EXPORT int dg_timer_start_us(dg_timer *timer, uint64_t timeout_us, uint64_t repeat_us,
                                dg_timer_cb cb, void *data)
{
    if (!timer || !cb)
        return DG_ERR_INVALID_ARG_VALUE;
    if (timer->handle.closing)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (timeout_us > UINT64_MAX / 2 || repeat_us > UINT64_MAX / 2)
        return DG_ERR_INVALID_ARG_VALUE;
    timer_deactivate(timer);
    timer->cb = cb;
    timer->data = data;
    timer->repeat = repeat_us < DG__TIMER_NEVER_US ? repeat_us : DG__TIMER_NEVER_US;
    timer_activate(timer, deadline_after(dg__loop_now_us(timer->handle.core), timeout_us));
    return 0;
}

/* Milliseconds in µs, saturating at "for ever"; a value out of range
 * stays out of range, so dg_timer_start_us() makes the checks, in its
 * order. */
static uint64_t ms_to_us(uint64_t ms)
{
    if (ms > UINT64_MAX / 2)
        return UINT64_MAX;
    return ms < DG__TIMER_NEVER_US / 1000u ? ms * 1000u : DG__TIMER_NEVER_US;
}

DG_EXPORT int dg_timer_start(dg_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms,
                             dg_timer_cb cb, void *data)
{
    return dg_timer_start_us(timer, ms_to_us(timeout_ms), ms_to_us(repeat_ms), cb, data);
}

DG_EXPORT uint64_t dg_timer_due_us(const dg_timer *timer)
{
    return timer && timer->active ? timer->deadline : 0;
}

DG_EXPORT int dg_timer_stop(dg_timer *timer)
{
    if (!timer)
        return DG_ERR_INVALID_ARG_VALUE;
    timer_deactivate(timer);
    return 0;
}

DG_EXPORT bool dg_timer_active(const dg_timer *timer)
{
    return timer && timer->active;
}

DG_EXPORT void dg_timer_ref(dg_timer *timer)
{
    if (timer)
        dg__handle_set_ref(&timer->handle, true, timer->active);
}

DG_EXPORT void dg_timer_unref(dg_timer *timer)
{
    if (timer)
        dg__handle_set_ref(&timer->handle, false, timer->active);
}

static void timer_finish_close(struct dg__deferred *node)
{
    dg_timer *t = DG__CONTAINER(node, dg_timer, handle.close_ev);
    if (t->close_cb)
        t->close_cb(t, t->close_data);
    dg__handle_closed(&t->handle);
    dg__free(t);
}

DG_EXPORT int dg_timer_close(dg_timer *timer, dg_timer_close_cb cb, void *data)
{
    if (!timer)
        return DG_ERR_INVALID_ARG_VALUE;
    if (timer->handle.closing)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    timer_deactivate(timer);
    timer->close_cb = cb;
    timer->close_data = data;
    dg__handle_close(&timer->handle, timer_finish_close);
    return 0;
}

/* ---- Each turn ---------------------------------------------------------- */

/* Runs timers due now that were started before this call, so a callback
 * that restarts its timer with timeout 0 runs again next turn, not
 * forever within this one. Returns whether any ran. */
bool dg__timers_run_heap(struct dg__core *c)
{
    struct dg__timer_heap *h = &c->timers;
    uint64_t started_before = c->timer_order;
    bool ran = false;
    while (h->count > 0) {
        dg_timer *t = h->items[0];
        if (t->deadline > c->now_us || t->order >= started_before)
            break;
        timer_deactivate(t);
        if (t->repeat > 0)
            timer_activate(t, next_on_schedule(t, c->now_us));
        t->cb(t, t->data);
        ran = true;
    }
    return ran;
}

/* With no timer left an armed timeout may fire for nothing; that is
 * harmless. */
void dg__timers_arm_heap(struct dg__core *c)
{
    (void)dg__timeout_arm(c, &c->timer_timeout, c->timers.items[0]->deadline * 1000u);
}

void dg__timer_on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)cqe; /* -ETIME when it fired, -ECANCELED when the loop closes */
    dg__timeout_ended(&dg__core_of(loop)->timer_timeout);
}

int64_t dg__timers_next_us(const struct dg__core *c)
{
    if (c->timers.count == 0)
        return -1; /* with a timer, now_us is current (dg__loop_turn_time) */
    uint64_t next = c->timers.items[0]->deadline;
    return next <= c->now_us ? 0 : (int64_t)(next - c->now_us);
}

/* ---- The single ring timeout ------------------------------------------------- */

bool dg__timeout_set(struct dg__core *c, struct dg__timeout *t, uint64_t deadline)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(c, &err);
    if (!sqe)
        return false;
    t->ts.tv_sec = (long long)(deadline / 1000000000u);
    t->ts.tv_nsec = (long long)(deadline % 1000000000u);
    if (t->armed) {
        io_uring_prep_timeout_update(sqe, &t->ts, DG__UD(t, DG__OP_TIMEOUT), IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, DG__UD(NULL, DG__OP_IGNORE));
    } else {
        io_uring_prep_timeout(sqe, &t->ts, 0, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, DG__UD(t, DG__OP_TIMEOUT));
        t->armed = true;
    }
    t->deadline = deadline;
    return true;
}

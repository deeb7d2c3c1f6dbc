/* The loop: creation, run modes, one turn, completion dispatch, keep-alive
 * and close. The one file that knows every layer: its completion table
 * names the handlers of the core, the socket layer and the resolver. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/dgram/dgram.h"
#include "engine/dgram/send_done.h"
#include "resolver/resolver.h"

#define DG__CQE_BATCH 256
/* Batched waits (dg_loop_options.batch_wait_us). */
#define DG__BATCH_WAIT_DEFAULT_US 200
/* dg_loop_options.max_fanout_destinations: with the other queues it sizes
 * the completion queue (at most 65536 entries; beyond that the kernel
 * keeps the extra completions on its overflow list, drained next turn). */
#define DG__FANOUT_DESTINATIONS_MAX 65536

DG_EXPORT void dg_loop_options_init(dg_loop_options *options)
{
    if (!options)
        return;
    memset(options, 0, sizeof(*options));
    options->sq_entries = 256;
    options->recv_buffers = 512;
    options->recv_buffer_size = DG__UDP6_PAYLOAD_MAX; /* nothing is cut, as in Node */
    options->max_pending_sends = 4096;
    options->send_buffers = 256;
    options->send_buffer_size = 2048;
    options->max_fanout_destinations = 8192;
}

static int options_resolve(const dg_loop_options *in, dg_loop_options *out)
{
    dg_loop_options_init(out);
    if (in) {
        if (in->sq_entries)
            out->sq_entries = in->sq_entries;
        if (in->recv_buffers)
            out->recv_buffers = in->recv_buffers;
        if (in->recv_buffer_size)
            out->recv_buffer_size = in->recv_buffer_size;
        if (in->max_pending_sends)
            out->max_pending_sends = in->max_pending_sends;
        out->backend = in->backend;
        if (in->send_buffers)
            out->send_buffers = in->send_buffers;
        if (in->send_buffer_size)
            out->send_buffer_size = in->send_buffer_size;
        out->send_zerocopy_min = in->send_zerocopy_min;
        if (in->max_fanout_destinations)
            out->max_fanout_destinations = in->max_fanout_destinations;
        if (in->batch_wait_us)
            out->batch_wait_us = in->batch_wait_us;
    }
    if (out->batch_wait_us == 0)
        out->batch_wait_us = DG__BATCH_WAIT_DEFAULT_US;
    else if (out->batch_wait_us != DG_BATCH_WAIT_NONE && out->batch_wait_us > 1000000)
        return DG_ERR_INVALID_ARG_VALUE;
    if (out->backend > DG_BACKEND_EPOLL)
        return DG_ERR_INVALID_ARG_VALUE;
    unsigned rb = out->recv_buffers;
    if (rb > 32768 || (rb & (rb - 1)) != 0)
        return DG_ERR_INVALID_ARG_VALUE;
    if (out->sq_entries > 32768 || out->recv_buffer_size > 65535 ||
        out->max_pending_sends > 32768 || out->send_buffers > 65536 ||
        out->send_buffer_size > 65535 || out->send_zerocopy_min > 65535 ||
        out->max_fanout_destinations > DG__FANOUT_DESTINATIONS_MAX)
        return DG_ERR_INVALID_ARG_VALUE;
    return 0;
}

/* The backend, its buffer ring and the wake-up read. */
static int loop_open_resources(struct dg__core *c)
{
    /* The kernel fills at most header + recv_buffer_size bytes, so a
     * longer datagram is truncated exactly at recv_buffer_size. */
    int ret = dg__ring_open(c, DG__RECV_HEADER_LEN + c->options.recv_buffer_size);
    if (ret < 0)
        return ret;
    ret = dg__wake_open(c);
    if (ret < 0) {
        dg__ring_close(c);
        return ret;
    }
    /* Hand the wake-up read to the kernel now, so a new loop has nothing
     * queued (dg_loop_timeout() says -1, not "work ready"). */
    (void)dg__submit(c);
    return 0;
}

DG_EXPORT int dg_loop_new(dg_loop **out, const dg_loop_options *options)
{
    if (!out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    dg__owner_hold();
    dg_loop *loop = dg__calloc(1, sizeof(*loop));
    if (!loop) {
        dg__owner_release();
        return -ENOMEM;
    }
    struct dg__core *c = &loop->core;
    c->notify_fd = -1; /* before anything can poke it */
    dg__list_init(&c->deferred);
    dg__list_init(&loop->dgram.sockets);
    int ret = options_resolve(options, &c->options);
    if (ret == 0) {
        /* One keep handle per receive buffer: keeping never allocates. */
        loop->dgram.rx.bufs = dg__calloc(c->options.recv_buffers, sizeof(*loop->dgram.rx.bufs));
        ret = loop->dgram.rx.bufs ? loop_open_resources(c) : -ENOMEM;
    }
    if (ret < 0) {
        dg__free(loop->dgram.rx.bufs);
        dg__free(loop);
        dg__owner_release();
        return ret;
    }
    for (unsigned i = 0; i < c->options.recv_buffers; i++)
        loop->dgram.rx.bufs[i].loop = loop;
    dg__rx_rest(&loop->dgram.rx);
    atomic_init(&c->stop, false);
    dg__post_init(c);
    dg__loop_update_time(c);
    *out = loop;
    return 0;
}

/* ---- Completions ------------------------------------------------------- */

static void on_ignore(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)loop;
    (void)cqe;
}

/* A single ring timeout ended: the timers' or the resolver's. */
static void on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    if (DG__UD_PTR(cqe->user_data) == &loop->core.timer_timeout)
        dg__timer_on_timeout(loop, cqe);
    else
        dg__resolver_on_timeout(loop, cqe);
}

typedef void (*completion_fn)(dg_loop *loop, const struct io_uring_cqe *cqe);

static const completion_fn completion_table[DG__OP_KINDS] = {
    /* DG__OP_RECV: the walk hands runs of them to dg__recv_completions */
    [DG__OP_IGNORE] = on_ignore,
    /* DG__OP_SEND: the walk ends successful sends inline (send_done.h) */
    [DG__OP_SEND] = dg__socket_on_send, [DG__OP_TIMEOUT] = on_timeout,
    [DG__OP_WAKE] = dg__wake_on_completion,          [DG__OP_POLL] = dg__resolver_on_poll,
    [DG__OP_SEND_GSO] = dg__socket_on_send_gso, [DG__OP_POST] = dg__post_on_completion,
    [DG__OP_SIGNAL] = dg__signals_on_poll,     [DG__OP_SEND_MANY] = dg__socket_on_send_many,
};

/* Dispatches the completions cqes[0, n); returns how many were receives. */
static inline __attribute__((always_inline)) unsigned dispatch(dg_loop *loop,
                                                              const struct io_uring_cqe *cqes,
                                                              unsigned n)
{
    unsigned recvs = 0;
    for (unsigned i = 0; i < n;) {
        unsigned kind = DG__UD_KIND(cqes[i].user_data);
        if (kind == DG__OP_RECV) {
            unsigned run = dg__recv_completions(loop, cqes + i, n - i);
            recvs += run;
            i += run;
            continue;
        }
        if (kind == DG__OP_SEND) {
            /* A plain send that succeeded ends here, inline; zero-copy
             * results and notifications, and failures, the general way. */
            if (__builtin_expect(cqes[i].flags == 0 && cqes[i].res >= 0, 1))
                dg__send_succeeded(DG__UD_PTR(cqes[i].user_data), cqes[i].res, true);
            else
                dg__socket_on_send(loop, &cqes[i]);
            i++;
            continue;
        }
        completion_fn fn = completion_table[kind];
        if (fn)
            fn(loop, &cqes[i]);
        i++;
    }
    return recvs;
}

/* Handles the completions that are in the CQ on entry, in batches read
 * where they lie (dg__ring_cq_window); the buffers a batch used go back to
 * the kernel with one commit per batch. Completions posted meanwhile (a
 * callback's sends flushed early complete at once) wait for the next turn,
 * so timers, deferred callbacks and stop requests always get their turn.
 * Returns how many ran. */
static inline __attribute__((always_inline)) unsigned walk_completions(dg_loop *loop)
{
    struct dg__core *c = &loop->core;
    unsigned budget = dg__ring_cq_ready(c); /* the turn's one look at the tail */
    unsigned left = budget, recvs = 0;
    while (left > 0) {
        const struct io_uring_cqe *cqes;
        unsigned n = dg__ring_cq_window(c, &cqes, left < DG__CQE_BATCH ? left : DG__CQE_BATCH);
        if (n == 0)
            break; /* cannot happen: the CQ only grows until we advance it */
        recvs += dispatch(loop, cqes, n);
        dg__ring_advance(c, n);
        /* A batch for on_message_batch ends with the walk of these
         * completions: delivered, and its buffers returned, before the
         * commit (and so before the loop can block). */
        if (loop->dgram.rx.batch_sock)
            dg__rx_batch_flush(loop);
        dg__bufring_commit(&c->bufring);
        left -= n;
    }
    c->stats.completions += budget - left;
    c->last_recv_completions = recvs;
    return budget - left;
}
/* The walk out of line for turn(); the plain turn in dg_loop_run's loop
 * has it inline, where dg_loop_run's frame is made once per run. */
static unsigned process_completions(dg_loop *loop)
{
    return walk_completions(loop);
}

/* ---- Running ----------------------------------------------------------- */

/* dg_loop_alive's test, inline for the run loop. */
static inline bool loop_alive(const dg_loop *loop)
{
    const struct dg__core *c = &loop->core;
    return c->alive_handles > 0 || loop->dgram.pending_sends > 0 || c->pending_requests > 0 ||
           loop->dgram.zc_notifs > 0 ||
           c->closing_handles > 0 || !dg__list_empty(&c->deferred) ||
           atomic_load_explicit(&((dg_loop *)loop)->core.posts_pending, memory_order_relaxed) > 0;
}

DG_EXPORT bool dg_loop_alive(const dg_loop *loop)
{
    return loop && loop_alive(loop);
}

/* The layers' queued work (c->prepare), out of line: most turns have none. */
static void prepare_queued(dg_loop *loop)
{
    struct dg__core *c = &loop->core;
    unsigned work = c->prepare;
    c->prepare = 0;
    if (work & DG__PREPARE_SEND_RUNS)
        dg__send_runs_flush(loop);
    if (work & DG__PREPARE_REARMS)
        dg__sockets_rearm(loop);
}

static inline __attribute__((always_inline)) void prepare_turn(dg_loop *loop)
{
    struct dg__core *c = &loop->core;
    dg__bufring_commit(&c->bufring); /* buffers released outside a walk */
    if (c->prepare)
        prepare_queued(loop);
    dg__timers_arm(c);
    if (c->resolver)
        dg__resolver_prepare(loop);
    dg__signals_prepare(c);
    dg__wake_prepare(c);
}

/* A turn's second half: the timers and deferred callbacks the completions
 * made due. */
static inline __attribute__((always_inline)) void turn_end(struct dg__core *c)
{
    dg__loop_turn_time(c);
    dg__timers_run_due(c);
    dg__deferred_run(c);
}

/* One turn. alive is dg_loop_alive() from just before it: a turn that ran
 * no callback and queued no deferred one (the only turns that may block)
 * cannot have ended what kept the loop alive, as that takes a callback or
 * queues one; the prepare step only queues SQEs or deferred work. */
static int turn(dg_loop *loop, bool may_block, bool alive)
{
    struct dg__core *c = &loop->core;
    c->stats.turns++;
    dg__wake_drain_notify(c);
    dg__loop_turn_time(c);
    bool ran = dg__timers_run_due(c);
    ran |= dg__deferred_run(c);
    ran |= dg__posts_run_queued(c);
    prepare_turn(loop);
    /* A turn that already ran callbacks does not sleep (libuv's RUN_ONCE
     * rule): the caller sees their effects before the loop waits. */
    bool block = may_block && !ran && dg__list_empty(&c->deferred) && alive &&
                 !atomic_load_explicit(&c->stop, memory_order_relaxed);
    int ret = dg__ring_enter(c, block);
    if (ret < 0)
        return ret;
    process_completions(loop);
    turn_end(c);
    return 0;
}

/* Whether a turn has nothing to do but submit, wait and walk the CQ: no
 * timer, deferred callback, post, queued prepare work, resolver, signal
 * handle or embedding fd, the wake-up read armed and no buffer to publish.
 * Then every test of turn()'s first half comes out "nothing", and
 * plain_turn() below skips them. */
static inline bool turn_is_plain(struct dg__core *c)
{
    return (c->timers.count | c->prepare | (c->bufring.tail ^ c->bufring.published)) == 0 &&
           c->wake_armed && c->notify_fd < 0 && !c->resolver && !c->signals &&
           dg__list_empty(&c->deferred) &&
           !atomic_load_explicit(&c->posts_queued, memory_order_acquire);
}

/* turn(loop, true, true) when turn_is_plain(): the same enter, walk and
 * second half; no callback ran before the enter, so it blocks unless a
 * stop was asked. */
static inline __attribute__((always_inline)) int plain_turn(dg_loop *loop)
{
    struct dg__core *c = &loop->core;
    c->stats.turns++;
    c->now_stale = true; /* dg__loop_turn_time with no timer */
    int ret = dg__ring_enter(c, !atomic_load_explicit(&c->stop, memory_order_relaxed));
    if (ret < 0)
        return ret;
    walk_completions(loop);
    turn_end(c);
    return 0;
}

DG_EXPORT int dg_loop_run(dg_loop *loop, dg_run_mode mode)
{
    if (!loop || (unsigned)mode > DG_RUN_NOWAIT)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__core *c = &loop->core;
    if (c->in_run || c->closing)
        return -EBUSY;
    c->in_run = true;
    struct dg__core *outer = dg__current_core_swap(c);
    int ret = 0;
    bool alive = false; /* set before each use; gcc cannot see it */
    if (mode == DG_RUN_DEFAULT) {
        /* One dg_loop_alive per turn: the one that decides whether to go on. */
        while ((alive = loop_alive(loop)) && ret == 0 &&
               !atomic_load_explicit(&c->stop, memory_order_acquire))
            ret = turn_is_plain(c) ? plain_turn(loop) : turn(loop, true, true);
    } else {
        /* NOWAIT never blocks: it needs no answer before its turn. */
        ret = turn(loop, mode == DG_RUN_ONCE, mode == DG_RUN_ONCE && loop_alive(loop));
    }
    /* Queue this turn's re-arms and sends so an embedding loop's next poll
     * sees their completions; the SQEs go in with the next enter. */
    prepare_turn(loop);
    if (ret == 0 && dg__ring_sq_ready(c) > 0)
        ret = dg__ring_enter(c, false);
    atomic_store_explicit(&c->stop, false, memory_order_release);
    dg__current_core_swap(outer);
    c->in_run = false;
    /* The epoll backend may hold completions made by that last submit
     * (sends that left at once): an embedding loop must come back. */
    if (dg__ring_cq_unsignalled(c) > 0)
        dg__loop_poke(c);
    if (ret < 0)
        return ret;
    if (mode != DG_RUN_DEFAULT)
        alive = loop_alive(loop);
    return alive ? 1 : 0;
}

DG_EXPORT int dg_loop_timeout(const dg_loop *loop)
{
    if (!loop)
        return -1;
    const struct dg__core *c = &loop->core;
    if (!dg__list_empty(&c->deferred) || dg__ring_sq_ready(c) > 0 ||
        dg__ring_cq_unsignalled(c) > 0)
        return 0;
    /* Rounded up: an embedding loop that wakes early would find nothing
     * due and ask again at once. */
    int64_t us = dg__timers_next_us(c);
    if (us <= 0)
        return (int)us;
    uint64_t ms = ((uint64_t)us + 999u) / 1000u;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* The clock is read at its first use in a turn (dg__loop_turn_time): the
 * cached reading is the loop's own state, not the caller's, so a const
 * loop may still take it. */
DG_EXPORT uint64_t dg_loop_now(const dg_loop *loop)
{
    return loop ? dg__loop_now_us(&((dg_loop *)loop)->core) / 1000u : 0;
}

DG_EXPORT uint64_t dg_loop_now_us(const dg_loop *loop)
{
    return loop ? dg__loop_now_us(&((dg_loop *)loop)->core) : 0;
}

DG_EXPORT void dg_loop_update_time(dg_loop *loop)
{
    if (loop)
        dg__loop_update_time(&loop->core);
}

DG_EXPORT const dg_loop_caps *dg_loop_capabilities(const dg_loop *loop)
{
    return loop ? &loop->core.caps : NULL;
}

DG_EXPORT const char *dg_loop_backend(const dg_loop *loop)
{
    if (!loop)
        return NULL;
    return dg__ring_backend_name(&loop->core);
}

/* Public structs grow only into their reserved space (ABI). */
_Static_assert(sizeof(dg_loop_stats) == 12 * sizeof(uint64_t), "dg_loop_stats keeps its size");

DG_EXPORT int dg_loop_get_stats(const dg_loop *loop, dg_loop_stats *out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    dg__ring_get_stats(&loop->core, out);
    return 0;
}

DG_EXPORT void dg_loop_set_data(dg_loop *loop, void *data)
{
    if (loop)
        loop->data = data;
}

DG_EXPORT void *dg_loop_get_data(const dg_loop *loop)
{
    return loop ? loop->data : NULL;
}

/* Cancels the loop's own ring operations (wake read, timer timeout, the
 * signalfd's poll) and waits for their final completions, so the kernel
 * never writes into the loop after it is freed. */
static void cancel_own_ops(dg_loop *loop)
{
    struct dg__core *c = &loop->core;
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(c, &err);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, DG__UD(NULL, DG__OP_IGNORE));
    }
    for (int i = 0; i < 100 && (c->wake_armed || c->timer_timeout.armed || dg__signals_armed(c));
         i++) {
        if (dg__ring_enter(c, true) < 0)
            break;
        process_completions(loop);
    }
}

DG_EXPORT int dg_loop_close(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__core *c = &loop->core;
    if (c->in_run || c->closing || c->handle_count > 0 || !dg__list_empty(&c->deferred) ||
        loop->dgram.zc_notifs > 0 ||
        atomic_load(&c->posts_pending) > 0)
        return DG_ERR_LOOP_BUSY;
    /* The resolver's teardown runs lookup callbacks; from here on they can
     * neither open handles nor close or run the loop again. */
    c->closing = true;
    dg__resolver_destroy(loop);
    cancel_own_ops(loop);
    dg__ring_close(c);
    dg__wake_close(c);
    dg__signals_destroy(c);
    dg__send_reqs_free(loop);
    dg__sbuf_pool_destroy(c); /* after the ring, which held it registered */
    dg__free(c->timers.items);
    dg__free(loop->dgram.rx.bufs); /* buffers still kept die with the loop */
    dg__post_destroy(c);
    dg__free(loop);
    dg__owner_release();
    return 0;
}

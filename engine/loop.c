/* The loop: creation, run modes, completion dispatch, deferred callbacks,
 * keep-alive, wake-ups and the embedding fd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DG__BUF_GROUP 1
#define DG__CQE_BATCH 256
/* Batched waits (dg_loop_options.batch_wait_us). */
#define DG__BATCH_WAIT_DEFAULT_US 200
#define DG__BUSY_TURN 32     /* completions that make a turn "busy" */
#define DG__BATCH_WAIT_NR 128

DG_EXPORT void dg_loop_options_init(dg_loop_options *options)
{
    if (!options)
        return;
    memset(options, 0, sizeof(*options));
    options->sq_entries = 256;
    options->recv_buffers = 512;
    options->recv_buffer_size = 65507;
    options->max_pending_sends = 4096;
    options->send_buffers = 256;
    options->send_buffer_size = 2048;
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
        out->send_buffer_size > 65535 || out->send_zerocopy_min > 65535)
        return DG_ERR_INVALID_ARG_VALUE;
    return 0;
}

static void wake_arm(dg_loop *loop)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(loop, &err);
    if (!sqe)
        return; /* retried when the next completion arrives; see on_wake */
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_buf, sizeof(loop->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, DG__UD(loop, DG__OP_WAKE));
    loop->wake_armed = true;
}

/* The kernel ring and its registered buffer ring. */
static int open_uring(dg_loop *loop, unsigned buf_size)
{
    int ret = dg__ring_init(loop);
    if (ret < 0)
        return ret;
    ret = dg__bufring_init(&loop->ring, &loop->bufring, loop->options.recv_buffers, buf_size,
                           DG__BUF_GROUP);
    if (ret < 0) {
        dg__ring_exit(loop);
        /* Provided buffer rings arrived in 5.19; older kernels say EINVAL. */
        return ret == -EINVAL ? DG_ERR_KERNEL_UNSUPPORTED : ret;
    }
    return 0;
}

/* The epoll backend, with the same buffer ring read in user space. */
static int open_epoll(dg_loop *loop, unsigned buf_size)
{
    memset(&loop->caps, 0, sizeof(loop->caps));
    int ret = dg__bufring_init(NULL, &loop->bufring, loop->options.recv_buffers, buf_size,
                               DG__BUF_GROUP);
    if (ret < 0)
        return ret;
    unsigned cq = loop->options.recv_buffers + loop->options.max_pending_sends + 64;
    loop->caps.sq_entries = loop->options.sq_entries;
    loop->caps.cq_entries = cq;
    ret = dg__emu_new(&loop->emu, &loop->bufring, &loop->stats, loop->options.sq_entries, cq);
    if (ret < 0)
        dg__bufring_destroy(NULL, &loop->bufring);
    return ret;
}

/* Errors after which an automatic choice tries epoll: io_uring denied
 * (seccomp, kernel.io_uring_disabled), absent, or too old. */
static bool uring_unavailable(int err)
{
    /* -ENOMEM: before 5.12 a ring is charged to RLIMIT_MEMLOCK, often too
     * small; epoll needs no locked memory. */
    return err == -EPERM || err == -EACCES || err == -ENOSYS || err == -ENOMEM ||
           err == DG_ERR_KERNEL_UNSUPPORTED;
}

/* DG_BACKEND_AUTO resolved through DGRING_BACKEND; -1 for an unknown name. */
static int backend_from_env(void)
{
    const char *v = getenv("DGRING_BACKEND");
    if (!v || !*v || strcmp(v, "auto") == 0)
        return DG_BACKEND_AUTO;
    if (strcmp(v, "uring") == 0 || strcmp(v, "io_uring") == 0)
        return DG_BACKEND_URING;
    if (strcmp(v, "epoll") == 0)
        return DG_BACKEND_EPOLL;
    return -1;
}

static int loop_open_resources(dg_loop *loop)
{
    int backend = (int)loop->options.backend;
    if (backend == DG_BACKEND_AUTO)
        backend = backend_from_env();
    if (backend < 0)
        return DG_ERR_INVALID_ARG_VALUE;
    /* The kernel fills at most header + recv_buffer_size bytes, so a
     * longer datagram is truncated exactly at recv_buffer_size. */
    unsigned size = DG__RECV_HEADER_LEN + loop->options.recv_buffer_size;
    int ret;
    if (backend == DG_BACKEND_EPOLL) {
        ret = open_epoll(loop, size);
    } else {
        ret = open_uring(loop, size);
        if (ret < 0 && backend == DG_BACKEND_AUTO && uring_unavailable(ret))
            ret = open_epoll(loop, size);
    }
    if (ret < 0)
        return ret;
    /* Blocking on purpose: a ring read of an O_NONBLOCK eventfd may fail
     * with EAGAIN instead of waiting for a write. */
    loop->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        ret = -errno;
        dg__bufring_destroy(loop->emu ? NULL : &loop->ring, &loop->bufring);
        if (loop->emu)
            dg__emu_free(loop->emu);
        else
            dg__ring_exit(loop);
        return ret;
    }
    wake_arm(loop);
    /* Hand the wake-up read to the kernel now, so a new loop has nothing
     * queued (dg_loop_timeout() says -1, not "work ready"). */
    (void)dg__submit(loop);
    return 0;
}

DG_EXPORT int dg_loop_new(dg_loop **out, const dg_loop_options *options)
{
    if (!out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    dg_loop *loop = dg__calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    loop->notify_fd = -1; /* before anything can poke it */
    int ret = options_resolve(options, &loop->options);
    if (ret == 0) {
        /* One keep handle per receive buffer: keeping never allocates. */
        loop->rx.bufs = dg__calloc(loop->options.recv_buffers, sizeof(*loop->rx.bufs));
        ret = loop->rx.bufs ? loop_open_resources(loop) : -ENOMEM;
    }
    if (ret < 0) {
        dg__free(loop->rx.bufs);
        dg__free(loop);
        return ret;
    }
    for (unsigned i = 0; i < loop->options.recv_buffers; i++)
        loop->rx.bufs[i].loop = loop;
    atomic_init(&loop->stop, false);
    dg__post_init(loop);
    dg__loop_update_time(loop);
    *out = loop;
    return 0;
}

/* ---- Deferred callbacks ------------------------------------------------ */

void dg__defer(dg_loop *loop, struct dg__deferred *node, void (*run)(struct dg__deferred *))
{
    if (node->queued)
        return;
    node->run = run;
    node->next = NULL;
    node->queued = true;
    if (loop->deferred_tail)
        loop->deferred_tail->next = node;
    else
        loop->deferred_head = node;
    loop->deferred_tail = node;
    dg__loop_poke(loop);
}

/* Runs what was queued before this call; what those callbacks queue runs
 * next turn, so a callback that keeps deferring cannot starve the ring.
 * Returns whether anything ran. */
static bool run_deferred(dg_loop *loop)
{
    struct dg__deferred *node = loop->deferred_head;
    struct dg__deferred *last = loop->deferred_tail;
    if (!node)
        return false;
    loop->deferred_head = NULL;
    loop->deferred_tail = NULL;
    for (;;) {
        struct dg__deferred *next = node->next;
        bool was_last = node == last;
        node->queued = false;
        node->run(node); /* may free node */
        if (was_last)
            break;
        node = next;
    }
    return true;
}

/* ---- Completions ------------------------------------------------------- */

static void on_ignore(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)loop;
    (void)cqe;
}

static void on_wake(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    loop->wake_armed = false;
    /* Cancelled: the loop is closing. A failed read (-ENOMEM on the epoll
     * backend) is armed again, except while closing, whose wait for the
     * loop's own operations would otherwise never end. */
    if (cqe->res == -ECANCELED || loop->closing)
        return;
    wake_arm(loop);
}

static void on_resolver(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    if (loop->resolver_ext)
        loop->resolver_ext->on_completion(loop, cqe);
}

typedef void (*completion_fn)(dg_loop *loop, const struct io_uring_cqe *cqe);

static const completion_fn completion_table[DG__OP_KINDS] = {
    [DG__OP_IGNORE] = on_ignore,       [DG__OP_RECV] = dg__socket_on_recv,
    [DG__OP_SEND] = dg__socket_on_send, [DG__OP_TIMEOUT] = dg__timer_on_timeout,
    [DG__OP_WAKE] = on_wake,           [DG__OP_RESOLVER] = on_resolver,
    [DG__OP_SEND_GSO] = dg__socket_on_send_gso, [DG__OP_POST] = dg__post_on_completion,
};

/* The completion queue of either backend: the kernel's, or the epoll
 * backend's user-space one in the same CQE format. */
static unsigned cq_peek(dg_loop *loop, struct io_uring_cqe **cqes, unsigned want)
{
    return loop->emu ? dg__emu_peek_batch(loop->emu, cqes, want)
                     : io_uring_peek_batch_cqe(&loop->ring, cqes, want);
}

static void cq_advance(dg_loop *loop, unsigned n)
{
    if (loop->emu)
        dg__emu_cq_advance(loop->emu, n);
    else
        io_uring_cq_advance(&loop->ring, n);
}

/* Handles the completions that are in the CQ on entry, in batches; the
 * buffers a batch used go back to the kernel with one commit per batch.
 * Completions posted meanwhile (a callback's sends flushed early complete
 * at once) wait for the next turn, so timers, deferred callbacks and stop
 * requests always get their turn. Returns how many ran. */
static unsigned process_completions(dg_loop *loop)
{
    unsigned budget;
    if (loop->emu) {
        budget = dg__emu_cq_ready(loop->emu);
    } else {
        if (io_uring_cq_has_overflow(&loop->ring))
            loop->stats.cq_overflows++;
        budget = io_uring_cq_ready(&loop->ring);
    }
    unsigned total = 0, recvs = 0;
    while (total < budget) {
        struct io_uring_cqe *cqes[DG__CQE_BATCH];
        unsigned want = budget - total < DG__CQE_BATCH ? budget - total : DG__CQE_BATCH;
        unsigned n = cq_peek(loop, cqes, want);
        if (n == 0)
            break;
        for (unsigned i = 0; i < n; i++) {
            unsigned kind = DG__UD_KIND(cqes[i]->user_data);
            recvs += kind == DG__OP_RECV;
            completion_fn fn = completion_table[kind];
            if (fn)
                fn(loop, cqes[i]);
        }
        cq_advance(loop, n);
        /* A batch for on_message_batch ends with the walk of these
         * completions: delivered, and its buffers returned, before the
         * commit (and so before the loop can block). */
        if (loop->rx.batch_sock)
            dg__rx_batch_flush(loop);
        dg__bufring_commit(&loop->bufring);
        total += n;
    }
    loop->stats.completions += total;
    loop->last_recv_completions = recvs;
    return total;
}

/* ---- Running ----------------------------------------------------------- */

DG_EXPORT bool dg_loop_alive(const dg_loop *loop)
{
    if (!loop)
        return false;
    return loop->alive_handles > 0 || loop->pending_sends > 0 || loop->pending_requests > 0 ||
           loop->zc_notifs > 0 ||
           loop->closing_handles > 0 || loop->deferred_head != NULL ||
           atomic_load_explicit(&((dg_loop *)loop)->posts_pending, memory_order_relaxed) > 0;
}

void dg__loop_update_time(dg_loop *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void drain_notify(dg_loop *loop)
{
    if (loop->notify_fd < 0)
        return;
    uint64_t v;
    ssize_t r = read(loop->notify_fd, &v, sizeof(v));
    (void)r; /* EAGAIN when nothing was signalled */
    loop->poked = false;
}

static unsigned sq_ready(const dg_loop *loop)
{
    return loop->emu ? dg__emu_sq_ready(loop->emu) : io_uring_sq_ready(&loop->ring);
}

/* Submits this turn's SQEs and, if asked, waits for one completion, in a
 * single io_uring_enter. */
static int submit_and_wait(dg_loop *loop, bool block)
{
    int ret;
    if (loop->emu) {
        ret = dg__emu_submit(loop->emu);
        if (ret >= 0)
            ret = dg__emu_wait(loop->emu, block);
        return ret == -EINTR ? 0 : ret;
    }
    loop->stats.enters++;
    unsigned wait_us = loop->options.batch_wait_us;
    int next_timer;
    /* IORING_FEAT_EXT_ARG (5.11): without it liburing would queue its own
     * timeout SQE, whose completion the dispatcher does not know. */
    if (block && loop->last_recv_completions >= DG__BUSY_TURN && wait_us != DG_BATCH_WAIT_NONE &&
        (loop->caps.features & IORING_FEAT_EXT_ARG) &&
        (next_timer = dg__timers_next_ms(loop)) != 0) {
        /* A flood: let the kernel gather a batch before waking us. */
        if (next_timer > 0 && (uint64_t)next_timer * 1000u < wait_us)
            wait_us = (unsigned)((uint64_t)next_timer * 1000u);
        struct __kernel_timespec ts = {.tv_sec = wait_us / 1000000u,
                                       .tv_nsec = (long long)(wait_us % 1000000u) * 1000};
        struct io_uring_cqe *cqe;
        unsigned queued = io_uring_sq_ready(&loop->ring);
        ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, DG__BATCH_WAIT_NR, &ts, NULL);
        if (ret >= 0 || ret == -ETIME) {
            loop->stats.submissions += queued;
            ret = 0;
        }
    } else if (block)
        ret = io_uring_submit_and_wait(&loop->ring, 1);
    else
        ret = io_uring_submit_and_get_events(&loop->ring);
    if (ret > 0)
        loop->stats.submissions += (unsigned)ret;
    /* EINTR: a signal; the caller checks the stop flag. EBUSY/EAGAIN: the
     * CQ has overflowed entries or no memory for now; processing
     * completions makes room. EXIT on the others. */
    if (ret == -EINTR || ret == -EBUSY || ret == -EAGAIN || ret == -ETIME)
        return 0;
    return ret < 0 ? ret : 0;
}

static void prepare_turn(dg_loop *loop)
{
    dg__bufring_commit(&loop->bufring); /* buffers released outside a walk */
    dg__send_runs_flush(loop);
    dg__sockets_rearm(loop);
    dg__timers_arm(loop);
    if (loop->resolver_ext)
        loop->resolver_ext->prepare(loop);
    if (!loop->wake_armed)
        wake_arm(loop);
}

static int turn(dg_loop *loop, bool may_block)
{
    loop->stats.turns++;
    drain_notify(loop);
    dg__loop_update_time(loop);
    bool ran = dg__timers_run_due(loop);
    ran |= run_deferred(loop);
    ran |= dg__posts_run_queued(loop);
    prepare_turn(loop);
    /* A turn that already ran callbacks does not sleep (libuv's RUN_ONCE
     * rule): the caller sees their effects before the loop waits. */
    bool block = may_block && !ran && loop->deferred_head == NULL && dg_loop_alive(loop) &&
                 !atomic_load_explicit(&loop->stop, memory_order_relaxed);
    int ret = submit_and_wait(loop, block);
    if (ret < 0)
        return ret;
    process_completions(loop);
    dg__loop_update_time(loop);
    dg__timers_run_due(loop);
    run_deferred(loop);
    return 0;
}

DG_EXPORT int dg_loop_run(dg_loop *loop, dg_run_mode mode)
{
    if (!loop || (unsigned)mode > DG_RUN_NOWAIT)
        return DG_ERR_INVALID_ARG_VALUE;
    if (loop->in_run || loop->closing)
        return -EBUSY;
    loop->in_run = true;
    dg_loop *outer = dg__current_loop_swap(loop);
    int ret = 0;
    if (mode == DG_RUN_DEFAULT) {
        while (ret == 0 && dg_loop_alive(loop) &&
               !atomic_load_explicit(&loop->stop, memory_order_acquire))
            ret = turn(loop, true);
    } else {
        ret = turn(loop, mode == DG_RUN_ONCE);
    }
    /* Queue this turn's re-arms and sends so an embedding loop's next poll
     * sees their completions; the SQEs go in with the next enter. */
    prepare_turn(loop);
    if (ret == 0 && sq_ready(loop) > 0)
        ret = submit_and_wait(loop, false);
    atomic_store_explicit(&loop->stop, false, memory_order_release);
    dg__current_loop_swap(outer);
    loop->in_run = false;
    /* The epoll backend may hold completions made by that last submit
     * (sends that left at once): an embedding loop must come back. */
    if (loop->emu && dg__emu_cq_ready(loop->emu) > 0)
        dg__loop_poke(loop);
    if (ret < 0)
        return ret;
    return dg_loop_alive(loop) ? 1 : 0;
}

DG_EXPORT void dg_loop_stop(dg_loop *loop)
{
    if (!loop)
        return;
    atomic_store_explicit(&loop->stop, true, memory_order_release);
    dg_loop_wake(loop);
}

DG_EXPORT int dg_loop_wake(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    uint64_t one = 1;
    /* write(2) on an eventfd is async-signal-safe; EAGAIN means the
     * counter is already non-zero, which wakes the loop just the same. */
    if (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

DG_EXPORT int dg_loop_fd(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    if (loop->notify_fd >= 0)
        return loop->emu ? dg__emu_fd(loop->emu) : loop->notify_fd;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    /* io_uring: the kernel signals a registered eventfd on every posted
     * completion, including deferred task work under DEFER_TASKRUN (6.1+).
     * epoll: the epoll fd itself is readable when a watched fd is ready,
     * and the eventfd joins its set for the loop's own pokes. */
    int ret = loop->emu ? dg__emu_attach_notify(loop->emu, fd)
                        : io_uring_register_eventfd(&loop->ring, fd);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    loop->notify_fd = fd;
    dg__loop_poke(loop);
    return loop->emu ? dg__emu_fd(loop->emu) : fd;
}

void dg__loop_poke(dg_loop *loop)
{
    if (loop->in_run || loop->notify_fd < 0 || loop->poked)
        return;
    uint64_t one = 1;
    if (write(loop->notify_fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        loop->poked = true;
}

DG_EXPORT int dg_loop_timeout(const dg_loop *loop)
{
    if (!loop)
        return -1;
    if (loop->deferred_head || sq_ready(loop) > 0 ||
        (loop->emu && dg__emu_cq_ready(loop->emu) > 0))
        return 0;
    return dg__timers_next_ms(loop);
}

DG_EXPORT uint64_t dg_loop_now(const dg_loop *loop)
{
    return loop ? loop->now_ms : 0;
}

DG_EXPORT void dg_loop_update_time(dg_loop *loop)
{
    if (loop)
        dg__loop_update_time(loop);
}

DG_EXPORT const dg_loop_caps *dg_loop_capabilities(const dg_loop *loop)
{
    return loop ? &loop->caps : NULL;
}

DG_EXPORT const char *dg_loop_backend(const dg_loop *loop)
{
    if (!loop)
        return NULL;
    return loop->emu ? "epoll" : "io_uring";
}

DG_EXPORT int dg_loop_get_stats(const dg_loop *loop, dg_loop_stats *out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = loop->stats;
    if (!loop->emu && loop->ring.cq.koverflow)
        out->cq_dropped = *loop->ring.cq.koverflow;
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

/* Cancels the loop's own ring operations (wake read, timer timeout) and
 * waits for their final completions, so the kernel never writes into the
 * loop after it is freed. */
static void cancel_own_ops(dg_loop *loop)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(loop, &err);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, DG__UD(NULL, DG__OP_IGNORE));
    }
    for (int i = 0; i < 100 && (loop->wake_armed || loop->timeout_armed); i++) {
        if (submit_and_wait(loop, true) < 0)
            break;
        process_completions(loop);
    }
}

DG_EXPORT int dg_loop_close(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    if (loop->in_run || loop->closing || loop->handle_count > 0 || loop->deferred_head ||
        loop->zc_notifs > 0 ||
        atomic_load(&loop->posts_pending) > 0)
        return DG_ERR_LOOP_BUSY;
    /* The resolver's teardown runs lookup callbacks; from here on they can
     * neither open handles nor close or run the loop again. */
    loop->closing = true;
    if (loop->resolver_ext)
        loop->resolver_ext->destroy(loop);
    cancel_own_ops(loop);
    if (loop->emu) {
        dg__bufring_destroy(NULL, &loop->bufring);
        dg__emu_free(loop->emu);
    } else {
        dg__bufring_destroy(&loop->ring, &loop->bufring);
        if (loop->notify_fd >= 0)
            io_uring_unregister_eventfd(&loop->ring);
        dg__ring_exit(loop);
    }
    close(loop->wake_fd);
    if (loop->notify_fd >= 0)
        close(loop->notify_fd);
    dg__send_reqs_free(loop);
    dg__sbuf_pool_destroy(loop); /* after the ring, which held it registered */
    dg__free(loop->timers.items);
    dg__free(loop->rx.bufs); /* buffers still kept die with the loop */
    dg__post_destroy(loop);
    dg__free(loop);
    return 0;
}

/* The ring, and the one seam between the two backends: every ring function
 * the other files call (open, close, SQEs, submit and wait, the CQ, the
 * embedding fd, buffer registration, MSG_RING, statistics) is here, and
 * this is the only file outside the epoll backend itself that asks which
 * backend runs. The epoll backend (epoll.c) emulates the ring's queues in
 * the same SQE and CQE formats, so each function is one branch: a table of
 * backend functions, as c-ares keeps for its event backends, would put an
 * indirect call on every SQE of the send path.
 *
 * Setup flags are tried from best to oldest: each fallback exists because
 * the kernel rejects unknown setup flags with EINVAL, and dgring must still
 * run (more slowly) on a kernel that has multishot recvmsg but not the
 * newest task-running modes. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "core.h"
#include "epoll.h"

#define DG__BUF_GROUP 1
/* Batched waits (dg_loop_options.batch_wait_us). */
#define DG__BUSY_TURN 32     /* completions that make a turn "busy" */
#define DG__BATCH_WAIT_NR_MAX 128
#define DG__FLOOD_TURNS 4    /* busy turns a run waits plainly after a batch timed out, */
#define DG__FLOOD_TURNS_MAX 64 /* doubled per timeout in a run with no full batch */

/* Completions a batched wait asks for (W). Under DEFER_TASKRUN the kernel
 * runs a multishot receive in passes of its task work, 33 datagrams each,
 * and an io_uring_enter that waits for W completions
 * runs W passes, or 2W when it also submits SQEs (once after submitting,
 * once in the wait). With 2W x 33 >= recv_buffers a flood empties the ring
 * inside one enter; the receive ends with ENOBUFS, its re-arm is a
 * submission, so the next enter empties the ring again: one ENOBUFS per
 * ring cycle for as long as the flood lasts (perf/README.md, "The ring
 * runs dry"). One completion per 128 buffers keeps an enter to about half
 * the ring (264 datagrams with the default 512 buffers). */
static unsigned batch_wait_nr(const dg_loop_options *o)
{
    unsigned nr = o->recv_buffers / 128;
    if (nr < 1)
        nr = 1;
    return nr > DG__BATCH_WAIT_NR_MAX ? DG__BATCH_WAIT_NR_MAX : nr;
}

/* Public structs grow only into their reserved space (ABI). */
_Static_assert(sizeof(dg_loop_caps) == 64, "dg_loop_caps keeps its size");

#define DG__DEFER_TASKRUN_FLAGS \
    (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL)

static const unsigned setup_attempts[] = {
    /* The same, and the kernel says in the SQ ring's flags when it holds
     * completion work only an enter runs (taskrun_visible). */
    DG__DEFER_TASKRUN_FLAGS | IORING_SETUP_TASKRUN_FLAG,
    /* 6.1+: completions run only when we ask, in our own thread. */
    DG__DEFER_TASKRUN_FLAGS,
    /* 5.19+: no DEFER_TASKRUN; cooperative task running instead of IPIs. */
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    /* 5.18: SUBMIT_ALL only. */
    IORING_SETUP_SUBMIT_ALL,
    0,
};

/* Whether IORING_SQ_TASKRUN tells, under DEFER_TASKRUN, every time the
 * kernel holds completion work that only an io_uring_enter with GETEVENTS
 * runs: the flag is set when work is queued on an empty list (before the
 * registered eventfd is signalled), cleared when an enter starts running
 * the work, and set again when an enter leaves work behind (it runs at
 * most 20 items unless asked for more: io_run_local_work_continue). That
 * is the kernel's io_uring code as read for 6.15 and later and as tested
 * here on 6.18; earlier kernels limited and requeued that work
 * differently, so the flag is asked for from 6.18 on and older kernels
 * always enter. */
static bool taskrun_visible(void)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
        return false;
    return major > 6 || (major == 6 && minor >= 18);
}

static unsigned round_up_pow2(unsigned v)
{
    unsigned p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* CQ large enough for one turn's usual completions: one CQE per provided
 * buffer (a multishot receive posts at most one per buffer before we
 * return them), one per send in flight and per fan-out destination in
 * flight, and headroom for timers, cancels and wake-ups. It can still overflow (hundreds of sockets each ending a
 * receive with ENOBUFS, floods of cross-loop posts): the kernel keeps the
 * extra completions on its overflow list, the loop drains them next turn
 * (counted in dg_loop_stats.cq_overflows) and tests/dgram/test_faults.c shows
 * nothing is lost. */
static unsigned cq_wanted(const dg_loop_options *o)
{
    return o->recv_buffers + o->max_pending_sends + o->max_fanout_destinations + 64;
}

/* The kernel's CQ: rounded up to a power of two (the kernel would), at
 * least twice the SQ, at most 65536. */
static unsigned cq_size(const dg_loop_options *o)
{
    unsigned cq = round_up_pow2(cq_wanted(o));
    if (cq < 2 * o->sq_entries)
        cq = 2 * o->sq_entries;
    return cq > 65536 ? 65536 : cq;
}

static void probe_opcodes(struct dg__core *c)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&c->ring);
    if (!probe)
        return;
    /* No probe exists for multishot recvmsg; it arrived in 6.0 together
     * with IORING_OP_SEND_ZC, whose presence is probeable. */
    c->caps.recvmsg_multishot = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    c->caps.sendmsg_zc = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
    c->caps.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
    c->caps.timeout_update = io_uring_opcode_supported(probe, IORING_OP_TIMEOUT_REMOVE) &&
                                (c->caps.features & IORING_FEAT_NATIVE_WORKERS);
    io_uring_free_probe(probe);
}

/* IORING_OP_SEND takes a destination address (sqe->addr2) since 6.1; a
 * 6.0 kernel rejects addr2 with -EINVAL when it prepares the request.
 * The probe sends nothing: on fd -1 a kernel that accepts the address
 * fails the request later, at the file lookup, with -EBADF. */
static bool probe_send_to(struct dg__core *c)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (!sqe)
        return false;
    io_uring_prep_send(sqe, -1, NULL, 0, 0);
    sqe->addr2 = (uint64_t)(uintptr_t)&sin;
    sqe->addr_len = (uint16_t)sizeof(sin);
    io_uring_sqe_set_data64(sqe, 0);
    struct io_uring_cqe *cqe = NULL;
    if (io_uring_submit_and_wait(&c->ring, 1) < 0 || io_uring_peek_cqe(&c->ring, &cqe) < 0)
        return false;
    bool ok = cqe->res != -EINVAL;
    io_uring_cqe_seen(&c->ring, cqe);
    return ok;
}

/* IORING_REGISTER_SYNC_CANCEL (6.0): with nothing in flight yet, a kernel
 * that has it finds nothing to cancel (-ENOENT, or a count of 0); one
 * without it refuses the opcode (-EINVAL). */
static bool probe_sync_cancel(struct dg__core *c)
{
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.flags = IORING_ASYNC_CANCEL_ANY;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    int ret = io_uring_register_sync_cancel(&c->ring, &reg);
    return ret == -ENOENT || ret >= 0;
}

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16) /* 6.6; liburing 2.3 predates it */
#endif

/* SQ slot i always holds SQE i, so a submit is one tail store (ring_flush).
 * liburing 2.3 maps the slots so at setup and never writes them again; a
 * newer liburing may set the ring up without the array
 * (IORING_SETUP_NO_SQARRAY, where the kernel reads SQEs in order), and
 * one older than 2.3 rewrote them at each submit: filling them here keeps
 * the mapping whichever set the ring up. */
static void sq_array_fill(struct io_uring *ring)
{
    if ((ring->flags & IORING_SETUP_NO_SQARRAY) || !ring->sq.array)
        return;
    for (unsigned i = 0; i < ring->sq.ring_entries; i++)
        ring->sq.array[i] = i;
}

static int ring_init(struct dg__core *c)
{
    int ret = -EINVAL;
    unsigned cq = cq_size(&c->options);
    bool taskrun_flag = taskrun_visible();
    for (size_t i = 0; i < sizeof(setup_attempts) / sizeof(setup_attempts[0]); i++) {
        if ((setup_attempts[i] & IORING_SETUP_TASKRUN_FLAG) && !taskrun_flag)
            continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = setup_attempts[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(c->options.sq_entries, &c->ring, &p);
        if (ret == -EINVAL)
            continue;
        if (ret < 0)
            return ret;
        c->caps.sq_entries = p.sq_entries;
        c->caps.cq_entries = p.cq_entries;
        c->caps.setup_flags = p.flags;
        c->caps.features = p.features;
        break;
    }
    if (ret == -EINVAL)
        return DG_ERR_KERNEL_UNSUPPORTED; /* every flag set refused: < 5.5 */
    if (ret < 0)
        return ret;
    unsigned f = c->caps.setup_flags;
    c->caps.single_issuer = f & IORING_SETUP_SINGLE_ISSUER;
    c->caps.defer_taskrun = f & IORING_SETUP_DEFER_TASKRUN;
    c->caps.submit_all = f & IORING_SETUP_SUBMIT_ALL;
    c->caps.coop_taskrun = f & IORING_SETUP_COOP_TASKRUN;
    c->enter_skip = (f & IORING_SETUP_DEFER_TASKRUN) && (f & IORING_SETUP_TASKRUN_FLAG);
    probe_opcodes(c);
    if (!c->caps.recvmsg_multishot) {
        io_uring_queue_exit(&c->ring);
        return DG_ERR_KERNEL_UNSUPPORTED;
    }
    c->caps.send_to = probe_send_to(c) && !getenv("DGRING_NO_SEND_TO");
    c->caps.sync_cancel = probe_sync_cancel(c) && !getenv("DGRING_NO_SYNC_CANCEL");
    sq_array_fill(&c->ring);
    c->enter_fd = c->ring.ring_fd;
    c->enter_flags = 0;
    /* Saves the fd lookup on every io_uring_enter (5.18+); optional. */
    if (io_uring_register_ring_fd(&c->ring) == 1) {
        c->enter_fd = c->ring.enter_ring_fd;
        c->enter_flags = IORING_ENTER_REGISTERED_RING;
    }
    return 0;
}

/* ---- Opening the backend ------------------------------------------------ */

/* The kernel ring and its registered buffer ring. */
static int open_uring(struct dg__core *c, unsigned buf_size)
{
    int ret = ring_init(c);
    if (ret < 0)
        return ret;
    ret = dg__bufring_init(&c->ring, &c->bufring, c->options.recv_buffers, buf_size,
                           DG__BUF_GROUP);
    if (ret < 0) {
        io_uring_queue_exit(&c->ring);
        /* Provided buffer rings arrived in 5.19; older kernels say EINVAL. */
        return ret == -EINVAL ? DG_ERR_KERNEL_UNSUPPORTED : ret;
    }
    return 0;
}

/* The epoll backend, with the same buffer ring read in user space. */
static int open_epoll(struct dg__core *c, unsigned buf_size)
{
    memset(&c->caps, 0, sizeof(c->caps));
    int ret = dg__bufring_init(NULL, &c->bufring, c->options.recv_buffers, buf_size,
                               DG__BUF_GROUP);
    if (ret < 0)
        return ret;
    unsigned cq = cq_wanted(&c->options); /* the emulated CQ grows if needed */
    c->caps.sq_entries = c->options.sq_entries;
    c->caps.cq_entries = cq;
    ret = dg__epoll_new(&c->epoll, &c->bufring, &c->stats, c->options.sq_entries, cq);
    if (ret < 0)
        dg__bufring_destroy(NULL, &c->bufring);
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

int dg__ring_open(struct dg__core *c, unsigned buf_size)
{
    int backend = (int)c->options.backend;
    if (backend == DG_BACKEND_AUTO)
        backend = backend_from_env();
    if (backend < 0)
        return DG_ERR_INVALID_ARG_VALUE;
    if (backend == DG_BACKEND_EPOLL)
        return open_epoll(c, buf_size);
    int ret = open_uring(c, buf_size);
    if (ret < 0 && backend == DG_BACKEND_AUTO && uring_unavailable(ret))
        ret = open_epoll(c, buf_size);
    return ret;
}

void dg__ring_close(struct dg__core *c)
{
    if (c->epoll) {
        dg__bufring_destroy(NULL, &c->bufring);
        dg__epoll_free(c->epoll);
        c->epoll = NULL;
        return;
    }
    dg__bufring_destroy(&c->ring, &c->bufring);
    if (c->notify_fd >= 0)
        io_uring_unregister_eventfd(&c->ring);
    io_uring_queue_exit(&c->ring);
}

/* ---- Submission ------------------------------------------------------------ */

/* Hands the SQEs taken since the last flush to the kernel: one store of
 * the SQ tail (the slots map to the SQEs from setup, sq_array_fill; the
 * enter that follows is the barrier the kernel's read needs, as liburing
 * relies on without SQPOLL). Returns the SQEs the kernel has not
 * consumed yet, the count io_uring_enter takes. */
static inline unsigned ring_flush(struct io_uring_sq *sq)
{
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        IO_URING_WRITE_ONCE(*sq->ktail, tail);
    }
    return tail - *sq->khead;
}

/* One io_uring_enter (liburing 2.3's raw call: no errno) through the
 * registered ring fd where there is one; submitted SQEs are counted. */
static int ring_enter_raw(struct dg__core *c, unsigned submit, unsigned wait_nr, unsigned flags,
                          void *arg, size_t arg_size)
{
    c->stats.enters++;
    int ret = io_uring_enter2(c->enter_fd, submit, wait_nr, flags | c->enter_flags, arg, arg_size);
    if (ret > 0)
        c->stats.submissions += (unsigned)ret;
    return ret;
}

/* The completion work an enter must run even with nothing to submit:
 * overflowed CQEs to flush, or task work held back (IORING_SQ_TASKRUN). */
static inline bool ring_cq_needs_enter(const struct dg__core *c)
{
    return IO_URING_READ_ONCE(*c->ring.sq.kflags) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN);
}

/* As io_uring_submit: enters only to submit or for held-back completion
 * work (then with GETEVENTS). */
int dg__submit(struct dg__core *c)
{
    if (c->epoll)
        return dg__epoll_submit(c->epoll);
    unsigned submit = ring_flush(&c->ring.sq);
    bool events = ring_cq_needs_enter(c);
    if (submit == 0 && !events)
        return 0;
    return ring_enter_raw(c, submit, 0, events ? IORING_ENTER_GETEVENTS : 0, NULL, _NSIG / 8);
}

struct io_uring_sqe *dg__get_sqe_refill(struct dg__core *c, int *err)
{
    if (c->epoll) {
        /* The emulated SQ grows instead of flushing early: its operations
         * leave together, in one sendmmsg per socket where they can. */
        struct io_uring_sqe *sqe = dg__epoll_get_sqe(c->epoll);
        if (!sqe)
            *err = -ENOMEM;
        return sqe;
    }
    c->sq_free = io_uring_sq_space_left(&c->ring);
    if (c->sq_free == 0) {
        /* SQ full: hand this turn's SQEs to the kernel early, never drop. */
        int ret = dg__submit(c);
        if (ret < 0 && ret != -EBUSY && ret != -EAGAIN) {
            *err = ret;
            return NULL;
        }
        c->sq_free = io_uring_sq_space_left(&c->ring);
        if (c->sq_free == 0) {
            *err = -EBUSY;
            return NULL;
        }
    }
    return dg__get_sqe(c, err); /* inline, and now with a free count */
}

/* The ring's side of dg__ring_cancel_fd_sync. The cancelled requests end
 * in task work: under DEFER_TASKRUN (6.1) that runs only when the loop asks
 * for events, and a request lets go of its file only then, so the call
 * ends with io_uring_get_events. A request already running in an io-wq
 * worker cannot be cancelled and keeps the file until it ends; dgring's
 * socket operations never go there (nonblocking first, then poll). */
static int uring_cancel_fd_sync(struct dg__core *c, int fd)
{
    if (!c->caps.sync_cancel)
        return -EOPNOTSUPP; /* before 6.0: the caller cancels asynchronously */
    if (io_uring_sq_ready(&c->ring) > 0) {
        int ret = dg__submit(c); /* queued SQEs name the fd's number */
        if (ret < 0)
            return ret;
        if (io_uring_sq_ready(&c->ring) > 0)
            return -EAGAIN;
    }
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.fd = fd;
    reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    reg.timeout.tv_sec = 1; /* a bound, not a wait: nothing dgring queues runs that long */
    int ret = io_uring_register_sync_cancel(&c->ring, &reg);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    c->stats.enters++;
    (void)io_uring_get_events(&c->ring);
    return 0;
}

int dg__ring_cancel_fd_sync(struct dg__core *c, int fd)
{
    dg__loop_poke(c); /* completions to read: an embedding loop must come back */
    return c->epoll ? dg__epoll_cancel_fd(c->epoll, fd) : uring_cancel_fd_sync(c, fd);
}

unsigned dg__ring_sq_ready(const struct dg__core *c)
{
    return c->epoll ? dg__epoll_sq_ready(c->epoll) : io_uring_sq_ready(&c->ring);
}

/* What a batched wait's outcome teaches (docs/design.md, "Batched waits
 * adapt"): called after one that ended on its time limit (-ETIME) or that
 * also submitted (it then returns the count it submitted, even when it
 * timed out). One short of its count asked for completions that never
 * came. If no batched wait filled in this run of busy turns, the run was
 * a burst that ended, not a flood: from now on each run of busy turns
 * makes plain waits for its first 4 turns, twice as many after each such
 * timeout (at most 64), so a paced flow's bursts end in plain waits (one
 * sleep per burst, no timer wake, nothing held). After a filled one, a
 * flood ended: back to 4. */
static __attribute__((noinline, cold)) void batch_wait_outcome(struct dg__core *c, unsigned nr)
{
    if (io_uring_cq_ready(&c->ring) >= nr) {
        c->batch_filled = true;
        return;
    }
    c->stats.batch_wait_timeouts++;
    unsigned turns = c->batch_pause_turns * 2;
    if (c->batch_filled || turns < DG__FLOOD_TURNS)
        turns = DG__FLOOD_TURNS;
    c->batch_pause_turns = turns < DG__FLOOD_TURNS_MAX ? turns : DG__FLOOD_TURNS_MAX;
}

/* A flood's wait: submits and waits for batch_wait_nr completions or
 * wait_us, whichever comes first (IORING_ENTER_EXT_ARG). As liburing's
 * io_uring_submit_and_wait_timeout, no enter at all when there is nothing
 * to submit and the CQ already holds that many. */
static __attribute__((noinline)) int ring_enter_batched(struct dg__core *c, unsigned wait_us)
{
    /* wait_us <= 1 s (dg_loop_options.batch_wait_us): no division */
    bool second = wait_us >= 1000000u;
    struct __kernel_timespec ts = {.tv_sec = second, .tv_nsec = second ? 0 : wait_us * 1000ll};
    struct io_uring_getevents_arg arg = {.sigmask = 0, .sigmask_sz = _NSIG / 8,
                                         .ts = (uint64_t)(uintptr_t)&ts};
    unsigned submit = ring_flush(&c->ring.sq), nr = batch_wait_nr(&c->options);
    bool wait = io_uring_cq_ready(&c->ring) < nr;
    if (submit == 0 && !wait)
        return 0;
    int ret = ring_enter_raw(c, submit, nr,
                             wait ? IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG : 0, &arg,
                             sizeof(arg));
    if (ret == -ETIME || (ret > 0 && wait))
        batch_wait_outcome(c, nr);
    else if (wait)
        c->batch_filled = true; /* 0: the count came (a signal or no memory counts alike) */
    return ret;
}

/* The wait's limit after a busy turn: batch_wait_us, or less if a timer is
 * due sooner; 0 when the wait is a plain one (not busy, one of a run's
 * first turns after a batched wait timed out, no batching asked for, no
 * IORING_FEAT_EXT_ARG (5.11), or a timer due now). */
static unsigned batch_wait_us(struct dg__core *c)
{
    unsigned wait_us = c->options.batch_wait_us;
    if (c->last_recv_completions < DG__BUSY_TURN) {
        c->batch_pause_left = c->batch_pause_turns; /* a run of busy turns ended */
        c->batch_filled = false;
        return 0;
    }
    if (c->batch_pause_left) { /* the run's first turns wait plainly (batch_wait_outcome) */
        c->batch_pause_left--;
        return 0;
    }
    if (wait_us == DG_BATCH_WAIT_NONE || !(c->caps.features & IORING_FEAT_EXT_ARG))
        return 0;
    int64_t next_timer = dg__timers_next_us(c);
    if (next_timer == 0)
        return 0;
    if (next_timer > 0 && (uint64_t)next_timer < wait_us)
        wait_us = (unsigned)next_timer;
    return wait_us;
}

/* Submits this turn's SQEs and, if asked, waits for one completion (or a
 * batch of them after a busy turn), in a single io_uring_enter. */
int dg__ring_enter(struct dg__core *c, bool block)
{
    int ret;
    if (c->epoll) {
        ret = dg__epoll_submit(c->epoll);
        if (ret >= 0)
            ret = dg__epoll_wait(c->epoll, block);
        return ret == -EINTR ? 0 : ret;
    }
    unsigned wait_us;
    if (!block) {
        unsigned submit = ring_flush(&c->ring.sq);
        if (submit == 0 && c->enter_skip && !ring_cq_needs_enter(c))
            return 0; /* nothing to submit, no completion work held back (taskrun_visible), no
                         overflowed CQEs: what the enter would post is in the CQ already */
        ret = ring_enter_raw(c, submit, 0, IORING_ENTER_GETEVENTS, NULL, _NSIG / 8);
    } else if ((wait_us = batch_wait_us(c)) != 0) {
        ret = ring_enter_batched(c, wait_us); /* a flood: let the kernel gather a batch */
    } else {
        ret = ring_enter_raw(c, ring_flush(&c->ring.sq), 1, IORING_ENTER_GETEVENTS, NULL,
                             _NSIG / 8);
    }
    /* EINTR: a signal; the caller checks the stop flag. EBUSY/EAGAIN: the
     * CQ has overflowed entries or no memory for now; processing
     * completions makes room. ETIME: the batched wait ended on its time
     * limit. EXIT on the others. */
    if (ret == -EINTR || ret == -EBUSY || ret == -EAGAIN || ret == -ETIME)
        return 0;
    return ret < 0 ? ret : 0;
}

/* ---- The completion queue ----------------------------------------------------
 * Either backend's: the kernel's, or the epoll backend's user-space one in
 * the same CQE format. */

unsigned dg__ring_cq_ready_emulated(struct dg__core *c)
{
    return dg__epoll_cq_ready(c->epoll);
}

unsigned dg__ring_cq_window_emulated(struct dg__core *c, const struct io_uring_cqe **out,
                                     unsigned want)
{
    return dg__epoll_cq_window(c->epoll, out, want);
}

void dg__ring_advance_emulated(struct dg__core *c, unsigned n)
{
    dg__epoll_cq_advance(c->epoll, n);
}

/* ---- Embedding, registration, posts, statistics ------------------------------ */

unsigned dg__ring_cq_unsignalled(const struct dg__core *c)
{
    /* The kernel signals the registered eventfd for its own completions;
     * the epoll backend's are made in user space by the last submit. */
    return c->epoll ? dg__epoll_cq_ready(c->epoll) : 0;
}

int dg__ring_attach_notify(struct dg__core *c, int fd)
{
    /* io_uring: the kernel signals a registered eventfd on every posted
     * completion, including deferred task work under DEFER_TASKRUN (6.1+).
     * epoll: the epoll fd itself is readable when a watched fd is ready,
     * and the eventfd joins its set for the loop's own pokes. */
    return c->epoll ? dg__epoll_attach_notify(c->epoll, fd)
                    : io_uring_register_eventfd(&c->ring, fd);
}

int dg__ring_embed_fd(const struct dg__core *c)
{
    return c->epoll ? dg__epoll_fd(c->epoll) : c->notify_fd;
}

bool dg__ring_register_buffers(struct dg__core *c, void *mem, size_t bytes)
{
    if (c->epoll)
        return false; /* no kernel ring to register with; sends copy nothing anyway */
    struct iovec whole = {.iov_base = mem, .iov_len = bytes};
    return io_uring_register_buffers(&c->ring, &whole, 1) == 0;
}

int dg__ring_msg_fd(const struct dg__core *c)
{
    return c->epoll ? -1 : c->ring.ring_fd;
}

const char *dg__ring_backend_name(const struct dg__core *c)
{
    return c->epoll ? "epoll" : "io_uring";
}

void dg__ring_get_stats(const struct dg__core *c, dg_loop_stats *out)
{
    *out = c->stats;
    if (!c->epoll && c->ring.cq.koverflow)
        out->cq_dropped = *c->ring.cq.koverflow;
}

/* The epoll backend: the part of io_uring that dgring uses, carried out
 * in user space with epoll, recvmmsg and sendmmsg.
 *
 * Why emulate the ring instead of writing a second engine: every rule the
 * engine keeps (a request completes exactly once, closes cancel by fd and
 * wait for the final completion, buffers go back in batches, a multishot
 * receive ends on ENOBUFS and is re-armed) lives in one place and is tested
 * once; this file only has to behave like the kernel for the handful of
 * operations the engine submits:
 *
 *   RECVMSG (multishot, buffer select)  level-triggered EPOLLIN; on
 *       readiness one recvmmsg() fills up to 64 provided buffers, each laid
 *       out exactly like the kernel's io_uring_recvmsg_out; no buffer left
 *       ends the multishot with -ENOBUFS, an error ends it with the error.
 *   SENDMSG  consecutive sends on one fd leave in one sendmmsg(); EAGAIN
 *       parks the rest (in order) until EPOLLOUT, as io_uring's internal
 *       poll would. Later sends on that fd queue behind them.
 *   READ  (the wake-up eventfd) one-shot, on EPOLLIN.
 *   POLL_ADD / POLL_REMOVE  one-shot polls (the resolver's sockets).
 *   TIMEOUT / TIMEOUT_REMOVE (with UPDATE)  absolute CLOCK_MONOTONIC
 *       deadlines behind one timerfd, so the epoll fd also wakes for them.
 *   ASYNC_CANCEL  by fd (all) or everything (loop close); a socket's close
 *       also cancels its fd at once (dg__epoll_cancel_fd), as the ring's
 *       synchronous cancel does.
 *
 * Completions go into a user-space CQ that the loop drains with the same
 * dispatch table as the ring's. The SQ grows rather than leave early, except
 * for a socket's close, which carries it out and cancels the fd from inside
 * a callback, while the loop walks the CQ: so the loop walks copies of the
 * CQEs (dg__epoll_cq_window), and the CQ may move or grow at any time.
 *
 * The CQ never drops a completion: each SQE reserves its slot when it is
 * taken (dg__epoll_get_sqe fails, and the caller hears -ENOMEM at once,
 * when the CQ cannot grow for it), and a multishot receive reserves a slot
 * per datagram before reading it, reading fewer (the rest waits in the
 * socket) when memory is short. Every operation's final completion goes
 * into the slot its SQE reserved. */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "epoll.h"

#define EMU_BATCH 64        /* datagrams per recvmmsg/sendmmsg */
#define EMU_RECV_ROUNDS 4   /* recvmmsg calls per socket per wait, for fairness */
#define EMU_EVENTS 64
#define EMU_MAX_POLLS 4
#define EMU_PEEK_MAX 256    /* CQEs one peek hands out (the loop asks for 256) */

/* epoll_event.data.u64 for the emulator's own fds (never a valid fd index). */
#define EMU_TAG_TIMER (UINT64_C(1) << 40)
#define EMU_TAG_NOTIFY (UINT64_C(2) << 40)

struct emu_send {
    uint64_t ud;
    const struct msghdr *msg;
    int flags;
};

struct emu_fd {
    int fd;
    uint32_t registered;  /* events epoll watches (0: not in the set) */
    bool recv;
    uint64_t recv_ud;
    const struct msghdr *recv_tmpl;
    int recv_flags;
    bool read;
    uint64_t read_ud;
    void *read_buf;
    unsigned read_len;
    unsigned npolls;
    struct {
        uint64_t ud;
        uint32_t mask;
    } polls[EMU_MAX_POLLS];
    struct emu_send *sends; /* parked sends, FIFO ring buffer */
    unsigned send_head, send_count, send_cap;
};

struct emu_timeout {
    uint64_t ud;
    uint64_t deadline_ns;
};

struct dg__epoll {
    int epfd;
    int timerfd;
    uint64_t timer_set_ns;  /* deadline the timerfd holds, 0 = disarmed */
    struct dg__bufring *br;
    uint16_t buf_head;      /* next provided buffer to take (the kernel's head) */

    struct io_uring_sqe *sq;
    unsigned sq_len, sq_cap;
    struct io_uring_cqe *cq;
    unsigned cq_head, cq_tail, cq_cap;
    struct io_uring_cqe peeked[EMU_PEEK_MAX]; /* what the loop walks */
    unsigned cq_reserved;   /* slots promised to completions not yet posted */

    struct emu_fd **fds;    /* indexed by fd */
    unsigned nfds;
    struct emu_timeout *timeouts;
    unsigned ntimeouts, timeouts_cap;
    int notify_fd;
    struct dg_loop_stats *stats;
};

/* ---- Queues ---------------------------------------------------------------- */

/* Room in the CQ for n more completions beyond those waiting in it and
 * those already promised, growing it if needed. False, changing nothing,
 * when it cannot grow. */
static bool cq_reserve(struct dg__epoll *e, unsigned n)
{
    unsigned need = e->cq_tail - e->cq_head + e->cq_reserved + n;
    if (need > e->cq_cap) {
        unsigned cap = e->cq_cap;
        while (cap < need)
            cap *= 2;
        struct io_uring_cqe *cq = dg__realloc(e->cq, (size_t)cap * sizeof(*cq));
        if (!cq)
            return false;
        e->cq = cq;
        e->cq_cap = cap;
    }
    e->cq_reserved += n;
    return true;
}

/* Up to n reserved slots: n if the CQ can grow for them, else as many as
 * it has free now (0 when none). */
static unsigned cq_reserve_some(struct dg__epoll *e, unsigned n)
{
    if (cq_reserve(e, n))
        return n;
    unsigned used = e->cq_tail - e->cq_head + e->cq_reserved;
    unsigned free_now = e->cq_cap > used ? e->cq_cap - used : 0;
    n = n < free_now ? n : free_now;
    e->cq_reserved += n;
    return n;
}

/* Posts a completion into a slot reserved for it. */
static void post_cqe(struct dg__epoll *e, uint64_t ud, int res, uint32_t flags)
{
    assert(e->cq_reserved > 0);
    e->cq_reserved--;
    if (e->cq_tail == e->cq_cap) {
        /* the reservation guarantees a free slot, so cq_head > 0 */
        memmove(e->cq, e->cq + e->cq_head, (size_t)(e->cq_tail - e->cq_head) * sizeof(*e->cq));
        e->cq_tail -= e->cq_head;
        e->cq_head = 0;
    }
    struct io_uring_cqe *c = &e->cq[e->cq_tail++];
    c->user_data = ud;
    c->res = res;
    c->flags = flags;
}

unsigned dg__epoll_cq_ready(const struct dg__epoll *e)
{
    return e->cq_tail - e->cq_head;
}

/* Copies, so that completions posted during the walk (a close cancels its
 * fd from a callback) may move the CQ without moving what the loop reads. */
unsigned dg__epoll_cq_window(struct dg__epoll *e, const struct io_uring_cqe **out, unsigned max)
{
    unsigned n = e->cq_tail - e->cq_head;
    if (n > max)
        n = max;
    if (n > EMU_PEEK_MAX)
        n = EMU_PEEK_MAX;
    memcpy(e->peeked, e->cq + e->cq_head, (size_t)n * sizeof(*e->cq));
    *out = e->peeked;
    return n;
}

void dg__epoll_cq_advance(struct dg__epoll *e, unsigned n)
{
    e->cq_head += n;
    if (e->cq_head == e->cq_tail)
        e->cq_head = e->cq_tail = 0;
}

unsigned dg__epoll_sq_ready(const struct dg__epoll *e)
{
    return e->sq_len;
}

struct io_uring_sqe *dg__epoll_get_sqe(struct dg__epoll *e)
{
    if (e->sq_len == e->sq_cap) {
        unsigned cap = e->sq_cap * 2;
        struct io_uring_sqe *sq = dg__realloc(e->sq, (size_t)cap * sizeof(*sq));
        if (!sq)
            return NULL;
        e->sq = sq;
        e->sq_cap = cap;
    }
    if (!cq_reserve(e, 1))
        return NULL; /* the operation's completion would have no slot */
    struct io_uring_sqe *sqe = &e->sq[e->sq_len++];
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

/* ---- File descriptors ----------------------------------------------------- */

static struct emu_fd *fd_get(struct dg__epoll *e, int fd, bool create)
{
    if (fd < 0)
        return NULL;
    if ((unsigned)fd >= e->nfds) {
        if (!create)
            return NULL;
        unsigned n = e->nfds ? e->nfds : 64;
        while (n <= (unsigned)fd)
            n *= 2;
        struct emu_fd **fds = dg__realloc(e->fds, (size_t)n * sizeof(*fds));
        if (!fds)
            return NULL;
        memset(fds + e->nfds, 0, (size_t)(n - e->nfds) * sizeof(*fds));
        e->fds = fds;
        e->nfds = n;
    }
    struct emu_fd *f = e->fds[fd];
    if (!f && create) {
        f = dg__calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->fd = fd;
        e->fds[fd] = f;
    }
    return f;
}

static bool fd_idle(const struct emu_fd *f)
{
    return !f->recv && !f->read && f->npolls == 0 && f->send_count == 0;
}

static unsigned fd_end_all(struct dg__epoll *e, struct emu_fd *f, int res);

/* Makes epoll watch what the fd's operations need; frees idle entries.
 * An fd closed and reused behind our back (the engine never does, but a
 * closed fd leaves epoll by itself) is handled by retrying ADD/MOD. */
static void fd_sync(struct dg__epoll *e, struct emu_fd *f)
{
    uint32_t want = 0;
    if (f->recv || f->read)
        want |= EPOLLIN;
    if (f->send_count > 0)
        want |= EPOLLOUT;
    for (unsigned i = 0; i < f->npolls; i++)
        want |= f->polls[i].mask & (EPOLLIN | EPOLLOUT | EPOLLPRI);
    if (want != f->registered) {
        struct epoll_event ev = {.events = want, .data.u64 = (uint64_t)(unsigned)f->fd};
        int rc = 0;
        if (want == 0) {
            (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, f->fd, NULL);
        } else if (f->registered == 0) {
            rc = epoll_ctl(e->epfd, EPOLL_CTL_ADD, f->fd, &ev);
            if (rc < 0 && errno == EEXIST)
                rc = epoll_ctl(e->epfd, EPOLL_CTL_MOD, f->fd, &ev);
        } else {
            rc = epoll_ctl(e->epfd, EPOLL_CTL_MOD, f->fd, &ev);
            if (rc < 0 && errno == ENOENT)
                rc = epoll_ctl(e->epfd, EPOLL_CTL_ADD, f->fd, &ev);
        }
        if (rc < 0) {
            /* ENOSPC (max_user_watches), ENOMEM, EBADF...: the fd's
             * operations could never complete; end them with the error,
             * as the kernel ends a request it cannot carry out. */
            int err = errno;
            fd_end_all(e, f, -err);
            (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, f->fd, NULL);
            want = 0;
        }
        f->registered = want;
    }
    if (want == 0 && fd_idle(f)) {
        e->fds[f->fd] = NULL;
        dg__free(f->sends);
        dg__free(f);
    }
}

/* ---- Sends ------------------------------------------------------------------ */

static int send_park(struct emu_fd *f, uint64_t ud, const struct msghdr *msg, int flags)
{
    if (f->send_count == f->send_cap) {
        unsigned cap = f->send_cap ? f->send_cap * 2 : 16;
        struct emu_send *s = dg__malloc((size_t)cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        for (unsigned i = 0; i < f->send_count; i++)
            s[i] = f->sends[(f->send_head + i) % f->send_cap];
        dg__free(f->sends);
        f->sends = s;
        f->send_cap = cap;
        f->send_head = 0;
    }
    f->sends[(f->send_head + f->send_count) % f->send_cap] =
        (struct emu_send){.ud = ud, .msg = msg, .flags = flags};
    f->send_count++;
    return 0;
}

/* Sends batch[0..n) on fd in order. Returns how many ended (completed or
 * failed); the rest met EAGAIN and must wait for EPOLLOUT. */
static unsigned send_batch(struct dg__epoll *e, int fd, const struct emu_send *batch, unsigned n)
{
    struct mmsghdr mm[EMU_BATCH];
    unsigned done = 0;
    while (done < n) {
        unsigned k = n - done < EMU_BATCH ? n - done : EMU_BATCH;
        int flags = batch[done].flags;
        unsigned same = 0;
        while (same < k && batch[done + same].flags == flags) {
            mm[same].msg_hdr = *batch[done + same].msg;
            mm[same].msg_len = 0;
            same++;
        }
        e->stats->enters++;
        int r = sendmmsg(fd, mm, same, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            for (int i = 0; i < r; i++)
                post_cqe(e, batch[done + (unsigned)i].ud, (int)mm[i].msg_len, 0);
            done += (unsigned)r;
            continue;
        }
        int err = r < 0 ? errno : EIO;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            break;
        post_cqe(e, batch[done].ud, -err, 0); /* this datagram failed; go on */
        done++;
    }
    return done;
}

static void sends_flush_parked(struct dg__epoll *e, struct emu_fd *f)
{
    while (f->send_count > 0) {
        struct emu_send batch[EMU_BATCH];
        unsigned n = f->send_count < EMU_BATCH ? f->send_count : EMU_BATCH;
        for (unsigned i = 0; i < n; i++)
            batch[i] = f->sends[(f->send_head + i) % f->send_cap];
        unsigned done = send_batch(e, f->fd, batch, n);
        f->send_head = (f->send_head + done) % f->send_cap;
        f->send_count -= done;
        if (done < n)
            break;
    }
}

/* ---- Receives --------------------------------------------------------------- */

static unsigned bufs_available(const struct dg__epoll *e)
{
    uint16_t tail = __atomic_load_n(&e->br->ring->tail, __ATOMIC_ACQUIRE);
    return (uint16_t)(tail - e->buf_head);
}

/* Ends the fd's multishot receive with res (no F_MORE), as the kernel does
 * when the buffer group is empty or the socket reports an error. */
static void recv_end(struct dg__epoll *e, struct emu_fd *f, int res)
{
    post_cqe(e, f->recv_ud, res, 0);
    f->recv = false;
}

static void recv_ready(struct dg__epoll *e, struct emu_fd *f)
{
    const struct msghdr *t = f->recv_tmpl;
    size_t head = sizeof(struct io_uring_recvmsg_out) + t->msg_namelen + t->msg_controllen;
    for (int round = 0; round < EMU_RECV_ROUNDS && f->recv; round++) {
        unsigned avail = bufs_available(e);
        if (avail == 0) {
            recv_end(e, f, -ENOBUFS);
            return;
        }
        unsigned n = cq_reserve_some(e, avail < EMU_BATCH ? avail : EMU_BATCH);
        if (n == 0)
            return; /* no room for a completion: the datagrams wait in the socket */
        struct mmsghdr mm[EMU_BATCH];
        struct iovec iov[EMU_BATCH];
        struct io_uring_buf *bufs[EMU_BATCH];
        for (unsigned i = 0; i < n; i++) {
            struct io_uring_buf *b = &e->br->ring->bufs[(uint16_t)(e->buf_head + i) & e->br->mask];
            unsigned char *base = (unsigned char *)(uintptr_t)b->addr;
            bufs[i] = b;
            iov[i].iov_base = base + head;
            iov[i].iov_len = b->len > head ? b->len - head : 0;
            memset(&mm[i], 0, sizeof(mm[i]));
            mm[i].msg_hdr.msg_name = base + sizeof(struct io_uring_recvmsg_out);
            mm[i].msg_hdr.msg_namelen = t->msg_namelen;
            mm[i].msg_hdr.msg_control =
                t->msg_controllen ? base + sizeof(struct io_uring_recvmsg_out) + t->msg_namelen
                                  : NULL;
            mm[i].msg_hdr.msg_controllen = t->msg_controllen;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        e->stats->enters++;
        int r = recvmmsg(f->fd, mm, n, f->recv_flags | MSG_DONTWAIT, NULL);
        e->cq_reserved -= r > 0 ? n - (unsigned)r : n; /* the slots not used */
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            recv_end(e, f, -errno);
            return;
        }
        for (int i = 0; i < r; i++) {
            struct io_uring_recvmsg_out out = {
                .namelen = mm[i].msg_hdr.msg_namelen,
                .controllen = (uint32_t)mm[i].msg_hdr.msg_controllen,
                .payloadlen = mm[i].msg_len,
                .flags = (uint32_t)mm[i].msg_hdr.msg_flags,
            };
            unsigned char *base = (unsigned char *)(uintptr_t)bufs[i]->addr;
            memcpy(base, &out, sizeof(out));
            size_t copied = mm[i].msg_len < iov[i].iov_len ? mm[i].msg_len : iov[i].iov_len;
            uint32_t flags = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE |
                             ((uint32_t)bufs[i]->bid << IORING_CQE_BUFFER_SHIFT);
            post_cqe(e, f->recv_ud, (int)(head + copied), flags);
        }
        e->buf_head = (uint16_t)(e->buf_head + (unsigned)r);
        if ((unsigned)r < n)
            return; /* the socket is drained */
    }
}

/* ---- Timeouts --------------------------------------------------------------- */

static void timer_sync(struct dg__epoll *e)
{
    uint64_t next = 0;
    for (unsigned i = 0; i < e->ntimeouts; i++)
        if (next == 0 || e->timeouts[i].deadline_ns < next)
            next = e->timeouts[i].deadline_ns;
    if (next == e->timer_set_ns)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (next) {
        /* 0 would disarm: a deadline in the past is "now". */
        its.it_value.tv_sec = (time_t)(next / 1000000000u);
        its.it_value.tv_nsec = (long)(next % 1000000000u);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(e->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        e->timer_set_ns = next;
}

static void timeouts_expire(struct dg__epoll *e)
{
    uint64_t now = dg__clock_ns();
    for (unsigned i = 0; i < e->ntimeouts;) {
        if (e->timeouts[i].deadline_ns <= now) {
            post_cqe(e, e->timeouts[i].ud, -ETIME, 0);
            e->timeouts[i] = e->timeouts[--e->ntimeouts];
        } else {
            i++;
        }
    }
}

/* Nanoseconds on CLOCK_MONOTONIC, saturating: a timer set "for ever"
 * (dg_timer_start accepts up to UINT64_MAX / 2 ms) must not wrap into the
 * past and fire at once, again and again. */
static uint64_t ts_deadline(const struct __kernel_timespec *ts, unsigned flags)
{
    if (ts->tv_sec < 0 || ts->tv_nsec < 0)
        return (flags & IORING_TIMEOUT_ABS) ? 0 : dg__clock_ns();
    uint64_t sec = (uint64_t)ts->tv_sec, nsec = (uint64_t)ts->tv_nsec;
    if (sec > (UINT64_MAX - nsec) / 1000000000u)
        return UINT64_MAX;
    uint64_t v = sec * 1000000000u + nsec;
    if (flags & IORING_TIMEOUT_ABS)
        return v;
    uint64_t now = dg__clock_ns();
    return v > UINT64_MAX - now ? UINT64_MAX : now + v;
}

static int timeout_find(const struct dg__epoll *e, uint64_t ud)
{
    for (unsigned i = 0; i < e->ntimeouts; i++)
        if (e->timeouts[i].ud == ud)
            return (int)i;
    return -1;
}

static void op_timeout(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    const struct __kernel_timespec *ts = (const void *)(uintptr_t)sqe->addr;
    if (e->ntimeouts == e->timeouts_cap) {
        unsigned cap = e->timeouts_cap ? e->timeouts_cap * 2 : 4;
        struct emu_timeout *t = dg__realloc(e->timeouts, (size_t)cap * sizeof(*t));
        if (!t) {
            post_cqe(e, sqe->user_data, -ENOMEM, 0);
            return;
        }
        e->timeouts = t;
        e->timeouts_cap = cap;
    }
    e->timeouts[e->ntimeouts++] = (struct emu_timeout){
        .ud = sqe->user_data,
        .deadline_ns = ts_deadline(ts, sqe->timeout_flags),
    };
}

static void op_timeout_remove(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    int i = timeout_find(e, sqe->addr);
    if (i < 0) {
        post_cqe(e, sqe->user_data, -ENOENT, 0);
        return;
    }
    if (sqe->timeout_flags & IORING_TIMEOUT_UPDATE) {
        const struct __kernel_timespec *ts = (const void *)(uintptr_t)sqe->addr2;
        e->timeouts[i].deadline_ns = ts_deadline(ts, sqe->timeout_flags);
    } else {
        post_cqe(e, e->timeouts[i].ud, -ECANCELED, 0);
        e->timeouts[i] = e->timeouts[--e->ntimeouts];
    }
    post_cqe(e, sqe->user_data, 0, 0);
}

/* ---- Cancellation ----------------------------------------------------------- */

/* Ends every operation on the fd with res (no epoll change, f stays). */
static unsigned fd_end_all(struct dg__epoll *e, struct emu_fd *f, int res)
{
    unsigned n = 0;
    if (f->recv) {
        recv_end(e, f, res);
        n++;
    }
    if (f->read) {
        post_cqe(e, f->read_ud, res, 0);
        f->read = false;
        n++;
    }
    for (unsigned i = 0; i < f->npolls; i++, n++)
        post_cqe(e, f->polls[i].ud, res, 0);
    f->npolls = 0;
    while (f->send_count > 0) {
        post_cqe(e, f->sends[f->send_head].ud, res, 0);
        f->send_head = (f->send_head + 1) % f->send_cap;
        f->send_count--;
        n++;
    }
    return n;
}

static unsigned fd_cancel_all(struct dg__epoll *e, struct emu_fd *f)
{
    unsigned n = fd_end_all(e, f, -ECANCELED);
    fd_sync(e, f); /* may free f */
    return n;
}

static void op_cancel(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    unsigned n = 0;
    if (sqe->cancel_flags & IORING_ASYNC_CANCEL_FD) {
        struct emu_fd *f = fd_get(e, sqe->fd, false);
        if (f)
            n = fd_cancel_all(e, f);
    } else if (sqe->cancel_flags & IORING_ASYNC_CANCEL_ANY) {
        for (unsigned fd = 0; fd < e->nfds; fd++)
            if (e->fds[fd])
                n += fd_cancel_all(e, e->fds[fd]);
        for (unsigned i = 0; i < e->ntimeouts; i++, n++)
            post_cqe(e, e->timeouts[i].ud, -ECANCELED, 0);
        e->ntimeouts = 0;
    } else {
        /* by user_data: the engine does not use it; answer as the kernel
         * would for an unknown request. */
        post_cqe(e, sqe->user_data, -ENOENT, 0);
        return;
    }
    post_cqe(e, sqe->user_data, n > 0 ? (int)n : -ENOENT, 0);
}

int dg__epoll_cancel_fd(struct dg__epoll *e, int fd)
{
    int ret = dg__epoll_submit(e); /* what was queued for the fd goes first */
    if (ret < 0)
        return ret;
    struct emu_fd *f = fd_get(e, fd, false);
    if (f)
        fd_cancel_all(e, f); /* out of the epoll set, the entry freed */
    return 0;
}

static void op_poll_remove(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    for (unsigned fd = 0; fd < e->nfds; fd++) {
        struct emu_fd *f = e->fds[fd];
        if (!f)
            continue;
        for (unsigned i = 0; i < f->npolls; i++) {
            if (f->polls[i].ud != sqe->addr)
                continue;
            post_cqe(e, f->polls[i].ud, -ECANCELED, 0);
            f->polls[i] = f->polls[--f->npolls];
            post_cqe(e, sqe->user_data, 0, 0);
            fd_sync(e, f);
            return;
        }
    }
    post_cqe(e, sqe->user_data, -ENOENT, 0);
}

/* ---- Submission ------------------------------------------------------------- */

static void op_recv(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    struct emu_fd *f = fd_get(e, sqe->fd, true);
    if (!f) {
        post_cqe(e, sqe->user_data, -ENOMEM, 0);
        return;
    }
    if (f->recv) {
        post_cqe(e, sqe->user_data, -EBUSY, 0);
        return;
    }
    f->recv = true;
    f->recv_ud = sqe->user_data;
    f->recv_tmpl = (const struct msghdr *)(uintptr_t)sqe->addr;
    f->recv_flags = (int)sqe->msg_flags;
    fd_sync(e, f);
}

static void op_read(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    struct emu_fd *f = fd_get(e, sqe->fd, true);
    if (!f || f->read) {
        post_cqe(e, sqe->user_data, f ? -EBUSY : -ENOMEM, 0);
        return;
    }
    f->read = true;
    f->read_ud = sqe->user_data;
    f->read_buf = (void *)(uintptr_t)sqe->addr;
    f->read_len = sqe->len;
    fd_sync(e, f);
}

static void op_poll_add(struct dg__epoll *e, const struct io_uring_sqe *sqe)
{
    struct emu_fd *f = fd_get(e, sqe->fd, true);
    if (!f || f->npolls == EMU_MAX_POLLS) {
        post_cqe(e, sqe->user_data, f ? -EBUSY : -ENOMEM, 0);
        return;
    }
    f->polls[f->npolls].ud = sqe->user_data;
    f->polls[f->npolls].mask = sqe->poll32_events;
    f->npolls++;
    fd_sync(e, f);
}

/* Sends starting at sq[i] on one fd with nothing parked: one sendmmsg.
 * Returns how many SQEs were consumed. */
static unsigned op_sends(struct dg__epoll *e, unsigned i)
{
    int fd = e->sq[i].fd;
    struct emu_fd *f = fd_get(e, fd, false);
    struct emu_send batch[EMU_BATCH];
    unsigned n = 0;
    do { /* sq[i] is a send: at least one */
        batch[n].ud = e->sq[i + n].user_data;
        batch[n].msg = (const struct msghdr *)(uintptr_t)e->sq[i + n].addr;
        batch[n].flags = (int)e->sq[i + n].msg_flags;
        n++;
    } while (i + n < e->sq_len && n < EMU_BATCH && e->sq[i + n].opcode == IORING_OP_SENDMSG &&
             e->sq[i + n].fd == fd);
    unsigned done = 0;
    if (!f || f->send_count == 0)
        done = send_batch(e, fd, batch, n);
    if (done < n) {
        f = fd_get(e, fd, true);
        for (unsigned k = done; k < n; k++)
            if (!f || send_park(f, batch[k].ud, batch[k].msg, batch[k].flags) < 0)
                post_cqe(e, batch[k].ud, -ENOMEM, 0);
        if (f)
            fd_sync(e, f);
    }
    return n;
}

int dg__epoll_submit(struct dg__epoll *e)
{
    unsigned count = e->sq_len;
    for (unsigned i = 0; i < e->sq_len;) {
        const struct io_uring_sqe *sqe = &e->sq[i];
        switch (sqe->opcode) {
        case IORING_OP_SENDMSG:
            i += op_sends(e, i);
            continue;
        case IORING_OP_RECVMSG:
            op_recv(e, sqe);
            break;
        case IORING_OP_READ:
            op_read(e, sqe);
            break;
        case IORING_OP_POLL_ADD:
            op_poll_add(e, sqe);
            break;
        case IORING_OP_POLL_REMOVE:
            op_poll_remove(e, sqe);
            break;
        case IORING_OP_TIMEOUT:
            op_timeout(e, sqe);
            break;
        case IORING_OP_TIMEOUT_REMOVE:
            op_timeout_remove(e, sqe);
            break;
        case IORING_OP_ASYNC_CANCEL:
            op_cancel(e, sqe);
            break;
        default:
            post_cqe(e, sqe->user_data, -EINVAL, 0);
            break;
        }
        i++;
    }
    e->sq_len = 0;
    e->stats->submissions += count;
    timer_sync(e);
    return (int)count;
}

/* ---- Waiting ---------------------------------------------------------------- */

static void fd_ready(struct dg__epoll *e, struct emu_fd *f, uint32_t events)
{
    bool err = events & (EPOLLERR | EPOLLHUP);
    if (f->recv && (events & EPOLLIN || err))
        recv_ready(e, f);
    if (f->read && (events & EPOLLIN)) {
        ssize_t r = read(f->fd, f->read_buf, f->read_len);
        if (r >= 0 || (errno != EAGAIN && errno != EINTR)) {
            post_cqe(e, f->read_ud, r >= 0 ? (int)r : -errno, 0);
            f->read = false;
        }
    }
    if (f->send_count > 0 && (events & EPOLLOUT || err))
        sends_flush_parked(e, f);
    for (unsigned i = 0; i < f->npolls;) {
        uint32_t hit = events & (f->polls[i].mask | EPOLLERR | EPOLLHUP);
        if (hit) {
            post_cqe(e, f->polls[i].ud, (int)hit, 0);
            f->polls[i] = f->polls[--f->npolls];
        } else {
            i++;
        }
    }
    fd_sync(e, f);
}

/* Gathers readiness into completions: blocks (timeout -1) until at least
 * one completion exists if block is set, otherwise only looks. */
int dg__epoll_wait(struct dg__epoll *e, bool block)
{
    for (;;) {
        struct epoll_event evs[EMU_EVENTS];
        bool wait = block && dg__epoll_cq_ready(e) == 0;
        e->stats->enters++;
        int n = epoll_wait(e->epfd, evs, EMU_EVENTS, wait ? -1 : 0);
        if (n < 0)
            return errno == EINTR ? -EINTR : -errno;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == EMU_TAG_TIMER) {
                uint64_t v;
                ssize_t r = read(e->timerfd, &v, sizeof(v));
                (void)r;
                e->timer_set_ns = 0;
            } else if (tag == EMU_TAG_NOTIFY) {
                uint64_t v;
                ssize_t r = read(e->notify_fd, &v, sizeof(v));
                (void)r;
            } else if (tag < e->nfds && e->fds[tag]) {
                fd_ready(e, e->fds[tag], evs[i].events);
            }
        }
        timeouts_expire(e);
        timer_sync(e);
        if (!wait || dg__epoll_cq_ready(e) > 0)
            return 0;
    }
}

/* ---- Lifetime --------------------------------------------------------------- */

int dg__epoll_new(struct dg__epoll **out, struct dg__bufring *br, struct dg_loop_stats *stats,
                unsigned sq_entries, unsigned cq_entries)
{
    struct dg__epoll *e = dg__calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->br = br;
    e->stats = stats;
    e->notify_fd = -1;
    e->sq_cap = sq_entries ? sq_entries : 64;
    e->cq_cap = cq_entries ? cq_entries : 256;
    e->sq = dg__malloc((size_t)e->sq_cap * sizeof(*e->sq));
    e->cq = dg__malloc((size_t)e->cq_cap * sizeof(*e->cq));
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    int saved = errno;
    e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (e->timerfd < 0)
        saved = errno;
    int ret = 0;
    if (!e->sq || !e->cq) {
        ret = -ENOMEM;
    } else if (e->epfd < 0 || e->timerfd < 0) {
        ret = -saved;
    } else {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EMU_TAG_TIMER};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->timerfd, &ev) < 0)
            ret = -errno;
    }
    if (ret < 0) {
        dg__epoll_free(e);
        return ret;
    }
    *out = e;
    return 0;
}

int dg__epoll_attach_notify(struct dg__epoll *e, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EMU_TAG_NOTIFY};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    e->notify_fd = fd;
    return 0;
}

int dg__epoll_fd(const struct dg__epoll *e)
{
    return e->epfd;
}

void dg__epoll_free(struct dg__epoll *e)
{
    if (!e)
        return;
    for (unsigned fd = 0; fd < e->nfds; fd++) {
        if (e->fds[fd]) {
            dg__free(e->fds[fd]->sends);
            dg__free(e->fds[fd]);
        }
    }
    dg__free(e->fds);
    dg__free(e->timeouts);
    dg__free(e->sq);
    dg__free(e->cq);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->timerfd >= 0)
        close(e->timerfd);
    dg__free(e);
}

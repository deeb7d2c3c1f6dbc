/* Signals on the loop (dg_signal): a signalfd per loop, watched by a ring
 * poll, read in the loop's thread.
 *
 * The signalfd's mask is the union of the signals the loop's started
 * handles watch. A one-shot IORING_OP_POLL_ADD (the epoll backend emulates
 * it) waits for the fd to become readable; its completion reads every
 * siginfo waiting (non-blocking), calls the handles of each signal, and
 * arms the poll again. Why a poll and a read rather than a ring read: a
 * ring read of a non-blocking fd has answered -EAGAIN instead of waiting
 * (see core/wake.c), and a blocking read could hang the epoll backend's
 * loop when another thread's signalfd takes the signal between readiness
 * and the read; a non-blocking read after a poll is right on both
 * backends and every kernel. Reading in the loop's thread also gives the
 * thread's own view: signals sent to that thread (pthread_kill) and those
 * sent to the process. A signal already pending when it joins the mask is
 * seen too: signalfd(2) wakes the fd's pollers when it changes the mask
 * (tests/core/test_signal.c checks it). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core.h"

/* siginfos read per read(2); a poll completion reads until none is left
 * or this many reads were made (the rest wait for the next turn). */
#define DG__SIGNAL_BATCH 8
#define DG__SIGNAL_READS 4

struct dg__signals {
    struct signalfd_siginfo info[DG__SIGNAL_BATCH];
    int fd;                        /* non-blocking signalfd */
    sigset_t mask;                 /* what the signalfd takes */
    bool armed;                    /* the ring poll is in flight */
    struct dg__list handles;       /* started dg_signal, in start order */
};
_Static_assert(_Alignof(struct dg__signals) >= 8, "tagged with a kind");

struct dg_signal {
    struct dg__handle handle;
    int signum;
    dg_signal_cb cb;
    void *data;
    struct dg__list link;          /* in handles while started */
    dg_signal_close_cb close_cb;
    void *close_data;
};

/* ---- The signalfd and its poll ----------------------------------------- */

static int signals_open(struct dg__core *c)
{
    if (c->signals)
        return 0;
    struct dg__signals *s = dg__calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    sigemptyset(&s->mask);
    s->fd = signalfd(-1, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->fd < 0) {
        int err = -errno;
        dg__free(s);
        return err;
    }
    dg__list_init(&s->handles);
    c->signals = s;
    return 0;
}

void dg__signals_destroy(struct dg__core *c)
{
    if (!c->signals)
        return;
    close(c->signals->fd);
    dg__free(c->signals);
    c->signals = NULL;
}

bool dg__signals_armed(const struct dg__core *c)
{
    return c->signals && c->signals->armed;
}

/* Arms the poll when some signal is watched and none is in flight; a
 * refused SQE is retried by the next turn's prepare step. */
void dg__signals_arm(struct dg__core *c)
{
    struct dg__signals *s = c->signals;
    if (s->armed || c->closing || dg__list_empty(&s->handles))
        return;
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(c, &err);
    if (!sqe)
        return;
    io_uring_prep_poll_add(sqe, s->fd, POLLIN);
    io_uring_sqe_set_data64(sqe, DG__UD(s, DG__OP_SIGNAL));
    s->armed = true;
}

/* Makes the signalfd take exactly the signals of the started handles. */
static int signals_sync_mask(struct dg__core *c)
{
    struct dg__signals *s = c->signals;
    sigset_t want;
    sigemptyset(&want);
    DG__LIST_FOR_EACH(node, &s->handles)
        sigaddset(&want, DG__CONTAINER(node, dg_signal, link)->signum);
    bool changed = false;
    for (int n = 1; n < NSIG && !changed; n++)
        changed = sigismember(&want, n) != sigismember(&s->mask, n);
    if (!changed)
        return 0;
    if (signalfd(s->fd, &want, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        return -errno;
    s->mask = want;
    return 0;
}

/* ---- Delivery ------------------------------------------------------------ */

/* Calls every handle started for signum, in start order. The handles are
 * moved to a private list and back one by one, so a callback may stop or
 * close any handle (itself included) or start new ones. */
static void signals_deliver(struct dg__signals *s, int signum)
{
    struct dg__list pending;
    dg__list_move(&pending, &s->handles);
    while (!dg__list_empty(&pending)) {
        dg_signal *h = DG__CONTAINER(pending.next, dg_signal, link);
        dg__list_remove(&h->link);
        dg__list_insert_tail(&s->handles, &h->link);
        if (h->signum == signum)
            h->cb(h, signum, h->data);
    }
}

/* Reads what is waiting and delivers it, in arrival order. */
static void signals_read(struct dg__signals *s)
{
    for (int round = 0; round < DG__SIGNAL_READS; round++) {
        ssize_t n = read(s->fd, s->info, sizeof(s->info));
        if (n <= 0)
            return; /* EAGAIN: nothing (another thread's signalfd was first) */
        size_t count = (size_t)n / sizeof(s->info[0]);
        for (size_t i = 0; i < count; i++)
            signals_deliver(s, (int)s->info[i].ssi_signo);
        if (count < DG__SIGNAL_BATCH)
            return;
    }
}

void dg__signals_on_poll(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    struct dg__core *c = dg__core_of(loop);
    struct dg__signals *s = DG__UD_PTR(cqe->user_data);
    s->armed = false;
    if (c->closing)
        return;
    if (cqe->res > 0)
        signals_read(s);
    dg__signals_arm(c);
}

/* ---- Handles ------------------------------------------------------------- */

/* Signals a loop can take: catchable, not a fault (a fault signal that is
 * blocked kills the process), not one the C library keeps for itself. */
static bool signal_watchable(int signum)
{
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
        return false;
    if (signum == SIGSEGV || signum == SIGBUS || signum == SIGFPE || signum == SIGILL ||
        signum == SIGTRAP || signum == SIGSYS)
        return false;
    return signum < 32 || signum >= SIGRTMIN;
}

DG_EXPORT int dg_signal_new(dg_loop *loop, dg_signal **out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    struct dg__core *c = dg__core_of(loop);
    if (c->closing)
        return -ECANCELED;
    int ret = signals_open(c);
    if (ret < 0)
        return ret;
    dg_signal *h = dg__calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    dg__handle_init(&h->handle, c);
    *out = h;
    return 0;
}

DG_EXPORT int dg_signal_start(dg_signal *sig, int signum, dg_signal_cb cb, void *data)
{
    if (!sig || !cb)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sig->handle.closing)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (!signal_watchable(signum))
        return -EINVAL;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signum);
    int ret = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (ret != 0)
        return -ret;
    bool was_started = dg__list_linked(&sig->link);
    int old_signum = sig->signum;
    if (!was_started)
        dg__list_insert_tail(&sig->handle.core->signals->handles, &sig->link);
    sig->signum = signum;
    ret = signals_sync_mask(sig->handle.core);
    if (ret < 0) {
        sig->signum = old_signum;
        if (!was_started)
            dg__list_remove(&sig->link);
        return ret;
    }
    sig->cb = cb;
    sig->data = data;
    dg__handle_update_alive(&sig->handle, true);
    dg__signals_arm(sig->handle.core);
    return 0;
}

DG_EXPORT int dg_signal_stop(dg_signal *sig)
{
    if (!sig)
        return DG_ERR_INVALID_ARG_VALUE;
    if (!dg__list_linked(&sig->link))
        return 0;
    dg__list_remove(&sig->link);
    dg__handle_update_alive(&sig->handle, false);
    /* A failure leaves the signal in the mask: it is read and dropped. */
    (void)signals_sync_mask(sig->handle.core);
    return 0;
}

DG_EXPORT bool dg_signal_active(const dg_signal *sig)
{
    return sig && dg__list_linked(&sig->link);
}

DG_EXPORT int dg_signal_signum(const dg_signal *sig)
{
    return sig && dg__list_linked(&sig->link) ? sig->signum : 0;
}

DG_EXPORT void dg_signal_ref(dg_signal *sig)
{
    if (sig)
        dg__handle_set_ref(&sig->handle, true, dg__list_linked(&sig->link));
}

DG_EXPORT void dg_signal_unref(dg_signal *sig)
{
    if (sig)
        dg__handle_set_ref(&sig->handle, false, dg__list_linked(&sig->link));
}

static void signal_finish_close(struct dg__deferred *node)
{
    dg_signal *h = DG__CONTAINER(node, dg_signal, handle.close_ev);
    if (h->close_cb)
        h->close_cb(h, h->close_data);
    dg__handle_closed(&h->handle);
    dg__free(h);
}

DG_EXPORT int dg_signal_close(dg_signal *sig, dg_signal_close_cb cb, void *data)
{
    if (!sig)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sig->handle.closing)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    dg_signal_stop(sig);
    sig->close_cb = cb;
    sig->close_data = data;
    dg__handle_close(&sig->handle, signal_finish_close);
    return 0;
}

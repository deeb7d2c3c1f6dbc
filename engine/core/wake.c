/* Wake-ups and the embedding fd.
 *
 * dg_loop_wake (and dg_loop_stop) write an eventfd the ring always has a
 * read on, from any thread or a signal handler. dg_loop_fd hands an
 * embedding event loop a second fd that becomes readable on completions
 * and is poked (dg__loop_poke) for work queued outside dg_loop_run. */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

void dg__wake_arm(struct dg__core *c)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(c, &err);
    if (!sqe)
        return; /* retried when the next completion arrives; see on_completion */
    io_uring_prep_read(sqe, c->wake_fd, &c->wake_buf, sizeof(c->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, DG__UD(c, DG__OP_WAKE));
    c->wake_armed = true;
}

int dg__wake_open(struct dg__core *c)
{
    /* Blocking on purpose: a ring read of an O_NONBLOCK eventfd may fail
     * with EAGAIN instead of waiting for a write. */
    c->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (c->wake_fd < 0)
        return -errno;
    dg__wake_arm(c);
    return 0;
}

void dg__wake_close(struct dg__core *c)
{
    close(c->wake_fd);
    if (c->notify_fd >= 0)
        close(c->notify_fd);
}

void dg__wake_on_completion(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    struct dg__core *c = dg__core_of(loop);
    c->wake_armed = false;
    /* Cancelled: the loop is closing. A failed read (-ENOMEM on the epoll
     * backend) is armed again, except while closing, whose wait for the
     * loop's own operations would otherwise never end. */
    if (cqe->res == -ECANCELED || c->closing)
        return;
    dg__wake_arm(c);
}

void dg__wake_read_notify(struct dg__core *c)
{
    uint64_t v;
    ssize_t r = read(c->notify_fd, &v, sizeof(v));
    (void)r; /* EAGAIN when nothing was signalled */
    c->poked = false;
}

DG_EXPORT void dg_loop_stop(dg_loop *loop)
{
    if (!loop)
        return;
    atomic_store_explicit(&dg__core_of(loop)->stop, true, memory_order_release);
    dg_loop_wake(loop);
}

DG_EXPORT int dg_loop_wake(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    uint64_t one = 1;
    /* write(2) on an eventfd is async-signal-safe; EAGAIN means the
     * counter is already non-zero, which wakes the loop just the same. */
    if (write(dg__core_of(loop)->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

DG_EXPORT int dg_loop_fd(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__core *c = dg__core_of(loop);
    if (c->notify_fd >= 0)
        return dg__ring_embed_fd(c);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int ret = dg__ring_attach_notify(c, fd);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    c->notify_fd = fd;
    dg__loop_poke(c);
    return dg__ring_embed_fd(c);
}

void dg__loop_poke_fd(struct dg__core *c)
{
    uint64_t one = 1;
    if (write(c->notify_fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        c->poked = true;
}

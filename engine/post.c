/* dg_loop_post: handing work to another loop's thread.
 *
 * Between two loops the post travels as an IORING_OP_MSG_RING from the
 * sender's ring to the target's: the target's completion carries the post
 * node in its user_data. The sender also gets a completion for the same
 * node; whichever of the two arrives last frees it, and a MSG_RING that
 * failed (target CQ full, or a kernel without it) falls back to the
 * locked queue. From a thread that runs no loop, the node goes on the
 * target's locked queue and the target is woken through its eventfd. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* The loop whose dg_loop_run() is active on this thread, if any. */
static __thread dg_loop *current_loop;

void dg__post_init(dg_loop *loop)
{
    pthread_mutex_init(&loop->post_lock, NULL);
    atomic_init(&loop->posts_queued, false);
    atomic_init(&loop->posts_pending, 0);
}

void dg__post_destroy(dg_loop *loop)
{
    pthread_mutex_destroy(&loop->post_lock);
}

dg_loop *dg__current_loop_swap(dg_loop *loop)
{
    dg_loop *old = current_loop;
    current_loop = loop;
    return old;
}

static void queue_locked(dg_loop *target, struct dg__post *p)
{
    p->next = NULL;
    pthread_mutex_lock(&target->post_lock);
    if (target->post_tail)
        target->post_tail->next = p;
    else
        target->post_head = p;
    target->post_tail = p;
    atomic_store_explicit(&target->posts_queued, true, memory_order_release);
    /* Wake before unlocking: once the lock is released the target may run
     * the post, stop being alive and be closed, freeing its wake fd. */
    dg_loop_wake(target);
    pthread_mutex_unlock(&target->post_lock);
}

static void run_post(dg_loop *loop, struct dg__post *p)
{
    p->cb(loop, p->arg);
    atomic_fetch_sub_explicit(&loop->posts_pending, 1, memory_order_relaxed);
}

bool dg__posts_run_queued(dg_loop *loop)
{
    if (!atomic_load_explicit(&loop->posts_queued, memory_order_acquire))
        return false;
    pthread_mutex_lock(&loop->post_lock);
    struct dg__post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    atomic_store_explicit(&loop->posts_queued, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        struct dg__post *next = p->next;
        run_post(loop, p);
        dg__free(p);
        p = next;
    }
    return true;
}

/* Both ends see a DG__OP_POST completion naming the node: the target's
 * (cqe->res is the 1 passed as MSG_RING's length) runs it; the sender's
 * (res 0) says the ring is done with it, or (res < 0) that it never left,
 * and then it takes the locked road. The node has two references on the
 * ring road, one per end; the end that drops the last frees it. */
void dg__post_on_completion(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    struct dg__post *p = DG__UD_PTR(cqe->user_data);
    if (cqe->res < 0) {
        queue_locked(p->target, p);
        return;
    }
    if (loop == p->target && cqe->res == 1)
        run_post(loop, p);
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        dg__free(p);
}

DG_EXPORT int dg_loop_post(dg_loop *target, dg_post_cb cb, void *arg)
{
    if (!target || !cb)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__post *p = dg__calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->target = target;
    p->cb = cb;
    p->arg = arg;
    atomic_fetch_add_explicit(&target->posts_pending, 1, memory_order_relaxed);
    dg_loop *self = current_loop;
    int err = 0;
    struct io_uring_sqe *sqe = NULL;
    if (self && self != target && self->caps.msg_ring && !target->emu)
        sqe = dg__get_sqe(self, &err);
    if (!sqe) {
        queue_locked(target, p);
        return 0;
    }
    atomic_init(&p->refs, 2);
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, 1, DG__UD(p, DG__OP_POST), 0);
    io_uring_sqe_set_data64(sqe, DG__UD(p, DG__OP_POST));
    return 0;
}

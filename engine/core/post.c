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

#include "core.h"

/* The ring road's happens-before edge goes through the kernel: the sender
 * fills the node, submits a MSG_RING, the kernel posts a completion into
 * the target's ring, the target reads the node. ThreadSanitizer does not
 * see io_uring's shared rings, so under TSan the sender releases the node
 * before submitting and the target acquires it before running the post;
 * other builds compile nothing. */
#if defined(__SANITIZE_THREAD__)
#define DG__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DG__TSAN 1
#endif
#endif
#ifdef DG__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tsan_acquire(addr) __tsan_acquire(addr)
#define tsan_release(addr) __tsan_release(addr)
#else
#define tsan_acquire(addr) ((void)(addr))
#define tsan_release(addr) ((void)(addr))
#endif

/* The loop whose dg_loop_run() is active on this thread, if any. */
static __thread struct dg__core *current_core;

void dg__post_init(struct dg__core *c)
{
    pthread_mutex_init(&c->post_lock, NULL);
    dg__list_init(&c->posts);
    atomic_init(&c->posts_queued, false);
    atomic_init(&c->posts_pending, 0);
}

void dg__post_destroy(struct dg__core *c)
{
    pthread_mutex_destroy(&c->post_lock);
}

struct dg__core *dg__current_core_swap(struct dg__core *c)
{
    struct dg__core *old = current_core;
    current_core = c;
    return old;
}

static void queue_locked(struct dg__core *target, struct dg__post *p)
{
    pthread_mutex_lock(&target->post_lock);
    dg__list_insert_tail(&target->posts, &p->link);
    atomic_store_explicit(&target->posts_queued, true, memory_order_release);
    /* Wake before unlocking: once the lock is released the target may run
     * the post, stop being alive and be closed, freeing its wake fd. */
    dg_loop_wake(dg__loop_of(target));
    pthread_mutex_unlock(&target->post_lock);
}

static void run_post(struct dg__core *c, struct dg__post *p)
{
    p->cb(dg__loop_of(c), p->arg);
    atomic_fetch_sub_explicit(&c->posts_pending, 1, memory_order_relaxed);
}

bool dg__posts_run_locked(struct dg__core *c)
{
    struct dg__list queued;
    pthread_mutex_lock(&c->post_lock);
    dg__list_move(&queued, &c->posts);
    atomic_store_explicit(&c->posts_queued, false, memory_order_relaxed);
    pthread_mutex_unlock(&c->post_lock);
    while (!dg__list_empty(&queued)) {
        struct dg__post *p = DG__CONTAINER(queued.next, struct dg__post, link);
        dg__list_remove(&p->link);
        run_post(c, p);
        dg__free(p);
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
    struct dg__core *c = dg__core_of(loop);
    if (cqe->res < 0) {
        queue_locked(p->target, p);
        return;
    }
    if (cqe->res == 1)
        tsan_acquire(p); /* the target's end: another thread filled the node */
    if (c == p->target && cqe->res == 1)
        run_post(c, p);
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
    struct dg__core *to = dg__core_of(target);
    p->target = to;
    p->cb = cb;
    p->arg = arg;
    atomic_fetch_add_explicit(&to->posts_pending, 1, memory_order_relaxed);
    struct dg__core *self = current_core;
    int err = 0, to_fd = dg__ring_msg_fd(to);
    struct io_uring_sqe *sqe = NULL;
    if (self && self != to && self->caps.msg_ring && to_fd >= 0)
        sqe = dg__get_sqe(self, &err);
    if (!sqe) {
        queue_locked(to, p);
        return 0;
    }
    atomic_init(&p->refs, 2);
    tsan_release(p); /* everything written for the post, before it leaves */
    io_uring_prep_msg_ring(sqe, to_fd, 1, DG__UD(p, DG__OP_POST), 0);
    io_uring_sqe_set_data64(sqe, DG__UD(p, DG__OP_POST));
    return 0;
}

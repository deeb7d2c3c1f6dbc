/* Ring setup, the one-time feature probe, and SQE allocation.
 *
 * Setup flags are tried from best to oldest: each fallback exists because
 * the kernel rejects unknown setup flags with EINVAL, and dgring must still
 * run (more slowly) on a kernel that has multishot recvmsg but not the
 * newest task-running modes. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const unsigned setup_attempts[] = {
    /* 6.1+: completions run only when we ask, in our own thread. */
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    /* 5.19+: no DEFER_TASKRUN; cooperative task running instead of IPIs. */
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    /* 5.18: SUBMIT_ALL only. */
    IORING_SETUP_SUBMIT_ALL,
    0,
};

static unsigned round_up_pow2(unsigned v)
{
    unsigned p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* CQ large enough for one turn's usual completions: one CQE per provided
 * buffer (a multishot receive posts at most one per buffer before we
 * return them), one per send in flight, and headroom for timers, cancels
 * and wake-ups. It can still overflow (hundreds of sockets each ending a
 * receive with ENOBUFS, floods of cross-loop posts): the kernel keeps the
 * extra completions on its overflow list, the loop drains them next turn
 * (counted in dg_loop_stats.cq_overflows) and tests/test_faults.c shows
 * nothing is lost. */
static unsigned cq_size(const dg_loop_options *o)
{
    unsigned want = o->recv_buffers + o->max_pending_sends + 64;
    unsigned cq = round_up_pow2(want);
    if (cq < 2 * o->sq_entries)
        cq = 2 * o->sq_entries;
    return cq > 65536 ? 65536 : cq;
}

static void probe_opcodes(dg_loop *loop)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&loop->ring);
    if (!probe)
        return;
    /* No probe exists for multishot recvmsg; it arrived in 6.0 together
     * with IORING_OP_SEND_ZC, whose presence is probeable. */
    loop->caps.recvmsg_multishot = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    loop->caps.sendmsg_zc = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
    loop->caps.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
    loop->caps.timeout_update = io_uring_opcode_supported(probe, IORING_OP_TIMEOUT_REMOVE) &&
                                (loop->caps.features & IORING_FEAT_NATIVE_WORKERS);
    io_uring_free_probe(probe);
}

/* IORING_OP_SEND takes a destination address (sqe->addr2) since 6.1; a
 * 6.0 kernel rejects addr2 with -EINVAL when it prepares the request.
 * The probe sends nothing: on fd -1 a kernel that accepts the address
 * fails the request later, at the file lookup, with -EBADF. */
static bool probe_send_to(dg_loop *loop)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (!sqe)
        return false;
    io_uring_prep_send(sqe, -1, NULL, 0, 0);
    sqe->addr2 = (uint64_t)(uintptr_t)&sin;
    sqe->addr_len = (uint16_t)sizeof(sin);
    io_uring_sqe_set_data64(sqe, 0);
    struct io_uring_cqe *cqe = NULL;
    if (io_uring_submit_and_wait(&loop->ring, 1) < 0 || io_uring_peek_cqe(&loop->ring, &cqe) < 0)
        return false;
    bool ok = cqe->res != -EINVAL;
    io_uring_cqe_seen(&loop->ring, cqe);
    return ok;
}

int dg__ring_init(dg_loop *loop)
{
    int ret = -EINVAL;
    unsigned cq = cq_size(&loop->options);
    for (size_t i = 0; i < sizeof(setup_attempts) / sizeof(setup_attempts[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = setup_attempts[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(loop->options.sq_entries, &loop->ring, &p);
        if (ret == -EINVAL)
            continue;
        if (ret < 0)
            return ret;
        loop->caps.sq_entries = p.sq_entries;
        loop->caps.cq_entries = p.cq_entries;
        loop->caps.setup_flags = p.flags;
        loop->caps.features = p.features;
        break;
    }
    if (ret == -EINVAL)
        return DG_ERR_KERNEL_UNSUPPORTED; /* every flag set refused: < 5.5 */
    if (ret < 0)
        return ret;
    unsigned f = loop->caps.setup_flags;
    loop->caps.single_issuer = f & IORING_SETUP_SINGLE_ISSUER;
    loop->caps.defer_taskrun = f & IORING_SETUP_DEFER_TASKRUN;
    loop->caps.submit_all = f & IORING_SETUP_SUBMIT_ALL;
    loop->caps.coop_taskrun = f & IORING_SETUP_COOP_TASKRUN;
    probe_opcodes(loop);
    if (!loop->caps.recvmsg_multishot) {
        io_uring_queue_exit(&loop->ring);
        return DG_ERR_KERNEL_UNSUPPORTED;
    }
    loop->caps.send_to = probe_send_to(loop) && !getenv("DGRING_NO_SEND_TO");
    /* Saves the fd lookup on every io_uring_enter (5.18+); optional. */
    (void)io_uring_register_ring_fd(&loop->ring);
    return 0;
}

void dg__ring_exit(dg_loop *loop)
{
    io_uring_queue_exit(&loop->ring);
}

int dg__submit(dg_loop *loop)
{
    if (loop->emu)
        return dg__emu_submit(loop->emu);
    loop->stats.enters++;
    int ret = io_uring_submit(&loop->ring);
    if (ret > 0)
        loop->stats.submissions += (unsigned)ret;
    return ret;
}

struct io_uring_sqe *dg__get_sqe(dg_loop *loop, int *err)
{
    dg__loop_poke(loop); /* an embedding loop must come back to submit it */
    if (loop->emu) {
        /* The emulated SQ grows instead of flushing early, so completions
         * never appear while the loop walks the CQ. */
        struct io_uring_sqe *sqe = dg__emu_get_sqe(loop->emu);
        if (!sqe)
            *err = -ENOMEM;
        return sqe;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (sqe)
        return sqe;
    /* SQ full: hand this turn's SQEs to the kernel early, never drop. */
    int ret = dg__submit(loop);
    if (ret < 0 && ret != -EBUSY && ret != -EAGAIN) {
        *err = ret;
        return NULL;
    }
    sqe = io_uring_get_sqe(&loop->ring);
    if (!sqe)
        *err = -EBUSY;
    return sqe;
}

/* perf/uring_setup.h: dgring's ring setup for perf/'s raw liburing peers
 * (uring_raw.c, fanout_bench.c), so that they ask the kernel for a ring
 * like dgring's: SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL where the
 * kernel has them (COOP_TASKRUN | SUBMIT_ALL, then none, where it does
 * not), the CQ sized by the caller, the ring fd registered.
 *
 * Returns 0 or a negative errno from io_uring_queue_init_params. */
#ifndef PERF_URING_SETUP_H
#define PERF_URING_SETUP_H

#include <errno.h>
#include <liburing.h>
#include <string.h>

static inline int perf_ring_setup(struct io_uring *ring, unsigned sq, unsigned cq)
{
    static const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = attempts[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(sq, ring, &p);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0)
        return ret;
    (void)io_uring_register_ring_fd(ring);
    return 0;
}

#endif

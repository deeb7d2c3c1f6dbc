/* The epoll backend's send back-pressure (engine/core/epoll.c), driven through
 * its internal interface: EAGAIN from sendmmsg parks the remaining sends
 * in order until EPOLLOUT, and a cancel by fd ends parked sends with
 * -ECANCELED. UDP on loopback never says EAGAIN (the kernel frees each
 * datagram as soon as it is delivered), so the sends go over an AF_UNIX
 * datagram socket pair whose peer stops reading: a real EAGAIN from the
 * kernel. The emulator does not care what kind of socket the fd is. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "engine/core/epoll.h"

TestSuite(epoll, .timeout = 60);

enum { N = 3000, LEN = 100 };

struct fixture {
    int sv[2];
    struct dg__bufring br; /* unused: no receives here */
    dg_loop_stats stats;
    struct dg__epoll *e;
    struct msghdr msgs[N];
    struct iovec iov[N];
    unsigned char bufs[N][LEN];
};

static struct fixture fx;

static void setup_sends(void)
{
    memset(&fx, 0, sizeof(fx));
    cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fx.sv), 0);
    cr_assert_eq(dg__epoll_new(&fx.e, &fx.br, &fx.stats, 8, 8), 0);
    for (unsigned i = 0; i < N; i++) {
        memset(fx.bufs[i], 0, LEN);
        memcpy(fx.bufs[i], &i, sizeof(i));
        fx.iov[i] = (struct iovec){.iov_base = fx.bufs[i], .iov_len = LEN};
        fx.msgs[i].msg_iov = &fx.iov[i];
        fx.msgs[i].msg_iovlen = 1;
        struct io_uring_sqe *sqe = dg__epoll_get_sqe(fx.e);
        cr_assert_not_null(sqe);
        io_uring_prep_sendmsg(sqe, fx.sv[0], &fx.msgs[i], 0);
        io_uring_sqe_set_data64(sqe, (uint64_t)i + 1);
    }
    cr_assert_eq(dg__epoll_submit(fx.e), N);
}

static void teardown_sends(void)
{
    dg__epoll_free(fx.e);
    close(fx.sv[0]);
    close(fx.sv[1]);
}

/* Takes the completions in the CQ; each must be the next send in order
 * with status want (0: the datagram's length). Returns how many. */
static unsigned take_completions(unsigned *next, int want)
{
    struct io_uring_cqe *cqes[64];
    unsigned total = 0, n;
    while ((n = dg__epoll_peek_batch(fx.e, cqes, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(cqes[i]->user_data, (uint64_t)*next + 1, "completion %lu, expected %u",
                         (unsigned long)cqes[i]->user_data, *next + 1);
            cr_assert_eq(cqes[i]->res, want ? want : LEN, "send %u: %d", *next, cqes[i]->res);
            (*next)++;
        }
        dg__epoll_cq_advance(fx.e, n);
        total += n;
    }
    return total;
}

Test(epoll, eagain_parks_sends_in_order_until_writable, .init = setup_sends,
     .fini = teardown_sends)
{
    unsigned completed = 0, received = 0;
    take_completions(&completed, 0);
    cr_assert_lt(completed, N, "the peer queue never filled: no EAGAIN to test");
    cr_assert_gt(completed, 0);
    for (int rounds = 0; completed < N; rounds++) {
        cr_assert_lt(rounds, 100000, "stuck at %u of %u sends", completed, N);
        unsigned char buf[LEN + 1];
        ssize_t r;
        while ((r = recv(fx.sv[1], buf, sizeof(buf), 0)) >= 0) {
            unsigned seq;
            cr_assert_eq(r, LEN);
            memcpy(&seq, buf, sizeof(seq));
            cr_assert_eq(seq, received, "datagram %u arrived as number %u", seq, received);
            received++;
        }
        cr_assert_eq(errno, EAGAIN);
        cr_assert_eq(dg__epoll_wait(fx.e, false), 0);
        take_completions(&completed, 0);
    }
    unsigned char buf[LEN + 1];
    while (recv(fx.sv[1], buf, sizeof(buf), 0) == LEN)
        received++;
    cr_assert_eq(received, N, "%u of %u datagrams arrived", received, N);
}

Test(epoll, cancel_by_fd_ends_parked_sends, .init = setup_sends, .fini = teardown_sends)
{
    unsigned completed = 0;
    take_completions(&completed, 0);
    cr_assert_lt(completed, N);
    struct io_uring_sqe *sqe = dg__epoll_get_sqe(fx.e);
    io_uring_prep_cancel_fd(sqe, fx.sv[0], IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, UINT64_MAX & ~(uint64_t)7);
    cr_assert_eq(dg__epoll_submit(fx.e), 1);
    /* the parked sends, in order, with -ECANCELED; then the cancel's own
     * completion with the count */
    struct io_uring_cqe *cqes[64];
    unsigned cancelled = 0, n;
    bool cancel_seen = false;
    while ((n = dg__epoll_peek_batch(fx.e, cqes, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            if (cqes[i]->user_data == (UINT64_MAX & ~(uint64_t)7)) {
                cr_assert_eq(cqes[i]->res, (int)(N - completed));
                cancel_seen = true;
                continue;
            }
            cr_assert_eq(cqes[i]->user_data, (uint64_t)completed + cancelled + 1);
            cr_assert_eq(cqes[i]->res, -ECANCELED);
            cancelled++;
        }
        dg__epoll_cq_advance(fx.e, n);
    }
    cr_assert(cancel_seen);
    cr_assert_eq(completed + cancelled, N);
}

/* A deadline too far away to count in nanoseconds saturates instead of
 * wrapping: 2^62 s * 1e9 is 0 modulo 2^64, which without saturation is a
 * deadline in the past that fires at once. */
Test(epoll, far_deadline_does_not_wrap_into_the_past)
{
    struct dg__bufring br = {0};
    dg_loop_stats stats = {0};
    struct dg__epoll *e;
    struct __kernel_timespec far = {.tv_sec = (long long)1 << 62, .tv_nsec = 0};

    cr_assert_eq(dg__epoll_new(&e, &br, &stats, 8, 8), 0);
    struct io_uring_sqe *sqe = dg__epoll_get_sqe(e);
    io_uring_prep_timeout(sqe, &far, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, 8);
    cr_assert_eq(dg__epoll_submit(e), 1);
    cr_assert_eq(dg__epoll_wait(e, false), 0);
    cr_assert_eq(dg__epoll_cq_ready(e), 0, "the far timeout fired");
    dg__epoll_free(e);
}

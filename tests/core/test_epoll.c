/* The epoll backend (engine/core/epoll.c), driven through its internal
 * interface: its send back-pressure (EAGAIN from sendmmsg parks the
 * remaining sends in order until EPOLLOUT, and a cancel by fd ends parked
 * sends with -ECANCELED) and its completion queue under memory exhaustion
 * (a CQ that cannot grow refuses SQEs instead of dropping completions,
 * and a multishot receive reads only what it has slots for). UDP on
 * loopback never says EAGAIN (the kernel frees each datagram as soon as
 * it is delivered), so the sends go over an AF_UNIX datagram socket pair
 * whose peer stops reading: a real EAGAIN from the kernel. The emulator
 * does not care what kind of socket the fd is. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
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

/* Takes the completions in e's CQ; each must be the next send in order
 * with status want (0: the datagram's length). Returns how many. */
static unsigned take_completions_of(struct dg__epoll *e, unsigned *next, int want)
{
    const struct io_uring_cqe *cqes;
    unsigned total = 0, n;
    while ((n = dg__epoll_cq_window(e, &cqes, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(cqes[i].user_data, (uint64_t)*next + 1, "completion %lu, expected %u",
                         (unsigned long)cqes[i].user_data, *next + 1);
            cr_assert_eq(cqes[i].res, want ? want : LEN, "send %u: %d", *next, cqes[i].res);
            (*next)++;
        }
        dg__epoll_cq_advance(e, n);
        total += n;
    }
    return total;
}

/* The same for the fixture's backend. */
static unsigned take_completions(unsigned *next, int want)
{
    return take_completions_of(fx.e, next, want);
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
    const struct io_uring_cqe *cqes;
    unsigned cancelled = 0, n;
    bool cancel_seen = false;
    while ((n = dg__epoll_cq_window(fx.e, &cqes, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            if (cqes[i].user_data == (UINT64_MAX & ~(uint64_t)7)) {
                cr_assert_eq(cqes[i].res, (int)(N - completed));
                cancel_seen = true;
                continue;
            }
            cr_assert_eq(cqes[i].user_data, (uint64_t)completed + cancelled + 1);
            cr_assert_eq(cqes[i].res, -ECANCELED);
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

/* ---- The CQ under memory exhaustion -------------------------------------- */

/* An allocator that fails every call while failing is set. */
static bool failing;

static void *f_malloc(size_t size)
{
    return failing ? NULL : malloc(size);
}

static void *f_realloc(void *ptr, size_t size)
{
    return failing ? NULL : realloc(ptr, size);
}

static void *f_calloc(size_t count, size_t size)
{
    return failing ? NULL : calloc(count, size);
}

enum { CQ = 8 };

/* Every SQE reserves its completion's slot: with a CQ of 8 that cannot
 * grow, the ninth SQE is refused (its caller hears -ENOMEM at once), the
 * eight submitted all complete, none is dropped, and once they are taken
 * the slots serve again. Before the reservation the CQ took 64 SQEs and
 * dropped 56 completions. */
Test(epoll, a_cq_that_cannot_grow_refuses_sqes_and_drops_nothing)
{
    struct dg__bufring br = {0};
    dg_loop_stats stats = {0};
    struct dg__epoll *e;
    int sv[2];
    static struct msghdr msgs[64];
    static struct iovec iov[64];
    static unsigned char bufs[64][LEN];

    cr_assert_eq(dg_replace_allocator(f_malloc, f_realloc, f_calloc, free), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(dg__epoll_new(&e, &br, &stats, 64, CQ), 0);
    failing = true;
    for (unsigned round = 0; round < 2; round++) {
        unsigned taken = 0;
        struct io_uring_sqe *sqe;
        while ((sqe = dg__epoll_get_sqe(e)) != NULL) {
            cr_assert_lt(taken, 64u);
            iov[taken] = (struct iovec){.iov_base = bufs[taken], .iov_len = LEN};
            msgs[taken] = (struct msghdr){.msg_iov = &iov[taken], .msg_iovlen = 1};
            io_uring_prep_sendmsg(sqe, sv[0], &msgs[taken], 0);
            io_uring_sqe_set_data64(sqe, (uint64_t)taken + 1);
            taken++;
        }
        cr_assert_eq(taken, CQ, "round %u: %u SQEs for %d CQ slots", round, taken, CQ);
        cr_assert_eq(dg__epoll_submit(e), CQ);
        unsigned next = 0;
        cr_assert_eq(take_completions_of(e, &next, LEN), CQ);
        cr_assert_eq(stats.cq_dropped, 0);
    }
    failing = false;
    dg__epoll_free(e);
    close(sv[0]);
    close(sv[1]);
}

/* Takes the receive completions in the CQ: each carries the next numbered
 * datagram, whose buffer goes back to the ring. Returns how many. */
static unsigned take_datagrams(struct dg__epoll *e, struct dg__bufring *br, unsigned *next)
{
    const struct io_uring_cqe *cqes;
    unsigned n = dg__epoll_cq_window(e, &cqes, 64);

    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(cqes[i].user_data, 42u);
        cr_assert(cqes[i].flags & IORING_CQE_F_MORE, "the receive ended: %d", cqes[i].res);
        unsigned bid = cqes[i].flags >> IORING_CQE_BUFFER_SHIFT;
        const unsigned char *buf = dg__bufring_addr(br, bid);
        uint32_t seq;
        memcpy(&seq, buf + sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_in),
               sizeof(seq));
        cr_assert_eq(seq, *next, "datagram %u arrived as %u", *next, seq);
        (*next)++;
        dg__bufring_recycle(br, bid);
    }
    dg__epoll_cq_advance(e, n);
    dg__bufring_publish(br);
    return n;
}

/* A UDP socket on 127.0.0.1 with its port; non-blocking if asked. */
static int udp_socket(bool nonblocking, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A multishot receive with 40 datagrams queued and a CQ of 8 that cannot
 * grow: it reads only as many as it has slots for (7: the eighth is kept
 * for its own final completion), the rest wait in the socket, and every
 * datagram arrives, in order, as the completions are taken. Before the
 * reservation it read all 40 and dropped 32 of them with their
 * completions. */
Test(epoll, a_receive_reads_only_what_the_cq_holds)
{
    enum { DATAGRAMS = 40 };
    struct dg__bufring br;
    dg_loop_stats stats = {0};
    struct dg__epoll *e;
    struct msghdr tmpl = {.msg_namelen = sizeof(struct sockaddr_in)};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int port, ignored, rx = udp_socket(true, &port), tx = udp_socket(false, &ignored);
    unsigned next = 0;

    cr_assert_eq(dg_replace_allocator(f_malloc, f_realloc, f_calloc, free), 0);
    cr_assert_eq(dg__bufring_init(NULL, &br, 64, 256, 1), 0);
    cr_assert_eq(dg__epoll_new(&e, &br, &stats, 8, CQ), 0);
    to.sin_port = htons((uint16_t)port);
    for (uint32_t seq = 0; seq < DATAGRAMS; seq++)
        cr_assert_eq(sendto(tx, &seq, sizeof(seq), 0, (struct sockaddr *)&to, sizeof(to)), 4);
    struct io_uring_sqe *sqe = dg__epoll_get_sqe(e);
    io_uring_prep_recvmsg_multishot(sqe, rx, &tmpl, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 1;
    io_uring_sqe_set_data64(sqe, 42);
    cr_assert_eq(dg__epoll_submit(e), 1);
    failing = true;
    for (unsigned rounds = 0; next < DATAGRAMS; rounds++) {
        cr_assert_lt(rounds, 1000u, "stuck at %u of %d datagrams", next, DATAGRAMS);
        cr_assert_eq(dg__epoll_wait(e, false), 0);
        cr_assert_leq(dg__epoll_cq_ready(e), CQ - 1);
        take_datagrams(e, &br, &next);
    }
    cr_assert_eq(stats.cq_dropped, 0);
    failing = false;
    dg__epoll_free(e);
    dg__bufring_destroy(NULL, &br);
    close(rx);
    close(tx);
}

/* dg__bufring_init writes every descriptor; dg__bufring_put rewrites a
 * slot only when it holds another buffer (every descriptor of a buffer is
 * the same, and the kernel writes none), so buffers returned in the order
 * they were taken cost no stores and any other order still leaves each
 * slot naming its buffer with the buffer's address and size. */
Test(epoll, bufring_put_rewrites_only_a_slot_of_another_buffer)
{
    struct dg__bufring br;
    cr_assert_eq(dg__bufring_init(NULL, &br, 8, 256, 1), 0);
    for (unsigned i = 0; i < 8; i++) {
        const struct io_uring_buf *d = &br.ring->bufs[i];
        cr_assert_eq(d->bid, i);
        cr_assert_eq(d->addr, (uint64_t)(uintptr_t)dg__bufring_addr(&br, i));
        cr_assert_eq(d->len, 256u);
    }
    cr_assert_eq(br.tail, 8u);
    br.ring->bufs[0].len = 7; /* marks the slot: a skipped put leaves it */
    dg__bufring_recycle(&br, 0);
    cr_assert_eq(br.ring->bufs[0].len, 7u, "slot 0 holds buffer 0 already");
    dg__bufring_recycle(&br, 5); /* slot 1, which holds buffer 1 */
    dg__bufring_recycle(&br, 1); /* slot 2, which holds buffer 2 */
    const unsigned want[] = {5, 1};
    for (unsigned i = 0; i < 2; i++) {
        const struct io_uring_buf *d = &br.ring->bufs[1 + i];
        cr_assert_eq(d->bid, want[i]);
        cr_assert_eq(d->addr, (uint64_t)(uintptr_t)dg__bufring_addr(&br, want[i]));
        cr_assert_eq(d->len, 256u);
    }
    cr_assert_eq(br.tail, 11u);
    dg__bufring_destroy(NULL, &br);
}

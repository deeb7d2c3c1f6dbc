/* perf/uring_raw.c: raw liburing loops, the ceiling for dgring's own
 * overhead. They ask the kernel for exactly the work dgring asks for, with
 * nothing around it: the same ring setup (SINGLE_ISSUER | DEFER_TASKRUN |
 * SUBMIT_ALL, a registered ring fd, the CQ sized for the buffers), the same
 * provided buffer ring (4096 buffers of header + 2048 bytes unless
 * --size says otherwise), the same multishot recvmsg with MSG_TRUNC, the
 * same name and control space with SO_RXQ_OVFL on.
 *
 *   uring_raw recv   multishot recvmsg over a provided buffer ring; buffers
 *                    go back with one tail store per batch of completions;
 *                    --wait-nr N: see the experiment in do_recv;
 *                    --buffers N: N provided buffers instead of 4096 (a
 *                    power of two), for the dry-ring experiment in
 *                    perf/README.md
 *   uring_raw send   --batch sendmsg SQEs per io_uring_enter (64);
 *                    --gso N: each SQE is a run of N datagrams of --size
 *                    bytes in one IORING_OP_SENDMSG with a UDP_SEGMENT
 *                    cmsg, one iovec per datagram, as dgring sends a run
 *                    (perf/run: --batch 1, N = min(64, 65507 / size),
 *                    dgring's run limit): the io_uring floor under
 *                    dgring's GSO runs, the ring-side twin of
 *                    sendmmsg+gso
 *   uring_raw echo   an echo for sockperf's ping-pong (perf/run's
 *                    pingpong scenario): multishot recvmsg over 512
 *                    provided buffers (dgring's default; --buffers N),
 *                    one send SQE per ping answering sockperf's header
 *                    as perf's other echoes do
 *   uring_raw echo-all
 *                    the same loop echoing every datagram to its sender
 *                    (the echo scenario's io_uring floor)
 *                    Both: the reply is an IORING_OP_SEND with the
 *                    sender's address (6.1+; dgring's send where the
 *                    kernel has it) out of the received buffer (no
 *                    copy), which returns to the ring when its send
 *                    completes; a turn's replies are submitted together by
 *                    the io_uring_enter that waits for the next completion;
 *                    they end after --count replies or on SIGTERM/SIGINT
 *                    with a JSON line
 */
#include "common.h"

#include <liburing.h>
#include <signal.h>
#include <sys/mman.h>

#include "uring_setup.h"

#define BUF_GROUP 7
#ifndef BUSY_WAIT_NS
#define BUSY_WAIT_NS 200000 /* 200 us */
#endif
#define NAME_LEN ((unsigned)((sizeof(struct sockaddr_in6) + 7u) & ~7u))
#define CONTROL_LEN ((unsigned)(CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int))))
#define HEADER_LEN ((unsigned)sizeof(struct io_uring_recvmsg_out) + NAME_LEN + CONTROL_LEN)

static void ring_setup(struct io_uring *ring, unsigned sq, unsigned cq)
{
    int ret = perf_ring_setup(ring, sq, cq);
    if (ret < 0) {
        errno = -ret;
        perf_die("io_uring_queue_init_params");
    }
}

/* A provided buffer ring: nbufs buffers of header + payload bytes, each
 * at a 64-byte stride, registered as BUF_GROUP and all handed to the
 * kernel. */
typedef struct bufs {
    struct io_uring_buf_ring *br;
    unsigned char *mem;
    unsigned bufsize, stride;
    int mask;
} bufs;

static void bufs_setup(struct io_uring *ring, bufs *b, unsigned nbufs, unsigned payload)
{
    b->bufsize = HEADER_LEN + payload;
    b->stride = (b->bufsize + 63u) & ~63u;
    b->br = mmap(NULL, nbufs * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->mem = mmap(NULL, (size_t)nbufs * b->stride, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b->br == MAP_FAILED || b->mem == MAP_FAILED)
        perf_die("mmap");
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)b->br, .ring_entries = nbufs, .bgid = BUF_GROUP};
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        errno = -ret;
        perf_die("io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(b->br);
    b->mask = io_uring_buf_ring_mask(nbufs);
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(b->br, b->mem + (size_t)i * b->stride, b->bufsize,
                              (unsigned short)i, b->mask, (int)i);
    io_uring_buf_ring_advance(b->br, (int)nbufs);
}

/* The receiving socket with SO_RXQ_OVFL on, and the multishot recvmsg's
 * msghdr (name and control space as dgring's). */
static int rx_socket(const perf_opts *o, struct msghdr *mh)
{
    int fd = perf_udp_bound(o->port, o->rcvbuf);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    memset(mh, 0, sizeof(*mh));
    mh->msg_namelen = NAME_LEN;
    mh->msg_controllen = CONTROL_LEN;
    return fd;
}

static void arm_recv(struct io_uring *ring, int fd, struct msghdr *mh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recvmsg_multishot(sqe, fd, mh, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, 1);
}

static int do_recv(const perf_opts *o)
{
    const unsigned nbufs = o->buffers > 0 ? (unsigned)o->buffers : 4096;
    struct io_uring ring;
    ring_setup(&ring, 256, 2 * nbufs + 4096);
    bufs b;
    bufs_setup(&ring, &b, nbufs, o->size > 64 ? (unsigned)o->size : 2048);
    unsigned char *const mem = b.mem;
    const unsigned stride = b.stride, bufsize = b.bufsize;
    const int mask = b.mask;
    struct io_uring_buf_ring *br = b.br;
    struct msghdr mh;
    int fd = rx_socket(o, &mh);
    int ret;

    perf_rx rx = {0};
    uint32_t drops = 0;
    uint64_t enters = 0, rearms = 0, nobufs = 0;
    unsigned last_seen = 0;
    bool armed = false;
    perf_ready(perf_bound_port(fd));
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        if (!armed) {
            arm_recv(&ring, fd, &mh);
            armed = true;
            rearms++;
        }
        /* --wait-nr N (an experiment for dgring): after a busy turn (32 or
         * more completions), ask the kernel for N completions with a short
         * timeout (BUSY_WAIT_NS). Under DEFER_TASKRUN the kernel then keeps
         * running the multishot receive, which otherwise yields after 32
         * datagrams per io_uring_enter, until N completions are there; it
         * sleeps at most BUSY_WAIT_NS when traffic stops. A zero timeout
         * does not work: the kernel returns after one pass. */
        bool busy = o->wait_nr > 1 && last_seen >= 32;
        struct __kernel_timespec ts = {.tv_sec = 0,
                                       .tv_nsec = busy ? BUSY_WAIT_NS : 50 * 1000000};
        struct io_uring_cqe *cqe;
        ret = io_uring_submit_and_wait_timeout(&ring, &cqe, busy ? (unsigned)o->wait_nr : 1, &ts,
                                               NULL);
        enters++;
        if (ret == -ETIME || ret == -EINTR) {
            if (io_uring_cq_ready(&ring) == 0) {
                if (rx.packets > 0 &&
                    perf_now_ns() - rx.stamp_ns >= (uint64_t)o->idle_ms * 1000000u)
                    break;
                continue;
            }
        } else if (ret < 0) {
            errno = -ret;
            perf_die("io_uring_submit_and_wait_timeout");
        }
        unsigned head, seen = 0, recycled = 0;
        uint64_t before = rx.packets;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            if (cqe->flags & IORING_CQE_F_BUFFER) {
                unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                unsigned char *buf = mem + (size_t)bid * stride;
                if (cqe->res >= 0) {
                    struct io_uring_recvmsg_out *out =
                        io_uring_recvmsg_validate(buf, cqe->res, &mh);
                    if (out) {
                        if (out->controllen > 0) {
                            struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(out, &mh);
                            if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                                memcpy(&drops, CMSG_DATA(c), sizeof(drops));
                        }
                        perf_rx_count(&rx, io_uring_recvmsg_payload(out, &mh),
                                      io_uring_recvmsg_payload_length(out, cqe->res, &mh));
                    }
                }
                io_uring_buf_ring_add(br, buf, bufsize, (unsigned short)bid, mask,
                                      (int)recycled++);
            } else if (cqe->res == -ENOBUFS) {
                nobufs++;
            } else if (cqe->res < 0) {
                errno = -cqe->res;
                perf_die("recvmsg multishot");
            }
            if (!(cqe->flags & IORING_CQE_F_MORE))
                armed = false;
        }
        io_uring_cq_advance(&ring, seen);
        io_uring_buf_ring_advance(br, (int)recycled);
        last_seen = seen;
        perf_rx_batch_done(&rx, before);
        if (o->count && rx.packets >= o->count)
            break;
    }
    CALLGRIND_TOGGLE_COLLECT;
    long long proc = perf_proc_drops(perf_bound_port(fd));
    char extra[160];
    snprintf(extra, sizeof(extra),
             ",\"rxq_ovfl\":%u,\"enters\":%llu,\"rearms\":%llu,\"no_buffers\":%llu", drops,
             (unsigned long long)enters, (unsigned long long)rearms, (unsigned long long)nobufs);
    perf_rx_report(o->wait_nr > 1 ? "liburing-waitnr" : "liburing", &rx, proc, "/proc/net/udp",
                   extra);
    return 0;
}

/* The sender's messages: n of them, each segs datagrams of o->size bytes
 * to 127.0.0.1:--port, one iovec per datagram; with segs > 1 each carries
 * a UDP_SEGMENT cmsg of o->size. */
typedef struct tx_msgs {
    struct sockaddr_in to;
    struct msghdr *msgs;
    struct iovec *iovs;
    unsigned char *bufs;
    char (*ctrl)[CMSG_SPACE(sizeof(uint16_t))];
} tx_msgs;

static void tx_msgs_init(tx_msgs *t, const perf_opts *o, unsigned n, unsigned segs)
{
    size_t sz = o->size ? (size_t)o->size : 1;
    t->to = perf_loopback(o->port);
    t->bufs = calloc((size_t)n * segs, sz);
    t->msgs = calloc(n, sizeof(*t->msgs));
    t->iovs = calloc((size_t)n * segs, sizeof(*t->iovs));
    t->ctrl = calloc(n, sizeof(*t->ctrl));
    if (!t->bufs || !t->msgs || !t->iovs || !t->ctrl)
        perf_die("malloc");
    for (unsigned i = 0; i < n * segs; i++) {
        t->iovs[i].iov_base = t->bufs + (size_t)i * sz;
        t->iovs[i].iov_len = (size_t)o->size;
    }
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *mh = &t->msgs[i];
        mh->msg_name = &t->to;
        mh->msg_namelen = sizeof(t->to);
        mh->msg_iov = &t->iovs[(size_t)i * segs];
        mh->msg_iovlen = segs;
        if (segs > 1)
            perf_set_gso(mh, t->ctrl[i], sizeof(t->ctrl[i]), (uint16_t)o->size);
    }
}

/* Reaps want completions; each successful one is segs datagrams. */
static void tx_reap(struct io_uring *ring, unsigned want, unsigned segs, uint64_t *sent,
                    uint64_t *errors)
{
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    for (;;) {
        unsigned now_seen = 0;
        io_uring_for_each_cqe(ring, head, cqe)
        {
            now_seen++;
            if (cqe->res >= 0)
                *sent += segs;
            else
                *errors += segs;
        }
        io_uring_cq_advance(ring, now_seen);
        seen += now_seen;
        if (seen >= want)
            return;
        io_uring_submit_and_wait(ring, 1);
    }
}

static int do_send(const perf_opts *o)
{
    unsigned n = (unsigned)o->batch;
    unsigned segs = o->gso > 1 ? (unsigned)o->gso : 1;
    struct io_uring ring;
    ring_setup(&ring, n < 256 ? 256 : n, 2 * (n < 256 ? 256 : n));
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        perf_die("socket");
    tx_msgs t;
    tx_msgs_init(&t, o, n, segs);
    uint64_t sent = 0, errors = 0, seq = 0;
    uint64_t start = perf_now_ns();
    double cpu0 = perf_cpu_seconds();
    uint64_t end = start + (uint64_t)(o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        unsigned want = n;
        if (o->count) {
            if (sent + errors >= o->count)
                break;
            uint64_t left = (o->count - (sent + errors) + segs - 1) / segs;
            if (left < want)
                want = (unsigned)left;
        }
        for (unsigned i = 0; i < want; i++) {
            for (unsigned k = 0; k < segs; k++)
                perf_stamp_seq(t.iovs[(size_t)i * segs + k].iov_base, (size_t)o->size, seq++);
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_sendmsg(sqe, fd, &t.msgs[i], 0);
            io_uring_sqe_set_data64(sqe, i);
        }
        int ret = io_uring_submit_and_wait(&ring, want);
        if (ret < 0 && ret != -EINTR) {
            errno = -ret;
            perf_die("io_uring_submit_and_wait");
        }
        tx_reap(&ring, want, segs, &sent, &errors);
        if (!o->count && perf_now_ns() >= end)
            break;
    }
    CALLGRIND_TOGGLE_COLLECT;
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"batch\":%u,\"gso\":%u,\"size\":%d", n, segs > 1 ? segs : 0,
             o->size);
    perf_tx_report(segs > 1 ? "liburing-gso" : "liburing", sent, errors, start, perf_now_ns(),
                   cpu0, extra);
    return 0;
}

/* ---- echoes ----------------------------------------------------------- */

/* sockperf's header (its src/message.h), network byte order: a 64-bit
 * sequence number at 0, 16-bit flags at 8, the 32-bit length at 10 (14
 * bytes). Its server answers messages flagged CLIENT (1) and PONG_REQUEST
 * (2), not WARMUP (4), with CLIENT cleared; so does the sockperf echo. */
#define SP_HEADER 14
#define ECHO_BUFFERS_MAX 4096 /* --buffers beyond this are this */
#define ECHO_SEND_TAG 2 /* user_data of a send: ECHO_SEND_TAG + buffer id */

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* A reply goes out of the received buffer itself: the payload in place,
 * to the name the kernel wrote there; the buffer goes back to the ring
 * when the send completes. */
typedef struct echo {
    struct io_uring ring;
    struct msghdr mh;
    int fd;
    bool sockperf;
    bufs b;
    uint64_t echoed, send_errors, enters;
} echo;

/* sockperf mode: true when the datagram is a ping to answer, its CLIENT
 * flag then cleared in place. */
static bool sockperf_ping(unsigned char *in, unsigned len)
{
    if (len < SP_HEADER)
        return false;
    unsigned flags = (unsigned)in[8] << 8 | in[9];
    if (!(flags & 1) || (flags & 4) || !(flags & 2))
        return false;
    in[9] = (unsigned char)(flags & ~1u);
    return true;
}

static struct io_uring_sqe *echo_sqe(echo *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) { /* the SQ is full mid-walk: hand those to the kernel first */
        (void)io_uring_submit(&e->ring);
        sqe = io_uring_get_sqe(&e->ring);
    }
    return sqe;
}

/* Buffer bid holds a datagram: queues its reply (true), or false when it
 * is not one to answer and the buffer can go straight back. */
static bool echo_answer(echo *e, unsigned bid, int res)
{
    unsigned char *buf = e->b.mem + (size_t)bid * e->b.stride;
    struct io_uring_recvmsg_out *out =
        res >= 0 ? io_uring_recvmsg_validate(buf, res, &e->mh) : NULL;
    if (!out || (out->flags & MSG_TRUNC) || out->namelen > NAME_LEN)
        return false;
    unsigned len = io_uring_recvmsg_payload_length(out, res, &e->mh);
    unsigned char *in = io_uring_recvmsg_payload(out, &e->mh);
    if (e->sockperf && !sockperf_ping(in, len))
        return false;
    struct io_uring_sqe *sqe = echo_sqe(e);
    if (!sqe)
        return false;
    /* sendto as a ring op (IORING_OP_SEND with an address, 6.1+), as
     * dgring sends where the kernel has it: no msghdr or iovec to copy */
    io_uring_prep_send(sqe, e->fd, in, len, 0);
    io_uring_prep_send_set_addr(sqe, io_uring_recvmsg_name(out), (uint16_t)out->namelen);
    io_uring_sqe_set_data64(sqe, ECHO_SEND_TAG + bid);
    return true;
}

static void echo_recycle(echo *e, unsigned bid, unsigned *recycled)
{
    io_uring_buf_ring_add(e->b.br, e->b.mem + (size_t)bid * e->b.stride, e->b.bufsize,
                          (unsigned short)bid, e->b.mask, (int)(*recycled)++);
}

/* Handles the completions there are (sends: their buffer back; receives:
 * a reply queued); returns false when the multishot receive ended and
 * must be armed again. */
static bool echo_reap(echo *e)
{
    unsigned head, seen = 0, recycled = 0;
    bool armed = true;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&e->ring, head, cqe)
    {
        seen++;
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        if (ud >= ECHO_SEND_TAG) {
            if (cqe->res >= 0)
                e->echoed++;
            else
                e->send_errors++;
            echo_recycle(e, (unsigned)(ud - ECHO_SEND_TAG), &recycled);
            continue;
        }
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            if (!echo_answer(e, bid, cqe->res))
                echo_recycle(e, bid, &recycled);
        } else if (cqe->res < 0 && cqe->res != -ENOBUFS) {
            errno = -cqe->res;
            perf_die("recvmsg multishot");
        }
        if (!(cqe->flags & IORING_CQE_F_MORE))
            armed = false;
    }
    io_uring_cq_advance(&e->ring, seen);
    io_uring_buf_ring_advance(e->b.br, (int)recycled);
    return armed;
}

/* The echo loop: one io_uring_enter per turn submits the turn's replies
 * and waits for the next completion; ends after --count replies or on
 * SIGTERM/SIGINT with a JSON line. */
static int do_echo(const perf_opts *o, bool sockperf)
{
    static echo e;
    unsigned nbufs = o->buffers > 0 ? (unsigned)o->buffers : 512;
    if (nbufs > ECHO_BUFFERS_MAX)
        nbufs = ECHO_BUFFERS_MAX;
    e.sockperf = sockperf;
    ring_setup(&e.ring, 256, 2 * nbufs + 1024);
    bufs_setup(&e.ring, &e.b, nbufs, 2048);
    e.fd = rx_socket(o, &e.mh);
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: EINTR ends the wait */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    perf_ready(perf_bound_port(e.fd));
    bool armed = false;
    CALLGRIND_TOGGLE_COLLECT;
    while (!g_stop && !(o->count && e.echoed + e.send_errors >= o->count)) {
        if (!armed)
            arm_recv(&e.ring, e.fd, &e.mh);
        int ret = io_uring_submit_and_wait(&e.ring, 1);
        e.enters++;
        if (ret < 0 && ret != -EINTR) {
            errno = -ret;
            perf_die("io_uring_submit_and_wait");
        }
        armed = echo_reap(&e);
    }
    CALLGRIND_TOGGLE_COLLECT;
    printf("{\"peer\":\"liburing\",\"echoed\":%llu,\"send_errors\":%llu,\"enters\":%llu,"
           "\"buffers\":%u,\"drops\":%lld}\n",
           (unsigned long long)e.echoed, (unsigned long long)e.send_errors,
           (unsigned long long)e.enters, nbufs, perf_proc_drops(perf_bound_port(e.fd)));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    perf_opts o;
    perf_parse(&o, argc, argv);
    if (strcmp(o.mode, "recv") == 0)
        return do_recv(&o);
    if (strcmp(o.mode, "send") == 0)
        return do_send(&o);
    if (strcmp(o.mode, "echo") == 0)
        return do_echo(&o, true);
    if (strcmp(o.mode, "echo-all") == 0)
        return do_echo(&o, false);
    perf_usage(argv[0]);
    return 2;
}

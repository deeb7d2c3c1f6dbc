/* perf/fanout_bench.c: one datagram to many peers per tick, the way a game
 * server sends its tick state: dg_socket_send_many() against a loop of
 * sendmmsg(2) calls over the same destinations.
 *
 *   fanout_bench send-many [--peers N] [--ticks T] [--size B]
 *       a dgring loop (the backend DGRING_BACKEND picks) and one socket;
 *       each tick is one dg_socket_send_many() of B bytes to N peers, and
 *       the next tick starts when its callback ran.
 *   fanout_bench sendmmsg [--peers N] [--ticks T] [--size B]
 *       one socket; each tick is sendmmsg(2) calls (up to 1024 messages
 *       each, the kernel's limit) until all N peers got the datagram. The
 *       mmsghdr array is built once, as the best hand-written code would.
 *   fanout_bench uring-sendmsg [--peers N] [--ticks T] [--size B]
 *   fanout_bench uring-send [--peers N] [--ticks T] [--size B]
 *       raw liburing, the io_uring floor under dg_socket_send_many: dgring's
 *       ring setup (perf/uring_setup.h, its default 256 SQ entries); each
 *       tick is one SQE per peer, IORING_OP_SENDMSG over msghdrs built once
 *       (uring-sendmsg) or IORING_OP_SEND with the address in the SQE, the
 *       op dgring uses where the kernel has it (uring-send); the SQ is
 *       submitted whenever it is full and once at the end, then the tick
 *       waits for its N completions.
 *
 * Defaults: 1000 peers, 2000 ticks, 64 bytes. The peers are N addresses
 * of 127.0.0.0/8 (127.0.x.y) on one port, where one sink socket bound to
 * 0.0.0.0 receives for all of them; the sink never reads (a small queue
 * that the kernel drops into), so both senders do the same kernel work.
 * Prints one JSON line: datagrams, seconds, datagrams/s and the process's
 * CPU time per datagram. perf/run's fanout scenario runs both, pinned and
 * interleaved, and reports the ratio; one run on a shared machine is noise.
 *
 * Build: meson setup build -Dperf=true && ninja -C build perf/fanout_bench
 */
#include <dgring.h>

#include "uring_setup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MMSG_MAX 1024 /* UIO_MAXIOV: the most one sendmmsg takes */

enum mode { MODE_SENDMMSG, MODE_SEND_MANY, MODE_URING_SENDMSG, MODE_URING_SEND };

static const char *const mode_names[] = {"sendmmsg", "send-many", "uring-sendmsg",
                                         "uring-send"};

struct config {
    enum mode mode;
    unsigned peers;
    unsigned ticks;
    size_t size;
};

static void die(const char *what, int code)
{
    fprintf(stderr, "fanout_bench: %s: %s\n", what, code < 0 ? dg_strerror(code) : strerror(errno));
    exit(1);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: fanout_bench send-many|sendmmsg|uring-sendmsg|uring-send "
                    "[--peers N] [--ticks T] [--size B]\n");
    exit(2);
}

static unsigned long number(const char *text, unsigned long max)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v == 0 || v > max)
        usage();
    return v;
}

static struct config parse(int argc, char **argv)
{
    struct config c = {.peers = 1000, .ticks = 2000, .size = 64};
    if (argc < 2)
        usage();
    unsigned m = 0;
    while (m < sizeof(mode_names) / sizeof(mode_names[0]) && strcmp(argv[1], mode_names[m]) != 0)
        m++;
    if (m == sizeof(mode_names) / sizeof(mode_names[0]))
        usage();
    c.mode = (enum mode)m;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--peers") == 0)
            c.peers = (unsigned)number(argv[i + 1], 60000);
        else if (strcmp(argv[i], "--ticks") == 0)
            c.ticks = (unsigned)number(argv[i + 1], 100000000);
        else if (strcmp(argv[i], "--size") == 0)
            c.size = number(argv[i + 1], 1472);
        else
            usage();
    }
    if (argc % 2 != 0)
        usage();
    return c;
}

/* The sink: 0.0.0.0:port, a small queue, never read. */
static int open_sink(int *port)
{
    struct sockaddr_in any = {.sin_family = AF_INET};
    socklen_t len = sizeof(any);
    int small = 4096;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) < 0 ||
        bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0 ||
        getsockname(fd, (struct sockaddr *)&any, &len) < 0)
        die("sink", 0);
    *port = ntohs(any.sin_port);
    return fd;
}

/* Peer i: 127.0.(i / 250).(i % 250 + 1), the sink's port. */
static struct sockaddr_in peer_address(unsigned i, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(0x7f000000u | ((i / 250u) << 8) | (i % 250u + 1u));
    return sin;
}

/* ---- dgring ------------------------------------------------------------- */

struct tick_state {
    int done;
    size_t failed;
    int first_error;
};

static void on_sent(dg_socket *sock, const dg_send_many_result *result, void *data)
{
    struct tick_state *t = data;
    (void)sock;
    t->failed += result->failed;
    if (result->first_error && !t->first_error)
        t->first_error = result->first_error;
    t->done++;
}

static uint64_t run_send_many(const struct config *c, int port, const unsigned char *payload)
{
    dg_loop *loop;
    dg_socket *sock;
    dg_loop_options lo;
    dg_socket_options so = {.type = DG_UDP4};
    dg_addr_key *dests = calloc(c->peers, sizeof(*dests));
    struct tick_state t = {0};
    int rc;
    dg_loop_options_init(&lo);
    lo.recv_buffers = 16;
    lo.recv_buffer_size = 2048;
    if (!dests)
        die("calloc", 0);
    for (unsigned i = 0; i < c->peers; i++) {
        struct sockaddr_in sin = peer_address(i, port);
        dg_addr_key_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &dests[i]);
    }
    if ((rc = dg_loop_new(&loop, &lo)) < 0 ||
        (rc = dg_socket_create(loop, &so, NULL, NULL, &sock)) < 0 ||
        (rc = dg_socket_bind(sock, 0, "127.0.0.1", NULL, NULL)) < 0)
        die("dgring setup", rc);
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    for (unsigned tick = 0; tick < c->ticks; tick++) {
        rc = dg_socket_send_many(sock, payload, c->size, dests, c->peers, on_sent, &t);
        if (rc < 0)
            die("dg_socket_send_many", rc);
        while (t.done <= (int)tick)
            if ((rc = dg_loop_run(loop, DG_RUN_ONCE)) < 0)
                die("dg_loop_run", rc);
    }
    uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
    if (t.failed)
        fprintf(stderr, "fanout_bench: %zu sends failed (%s)\n", t.failed,
                dg_err_name(t.first_error));
    dg_socket_close(sock, NULL, NULL);
    dg_loop_run(loop, DG_RUN_DEFAULT);
    dg_loop_close(loop);
    free(dests);
    return elapsed;
}

/* ---- hand-written senders ------------------------------------------------ */

/* What the sendmmsg and raw liburing senders share: a socket bound to
 * 127.0.0.1, the peers' addresses and a message per peer naming one
 * iovec, all built once. */
struct hand_sender {
    int fd;
    struct sockaddr_in *addrs;
    struct mmsghdr *msgs;
    struct iovec iov;
};

static void hand_sender_init(struct hand_sender *h, const struct config *c, int port,
                             unsigned char *payload)
{
    struct sockaddr_in local = {.sin_family = AF_INET};
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->addrs = calloc(c->peers, sizeof(*h->addrs));
    h->msgs = calloc(c->peers, sizeof(*h->msgs));
    h->iov = (struct iovec){.iov_base = payload, .iov_len = c->size};
    h->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (!h->addrs || !h->msgs || h->fd < 0 ||
        bind(h->fd, (struct sockaddr *)&local, sizeof(local)) < 0)
        die("sender setup", 0);
    for (unsigned i = 0; i < c->peers; i++) {
        h->addrs[i] = peer_address(i, port);
        h->msgs[i].msg_hdr = (struct msghdr){.msg_name = &h->addrs[i],
                                             .msg_namelen = sizeof(h->addrs[i]),
                                             .msg_iov = &h->iov, .msg_iovlen = 1};
    }
}

static void hand_sender_free(struct hand_sender *h)
{
    close(h->fd);
    free(h->msgs);
    free(h->addrs);
}

/* ---- sendmmsg ------------------------------------------------------------ */

static uint64_t run_sendmmsg(const struct config *c, int port, unsigned char *payload)
{
    struct hand_sender h;
    hand_sender_init(&h, c, port, payload);
    int fd = h.fd;
    struct mmsghdr *msgs = h.msgs;
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    for (unsigned tick = 0; tick < c->ticks; tick++) {
        for (unsigned sent = 0; sent < c->peers;) {
            unsigned n = c->peers - sent < MMSG_MAX ? c->peers - sent : MMSG_MAX;
            int r = sendmmsg(fd, msgs + sent, n, 0);
            if (r < 0 && errno != EINTR)
                die("sendmmsg", 0);
            sent += r > 0 ? (unsigned)r : 0;
        }
    }
    uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
    hand_sender_free(&h);
    return elapsed;
}

/* ---- raw liburing ---------------------------------------------------------- */

static struct io_uring_sqe *uring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        int r = io_uring_submit(ring); /* the SQ is full: send what it holds */
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
            die("io_uring_submit", r);
        sqe = io_uring_get_sqe(ring);
    }
    if (!sqe)
        die("io_uring_get_sqe", -EBUSY);
    return sqe;
}

/* Waits for and reaps n completions; returns how many failed. */
static unsigned uring_reap(struct io_uring *ring, unsigned n)
{
    unsigned seen = 0, failed = 0;
    while (seen < n) {
        struct io_uring_cqe *cqe;
        unsigned head, now = 0;
        int r = io_uring_submit_and_wait(ring, 1);
        if (r < 0 && r != -EINTR)
            die("io_uring_submit_and_wait", r);
        io_uring_for_each_cqe(ring, head, cqe)
        {
            now++;
            failed += cqe->res < 0;
        }
        io_uring_cq_advance(ring, now);
        seen += now;
    }
    return failed;
}

static uint64_t run_uring(const struct config *c, int port, unsigned char *payload)
{
    struct hand_sender h;
    struct io_uring ring;
    int rc = perf_ring_setup(&ring, 256, 4 * c->peers + 512);
    if (rc < 0)
        die("io_uring_queue_init_params", rc);
    hand_sender_init(&h, c, port, payload);
    unsigned long failed = 0;
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    for (unsigned tick = 0; tick < c->ticks; tick++) {
        for (unsigned i = 0; i < c->peers; i++) {
            struct io_uring_sqe *sqe = uring_sqe(&ring);
            if (c->mode == MODE_URING_SENDMSG) {
                io_uring_prep_sendmsg(sqe, h.fd, &h.msgs[i].msg_hdr, 0);
            } else {
                io_uring_prep_send(sqe, h.fd, payload, c->size, 0);
                sqe->addr2 = (uint64_t)(uintptr_t)&h.addrs[i];
                sqe->addr_len = (uint16_t)sizeof(h.addrs[i]);
            }
            io_uring_sqe_set_data64(sqe, i);
        }
        failed += uring_reap(&ring, c->peers);
    }
    uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
    if (failed)
        fprintf(stderr, "fanout_bench: %lu sends failed\n", failed);
    io_uring_queue_exit(&ring);
    hand_sender_free(&h);
    return elapsed;
}

static const char *peer_name(const struct config *c)
{
    const char *backend = getenv("DGRING_BACKEND");
    switch (c->mode) {
    case MODE_SEND_MANY:
        return backend && strcmp(backend, "epoll") == 0 ? "dgring-epoll" : "dgring";
    case MODE_URING_SENDMSG:
        return "liburing-sendmsg";
    case MODE_URING_SEND:
        return "liburing-send";
    default:
        return "sendmmsg";
    }
}

int main(int argc, char **argv)
{
    struct config c = parse(argc, argv);
    int port;
    int sink = open_sink(&port);
    unsigned char *payload = calloc(1, c.size);
    if (!payload)
        die("calloc", 0);
    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t elapsed = c.mode == MODE_SEND_MANY  ? run_send_many(&c, port, payload)
                       : c.mode == MODE_SENDMMSG ? run_sendmmsg(&c, port, payload)
                                                 : run_uring(&c, port, payload);
    uint64_t cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    double datagrams = (double)c.peers * c.ticks;
    printf("{\"peer\":\"%s\",\"peers\":%u,\"ticks\":%u,\"size\":%zu,\"packets\":%.0f,"
           "\"seconds\":%.6f,\"pps\":%.0f,\"cpu_ns_per_dgram\":%.1f}\n",
           peer_name(&c),
           c.peers, c.ticks, c.size, datagrams, (double)elapsed / 1e9,
           datagrams / ((double)elapsed / 1e9), (double)cpu / datagrams);
    close(sink);
    free(payload);
    return 0;
}

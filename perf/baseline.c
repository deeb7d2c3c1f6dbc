/* perf/baseline.c: the socket-API baselines and the traffic generator.
 *
 *   baseline recv-mmsg   recvmmsg(2) loop, --batch datagrams per call (64),
 *                        with the senders' addresses (as every peer gets
 *                        them); --gro to receive UDP_GRO super-datagrams
 *   baseline recv-plain  one recvfrom(2) per datagram
 *   baseline send-mmsg   sendmmsg(2), --batch datagrams per call (64), with
 *                        --gso N each message is N segments (UDP_SEGMENT)
 *   baseline send-plain  one sendto(2) per datagram
 *   baseline gen         send-mmsg plus --rate pacing: the generator that
 *                        fills queues (drain) and offers load (stream)
 *   baseline echo        blocking recvfrom/sendto echo answering sockperf's
 *                        ping-pong protocol
 *   baseline echo-mmsg   recvmmsg(--batch, 64) + sendmmsg echo of every
 *                        datagram to its sender (the echo scenario's
 *                        baseline); ends after --count echoes or on SIGTERM
 *
 * Every datagram a sender makes carries a sequence number in its first
 * 8 bytes (little endian), so receivers can count gaps.
 */
#include "common.h"

#include <netinet/udp.h>
#include <signal.h>
#include <sys/time.h>

#define RX_BUF 2048
#define GRO_BUF 65536

static const char *g_peer = "recvmmsg";

static void set_rcvtimeo(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        perf_die("SO_RCVTIMEO");
}

/* Whether a receive loop should end after a timed-out wait. */
static bool idle_over(const perf_rx *rx, int idle_ms)
{
    return rx->packets > 0 && perf_now_ns() - rx->stamp_ns >= (uint64_t)idle_ms * 1000000u;
}

/* ---- recvmmsg ---------------------------------------------------------- */

static int recv_mmsg(const perf_opts *o)
{
    int fd = perf_udp_bound(o->port, o->rcvbuf);
    int one = 1;
    if (o->gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0)
        perf_die("UDP_GRO");
    set_rcvtimeo(fd, 50);
    unsigned n = (unsigned)o->batch;
    size_t bufsize = o->gro ? GRO_BUF : RX_BUF;
    unsigned char *bufs = malloc((size_t)n * bufsize);
    struct mmsghdr *msgs = calloc(n, sizeof(*msgs));
    struct iovec *iovs = calloc(n, sizeof(*iovs));
    char (*ctrl)[64] = calloc(n, 64);
    /* the sender's address of every datagram, as every other peer gets it */
    struct sockaddr_in6 *names = calloc(n, sizeof(*names));
    if (!bufs || !msgs || !iovs || !ctrl || !names)
        perf_die("malloc");
    for (unsigned i = 0; i < n; i++) {
        iovs[i].iov_base = bufs + (size_t)i * bufsize;
        iovs[i].iov_len = bufsize;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    perf_rx rx = {0};
    uint64_t calls = 0;
    perf_ready(perf_bound_port(fd));
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        for (unsigned i = 0; i < n; i++) { /* the kernel shortens these: reset */
            msgs[i].msg_hdr.msg_name = &names[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
            if (o->gro) {
                msgs[i].msg_hdr.msg_control = ctrl[i];
                msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i]);
            }
        }
        int got = recvmmsg(fd, msgs, n, MSG_WAITFORONE, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (idle_over(&rx, o->idle_ms))
                    break;
                continue;
            }
            if (errno == EINTR)
                continue;
            perf_die("recvmmsg");
        }
        calls++;
        uint64_t before = rx.packets;
        for (int i = 0; i < got; i++) {
            const unsigned char *p = iovs[i].iov_base;
            size_t len = msgs[i].msg_len;
            size_t seg = len;
            if (o->gro) {
                struct msghdr *mh = &msgs[i].msg_hdr;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                        int gs;
                        memcpy(&gs, CMSG_DATA(c), sizeof(gs));
                        if (gs > 0)
                            seg = (size_t)gs;
                    }
            }
            if (seg == 0 || seg >= len) {
                perf_rx_count(&rx, p, len);
                continue;
            }
            for (size_t off = 0; off < len; off += seg) /* one per GRO segment */
                perf_rx_count(&rx, p + off, len - off < seg ? len - off : seg);
        }
        perf_rx_batch_done(&rx, before);
        if (o->count && rx.packets >= o->count)
            break;
    }
    CALLGRIND_TOGGLE_COLLECT;
    char extra[64];
    snprintf(extra, sizeof(extra), ",\"syscall_batches\":%llu", (unsigned long long)calls);
    perf_rx_report(g_peer, &rx, perf_proc_drops(perf_bound_port(fd)), "/proc/net/udp", extra);
    return 0;
}

/* ---- recvfrom ---------------------------------------------------------- */

static int recv_plain(const perf_opts *o)
{
    int fd = perf_udp_bound(o->port, o->rcvbuf);
    set_rcvtimeo(fd, 50);
    static unsigned char buf[RX_BUF];
    perf_rx rx = {0};
    perf_ready(perf_bound_port(fd));
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof(from);
        ssize_t len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        if (len < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (idle_over(&rx, o->idle_ms))
                    break;
                continue;
            }
            if (errno == EINTR)
                continue;
            perf_die("recvfrom");
        }
        perf_rx_one(&rx, buf, (size_t)len);
        if (o->count && rx.packets >= o->count)
            break;
    }
    CALLGRIND_TOGGLE_COLLECT;
    perf_rx_report(g_peer, &rx, perf_proc_drops(perf_bound_port(fd)), "/proc/net/udp", NULL);
    return 0;
}

/* ---- Senders ----------------------------------------------------------- */

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* sendmmsg with --batch messages per call; each message is one datagram,
 * or --gso segments of --size bytes. Paced at --rate datagrams/s if set. */
static int send_mmsg(const perf_opts *o)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        perf_die("socket");
    int sndbuf = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
    struct sockaddr_in to = perf_loopback(o->port);
    unsigned n = (unsigned)o->batch;
    unsigned segs = o->gso > 0 ? (unsigned)o->gso : 1;
    size_t msgbytes = (size_t)o->size * segs;
    unsigned char *bufs = calloc(n, msgbytes ? msgbytes : 1);
    struct mmsghdr *msgs = calloc(n, sizeof(*msgs));
    struct iovec *iovs = calloc(n, sizeof(*iovs));
    char (*ctrl)[CMSG_SPACE(sizeof(uint16_t))] = calloc(n, sizeof(*ctrl));
    if (!bufs || !msgs || !iovs || !ctrl)
        perf_die("malloc");
    for (unsigned i = 0; i < n; i++) {
        iovs[i].iov_base = bufs + (size_t)i * msgbytes;
        iovs[i].iov_len = msgbytes;
        struct msghdr *mh = &msgs[i].msg_hdr;
        mh->msg_name = &to;
        mh->msg_namelen = sizeof(to);
        mh->msg_iov = &iovs[i];
        mh->msg_iovlen = 1;
        if (o->gso > 0)
            perf_set_gso(mh, ctrl[i], sizeof(ctrl[i]), (uint16_t)o->size);
    }
    uint64_t seq = 0, errors = 0, sent = 0;
    uint64_t start = perf_now_ns();
    double cpu0 = perf_cpu_seconds();
    uint64_t end = start + (uint64_t)(o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        unsigned want = n;
        uint64_t limit = o->count ? o->count : o->max; /* --max: a cap within --duration */
        if (limit) {
            uint64_t left = (limit - sent + segs - 1) / segs;
            if (left == 0)
                break;
            if (left < want)
                want = (unsigned)left;
        }
        for (unsigned i = 0; i < want; i++)
            for (unsigned k = 0; k < segs; k++)
                perf_stamp_seq(bufs + (size_t)i * msgbytes + (size_t)k * (size_t)o->size,
                               (size_t)o->size,
                               o->warmup ? PERF_WARMUP_SEQ : seq + (uint64_t)i * segs + k);
        int r = sendmmsg(fd, msgs, want, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            errors++;
            if (errors > 1000000)
                perf_die("sendmmsg");
            continue;
        }
        seq += (uint64_t)r * segs;
        sent += (uint64_t)r * segs;
        uint64_t now = perf_now_ns();
        if (!o->count && now >= end)
            break;
        if (o->rate > 0) {
            uint64_t due = start + (uint64_t)((double)sent / o->rate * 1e9);
            if (due > now)
                sleep_until_ns(due < end ? due : end);
        }
    }
    CALLGRIND_TOGGLE_COLLECT;
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"batch\":%u,\"gso\":%d,\"size\":%d", n, o->gso, o->size);
    perf_tx_report(o->gso ? "sendmmsg+gso" : "sendmmsg", sent, errors, start, perf_now_ns(),
                   cpu0, extra);
    return 0;
}

static int send_plain(const perf_opts *o)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        perf_die("socket");
    struct sockaddr_in to = perf_loopback(o->port);
    unsigned char *buf = calloc(1, o->size ? (size_t)o->size : 1);
    if (!buf)
        perf_die("malloc");
    uint64_t sent = 0, errors = 0;
    uint64_t start = perf_now_ns();
    double cpu0 = perf_cpu_seconds();
    uint64_t end = start + (uint64_t)(o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    for (;;) {
        perf_stamp_seq(buf, (size_t)o->size, sent);
        if (sendto(fd, buf, (size_t)o->size, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
            if (errno != EINTR && ++errors > 1000000)
                perf_die("sendto");
            continue;
        }
        sent++;
        if (o->count) {
            if (sent >= o->count)
                break;
        } else if ((sent & 63) == 0 && perf_now_ns() >= end) {
            break;
        }
    }
    CALLGRIND_TOGGLE_COLLECT;
    char extra[64];
    snprintf(extra, sizeof(extra), ",\"batch\":1,\"size\":%d", o->size);
    perf_tx_report("sendto", sent, errors, start, perf_now_ns(), cpu0, extra);
    return 0;
}

/* ---- sockperf echo ----------------------------------------------------- */

/* sockperf's message header (its src/message.h), network byte order:
 * a 64-bit sequence number at 0, 16-bit flags at 8, the 32-bit message
 * length at 10: 14 bytes. Its server answers a message whose flags have
 * CLIENT (1) and PONG_REQUEST (2) and not WARMUP (4), with the client flag
 * cleared; the client ignores anything that still has the client flag. */
#define SP_HEADER 14
#define SP_CLIENT 0x1
#define SP_PONG 0x2
#define SP_WARMUP 0x4

static int echo(const perf_opts *o)
{
    int fd = perf_udp_bound(o->port, o->rcvbuf);
    static unsigned char buf[65536];
    uint64_t answered = 0;
    perf_ready(perf_bound_port(fd));
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            perf_die("recvfrom");
        }
        if (len < SP_HEADER)
            continue;
        uint16_t flags = (uint16_t)(buf[8] << 8 | buf[9]);
        if (!(flags & SP_CLIENT) || (flags & SP_WARMUP) || !(flags & SP_PONG))
            continue;
        flags &= (uint16_t)~SP_CLIENT;
        buf[8] = (unsigned char)(flags >> 8);
        buf[9] = (unsigned char)flags;
        if (sendto(fd, buf, (size_t)len, 0, (struct sockaddr *)&from, fromlen) == len)
            answered++;
    }
    return 0;
}

/* ---- recvmmsg + sendmmsg echo -------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Sends msgs[0, n) back where they came from; returns the failures. */
static uint64_t echo_back(int fd, struct mmsghdr *msgs, int n)
{
    uint64_t failed = 0;
    for (int off = 0; off < n;) {
        int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
        if (s < 0 && errno == EINTR)
            continue;
        if (s < 0) { /* this one failed: skip it */
            failed++;
            s = 1;
        }
        off += s;
    }
    return failed;
}

static int echo_mmsg(const perf_opts *o)
{
    int fd = perf_udp_bound(o->port, o->rcvbuf);
    set_rcvtimeo(fd, 100); /* so a SIGTERM between two checks is seen */
    unsigned n = (unsigned)o->batch;
    unsigned char *bufs = malloc((size_t)n * RX_BUF);
    struct mmsghdr *msgs = calloc(n, sizeof(*msgs));
    struct iovec *iovs = calloc(n, sizeof(*iovs));
    struct sockaddr_in6 *names = calloc(n, sizeof(*names));
    if (!bufs || !msgs || !iovs || !names)
        perf_die("malloc");
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: EINTR ends the wait */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    uint64_t echoed = 0, failed = 0, calls = 0;
    perf_ready(perf_bound_port(fd));
    CALLGRIND_TOGGLE_COLLECT;
    for (unsigned i = 0; i < n; i++) {
        iovs[i] = (struct iovec){.iov_base = bufs + (size_t)i * RX_BUF, .iov_len = RX_BUF};
        msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof(names[i]),
                                          .msg_iov = &iovs[i], .msg_iovlen = 1};
    }
    while (!g_stop && !(o->count && echoed + failed >= o->count)) {
        int got = recvmmsg(fd, msgs, n, MSG_WAITFORONE, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            perf_die("recvmmsg");
        }
        calls++;
        for (int i = 0; i < got; i++) /* the reply is what arrived, to its sender */
            iovs[i].iov_len = msgs[i].msg_len;
        uint64_t bad = echo_back(fd, msgs, got);
        failed += bad;
        echoed += (uint64_t)got - bad;
        for (int i = 0; i < got; i++) { /* the kernel shortened these: reset */
            iovs[i].iov_len = RX_BUF;
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
        }
    }
    CALLGRIND_TOGGLE_COLLECT;
    printf("{\"peer\":\"c-mmsg\",\"echoed\":%llu,\"send_errors\":%llu,\"batches\":%llu,"
           "\"batch\":%u,\"drops\":%lld}\n",
           (unsigned long long)echoed, (unsigned long long)failed, (unsigned long long)calls, n,
           perf_proc_drops(perf_bound_port(fd)));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    perf_opts o;
    perf_parse(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(o.mode, "recv-mmsg") == 0) {
        g_peer = o.gro ? "recvmmsg+gro" : "recvmmsg";
        return recv_mmsg(&o);
    }
    if (strcmp(o.mode, "recv-plain") == 0) {
        g_peer = "recvfrom";
        return recv_plain(&o);
    }
    if (strcmp(o.mode, "send-mmsg") == 0 || strcmp(o.mode, "gen") == 0)
        return send_mmsg(&o);
    if (strcmp(o.mode, "send-plain") == 0)
        return send_plain(&o);
    if (strcmp(o.mode, "echo") == 0)
        return echo(&o);
    if (strcmp(o.mode, "echo-mmsg") == 0)
        return echo_mmsg(&o);
    perf_usage(argv[0]);
    return 2;
}

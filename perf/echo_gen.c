/* perf/echo_gen.c: the load of the echo scenario: many flows into an echo
 * server, every reply counted.
 *
 *   echo_gen --port P [--flows F] [--burst K] [--size B] [--batch N]
 *            [--rate PPS] [--duration S | --count N] [--max N]
 *            [--idle-ms MS] [--warmup]
 *
 * F flows (64) are F source addresses, 127.0.0.2 onwards, on one socket
 * bound to 0.0.0.0 and a free port: each datagram of a sendmmsg batch of N
 * (64) names its source address with IP_PKTINFO. K consecutive datagrams
 * (1) come from one flow, then the next flow's: with K = 1 the flows
 * interleave datagram by datagram, as the clients of a game server do; a
 * larger K is a relay's few busy flows, whose replies an echo may coalesce
 * (dgring's GSO runs do), which K = 1 never lets it. The replies come back
 * to the one socket. B-byte datagrams (64), paced at PPS
 * datagrams per second in total (0 = as fast as this core can), for S
 * seconds or exactly N datagrams. Every datagram carries its sequence
 * number in bytes 0-7 and its send time in bytes 8-15. Replies are read
 * between sends and counted once each in a bitmap of sequence numbers, so
 * lost = sent - replied is exact, whatever the order. When the sending
 * ends it prints "sent N" (perf/run resumes a stopped echo on that), then
 * reads until every reply is back or --idle-ms (300) pass without one, and
 * prints one JSON line: sent, replied, lost, duplicates, the replies its
 * own socket dropped (SO_MEMINFO: the generator fell behind, not the
 * echo), the offered and echoed rates, round-trip percentiles and its own
 * CPU use. --warmup marks every datagram as warm-up (PERF_WARMUP_SEQ):
 * only the replies are counted.
 *
 * Pin it to the other core than the echo (perf/run does).
 */
#include "common.h"

#include <linux/sock_diag.h>
#include <poll.h>

#define RX_BATCH 64
#define RTT_BUCKETS 100001 /* microseconds 0 .. 100 ms, the last one is "more" */
#define PKTINFO_SPACE CMSG_SPACE(sizeof(struct in_pktinfo))

typedef struct gen {
    const perf_opts *o;
    int fd;
    struct sockaddr_in to;
    unsigned char *txbuf; /* batch x size */
    struct mmsghdr *tx;
    struct iovec *txiov;
    unsigned char (*txctl)[PKTINFO_SPACE];
    unsigned char rxbuf[RX_BATCH][2048];
    struct mmsghdr rx[RX_BATCH];
    struct iovec rxiov[RX_BATCH];
    uint64_t *seen; /* one bit per sequence number */
    uint64_t cap;   /* sequence numbers the bitmap holds */
    uint64_t sent, replied, dups, warm_replies, send_errors;
    uint64_t last_reply_ns;
    uint32_t rtt[RTT_BUCKETS];
} gen;

static int gen_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        perf_die("socket");
    int big = 64 << 20; /* replies wait here while the generator sends */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    /* 0.0.0.0: replies to every flow's source address arrive here */
    struct sockaddr_in any = {.sin_family = AF_INET};
    if (bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0)
        perf_die("bind");
    return fd;
}

/* Datagram i of a batch: its buffer, the destination, its control space. */
static void tx_slot(gen *g, unsigned i, size_t size)
{
    g->txiov[i] = (struct iovec){.iov_base = g->txbuf + i * size, .iov_len = (size_t)g->o->size};
    g->tx[i].msg_hdr = (struct msghdr){.msg_name = &g->to, .msg_namelen = sizeof(g->to),
                                       .msg_iov = &g->txiov[i], .msg_iovlen = 1,
                                       .msg_control = g->txctl[i],
                                       .msg_controllen = PKTINFO_SPACE};
    struct cmsghdr *c = CMSG_FIRSTHDR(&g->tx[i].msg_hdr);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
}

static void gen_setup(gen *g, const perf_opts *o)
{
    g->o = o;
    g->fd = gen_socket();
    g->to = perf_loopback(o->port);
    size_t size = o->size ? (size_t)o->size : 1;
    unsigned n = (unsigned)o->batch;
    g->txbuf = calloc(n, size);
    g->tx = calloc(n, sizeof(*g->tx));
    g->txiov = calloc(n, sizeof(*g->txiov));
    g->txctl = calloc(n, sizeof(*g->txctl));
    if (!g->txbuf || !g->tx || !g->txiov || !g->txctl)
        perf_die("malloc");
    for (unsigned i = 0; i < n; i++)
        tx_slot(g, i, size);
    for (unsigned i = 0; i < RX_BATCH; i++) {
        g->rxiov[i] = (struct iovec){.iov_base = g->rxbuf[i], .iov_len = sizeof(g->rxbuf[i])};
        g->rx[i].msg_hdr = (struct msghdr){.msg_iov = &g->rxiov[i], .msg_iovlen = 1};
    }
    /* The most this run can send: --count, --max, or the rate (or a
     * generous 4 M/s when unpaced) over the duration. */
    double span = o->rate > 0 ? o->rate : 4e6;
    g->cap = o->count ? o->count : (uint64_t)(span * o->duration * 1.1) + 65536;
    if (o->max && o->max < g->cap)
        g->cap = o->max;
    if (!o->warmup && !(g->seen = calloc(g->cap / 64 + 1, sizeof(uint64_t))))
        perf_die("calloc");
}

/* One reply: counted once if it is one of ours, its round trip binned. */
static void count_reply(gen *g, const unsigned char *p, size_t len, uint64_t now)
{
    uint64_t seq = perf_seq(p, len), t0;
    if (seq == PERF_WARMUP_SEQ && len >= 8) {
        g->warm_replies++;
        return;
    }
    if (len < 8 || seq >= g->sent || !g->seen || (g->seen[seq / 64] >> (seq % 64) & 1)) {
        g->dups++;
        return;
    }
    g->seen[seq / 64] |= UINT64_C(1) << (seq % 64);
    g->replied++;
    if (len >= 16) {
        memcpy(&t0, p + 8, 8);
        uint64_t us = now > t0 ? (now - t0) / 1000 : 0;
        g->rtt[us < RTT_BUCKETS - 1 ? us : RTT_BUCKETS - 1]++;
    }
}

/* Reads every reply that is ready, waiting at most wait_ns for the first.
 * Returns the number read. */
static uint64_t read_replies(gen *g, uint64_t wait_ns)
{
    struct pollfd p = {.fd = g->fd, .events = POLLIN};
    struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u),
                          .tv_nsec = (long)(wait_ns % 1000000000u)};
    if (wait_ns > 0 && ppoll(&p, 1, &ts, NULL) <= 0)
        return 0;
    uint64_t got = 0;
    int r;
    do {
        r = recvmmsg(g->fd, g->rx, RX_BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0)
            break;
        uint64_t now = perf_now_ns();
        for (int k = 0; k < r; k++)
            count_reply(g, g->rxbuf[k], g->rx[k].msg_len, now);
        got += (uint64_t)r;
        g->last_reply_ns = now;
    } while (r == RX_BATCH);
    return got;
}

/* The source address of flow f: 127.0.0.2 onwards. */
static struct in_addr flow_addr(uint64_t f)
{
    struct in_addr a = {.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)f)};
    return a;
}

/* One sendmmsg of up to --batch datagrams, each from the next flow. */
static void send_batch(gen *g, unsigned want)
{
    const perf_opts *o = g->o;
    size_t size = o->size ? (size_t)o->size : 1;
    uint64_t now = perf_now_ns();
    for (unsigned i = 0; i < want; i++) {
        unsigned char *p = g->txbuf + i * size;
        uint64_t seq = g->sent + i;
        perf_stamp_seq(p, (size_t)o->size, o->warmup ? PERF_WARMUP_SEQ : seq);
        if (o->size >= 16)
            memcpy(p + 8, &now, 8);
        uint64_t flow = seq / (uint64_t)o->burst % (uint64_t)o->flows;
        struct in_pktinfo pi = {.ipi_spec_dst = flow_addr(flow)};
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&g->tx[i].msg_hdr)), &pi, sizeof(pi));
    }
    int r = sendmmsg(g->fd, g->tx, want, 0);
    if (r < 0) {
        /* the first datagram failed (ENOBUFS, EAGAIN): it is lost, and
         * counted as sent */
        g->send_errors++;
        r = 1;
    }
    g->sent += (uint64_t)r;
}

/* Sends for --duration (or --count), paced; reads replies in between.
 * Returns the time sending ended. */
static uint64_t send_phase(gen *g, uint64_t start)
{
    const perf_opts *o = g->o;
    uint64_t end = start + (uint64_t)(o->duration * 1e9);
    for (;;) {
        uint64_t now = perf_now_ns();
        if ((!o->count && now >= end) || g->sent >= g->cap)
            break;
        if (o->rate > 0) {
            uint64_t due = start + (uint64_t)((double)g->sent / o->rate * 1e9);
            if (due > now) {
                uint64_t until = due < end || o->count ? due : end;
                read_replies(g, until - now);
                continue;
            }
        }
        uint64_t left = g->cap - g->sent;
        send_batch(g, left < (uint64_t)o->batch ? (unsigned)left : (unsigned)o->batch);
        read_replies(g, 0);
    }
    return perf_now_ns();
}

/* Replies the generator's own socket dropped: it fell behind. */
static uint64_t gen_drops(const gen *g)
{
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mem);
    if (getsockopt(g->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof(uint32_t))
        return mem[SK_MEMINFO_DROPS];
    return 0;
}

/* The round trip below which fraction q of the replies came back, in us. */
static double rtt_quantile(const gen *g, double q)
{
    uint64_t total = 0, acc = 0;
    for (unsigned i = 0; i < RTT_BUCKETS; i++)
        total += g->rtt[i];
    if (total == 0)
        return 0;
    for (unsigned i = 0; i < RTT_BUCKETS; i++) {
        acc += g->rtt[i];
        if ((double)acc >= q * (double)total)
            return i;
    }
    return RTT_BUCKETS - 1;
}

static void report(const gen *g, uint64_t start, uint64_t sent_end, double cpu0)
{
    double send_s = (double)(sent_end - start) / 1e9;
    double reply_s = g->last_reply_ns > start ? (double)(g->last_reply_ns - start) / 1e9 : 0;
    double cpu = perf_cpu_seconds() - cpu0;
    uint64_t lost = g->o->warmup ? 0 : g->sent - g->replied;
    printf("{\"peer\":\"echo-gen\",\"flows\":%d,\"burst\":%d,\"size\":%d,\"batch\":%d,"
           "\"rate\":%.0f,"
           "\"sent\":%llu,\"replied\":%llu,\"lost\":%llu,\"loss_pct\":%.4f,\"dups\":%llu,"
           "\"warmup_replies\":%llu,\"send_errors\":%llu,\"gen_socket_drops\":%llu,"
           "\"seconds\":%.6f,\"offered_pps\":%.1f,\"echoed_pps\":%.1f,"
           "\"rtt_p50_us\":%.0f,\"rtt_p99_us\":%.0f,\"rtt_p999_us\":%.0f,"
           "\"gen_cpu_seconds\":%.4f,\"gen_cpu_util\":%.3f}\n",
           g->o->flows, g->o->burst, g->o->size, g->o->batch, g->o->rate, (unsigned long long)g->sent,
           (unsigned long long)g->replied, (unsigned long long)lost,
           g->sent ? 100.0 * (double)lost / (double)g->sent : 0.0, (unsigned long long)g->dups,
           (unsigned long long)g->warm_replies, (unsigned long long)g->send_errors,
           (unsigned long long)gen_drops(g), send_s, send_s > 0 ? (double)g->sent / send_s : 0,
           reply_s > 0 ? (double)g->replied / reply_s : 0, rtt_quantile(g, 0.5),
           rtt_quantile(g, 0.99), rtt_quantile(g, 0.999), cpu,
           reply_s > 0 ? cpu / reply_s : 0.0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    perf_opts o;
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    if (!args)
        perf_die("calloc");
    args[0] = argv[0];
    args[1] = "echo-gen"; /* no mode word: every argument is an option */
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    perf_parse(&o, argc + 1, args);
    if (o.port <= 0)
        perf_usage(argv[0]);
    static gen g;
    gen_setup(&g, &o);
    double cpu0 = perf_cpu_seconds();
    uint64_t start = perf_now_ns();
    uint64_t sent_end = send_phase(&g, start);
    printf("sent %llu\n", (unsigned long long)g.sent);
    fflush(stdout);
    uint64_t idle = (uint64_t)o.idle_ms * 1000000u;
    for (uint64_t quiet_since = perf_now_ns(); g.o->warmup ? g.warm_replies < g.sent
                                                            : g.replied < g.sent;) {
        uint64_t now = perf_now_ns();
        if (now - quiet_since >= idle)
            break;
        if (read_replies(&g, idle - (now - quiet_since)) > 0)
            quiet_since = perf_now_ns();
    }
    report(&g, start, sent_end, cpu0);
    return 0;
}

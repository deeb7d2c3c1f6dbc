/* perf/common.h: what every C peer of the benchmark shares.
 *
 * The command-line contract (perf/run relies on it):
 *   receivers   print "ready PORT PID" once bound (flushed), then count
 *               datagrams until --count have arrived or --idle-ms pass
 *               without one (only after the first), then print one JSON
 *               line: packets, bytes, seconds (first datagram to the last
 *               time stamp), pps, drops and where they came from, cpu.
 *   senders     send for --duration seconds (or exactly --count
 *               datagrams) to 127.0.0.1:--port, then print one JSON line.
 *
 * Time stamps: a receiver takes one at its first datagram and then after
 * every 64th (or after every batch, for batch APIs), never per datagram,
 * so the clock is not part of what is measured. pps is the datagrams
 * counted between the first and the last stamp divided by the time
 * between them; "seconds" is that time.
 *
 * Callgrind: the programs call CALLGRIND_TOGGLE_COLLECT around their data
 * path, so `valgrind --tool=callgrind --collect-atstart=no` counts only the
 * instructions spent moving datagrams (the macros do nothing otherwise).
 */
#ifndef PERF_COMMON_H
#define PERF_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define PERF_STAMP_EVERY 64u

static inline uint64_t perf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void perf_die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- Options ----------------------------------------------------------- */

typedef struct perf_opts {
    const char *mode;  /* first argument: recv, send, echo, gen, ... */
    int port;          /* receivers: 0 = any; senders: destination */
    int size;          /* payload bytes */
    double duration;   /* seconds (senders) */
    uint64_t count;    /* stop after this many datagrams (0 = no limit) */
    int idle_ms;       /* receivers: end after this long without data */
    int batch;         /* datagrams per syscall or per submit */
    int window;        /* async senders: datagrams in flight */
    int gso;           /* segments per GSO send (0 = off) */
    bool gro;          /* receivers: UDP_GRO */
    double rate;       /* gen: datagrams per second (0 = flat out) */
    int rcvbuf;        /* SO_RCVBUFFORCE at bind (0 = leave alone) */
    int buffers;       /* dgring: dg_loop_options.recv_buffers (0 = the bench's) */
    bool warmup;       /* gen: mark every datagram as warm-up */
    uint64_t max;      /* gen: stop after this many even before --duration */
    int wait_nr;       /* uring_raw recv: completions to wait for when busy (1) */
    bool zerocopy;     /* dgring_bench send-ebuf: zero-copy sends */
    int flows;         /* echo_gen: source addresses sending (64) */
    int burst;         /* echo_gen: consecutive datagrams from one flow (1) */
} perf_opts;

static inline void perf_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s MODE [--port P] [--size B] [--duration S] [--count N]\n"
            "          [--idle-ms MS] [--batch N] [--window N] [--gso N] [--gro]\n"
            "          [--rate PPS] [--rcvbuf BYTES] [--buffers N] [--warmup] [--max N] [--wait-nr N]\n"
            "          [--zerocopy] [--flows N] [--burst N]\n",
            prog);
    exit(2);
}

static inline void perf_parse(perf_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},   {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'}, {"count", required_argument, NULL, 'c'},
        {"idle-ms", required_argument, NULL, 'i'}, {"batch", required_argument, NULL, 'b'},
        {"window", required_argument, NULL, 'w'}, {"gso", required_argument, NULL, 'g'},
        {"gro", no_argument, NULL, 'G'},          {"rate", required_argument, NULL, 'r'},
        {"rcvbuf", required_argument, NULL, 'R'}, {"buffers", required_argument, NULL, 'B'},
        {"warmup", no_argument, NULL, 'W'},       {"max", required_argument, NULL, 'M'},
        {"wait-nr", required_argument, NULL, 'N'}, {"zerocopy", no_argument, NULL, 'Z'},
        {"flows", required_argument, NULL, 'F'},  {"burst", required_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->size = 64;
    o->duration = 1.0;
    o->idle_ms = 300;
    o->batch = 64;
    o->window = 64;
    o->flows = 64;
    o->burst = 1;
    if (argc < 2 || argv[1][0] == '-')
        perf_usage(argv[0]);
    o->mode = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': o->port = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'c': o->count = strtoull(optarg, NULL, 10); break;
        case 'i': o->idle_ms = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'w': o->window = atoi(optarg); break;
        case 'g': o->gso = atoi(optarg); break;
        case 'G': o->gro = true; break;
        case 'r': o->rate = atof(optarg); break;
        case 'R': o->rcvbuf = atoi(optarg); break;
        case 'B': o->buffers = atoi(optarg); break;
        case 'W': o->warmup = true; break;
        case 'M': o->max = strtoull(optarg, NULL, 10); break;
        case 'N': o->wait_nr = atoi(optarg); break;
        case 'Z': o->zerocopy = true; break;
        case 'F': o->flows = atoi(optarg); break;
        case 'U': o->burst = atoi(optarg); break;
        default: perf_usage(argv[0]);
        }
    }
    if (o->size < 0 || o->size > 65507 || o->batch < 1 || o->batch > 1024 || o->window < 1 ||
        o->flows < 1 || o->flows > 1024 || o->burst < 1)
        perf_usage(argv[0]);
}

/* ---- Sockets ----------------------------------------------------------- */

static inline struct sockaddr_in perf_loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static inline int perf_bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        perf_die("getsockname");
    return ntohs(a.sin_port);
}

/* A UDP socket bound to 127.0.0.1:port, with the receive buffer forced to
 * rcvbuf bytes if asked (perf/run usually sets it from outside instead, the
 * same way for every peer). */
static inline int perf_udp_bound(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        perf_die("socket");
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        perf_die("SO_RCVBUFFORCE");
    struct sockaddr_in a = perf_loopback(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        perf_die("bind");
    return fd;
}

static inline void perf_ready(int port)
{
    printf("ready %d %d\n", port, (int)getpid());
    fflush(stdout);
}

/* The drops column of /proc/net/udp for the socket bound to 127.0.0.1:port
 * (the kernel's count for that socket, whatever the API), or -1. */
static inline long long perf_proc_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        return -1;
    char line[512];
    long long drops = -1;
    char want[32];
    snprintf(want, sizeof(want), "0100007F:%04X", port);
    while (fgets(line, sizeof(line), f)) {
        char local[64];
        if (sscanf(line, " %*d: %63s", local) != 1 || strcmp(local, want) != 0)
            continue;
        /* the drops column is the last one */
        char *last = strrchr(line, ' ');
        while (last && last > line && (last[1] == '\n' || last[1] == '\0')) {
            *last = '\0';
            last = strrchr(line, ' ');
        }
        if (last)
            drops = strtoll(last + 1, NULL, 10);
        break;
    }
    fclose(f);
    return drops;
}

static inline double perf_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- Receive accounting ------------------------------------------------ */

typedef struct perf_rx {
    uint64_t packets;
    uint64_t bytes;
    uint64_t first_ns;      /* the first time stamp */
    uint64_t first_packets; /* datagrams counted at that stamp */
    double first_cpu;       /* process CPU seconds at that stamp */
    uint64_t stamp_ns;      /* the last time stamp */
    uint64_t stamp_packets; /* datagrams counted at that stamp */
    uint64_t seq_first;     /* the first sequence number seen */
    uint64_t seq_max;
    uint64_t warmup;        /* warm-up datagrams, not counted */
    uint64_t max_gap_ns;    /* longest time between two stamps (a stall) */
    uint64_t idle_seen;     /* packets at the last idle check */
    int idle_ticks;         /* idle checks in a row that saw no progress */
} perf_rx;

/* For receivers whose idle check is a timer in their event loop: true when
 * idle_ms passed since the last stamp and two checks in a row saw no new
 * datagram. Two, because loops run due timers before the completions of
 * the same turn: after the process was not scheduled for a while, the
 * first check could otherwise end the run with datagrams still queued. */
static inline bool perf_rx_idle_check(perf_rx *rx, int idle_ms)
{
    bool progress = rx->packets != rx->idle_seen;
    rx->idle_seen = rx->packets;
    if (progress || rx->packets == 0) {
        rx->idle_ticks = 0;
        return false;
    }
    if (perf_now_ns() - rx->stamp_ns < (uint64_t)idle_ms * 1000000u)
        return false;
    return ++rx->idle_ticks >= 2;
}

/* The sequence number the generators put in the first 8 bytes. */
static inline uint64_t perf_seq(const void *data, size_t len)
{
    uint64_t seq = 0;
    if (len >= 8)
        memcpy(&seq, data, 8);
    return seq;
}

/* Warm-up datagrams (perf/run sends some before a measurement so that
 * buffers are resident and JITs warm) carry this sequence number; the
 * receivers count them apart and they start no clock. */
#define PERF_WARMUP_SEQ UINT64_MAX

/* Returns false for a warm-up datagram. */
static inline bool perf_rx_seq(perf_rx *rx, const void *data, size_t len)
{
    uint64_t seq = perf_seq(data, len);
    if (seq == PERF_WARMUP_SEQ && len >= 8) {
        rx->warmup++;
        return false;
    }
    if (rx->packets == 0)
        rx->seq_first = seq;
    if (seq > rx->seq_max)
        rx->seq_max = seq;
    return true;
}

/* Per datagram, for APIs that deliver one at a time. */
static inline void perf_rx_one(perf_rx *rx, const void *data, size_t len)
{
    if (!perf_rx_seq(rx, data, len))
        return;
    rx->packets++;
    rx->bytes += len;
    if (rx->packets == 1) {
        rx->first_ns = rx->stamp_ns = perf_now_ns();
        rx->first_packets = rx->stamp_packets = 1;
        rx->first_cpu = perf_cpu_seconds();
    } else if ((rx->packets & (PERF_STAMP_EVERY - 1)) == 0) {
        uint64_t now = perf_now_ns();
        if (now - rx->stamp_ns > rx->max_gap_ns)
            rx->max_gap_ns = now - rx->stamp_ns;
        rx->stamp_ns = now;
        rx->stamp_packets = rx->packets;
    }
}

/* Per batch, for batch APIs: count the batch's datagrams with
 * perf_rx_count(), then stamp once with perf_rx_batch_done(). */
static inline void perf_rx_count(perf_rx *rx, const void *data, size_t len)
{
    if (!perf_rx_seq(rx, data, len))
        return;
    rx->packets++;
    rx->bytes += len;
}

static inline void perf_rx_batch_done(perf_rx *rx, uint64_t before)
{
    if (rx->packets == before)
        return;
    uint64_t now = perf_now_ns();
    if (before == 0) {
        rx->first_ns = now;
        rx->first_packets = rx->packets;
        rx->first_cpu = perf_cpu_seconds();
    } else if (now - rx->stamp_ns > rx->max_gap_ns) {
        rx->max_gap_ns = now - rx->stamp_ns;
    }
    rx->stamp_ns = now;
    rx->stamp_packets = rx->packets;
}

/* Prints the receiver's JSON line. drops < 0 means unknown. extra is
 * appended inside the object (starting with a comma) or NULL. */
static inline void perf_rx_report(const char *peer, const perf_rx *rx, long long drops,
                                  const char *drops_from, const char *extra)
{
    double seconds = (double)(rx->stamp_ns - rx->first_ns) / 1e9;
    uint64_t counted = rx->stamp_packets - rx->first_packets;
    double pps = seconds > 0 ? (double)counted / seconds : 0.0;
    long long gaps = -1;
    if (rx->packets > 0 && rx->seq_max >= rx->seq_first)
        gaps = (long long)(rx->seq_max - rx->seq_first + 1) - (long long)rx->packets;
    /* CPU time (user + system, all threads) from the first stamp to now:
     * the receive work, kernel copy included, and hardly any idle time. */
    double cpu = perf_cpu_seconds() - rx->first_cpu;
    printf("{\"peer\":\"%s\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,"
           "\"pps\":%.1f,\"drops\":%lld,\"drops_from\":\"%s\",\"seq_gaps\":%lld,"
           "\"cpu_seconds\":%.4f,\"cpu_ns_per_dgram\":%.1f,\"warmup\":%llu,"
           "\"max_gap_ms\":%.3f%s}\n",
           peer, (unsigned long long)rx->packets, (unsigned long long)rx->bytes, seconds, pps,
           drops, drops_from, gaps, cpu, counted ? cpu * 1e9 / (double)counted : 0.0,
           (unsigned long long)rx->warmup, (double)rx->max_gap_ns / 1e6, extra ? extra : "");
    fflush(stdout);
}

/* ---- Send accounting --------------------------------------------------- */

/* The sender's JSON line; cpu_start is perf_cpu_seconds() when sending
 * began. */
static inline void perf_tx_report(const char *peer, uint64_t packets, uint64_t errors,
                                  uint64_t start_ns, uint64_t end_ns, double cpu_start,
                                  const char *extra)
{
    double seconds = (double)(end_ns - start_ns) / 1e9;
    double cpu = perf_cpu_seconds() - cpu_start;
    printf("{\"peer\":\"%s\",\"packets\":%llu,\"errors\":%llu,\"seconds\":%.6f,"
           "\"pps\":%.1f,\"cpu_seconds\":%.4f,\"cpu_ns_per_dgram\":%.1f%s}\n",
           peer, (unsigned long long)packets, (unsigned long long)errors, seconds,
           seconds > 0 ? (double)packets / seconds : 0.0, cpu,
           packets ? cpu * 1e9 / (double)packets : 0.0, extra ? extra : "");
    fflush(stdout);
}

/* Makes mh a GSO send: ctrl (CMSG_SPACE(sizeof(uint16_t)) bytes, the
 * caller's, alive until the send ran) holds a UDP_SEGMENT cmsg of seg
 * bytes per datagram. */
static inline void perf_set_gso(struct msghdr *mh, void *ctrl, size_t ctrllen, uint16_t seg)
{
    mh->msg_control = ctrl;
    mh->msg_controllen = ctrllen;
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
}

/* Payload for senders: the sequence number in the first 8 bytes. */
static inline void perf_stamp_seq(unsigned char *buf, size_t len, uint64_t seq)
{
    if (len >= 8)
        memcpy(buf, &seq, 8);
}

#endif

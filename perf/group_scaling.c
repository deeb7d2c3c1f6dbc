/* perf/group_scaling.c: receive rate of a dgring reuse-port group, and the
 * many-flow generator that feeds it (docs/scaling.md explains the runs).
 *
 *   group_scaling recv --threads N [--pin] [--steer-cpu] [--port P]
 *                      [--warmup S] [--seconds S] [--rcvbuf BYTES]
 *       stream: starts a group of N loops on 127.0.0.1:P (0 = any; prints
 *       "port P"), waits --warmup seconds (default 1), then measures for
 *       --seconds (default 5): per member the datagrams received, the
 *       thread's CPU time and the kernel's drops; prints one line per
 *       member and a total, then stops the group.
 *
 *   group_scaling recv --drain --threads N [--pin] [--rcvbuf-force BYTES]
 *       drain: the same group, each socket's queue enlarged with
 *       SO_RCVBUFFORCE (default 256 MiB; needs CAP_NET_ADMIN). Prints
 *       "port P" and waits; the caller stops the process (SIGSTOP), fills
 *       the queues with `gen`, resumes it (SIGCONT). Each member times its
 *       first and last datagram; once no datagram came for 300 ms the
 *       program prints per member and aggregate rates: receive capacity
 *       with no sender competing (the kernel's receive work was done by
 *       the sender before the loops resumed), then the same as one JSON
 *       line (perf/run's groups scenario reads it). Warm-up datagrams
 *       (gen --mark-warmup) are not counted.
 *
 *   group_scaling recv --drain --raw --threads N [--pin] [--rcvbuf-force BYTES]
 *       the same drain without dgring, its C peer: N threads, each with its
 *       own SO_REUSEPORT socket on 127.0.0.1:P (the kernel's hash picks
 *       the socket) and a blocking recvmmsg(64) loop, pinned as the group's
 *       members are (--pin: thread i on the i-th CPU the process may use),
 *       counted the same way; prints the same lines, JSON peer
 *       "recvmmsg-group". What 2 cores allow for a reuse-port drain.
 *
 *   group_scaling gen --port P [--flows F] [--size B] [--seconds S]
 *                     [--batch N] [--cpu C] [--max N] [--mark-warmup]
 *       F connected UDP sockets (distinct source ports; default 64) send
 *       B-byte datagrams (default 64) to 127.0.0.1:P with sendmmsg, N per
 *       call (default 64), round robin over the flows, flat out for S
 *       seconds (default 8) or until about N datagrams went out;
 *       optionally pinned to CPU C. Each datagram carries a sequence
 *       number in its first 8 bytes, UINT64_MAX with --mark-warmup (the drain
 *       skips those). Prints "sent N", the rate and its CPU time per
 *       datagram.
 *       --balance K: choose the flows so that each of the K sockets bound
 *       to the port gets the same number of them (at most flows / K,
 *       rounded up): each candidate flow sends one warm-up datagram
 *       and is kept if the socket whose queue grew (the rx_queue column of
 *       /proc/net/udp) still has room, else it is closed and a new source
 *       port is tried. Works whatever the steering (the kernel's hash, a
 *       group's program), but only while the receiver is stopped (SIGSTOP),
 *       as in the drain, so that its queues only grow.
 *
 * Build: meson setup build -Dperf=true && ninja -C build perf/group_scaling
 * (perf/meson.build), then run build/perf/group_scaling.
 */
#include <dgring.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_FLOWS 1024
#define MAX_BATCH 1024

struct opts {
    const char *mode;
    unsigned threads;
    bool pin;
    bool steer_cpu;
    bool drain;
    int rcvbuf_force;
    int port;
    double warmup;
    double seconds;
    int rcvbuf;
    int flows;
    int size;
    int batch;
    int cpu;
    unsigned long long max;
    bool mark_warmup;
    bool raw;
    int balance;
};

#define WARMUP_SEQ UINT64_MAX /* perf/common.h's PERF_WARMUP_SEQ */

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void die(const char *what, int code)
{
    fprintf(stderr, "%s: %s\n", what, code < 0 ? dg_strerror(code) : strerror(errno));
    exit(1);
}

/* ---- recv ----------------------------------------------------------------- */

/* One member's numbers at one instant, taken on the member's own thread. */
struct sample {
    uint64_t rx;
    uint64_t drops;
    double cpu;
    atomic_bool done;
};

struct member_probe {
    dg_group *group;
    unsigned index;
    struct sample *slot;
};

static void take_sample(dg_loop *loop, void *arg)
{
    struct member_probe *p = arg;
    dg_socket_stats st;
    (void)loop;
    dg_group_stats(p->group, p->index, &st);
    p->slot->rx = st.rx_datagrams;
    p->slot->drops = st.rx_kernel_drops;
    p->slot->cpu = now_s(CLOCK_THREAD_CPUTIME_ID);
    atomic_store(&p->slot->done, true);
}

static void sample_all(dg_group *g, unsigned n, struct sample *out, struct member_probe *probes)
{
    for (unsigned i = 0; i < n; i++) {
        atomic_store(&out[i].done, false);
        probes[i] = (struct member_probe){.group = g, .index = i, .slot = &out[i]};
        int ret = dg_group_post(g, i, take_sample, &probes[i]);
        if (ret < 0)
            die("dg_group_post", ret);
    }
    for (unsigned i = 0; i < n; i++)
        while (!atomic_load(&out[i].done))
            sleep_s(0.0002);
}

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    (void)data; /* counted by the socket's statistics */
}

/* ---- drain ---------------------------------------------------------------- */

/* One member's drain record; written only by that member's thread, read
 * by main after the member went quiet (atomics make that read defined). */
struct drain_slot {
    atomic_ullong count;
    atomic_ullong first_ns;
    atomic_ullong last_ns;
    double cpu0;
    char pad[64];
};

static struct drain_slot drain_slots[MAX_THREADS];
static int drain_rcvbuf;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One datagram into member d's record: what both drains (dgring's group
 * and the raw recvmmsg threads) do per datagram, so they pay the same. */
static void drain_count(struct drain_slot *d, const void *data, size_t len)
{
    uint64_t seq = 0;
    if (len >= 8)
        memcpy(&seq, data, 8);
    if (seq == WARMUP_SEQ)
        return; /* warm-up: buffers touched, nothing counted */
    uint64_t now = mono_ns();
    unsigned long long n = atomic_load_explicit(&d->count, memory_order_relaxed);
    if (n == 0) {
        atomic_store_explicit(&d->first_ns, now, memory_order_relaxed);
        d->cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    }
    atomic_store_explicit(&d->last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&d->count, n + 1, memory_order_release);
}

static void on_drain_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)data;
    drain_count(&drain_slots[dg_group_index(dg_socket_loop(sock))], msg->data, msg->length);
}

static void on_drain_start(dg_loop *loop, unsigned index, void *data)
{
    (void)loop;
    (void)data;
    int fd = dg_socket_fd(dg_group_socket(dg_group_from_loop(loop), index));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &drain_rcvbuf, sizeof(drain_rcvbuf)) < 0)
        die("SO_RCVBUFFORCE", 0);
}

static void drain_cpu(dg_loop *loop, void *arg)
{
    (void)loop;
    struct sample *s = arg;
    s->cpu = now_s(CLOCK_THREAD_CPUTIME_ID);
    atomic_store(&s->done, true);
}

static uint64_t drain_total(unsigned n)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += atomic_load_explicit(&drain_slots[i].count, memory_order_acquire);
    return total;
}

/* One member's drain, as measured on its own thread. */
struct drain_member {
    uint64_t count, first_ns, last_ns;
    double secs, busy; /* first to last datagram; thread CPU in that time */
    int cpu;           /* the CPU it was pinned to, -1 none */
    dg_socket_stats stats;
};

/* Member i's record, as its thread left it; busy from cpu_end. */
static void drain_member_read(struct drain_member *m, unsigned i, double cpu_end, int cpu)
{
    struct drain_slot *d = &drain_slots[i];
    m->count = atomic_load(&d->count);
    m->first_ns = atomic_load(&d->first_ns);
    m->last_ns = atomic_load(&d->last_ns);
    m->secs = m->count > 1 ? (double)(m->last_ns - m->first_ns) / 1e9 : 0;
    m->busy = cpu_end - d->cpu0;
    m->cpu = cpu;
}

static void drain_collect(dg_group *g, unsigned n, struct drain_member *m)
{
    static struct sample cpu[MAX_THREADS];
    for (unsigned i = 0; i < n; i++) {
        atomic_store(&cpu[i].done, false);
        if (dg_group_post(g, i, drain_cpu, &cpu[i]) < 0)
            die("dg_group_post", 0);
    }
    for (unsigned i = 0; i < n; i++) {
        while (!atomic_load(&cpu[i].done))
            sleep_s(0.0002);
        drain_member_read(&m[i], i, cpu[i].cpu, dg_group_cpu(g, i));
        dg_group_stats(g, i, &m[i].stats);
    }
}

/* The same figures as JSON, for perf/run: aggregate over the span from
 * the first member's first datagram to the last member's last. */
static void drain_json(const char *peer, unsigned n, const struct drain_member *m,
                       uint64_t total, double secs)
{
    double busy = 0, member_sum = 0;
    unsigned long long drops = 0, no_buffers = 0;
    printf("{\"peer\":\"%s\",\"threads\":%u,\"members\":[", peer, n);
    for (unsigned i = 0; i < n; i++) {
        double pps = m[i].secs > 0 ? (double)m[i].count / m[i].secs : 0;
        printf("%s{\"cpu\":%d,\"packets\":%llu,\"seconds\":%.6f,\"pps\":%.1f,"
               "\"busy\":%.3f,\"cpu_ns_per_dgram\":%.1f}",
               i ? "," : "", m[i].cpu, (unsigned long long)m[i].count, m[i].secs, pps,
               m[i].secs > 0 ? m[i].busy / m[i].secs : 0,
               m[i].count ? m[i].busy * 1e9 / (double)m[i].count : 0);
        busy += m[i].busy;
        member_sum += pps;
        drops += m[i].stats.rx_kernel_drops;
        no_buffers += m[i].stats.rx_no_buffers;
    }
    printf("],\"packets\":%llu,\"seconds\":%.6f,\"pps\":%.1f,\"sum_member_pps\":%.1f,"
           "\"cpu_ns_per_dgram\":%.1f,\"drops\":%llu,\"rx_no_buffers\":%llu}\n",
           (unsigned long long)total, secs, secs > 0 ? (double)total / secs : 0, member_sum,
           total ? busy * 1e9 / (double)total : 0, drops, no_buffers);
}

/* The members' lines, the total, the JSON line. */
static void drain_report(const char *peer, unsigned n, const struct drain_member *m)
{
    uint64_t first = UINT64_MAX, last = 0, total = 0;
    for (unsigned i = 0; i < n; i++) {
        printf("member %u cpu %d: %llu datagrams in %.3f s = %.0f datagrams/s, thread cpu "
               "%.3f s (%.0f ns/datagram)\n",
               i, m[i].cpu, (unsigned long long)m[i].count, m[i].secs,
               m[i].secs > 0 ? (double)m[i].count / m[i].secs : 0, m[i].busy,
               m[i].count ? m[i].busy * 1e9 / (double)m[i].count : 0);
        if (m[i].count) {
            first = m[i].first_ns < first ? m[i].first_ns : first;
            last = m[i].last_ns > last ? m[i].last_ns : last;
        }
        total += m[i].count;
    }
    double secs = last > first ? (double)(last - first) / 1e9 : 0;
    printf("drain total: %llu datagrams in %.3f s = %.0f datagrams/s\n",
           (unsigned long long)total, secs, secs > 0 ? (double)total / secs : 0);
    drain_json(peer, n, m, total, secs);
    fflush(stdout);
}

/* Returns once datagrams came and then none for 300 ms. */
static void drain_wait_quiet(unsigned threads)
{
    uint64_t seen = 0;
    for (int quiet = 0; seen == 0 || quiet < 300; quiet++) {
        sleep_s(0.001);
        uint64_t now = drain_total(threads);
        if (now != seen)
            quiet = 0;
        seen = now;
    }
}

static int run_drain(const struct opts *o, dg_group_options *go)
{
    go->handlers.on_message = on_drain_message;
    go->on_start = on_drain_start;
    drain_rcvbuf = o->rcvbuf_force;
    dg_group *g;
    int ret = dg_group_start(&g, go);
    if (ret < 0)
        die("dg_group_start", ret);
    printf("port %d\n", dg_group_port(g));
    fflush(stdout);
    drain_wait_quiet(o->threads);
    static struct drain_member m[MAX_THREADS];
    drain_collect(g, o->threads, m);
    drain_report("dgring-group", o->threads, m);
    dg_group_stop(g);
    return dg_group_join(g, NULL) < 0;
}

/* ---- raw drain: the C peer ------------------------------------------------ */

#define RAW_BATCH 64

struct raw_member {
    unsigned index;
    int fd;
    int cpu;          /* -1: not pinned */
    pthread_t thread;
    double cpu_end;   /* thread CPU when it stopped; read after join */
};

static atomic_bool raw_stop;

/* A SO_REUSEPORT socket on 127.0.0.1:port (0: any), its queue forced. */
static int raw_socket(int port, int rcvbuf)
{
    int one = 1, fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_usec = 20000}; /* to see raw_stop */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("raw socket", 0);
    return fd;
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (cpu >= 0 && sched_setaffinity(0, sizeof(set), &set) < 0)
        die("sched_setaffinity", 0);
}

/* recvmmsg(64) with the senders' addresses, as perf/baseline.c's
 * recvmmsg receiver, until raw_stop; each datagram counted as the
 * group's members count theirs. */
static void *raw_thread(void *arg)
{
    struct raw_member *r = arg;
    unsigned char(*bufs)[2048] = malloc(RAW_BATCH * sizeof(*bufs));
    struct mmsghdr msgs[RAW_BATCH];
    struct iovec iov[RAW_BATCH];
    struct sockaddr_in from[RAW_BATCH];
    pin_self(r->cpu);
    if (!bufs)
        die("malloc", 0);
    for (int i = 0; i < RAW_BATCH; i++) {
        iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
        msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
                                          .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    struct drain_slot *d = &drain_slots[r->index];
    while (!atomic_load_explicit(&raw_stop, memory_order_relaxed)) {
        int n = recvmmsg(r->fd, msgs, RAW_BATCH, MSG_WAITFORONE, NULL);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            die("recvmmsg", 0);
        for (int i = 0; i < n; i++) {
            drain_count(d, bufs[i], msgs[i].msg_len);
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
    }
    r->cpu_end = now_s(CLOCK_THREAD_CPUTIME_ID);
    free(bufs);
    return NULL;
}

static int run_raw_drain(const struct opts *o)
{
    static struct raw_member r[MAX_THREADS];
    static struct drain_member m[MAX_THREADS];
    cpu_set_t allowed;
    int cpus[CPU_SETSIZE], ncpu = 0, port = 0;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        die("sched_getaffinity", 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[ncpu++] = c;
    for (unsigned i = 0; i < o->threads; i++) {
        r[i] = (struct raw_member){.index = i, .cpu = o->pin ? cpus[i % ncpu] : -1};
        r[i].fd = raw_socket(port, o->rcvbuf_force);
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        if (i == 0 && getsockname(r[i].fd, (struct sockaddr *)&sa, &len) == 0)
            port = ntohs(sa.sin_port);
    }
    for (unsigned i = 0; i < o->threads; i++)
        if (pthread_create(&r[i].thread, NULL, raw_thread, &r[i]) != 0)
            die("pthread_create", 0);
    printf("port %d\n", port);
    fflush(stdout);
    drain_wait_quiet(o->threads);
    atomic_store(&raw_stop, true);
    for (unsigned i = 0; i < o->threads; i++) {
        pthread_join(r[i].thread, NULL);
        drain_member_read(&m[i], i, r[i].cpu_end, r[i].cpu);
        close(r[i].fd);
    }
    drain_report("recvmmsg-group", o->threads, m);
    return 0;
}

static int run_recv(const struct opts *o)
{
    dg_group_options go;
    dg_group_options_init(&go);
    go.threads = o->threads;
    go.address = "127.0.0.1";
    go.port = o->port;
    go.pin = o->pin;
    go.steering = o->steer_cpu ? DG_GROUP_STEER_CPU : DG_GROUP_STEER_HASH;
    go.socket.recv_buffer_size = o->rcvbuf;
    go.handlers.on_message = on_message;
    go.loop.recv_buffers = 4096;
    go.loop.recv_buffer_size = 2048;
    if (o->drain && o->raw)
        return run_raw_drain(o);
    if (o->drain)
        return run_drain(o, &go);
    dg_group *g;
    int ret = dg_group_start(&g, &go);
    if (ret < 0)
        die("dg_group_start", ret);
    printf("port %d\n", dg_group_port(g));
    fflush(stdout);
    sleep_s(o->warmup);
    static struct sample a[MAX_THREADS], b[MAX_THREADS];
    static struct member_probe probes[MAX_THREADS];
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s(CLOCK_MONOTONIC);
    sample_all(g, o->threads, a, probes);
    sleep_s(o->seconds);
    sample_all(g, o->threads, b, probes);
    double t1 = now_s(CLOCK_MONOTONIC);
    getrusage(RUSAGE_SELF, &ru1);
    double secs = t1 - t0, total = 0, drops = 0;
    for (unsigned i = 0; i < o->threads; i++) {
        double rx = (double)(b[i].rx - a[i].rx), cpu = b[i].cpu - a[i].cpu;
        double dr = (double)(b[i].drops - a[i].drops);
        total += rx;
        drops += dr;
        printf("member %u cpu %d: %.0f datagrams/s, thread cpu %.2f s (%.0f ns/datagram), "
               "kernel drops %.0f/s\n",
               i, dg_group_cpu(g, i), rx / secs, cpu, rx > 0 ? cpu * 1e9 / rx : 0.0,
               dr / secs);
    }
    double user = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double sys = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("total: %.0f datagrams/s over %.2f s, drops %.0f/s, process cpu user %.2f s "
           "sys %.2f s (%.0f ns/datagram)\n",
           total / secs, secs, drops / secs, user, sys,
           total > 0 ? (user + sys) * 1e9 / total : 0.0);
    dg_group_stop(g);
    return dg_group_join(g, NULL) < 0;
}

/* ---- gen ------------------------------------------------------------------ */

static int flow_socket(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("socket/connect", 0);
    return fd;
}

/* The rx_queue column (bytes charged) of each socket bound to
 * 127.0.0.1:port in /proc/net/udp, with its inode; returns how many. */
static int port_queues(int port, unsigned long *inode, unsigned long *queue, int max)
{
    char want[32], local[64], line[512];
    snprintf(want, sizeof(want), "0100007F:%04X", port);
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        die("/proc/net/udp", 0);
    int n = 0;
    unsigned long tx, rx, ino;
    while (n < max && fgets(line, sizeof(line), f))
        if (sscanf(line, " %*d: %63s %*s %*x %lx:%lx %*x:%*x %*x %*u %*d %lu", local, &tx, &rx,
                   &ino) == 4 &&
            strcmp(local, want) == 0) {
            inode[n] = ino;
            queue[n++] = rx;
        }
    fclose(f);
    return n;
}

/* The inode of the socket a warm-up datagram from fd lands in: the one
 * whose queue grew (the receiver is stopped, so queues only grow). */
static unsigned long probe_flow(int fd, int port)
{
    unsigned long ino0[MAX_THREADS], q0[MAX_THREADS], ino1[MAX_THREADS], q1[MAX_THREADS];
    int n0 = port_queues(port, ino0, q0, MAX_THREADS);
    unsigned char probe[64] = {0};
    uint64_t stamp = WARMUP_SEQ;
    memcpy(probe, &stamp, 8);
    if (send(fd, probe, sizeof(probe), 0) < 0)
        die("probe send", 0);
    for (int tries = 0; tries < 200; tries++) {
        int n1 = port_queues(port, ino1, q1, MAX_THREADS);
        for (int j = 0; j < n1; j++)
            for (int k = 0; k < n0; k++)
                if (ino1[j] == ino0[k] && q1[j] > q0[k])
                    return ino1[j];
        sleep_s(0.0005);
    }
    fprintf(stderr, "gen --balance: no socket on port %d took the probe (is the receiver "
                    "stopped?)\n", port);
    exit(1);
}

/* Opens o->flows flows, at most ceil(flows / balance) landing in each of
 * the port's sockets (--balance; see the comment at the top). */
static void balanced_flows(const struct opts *o, int *fds)
{
    unsigned long inode[MAX_THREADS];
    int count[MAX_THREADS] = {0}, members = 0;
    int cap = (o->flows + o->balance - 1) / o->balance, tries = 0;
    for (int f = 0; f < o->flows; tries++) {
        if (tries > o->flows * 100)
            die("gen --balance: no even split found", 0);
        int fd = flow_socket(o->port);
        unsigned long ino = probe_flow(fd, o->port);
        int j = 0;
        while (j < members && inode[j] != ino)
            j++;
        if (j == members) {
            if (members == o->balance) {
                fprintf(stderr, "gen --balance %d: more sockets on the port\n", o->balance);
                exit(1);
            }
            inode[members++] = ino;
        }
        if (count[j] < cap) {
            count[j]++;
            fds[f++] = fd;
        } else {
            close(fd);
        }
    }
    printf("balanced %d flows over %d sockets:", o->flows, members);
    for (int j = 0; j < members; j++)
        printf(" %d", count[j]);
    printf(" (%d source ports tried)\n", tries);
}

static int run_gen(const struct opts *o)
{
    if (o->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o->cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0)
            die("sched_setaffinity", 0);
    }
    static int fds[MAX_FLOWS];
    static struct mmsghdr msgs[MAX_BATCH];
    static struct iovec iov[MAX_BATCH];
    static unsigned char payload[MAX_BATCH][2048];
    if (o->balance > 1)
        balanced_flows(o, fds);
    else
        for (int f = 0; f < o->flows; f++)
            fds[f] = flow_socket(o->port);
    for (int i = 0; i < o->batch; i++) {
        iov[i] = (struct iovec){.iov_base = payload[i], .iov_len = (size_t)o->size};
        msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
    }
    uint64_t sent = 0, errors = 0, seq = 0;
    double cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID), t0 = now_s(CLOCK_MONOTONIC), t = t0;
    for (int f = 0; t - t0 < o->seconds && !(o->max && sent >= o->max);
         f = (f + 1) % o->flows) {
        for (int i = 0; i < o->batch; i++, seq++) {
            uint64_t stamp = o->mark_warmup ? WARMUP_SEQ : seq;
            if (o->size >= 8)
                memcpy(payload[i], &stamp, 8);
        }
        int n = sendmmsg(fds[f], msgs, (unsigned)o->batch, 0);
        if (n < 0)
            errors++;
        else
            sent += (uint64_t)n;
        if ((sent & 0xfff) < (uint64_t)o->batch)
            t = now_s(CLOCK_MONOTONIC);
    }
    double secs = now_s(CLOCK_MONOTONIC) - t0, cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("sent %llu\n", (unsigned long long)sent);
    printf("gen: %.0f datagrams/s over %.2f s from %d flows, %llu failed calls, cpu %.2f s "
           "(%.0f ns/datagram, receive-side kernel work included)\n",
           (double)sent / secs, secs, o->flows, (unsigned long long)errors, cpu,
           sent ? cpu * 1e9 / (double)sent : 0.0);
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void parse(struct opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, 't'}, {"pin", no_argument, NULL, 'P'},
        {"steer-cpu", no_argument, NULL, 'S'},     {"port", required_argument, NULL, 'p'},
        {"warmup", required_argument, NULL, 'w'},  {"seconds", required_argument, NULL, 's'},
        {"rcvbuf", required_argument, NULL, 'r'},  {"flows", required_argument, NULL, 'f'},
        {"size", required_argument, NULL, 'z'},    {"batch", required_argument, NULL, 'b'},
        {"cpu", required_argument, NULL, 'c'},     {"drain", no_argument, NULL, 'D'},
        {"rcvbuf-force", required_argument, NULL, 'F'}, {"max", required_argument, NULL, 'M'},
        {"mark-warmup", no_argument, NULL, 'W'},   {"raw", no_argument, NULL, 'X'},
        {"balance", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.threads = 1, .warmup = 1, .seconds = 5, .flows = 64, .size = 64,
                       .batch = 64, .cpu = -1, .rcvbuf_force = 256 << 20};
    if (argc < 2)
        goto usage;
    o->mode = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': o->threads = (unsigned)atoi(optarg); break;
        case 'P': o->pin = true; break;
        case 'S': o->steer_cpu = true; break;
        case 'p': o->port = atoi(optarg); break;
        case 'w': o->warmup = atof(optarg); break;
        case 's': o->seconds = atof(optarg); break;
        case 'r': o->rcvbuf = atoi(optarg); break;
        case 'f': o->flows = atoi(optarg); break;
        case 'z': o->size = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'c': o->cpu = atoi(optarg); break;
        case 'D': o->drain = true; break;
        case 'F': o->rcvbuf_force = atoi(optarg); break;
        case 'M': o->max = strtoull(optarg, NULL, 10); break;
        case 'W': o->mark_warmup = true; break;
        case 'X': o->raw = true; break;
        case 'K': o->balance = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (o->threads < 1 || o->threads > MAX_THREADS || o->flows < 1 || o->flows > MAX_FLOWS ||
        o->batch < 1 || o->batch > MAX_BATCH || o->size < 0 || o->size > 2048 ||
        o->balance < 0 || o->balance > MAX_THREADS)
        goto usage;
    return;
usage:
    fprintf(stderr, "usage: %s recv|gen [options]; see the comment at the top of the source\n",
            argv[0]);
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(&o, argc, argv);
    if (strcmp(o.mode, "recv") == 0)
        return run_recv(&o);
    if (strcmp(o.mode, "gen") == 0)
        return run_gen(&o);
    fprintf(stderr, "unknown mode %s\n", o.mode);
    return 2;
}

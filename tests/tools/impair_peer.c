/* impair_peer: both ends of a dgring-impair test, on plain BSD sockets (it
 * uses no dgring, so it checks the proxy with code that shares nothing
 * with it).
 *
 *   impair_peer [--udp6] [--count N] [--size B] [--big-every K --big-size B]
 *               [--flows F] [--block M] [--window W] [--echo]
 *
 * 1. Binds the receiver (the proxy's target) to loopback port 0 and prints
 *    "listening ADDRESS:PORT".
 * 2. Reads the proxy's port from a line on stdin.
 * 3. Sends N numbered datagrams to the proxy from F client sockets (flow
 *    (i / M) % F sends datagram i), never more than W beyond the highest
 *    number received so far, so no socket queue overflows whatever the
 *    proxy holds back (after 50 ms with nothing new it sends on anyway).
 *    Prints "sent N".
 * 4. Reads "R [E]" from stdin: the datagrams the proxy says it forwarded
 *    to the receiver (and, with --echo, back to the clients), waits until
 *    that many arrived (30 s at most), and prints one JSON line:
 *    received, unique, duplicates, reordered (per flow: a number below the
 *    highest seen from that flow, seen for the first time), corrupt (a
 *    failed checksum), big (datagrams of --big-size), min_delay_us (the
 *    least time from send to receipt), digest (FNV-1a of the numbers in
 *    arrival order), returned (--echo), rx_drops (the receiver's
 *    SO_RXQ_OVFL).
 *
 * With --echo the receiver sends every datagram back to where it came
 * from (the proxy's socket of that flow), and the clients count them.
 * Exit status 0 if the counts of step 4 were reached, 1 otherwise, 2 on a
 * bad command line.
 *
 * Payload: u64 number, u64 send time (ns), u32 flow, u32 size, a filler
 * made from the number, and a u32 FNV-1a of all the bytes before it. All
 * little-endian.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 64
#define MIN_SIZE 32
#define STALL_NS 50000000u
#define WAIT_NS 30000000000u

struct config {
    bool udp6, echo;
    unsigned long count, size, big_every, big_size, flows, block, window;
};

struct peer {
    struct config cfg;
    int receiver;
    int clients[MAX_FLOWS];
    struct sockaddr_storage proxy;
    socklen_t proxy_len;
    unsigned char *seen;     /* per number: received once already */
    uint64_t highest[MAX_FLOWS]; /* 1 + highest number seen per flow */
    uint64_t next;           /* next number to send */
    uint64_t top;            /* 1 + highest number received, any flow */
    uint64_t last_progress_ns;
    uint64_t received, unique, duplicates, reordered, corrupt, big, returned, drops;
    uint64_t min_delay_ns;
    uint64_t digest;
    char line[128];
    size_t line_len;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t fnv32(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static size_t size_of(const struct config *cfg, uint64_t number)
{
    if (cfg->big_every > 0 && number % cfg->big_every == cfg->big_every - 1)
        return cfg->big_size;
    return cfg->size;
}

static size_t build(const struct config *cfg, uint64_t number, unsigned flow, unsigned char *buf)
{
    size_t size = size_of(cfg, number);

    put_le(buf, number, 8);
    put_le(buf + 8, now_ns(), 8);
    put_le(buf + 16, flow, 4);
    put_le(buf + 20, size, 4);
    for (size_t i = 24; i < size - 4; i++)
        buf[i] = (unsigned char)(number * 31 + i);
    put_le(buf + size - 4, fnv32(buf, size - 4), 4);
    return size;
}

static bool valid(const unsigned char *buf, size_t len)
{
    return len >= MIN_SIZE && get_le(buf + 20, 4) == len &&
           get_le(buf + len - 4, 4) == fnv32(buf, len - 4) && get_le(buf + 16, 4) < MAX_FLOWS;
}

/* ---- Sockets ---------------------------------------------------------------- */

static int bound_socket(bool udp6)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(udp6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int big = 4 << 20, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (udp6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*in);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0) {
        perror("impair_peer: socket");
        exit(1);
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    return fd;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    getsockname(fd, (struct sockaddr *)&ss, &len);
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static void set_proxy(struct peer *p, int port)
{
    memset(&p->proxy, 0, sizeof(p->proxy));
    if (p->cfg.udp6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&p->proxy;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons((uint16_t)port);
        p->proxy_len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&p->proxy;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((uint16_t)port);
        p->proxy_len = sizeof(*in);
    }
}

/* ---- Receiving ----------------------------------------------------------------- */

static void classify(struct peer *p, const unsigned char *buf, size_t len)
{
    uint64_t number = get_le(buf, 8);
    unsigned flow = (unsigned)get_le(buf + 16, 4);
    uint64_t delay = now_ns() - get_le(buf + 8, 8);

    if (!valid(buf, len) || number >= p->cfg.count) {
        p->corrupt++;
        return;
    }
    if (delay < p->min_delay_ns)
        p->min_delay_ns = delay;
    p->big += p->cfg.big_every > 0 && len == p->cfg.big_size;
    p->digest = (p->digest ^ number) * UINT64_C(1099511628211);
    if (p->seen[number]) {
        p->duplicates++;
        return;
    }
    p->seen[number] = 1;
    p->unique++;
    if (number + 1 < p->highest[flow])
        p->reordered++;
    if (number + 1 > p->highest[flow])
        p->highest[flow] = number + 1;
    if (number + 1 > p->top) {
        p->top = number + 1;
        p->last_progress_ns = now_ns();
    }
}

/* Reads every datagram waiting on the receiver; echoes them with --echo. */
static void drain_receiver(struct peer *p)
{
    unsigned char buf[65536], control[64];
    struct sockaddr_storage from;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};

    for (;;) {
        struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
                             .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof(control)};
        ssize_t n = recvmsg(p->receiver, &msg, 0);
        if (n < 0)
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                p->drops = get_le(CMSG_DATA(c), 4);
        p->received++;
        classify(p, buf, (size_t)n);
        if (p->cfg.echo)
            (void)sendto(p->receiver, buf, (size_t)n, 0, (struct sockaddr *)&from,
                         msg.msg_namelen);
    }
}

static void drain_clients(struct peer *p)
{
    unsigned char buf[65536];

    for (unsigned long f = 0; f < p->cfg.flows; f++)
        while (recv(p->clients[f], buf, sizeof(buf), 0) >= 0)
            p->returned++;
}

/* ---- Sending ---------------------------------------------------------------------- */

/* Sends what the window allows; after a stall, one window more. */
static void send_some(struct peer *p)
{
    unsigned char buf[65536];
    uint64_t now = now_ns();

    if (now - p->last_progress_ns > STALL_NS && p->next > p->top) {
        p->top = p->next; /* the rest is lost or held: go on */
        p->last_progress_ns = now;
    }
    while (p->next < p->cfg.count && p->next < p->top + p->cfg.window) {
        unsigned flow = (unsigned)((p->next / p->cfg.block) % p->cfg.flows);
        size_t len = build(&p->cfg, p->next, flow, buf);
        if (sendto(p->clients[flow], buf, len, 0, (struct sockaddr *)&p->proxy, p->proxy_len) < 0) {
            if (errno == EAGAIN || errno == ENOBUFS)
                return;
            perror("impair_peer: sendto");
            exit(1);
        }
        p->next++;
    }
}

/* ---- Stdin lines ---------------------------------------------------------------------- */

/* True once a whole line is in p->line (without the newline). */
static bool read_line(struct peer *p)
{
    while (p->line_len < sizeof(p->line) - 1) {
        char c;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "impair_peer: stdin ended\n");
                exit(1);
            }
            return false;
        }
        if (c == '\n') {
            p->line[p->line_len] = '\0';
            p->line_len = 0;
            return true;
        }
        p->line[p->line_len++] = c;
    }
    fprintf(stderr, "impair_peer: line too long\n");
    exit(1);
}

/* Waits up to timeout_ms for input on stdin, the receiver and the clients,
 * and reads the sockets. Returns whether stdin is readable. */
static bool wait_io(struct peer *p, int timeout_ms, bool want_stdin)
{
    struct pollfd fds[2 + MAX_FLOWS];
    nfds_t n = 0;

    fds[n++] = (struct pollfd){.fd = want_stdin ? STDIN_FILENO : -1, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->receiver, .events = POLLIN};
    for (unsigned long f = 0; f < p->cfg.flows; f++)
        fds[n++] = (struct pollfd){.fd = p->clients[f], .events = POLLIN};
    if (poll(fds, n, timeout_ms) < 0 && errno != EINTR) {
        perror("impair_peer: poll");
        exit(1);
    }
    drain_receiver(p);
    drain_clients(p);
    return (fds[0].revents & (POLLIN | POLLHUP)) != 0;
}

/* ---- The phases ------------------------------------------------------------------------ */

static unsigned long line_number(struct peer *p, unsigned long max)
{
    while (!(wait_io(p, 100, true) && read_line(p)))
        ;
    unsigned long v = strtoul(p->line, NULL, 10);
    if (v > max) {
        fprintf(stderr, "impair_peer: bad number '%s'\n", p->line);
        exit(1);
    }
    return v;
}

static void send_all(struct peer *p)
{
    p->last_progress_ns = now_ns();
    while (p->next < p->cfg.count) {
        send_some(p);
        wait_io(p, 5, false);
    }
    printf("sent %lu\n", p->cfg.count);
    fflush(stdout);
}

/* Waits for the counts the proxy reported; true if they arrived. */
static bool wait_expected(struct peer *p)
{
    unsigned long want_received, want_returned = 0;
    uint64_t deadline;

    while (!(wait_io(p, 100, true) && read_line(p)))
        ;
    if (sscanf(p->line, "%lu %lu", &want_received, &want_returned) < 1) {
        fprintf(stderr, "impair_peer: bad expectation '%s'\n", p->line);
        exit(1);
    }
    deadline = now_ns() + WAIT_NS;
    while ((p->received < want_received || p->returned < want_returned) && now_ns() < deadline)
        wait_io(p, 100, false);
    wait_io(p, 20, false); /* anything beyond the counts shows as extra */
    return p->received == want_received && p->returned == want_returned;
}

static void report(const struct peer *p)
{
    printf("{\"sent\":%lu,\"received\":%llu,\"unique\":%llu,\"duplicates\":%llu,"
           "\"reordered\":%llu,\"corrupt\":%llu,\"big\":%llu,\"min_delay_us\":%llu,"
           "\"digest\":\"%016llx\",\"returned\":%llu,\"rx_drops\":%llu}\n",
           p->cfg.count, (unsigned long long)p->received, (unsigned long long)p->unique,
           (unsigned long long)p->duplicates, (unsigned long long)p->reordered,
           (unsigned long long)p->corrupt, (unsigned long long)p->big,
           (unsigned long long)(p->received ? p->min_delay_ns / 1000 : 0),
           (unsigned long long)p->digest, (unsigned long long)p->returned,
           (unsigned long long)p->drops);
    fflush(stdout);
}

/* ---- Command line ------------------------------------------------------------------------ */

static bool parse(int argc, char *argv[], struct config *cfg)
{
    static const char *const names[] = {"--count", "--size", "--big-every", "--big-size",
                                        "--flows", "--block", "--window"};
    unsigned long *fields[] = {&cfg->count, &cfg->size, &cfg->big_every, &cfg->big_size,
                               &cfg->flows, &cfg->block, &cfg->window};

    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        if (strcmp(argv[i], "--udp6") == 0 || strcmp(argv[i], "--echo") == 0) {
            *(argv[i][2] == 'u' ? &cfg->udp6 : &cfg->echo) = true;
            continue;
        }
        while (k < sizeof(names) / sizeof(names[0]) && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == sizeof(names) / sizeof(names[0]) || i + 1 == argc)
            return false;
        *fields[k] = strtoul(argv[++i], NULL, 10);
    }
    return cfg->count > 0 && cfg->size >= MIN_SIZE && cfg->size <= 65507 && cfg->flows >= 1 &&
           cfg->flows <= MAX_FLOWS && cfg->block >= 1 && cfg->window >= 1 &&
           (cfg->big_every == 0 || (cfg->big_size >= MIN_SIZE && cfg->big_size <= 65507));
}

int main(int argc, char *argv[])
{
    struct peer p = {.cfg = {.count = 1000, .size = 64, .flows = 1, .block = 1, .window = 64},
                     .min_delay_ns = UINT64_MAX, .digest = UINT64_C(14695981039346656037)};

    if (!parse(argc, argv, &p.cfg)) {
        fprintf(stderr, "usage: impair_peer [--udp6] [--count N] [--size B] [--big-every K "
                        "--big-size B] [--flows F] [--block M] [--window W] [--echo]\n");
        return 2;
    }
    /* stdin is read a line at a time between polls of the sockets */
    (void)fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    p.seen = calloc(p.cfg.count, 1);
    if (p.seen == NULL)
        return 1;
    p.receiver = bound_socket(p.cfg.udp6);
    for (unsigned long f = 0; f < p.cfg.flows; f++)
        p.clients[f] = bound_socket(p.cfg.udp6);
    printf("listening %s:%d\n", p.cfg.udp6 ? "::1" : "127.0.0.1", local_port(p.receiver));
    fflush(stdout);
    set_proxy(&p, (int)line_number(&p, 65535));
    send_all(&p);
    bool complete = wait_expected(&p);
    report(&p);
    free(p.seen);
    return complete ? 0 : 1;
}

/* The scripted test DNS server, the black hole and the probe (see
 * dns_server.h). The server is a thread running a poll() loop over one
 * UDP socket, one TCP listener and its connections, all on 127.0.0.1 and
 * the same ephemeral port (c-ares retries a truncated answer over TCP on
 * the server's port). */
#include "dns_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define MAX_RULES 64
#define MAX_CONNS 16
#define MAX_MSG 1500
#define TYPE_A 1
#define TYPE_AAAA 28

struct rule {
    char name[256];
    dgt_dns_action action;
    bool has4, has6;
    struct in_addr a4;
    struct in6_addr a6;
    unsigned ttl;
    unsigned delay_ms;
    unsigned queries;
};

struct delayed {
    struct delayed *next;
    uint64_t due_ms;
    struct sockaddr_storage to;
    socklen_t tolen;
    size_t len;
    unsigned char buf[MAX_MSG];
};

struct conn {
    int fd;
    size_t len;
    unsigned char buf[4096];
};

struct dgt_dns_server {
    pthread_t thread;
    pthread_mutex_t mutex;
    int udp, tcp, stop_fd, port;
    char address[32];
    struct rule rules[MAX_RULES];
    unsigned nrules;
    unsigned total, tcp_queries;
    struct delayed *delayed;
    struct conn conns[MAX_CONNS];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- Messages -------------------------------------------------------- */

/* The question's name (lower case, dotted), type, and the offset after the
 * question. Returns false for anything malformed. */
static bool parse_question(const unsigned char *q, size_t n, char *name, unsigned *type,
                           size_t *end)
{
    size_t pos = 12, out = 0;
    if (n < 12 || ((q[4] << 8) | q[5]) != 1)
        return false;
    while (pos < n && q[pos] != 0) {
        size_t label = q[pos++];
        if (label > 63 || pos + label > n || out + label + 2 > 255)
            return false;
        if (out > 0)
            name[out++] = '.';
        for (size_t i = 0; i < label; i++)
            name[out++] = (char)tolower(q[pos + i]);
        pos += label;
    }
    name[out] = '\0';
    if (pos + 5 > n)
        return false;
    *type = ((unsigned)q[pos + 1] << 8) | q[pos + 2];
    *end = pos + 5;
    return true;
}

static size_t put_record(unsigned char *out, size_t at, unsigned type, unsigned ttl,
                         const void *rdata, size_t rdlen)
{
    unsigned char *p = out + at;
    p[0] = 0xc0; /* the name: a pointer to the question's */
    p[1] = 12;
    p[2] = (unsigned char)(type >> 8);
    p[3] = (unsigned char)type;
    p[4] = 0;
    p[5] = 1; /* class IN */
    p[6] = (unsigned char)(ttl >> 24);
    p[7] = (unsigned char)(ttl >> 16);
    p[8] = (unsigned char)(ttl >> 8);
    p[9] = (unsigned char)ttl;
    p[10] = 0;
    p[11] = (unsigned char)rdlen;
    memcpy(p + 12, rdata, rdlen);
    return at + 12 + rdlen;
}

static unsigned rcode_of(dgt_dns_action action)
{
    switch (action) {
    case DGT_DNS_NXDOMAIN: return 3;
    case DGT_DNS_SERVFAIL: return 2;
    case DGT_DNS_REFUSED: return 5;
    default: return 0;
    }
}

static struct rule *rule_find(dgt_dns_server *s, const char *name)
{
    for (unsigned i = 0; i < s->nrules; i++)
        if (strcmp(s->rules[i].name, name) == 0)
            return &s->rules[i];
    return NULL;
}

/* Counts the query and copies the rule for it (NXDOMAIN if none). */
static struct rule rule_take(dgt_dns_server *s, const char *name, bool tcp)
{
    struct rule r = {.action = DGT_DNS_NXDOMAIN};
    pthread_mutex_lock(&s->mutex);
    s->total++;
    if (tcp)
        s->tcp_queries++;
    struct rule *found = rule_find(s, name);
    if (found) {
        found->queries++;
        r = *found;
    }
    pthread_mutex_unlock(&s->mutex);
    return r;
}

/* Builds the answer to query q; returns its length, 0 to stay silent. */
static size_t build_answer(dgt_dns_server *s, const unsigned char *q, size_t n, bool tcp,
                           unsigned char *out, unsigned *delay_ms)
{
    char name[256];
    unsigned type;
    size_t end;
    if (!parse_question(q, n, name, &type, &end) || end > 512)
        return 0;
    struct rule r = rule_take(s, name, tcp);
    *delay_ms = tcp ? 0 : r.delay_ms;
    if (r.action == DGT_DNS_DROP)
        return 0;
    memset(out, 0, 12);
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (unsigned char)(0x80 | (q[2] & 0x79) | 0x04); /* QR, opcode, AA, RD */
    out[3] = (unsigned char)(0x80 | rcode_of(r.action));   /* RA, rcode */
    out[5] = 1;
    memcpy(out + 12, q + 12, end - 12);
    size_t at = end;
    bool truncate = r.action == DGT_DNS_TRUNCATE && !tcp;
    bool records = r.action == DGT_DNS_ANSWER || (r.action == DGT_DNS_TRUNCATE && tcp);
    if (truncate)
        out[2] |= 0x02;
    if (records && type == TYPE_A && r.has4) {
        at = put_record(out, at, TYPE_A, r.ttl, &r.a4, 4);
        out[7] = 1;
    } else if (records && type == TYPE_AAAA && r.has6) {
        at = put_record(out, at, TYPE_AAAA, r.ttl, &r.a6, 16);
        out[7] = 1;
    }
    return at;
}

/* ---- UDP ------------------------------------------------------------- */

static void udp_read(dgt_dns_server *s)
{
    unsigned char q[MAX_MSG], out[MAX_MSG];
    struct sockaddr_storage from;
    for (;;) {
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(s->udp, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from,
                             &fromlen);
        if (n < 0)
            return;
        unsigned delay = 0;
        size_t len = build_answer(s, q, (size_t)n, false, out, &delay);
        if (len == 0)
            continue;
        if (delay == 0) {
            sendto(s->udp, out, len, 0, (struct sockaddr *)&from, fromlen);
            continue;
        }
        struct delayed *d = calloc(1, sizeof(*d));
        if (!d)
            continue;
        d->due_ms = now_ms() + delay;
        d->to = from;
        d->tolen = fromlen;
        d->len = len;
        memcpy(d->buf, out, len);
        d->next = s->delayed;
        s->delayed = d;
    }
}

/* Sends the delayed answers that are due; returns ms until the next one,
 * or -1. */
static int delayed_run(dgt_dns_server *s)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    struct delayed **link = &s->delayed;
    while (*link) {
        struct delayed *d = *link;
        if (d->due_ms <= now) {
            sendto(s->udp, d->buf, d->len, 0, (struct sockaddr *)&d->to, d->tolen);
            *link = d->next;
            free(d);
            continue;
        }
        if (d->due_ms < next)
            next = d->due_ms;
        link = &d->next;
    }
    return next == UINT64_MAX ? -1 : (int)(next - now);
}

/* ---- TCP ------------------------------------------------------------- */

static void tcp_accept(dgt_dns_server *s)
{
    int fd = accept4(s->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        if (s->conns[i].fd < 0) {
            s->conns[i].fd = fd;
            s->conns[i].len = 0;
            return;
        }
    }
    close(fd);
}

static void write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 100);
            continue;
        }
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Answers every complete length-prefixed message in the buffer. */
static void tcp_answer_all(dgt_dns_server *s, struct conn *c)
{
    unsigned char out[2 + MAX_MSG];
    while (c->len >= 2) {
        size_t msg = ((size_t)c->buf[0] << 8) | c->buf[1];
        if (c->len < 2 + msg)
            return;
        unsigned delay;
        size_t len = build_answer(s, c->buf + 2, msg, true, out + 2, &delay);
        if (len > 0) {
            out[0] = (unsigned char)(len >> 8);
            out[1] = (unsigned char)len;
            write_all(c->fd, out, len + 2);
        }
        memmove(c->buf, c->buf + 2 + msg, c->len - 2 - msg);
        c->len -= 2 + msg;
    }
}

static void tcp_read(dgt_dns_server *s, struct conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0 || c->len + (size_t)n >= sizeof(c->buf)) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->len += (size_t)n;
    tcp_answer_all(s, c);
}

/* ---- The thread ------------------------------------------------------ */

static void *server_main(void *arg)
{
    dgt_dns_server *s = arg;
    for (;;) {
        struct pollfd p[3 + MAX_CONNS];
        int map[3 + MAX_CONNS];
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = s->stop_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = s->udp, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = s->tcp, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++) {
            if (s->conns[i].fd >= 0) {
                map[n] = i;
                p[n++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
            }
        }
        int wait = delayed_run(s);
        if (poll(p, n, wait) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents)
            udp_read(s);
        if (p[2].revents)
            tcp_accept(s);
        for (nfds_t i = 3; i < n; i++)
            if (p[i].revents)
                tcp_read(s, &s->conns[map[i]]);
    }
    return NULL;
}

/* UDP and TCP on the same port: bind UDP to port 0, then TCP to the port
 * it got; retry if the TCP port is taken. */
static bool server_bind(dgt_dns_server *s)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        s->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s->udp < 0 || bind(s->udp, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
            getsockname(s->udp, (struct sockaddr *)&sin, &len) < 0)
            return false;
        s->tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(s->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s->tcp, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(s->tcp, 16) == 0) {
            s->port = ntohs(sin.sin_port);
            return true;
        }
        close(s->tcp);
        close(s->udp);
    }
    return false;
}

dgt_dns_server *dgt_dns_start(void)
{
    dgt_dns_server *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    for (int i = 0; i < MAX_CONNS; i++)
        s->conns[i].fd = -1;
    pthread_mutex_init(&s->mutex, NULL);
    cr_assert(server_bind(s), "test DNS server: cannot bind UDP and TCP on one port");
    snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", s->port);
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    cr_assert_geq(s->stop_fd, 0);
    cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
    return s;
}

void dgt_dns_stop(dgt_dns_server *s)
{
    uint64_t one = 1;
    cr_assert_eq(write(s->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    pthread_join(s->thread, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        if (s->conns[i].fd >= 0)
            close(s->conns[i].fd);
    while (s->delayed) {
        struct delayed *d = s->delayed;
        s->delayed = d->next;
        free(d);
    }
    close(s->udp);
    close(s->tcp);
    close(s->stop_fd);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

int dgt_dns_port(const dgt_dns_server *s)
{
    return s->port;
}

const char *dgt_dns_address(const dgt_dns_server *s)
{
    return s->address;
}

void dgt_dns_set(dgt_dns_server *s, const char *name, dgt_dns_action action, const char *ipv4,
                 const char *ipv6, unsigned ttl, unsigned delay_ms)
{
    struct rule r = {.action = action, .ttl = ttl, .delay_ms = delay_ms};
    cr_assert_lt(strlen(name), sizeof(r.name));
    for (size_t i = 0; name[i]; i++)
        r.name[i] = (char)tolower((unsigned char)name[i]);
    if (ipv4) {
        cr_assert_eq(inet_pton(AF_INET, ipv4, &r.a4), 1, "bad IPv4 %s", ipv4);
        r.has4 = true;
    }
    if (ipv6) {
        cr_assert_eq(inet_pton(AF_INET6, ipv6, &r.a6), 1, "bad IPv6 %s", ipv6);
        r.has6 = true;
    }
    pthread_mutex_lock(&s->mutex);
    struct rule *old = rule_find(s, r.name);
    if (old) {
        r.queries = old->queries;
        *old = r;
    } else if (s->nrules < MAX_RULES) {
        s->rules[s->nrules++] = r;
    }
    pthread_mutex_unlock(&s->mutex);
}

unsigned dgt_dns_queries(dgt_dns_server *s, const char *name)
{
    char lower[256] = "";
    for (size_t i = 0; name[i] && i < sizeof(lower) - 1; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    pthread_mutex_lock(&s->mutex);
    struct rule *r = rule_find(s, lower);
    unsigned n = r ? r->queries : 0;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

unsigned dgt_dns_tcp_queries(dgt_dns_server *s)
{
    pthread_mutex_lock(&s->mutex);
    unsigned n = s->tcp_queries;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

unsigned dgt_dns_total_queries(dgt_dns_server *s)
{
    pthread_mutex_lock(&s->mutex);
    unsigned n = s->total;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

/* ---- Black hole, dead port, probe -------------------------------------- */

static int udp_bound(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

int dgt_dns_black_hole(void)
{
    int port;
    return udp_bound(&port);
}

int dgt_dns_dead_port(void)
{
    int port;
    close(udp_bound(&port));
    return port;
}

static size_t build_query(const char *name, uint16_t id, unsigned char *q)
{
    size_t at = 12;
    memset(q, 0, 12);
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = 0x01; /* RD */
    q[5] = 1;
    while (*name) {
        size_t label = strcspn(name, ".");
        q[at++] = (unsigned char)label;
        memcpy(q + at, name, label);
        at += label;
        name += label;
        if (*name == '.')
            name++;
    }
    q[at++] = 0;
    q[at++] = 0;
    q[at++] = TYPE_A;
    q[at++] = 0;
    q[at++] = 1;
    return at;
}

bool dgt_dns_probe(int port, const char *name, unsigned timeout_ms)
{
    unsigned char q[300], answer[MAX_MSG];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || strlen(name) > 250)
        return false;
    size_t len = build_query(name, 0x4242, q);
    bool ok = false;
    if (sendto(fd, q, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ok = poll(&p, 1, (int)timeout_ms) == 1 && recv(fd, answer, sizeof(answer), 0) >= 12;
    }
    close(fd);
    return ok;
}

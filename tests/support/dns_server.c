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
#define MAX_MSG 1500     /* a query */
#define MAX_ANSWER 8192  /* an answer: DGT_DNS_HUGE is over 6 KB */
#define TYPE_A 1
#define TYPE_CNAME 5
#define TYPE_AAAA 28
#define HUGE_RECORDS 400
#define OVERSIZED_RDATA 300

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
    unsigned char buf[MAX_ANSWER];
};

/* What to do with one query. */
struct reply {
    size_t len;          /* 0: stay silent */
    unsigned delay_ms;   /* UDP: send this much later */
    bool hang_up;        /* TCP: close the connection instead */
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
    unsigned total, tcp_queries, delayed_sent;
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

/* One resource record at out + at, its name a compression pointer to
 * name_at: type, class IN, ttl, then rdlen bytes of rdata (NULL: zeros).
 * Returns the offset after it. */
static size_t put_record(unsigned char *out, size_t at, size_t name_at, unsigned type,
                         unsigned ttl, const void *rdata, size_t rdlen)
{
    unsigned char *p = out + at;
    p[0] = (unsigned char)(0xc0 | (name_at >> 8));
    p[1] = (unsigned char)name_at;
    p[2] = (unsigned char)(type >> 8);
    p[3] = (unsigned char)type;
    p[4] = 0;
    p[5] = 1; /* class IN */
    p[6] = (unsigned char)(ttl >> 24);
    p[7] = (unsigned char)(ttl >> 16);
    p[8] = (unsigned char)(ttl >> 8);
    p[9] = (unsigned char)ttl;
    p[10] = (unsigned char)(rdlen >> 8);
    p[11] = (unsigned char)rdlen;
    if (rdata)
        memcpy(p + 12, rdata, rdlen);
    else
        memset(p + 12, 0, rdlen);
    return at + 12 + rdlen;
}

static void set_answer_count(unsigned char *out, unsigned count)
{
    out[6] = (unsigned char)(count >> 8);
    out[7] = (unsigned char)count;
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

/* The name's address record for type, if it has one: rdata and length. */
static size_t rule_rdata(const struct rule *r, unsigned type, const void **rdata)
{
    if (type == TYPE_A && r->has4) {
        *rdata = &r->a4;
        return 4;
    }
    if (type == TYPE_AAAA && r->has6) {
        *rdata = &r->a6;
        return 16;
    }
    return 0;
}

/* The honest answers: records (NODATA for a type the name lacks), an
 * rcode, or the TC bit over UDP. */
static size_t honest_answer(const struct rule *r, unsigned type, bool tcp, unsigned char *out,
                            size_t at)
{
    const void *rdata = NULL;
    size_t rdlen = rule_rdata(r, type, &rdata);
    bool records = r->action == DGT_DNS_ANSWER || (r->action == DGT_DNS_TRUNCATE && tcp);

    out[3] |= (unsigned char)rcode_of(r->action);
    if (r->action == DGT_DNS_TRUNCATE && !tcp)
        out[2] |= 0x02;
    if (records && rdlen > 0) {
        at = put_record(out, at, 12, type, r->ttl, rdata, rdlen);
        set_answer_count(out, 1);
    }
    return at;
}

/* "loop2.NAME CNAME NAME" after "NAME CNAME loop2.NAME": a chain that
 * comes back to the name asked, with no address. */
static size_t cname_loop(const struct rule *r, unsigned char *out, size_t at)
{
    static const unsigned char to_loop2[] = {5, 'l', 'o', 'o', 'p', '2', 0xc0, 12};
    static const unsigned char to_name[] = {0xc0, 12};
    size_t loop2_at = at + 12; /* where the first record's rdata starts */

    at = put_record(out, at, 12, TYPE_CNAME, r->ttl, to_loop2, sizeof(to_loop2));
    at = put_record(out, at, loop2_at, TYPE_CNAME, r->ttl, to_name, sizeof(to_name));
    set_answer_count(out, 2);
    return at;
}

/* The hostile answers (see dns_server.h), built after the header and the
 * question (at); q is the query. Returns the length. */
static size_t hostile_answer(const struct rule *r, unsigned type, const unsigned char *q,
                             unsigned char *out, size_t at)
{
    const void *rdata = NULL;
    size_t rdlen = rule_rdata(r, type, &rdata), end;
    struct rule honest = *r;

    honest.action = DGT_DNS_ANSWER;
    switch (r->action) {
    case DGT_DNS_SHORT:
        memcpy(out, q, 5);
        return 5;
    case DGT_DNS_BAD_COUNT:
        set_answer_count(out, 2);
        return at;
    case DGT_DNS_NAME_LOOP: /* the record's name points at itself */
        end = put_record(out, at, at, type, r->ttl, rdata, rdlen);
        set_answer_count(out, 1);
        return end;
    case DGT_DNS_CUT:
        set_answer_count(out, 1);
        return put_record(out, at, 12, type, r->ttl, rdata, rdlen) - rdlen / 2;
    case DGT_DNS_WRONG_ID:
        out[0] ^= 0xa5;
        return honest_answer(&honest, type, false, out, at);
    case DGT_DNS_WRONG_QUESTION:
        out[13] ^= 0x01; /* the first letter of the name: another name */
        return honest_answer(&honest, type, false, out, at);
    case DGT_DNS_OVERSIZED:
        set_answer_count(out, 1);
        return put_record(out, at, 12, type, r->ttl, NULL, OVERSIZED_RDATA);
    case DGT_DNS_HUGE:
        for (unsigned i = 0; i < HUGE_RECORDS; i++)
            at = put_record(out, at, 12, type, r->ttl, rdata, rdlen);
        set_answer_count(out, HUGE_RECORDS);
        return at;
    case DGT_DNS_CNAME_LOOP:
        return cname_loop(r, out, at);
    default:
        return at;
    }
}

static bool is_hostile(dgt_dns_action action)
{
    return action >= DGT_DNS_SHORT;
}

/* Builds the answer to query q; reply->len 0 means silence. */
static void build_answer(dgt_dns_server *s, const unsigned char *q, size_t n, bool tcp,
                         unsigned char *out, struct reply *reply)
{
    char name[256];
    unsigned type;
    size_t end;
    memset(reply, 0, sizeof(*reply));
    if (!parse_question(q, n, name, &type, &end) || end > 512)
        return;
    struct rule r = rule_take(s, name, tcp);
    reply->delay_ms = tcp ? 0 : r.delay_ms;
    if (r.action == DGT_DNS_DROP)
        return;
    if (r.action == DGT_DNS_TC_TCP_CLOSE) {
        r.action = DGT_DNS_TRUNCATE; /* UDP: TC; TCP: hang up */
        reply->hang_up = tcp;
    }
    memset(out, 0, 12);
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (unsigned char)(0x80 | (q[2] & 0x79) | 0x04); /* QR, opcode, AA, RD */
    out[3] = 0x80;                                         /* RA */
    out[5] = 1;
    memcpy(out + 12, q + 12, end - 12);
    if (is_hostile(r.action))
        reply->len = hostile_answer(&r, type, q, out, end);
    else
        reply->len = honest_answer(&r, type, tcp, out, end);
}

/* ---- UDP ------------------------------------------------------------- */

/* Queues an answer to send delay_ms later. */
static void delayed_add(dgt_dns_server *s, const unsigned char *out, const struct reply *reply,
                        const struct sockaddr_storage *to, socklen_t tolen)
{
    struct delayed *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->due_ms = now_ms() + reply->delay_ms;
    d->to = *to;
    d->tolen = tolen;
    d->len = reply->len;
    memcpy(d->buf, out, reply->len);
    d->next = s->delayed;
    s->delayed = d;
}

static void udp_read(dgt_dns_server *s)
{
    unsigned char q[MAX_MSG], out[MAX_ANSWER];
    struct sockaddr_storage from;
    for (;;) {
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(s->udp, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from,
                             &fromlen);
        if (n < 0)
            return;
        struct reply reply;
        build_answer(s, q, (size_t)n, false, out, &reply);
        if (reply.len > 0 && reply.delay_ms == 0)
            sendto(s->udp, out, reply.len, 0, (struct sockaddr *)&from, fromlen);
        else if (reply.len > 0)
            delayed_add(s, out, &reply, &from, fromlen);
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
            pthread_mutex_lock(&s->mutex);
            s->delayed_sent++;
            pthread_mutex_unlock(&s->mutex);
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

/* Answers every complete length-prefixed message in the buffer. Returns
 * false if the connection is to be closed unanswered (hang_up). */
static bool tcp_answer_all(dgt_dns_server *s, struct conn *c)
{
    unsigned char out[2 + MAX_ANSWER];
    while (c->len >= 2) {
        size_t msg = ((size_t)c->buf[0] << 8) | c->buf[1];
        if (c->len < 2 + msg)
            return true;
        struct reply reply;
        build_answer(s, c->buf + 2, msg, true, out + 2, &reply);
        if (reply.hang_up)
            return false;
        if (reply.len > 0) {
            out[0] = (unsigned char)(reply.len >> 8);
            out[1] = (unsigned char)reply.len;
            write_all(c->fd, out, reply.len + 2);
        }
        memmove(c->buf, c->buf + 2 + msg, c->len - 2 - msg);
        c->len -= 2 + msg;
    }
    return true;
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
    if (!tcp_answer_all(s, c)) {
        close(c->fd);
        c->fd = -1;
    }
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

unsigned dgt_dns_delayed_sent(dgt_dns_server *s)
{
    pthread_mutex_lock(&s->mutex);
    unsigned n = s->delayed_sent;
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

/* c-ares on the ring.
 *
 * A loop's resolver owns one current c-ares channel (built on the first
 * DNS lookup, rebuilt after a settings or resolv.conf change) and the
 * retired ones still finishing their queries. c-ares never blocks and
 * never waits: it opens its sockets through our socket functions, tells
 * us what to watch through the socket-state callback, and we watch with
 * ring operations:
 *   - one one-shot IORING_OP_POLL_ADD per c-ares socket, re-armed after
 *     each readiness, removed by user_data (the socket's record) when
 *     c-ares stops watching it; the fd is closed only after that poll's
 *     final completion;
 *   - one ring timeout for the earliest ares_timeout() of all channels,
 *     the core's single timeout (dg__timeout_arm): moved only earlier in
 *     place, never removed and re-added.
 * All SQEs are queued from the loop's prepare step, so the socket-state
 * callback and our socket functions only record what to do.
 *
 * c-ares callbacks (answers, socket state) only record; user callbacks
 * run later from the loop's deferred queue. ares_destroy is called only
 * from the prepare step (retired channels) and the loop's destroy call,
 * never from inside a c-ares callback. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define MAX_ADDRTTLS 16
/* ares_process_fd calls per readiness while bytes remain: c-ares 1.18 reads
 * a TCP answer in pieces, one read per call; the bound keeps one busy
 * socket from starving the loop (a re-armed poll fires again at once). */
#define DRAIN_ROUNDS 64
#define RESOLV_CONF_DEFAULT "/etc/resolv.conf"

int dg__ares_status(int status)
{
    switch (status) {
    case ARES_SUCCESS: return 0;
    case ARES_ENODATA: /* Node's lookup reports both as ENOTFOUND */
    case ARES_ENOTFOUND: return DG_ERR_DNS_NOTFOUND;
    case ARES_EFORMERR: return DG_ERR_DNS_FORMERR;
    case ARES_ESERVFAIL: return DG_ERR_DNS_SERVFAIL;
    case ARES_ENOTIMP: return DG_ERR_DNS_NOTIMP;
    case ARES_EREFUSED: return DG_ERR_DNS_REFUSED;
    case ARES_EBADNAME: return DG_ERR_DNS_BADNAME;
    case ARES_EBADFAMILY: return DG_ERR_DNS_BADFAMILY;
    case ARES_EBADRESP: return DG_ERR_DNS_BADRESP;
    case ARES_ECONNREFUSED: return DG_ERR_DNS_CONNREFUSED;
    case ARES_ETIMEOUT: return DG_ERR_DNS_TIMEOUT;
    case ARES_EOF: return DG_ERR_DNS_EOF;
    case ARES_EFILE: return DG_ERR_DNS_FILE;
    case ARES_ENOMEM: return -ENOMEM;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED: return -ECANCELED;
    default: return DG_ERR_DNS_BADQUERY;
    }
}

/* ---- c-ares sockets ------------------------------------------------------ */

/* The open record for fd of channel ch. An fd stays open until its record
 * is freed, so (channel, fd) is unique among records not closing. */
static struct dg__rsock *sock_find(struct dg__resolver *res, struct dg__channel *ch, int fd)
{
    for (struct dg__rsock *s = res->socks; s; s = s->next)
        if (s->fd == fd && s->channel == ch && !s->closing)
            return s;
    return NULL;
}

static void sock_free(struct dg__resolver *res, struct dg__rsock *s)
{
    struct dg__rsock **link = &res->socks;
    while (*link != s)
        link = &(*link)->next;
    *link = s->next;
    close(s->fd);
    dg__free(s);
}

/* Non-blocking and close-on-exec ourselves: c-ares 1.18 leaves sockets it
 * gets from socket functions as they are. */
static ares_socket_t on_socket_open(int domain, int type, int protocol, void *data)
{
    struct dg__channel *ch = data;
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return ARES_SOCKET_BAD;
    struct dg__rsock *s = dg__calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        errno = ENOMEM;
        ch->socket_nomem = true;
        return ARES_SOCKET_BAD;
    }
    ch->socket_nomem = false;
    s->fd = fd;
    s->type = type;
    s->res = ch->res;
    s->channel = ch;
    s->next = ch->res->socks;
    ch->res->socks = s;
    return fd;
}

/* The fd is closed only after its poll's final completion: closing it
 * while the poll is live would let the next socket reuse the number. */
static int on_socket_close(ares_socket_t fd, void *data)
{
    struct dg__channel *ch = data;
    struct dg__resolver *res = ch->res;
    struct dg__rsock *s = sock_find(res, ch, fd);
    if (!s)
        return close(fd);
    s->closing = true;
    s->channel = NULL;
    s->want = 0;
    res->dirty = true;
    if (!s->poll_inflight && !s->busy && !res->closing)
        sock_free(res, s);
    return 0;
}

static int on_socket_connect(ares_socket_t fd, const struct sockaddr *addr, ares_socklen_t len,
                             void *data)
{
    (void)data;
    return connect(fd, addr, len);
}

static void note_server_error(struct dg__channel *ch, const unsigned char *msg, size_t len);

static ares_ssize_t on_socket_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                       struct sockaddr *from, ares_socklen_t *fromlen,
                                       void *data)
{
    struct dg__channel *ch = data;
    ssize_t n = recvfrom(fd, buf, len, flags, from, fromlen);
    if (n >= 12) {
        struct dg__rsock *s = sock_find(ch->res, ch, fd);
        if (s && s->type == SOCK_DGRAM) /* TCP arrives in pieces: not parsed */
            note_server_error(ch, buf, (size_t)n);
    }
    return n;
}

/* sendmsg with MSG_NOSIGNAL rather than writev: a TCP server that hangs up
 * must give c-ares EPIPE, not kill the process with SIGPIPE. */
static ares_ssize_t on_socket_sendv(ares_socket_t fd, const struct iovec *iov, int iovcnt,
                                    void *data)
{
    (void)data;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static const struct ares_socket_functions socket_functions = {
    .asocket = on_socket_open,
    .aclose = on_socket_close,
    .aconnect = on_socket_connect,
    .arecvfrom = on_socket_recvfrom,
    .asendv = on_socket_sendv,
};

/* The socket-state callback: only records what c-ares wants watched. */
static void on_socket_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dg__channel *ch = data;
    struct dg__rsock *s = sock_find(ch->res, ch, fd);
    if (!s)
        return;
    s->want = (readable ? POLLIN : 0u) | (writable ? POLLOUT : 0u);
    ch->res->dirty = true;
}

/* ---- Polls --------------------------------------------------------------- */

/* Brings one socket's ring state in line with what c-ares wants: arm a
 * poll, or remove one that watches the wrong events or a closed socket.
 * Returns -1 if no SQE could be had (tried again next turn). */
static int sock_sync(struct dg__resolver *res, struct dg__rsock *s)
{
    int err = 0;
    if (s->closing && !s->poll_inflight && !s->busy) {
        sock_free(res, s);
        return 0;
    }
    if (s->poll_inflight) {
        if (s->remove_sent || (!s->closing && s->armed == s->want))
            return 0;
        struct io_uring_sqe *sqe = dg__get_sqe(res->core, &err);
        if (!sqe)
            return -1;
        io_uring_prep_poll_remove(sqe, DG__UD(s, DG__OP_POLL));
        io_uring_sqe_set_data64(sqe, DG__UD(NULL, DG__OP_IGNORE));
        s->remove_sent = true;
        return 0;
    }
    if (s->want == 0 || s->closing)
        return 0;
    struct io_uring_sqe *sqe = dg__get_sqe(res->core, &err);
    if (!sqe)
        return -1;
    io_uring_prep_poll_add(sqe, s->fd, s->want);
    io_uring_sqe_set_data64(sqe, DG__UD(s, DG__OP_POLL));
    s->poll_inflight = true;
    s->armed = s->want;
    return 0;
}

static void socks_sync(struct dg__resolver *res)
{
    struct dg__rsock *next;
    for (struct dg__rsock *s = res->socks; s; s = next) {
        next = s->next;
        if (sock_sync(res, s) < 0) {
            res->dirty = true;
            return;
        }
    }
}

static bool bytes_pending(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* Hands a readiness to c-ares, then keeps reading while bytes remain. */
static void sock_process(struct dg__resolver *res, struct dg__rsock *s, unsigned revents)
{
    ares_channel ares = s->channel->ares;
    bool rd = (revents & (POLLIN | POLLERR | POLLHUP)) && (s->want & POLLIN);
    bool wr = (revents & (POLLOUT | POLLERR | POLLHUP)) && (s->want & POLLOUT);
    if (!rd && !wr)
        return;
    s->busy = true; /* c-ares may close it meanwhile: keep the record */
    ares_process_fd(ares, rd ? s->fd : ARES_SOCKET_BAD, wr ? s->fd : ARES_SOCKET_BAD);
    for (int i = 0; i < DRAIN_ROUNDS && !s->closing && (s->want & POLLIN) && bytes_pending(s->fd);
         i++)
        ares_process_fd(ares, s->fd, ARES_SOCKET_BAD);
    s->busy = false;
    res->timeout_dirty = true;
    dg__queries_finish(res);
}

static void on_poll(struct dg__resolver *res, struct dg__rsock *s, int result)
{
    s->poll_inflight = false;
    s->remove_sent = false;
    s->armed = 0;
    res->dirty = true; /* re-armed in the next prepare if still wanted */
    if (!s->closing && s->channel && result > 0)
        sock_process(res, s, (unsigned)result);
    if (s->closing)
        sock_free(res, s);
}

/* ---- The timeout ----------------------------------------------------------- */

/* The earliest deadline c-ares has, CLOCK_MONOTONIC ms, rounded up by a
 * millisecond so c-ares sees the time as passed; UINT64_MAX if none. */
static uint64_t ares_deadline(struct dg__resolver *res)
{
    uint64_t best = UINT64_MAX, now = dg__clock_ms();
    for (struct dg__channel *ch = res->channels; ch; ch = ch->next) {
        struct timeval tv;
        if (ch->queries == 0 || !ares_timeout(ch->ares, NULL, &tv))
            continue;
        uint64_t ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u + 1u;
        if (now + ms < best)
            best = now + ms;
    }
    return best;
}

static void timeout_sync(struct dg__resolver *res)
{
    uint64_t next = ares_deadline(res);
    /* None: a timeout armed for later fires harmlessly. No SQE: still
     * dirty, tried again next turn. */
    if (next == UINT64_MAX || dg__timeout_arm(res->core, &res->timeout, next * 1000000u))
        res->timeout_dirty = false;
}

static void on_timeout(struct dg__resolver *res)
{
    dg__timeout_ended(&res->timeout);
    res->timeout_dirty = true;
    res->dirty = true;
    for (struct dg__channel *ch = res->channels; ch; ch = ch->next)
        if (ch->queries > 0)
            ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dg__queries_finish(res);
}

/* ---- Channels ------------------------------------------------------------ */

static const char *resolv_conf_path(const struct dg__resolver *res)
{
    return res->resolv_conf ? res->resolv_conf : RESOLV_CONF_DEFAULT;
}

/* Servers from dg_loop_set_dns_servers, else DGRING_DNS_SERVERS; with
 * neither, c-ares keeps resolv.conf's. */
static int channel_set_servers(struct dg__channel *ch)
{
    struct dg__resolver *res = ch->res;
    struct dg__server env[DG__SERVERS_MAX];
    const struct dg__server *list = res->servers;
    int n = (int)res->nservers;
    if (n == 0) {
        const char *text = getenv("DGRING_DNS_SERVERS");
        if (!text || text[0] == '\0')
            return 0;
        n = dg__servers_parse(text, env, DG__SERVERS_MAX);
        if (n < 0)
            return n;
        list = env;
    }
    struct ares_addr_port_node nodes[DG__SERVERS_MAX];
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < n; i++) {
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
        nodes[i].family = list[i].family;
        memcpy(&nodes[i].addr, &list[i].addr, sizeof(list[i].addr));
        nodes[i].udp_port = list[i].port;
        nodes[i].tcp_port = list[i].port;
    }
    int status = ares_set_servers_ports(ch->ares, nodes);
    return status == ARES_SUCCESS ? 0 : dg__ares_status(status);
}

static int channel_init(struct dg__resolver *res, struct dg__channel *ch)
{
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    o.sock_state_cb = on_socket_state;
    o.sock_state_cb_data = ch;
    o.timeout = (int)res->options.timeout_ms;
    o.tries = (int)res->options.tries;
    o.lookups = (char *)"b"; /* hosts are ours (hosts.c); c-ares only does DNS */
    if (res->resolv_conf) {
        o.resolvconf_path = res->resolv_conf;
        mask |= ARES_OPT_RESOLVCONF;
    }
    /* Taken before c-ares reads the file, so an edit racing with the read
     * is seen as a change at the next check. */
    dg__file_id_get(resolv_conf_path(res), &ch->resolv_id);
    int status = ares_init_options(&ch->ares, &o, mask);
    if (status != ARES_SUCCESS)
        return dg__ares_status(status);
    ares_set_socket_functions(ch->ares, &socket_functions, ch);
    int ret = channel_set_servers(ch);
    if (ret < 0)
        ares_destroy(ch->ares);
    return ret;
}

static int channel_new(struct dg__resolver *res, struct dg__channel **out)
{
    struct dg__channel *ch = dg__calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->res = res;
    ch->generation = ++res->generation;
    int ret = channel_init(res, ch);
    if (ret < 0) {
        dg__free(ch);
        return ret;
    }
    ch->next = res->channels;
    res->channels = ch;
    res->stats.channels++;
    res->resolv_checked_ms = dg__clock_ms();
    *out = ch;
    return 0;
}

static struct dg__channel *channel_current(struct dg__resolver *res)
{
    struct dg__channel *ch = res->channels;
    return ch && !ch->retired ? ch : NULL;
}

void dg__channel_retire(struct dg__resolver *res)
{
    struct dg__channel *ch = channel_current(res);
    if (ch) {
        ch->retired = true;
        res->dirty = true; /* reaped in prepare once its queries are done */
    }
}

/* c-ares 1.18 has no reinit: a changed resolv.conf means a new channel. */
static void channel_check_resolv_conf(struct dg__resolver *res, uint64_t now)
{
    struct dg__channel *ch = channel_current(res);
    if (!ch || now - res->resolv_checked_ms < DG__FILE_CHECK_MS)
        return;
    res->resolv_checked_ms = now;
    struct dg__file_id id;
    dg__file_id_get(resolv_conf_path(res), &id);
    if (!dg__file_id_equal(&id, &ch->resolv_id)) {
        dg__channel_retire(res);
        dg__cache_clear(&res->cache); /* search domains may give names new meanings */
    }
}

/* Never called from inside a c-ares callback. */
static void channel_destroy(struct dg__resolver *res, struct dg__channel *ch)
{
    struct dg__channel **link = &res->channels;
    while (*link != ch)
        link = &(*link)->next;
    *link = ch->next;
    ares_destroy(ch->ares); /* pending queries call back with EDESTRUCTION */
    for (struct dg__rsock *s = res->socks; s; s = s->next) {
        if (s->channel == ch) { /* not closed by c-ares: should not happen */
            s->channel = NULL;
            s->closing = true;
        }
    }
    res->dirty = true;
    dg__queries_finish(res);
    dg__free(ch);
}

static void channels_reap(struct dg__resolver *res)
{
    struct dg__channel *next;
    for (struct dg__channel *ch = res->channels; ch; ch = next) {
        next = ch->next;
        if (ch->retired && ch->queries == 0)
            channel_destroy(res, ch);
    }
}

/* ---- Queries --------------------------------------------------------------- */

static struct dg__query **inflight_bucket(struct dg__resolver *res, uint32_t hash)
{
    return &res->inflight[hash % DG__INFLIGHT_BUCKETS];
}

static void inflight_unlink(struct dg__resolver *res, struct dg__query *q)
{
    struct dg__query **link = inflight_bucket(res, q->hash);
    while (*link != q)
        link = &(*link)->hnext;
    *link = q->hnext;
}

static void query_attach(struct dg__query *q, struct dg__resolve_req *req)
{
    req->query = q;
    dg__list_insert_head(&q->waiters, &req->link);
}

/* The first address and the smallest TTL of an A or AAAA answer. An
 * answer with records but no address is "not found" too, as c-ares says,
 * but unlike a plain NXDOMAIN or NODATA it is not negatively cached. */
static int parse_answer(struct dg__query *q, const unsigned char *abuf, int alen)
{
    int n = MAX_ADDRTTLS, status, ttl;
    q->odd_negative = alen >= 12 && (abuf[6] != 0 || abuf[7] != 0);
    if (q->family == AF_INET) {
        struct ares_addrttl ttls[MAX_ADDRTTLS];
        status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
        if (status != ARES_SUCCESS || n <= 0)
            return status != ARES_SUCCESS ? status : ARES_ENODATA;
        q->answer.addr.v4 = ttls[0].ipaddr;
        ttl = ttls[0].ttl;
        for (int i = 1; i < n; i++)
            ttl = ttls[i].ttl < ttl ? ttls[i].ttl : ttl;
    } else {
        struct ares_addr6ttl ttls[MAX_ADDRTTLS];
        status = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
        if (status != ARES_SUCCESS || n <= 0)
            return status != ARES_SUCCESS ? status : ARES_ENODATA;
        memcpy(&q->answer.addr.v6, &ttls[0].ip6addr, sizeof(q->answer.addr.v6));
        ttl = ttls[0].ttl;
        for (int i = 1; i < n; i++)
            ttl = ttls[i].ttl < ttl ? ttls[i].ttl : ttl;
    }
    q->answer.family = q->family;
    q->ttl_s = ttl > 0 ? (uint32_t)ttl : 0;
    return ARES_SUCCESS;
}

/* c-ares 1.18 drops an answer whose rcode is SERVFAIL, NOTIMP or REFUSED
 * to try the next server, and when none is left reports ECONNREFUSED
 * (later versions keep the rcode). So that users see Node's codes, each
 * such UDP answer is noted on the query it answers, matched by its
 * question (name and type); a name expanded with a search domain does not
 * match and keeps c-ares' code. */
static void note_server_error(struct dg__channel *ch, const unsigned char *msg, size_t len)
{
    static const int rcode_status[16] = {[2] = ARES_ESERVFAIL, [4] = ARES_ENOTIMP,
                                         [5] = ARES_EREFUSED};
    char name[DG__NAME_MAX + 1];
    size_t pos = 12, out = 0;
    if (len < 12 || rcode_status[msg[3] & 0x0f] == 0 || ((msg[4] << 8) | msg[5]) != 1)
        return;
    while (pos < len && msg[pos] != 0) {
        size_t label = msg[pos++];
        if (label > 63 || pos + label > len || out + label + 1 > DG__NAME_MAX)
            return;
        if (out > 0)
            name[out++] = '.';
        for (size_t i = 0; i < label; i++)
            name[out++] = (char)tolower(msg[pos + i]);
        pos += label;
    }
    if (pos + 3 > len)
        return;
    name[out] = '\0';
    unsigned type = ((unsigned)msg[pos + 1] << 8) | msg[pos + 2];
    int family = type == DNS_TYPE_A ? AF_INET : type == DNS_TYPE_AAAA ? AF_INET6 : 0;
    uint32_t hash = dg__name_hash(name, family);
    for (struct dg__query *q = *inflight_bucket(ch->res, hash); q && family; q = q->hnext)
        if (q->channel == ch && q->hash == hash && q->family == family &&
            strcmp(q->name, name) == 0)
            q->server_status = rcode_status[msg[3] & 0x0f];
}

/* The c-ares callback: records the result, nothing more. */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dg__query *q = arg;
    struct dg__resolver *res = q->res;
    (void)timeouts;
    if (status == ARES_SUCCESS)
        status = parse_answer(q, abuf, alen);
    else if (status == ARES_ECONNREFUSED && q->server_status)
        status = q->server_status;
    else if (status == ARES_ECONNREFUSED && q->channel->socket_nomem)
        status = ARES_ENOMEM; /* c-ares calls any failed socket open "refused" */
    q->answer.status = dg__ares_status(status);
    q->done = true;
    q->channel->queries--;
    q->done_next = NULL;
    if (res->done_tail)
        res->done_tail->done_next = q;
    else
        res->done_head = q;
    res->done_tail = q;
    res->dirty = true;
}

/* Joins an equal query in flight on the current channel; queries on a
 * retired channel asked the old servers and are left alone. */
static bool query_join(struct dg__resolver *res, struct dg__channel *ch,
                       struct dg__resolve_req *req, const char *name, int family, uint32_t hash)
{
    for (struct dg__query *q = *inflight_bucket(res, hash); q; q = q->hnext) {
        if (q->channel == ch && q->hash == hash && q->family == family &&
            strcmp(q->name, name) == 0) {
            query_attach(q, req);
            res->stats.coalesced++;
            return true;
        }
    }
    return false;
}

int dg__query_submit(struct dg__resolver *res, struct dg__resolve_req *req, const char *name,
                     int family)
{
    channel_check_resolv_conf(res, dg__clock_ms());
    struct dg__channel *ch = channel_current(res);
    int ret = ch ? 0 : channel_new(res, &ch);
    if (ret < 0)
        return ret;
    uint32_t hash = dg__name_hash(name, family);
    if (query_join(res, ch, req, name, family, hash))
        return 0;
    size_t len = strlen(name);
    struct dg__query *q = dg__calloc(1, sizeof(*q) + len + 1);
    if (!q)
        return -ENOMEM;
    memcpy(q->name, name, len + 1);
    q->res = res;
    q->channel = ch;
    q->hash = hash;
    q->family = family;
    dg__list_init(&q->waiters);
    struct dg__query **bucket = inflight_bucket(res, hash);
    q->hnext = *bucket;
    *bucket = q;
    query_attach(q, req);
    ch->queries++;
    res->stats.queries++;
    res->dirty = res->timeout_dirty = true;
    ares_search(ch->ares, name, DNS_CLASS_IN, family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA,
                on_answer, q);
    dg__queries_finish(res); /* c-ares may have answered at once */
    return 0;
}

/* Answers from a retired channel are not cached: the cache was emptied
 * for the new settings, and the old servers' answers must not come back. */
static void query_cache(struct dg__resolver *res, const struct dg__query *q)
{
    uint64_t now = dg__clock_ms();
    if (q->channel->retired)
        return;
    if (q->answer.status == 0 && q->ttl_s > 0)
        dg__cache_store(&res->cache, q->name, q->family, &q->answer,
                        now + (uint64_t)q->ttl_s * 1000u);
    else if (q->answer.status == DG_ERR_DNS_NOTFOUND && !q->odd_negative &&
             res->options.negative_ttl_ms > 0)
        dg__cache_store(&res->cache, q->name, q->family, &q->answer,
                        now + res->options.negative_ttl_ms);
}

/* Ends every request waiting on q (with its answer, or at once with
 * -ECANCELED while the resolver closes) and frees q. */
static void query_end(struct dg__resolver *res, struct dg__query *q)
{
    while (!dg__list_empty(&q->waiters)) {
        struct dg__resolve_req *w = DG__CONTAINER(q->waiters.next, struct dg__resolve_req, link);
        dg__list_remove(&w->link);
        w->query = NULL;
        if (res->closing)
            dg__req_finish_now(w, -ECANCELED);
        else
            dg__req_complete(w, q->answer.status, &q->answer);
    }
    dg__free(q);
}

void dg__queries_finish(struct dg__resolver *res)
{
    while (res->done_head) {
        struct dg__query *q = res->done_head;
        res->done_head = q->done_next;
        if (!res->done_head)
            res->done_tail = NULL;
        inflight_unlink(res, q);
        if (q->answer.status != 0)
            res->stats.failures++;
        if (!res->closing)
            query_cache(res, q);
        query_end(res, q);
    }
}

/* c-ares calls back every query when its channel is destroyed, so this
 * finds nothing; it is the backstop for "every callback exactly once". */
static void inflight_cancel_all(struct dg__resolver *res)
{
    for (unsigned b = 0; b < DG__INFLIGHT_BUCKETS; b++) {
        while (res->inflight[b]) {
            struct dg__query *q = res->inflight[b];
            res->inflight[b] = q->hnext;
            query_end(res, q);
        }
    }
}

/* ---- The loop's calls (resolver.h) ------------------------------------------ */

/* Completions that arrive once the resolver is gone (loop closing) find
 * no resolver and are dropped: their memory went with it. */
void dg__resolver_on_poll(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    struct dg__resolver *res = dg__core_of(loop)->resolver;
    struct dg__rsock *s = DG__UD_PTR(cqe->user_data);
    if (res && s)
        on_poll(res, s, cqe->res);
}

void dg__resolver_on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)cqe; /* -ETIME when it fired, -ECANCELED when the loop closes */
    struct dg__resolver *res = dg__core_of(loop)->resolver;
    if (res)
        on_timeout(res);
}

void dg__resolver_prepare(dg_loop *loop)
{
    struct dg__resolver *res = dg__core_of(loop)->resolver;
    if (!res)
        return;
    if (res->dirty) {
        res->dirty = false;
        channels_reap(res);
        socks_sync(res);
    }
    if (res->timeout_dirty)
        timeout_sync(res);
}

/* Every pending request gets its callback with -ECANCELED, here. Ring
 * operations still in flight are cancelled by the loop right after (their
 * completions find no resolver and are dropped); the kernel holds its own
 * reference to a polled file, so closing the fds now is safe. */
void dg__resolver_destroy(dg_loop *loop)
{
    struct dg__core *c = dg__core_of(loop);
    struct dg__resolver *res = c->resolver;
    if (!res)
        return;
    res->closing = true;
    while (res->channels)
        channel_destroy(res, res->channels);
    inflight_cancel_all(res);
    while (res->socks)
        sock_free(res, res->socks);
    dg__cache_clear(&res->cache);
    dg__hosts_free(&res->hosts);
    dg__free(res->resolv_conf);
    dg__free(res->hosts_file);
    c->resolver = NULL;
    dg__free(res);
}

struct dg__resolver *dg__resolver_get(struct dg__core *c, int *err)
{
    struct dg__resolver *res = c->resolver;
    if (res) {
        if (!res->closing)
            return res;
        *err = -ECANCELED; /* the teardown finishes every request */
        return NULL;
    }
    res = dg__calloc(1, sizeof(*res));
    if (!res) {
        *err = -ENOMEM;
        return NULL;
    }
    res->core = c;
    dg_resolver_options_init(&res->options);
    dg__cache_init(&res->cache, res->options.cache_max_entries);
    dg__hosts_reset(&res->hosts, NULL);
    c->resolver = res;
    return res;
}

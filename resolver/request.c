/* Requests: the socket layer's dg__resolve(), the public dg_lookup(), and
 * the resolver's settings. A request is answered, in order, as an IP
 * literal, from the hosts file (or the localhost rule), from the cache, or
 * by a DNS query (ares.c). Whatever answers it, its callback runs from the
 * loop's deferred queue, never inside the call. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* ---- Requests ----------------------------------------------------------- */

static void answer_to_sockaddr(const struct dg__answer *a, struct sockaddr_storage *ss,
                               socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_addr = a->addr.v4;
        *len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a->addr.v6;
        *len = sizeof(*sin6);
    }
}

/* Runs the callback; the request is freed afterwards. */
static void req_run(struct dg__resolve_req *req, int status)
{
    req->finished = true;
    req->core->pending_requests--;
    if (status == 0)
        req->cb(req->ctx, 0, (const struct sockaddr *)&req->addr, req->addrlen);
    else
        req->cb(req->ctx, status, NULL, 0);
    dg__free(req);
}

static void req_deferred(struct dg__deferred *node)
{
    struct dg__resolve_req *req = DG__CONTAINER(node, struct dg__resolve_req, ev);
    req_run(req, req->cancelled ? -ECANCELED : req->status);
}

void dg__req_complete(struct dg__resolve_req *req, int status, const struct dg__answer *answer)
{
    req->status = status;
    if (status == 0)
        answer_to_sockaddr(answer, &req->addr, &req->addrlen);
    dg__defer(req->core, &req->ev, req_deferred);
}

void dg__req_finish_now(struct dg__resolve_req *req, int status)
{
    req_run(req, status);
}

/* ---- Answers without DNS -------------------------------------------------- */

/* If name is an IP literal, answers req with it (any family when
 * any_family, else only family; a literal of the other family is
 * DG_ERR_INVALID_ADDRESS) and returns true. */
static bool answer_literal(struct dg__resolve_req *req, const char *name, int family)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int lit;
    if (dg__parse_ipv4(name, &((struct sockaddr_in *)&ss)->sin_addr) == 0)
        lit = AF_INET;
    else if (strchr(name, ':') && dg__parse_address(AF_INET6, name, 0, false, &ss, &len) == 0)
        lit = AF_INET6;
    else
        return false;
    if (lit != family) {
        req->status = DG_ERR_INVALID_ADDRESS;
    } else {
        dg__parse_address(family, name, 0, false, &req->addr, &req->addrlen);
        req->status = 0;
    }
    dg__defer(req->core, &req->ev, req_deferred);
    return true;
}

/* RFC 6761: "localhost." and names under it are loopback. */
static bool is_localhost(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 9 && strncmp(name, "localhost", 9) == 0)
        return true;
    return n > 10 && strncmp(name + n - 10, ".localhost", 10) == 0;
}

static bool answer_local(struct dg__resolver *res, struct dg__resolve_req *req,
                         const char *name, int family, uint64_t now)
{
    struct dg__answer a;
    if (!dg__hosts_find(&res->hosts, name, family, now, &a)) {
        if (!is_localhost(name))
            return false;
        memset(&a, 0, sizeof(a));
        a.family = family;
        if (family == AF_INET)
            a.addr.v4.s_addr = htonl(INADDR_LOOPBACK);
        else
            a.addr.v6 = in6addr_loopback;
    }
    res->stats.hosts_answers++;
    dg__req_complete(req, 0, &a);
    return true;
}

static bool answer_cached(struct dg__resolver *res, struct dg__resolve_req *req,
                          const char *name, int family, uint64_t now)
{
    struct dg__answer a;
    if (!dg__cache_find(&res->cache, name, family, now, &a))
        return false;
    if (a.status == 0)
        res->stats.cache_hits++;
    else
        res->stats.negative_hits++;
    dg__req_complete(req, a.status, &a);
    return true;
}

/* ---- dg__resolve ---------------------------------------------------------- */

/* Lower-cases name into key (DG__NAME_MAX + 1 bytes). */
static int name_key(const char *name, char *key)
{
    size_t n = strlen(name);
    if (n == 0)
        return DG_ERR_INVALID_ARG_VALUE;
    if (n > DG__NAME_MAX)
        return DG_ERR_DNS_BADNAME;
    for (size_t i = 0; i <= n; i++)
        key[i] = (char)tolower((unsigned char)name[i]);
    return 0;
}

static int resolve_dispatch(struct dg__resolver *res, struct dg__resolve_req *req,
                            const char *name, int family)
{
    char key[DG__NAME_MAX + 1];
    int ret = name_key(name, key);
    if (ret < 0)
        return ret;
    if (answer_literal(req, name, family)) {
        res->stats.literals++;
        return 0;
    }
    uint64_t now = dg__clock_ms();
    if (answer_local(res, req, key, family, now) || answer_cached(res, req, key, family, now))
        return 0;
    return dg__query_submit(res, req, key, family);
}

int dg__resolve(dg_loop *loop, const char *name, int family, dg__resolve_cb cb, void *ctx,
                struct dg__resolve_req **out)
{
    if (out)
        *out = NULL;
    if (!loop || !name || !cb || (family != AF_INET && family != AF_INET6))
        return DG_ERR_INVALID_ARG_VALUE;
    int ret = 0;
    struct dg__core *c = dg__core_of(loop);
    struct dg__resolver *res = dg__resolver_get(c, &ret);
    if (!res)
        return ret;
    struct dg__resolve_req *req = dg__calloc(1, sizeof(*req));
    if (!req)
        return -ENOMEM;
    req->core = c;
    req->cb = cb;
    req->ctx = ctx;
    ret = resolve_dispatch(res, req, name, family);
    if (ret < 0) {
        dg__free(req);
        return ret;
    }
    res->stats.lookups++;
    c->pending_requests++;
    if (out)
        *out = req;
    return 0;
}

void dg__resolve_cancel(struct dg__resolve_req *req)
{
    if (!req || req->finished || req->cancelled)
        return;
    req->cancelled = true;
    struct dg__resolver *res = req->core->resolver;
    if (res && res->closing)
        return; /* the teardown is finishing every request with -ECANCELED */
    if (req->query) {
        dg__list_remove(&req->link); /* off the query's waiters */
        req->query = NULL;
    }
    dg__defer(req->core, &req->ev, req_deferred); /* no-op if already queued */
}

/* ---- dg_lookup -------------------------------------------------------------- */

/* Status of a family's half of a lookup while its request is pending; a
 * family that is not asked counts as "not found". */
#define LOOKUP_PENDING 1
#define LOOKUP_NOT_ASKED DG_ERR_DNS_NOTFOUND

/* One dg_lookup: one request, or two (A and AAAA) for family 0. */
struct lookup {
    dg_loop *loop;
    dg_lookup_cb cb;
    void *data;
    struct dg__resolve_req *req4, *req6;
    int status4, status6; /* LOOKUP_PENDING, LOOKUP_NOT_ASKED, or the result */
    struct sockaddr_storage addr6;
    socklen_t len6;
    bool answered;
};

static void lookup_answer(struct lookup *l, int status, const struct sockaddr *sa, socklen_t len)
{
    dg_address a;
    l->answered = true;
    if (status == 0 && dg_address_from_sockaddr(sa, len, &a) == 0)
        l->cb(l->loop, 0, &a, l->data);
    else
        l->cb(l->loop, status == 0 ? DG_ERR_DNS_BADRESP : status, NULL, l->data);
}

/* Neither family gave an address: ENOTFOUND unless one failed otherwise. */
static int lookup_error(const struct lookup *l)
{
    if (l->status4 != DG_ERR_DNS_NOTFOUND)
        return l->status4;
    return l->status6;
}

static void lookup_maybe_free(struct lookup *l)
{
    if (!l->req4 && !l->req6 && l->status4 != LOOKUP_PENDING && l->status6 != LOOKUP_PENDING)
        dg__free(l);
}

static void lookup_on4(void *ctx, int status, const struct sockaddr *sa, socklen_t len)
{
    struct lookup *l = ctx;
    l->req4 = NULL;
    l->status4 = status;
    if (!l->answered) {
        if (status == 0) {
            lookup_answer(l, 0, sa, len);
            dg__resolve_cancel(l->req6); /* IPv4 wins; do not wait for AAAA */
        } else if (l->status6 == 0) {
            lookup_answer(l, 0, (const struct sockaddr *)&l->addr6, l->len6);
        } else if (l->status6 != LOOKUP_PENDING) {
            lookup_answer(l, lookup_error(l), NULL, 0);
        }
    }
    lookup_maybe_free(l);
}

static void lookup_on6(void *ctx, int status, const struct sockaddr *sa, socklen_t len)
{
    struct lookup *l = ctx;
    l->req6 = NULL;
    l->status6 = status;
    if (!l->answered && l->status4 != LOOKUP_PENDING) {
        /* IPv4 already failed (it would have answered otherwise) */
        lookup_answer(l, status == 0 ? 0 : lookup_error(l), sa, len);
    } else if (!l->answered && status == 0) {
        memcpy(&l->addr6, sa, len);
        l->len6 = len;
    }
    lookup_maybe_free(l);
}

/* The family of name if it is an IP literal, else 0. */
static int literal_family(const char *name)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct in_addr v4;
    if (dg__parse_ipv4(name, &v4) == 0)
        return 4;
    if (strchr(name, ':') && dg__parse_address(AF_INET6, name, 0, false, &ss, &len) == 0)
        return 6;
    return 0;
}

static int lookup_start(struct lookup *l, const char *name, int family)
{
    int ret = 0;
    l->status4 = family == 6 ? LOOKUP_NOT_ASKED : LOOKUP_PENDING;
    l->status6 = family == 4 ? LOOKUP_NOT_ASKED : LOOKUP_PENDING;
    if (family != 6) {
        ret = dg__resolve(l->loop, name, AF_INET, lookup_on4, l, &l->req4);
        if (ret < 0)
            return ret;
    }
    if (family != 4) {
        ret = dg__resolve(l->loop, name, AF_INET6, lookup_on6, l, &l->req6);
        if (ret < 0 && l->req4) {
            /* Undo the first half: its callback sees the lookup answered
             * and frees it; the caller sees only the error. */
            l->status6 = ret;
            l->answered = true;
            dg__resolve_cancel(l->req4);
            return ret;
        }
    }
    return ret;
}

DG_EXPORT int dg_lookup(dg_loop *loop, const char *name, int family, dg_lookup_cb cb, void *data)
{
    if (!loop || !name || !cb)
        return DG_ERR_INVALID_ARG_TYPE;
    if ((family != 0 && family != 4 && family != 6) || name[0] == '\0' ||
        strlen(name) > DG__NAME_MAX)
        return DG_ERR_INVALID_ARG_VALUE;
    struct lookup *l = dg__calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loop = loop;
    l->cb = cb;
    l->data = data;
    int lit = literal_family(name);
    int ret = lookup_start(l, name, lit ? lit : family);
    if (ret < 0 && !l->req4)
        dg__free(l); /* nothing pending refers to it */
    return ret < 0 ? ret : 0;
}

/* ---- Settings ----------------------------------------------------------- */

DG_EXPORT void dg_resolver_options_init(dg_resolver_options *options)
{
    if (!options)
        return;
    memset(options, 0, sizeof(*options));
    options->timeout_ms = 1000;
    options->tries = 2;
    options->cache_max_entries = 1024;
    options->negative_ttl_ms = 1000;
}

static bool options_valid(const dg_resolver_options *o)
{
    return o->timeout_ms > 0 && o->timeout_ms <= 3600000u && o->tries >= 1 && o->tries <= 64 &&
           o->cache_max_entries <= (1u << 20);
}

/* A copy of in for *current, keeping *current itself when the text is the
 * same: a caller that passes back what dg_loop_get_resolver_options gave
 * it must not see those strings freed. Returns 0 or -ENOMEM. */
static int path_copy(const char *in, const char *current, char **out)
{
    *out = NULL;
    if (!in)
        return 0;
    if (current && strcmp(in, current) == 0) {
        *out = (char *)current;
        return 0;
    }
    *out = dg__strdup(in);
    return *out ? 0 : -ENOMEM;
}

static void path_replace(char **slot, char *value)
{
    if (*slot != value)
        dg__free(*slot);
    *slot = value;
}

/* Retires the channel and empties the cache: settings that change where
 * answers come from must not keep old answers. */
static void resolver_reset(struct dg__resolver *res)
{
    dg__channel_retire(res);
    dg__cache_clear(&res->cache);
    dg__hosts_reset(&res->hosts, res->hosts_file);
}

DG_EXPORT int dg_loop_set_resolver_options(dg_loop *loop, const dg_resolver_options *options)
{
    if (!loop || !options || !options_valid(options))
        return DG_ERR_INVALID_ARG_VALUE;
    int ret = 0;
    struct dg__resolver *res = dg__resolver_get(dg__core_of(loop), &ret);
    if (!res)
        return ret;
    char *resolv = NULL, *hosts = NULL;
    if (path_copy(options->resolv_conf, res->resolv_conf, &resolv) < 0 ||
        path_copy(options->hosts_file, res->hosts_file, &hosts) < 0) {
        if (resolv != res->resolv_conf)
            dg__free(resolv);
        return -ENOMEM;
    }
    path_replace(&res->resolv_conf, resolv);
    path_replace(&res->hosts_file, hosts);
    res->options = *options;
    res->options.resolv_conf = resolv;
    res->options.hosts_file = hosts;
    res->cache.max = options->cache_max_entries;
    resolver_reset(res);
    return 0;
}

DG_EXPORT int dg_loop_get_resolver_options(const dg_loop *loop, dg_resolver_options *out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    const struct dg__resolver *res = dg__core_of_const(loop)->resolver;
    if (res)
        *out = res->options;
    else
        dg_resolver_options_init(out);
    return 0;
}

/* One "ip", "ip:port", "[ip6]" or "[ip6]:port" (bare IPv6 without port). */
static int server_parse(const char *text, size_t len, struct dg__server *s)
{
    char buf[INET6_ADDRSTRLEN + 16];
    while (len > 0 && isspace((unsigned char)*text))
        text++, len--;
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return DG_ERR_INVALID_ARG_VALUE;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return DG_ERR_INVALID_ARG_VALUE;
        *end = '\0';
        host = buf + 1;
        port = end[1] == ':' ? end + 2 : NULL;
    } else if (strchr(buf, ':') == strrchr(buf, ':') && strchr(buf, ':')) {
        port = strchr(buf, ':'); /* IPv4 with a port */
        *port++ = '\0';
    }
    s->port = 53;
    if (port) {
        char *end = NULL;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
            return DG_ERR_INVALID_ARG_VALUE;
        s->port = (int)p;
    }
    if (inet_pton(AF_INET, host, &s->addr.v4) == 1)
        s->family = AF_INET;
    else if (inet_pton(AF_INET6, host, &s->addr.v6) == 1)
        s->family = AF_INET6;
    else
        return DG_ERR_INVALID_ARG_VALUE;
    return 0;
}

int dg__servers_parse(const char *text, struct dg__server *servers, unsigned max)
{
    unsigned n = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (n == max || server_parse(p, len, &servers[n]) < 0)
            return DG_ERR_INVALID_ARG_VALUE;
        n++;
        if (p[len] == '\0')
            return (int)n;
        p += len + 1;
    }
}

DG_EXPORT int dg_loop_set_dns_servers(dg_loop *loop, const char *servers)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__server parsed[DG__SERVERS_MAX];
    int n = 0;
    if (servers && servers[0] != '\0') {
        n = dg__servers_parse(servers, parsed, DG__SERVERS_MAX);
        if (n < 0)
            return n;
    }
    int ret = 0;
    struct dg__resolver *res = dg__resolver_get(dg__core_of(loop), &ret);
    if (!res)
        return ret;
    memcpy(res->servers, parsed, (size_t)n * sizeof(parsed[0]));
    res->nservers = (unsigned)n;
    resolver_reset(res);
    return 0;
}

DG_EXPORT int dg_loop_clear_dns_cache(dg_loop *loop)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__resolver *res = dg__core_of(loop)->resolver;
    if (res)
        dg__cache_clear(&res->cache);
    return 0;
}

DG_EXPORT int dg_loop_get_resolver_stats(const dg_loop *loop, dg_resolver_stats *out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    memset(out, 0, sizeof(*out));
    const struct dg__resolver *res = dg__core_of_const(loop)->resolver;
    if (res) {
        *out = res->stats;
        out->cache_entries = res->cache.count;
    }
    return 0;
}

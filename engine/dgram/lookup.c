/* Name resolution for the socket layer: the socket's own lookup function
 * (Node's lookup option), or IP literals parsed in place, or host names
 * through the loop's resolver (dg__resolve, resolver/). Whatever the path,
 * the result reaches the socket from the loop, never inside the call that
 * asked, and exactly once. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dgram.h"

static int sock_family(const dg_socket *s)
{
    return s->type == DG_UDP4 ? AF_INET : AF_INET6;
}

static const char *default_host(const dg_socket *s, bool for_bind)
{
    if (for_bind)
        return s->type == DG_UDP4 ? "0.0.0.0" : "::";
    return s->type == DG_UDP4 ? "127.0.0.1" : "::1";
}

bool dg__is_host_name(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > 253 || text[0] == '.' || text[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok || (c == '.' && i + 1 < n && text[i + 1] == '.'))
            return false;
    }
    return true;
}

int dg__check_address_text(const dg_socket *s, const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!text || text[0] == '\0')
        return 0;
    if (dg__parse_address(sock_family(s), text, 0, false, &ss, &len) == 0)
        return 0;
    int other = sock_family(s) == AF_INET ? AF_INET6 : AF_INET;
    if (dg__parse_address(other, text, 0, false, &ss, &len) == 0)
        return DG_ERR_INVALID_ADDRESS; /* a literal of the family this socket cannot use */
    if (strchr(text, ':') || strchr(text, '%'))
        return DG_ERR_INVALID_ADDRESS; /* a malformed IPv6 literal, not a name */
    return dg__is_host_name(text) ? 0 : DG_ERR_INVALID_ADDRESS;
}

static void deliver(struct dg__deferred *node)
{
    struct dg__lookup *lk = DG__CONTAINER(node, struct dg__lookup, ev);
    dg_socket *s = lk->sock;
    if (lk->cancelled)
        lk->status = -ECANCELED;
    lk->active = false;
    lk->done(lk);
    dg__socket_op_done(s);
}

static void finish(struct dg__lookup *lk, int status, const struct sockaddr *sa, socklen_t len)
{
    lk->pending = false;
    lk->status = status;
    if (status == 0) {
        memcpy(&lk->addr, sa, len);
        lk->addrlen = len;
        if (lk->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&lk->addr)->sin_port = htons((uint16_t)lk->port);
        else
            ((struct sockaddr_in6 *)&lk->addr)->sin6_port = htons((uint16_t)lk->port);
    }
    dg__defer(&lk->sock->loop->core, &lk->ev, deliver);
}

/* The done callback handed to a user lookup function. */
static void user_done(void *ctx, int status, const char *address, int family)
{
    struct dg__lookup *lk = ctx;
    if (!lk->pending)
        return; /* called twice: the contract says once; ignore the extra */
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int want = sock_family(lk->sock);
    if (status == 0 && (family == 4 ? AF_INET : family == 6 ? AF_INET6 : family) != want)
        status = DG_ERR_INVALID_ADDRESS;
    if (status == 0 && (!address || dg__parse_address(want, address, 0, false, &ss, &len) < 0))
        status = DG_ERR_INVALID_ADDRESS;
    if (status > 0)
        status = DG_ERR_INVALID_ARG_VALUE;
    finish(lk, status, (struct sockaddr *)&ss, len);
}

static void resolver_done(void *ctx, int status, const struct sockaddr *addr, socklen_t len)
{
    struct dg__lookup *lk = ctx;
    lk->req = NULL;
    finish(lk, status, addr, len);
}

int dg__lookup_start(struct dg__lookup *lk, dg_socket *s, const char *host, int port,
                     bool for_bind, void (*done)(struct dg__lookup *))
{
    int family = sock_family(s);
    const char *text = (!host || host[0] == '\0') ? default_host(s, for_bind) : host;
    int ret = dg__check_address_text(s, text);
    if (ret < 0)
        return ret;
    memset(lk, 0, sizeof(*lk));
    lk->sock = s;
    lk->done = done;
    lk->port = port;
    lk->pending = true;
    lk->active = true;
    snprintf(lk->host, sizeof(lk->host), "%s", text);
    s->inflight++;

    if (s->options.lookup) {
        lk->user = true;
        ret = s->options.lookup(s, lk->host, family == AF_INET ? 4 : 6, user_done, lk,
                                s->options.lookup_data);
        if (ret < 0 && lk->pending)
            finish(lk, ret, NULL, 0);
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (dg__parse_address(family, text, port, false, &ss, &len) == 0) {
        finish(lk, 0, (struct sockaddr *)&ss, len); /* literals never go to DNS */
        return 0;
    }
    ret = dg__resolve(s->loop, lk->host, family, resolver_done, lk, &lk->req);
    if (ret < 0) {
        s->inflight--;
        return ret;
    }
    return 0;
}

void dg__lookup_cancel(struct dg__lookup *lk)
{
    if (!lk->active || lk->cancelled)
        return;
    lk->cancelled = true; /* delivery reports -ECANCELED whatever arrives */
    if (lk->pending && lk->req)
        dg__resolve_cancel(lk->req);
}

void dg__lookup_error(const struct dg__lookup *lk, dg_error *err)
{
    memset(err, 0, sizeof(*err));
    err->code = lk->status;
    /* Node's dgram reports a failed lookup as "getaddrinfo ENOTFOUND host";
     * the same text here lets code and logs written for Node match it. */
    err->syscall = "getaddrinfo";
    snprintf(err->address, sizeof(err->address), "%s", lk->host);
}

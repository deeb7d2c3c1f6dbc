/* IP literal parsing and formatting, with IPv6 %scope both ways. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Node resolves addresses with getaddrinfo, which takes IPv4 in
 * inet_aton's forms: 1 to 4 parts, each decimal, octal (0177) or hex
 * (0x7f), the last filling the remaining bytes ("127.1", "2130706433").
 * glibc's inet_aton also stops at white space and ignores what follows;
 * getaddrinfo does not, so neither does this. */
int dg__parse_ipv4(const char *text, struct in_addr *out)
{
    if (!text || text[0] == '\0' || strpbrk(text, " \t\n\v\f\r"))
        return DG_ERR_INVALID_ADDRESS;
    return inet_aton(text, out) ? 0 : DG_ERR_INVALID_ADDRESS;
}

static int parse_scope(const char *scope, uint32_t *out)
{
    if (*scope == '\0')
        return DG_ERR_INVALID_ADDRESS;
    char *end = NULL;
    unsigned long v = strtoul(scope, &end, 10);
    if (*end == '\0' && v <= UINT32_MAX) {
        *out = (uint32_t)v;
        return 0;
    }
    unsigned idx = if_nametoindex(scope);
    if (idx == 0)
        return DG_ERR_INVALID_ADDRESS;
    *out = idx;
    return 0;
}

static int parse_ipv6(const char *text, int port, struct sockaddr_in6 *sin6)
{
    char host[DG_ADDRSTRLEN];
    size_t n = strlen(text);
    if (n >= sizeof(host))
        return DG_ERR_INVALID_ADDRESS;
    memcpy(host, text, n + 1);
    uint32_t scope = 0;
    char *pct = strchr(host, '%');
    if (pct) {
        *pct = '\0';
        if (parse_scope(pct + 1, &scope) < 0)
            return DG_ERR_INVALID_ADDRESS;
    }
    memset(sin6, 0, sizeof(*sin6));
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return DG_ERR_INVALID_ADDRESS;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sin6->sin6_scope_id = scope;
    return 0;
}

int dg__parse_address(int family, const char *text, int port, bool empty_any,
                      struct sockaddr_storage *out, socklen_t *outlen)
{
    bool empty = !text || text[0] == '\0';
    if (empty)
        text = empty_any ? (family == AF_INET ? "0.0.0.0" : "::")
                         : (family == AF_INET ? "127.0.0.1" : "::1");
    else if (strcmp(text, "localhost") == 0) /* the hosts file's answer, without DNS */
        text = family == AF_INET ? "127.0.0.1" : "::1";

    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        if (dg__parse_ipv4(text, &sin->sin_addr) < 0)
            return DG_ERR_INVALID_ADDRESS;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *outlen = sizeof(*sin);
        return 0;
    }
    if (family != AF_INET6)
        return DG_ERR_INVALID_ADDRESS;
    int ret = parse_ipv6(text, port, (struct sockaddr_in6 *)out);
    if (ret == 0)
        *outlen = sizeof(struct sockaddr_in6);
    return ret;
}

static void format_ipv6(const struct sockaddr_in6 *sin6, char *buf, size_t len)
{
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len);
    if (sin6->sin6_scope_id == 0)
        return;
    char ifname[IF_NAMESIZE];
    size_t used = strlen(buf);
    if (if_indextoname(sin6->sin6_scope_id, ifname))
        snprintf(buf + used, len - used, "%%%s", ifname);
    else
        snprintf(buf + used, len - used, "%%%u", (unsigned)sin6->sin6_scope_id);
}

DG_EXPORT int dg_address_from_sockaddr(const struct sockaddr *sa, socklen_t len, dg_address *out)
{
    if (!sa || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    memset(out, 0, sizeof(*out));
    /* len first: sa may hold fewer bytes than sa_family (found by
     * tests/fuzz/fuzz_address.c). */
    if (len < (socklen_t)sizeof(sa->sa_family))
        return DG_ERR_INVALID_ADDRESS;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, out->address, sizeof(out->address));
        out->family = AF_INET;
        out->port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        format_ipv6(sin6, out->address, sizeof(out->address));
        out->family = AF_INET6;
        out->port = ntohs(sin6->sin6_port);
        return 0;
    }
    return DG_ERR_INVALID_ADDRESS;
}

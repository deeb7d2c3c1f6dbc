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
/* The form nearly every program sends to, "127.0.0.1": four decimal
 * parts of one to three digits, none with a leading zero (inet_aton reads
 * "010" as octal), each at most 255, dots between, nothing after. Returns
 * true and sets *out only for exactly that; anything else goes to
 * inet_aton, which decides. A send with a text address parses it every
 * time, and inet_aton (strtoul per part) cost some 780 instructions of
 * the 1,266 such a send took. */
static bool parse_dotted_quad(const char *p, struct in_addr *out)
{
    uint32_t addr = 0;
    for (int part = 0; part < 4; part++) {
        unsigned v = (unsigned char)*p++ - '0';
        if (v > 9)
            return false;
        unsigned d = (unsigned char)*p - '0';
        if (d <= 9) {
            if (v == 0) /* a leading zero: octal to inet_aton */
                return false;
            v = v * 10 + d;
            d = (unsigned char)*++p - '0';
            if (d <= 9) {
                v = v * 10 + d;
                p++;
            }
        }
        /* a fourth digit fails here, as it is not the separator */
        if (v > 255 || *p++ != (part == 3 ? '\0' : '.'))
            return false;
        addr = addr << 8 | v;
    }
    out->s_addr = htonl(addr);
    return true;
}

int dg__parse_ipv4(const char *text, struct in_addr *out)
{
    if (!text || text[0] == '\0')
        return DG_ERR_INVALID_ADDRESS;
    if (parse_dotted_quad(text, out))
        return 0;
    if (strpbrk(text, " \t\n\v\f\r"))
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
    else if (text[0] == 'l' && strcmp(text, "localhost") == 0) /* the hosts file's answer, without DNS */
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

/* ---- Address keys (dgring/address.h) ------------------------------------- */

_Static_assert(sizeof(dg_addr_key) == 24, "a key has no padding");

DG_EXPORT int dg_addr_key_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                        dg_addr_key *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!sa || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    sa_family_t family;
    if (len < (socklen_t)sizeof(family))
        return DG_ERR_INVALID_ADDRESS;
    memcpy(&family, &sa->sa_family, sizeof(family)); /* sa may be unaligned */
    if (family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        out->family = AF_INET;
        out->port = ntohs(sin.sin_port);
        memcpy(out->addr, &sin.sin_addr, 4);
        return 0;
    }
    if (family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        out->family = AF_INET6;
        out->port = ntohs(sin6.sin6_port);
        out->scope_id = sin6.sin6_scope_id;
        memcpy(out->addr, &sin6.sin6_addr, 16);
        return 0;
    }
    return DG_ERR_INVALID_ADDRESS;
}

/* Whether some socket address has this key. */
DG_EXPORT int dg_addr_key_to_sockaddr(const dg_addr_key *key, struct sockaddr_storage *out,
                                      socklen_t *len)
{
    if (!key || !out || !len)
        return DG_ERR_INVALID_ARG_VALUE;
    if (!dg__addr_key_valid(key))
        return DG_ERR_INVALID_ADDRESS;
    memset(out, 0, sizeof(*out));
    *len = dg__addr_key_write(key, out);
    return 0;
}

DG_EXPORT bool dg_addr_key_equal(const dg_addr_key *a, const dg_addr_key *b)
{
    return a && b && memcmp(a, b, sizeof(*a)) == 0;
}

DG_EXPORT int dg_addr_key_compare(const dg_addr_key *a, const dg_addr_key *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int order = memcmp(a->addr, b->addr, sizeof(a->addr));
    if (order != 0)
        return order < 0 ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->scope_id != b->scope_id)
        return a->scope_id < b->scope_id ? -1 : 1;
    return 0;
}

/* The two halves of a 64 x 64-bit product, folded: each input bit moves
 * many output bits. */
static uint64_t fold_multiply(uint64_t a, uint64_t b)
{
    unsigned __int128 product = (unsigned __int128)a * b;
    return (uint64_t)product ^ (uint64_t)(product >> 64);
}

DG_EXPORT uint64_t dg_addr_key_hash(const dg_addr_key *key, uint64_t seed)
{
    static const dg_addr_key zero;
    uint64_t w[3];
    memcpy(w, key ? key : &zero, sizeof(w));
    /* Odd constants with mixed bits (the golden ratio and two large
     * primes' fractions) keep a zero word from zeroing a product. */
    uint64_t h = fold_multiply(w[0] ^ seed ^ 0x9e3779b97f4a7c15u, w[1] ^ 0xc2b2ae3d27d4eb4fu);
    h = fold_multiply(h ^ w[2] ^ 0x165667b19e3779f9u, seed ^ 0x27d4eb2f165667c5u);
    return fold_multiply(h ^ (h >> 29), 0x9e3779b97f4a7c15u);
}

DG_EXPORT int dg_addr_key_format(const dg_addr_key *key, char *buf, size_t len)
{
    if (!key || (!buf && len > 0))
        return DG_ERR_INVALID_ARG_VALUE;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int ret = dg_addr_key_to_sockaddr(key, &ss, &sslen);
    if (ret < 0)
        return ret;
    char host[DG_ADDRSTRLEN];
    if (key->family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
        return snprintf(buf, len, "%s:%u", host, (unsigned)key->port);
    }
    format_ipv6((struct sockaddr_in6 *)&ss, host, sizeof(host));
    return snprintf(buf, len, "[%s]:%u", host, (unsigned)key->port);
}

/* Fuzz target: IP literal parsing (dg__parse_address) and formatting
 * (dg_address_from_sockaddr, the public formatter in dgring/socket.h).
 *
 * Mode 0 also checks dg__parse_ipv4 against inet_aton (white space
 * refused), so its dotted-quad fast path never answers differently.
 *
 * Input: byte 0 picks the mode, bytes 1-4 a port (host order, any int),
 * byte 5 empty_any; the rest is the text (cut at its first NUL) or, in
 * mode 2, the raw bytes of a socket address.
 *   mode 0/1: parse the text as IPv4/IPv6; when it parses, format it and
 *             parse the result again: the same address, port and scope.
 *   mode 2:   format the raw socket address (exactly as many bytes as
 *             given, so reading past them is caught); when it formats,
 *             parse the text back: the same address, port and scope.
 *             Its address key (dgring/address.h) exists exactly then,
 *             goes back to the same address and formats within
 *             DG_ADDR_KEY_STRLEN. */
#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"
#include "engine/core/core.h"

static void same_sockaddr(const struct sockaddr *a, const struct sockaddr *b)
{
    FUZZ_CHECK(a->sa_family == b->sa_family);
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        FUZZ_CHECK(x->sin_port == y->sin_port);
        FUZZ_CHECK(x->sin_addr.s_addr == y->sin_addr.s_addr);
    } else {
        FUZZ_CHECK(a->sa_family == AF_INET6);
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        FUZZ_CHECK(x->sin6_port == y->sin6_port);
        FUZZ_CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0);
        FUZZ_CHECK(x->sin6_scope_id == y->sin6_scope_id);
    }
}

/* The key of sa: there exactly when the address formats (ok), back to
 * the same address, and its text fits. */
static void key_round_trip(const struct sockaddr *sa, socklen_t len, bool ok)
{
    dg_addr_key key;
    int ret = dg_addr_key_from_sockaddr(sa, len, &key);
    FUZZ_CHECK(ok ? ret == 0 : ret == DG_ERR_INVALID_ADDRESS);
    if (!ok)
        return;
    struct sockaddr_storage back;
    socklen_t backlen = 0;
    FUZZ_CHECK(dg_addr_key_to_sockaddr(&key, &back, &backlen) == 0);
    same_sockaddr(sa, (const struct sockaddr *)&back);
    char text[DG_ADDR_KEY_STRLEN];
    ret = dg_addr_key_format(&key, text, sizeof(text));
    FUZZ_CHECK(ret > 0 && ret < DG_ADDR_KEY_STRLEN);
}

/* Formats sa, checks the text, parses it back and compares. */
static void round_trip(const struct sockaddr *sa, socklen_t len)
{
    dg_address a;
    memset(&a, 0xa5, sizeof(a));
    int ret = dg_address_from_sockaddr(sa, len, &a);
    key_round_trip(sa, len, ret == 0);
    if (ret < 0) {
        FUZZ_CHECK(ret == DG_ERR_INVALID_ADDRESS);
        return;
    }
    FUZZ_CHECK(memchr(a.address, '\0', sizeof(a.address)) != NULL);
    FUZZ_CHECK(a.family == sa->sa_family);
    FUZZ_CHECK(a.port >= 0 && a.port <= 65535);
    struct sockaddr_storage back;
    socklen_t backlen = 0;
    ret = dg__parse_address(a.family, a.address, a.port, false, &back, &backlen);
    if (ret != 0)
        fprintf(stderr, "formatted \"%s\" does not parse back\n", a.address);
    FUZZ_CHECK(ret == 0);
    FUZZ_CHECK(backlen == (a.family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6)));
    same_sockaddr(sa, (const struct sockaddr *)&back);
}

/* dg__parse_ipv4 (its dotted-quad fast path included) answers as
 * inet_aton does, white space refused. */
static void same_as_inet_aton(const char *text)
{
    struct in_addr got, want;
    bool ok = text[0] != '\0' && !strpbrk(text, " \t\n\v\f\r") && inet_aton(text, &want);
    int ret = dg__parse_ipv4(text, &got);
    FUZZ_CHECK(ret == (ok ? 0 : DG_ERR_INVALID_ADDRESS));
    if (ok)
        FUZZ_CHECK(got.s_addr == want.s_addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    int mode = data[0] % 3;
    int port;
    memcpy(&port, data + 1, sizeof(port));
    bool empty_any = data[5] & 1;
    data += 6;
    size -= 6;

    if (mode == 2) {
        /* A heap copy of exactly size bytes (malloc aligns it for any
         * socket address type). */
        void *raw = malloc(size ? size : 1);
        if (!raw)
            return 0;
        if (size)
            memcpy(raw, data, size);
        round_trip(raw, (socklen_t)size);
        free(raw);
        return 0;
    }

    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int family = mode == 0 ? AF_INET : AF_INET6;
    if (mode == 0)
        same_as_inet_aton(text);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int ret = dg__parse_address(family, text, port, empty_any, &ss, &len);
    if (ret == 0) {
        FUZZ_CHECK(ss.ss_family == family);
        FUZZ_CHECK(len == (family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6)));
        FUZZ_CHECK(((const struct sockaddr_in *)&ss)->sin_port == htons((uint16_t)port));
        round_trip((const struct sockaddr *)&ss, len);
    } else {
        FUZZ_CHECK(ret == DG_ERR_INVALID_ADDRESS);
    }
    free(text);
    return 0;
}

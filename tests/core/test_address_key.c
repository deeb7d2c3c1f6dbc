/* Address keys (dgring/address.h): a socket address as a compact key that
 * round-trips to the same sockaddr, compares and hashes by family, address,
 * port and IPv6 scope (never the flow label), formats as "a.b.c.d:port" or
 * "[v6%ifname]:port"; the key of a real datagram's sender; bad input (NULL,
 * short lengths, AF_UNIX, keys no address gives). */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(address_key, .timeout = 20);

static struct sockaddr_in v4(const char *text, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    cr_assert_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *text, int port, uint32_t scope)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                .sin6_scope_id = scope};
    cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
    return sin6;
}

static dg_addr_key key_of(const void *sa, socklen_t len)
{
    dg_addr_key key;
    cr_assert_eq(dg_addr_key_from_sockaddr(sa, len, &key), 0);
    return key;
}

static dg_addr_key key4(const char *text, int port)
{
    struct sockaddr_in sin = v4(text, port);
    return key_of(&sin, sizeof(sin));
}

static dg_addr_key key6(const char *text, int port, uint32_t scope)
{
    struct sockaddr_in6 sin6 = v6(text, port, scope);
    return key_of(&sin6, sizeof(sin6));
}

Test(address_key, ipv4_fields_and_round_trip)
{
    struct sockaddr_in sin = v4("192.0.2.7", 41234);
    dg_addr_key key = key_of(&sin, sizeof(sin));
    struct sockaddr_storage back;
    socklen_t len = 0;

    cr_assert_eq(sizeof(dg_addr_key), 24);
    cr_assert_eq(key.family, AF_INET);
    cr_assert_eq(key.port, 41234);
    cr_assert_eq(key.scope_id, 0);
    cr_assert_eq(memcmp(key.addr, &sin.sin_addr, 4), 0);
    for (int i = 4; i < 16; i++)
        cr_assert_eq(key.addr[i], 0);
    cr_assert_eq(dg_addr_key_to_sockaddr(&key, &back, &len), 0);
    cr_assert_eq(len, sizeof(struct sockaddr_in));
    cr_assert_eq(memcmp(&back, &sin, sizeof(sin)), 0);
}

Test(address_key, ipv6_keeps_the_scope_and_drops_the_flow_label)
{
    struct sockaddr_in6 a = v6("fe80::1", 443, 1), b = a;
    struct sockaddr_storage back;
    socklen_t len = 0;

    b.sin6_flowinfo = htonl(0x12345);
    dg_addr_key ka = key_of(&a, sizeof(a)), kb = key_of(&b, sizeof(b));
    cr_assert_eq(ka.family, AF_INET6);
    cr_assert_eq(ka.port, 443);
    cr_assert_eq(ka.scope_id, 1);
    cr_assert(dg_addr_key_equal(&ka, &kb), "the flow label is not part of the peer");
    cr_assert_eq(dg_addr_key_hash(&ka, 7), dg_addr_key_hash(&kb, 7));
    cr_assert_eq(dg_addr_key_to_sockaddr(&ka, &back, &len), 0);
    cr_assert_eq(len, sizeof(struct sockaddr_in6));
    cr_assert_eq(memcmp(&back, &a, sizeof(a)), 0);

    dg_addr_key other_scope = key6("fe80::1", 443, 2);
    cr_assert(!dg_addr_key_equal(&ka, &other_scope), "fe80::1%%1 and %%2 are two peers");
}

Test(address_key, equality_and_order)
{
    dg_addr_key a = key4("10.0.0.2", 5000), same = key4("10.0.0.2", 5000);
    dg_addr_key later_addr = key4("10.0.0.10", 1), later_port = key4("10.0.0.2", 5001);
    dg_addr_key six = key6("::1", 1, 0), mapped = key6("::ffff:10.0.0.2", 5000, 0);

    cr_assert(dg_addr_key_equal(&a, &same));
    cr_assert_eq(dg_addr_key_compare(&a, &same), 0);
    cr_assert(!dg_addr_key_equal(&a, &later_port));
    cr_assert(!dg_addr_key_equal(&a, &mapped), "families never compare equal");
    cr_assert_lt(dg_addr_key_compare(&a, &later_addr), 0, "10.0.0.2 before 10.0.0.10");
    cr_assert_gt(dg_addr_key_compare(&later_addr, &a), 0);
    cr_assert_lt(dg_addr_key_compare(&a, &later_port), 0);
    cr_assert_lt(dg_addr_key_compare(&later_addr, &six), 0, "IPv4 before IPv6");
    dg_addr_key s1 = key6("fe80::1", 9, 1), s2 = key6("fe80::1", 9, 2);
    cr_assert_lt(dg_addr_key_compare(&s1, &s2), 0, "then by scope");
    cr_assert(!dg_addr_key_equal(NULL, &a));
    cr_assert(!dg_addr_key_equal(&a, NULL));
    cr_assert(!dg_addr_key_equal(NULL, NULL));
    cr_assert_lt(dg_addr_key_compare(NULL, &a), 0);
    cr_assert_gt(dg_addr_key_compare(&a, NULL), 0);
    cr_assert_eq(dg_addr_key_compare(NULL, NULL), 0);
}

/* Keys one field apart hash apart; the seed changes every hash; 65,536
 * ports of one address spread over 4,096 buckets (16 expected per bucket;
 * the bound is four times that). Deterministic: no randomness here. */
Test(address_key, hash_follows_every_field_and_the_seed)
{
    dg_addr_key base = key6("2001:db8::1", 7777, 3);
    dg_addr_key port = key6("2001:db8::1", 7778, 3), scope = key6("2001:db8::1", 7777, 4);
    dg_addr_key addr = key6("2001:db8::2", 7777, 3), fam = key4("1.2.3.4", 7777);
    uint64_t h = dg_addr_key_hash(&base, 42);
    static unsigned buckets[4096];

    cr_assert_neq(h, dg_addr_key_hash(&port, 42));
    cr_assert_neq(h, dg_addr_key_hash(&scope, 42));
    cr_assert_neq(h, dg_addr_key_hash(&addr, 42));
    cr_assert_neq(h, dg_addr_key_hash(&fam, 42));
    cr_assert_neq(h, dg_addr_key_hash(&base, 43), "the seed keys the hash");
    cr_assert_eq(h, dg_addr_key_hash(&base, 42));
    dg_addr_key zero = {0};
    cr_assert_eq(dg_addr_key_hash(NULL, 5), dg_addr_key_hash(&zero, 5));

    unsigned worst = 0;
    for (int p = 0; p < 65536; p++) {
        dg_addr_key k = key4("127.0.0.1", p);
        unsigned b = (unsigned)(dg_addr_key_hash(&k, 0x5eed) & 4095);
        if (++buckets[b] > worst)
            worst = buckets[b];
    }
    cr_assert_leq(worst, 64, "a bucket of 4096 took %u of 65536 ports", worst);
}

Test(address_key, format)
{
    char text[DG_ADDR_KEY_STRLEN], ifname[IF_NAMESIZE], want[DG_ADDR_KEY_STRLEN];
    dg_addr_key a = key4("127.0.0.1", 41234), b = key6("::1", 53, 0);
    dg_addr_key c = key6("fe80::1", 443, 1), d = key6("fe80::1", 443, 4000000000u);

    cr_assert_eq(dg_addr_key_format(&a, text, sizeof(text)), 15);
    cr_assert_str_eq(text, "127.0.0.1:41234");
    cr_assert_eq(dg_addr_key_format(&b, text, sizeof(text)), 8);
    cr_assert_str_eq(text, "[::1]:53");
    cr_assert_not_null(if_indextoname(1, ifname), "interface 1 has a name (lo)");
    snprintf(want, sizeof(want), "[fe80::1%%%s]:443", ifname);
    dg_addr_key_format(&c, text, sizeof(text));
    cr_assert_str_eq(text, want);
    dg_addr_key_format(&d, text, sizeof(text));
    cr_assert_str_eq(text, "[fe80::1%4000000000]:443", "an index without a name: the number");
    /* Truncated like snprintf: the length wanted, a NUL-terminated prefix. */
    cr_assert_eq(dg_addr_key_format(&a, text, 5), 15);
    cr_assert_str_eq(text, "127.");
    cr_assert_eq(dg_addr_key_format(&a, NULL, 0), 15);
}

/* The key of a datagram's sender is the key of the socket that sent it. */
static dg_addr_key received_key;

static void keep_key(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    (void)ev;
    (void)sock;
    cr_assert_eq(dg_addr_key_from_sockaddr(msg->addr, msg->addrlen, &received_key), 0);
}

Test(address_key, key_of_a_received_datagram)
{
    static dgt_events ev;
    dg_loop *loop = dgt_loop_new(NULL);
    ev.message_hook = keep_key;
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);
    int sender = dgt_plain_socket(AF_INET, 0);
    struct sockaddr_in from = v4("127.0.0.1", dgt_plain_port(sender));

    dgt_plain_send(sender, AF_INET, port, "hi", 2);
    dgt_run_until(loop, &ev.messages, 1, DGT_WAIT_MS);
    dg_addr_key want = key_of(&from, sizeof(from));
    cr_assert(dg_addr_key_equal(&received_key, &want));
    dgt_close_socket(loop, sock);
    close(sender);
    dgt_loop_finish(loop);
}

Test(address_key, bad_input)
{
    struct sockaddr_in sin = v4("127.0.0.1", 1);
    struct sockaddr_in6 sin6 = v6("::1", 1, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/nowhere"};
    struct sockaddr_storage ss;
    socklen_t len;
    char text[DG_ADDR_KEY_STRLEN];
    dg_addr_key key, bad;
    const int V = DG_ERR_INVALID_ARG_VALUE, A = DG_ERR_INVALID_ADDRESS;

    dgt_assert_code(dg_addr_key_from_sockaddr(NULL, sizeof(sin), &key), V);
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), NULL), V);
    memset(&key, 0xa5, sizeof(key));
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin, 0, &key), A);
    cr_assert(dg_addr_key_equal(&key, &(dg_addr_key){0}), "a failed call zeroes the key");
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin, 1, &key), A);
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 1, &key), A);
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6) - 1, &key),
                    A);
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin), &key), A,
                    "an IPv6 family with an IPv4 length");
    dgt_assert_code(dg_addr_key_from_sockaddr((struct sockaddr *)&sun, sizeof(sun), &key), A);

    key = key4("127.0.0.1", 1);
    dgt_assert_code(dg_addr_key_to_sockaddr(NULL, &ss, &len), V);
    dgt_assert_code(dg_addr_key_to_sockaddr(&key, NULL, &len), V);
    dgt_assert_code(dg_addr_key_to_sockaddr(&key, &ss, NULL), V);
    bad = key;
    bad.family = AF_UNIX;
    dgt_assert_code(dg_addr_key_to_sockaddr(&bad, &ss, &len), A);
    dgt_assert_code(dg_addr_key_format(&bad, text, sizeof(text)), A);
    bad = key;
    bad.reserved = 1;
    dgt_assert_code(dg_addr_key_to_sockaddr(&bad, &ss, &len), A);
    bad = key;
    bad.scope_id = 3;
    dgt_assert_code(dg_addr_key_to_sockaddr(&bad, &ss, &len), A, "IPv4 has no scope");
    bad = key;
    bad.addr[9] = 1;
    dgt_assert_code(dg_addr_key_to_sockaddr(&bad, &ss, &len), A, "IPv4 is four bytes");
    dgt_assert_code(dg_addr_key_format(NULL, text, sizeof(text)), V);
    dgt_assert_code(dg_addr_key_format(&key, NULL, 8), V);
}

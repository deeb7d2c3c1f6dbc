/* dg_address_from_sockaddr: the text form of IPv4 and IPv6 socket
 * addresses (IPv4-mapped included), a link-local address with its scope as
 * "%ifname", and the refusal of other families and short lengths. No loop,
 * no sockets. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(address, .timeout = 10);

Test(address, from_sockaddr_ipv4)
{
    struct sockaddr_in sin;
    dg_address a;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(41234);
    cr_assert_eq(inet_pton(AF_INET, "192.0.2.33", &sin.sin_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
    cr_assert_str_eq(a.address, "192.0.2.33");
    cr_assert_eq(a.family, AF_INET);
    cr_assert_eq(a.port, 41234);

    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons(65535);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
    cr_assert_str_eq(a.address, "0.0.0.0");
    cr_assert_eq(a.port, 65535);
}

Test(address, from_sockaddr_ipv6)
{
    struct sockaddr_in6 sin6;
    dg_address a;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(9);
    sin6.sin6_addr = in6addr_loopback;
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "::1");
    cr_assert_eq(a.family, AF_INET6);
    cr_assert_eq(a.port, 9);

    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::17", &sin6.sin6_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "2001:db8::17");

    cr_assert_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "::ffff:127.0.0.1");
    cr_assert_eq(a.family, AF_INET6);
}

Test(address, from_sockaddr_link_local_has_scope_name)
{
    struct sockaddr_in6 sin6;
    char ifname[IF_NAMESIZE];
    char want[DG_ADDRSTRLEN];
    unsigned index = if_nametoindex("lo");
    dg_address a;

    if (index == 0)
        cr_skip_test("no interface named lo to use as a scope");
    cr_assert_not_null(if_indextoname(index, ifname));
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(5353);
    sin6.sin6_scope_id = index;
    cr_assert_eq(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
    snprintf(want, sizeof(want), "fe80::1%%%s", ifname);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, want);
    cr_assert_eq(a.port, 5353);
}

Test(address, from_sockaddr_rejects_bad_input)
{
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    dg_address a;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &a),
                    DG_ERR_INVALID_ADDRESS);
    ss.ss_family = AF_UNSPEC;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &a),
                    DG_ERR_INVALID_ADDRESS);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 1, &a),
                    DG_ERR_INVALID_ADDRESS, "short IPv4 length");

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    dgt_assert_code(
        dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(struct sockaddr_in), &a),
        DG_ERR_INVALID_ADDRESS, "short IPv6 length");
}

/* dgram conformance, socket options (docs/conformance.md; libuv
 * udp_options, udp_options6, udp_no_autobind): setTTL, setMulticastTTL,
 * setMulticastLoopback, setBroadcast, setMulticastInterface and the buffer
 * sizes — their ranges, EBADF before bind, NOT_RUNNING after close, the
 * value the kernel really holds afterwards, and Node's
 * ERR_SOCKET_BUFFER_SIZE records and messages. Every item a test proves is
 * named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_options, .timeout = 60);

static int sockopt(dg_socket *sock, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof(value);

    cr_assert_eq(getsockopt(dg_socket_fd(sock), level, name, &value, &len), 0,
                 "getsockopt: %s", strerror(errno));
    return value;
}

/* A bound socket of the type, or an unbound one. */
static dg_socket *open_socket(dg_loop *loop, dg_socket_type type, bool bound)
{
    dg_socket *sock = dgt_socket_new(loop, type, 0, NULL, NULL);

    if (bound)
        dgt_bind(loop, sock, dgt_loopback(dgt_family(type)), 0);
    return sock;
}

/* L12, N37-N40: on a socket that is not bound, every option setter is
 * -EBADF (Node: "setTTL EBADF", ...), including the multicast interface
 * (libuv udp_no_autobind); the socket stays unbound. */
static void unbound_is_ebadf(dg_socket_type type)
{
    dg_loop *loop;
    dg_socket *sock;
    dg_address addr;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, type, false);
    dgt_assert_code(dg_socket_set_ttl(sock, 16), -EBADF);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, 16), -EBADF);
    dgt_assert_code(dg_socket_set_multicast_loopback(sock, true), -EBADF);
    dgt_assert_code(dg_socket_set_broadcast(sock, true), -EBADF);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, type == DG_UDP4 ? "0.0.0.0" : "::"),
                    -EBADF);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF, "no option binds the socket");
    cr_assert(!dg_loop_alive(loop));
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, unbound_setters_are_ebadf_udp4)
{
    unbound_is_ebadf(DG_UDP4); /* L12, N37, N38, N39, N40, N41 */
}

Test(dgram_options, unbound_setters_are_ebadf_udp6)
{
    unbound_is_ebadf(DG_UDP6); /* L12 */
}

/* N37, L12, E9: setTTL takes 1..255 (the kernel holds the value), and
 * answers -EINVAL for 0, -1, 256, 1000; a refused value changes nothing;
 * success is 0, not the argument. */
static void ttl(dg_socket_type type)
{
    bool v4 = type == DG_UDP4;
    int level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
    int name = v4 ? IP_TTL : IPV6_UNICAST_HOPS;
    dg_loop *loop;
    dg_socket *sock;
    const int bad[] = {0, -1, 256, 1000, INT_MIN, INT_MAX};

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, type, true);
    for (int t = 1; t <= 255; t++) {
        dgt_assert_code_fmt(dg_socket_set_ttl(sock, t), 0, "ttl %d", t);
        cr_assert_eq(sockopt(sock, level, name), t);
    }
    cr_assert_eq(dg_socket_set_ttl(sock, 16), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        dgt_assert_code_fmt(dg_socket_set_ttl(sock, bad[i]), -EINVAL, "ttl %d", bad[i]);
    cr_assert_eq(sockopt(sock, level, name), 16, "a refused TTL changed the socket");
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, set_ttl_udp4)
{
    ttl(DG_UDP4); /* N37, L12, E9 */
}

Test(dgram_options, set_ttl_udp6)
{
    ttl(DG_UDP6); /* N37, L12 */
}

/* N38, L12: setMulticastTTL takes 0..255 and answers -EINVAL for 256 and
 * 1000 (and -1 in dgring). */
static void multicast_ttl(dg_socket_type type)
{
    bool v4 = type == DG_UDP4;
    int level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
    int name = v4 ? IP_MULTICAST_TTL : IPV6_MULTICAST_HOPS;
    dg_loop *loop;
    dg_socket *sock;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, type, true);
    for (int t = 0; t <= 255; t++) {
        dgt_assert_code_fmt(dg_socket_set_multicast_ttl(sock, t), 0, "ttl %d", t);
        cr_assert_eq(sockopt(sock, level, name), t);
    }
    cr_assert_eq(dg_socket_set_multicast_ttl(sock, 16), 0);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, 256), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, 1000), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, -1), -EINVAL);
    cr_assert_eq(sockopt(sock, level, name), 16);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, set_multicast_ttl_udp4)
{
    multicast_ttl(DG_UDP4); /* N38, L12 */
}

Test(dgram_options, set_multicast_ttl_udp6)
{
    multicast_ttl(DG_UDP6); /* N38, L12 */
}

/* N39, L12: setMulticastLoopback on/off, held by the kernel; repeated
 * calls are fine. */
static void multicast_loopback(dg_socket_type type)
{
    bool v4 = type == DG_UDP4;
    int level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
    int name = v4 ? IP_MULTICAST_LOOP : IPV6_MULTICAST_LOOP;
    dg_loop *loop;
    dg_socket *sock;
    const bool seq[] = {true, true, false, false, true};

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, type, true);
    for (size_t i = 0; i < sizeof(seq); i++) {
        dgt_assert_code(dg_socket_set_multicast_loopback(sock, seq[i]), 0);
        cr_assert_eq(sockopt(sock, level, name), seq[i] ? 1 : 0);
    }
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, set_multicast_loopback_udp4)
{
    multicast_loopback(DG_UDP4); /* N39, L12 */
}

Test(dgram_options, set_multicast_loopback_udp6)
{
    multicast_loopback(DG_UDP6); /* N39, L12 */
}

/* N40, L12: setBroadcast on, on, off, off (idempotent), held by the
 * kernel as SO_BROADCAST. */
static void broadcast(dg_socket_type type)
{
    dg_loop *loop;
    dg_socket *sock;
    const bool seq[] = {true, true, false, false};

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, type, true);
    for (size_t i = 0; i < sizeof(seq); i++) {
        dgt_assert_code(dg_socket_set_broadcast(sock, seq[i]), 0);
        cr_assert_eq(sockopt(sock, SOL_SOCKET, SO_BROADCAST), seq[i] ? 1 : 0);
    }
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, set_broadcast_udp4)
{
    broadcast(DG_UDP4); /* N40, L12 */
}

Test(dgram_options, set_broadcast_udp6)
{
    broadcast(DG_UDP6); /* N40, L12 */
}

/* N41, L9: udp4 setMulticastInterface: "0.0.0.0" (default choice) and
 * "127.0.0.1" work and are held by the kernel; an IPv6 address is
 * IPV6_MULTICAST_IF, which a udp4 socket refuses (-ENOPROTOOPT, as libuv
 * and Node report it); text that does not parse and "" are -EINVAL; a
 * multicast address is no interface (an error); NULL is INVALID_ARG_TYPE
 * (Node's TypeError). */
Test(dgram_options, set_multicast_interface_udp4)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = open_socket(loop, DG_UDP4, true);
    struct in_addr held;
    socklen_t len = sizeof(held);
    char text[INET_ADDRSTRLEN];
    int rc;

    dgt_assert_code(dg_socket_set_multicast_interface(sock, "0.0.0.0"), 0);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "127.0.0.1"), 0);
    cr_assert_eq(getsockopt(dg_socket_fd(sock), IPPROTO_IP, IP_MULTICAST_IF, &held, &len), 0);
    cr_assert_str_eq(inet_ntop(AF_INET, &held, text, sizeof(text)), "127.0.0.1");
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "::"), -ENOPROTOOPT);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "::1"), -ENOPROTOOPT);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "not an address"), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, ""), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "256.1.1.1"), -EINVAL);
    rc = dg_socket_set_multicast_interface(sock, "224.0.0.2");
    cr_assert_lt(rc, 0, "a multicast address is not an interface address");
    cr_assert_gt(rc, -4096, "a system error (%s)", dg_err_name(rc));
    dgt_assert_code(dg_socket_set_multicast_interface(sock, NULL), DG_ERR_INVALID_ARG_TYPE);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N41: udp6 setMulticastInterface: "::%lo" selects lo's index, "::" and
 * "::%<unknown name>" the default (0); an IPv4 address sets the interface
 * of the socket's IPv4 traffic (IP_MULTICAST_IF), as libuv does for Node;
 * "undefined" and "" are -EINVAL. */
Test(dgram_options, set_multicast_interface_udp6)
{
    dg_loop *loop;
    dg_socket *sock;
    unsigned lo = if_nametoindex("lo");
    char scoped[32];
    struct in_addr held;
    socklen_t len = sizeof(held);

    dgt_require_ipv6();
    if (lo == 0)
        cr_skip_test("no interface named lo");
    loop = dgt_loop_new(NULL);
    sock = open_socket(loop, DG_UDP6, true);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "::%lo"), 0);
    cr_assert_eq(sockopt(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF), (int)lo);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "::"), 0);
    cr_assert_eq(sockopt(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0);
    snprintf(scoped, sizeof(scoped), "::%%%u", lo);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, scoped), 0, "numeric scope");
    cr_assert_eq(sockopt(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF), (int)lo);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "::%no-such-if0"), 0,
                    "an unknown scope name picks the default");
    cr_assert_eq(sockopt(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "127.0.0.1"), 0, "IPv4 on udp6");
    cr_assert_eq(getsockopt(dg_socket_fd(sock), IPPROTO_IP, IP_MULTICAST_IF, &held, &len), 0);
    cr_assert_eq(held.s_addr, htonl(INADDR_LOOPBACK));
    cr_assert_eq(sockopt(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0, "the IPv6 choice unchanged");
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "undefined"), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, ""), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, NULL), DG_ERR_INVALID_ARG_TYPE);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N42: on a never-bound socket the four buffer-size calls are
 * ERR_SOCKET_BUFFER_SIZE with a record whose message is Node's exact text
 * ("... uv_send_buffer_size returned EBADF (bad file descriptor)"); err
 * may be NULL. */
Test(dgram_options, buffer_size_on_an_unbound_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = open_socket(loop, DG_UDP4, false);
    dg_error err;
    char text[256];

    memset(&err, 0, sizeof(err));
    dgt_assert_code(dg_socket_set_send_buffer_size(sock, 8192, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_assert_code(err.code, DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_assert_code(err.system_code, -EBADF);
    cr_assert_str_eq(err.syscall, "uv_send_buffer_size");
    dgt_format(&err, text, sizeof(text));
    cr_assert_str_eq(text, "Could not get or set buffer size: uv_send_buffer_size returned EBADF "
                           "(bad file descriptor)");
    memset(&err, 0, sizeof(err));
    dgt_assert_code(dg_socket_get_send_buffer_size(sock, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    cr_assert_str_eq(err.syscall, "uv_send_buffer_size");
    memset(&err, 0, sizeof(err));
    dgt_assert_code(dg_socket_set_recv_buffer_size(sock, 8192, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    cr_assert_str_eq(err.syscall, "uv_recv_buffer_size");
    memset(&err, 0, sizeof(err));
    dgt_assert_code(dg_socket_get_recv_buffer_size(sock, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_assert_code(err.system_code, -EBADF);
    dgt_format(&err, text, sizeof(text));
    cr_assert_str_eq(text, "Could not get or set buffer size: uv_recv_buffer_size returned EBADF "
                           "(bad file descriptor)");
    dgt_assert_code(dg_socket_get_recv_buffer_size(sock, NULL), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_assert_code(dg_socket_set_send_buffer_size(sock, 8192, NULL), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N42, E8: bound: negative sizes are BAD_BUFFER_SIZE ("Buffer size must be
 * a positive integer"); 10000 reads back as 20000 (Linux doubles); 0 is
 * accepted and only queries (E8); > INT_MAX (2147483648) is
 * ERR_SOCKET_BUFFER_SIZE wrapping EINVAL with Node's message. */
static void buffer_sizes_bound(bool recv)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = open_socket(loop, DG_UDP4, true);
    int (*set)(dg_socket *, long long, dg_error *) =
        recv ? dg_socket_set_recv_buffer_size : dg_socket_set_send_buffer_size;
    int (*get)(const dg_socket *, dg_error *) =
        recv ? dg_socket_get_recv_buffer_size : dg_socket_get_send_buffer_size;
    const char *syscall = recv ? "uv_recv_buffer_size" : "uv_send_buffer_size";
    dg_error err;
    char text[256], want[256];

    dgt_assert_code(set(sock, -1, &err), DG_ERR_SOCKET_BAD_BUFFER_SIZE);
    dgt_assert_code(set(sock, LLONG_MIN, NULL), DG_ERR_SOCKET_BAD_BUFFER_SIZE);
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_BAD_BUFFER_SIZE),
                     "Buffer size must be a positive integer");
    dgt_assert_code(set(sock, 10000, &err), 0, "E9: success is 0");
    cr_assert_eq(get(sock, &err), 20000);
    dgt_assert_code(set(sock, 0, &err), 0, "E8: 0 only queries");
    cr_assert_eq(get(sock, &err), 20000, "0 changed the size");
    memset(&err, 0, sizeof(err));
    dgt_assert_code(set(sock, 2147483648LL, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_assert_code(err.system_code, -EINVAL);
    cr_assert_str_eq(err.syscall, syscall);
    dgt_format(&err, text, sizeof(text));
    snprintf(want, sizeof(want),
             "Could not get or set buffer size: %s returned EINVAL (invalid argument)", syscall);
    cr_assert_str_eq(text, want);
    cr_assert_eq(get(sock, NULL), 20000);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_options, recv_buffer_size_bound)
{
    buffer_sizes_bound(true); /* N42, E8, E9 */
}

Test(dgram_options, send_buffer_size_bound)
{
    buffer_sizes_bound(false); /* N42, E8 */
}

/* N48, E5: after close every option call is NOT_RUNNING (dgring checks
 * where Node forgets to), also before the close callback has run. */
Test(dgram_options, options_after_close_are_not_running)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = open_socket(loop, DG_UDP4, true);
    dgt_close_rec cr = {0};
    dg_error err;

    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_assert_code(dg_socket_set_ttl(sock, 16), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, 16), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_multicast_loopback(sock, true), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_broadcast(sock, true), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "0.0.0.0"),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, NULL),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING, "health check first, as Node");
    dgt_assert_code(dg_socket_get_recv_buffer_size(sock, &err), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_get_send_buffer_size(sock, &err), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_recv_buffer_size(sock, 4096, &err),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_set_send_buffer_size(sock, 4096, &err),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_DGRAM_NOT_RUNNING), "Not running");
    dgt_loop_finish(loop);
}

/* L12 (udp_options): options set on a bound socket take effect on real
 * traffic: a TTL of 1 still reaches loopback (one hop is enough), and the
 * socket then unref'd lets the loop end. */
Test(dgram_options, ttl_one_still_reaches_loopback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    dg_socket *txs = open_socket(loop, DG_UDP4, true);
    dgt_send_rec sent = {0};
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);

    cr_assert_eq(dg_socket_set_ttl(txs, 1), 0);
    cr_assert_eq(dg_socket_send(txs, "hop", 3, port, NULL, dgt_on_send, &sent), 0);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, 3);
    dg_socket_unref(rxs);
    dg_socket_unref(txs);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0, "unref'd sockets let the loop end");
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
}

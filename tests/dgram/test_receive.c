/* dgram conformance, receive (docs/conformance.md; libuv udp_dual_stack,
 * udp_ipv6_only, udp_recv_in_a_row, udp_alloc_cb_fail, udp_mmsg,
 * udp_recv_cb_close_pollerr, and the truncation flag): round trips and
 * echo with rinfo (address, family, port, size), dual-stack senders as
 * ::ffff:a.b.c.d, ipv6Only, zero-length datagrams, bursts that exhaust the
 * buffer ring, receive errors as on_error "recvmsg", ICMP errors arriving
 * after close, truncation, and rinfo formatting. Every item a test proves
 * is named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_receive, .timeout = 60);

/* N33: the client sends 'A message to send'; the server sees rinfo
 * {address loopback, family, port = client's port, size 17} and echoes it
 * twice: to msg->addr with send_to, and to the text address and port of
 * the rinfo with send; the client sees rinfo.port = server's port. */
static void echo_twice(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    dg_address from;

    cr_expect_eq(dg_address_from_sockaddr(msg->addr, msg->addrlen, &from), 0);
    cr_expect_eq(dg_socket_send_to(sock, msg->data, msg->length, msg->addr, msg->addrlen, NULL,
                                   NULL),
                 0);
    cr_expect_eq(dg_socket_send(sock, msg->data, msg->length, from.port, from.address, NULL, NULL),
                 0);
    (void)ev;
}

static void round_trip(dg_socket_type type)
{
    int family = dgt_family(type);
    const char *text = "A message to send";
    dg_loop *loop;
    dgt_events server = {.message_hook = echo_twice}, client = {0};
    dg_socket *ss, *cs;
    dgt_send_rec sent = {0};
    dg_address caddr;
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    ss = dgt_events_socket(loop, type, 0, &server);
    cs = dgt_events_socket(loop, type, 0, &client);
    port = dgt_bind(loop, ss, dgt_loopback(family), 0);
    dgt_bind(loop, cs, dgt_loopback(family), 0);
    cr_assert_eq(dg_socket_address(cs, &caddr), 0);
    cr_assert_eq(dg_socket_send(cs, text, 17, port, dgt_loopback(family), dgt_on_send, &sent), 0);
    dgt_run_until(loop, &client.messages, 2, DGT_WAIT_MS);
    cr_assert_eq(server.messages, 1);
    cr_assert_eq(server.from_rc, 0);
    cr_assert_str_eq(server.from.address, dgt_loopback(family));
    cr_assert_eq(server.from.family, family);
    cr_assert_eq(server.from.port, caddr.port);
    cr_assert_eq(server.size, 17);
    cr_assert_eq(server.length, 17);
    cr_assert_eq(server.flags, 0);
    cr_assert_eq(memcmp(server.data, text, 17), 0);
    cr_assert_eq(client.from.port, port);
    cr_assert_str_eq(client.from.address, dgt_loopback(family));
    cr_assert_eq(client.length, 17);
    cr_assert_eq(memcmp(client.data, text, 17), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, 17);
    dgt_close_socket(loop, ss);
    dgt_close_socket(loop, cs);
    cr_assert_eq(server.errors + client.errors, 0);
    cr_assert_eq(client.messages, 2);
    dgt_loop_finish(loop);
}

Test(dgram_receive, round_trip_and_echo_udp4)
{
    round_trip(DG_UDP4); /* N33 */
}

Test(dgram_receive, round_trip_and_echo_udp6)
{
    round_trip(DG_UDP6); /* N33 */
}

/* L7: a dual-stack udp6 socket bound to "::" receives an IPv4 sender's
 * datagram with rinfo address ::ffff:127.0.0.1, family IPv6 and the
 * sender's port. */
Test(dgram_receive, dual_stack_shows_ipv4_senders_mapped)
{
    dg_loop *loop;
    dgt_events rx = {0};
    dg_socket *rxs, *txs;
    dgt_send_rec sent = {0};
    dg_address txaddr;
    int port;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    rxs = dgt_events_socket(loop, DG_UDP6, 0, &rx);
    txs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    port = dgt_bind(loop, rxs, "::", 0);
    dgt_bind(loop, txs, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_address(txs, &txaddr), 0);
    cr_assert_eq(dg_socket_send(txs, "v4", 2, port, "127.0.0.1", dgt_on_send, &sent), 0);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    cr_assert_str_eq(rx.from.address, "::ffff:127.0.0.1");
    cr_assert_eq(rx.from.family, AF_INET6);
    cr_assert_eq(rx.from.port, txaddr.port);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
}

/* L7, N12: with ipv6Only an IPv4 datagram for the port does not reach the
 * udp6 socket (a udp4 socket on 0.0.0.0:P gets it instead), while a ::1
 * datagram sent after it does: the udp6 socket sees exactly one message. */
Test(dgram_receive, ipv6_only_receives_no_ipv4)
{
    dg_loop *loop;
    dgt_events r6 = {0}, r4 = {0};
    dg_socket *s6, *s4, *t4, *t6;
    dgt_send_rec a = {0}, b = {0};
    int port;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    s6 = dgt_events_socket(loop, DG_UDP6, DG_SOCKET_IPV6_ONLY, &r6);
    s4 = dgt_events_socket(loop, DG_UDP4, 0, &r4);
    t4 = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    t6 = dgt_socket_new(loop, DG_UDP6, 0, NULL, NULL);
    port = dgt_bind(loop, s6, "::", dgt_free_dual_stack_port());
    cr_assert_eq(dgt_bind(loop, s4, "0.0.0.0", port), port);
    cr_assert_eq(dg_socket_send(t4, "v4", 2, port, "127.0.0.1", dgt_on_send, &a), 0);
    dgt_run_until(loop, &r4.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(t6, "v6", 2, port, "::1", dgt_on_send, &b), 0);
    dgt_run_until(loop, &r6.messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &b.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(a.status, 2, "the IPv4 client's send succeeds");
    cr_assert_eq(r6.messages, 1);
    cr_assert_eq(memcmp(r6.data, "v6", 2), 0);
    cr_assert_str_eq(r6.from.address, "::1");
    cr_assert_eq(r4.messages, 1);
    dgt_close_socket(loop, s6);
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, t4);
    dgt_close_socket(loop, t6);
    dgt_loop_finish(loop);
}

/* L14, N28: N-1 10-byte datagrams and one empty datagram from a plain
 * socket: exactly N messages, one of them empty with the sender's address
 * (a real zero-length datagram is not "no data"). */
Test(dgram_receive, datagrams_in_a_row_with_an_empty_one)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);

    for (int i = 0; i < 15; i++)
        dgt_plain_send(plain, AF_INET, port, "0123456789", 10);
    dgt_plain_send(plain, AF_INET, port, "", 0);
    dgt_run_until(loop, &rx.messages, 16, DGT_WAIT_MS);
    dgt_settle(loop, 10);
    cr_assert_eq(rx.messages, 16);
    cr_assert_eq(rx.empty_messages, 1);
    cr_assert_eq(rx.bytes, 150);
    cr_assert_eq(rx.length, 0, "the empty one came last");
    cr_assert_eq(rx.from_rc, 0);
    cr_assert_eq(rx.from.port, dgt_plain_port(plain));
    close(plain);
    dgt_close_socket(loop, rxs);
    cr_assert_eq(rx.errors, 0);
    dgt_loop_finish(loop);
}

/* L4, L8: a loop with only 2 receive buffers gets 64 datagrams queued
 * before it runs: the ring runs dry and is re-armed, never an error; all
 * 64 arrive, in order, and the bytes add up (40 x 4 bytes in libuv's
 * mmsg test; 64 x 4 here). */
struct seq {
    int next;
    int bad;
};

static void check_seq(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    struct seq *s = ev->user;
    char want[8];

    (void)sock;
    snprintf(want, sizeof(want), "%04d", s->next++);
    if (msg->length != 4 || memcmp(msg->data, want, 4) != 0)
        s->bad++;
}

Test(dgram_receive, buffer_ring_exhaustion_loses_nothing)
{
    dg_loop *loop = dgt_loop_new_sized(2, 0);
    struct seq seq = {0};
    dgt_events rx = {.message_hook = check_seq, .user = &seq};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);
    dg_socket_stats st;

    for (int i = 0; i < 64; i++) {
        char text[8];

        snprintf(text, sizeof(text), "%04d", i);
        dgt_plain_send(plain, AF_INET, port, text, 4);
    }
    dgt_run_until(loop, &rx.messages, 64, DGT_WAIT_MS);
    dgt_settle(loop, 10);
    cr_assert_eq(rx.messages, 64);
    cr_assert_eq(seq.bad, 0, "datagrams lost, damaged or out of order");
    cr_assert_eq(rx.bytes, 64 * 4);
    cr_assert_eq(rx.errors, 0, "a dry buffer ring is not an error: %s", rx.error_text);
    cr_assert_eq(dg_socket_get_stats(rxs, &st), 0);
    cr_log_info("ring ran dry %llu times, re-armed %llu times",
                (unsigned long long)st.rx_no_buffers, (unsigned long long)st.rx_rearms);
    close(plain);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* L28, E7: a datagram longer than the loop's receive buffer is delivered
 * truncated with DG_MSG_TRUNC, length = what was kept, size = real size
 * (Node hides this; dgring shows it). */
Test(dgram_receive, truncation_is_visible)
{
    dg_loop *loop = dgt_loop_new_sized(0, 64);
    dgt_events rx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);
    unsigned char big[300];

    dgt_fill(big, sizeof(big), 5);
    dgt_plain_send(plain, AF_INET, port, big, sizeof(big));
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    cr_assert(rx.flags & DG_MSG_TRUNC);
    cr_assert_eq(rx.length, 64);
    cr_assert_eq(rx.size, 300);
    cr_assert_eq(dgt_check(rx.data, 64, 5), 64);
    dgt_plain_send(plain, AF_INET, port, big, 10);
    dgt_run_until(loop, &rx.messages, 2, DGT_WAIT_MS);
    cr_assert_eq(rx.flags, 0);
    cr_assert_eq(rx.size, 10);
    close(plain);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* N34, E10: a receive failure reaches on_error with syscall "recvmsg" and
 * Node's message ("recvmsg ECONNREFUSED": a connected socket's datagram
 * to a closed port); no message; the socket stays usable: after
 * disconnect it sends to a live peer and closes normally. */
Test(dgram_receive, receive_error_is_on_error_recvmsg)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int gone = dgt_plain_socket(AF_INET, 0);
    int closed_port = dgt_plain_port(gone);
    int peer = dgt_plain_socket(AF_INET, 0);
    dgt_status_rec conn = {0};
    dgt_send_rec first = {0}, after = {0};
    char buf[8];

    close(gone);
    cr_assert_eq(dg_socket_connect(sock, closed_port, NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(sock, "ping", 4, 0, NULL, dgt_on_send, &first), 0);
    dgt_run_until(loop, &first.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(first.status, 4);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, -ECONNREFUSED);
    cr_assert_str_eq(ev.error.syscall, "recvmsg");
    cr_assert_str_eq(ev.error_text, "recvmsg ECONNREFUSED");
    cr_assert_eq(ev.messages, 0);
    cr_assert_eq(dg_socket_disconnect(sock), 0);
    cr_assert_eq(dg_socket_send(sock, "alive", 5, dgt_plain_port(peer), NULL, dgt_on_send, &after),
                 0);
    dgt_run_until(loop, &after.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(after.status, 5);
    cr_assert_eq(dgt_plain_recv(peer, buf, sizeof(buf), DGT_WAIT_MS, NULL), 5);
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.errors, 1);
    dgt_loop_finish(loop);
}

/* L16: an ICMP error that arrives after the socket was closed from a send
 * callback (or on a socket with no message handler) must not crash or
 * reach any handler (ASan checks the memory). */
static void close_in_send_cb(dg_socket *sock, int status, const dg_error *err, void *data)
{
    dgt_close_rec *cr = data;

    (void)status;
    (void)err;
    cr_expect_eq(dg_socket_close(sock, dgt_on_close, cr), 0);
}

Test(dgram_receive, icmp_error_after_close_is_harmless)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_socket *quiet = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int gone = dgt_plain_socket(AF_INET, 0);
    int closed_port = dgt_plain_port(gone);
    dgt_status_rec c1 = {0}, c2 = {0};
    dgt_close_rec cr = {.ev = &ev};
    dgt_send_rec quiet_sent = {0};

    close(gone);
    cr_assert_eq(dg_socket_connect(sock, closed_port, NULL, dgt_on_status, &c1), 0);
    cr_assert_eq(dg_socket_connect(quiet, closed_port, NULL, dgt_on_status, &c2), 0);
    dgt_run_until(loop, &c1.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &c2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(sock, "boom", 4, 0, NULL, close_in_send_cb, &cr), 0);
    cr_assert_eq(dg_socket_send(quiet, "boom", 4, 0, NULL, dgt_on_send, &quiet_sent), 0);
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &quiet_sent.calls, 1, DGT_WAIT_MS);
    dgt_settle(loop, 20);
    cr_assert_eq(ev.messages, 0);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(cr.calls, 1);
    cr_assert_leq(ev.errors, 1, "at most the one ICMP error, before the close");
    dgt_close_socket(loop, quiet);
    dgt_loop_finish(loop);
}

/* A socket without a message handler drops datagrams silently (and keeps
 * receiving: a later handler-less socket does not stall the loop). */
Test(dgram_receive, no_message_handler_drops_silently)
{
    /* N33: createSocket without a message listener */
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *rxs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);
    dg_socket_stats st;

    for (int i = 0; i < 5; i++)
        dgt_plain_send(plain, AF_INET, port, "drop", 4);
    dgt_settle(loop, 20);
    cr_assert_eq(dg_socket_get_stats(rxs, &st), 0);
    cr_assert_eq(st.rx_datagrams, 5, "%llu", (unsigned long long)st.rx_datagrams);
    close(plain);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* N33/N36 (rinfo formatting): dg_address_from_sockaddr gives Node's
 * rinfo: IPv4, IPv6, IPv4-mapped, link-local with %ifname; other families
 * and short lengths are INVALID_ADDRESS. */
Test(dgram_receive, rinfo_formatting)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(41234)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(5353)};
    struct sockaddr_storage odd = {.ss_family = AF_UNIX};
    unsigned lo = if_nametoindex("lo");
    dg_address a;

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
    cr_assert_str_eq(a.address, "127.0.0.1");
    cr_assert_eq(a.family, AF_INET);
    cr_assert_eq(a.port, 41234);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "::ffff:127.0.0.1");
    cr_assert_eq(a.family, AF_INET6);
    cr_assert_eq(a.port, 5353);
    if (lo == 0)
        cr_skip_test("no interface named lo for the %%ifname part");
    inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr);
    sin6.sin6_scope_id = lo;
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "fe80::1%lo", "N36: link-local with %%ifname, got %s", a.address);
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&odd, sizeof(odd), &a),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 4, &a),
                    DG_ERR_INVALID_ADDRESS);
}

/* N33: two handlers' data pointers are distinct per socket: two servers
 * on one loop each see only their own datagrams. */
Test(dgram_receive, each_socket_sees_only_its_own_datagrams)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events a = {0}, b = {0};
    dg_socket *sa = dgt_events_socket(loop, DG_UDP4, 0, &a);
    dg_socket *sb = dgt_events_socket(loop, DG_UDP4, 0, &b);
    int pa = dgt_bind(loop, sa, "127.0.0.1", 0);
    int pb = dgt_bind(loop, sb, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);

    dgt_plain_send(plain, AF_INET, pa, "to-a", 4);
    dgt_plain_send(plain, AF_INET, pb, "to-b!", 5);
    dgt_plain_send(plain, AF_INET, pa, "to-a", 4);
    dgt_run_until(loop, &a.messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &b.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(a.bytes, 8);
    cr_assert_eq(b.bytes, 5);
    close(plain);
    dgt_close_socket(loop, sa);
    dgt_close_socket(loop, sb);
    dgt_loop_finish(loop);
}

/* L7, N33: a dual-stack udp6 server answers an IPv4 client through the
 * mapped rinfo address (send_to with msg->addr, and send with the text
 * "::ffff:127.0.0.1"); the udp4 client sees the server as 127.0.0.1. */
Test(dgram_receive, dual_stack_server_answers_an_ipv4_client)
{
    dg_loop *loop;
    dgt_events server = {.message_hook = echo_twice}, client = {0};
    dg_socket *ss, *cs;
    int port;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    ss = dgt_events_socket(loop, DG_UDP6, 0, &server);
    cs = dgt_events_socket(loop, DG_UDP4, 0, &client);
    port = dgt_bind(loop, ss, "::", 0);
    dgt_bind(loop, cs, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(cs, "hi6", 3, port, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(loop, &client.messages, 2, DGT_WAIT_MS);
    cr_assert_str_eq(server.from.address, "::ffff:127.0.0.1");
    cr_assert_str_eq(client.from.address, "127.0.0.1");
    cr_assert_eq(client.from.port, port);
    dgt_close_socket(loop, ss);
    dgt_close_socket(loop, cs);
    cr_assert_eq(server.errors + client.errors, 0);
    dgt_loop_finish(loop);
}

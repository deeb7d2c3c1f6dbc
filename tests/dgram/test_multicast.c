/* dgram conformance, multicast and broadcast (docs/conformance.md; libuv
 * udp_multicast_join, udp_multicast_join6, udp_multicast_interface,
 * udp_multicast_interface6, udp_multicast_ttl): membership argument
 * errors, membership on an unbound socket, add/drop and source-specific
 * add/drop for IPv4 and IPv6, and delivery to several sockets.
 *
 * Everything stays on the loopback interface: groups are joined on
 * 127.0.0.1 (IPv4) or "lo" (IPv6), senders set their multicast interface
 * to 127.0.0.1 / lo first, and broadcasts go to 127.255.255.255. Where the
 * kernel refuses loopback multicast (ENODEV, ENOBUFS, ENETUNREACH...) the
 * test skips and says why. Every item a test proves is named in a
 * comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_multicast, .timeout = 60);

#define GROUP4 "239.255.0.1"
#define GROUP4_B "224.0.0.114"
#define GROUP6 "ff02::1:3"

/* Codes that mean "this kernel or sandbox does not do multicast on lo". */
static bool refused(int code)
{
    return code == -ENODEV || code == -ENOBUFS || code == -ENETUNREACH || code == -EPERM ||
           code == -EADDRNOTAVAIL || code == -ENOPROTOOPT || code == -EHOSTUNREACH;
}

/* N43: membership argument errors, without any network: NULL or "" group
 * -> MISSING_ARGS; an unparsable group or interface, or a group of the
 * other family -> -EINVAL (add and drop); source-specific: NULL source or
 * group -> INVALID_ARG_TYPE, source "0" -> -EINVAL. */
Test(dgram_multicast, membership_argument_errors_udp4)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, NULL, NULL);

    dgt_assert_code(dg_socket_add_membership(sock, NULL, NULL), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_add_membership(sock, "", NULL), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_drop_membership(sock, NULL, NULL), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_drop_membership(sock, "", "127.0.0.1"), DG_ERR_MISSING_ARGS);
    cr_assert_str_eq(dg_err_name(DG_ERR_MISSING_ARGS), "ERR_MISSING_ARGS");
    dgt_assert_code(dg_socket_add_membership(sock, "256.256.256.256", "127.0.0.1"), -EINVAL);
    dgt_assert_code(dg_socket_drop_membership(sock, "256.256.256.256", "127.0.0.1"), -EINVAL);
    dgt_assert_code(dg_socket_add_membership(sock, GROUP6, "127.0.0.1"), -EINVAL,
                    "an IPv6 group on udp4");
    dgt_assert_code(dg_socket_add_membership(sock, GROUP4, "not-an-interface!"), -EINVAL);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, NULL, GROUP4, "127.0.0.1"),
                    DG_ERR_INVALID_ARG_TYPE, "sourceAddress");
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "127.0.0.1", NULL, "127.0.0.1"),
                    DG_ERR_INVALID_ARG_TYPE, "groupAddress");
    dgt_assert_code(dg_socket_drop_source_specific_membership(sock, NULL, GROUP4, "127.0.0.1"),
                    DG_ERR_INVALID_ARG_TYPE);
    dgt_assert_code(dg_socket_drop_source_specific_membership(sock, "127.0.0.1", NULL, "127.0.0.1"),
                    DG_ERR_INVALID_ARG_TYPE);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, GROUP4, "0", "127.0.0.1"),
                    -EINVAL);
    dgt_assert_code(dg_socket_drop_source_specific_membership(sock, GROUP4, "0", "127.0.0.1"),
                    -EINVAL);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "0", GROUP4, "127.0.0.1"),
                    -EINVAL, "source '0'");
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_multicast, membership_argument_errors_udp6)
{
    dg_loop *loop;
    dg_socket *sock;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_socket_new(loop, DG_UDP6, DG_SOCKET_REUSE_ADDR, NULL, NULL);
    dgt_assert_code(dg_socket_add_membership(sock, NULL, "lo"), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_drop_membership(sock, "", "lo"), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_add_membership(sock, "ff02::zz", "lo"), -EINVAL);
    dgt_assert_code(dg_socket_add_membership(sock, GROUP4, "lo"), -EINVAL,
                    "an IPv4 group on udp6");
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, NULL, "ff3e::1234", "lo"),
                    DG_ERR_INVALID_ARG_TYPE);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "::1", "ff3e::1234", "no-if0"),
                    -EINVAL, "an unknown interface name");
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "ff3e::1234", "0", "lo"),
                    -EINVAL);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N43, N48: membership calls after close are NOT_RUNNING, before any
 * argument check (Node's healthCheck comes first). */
Test(dgram_multicast, membership_after_close_is_not_running)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, NULL, NULL);
    dgt_close_rec cr = {0};

    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_assert_code(dg_socket_add_membership(sock, GROUP4, "127.0.0.1"),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_drop_membership(sock, GROUP4, "127.0.0.1"),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_add_membership(sock, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "127.0.0.1", GROUP4, NULL),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_drop_source_specific_membership(sock, NULL, NULL, NULL),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    dgt_loop_finish(loop);
}

/* N44, E6: addMembership on a never-bound socket succeeds and binds it
 * (any address, random port; 'listening' from the loop), after which an
 * explicit bind is ALREADY_BOUND; drop without add is -EADDRNOTAVAIL, add
 * then drop works, and a second drop is -EADDRNOTAVAIL again. */
Test(dgram_multicast, membership_on_an_unbound_socket_binds_it)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &ev);
    dg_address addr;
    int rc;

    rc = dg_socket_add_membership(sock, GROUP4_B, "127.0.0.1");
    if (refused(rc)) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses IPv4 multicast on lo: %s", dg_err_name(rc));
    }
    cr_assert_eq(rc, 0, "addMembership on an unbound socket: %s", dg_err_name(rc));
    cr_assert_eq(ev.listening, 0, "'listening' inside the call");
    dgt_run_until(loop, &ev.listening, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, "0.0.0.0");
    cr_assert_gt(addr.port, 0);
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND);
    cr_assert_eq(dg_socket_drop_membership(sock, GROUP4_B, "127.0.0.1"), 0);
    dgt_assert_code(dg_socket_drop_membership(sock, GROUP4_B, "127.0.0.1"), -EADDRNOTAVAIL);
    dgt_assert_code(dg_socket_drop_membership(sock, GROUP4, "127.0.0.1"), -EADDRNOTAVAIL,
                    "drop of a group never joined");
    cr_assert_eq(dg_socket_add_membership(sock, GROUP4, "127.0.0.1"), 0);
    cr_assert_eq(dg_socket_drop_membership(sock, GROUP4, "127.0.0.1"), 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

/* N44 (drop first): dropMembership on a never-bound socket without an add
 * is -EADDRNOTAVAIL. */
Test(dgram_multicast, drop_without_add_is_eaddrnotavail)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, NULL, NULL);

    dgt_assert_code(dg_socket_drop_membership(sock, GROUP4_B, "127.0.0.1"), -EADDRNOTAVAIL);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* Sets a sender up for loopback-only multicast (Node's multi-process
 * sender, with the interface pinned to 127.0.0.1 instead of 0.0.0.0). */
static void loopback_sender(dg_socket *sock)
{
    cr_assert_eq(dg_socket_set_ttl(sock, 1), 0);
    cr_assert_eq(dg_socket_set_broadcast(sock, true), 0);
    cr_assert_eq(dg_socket_set_multicast_ttl(sock, 1), 0);
    cr_assert_eq(dg_socket_set_multicast_loopback(sock, true), 0);
    cr_assert_eq(dg_socket_set_multicast_interface(sock, "127.0.0.1"), 0);
}

/* L10: a socket joins GROUP4 on lo, receives its own looped-back datagram,
 * leaves; joins source-specific with the observed sender as source and
 * receives a second datagram; leaves that too. 2 receives, 2 send
 * callbacks. */
Test(dgram_multicast, join_receive_leave_then_source_specific)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &ev);
    dgt_send_rec s1 = {0}, s2 = {0};
    char source[DG_ADDRSTRLEN];
    int port, rc;

    port = dgt_bind(loop, sock, "0.0.0.0", 0);
    loopback_sender(sock);
    rc = dg_socket_add_membership(sock, GROUP4, "127.0.0.1");
    if (refused(rc)) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses to join %s on lo: %s", GROUP4, dg_err_name(rc));
    }
    cr_assert_eq(rc, 0, "%s", dg_err_name(rc));
    cr_assert_eq(dg_socket_send(sock, "first", 5, port, GROUP4, dgt_on_send, &s1), 0);
    dgt_run_until(loop, &s1.calls, 1, DGT_WAIT_MS);
    if (refused(s1.status)) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses multicast sends on lo: %s", dg_err_name(s1.status));
    }
    cr_assert_eq(s1.status, 5);
    dgt_run_until(loop, &ev.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(memcmp(ev.data, "first", 5), 0);
    snprintf(source, sizeof(source), "%s", ev.from.address);
    cr_assert_str_eq(source, "127.0.0.1");
    cr_assert_eq(dg_socket_drop_membership(sock, GROUP4, "127.0.0.1"), 0);

    rc = dg_socket_add_source_specific_membership(sock, source, GROUP4, "127.0.0.1");
    if (rc == -ENOPROTOOPT || rc == -ENOSYS) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("no source-specific multicast here: %s", dg_err_name(rc));
    }
    cr_assert_eq(rc, 0, "%s", dg_err_name(rc));
    cr_assert_eq(dg_socket_send(sock, "second", 6, port, GROUP4, dgt_on_send, &s2), 0);
    dgt_run_until(loop, &ev.messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &s2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(s2.status, 6);
    cr_assert_eq(memcmp(ev.data, "second", 6), 0);
    cr_assert_eq(dg_socket_drop_source_specific_membership(sock, source, GROUP4, "127.0.0.1"), 0);
    /* Leaving again: Linux answers EINVAL ("must have a prior join") for
     * a source-specific leave, where a plain leave gets EADDRNOTAVAIL. */
    rc = dg_socket_drop_source_specific_membership(sock, source, GROUP4, "127.0.0.1");
    cr_assert(rc == -EINVAL || rc == -EADDRNOTAVAIL, "second leave: %s", dg_err_name(rc));
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.messages, 2);
    cr_assert_eq(s1.calls + s2.calls, 2);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

/* N45: three receivers with reuseAddr on one port join the group on lo;
 * the sender (Node's setup: TTL, broadcast, multicast TTL, loopback,
 * interface) sends four datagrams and every receiver gets all four; each
 * then drops its membership. */
Test(dgram_multicast, three_receivers_each_get_every_datagram)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx[3];
    dg_socket *rxs[3];
    dgt_events tx = {0};
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    dgt_send_rec sent[4];
    int port = 0, rc;

    memset(rx, 0, sizeof(rx));
    memset(sent, 0, sizeof(sent));
    for (int i = 0; i < 3; i++) {
        rxs[i] = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &rx[i]);
        port = dgt_bind(loop, rxs[i], "0.0.0.0", port);
        rc = dg_socket_add_membership(rxs[i], GROUP4_B, "127.0.0.1");
        if (refused(rc)) {
            for (int j = 0; j <= i; j++)
                dgt_close_socket(loop, rxs[j]);
            dgt_close_socket(loop, txs);
            dgt_loop_finish(loop);
            cr_skip_test("the kernel refuses to join %s on lo: %s", GROUP4_B, dg_err_name(rc));
        }
        cr_assert_eq(rc, 0, "receiver %d: %s", i, dg_err_name(rc));
    }
    dgt_bind(loop, txs, "127.0.0.1", 0);
    loopback_sender(txs);
    for (int i = 0; i < 4; i++) {
        char text[16];
        int n = snprintf(text, sizeof(text), "message %d", i);

        cr_assert_eq(
            dg_socket_send(txs, text, (size_t)n, port, GROUP4_B, dgt_on_send, &sent[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        dgt_run_until(loop, &sent[i].calls, 1, DGT_WAIT_MS);
    if (refused(sent[0].status)) {
        for (int j = 0; j < 3; j++)
            dgt_close_socket(loop, rxs[j]);
        dgt_close_socket(loop, txs);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses multicast sends on lo: %s", dg_err_name(sent[0].status));
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sent[i].status, 9, "send %d: %s", i, dg_err_name(sent[i].status));
    for (int i = 0; i < 3; i++)
        dgt_run_until(loop, &rx[i].messages, 4, DGT_WAIT_MS);
    dgt_settle(loop, 10);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rx[i].messages, 4, "receiver %d got %d", i, rx[i].messages);
        cr_assert_eq(memcmp(rx[i].data, "message 3", 9), 0);
        cr_assert_str_eq(rx[i].from.address, "127.0.0.1");
        cr_assert_eq(dg_socket_drop_membership(rxs[i], GROUP4_B, "127.0.0.1"), 0);
        dgt_close_socket(loop, rxs[i]);
        cr_assert_eq(rx[i].errors, 0);
    }
    dgt_close_socket(loop, txs);
    cr_assert_eq(tx.errors, 0);
    dgt_loop_finish(loop);
}

/* L9, L11: a sender bound to ANY:0 with its multicast interface set to
 * 127.0.0.1 (and a multicast TTL of 32) completes a send to the group
 * (0, or a tolerated refusal that skips). */
Test(dgram_multicast, send_through_a_chosen_interface_completes)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int sink = dgt_plain_socket(AF_INET, 0);
    dgt_send_rec sent = {0};

    dgt_bind(loop, sock, "0.0.0.0", 0);
    cr_assert_eq(dg_socket_set_multicast_interface(sock, "0.0.0.0"), 0, "N41: the default");
    cr_assert_eq(dg_socket_set_multicast_interface(sock, "127.0.0.1"), 0);
    cr_assert_eq(dg_socket_set_multicast_ttl(sock, 32), 0);
    cr_assert_eq(dg_socket_send(sock, "PING", 4, dgt_plain_port(sink), GROUP4, dgt_on_send, &sent),
                 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    close(sink);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
    if (refused(sent.status))
        cr_skip_test("the kernel refuses multicast sends on lo: %s", dg_err_name(sent.status));
    cr_assert_eq(sent.status, 4, "%s", dg_err_name(sent.status));
    cr_assert_eq(ev.errors, 0);
}

/* L9 (interface6): a udp6 sender with its multicast interface set to lo
 * still sends unicast to ::1. */
Test(dgram_multicast, udp6_multicast_interface_then_unicast)
{
    dg_loop *loop;
    dgt_events rx = {0};
    dg_socket *rxs, *txs;
    dgt_send_rec sent = {0};
    int port;

    dgt_require_ipv6();
    if (if_nametoindex("lo") == 0)
        cr_skip_test("no interface named lo");
    loop = dgt_loop_new(NULL);
    rxs = dgt_events_socket(loop, DG_UDP6, 0, &rx);
    txs = dgt_socket_new(loop, DG_UDP6, 0, NULL, NULL);
    port = dgt_bind(loop, rxs, "::1", 0);
    dgt_bind(loop, txs, "::", 0);
    cr_assert_eq(dg_socket_set_multicast_interface(txs, "::%lo"), 0);
    cr_assert_eq(dg_socket_send(txs, "v6", 2, port, "::1", dgt_on_send, &sent), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, 2);
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
}

/* N43, N44 (IPv6): join and leave ff02::1:3 on lo, a second leave is
 * -EADDRNOTAVAIL; source-specific join/leave with source ::1. */
Test(dgram_multicast, udp6_membership_add_and_drop)
{
    dg_loop *loop;
    dg_socket *sock;
    int rc;

    dgt_require_ipv6();
    if (if_nametoindex("lo") == 0)
        cr_skip_test("no interface named lo");
    loop = dgt_loop_new(NULL);
    sock = dgt_socket_new(loop, DG_UDP6, DG_SOCKET_REUSE_ADDR, NULL, NULL);
    dgt_bind(loop, sock, "::", 0);
    rc = dg_socket_add_membership(sock, GROUP6, "lo");
    if (refused(rc)) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses IPv6 multicast on lo: %s", dg_err_name(rc));
    }
    cr_assert_eq(rc, 0, "%s", dg_err_name(rc));
    cr_assert_eq(dg_socket_drop_membership(sock, GROUP6, "lo"), 0);
    dgt_assert_code(dg_socket_drop_membership(sock, GROUP6, "lo"), -EADDRNOTAVAIL);
    rc = dg_socket_add_source_specific_membership(sock, "::1", "ff3e::1234", "lo");
    if (rc == 0) {
        cr_assert_eq(dg_socket_drop_source_specific_membership(sock, "::1", "ff3e::1234", "lo"), 0);
    } else {
        cr_assert(refused(rc) || rc == -ENOSYS, "source-specific join: %s", dg_err_name(rc));
        cr_log_warn("IPv6 source-specific join refused here: %s", dg_err_name(rc));
    }
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* L10 (join6): a udp6 socket joined to ff02::1:3 on lo receives its own
 * looped-back datagram sent to ff02::1:3%lo. Linux refuses IPv6 multicast
 * on an lo without the MULTICAST flag (ENETUNREACH); then this skips. */
Test(dgram_multicast, udp6_join_and_receive_on_lo)
{
    dg_loop *loop;
    dgt_events ev = {0};
    dg_socket *sock;
    dgt_send_rec sent = {0};
    int port, rc;

    dgt_require_ipv6();
    if (if_nametoindex("lo") == 0)
        cr_skip_test("no interface named lo");
    loop = dgt_loop_new(NULL);
    sock = dgt_events_socket(loop, DG_UDP6, DG_SOCKET_REUSE_ADDR, &ev);
    port = dgt_bind(loop, sock, "::", 0);
    cr_assert_eq(dg_socket_set_multicast_interface(sock, "::%lo"), 0);
    cr_assert_eq(dg_socket_set_multicast_loopback(sock, true), 0);
    cr_assert_eq(dg_socket_set_multicast_ttl(sock, 1), 0);
    rc = dg_socket_add_membership(sock, GROUP6, "lo");
    if (rc == 0) {
        cr_assert_eq(dg_socket_send(sock, "six", 3, port, GROUP6 "%lo", dgt_on_send, &sent), 0);
        dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
        rc = sent.status < 0 ? sent.status : 0;
    }
    if (refused(rc)) {
        dgt_close_socket(loop, sock);
        dgt_loop_finish(loop);
        cr_skip_test("the kernel refuses IPv6 multicast on lo (lo lacks the MULTICAST flag?): %s",
                     dg_err_name(rc));
    }
    cr_assert_eq(rc, 0, "%s", dg_err_name(rc));
    cr_assert_eq(sent.status, 3);
    dgt_run_until(loop, &ev.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(memcmp(ev.data, "six", 3), 0);
    cr_assert_eq(dg_socket_drop_membership(sock, GROUP6, "lo"), 0);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N46: broadcast on lo's 127.255.255.255: without SO_BROADCAST the send
 * fails through the callback with EACCES ("send EACCES
 * 127.255.255.255:P"); with setBroadcast(true) three reuseAddr listeners
 * on 0.0.0.0:P each receive every datagram. */
Test(dgram_multicast, broadcast_on_loopback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx[3];
    dg_socket *rxs[3];
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, NULL, NULL);
    dgt_send_rec denied = {0}, sent[2];
    char want[64];
    int port = 0;

    memset(rx, 0, sizeof(rx));
    memset(sent, 0, sizeof(sent));
    for (int i = 0; i < 3; i++) {
        rxs[i] = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &rx[i]);
        port = dgt_bind(loop, rxs[i], "0.0.0.0", port);
    }
    dgt_bind(loop, txs, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(txs, "no", 2, port, "127.255.255.255", dgt_on_send, &denied), 0);
    dgt_run_until(loop, &denied.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(denied.status, -EACCES);
    snprintf(want, sizeof(want), "send EACCES 127.255.255.255:%d", port);
    cr_assert_str_eq(denied.text, want);
    cr_assert_eq(dg_socket_set_broadcast(txs, true), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(dg_socket_send(txs, "all", 3, port, "127.255.255.255", dgt_on_send, &sent[i]),
                     0);
    for (int i = 0; i < 2; i++) {
        dgt_run_until(loop, &sent[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(sent[i].status, 3, "%s", dg_err_name(sent[i].status));
    }
    for (int i = 0; i < 3; i++)
        dgt_run_until(loop, &rx[i].messages, 2, DGT_WAIT_MS);
    dgt_settle(loop, 10);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rx[i].messages, 2, "listener %d got %d", i, rx[i].messages);
        dgt_close_socket(loop, rxs[i]);
    }
    dgt_close_socket(loop, txs);
    cr_assert_eq(denied.calls, 1);
    dgt_loop_finish(loop);
}

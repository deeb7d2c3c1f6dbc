/* dgram conformance, implicit bind (docs/conformance.md; libuv
 * udp_send_immediate, udp_send_and_recv, getsockname_udp): the first send
 * (or connect) on an unbound socket binds it to the unspecified address
 * and a fresh port exactly once; operations queued behind that bind run in
 * call order; a failing implicit bind completes every queued send with its
 * error and leaves the socket unbound for the next try; close while sends
 * wait completes each of them exactly once. Every item a test proves is
 * named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_implicit_bind, .timeout = 60);

/* N16, L21, L25: two sends back to back on a fresh socket, before the loop
 * runs: one bind (one 'listening', one lookup of the default address),
 * both datagrams arrive in order, address() is then the unspecified
 * address and an ephemeral port, and a later bind is ALREADY_BOUND. */
static void two_sends_one_bind(dg_socket_type type, int mode)
{
    int family = dgt_family(type);
    const char *any = family == AF_INET ? "0.0.0.0" : "::";
    dg_loop *loop;
    dgt_events rx = {0}, tx = {0};
    dgt_fake_lookup lk = {.mode = mode};
    dgt_send_rec s1 = {.ev = &tx}, s2 = {.ev = &tx};
    dg_address addr;
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    port = dgt_lookup_pair(loop, type, &lk, &rx, &tx);
    dgt_assert_code(dg_socket_address(tx.sock, &addr), -EBADF);
    cr_assert_eq(dg_socket_send(tx.sock, "first", 5, port, NULL, dgt_on_send, &s1), 0);
    cr_assert_eq(dg_socket_send(tx.sock, "second", 6, port, NULL, dgt_on_send, &s2), 0,
                 "the second send must not bind again");
    cr_assert_eq(tx.listening + s1.calls + s2.calls, 0, "work done inside dg_socket_send");
    dgt_assert_code(dg_socket_bind(tx.sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND,
                    "while the implicit bind runs");
    dgt_run_until(loop, &rx.messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &s2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(s1.status, 5);
    cr_assert_eq(s2.status, 6);
    cr_assert_eq(tx.listening, 1, "exactly one implicit bind");
    cr_assert_eq(dgt_fake_lookup_count(&lk, any), 1, "the default address was looked up %d times",
                 dgt_fake_lookup_count(&lk, any));
    cr_assert_str_eq(tx.log, "LSS", "'listening', then the sends in call order");
    cr_assert_eq(rx.length, 6, "the datagrams arrived out of order");
    cr_assert_eq(memcmp(rx.data, "second", 6), 0);
    cr_assert_eq(dg_socket_address(tx.sock, &addr), 0);
    cr_assert_str_eq(addr.address, any);
    cr_assert_gt(addr.port, 0);
    cr_assert_eq(rx.from.port, addr.port);
    dgt_assert_code(dg_socket_bind(tx.sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND);
    dgt_close_socket(loop, rx.sock);
    dgt_close_socket(loop, tx.sock);
    cr_assert_eq(s1.calls, 1);
    cr_assert_eq(s2.calls, 1);
    cr_assert_eq(tx.errors + rx.errors, 0);
    dgt_loop_finish(loop);
}

Test(dgram_implicit_bind, two_sends_one_bind_udp4)
{
    two_sends_one_bind(DG_UDP4, DGT_FAKE_LOOKUP_SYNC); /* N16, L21, L25 */
}

Test(dgram_implicit_bind, two_sends_one_bind_udp4_deferred_lookup)
{
    two_sends_one_bind(DG_UDP4, DGT_FAKE_LOOKUP_DEFERRED); /* N16 */
}

Test(dgram_implicit_bind, two_sends_one_bind_udp6)
{
    two_sends_one_bind(DG_UDP6, DGT_FAKE_LOOKUP_SYNC); /* N16, L25 */
}

/* N16: the same with dgring's own literal path (no lookup option): one
 * 'listening', both in order. */
Test(dgram_implicit_bind, two_sends_one_bind_without_lookup_option)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, tx = {0};
    dgt_send_rec s1 = {0}, s2 = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dg_address addr;

    cr_assert_eq(dg_socket_send(txs, "1", 1, port, "127.0.0.1", dgt_on_send, &s1), 0);
    cr_assert_eq(dg_socket_send(txs, "22", 2, port, "127.0.0.1", dgt_on_send, &s2), 0);
    dgt_run_until(loop, &rx.messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &s2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rx.length, 2);
    cr_assert_eq(tx.listening, 1);
    cr_assert_eq(dg_socket_address(txs, &addr), 0);
    cr_assert_str_eq(addr.address, "0.0.0.0");
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    cr_assert_eq(s1.calls + s2.calls, 2);
    dgt_loop_finish(loop);
}

/* N16: every implicitly bound socket gets its own ephemeral port. */
Test(dgram_implicit_bind, each_socket_gets_its_own_port)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dg_socket *tx[4];
    dgt_send_rec sent[4];
    dg_address addr[4];

    memset(sent, 0, sizeof(sent));
    for (int i = 0; i < 4; i++) {
        tx[i] = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
        cr_assert_eq(dg_socket_send(tx[i], "x", 1, port, NULL, dgt_on_send, &sent[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        dgt_run_until(loop, &sent[i].calls, 1, DGT_WAIT_MS);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dg_socket_address(tx[i], &addr[i]), 0);
        for (int j = 0; j < i; j++)
            cr_assert_neq(addr[i].port, addr[j].port, "sockets %d and %d share a port", i, j);
    }
    dgt_run_until(loop, &rx.messages, 4, DGT_WAIT_MS);
    for (int i = 0; i < 4; i++)
        dgt_close_socket(loop, tx[i]);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* N17, E3: the implicit bind fails (the lookup of the default address
 * fails): on_error once for the bind, every queued send's callback once
 * with the bind's error (dgring's documented choice; Node drops them), the
 * queue empties and the socket is unbound again, so each later send starts
 * a fresh bind. Three attempts at different turns, then one that works. */
static void implicit_bind_failure(int mode)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, tx = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "0.0.0.0"};
    dg_address addr;
    dgt_send_rec ok = {0};
    int port = dgt_lookup_pair(loop, DG_UDP4, &lk, &rx, &tx);

    for (int attempt = 1; attempt <= 3; attempt++) {
        dgt_send_rec sent = {0};

        cr_assert_eq(dg_socket_send(tx.sock, "lost", 4, port, "127.0.0.1", dgt_on_send, &sent), 0);
        cr_assert_eq(dg_socket_send_queue_count(tx.sock), 1);
        dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
        cr_assert_eq(tx.errors, attempt, "one on_error per failed implicit bind");
        dgt_assert_code(tx.error.code, DG_ERR_DNS_NOTFOUND);
        cr_assert_str_eq(tx.error.address, "0.0.0.0");
        dgt_assert_code(sent.status, DG_ERR_DNS_NOTFOUND, "the queued send gets the bind's error");
        cr_assert(!sent.err_null);
        cr_assert_eq(sent.calls, 1);
        cr_assert_eq(dg_socket_send_queue_count(tx.sock), 0);
        cr_assert_eq(dg_socket_send_queue_size(tx.sock), 0);
        dgt_assert_code(dg_socket_address(tx.sock, &addr), -EBADF, "unbound again");
        cr_assert_eq(dgt_fake_lookup_count(&lk, "0.0.0.0"), attempt, "a fresh bind each time");
    }
    cr_assert_eq(tx.listening, 0);
    lk.fail_status = 0; /* the resolver recovers */
    cr_assert_eq(dg_socket_send(tx.sock, "made it", 7, port, "127.0.0.1", dgt_on_send, &ok), 0);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &ok.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(ok.status, 7);
    cr_assert_eq(tx.listening, 1);
    cr_assert_eq(rx.length, 7);
    dgt_close_socket(loop, tx.sock);
    dgt_close_socket(loop, rx.sock);
    cr_assert_eq(rx.messages, 1, "a send of a failed bind arrived");
    cr_assert_eq(tx.errors, 3);
    cr_assert_eq(ok.calls, 1);
    dgt_loop_finish(loop);
}

Test(dgram_implicit_bind, failure_completes_queued_sends_sync_lookup)
{
    implicit_bind_failure(DGT_FAKE_LOOKUP_SYNC); /* N17, E3 */
}

Test(dgram_implicit_bind, failure_completes_queued_sends_deferred_lookup)
{
    implicit_bind_failure(DGT_FAKE_LOOKUP_DEFERRED); /* N17, E3 */
}

/* N17, E3: a failed implicit bind with sends that have no callback: the
 * bind's error reaches on_error, and each send's completion with that
 * error does too (errors with no callback go to on_error). */
Test(dgram_implicit_bind, failure_without_send_callbacks_reports_each_request)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events tx = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_DEFERRED, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "0.0.0.0"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dg_socket *txs;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &tx, &txs), 0);
    cr_assert_eq(dg_socket_send(txs, "a", 1, 9, "127.0.0.1", NULL, NULL), 0);
    cr_assert_eq(dg_socket_send(txs, "b", 1, 9, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(loop, &tx.errors, 3, DGT_WAIT_MS);
    dgt_settle(loop, 20);
    cr_assert_eq(tx.errors, 3, "the bind and two sends: %d reports", tx.errors);
    dgt_assert_code(tx.error.code, DG_ERR_DNS_NOTFOUND);
    cr_assert_eq(dg_socket_send_queue_count(txs), 0);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "0.0.0.0"), 1, "one bind for both sends");
    dgt_close_socket(loop, txs);
    cr_assert_eq(tx.listening, 0);
    dgt_loop_finish(loop);
}

/* N18, L27, E3, E4: close right after sends that wait for the implicit
 * bind's lookup: every send callback runs exactly once with -ECANCELED
 * before the close callback, 'listening' never comes, and the lookup's
 * late answer touches nothing. */
Test(dgram_implicit_bind, close_while_sends_wait_for_the_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events tx = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_send_rec sent[3];
    dgt_close_rec cr = {.ev = &tx};
    dg_socket *txs;

    memset(sent, 0, sizeof(sent));
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &tx, &txs), 0);
    for (int i = 0; i < 3; i++) {
        sent[i].ev = &tx;
        cr_assert_eq(dg_socket_send(txs, "q", 1, 9, "127.0.0.1", dgt_on_send, &sent[i]), 0);
    }
    cr_assert_eq(dg_socket_send_queue_count(txs), 3);
    cr_assert_eq(dg_socket_close(txs, dgt_on_close, &cr), 0);
    cr_assert_eq(sent[0].calls + sent[1].calls + sent[2].calls, 0,
                 "send callbacks ran inside dg_socket_close");
    dgt_fake_lookup_release(&lk);
    dgt_run(loop, DGT_WAIT_MS);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sent[i].calls, 1, "send %d: %d callbacks", i, sent[i].calls);
        dgt_assert_code(sent[i].status, -ECANCELED);
    }
    cr_assert_eq(cr.calls, 1);
    cr_assert_str_eq(tx.log, "SSSCX", "every send completes before the close");
    cr_assert_eq(tx.listening + tx.errors, 0);
    dgt_loop_finish(loop);
}

/* N18: send then close at once, dgring's literal path: the send's
 * callback runs exactly once (its byte count if the kernel sent it, else
 * -ECANCELED), then the close callback; nothing crashes. */
Test(dgram_implicit_bind, close_right_after_a_send)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events tx = {0};
    dgt_send_rec sent = {.ev = &tx};
    dgt_close_rec cr = {.ev = &tx};
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    int plain = dgt_plain_socket(AF_INET, 0);

    cr_assert_eq(dg_socket_send(txs, "bye", 3, dgt_plain_port(plain), NULL, dgt_on_send, &sent), 0);
    cr_assert_eq(dg_socket_close(txs, dgt_on_close, &cr), 0);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(sent.calls, 1);
    cr_assert(sent.status == 3 || sent.status == -ECANCELED, "status %s",
              dg_err_name(sent.status));
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(tx.closed, 1);
    cr_assert_eq(tx.errors, 0);
    cr_assert(strstr(tx.log, "SCX") != NULL, "log %s", tx.log);
    close(plain);
    dgt_loop_finish(loop);
}

/* L18: PING/PONG between a bound server and an implicitly bound client;
 * the server answers msg->addr with send_to from inside on_message; both
 * send queues are empty at the end. */
static void pong(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    dgt_send_rec *rec = ev->user;

    cr_expect_eq(msg->flags, 0);
    cr_expect_eq(dg_socket_send_to(sock, "PONG", 4, msg->addr, msg->addrlen, dgt_on_send, rec),
                 0);
}

static void ping_pong(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events server = {0}, client = {0};
    dgt_send_rec ping = {0}, pong_rec = {0};
    dg_socket *ss, *cs;
    dg_address caddr;
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    server.message_hook = pong;
    server.user = &pong_rec;
    ss = dgt_events_socket(loop, type, 0, &server);
    cs = dgt_events_socket(loop, type, 0, &client);
    port = dgt_bind(loop, ss, dgt_loopback(family), 0);
    cr_assert_eq(dg_socket_send(cs, "PING", 4, port, dgt_loopback(family), dgt_on_send, &ping), 0);
    dgt_run_until(loop, &client.messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &pong_rec.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &ping.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(ping.status, 4);
    cr_assert_eq(pong_rec.status, 4);
    cr_assert_eq(memcmp(client.data, "PONG", 4), 0);
    cr_assert_eq(client.from.port, port);
    cr_assert_eq(dg_socket_address(cs, &caddr), 0);
    cr_assert_eq(server.from.port, caddr.port);
    cr_assert_eq(client.listening, 1);
    cr_assert_eq(dg_socket_send_queue_size(cs), 0);
    cr_assert_eq(dg_socket_send_queue_size(ss), 0);
    cr_assert_eq(dg_socket_send_queue_count(cs), 0);
    dgt_close_socket(loop, ss);
    dgt_close_socket(loop, cs);
    cr_assert_eq(server.messages, 1);
    cr_assert_eq(client.messages, 1);
    dgt_loop_finish(loop);
}

Test(dgram_implicit_bind, ping_pong_udp4)
{
    ping_pong(DG_UDP4); /* L18 */
}

Test(dgram_implicit_bind, ping_pong_udp6)
{
    ping_pong(DG_UDP6); /* L18 */
}

/* N16 (connect form): connect on an unbound socket binds it implicitly,
 * once. The socket was bound to the unspecified address, but once
 * connected Linux reports the local address of the route (127.0.0.1). */
Test(dgram_implicit_bind, connect_binds_implicitly)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec conn = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int plain = dgt_plain_socket(AF_INET, 0);
    dg_address addr;

    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(plain), NULL, dgt_on_status, &conn), 0);
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(conn.status, 0);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.connects, 1);
    cr_assert_str_eq(ev.log, "LKB", "log %s: 'listening', 'connect', then the callback", ev.log);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");
    cr_assert_gt(addr.port, 0);
    close(plain);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N16: an explicit bind in progress is what the sends queue behind (no
 * second bind): the socket keeps the explicit address. */
Test(dgram_implicit_bind, sends_queue_behind_an_explicit_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, tx = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_DEFERRED};
    dgt_send_rec sent = {.ev = &tx};
    dgt_status_rec bound = {.ev = &tx};
    dg_address addr;
    int port = dgt_lookup_pair(loop, DG_UDP4, &lk, &rx, &tx);

    cr_assert_eq(dg_socket_bind(tx.sock, 0, "127.0.0.1", dgt_on_status, &bound), 0);
    cr_assert_eq(dg_socket_send(tx.sock, "after", 5, port, NULL, dgt_on_send, &sent), 0);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.calls, 1);
    cr_assert_eq(sent.status, 5);
    cr_assert_eq(tx.listening, 1);
    cr_assert_str_eq(tx.log, "LBS");
    cr_assert_eq(dg_socket_address(tx.sock, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");
    cr_assert_str_eq(rx.from.address, "127.0.0.1");
    cr_assert_eq(dgt_fake_lookup_count(&lk, "0.0.0.0"), 0, "no implicit bind happened");
    dgt_close_socket(loop, tx.sock);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

/* E3: sends queued behind an explicit bind that fails in the kernel
 * (EADDRINUSE) complete with the bind's error, after on_error and the
 * bind callback (P3); the socket is unbound again (P5: address() is
 * 0.0.0.0 port 0). */
Test(dgram_implicit_bind, sends_behind_a_failing_explicit_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int taken = dgt_plain_socket(AF_INET, 0);
    dgt_status_rec bound = {.ev = &ev};
    dgt_send_rec s1 = {.ev = &ev}, s2 = {.ev = &ev};
    dg_address addr;

    cr_assert_eq(dg_socket_bind(sock, dgt_plain_port(taken), "127.0.0.1", dgt_on_status, &bound),
                 0);
    cr_assert_eq(dg_socket_send(sock, "a", 1, dgt_plain_port(taken), NULL, dgt_on_send, &s1), 0);
    cr_assert_eq(dg_socket_send(sock, "b", 1, dgt_plain_port(taken), NULL, dgt_on_send, &s2), 0);
    dgt_run_until(loop, &s2.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, -EADDRINUSE);
    dgt_assert_code(s1.status, -EADDRINUSE, "a send waiting for a bind that fails");
    dgt_assert_code(s2.status, -EADDRINUSE);
    cr_assert_eq(s1.calls + s2.calls + bound.calls, 3);
    cr_assert_str_eq(ev.log, "EBSS");
    cr_assert_eq(ev.listening, 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_eq(addr.port, 0);
    close(taken);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

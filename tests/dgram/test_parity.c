/* dgram conformance, Node parity (docs/conformance.md, section F): what a
 * program ported from Node's dgram relies on and no Node test asserts. Each
 * test is named for Node 20's behaviour, observed with a small Node script
 * on loopback; the expected values quoted below are what Node printed.
 *   P1  the port is free when close() returns
 *   P2  'listening' comes before anything the socket sends
 *   P3  bind failures reach 'error' also when bind had a callback
 *   P4  the largest udp6 datagram arrives whole
 *   P5  address() after a failed bind
 *   P6  IPv4 shorthand literals are addresses
 *   P7  a send with a destination while a connect is in progress
 *   P8  options after a failed bind
 *   E11 an error with nowhere to go is counted (and reaches the loop's
 *       error handler if one is set) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_parity, .timeout = 60);

/* Whether dg_socket_close() frees the port before it returns on this
 * loop: always on epoll; on io_uring with synchronous cancel (6.0). */
static bool close_frees_port_at_once(dg_loop *loop)
{
    return strcmp(dg_loop_backend(loop), "epoll") == 0 ||
           dg_loop_capabilities(loop)->sync_cancel;
}

/* ---- P1: close, then bind the same port at once --------------------------
 * Node: a.close(); b.bind(samePort) gets 'listening' (udp4 and udp6, at
 * once and from a timer, with ten sends in flight and a send waiting for
 * its lookup): "b listening true". */

struct rebind {
    dg_loop *loop;
    dg_socket *a, *b;
    const char *address;
    int port;
    int close_rc, bind_rc, plain_rc;
    dgt_close_rec a_closed;
    dgt_status_rec b_bound;
    dgt_send_rec sends[10];
    dgt_send_rec looked_up;
};

/* A plain bind(2) to the port, made before the loop runs again: only a
 * free port accepts it. */
static int plain_bind_port(const char *address, int port)
{
    struct sockaddr_storage ss;
    int family = strchr(address, ':') ? AF_INET6 : AF_INET;
    socklen_t len = dgt_sockaddr(family, port, &ss);
    int fd = socket(family, SOCK_DGRAM, 0);
    int rc;

    cr_assert_geq(fd, 0);
    rc = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static void close_then_bind(struct rebind *r)
{
    r->close_rc = dg_socket_close(r->a, dgt_on_close, &r->a_closed);
    r->plain_rc = plain_bind_port(r->address, r->port);
    r->bind_rc = dg_socket_bind(r->b, r->port, r->address, dgt_on_status, &r->b_bound);
}

static void close_then_bind_timer(dg_timer *timer, void *data)
{
    (void)timer;
    close_then_bind(data);
}

static void close_frees_the_port(dg_socket_type type, bool from_timer)
{
    dg_loop *loop;
    struct rebind r;
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "slow.test"};
    dg_socket_options options = dgt_fake_lookup_options(type, 0, &lk);
    int sink = -1;
    char payload[100];
    struct sockaddr_storage to;
    socklen_t tolen;
    dg_timer *timer = NULL;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    if (!close_frees_port_at_once(loop))
        cr_skip_test("io_uring without IORING_REGISTER_SYNC_CANCEL (Linux < 6.0): the port "
                     "is freed after the last completion");
    memset(&r, 0, sizeof(r));
    r.loop = loop;
    r.address = dgt_loopback(dgt_family(type));
    cr_assert_eq(dg_socket_create(loop, &options, NULL, NULL, &r.a), 0); /* names resolve by lk */
    r.b = dgt_socket_new(loop, type, 0, NULL, NULL);
    r.port = dgt_bind(loop, r.a, r.address, 0);
    sink = dgt_plain_socket(dgt_family(type), 0);
    tolen = dgt_sockaddr(dgt_family(type), dgt_plain_port(sink), &to);
    memset(payload, 'p', sizeof(payload));
    /* In flight: sends handed to the ring in an earlier turn and in this
     * one (to a socket address: no lookup), and one waiting for its lookup. */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(dg_socket_send_to(r.a, payload, sizeof(payload), (struct sockaddr *)&to,
                                       tolen, dgt_on_send, &r.sends[i]),
                     0);
        if (i == 4)
            cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    }
    cr_assert_eq(dg_socket_send(r.a, "x", 1, dgt_plain_port(sink), "slow.test", dgt_on_send,
                                &r.looked_up),
                 0);
    if (from_timer) {
        cr_assert_eq(dg_timer_new(loop, &timer), 0);
        cr_assert_eq(dg_timer_start(timer, 0, 0, close_then_bind_timer, &r), 0);
        dgt_run_until(loop, &r.b_bound.calls, 1, DGT_WAIT_MS);
    } else {
        close_then_bind(&r);
        dgt_run_until(loop, &r.b_bound.calls, 1, DGT_WAIT_MS);
    }
    cr_assert_eq(r.close_rc, 0);
    dgt_assert_code(r.plain_rc, 0, "bind(2) to the port right after dg_socket_close()");
    cr_assert_eq(r.bind_rc, 0);
    dgt_assert_code(r.b_bound.status, 0, "b.bind(samePort) after a.close(): Node listens");
    cr_assert_eq(lk.npending, 1);
    cr_assert_eq(dgt_fake_lookup_release(&lk), 1);
    dgt_run_until(loop, &r.a_closed.calls, 1, DGT_WAIT_MS);
    /* Every request of a completed exactly once, before its close callback. */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(r.sends[i].calls, 1, "send %d", i);
        cr_assert(r.sends[i].status == (int)sizeof(payload) || r.sends[i].status == -ECANCELED,
                  "send %d: %s", i, dg_err_name(r.sends[i].status));
    }
    cr_assert_eq(r.looked_up.calls, 1);
    dgt_assert_code(r.looked_up.status, -ECANCELED);
    cr_assert_eq(r.a_closed.calls, 1);
    if (timer)
        dgt_close_timer(loop, timer);
    dgt_close_socket(loop, r.b);
    close(sink);
    dgt_loop_finish(loop);
}

Test(dgram_parity, close_frees_the_port_for_an_immediate_bind_udp4)
{
    close_frees_the_port(DG_UDP4, false); /* P1 */
}

Test(dgram_parity, close_frees_the_port_for_an_immediate_bind_udp6)
{
    close_frees_the_port(DG_UDP6, false); /* P1 */
}

Test(dgram_parity, close_frees_the_port_inside_a_timer_callback_udp4)
{
    close_frees_the_port(DG_UDP4, true); /* P1 */
}

Test(dgram_parity, close_frees_the_port_inside_a_timer_callback_udp6)
{
    close_frees_the_port(DG_UDP6, true); /* P1 */
}

/* Where the ring cannot cancel synchronously (forced here with
 * DGRING_NO_SYNC_CANCEL), close falls back to an asynchronous cancel: the
 * port is still taken when dg_socket_close() returns (the multishot
 * receive holds the socket), free once the close callback ran, and every
 * request completes exactly once. */
Test(dgram_parity, close_without_sync_cancel_frees_the_port_after_the_last_completion)
{
    /* P1 (the fallback) */
    dg_loop *loop;
    dg_socket *a, *b;
    dgt_send_rec sends[4];
    dgt_close_rec closed = {0};
    int port;

    setenv("DGRING_NO_SYNC_CANCEL", "1", 1);
    loop = dgt_loop_new(NULL);
    if (strcmp(dg_loop_backend(loop), "epoll") == 0) {
        dgt_loop_finish(loop);
        cr_skip_test("the epoll backend always closes at once");
    }
    cr_assert(!dg_loop_capabilities(loop)->sync_cancel);
    memset(sends, 0, sizeof(sends));
    a = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    b = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    port = dgt_bind(loop, a, "127.0.0.1", 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dg_socket_send(a, "x", 1, port, "127.0.0.1", dgt_on_send, &sends[i]), 0);
    cr_assert_eq(dg_socket_close(a, dgt_on_close, &closed), 0);
    dgt_assert_code(plain_bind_port("127.0.0.1", port), -EADDRINUSE,
                    "the receive still holds the socket");
    dgt_run_until(loop, &closed.calls, 1, DGT_WAIT_MS);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sends[i].calls, 1, "send %d", i);
    cr_assert_eq(dgt_bind(loop, b, "127.0.0.1", port), port);
    dgt_close_socket(loop, b);
    dgt_loop_finish(loop);
}

/* ---- P2: 'listening' before anything the socket sends ---------------------
 * Node, the first send of an unbound socket made from a callback (a timer,
 * or the 'listening' of another socket: server.on('listening', () =>
 * client.send(...))):
 *   a: listening / a: send cb 1
 * setBroadcast(true) inside 'listening' applies to the queued send to a
 * broadcast address, and without it the send fails:
 *   b: listening, setBroadcast(true) / b: send cb 1
 *   c: listening / c: send cb send EACCES 127.255.255.255:PORT */

enum first_send_from { FROM_TIMER, FROM_LISTENING };

struct first_send {
    dgt_events rx, tx;
    dgt_send_rec sent;
    const char *rx_address; /* where the receiver binds */
    const char *to;         /* where the sender sends, to the receiver's port */
    int port;
    int send_rc;
};

static void first_send_now(struct first_send *f)
{
    f->send_rc = dg_socket_send(f->tx.sock, "a", 1, f->port, f->to, dgt_on_send, &f->sent);
}

static void first_send_timer(dg_timer *timer, void *data)
{
    (void)timer;
    first_send_now(data);
}

static void first_send_in_rx_listening(dgt_events *rx, dg_socket *sock)
{
    struct first_send *f = rx->user;
    dg_address bound;

    cr_assert_eq(dg_socket_address(sock, &bound), 0);
    f->port = bound.port;
    first_send_now(f);
}

static void broadcast_in_listening(dgt_events *ev, dg_socket *sock)
{
    (void)ev;
    cr_assert_eq(dg_socket_set_broadcast(sock, true), 0);
}

/* The receiver binds to f->rx_address; the unbound sender sends its first
 * datagram to f->to at the receiver's port from a callback; returns after
 * the send callback ran. */
static void first_send(dg_loop *loop, struct first_send *f, enum first_send_from from)
{
    dg_timer *timer = NULL;

    f->sent.ev = &f->tx;
    f->rx.user = f;
    dgt_events_socket(loop, DG_UDP4, 0, &f->tx);
    dgt_events_socket(loop, DG_UDP4, 0, &f->rx);
    if (from == FROM_LISTENING) {
        f->rx.listening_hook = first_send_in_rx_listening;
        cr_assert_eq(dg_socket_bind(f->rx.sock, 0, f->rx_address, NULL, NULL), 0);
    } else {
        f->port = dgt_bind(loop, f->rx.sock, f->rx_address, 0);
        cr_assert_eq(dg_timer_new(loop, &timer), 0);
        cr_assert_eq(dg_timer_start(timer, 0, 0, first_send_timer, f), 0);
    }
    dgt_run_until(loop, &f->sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(f->send_rc, 0);
    if (timer)
        dgt_close_timer(loop, timer);
}

static void first_send_finish(dg_loop *loop, struct first_send *f)
{
    dgt_close_socket(loop, f->tx.sock);
    dgt_close_socket(loop, f->rx.sock);
    dgt_loop_finish(loop);
}

static void listening_before_send(enum first_send_from from)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct first_send f;

    memset(&f, 0, sizeof(f));
    f.rx_address = f.to = "127.0.0.1";
    first_send(loop, &f, from);
    cr_assert_eq(f.sent.status, 1);
    cr_assert_eq(f.sent.listening_seen, 1, "'listening' must come before the send callback");
    cr_assert_str_eq(f.tx.log, "LS");
    dgt_run_until(loop, &f.rx.messages, 1, DGT_WAIT_MS);
    first_send_finish(loop, &f);
}

Test(dgram_parity, listening_comes_before_the_first_send_from_a_timer)
{
    listening_before_send(FROM_TIMER); /* P2 */
}

Test(dgram_parity, listening_comes_before_the_first_send_from_another_listening)
{
    listening_before_send(FROM_LISTENING); /* P2 */
}

static void broadcast_first_send(bool set_broadcast)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct first_send f;
    char want[64];

    memset(&f, 0, sizeof(f));
    f.rx_address = "0.0.0.0";
    f.to = "127.255.255.255";
    if (set_broadcast)
        f.tx.listening_hook = broadcast_in_listening;
    first_send(loop, &f, FROM_LISTENING);
    cr_assert_str_eq(f.tx.log, "LS");
    if (set_broadcast) {
        cr_assert_eq(f.sent.status, 1, "setBroadcast in 'listening' applies to the queued send: %s",
                     dg_err_name(f.sent.status));
        dgt_run_until(loop, &f.rx.messages, 1, DGT_WAIT_MS);
    } else {
        dgt_assert_code(f.sent.status, -EACCES);
        snprintf(want, sizeof(want), "send EACCES 127.255.255.255:%d", f.port);
        cr_assert_str_eq(f.sent.text, want);
    }
    first_send_finish(loop, &f);
}

Test(dgram_parity, set_broadcast_in_listening_applies_to_the_queued_send)
{
    broadcast_first_send(true); /* P2 */
}

Test(dgram_parity, queued_broadcast_without_set_broadcast_is_eacces)
{
    broadcast_first_send(false); /* P2 */
}

/* A scripted lookup, answered from the loop, for which "nowhere.test" does
 * not exist (Node's ENOTFOUND) and every other name is loopback. */
static dgt_fake_lookup nowhere_lookup(void)
{
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_DEFERRED, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "nowhere.test"};

    return lk;
}

/* ---- P3: bind failures reach 'error', also with a bind callback -----------
 * Node:
 *   1 error EADDRINUSE bind 127.0.0.1 true "bind EADDRINUSE 127.0.0.1:PORT"
 *   1 listening / 1 rebind listening   (bound again from the error handler)
 *   2 error ENOTFOUND getaddrinfo nowhere.example
 *       "getaddrinfo ENOTFOUND nowhere.example"
 * (the bind callback never runs in Node: it is a 'listening' listener;
 * dgring runs it once, after on_error, with the same error). */

struct rebind_in_error {
    dgt_status_rec first, second;
    const char *address;
    int rc;
};

static void rebind_from_on_error(dgt_events *ev, dg_socket *sock, const dg_error *err)
{
    struct rebind_in_error *r = ev->user;

    (void)err;
    cr_assert_eq(r->first.calls, 0, "on_error comes before the bind callback");
    r->rc = dg_socket_bind(sock, 0, r->address, dgt_on_status, &r->second);
}

Test(dgram_parity, bind_eaddrinuse_reaches_on_error_also_with_a_callback)
{
    /* P3 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    struct rebind_in_error r = {.address = "127.0.0.1"};
    int taken = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(taken);
    char want[64];

    r.first.ev = r.second.ev = &ev;
    ev.user = &r;
    ev.error_hook = rebind_from_on_error;
    dgt_events_socket(loop, DG_UDP4, 0, &ev);
    cr_assert_eq(dg_socket_bind(ev.sock, port, "127.0.0.1", dgt_on_status, &r.first), 0);
    dgt_run_until(loop, &r.second.calls, 1, DGT_WAIT_MS);
    snprintf(want, sizeof(want), "bind EADDRINUSE 127.0.0.1:%d", port);
    cr_assert_eq(ev.errors, 1);
    cr_assert_str_eq(ev.error_text, want);
    cr_assert_str_eq(ev.error.syscall, "bind");
    cr_assert_str_eq(ev.error.address, "127.0.0.1");
    cr_assert_eq(ev.error.port, port);
    cr_assert_eq(r.first.calls, 1, "the bind call returned 0: its callback runs once");
    dgt_assert_code(r.first.status, -EADDRINUSE);
    cr_assert_eq(r.rc, 0, "Node binds again from the error handler");
    cr_assert_eq(r.second.status, 0);
    cr_assert_str_eq(ev.log, "EBLB");
    close(taken);
    dgt_close_socket(loop, ev.sock);
    dgt_loop_finish(loop);
}

Test(dgram_parity, bind_lookup_failure_reaches_on_error_also_with_a_callback)
{
    /* P3 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = nowhere_lookup();
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_send_rec bound = {.ev = &ev}; /* keeps the error's text; logs 'S' */
    dg_address addr;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &ev.sock), 0);
    cr_assert_eq(dg_socket_bind(ev.sock, 0, "nowhere.test", dgt_on_send, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_str_eq(ev.error_text, "getaddrinfo ENOTFOUND nowhere.test");
    cr_assert_str_eq(dg_err_name(ev.error.code), "ENOTFOUND");
    dgt_assert_code(bound.status, DG_ERR_DNS_NOTFOUND);
    cr_assert_str_eq(bound.text, "getaddrinfo ENOTFOUND nowhere.test");
    cr_assert_str_eq(ev.log, "ES", "on_error, then the bind callback");
    /* P5: no bind(2) was made, so address() is Node's getsockname EBADF. */
    dgt_assert_code(dg_socket_address(ev.sock, &addr), -EBADF);
    dgt_close_socket(loop, ev.sock);
    cr_assert_eq(ev.listening, 0);
    dgt_loop_finish(loop);
}

/* Node, connect with a lookup that fails:
 *   3 connect callback getaddrinfo ENOTFOUND nowhere.example  (no 'error')
 *   4 error getaddrinfo ENOTFOUND nowhere.example              (no callback) */
static void connect_failure(bool with_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = nowhere_lookup();
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_send_rec connected = {.ev = &ev}; /* keeps the error's text */

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &ev.sock), 0);
    cr_assert_eq(dg_socket_connect(ev.sock, 9, "nowhere.test", with_callback ? dgt_on_send : NULL,
                                   &connected),
                 0);
    if (with_callback) {
        dgt_run_until(loop, &connected.calls, 1, DGT_WAIT_MS);
        cr_assert_str_eq(connected.text, "getaddrinfo ENOTFOUND nowhere.test");
        cr_assert_eq(ev.errors, 0, "Node: the connect callback gets it, no 'error'");
    } else {
        dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
        cr_assert_str_eq(ev.error_text, "getaddrinfo ENOTFOUND nowhere.test");
    }
    cr_assert_eq(ev.listening, 1, "the implicit bind succeeded");
    cr_assert_eq(ev.connects, 0);
    dgt_close_socket(loop, ev.sock);
    dgt_loop_finish(loop);
}

Test(dgram_parity, connect_failure_goes_to_its_callback)
{
    connect_failure(true); /* P3 */
}

Test(dgram_parity, connect_failure_without_callback_reaches_on_error)
{
    connect_failure(false); /* P3 */
}

/* ---- P4: the largest datagrams arrive whole with default options ----------
 * Node: udp6 send 65527 65527 / udp6 received length 65527 rinfo.size
 * 65527 whole true; udp4 the same with 65507; udp6 send 65528: send
 * EMSGSIZE ::1:9. */
static void largest_datagram(dg_socket_type type, size_t size)
{
    dg_loop *loop;
    dgt_events *rx = calloc(1, sizeof(*rx));
    dgt_send_rec sent = {0}, too_big = {0};
    dg_socket *tx;
    unsigned char *buf = malloc(size + 1);
    const char *to = dgt_loopback(dgt_family(type));
    char want[64];
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    cr_assert_not_null(rx);
    cr_assert_not_null(buf);
    loop = dgt_loop_new(NULL); /* default options */
    dgt_events_socket(loop, type, 0, rx);
    port = dgt_bind(loop, rx->sock, to, 0);
    tx = dgt_socket_new(loop, type, 0, NULL, NULL);
    dgt_fill(buf, size + 1, 7);
    cr_assert_eq(dg_socket_send(tx, buf, size, port, to, dgt_on_send, &sent), 0);
    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, (int)size);
    cr_assert_eq(rx->length, size, "received %zu of %zu bytes", rx->length, size);
    cr_assert_eq(rx->size, size);
    cr_assert_eq(rx->flags, 0, "DG_MSG_TRUNC with the default receive buffers");
    cr_assert_eq(dgt_check(rx->data, size, 7), size, "payload differs");
    cr_assert_eq(dg_socket_send(tx, buf, size + 1, 9, to, dgt_on_send, &too_big), 0);
    dgt_run_until(loop, &too_big.calls, 1, DGT_WAIT_MS);
    snprintf(want, sizeof(want), "send EMSGSIZE %s:9", to);
    cr_assert_str_eq(too_big.text, want);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, rx->sock);
    dgt_loop_finish(loop);
    free(buf);
    free(rx);
}

Test(dgram_parity, udp6_65527_byte_datagram_arrives_whole_with_default_options)
{
    largest_datagram(DG_UDP6, 65527); /* P4 */
}

Test(dgram_parity, udp4_65507_byte_datagram_arrives_whole_with_default_options)
{
    largest_datagram(DG_UDP4, 65507); /* P4 */
}

/* ---- P5: address() after a failed bind, and binding again -----------------
 * Node:
 *   udp4 never bound: address() throws EBADF "getsockname EBADF"
 *   udp4 error EADDRINUSE ; address() {"address":"0.0.0.0","family":"IPv4","port":0}
 *   udp4 bound again {"address":"127.0.0.1","family":"IPv4","port":N}
 *   udp6 ... {"address":"::","family":"IPv6","port":0} / bound again "::1"
 *   udp4 lookup failure ENOTFOUND ; address() throws EBADF "getsockname EBADF"
 * (the lookup case is in bind_lookup_failure_reaches_on_error_...). */
/* Binds ev's socket to the loopback port a plain socket holds and runs the
 * loop until on_error reported EADDRINUSE: a bind that failed in the
 * system. Returns the plain socket, for the caller to close. */
static int bind_to_a_taken_port(dg_loop *loop, dg_socket_type type, dgt_events *ev)
{
    int taken = dgt_plain_socket(dgt_family(type), 0);

    cr_assert_eq(dg_socket_bind(ev->sock, dgt_plain_port(taken), dgt_loopback(dgt_family(type)),
                                NULL, NULL),
                 0);
    dgt_run_until(loop, &ev->errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev->error.code, -EADDRINUSE);
    return taken;
}

static void address_after_failed_bind(dg_socket_type type, const char *unspecified)
{
    dg_loop *loop;
    dgt_events ev = {0};
    const char *address = dgt_loopback(dgt_family(type));
    int taken;
    dg_address addr;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    dgt_events_socket(loop, type, 0, &ev);
    dgt_assert_code(dg_socket_address(ev.sock, &addr), -EBADF, "never bound");
    taken = bind_to_a_taken_port(loop, type, &ev);
    cr_assert_eq(dg_socket_address(ev.sock, &addr), 0, "after a failed bind");
    cr_assert_str_eq(addr.address, unspecified);
    cr_assert_eq(addr.family, dgt_family(type));
    cr_assert_eq(addr.port, 0);
    dgt_bind(loop, ev.sock, address, 0);
    cr_assert_eq(dg_socket_address(ev.sock, &addr), 0);
    cr_assert_str_eq(addr.address, address);
    cr_assert_gt(addr.port, 0);
    close(taken);
    dgt_close_socket(loop, ev.sock);
    cr_assert_str_eq(ev.log, "ELC");
    dgt_loop_finish(loop);
}

Test(dgram_parity, address_after_a_failed_bind_is_the_unbound_address_udp4)
{
    address_after_failed_bind(DG_UDP4, "0.0.0.0"); /* P5 */
}

Test(dgram_parity, address_after_a_failed_bind_is_the_unbound_address_udp6)
{
    address_after_failed_bind(DG_UDP6, "::"); /* P5 */
}

/* ---- P8: options after a failed bind -----------------------------------
 * Node (udp4 bind to a port another socket holds):
 *   error EADDRINUSE
 *   setBroadcast(true) -> undefined   setTTL(5) -> 5   setMulticastTTL(3) -> 3
 *   setMulticastLoopback(true) -> true   getRecvBufferSize() -> 212992
 *   setRecvBufferSize(100000) -> undefined   getSendBufferSize() -> 212992
 *   setMulticastInterface('127.0.0.1') -> undefined
 *   addMembership('239.1.1.1') -> undefined
 * libuv keeps the descriptor it made for the failed bind(2); the options
 * apply to it, and the membership does not bind the socket. */
static void options_after_failed_bind(dg_socket_type type)
{
    dg_loop *loop;
    dgt_events ev = {0};
    bool v4 = type == DG_UDP4;
    int taken;
    dg_address addr;

    if (!v4)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    dgt_events_socket(loop, type, 0, &ev);
    taken = bind_to_a_taken_port(loop, type, &ev);
    cr_assert_eq(dg_socket_set_broadcast(ev.sock, true), 0);
    cr_assert_eq(dg_socket_set_ttl(ev.sock, 5), 0);
    cr_assert_eq(dg_socket_set_multicast_ttl(ev.sock, 3), 0);
    cr_assert_eq(dg_socket_set_multicast_loopback(ev.sock, true), 0);
    cr_assert_eq(dg_socket_set_multicast_interface(ev.sock, v4 ? "127.0.0.1" : "::%lo"), 0);
    cr_assert_gt(dg_socket_get_recv_buffer_size(ev.sock, NULL), 0);
    cr_assert_eq(dg_socket_set_recv_buffer_size(ev.sock, 100000, NULL), 0);
    cr_assert_gt(dg_socket_get_send_buffer_size(ev.sock, NULL), 0);
    cr_assert_eq(dg_socket_add_membership(ev.sock, v4 ? "239.1.1.1" : "ff02::1:3", NULL), 0);
    cr_assert_eq(dg_socket_address(ev.sock, &addr), 0);
    cr_assert_eq(addr.port, 0, "the membership did not bind the socket");
    close(taken);
    dgt_close_socket(loop, ev.sock);
    cr_assert_eq(ev.listening, 0);
    dgt_loop_finish(loop);
}

Test(dgram_parity, options_apply_after_a_failed_bind_udp4)
{
    options_after_failed_bind(DG_UDP4); /* P8 */
}

Test(dgram_parity, options_apply_after_a_failed_bind_udp6)
{
    options_after_failed_bind(DG_UDP6); /* P8 */
}

/* P8: a bind that failed in its lookup made no bind(2): Node's handle has
 * no descriptor, and the options stay EBADF. */
Test(dgram_parity, options_after_a_failed_lookup_are_ebadf)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = nowhere_lookup();
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &ev.sock), 0);
    cr_assert_eq(dg_socket_bind(ev.sock, 0, "nowhere.test", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(dg_socket_set_broadcast(ev.sock, true), -EBADF);
    dgt_assert_code(dg_socket_set_ttl(ev.sock, 5), -EBADF);
    cr_assert_eq(dg_socket_get_recv_buffer_size(ev.sock, NULL), DG_ERR_SOCKET_BUFFER_SIZE);
    dgt_close_socket(loop, ev.sock);
    dgt_loop_finish(loop);
}

/* ---- P6: IPv4 shorthand literals are addresses ----------------------------
 * Node (in an empty network namespace, so no DNS could answer):
 *   "127.1" send -> 5, received from 127.0.0.1; the same for "0x7f.1",
 *   "0x7f000001", "2130706433", "0177.0.0.1", "127.0.1";
 *   bind("127.1") address() 127.0.0.1; connect("0x7f.1") 127.0.0.1;
 *   udp6 send to "127.1" -> getaddrinfo EAI_ADDRFAMILY 127.1 (an IPv4
 *   literal on udp6; dgring: DG_ERR_INVALID_ADDRESS, as for "127.0.0.1").
 * These sockets have no lookup option and the suite's DNS server is a
 * closed loopback port: a form sent to DNS would fail. */
static const char *const shorthand[] = {"127.1",      "0x7f.1",     "0x7f000001",
                                        "2130706433", "0177.0.0.1", "127.0.1"};
#define SHORTHAND_COUNT (sizeof(shorthand) / sizeof(shorthand[0]))

struct looked_up {
    int calls;
    int status;
    char address[DG_ADDRSTRLEN];
};

static void on_looked_up(dg_loop *loop, int status, const dg_address *address, void *data)
{
    struct looked_up *l = data;

    (void)loop;
    l->calls++;
    l->status = status;
    if (address)
        snprintf(l->address, sizeof(l->address), "%s", address->address);
}

Test(dgram_parity, ipv4_shorthand_literals_are_addresses)
{
    /* P6 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dgt_send_rec sent[SHORTHAND_COUNT];
    dgt_status_rec connected = {0};
    struct looked_up looked = {0};
    dgt_fake_lookup lk = {0};
    dgt_send_rec named = {0};
    dg_socket_options six_options;
    dg_socket *tx, *bound, *conn, *six;
    dg_address addr;
    int port;

    memset(sent, 0, sizeof(sent));
    dgt_events_socket(loop, DG_UDP4, 0, &rx);
    port = dgt_bind(loop, rx.sock, "127.0.0.1", 0);
    tx = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    for (size_t i = 0; i < SHORTHAND_COUNT; i++) {
        cr_assert_eq(dg_socket_send(tx, shorthand[i], strlen(shorthand[i]), port, shorthand[i],
                                    dgt_on_send, &sent[i]),
                     0, "%s", shorthand[i]);
    }
    dgt_run_until(loop, &rx.messages, (int)SHORTHAND_COUNT, DGT_WAIT_MS);
    for (size_t i = 0; i < SHORTHAND_COUNT; i++)
        cr_assert_eq(sent[i].status, (int)strlen(shorthand[i]), "%s: %s", shorthand[i],
                     dg_err_name(sent[i].status));
    cr_assert_str_eq(rx.from.address, "127.0.0.1");

    bound = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, bound, "127.1", 0);
    cr_assert_eq(dg_socket_address(bound, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");

    conn = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    cr_assert_eq(dg_socket_connect(conn, port, "0x7f.1", dgt_on_status, &connected), 0);
    dgt_run_until(loop, &connected.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(connected.status, 0, "%s", dg_err_name(connected.status));
    cr_assert_eq(dg_socket_remote_address(conn, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");

    /* dns.lookup answers them without DNS too. */
    cr_assert_eq(dg_lookup(loop, "127.1", 4, on_looked_up, &looked), 0);
    dgt_run_until(loop, &looked.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(looked.status, 0, "%s", dg_err_name(looked.status));
    cr_assert_str_eq(looked.address, "127.0.0.1");

    /* On udp6 they are IPv4 literals; "127.1." is a host name (it goes to
     * the socket's lookup function, which answers ::1). */
    six_options = dgt_fake_lookup_options(DG_UDP6, 0, &lk);
    cr_assert_eq(dg_socket_create(loop, &six_options, NULL, NULL, &six), 0);
    dgt_assert_code(dg_socket_send(six, "x", 1, port, "127.1", NULL, NULL), DG_ERR_INVALID_ADDRESS,
                    "an IPv4 literal on udp6");
    dgt_assert_code(dg_socket_bind(six, 0, "0x7f.1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    cr_assert_eq(dg_socket_send(six, "x", 1, port, "127.1.", dgt_on_send, &named), 0);
    dgt_run_until(loop, &named.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "127.1."), 1, "\"127.1.\" is a name");

    dgt_close_socket(loop, six);
    dgt_close_socket(loop, conn);
    dgt_close_socket(loop, bound);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

/* ---- P7: a send with a destination while a connect is in progress ---------
 * Node, sends made around connect() on an unbound socket:
 *   listening / A 1 / connect event / connect callback /
 *   B send EISCONN 127.0.0.1:PORT / receiver got ["A"]
 * (A before connect(), B after it; a send without a destination while
 * connecting throws ERR_SOCKET_BAD_PORT.) When the connect fails instead:
 *   connect callback getaddrinfo ENOTFOUND nowhere.example / send cb 20 /
 *   receiver got after-failed-connect */
Test(dgram_parity, send_with_a_destination_while_connecting_fails_eisconn)
{
    /* P7 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, ev = {0};
    dgt_send_rec a = {.ev = &ev}, b = {.ev = &ev};
    dgt_status_rec connected = {.ev = &ev};
    dg_socket_stats stats;
    char want[64];
    int port;

    dgt_events_socket(loop, DG_UDP4, 0, &rx);
    port = dgt_bind(loop, rx.sock, "127.0.0.1", 0);
    dgt_events_socket(loop, DG_UDP4, 0, &ev);
    cr_assert_eq(dg_socket_send(ev.sock, "A", 1, port, "127.0.0.1", dgt_on_send, &a), 0);
    cr_assert_eq(dg_socket_connect(ev.sock, port, "127.0.0.1", dgt_on_status, &connected), 0);
    cr_assert_eq(dg_socket_send(ev.sock, "B", 1, port, "127.0.0.1", dgt_on_send, &b), 0);
    dgt_assert_code(dg_socket_send(ev.sock, "C", 1, 0, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT,
                    "no destination while connecting");
    cr_assert_eq(dg_socket_send(ev.sock, "D", 1, port, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &a.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(a.status, 1, "A, sent before connect(): %s", dg_err_name(a.status));
    dgt_assert_code(b.status, -EISCONN);
    snprintf(want, sizeof(want), "send EISCONN 127.0.0.1:%d", port);
    cr_assert_str_eq(b.text, want);
    cr_assert_str_eq(ev.error_text, want, "D has no callback: on_error (Node drops it)");
    cr_assert_eq(connected.status, 0);
    cr_assert_neq(strstr(ev.log, "KBS"), NULL, "'connect', its callback, then B: %s", ev.log);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    dgt_settle(loop, 20);
    cr_assert_eq(rx.messages, 1, "only A reaches the receiver");
    cr_assert_eq(rx.length, 1);
    cr_assert_eq(rx.data[0], 'A');
    cr_assert_eq(dg_socket_get_stats(ev.sock, &stats), 0);
    cr_assert_eq(stats.tx_datagrams, 1);
    cr_assert_eq(stats.tx_errors, 2);
    dgt_close_socket(loop, ev.sock);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

Test(dgram_parity, send_made_while_a_connect_fails_goes_to_its_destination)
{
    /* P7 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, ev = {0};
    dgt_fake_lookup lk = nowhere_lookup();
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_send_rec sent = {.ev = &ev};
    dgt_status_rec connected = {.ev = &ev};
    int port;

    dgt_events_socket(loop, DG_UDP4, 0, &rx);
    port = dgt_bind(loop, rx.sock, "127.0.0.1", 0);
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &ev.sock), 0);
    cr_assert_eq(dg_socket_connect(ev.sock, port, "nowhere.test", dgt_on_status, &connected), 0);
    cr_assert_eq(dg_socket_send(ev.sock, "after", 5, port, "127.0.0.1", dgt_on_send, &sent), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(connected.status, DG_ERR_DNS_NOTFOUND);
    cr_assert_eq(sent.status, 5, "%s", dg_err_name(sent.status));
    cr_assert_str_eq(ev.log, "LBS");
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(rx.length, 5);
    dgt_close_socket(loop, ev.sock);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

/* ---- E11: an error with nowhere to go -------------------------------------
 * Node: with no 'error' listener a bind failure throws
 *   uncaughtException bind EADDRINUSE 127.0.0.1:PORT
 * and a send error without a callback is dropped ("no error event for the
 * send without callback"). C cannot throw: an error meant for on_error on
 * a socket without one is counted in dg_socket_stats.unhandled_errors. */
/* Runs turns until sock has counted want unhandled errors. */
static void run_until_unhandled(dg_loop *loop, dg_socket *sock, uint64_t want)
{
    dg_socket_stats stats;

    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(dg_socket_get_stats(sock, &stats), 0);
        if (stats.unhandled_errors >= want)
            break;
        dgt_run_once(loop, DGT_WAIT_MS);
    }
    cr_assert_eq(stats.unhandled_errors, want);
}

Test(dgram_parity, error_with_nowhere_to_go_is_counted)
{
    /* E11 */
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *bare = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_events ev = {0};
    dgt_status_rec bound = {0};
    int taken = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(taken);
    static char big[65508];
    dg_socket_stats stats;

    dgt_events_socket(loop, DG_UDP4, 0, &ev);
    /* A bind failure with no callback and no on_error. */
    cr_assert_eq(dg_socket_bind(bare, port, "127.0.0.1", NULL, NULL), 0);
    run_until_unhandled(loop, bare, 1);
    /* With a callback it reached user code: not counted. */
    cr_assert_eq(dg_socket_bind(bare, port, "127.0.0.1", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_get_stats(bare, &stats), 0);
    cr_assert_eq(stats.unhandled_errors, 1);
    /* A send error without a callback: counted. */
    dgt_bind(loop, bare, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(bare, big, sizeof(big), 9, "127.0.0.1", NULL, NULL), 0);
    run_until_unhandled(loop, bare, 2);
    cr_assert_eq(dg_socket_get_stats(bare, &stats), 0);
    cr_assert_eq(stats.tx_errors, 1);
    /* A socket with on_error counts nothing. */
    cr_assert_eq(dg_socket_send(ev.sock, big, sizeof(big), 9, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_get_stats(ev.sock, &stats), 0);
    cr_assert_eq(stats.unhandled_errors, 0);
    close(taken);
    dgt_close_socket(loop, bare);
    dgt_close_socket(loop, ev.sock);
    dgt_loop_finish(loop);
}

/* What the loop's error handler saw. */
struct loop_errors {
    int calls;
    dg_socket *sock;
    char text[128];
};

static void on_loop_error(dg_socket *sock, const dg_error *err, void *data)
{
    struct loop_errors *seen = data;

    seen->calls++;
    seen->sock = sock;
    dg_error_format(err, seen->text, sizeof(seen->text));
}

/* E11: the loop's error handler (Node: process.on('uncaughtException'))
 * gets what a socket without on_error cannot take, with Node's message;
 * the socket still counts it; a socket with on_error keeps its own; after
 * the handler is removed errors are only counted. */
Test(dgram_parity, loop_error_handler_gets_what_no_socket_handles)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *bare = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_events ev = {0};
    struct loop_errors seen = {0};
    int taken = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(taken);
    char want[64];
    static char big[65508];

    dgt_assert_code(dg_loop_set_error_handler(NULL, on_loop_error, &seen),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_loop_set_error_handler(loop, on_loop_error, &seen), 0);
    dgt_events_socket(loop, DG_UDP4, 0, &ev);
    cr_assert_eq(dg_socket_bind(bare, port, "127.0.0.1", NULL, NULL), 0);
    run_until_unhandled(loop, bare, 1);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.sock, bare);
    snprintf(want, sizeof(want), "bind EADDRINUSE 127.0.0.1:%d", port);
    cr_assert_str_eq(seen.text, want);
    cr_assert_eq(dg_socket_send(ev.sock, big, sizeof(big), 9, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    cr_assert_eq(seen.calls, 1, "a socket with on_error keeps its errors");
    cr_assert_eq(dg_loop_set_error_handler(loop, NULL, NULL), 0);
    cr_assert_eq(dg_socket_bind(bare, port, "127.0.0.1", NULL, NULL), 0);
    run_until_unhandled(loop, bare, 2);
    cr_assert_eq(seen.calls, 1, "removed: only counted");
    close(taken);
    dgt_close_socket(loop, bare);
    dgt_close_socket(loop, ev.sock);
    dgt_loop_finish(loop);
}

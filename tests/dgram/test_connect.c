/* dgram conformance, connect (docs/conformance.md; libuv udp_connect,
 * udp_connect6, udp_sendmmsg_error): the DISCONNECTED/CONNECTING/CONNECTED
 * state machine and its errors, port validation before everything, the
 * default peer address, failures that reset the state, every send form on
 * a connected socket, the send queue counters, close while connecting, and
 * ICMP errors on a connected socket. Every item a test proves is named in
 * a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_connect, .timeout = 60);

/* Codes of the three calls whose answer depends on the connect state,
 * taken from inside the connect callback. */
struct in_callback {
    int connect_rc;
    int bad_port_rc;
};

static struct in_callback inside;

static void connect_cb_probe(dg_socket *sock, int status, const dg_error *err, void *data)
{
    dgt_on_status(sock, status, err, data);
    inside.connect_rc = dg_socket_connect(sock, 9, NULL, NULL, NULL);
    inside.bad_port_rc = dg_socket_connect(sock, 0, NULL, NULL, NULL);
}

/* N19, L2: the state machine, table by table. Unbound -> connect(PORT)
 * with no address: implicit bind, 'connect' then the callback, peer
 * 127.0.0.1:PORT (::1 for udp6). CONNECTING: connect IS_CONNECTED,
 * disconnect/remoteAddress NOT_CONNECTED. CONNECTED: connect
 * IS_CONNECTED. After disconnect: disconnect and remoteAddress
 * NOT_CONNECTED. connect again works and emits 'connect' again. */
static void state_machine(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events ev = {0};
    dgt_status_rec c1 = {.ev = &ev}, c2 = {.ev = &ev};
    dg_socket *sock;
    dg_address remote;
    int peer, port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_events_socket(loop, type, 0, &ev);
    peer = dgt_plain_socket(family, 0);
    port = dgt_plain_port(peer);
    memset(&inside, 0, sizeof(inside));

    /* DISCONNECTED */
    dgt_assert_code(dg_socket_disconnect(sock), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    dgt_assert_code(dg_socket_remote_address(sock, &remote), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    cr_assert_eq(dg_socket_connect(sock, port, NULL, connect_cb_probe, &c1), 0);
    /* CONNECTING */
    cr_assert_eq(c1.calls + ev.connects, 0, "connect completed inside the call");
    dgt_assert_code(dg_socket_connect(sock, port, NULL, NULL, NULL),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED, "while connecting");
    dgt_assert_code(dg_socket_disconnect(sock), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED,
                    "while connecting");
    dgt_assert_code(dg_socket_remote_address(sock, &remote), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED,
                    "while connecting");
    dgt_run_until(loop, &c1.calls, 1, DGT_WAIT_MS);
    /* CONNECTED */
    cr_assert_eq(c1.status, 0);
    cr_assert_eq(c1.connects_seen, 1, "'connect' runs before the callback");
    dgt_assert_code(inside.connect_rc, DG_ERR_SOCKET_DGRAM_IS_CONNECTED, "inside the callback");
    dgt_assert_code(inside.bad_port_rc, DG_ERR_SOCKET_BAD_PORT, "port first, even when connected");
    cr_assert_eq(dg_socket_remote_address(sock, &remote), 0);
    cr_assert_eq(remote.port, port);
    cr_assert_str_eq(remote.address, dgt_loopback(family));
    cr_assert_eq(remote.family, family);
    cr_assert_eq(ev.listening, 1, "connect bound the socket");
    /* DISCONNECTED again */
    cr_assert_eq(dg_socket_disconnect(sock), 0);
    dgt_assert_code(dg_socket_disconnect(sock), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    dgt_assert_code(dg_socket_remote_address(sock, &remote), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    cr_assert_eq(dg_socket_connect(sock, port, dgt_loopback(family), dgt_on_status, &c2), 0);
    dgt_run_until(loop, &c2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(c2.status, 0);
    cr_assert_eq(ev.connects, 2);
    cr_assert_eq(dg_socket_remote_address(sock, &remote), 0);
    cr_assert_eq(remote.port, port);
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(c1.calls, 1);
    cr_assert_eq(c2.calls, 1);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.errors, 0);
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_DGRAM_IS_CONNECTED), "Already connected");
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_DGRAM_NOT_CONNECTED), "Not connected");
    dgt_loop_finish(loop);
}

Test(dgram_connect, state_machine_udp4)
{
    state_machine(DG_UDP4); /* N19, L2 */
}

Test(dgram_connect, state_machine_udp6)
{
    state_machine(DG_UDP6); /* N19, L2 */
}

/* N19: ports 0, -1, 65536, 78960 are BAD_PORT in every state, checked
 * before everything else (also on a closing socket). */
Test(dgram_connect, bad_ports_in_every_state)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec conn = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int peer = dgt_plain_socket(AF_INET, 0);
    const int bad[] = {0, -1, 65536, 78960};

    for (int state = 0; state < 4; state++) {
        if (state == 1)
            cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &conn),
                         0);
        if (state == 2)
            dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
        if (state == 3)
            cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            dgt_assert_code_fmt(dg_socket_connect(sock, bad[i], "127.0.0.1", dgt_on_status, &conn),
                            DG_ERR_SOCKET_BAD_PORT, "state %d port %d", state, bad[i]);
    }
    dgt_assert_code(dg_socket_connect(sock, 9, NULL, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(conn.calls, 1);
    cr_assert_eq(conn.status, 0);
    cr_assert_eq(ev.closed, 1);
    close(peer);
    dgt_loop_finish(loop);
}

/* N20: a connect whose lookup fails: the callback gets the lookup's code
 * (no 'connect', no on_error), the socket is DISCONNECTED again and a
 * connect to a good address then works. Without a callback the error goes
 * to on_error with the host name. */
static void connect_failure(int mode, bool with_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "nowhere.test"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec failed = {0}, ok = {0};
    dg_socket *sock;
    dg_address remote;
    int peer = dgt_plain_socket(AF_INET, 0);

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), "nowhere.test",
                                   with_callback ? dgt_on_status : NULL, &failed),
                 0);
    if (with_callback) {
        dgt_run_until(loop, &failed.calls, 1, DGT_WAIT_MS);
        dgt_assert_code(failed.status, DG_ERR_DNS_NOTFOUND);
        cr_assert_eq(ev.errors, 0);
    } else {
        dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
        dgt_assert_code(ev.error.code, DG_ERR_DNS_NOTFOUND);
        cr_assert_str_eq(ev.error.address, "nowhere.test");
    }
    cr_assert_eq(ev.connects, 0);
    dgt_assert_code(dg_socket_remote_address(sock, &remote), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    dgt_assert_code(dg_socket_disconnect(sock), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    cr_assert_eq(
        dg_socket_connect(sock, dgt_plain_port(peer), "somewhere.test", dgt_on_status, &ok), 0,
        "DISCONNECTED again: a new connect is allowed");
    dgt_run_until(loop, &ok.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(ok.status, 0);
    cr_assert_eq(ev.connects, 1);
    cr_assert_eq(dg_socket_remote_address(sock, &remote), 0);
    cr_assert_str_eq(remote.address, "127.0.0.1", "the lookup's answer for somewhere.test");
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(failed.calls, with_callback ? 1 : 0);
    cr_assert_eq(ok.calls, 1);
    cr_assert_eq(ev.errors, with_callback ? 0 : 1);
    dgt_loop_finish(loop);
}

Test(dgram_connect, lookup_failure_to_callback_sync)
{
    connect_failure(DGT_FAKE_LOOKUP_SYNC, true); /* N20 */
}

Test(dgram_connect, lookup_failure_to_callback_deferred)
{
    connect_failure(DGT_FAKE_LOOKUP_DEFERRED, true); /* N20 */
}

Test(dgram_connect, lookup_failure_to_on_error)
{
    connect_failure(DGT_FAKE_LOOKUP_DEFERRED, false); /* N20 */
}

/* N20 (host names without DNS): "localhost" connects to 127.0.0.1. */
Test(dgram_connect, localhost_resolves_to_loopback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec conn = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int peer = dgt_plain_socket(AF_INET, 0);
    dg_address remote;

    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), "localhost", dgt_on_status, &conn),
                 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(conn.status, 0, "%s", dg_err_name(conn.status));
    cr_assert_eq(dg_socket_remote_address(sock, &remote), 0);
    cr_assert_str_eq(remote.address, "127.0.0.1");
    close(peer);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N19: connect to a literal of the other family is INVALID_ADDRESS at
 * once, and the state stays DISCONNECTED. */
Test(dgram_connect, other_family_literal_is_invalid_address)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_address remote;

    dgt_assert_code(dg_socket_connect(sock, 9, "::1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_remote_address(sock, &remote), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    cr_assert(!dg_loop_alive(loop));
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N21, N25, N28: every send form on a connected socket reaches the peer,
 * each callback reports the datagram's size: buffer, buffer with a
 * callback, slice (offset 20, length 236 of 256), a list of two 256-byte
 * buffers as one 512-byte datagram, an empty buffer, an empty list and an
 * empty slice — the last three as zero-length datagrams. */
struct form_log {
    size_t lengths[16];
    int n;
    int bad_slice;
    int bad_list;
    const unsigned char *buf;
    const unsigned char *b2;
};

static void log_form(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    struct form_log *fl = ev->user;

    (void)sock;
    if (fl->n < 16)
        fl->lengths[fl->n] = msg->length;
    if (fl->n == 2 && (msg->length != 236 || memcmp(msg->data, fl->buf + 20, 236) != 0))
        fl->bad_slice++;
    if (fl->n == 3 && (msg->length != 512 || memcmp(msg->data, fl->buf, 256) != 0 ||
                       memcmp((const char *)msg->data + 256, fl->b2, 256) != 0))
        fl->bad_list++;
    fl->n++;
}

Test(dgram_connect, every_send_form_on_a_connected_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct form_log fl = {0};
    dgt_events rx = {.message_hook = log_form, .user = &fl}, tx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dgt_status_rec conn = {0};
    dgt_send_rec rec[6];
    unsigned char buf[256], b2[256];
    struct iovec iov[2] = {{buf, 256}, {b2, 256}};
    const size_t want[] = {256, 256, 236, 512, 0, 0, 0};

    memset(rec, 0, sizeof(rec));
    dgt_fill(buf, sizeof(buf), 1);
    dgt_fill(b2, sizeof(b2), 2);
    fl.buf = buf;
    fl.b2 = b2;
    cr_assert_eq(dg_socket_connect(txs, port, NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(conn.status, 0);

    cr_assert_eq(dg_socket_send(txs, buf, 256, 0, NULL, NULL, NULL), 0);
    cr_assert_eq(dg_socket_send(txs, buf, 256, 0, NULL, dgt_on_send, &rec[0]), 0);
    cr_assert_eq(dg_socket_send_slice(txs, buf, 256, 20, 236, 0, NULL, dgt_on_send, &rec[1]), 0);
    cr_assert_eq(dg_socket_sendv(txs, iov, 2, 0, NULL, dgt_on_send, &rec[2]), 0);
    cr_assert_eq(dg_socket_send(txs, buf, 0, 0, NULL, dgt_on_send, &rec[3]), 0);
    cr_assert_eq(dg_socket_sendv(txs, NULL, 0, 0, NULL, dgt_on_send, &rec[4]), 0);
    cr_assert_eq(dg_socket_send_slice(txs, buf, 1, 0, 0, 0, NULL, dgt_on_send, &rec[5]), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(rec[i].calls, 0, "send callback %d ran inside the call", i);
    dgt_run_until(loop, &rx.messages, 7, DGT_WAIT_MS);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(fl.lengths[i], want[i], "datagram %d: %zu bytes, want %zu", i, fl.lengths[i],
                     want[i]);
    cr_assert_eq(fl.bad_slice, 0, "the slice's bytes differ");
    cr_assert_eq(fl.bad_list, 0, "the list is not the concatenation of its buffers");
    for (int i = 0; i < 6; i++) {
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, (int)want[i + 1], "send %d status %d", i, rec[i].status);
        cr_assert(rec[i].err_null);
    }
    cr_assert_eq(rx.empty_messages, 3);
    cr_assert_str_eq(rx.from.address, "127.0.0.1");
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(rec[i].calls, 1);
    cr_assert_eq(rx.messages, 7);
    cr_assert_eq(tx.errors + rx.errors, 0);
    dgt_loop_finish(loop);
}

/* N23, L2: on a connected socket any destination is IS_CONNECTED, and
 * that check comes before the port check (-1, 0, 65536 with an address);
 * send_to too. No callback runs for a refused call. */
Test(dgram_connect, destination_on_a_connected_socket_is_is_connected)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int peer = dgt_plain_socket(AF_INET, 0);
    dgt_status_rec conn = {0};
    dgt_send_rec rec = {0};
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET, dgt_plain_port(peer), &ss);
    const int ports[] = {-1, 0, 65536, 1234};

    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    for (size_t i = 0; i < 4; i++) {
        dgt_assert_code_fmt(dg_socket_send(sock, "x", 1, ports[i], "127.0.0.1", dgt_on_send, &rec),
                        DG_ERR_SOCKET_DGRAM_IS_CONNECTED, "port %d with an address", ports[i]);
        dgt_assert_code(dg_socket_send_slice(sock, "xyz", 3, 1, 1, ports[i], "127.0.0.1",
                                             dgt_on_send, &rec),
                        DG_ERR_SOCKET_DGRAM_IS_CONNECTED);
    }
    dgt_assert_code(dg_socket_send(sock, "x", 1, 1234, NULL, dgt_on_send, &rec),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED, "a port alone is a destination");
    dgt_assert_code(dg_socket_send(sock, "x", 1, 0, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED, "an address alone is a destination");
    dgt_assert_code(dg_socket_send_to(sock, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(rec.calls, 0);
    dgt_loop_finish(loop);
}

/* L2: after disconnect a send without destination is BAD_PORT (Node's
 * validatePort; libuv says EDESTADDRREQ), with one it is delivered; a send
 * issued from inside a send callback after disconnect follows the same
 * rules. Four datagrams in all; the queue is empty at the end. */
struct after_disconnect {
    int peer_port;
    int rc_no_dest;
    int rc_dest;
    dgt_send_rec inner;
};

static void send_after_disconnect(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct after_disconnect *ad = data;

    (void)status;
    (void)err;
    ad->rc_no_dest = dg_socket_send(sock, "x", 1, 0, NULL, NULL, NULL);
    ad->rc_dest = dg_socket_send(sock, "four", 4, ad->peer_port, "127.0.0.1", dgt_on_send,
                                 &ad->inner);
}

Test(dgram_connect, send_rules_after_disconnect)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, tx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dgt_status_rec conn = {0};
    dgt_send_rec rec[2];
    struct after_disconnect ad = {.peer_port = port};

    memset(rec, 0, sizeof(rec));
    cr_assert_eq(dg_socket_connect(txs, port, "127.0.0.1", dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(txs, "one", 3, 0, NULL, dgt_on_send, &rec[0]), 0);
    dgt_run_until(loop, &rec[0].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_disconnect(txs), 0);
    dgt_assert_code(dg_socket_disconnect(txs), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    dgt_assert_code(dg_socket_send(txs, "x", 1, 0, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT);
    cr_assert_eq(dg_socket_send(txs, "two", 3, port, "127.0.0.1", dgt_on_send, &rec[1]), 0);
    cr_assert_eq(dg_socket_send(txs, "three", 5, port, "127.0.0.1", send_after_disconnect, &ad), 0);
    dgt_run_until(loop, &ad.inner.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(ad.rc_no_dest, DG_ERR_SOCKET_BAD_PORT, "inside a send callback");
    cr_assert_eq(ad.rc_dest, 0);
    cr_assert_eq(ad.inner.status, 4);
    dgt_run_until(loop, &rx.messages, 4, DGT_WAIT_MS);
    cr_assert_eq(rx.length, 4);
    cr_assert_eq(memcmp(rx.data, "four", 4), 0);
    cr_assert_eq(dg_socket_send_queue_size(txs), 0);
    cr_assert_eq(dg_socket_send_queue_count(txs), 0);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    cr_assert_eq(rec[0].status, 3);
    cr_assert_eq(rec[1].status, 3);
    cr_assert_eq(rx.messages, 4);
    dgt_loop_finish(loop);
}

/* N31: getSendQueueSize/Count on a connected socket: 0/0 fresh, 10/2
 * right after two 5-byte sends, 0/0 once their callbacks ran. */
Test(dgram_connect, send_queue_counters)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int peer = dgt_plain_socket(AF_INET, 0);
    dgt_status_rec conn = {0};
    dgt_send_rec a = {0}, b = {0};

    cr_assert_eq(dg_socket_send_queue_size(sock), 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(sock, "hello", 5, 0, NULL, dgt_on_send, &a), 0);
    cr_assert_eq(dg_socket_send(sock, "world", 5, 0, NULL, dgt_on_send, &b), 0);
    cr_assert_eq(dg_socket_send_queue_size(sock), 10);
    cr_assert_eq(dg_socket_send_queue_count(sock), 2);
    dgt_run_until(loop, &b.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &a.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send_queue_size(sock), 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    close(peer);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N19, L27: close while the connect is pending (its lookup held): the
 * connect callback runs once with -ECANCELED before the close callback,
 * no 'connect' and no on_error, also when the lookup answers later. */
Test(dgram_connect, close_while_connecting)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "slow.test"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec conn = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_connect(sock, 9, "slow.test", dgt_on_status, &conn), 0);
    dgt_run_until(loop, &ev.listening, 1, DGT_WAIT_MS); /* the implicit bind is done */
    cr_assert_eq(lk.npending, 1);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_fake_lookup_release(&lk);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(conn.calls, 1);
    dgt_assert_code(conn.status, -ECANCELED);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.connects + ev.errors, 0);
    cr_assert_str_eq(ev.log, "LBCX");
    dgt_loop_finish(loop);
}

/* N19, E3: close while the connect's address is known but the bind it
 * waits for is not done (the bind's lookup held): the connect callback
 * still runs once, with -ECANCELED, as the bind callback does; no
 * 'listening', no 'connect'. */
Test(dgram_connect, close_while_the_connect_waits_for_the_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "bind-host.test"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec bound = {.ev = &ev}, conn = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "bind-host.test", dgt_on_status, &bound), 0);
    cr_assert_eq(dg_socket_connect(sock, 9, "127.0.0.1", dgt_on_status, &conn), 0);
    /* A turn delivers the connect's answer; the bind's stays held. */
    cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "127.0.0.1"), 1);
    cr_assert_eq(lk.npending, 1);
    cr_assert_eq(conn.calls + bound.calls, 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_fake_lookup_release(&lk);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(bound.calls, 1);
    dgt_assert_code(bound.status, -ECANCELED);
    cr_assert_eq(conn.calls, 1, "the connect must complete exactly once");
    dgt_assert_code(conn.status, -ECANCELED);
    cr_assert_eq(cr.calls, 1);
    cr_assert_str_eq(ev.log, "BBCX");
    dgt_loop_finish(loop);
}

/* N19: close right after connect with a literal (before the loop ran):
 * the pending connect completes exactly once, with -ECANCELED. */
Test(dgram_connect, close_right_after_connect)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec conn = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);

    cr_assert_eq(dg_socket_connect(sock, 9, "127.0.0.1", dgt_on_status, &conn), 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(conn.calls, 1);
    dgt_assert_code(conn.status, -ECANCELED);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.connects + ev.errors + ev.listening, 0);
    dgt_loop_finish(loop);
}

/* L23, E10: connected to a closed port, six queued sends: every callback
 * runs exactly once with the byte count or -ECONNREFUSED (the ICMP error
 * of an earlier datagram); the queue drains to zero. An ICMP error that
 * surfaces on the receive side instead is on_error "recvmsg
 * ECONNREFUSED". */
Test(dgram_connect, sends_to_a_closed_port_all_complete)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int gone = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(gone);
    dgt_status_rec conn = {0};
    dgt_send_rec rec[6];

    close(gone);
    memset(rec, 0, sizeof(rec));
    cr_assert_eq(dg_socket_connect(sock, port, NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(dg_socket_send(sock, "PING", 4, 0, NULL, dgt_on_send, &rec[i]), 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 6);
    for (int i = 0; i < 6; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    dgt_settle(loop, 20);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(rec[i].calls, 1);
        cr_assert(rec[i].status == 4 || rec[i].status == -ECONNREFUSED, "send %d: %s", i,
                  dg_err_name(rec[i].status));
    }
    for (int i = 0; i < ev.errors; i++) {
        cr_assert_eq(ev.error.code, -ECONNREFUSED);
        cr_assert_str_eq(ev.error_text, "recvmsg ECONNREFUSED");
    }
    cr_log_info("connected to a closed port: %d on_error", ev.errors);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(sock), 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.messages, 0);
    dgt_loop_finish(loop);
}

/* N20, E3: a connect whose implicit bind fails (the lookup of the default
 * bind address fails) completes with that error; the bind's own failure
 * goes to on_error (it has no callback); the socket is disconnected and
 * unbound, and a later connect works. */
Test(dgram_connect, implicit_bind_failure_fails_the_connect)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.fail_status = DG_ERR_DNS_SERVFAIL, .fail_host = "0.0.0.0"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec failed = {.ev = &ev}, ok = {0};
    dg_socket *sock;
    dg_address addr;
    int peer = dgt_plain_socket(AF_INET, 0);

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &failed), 0);
    dgt_run_until(loop, &failed.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(failed.status, DG_ERR_DNS_SERVFAIL);
    cr_assert_eq(ev.connects + ev.listening, 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, DG_ERR_DNS_SERVFAIL);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    dgt_assert_code(dg_socket_remote_address(sock, &addr), DG_ERR_SOCKET_DGRAM_NOT_CONNECTED);
    lk.fail_status = 0;
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &ok), 0);
    dgt_run_until(loop, &ok.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(ok.status, 0);
    cr_assert_eq(ev.connects, 1);
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(failed.calls, 1);
    cr_assert_eq(ev.errors, 1);
    dgt_loop_finish(loop);
}

/* N19, N3: with the lookup option, connect without an address looks up
 * the default "127.0.0.1" / "::1". */
Test(dgram_connect, default_peer_goes_through_lookup)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {0};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec conn = {0};
    dg_socket *sock;
    int peer = dgt_plain_socket(AF_INET, 0);

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(conn.status, 0);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "127.0.0.1"), 1);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "0.0.0.0"), 1, "the implicit bind's default");
    close(peer);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N29 on a connected socket: the EMSGSIZE record has no destination, as
 * Node's (address and port undefined): "send EMSGSIZE". */
Test(dgram_connect, emsgsize_on_a_connected_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int peer = dgt_plain_socket(AF_INET, 0);
    dgt_status_rec conn = {0};
    dgt_send_rec rec = {0};
    unsigned char *big = calloc(1, 65535);

    cr_assert_not_null(big);
    cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(sock, big, 65535, 0, NULL, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(rec.status, -EMSGSIZE);
    cr_assert_str_eq(rec.text, "send EMSGSIZE");
    close(peer);
    dgt_close_socket(loop, sock);
    free(big);
    dgt_loop_finish(loop);
}

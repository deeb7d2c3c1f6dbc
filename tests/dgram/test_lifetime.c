/* dgram conformance, lifetime (CONFORMANCE.md C.9, B.7, libuv udp_ref,
 * udp_ref2, udp_ref3, watcher_cross_stop, and uv__udp_finish_close): ref
 * and unref against the loop's keep-alive, every call after close
 * answering NOT_RUNNING, the close protocol (pending sends complete
 * exactly once, before on_close and the close callback; no message after
 * close), closing from inside callbacks, and many sockets closed with
 * traffic in flight. Every item a test proves is named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_lifetime, .timeout = 120);

static void count_timer(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

/* N47, L24 (udp_ref, udp_ref2): a bound referenced socket keeps the loop
 * alive; unref'd it does not (running the loop returns at once and an
 * unref'd 1 s timer never fires); ref brings it back; both are
 * idempotent. */
Test(dgram_lifetime, ref_and_unref_against_keep_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_timer *timer;
    int fired = 0;

    cr_assert(dg_socket_has_ref(sock), "a new socket is referenced");
    dg_socket_unref(sock);
    dg_socket_unref(sock);
    cr_assert(!dg_socket_has_ref(sock));
    cr_assert(!dg_loop_alive(loop), "udp_ref: an unbound unref'd socket");
    dg_socket_ref(sock);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert(dg_loop_alive(loop), "a bound referenced socket keeps the loop alive");
    dg_socket_unref(sock);
    cr_assert(!dg_loop_alive(loop), "udp_ref2: bound, receiving, unref'd");
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 1000, 0, count_timer, &fired), 0);
    dg_timer_unref(timer);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0, "the loop must end at once");
    cr_assert_eq(fired, 0, "the unref'd 1 s timer fired");
    dg_socket_ref(sock);
    dg_socket_ref(sock);
    cr_assert(dg_socket_has_ref(sock));
    cr_assert(dg_loop_alive(loop));
    dgt_close_timer(loop, timer);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N47: unref before the implicit bind persists through it; a pending
 * send keeps the loop alive until its callback (L24 udp_ref3), then the
 * loop ends though the socket is bound. */
Test(dgram_lifetime, unref_before_implicit_bind_persists)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int plain = dgt_plain_socket(AF_INET, 0);
    dgt_send_rec sent = {0};
    dg_address addr;
    char buf[8];

    dg_socket_unref(sock);
    cr_assert_eq(dg_socket_send(sock, "ref3", 4, dgt_plain_port(plain), NULL, dgt_on_send, &sent),
                 0);
    cr_assert(dg_loop_alive(loop), "the pending send keeps the loop alive");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(sent.calls, 1);
    cr_assert_eq(sent.status, 4);
    cr_assert_eq(dg_socket_address(sock, &addr), 0, "bound by the send");
    cr_assert(!dg_socket_has_ref(sock));
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, NULL), 4);
    close(plain);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N47, N48 (ref/unref after close are no-ops): they change nothing on a
 * closing socket and the close still completes once. */
Test(dgram_lifetime, ref_and_unref_on_a_closing_socket_are_no_ops)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_close_rec cr = {0};

    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dg_socket_unref(sock);
    dg_socket_ref(sock);
    dg_socket_unref(sock);
    cr_assert(dg_loop_alive(loop), "a closing handle keeps the loop alive");
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    dgt_loop_finish(loop);
}

/* N48, E5: after close (before its callback ran) every call answers
 * NOT_RUNNING — bind, bind_ex, every send form (after argument checks,
 * as Node), connect (after the port check), disconnect, remoteAddress,
 * address, close, fd, options, buffer sizes, memberships; dispose is a
 * no-op returning 0; the queue getters are 0. */
static void calls_after_close(bool bound, bool connected)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int peer = dgt_plain_socket(AF_INET, 0);
    dgt_close_rec cr = {.ev = &ev};
    dgt_send_rec rec = {0};
    dgt_status_rec st = {0};
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET, dgt_plain_port(peer), &ss);
    struct iovec iov = {(void *)"x", 1};
    dg_bind_options bo = {.port = 0};
    dg_address addr;
    dg_error err;
    const int nr = DG_ERR_SOCKET_DGRAM_NOT_RUNNING;

    if (bound)
        dgt_bind(loop, sock, "127.0.0.1", 0);
    if (connected) {
        cr_assert_eq(dg_socket_connect(sock, dgt_plain_port(peer), NULL, dgt_on_status, &st), 0);
        dgt_run_until(loop, &st.calls, 1, DGT_WAIT_MS);
        cr_assert_eq(st.status, 0);
    }
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_assert_code(dg_socket_bind(sock, NULL, 0, dgt_on_status, &st), nr);
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &st), nr);
    if (connected) {
        dgt_assert_code(dg_socket_send(sock, "x", 1, 0, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_sendv(sock, &iov, 1, 0, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_send_slice(sock, "xy", 2, 1, 1, 0, NULL, dgt_on_send, &rec), nr);
    } else {
        dgt_assert_code(dg_socket_send(sock, "x", 1, 9, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_sendv(sock, &iov, 1, 9, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_send_slice(sock, "xy", 2, 1, 1, 9, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_send_to(sock, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send,
                                          &rec),
                        nr);
        /* Argument errors are still reported first, as in Node. */
        dgt_assert_code(dg_socket_send(sock, "x", 1, 0, NULL, dgt_on_send, &rec),
                        DG_ERR_SOCKET_BAD_PORT);
        dgt_assert_code(dg_socket_send_slice(sock, "xy", 2, 3, 0, 9, NULL, dgt_on_send, &rec),
                        DG_ERR_BUFFER_OUT_OF_BOUNDS);
    }
    dgt_assert_code(dg_socket_connect(sock, 9, NULL, dgt_on_status, &st), nr);
    dgt_assert_code(dg_socket_disconnect(sock), nr);
    dgt_assert_code(dg_socket_remote_address(sock, &addr), nr);
    dgt_assert_code(dg_socket_address(sock, &addr), nr);
    dgt_assert_code(dg_socket_close(sock, dgt_on_close, &cr), nr, "double close");
    dgt_assert_code(dg_socket_fd(sock), nr);
    dgt_assert_code(dg_socket_set_ttl(sock, 64), nr);
    dgt_assert_code(dg_socket_set_multicast_ttl(sock, 1), nr);
    dgt_assert_code(dg_socket_set_multicast_loopback(sock, false), nr);
    dgt_assert_code(dg_socket_set_broadcast(sock, false), nr);
    dgt_assert_code(dg_socket_set_multicast_interface(sock, "127.0.0.1"), nr);
    dgt_assert_code(dg_socket_get_recv_buffer_size(sock, &err), nr);
    dgt_assert_code(dg_socket_set_send_buffer_size(sock, 4096, &err), nr);
    dgt_assert_code(dg_socket_add_membership(sock, "239.255.0.1", "127.0.0.1"), nr);
    dgt_assert_code(dg_socket_drop_membership(sock, "239.255.0.1", "127.0.0.1"), nr);
    dgt_assert_code(dg_socket_add_source_specific_membership(sock, "127.0.0.1", "239.255.0.1",
                                                             "127.0.0.1"),
                    nr);
    dgt_assert_code(dg_socket_drop_source_specific_membership(sock, "127.0.0.1", "239.255.0.1",
                                                              "127.0.0.1"),
                    nr);
    cr_assert_eq(dg_socket_dispose(sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(sock), 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(rec.calls, 0);
    cr_assert_eq(st.calls, connected ? 1 : 0);
    cr_assert_eq(ev.errors, 0);
    close(peer);
    dgt_loop_finish(loop);
}

Test(dgram_lifetime, every_call_after_close_unbound)
{
    calls_after_close(false, false); /* N48, E5 */
}

Test(dgram_lifetime, every_call_after_close_bound)
{
    calls_after_close(true, false); /* N48, E5 */
}

Test(dgram_lifetime, every_call_after_close_connected)
{
    calls_after_close(true, true); /* N48, E5 */
}

/* N18, L27, E3: closing a bound socket with 50 sends issued in the same
 * turn: each send callback runs exactly once (byte count, or -ECANCELED
 * for those the kernel had not issued), all before on_close and the close
 * callback; the queue counters are back at 0 by then; no message after
 * close returned. */
struct close_watch {
    dg_socket *sock;
    int sends_done;
    int bad_status;
    int queue_left_at_close;
};

static void watch_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct close_watch *w = data;

    (void)sock;
    if (status != 8 && status != -ECANCELED)
        w->bad_status++;
    if (status == -ECANCELED)
        cr_expect(err != NULL && err->code == -ECANCELED, "a cancelled send carries its record");
    w->sends_done++;
}

static void watch_close(dg_socket *sock, void *data)
{
    struct close_watch *w = data;

    w->queue_left_at_close =
        (int)(dg_socket_send_queue_count(sock) + dg_socket_send_queue_size(sock));
}

Test(dgram_lifetime, close_completes_every_send_before_close_callbacks)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct close_watch w = {0};
    dgt_events ev = {0};
    dgt_events rx = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    int port_tx = dgt_bind(loop, sock, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);

    /* Traffic towards the closing socket too: none of it may surface. */
    for (int i = 0; i < 10; i++)
        dgt_plain_send(plain, AF_INET, port_tx, "incoming", 8);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(dg_socket_send(sock, "outgoing", 8, port, NULL, watch_send, &w), 0);
    w.sock = sock;
    cr_assert_eq(dg_socket_close(sock, watch_close, &w), 0);
    cr_assert_eq(w.sends_done, 0, "send callbacks ran inside dg_socket_close");
    dgt_run_until(loop, &ev.closed, 1, DGT_WAIT_MS);
    cr_assert_eq(w.sends_done, 50, "%d of 50 send callbacks ran before on_close", w.sends_done);
    cr_assert_eq(w.bad_status, 0);
    cr_assert_eq(w.queue_left_at_close, 0, "queue counters at the close callback");
    cr_assert_eq(ev.messages, 0, "a message was delivered after dg_socket_close returned");
    dgt_settle(loop, 10);
    cr_assert_eq(w.sends_done, 50);
    close(plain);
    dgt_close_socket(loop, rxs);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

/* N18: close from inside on_message with more datagrams queued: no further
 * message, one close. */
static void close_on_first(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    (void)msg;
    if (ev->messages == 1)
        cr_expect_eq(dg_socket_close(sock, NULL, NULL), 0);
}

Test(dgram_lifetime, close_inside_on_message)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {.message_hook = close_on_first};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);

    for (int i = 0; i < 20; i++)
        dgt_plain_send(plain, AF_INET, port, "burst", 5);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.messages, 1, "%d messages after the close", ev.messages - 1);
    cr_assert_eq(ev.closed, 1);
    close(plain);
    dgt_loop_finish(loop);
}

/* N18: close from inside on_listening, and from inside a bind callback:
 * one close, no errors. */
static void close_in_listening(dgt_events *ev, dg_socket *sock)
{
    (void)ev;
    cr_expect_eq(dg_socket_close(sock, NULL, NULL), 0);
}

Test(dgram_lifetime, close_inside_on_listening)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {.listening_hook = close_in_listening};
    dgt_status_rec bound = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);

    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", 0, dgt_on_status, &bound), 0);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(bound.calls, 1);
    cr_assert_eq(ev.errors, 0);
    cr_log_info("close inside on_listening: bind callback status %s", dg_err_name(bound.status));
    dgt_loop_finish(loop);
}

/* N18: a close callback argument may be NULL; on_close still runs once. */
Test(dgram_lifetime, close_without_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP6, 0, &ev);

    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.closed, 1);
    dgt_loop_finish(loop);
}

/* dg_loop_close refuses while a socket is open, and succeeds after. */
Test(dgram_lifetime, loop_close_waits_for_sockets)
{
    /* N47 */
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);

    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* L26 (watcher_cross_stop, scaled to the fd limit): many reuseAddr
 * sockets on one address each send 1 KiB to it; after the first datagram
 * arrives all are closed: every send callback (completed or cancelled)
 * and every close callback runs exactly once. */
struct cross {
    int first_seen;
    int sends;
    int bad;
    int closes;
    int messages;
};

static struct cross cross_state;

static void cross_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    (void)data;
    cross_state.messages++;
    cross_state.first_seen = 1;
}

static void cross_close(dg_socket *sock, void *data)
{
    (void)sock;
    (void)data;
    cross_state.closes++;
}

static void cross_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    (void)data;
    if (status != 1024 && status != -ECANCELED)
        cross_state.bad++;
    cross_state.sends++;
}

Test(dgram_lifetime, many_sockets_closed_with_sends_in_flight)
{
    struct rlimit rl;
    int count = 1000;
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_handlers h = {.on_message = cross_message};
    dg_socket **socks;
    unsigned char payload[1024];
    int port;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)count + 64)
        count = (int)rl.rlim_cur - 64;
    cr_assert_gt(count, 10, "too few fds allowed (%llu)", (unsigned long long)rl.rlim_cur);
    memset(&cross_state, 0, sizeof(cross_state));
    memset(payload, 7, sizeof(payload));
    socks = calloc((size_t)count, sizeof(*socks));
    cr_assert_not_null(socks);
    socks[0] = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &h, NULL);
    port = dgt_bind(loop, socks[0], "127.0.0.1", 0);
    for (int i = 1; i < count; i++) {
        socks[i] = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &h, NULL);
        cr_assert_eq(dg_socket_bind(socks[i], "127.0.0.1", port, NULL, NULL), 0, "socket %d", i);
    }
    for (int i = 0; i < count; i++)
        cr_assert_eq(dg_socket_send(socks[i], payload, sizeof(payload), port, "127.0.0.1",
                                    cross_sent, NULL),
                     0, "socket %d", i);
    dgt_run_until(loop, &cross_state.first_seen, 1, DGT_WAIT_MS);
    for (int i = 0; i < count; i++)
        cr_assert_eq(dg_socket_close(socks[i], cross_close, NULL), 0);
    dgt_run(loop, 30000);
    cr_log_info("%d sockets: %d messages before the close", count, cross_state.messages);
    cr_assert_eq(cross_state.sends, count, "%d of %d send callbacks", cross_state.sends, count);
    cr_assert_eq(cross_state.closes, count, "%d of %d close callbacks", cross_state.closes, count);
    cr_assert_eq(cross_state.bad, 0);
    free(socks);
    dgt_loop_finish(loop);
}

/* N48: calls made from inside on_close answer NOT_RUNNING and do not
 * crash (the socket is freed only after the close callback). */
static int in_close_rc[3];

static void calls_in_on_close(dg_socket *sock, void *data)
{
    dg_address addr;

    (void)data;
    in_close_rc[0] = dg_socket_send(sock, "x", 1, 9, NULL, NULL, NULL);
    in_close_rc[1] = dg_socket_address(sock, &addr);
    in_close_rc[2] = dg_socket_close(sock, NULL, NULL);
}

Test(dgram_lifetime, calls_inside_on_close_are_not_running)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_handlers h = {.on_close = calls_in_on_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, NULL);
    dgt_close_rec cr = {0};

    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    for (int i = 0; i < 3; i++)
        dgt_assert_code_fmt(in_close_rc[i], DG_ERR_SOCKET_DGRAM_NOT_RUNNING, "call %d", i);
    dgt_loop_finish(loop);
}

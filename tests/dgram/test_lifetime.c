/* dgram conformance, lifetime (docs/conformance.md; libuv udp_ref,
 * udp_ref2, udp_ref3, watcher_cross_stop, and uv__udp_finish_close): ref
 * and unref against the loop's keep-alive, closing idle sockets, every call
 * after close answering NOT_RUNNING, the close protocol (200 pending sends
 * complete exactly once, before on_close and the close callback; no
 * message after close), closing from inside callbacks, and many sockets
 * closed with traffic in flight. Every item a test proves is named in a
 * comment. */
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

/* N18, N47, N48: closing an idle socket, never bound or bound: on_close
 * and then the close callback run once each, from the loop; while it
 * closes the socket keeps the loop alive, and ref/unref (no-ops after
 * close) change nothing. */
static void close_idle(bool bound)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);

    if (bound)
        dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    cr_assert_eq(cr.calls + ev.closed, 0, "close callbacks ran inside dg_socket_close");
    cr_assert(dg_loop_alive(loop), "a closing socket keeps the loop alive");
    dg_socket_unref(sock);
    cr_assert(dg_loop_alive(loop), "unref must not drop a closing socket");
    dg_socket_ref(sock);
    dg_socket_unref(sock);
    cr_assert(dg_loop_alive(loop), "a closing socket keeps the loop alive");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_str_eq(ev.log, bound ? "LCX" : "CX");
    dgt_loop_finish(loop);
}

Test(dgram_lifetime, close_unbound_socket)
{
    close_idle(false); /* N18, N47, N48 */
}

Test(dgram_lifetime, close_bound_idle_socket)
{
    close_idle(true); /* N18, N47, N48 */
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
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, dgt_on_status, &st), nr);
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &st), nr);
    if (connected) {
        dgt_assert_code(dg_socket_send(sock, "x", 1, 0, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_sendv(sock, &iov, 1, 0, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_send_slice(sock, "xy", 2, 1, 1, 0, NULL, dgt_on_send, &rec), nr);
    } else {
        dgt_assert_code(dg_socket_send(sock, "x", 1, 9, NULL, dgt_on_send, &rec), nr);
        dgt_assert_code(dg_socket_send(sock, "x", 1, 9, "127.0.0.1", dgt_on_send, &rec), nr);
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
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(rec.calls, 0);
    cr_assert_eq(st.calls, connected ? 1 : 0);
    cr_assert_eq(ev.listening, bound ? 1 : 0, "a refused bind made the socket listen");
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

/* N18, L27, E3: closing a socket with 200 sends issued: each send
 * callback runs exactly once (the byte count, or -ECANCELED with a
 * matching error record for those the kernel had not issued), all before
 * on_close, which runs before the close callback; the queue counters are 0
 * by on_close; what the kernel says it sent is exactly what arrived; and
 * datagrams sent to the closing socket are never delivered after
 * dg_socket_close returned. The socket is bound and closed before the loop
 * ran, bound and closed after one turn, or unbound (the sends wait for the
 * implicit bind) and closed at once. */
enum { SENDS = 200, SEND_LEN = 8 };
enum close_when { BOUND_BEFORE_THE_LOOP_RAN, BOUND_AFTER_ONE_TURN, WAITING_FOR_IMPLICIT_BIND };

/* A sequence number shared by every callback of a test, to check order. */
struct trace {
    int seq;
    int on_close;
    int on_close_seq;
    int close_cb;
    int close_cb_seq;
    int messages;
    int listening;
    int errors;
    size_t queue_count_at_close;
    size_t queue_size_at_close;
};

static void tr_close(dg_socket *sock, void *data)
{
    struct trace *t = data;

    t->on_close++;
    t->on_close_seq = ++t->seq;
    t->queue_count_at_close = dg_socket_send_queue_count(sock);
    t->queue_size_at_close = dg_socket_send_queue_size(sock);
}

static void tr_close_cb(dg_socket *sock, void *data)
{
    struct trace *t = data;

    (void)sock;
    t->close_cb++;
    t->close_cb_seq = ++t->seq;
}

static void tr_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    ((struct trace *)data)->messages++;
}

static void tr_listening(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct trace *)data)->listening++;
}

static void tr_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    ((struct trace *)data)->errors++;
}

static const dg_socket_handlers tr_handlers = {
    .on_message = tr_message,
    .on_listening = tr_listening,
    .on_close = tr_close,
    .on_error = tr_error,
};

struct send_slot {
    struct trace *trace;
    int index;
    int calls;
    int status;
    int seq;
    bool err_ok;
    void *owner;
};

static void slot_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct send_slot *s = data;

    (void)sock;
    s->calls++;
    s->status = status;
    s->seq = ++s->trace->seq;
    s->err_ok = status >= 0 ? err == NULL : (err != NULL && err->code == status);
}

/* Every send completed once, before on_close; returns how many were sent. */
static int check_slots(const struct trace *t, const struct send_slot *slots, int n)
{
    int delivered = 0;

    for (int i = 0; i < n; i++) {
        cr_assert_eq(slots[i].calls, 1, "send %d: callback ran %d times", i, slots[i].calls);
        cr_assert(slots[i].status == SEND_LEN || slots[i].status == -ECANCELED,
                  "send %d: status %d (%s)", i, slots[i].status, dg_err_name(slots[i].status));
        cr_assert(slots[i].err_ok, "send %d: err does not match status %d", i, slots[i].status);
        cr_assert_lt(slots[i].seq, t->on_close_seq, "send %d completed after on_close", i);
        delivered += slots[i].status == SEND_LEN;
    }
    return delivered;
}

/* What the kernel says it sent is exactly what arrived at plain. */
static void check_arrivals(int plain, const struct send_slot *slots, int delivered)
{
    bool got[SENDS] = {false};
    int received = 0;

    for (;;) {
        unsigned char buf[64];
        uint32_t n;
        ssize_t len = dgt_plain_recv_nowait(plain, buf, sizeof(buf));

        if (len < 0)
            break;
        cr_assert_eq(len, SEND_LEN);
        memcpy(&n, buf, sizeof(n));
        cr_assert_lt(n, (uint32_t)SENDS);
        cr_assert(!got[n], "datagram %u arrived twice", n);
        got[n] = true;
        received++;
        cr_assert_eq(slots[n].status, SEND_LEN, "datagram %u arrived but was reported %s", n,
                     dg_err_name(slots[n].status));
    }
    cr_assert_eq(received, delivered, "%d reported sent, %d arrived", delivered, received);
}

static void close_with_sends_in_flight(enum close_when when)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t = {0};
    struct send_slot *slots = calloc(SENDS, sizeof(*slots));
    int plain = dgt_plain_socket(AF_INET, 4 << 20);
    int port = dgt_plain_port(plain);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    int messages_at_close;

    cr_assert_not_null(slots);
    if (when != WAITING_FOR_IMPLICIT_BIND) {
        int own = dgt_bind(loop, sock, "127.0.0.1", 0);

        /* Traffic towards the closing socket too. */
        for (int i = 0; i < 10; i++)
            dgt_plain_send(plain, AF_INET, own, "incoming", 8);
    }
    for (int i = 0; i < SENDS; i++) {
        unsigned char payload[SEND_LEN] = {0};
        uint32_t n = (uint32_t)i;

        memcpy(payload, &n, sizeof(n));
        slots[i] = (struct send_slot){.trace = &t, .index = i};
        cr_assert_eq(
            dg_socket_send(sock, payload, SEND_LEN, port, "127.0.0.1", slot_send, &slots[i]), 0,
            "send %d", i);
    }
    if (when == BOUND_AFTER_ONE_TURN)
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(dg_socket_close(sock, tr_close_cb, &t), 0);
    messages_at_close = t.messages;
    cr_assert_eq(t.on_close + t.close_cb, 0, "close callbacks ran inside dg_socket_close");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);

    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_lt(t.on_close_seq, t.close_cb_seq, "on_close runs before the close callback");
    cr_assert_eq(t.queue_count_at_close, 0, "sends still queued when on_close ran");
    cr_assert_eq(t.queue_size_at_close, 0);
    check_arrivals(plain, slots, check_slots(&t, slots, SENDS));
    cr_assert_eq(t.messages, messages_at_close, "a message was delivered after close returned");
    cr_assert_eq(t.errors, 0);
    if (when == WAITING_FOR_IMPLICIT_BIND)
        cr_assert_leq(t.listening, 1);
    else
        cr_assert_eq(t.listening, 1);
    close(plain);
    free(slots);
    dgt_loop_finish(loop);
}

Test(dgram_lifetime, close_completes_every_send_before_close_callbacks)
{
    close_with_sends_in_flight(BOUND_BEFORE_THE_LOOP_RAN); /* N18, L27, E3 */
}

Test(dgram_lifetime, close_with_200_sends_after_one_turn)
{
    close_with_sends_in_flight(BOUND_AFTER_ONE_TURN); /* N18, L27, E3 */
}

Test(dgram_lifetime, close_with_200_sends_waiting_for_implicit_bind)
{
    close_with_sends_in_flight(WAITING_FOR_IMPLICIT_BIND); /* N18, E3, E4 */
}

/* N18: close (with a callback) from inside on_message with 20 datagrams
 * queued: no further message; on_close and the close callback run once
 * each, from the loop, not inside dg_socket_close. */
static void close_on_first(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    dgt_close_rec *cr = ev->user;

    (void)msg;
    if (ev->messages == 1) {
        cr_expect_eq(dg_socket_close(sock, dgt_on_close, cr), 0);
        cr_expect_eq(cr->calls + ev->closed, 0, "close callbacks ran inside dg_socket_close");
    }
}

Test(dgram_lifetime, close_inside_on_message)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {.message_hook = close_on_first};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);
    int plain = dgt_plain_socket(AF_INET, 0);

    ev.user = &cr;
    for (int i = 0; i < 20; i++)
        dgt_plain_send(plain, AF_INET, port, "burst", 5);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(ev.messages, 1, "%d messages after the close", ev.messages - 1);
    cr_assert_eq(cr.calls, 1);
    cr_assert_str_eq(ev.log, "LMCX");
    close(plain);
    dgt_loop_finish(loop);
}

/* N18: close (with a callback) from inside on_listening: the bind's
 * callback still runs exactly once (0 or -ECANCELED), before on_close and
 * the close callback, each once; no errors. */
static void close_in_listening(dgt_events *ev, dg_socket *sock)
{
    cr_expect_eq(dg_socket_close(sock, dgt_on_close, ev->user), 0);
}

Test(dgram_lifetime, close_inside_on_listening)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {.listening_hook = close_in_listening};
    dgt_status_rec bound = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);

    ev.user = &cr;
    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", dgt_on_status, &bound), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(bound.calls, 1, "bind returned 0: its callback runs exactly once");
    cr_assert(bound.status == 0 || bound.status == -ECANCELED, "bind status %s",
              dg_err_name(bound.status));
    cr_assert_eq(cr.calls, 1);
    cr_assert_str_eq(ev.log, "LBCX");
    cr_log_info("close inside on_listening: bind callback status %s", dg_err_name(bound.status));
    dgt_loop_finish(loop);
}

/* N18: close from inside the first of three send callbacks: that send was
 * sent; every send callback still runs once, before on_close. */
struct close_in_send {
    struct trace *trace;
    struct send_slot slots[3];
    int close_rc;
};

static void close_in_first_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct send_slot *s = data;
    struct close_in_send *c = s->owner;

    slot_send(sock, status, err, data);
    if (s->index == 0)
        c->close_rc = dg_socket_close(sock, tr_close_cb, c->trace);
}

Test(dgram_lifetime, close_inside_a_send_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t = {0};
    struct close_in_send c = {.trace = &t, .close_rc = 1};
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);

    dgt_bind(loop, sock, "127.0.0.1", 0);
    for (int i = 0; i < 3; i++) {
        c.slots[i] = (struct send_slot){.trace = &t, .index = i, .owner = &c};
        cr_assert_eq(dg_socket_send(sock, "abcdefgh", SEND_LEN, port, "127.0.0.1",
                                    close_in_first_send, &c.slots[i]),
                     0);
    }
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c.close_rc, 0);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    check_slots(&t, c.slots, 3);
    cr_assert_eq(c.slots[0].status, SEND_LEN);
    close(plain);
    dgt_loop_finish(loop);
}

/* N18: a close callback argument may be NULL; on_close still runs once. */
Test(dgram_lifetime, close_without_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP6, 0, &ev);

    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
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

/* L26 (libuv's watcher_cross_stop, scaled to the fd limit): many reuseAddr
 * sockets on one address each send 1 KiB to it; once the first datagram
 * arrives all are closed, from inside that on_message or from the loop's
 * caller after it: every close is accepted, every send callback (1024
 * bytes or -ECANCELED) and every close callback runs exactly once. */
struct cross {
    dg_socket **socks;
    int count;
    bool close_in_message;
    bool closing;
    int close_refused;
    int closes;
    int messages;
};

struct cross_slot {
    int calls;
    int status;
};

static void cross_close_all(struct cross *c);

static void cross_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct cross *c = data;

    (void)sock;
    (void)msg;
    c->messages++;
    if (c->close_in_message && !c->closing)
        cross_close_all(c);
}

static void cross_closed(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct cross *)data)->closes++;
}

static void cross_close_all(struct cross *c)
{
    c->closing = true;
    for (int i = 0; i < c->count; i++)
        if (dg_socket_close(c->socks[i], cross_closed, c) != 0)
            c->close_refused++;
}

static void cross_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct cross_slot *slot = data;

    (void)sock;
    (void)err;
    slot->calls++;
    slot->status = status;
}

static void cross_stop(int count, bool close_in_message)
{
    struct rlimit rl;
    dg_loop *loop = dgt_loop_new(NULL);
    struct cross c = {.close_in_message = close_in_message};
    dg_socket_handlers h = {.on_message = cross_message};
    struct cross_slot *slots;
    unsigned char payload[1024];
    int port;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)count + 64)
        count = (int)rl.rlim_cur - 64;
    cr_assert_gt(count, 10, "too few fds allowed (%llu)", (unsigned long long)rl.rlim_cur);
    c.count = count;
    dgt_fill(payload, sizeof(payload), 1);
    c.socks = calloc((size_t)count, sizeof(*c.socks));
    slots = calloc((size_t)count, sizeof(*slots));
    cr_assert(c.socks && slots);
    c.socks[0] = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &h, &c);
    port = dgt_bind(loop, c.socks[0], "127.0.0.1", 0);
    for (int i = 1; i < count; i++) {
        c.socks[i] = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &h, &c);
        cr_assert_eq(dg_socket_bind(c.socks[i], port, "127.0.0.1", NULL, NULL), 0, "socket %d", i);
    }
    for (int i = 0; i < count; i++)
        cr_assert_eq(dg_socket_send(c.socks[i], payload, sizeof(payload), port, "127.0.0.1",
                                    cross_sent, &slots[i]),
                     0, "socket %d", i);
    if (!close_in_message) {
        dgt_run_until(loop, &c.messages, 1, DGT_WAIT_MS);
        cross_close_all(&c);
    }
    dgt_run(loop, 30000);
    cr_log_info("%d sockets: %d messages before the close", count, c.messages);
    cr_assert(c.closing);
    cr_assert_eq(c.close_refused, 0);
    cr_assert_eq(c.closes, count, "%d of %d close callbacks", c.closes, count);
    for (int i = 0; i < count; i++) {
        cr_assert_eq(slots[i].calls, 1, "send %d: %d callbacks", i, slots[i].calls);
        cr_assert(slots[i].status == 1024 || slots[i].status == -ECANCELED, "send %d: %s", i,
                  dg_err_name(slots[i].status));
    }
    free(slots);
    free(c.socks);
    dgt_loop_finish(loop);
}

Test(dgram_lifetime, many_sockets_closed_with_sends_in_flight)
{
    cross_stop(1000, false); /* L26 */
}

Test(dgram_lifetime, many_sockets_closed_inside_on_message)
{
    cross_stop(100, true); /* L26 */
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

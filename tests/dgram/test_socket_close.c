/* The close protocol: closing with many sends in flight completes every
 * send exactly once (delivered or -ECANCELED) before on_close and the close
 * callback, which each run exactly once; closing unbound sockets, closing
 * from inside on_message, a send callback or on_listening, double close,
 * and closing many sockets with traffic in flight. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(socket_close, .timeout = 30);

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
    dg_socket *sock;
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

/* ---- Many sends in flight -------------------------------------------- */

enum { SENDS = 200, SEND_LEN = 8 };

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

/* mode 0: bound, close before the loop ran; 1: bound, one turn first;
 * 2: unbound (sends wait for the implicit bind), close at once. */
static void close_with_sends_in_flight(int mode)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    struct send_slot *slots = calloc(SENDS, sizeof(*slots));
    int plain = dgt_plain_socket(AF_INET, 4 << 20);
    int port = dgt_plain_port(plain);
    int delivered = 0, cancelled = 0, received = 0;
    bool *got = calloc(SENDS, sizeof(*got));
    dg_socket *sock;

    cr_assert(slots && got);
    memset(&t, 0, sizeof(t));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    if (mode != 2)
        dgt_bind(loop, sock, "127.0.0.1", 0);
    for (int i = 0; i < SENDS; i++) {
        unsigned char payload[SEND_LEN] = {0};
        uint32_t n = (uint32_t)i;

        memcpy(payload, &n, sizeof(n));
        slots[i] = (struct send_slot){.trace = &t, .index = i};
        cr_assert_eq(
            dg_socket_send(sock, payload, SEND_LEN, port, "127.0.0.1", slot_send, &slots[i]), 0,
            "send %d", i);
    }
    if (mode == 1)
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(dg_socket_close(sock, tr_close_cb, &t), 0);
    cr_assert_eq(t.on_close + t.close_cb, 0, "close callbacks ran inside dg_socket_close");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);

    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_lt(t.on_close_seq, t.close_cb_seq, "on_close runs before the close callback");
    cr_assert_eq(t.queue_count_at_close, 0, "sends still queued when on_close ran");
    cr_assert_eq(t.queue_size_at_close, 0);
    for (int i = 0; i < SENDS; i++) {
        cr_assert_eq(slots[i].calls, 1, "send %d: callback ran %d times", i, slots[i].calls);
        cr_assert(slots[i].status == SEND_LEN || slots[i].status == -ECANCELED,
                  "send %d: status %d (%s)", i, slots[i].status, dg_err_name(slots[i].status));
        cr_assert(slots[i].err_ok, "send %d: err does not match status %d", i, slots[i].status);
        cr_assert_lt(slots[i].seq, t.on_close_seq, "send %d completed after on_close", i);
        if (slots[i].status == SEND_LEN)
            delivered++;
        else
            cancelled++;
    }
    cr_assert_eq(delivered + cancelled, SENDS);

    /* What the kernel says it sent is exactly what arrived. */
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
    cr_assert_eq(t.errors, 0);
    if (mode == 2)
        cr_assert_leq(t.listening, 1);
    else
        cr_assert_eq(t.listening, 1);
    close(plain);
    free(slots);
    free(got);
    dgt_loop_finish(loop);
}

Test(socket_close, close_with_200_sends_before_the_loop_ran)
{
    close_with_sends_in_flight(0);
}

Test(socket_close, close_with_200_sends_after_one_turn)
{
    close_with_sends_in_flight(1);
}

Test(socket_close, close_with_200_sends_waiting_for_implicit_bind)
{
    close_with_sends_in_flight(2);
}

/* ---- Simple closes ---------------------------------------------------- */

Test(socket_close, close_unbound_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    dg_socket *sock;

    memset(&t, 0, sizeof(t));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    cr_assert_eq(dg_socket_close(sock, tr_close_cb, &t), 0);
    cr_assert_eq(t.on_close + t.close_cb, 0);
    cr_assert(dg_loop_alive(loop), "a closing socket keeps the loop alive");
    /* ref/unref are no-ops on a closing socket: it still completes. */
    dg_socket_unref(sock);
    cr_assert(dg_loop_alive(loop), "unref must not drop a closing socket");
    dg_socket_ref(sock);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_eq(t.listening + t.messages + t.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_close, close_unbound_udp6_socket_without_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    dg_socket *sock;

    memset(&t, 0, sizeof(t));
    sock = dgt_socket_new(loop, DG_UDP6, 0, &tr_handlers, &t);
    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t.on_close, 1);
    dgt_loop_finish(loop);
}

Test(socket_close, close_bound_idle_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    dg_socket *sock;

    memset(&t, 0, sizeof(t));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, tr_close_cb, &t), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_eq(t.listening, 1);
    cr_assert_eq(t.messages + t.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_close, double_close_is_not_running)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t, t2;
    dg_socket *sock;

    memset(&t, 0, sizeof(t));
    memset(&t2, 0, sizeof(t2));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, tr_close_cb, &t), 0);
    dgt_assert_code(dg_socket_close(sock, tr_close_cb, &t2), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_eq(t2.close_cb, 0, "a refused close must not call its callback");
    dgt_loop_finish(loop);
}

/* ---- Closing from callbacks ------------------------------------------ */

static void close_on_first_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct trace *t = data;

    (void)msg;
    t->messages++;
    if (t->messages == 1) {
        cr_expect_eq(dg_socket_close(sock, tr_close_cb, t), 0);
        cr_expect_eq(t->on_close + t->close_cb, 0);
    }
}

Test(socket_close, close_from_inside_on_message)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    dg_socket_handlers h = tr_handlers;
    dg_socket *sock;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port;

    memset(&t, 0, sizeof(t));
    h.on_message = close_on_first_message;
    sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &t);
    port = dgt_bind(loop, sock, "127.0.0.1", 0);
    /* Five datagrams wait in the socket before the loop looks: they can
     * all complete in one batch, and only the first may be delivered. */
    for (int i = 0; i < 5; i++)
        dgt_plain_send(plain, AF_INET, port, "12345678", 8);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(t.messages, 1, "on_message ran %d times; none may follow a close", t.messages);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    cr_assert_eq(t.errors, 0);
    close(plain);
    dgt_loop_finish(loop);
}

struct close_in_send {
    struct trace *trace;
    dg_socket *sock;
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

Test(socket_close, close_from_inside_a_send_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct trace t;
    struct close_in_send c;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);

    memset(&t, 0, sizeof(t));
    memset(&c, 0, sizeof(c));
    c.trace = &t;
    c.close_rc = 1;
    c.sock = dgt_socket_new(loop, DG_UDP4, 0, &tr_handlers, &t);
    dgt_bind(loop, c.sock, "127.0.0.1", 0);
    for (int i = 0; i < 3; i++) {
        c.slots[i] = (struct send_slot){.trace = &t, .index = i, .owner = &c};
        cr_assert_eq(dg_socket_send(c.sock, "abcdefgh", SEND_LEN, port, "127.0.0.1",
                                    close_in_first_send, &c.slots[i]),
                     0);
    }
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c.close_rc, 0);
    cr_assert_eq(t.on_close, 1);
    cr_assert_eq(t.close_cb, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(c.slots[i].calls, 1, "send %d: %d callbacks", i, c.slots[i].calls);
        cr_assert(c.slots[i].status == SEND_LEN || c.slots[i].status == -ECANCELED, "send %d: %s",
                  i, dg_err_name(c.slots[i].status));
        cr_assert(c.slots[i].err_ok);
        cr_assert_lt(c.slots[i].seq, t.on_close_seq);
    }
    cr_assert_eq(c.slots[0].status, SEND_LEN);
    close(plain);
    dgt_loop_finish(loop);
}

struct close_in_listening {
    struct trace trace;
    int bind_calls;
    int bind_status;
    int bind_seq;
};

static void close_on_listening(dg_socket *sock, void *data)
{
    struct close_in_listening *c = data;

    c->trace.listening++;
    cr_expect_eq(dg_socket_close(sock, tr_close_cb, &c->trace), 0);
}

static void listening_bind_cb(dg_socket *sock, int status, void *data)
{
    struct close_in_listening *c = data;

    (void)sock;
    c->bind_calls++;
    c->bind_status = status;
    c->bind_seq = ++c->trace.seq;
}

Test(socket_close, close_from_inside_on_listening)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct close_in_listening c;
    dg_socket_handlers h = tr_handlers;
    dg_socket *sock;

    memset(&c, 0, sizeof(c));
    h.on_listening = close_on_listening;
    sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &c.trace);
    /* The handlers' data is the trace, the first member of c. */
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", 0, listening_bind_cb, &c), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c.trace.listening, 1);
    cr_assert_eq(c.trace.on_close, 1);
    cr_assert_eq(c.trace.close_cb, 1);
    cr_assert_eq(c.bind_calls, 1, "bind returned 0: its callback runs exactly once");
    cr_assert(c.bind_status == 0 || c.bind_status == -ECANCELED, "bind status %s",
              dg_err_name(c.bind_status));
    cr_assert_lt(c.bind_seq, c.trace.on_close_seq);
    dgt_loop_finish(loop);
}

/* ---- Many sockets (libuv's watcher_cross_stop, smaller) --------------- */

enum { CROSS = 100 };

struct cross {
    dg_socket *socks[CROSS];
    struct send_slot slots[CROSS];
    struct trace trace;
    int closed;
    bool closing;
    int close_rc_bad;
};

static void cross_closed(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct cross *)data)->closed++;
}

static void cross_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct cross *c = data;

    (void)sock;
    (void)msg;
    c->trace.messages++;
    if (c->closing)
        return;
    c->closing = true;
    for (int i = 0; i < CROSS; i++) {
        if (dg_socket_close(c->socks[i], cross_closed, c) != 0)
            c->close_rc_bad++;
    }
}

Test(socket_close, closing_many_sockets_with_traffic_in_flight)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct cross *c = calloc(1, sizeof(*c));
    dg_socket_handlers h = {.on_message = cross_message};
    unsigned char payload[1024];
    int port = 0;

    cr_assert_not_null(c);
    dgt_fill(payload, sizeof(payload), 1);
    for (int i = 0; i < CROSS; i++) {
        c->socks[i] = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &h, c);
        port = dgt_bind(loop, c->socks[i], "127.0.0.1", port);
    }
    for (int i = 0; i < CROSS; i++) {
        c->slots[i] = (struct send_slot){.trace = &c->trace, .index = i};
        cr_assert_eq(dg_socket_send(c->socks[i], payload, sizeof(payload), port, "127.0.0.1",
                                    slot_send, &c->slots[i]),
                     0);
    }
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert(c->closing);
    cr_assert_eq(c->close_rc_bad, 0);
    cr_assert_eq(c->closed, CROSS);
    for (int i = 0; i < CROSS; i++) {
        cr_assert_eq(c->slots[i].calls, 1, "send %d: %d callbacks", i, c->slots[i].calls);
        cr_assert(c->slots[i].status == 1024 || c->slots[i].status == -ECANCELED, "send %d: %s", i,
                  dg_err_name(c->slots[i].status));
    }
    cr_assert_geq(c->trace.messages, 1);
    free(c);
    dgt_loop_finish(loop);
}

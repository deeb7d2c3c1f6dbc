/* The send fast path (engine/dgram/send.c, send_to_fast): a socket
 * address send on a socket whose fast_send flag is on is a slot, two
 * copies and the SQE. These tests show each decision the flag makes, at
 * each of its transitions, gives the same outcome as the full path: the
 * payload copy at every size class, order behind sends still queued (an
 * implicit bind, sends made from on_listening, a host name still
 * resolving), a connect in progress and done, a disconnect, a close, and
 * the refusals (family, length, port, queue full). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_send_fast, .timeout = 90);

/* One send to `to`, run to its callback: the loop's send slots exist from
 * the first send on, and only then does a send take the fast path. */
static void warm_up(dg_loop *loop, dg_socket *sock, const struct sockaddr_storage *to,
                    socklen_t tolen)
{
    dgt_send_rec rec = {0};
    cr_assert_eq(dg_socket_send_to(sock, "w", 1, (const struct sockaddr *)to, tolen, dgt_on_send,
                                   &rec),
                 0);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 1);
}

/* A datagram of seq's size class, checked at the receiver. */
static const size_t sizes[] = {0,  1,   15,  16,  17,   31,   32,   33,  63,  64,
                               65, 100, 127, 128, 129, 1535, 1536, 1537, 4000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

struct sized {
    int n;
    int bad;
};

static void check_sized(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    struct sized *z = ev->user;
    (void)sock;
    if (z->n >= (int)NSIZES || msg->length != sizes[z->n] ||
        dgt_check(msg->data, msg->length, (unsigned)z->n) != msg->length)
        z->bad++;
    z->n++;
}

static void sizes_arrive_intact(dg_socket_type type)
{
    if (type == DG_UDP6)
        dgt_require_ipv6();
    int family = dgt_family(type);
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0}, tx = {0};
    struct sized z = {0};
    dg_socket *rxs = dgt_events_socket(loop, type, 0, &rx);
    dg_socket *txs = dgt_events_socket(loop, type, 0, &tx);
    rx.user = &z;
    rx.message_hook = check_sized;
    struct sockaddr_storage to;
    socklen_t tolen = dgt_sockaddr(family, dgt_bind(loop, rxs, dgt_loopback(family), 0), &to);
    struct sockaddr_storage self;
    socklen_t selflen = dgt_sockaddr(family, dgt_bind(loop, txs, dgt_loopback(family), 0), &self);
    warm_up(loop, txs, &self, selflen);
    dgt_send_rec rec[NSIZES];
    memset(rec, 0, sizeof(rec));
    unsigned char *buf = malloc(4000);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < NSIZES; i++) {
        dgt_fill(buf, sizes[i], (unsigned)i);
        cr_assert_eq(dg_socket_send_to(txs, buf, sizes[i], (struct sockaddr *)&to, tolen,
                                       dgt_on_send, &rec[i]),
                     0, "size %zu", sizes[i]);
        memset(buf, 0xee, 4000); /* the copy was made at the call */
    }
    dgt_run_until(loop, &rx.messages, (int)NSIZES, DGT_WAIT_MS);
    for (size_t i = 0; i < NSIZES; i++) {
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, (int)sizes[i], "size %zu: status %d", sizes[i],
                     rec[i].status);
    }
    cr_assert_eq(z.bad, 0, "%d datagrams differ from what was sent", z.bad);
    free(buf);
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
    for (size_t i = 0; i < NSIZES; i++)
        cr_assert_eq(rec[i].calls, 1, "callback exactly once");
}

/* Every copy size class (the fixed moves up to 128 bytes, a memcpy call
 * above, the heap buffer past the inline 1536) arrives byte for byte. */
Test(dgram_send_fast, sizes_arrive_intact_udp4)
{
    sizes_arrive_intact(DG_UDP4);
}

Test(dgram_send_fast, sizes_arrive_intact_udp6)
{
    sizes_arrive_intact(DG_UDP6);
}

/* Numbered datagrams 0..N-1 from a sender to a receiver. */
struct ordered {
    dg_loop *loop;
    dgt_events rx, tx;
    dgt_numbered num;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint32_t next;
    int failed_sends;
};

static void ordered_open(struct ordered *o, const dg_socket_options *tx_options)
{
    memset(o, 0, sizeof(*o));
    o->loop = dgt_loop_new(NULL);
    dg_socket_handlers h = {.on_message = dgt_on_numbered};
    dg_socket *rxs = NULL, *txs = NULL;
    cr_assert_eq(dg_socket_create(o->loop, &(dg_socket_options){.type = DG_UDP4}, &h, &o->num,
                                  &rxs),
                 0);
    int port = dgt_bind(o->loop, rxs, "127.0.0.1", 0);
    o->rx.sock = rxs;
    o->tolen = dgt_sockaddr(AF_INET, port, &o->to);
    dg_socket_options opts = tx_options ? *tx_options : (dg_socket_options){.type = DG_UDP4};
    cr_assert_eq(dgt_events_socket_opts(o->loop, &opts, &o->tx, &txs), 0);
}

static void ordered_send_to(struct ordered *o)
{
    unsigned char buf[64];
    dgt_numbered_fill(buf, sizeof(buf), o->next++);
    if (dg_socket_send_to(o->tx.sock, buf, sizeof(buf), (struct sockaddr *)&o->to, o->tolen,
                          NULL, NULL) != 0)
        o->failed_sends++;
}

static void ordered_finish(struct ordered *o)
{
    dgt_run_until(o->loop, &o->num.messages, (int)o->next, DGT_WAIT_MS);
    cr_assert_eq(o->num.bad, 0, "datagrams out of order or damaged");
    cr_assert_eq(o->failed_sends, 0);
    dgt_close_socket(o->loop, o->rx.sock);
    dgt_close_socket(o->loop, o->tx.sock);
    cr_assert_eq(o->tx.errors, 0, "sender on_error: %s", o->tx.error_text);
    dgt_loop_finish(o->loop);
}

static void send_five(dgt_events *ev, dg_socket *sock)
{
    (void)sock;
    for (int i = 0; i < 5; i++)
        ordered_send_to(ev->user);
}

/* An unbound sender: its first send starts the implicit bind and the
 * next ones wait in the queue; sends made from on_listening (the socket
 * is bound, the queue not yet flushed) and after it leave behind them. */
Test(dgram_send_fast, implicit_bind_keeps_order)
{
    struct ordered o;
    ordered_open(&o, NULL);
    o.tx.user = &o;
    o.tx.listening_hook = send_five;
    for (int i = 0; i < 10; i++)
        ordered_send_to(&o);
    cr_assert_eq(dg_socket_send_queue_count(o.tx.sock), 10);
    dgt_run_until(o.loop, &o.tx.listening, 1, DGT_WAIT_MS);
    for (int i = 0; i < 5; i++)
        ordered_send_to(&o);
    ordered_finish(&o);
    cr_assert_eq(o.next, 20);
}

/* A host name still resolving holds the socket address sends made after
 * it (the lookup option never sees those); once it resolved they leave in
 * order, and later ones at once. */
Test(dgram_send_fast, host_name_ahead_keeps_order)
{
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "peer.test"};
    dg_socket_options opts = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    struct ordered o;
    ordered_open(&o, &opts);
    dgt_bind(o.loop, o.tx.sock, "127.0.0.1", 0);
    ordered_send_to(&o); /* the slots exist: the next sends may go fast */
    dgt_run_until(o.loop, &o.num.messages, 1, DGT_WAIT_MS);
    int calls = lk.calls;
    unsigned char buf[64];
    dgt_numbered_fill(buf, sizeof(buf), o.next++);
    cr_assert_eq(dg_socket_send(o.tx.sock, buf, sizeof(buf), dgt_sockaddr_port(
                                    (struct sockaddr *)&o.to), "peer.test", NULL, NULL),
                 0);
    for (int i = 0; i < 3; i++)
        ordered_send_to(&o);
    cr_assert_eq(lk.calls, calls + 1, "only the host name is looked up");
    dgt_settle(o.loop, 20);
    cr_assert_eq(o.num.messages, 1, "nothing leaves ahead of the host name");
    cr_assert_eq(dgt_fake_lookup_release(&lk), 1);
    dgt_run_until(o.loop, &o.num.messages, 5, DGT_WAIT_MS);
    ordered_send_to(&o);
    cr_assert_eq(lk.calls, calls + 1);
    ordered_finish(&o);
}

/* A connect turns the path off: a socket address send made while it is
 * in progress waits and ends with EISCONN, one made once connected is
 * refused at the call; after a disconnect socket address sends go again. */
Test(dgram_send_fast, connect_and_disconnect)
{
    struct ordered o;
    ordered_open(&o, NULL);
    dgt_bind(o.loop, o.tx.sock, "127.0.0.1", 0);
    ordered_send_to(&o); /* the slots exist: the next sends may go fast */
    dgt_run_until(o.loop, &o.num.messages, 1, DGT_WAIT_MS);
    dgt_status_rec crec = {0};
    dgt_send_rec during = {0};
    int port = dgt_sockaddr_port((struct sockaddr *)&o.to);
    cr_assert_eq(dg_socket_connect(o.tx.sock, port, "127.0.0.1", dgt_on_status, &crec), 0);
    cr_assert_eq(dg_socket_send_to(o.tx.sock, "x", 1, (struct sockaddr *)&o.to, o.tolen,
                                   dgt_on_send, &during),
                 0);
    dgt_run_until(o.loop, &crec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(crec.status, 0);
    dgt_run_until(o.loop, &during.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(during.status, -EISCONN);
    dgt_assert_code(dg_socket_send_to(o.tx.sock, "x", 1, (struct sockaddr *)&o.to, o.tolen,
                                      NULL, NULL),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED);
    cr_assert_eq(dg_socket_disconnect(o.tx.sock), 0);
    ordered_send_to(&o);
    ordered_send_to(&o);
    ordered_finish(&o);
    cr_assert_eq(during.calls, 1);
}

/* After dg_socket_close a socket address send is NOT_RUNNING at the call
 * and no callback runs. */
Test(dgram_send_fast, closed_socket_refuses)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events tx = {0};
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    struct sockaddr_storage to;
    socklen_t tolen = dgt_sockaddr(AF_INET, dgt_bind(loop, txs, "127.0.0.1", 0), &to);
    warm_up(loop, txs, &to, tolen); /* to itself */
    dgt_send_rec rec = {0};
    dgt_close_rec cl = {0};
    cr_assert_eq(dg_socket_close(txs, dgt_on_close, &cl), 0);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                      &rec),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &cl.calls, 1, DGT_WAIT_MS);
    dgt_loop_finish(loop);
    cr_assert_eq(rec.calls, 0);
}

static void count_many(dg_socket *sock, const dg_send_many_result *result, void *data)
{
    (void)sock;
    (void)result;
    ++*(int *)data;
}

/* On a bound socket the path refuses what the full path refuses, with
 * the same codes, and a full queue is SEND_QUEUE_FULL; an unbound socket
 * given an AF_UNSPEC address is refused and stays unbound. */
Test(dgram_send_fast, refusals)
{
    dg_loop_options lo;
    dg_loop_options_init(&lo);
    lo.max_pending_sends = 4;
    dg_loop *loop = dgt_loop_new(&lo);
    dgt_events tx = {0};
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    dg_socket *fresh = dgt_events_socket(loop, DG_UDP4, 0, &(dgt_events){0});
    struct sockaddr_storage to, to6, unspec = {0};
    socklen_t tolen = dgt_sockaddr(AF_INET, dgt_bind(loop, txs, "127.0.0.1", 0), &to);
    socklen_t tolen6 = dgt_sockaddr(AF_INET6, 9, &to6);
    warm_up(loop, txs, &to, tolen); /* to itself */
    struct sockaddr_storage port0 = to;
    ((struct sockaddr_in *)&port0)->sin_port = 0;
    dgt_assert_code(dg_socket_send_to(fresh, "x", 1, (struct sockaddr *)&unspec, tolen, NULL,
                                      NULL),
                    DG_ERR_INVALID_ADDRESS);
    dg_address a;
    cr_assert_neq(dg_socket_address(fresh, &a), 0, "a refused send does not bind");
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&unspec, tolen, NULL, NULL),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to6, tolen6, NULL, NULL),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen - 1, NULL,
                                      NULL),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&port0, tolen, NULL, NULL),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, NULL, tolen, NULL, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_send_rec rec[5];
    memset(rec, 0, sizeof(rec));
    /* A fan-out counts one send but holds no slot: with it and three sends
     * in flight a slot is free, and the queue is still full. */
    dg_addr_key key;
    int many_calls = 0;
    cr_assert_eq(dg_addr_key_from_sockaddr((struct sockaddr *)&to, tolen, &key), 0);
    cr_assert_eq(dg_socket_send_many(txs, "m", 1, &key, 1, count_many, &many_calls), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                       &rec[i]),
                     0);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                      &rec[3]),
                    DG_ERR_SEND_QUEUE_FULL);
    dgt_run_until(loop, &many_calls, 1, DGT_WAIT_MS);
    for (int i = 0; i < 3; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                       &rec[i]),
                     0);
    dgt_assert_code(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                      &rec[4]),
                    DG_ERR_SEND_QUEUE_FULL);
    for (int i = 0; i < 4; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send_to(txs, "x", 1, (struct sockaddr *)&to, tolen, dgt_on_send,
                                   &rec[4]),
                 0, "a slot is free again after a callback");
    dgt_run_until(loop, &rec[4].calls, 1, DGT_WAIT_MS);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, fresh);
    dgt_loop_finish(loop);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rec[i].calls, 1);
}

/* A receiver of numbered datagrams and its address. */
struct numbered_rx {
    dg_socket *sock;
    dgt_numbered num;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint32_t next;
};

static void numbered_rx_open(dg_loop *loop, struct numbered_rx *r)
{
    dg_socket_handlers h = {.on_message = dgt_on_numbered};
    memset(r, 0, sizeof(*r));
    cr_assert_eq(dg_socket_create(loop, &(dg_socket_options){.type = DG_UDP4}, &h, &r->num,
                                  &r->sock),
                 0);
    r->tolen = dgt_sockaddr(AF_INET, dgt_bind(loop, r->sock, "127.0.0.1", 0), &r->to);
}

/* Plan 9: with GSO on, a send that does not join the socket's run of one
 * sends that one as a plain datagram and takes its place. Sends to two
 * peers in the pattern below (runs of one and longer, a size change to
 * the same peer) arrive at each peer whole and in order, each callback
 * exactly once, and the runs of two or more still go as GSO sends. */
Test(dgram_send_fast, runs_of_one_keep_order)
{
    static const char pattern[] = "ABAAABBABBBBAABA";
    static const size_t size_at[] = {64, 64, 64, 64, 100, 64, 64, 64,
                                     64, 64, 64, 64, 64,  64, 64, 100};
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events tx = {0};
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    struct numbered_rx rx[2];
    numbered_rx_open(loop, &rx[0]);
    numbered_rx_open(loop, &rx[1]);
    struct sockaddr_storage self;
    socklen_t selflen = dgt_sockaddr(AF_INET, dgt_bind(loop, txs, "127.0.0.1", 0), &self);
    warm_up(loop, txs, &self, selflen);
    int calls = 0;
    dgt_send_rec rec[sizeof(pattern) - 1];
    memset(rec, 0, sizeof(rec));
    unsigned char buf[128];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i + 1 < sizeof(pattern); i++) {
            struct numbered_rx *r = &rx[pattern[i] - 'A'];
            dgt_numbered_fill(buf, size_at[i], r->next++);
            cr_assert_eq(dg_socket_send_to(txs, buf, size_at[i], (struct sockaddr *)&r->to,
                                           r->tolen, dgt_on_send, &rec[i]),
                         0);
        }
        for (size_t i = 0; i + 1 < sizeof(pattern); i++)
            dgt_run_until(loop, &rec[i].calls, round + 1, DGT_WAIT_MS);
        calls += (int)sizeof(pattern) - 1;
    }
    for (int k = 0; k < 2; k++) {
        dgt_run_until(loop, &rx[k].num.messages, (int)rx[k].next, DGT_WAIT_MS);
        cr_assert_eq(rx[k].num.bad, 0, "peer %c: datagrams out of order or damaged", 'A' + k);
    }
    dg_socket_stats st;
    cr_assert_eq(dg_socket_get_stats(txs, &st), 0);
    cr_assert_eq(st.tx_datagrams, (uint64_t)calls + 1);
    cr_assert_gt(st.tx_gso_sends, 0, "the longer runs still go as GSO sends");
    dgt_close_socket(loop, rx[0].sock);
    dgt_close_socket(loop, rx[1].sock);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
    for (size_t i = 0; i + 1 < sizeof(pattern); i++)
        cr_assert_eq(rec[i].calls, 4, "callback exactly once per send");
}

/* ---- dg_socket_send with a literal: parsed once per new text -------------
 * The socket remembers its last literal destination; each send must still
 * go where its own text and port say: a new text, a new port, and the same
 * char buffer rewritten in place (the pointer alone proves nothing). */

static void literal_send(dg_loop *loop, dg_socket *tx, const char *text, int port,
                         dgt_events *want)
{
    dgt_send_rec rec = {0};
    int before = want->messages;
    cr_assert_eq(dg_socket_send(tx, "x", 1, port, text, dgt_on_send, &rec), 0, "%s:%d", text,
                 port);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 1, "%s:%d", text, port);
    dgt_run_until(loop, &want->messages, before + 1, DGT_WAIT_MS);
    cr_assert_eq(want->messages, before + 1, "%s:%d reached the wrong socket", text, port);
}

Test(dgram_send_fast, literal_destinations_follow_their_text)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events a = {0}, b = {0}, c = {0}, tx = {0};
    dg_socket *as = dgt_events_socket(loop, DG_UDP4, 0, &a);
    dg_socket *bs = dgt_events_socket(loop, DG_UDP4, 0, &b);
    dg_socket *cs = dgt_events_socket(loop, DG_UDP4, 0, &c);
    dg_socket *txs = dgt_events_socket(loop, DG_UDP4, 0, &tx);
    int pa = dgt_bind(loop, as, "127.0.0.2", 0);
    int pb = dgt_bind(loop, bs, "127.0.0.3", pa); /* the same port, another address */
    int pc = dgt_bind(loop, cs, "127.0.0.2", 0);  /* the same address, another port */
    dgt_bind(loop, txs, "127.0.0.1", 0);
    cr_assert_eq(pb, pa);

    char text[32];
    strcpy(text, "127.0.0.2");
    literal_send(loop, txs, text, pa, &a);
    literal_send(loop, txs, text, pa, &a);  /* remembered */
    literal_send(loop, txs, text, pc, &c);  /* same text, new port */
    strcpy(text, "127.0.0.3");              /* same buffer, new text */
    literal_send(loop, txs, text, pa, &b);
    literal_send(loop, txs, "127.0.0.2", pa, &a);
    literal_send(loop, txs, "127.2", pa, &a);  /* shorthand: the same address */
    literal_send(loop, txs, "0x7f.3", pa, &b); /* hex shorthand */
    cr_assert_eq(a.messages, 4);
    cr_assert_eq(b.messages, 2);
    cr_assert_eq(c.messages, 1);

    /* Errors are unchanged by what is remembered: each call answers on
     * the socket that sent (its literal remembered) as on one that never
     * sent. */
    const struct {
        const char *text;
        int port;
    } bad[] = {{"127.0.0.2", 0}, {"127.0.0.2", 65536}, {"127.0.0.2", -1}, {"::1", pa}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fresh = dg_socket_send(cs, "x", 1, bad[i].port, bad[i].text, NULL, NULL);
        cr_assert_lt(fresh, 0, "%s:%d", bad[i].text, bad[i].port);
        cr_assert_eq(dg_socket_send(txs, "x", 1, bad[i].port, bad[i].text, NULL, NULL), fresh,
                     "%s:%d", bad[i].text, bad[i].port);
    }
    dgt_send_rec closed = {0};
    dgt_close_rec cl = {0};
    cr_assert_eq(dg_socket_close(txs, dgt_on_close, &cl), 0);
    dgt_assert_code(dg_socket_send(txs, "x", 1, pa, "127.0.0.2", dgt_on_send, &closed),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dg_socket_close(as, dgt_on_close, &cl), 0);
    cr_assert_eq(dg_socket_close(bs, dgt_on_close, &cl), 0);
    cr_assert_eq(dg_socket_close(cs, dgt_on_close, &cl), 0);
    dgt_run_until(loop, &cl.calls, 4, DGT_WAIT_MS);
    dgt_loop_finish(loop);
    cr_assert_eq(closed.calls, 0);
}

/* ---- The loop's walk ends a plain send inline --------------------------
 * A send completion with no flags and a result >= 0 ends in the walk
 * itself (engine/dgram/send_done.h); a failure goes the general way. In
 * one walk, failed sends (EACCES: broadcast without SO_BROADCAST) among
 * successful ones on a socket without GSO each get their own callback,
 * once, with their own status and error record, and every counter adds
 * up as on the general path. */
Test(dgram_send_fast, walk_mixes_failures_and_successes)
{
    enum { N = 12 };
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dg_socket *rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_NO_GSO, NULL, NULL);
    struct sockaddr_storage to, bcast;
    socklen_t tolen = dgt_sockaddr(AF_INET, dgt_bind(loop, rxs, "127.0.0.1", 0), &to);
    struct sockaddr_storage self;
    socklen_t selflen = dgt_sockaddr(AF_INET, dgt_bind(loop, txs, "127.0.0.1", 0), &self);
    warm_up(loop, txs, &self, selflen);
    memcpy(&bcast, &to, sizeof(bcast));
    ((struct sockaddr_in *)&bcast)->sin_addr.s_addr = inet_addr("127.255.255.255");
    dgt_send_rec rec[N];
    memset(rec, 0, sizeof(rec));
    int ok = 0;
    for (int i = 0; i < N; i++) {
        bool fail = i % 3 == 1;
        ok += !fail;
        cr_assert_eq(dg_socket_send_to(txs, "abcd", 4,
                                       (const struct sockaddr *)(fail ? &bcast : &to), tolen,
                                       dgt_on_send, &rec[i]),
                     0);
    }
    cr_assert_eq(dg_socket_send_queue_count(txs), N);
    for (int i = 0; i < N; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    char want[64];
    snprintf(want, sizeof(want), "send EACCES 127.255.255.255:%d",
             ntohs(((struct sockaddr_in *)&to)->sin_port));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rec[i].calls, 1, "send %d: callback exactly once", i);
        if (i % 3 == 1) {
            dgt_assert_code(rec[i].status, -EACCES);
            cr_assert_str_eq(rec[i].text, want);
        } else {
            cr_assert_eq(rec[i].status, 4, "send %d: %s", i, dg_err_name(rec[i].status));
            cr_assert(rec[i].err_null, "send %d: no error record on success", i);
        }
    }
    dgt_run_until(loop, &rx.messages, ok, DGT_WAIT_MS);
    cr_assert_eq(rx.messages, ok);
    cr_assert_eq(dg_socket_send_queue_count(txs), 0);
    cr_assert_eq(dg_socket_send_queue_size(txs), 0);
    dg_socket_stats st;
    cr_assert_eq(dg_socket_get_stats(txs, &st), 0);
    cr_assert_eq(st.tx_datagrams, (uint64_t)ok + 1);
    cr_assert_eq(st.tx_bytes, (uint64_t)ok * 4 + 1);
    cr_assert_eq(st.tx_errors, (uint64_t)(N - ok));
    dgt_close_socket(loop, rxs);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
}

/* The in-place SQE (send_direct) needs IORING_OP_SEND's address; without
 * it (Linux 6.0, forced with DGRING_NO_SEND_TO) a socket address send on
 * a socket without GSO takes req_to_ring's sendmsg instead. Either way
 * every datagram arrives whole and in order with one callback each. */
Test(dgram_send_fast, without_send_to_the_sendmsg_path_sends)
{
    setenv("DGRING_NO_SEND_TO", "1", 1);
    dg_loop *loop = dgt_loop_new(NULL);
    cr_assert(!dg_loop_capabilities(loop)->send_to);
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_NO_GSO, NULL, NULL);
    struct numbered_rx rx;
    numbered_rx_open(loop, &rx);
    struct sockaddr_storage self;
    socklen_t selflen = dgt_sockaddr(AF_INET, dgt_bind(loop, txs, "127.0.0.1", 0), &self);
    warm_up(loop, txs, &self, selflen);
    enum { N = 40 };
    dgt_send_rec rec[N];
    memset(rec, 0, sizeof(rec));
    unsigned char buf[64];
    for (int i = 0; i < N; i++) {
        dgt_numbered_fill(buf, sizeof(buf), rx.next++);
        cr_assert_eq(dg_socket_send_to(txs, buf, sizeof(buf), (struct sockaddr *)&rx.to,
                                       rx.tolen, dgt_on_send, &rec[i]),
                     0);
    }
    for (int i = 0; i < N; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rx.num.messages, N, DGT_WAIT_MS);
    cr_assert_eq(rx.num.bad, 0, "datagrams out of order or damaged");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rec[i].calls, 1, "send %d: callback exactly once", i);
        cr_assert_eq(rec[i].status, (int)sizeof(buf), "send %d", i);
    }
    dgt_close_socket(loop, rx.sock);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
}

/* Keeping receive buffers past the callback (dg_message_keep,
 * dg_rx_buf_release) and batch delivery (on_message_batch), on real
 * 127.0.0.1 sockets. Datagrams are numbered (4-byte sequence, then a
 * pattern seeded by it) so each test checks exactly-once, in-order
 * delivery and intact payloads. Nothing here depends on timing: senders
 * queue datagrams that fit the receive queue, then the loop runs until a
 * count is reached (the watchdog only turns a hang into a failure). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "support/helpers.h"

#define KMAX 4096

struct rxb {
    dg_socket *sock;
    int messages;     /* datagrams delivered (either handler) */
    int batch_calls;
    int single_calls;
    int max_batch;
    int bad;          /* wrong sequence, size or payload */
    uint32_t next_seq;
    /* keeping */
    bool keep_all;    /* keep every datagram */
    bool keep_even;   /* keep datagrams with an even sequence, up to keep_limit */
    int keep_limit;
    int keep_errors;
    int nkept;
    dg_rx_buf *kept[KMAX];
    const void *kept_data[KMAX];
    size_t kept_len[KMAX];
    uint32_t kept_seq[KMAX];
    /* closing */
    bool close_in_batch;
    int closed;
    /* truncation */
    int nrec;
    size_t lengths[16];
    size_t sizes[16];
    unsigned flags[16];
    int ports[16];
};

static void check_message(struct rxb *r, const dg_message *msg)
{
    uint32_t seq;
    r->messages++;
    if (msg->length < sizeof(seq) || msg->length != msg->size || msg->flags != 0) {
        r->bad++;
        return;
    }
    memcpy(&seq, msg->data, sizeof(seq));
    if (seq != r->next_seq ||
        dgt_check((const char *)msg->data + 4, msg->length - 4, seq) != msg->length - 4)
        r->bad++;
    r->next_seq = seq + 1;
}

static void maybe_keep(struct rxb *r, dg_socket *sock, const dg_message *msg)
{
    uint32_t seq;
    memcpy(&seq, msg->data, sizeof(seq));
    bool want = r->keep_all || (r->keep_even && seq % 2 == 0 && r->nkept < r->keep_limit);
    if (!want || r->nkept >= KMAX)
        return;
    dg_rx_buf *b = NULL;
    int rc = dg_message_keep(sock, msg, &b);
    if (rc != 0 || !b) {
        r->keep_errors++;
        return;
    }
    r->kept[r->nkept] = b;
    r->kept_data[r->nkept] = msg->data;
    r->kept_len[r->nkept] = msg->length;
    r->kept_seq[r->nkept] = seq;
    r->nkept++;
}

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct rxb *r = data;
    r->single_calls++;
    check_message(r, msg);
    maybe_keep(r, sock, msg);
}

static void on_batch(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    struct rxb *r = data;
    r->batch_calls++;
    if ((int)count > r->max_batch)
        r->max_batch = (int)count;
    if (count == 0 || count > DG_MESSAGE_BATCH_MAX)
        r->bad++;
    for (size_t i = 0; i < count; i++) {
        check_message(r, &msgs[i]);
        maybe_keep(r, sock, &msgs[i]);
    }
    if (r->close_in_batch && !r->closed) {
        r->closed = 1;
        dgt_assert_code(dg_socket_close(sock, NULL, NULL), 0);
    }
}

/* Checks every kept payload is still intact, then releases them all. */
static void verify_and_release(struct rxb *r)
{
    for (int i = 0; i < r->nkept; i++) {
        uint32_t seq;
        memcpy(&seq, r->kept_data[i], sizeof(seq));
        cr_assert_eq(seq, r->kept_seq[i], "kept datagram %d changed its sequence", i);
        cr_assert_eq(dgt_check((const char *)r->kept_data[i] + 4, r->kept_len[i] - 4, seq),
                     r->kept_len[i] - 4, "kept datagram %u changed its payload", seq);
        dgt_assert_code(dg_rx_buf_release(r->kept[i]), 0);
    }
    r->nkept = 0;
}

static uint64_t kept_gauge(dg_loop *loop)
{
    dg_loop_stats st;
    dgt_assert_code(dg_loop_get_stats(loop, &st), 0);
    return st.rx_kept_buffers;
}

static dg_socket *rx_socket(dg_loop *loop, unsigned flags, bool batch, bool single,
                            struct rxb *r)
{
    dg_socket_options o = {.type = DG_UDP4, .flags = flags, .recv_buffer_size = 4 << 20};
    dg_socket_handlers h = {0};
    if (batch)
        h.on_message_batch = on_batch;
    if (single)
        h.on_message = on_message;
    dg_socket *s = NULL;
    dgt_assert_code(dg_socket_create(loop, &o, &h, r, &s), 0);
    r->sock = s;
    return s;
}

/* Sends datagrams [from, to) numbered, len bytes each, from a plain socket. */
static void send_numbered(int fd, int port, uint32_t from, uint32_t to, size_t len)
{
    unsigned char buf[2048];
    for (uint32_t seq = from; seq < to; seq++) {
        memcpy(buf, &seq, sizeof(seq));
        dgt_fill(buf + 4, len - 4, seq);
        dgt_plain_send(fd, AF_INET, port, buf, len);
    }
}

TestSuite(recv_batch, .description = "kept receive buffers and batch delivery on loopback");

/* ---- Batch delivery ------------------------------------------------------ */

Test(recv_batch, batch_delivers_in_order_exactly_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct rxb r = {0};
    dg_socket *s = rx_socket(loop, 0, true, false, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    const int n = 500;
    send_numbered(fd, port, 0, (uint32_t)n, 100); /* all queued before the loop runs */
    dgt_run_until(loop, &r.messages, n, DGT_WAIT_MS);
    dgt_settle(loop, 20); /* nothing more may arrive */
    cr_assert_eq(r.messages, n);
    cr_assert_eq(r.bad, 0, "%d datagrams arrived wrong or out of order", r.bad);
    cr_assert_eq(r.single_calls, 0);
    cr_assert_gt(r.max_batch, 1, "datagrams queued together arrive as a batch");
    cr_assert_leq(r.max_batch, DG_MESSAGE_BATCH_MAX);
    cr_assert_lt(r.batch_calls, n);
    dg_socket_stats st;
    dg_socket_get_stats(s, &st);
    cr_assert_eq(st.rx_datagrams, (uint64_t)n);
    cr_assert_eq(st.rx_bytes, (uint64_t)n * 100);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

Test(recv_batch, batch_handler_takes_precedence_over_on_message)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct rxb r = {0};
    dg_socket *s = rx_socket(loop, 0, true, true, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    send_numbered(fd, port, 0, 50, 64);
    dgt_run_until(loop, &r.messages, 50, DGT_WAIT_MS);
    cr_assert_eq(r.single_calls, 0, "on_message is not called when on_message_batch is set");
    cr_assert_geq(r.batch_calls, 1);
    cr_assert_eq(r.bad, 0);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

static void on_batch_record(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    struct rxb *r = data;
    (void)sock;
    r->batch_calls++;
    for (size_t i = 0; i < count && r->nrec < 16; i++) {
        r->lengths[r->nrec] = msgs[i].length;
        r->sizes[r->nrec] = msgs[i].size;
        r->flags[r->nrec] = msgs[i].flags;
        r->ports[r->nrec] = dgt_sockaddr_port(msgs[i].addr);
        if (msgs[i].length > 0 && dgt_check(msgs[i].data, msgs[i].length, 7) != msgs[i].length)
            r->bad++;
        r->nrec++;
        r->messages++;
    }
}

Test(recv_batch, batch_reports_truncation_sizes_and_sender)
{
    dg_loop *loop = dgt_loop_new_sized(0, 100);
    struct rxb r = {0};
    dg_socket_handlers h = {.on_message_batch = on_batch_record};
    dg_socket *s = dgt_socket_new(loop, DG_UDP4, 0, &h, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    static const size_t lens[] = {10, 100, 101, 1000, 0, 99};
    const int n = (int)(sizeof(lens) / sizeof(lens[0]));
    unsigned char buf[1000];
    dgt_fill(buf, sizeof(buf), 7);
    for (int i = 0; i < n; i++)
        dgt_plain_send(fd, AF_INET, port, buf, lens[i]);
    dgt_run_until(loop, &r.messages, n, DGT_WAIT_MS);
    cr_assert_eq(r.messages, n);
    cr_assert_eq(r.bad, 0);
    for (int i = 0; i < n; i++) {
        size_t kept = lens[i] < 100 ? lens[i] : 100;
        cr_assert_eq(r.lengths[i], kept, "datagram %d: length %zu", i, r.lengths[i]);
        cr_assert_eq(r.sizes[i], lens[i], "datagram %d: size %zu", i, r.sizes[i]);
        cr_assert_eq(r.flags[i], lens[i] > 100 ? DG_MSG_TRUNC : 0u, "datagram %d: flags", i);
        cr_assert_eq(r.ports[i], dgt_plain_port(fd));
    }
    dg_socket_stats st;
    dg_socket_get_stats(s, &st);
    cr_assert_eq(st.rx_truncated, 2);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

Test(recv_batch, close_inside_batch_handler)
{
    dg_loop *loop = dgt_loop_new_sized(16, 0);
    /* The first batch is kept, then the socket closed from inside it. */
    struct rxb r = {.close_in_batch = true, .keep_all = true};
    dg_socket *s = rx_socket(loop, 0, true, false, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    send_numbered(fd, port, 0, 200, 64);
    dgt_run_until(loop, &r.batch_calls, 1, DGT_WAIT_MS);
    int first = r.messages;
    dgt_run(loop, DGT_WAIT_MS); /* runs until the close completes */
    cr_assert_eq(r.batch_calls, 1, "nothing is delivered after the close");
    cr_assert_eq(r.messages, first);
    cr_assert_eq(r.nkept, first);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.keep_errors, 0);
    cr_assert_eq(kept_gauge(loop), (uint64_t)first);
    verify_and_release(&r); /* kept data outlives the socket */
    cr_assert_eq(kept_gauge(loop), 0);

    /* Every buffer went back: a new socket on the loop gets all of 100. */
    struct rxb r2 = {0};
    dg_socket *s2 = rx_socket(loop, 0, true, false, &r2);
    port = dgt_bind(loop, s2, "127.0.0.1", 0);
    send_numbered(fd, port, 0, 100, 64);
    dgt_run_until(loop, &r2.messages, 100, DGT_WAIT_MS);
    cr_assert_eq(r2.bad, 0);
    close(fd);
    dgt_close_socket(loop, s2);
    dgt_loop_finish(loop);
}

/* ---- Keeping buffers ----------------------------------------------------- */

Test(recv_batch, keep_in_on_message_across_turns)
{
    dg_loop *loop = dgt_loop_new_sized(16, 0);
    struct rxb r = {.keep_even = true, .keep_limit = 5};
    dg_socket *s = rx_socket(loop, 0, false, true, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    /* 300 datagrams through the 11 buffers left, a chunk per turn group:
     * every buffer that is not kept is reused many times meanwhile. */
    for (uint32_t from = 0; from < 300; from += 10) {
        send_numbered(fd, port, from, from + 10, 1000);
        dgt_run_until(loop, &r.messages, (int)from + 10, DGT_WAIT_MS);
    }
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.keep_errors, 0);
    cr_assert_eq(r.nkept, 5);
    cr_assert_eq(kept_gauge(loop), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(r.kept_seq[i], (uint32_t)(2 * i));
    verify_and_release(&r);
    cr_assert_eq(kept_gauge(loop), 0);
    dgt_assert_code(dg_rx_buf_release(r.kept[0]), DG_ERR_BUFFER_NOT_KEPT, "a second release");
    /* The released buffers are usable again: 100 more through all 16. */
    send_numbered(fd, port, 300, 400, 1000);
    dgt_run_until(loop, &r.messages, 400, DGT_WAIT_MS);
    cr_assert_eq(r.bad, 0);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

/* Two on_message sockets whose datagrams alternate in the completion queue
 * (both armed, then every datagram sent while the loop waits), so one walk
 * changes socket from completion to completion: each callback sees its own
 * socket, may keep its own message and not the other socket's, and every
 * datagram arrives once, in order, intact; kept buffers stay intact while
 * the others go round the ring of 64 many times. */
struct pair {
    struct rxb r;
    dg_socket *other;
    int other_refused;
    int wrong_socket;
    int close_at;     /* > 0: close the socket in the callback of this message */
    bool closing;
    struct pair *peer;
    dg_socket_stats at_close;
};

static void on_pair_closed(dg_socket *sock, void *data)
{
    struct pair *p = data;
    dg_socket_get_stats(sock, &p->at_close);
    p->r.closed = 1;
    if (p->peer)
        p->peer->other = NULL; /* closed: no longer a socket */
}

static int pair_switches;

static void pair_maybe_close(struct pair *p, dg_socket *sock)
{
    if (p->close_at > 0 && p->r.messages >= p->close_at && !p->closing) {
        p->closing = true;
        dgt_assert_code(dg_socket_close(sock, on_pair_closed, p), 0);
    }
} /* callbacks whose socket is not the previous one's */

static void on_message_pair(dg_socket *sock, const dg_message *msg, void *data)
{
    static dg_socket *last;
    struct pair *p = data;
    dg_rx_buf *b = NULL;
    if (last && sock != last)
        pair_switches++;
    last = sock;
    if (sock != p->r.sock)
        p->wrong_socket++;
    if (p->other && dg_message_keep(p->other, msg, &b) == DG_ERR_MESSAGE_NOT_CURRENT && !b)
        p->other_refused++;
    on_message(sock, msg, &p->r);
    pair_maybe_close(p, sock);
}

/* on_message_pair for on_message_batch: each message checked as above. */
static void on_batch_pair(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    struct pair *p = data;
    for (size_t i = 0; i < count; i++) {
        dg_rx_buf *b = NULL;
        if (p->other && dg_message_keep(p->other, &msgs[i], &b) == DG_ERR_MESSAGE_NOT_CURRENT &&
            !b)
            p->other_refused++;
    }
    if (sock != p->r.sock)
        p->wrong_socket++;
    pair_switches++; /* a batch holds one socket's datagrams: the walk changed socket */
    on_batch(sock, msgs, count, &p->r);
    pair_maybe_close(p, sock);
}

static const dg_socket_handlers pair_plain = {.on_message = on_message_pair};
static const dg_socket_handlers pair_batch = {.on_message_batch = on_batch_pair};

enum { PAIR_N = 150 }; /* datagrams per socket: within a default receive queue */

/* Sockets a and b (handlers ha, hb) on a loop of 64 buffers, bound and
 * armed, then PAIR_N numbered datagrams each, alternating, sent from the
 * returned plain socket while the loop waits (size: 64 + seq % spread). */
static int pair_start(dg_loop *loop, struct pair *a, struct pair *b,
                      const dg_socket_handlers *ha, const dg_socket_handlers *hb,
                      uint32_t spread)
{
    a->r.sock = dgt_socket_new(loop, DG_UDP4, 0, ha, a);
    b->r.sock = dgt_socket_new(loop, DG_UDP4, 0, hb, b);
    a->other = b->r.sock;
    b->other = a->r.sock;
    int port_a = dgt_bind(loop, a->r.sock, "127.0.0.1", 0);
    int port_b = dgt_bind(loop, b->r.sock, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    for (uint32_t seq = 0; seq < PAIR_N; seq++) {
        send_numbered(fd, port_a, seq, seq + 1, 64 + seq % spread);
        send_numbered(fd, port_b, seq, seq + 1, 64 + seq % spread);
    }
    return fd;
}

static void alternating(const dg_socket_handlers *ha, const dg_socket_handlers *hb)
{
    dg_loop *loop = dgt_loop_new_sized(64, 0);
    struct pair a = {.r = {.keep_even = true, .keep_limit = 10}};
    struct pair b = {.r = {.keep_even = true, .keep_limit = 10}};
    int fd = pair_start(loop, &a, &b, ha, hb, 200);
    const uint32_t n = PAIR_N;
    dgt_run_until(loop, &a.r.messages, (int)n, DGT_WAIT_MS);
    dgt_run_until(loop, &b.r.messages, (int)n, DGT_WAIT_MS);
    cr_assert_gt(pair_switches, 0);
    struct pair *both[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        struct pair *p = both[i];
        cr_assert_eq(p->r.messages, (int)n);
        cr_assert_eq(p->r.bad, 0, "%d datagrams arrived wrong, twice or out of order", p->r.bad);
        cr_assert_eq(p->wrong_socket, 0);
        cr_assert_eq(p->other_refused, (int)n, "the other socket's keep is refused");
        cr_assert_eq(p->r.keep_errors, 0);
        cr_assert_eq(p->r.nkept, 10);
        dg_socket_stats st;
        dg_socket_get_stats(p->r.sock, &st);
        cr_assert_eq(st.rx_datagrams, (uint64_t)n);
        verify_and_release(&p->r);
    }
    cr_assert_eq(kept_gauge(loop), 0);
    close(fd);
    dgt_close_socket(loop, a.r.sock);
    dgt_close_socket(loop, b.r.sock);
    dgt_loop_finish(loop);
}

Test(recv_batch, alternating_sockets_in_one_walk)
{
    alternating(&pair_plain, &pair_plain);
}

/* Two batch sockets: each completion ends the other's batch. */
Test(recv_batch, alternating_batch_sockets_in_one_walk)
{
    alternating(&pair_batch, &pair_batch);
}

Test(recv_batch, alternating_batch_and_plain_sockets_in_one_walk)
{
    alternating(&pair_batch, &pair_plain);
}

/* The same walk with one socket closed from its fifth callback: the other
 * socket gets every datagram, and the closed one's undelivered datagrams
 * (in the walk's buffers and in its queue) are counted at close. */
static void close_mid_walk(const dg_socket_handlers *ha, const dg_socket_handlers *hb)
{
    dg_loop *loop = dgt_loop_new_sized(64, 0);
    struct pair a = {.close_at = 5}, b = {0};
    a.peer = &b;
    int fd = pair_start(loop, &a, &b, ha, hb, 1);
    const uint32_t n = PAIR_N;
    dgt_run_until(loop, &b.r.messages, (int)n, DGT_WAIT_MS);
    dgt_run_until(loop, &a.r.closed, 1, DGT_WAIT_MS);
    cr_assert_geq(a.r.messages, 5, "a batch is delivered whole");
    cr_assert_eq(a.at_close.rx_datagrams, (uint64_t)a.r.messages);
    cr_assert_eq(a.at_close.rx_discarded_at_close, n - (uint64_t)a.r.messages);
    cr_assert_eq(a.r.bad + b.r.bad, 0);
    cr_assert_eq(a.wrong_socket + b.wrong_socket, 0);
    close(fd);
    dgt_close_socket(loop, b.r.sock);
    dgt_loop_finish(loop);
}

Test(recv_batch, close_mid_walk_of_alternating_sockets)
{
    close_mid_walk(&pair_plain, &pair_plain);
}

Test(recv_batch, close_mid_walk_of_alternating_batch_sockets)
{
    close_mid_walk(&pair_batch, &pair_batch);
}

Test(recv_batch, close_mid_walk_of_a_batch_socket_beside_a_plain_one)
{
    close_mid_walk(&pair_batch, &pair_plain);
}

/* Keeps every buffer of a ring of 8 and releases them only after each
 * turn: the multishot ends with ENOBUFS every few datagrams and must be
 * re-armed by the releases, losing nothing of 10,000. */
static void keep_everything(bool batch)
{
    dg_loop *loop = dgt_loop_new_sized(8, 2048);
    struct rxb r = {.keep_all = true};
    dg_socket *s = rx_socket(loop, 0, batch, !batch, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    /* A chunk fits even a default-sized receive queue (rmem_max 212992,
     * about 768 bytes charged per 64-byte datagram). */
    const int total = 10000, chunk = 200;
    uint64_t max_gauge = 0;
    for (int from = 0; from < total; from += chunk) {
        send_numbered(fd, port, (uint32_t)from, (uint32_t)(from + chunk), 64);
        int guard = 0;
        while (r.messages < from + chunk) {
            dgt_run_once(loop, DGT_WAIT_MS);
            cr_assert_leq(r.nkept, 8, "never more kept than the ring holds");
            uint64_t g = kept_gauge(loop);
            if (g > max_gauge)
                max_gauge = g;
            verify_and_release(&r);
            cr_assert_lt(++guard, 100000, "no progress");
        }
    }
    cr_assert_eq(r.messages, total);
    cr_assert_eq(r.bad, 0, "%d datagrams arrived wrong, twice or out of order", r.bad);
    cr_assert_eq(r.keep_errors, 0);
    cr_assert_eq(max_gauge, 8, "every buffer was kept at some point");
    cr_assert_eq(kept_gauge(loop), 0);
    dg_socket_stats st;
    dg_socket_get_stats(s, &st);
    cr_assert_gt(st.rx_no_buffers, 0, "the ring ran dry");
    cr_assert_eq(st.rx_kernel_drops, 0);
    cr_assert_eq(st.rx_datagrams, (uint64_t)total);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

Test(recv_batch, keep_every_buffer_on_message_10000)
{
    keep_everything(false);
}

Test(recv_batch, keep_every_buffer_batch_10000)
{
    keep_everything(true);
}

/* GRO: one buffer carries several datagrams; each may be kept, the buffer
 * returns after the last release. Sent by a dgring socket, whose runs of
 * equal-size datagrams leave as GSO sends, which loopback hands to a
 * UDP_GRO socket still coalesced. */
static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    int *calls = data;
    cr_assert_geq(status, 0);
    (*calls)++;
}

static void keep_gro(bool batch)
{
    dg_loop *loop = dgt_loop_new_sized(16, 65507);
    struct rxb r = {.keep_all = true};
    dg_socket *s = rx_socket(loop, DG_SOCKET_GRO, batch, !batch, &r);
    dg_socket *tx = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    dgt_bind(loop, tx, "127.0.0.1", 0);
    int sent = 0, distinct_max = 0;
    unsigned char buf[1000];
    for (uint32_t from = 0; from < 300; from += 50) {
        for (uint32_t seq = from; seq < from + 50; seq++) {
            memcpy(buf, &seq, sizeof(seq));
            dgt_fill(buf + 4, sizeof(buf) - 4, seq);
            dgt_assert_code(dg_socket_send(tx, buf, sizeof(buf), port, "127.0.0.1", on_sent,
                                           &sent), 0);
        }
        dgt_run_until(loop, &sent, (int)from + 50, DGT_WAIT_MS);
        dgt_run_until(loop, &r.messages, (int)from + 50, DGT_WAIT_MS);
        /* Segments of one buffer share a handle. */
        int distinct = 0;
        for (int i = 0; i < r.nkept; i++)
            if (i == 0 || r.kept[i] != r.kept[i - 1])
                distinct++;
        cr_assert_eq(kept_gauge(loop), (uint64_t)distinct);
        if (r.nkept - distinct > distinct_max)
            distinct_max = r.nkept - distinct;
        verify_and_release(&r);
        cr_assert_eq(kept_gauge(loop), 0);
    }
    cr_assert_eq(r.messages, 300);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.keep_errors, 0);
    dg_socket_stats st;
    dg_socket_get_stats(s, &st);
    if (st.rx_gro_buffers > 0)
        cr_assert_gt(distinct_max, 0, "a coalesced buffer was kept once per datagram");
    else
        cr_log_warn("no coalesced buffer arrived: GRO sharing not exercised");
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

/* GRO buffers of several datagrams into batches of 64: a batch may end
 * in the middle of a buffer, whose rest starts the next batch; order and
 * exactly-once must hold anyway. */
Test(recv_batch, gro_batches_split_buffers_in_order)
{
    dg_loop *loop = dgt_loop_new_sized(64, 65507);
    struct rxb r = {0};
    dg_socket *s = rx_socket(loop, DG_SOCKET_GRO, true, false, &r);
    dg_socket *tx = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    dgt_bind(loop, tx, "127.0.0.1", 0);
    int sent = 0;
    unsigned char buf[500];
    for (uint32_t from = 0; from < 1000; from += 200) {
        for (uint32_t seq = from; seq < from + 200; seq++) {
            /* runs of 6 equal datagrams: buffers of 6, batches of 64 */
            size_t len = seq % 7 == 3 ? 300 : sizeof(buf);
            memcpy(buf, &seq, sizeof(seq));
            dgt_fill(buf + 4, len - 4, seq);
            dgt_assert_code(dg_socket_send(tx, buf, len, port, "127.0.0.1", on_sent, &sent), 0);
        }
        dgt_run_until(loop, &sent, (int)from + 200, DGT_WAIT_MS);
        dgt_run_until(loop, &r.messages, (int)from + 200, DGT_WAIT_MS);
    }
    cr_assert_eq(r.messages, 1000);
    cr_assert_eq(r.bad, 0);
    cr_assert_leq(r.max_batch, DG_MESSAGE_BATCH_MAX);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

Test(recv_batch, keep_gro_segments_on_message)
{
    keep_gro(false);
}

Test(recv_batch, keep_gro_segments_batch)
{
    keep_gro(true);
}

/* ---- Bad input ----------------------------------------------------------- */

struct bad {
    dg_socket *other;
    dg_message copy;
    const dg_message *seen;
    dg_rx_buf *buf;
    int codes[8];
    int calls;
};

static void on_message_bad(dg_socket *sock, const dg_message *msg, void *data)
{
    struct bad *b = data;
    dg_rx_buf *out = (dg_rx_buf *)1;
    b->calls++;
    if (b->calls > 1)
        return;
    b->copy = *msg;
    b->seen = msg;
    b->codes[0] = dg_message_keep(sock, &b->copy, &out); /* not the message given */
    b->codes[1] = dg_message_keep(b->other, msg, &out);  /* another socket */
    b->codes[2] = dg_message_keep(sock, msg, NULL);
    b->codes[3] = dg_message_keep(sock, msg, &b->buf);
    b->codes[4] = dg_message_keep(sock, msg, &out);      /* twice */
    b->codes[5] = out == NULL;                           /* reset on failure */
    b->codes[6] = dg_message_keep(NULL, msg, &out);
    b->codes[7] = dg_message_keep(sock, NULL, &out);
}

Test(recv_batch, bad_input_codes)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct bad b = {0};
    dg_socket_handlers h = {.on_message = on_message_bad};
    dg_socket *s = dgt_socket_new(loop, DG_UDP4, 0, &h, &b);
    b.other = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    dgt_plain_send(fd, AF_INET, port, "hello", 5);
    dgt_run_until(loop, &b.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(b.codes[0], DG_ERR_MESSAGE_NOT_CURRENT);
    cr_assert_eq(b.codes[1], DG_ERR_MESSAGE_NOT_CURRENT);
    cr_assert_eq(b.codes[2], DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(b.codes[3], 0);
    cr_assert_eq(b.codes[4], DG_ERR_MESSAGE_ALREADY_KEPT);
    cr_assert_eq(b.codes[5], 1);
    cr_assert_eq(b.codes[6], DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(b.codes[7], DG_ERR_INVALID_ARG_VALUE);
    cr_assert_not_null(b.buf);
    cr_assert_eq(memcmp(b.copy.data, "hello", 5), 0, "kept data outlives the callback");

    /* Outside any callback: the same message pointer, and the copy. */
    dg_rx_buf *out = NULL;
    dgt_assert_code(dg_message_keep(s, b.seen, &out), DG_ERR_MESSAGE_NOT_CURRENT);
    dgt_assert_code(dg_message_keep(s, &b.copy, &out), DG_ERR_MESSAGE_NOT_CURRENT);
    cr_assert_null(out);
    dgt_assert_code(dg_rx_buf_release(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_rx_buf_release(b.buf), 0);
    dgt_assert_code(dg_rx_buf_release(b.buf), DG_ERR_BUFFER_NOT_KEPT);
    cr_assert_eq(kept_gauge(loop), 0);
    cr_assert_str_eq(dg_err_name(DG_ERR_MESSAGE_NOT_CURRENT), "ERR_MESSAGE_NOT_CURRENT");
    cr_assert_str_eq(dg_err_name(DG_ERR_MESSAGE_ALREADY_KEPT), "ERR_MESSAGE_ALREADY_KEPT");
    cr_assert_str_eq(dg_err_name(DG_ERR_BUFFER_NOT_KEPT), "ERR_BUFFER_NOT_KEPT");
    close(fd);
    dgt_close_socket(loop, b.other);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

/* ---- Lifetimes ----------------------------------------------------------- */

Test(recv_batch, kept_buffers_outlive_the_socket_and_die_with_the_loop)
{
    dg_loop *loop = dgt_loop_new_sized(16, 0);
    struct rxb r = {.keep_all = true};
    dg_socket *s = rx_socket(loop, 0, false, true, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    send_numbered(fd, port, 0, 3, 200);
    dgt_run_until(loop, &r.messages, 3, DGT_WAIT_MS);
    cr_assert_eq(r.nkept, 3);
    dgt_close_socket(loop, s);
    /* Still valid after the socket closed; releasing one is fine. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dgt_check((const char *)r.kept_data[i] + 4, 196, (unsigned)i), 196);
    dgt_assert_code(dg_rx_buf_release(r.kept[0]), 0);
    cr_assert_eq(kept_gauge(loop), 2);
    close(fd);
    /* Two still kept: the loop closes anyway and frees them (ASan: no leak). */
    dgt_loop_finish(loop);
}

/* ---- Embedding ----------------------------------------------------------- */

#include <poll.h>

/* Polls dg_loop_fd (100 ms at a time, never dg_loop_timeout) and runs
 * NOWAIT turns only when it is readable, until *counter >= target; fails
 * after DGT_WAIT_MS of polls. */
static void pump_fd(dg_loop *loop, int fd, const int *counter, int target)
{
    for (unsigned waited = 0; *counter < target; ) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 100);
        cr_assert_geq(n, 0);
        if (n == 0) {
            waited += 100;
            cr_assert_lt(waited, DGT_WAIT_MS, "dg_loop_fd never became readable (count %d of %d)",
                         *counter, target);
            continue;
        }
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    }
}

/* All 8 buffers kept: the receive stops; a release made between runs
 * makes dg_loop_fd readable, so an embedding loop comes back and re-arms. */
Test(recv_batch, release_between_runs_wakes_an_embedding_loop)
{
    dg_loop *loop = dgt_loop_new_sized(8, 2048);
    struct rxb r = {.keep_all = true};
    dg_socket *s = rx_socket(loop, 0, false, true, &r);
    int port = dgt_bind(loop, s, "127.0.0.1", 0);
    int lfd = dg_loop_fd(loop);
    cr_assert_geq(lfd, 0);
    int fd = dgt_plain_socket(AF_INET, 0);
    send_numbered(fd, port, 0, 40, 64);
    for (int target = 8; target <= 40; target += 8) {
        pump_fd(loop, lfd, &r.messages, target);
        cr_assert_eq(r.messages, target, "no more than the ring's 8 buffers before a release");
        cr_assert_eq(kept_gauge(loop), 8);
        verify_and_release(&r);
    }
    cr_assert_eq(r.bad, 0);
    close(fd);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

/* dgram conformance, send (docs/conformance.md; libuv udp_dgram_too_big,
 * udp_send_fail_nbufs, udp_send_hang_loop, udp_send_unreachable,
 * udp_try_send): unconnected send forms and the default host, port and
 * bounds validation, callbacks (bytes, exactly once, never inside the
 * call, re-entrant), buffer lists copied, zero-length datagrams, EMSGSIZE
 * with Node's message, error routing between the callback and on_error,
 * host names through the lookup option (call order kept), the send queue
 * counters. Every item a test proves is named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_send, .timeout = 90);

/* A bound receiver and a bound sender of one type. */
struct pair {
    dg_loop *loop;
    dgt_events rx;
    dgt_events tx;
    dg_socket *rxs;
    dg_socket *txs;
    int port;
    int family;
};

static void pair_open(struct pair *p, dg_socket_type type, bool bind_sender)
{
    if (type == DG_UDP6)
        dgt_require_ipv6();
    memset(p, 0, sizeof(*p));
    p->family = dgt_family(type);
    p->loop = dgt_loop_new(NULL);
    p->rxs = dgt_events_socket(p->loop, type, 0, &p->rx);
    p->txs = dgt_events_socket(p->loop, type, 0, &p->tx);
    p->port = dgt_bind(p->loop, p->rxs, dgt_loopback(p->family), 0);
    if (bind_sender)
        dgt_bind(p->loop, p->txs, dgt_loopback(p->family), 0);
}

static void pair_close(struct pair *p)
{
    dgt_close_socket(p->loop, p->rxs);
    dgt_close_socket(p->loop, p->txs);
    cr_assert_eq(p->rx.errors, 0, "receiver on_error: %s", p->rx.error_text);
    cr_assert_eq(p->tx.errors, 0, "sender on_error: %s", p->tx.error_text);
    dgt_loop_finish(p->loop);
}

/* Records every datagram's length and first byte. */
struct arrivals {
    size_t lengths[64];
    unsigned char first[64];
    int n;
};

static void log_arrival(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    struct arrivals *a = ev->user;

    (void)sock;
    if (a->n < 64) {
        a->lengths[a->n] = msg->length;
        a->first[a->n] = msg->length ? *(const unsigned char *)msg->data : 0;
    }
    a->n++;
}

/* N22, N25: with address NULL or "" the datagram goes to 127.0.0.1 / ::1;
 * every unconnected form (buffer, slice, list) arrives and the sum of the
 * sizes equals the bytes the callbacks reported. */
static void default_host(dg_socket_type type)
{
    struct pair p;
    dgt_send_rec rec[4];
    struct iovec iov[2] = {{(void *)"ab", 2}, {(void *)"cde", 3}};
    int total = 0;

    pair_open(&p, type, true);
    memset(rec, 0, sizeof(rec));
    cr_assert_eq(dg_socket_send(p.txs, "hello", 5, p.port, NULL, dgt_on_send, &rec[0]), 0);
    cr_assert_eq(dg_socket_send(p.txs, "hello", 5, p.port, "", dgt_on_send, &rec[1]), 0);
    cr_assert_eq(dg_socket_send_slice(p.txs, "0123456789", 10, 2, 6, p.port, NULL, dgt_on_send,
                                      &rec[2]),
                 0);
    cr_assert_eq(dg_socket_sendv(p.txs, iov, 2, p.port, "", dgt_on_send, &rec[3]), 0);
    dgt_run_until(p.loop, &p.rx.messages, 4, DGT_WAIT_MS);
    for (int i = 0; i < 4; i++) {
        dgt_run_until(p.loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_geq(rec[i].status, 0);
        total += rec[i].status;
    }
    cr_assert_eq(total, 5 + 5 + 6 + 5);
    cr_assert_eq(p.rx.bytes, (size_t)total, "sum of sizes %zu, bytes sent %d", p.rx.bytes, total);
    cr_assert_str_eq(p.rx.from.address, dgt_loopback(p.family));
    pair_close(&p);
}

Test(dgram_send, default_host_udp4)
{
    default_host(DG_UDP4); /* N22, N25 */
}

Test(dgram_send, default_host_udp6)
{
    default_host(DG_UDP6); /* N22 */
}

/* N23: unconnected sends to ports -1, 0, 65536 are BAD_PORT at once; no
 * callback, nothing queued; Node's message text. */
Test(dgram_send, bad_ports_are_refused)
{
    struct pair p;
    dgt_send_rec rec = {0};
    const int bad[] = {-1, 0, 65536, INT_MAX, INT_MIN};
    struct iovec iov = {(void *)"x", 1};

    pair_open(&p, DG_UDP4, true);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dgt_assert_code_fmt(dg_socket_send(p.txs, "x", 1, bad[i], "127.0.0.1", dgt_on_send, &rec),
                        DG_ERR_SOCKET_BAD_PORT, "port %d", bad[i]);
        dgt_assert_code(dg_socket_sendv(p.txs, &iov, 1, bad[i], NULL, dgt_on_send, &rec),
                        DG_ERR_SOCKET_BAD_PORT);
        dgt_assert_code(dg_socket_send_slice(p.txs, "xy", 2, 1, 1, bad[i], NULL, dgt_on_send, &rec),
                        DG_ERR_SOCKET_BAD_PORT);
    }
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_BAD_PORT), "Port should be > 0 and < 65536");
    cr_assert_str_eq(dg_err_name(DG_ERR_SOCKET_BAD_PORT), "ERR_SOCKET_BAD_PORT");
    cr_assert_eq(dg_socket_send_queue_count(p.txs), 0);
    pair_close(&p);
    cr_assert_eq(rec.calls, 0);
}

/* N23 on an unbound socket: a refused send does not bind it. */
Test(dgram_send, refused_send_does_not_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_address addr;

    dgt_assert_code(dg_socket_send(sock, "x", 1, 0, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send(sock, "x", 1, 9, "::1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_slice(sock, "x", 1, 2, 0, 9, NULL, NULL, NULL),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    cr_assert(!dg_loop_alive(loop));
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.listening, 0);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N24: offset/length bounds on a 5-byte buffer: (6,0) offset out of
 * bounds, (0,6) and (3,4) length out of bounds; on a 4-byte buffer the
 * in-bounds slices (0,0) (0,4) (1,3) (3,1) (4,0) are sent with the right
 * bytes. */
Test(dgram_send, slice_bounds)
{
    struct pair p;
    struct arrivals arr = {0};
    dgt_send_rec rec = {0};
    const size_t ok[5][2] = {{0, 0}, {0, 4}, {1, 3}, {3, 1}, {4, 0}};
    int sent = 0;

    pair_open(&p, DG_UDP4, true);
    p.rx.message_hook = log_arrival;
    p.rx.user = &arr;
    dgt_assert_code(dg_socket_send_slice(p.txs, "hello", 5, 6, 0, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS, "offset 6");
    dgt_assert_code(dg_socket_send_slice(p.txs, "hello", 5, 0, 6, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS, "length 6");
    dgt_assert_code(dg_socket_send_slice(p.txs, "hello", 5, 3, 4, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS, "3 + 4");
    dgt_assert_code(dg_socket_send_slice(p.txs, "hello", 5, SIZE_MAX, 2, p.port, NULL, dgt_on_send,
                                         &rec),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS, "an offset that would wrap");
    dgt_assert_code(dg_socket_send_slice(p.txs, "hello", 5, 2, SIZE_MAX, p.port, NULL, dgt_on_send,
                                         &rec),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS, "a length that would wrap");
    cr_assert_eq(rec.calls, 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(dg_socket_send_slice(p.txs, "abcd", 4, ok[i][0], ok[i][1], p.port, NULL,
                                          dgt_on_send, &rec),
                     0, "slice (%zu,%zu)", ok[i][0], ok[i][1]);
        sent++;
    }
    dgt_run_until(p.loop, &p.rx.messages, sent, DGT_WAIT_MS);
    dgt_run_until(p.loop, &rec.calls, sent, DGT_WAIT_MS);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(arr.lengths[i], ok[i][1], "slice %d length", i);
        if (ok[i][1])
            cr_assert_eq(arr.first[i], (unsigned char)("abcd"[ok[i][0]]), "slice %d bytes", i);
    }
    cr_assert_eq(p.rx.empty_messages, 2);
    cr_assert_str_eq(dg_err_name(DG_ERR_BUFFER_OUT_OF_BOUNDS), "ERR_BUFFER_OUT_OF_BOUNDS");
    pair_close(&p);
    cr_assert_eq(rec.calls, 5);
}

/* N24, L19: raw buffers: NULL with a length is INVALID_ARG_VALUE; a list
 * with iovcnt < 0 or > 1024 is -EINVAL (libuv's nbufs check), an iovec
 * with a NULL base and a length is INVALID_ARG_VALUE. Nothing is sent. */
Test(dgram_send, buffer_and_list_arguments)
{
    struct pair p;
    dgt_send_rec rec = {0};
    struct iovec good = {(void *)"x", 1};
    struct iovec bad = {NULL, 4};
    struct iovec *many = calloc(1025, sizeof(*many));

    cr_assert_not_null(many);
    for (int i = 0; i < 1025; i++)
        many[i] = good;
    pair_open(&p, DG_UDP4, true);
    dgt_assert_code(dg_socket_send(p.txs, NULL, 1, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_send_slice(p.txs, NULL, 4, 0, 1, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_sendv(p.txs, &good, -1, p.port, NULL, dgt_on_send, &rec), -EINVAL);
    dgt_assert_code(dg_socket_sendv(p.txs, many, 1025, p.port, NULL, dgt_on_send, &rec), -EINVAL);
    dgt_assert_code(dg_socket_sendv(p.txs, &good, INT_MAX, p.port, NULL, dgt_on_send, &rec),
                    -EINVAL);
    dgt_assert_code(dg_socket_sendv(p.txs, &bad, 1, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_sendv(p.txs, NULL, 2, p.port, NULL, dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_socket_sendv(p.txs, many, 1024, p.port, NULL, dgt_on_send, &rec), 0,
                 "1024 buffers are allowed");
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 1024);
    dgt_run_until(p.loop, &p.rx.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(p.rx.length, 1024);
    pair_close(&p);
    cr_assert_eq(rec.calls, 1);
    free(many);
}

/* N25: callback (status = bytes, err NULL): 256; a slice at offset 20 of
 * 256 -> 236; two 256-byte buffers -> 512; "Some bytes" -> 10; a port
 * with no listener still succeeds with the byte count. */
Test(dgram_send, callback_gets_the_byte_count)
{
    struct pair p;
    dgt_send_rec rec[5];
    unsigned char buf[256];
    struct iovec iov[2] = {{buf, 256}, {buf, 256}};
    int gone = dgt_plain_socket(AF_INET, 0);
    int closed_port = dgt_plain_port(gone);
    const int want[] = {256, 236, 512, 10, 4};

    close(gone);
    memset(rec, 0, sizeof(rec));
    dgt_fill(buf, sizeof(buf), 9);
    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_send(p.txs, buf, 256, p.port, NULL, dgt_on_send, &rec[0]), 0);
    cr_assert_eq(dg_socket_send_slice(p.txs, buf, 256, 20, 236, p.port, NULL, dgt_on_send, &rec[1]),
                 0);
    cr_assert_eq(dg_socket_sendv(p.txs, iov, 2, p.port, NULL, dgt_on_send, &rec[2]), 0);
    cr_assert_eq(dg_socket_send(p.txs, "Some bytes", 10, p.port, NULL, dgt_on_send, &rec[3]), 0);
    cr_assert_eq(dg_socket_send(p.txs, "lost", 4, closed_port, NULL, dgt_on_send, &rec[4]), 0);
    for (int i = 0; i < 5; i++) {
        dgt_run_until(p.loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, want[i], "send %d: %d", i, rec[i].status);
        cr_assert(rec[i].err_null);
    }
    dgt_run_until(p.loop, &p.rx.messages, 4, DGT_WAIT_MS);
    pair_close(&p);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rec[i].calls, 1);
}

/* N26: the callback never runs inside dg_socket_send, even when the
 * kernel could finish at once; a send issued from inside its predecessor's
 * callback works, 1000 times in a row (no stack growth: each runs from the
 * loop), and every datagram arrives. */
struct chain {
    int port;
    int left;
    int done;
    int bad;
    int inside; /* set while dg_socket_send runs */
    int ran_inside;
};

static void chain_next(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct chain *c = data;

    (void)err;
    if (c->inside)
        c->ran_inside++;
    if (status != 4)
        c->bad++;
    c->done++;
    if (--c->left > 0) {
        c->inside = 1;
        if (dg_socket_send(sock, "step", 4, c->port, NULL, chain_next, c) != 0)
            c->bad++;
        c->inside = 0;
    }
}

Test(dgram_send, recursive_sends_from_the_callback)
{
    /* N26 */
    struct pair p;
    struct chain c = {.left = 1000};

    pair_open(&p, DG_UDP4, true);
    c.port = p.port;
    c.inside = 1;
    cr_assert_eq(dg_socket_send(p.txs, "step", 4, p.port, NULL, chain_next, &c), 0);
    c.inside = 0;
    cr_assert_eq(c.done, 0, "the callback ran inside dg_socket_send");
    dgt_run_until(p.loop, &c.done, 1000, 30000);
    dgt_run_until(p.loop, &p.rx.messages, 1000, DGT_WAIT_MS);
    cr_assert_eq(c.ran_inside, 0, "a callback ran inside the send that started it");
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(c.done, 1000);
    cr_assert_eq(p.rx.messages, 1000);
    pair_close(&p);
}

/* N27: a list is one datagram equal to the concatenation; the iovec array
 * and the bytes are copied (wiping both right after the call changes
 * nothing); ["foo","bar","baz"] arrives as "foobarbaz" with 9 bytes. */
Test(dgram_send, lists_are_copied_and_concatenated)
{
    struct pair p;
    dgt_send_rec rec = {0};
    char a[] = "foo", b[] = "bar", c[] = "baz";
    struct iovec iov[3] = {{a, 3}, {b, 3}, {c, 3}};

    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_sendv(p.txs, iov, 3, p.port, NULL, dgt_on_send, &rec), 0);
    memset(iov, 0, sizeof(iov));
    memset(a, 'X', 3);
    memset(c, 'Y', 3);
    dgt_run_until(p.loop, &p.rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 9);
    cr_assert_eq(p.rx.length, 9);
    cr_assert_eq(memcmp(p.rx.data, "foobarbaz", 9), 0);
    pair_close(&p);
}

/* N28: zero-length datagrams: an empty buffer, a NULL buffer of length 0,
 * an empty slice of a 1-byte buffer and an empty list each arrive as one
 * datagram of length 0 with the sender's address; callbacks report 0. */
static void zero_length(dg_socket_type type)
{
    struct pair p;
    dgt_send_rec rec[4];
    dg_address txaddr;

    memset(rec, 0, sizeof(rec));
    pair_open(&p, type, true);
    cr_assert_eq(dg_socket_address(p.txs, &txaddr), 0);
    cr_assert_eq(dg_socket_send(p.txs, "", 0, p.port, NULL, dgt_on_send, &rec[0]), 0);
    cr_assert_eq(dg_socket_send(p.txs, NULL, 0, p.port, NULL, dgt_on_send, &rec[1]), 0);
    cr_assert_eq(dg_socket_send_slice(p.txs, "x", 1, 0, 0, p.port, NULL, dgt_on_send, &rec[2]), 0);
    cr_assert_eq(dg_socket_sendv(p.txs, NULL, 0, p.port, NULL, dgt_on_send, &rec[3]), 0);
    dgt_run_until(p.loop, &p.rx.messages, 4, DGT_WAIT_MS);
    for (int i = 0; i < 4; i++) {
        dgt_run_until(p.loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, 0, "send %d: %s", i, dg_err_name(rec[i].status));
        cr_assert(rec[i].err_null);
    }
    cr_assert_eq(p.rx.empty_messages, 4);
    cr_assert_eq(p.rx.size, 0);
    cr_assert_eq(p.rx.from_rc, 0);
    cr_assert_eq(p.rx.from.port, txaddr.port);
    pair_close(&p);
}

Test(dgram_send, zero_length_datagrams_udp4)
{
    zero_length(DG_UDP4); /* N28 */
}

Test(dgram_send, zero_length_datagrams_udp6)
{
    zero_length(DG_UDP6); /* N28 */
}

/* N29, L5: a datagram the kernel refuses (65508 bytes over IPv4, 65528
 * over IPv6) fails through the callback, once, with syscall "send", the
 * destination address and port and Node's message "send EMSGSIZE
 * 127.0.0.1:PORT"; the queue drains. Above 65535 (256 KiB, 65536) no UDP
 * datagram exists and the call itself returns -EMSGSIZE. */
static void too_big(dg_socket_type type, size_t len)
{
    struct pair p;
    dgt_send_rec rec = {0};
    unsigned char *big = calloc(1, 256 * 1024);
    char want[128];

    cr_assert_not_null(big);
    pair_open(&p, type, true);
    cr_assert_eq(dg_socket_send(p.txs, big, len, p.port, NULL, dgt_on_send, &rec), 0);
    cr_assert_eq(rec.calls, 0);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(rec.status, -EMSGSIZE);
    cr_assert(!rec.err_null);
    dgt_assert_code(rec.err.code, -EMSGSIZE);
    cr_assert_str_eq(rec.err.syscall, "send");
    cr_assert_str_eq(rec.err.address, dgt_loopback(p.family));
    cr_assert_eq(rec.err.port, p.port);
    snprintf(want, sizeof(want), "send EMSGSIZE %s:%d", dgt_loopback(p.family), p.port);
    cr_assert_str_eq(rec.text, want);
    cr_assert_eq(dg_socket_send_queue_count(p.txs), 0);
    cr_assert_eq(dg_socket_send_queue_size(p.txs), 0);
    dgt_assert_code(dg_socket_send(p.txs, big, 256 * 1024, p.port, NULL, dgt_on_send, &rec),
                    -EMSGSIZE, "256 KiB");
    dgt_assert_code(dg_socket_send(p.txs, big, 65536, p.port, NULL, dgt_on_send, &rec), -EMSGSIZE,
                    "65536 bytes");
    pair_close(&p);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(p.rx.messages, 0);
    free(big);
}

Test(dgram_send, emsgsize_through_the_callback_udp4)
{
    too_big(DG_UDP4, 65508); /* N29, L5, L6 (64 KiB refused at once) */
}

Test(dgram_send, emsgsize_through_the_callback_udp6)
{
    too_big(DG_UDP6, 65528); /* N29 */
}

/* N29: with no callback the EMSGSIZE record goes to on_error. */
Test(dgram_send, emsgsize_without_callback_goes_to_on_error)
{
    struct pair p;
    unsigned char *big = calloc(1, 65535);
    char want[64];

    cr_assert_not_null(big);
    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_send(p.txs, big, 65535, p.port, "127.0.0.1", NULL, NULL), 0);
    dgt_run_until(p.loop, &p.tx.errors, 1, DGT_WAIT_MS);
    snprintf(want, sizeof(want), "send EMSGSIZE 127.0.0.1:%d", p.port);
    cr_assert_str_eq(p.tx.error_text, want);
    p.tx.errors = 0; /* seen; pair_close checks for others */
    pair_close(&p);
    free(big);
}

/* N30, N20 (send form): a failing lookup with a callback goes to the
 * callback (code, host name as address), never to on_error; without a
 * callback it goes to on_error. Sync, deferred and refusing lookups. */
static void lookup_error_routing(int mode, bool refuse)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "nowhere.test", .refuse = refuse};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_send_rec rec = {0};
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(sock, "x", 1, 9, "nowhere.test", dgt_on_send, &rec), 0);
    cr_assert_eq(rec.calls, 0, "the error was delivered inside dg_socket_send");
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(rec.status, DG_ERR_DNS_NOTFOUND);
    cr_assert(!rec.err_null);
    dgt_assert_code(rec.err.code, DG_ERR_DNS_NOTFOUND);
    cr_assert_str_eq(rec.err.address, "nowhere.test");
    cr_assert_eq(ev.errors, 0, "an error with a callback must not reach on_error");

    cr_assert_eq(dg_socket_send(sock, "x", 1, 9, "nowhere.test", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, DG_ERR_DNS_NOTFOUND);
    cr_assert_str_eq(ev.error.address, "nowhere.test");
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(ev.errors, 1);
    dgt_loop_finish(loop);
}

Test(dgram_send, lookup_error_routing_sync)
{
    lookup_error_routing(DGT_FAKE_LOOKUP_SYNC, false); /* N30 */
}

Test(dgram_send, lookup_error_routing_deferred)
{
    lookup_error_routing(DGT_FAKE_LOOKUP_DEFERRED, false); /* N30 */
}

Test(dgram_send, lookup_error_routing_refused)
{
    lookup_error_routing(DGT_FAKE_LOOKUP_SYNC, true); /* N30 */
}

/* N3, E2: the lookup option resolves send destinations: a name gets the
 * lookup's answer, a literal is passed through the lookup too, and the
 * family asked matches the socket. */
static void send_via_lookup(dg_socket_type type, int mode)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events rx = {0}, tx = {0};
    dgt_fake_lookup lk = {.mode = mode};
    dgt_send_rec a = {0}, b = {0};
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    port = dgt_lookup_pair(loop, type, &lk, &rx, &tx);
    cr_assert_eq(dg_socket_send(tx.sock, "name", 4, port, "peer.test", dgt_on_send, &a), 0);
    cr_assert_eq(
        dg_socket_send(tx.sock, "literal", 7, port, dgt_loopback(family), dgt_on_send, &b), 0);
    dgt_run_until(loop, &rx.messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &b.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(a.status, 4);
    cr_assert_eq(b.status, 7);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "peer.test"), 1);
    cr_assert_eq(dgt_fake_lookup_count(&lk, dgt_loopback(family)), 1, "E2: literals too");
    for (int i = 0; i < lk.calls; i++)
        cr_assert_eq(lk.families[i], family == AF_INET ? 4 : 6);
    dgt_close_socket(loop, tx.sock);
    dgt_close_socket(loop, rx.sock);
    cr_assert_eq(a.calls + b.calls, 2);
    dgt_loop_finish(loop);
}

Test(dgram_send, send_via_lookup_udp4_sync)
{
    send_via_lookup(DG_UDP4, DGT_FAKE_LOOKUP_SYNC); /* N3, E2 */
}

Test(dgram_send, send_via_lookup_udp4_deferred)
{
    send_via_lookup(DG_UDP4, DGT_FAKE_LOOKUP_DEFERRED); /* N3 */
}

Test(dgram_send, send_via_lookup_udp6_deferred)
{
    send_via_lookup(DG_UDP6, DGT_FAKE_LOOKUP_DEFERRED); /* N3 */
}

/* Datagrams leave in call order, also when an earlier one waits for a
 * slow host name and a later one is answered at once (header contract;
 * Node's queue). */
Test(dgram_send, call_order_kept_behind_a_slow_lookup)
{
    /* N16: queued sends flushed in call order */
    dg_loop *loop = dgt_loop_new(NULL);
    struct arrivals arr = {0};
    dgt_events rx = {.message_hook = log_arrival, .user = &arr}, tx = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "slow.test"};
    dgt_send_rec rec[3];
    int port = dgt_lookup_pair(loop, DG_UDP4, &lk, &rx, &tx);

    memset(rec, 0, sizeof(rec));
    dgt_bind(loop, tx.sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(tx.sock, "1", 1, port, "slow.test", dgt_on_send, &rec[0]), 0);
    cr_assert_eq(dg_socket_send(tx.sock, "2", 1, port, "fast.test", dgt_on_send, &rec[1]), 0);
    cr_assert_eq(dg_socket_send(tx.sock, "3", 1, port, "127.0.0.1", dgt_on_send, &rec[2]), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(rx.messages, 0, "a later datagram overtook the one waiting for its lookup");
    cr_assert_eq(rec[1].calls + rec[2].calls, 0);
    cr_assert_eq(dgt_fake_lookup_release(&lk), 1);
    dgt_run_until(loop, &rx.messages, 3, DGT_WAIT_MS);
    for (int i = 0; i < 3; i++) {
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, 1);
        cr_assert_eq(arr.first[i], (unsigned char)('1' + i), "datagram %d out of order", i);
    }
    dgt_close_socket(loop, tx.sock);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

/* Host names without DNS: "localhost" as a send destination. */
Test(dgram_send, localhost_destination)
{
    /* N3, N22: a host name through the default resolver */
    struct pair p;
    dgt_send_rec rec = {0};

    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_send(p.txs, "hi", 2, p.port, "localhost", dgt_on_send, &rec), 0);
    dgt_run_until(p.loop, &p.rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 2);
    pair_close(&p);
}

/* N31: counters on an unconnected socket: 0/0, then bytes/datagrams
 * handed over and not completed, then 0/0 again. */
Test(dgram_send, send_queue_counters)
{
    struct pair p;
    dgt_send_rec rec[3];

    memset(rec, 0, sizeof(rec));
    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_send_queue_size(p.txs), 0);
    cr_assert_eq(dg_socket_send_queue_count(p.txs), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dg_socket_send(p.txs, "12345", 5, p.port, NULL, dgt_on_send, &rec[i]), 0);
    cr_assert_eq(dg_socket_send_queue_size(p.txs), 15);
    cr_assert_eq(dg_socket_send_queue_count(p.txs), 3);
    for (int i = 0; i < 3; i++)
        dgt_run_until(p.loop, &rec[i].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send_queue_size(p.txs), 0);
    cr_assert_eq(dg_socket_send_queue_count(p.txs), 0);
    dgt_run_until(p.loop, &p.rx.messages, 3, DGT_WAIT_MS);
    pair_close(&p);
}

/* N32: send_to (the sendto form) needs an explicit destination: a NULL
 * address is refused, port 0 is BAD_PORT, a short length or the other
 * family is INVALID_ADDRESS. */
Test(dgram_send, send_to_needs_a_destination)
{
    struct pair p;
    dgt_send_rec rec = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    pair_open(&p, DG_UDP4, true);
    len = dgt_sockaddr(AF_INET, p.port, &ss);
    rc = dg_socket_send_to(p.txs, "x", 1, NULL, len, dgt_on_send, &rec);
    cr_assert(rc == DG_ERR_INVALID_ARG_VALUE || rc == DG_ERR_INVALID_ADDRESS, "%s",
              dg_err_name(rc));
    rc = dg_socket_send_to(p.txs, "x", 1, (struct sockaddr *)&ss, len - 1, dgt_on_send, &rec);
    cr_assert(rc == DG_ERR_INVALID_ARG_VALUE || rc == DG_ERR_INVALID_ADDRESS, "%s",
              dg_err_name(rc));
    len = dgt_sockaddr(AF_INET, 0, &ss);
    dgt_assert_code(
        dg_socket_send_to(p.txs, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
        DG_ERR_SOCKET_BAD_PORT);
    len = dgt_sockaddr(AF_INET6, p.port, &ss);
    dgt_assert_code(
        dg_socket_send_to(p.txs, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
        DG_ERR_INVALID_ADDRESS);
    len = dgt_sockaddr(AF_INET, p.port, &ss);
    cr_assert_eq(dg_socket_send_to(p.txs, "ok", 2, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
                 0);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 2);
    dgt_run_until(p.loop, &p.rx.messages, 1, DGT_WAIT_MS);
    pair_close(&p);
    cr_assert_eq(rec.calls, 1);
}

/* The payload is copied before the call returns: scribbling on the
 * caller's buffer afterwards changes nothing (header contract, N27). */
Test(dgram_send, payload_is_copied)
{
    struct pair p;
    dgt_send_rec rec = {0};
    unsigned char buf[1500];

    pair_open(&p, DG_UDP4, true);
    dgt_fill(buf, sizeof(buf), 4);
    cr_assert_eq(dg_socket_send(p.txs, buf, sizeof(buf), p.port, NULL, dgt_on_send, &rec), 0);
    memset(buf, 0, sizeof(buf));
    dgt_run_until(p.loop, &p.rx.messages, 1, DGT_WAIT_MS);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dgt_check(p.rx.data, sizeof(buf), 4), sizeof(buf));
    pair_close(&p);
}

/* L20: 1000 sequential sends (each from the previous one's callback) to a
 * closed loopback port all complete with their byte count; the loop never
 * stalls. L22: an unconnected sender sees no ICMP error, neither in a
 * callback nor on on_error. */
struct hang {
    int port;
    int left;
    int done;
    int bad;
};

static void hang_next(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct hang *h = data;

    (void)err;
    if (status != 4)
        h->bad++;
    h->done++;
    if (--h->left > 0 && dg_socket_send(sock, "PING", 4, h->port, NULL, hang_next, h) != 0)
        h->bad++;
}

Test(dgram_send, thousand_sequential_sends_to_a_closed_port)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int gone = dgt_plain_socket(AF_INET, 0);
    struct hang h = {.port = dgt_plain_port(gone), .left = 1000};

    close(gone);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(sock, "PING", 4, h.port, NULL, hang_next, &h), 0);
    dgt_run_until(loop, &h.done, 1000, 30000);
    dgt_settle(loop, 20);
    cr_assert_eq(h.bad, 0, "%d sends failed", h.bad);
    cr_assert_eq(h.done, 1000);
    cr_assert_eq(ev.errors, 0, "an unconnected socket saw an ICMP error: %s", ev.error_text);
    cr_assert_eq(ev.messages, 0);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N26 (exactly once, in call order): 200 sends queued in one turn each
 * get one callback, in the order they were issued. */
struct order {
    int next;
    int bad;
};

static struct order order_seen;

static void in_order(dg_socket *sock, int status, const dg_error *err, void *data)
{
    const int *slot = data;

    (void)sock;
    (void)err;
    if (status != 1 || *slot != order_seen.next)
        order_seen.bad++;
    order_seen.next++;
}

Test(dgram_send, callbacks_run_once_in_call_order)
{
    struct pair p;
    int slots[200];

    memset(&order_seen, 0, sizeof(order_seen));
    pair_open(&p, DG_UDP4, true);
    for (int i = 0; i < 200; i++) {
        slots[i] = i;
        cr_assert_eq(dg_socket_send(p.txs, "z", 1, p.port, NULL, in_order, &slots[i]), 0);
    }
    dgt_run_until(p.loop, &order_seen.next, 200, DGT_WAIT_MS);
    dgt_settle(p.loop, 10);
    cr_assert_eq(order_seen.next, 200);
    cr_assert_eq(order_seen.bad, 0, "%d callbacks out of order or failed", order_seen.bad);
    dgt_run_until(p.loop, &p.rx.messages, 200, DGT_WAIT_MS);
    pair_close(&p);
}

/* N25 with large datagrams: equal-size datagrams that are each legal but
 * together exceed 65535 bytes, sent in one turn to one destination, each
 * complete with their own size and all arrive whole (whatever batching
 * the library does under the hood, e.g. UDP GSO, must not change what a
 * single send would do). */
static void large_equal_run(size_t size, int count)
{
    struct pair p;
    dgt_send_rec rec[8];
    unsigned char *buf = malloc(size);
    dg_socket_stats st;

    cr_assert_not_null(buf);
    cr_assert_leq(count, 8);
    dgt_fill(buf, size, 3);
    memset(rec, 0, sizeof(rec));
    pair_open(&p, DG_UDP4, true);
    cr_assert_eq(dg_socket_set_recv_buffer_size(p.rxs, 1 << 20, NULL), 0);
    for (int i = 0; i < count; i++)
        cr_assert_eq(dg_socket_send(p.txs, buf, size, p.port, NULL, dgt_on_send, &rec[i]), 0);
    for (int i = 0; i < count; i++) {
        dgt_run_until(p.loop, &rec[i].calls, 1, DGT_WAIT_MS);
        cr_assert_eq(rec[i].status, (int)size, "datagram %d of %zu bytes: %s (%s)", i, size,
                     dg_err_name(rec[i].status), rec[i].text);
    }
    cr_assert_eq(dg_socket_get_stats(p.rxs, &st), 0);
    dgt_run_until(p.loop, &p.rx.messages, count, DGT_WAIT_MS);
    cr_assert_eq(p.rx.bytes, size * (size_t)count);
    cr_assert_eq(p.rx.size, size);
    pair_close(&p);
    free(buf);
}

Test(dgram_send, two_40000_byte_datagrams_in_one_turn)
{
    large_equal_run(40000, 2); /* N25 */
}

Test(dgram_send, four_30000_byte_datagrams_in_one_turn)
{
    large_equal_run(30000, 4); /* N25 */
}

Test(dgram_send, eight_65507_byte_datagrams_in_one_turn)
{
    large_equal_run(65507, 8); /* N25 */
}

/* N22, N3: with the lookup option, an omitted address is looked up as the
 * default "127.0.0.1" (udp4) / "::1" (udp6), as Node's lookup4/lookup6
 * wrappers do. */
static void default_host_via_lookup(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events rx = {0}, tx = {0};
    dgt_fake_lookup lk = {0};
    dgt_send_rec rec = {0};
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    port = dgt_lookup_pair(loop, type, &lk, &rx, &tx);
    dgt_bind(loop, tx.sock, dgt_loopback(family), 0);
    cr_assert_eq(dg_socket_send(tx.sock, "d", 1, port, NULL, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 1);
    cr_assert_eq(dgt_fake_lookup_count(&lk, dgt_loopback(family)), 2,
                 "the bind's literal and the send's default were looked up");
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    dgt_close_socket(loop, tx.sock);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

Test(dgram_send, default_host_goes_through_lookup_udp4)
{
    default_host_via_lookup(DG_UDP4); /* N22, N3 */
}

Test(dgram_send, default_host_goes_through_lookup_udp6)
{
    default_host_via_lookup(DG_UDP6); /* N22, N3 */
}

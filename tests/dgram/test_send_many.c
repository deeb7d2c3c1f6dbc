/* Send-to-many (dg_socket_send_many): one payload to many destinations,
 * one callback for the whole fan-out, from the loop. Every destination gets
 * the datagram exactly once (plain receivers with large queues count
 * them); a fan-out far larger than max_pending_sends goes out; the loop's
 * max_fanout_destinations bounds what is in flight; per-destination
 * failures are counted, not reported one by one; closing the socket ends
 * the fan-out once; count 0; an unbound socket is bound first; bad input.
 * On io_uring the destinations are IORING_OP_SEND SQEs with an address (or
 * sendmsg without one), on the epoll backend sendmmsg batches: both run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "support/helpers.h"

TestSuite(send_many, .timeout = 30);

#define RECEIVERS 10
#define RCVBUF (4 << 20) /* holds every datagram sent here: nothing dropped */

struct result_rec {
    int calls;
    dg_send_many_result last;
    int listening_at_call;
};

static void on_many(dg_socket *sock, const dg_send_many_result *result, void *data)
{
    struct result_rec *r = data;
    cr_expect_not_null(sock);
    r->calls++;
    r->last = *result;
}

static dg_addr_key loopback_key(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(family, port, &ss);
    dg_addr_key key;
    cr_assert_eq(dg_addr_key_from_sockaddr((struct sockaddr *)&ss, len, &key), 0);
    return key;
}

/* Plain receivers and a destination list naming each of them repeat
 * times, interleaved. */
struct fleet {
    int fds[RECEIVERS];
    dg_addr_key *dests;
    size_t count;
};

static void fleet_open(struct fleet *f, int family, int repeat)
{
    f->count = (size_t)RECEIVERS * (size_t)repeat;
    f->dests = calloc(f->count, sizeof(*f->dests));
    cr_assert_not_null(f->dests);
    for (int i = 0; i < RECEIVERS; i++)
        f->fds[i] = dgt_plain_socket(family, RCVBUF);
    for (size_t i = 0; i < f->count; i++)
        f->dests[i] = loopback_key(family, dgt_plain_port(f->fds[i % RECEIVERS]));
}

/* Each receiver holds exactly want datagrams, each the payload. */
static void fleet_check(struct fleet *f, const char *payload, size_t len, int want)
{
    char buf[256];
    for (int i = 0; i < RECEIVERS; i++) {
        int got = 0;
        ssize_t n;
        while ((n = dgt_plain_recv_nowait(f->fds[i], buf, sizeof(buf))) >= 0) {
            cr_assert_eq((size_t)n, len);
            cr_assert_eq(memcmp(buf, payload, len), 0);
            got++;
        }
        cr_assert_eq(got, want, "receiver %d got %d datagrams, want %d", i, got, want);
    }
}

static void fleet_close(struct fleet *f)
{
    for (int i = 0; i < RECEIVERS; i++)
        close(f->fds[i]);
    free(f->dests);
}

static dg_loop *loop_with(unsigned max_pending, unsigned max_fanout)
{
    dg_loop_options o;
    dg_loop_options_init(&o);
    o.max_pending_sends = max_pending;
    o.max_fanout_destinations = max_fanout;
    return dgt_loop_new(&o);
}

static void fan_out(int family, dg_socket_type type)
{
    static const char payload[] = "tick 42: the same state for everyone";
    dg_loop *loop = loop_with(16, 0);
    struct fleet f;
    struct result_rec r = {0};
    dg_socket_stats st;

    fleet_open(&f, family, 100); /* 1000 destinations, 16 sends allowed */
    dg_socket *sock = dgt_socket_new(loop, type, 0, NULL, NULL);
    dgt_bind(loop, sock, dgt_loopback(family), 0);
    cr_assert_eq(dg_socket_send_many(sock, payload, sizeof(payload), f.dests, f.count, on_many,
                                     &r),
                 0);
    cr_assert_eq(r.calls, 0, "the callback ran inside the call");
    cr_assert_eq(dg_socket_send_queue_count(sock), f.count);
    cr_assert_eq(dg_socket_send_queue_size(sock), f.count * sizeof(payload));
    memset(f.dests, 0, f.count * sizeof(*f.dests)); /* copied: the caller's to reuse */
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r.last.sent, f.count);
    cr_assert_eq(r.last.failed, 0);
    cr_assert_eq(r.last.first_error, 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(sock), 0);
    cr_assert_eq(dg_socket_get_stats(sock, &st), 0);
    cr_assert_eq(st.tx_datagrams, f.count);
    cr_assert_eq(st.tx_bytes, f.count * sizeof(payload));
    fleet_check(&f, payload, sizeof(payload), 100);
    dgt_close_socket(loop, sock);
    cr_assert_eq(r.calls, 1);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

Test(send_many, every_destination_gets_the_datagram_once_ipv4)
{
    fan_out(AF_INET, DG_UDP4);
}

Test(send_many, every_destination_gets_the_datagram_once_ipv6)
{
    dgt_require_ipv6();
    fan_out(AF_INET6, DG_UDP6);
}

/* The budget: a fan-out of the whole budget, then one more destination
 * waits for its callback; one larger than the budget can never go. */
Test(send_many, destinations_in_flight_are_bounded)
{
    dg_loop *loop = loop_with(0, 100);
    struct fleet f;
    struct result_rec r = {0};

    fleet_open(&f, AF_INET, 10);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, f.dests, 100, on_many, &r), 0);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, f.dests, 1, on_many, &r),
                    DG_ERR_SEND_QUEUE_FULL);
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r.last.sent, 100);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, f.dests, 100, on_many, &r), 0,
                    "the budget is back after the callback");
    dgt_run_until(loop, &r.calls, 2, DGT_WAIT_MS);
    dg_addr_key *big = calloc(101, sizeof(*big));
    for (int i = 0; i < 101; i++)
        big[i] = f.dests[0];
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, big, 101, on_many, &r),
                    DG_ERR_OUT_OF_RANGE);
    free(big);
    fleet_check(&f, "x", 1, 20);
    dgt_close_socket(loop, sock);
    cr_assert_eq(r.calls, 2);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

/* 255.255.255.255 without SO_BROADCAST: the kernel refuses (EACCES) before
 * anything leaves. Half the destinations fail, half get the datagram. */
Test(send_many, failures_are_counted_per_destination)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct fleet f;
    struct result_rec r = {0};
    static dgt_events ev;

    fleet_open(&f, AF_INET, 1);
    dg_addr_key dests[2 * RECEIVERS];
    for (int i = 0; i < RECEIVERS; i++) {
        dests[2 * i] = f.dests[i];
        dests[2 * i + 1] = f.dests[i];
        memset(dests[2 * i + 1].addr, 0xff, 4);
    }
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dgt_bind(loop, sock, "0.0.0.0", 0);
    cr_assert_eq(dg_socket_send_many(sock, "hi", 2, dests, 2 * RECEIVERS, on_many, &r), 0);
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r.last.sent, RECEIVERS);
    cr_assert_eq(r.last.failed, RECEIVERS);
    dgt_assert_code(r.last.first_error, -EACCES);
    cr_assert_eq(ev.errors, 0, "per-destination failures do not go to on_error");
    fleet_check(&f, "hi", 2, 1);
    dgt_close_socket(loop, sock);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

/* Datagrams the kernel refuses whatever the destination (65508 bytes over
 * IPv4): every destination fails with -EMSGSIZE, one callback. */
Test(send_many, a_datagram_too_large_for_ipv4_fails_everywhere)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct fleet f;
    struct result_rec r = {0};
    static char big[65508];

    fleet_open(&f, AF_INET, 1);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send_many(sock, big, sizeof(big), f.dests, f.count, on_many, &r), 0);
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r.last.sent, 0);
    cr_assert_eq(r.last.failed, f.count);
    dgt_assert_code(r.last.first_error, -EMSGSIZE);
    dgt_close_socket(loop, sock);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

Test(send_many, zero_destinations_still_call_back_from_the_loop)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct result_rec r = {0};

    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send_many(sock, "x", 1, NULL, 0, on_many, &r), 0);
    cr_assert_eq(r.calls, 0);
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r.last.sent + r.last.failed, 0);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* Node's implicit bind: 'listening' first, then the datagrams. */
Test(send_many, an_unbound_socket_is_bound_first)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct fleet f;
    struct result_rec r = {0};
    static dgt_events ev;

    fleet_open(&f, AF_INET, 2);
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    cr_assert_eq(dg_socket_send_many(sock, "up", 2, f.dests, f.count, on_many, &r), 0);
    dgt_run_until(loop, &r.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(r.last.sent, f.count);
    fleet_check(&f, "up", 2, 2);
    dgt_close_socket(loop, sock);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

/* Closed with the fan-out in flight: its callback runs once, before the
 * close completes, and accounts for every destination. */
static int closes;

static void on_closed(dg_socket *sock, void *data)
{
    (void)sock;
    struct result_rec *r = data;
    cr_expect_eq(r->calls, 1, "the fan-out ended before the close callback");
    closes++;
}

Test(send_many, closing_ends_the_fan_out_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct fleet f;
    struct result_rec r = {0};

    fleet_open(&f, AF_INET, 50);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send_many(sock, "bye", 3, f.dests, f.count, on_many, &r), 0);
    cr_assert_eq(dg_socket_close(sock, on_closed, &r), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(closes, 1);
    cr_assert_eq(r.last.sent + r.last.failed, f.count);
    if (r.last.failed > 0)
        dgt_assert_code(r.last.first_error, -ECANCELED);
    fleet_close(&f);
    dgt_loop_finish(loop);
}

Test(send_many, bad_input)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct result_rec r = {0};
    dg_addr_key good = loopback_key(AF_INET, 9), six = loopback_key(AF_INET6, 9);
    dg_addr_key zero_port = loopback_key(AF_INET, 9), odd = good;
    static char big[65536];
    const int V = DG_ERR_INVALID_ARG_VALUE;

    zero_port.port = 0;
    odd.reserved = 7;
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_assert_code(dg_socket_send_many(NULL, "x", 1, &good, 1, on_many, &r), V);
    dgt_assert_code(dg_socket_send_many(sock, NULL, 1, &good, 1, on_many, &r), V);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, NULL, 1, on_many, &r), V);
    dgt_assert_code(dg_socket_send_many(sock, big, sizeof(big), &good, 1, on_many, &r),
                    -EMSGSIZE);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, &six, 1, on_many, &r),
                    DG_ERR_INVALID_ADDRESS, "an IPv6 destination on udp4");
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, &odd, 1, on_many, &r),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, &zero_port, 1, on_many, &r),
                    DG_ERR_SOCKET_BAD_PORT);
    /* The keys dg_addr_key_from_sockaddr never makes, each last in a list
     * of good ones: the whole call is refused before anything leaves. */
    dg_addr_key list[3] = {good, good, good};
    list[2].scope_id = 1; /* a scope on an IPv4 key */
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, list, 3, on_many, &r),
                    DG_ERR_INVALID_ADDRESS);
    list[2] = good;
    list[2].addr[15] = 1; /* bytes after an IPv4 address */
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, list, 3, on_many, &r),
                    DG_ERR_INVALID_ADDRESS);
    list[2] = good;
    list[2].family = AF_UNIX;
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, list, 3, on_many, &r),
                    DG_ERR_INVALID_ADDRESS);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0, "a refused call changes nothing");

    dg_socket *connected = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    struct dgt_status_rec cs = {0};
    cr_assert_eq(dg_socket_connect(connected, 9, "127.0.0.1", dgt_on_status, &cs), 0);
    dgt_run_until(loop, &cs.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(dg_socket_send_many(connected, "x", 1, &good, 1, on_many, &r),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED);
    dgt_close_socket(loop, connected);

    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    dgt_assert_code(dg_socket_send_many(sock, "x", 1, &good, 1, on_many, &r),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(r.calls, 0, "no refused call called back");
    dgt_loop_finish(loop);
}

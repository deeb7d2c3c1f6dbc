/* Faults dgring must survive (issue 6), each on real loopback sockets:
 *
 *  - the provided buffers run out while numbered datagrams keep arriving
 *    (10,000 in bursts, more arriving from inside the message callback):
 *    every datagram that reached the socket arrives once, in order;
 *  - the kernel drops datagrams because the socket's receive queue is full:
 *    rx_kernel_drops (SO_RXQ_OVFL) is exactly sent - received;
 *  - an ICMP port-unreachable ends the receive of a connected socket: the
 *    error reaches on_error ("recvmsg ECONNREFUSED", as Node's 'error'),
 *    the receive is armed again, later datagrams from the peer arrive;
 *  - send back-pressure: a receiver that does not drain, a small send
 *    buffer, and the loop's send-queue bound: every accepted send gets
 *    exactly one callback, a refused send DG_ERR_SEND_QUEUE_FULL and none,
 *    nothing accepted is lost;
 *  - closing everything (receives, sends, lookups, timers in flight) from
 *    inside every kind of callback: no callback after close, exact counts;
 *  - dg_loop_close with live handles is DG_ERR_LOOP_BUSY and changes
 *    nothing;
 *  - completion-queue overflow (see the comment above cq_overflow_*).
 *
 * Only public behaviour is asserted, so the suite holds for every backend;
 * the few io_uring-only facts are checked when dg_loop_backend() says
 * "io_uring". Nothing here waits for a timing: the loops run until a count
 * is reached, and the watchdog only turns a hang into a failure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(faults, .timeout = 120);

static bool is_uring(const dg_loop *loop)
{
    return strcmp(dg_loop_backend(loop), "io_uring") == 0;
}

/* A numbered datagram: 4-byte sequence number, then a pattern from it. */
static void numbered(unsigned char *buf, size_t len, uint32_t seq)
{
    memcpy(buf, &seq, sizeof(seq));
    dgt_fill(buf + sizeof(seq), len - sizeof(seq), seq);
}

/* Receiver bookkeeping for numbered datagrams. */
struct seq_rx {
    dg_socket *sock;
    size_t payload;
    int received;
    uint32_t next;          /* sequence number expected next */
    int gaps;               /* a number skipped (allowed only for kernel drops) */
    int backwards;          /* a repeat or a step back: never allowed */
    int bad;                /* wrong length or damaged payload */
    /* datagrams that keep arriving: the callback sends more */
    int plain;
    int port;
    int *sent;
    int total;
};

static void seq_check(struct seq_rx *r, const dg_message *msg, uint32_t *seq_out)
{
    uint32_t seq;

    r->received++;
    if (msg->length != r->payload || msg->size != r->payload || msg->flags != 0) {
        r->bad++;
        return;
    }
    memcpy(&seq, msg->data, sizeof(seq));
    if (dgt_check((const unsigned char *)msg->data + 4, r->payload - 4, seq) != r->payload - 4)
        r->bad++;
    if (seq < r->next)
        r->backwards++;
    else if (seq > r->next)
        r->gaps++;
    r->next = seq + 1;
    if (seq_out)
        *seq_out = seq;
}

/* ---- Provided buffers exhausted -------------------------------------- */

enum { DRY_TOTAL = 10000, DRY_BURST = 64, DRY_EXTRA = 16, DRY_PAYLOAD = 32 };

static void plain_send_seq(int fd, int port, uint32_t seq, size_t len)
{
    unsigned char buf[2048];

    numbered(buf, len, seq);
    dgt_plain_send(fd, AF_INET, port, buf, len);
}

/* Every 97th datagram, the callback itself makes more arrive: they land
 * while dgring is busy delivering the buffers of the current batch. */
static void dry_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct seq_rx *r = data;
    uint32_t seq = 0;

    (void)sock;
    seq_check(r, msg, &seq);
    if (seq % 97 == 0) {
        for (int k = 0; k < DRY_EXTRA && *r->sent < r->total; k++)
            plain_send_seq(r->plain, r->port, (uint32_t)(*r->sent)++, r->payload);
    }
}

Test(faults, buffers_exhausted_10000_datagrams_in_bursts)
{
    dg_loop *loop = dgt_loop_new_sized(8, 256);
    dg_socket_handlers h = {.on_message = dry_message};
    dg_socket_options o;
    struct seq_rx r;
    dg_socket_stats st;
    int sent = 0;

    memset(&r, 0, sizeof(r));
    memset(&o, 0, sizeof(o));
    o.type = DG_UDP4;
    o.recv_buffer_size = 1 << 20; /* the kernel keeps every burst queued */
    cr_assert_eq(dg_socket_create(loop, &o, &h, &r, &r.sock), 0);
    r.payload = DRY_PAYLOAD;
    r.plain = dgt_plain_socket(AF_INET, 0);
    r.port = dgt_bind(loop, r.sock, "127.0.0.1", 0);
    r.sent = &sent;
    r.total = DRY_TOTAL;
    while (sent < DRY_TOTAL) {
        /* A burst while the loop does not run: eight times the ring. */
        for (int k = 0; k < DRY_BURST && sent < DRY_TOTAL; k++)
            plain_send_seq(r.plain, r.port, (uint32_t)sent++, DRY_PAYLOAD);
        /* sent grows from inside the callback too; run until it is all in */
        while (r.received < sent)
            dgt_run_until(loop, &r.received, sent, 20000);
    }
    cr_assert_eq(dg_socket_get_stats(r.sock, &st), 0);
    cr_log_info("ring ran dry %llu times, receive re-armed %llu times, kernel drops %llu",
                (unsigned long long)st.rx_no_buffers, (unsigned long long)st.rx_rearms,
                (unsigned long long)st.rx_kernel_drops);
    cr_assert_eq(st.rx_kernel_drops, 0, "the kernel dropped: SO_RCVBUF too small for a burst");
    cr_assert_eq(r.received, DRY_TOTAL);
    cr_assert_eq(r.bad, 0, "%d damaged datagrams", r.bad);
    cr_assert_eq(r.gaps + r.backwards, 0, "out of order: %d gaps, %d backwards", r.gaps,
                 r.backwards);
    cr_assert_eq(r.next, (uint32_t)DRY_TOTAL);
    cr_assert_eq(st.rx_datagrams, (uint64_t)DRY_TOTAL);
    cr_assert_eq(st.rx_bytes, (uint64_t)DRY_TOTAL * DRY_PAYLOAD);
    if (is_uring(loop))
        cr_assert(st.rx_no_buffers > 0 && st.rx_rearms > 0,
                  "bursts of %d into 8 buffers: rx_no_buffers %llu, rx_rearms %llu", DRY_BURST,
                  (unsigned long long)st.rx_no_buffers, (unsigned long long)st.rx_rearms);
    dgt_settle(loop, 5);
    cr_assert_eq(r.received, DRY_TOTAL, "datagrams delivered twice");
    dgt_close_socket(loop, r.sock);
    close(r.plain);
    dgt_loop_finish(loop);
}

/* ---- Kernel drops ------------------------------------------------------ */

enum { DROP_SENT = 1000, DROP_PAYLOAD = 512 };

static void seq_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    seq_check(data, msg, NULL);
}

/* Runs the loop until the socket's kernel queue is empty (everything that
 * reached the socket went to dgring). */
static void drain_kernel_queue(dg_loop *loop, int fd)
{
    for (int i = 0; i < 100000; i++) {
        int queued = 0;

        cr_assert_eq(ioctl(fd, FIONREAD, &queued), 0);
        if (queued == 0)
            return;
        dgt_run_once(loop, DGT_WAIT_MS);
    }
    cr_assert_fail("the socket's queue never emptied");
}

Test(faults, kernel_drops_are_sent_minus_received)
{
    dg_loop *loop = dgt_loop_new_sized(8, 1024);
    dg_socket_handlers h = {.on_message = seq_message};
    dg_socket_options o;
    struct seq_rx r;
    dg_socket_stats st;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port;

    memset(&r, 0, sizeof(r));
    memset(&o, 0, sizeof(o));
    o.type = DG_UDP4;
    o.recv_buffer_size = 4096; /* a few datagrams fit, the rest are dropped */
    cr_assert_eq(dg_socket_create(loop, &o, &h, &r, &r.sock), 0);
    r.payload = DROP_PAYLOAD;
    port = dgt_bind(loop, r.sock, "127.0.0.1", 0);
    /* The flood lands while the loop does not run. */
    for (uint32_t i = 0; i < DROP_SENT; i++)
        plain_send_seq(plain, port, i, DROP_PAYLOAD);
    drain_kernel_queue(loop, dg_socket_fd(r.sock));
    /* SO_RXQ_OVFL reports the drop count as of each datagram's arrival;
     * one more datagram after the flood carries the final count. */
    plain_send_seq(plain, port, DROP_SENT, DROP_PAYLOAD);
    while (r.next != DROP_SENT + 1)
        dgt_run_once(loop, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_get_stats(r.sock, &st), 0);
    cr_log_info("sent %d, received %d, kernel drops %llu", DROP_SENT + 1, r.received,
                (unsigned long long)st.rx_kernel_drops);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.backwards, 0, "a datagram delivered twice or out of order");
    cr_assert_gt(st.rx_kernel_drops, 0, "a 4 KiB receive buffer kept %d datagrams of %d bytes",
                 DROP_SENT, DROP_PAYLOAD);
    cr_assert_eq(st.rx_kernel_drops, (uint64_t)(DROP_SENT + 1 - r.received),
                 "sent %d, received %d, rx_kernel_drops %llu", DROP_SENT + 1, r.received,
                 (unsigned long long)st.rx_kernel_drops);
    cr_assert_eq(st.rx_datagrams, (uint64_t)r.received);
    close(plain);
    dgt_close_socket(loop, r.sock);
    dgt_loop_finish(loop);
}

/* ---- ICMP error on a connected socket ----------------------------------- */

/* A plain socket bound to loopback:port; -1 if the port is taken. */
static int plain_on_port(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(family, port, &ss);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

enum { ICMP_ROUNDS = 3, ICMP_DATAGRAMS = 50, ICMP_PAYLOAD = 40 };

struct icmp_rx {
    struct seq_rx seq;
    int errors;
    dg_error last;
    char text[256];
};

static void icmp_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    seq_check(&((struct icmp_rx *)data)->seq, msg, NULL);
}

static void icmp_error(dg_socket *sock, const dg_error *err, void *data)
{
    struct icmp_rx *r = data;

    (void)sock;
    r->errors++;
    r->last = *err;
    dgt_format(err, r->text, sizeof(r->text));
}

/* One attempt; false if another process took the port meanwhile. */
static bool icmp_attempt(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_handlers h = {.on_message = icmp_message, .on_error = icmp_error};
    struct icmp_rx r;
    dgt_status_rec conn = {0};
    dg_socket_stats st;
    dg_address self;
    int peer = dgt_plain_socket(family, 0);
    int port = dgt_plain_port(peer);
    bool ok = true;

    memset(&r, 0, sizeof(r));
    r.seq.payload = ICMP_PAYLOAD;
    r.seq.sock = dgt_socket_new(loop, type, 0, &h, &r);
    cr_assert_eq(dg_socket_connect(r.seq.sock, port, NULL, dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(conn.status, 0);
    cr_assert_eq(dg_socket_address(r.seq.sock, &self), 0);
    for (int round = 1; round <= ICMP_ROUNDS && ok; round++) {
        dgt_send_rec ping = {0}, pong = {0};
        unsigned char buf[64];

        close(peer); /* the peer goes away: the next datagram draws an ICMP error */
        cr_assert_eq(dg_socket_send(r.seq.sock, "ping", 4, 0, NULL, dgt_on_send, &ping), 0);
        dgt_run_until(loop, &ping.calls, 1, DGT_WAIT_MS);
        cr_assert_eq(ping.status, 4, "round %d: a send to a closed port still leaves", round);
        dgt_run_until(loop, &r.errors, round, DGT_WAIT_MS);
        dgt_assert_code(r.last.code, -ECONNREFUSED);
        cr_assert_str_eq(r.last.syscall, "recvmsg");
        cr_assert_str_eq(r.text, "recvmsg ECONNREFUSED");
        /* The peer comes back on the same port and talks: the receive was
         * armed again after the error ended it. */
        peer = plain_on_port(family, port);
        if (peer < 0) {
            ok = false;
            break;
        }
        for (int i = 0; i < ICMP_DATAGRAMS; i++) {
            unsigned char payload[ICMP_PAYLOAD];

            numbered(payload, sizeof(payload), r.seq.next + (uint32_t)i);
            dgt_plain_send(peer, family, self.port, payload, sizeof(payload));
        }
        dgt_run_until(loop, &r.seq.received, round * ICMP_DATAGRAMS, DGT_WAIT_MS);
        cr_assert_eq(dg_socket_send(r.seq.sock, "pong", 4, 0, NULL, dgt_on_send, &pong), 0);
        dgt_run_until(loop, &pong.calls, 1, DGT_WAIT_MS);
        cr_assert_eq(pong.status, 4);
        cr_assert_eq(dgt_plain_recv(peer, buf, sizeof(buf), DGT_WAIT_MS, NULL), 4);
    }
    if (ok) {
        cr_assert_eq(r.errors, ICMP_ROUNDS, "one error per ICMP");
        cr_assert_eq(r.seq.received, ICMP_ROUNDS * ICMP_DATAGRAMS);
        cr_assert_eq(r.seq.bad + r.seq.gaps + r.seq.backwards, 0);
        cr_assert_eq(dg_socket_get_stats(r.seq.sock, &st), 0);
        cr_assert_eq(st.rx_datagrams, (uint64_t)(ICMP_ROUNDS * ICMP_DATAGRAMS));
        if (is_uring(loop))
            cr_assert_geq(st.rx_rearms, ICMP_ROUNDS,
                          "each error ends the multishot receive: rx_rearms %llu",
                          (unsigned long long)st.rx_rearms);
        close(peer);
    }
    dgt_close_socket(loop, r.seq.sock);
    dgt_loop_finish(loop);
    return ok;
}

static void icmp_connected(dg_socket_type type)
{
    if (type == DG_UDP6)
        dgt_require_ipv6();
    for (int attempt = 0; attempt < 5; attempt++) {
        if (icmp_attempt(type))
            return;
        cr_log_warn("the peer's port was taken by someone else; again with a new port");
    }
    cr_assert_fail("could not get a loopback port back five times in a row");
}

Test(faults, icmp_error_ends_a_connected_receive_udp4)
{
    icmp_connected(DG_UDP4);
}

Test(faults, icmp_error_ends_a_connected_receive_udp6)
{
    icmp_connected(DG_UDP6);
}

/* ---- Send back-pressure ------------------------------------------------- */

struct send_slot {
    int calls;
    int status;
    bool err_ok;
};

static void slot_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct send_slot *s = data;

    (void)sock;
    s->calls++;
    s->status = status;
    s->err_ok = status >= 0 ? err == NULL : (err != NULL && err->code == status);
}

/* recvmsg on a plain socket with SO_RXQ_OVFL: the datagram's length and
 * its drop count in *drops; waits up to wait_ms (0: not at all); -1 when
 * nothing came. */
static ssize_t plain_recv_drops(int fd, void *buf, size_t len, unsigned wait_ms, uint32_t *drops)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint32_t))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (wait_ms > 0 && poll(&pfd, 1, (int)wait_ms) <= 0)
        return -1;
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof(control.buf);
    n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0)
        return -1;
    *drops = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
            memcpy(drops, CMSG_DATA(c), sizeof(*drops));
    return n;
}

static int count_calls(const struct send_slot *slots, int n)
{
    int done = 0;

    for (int i = 0; i < n; i++)
        done += slots[i].calls > 0;
    return done;
}

enum { BP_SENDS = 3000, BP_PAYLOAD = 512 };

/* A sender with a small send buffer pours 3000 datagrams into a receiver
 * that does not drain (small receive buffer): every send completes once,
 * with its size or an error; what the kernel took either arrived or was
 * counted as a drop by the receiving kernel, so nothing vanished inside
 * dgring. */
Test(faults, sends_into_a_full_receiver_each_complete_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_options o;
    dg_socket *tx;
    struct send_slot *slots = calloc(BP_SENDS + 1, sizeof(*slots));
    int rx = dgt_plain_socket(AF_INET, 4096);
    int port = dgt_plain_port(rx);
    int one = 1, ok = 0, failed = 0, received = 0;
    uint32_t next = 0, drops = 0;
    unsigned char buf[BP_PAYLOAD];
    dg_socket_stats st;
    ssize_t n;

    cr_assert_not_null(slots);
    cr_assert_eq(setsockopt(rx, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)), 0);
    memset(&o, 0, sizeof(o));
    o.type = DG_UDP4;
    o.send_buffer_size = 4096;
    cr_assert_eq(dg_socket_create(loop, &o, NULL, NULL, &tx), 0);
    dgt_bind(loop, tx, "127.0.0.1", 0);
    for (int i = 0; i < BP_SENDS; i++) {
        unsigned char payload[BP_PAYLOAD];

        numbered(payload, sizeof(payload), (uint32_t)i);
        cr_assert_eq(dg_socket_send(tx, payload, sizeof(payload), port, "127.0.0.1", slot_send,
                                    &slots[i]),
                     0, "send %d", i);
    }
    cr_assert_eq(dg_socket_send_queue_count(tx), BP_SENDS);
    while (count_calls(slots, BP_SENDS) < BP_SENDS)
        dgt_run_once(loop, DGT_WAIT_MS);
    for (int i = 0; i < BP_SENDS; i++) {
        cr_assert_eq(slots[i].calls, 1, "send %d: %d callbacks", i, slots[i].calls);
        cr_assert(slots[i].err_ok, "send %d: err does not match status %d", i, slots[i].status);
        cr_assert(slots[i].status == BP_PAYLOAD || slots[i].status < 0, "send %d: status %d", i,
                  slots[i].status);
        if (slots[i].status == BP_PAYLOAD)
            ok++;
        else
            failed++;
    }
    cr_assert_eq(dg_socket_send_queue_count(tx), 0);
    cr_assert_eq(dg_socket_send_queue_size(tx), 0);
    /* Drain the receiver; then one more datagram carries the final drop
     * count (SO_RXQ_OVFL is as of each datagram's arrival). */
    while ((n = plain_recv_drops(rx, buf, sizeof(buf), 0, &drops)) >= 0) {
        uint32_t seq;

        cr_assert_eq(n, BP_PAYLOAD);
        memcpy(&seq, buf, sizeof(seq));
        cr_assert_lt(seq, (uint32_t)BP_SENDS);
        cr_assert_geq(seq, next, "datagram %u after %u", seq, next);
        cr_assert_eq(slots[seq].status, BP_PAYLOAD, "datagram %u arrived but was reported %s",
                     seq, dg_err_name(slots[seq].status));
        next = seq + 1;
        received++;
    }
    numbered(buf, sizeof(buf), BP_SENDS);
    cr_assert_eq(
        dg_socket_send(tx, buf, sizeof(buf), port, "127.0.0.1", slot_send, &slots[BP_SENDS]), 0);
    dgt_run_until(loop, &slots[BP_SENDS].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(slots[BP_SENDS].status, BP_PAYLOAD);
    cr_assert_eq(plain_recv_drops(rx, buf, sizeof(buf), DGT_WAIT_MS, &drops), BP_PAYLOAD,
                 "the marker did not arrive");
    cr_log_info("%d sends completed: %d sent, %d failed; %d received, %u dropped by the "
                "receiving kernel",
                BP_SENDS, ok, failed, received, drops);
    cr_assert_eq((uint64_t)received + drops, (uint64_t)ok,
                 "%d sent = %d received + %u dropped by the receiver?", ok, received, drops);
    cr_assert_eq(dg_socket_get_stats(tx, &st), 0);
    cr_assert_eq(st.tx_datagrams, (uint64_t)ok + 1);
    cr_assert_eq(st.tx_errors, (uint64_t)failed);
    free(slots);
    close(rx);
    dgt_close_socket(loop, tx);
    dgt_loop_finish(loop);
}

/* ---- The loop's send-queue bound --------------------------------------- */

enum { QB_MAX = 64, QB_TOTAL = 3000, QB_PAYLOAD = 24 };

struct pump {
    dg_socket *sock;
    int port;
    const char *host;
    uint32_t next;          /* next sequence number to hand over */
    int accepted;
    int refused;            /* DG_ERR_SEND_QUEUE_FULL answers */
    int other_errors;
    int callbacks;
    int ok;
    int total;
    unsigned char *calls;   /* callbacks per sequence number */
};

struct pump_req {
    struct pump *p;
    uint32_t seq;
};

static void pump_fill(struct pump *p);

static void pump_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct pump_req *req = data;
    struct pump *p = req->p;

    (void)sock;
    (void)err;
    p->calls[req->seq]++;
    p->callbacks++;
    if (status == QB_PAYLOAD)
        p->ok++;
    free(req);
    pump_fill(p); /* room again: refill from the callback */
}

/* Hands over numbered datagrams until the loop says the queue is full. */
static void pump_fill(struct pump *p)
{
    while ((int)p->next < p->total) {
        unsigned char payload[QB_PAYLOAD];
        struct pump_req *req = malloc(sizeof(*req));
        int rc;

        cr_assert_not_null(req);
        req->p = p;
        req->seq = p->next;
        numbered(payload, sizeof(payload), p->next);
        rc = dg_socket_send(p->sock, payload, sizeof(payload), p->port, p->host, pump_sent, req);
        if (rc == DG_ERR_SEND_QUEUE_FULL) {
            p->refused++;
            free(req);
            return;
        }
        if (rc < 0) {
            p->other_errors++;
            free(req);
            return;
        }
        p->accepted++;
        p->next++;
    }
}

/* max_pending_sends = 64: the 65th send is DG_ERR_SEND_QUEUE_FULL and has
 * no callback; refilling from every callback moves 3000 numbered datagrams
 * with each accepted one completed once and received once, in order. The
 * receiver drains between turns (it is a plain socket read by the test). */
Test(faults, send_queue_bound_refuses_and_loses_nothing)
{
    dg_loop_options lo;
    dg_loop *loop;
    struct pump p;
    int rx = dgt_plain_socket(AF_INET, 1 << 20);
    uint32_t next = 0;
    int received = 0;
    dg_socket_stats st;

    dg_loop_options_init(&lo);
    lo.max_pending_sends = QB_MAX;
    loop = dgt_loop_new(&lo);
    memset(&p, 0, sizeof(p));
    p.calls = calloc(QB_TOTAL, 1);
    cr_assert_not_null(p.calls);
    p.total = QB_TOTAL;
    p.port = dgt_plain_port(rx);
    p.host = "127.0.0.1";
    cr_assert_eq(dg_socket_create(loop, &(dg_socket_options){.type = DG_UDP4}, NULL, NULL,
                                  &p.sock),
                 0);
    dgt_bind(loop, p.sock, "127.0.0.1", 0);
    pump_fill(&p);
    cr_assert_eq(p.accepted, QB_MAX, "the bound takes exactly max_pending_sends");
    cr_assert_eq(p.refused, 1);
    cr_assert_eq(p.other_errors, 0);
    cr_assert_eq(dg_socket_send_queue_count(p.sock), QB_MAX);
    dgt_assert_code(dg_socket_send(p.sock, "x", 1, p.port, p.host, NULL, NULL),
                    DG_ERR_SEND_QUEUE_FULL, "also without a callback");
    while (received < QB_TOTAL || p.callbacks < p.accepted) {
        unsigned char buf[64];
        ssize_t n;

        if (p.callbacks < p.accepted)
            dgt_run_once(loop, DGT_WAIT_MS);
        else if (p.accepted < QB_TOTAL)
            pump_fill(&p); /* the queue emptied in a turn that refused nothing */
        while ((n = dgt_plain_recv_nowait(rx, buf, sizeof(buf))) >= 0) {
            uint32_t seq;

            cr_assert_eq(n, QB_PAYLOAD);
            memcpy(&seq, buf, sizeof(seq));
            cr_assert_eq(seq, next, "datagram %u, expected %u", seq, next);
            next++;
            received++;
        }
        if (p.callbacks == QB_TOTAL && received < QB_TOTAL) {
            n = dgt_plain_recv(rx, buf, sizeof(buf), DGT_WAIT_MS, NULL);
            cr_assert_eq(n, QB_PAYLOAD, "datagram %u never arrived", next);
            next++;
            received++;
        }
    }
    cr_assert_eq(p.accepted, QB_TOTAL);
    cr_assert_eq(p.callbacks, QB_TOTAL);
    cr_assert_eq(p.ok, QB_TOTAL);
    cr_assert_eq(p.other_errors, 0);
    for (int i = 0; i < QB_TOTAL; i++)
        cr_assert_eq(p.calls[i], 1, "send %d: %d callbacks", i, p.calls[i]);
    cr_assert_eq(dg_socket_get_stats(p.sock, &st), 0);
    cr_assert_eq(st.tx_datagrams, (uint64_t)QB_TOTAL);
    cr_assert_eq(st.tx_errors, 0);
    cr_log_info("%d refusals while 3000 datagrams went through a bound of %d", p.refused, QB_MAX);
    free(p.calls);
    close(rx);
    dgt_close_socket(loop, p.sock);
    dgt_loop_finish(loop);
}

/* Sends waiting for a host-name lookup count against the bound too, and
 * leave in call order once the name resolves. */
Test(faults, sends_waiting_for_a_lookup_fill_the_bound)
{
    dg_loop_options lo;
    dg_loop *loop;
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "slow.test"};
    dg_socket_options o = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    struct send_slot slots[QB_MAX];
    dg_socket *tx;
    int rx = dgt_plain_socket(AF_INET, 1 << 20);
    int port = dgt_plain_port(rx);

    dg_loop_options_init(&lo);
    lo.max_pending_sends = QB_MAX;
    loop = dgt_loop_new(&lo);
    memset(slots, 0, sizeof(slots));
    cr_assert_eq(dg_socket_create(loop, &o, NULL, NULL, &tx), 0);
    dgt_bind(loop, tx, "127.0.0.1", 0);
    for (int i = 0; i < QB_MAX; i++) {
        unsigned char payload[QB_PAYLOAD];

        numbered(payload, sizeof(payload), (uint32_t)i);
        cr_assert_eq(dg_socket_send(tx, payload, sizeof(payload), port,
                                    i % 2 ? "slow.test" : "127.0.0.1", slot_send, &slots[i]),
                     0, "send %d", i);
    }
    dgt_assert_code(dg_socket_send(tx, "x", 1, port, "127.0.0.1", NULL, NULL),
                    DG_ERR_SEND_QUEUE_FULL);
    dgt_run_once(loop, DGT_WAIT_MS);
    cr_assert_leq(count_calls(slots, QB_MAX), 1,
                  "only send 0 may complete: every later send waits behind send 1's lookup");
    cr_assert_eq(dgt_fake_lookup_release(&lk), QB_MAX / 2);
    while (count_calls(slots, QB_MAX) < QB_MAX)
        dgt_run_once(loop, DGT_WAIT_MS);
    for (int i = 0; i < QB_MAX; i++) {
        unsigned char buf[64];
        uint32_t seq;

        cr_assert_eq(slots[i].calls, 1);
        cr_assert_eq(slots[i].status, QB_PAYLOAD, "send %d: %s", i, dg_err_name(slots[i].status));
        cr_assert_eq(dgt_plain_recv(rx, buf, sizeof(buf), DGT_WAIT_MS, NULL), QB_PAYLOAD);
        memcpy(&seq, buf, sizeof(seq));
        cr_assert_eq(seq, (uint32_t)i, "call order kept");
    }
    close(rx);
    dgt_close_socket(loop, tx);
    dgt_loop_finish(loop);
}

/* ---- Close with everything in flight, from inside every callback --------
 * A world of handles with work in flight: a receiving socket A fed by a
 * plain sender and by B; B with sends in flight and sends waiting for a
 * host-name lookup; C binding to a name whose lookup is held, with sends
 * queued behind the bind; D connecting to a held name; E binding; F bound;
 * three timers. From inside one kind of callback everything is closed,
 * dg_loop_close is tried (DG_ERR_LOOP_BUSY), and the held lookups are
 * answered after the close. Afterwards: every close callback exactly once,
 * every send callback exactly once (sent or -ECANCELED) and before its
 * socket's on_close, bind/connect callbacks once, no event after a close
 * call and no callback at all after a close callback. */

enum trigger { FROM_MESSAGE, FROM_SEND_CB, FROM_LISTENING, FROM_TIMER, FROM_CLOSE_CB };
enum { W_SOCKETS = 6, W_TIMERS = 3, W_SENDS = 64, W_PLAIN = 40, W_LEN = 16 };
enum { SA, SB, SC, SD, SE, SF };

struct world;

struct hrec {
    struct world *w;
    dg_socket *sock;
    bool close_called;
    int on_close;
    int close_cb;
    int events_after_close_call; /* message, listening, error, connect */
    int after_close_cb;          /* anything at all after the close callback */
    int messages;
    int listening;
    int errors;
    dgt_status_rec status;       /* bind or connect callback */
    int status_after_close_cb;
};

struct trec {
    struct world *w;
    dg_timer *timer;
    bool close_called;
    int fires;
    int close_cb;
    int after_close;
};

struct wsend {
    struct world *w;
    struct hrec *h;
    int calls;
    int status;
    int on_close_seen;
    bool err_ok;
};

struct world {
    dg_loop *loop;
    enum trigger trigger;
    int triggered;
    struct hrec socks[W_SOCKETS];
    struct trec timers[W_TIMERS];
    struct wsend sends[W_SENDS];
    int nsends;
    dgt_fake_lookup lk;
    int loop_close_busy;
    int not_running_after_close;
};

static void close_all(struct world *w);

static void h_event(struct hrec *h)
{
    if (h->close_called)
        h->events_after_close_call++;
    if (h->close_cb > 0 || h->on_close > 0)
        h->after_close_cb++;
}

static void w_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct hrec *h = data;

    (void)sock;
    (void)msg;
    h_event(h);
    h->messages++;
    if (h->w->trigger == FROM_MESSAGE)
        close_all(h->w);
}

static void w_listening(dg_socket *sock, void *data)
{
    struct hrec *h = data;

    (void)sock;
    h_event(h);
    h->listening++;
    if (h->w->trigger == FROM_LISTENING && h == &h->w->socks[SE])
        close_all(h->w);
}

static void w_error(dg_socket *sock, const dg_error *err, void *data)
{
    struct hrec *h = data;

    (void)sock;
    cr_log_error("unexpected error: %s %s", err->syscall ? err->syscall : "",
                 dg_err_name(err->code));
    h_event(h);
    h->errors++;
}

static void w_connect(dg_socket *sock, void *data)
{
    (void)sock;
    h_event(data);
}

static void w_on_close(dg_socket *sock, void *data)
{
    struct hrec *h = data;

    (void)sock;
    if (!h->close_called || h->on_close > 0 || h->close_cb > 0)
        h->after_close_cb++;
    h->on_close++;
}

static void w_close_cb(dg_socket *sock, void *data)
{
    struct hrec *h = data;

    (void)sock;
    if (h->close_cb > 0)
        h->after_close_cb++;
    h->close_cb++;
    if (h->w->trigger == FROM_CLOSE_CB && h == &h->w->socks[SF])
        close_all(h->w);
}

static void w_status(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct hrec *h = data;

    if (h->close_cb > 0 || h->on_close > 0)
        h->status_after_close_cb++;
    dgt_on_status(sock, status, err, &h->status);
}

static void w_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct wsend *s = data;

    (void)sock;
    s->calls++;
    s->status = status;
    s->on_close_seen = s->h->on_close + s->h->close_cb;
    s->err_ok = status >= 0 ? err == NULL : (err != NULL && err->code == status);
    if (s->w->trigger == FROM_SEND_CB)
        close_all(s->w);
}

static void w_timer(dg_timer *timer, void *data)
{
    struct trec *t = data;

    (void)timer;
    if (t->close_called)
        t->after_close++;
    t->fires++;
    if (t->w->trigger == FROM_TIMER)
        close_all(t->w);
}

static void w_timer_closed(dg_timer *timer, void *data)
{
    struct trec *t = data;

    (void)timer;
    if (!t->close_called || t->close_cb > 0)
        t->after_close++;
    t->close_cb++;
}

static const dg_socket_handlers w_handlers = {
    .on_message = w_message,
    .on_listening = w_listening,
    .on_close = w_on_close,
    .on_error = w_error,
    .on_connect = w_connect,
};

static void w_close_socket(struct hrec *h)
{
    if (h->close_called)
        return;
    cr_assert_eq(dg_socket_close(h->sock, w_close_cb, h), 0);
    h->close_called = true;
}

static void close_all(struct world *w)
{
    if (w->triggered)
        return; /* later callbacks of the same kind find everything closed */
    w->triggered = 1;
    for (int i = 0; i < W_SOCKETS; i++)
        w_close_socket(&w->socks[i]);
    for (int i = 0; i < W_TIMERS; i++) {
        cr_assert_eq(dg_timer_close(w->timers[i].timer, w_timer_closed, &w->timers[i]), 0);
        w->timers[i].close_called = true;
    }
    if (dg_loop_close(w->loop) == DG_ERR_LOOP_BUSY)
        w->loop_close_busy++;
    if (dg_socket_send(w->socks[SB].sock, "late", 4, 9, "127.0.0.1", NULL, NULL) ==
        DG_ERR_SOCKET_DGRAM_NOT_RUNNING)
        w->not_running_after_close++;
    /* The held lookups answer after their sockets closed. */
    dgt_fake_lookup_release(&w->lk);
}

static void w_send(struct world *w, int sock, int port, const char *host)
{
    struct wsend *s = &w->sends[w->nsends];
    unsigned char payload[W_LEN];

    cr_assert_lt(w->nsends, W_SENDS);
    numbered(payload, sizeof(payload), (uint32_t)w->nsends);
    *s = (struct wsend){.w = w, .h = &w->socks[sock], .status = 1};
    cr_assert_eq(dg_socket_send(w->socks[sock].sock, payload, sizeof(payload), port, host, w_sent,
                                s),
                 0, "send %d", w->nsends);
    w->nsends++;
}

static void close_everything_from(enum trigger trigger)
{
    struct world *w = calloc(1, sizeof(*w));
    dg_socket_options o;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port_a;

    cr_assert_not_null(w);
    w->trigger = trigger;
    w->lk.mode = DGT_FAKE_LOOKUP_MANUAL;
    w->lk.manual_host = "slow.test";
    w->loop = dgt_loop_new(NULL);
    o = dgt_fake_lookup_options(DG_UDP4, 0, &w->lk);
    for (int i = 0; i < W_SOCKETS; i++) {
        w->socks[i].w = w;
        cr_assert_eq(dg_socket_create(w->loop, &o, &w_handlers, &w->socks[i], &w->socks[i].sock),
                     0);
    }
    for (int i = 0; i < W_TIMERS; i++) {
        w->timers[i].w = w;
        cr_assert_eq(dg_timer_new(w->loop, &w->timers[i].timer), 0);
    }
    /* Bound before the scenario (their listening is not the trigger). */
    {
        enum trigger keep = w->trigger;

        w->trigger = (enum trigger)-1;
        port_a = dgt_bind(w->loop, w->socks[SA].sock, "127.0.0.1", 0);
        dgt_bind(w->loop, w->socks[SB].sock, "127.0.0.1", 0);
        dgt_bind(w->loop, w->socks[SF].sock, "127.0.0.1", 0);
        w->trigger = keep;
    }
    /* Work in flight. */
    for (uint32_t i = 0; i < W_PLAIN; i++)
        plain_send_seq(plain, port_a, i, W_LEN);
    for (int i = 0; i < 20; i++)
        w_send(w, SB, port_a, "127.0.0.1");
    for (int i = 0; i < 5; i++)
        w_send(w, SB, port_a, "slow.test");
    cr_assert_eq(dg_socket_bind(w->socks[SC].sock, 0, "slow.test", w_status, &w->socks[SC]), 0);
    for (int i = 0; i < 3; i++)
        w_send(w, SC, port_a, "127.0.0.1");
    cr_assert_eq(dg_socket_connect(w->socks[SD].sock, port_a, "slow.test", w_status,
                                   &w->socks[SD]),
                 0);
    cr_assert_eq(dg_socket_bind(w->socks[SE].sock, 0, "127.0.0.1", w_status, &w->socks[SE]), 0);
    cr_assert_eq(dg_timer_start(w->timers[0].timer, 1, 1, w_timer, &w->timers[0]), 0);
    cr_assert_eq(dg_timer_start(w->timers[1].timer, 0, 0, w_timer, &w->timers[1]), 0);
    cr_assert_eq(dg_timer_start(w->timers[2].timer, 60000, 0, w_timer, &w->timers[2]), 0);
    if (trigger == FROM_CLOSE_CB)
        w_close_socket(&w->socks[SF]);
    if (trigger != FROM_TIMER) {
        /* Only the trigger under test may start the closing: the timers
         * wait (stopped, still open and closed by close_all). */
        cr_assert_eq(dg_timer_stop(w->timers[0].timer), 0);
        cr_assert_eq(dg_timer_stop(w->timers[1].timer), 0);
    }

    cr_assert_eq(dgt_run(w->loop, DGT_WAIT_MS), 0);

    cr_assert_eq(w->triggered, 1, "the trigger ran close_all once");
    cr_assert_eq(w->loop_close_busy, 1, "dg_loop_close inside a callback is DG_ERR_LOOP_BUSY");
    cr_assert_eq(w->not_running_after_close, 1);
    for (int i = 0; i < W_SOCKETS; i++) {
        struct hrec *h = &w->socks[i];

        cr_assert_eq(h->on_close, 1, "socket %d: on_close %d times", i, h->on_close);
        cr_assert_eq(h->close_cb, 1, "socket %d: close callback %d times", i, h->close_cb);
        cr_assert_eq(h->events_after_close_call, 0, "socket %d: events after close()", i);
        cr_assert_eq(h->after_close_cb, 0, "socket %d: callbacks after the close callback", i);
        cr_assert_eq(h->status_after_close_cb, 0, "socket %d", i);
        cr_assert_eq(h->errors, 0, "socket %d", i);
    }
    for (int i = SC; i <= SE; i++) {
        struct hrec *h = &w->socks[i];

        cr_assert_eq(h->status.calls, 1, "socket %d: bind/connect callback %d times", i,
                     h->status.calls);
        if (i == SE && trigger == FROM_LISTENING)
            cr_assert_eq(h->status.status, 0, "E was listening when it closed");
        else if (i == SE) /* E's bind may have completed before the trigger */
            cr_assert(h->status.status == 0 || h->status.status == -ECANCELED, "%s",
                      dg_err_name(h->status.status));
        else
            dgt_assert_code(h->status.status, -ECANCELED, "bind/connect closed before done");
    }
    cr_assert_eq(w->socks[SC].listening, 0, "C's bind waited for its lookup");
    cr_assert_eq(w->socks[SE].listening, w->socks[SE].status.status == 0,
                 "E listening once if its bind completed");
    cr_assert_leq(w->socks[SD].listening, 1, "D's implicit bind");
    for (int i = 0; i < W_TIMERS; i++) {
        cr_assert_eq(w->timers[i].close_cb, 1, "timer %d", i);
        cr_assert_eq(w->timers[i].after_close, 0, "timer %d fired after close", i);
    }
    cr_assert_eq(w->timers[2].fires, 0);
    for (int i = 0; i < w->nsends; i++) {
        struct wsend *s = &w->sends[i];

        cr_assert_eq(s->calls, 1, "send %d: %d callbacks", i, s->calls);
        cr_assert(s->status == W_LEN || s->status == -ECANCELED, "send %d: %s", i,
                  dg_err_name(s->status));
        cr_assert(s->err_ok, "send %d", i);
        cr_assert_eq(s->on_close_seen, 0, "send %d completed after its socket's on_close", i);
        if (s->h != &w->socks[SB] || i >= 20)
            dgt_assert_code_fmt(s->status, -ECANCELED, "send %d: no resolved destination", i);
    }
    cr_assert_eq(w->lk.npending, 0);
    cr_assert_eq(w->lk.answered, w->lk.calls, "every lookup answered once");
    {
        int sent = 0;

        for (int i = 0; i < w->nsends; i++)
            sent += w->sends[i].status == W_LEN;
        cr_log_info("trigger %d: A got %d messages, %d of %d sends left before the close",
                    trigger, w->socks[SA].messages, sent, w->nsends);
    }
    close(plain);
    dgt_loop_finish(w->loop);
    free(w);
}

Test(faults, close_everything_from_on_message)
{
    close_everything_from(FROM_MESSAGE);
}

Test(faults, close_everything_from_a_send_callback)
{
    close_everything_from(FROM_SEND_CB);
}

Test(faults, close_everything_from_on_listening)
{
    close_everything_from(FROM_LISTENING);
}

Test(faults, close_everything_from_a_timer)
{
    close_everything_from(FROM_TIMER);
}

Test(faults, close_everything_from_another_close_callback)
{
    close_everything_from(FROM_CLOSE_CB);
}

/* ---- dg_loop_close with live handles ------------------------------------ */

static void count_fire(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

static void count_post(dg_loop *loop, void *data)
{
    (void)loop;
    (*(int *)data)++;
}

struct busy_close {
    dg_loop *loop;
    int rc_in_timer;
    int rc_in_close_cb;
    int closes;
};

static void busy_in_timer(dg_timer *timer, void *data)
{
    struct busy_close *b = data;

    (void)timer;
    b->rc_in_timer = dg_loop_close(b->loop);
}

static void busy_in_close_cb(dg_socket *sock, void *data)
{
    struct busy_close *b = data;

    (void)sock;
    b->closes++;
    b->rc_in_close_cb = dg_loop_close(b->loop); /* the last handle, but still inside run */
}

/* DG_ERR_LOOP_BUSY while anything lives (a receiving socket, a send held
 * by a lookup, an active timer, a pending post), from outside and from
 * inside callbacks; after each refusal everything still works exactly as
 * before; once all is closed and the loop ran, dg_loop_close succeeds. */
Test(faults, loop_close_with_live_handles_is_busy_and_changes_nothing)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .manual_host = "slow.test"};
    dg_socket_options o = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_events rx = {0};
    dgt_send_rec held = {0};
    dg_socket *rxs, *tx;
    dg_timer *timer, *busy_timer;
    int plain = dgt_plain_socket(AF_INET, 0);
    int fires = 0, posts = 0, port;
    struct busy_close b = {.loop = loop, .rc_in_timer = 1, .rc_in_close_cb = 1};
    unsigned char buf[16];

    rxs = dgt_events_socket(loop, DG_UDP4, 0, &rx);
    port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_create(loop, &o, NULL, NULL, &tx), 0);
    dgt_bind(loop, tx, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_send(tx, "held", 4, port, "slow.test", dgt_on_send, &held), 0);
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 1, 1, count_fire, &fires), 0);
    cr_assert_eq(dg_loop_post(loop, count_post, &posts), 0);

    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "twice, same answer");
    cr_assert(dg_loop_alive(loop));
    cr_assert(dg_timer_active(timer));
    cr_assert_eq(dg_socket_send_queue_count(tx), 1);

    /* Everything still works: the timer fires, the post runs, datagrams
     * arrive, the held send leaves once its name resolves. */
    dgt_run_until(loop, &fires, 3, DGT_WAIT_MS);
    dgt_run_until(loop, &posts, 1, DGT_WAIT_MS);
    dgt_plain_send(plain, AF_INET, port, "after", 5);
    dgt_run_until(loop, &rx.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(rx.length, 5);
    cr_assert_eq(dgt_fake_lookup_release(&lk), 1);
    dgt_run_until(loop, &held.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(held.status, 4);
    dgt_run_until(loop, &rx.messages, 2, DGT_WAIT_MS);
    cr_assert_eq(memcmp(rx.data, "held", 4), 0);

    /* From inside callbacks. */
    cr_assert_eq(dg_timer_new(loop, &busy_timer), 0);
    cr_assert_eq(dg_timer_start(busy_timer, 0, 0, busy_in_timer, &b), 0);
    while (b.rc_in_timer == 1)
        dgt_run_once(loop, DGT_WAIT_MS);
    dgt_assert_code(b.rc_in_timer, DG_ERR_LOOP_BUSY, "inside a timer callback");
    dgt_close_timer(loop, busy_timer);
    dgt_close_timer(loop, timer);
    dgt_close_socket(loop, tx);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "one socket left");
    cr_assert_eq(dg_socket_close(rxs, busy_in_close_cb, &b), 0);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "a close in progress");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(b.closes, 1);
    dgt_assert_code(b.rc_in_close_cb, DG_ERR_LOOP_BUSY, "inside the last close callback");
    cr_assert_eq(rx.closed, 1);
    cr_assert_eq(dgt_plain_recv_nowait(plain, buf, sizeof(buf)), -1);
    close(plain);
    cr_assert_eq(dg_loop_close(loop), 0);
}

/* ---- Completion-queue overflow -------------------------------------------
 * engine/core/ring.c sizes the CQ (cq_size) for recv_buffers + max_pending_sends
 * + max_fanout_destinations + 64 (the last kept at 1 here): a multishot receive posts at most one completion per provided
 * buffer before dgring returns it, so buffered receives alone cannot
 * overflow it. What can: completions that carry no buffer and have no
 * bound -- every socket's multishot ending with ENOBUFS when the ring runs
 * dry, and posts from other loops (each one a completion in the target's
 * CQ). Here both, together with timers and a full send queue, land in one
 * turn of a loop with a tiny SQ (8 entries) and a CQ a fraction of the
 * completions: the kernel keeps the overflow (IORING_FEAT_NODROP) and
 * dgring must take every one of them. The posting loop has the same small
 * CQ (its ends of the 3000 posts overflow it) and is closed before the
 * target runs a single post. On a backend without a CQ the same flood
 * simply has to arrive complete. */

enum { OV_EXTRA_SOCKETS = 64, OV_PER_SOCKET = 3, OV_SENDS = 64, OV_TIMERS = 300, OV_POSTS = 3000 };

struct ov_echo {
    int port;
    int accepted;
    int refused;   /* DG_ERR_SEND_QUEUE_FULL: the bound, not a loss */
    int calls;
    int ok;
    int failed;
    int last_error;
};

struct ov_sock {
    struct seq_rx seq;     /* first: the message handler's data */
    struct ov_echo *echo;
};

static void ov_echo_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct ov_echo *e = data;

    (void)sock;
    (void)err;
    e->calls++;
    if (status == 16) {
        e->ok++;
    } else {
        e->failed++;
        e->last_error = status;
    }
}

/* Each datagram is answered to the sink from inside the callback, so the
 * SQ (8 entries) is flushed early while the CQ is still overflowing. */
static void ov_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct ov_sock *o = data;
    int rc;

    seq_check(&o->seq, msg, NULL);
    rc = dg_socket_send(sock, msg->data, msg->length, o->echo->port, "127.0.0.1", ov_echo_sent,
                        o->echo);
    if (rc == 0)
        o->echo->accepted++;
    else if (rc == DG_ERR_SEND_QUEUE_FULL)
        o->echo->refused++;
    else
        cr_assert_fail("echo send: %s", dg_err_name(rc));
}

struct ov_poster {
    dg_loop *target;
    int *posts;
    int posted;
    int refused;
};

static void ov_post_all(dg_timer *timer, void *data)
{
    struct ov_poster *p = data;

    (void)timer;
    for (int i = 0; i < OV_POSTS; i++) {
        if (dg_loop_post(p->target, count_post, p->posts) == 0)
            p->posted++;
        else
            p->refused++;
    }
}

Test(faults, cq_overflow_loses_no_completion)
{
    dg_loop_options lo;
    dg_loop *loop, *other;
    dg_socket_handlers h = {.on_message = ov_message};
    struct ov_echo echo = {0};
    struct ov_sock *socks;
    dg_timer *timers[OV_TIMERS], *post_timer;
    struct send_slot sends[OV_SENDS];
    struct ov_poster poster = {0};
    int nsocks, fires = 0, posts = 0, received = 0, want;
    int plain = dgt_plain_socket(AF_INET, 0);
    int sink = dgt_plain_socket(AF_INET, 1 << 20);
    const dg_loop_caps *caps;

    dg_loop_options_init(&lo);
    lo.sq_entries = 8;
    lo.recv_buffers = 8;
    lo.recv_buffer_size = 64;
    lo.max_pending_sends = OV_SENDS;
    lo.max_fanout_destinations = 1; /* no fan-out here: keep the CQ small */
    loop = dgt_loop_new(&lo);
    other = dgt_loop_new(&lo); /* its CQ overflows too: the senders' ends of the posts */
    caps = dg_loop_capabilities(loop);
    /* More sockets than CQ entries: their ENOBUFS endings alone overflow. */
    nsocks = (int)(caps->cq_entries ? caps->cq_entries : 256) + OV_EXTRA_SOCKETS;
    cr_log_info("backend %s, sq %u, cq %u, %d sockets", dg_loop_backend(loop), caps->sq_entries,
                caps->cq_entries, nsocks);
    socks = calloc((size_t)nsocks, sizeof(*socks));
    cr_assert_not_null(socks);
    for (int i = 0; i < nsocks; i++) {
        socks[i].seq.payload = 16;
        socks[i].echo = &echo;
        cr_assert_eq(dg_socket_create(loop, &(dg_socket_options){.type = DG_UDP4}, &h,
                                      &socks[i], &socks[i].seq.sock),
                     0);
        cr_assert_eq(dg_socket_bind(socks[i].seq.sock, 0, "127.0.0.1", NULL, NULL), 0);
    }
    dgt_run_once(loop, DGT_WAIT_MS); /* listening for all; receives armed */
    while (dg_loop_timeout(loop) == 0)
        dgt_run_once(loop, DGT_WAIT_MS);

    /* The flood, while neither loop runs. */
    for (int k = 0; k < OV_PER_SOCKET; k++) {
        for (int i = 0; i < nsocks; i++) {
            dg_address a;

            cr_assert_eq(dg_socket_address(socks[i].seq.sock, &a), 0);
            plain_send_seq(plain, a.port, (uint32_t)k, 16);
        }
    }
    for (int i = 0; i < OV_TIMERS; i++) {
        cr_assert_eq(dg_timer_new(loop, &timers[i]), 0);
        cr_assert_eq(dg_timer_start(timers[i], 0, 0, count_fire, &fires), 0);
    }
    echo.port = dgt_plain_port(sink);
    memset(sends, 0, sizeof(sends));
    for (int i = 0; i < OV_SENDS; i++) {
        unsigned char payload[16];

        numbered(payload, sizeof(payload), (uint32_t)i);
        cr_assert_eq(dg_socket_send(socks[i].seq.sock, payload, sizeof(payload),
                                    dgt_plain_port(sink), "127.0.0.1", slot_send, &sends[i]),
                     0);
    }
    /* Posts ring to ring: the other loop posts from its own callback. */
    poster.target = loop;
    poster.posts = &posts;
    cr_assert_eq(dg_timer_new(other, &post_timer), 0);
    cr_assert_eq(dg_timer_start(post_timer, 0, 0, ov_post_all, &poster), 0);
    while (poster.posted + poster.refused < OV_POSTS)
        dgt_run_once(other, DGT_WAIT_MS);
    cr_assert_eq(poster.refused, 0);
    dgt_close_timer(other, post_timer);
    dgt_loop_finish(other); /* the sender goes before the posts ran */

    want = nsocks * OV_PER_SOCKET;
    for (int turns = 0;; turns++) {
        received = 0;
        for (int i = 0; i < nsocks; i++)
            received += socks[i].seq.received;
        if (received == want && fires == OV_TIMERS && posts == OV_POSTS &&
            count_calls(sends, OV_SENDS) == OV_SENDS && echo.calls == echo.accepted)
            break;
        cr_assert_lt(turns, 100000, "stalled: %d/%d datagrams, %d/%d timers, %d/%d posts, "
                     "%d/%d sends", received, want, fires, OV_TIMERS, posts, OV_POSTS,
                     count_calls(sends, OV_SENDS), OV_SENDS);
        dgt_run_once(loop, DGT_WAIT_MS);
    }
    dgt_settle(loop, 5);
    cr_assert_eq(fires, OV_TIMERS, "a timer fired twice");
    cr_assert_eq(posts, OV_POSTS, "a post ran twice");
    for (int i = 0; i < nsocks; i++) {
        struct seq_rx *r = &socks[i].seq;
        dg_socket_stats st;

        cr_assert_eq(r->received, OV_PER_SOCKET, "socket %d: %d datagrams", i, r->received);
        cr_assert_eq(r->bad + r->gaps + r->backwards, 0, "socket %d out of order", i);
        cr_assert_eq(dg_socket_get_stats(r->sock, &st), 0);
        cr_assert_eq(st.rx_kernel_drops, 0);
    }
    cr_log_info("echoes: %d accepted, %d refused by the bound, %d sent, %d failed", echo.accepted,
                echo.refused, echo.ok, echo.failed);
    cr_assert_eq(echo.failed, 0, "an echo failed with %s", dg_err_name(echo.last_error));
    cr_assert_gt(echo.accepted, 0);
    for (int i = 0; i < OV_SENDS; i++) {
        cr_assert_eq(sends[i].calls, 1, "send %d", i);
        cr_assert_eq(sends[i].status, 16, "send %d: %s", i, dg_err_name(sends[i].status));
    }
    for (int i = 0; i < OV_SENDS + echo.ok; i++) {
        unsigned char buf[64];

        cr_assert_eq(dgt_plain_recv(sink, buf, sizeof(buf), DGT_WAIT_MS, NULL), 16,
                     "datagram %d of %d at the sink", i, OV_SENDS + echo.ok);
    }
    for (int i = 0; i < OV_TIMERS; i++)
        cr_assert_eq(dg_timer_close(timers[i], NULL, NULL), 0);
    for (int i = 0; i < nsocks; i++)
        cr_assert_eq(dg_socket_close(socks[i].seq.sock, NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    free(socks);
    close(plain);
    close(sink);
    dgt_loop_finish(loop);
}

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
    bool closed;
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

/* The datagrams a close discards, counted in
 * dg_socket_stats.rx_discarded_at_close (final in the close callback) and
 * summed over closed sockets in dg_loop_stats.rx_discarded_at_close. A
 * close drops what the socket received but never delivered: datagrams in
 * the loop's receive buffers (a close from on_message in the middle of a
 * turn's datagrams) and datagrams in the kernel's receive queue. Every
 * datagram here is sent with sendto() on loopback before the loop runs,
 * which queues it on the receiving socket before sendto() returns, so each
 * count is exact: sent = delivered + discarded, whatever the split between
 * the ring's buffers and the kernel's queue. An adopted fd may be shared,
 * so its queue and its future datagrams are left alone. One case (a batch
 * still gathering when another callback closes its socket) cannot be
 * ordered from outside, so it is set up on the loop's internal batch
 * (static link). */
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "engine/dgram/dgram.h"
#include "support/helpers.h"

TestSuite(close_count, .timeout = 60);

enum { KEEP_MAX = 8 };

typedef struct counter {
    int received;
    int closed;
    bool close_in_message;          /* close at the first on_message / batch */
    bool keep;                      /* keep every buffer (dg_message_keep) */
    dg_rx_buf *kept[KEEP_MAX];
    dg_socket_stats at_close;       /* read in on_close */
    dg_loop_stats loop_at_close;    /* the loop's, read in on_close */
} counter;

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    counter *c = data;

    if (c->keep) {
        cr_assert_lt(c->received, KEEP_MAX);
        cr_assert_eq(dg_message_keep(sock, msg, &c->kept[c->received]), 0);
    }
    c->received++;
    if (c->close_in_message && c->received == 1)
        cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
}

static void on_batch(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    counter *c = data;

    (void)msgs;
    c->received += (int)count;
    if (c->close_in_message && dg_socket_close(sock, NULL, NULL) != 0)
        cr_assert_fail("a batch after the close");
}

static void on_close(dg_socket *sock, void *data)
{
    counter *c = data;

    cr_assert_eq(dg_socket_get_stats(sock, &c->at_close), 0);
    cr_assert_eq(dg_loop_get_stats(dg_socket_loop(sock), &c->loop_at_close), 0);
    c->closed++;
}

static const dg_socket_handlers handlers = {.on_message = on_message, .on_close = on_close};
static const dg_socket_handlers batch_handlers = {.on_message_batch = on_batch,
                                                  .on_close = on_close};

/* A receiver bound to loopback port 0 (its multishot receive armed), and
 * its port. */
static dg_socket *receiver(dg_loop *loop, dg_socket_type type, const dg_socket_handlers *h,
                           counter *c, int *port)
{
    dg_socket *sock = dgt_socket_new(loop, type, 0, h, c);

    *port = dgt_bind(loop, sock, dgt_loopback(dgt_family(type)), 0);
    return sock;
}

/* n datagrams from a plain socket, queued on the receiver when it returns. */
static void send_n(dg_socket_type type, int port, int n)
{
    int family = dgt_family(type);
    int fd = dgt_plain_socket(family, 0);

    for (int i = 0; i < n; i++)
        dgt_plain_send(fd, family, port, "datagram", 8);
    close(fd);
}

static void close_and_wait(dg_loop *loop, dg_socket *sock, counter *c)
{
    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    dgt_run_until(loop, &c->closed, 1, DGT_WAIT_MS);
}

static void queued_at_close(dg_socket_type type)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter c = {0};
    int port;
    dg_socket *sock = receiver(loop, type, &handlers, &c, &port);

    send_n(type, port, 20);
    close_and_wait(loop, sock, &c); /* the loop never ran in between */
    cr_assert_eq(c.received, 0);
    cr_assert_eq(c.at_close.rx_datagrams, 0);
    cr_assert_eq(c.at_close.rx_discarded_at_close, 20);
    cr_assert_eq(c.at_close.rx_kernel_drops, 0);
    dgt_loop_finish(loop);
}

/* E14 */
Test(close_count, queued_datagrams_udp4) { queued_at_close(DG_UDP4); }

/* E14 */
Test(close_count, queued_datagrams_udp6)
{
    dgt_require_ipv6();
    queued_at_close(DG_UDP6);
}

/* Every buffer of a KEEP_MAX-buffer ring kept: the receive stops and the
 * next datagrams wait in the kernel's queue, where only the close's read
 * of the queue can count them. Returns the receiver, open. */
static dg_socket *dry_receiver(dg_loop *loop, counter *c, int *port)
{
    dg_socket *sock;

    c->keep = true;
    sock = receiver(loop, DG_UDP4, &handlers, c, port);
    send_n(DG_UDP4, *port, KEEP_MAX);
    dgt_run_until(loop, &c->received, KEEP_MAX, DGT_WAIT_MS);
    return sock;
}

static void release_kept(counter *c)
{
    for (int i = 0; i < KEEP_MAX; i++)
        cr_assert_eq(dg_rx_buf_release(c->kept[i]), 0);
}

/* E14 */
Test(close_count, kernel_queue_behind_a_dry_ring)
{
    dg_loop *loop = dgt_loop_new_sized(KEEP_MAX, 2048);
    counter c = {0};
    int port;
    dg_socket *sock = dry_receiver(loop, &c, &port);

    send_n(DG_UDP4, port, 5); /* no buffer for them: they wait in the kernel */
    close_and_wait(loop, sock, &c);
    cr_assert_eq(c.at_close.rx_datagrams, KEEP_MAX);
    cr_assert_eq(c.at_close.rx_discarded_at_close, 5);
    release_kept(&c);
    dgt_loop_finish(loop);
}

/* Ten datagrams queued, then the loop runs until the delivery callback of
 * h, which closes the socket at its first call, has let the close finish.
 * Returns the datagrams delivered; the rest must be counted. */
static int close_in_delivery(const dg_socket_handlers *h, counter *c)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int port;

    c->close_in_message = true;
    (void)receiver(loop, DG_UDP4, h, c, &port);
    send_n(DG_UDP4, port, 10);
    dgt_run_until(loop, &c->closed, 1, DGT_WAIT_MS);
    cr_assert_eq(c->at_close.rx_datagrams, (uint64_t)c->received);
    cr_assert_eq(c->at_close.rx_discarded_at_close, 10 - (uint64_t)c->received);
    dgt_loop_finish(loop);
    return c->received;
}

/* E14 */
Test(close_count, close_in_on_message_counts_the_rest)
{
    counter c = {0};

    cr_assert_eq(close_in_delivery(&handlers, &c), 1);
}

/* E14: the first batch is delivered whole (however many it holds). */
Test(close_count, close_in_on_message_batch_counts_the_rest)
{
    counter c = {0};

    cr_assert_geq(close_in_delivery(&batch_handlers, &c), 1);
}

/* E14 */
Test(close_count, nothing_queued_counts_zero)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter bound = {0}, unbound = {0};
    int port;
    dg_socket *sock = receiver(loop, DG_UDP4, &handlers, &bound, &port);

    send_n(DG_UDP4, port, 3);
    dgt_run_until(loop, &bound.received, 3, DGT_WAIT_MS);
    close_and_wait(loop, sock, &bound);
    cr_assert_eq(bound.at_close.rx_datagrams, 3);
    cr_assert_eq(bound.at_close.rx_discarded_at_close, 0);
    close_and_wait(loop, dgt_socket_new(loop, DG_UDP4, 0, &handlers, &unbound), &unbound);
    cr_assert_eq(unbound.at_close.rx_discarded_at_close, 0);
    cr_assert_eq(unbound.loop_at_close.rx_discarded_at_close, 0);
    dgt_loop_finish(loop);
}

/* E14 */
Test(close_count, loop_total_sums_closed_sockets)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter a = {0}, b = {0};
    int port_a, port_b;
    dg_socket *sa = receiver(loop, DG_UDP4, &handlers, &a, &port_a);
    dg_socket *sb = receiver(loop, DG_UDP4, &handlers, &b, &port_b);
    dg_loop_stats stats;

    send_n(DG_UDP4, port_a, 3);
    send_n(DG_UDP4, port_b, 4);
    cr_assert_eq(dg_loop_get_stats(loop, &stats), 0);
    cr_assert_eq(stats.rx_discarded_at_close, 0, "open sockets count nothing yet");
    cr_assert_eq(dg_socket_close(sa, NULL, NULL), 0);
    cr_assert_eq(dg_socket_close(sb, NULL, NULL), 0);
    dgt_run_until(loop, &b.closed, 1, DGT_WAIT_MS);
    cr_assert_eq(a.closed, 1);
    cr_assert_eq(a.at_close.rx_discarded_at_close, 3);
    cr_assert_eq(b.at_close.rx_discarded_at_close, 4);
    cr_assert_eq(a.loop_at_close.rx_discarded_at_close, 3, "added before on_close");
    cr_assert_eq(b.loop_at_close.rx_discarded_at_close, 7);
    cr_assert_eq(dg_loop_get_stats(loop, &stats), 0);
    cr_assert_eq(stats.rx_discarded_at_close, 7);
    dgt_loop_finish(loop);
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    cr_assert_eq(status, 0);
    (*(int *)data)++;
}

/* E14: the adopted fd's duplicate (the other holder) still finds the
 * queued datagrams, and later ones: no read, no filter. */
Test(close_count, adopted_fd_left_alone)
{
    dg_loop *loop = dgt_loop_new_sized(KEEP_MAX, 2048);
    counter c = {.keep = true};
    int fd = dgt_plain_socket(AF_INET, 0), port = dgt_plain_port(fd), bound = 0;
    int other = dup(fd);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &handlers, &c);
    dg_bind_options options = {.fd = fd};
    char buf[16];

    cr_assert_geq(other, 0);
    cr_assert_eq(dg_socket_bind_ex(sock, &options, on_bound, &bound), 0);
    dgt_run_until(loop, &bound, 1, DGT_WAIT_MS);
    send_n(DG_UDP4, port, KEEP_MAX);
    dgt_run_until(loop, &c.received, KEEP_MAX, DGT_WAIT_MS);
    send_n(DG_UDP4, port, 2);
    close_and_wait(loop, sock, &c);
    cr_assert_eq(c.at_close.rx_discarded_at_close, 0);
    send_n(DG_UDP4, port, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dgt_plain_recv_nowait(other, buf, sizeof(buf)), 8, "datagram %d", i);
    cr_assert_eq(dgt_plain_recv_nowait(other, buf, sizeof(buf)), -1);
    close(other);
    release_kept(&c);
    dgt_loop_finish(loop);
}

Test(close_count, bad_input_unchanged)
{
    dg_socket_stats stats;
    dg_loop_stats loop_stats;
    dg_loop *loop = dgt_loop_new(NULL);

    dgt_assert_code(dg_socket_get_stats(NULL, &stats), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_loop_get_stats(NULL, &loop_stats), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_loop_get_stats(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_close(NULL, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_loop_finish(loop);
}

/* One UDP_SEGMENT send of segments x 100 bytes from a plain socket: a
 * GRO receiver on loopback gets it as one buffer of several datagrams. */
static void send_gso(int port, int segments)
{
    static unsigned char payload[64 * 100];
    int fd = dgt_plain_socket(AF_INET, 0);
    struct sockaddr_storage to;
    socklen_t tolen = dgt_sockaddr(AF_INET, port, &to);
    struct iovec iov = {.iov_base = payload, .iov_len = (size_t)segments * 100};
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_name = &to, .msg_namelen = tolen, .msg_iov = &iov,
                         .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *cm;
    uint16_t size = 100;

    memset(&control, 0, sizeof(control)); /* the padding goes to the kernel too */
    cm = CMSG_FIRSTHDR(&msg);

    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(size));
    memcpy(CMSG_DATA(cm), &size, sizeof(size));
    cr_assert_eq(sendmsg(fd, &msg, 0), (ssize_t)iov.iov_len, "sendmsg UDP_SEGMENT");
    close(fd);
}

/* E14: a GRO buffer holds several datagrams; a close from on_message
 * after the first counts the rest of the buffer (and of the turn). */
Test(close_count, close_in_the_middle_of_a_gro_buffer)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter c = {.close_in_message = true};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_GRO, &handlers, &c);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);

    send_gso(port, 10);
    send_gso(port, 10);
    dgt_run_until(loop, &c.closed, 1, DGT_WAIT_MS);
    cr_assert_eq(c.at_close.rx_datagrams, 1);
    cr_assert_eq(c.at_close.rx_discarded_at_close, 19);
    cr_assert_gt(c.at_close.rx_gro_buffers, 0, "the first buffer held several datagrams");
    dgt_loop_finish(loop);
}

/* E14: batches of GRO buffers: the first batch call closes the socket; the
 * datagrams of the buffers after it are counted, whole buffers and the
 * part of one a full batch cut. */
Test(close_count, close_in_a_batch_of_gro_buffers)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter c = {.close_in_message = true};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_GRO, &batch_handlers, &c);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);

    for (int i = 0; i < 4; i++)
        send_gso(port, 50);
    dgt_run_until(loop, &c.closed, 1, DGT_WAIT_MS);
    cr_assert_geq(c.received, 1);
    cr_assert_leq(c.received, DG_MESSAGE_BATCH_MAX);
    cr_assert_eq(c.at_close.rx_datagrams, (uint64_t)c.received);
    cr_assert_eq(c.at_close.rx_discarded_at_close, 200 - (uint64_t)c.received);
    dgt_loop_finish(loop);
}

/* E14: a batch gathered for on_message_batch but not yet delivered when a
 * callback of another kind (a send's, a post's, in the same walk of
 * completions) closes its socket: the flush at the end of the walk finds
 * it closed and counts the batch. The walk's order cannot be arranged from
 * outside, so the batch is put in place directly. */
Test(close_count, pending_batch_of_a_closed_socket)
{
    dg_loop *loop = dgt_loop_new(NULL);
    counter c = {0};
    int port;
    dg_socket *sock = receiver(loop, DG_UDP4, &batch_handlers, &c, &port);
    struct dg__rx *rx = &loop->dgram.rx;

    rx->batch_sock = sock;
    rx->batch_count = 3; /* no buffers: batch_nbids stays 0 */
    cr_assert_eq(dg_socket_close(sock, NULL, NULL), 0);
    dg__rx_batch_flush(loop);
    cr_assert_null(rx->batch_sock);
    dgt_run_until(loop, &c.closed, 1, DGT_WAIT_MS);
    cr_assert_eq(c.received, 0, "no batch after the close");
    cr_assert_eq(c.at_close.rx_discarded_at_close, 3);
    dgt_loop_finish(loop);
}

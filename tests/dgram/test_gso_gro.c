/* GSO send runs and UDP_GRO receive: runs of equal-size datagrams to one
 * destination leave as one UDP_SEGMENT send but arrive, and complete, one
 * datagram at a time and in order; a kernel refusal (EINVAL) turns GSO off
 * for the socket and re-sends the run datagram by datagram; a GRO receiver
 * still sees one datagram per on_message. All on 127.0.0.1. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "support/helpers.h"

#define COUNT 300

struct rx {
    dgt_numbered n; /* first: the handler's data is also a dgt_numbered */
    size_t sizes[COUNT];
};

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct rx *rx = data;
    (void)sock;
    if (rx->n.messages < COUNT)
        rx->sizes[rx->n.messages] = msg->length;
    dgt_numbered_check(&rx->n, msg);
}

#define CHUNK 50 /* fits any receive queue, so the kernel drops nothing */

/* Sends datagrams [from, from + CHUNK) numbered; size_of(i) gives each
 * one's size. */
static void send_chunk(dg_socket *tx, int port, int from, size_t (*size_of)(int),
                       dgt_send_rec *rec)
{
    static unsigned char buf[2048];
    for (int i = from; i < from + CHUNK; i++) {
        size_t len = size_of(i);
        uint32_t seq = (uint32_t)i;
        dgt_numbered_fill(buf, len, seq);
        dgt_assert_code(dg_socket_send(tx, buf, len, port, "127.0.0.1", dgt_on_send, rec), 0);
    }
}

/* All COUNT datagrams, a chunk at a time, each chunk received before the
 * next is sent (all of a chunk is queued in one turn, so it forms runs). */
static void send_numbered(dg_loop *loop, dg_socket *tx, int port, size_t (*size_of)(int),
                          dgt_send_rec *rec, struct rx *rx)
{
    for (int from = 0; from < COUNT; from += CHUNK) {
        send_chunk(tx, port, from, size_of, rec);
        dgt_run_until(loop, &rec->calls, from + CHUNK, DGT_WAIT_MS);
        dgt_run_until(loop, &rx->n.messages, from + CHUNK, DGT_WAIT_MS);
    }
}

static size_t size_equal(int i)
{
    (void)i;
    return 1000;
}

static size_t size_mixed(int i)
{
    return (i % 7 == 3) ? 500 : 1000; /* runs broken every few datagrams */
}

static void run_case(unsigned tx_flags, unsigned rx_flags, size_t (*size_of)(int),
                     dg_socket_stats *tx_stats)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct rx rx = {0};
    dgt_send_rec rec = {0};
    dg_socket_handlers h = {.on_message = on_message};
    dg_socket *rxs = dgt_socket_new(loop, DG_UDP4, rx_flags, &h, &rx);
    dg_socket *txs;
    txs = dgt_socket_new(loop, DG_UDP4, tx_flags, NULL, NULL);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dgt_bind(loop, txs, "127.0.0.1", 0);

    send_numbered(loop, txs, port, size_of, &rec, &rx);
    cr_assert_eq(rec.errors, 0);
    cr_assert_eq(rx.n.bad, 0, "%d datagrams arrived wrong or out of order", rx.n.bad);
    for (int i = 0; i < COUNT; i++)
        cr_assert_eq(rx.sizes[i], size_of(i), "datagram %d has %zu bytes", i, rx.sizes[i]);
    cr_assert_eq(dg_socket_send_queue_count(txs), 0);
    dg_socket_get_stats(txs, tx_stats);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    cr_assert_eq(rec.calls, COUNT, "every send callback exactly once");
    dgt_loop_finish(loop);
}

TestSuite(gso_gro, .description = "GSO send runs and UDP_GRO receive on loopback");

Test(gso_gro, equal_size_run_arrives_in_order)
{
    dg_socket_stats st;
    run_case(0, 0, size_equal, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    cr_assert_eq(st.tx_bytes, (uint64_t)COUNT * 1000);
    cr_assert_gt(st.tx_gso_sends, 0, "the runs went out as GSO sends");
}

Test(gso_gro, mixed_sizes_keep_their_order)
{
    dg_socket_stats st;
    run_case(0, 0, size_mixed, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
}

Test(gso_gro, without_gso_the_same)
{
    dg_socket_stats st;
    run_case(DG_SOCKET_NO_GSO, 0, size_mixed, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    cr_assert_eq(st.tx_gso_sends, 0);
}

Test(gso_gro, gro_receiver_sees_single_datagrams)
{
    dg_socket_stats st;
    run_case(0, DG_SOCKET_GRO, size_equal, &st);
    run_case(0, DG_SOCKET_GRO, size_mixed, &st);
}

Test(gso_gro, gro_needs_full_size_buffers)
{
    dg_loop *loop = dgt_loop_new_sized(0, 2048);
    dg_socket_options o = {.type = DG_UDP4, .flags = DG_SOCKET_GRO};
    dg_socket *s = NULL;
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, &s), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(s);
    dgt_loop_finish(loop);
}

/* The kernel refuses GSO on a socket without UDP checksums (SO_NO_CHECK)
 * with EINVAL: the run must still arrive, datagram by datagram, each
 * callback once with its byte count. */
Test(gso_gro, einval_turns_gso_off_and_resends)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct rx rx = {0};
    dgt_send_rec rec = {0};
    dg_socket_handlers h = {.on_message = on_message};
    dg_socket *rxs = dgt_socket_new(loop, DG_UDP4, 0, &h, &rx);
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    dgt_bind(loop, txs, "127.0.0.1", 0);
    int one = 1;
    cr_assert_eq(setsockopt(dg_socket_fd(txs), SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)), 0);

    send_numbered(loop, txs, port, size_equal, &rec, &rx);
    cr_assert_eq(rec.errors, 0);
    cr_assert_eq(rx.n.bad, 0);
    dg_socket_stats st;
    dg_socket_get_stats(txs, &st);
    cr_assert_eq(st.tx_gso_sends, 0, "GSO stayed on after EINVAL");
    cr_assert_eq(st.tx_datagrams, COUNT);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* Close right after a run was queued: the datagrams queued before close
 * complete (sent or -ECANCELED), each exactly once, before on_close. */
Test(gso_gro, close_with_a_pending_run)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_send_rec rec = {0};
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int sink = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(sink);
    dgt_bind(loop, txs, "127.0.0.1", 0);
    static unsigned char buf[1000];
    for (int i = 0; i < 20; i++)
        dgt_assert_code(
            dg_socket_send(txs, buf, sizeof(buf), port, "127.0.0.1", dgt_on_send, &rec), 0);
    dgt_close_socket(loop, txs);
    cr_assert_eq(rec.calls, 20);
    close(sink);
    dgt_loop_finish(loop);
}

/* Engine send buffers (dg_send_buffer_get / dg_socket_send_buffer): the
 * payload is written once, into a buffer the loop owns, and sent without
 * a copy; the buffer goes back to the pool after the send's callback (or,
 * zero-copy, after the kernel's notification). Numbered datagrams on
 * 127.0.0.1 and ::1 check the data; a small pool checks that every buffer
 * comes back; bad input checks the codes and that a failed call leaves the
 * buffer with the caller. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "support/helpers.h"

#define COUNT 400
#define CHUNK 50 /* fits any receive queue, so the kernel drops nothing */

static void on_closed(dg_socket *sock, void *data)
{
    (void)sock;
    ++*(int *)data;
}

static dg_loop *loop_with_pool(unsigned buffers, unsigned size, unsigned zerocopy_min)
{
    dg_loop_options o;
    dg_loop_options_init(&o);
    o.send_buffers = buffers;
    o.send_buffer_size = size;
    o.send_zerocopy_min = zerocopy_min;
    return dgt_loop_new(&o);
}

/* A small pool, and a sender and a receiver bound on 127.0.0.1 (the
 * receiver never reads: its queue holds the few datagrams sent here). */
struct pair {
    dg_loop *loop;
    dg_socket *rxs, *txs;
    int port;
};

static struct pair pair_open(unsigned buffers, unsigned size)
{
    struct pair p;
    p.loop = loop_with_pool(buffers, size, 0);
    p.rxs = dgt_socket_new(p.loop, DG_UDP4, 0, NULL, NULL);
    p.txs = dgt_socket_new(p.loop, DG_UDP4, 0, NULL, NULL);
    p.port = dgt_bind(p.loop, p.rxs, "127.0.0.1", 0);
    return p;
}

/* Takes every buffer of the pool, checks the next take fails, and puts
 * them all back: the pool is whole again. */
static void assert_pool_whole(dg_loop *loop, unsigned buffers)
{
    dg_send_buffer **all = calloc(buffers, sizeof(*all));
    cr_assert_not_null(all);
    for (unsigned i = 0; i < buffers; i++)
        dgt_assert_code(dg_send_buffer_get(loop, &all[i]), 0);
    dg_send_buffer *extra = NULL;
    dgt_assert_code(dg_send_buffer_get(loop, &extra), -ENOBUFS);
    for (unsigned i = 0; i < buffers; i++)
        dgt_assert_code(dg_send_buffer_put(loop, all[i]), 0);
    free(all);
}

static size_t size_of(int i, size_t base)
{
    return (i % 9 == 4) ? base / 2 : base; /* runs broken now and then */
}

/* COUNT numbered datagrams written into engine buffers, CHUNK at a time;
 * every one arrives intact and in order, every callback runs once. */
static void send_numbered(dg_loop *loop, dg_socket_type type, size_t base,
                          dg_socket_stats *tx_stats)
{
    dgt_numbered rx = {0};
    dgt_send_rec tx = {0};
    dg_socket_handlers h = {.on_message = dgt_on_numbered};
    dg_socket *rxs = dgt_socket_new(loop, type, 0, &h, &rx);
    dg_socket *txs = dgt_socket_new(loop, type, 0, NULL, NULL);
    const char *host = dgt_loopback(dgt_family(type));
    int port = dgt_bind(loop, rxs, host, 0);
    /* Zero-copy datagrams are charged whole pages in the receive queue. */
    cr_assert_geq(dg_socket_set_recv_buffer_size(rxs, 4 << 20, NULL), 0);
    struct sockaddr_storage to;
    socklen_t tolen = dgt_sockaddr(dgt_family(type), port, &to);
    for (int from = 0; from < COUNT; from += CHUNK) {
        for (int i = from; i < from + CHUNK; i++) {
            dg_send_buffer *b = NULL;
            dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
            size_t len = size_of(i, base);
            cr_assert_geq(b->capacity, len);
            dgt_numbered_fill(b->data, len, (uint32_t)i);
            if (i % 2)
                dgt_assert_code(
                    dg_socket_send_buffer(txs, b, len, port, host, dgt_on_send, &tx), 0);
            else
                dgt_assert_code(dg_socket_send_buffer_to(txs, b, len, (struct sockaddr *)&to,
                                                         tolen, dgt_on_send, &tx),
                                0);
        }
        dgt_run_until(loop, &tx.calls, from + CHUNK, DGT_WAIT_MS);
        dgt_run_until(loop, &rx.messages, from + CHUNK, DGT_WAIT_MS);
    }
    cr_assert_eq(tx.errors, 0, "last status %d", tx.status);
    cr_assert_eq(rx.bad, 0, "%d datagrams arrived wrong or out of order", rx.bad);
    cr_assert_eq(rx.messages, COUNT);
    dg_socket_get_stats(txs, tx_stats);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    cr_assert_eq(tx.calls, COUNT, "every send callback exactly once");
    /* Zero-copy buffers come back with the kernel's notifications, which
     * keep the loop alive until they arrive. */
    dgt_assert_code(dg_loop_run(loop, DG_RUN_DEFAULT), 0);
}

TestSuite(send_buffers, .description = "engine send buffers: no copy, every buffer returns");

Test(send_buffers, numbered_datagrams_arrive_intact_udp4)
{
    dg_loop *loop = loop_with_pool(64, 1200, 0);
    dg_socket_stats st;
    send_numbered(loop, DG_UDP4, 1200, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    cr_assert_eq(st.tx_zerocopy_sends, 0);
    assert_pool_whole(loop, 64);
    dgt_loop_finish(loop);
}

Test(send_buffers, numbered_datagrams_arrive_intact_udp6)
{
    dgt_require_ipv6();
    dg_loop *loop = loop_with_pool(64, 1200, 0);
    dg_socket_stats st;
    send_numbered(loop, DG_UDP6, 1000, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    assert_pool_whole(loop, 64);
    dgt_loop_finish(loop);
}

/* The sendmsg path the engine uses where IORING_OP_SEND cannot take an
 * address (Linux 6.0): forced here with DGRING_NO_SEND_TO. */
Test(send_buffers, sendmsg_path_without_send_to)
{
    setenv("DGRING_NO_SEND_TO", "1", 1);
    dg_loop *loop = loop_with_pool(64, 1200, 0);
    cr_assert(!dg_loop_capabilities(loop)->send_to);
    dg_socket_stats st;
    send_numbered(loop, DG_UDP4, 1200, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    assert_pool_whole(loop, 64);
    dgt_loop_finish(loop);
}

/* The probe says what the kernel does: IORING_OP_SEND takes an address
 * from Linux 6.1 on; the epoll backend never uses ring ops. A probe that
 * always said no would leave every other test here green. */
Test(send_buffers, send_to_probe_matches_the_kernel)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct utsname u;
    int major = 0, minor = 0;
    cr_assert_eq(uname(&u), 0);
    cr_assert_eq(sscanf(u.release, "%d.%d", &major, &minor), 2, "release %s", u.release);
    bool has = major > 6 || (major == 6 && minor >= 1);
    if (strcmp(dg_loop_backend(loop), "epoll") == 0)
        cr_assert(!dg_loop_capabilities(loop)->send_to);
    else
        cr_assert_eq(dg_loop_capabilities(loop)->send_to, has, "kernel %s", u.release);
    dgt_loop_finish(loop);
}

/* Zero-copy from the registered pool: over loopback the kernel copies at
 * delivery, but the data, order and buffer accounting must be the same. */
Test(send_buffers, zero_copy_sends_return_their_buffers)
{
    dg_loop *loop = loop_with_pool(64, 1200, 256);
    bool zc = !dgt_backend_is_epoll() && dg_loop_capabilities(loop)->send_to;
    dg_socket_stats st;
    send_numbered(loop, DG_UDP4, 1200, &st);
    cr_assert_eq(st.tx_datagrams, COUNT);
    if (zc) /* io_uring on 6.1+: every datagram of >= 256 bytes went zero-copy */
        cr_assert_eq(st.tx_zerocopy_sends, COUNT);
    else
        cr_assert_eq(st.tx_zerocopy_sends, 0);
    assert_pool_whole(loop, 64);
    dgt_loop_finish(loop);
}

/* A pool of 4: a fifth take fails until a send's callback has run. */
Test(send_buffers, exhausted_pool_says_enobufs_until_a_send_completes)
{
    struct pair p = pair_open(4, 256);
    dg_loop *loop = p.loop;
    dgt_send_rec tx = {0};
    dg_send_buffer *b[4], *extra = NULL;
    for (int i = 0; i < 4; i++) {
        dgt_assert_code(dg_send_buffer_get(loop, &b[i]), 0);
        cr_assert_eq(b[i]->capacity, 256);
        for (int j = 0; j < i; j++)
            cr_assert_neq(b[i]->data, b[j]->data);
    }
    dgt_assert_code(dg_send_buffer_get(loop, &extra), -ENOBUFS);
    for (int i = 0; i < 4; i++)
        dgt_assert_code(
            dg_socket_send_buffer(p.txs, b[i], 100, p.port, "127.0.0.1", dgt_on_send, &tx), 0);
    /* In flight: still the engine's. */
    dgt_assert_code(dg_send_buffer_get(loop, &extra), -ENOBUFS);
    dgt_run_until(loop, &tx.calls, 4, DGT_WAIT_MS);
    cr_assert_eq(tx.errors, 0);
    assert_pool_whole(loop, 4);
    dgt_close_socket(loop, p.txs);
    dgt_close_socket(loop, p.rxs);
    dgt_loop_finish(loop);
}

Test(send_buffers, bad_input_codes)
{
    dg_loop *loop = loop_with_pool(8, 512, 0);
    dg_loop *other = loop_with_pool(8, 512, 0);
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_send_rec tx = {0};
    dg_send_buffer *b = NULL, *theirs = NULL, fake = {.data = NULL, .capacity = 512};

    dgt_assert_code(dg_send_buffer_get(NULL, &b), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_get(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(NULL, &fake), DG_ERR_INVALID_ARG_VALUE);
    /* Before the pool exists, and after: a pointer that is not one of the
     * loop's buffers. */
    dgt_assert_code(dg_send_buffer_put(loop, &fake), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
    dgt_assert_code(dg_send_buffer_put(loop, &fake), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(loop, (dg_send_buffer *)((char *)b + 1)),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_send_buffer(txs, &fake, 10, 9, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_send_buffer(NULL, b, 10, 9, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    /* Another loop's buffer. */
    dgt_assert_code(dg_send_buffer_get(other, &theirs), 0);
    dgt_assert_code(dg_socket_send_buffer(txs, theirs, 10, 9, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(loop, theirs), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(other, theirs), 0);
    /* Longer than the buffer. */
    dgt_assert_code(dg_socket_send_buffer(txs, b, 513, 9, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    /* Node's checks, in Node's order; the buffer stays the caller's. */
    dgt_assert_code(dg_socket_send_buffer(txs, b, 10, 0, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send_buffer(txs, b, 10, 70000, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_SOCKET_BAD_PORT);
    struct sockaddr_storage v6;
    socklen_t v6len = dgt_sockaddr(AF_INET6, 9, &v6);
    dgt_assert_code(
        dg_socket_send_buffer_to(txs, b, 10, (struct sockaddr *)&v6, v6len, dgt_on_send, &tx),
        DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send_buffer_to(txs, b, 10, NULL, 0, dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    /* Put back once; twice is an error, and so is sending it then. */
    dgt_assert_code(dg_send_buffer_put(loop, b), 0);
    dgt_assert_code(dg_send_buffer_put(loop, b), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_send_buffer(txs, b, 10, 9, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(tx.calls, 0, "no callback for a call that returned an error");
    assert_pool_whole(loop, 8);
    dgt_close_socket(loop, txs);
    dgt_loop_finish(loop);
    dgt_loop_finish(other);
}

/* A buffer given to a send cannot be given again, put back, or sent from
 * a closed socket; the failed calls leave it where it was. */
Test(send_buffers, ownership_moves_only_on_success)
{
    struct pair p = pair_open(8, 512);
    dg_loop *loop = p.loop;
    dg_socket *txs = p.txs;
    int port = p.port;
    dgt_send_rec tx = {0};
    dg_send_buffer *b = NULL, *c = NULL;
    dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
    dgt_assert_code(dg_send_buffer_get(loop, &c), 0);
    memset(b->data, 'b', 64);
    dgt_assert_code(dg_socket_send_buffer(txs, b, 64, port, "127.0.0.1", dgt_on_send, &tx), 0);
    dgt_assert_code(dg_socket_send_buffer(txs, b, 64, port, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_send_buffer_put(loop, b), DG_ERR_INVALID_ARG_VALUE);
    dgt_run_until(loop, &tx.calls, 1, DGT_WAIT_MS);
    int closed = 0;
    dgt_assert_code(dg_socket_close(txs, on_closed, &closed), 0);
    dgt_assert_code(dg_socket_send_buffer(txs, c, 64, port, "127.0.0.1", dgt_on_send, &tx),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &closed, 1, DGT_WAIT_MS);
    dgt_assert_code(dg_send_buffer_put(loop, c), 0);
    cr_assert_eq(tx.calls, 1);
    assert_pool_whole(loop, 8);
    dgt_close_socket(loop, p.rxs);
    dgt_loop_finish(loop);
}

/* Sends queued behind an implicit bind and a host-name lookup (localhost
 * comes from the hosts file) keep their order; closing a socket right
 * after its sends still completes each through its callback (sent or
 * failed) and returns every buffer. */
Test(send_buffers, queued_sends_keep_order_and_fail_cleanly)
{
    dg_loop *loop = loop_with_pool(16, 512, 0);
    dgt_numbered rx = {0};
    dgt_send_rec tx = {0};
    dg_socket_handlers h = {.on_message = dgt_on_numbered};
    dg_socket *rxs = dgt_socket_new(loop, DG_UDP4, 0, &h, &rx);
    dg_socket *txs = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, rxs, "127.0.0.1", 0);
    for (uint32_t i = 0; i < 8; i++) {
        dg_send_buffer *b = NULL;
        dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
        dgt_numbered_fill(b->data, 64, i);
        dgt_assert_code(dg_socket_send_buffer(txs, b, 64, port, i % 2 ? "localhost" : "127.0.0.1",
                                              dgt_on_send, &tx),
                        0);
    }
    dgt_run_until(loop, &tx.calls, 8, DGT_WAIT_MS);
    dgt_run_until(loop, &rx.messages, 8, DGT_WAIT_MS);
    cr_assert_eq(tx.errors, 0);
    cr_assert_eq(rx.bad, 0);

    /* A fresh socket: its sends wait for the implicit bind; close it first. */
    dg_socket *late = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    for (int i = 0; i < 4; i++) {
        dg_send_buffer *b = NULL;
        dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
        dgt_assert_code(dg_socket_send_buffer(late, b, 32, port, "localhost", dgt_on_send, &tx), 0);
    }
    dgt_close_socket(loop, late);
    dgt_run_until(loop, &tx.calls, 12, DGT_WAIT_MS);
    cr_assert_eq(tx.calls, 12, "each of the closed socket's sends completed once");
    assert_pool_whole(loop, 16);
    dgt_close_socket(loop, txs);
    dgt_close_socket(loop, rxs);
    dgt_loop_finish(loop);
}

/* Buffers still taken when the loop closes are freed with it (ASan and
 * valgrind check that nothing leaks). */
Test(send_buffers, loop_close_with_buffers_taken)
{
    dg_loop *loop = loop_with_pool(8, 512, 0);
    dg_send_buffer *b = NULL;
    dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
    dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
    memset(b->data, 0, b->capacity);
    dgt_loop_finish(loop);
}

Test(send_buffers, pool_options_are_checked)
{
    dg_loop_options o;
    dg_loop *loop = NULL;
    dg_loop_options_init(&o);
    cr_assert_eq(o.send_buffers, 256);
    cr_assert_eq(o.send_buffer_size, 2048);
    cr_assert_eq(o.send_zerocopy_min, 0);
    o.send_buffer_size = 65536;
    dgt_assert_code(dg_loop_new(&loop, &o), DG_ERR_INVALID_ARG_VALUE);
    dg_loop_options_init(&o);
    o.send_buffers = 65537;
    dgt_assert_code(dg_loop_new(&loop, &o), DG_ERR_INVALID_ARG_VALUE);
    dg_loop_options_init(&o);
    o.send_zerocopy_min = 65536;
    dgt_assert_code(dg_loop_new(&loop, &o), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);
    /* The largest datagram fits the largest buffer. */
    dg_loop_options_init(&o);
    o.send_buffers = 2;
    o.send_buffer_size = 65535;
    loop = dgt_loop_new(&o);
    dg_send_buffer *b = NULL;
    dgt_assert_code(dg_send_buffer_get(loop, &b), 0);
    cr_assert_eq(b->capacity, 65535);
    dgt_assert_code(dg_send_buffer_put(loop, b), 0);
    dgt_loop_finish(loop);
}

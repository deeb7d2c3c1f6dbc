/* The loop's send slots (engine/dgram/send.c): a send takes a slot of the
 * loop's array from its free list. A zero-copy send holds its slot past
 * its callback, until the kernel's notification, so every slot can be
 * held while max_pending_sends is not reached: a send then gets a heap
 * slot, freed when it ends and never put on the list, or -ENOMEM (no
 * callback) when that allocation fails. Notifications cannot be made to
 * lag from outside, so these tests empty the list on the loop's internals
 * (static link) and give it back afterwards; ASan and valgrind check that
 * every heap slot was freed. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "engine/dgram/dgram.h"
#include "support/helpers.h"

/* ---- An allocator that fails while asked to ------------------------------- */

static bool fail_allocations;

static void *t_malloc(size_t size)
{
    return fail_allocations ? NULL : malloc(size);
}

static void *t_calloc(size_t count, size_t size)
{
    return fail_allocations ? NULL : calloc(count, size);
}

static void *t_realloc(void *ptr, size_t size)
{
    return fail_allocations ? NULL : realloc(ptr, size);
}

static void install(void)
{
    cr_assert_eq(dg_replace_allocator(t_malloc, t_realloc, t_calloc, free), 0);
}

TestSuite(send_slots, .init = install, .timeout = 60);

/* ---- Holding every slot ----------------------------------------------------- */

typedef struct held {
    struct dg__send_req *free_slots;
    uint32_t fresh_slots;
} held;

/* As if zero-copy sends held every slot: the list empty, no slot left
 * that no send has had. */
static held hold_every_slot(dg_loop *loop)
{
    held h = {loop->dgram.free_slots, loop->dgram.fresh_slots};
    loop->dgram.free_slots = NULL;
    loop->dgram.fresh_slots = loop->core.options.max_pending_sends;
    return h;
}

static void give_back(dg_loop *loop, held h)
{
    loop->dgram.free_slots = h.free_slots;
    loop->dgram.fresh_slots = h.fresh_slots;
}

typedef struct pair {
    dg_loop *loop;
    dg_socket *sock;
    int rx_fd, rx_port;
    struct sockaddr_storage to;
    socklen_t tolen;
} pair;

/* A bound dgring socket and a plain receiver; one send run to its
 * callback, so the loop's slots exist. */
static pair pair_start(const dg_loop_options *options)
{
    pair p = {.loop = dgt_loop_new(options)};
    p.sock = dgt_socket_new(p.loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(p.loop, p.sock, "127.0.0.1", 0);
    p.rx_fd = dgt_plain_socket(AF_INET, 0);
    p.rx_port = dgt_plain_port(p.rx_fd);
    p.tolen = dgt_sockaddr(AF_INET, p.rx_port, &p.to);
    dgt_send_rec rec = {0};
    cr_assert_eq(dg_socket_send_to(p.sock, "w", 1, (const struct sockaddr *)&p.to, p.tolen,
                                   dgt_on_send, &rec),
                 0);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    char buf[8];
    cr_assert_eq(dgt_plain_recv(p.rx_fd, buf, sizeof(buf), DGT_WAIT_MS, NULL), 1);
    return p;
}

static void pair_finish(pair *p)
{
    dgt_close_socket(p->loop, p->sock);
    dgt_loop_finish(p->loop);
    close(p->rx_fd);
}

/* The datagram of the given seed and length arrives intact. */
static void expect_datagram(const pair *p, size_t len, unsigned seed)
{
    static unsigned char buf[2048];
    ssize_t got = dgt_plain_recv(p->rx_fd, buf, sizeof(buf), DGT_WAIT_MS, NULL);
    cr_assert_eq(got, (ssize_t)len, "datagram %u: %zd bytes, expected %zu", seed, got, len);
    cr_assert_eq(dgt_check(buf, len, seed), len, "datagram %u: its bytes", seed);
}

/* Each way into a send (a socket address send that fits the fast path's
 * copy, one that does not, one larger, a literal text address) gets a heap
 * slot when every slot is held: the datagram goes out whole, the callback
 * runs once with its length, and the heap slot does not join the list
 * when it ends. */
Test(send_slots, a_send_gets_a_heap_slot_when_every_slot_is_held)
{
    pair p = pair_start(NULL);
    held h = hold_every_slot(p.loop);
    static const size_t lens[] = {64, 8, 1000};
    unsigned char payload[1000];
    dgt_send_rec recs[4] = {{0}};
    int done = 0;
    for (unsigned i = 0; i < 3; i++) {
        dgt_fill(payload, lens[i], i);
        cr_assert_eq(dg_socket_send_to(p.sock, payload, lens[i], (const struct sockaddr *)&p.to,
                                       p.tolen, dgt_on_send, &recs[i]),
                     0, "send %u", i);
    }
    dgt_fill(payload, 100, 3);
    cr_assert_eq(dg_socket_send(p.sock, payload, 100, p.rx_port, "127.0.0.1", dgt_on_send,
                                &recs[3]),
                 0);
    cr_assert_eq(dg_socket_send_queue_count(p.sock), 4);
    for (unsigned i = 0; i < 4; i++) {
        dgt_run_until(p.loop, &recs[i].calls, 1, DGT_WAIT_MS);
        done += recs[i].calls;
    }
    cr_assert_eq(done, 4, "each callback exactly once");
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(recs[i].status, (int)lens[i], "send %u: status %d", i, recs[i].status);
    cr_assert_eq(recs[3].status, 100);
    for (unsigned i = 0; i < 3; i++)
        expect_datagram(&p, lens[i], i);
    expect_datagram(&p, 100, 3);
    cr_assert_null(p.loop->dgram.free_slots, "a heap slot went onto the list");
    cr_assert_eq(dg_socket_send_queue_count(p.sock), 0);
    give_back(p.loop, h);
    dgt_send_rec after = {0};
    dgt_fill(payload, 64, 9);
    cr_assert_eq(dg_socket_send_to(p.sock, payload, 64, (const struct sockaddr *)&p.to, p.tolen,
                                   dgt_on_send, &after),
                 0);
    dgt_run_until(p.loop, &after.calls, 1, DGT_WAIT_MS);
    expect_datagram(&p, 64, 9);
    pair_finish(&p);
}

/* A heap slot that cannot be allocated: the send fails with -ENOMEM, no
 * callback ever runs, nothing is queued, and the next send (memory back)
 * goes out. */
Test(send_slots, a_heap_slot_that_cannot_be_allocated_fails_the_send)
{
    pair p = pair_start(NULL);
    held h = hold_every_slot(p.loop);
    unsigned char payload[64];
    dgt_fill(payload, sizeof(payload), 1);
    dgt_send_rec rec = {0};
    fail_allocations = true;
    int rc = dg_socket_send_to(p.sock, payload, sizeof(payload), (const struct sockaddr *)&p.to,
                               p.tolen, dgt_on_send, &rec);
    int text_rc = dg_socket_send(p.sock, payload, sizeof(payload), p.rx_port, "127.0.0.1",
                                 dgt_on_send, &rec);
    fail_allocations = false;
    cr_assert_eq(rc, -ENOMEM, "socket address send: %d", rc);
    cr_assert_eq(text_rc, -ENOMEM, "literal send: %d", text_rc);
    cr_assert_eq(dg_socket_send_queue_count(p.sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(p.sock), 0);
    dgt_settle(p.loop, 50);
    cr_assert_eq(rec.calls, 0, "a failed send's callback ran");
    cr_assert_eq(dgt_plain_recv_nowait(p.rx_fd, payload, sizeof(payload)), -1);
    give_back(p.loop, h);
    cr_assert_eq(dg_socket_send_to(p.sock, payload, sizeof(payload),
                                   (const struct sockaddr *)&p.to, p.tolen, dgt_on_send, &rec),
                 0);
    dgt_run_until(p.loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, (int)sizeof(payload));
    pair_finish(&p);
}

/* max_pending_sends bounds heap slots too: with every slot held, the
 * sends past it are refused with DG_ERR_SEND_QUEUE_FULL, as they would be
 * from the list. */
Test(send_slots, heap_slots_stop_at_max_pending_sends)
{
    dg_loop_options o;
    dg_loop_options_init(&o);
    o.max_pending_sends = 4;
    pair p = pair_start(&o);
    held h = hold_every_slot(p.loop);
    dgt_send_rec rec = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dg_socket_send_to(p.sock, "x", 1, (const struct sockaddr *)&p.to, p.tolen,
                                       dgt_on_send, &rec),
                     0, "send %d", i);
    cr_assert_eq(dg_socket_send_to(p.sock, "x", 1, (const struct sockaddr *)&p.to, p.tolen,
                                   dgt_on_send, &rec),
                 DG_ERR_SEND_QUEUE_FULL);
    dgt_run_until(p.loop, &rec.calls, 4, DGT_WAIT_MS);
    cr_assert_eq(rec.errors, 0);
    give_back(p.loop, h);
    pair_finish(&p);
}

/* dg_loop_post: work handed to another loop's thread arrives exactly once,
 * in that thread, by both roads: ring to ring (IORING_OP_MSG_RING, from
 * another loop's callbacks) and the locked queue (from a plain thread, or a
 * loop posting to itself). A pending post keeps the target alive. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/helpers.h"

#define POSTS 2000

struct target {
    dg_loop *loop;
    pthread_t thread;
    atomic_int received;
    atomic_int wrong_thread;
    int expected;
    atomic_bool ready;
};

static void on_post(dg_loop *loop, void *arg)
{
    struct target *t = arg;
    if (loop != t->loop || !pthread_equal(pthread_self(), t->thread))
        atomic_fetch_add(&t->wrong_thread, 1);
    if (atomic_fetch_add(&t->received, 1) + 1 == t->expected)
        dg_loop_stop(loop);
}

static void on_keepalive(dg_timer *timer, void *data)
{
    (void)timer;
    (void)data;
}

/* The target thread: a loop kept alive by a long timer until every post
 * arrived, then closed. */
static void *target_main(void *arg)
{
    struct target *t = arg;
    dg_timer *timer;
    cr_assert_eq(dg_loop_new(&t->loop, NULL), 0);
    cr_assert_eq(dg_timer_new(t->loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 60000, 0, on_keepalive, NULL), 0);
    atomic_store(&t->ready, true);
    while (atomic_load(&t->received) < t->expected)
        dg_loop_run(t->loop, DG_RUN_ONCE);
    dg_timer_close(timer, NULL, NULL);
    dg_loop_run(t->loop, DG_RUN_DEFAULT);
    cr_assert_eq(dg_loop_close(t->loop), 0);
    return NULL;
}

static void start_target(struct target *t, int expected)
{
    t->expected = expected;
    cr_assert_eq(pthread_create(&t->thread, NULL, target_main, t), 0);
    while (!atomic_load(&t->ready))
        dgt_sleep_ms(1);
}

TestSuite(post, .description = "dg_loop_post across threads, by ring and by queue");

Test(post, from_a_plain_thread_by_the_locked_queue)
{
    struct target t = {0};
    start_target(&t, POSTS);
    for (int i = 0; i < POSTS; i++)
        cr_assert_eq(dg_loop_post(t.loop, on_post, &t), 0);
    pthread_join(t.thread, NULL);
    cr_assert_eq(atomic_load(&t.received), POSTS);
    cr_assert_eq(atomic_load(&t.wrong_thread), 0);
}

struct sender {
    struct target *target;
    int sent;
};

static void send_batch(dg_timer *timer, void *data)
{
    struct sender *s = data;
    for (int i = 0; i < 100 && s->sent < POSTS; i++, s->sent++)
        cr_assert_eq(dg_loop_post(s->target->loop, on_post, s->target), 0);
    if (s->sent == POSTS)
        dg_timer_close(timer, NULL, NULL);
}

Test(post, from_another_loop_by_the_ring)
{
    struct target t = {0};
    struct sender s = {.target = &t};
    dg_loop *loop = dgt_loop_new(NULL);
    dg_timer *timer;
    if (!dg_loop_capabilities(loop)->msg_ring)
        cr_skip("the kernel has no IORING_OP_MSG_RING (5.18); the queue road is tested above");
    start_target(&t, POSTS);
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 0, 1, send_batch, &s), 0);
    dgt_run(loop, DGT_WAIT_MS);
    pthread_join(t.thread, NULL);
    cr_assert_eq(atomic_load(&t.received), POSTS);
    cr_assert_eq(atomic_load(&t.wrong_thread), 0);
    dgt_loop_finish(loop);
}

static void count_self(dg_loop *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

Test(post, to_itself_runs_from_the_loop_and_keeps_it_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int ran = 0;
    cr_assert_eq(dg_loop_post(loop, count_self, &ran), 0);
    cr_assert_eq(ran, 0, "ran inside dg_loop_post");
    cr_assert(dg_loop_alive(loop), "a pending post keeps the loop alive");
    cr_assert_eq(dg_loop_close(loop), DG_ERR_LOOP_BUSY);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ran, 1);
    dgt_loop_finish(loop);
}

Test(post, bad_arguments)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_assert_code(dg_loop_post(NULL, count_self, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_loop_post(loop, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_loop_finish(loop);
}

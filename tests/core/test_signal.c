/* Signals on the loop (dg_signal): a signal sent to the loop's thread or
 * to the process reaches the handles that watch it, from the loop and
 * never inside dg_signal_start(); several handles of one signal run in
 * start order and may close one another; a signal already pending when a
 * handle starts is delivered; stop, ref/unref, restart with another signal,
 * the close protocol, a loop closed with the signalfd's poll in flight;
 * bad input. Each test runs in its own process (Criterion), so the signal
 * masks it changes die with it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(signal, .timeout = 20);

/* Which handles ran, in order, across handles. */
struct order {
    int ids[4];
    int count;
};

struct catch {
    dg_loop *loop;
    dg_signal *sig;
    int calls;
    int last_signum;
    struct order *order;   /* shared by the handles of a test, or NULL */
    int id;
    dg_signal *close_other; /* closed by the first call */
    int closed;
};

static void on_signal(dg_signal *sig, int signum, void *data)
{
    struct catch *c = data;

    cr_expect_eq(sig, c->sig);
    c->last_signum = signum;
    if (c->order && c->order->count < 4)
        c->order->ids[c->order->count++] = c->id;
    c->calls++;
    if (c->close_other) {
        cr_expect_eq(dg_signal_close(c->close_other, NULL, NULL), 0);
        c->close_other = NULL;
    }
}

static void on_closed(dg_signal *sig, void *data)
{
    struct catch *c = data;

    cr_expect_eq(sig, c->sig);
    c->closed++;
}

static void catch_start(struct catch *c, dg_loop *loop, int signum)
{
    c->loop = loop;
    cr_assert_eq(dg_signal_new(loop, &c->sig), 0);
    cr_assert_not_null(c->sig);
    cr_assert(!dg_signal_active(c->sig));
    cr_assert_eq(dg_signal_start(c->sig, signum, on_signal, c), 0);
    cr_assert(dg_signal_active(c->sig));
    cr_assert_eq(dg_signal_signum(c->sig), signum);
}

/* Closes c's handle; with last, runs the loop until it ends (every
 * handle of the test closed) and checks the close callback ran once. */
static void catch_close_one(struct catch *c, bool last)
{
    cr_assert_eq(dg_signal_close(c->sig, on_closed, c), 0);
    cr_assert_eq(c->closed, 0, "the close callback ran inside dg_signal_close");
    if (!last)
        return;
    cr_assert_eq(dgt_run(c->loop, DGT_WAIT_MS), 0);
    cr_assert_eq(c->closed, 1);
}

static void catch_close(struct catch *c)
{
    catch_close_one(c, true);
}

static void block(int signum)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, signum);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

static bool blocked_here(int signum)
{
    sigset_t now;

    pthread_sigmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, signum) == 1;
}

Test(signal, sent_to_the_loop_thread_runs_the_callback_from_the_loop)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};

    catch_start(&c, loop, SIGUSR1);
    cr_assert(blocked_here(SIGUSR1), "dg_signal_start blocks the signal in its thread");
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    cr_assert_eq(c.calls, 0, "the callback ran outside the loop");
    dgt_run_until(loop, &c.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(c.last_signum, SIGUSR1);
    /* And again: the poll is armed anew after each delivery. */
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    dgt_run_until(loop, &c.calls, 2, DGT_WAIT_MS);
    catch_close(&c);
    cr_assert_eq(c.calls, 2);
    dgt_loop_finish(loop);
}

/* kill(getpid()) may go to any thread that does not block the signal:
 * blocked first, before any helper thread starts, as docs/signals.md says. */
Test(signal, sent_to_the_process_reaches_the_loop)
{
    block(SIGUSR2);
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};

    catch_start(&c, loop, SIGUSR2);
    cr_assert_eq(kill(getpid(), SIGUSR2), 0);
    dgt_run_until(loop, &c.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(c.last_signum, SIGUSR2);
    catch_close(&c);
    dgt_loop_finish(loop);
}

/* Pending before the start; and pending before a second signal joins the
 * mask of a loop whose poll is already armed (the poll is taken back and
 * armed again, or the signal would wait for another one). */
Test(signal, already_pending_signals_are_delivered)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch first = {0}, second = {0};

    block(SIGUSR1);
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    catch_start(&first, loop, SIGUSR1);
    dgt_run_until(loop, &first.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1); /* the poll is in flight now */

    block(SIGHUP);
    cr_assert_eq(pthread_kill(pthread_self(), SIGHUP), 0);
    catch_start(&second, loop, SIGHUP);
    dgt_run_until(loop, &second.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(second.last_signum, SIGHUP);
    cr_assert_eq(first.calls, 1);
    catch_close_one(&first, false);
    catch_close(&second);
    cr_assert_eq(first.closed, 1);
    dgt_loop_finish(loop);
}

/* Two handles of one signal run in start order; the first closes the
 * second's sibling, which then is not called. */
Test(signal, handles_of_one_signal_run_in_start_order)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct order order = {0};
    struct catch a = {.id = 1, .order = &order}, b = {.id = 2, .order = &order};
    struct catch doomed = {.id = 3, .order = &order};

    catch_start(&a, loop, SIGUSR1);
    catch_start(&b, loop, SIGUSR1);
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    dgt_run_until(loop, &b.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(order.count, 2);
    cr_assert_eq(order.ids[0], 1);
    cr_assert_eq(order.ids[1], 2);

    catch_start(&doomed, loop, SIGUSR1);
    a.close_other = doomed.sig;
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    dgt_run_until(loop, &b.calls, 2, DGT_WAIT_MS);
    cr_assert_eq(doomed.calls, 0, "a handle closed by an earlier callback was called");
    cr_assert_eq(a.calls, 2);
    catch_close_one(&a, false);
    catch_close(&b);
    dgt_loop_finish(loop);
}

Test(signal, stopped_or_unreferenced_handles_do_not_keep_the_loop)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};

    catch_start(&c, loop, SIGUSR1);
    cr_assert(dg_loop_alive(loop), "an active handle keeps the loop alive");
    dg_signal_unref(c.sig);
    cr_assert(!dg_loop_alive(loop));
    dg_signal_ref(c.sig);
    cr_assert(dg_loop_alive(loop));
    cr_assert_eq(dg_signal_stop(c.sig), 0);
    cr_assert_eq(dg_signal_stop(c.sig), 0, "stopping twice is a no-op");
    cr_assert(!dg_signal_active(c.sig));
    cr_assert_eq(dg_signal_signum(c.sig), 0);
    cr_assert(!dg_loop_alive(loop));
    /* Stopped: a signal stays pending and no callback runs. */
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(c.calls, 0);
    sigset_t pending;
    sigpending(&pending);
    cr_assert(sigismember(&pending, SIGUSR1), "the signal waits for a handle");
    /* Started again: the pending one arrives. */
    cr_assert_eq(dg_signal_start(c.sig, SIGUSR1, on_signal, &c), 0);
    dgt_run_until(loop, &c.calls, 1, DGT_WAIT_MS);
    catch_close(&c);
    dgt_loop_finish(loop);
}

Test(signal, restart_changes_the_signal)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};

    catch_start(&c, loop, SIGUSR1);
    cr_assert_eq(dg_signal_start(c.sig, SIGUSR2, on_signal, &c), 0);
    cr_assert_eq(dg_signal_signum(c.sig), SIGUSR2);
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR1), 0); /* blocked, no longer watched */
    cr_assert_eq(pthread_kill(pthread_self(), SIGUSR2), 0);
    dgt_run_until(loop, &c.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(c.last_signum, SIGUSR2);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    cr_assert_eq(c.calls, 1, "SIGUSR1 was delivered to a handle that moved to SIGUSR2");
    catch_close(&c);
    dgt_loop_finish(loop);
}

/* A real-time signal sent three times arrives three times. */
Test(signal, realtime_signals_are_queued)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};
    union sigval value = {0};

    catch_start(&c, loop, SIGRTMIN + 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_sigqueue(pthread_self(), SIGRTMIN + 1, value), 0);
    dgt_run_until(loop, &c.calls, 3, DGT_WAIT_MS);
    cr_assert_eq(c.calls, 3);
    catch_close(&c);
    dgt_loop_finish(loop);
}

/* The loop closes with the signalfd's poll still in flight (a handle was
 * started and closed); sanitizers check nothing leaks. */
Test(signal, loop_closes_with_the_poll_in_flight)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct catch c = {0};

    catch_start(&c, loop, SIGUSR1);
    cr_assert_eq(dg_loop_run(loop, DG_RUN_NOWAIT), 1);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "a handle is open");
    catch_close(&c);
    dgt_loop_finish(loop);
}

Test(signal, bad_input)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_signal *sig = NULL;
    int bad[] = {0, -1, NSIG, 1000, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
                 SIGSYS, 32, 33};

    dgt_assert_code(dg_signal_new(NULL, &sig), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(sig);
    dgt_assert_code(dg_signal_new(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_signal_start(NULL, SIGUSR1, on_signal, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_signal_stop(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_signal_close(NULL, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert(!dg_signal_active(NULL));
    cr_assert_eq(dg_signal_signum(NULL), 0);
    dg_signal_ref(NULL);
    dg_signal_unref(NULL);

    cr_assert_eq(dg_signal_new(loop, &sig), 0);
    dgt_assert_code(dg_signal_start(sig, SIGUSR1, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        dgt_assert_code_fmt(dg_signal_start(sig, bad[i], on_signal, NULL), -EINVAL, "signal %d",
                            bad[i]);
    cr_assert(!dg_signal_active(sig), "a refused start must change nothing");
    cr_assert(!blocked_here(SIGSEGV));
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dg_signal_close(sig, NULL, NULL), 0);
    dgt_assert_code(dg_signal_close(sig, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_signal_start(sig, SIGUSR1, on_signal, NULL),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_loop_finish(loop);
}

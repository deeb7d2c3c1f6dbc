/* The lookup option's failure codes (socket.h, dg_lookup_fn): a code of
 * the user's range (DG_ERR_LOOKUP_USER_FIRST .. _LAST) reaches the call's
 * callback and on_error unchanged, for bind, connect and send, returned by
 * the lookup function or given to done; DG_ERR_LOOKUP_REPORTED fails the
 * call like any failure but never reaches on_error, for the call itself,
 * for a connect behind it or for the sends it fails, and callbacks still
 * run exactly once. Lookups are scripted (no DNS). */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_lookup_fn, .timeout = 60);

#define USER_CODE (DG_ERR_LOOKUP_USER_FIRST - 7)

/* A bind whose lookup fails with the user's code: on_error gets it, then
 * the bind callback, with the host; dg_err_name and dg_error_format say
 * what it is. */
static void user_code_reaches_bind(int mode, bool refuse)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = USER_CODE, .refuse = refuse};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec bound = {.ev = &ev};
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "user.test", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, USER_CODE);
    dgt_assert_code(bound.status, USER_CODE);
    cr_assert_str_eq(ev.error.address, "user.test");
    cr_assert_str_eq(dg_err_name(ev.error.code), "ERR_LOOKUP_USER");
    cr_assert_str_eq(ev.error_text, "getaddrinfo ERR_LOOKUP_USER user.test");
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 1);
    cr_assert_eq(ev.errors, 1);
    cr_assert_str_eq(ev.log, "EBC");
    dgt_loop_finish(loop);
}

Test(dgram_lookup_fn, user_code_through_done_reaches_bind)
{
    user_code_reaches_bind(DGT_FAKE_LOOKUP_DEFERRED, false);
}

Test(dgram_lookup_fn, user_code_returned_reaches_bind)
{
    user_code_reaches_bind(DGT_FAKE_LOOKUP_SYNC, true);
}

/* The user's code for a connect (its callback) and a send (its callback,
 * and on_error for one without a callback). */
Test(dgram_lookup_fn, user_code_reaches_connect_and_send)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.fail_status = USER_CODE, .fail_host = "user.test"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec conn = {.ev = &ev}, sent = {.ev = &ev};
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_connect(sock, 9, "user.test", dgt_on_status, &conn), 0);
    dgt_run_until(loop, &conn.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(conn.status, USER_CODE);
    cr_assert_eq(dg_socket_send(sock, "x", 1, 9, "user.test", dgt_on_status, &sent), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(sent.status, USER_CODE);
    cr_assert_eq(ev.errors, 0, "both had callbacks");
    cr_assert_eq(dg_socket_send(sock, "x", 1, 9, "user.test", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, USER_CODE);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* REPORTED from a bind's lookup, returned or through done: the bind
 * callback gets it, on_error never; nothing counts as unhandled; the
 * socket is unbound and binds again. */
static void reported_bind(int mode, bool refuse, bool with_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = DG_ERR_LOOKUP_REPORTED,
                          .fail_host = "reported.test", .refuse = refuse};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec bound = {.ev = &ev};
    dg_socket_stats stats;
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "reported.test", with_callback ? dgt_on_status : NULL,
                                &bound), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0); /* until the failed bind left nothing alive */
    if (with_callback)
        dgt_assert_code(bound.status, DG_ERR_LOOKUP_REPORTED);
    dgt_bind(loop, sock, "127.0.0.1", 0); /* runs the loop until 'listening' */
    cr_assert_eq(dg_socket_get_stats(sock, &stats), 0);
    cr_assert_eq(stats.unhandled_errors, 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.errors, 0, "REPORTED never reaches on_error");
    cr_assert_eq(bound.calls, with_callback ? 1 : 0);
    dgt_loop_finish(loop);
}

Test(dgram_lookup_fn, reported_bind_returned_without_callback)
{
    reported_bind(DGT_FAKE_LOOKUP_SYNC, true, false);
}

Test(dgram_lookup_fn, reported_bind_through_done_with_callback)
{
    reported_bind(DGT_FAKE_LOOKUP_DEFERRED, false, true);
}

/* REPORTED from the implicit bind's lookup: the sends queued behind it
 * fail with it (the one with a callback there), and a connect behind it
 * too; none of them, nor the bind, reaches on_error. */
Test(dgram_lookup_fn, reported_implicit_bind_fails_sends_and_connect_silently)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_DEFERRED, .fail_host = "0.0.0.0",
                          .fail_status = DG_ERR_LOOKUP_REPORTED};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dgt_status_rec sent = {.ev = &ev};
    dg_socket *sock, *other;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_send(sock, "a", 1, 9, "127.0.0.1", NULL, NULL), 0);
    cr_assert_eq(dg_socket_send(sock, "b", 1, 9, "127.0.0.1", dgt_on_status, &sent), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(sent.status, DG_ERR_LOOKUP_REPORTED);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(dg_socket_send_queue_count(sock), 0, "both sends completed");
    dgt_close_socket(loop, sock);

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &other), 0);
    cr_assert_eq(dg_socket_connect(other, 9, "127.0.0.1", NULL, NULL), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_close_socket(loop, other);
    cr_assert_eq(ev.errors, 0, "REPORTED never reaches on_error");
    cr_assert_eq(ev.listening + ev.connects, 0);
    dgt_loop_finish(loop);
}

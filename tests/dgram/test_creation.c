/* dgram conformance, creation (docs/conformance.md, and libuv's
 * udp_create_early): dgram.createSocket's types and options in C form —
 * udp4/udp6 and bad types, flags, buffer-size options applied before
 * 'listening', the lookup option, the abort handle (Node's signal), dispose
 * (Symbol.asyncDispose), the eager fd, and that a fresh socket keeps no
 * loop alive. Every item a test proves is named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_creation, .timeout = 60);

/* N1: udp4 and udp6 sockets are created (referenced, not bound), never
 * bound, and closed: the close callback and on_close run once each, from
 * the loop. */
static void create_and_close(dg_socket_type type)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, type, 0, &ev);
    dg_address addr;

    cr_assert_eq(dg_socket_get_type(sock), type);
    cr_assert_eq(dg_socket_loop(sock), loop);
    cr_assert(dg_socket_has_ref(sock), "a new socket is referenced");
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF, "a new socket is not bound");
    cr_assert(!dg_loop_alive(loop), "an unbound socket keeps the loop alive");
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    cr_assert_eq(cr.calls + ev.closed, 0, "close callbacks ran inside dg_socket_close");
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.closed, 1);
    cr_assert_str_eq(ev.log, "CX", "on_close, then the close callback");
    cr_assert_eq(ev.listening + ev.messages + ev.errors, 0);
    dgt_loop_finish(loop);
}

Test(dgram_creation, udp4_created_and_closed_without_binding)
{
    create_and_close(DG_UDP4); /* N1 */
}

Test(dgram_creation, udp6_created_and_closed_without_binding)
{
    create_and_close(DG_UDP6); /* N1 */
}

/* N1, L3 (unknown domain): anything but DG_UDP4/DG_UDP6 is
 * ERR_SOCKET_BAD_TYPE; nothing is created (ASan sees no leak, the loop
 * closes with no handle). */
Test(dgram_creation, bad_types_are_rejected)
{
    dg_loop *loop = dgt_loop_new(NULL);
    const int bad[] = {0, 1, 2, 3, 5, 7, 10, 46, 47, 1024, -1, -4, -6};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dg_socket_options options = {.type = (dg_socket_type)bad[i]};
        dg_socket *sock = NULL;

        dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock),
                        DG_ERR_SOCKET_BAD_TYPE);
        cr_assert_null(sock, "type %d: *out points at something", bad[i]);
    }
    cr_assert_str_eq(dg_err_name(DG_ERR_SOCKET_BAD_TYPE), "ERR_SOCKET_BAD_TYPE");
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_BAD_TYPE),
                     "Bad socket type specified. Valid types are: udp4, udp6");
    dgt_loop_finish(loop);
}

/* N1/N2 (C forms of Node's argument checks): NULL arguments, unknown
 * flags, ipv6Only on udp4, negative buffer sizes (validateUint32). */
Test(dgram_creation, bad_arguments_are_rejected)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_options options = {.type = DG_UDP4};
    dg_socket *sock = NULL;

    dgt_assert_code(dg_socket_create(NULL, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_create(loop, NULL, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    options.flags = 0x80000000u;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE);
    options.flags = 0x80;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE,
                    "an unknown low flag");
    options.flags = DG_SOCKET_IPV6_ONLY;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE,
                    "ipv6Only on udp4");
    options.flags = 0;
    options.recv_buffer_size = -1;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_OUT_OF_RANGE);
    options.recv_buffer_size = 0;
    options.send_buffer_size = -1;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_OUT_OF_RANGE);
    options.send_buffer_size = -10000;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_OUT_OF_RANGE);
    cr_assert_null(sock);
    dgt_loop_finish(loop);
}

/* N1: every valid flag combination creates a socket (reuseAddr,
 * reusePort, ipv6Only on udp6). */
Test(dgram_creation, valid_flags_are_accepted)
{
    dg_loop *loop = dgt_loop_new(NULL);
    const unsigned v4[] = {0, DG_SOCKET_REUSE_ADDR, DG_SOCKET_REUSE_PORT,
                           DG_SOCKET_REUSE_ADDR | DG_SOCKET_REUSE_PORT};

    for (size_t i = 0; i < 4; i++) {
        dg_socket *a = dgt_socket_new(loop, DG_UDP4, v4[i], NULL, NULL);
        dg_socket *b = dgt_socket_new(loop, DG_UDP6, v4[i] | DG_SOCKET_IPV6_ONLY, NULL, NULL);

        dgt_close_socket(loop, a);
        dgt_close_socket(loop, b);
    }
    dgt_loop_finish(loop);
}

/* N2: recvBufferSize/sendBufferSize are applied once bound, before
 * 'listening' (the getters already report them inside on_listening; Linux
 * reports twice the value). Before the bind, the getters fail with
 * ERR_SOCKET_BUFFER_SIZE wrapping EBADF (N42). */
struct sizes_seen {
    int recv;
    int send;
};

static void read_sizes_in_listening(dgt_events *ev, dg_socket *sock)
{
    struct sizes_seen *seen = ev->user;

    seen->recv = dg_socket_get_recv_buffer_size(sock, NULL);
    seen->send = dg_socket_get_send_buffer_size(sock, NULL);
}

static void buffer_size_options(dg_socket_type type)
{
    dg_loop *loop;
    dgt_events ev = {0};
    struct sizes_seen seen = {0, 0};
    dg_socket_options options = {.type = type, .recv_buffer_size = 10000,
                                 .send_buffer_size = 15000};
    dg_socket *sock;
    dg_error err;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    ev.user = &seen;
    ev.listening_hook = read_sizes_in_listening;
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    memset(&err, 0, sizeof(err));
    dgt_assert_code(dg_socket_get_recv_buffer_size(sock, &err), DG_ERR_SOCKET_BUFFER_SIZE);
    cr_assert_eq(err.system_code, -EBADF);
    dgt_bind(loop, sock, dgt_loopback(dgt_family(type)), 0);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(seen.recv, 20000, "SO_RCVBUF in on_listening: %d", seen.recv);
    cr_assert_eq(seen.send, 30000, "SO_SNDBUF in on_listening: %d", seen.send);
    cr_assert_eq(dg_socket_get_recv_buffer_size(sock, NULL), 20000);
    cr_assert_eq(dg_socket_get_send_buffer_size(sock, NULL), 30000);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

Test(dgram_creation, buffer_size_options_applied_before_listening_udp4)
{
    buffer_size_options(DG_UDP4); /* N2 */
}

Test(dgram_creation, buffer_size_options_applied_before_listening_udp6)
{
    buffer_size_options(DG_UDP6); /* N2 */
}

/* N3, E2: the lookup option is called for bind even without an address
 * (host "0.0.0.0" / "::", family 4 / 6) and for IP literals; the socket
 * binds to what the lookup answered. */
static void lookup_for_bind(dg_socket_type type, int mode)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode};
    dgt_status_rec bound = {.ev = &ev};
    dg_socket_options options = dgt_fake_lookup_options(type, 0, &lk);
    dg_socket *sock;
    dg_address addr;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    lk.answer4 = "127.0.0.1";
    lk.answer6 = "::1";
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, NULL, dgt_on_status, &bound), 0);
    cr_assert_eq(bound.calls + ev.listening, 0, "bind completed inside the call");
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    cr_assert_eq(lk.calls, 1);
    cr_assert_str_eq(lk.hosts[0], family == AF_INET ? "0.0.0.0" : "::");
    cr_assert_eq(lk.families[0], family == AF_INET ? 4 : 6);
    cr_assert_str_eq(ev.log, "LB", "'listening' first, then the bind callback");
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, family == AF_INET ? "0.0.0.0" : "::",
                     "the lookup answered the literal with itself");
    dgt_close_socket(loop, sock);

    /* A literal goes through the lookup too (Node, E2); a name gets the
     * lookup's answer. */
    memset(&ev, 0, sizeof(ev));
    memset(&bound, 0, sizeof(bound));
    bound.ev = &ev;
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "my-host.test", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0, "bind via lookup: %s", dg_err_name(bound.status));
    cr_assert_eq(lk.calls, 2);
    cr_assert_str_eq(lk.hosts[1], "my-host.test");
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, dgt_loopback(family));
    dgt_close_socket(loop, sock);
    cr_assert_eq(lk.answered, lk.calls);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

Test(dgram_creation, lookup_option_is_used_for_bind_udp4_sync)
{
    lookup_for_bind(DG_UDP4, DGT_FAKE_LOOKUP_SYNC); /* N3, E2 */
}

Test(dgram_creation, lookup_option_is_used_for_bind_udp4_deferred)
{
    lookup_for_bind(DG_UDP4, DGT_FAKE_LOOKUP_DEFERRED); /* N3 */
}

Test(dgram_creation, lookup_option_is_used_for_bind_udp6_sync)
{
    lookup_for_bind(DG_UDP6, DGT_FAKE_LOOKUP_SYNC); /* N3 */
}

Test(dgram_creation, lookup_option_is_used_for_bind_udp6_deferred)
{
    lookup_for_bind(DG_UDP6, DGT_FAKE_LOOKUP_DEFERRED); /* N3 */
}

/* N3: a lookup answer of the wrong family is not used: the bind fails
 * from the loop and the socket is unbound again. */
Test(dgram_creation, lookup_answer_of_the_other_family_fails_the_bind)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_SYNC, .answer4 = "::1"};
    dgt_status_rec bound = {0};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dg_socket *sock;
    dg_address addr;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "wrong-family.test", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_lt(bound.status, 0, "a udp4 socket bound to an IPv6 answer");
    cr_assert_eq(ev.listening, 0);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 1);
    dgt_loop_finish(loop);
}

/* A socket of type with dgt_events handlers (ev) and the abort handle
 * abort, which may be triggered already. */
static dg_socket *abort_socket(dg_loop *loop, dg_socket_type type, dg_abort *abort, dgt_events *ev)
{
    dg_socket_options options = {.type = type, .signal = abort};
    dg_socket *sock = NULL;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, ev, &sock), 0);
    cr_assert_not_null(sock);
    return sock;
}

/* N4: aborting the handle closes the socket as dg_socket_close would:
 * on_close once, from the loop. Aborting again, or after the close, does
 * nothing. One handle closes every socket created with it. */
Test(dgram_creation, abort_closes_every_socket_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_abort *abort = NULL;
    dgt_events ev[3];
    dg_socket *sock[3];

    cr_assert_eq(dg_abort_new(&abort), 0);
    cr_assert_not_null(abort);
    cr_assert(!dg_abort_aborted(abort));
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 3; i++)
        sock[i] = abort_socket(loop, i == 1 ? DG_UDP6 : DG_UDP4, abort, &ev[i]);
    dgt_bind(loop, sock[0], "127.0.0.1", 0); /* bound, unbound udp6, unbound udp4 */
    cr_assert(dg_loop_alive(loop));
    dg_abort_trigger(abort);
    cr_assert(dg_abort_aborted(abort));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ev[i].closed, 0, "socket %d closed inside dg_abort_trigger", i);
    dg_abort_trigger(abort); /* idempotent */
    dgt_run(loop, DGT_WAIT_MS);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ev[i].closed, 1, "socket %d: on_close ran %d times", i, ev[i].closed);
        cr_assert_eq(ev[i].errors, 0);
    }
    dg_abort_trigger(abort); /* after the sockets are gone: nothing */
    dg_abort_free(abort);
    dgt_loop_finish(loop);
}

/* N4: a socket created with an already aborted handle is returned closing;
 * 'close' follows from the loop, and calls on it are NOT_RUNNING. */
Test(dgram_creation, already_aborted_signal_closes_at_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_abort *abort = NULL;
    dgt_events ev = {0};
    dg_socket *sock;

    cr_assert_eq(dg_abort_new(&abort), 0);
    dg_abort_trigger(abort);
    sock = abort_socket(loop, DG_UDP4, abort, &ev);
    cr_assert_eq(ev.closed, 0, "'close' ran inside dg_socket_create");
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_close(sock, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &ev.closed, 1, DGT_WAIT_MS);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.listening + ev.errors, 0);
    dg_abort_free(abort);
    dgt_loop_finish(loop);
}

/* N4: abort after a manual close is a no-op (no double close, no crash),
 * also while the close is still in progress. */
Test(dgram_creation, abort_after_close_does_nothing)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_abort *abort = NULL;
    dgt_events ev = {0};
    dgt_close_rec cr = {0};
    dg_socket *sock;

    cr_assert_eq(dg_abort_new(&abort), 0);
    sock = abort_socket(loop, DG_UDP4, abort, &ev);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dg_abort_trigger(abort); /* the close is in progress */
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    dg_abort_trigger(abort); /* the socket is gone */
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.closed, 1);
    dg_abort_free(abort);
    dgt_loop_finish(loop);
}

/* N4: freeing the handle while sockets still use it: they forget it and
 * close normally. */
Test(dgram_creation, abort_freed_before_its_sockets)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_abort *abort = NULL;
    dgt_events ev = {0};
    dg_socket *sock;

    cr_assert_eq(dg_abort_new(&abort), 0);
    sock = abort_socket(loop, DG_UDP4, abort, &ev);
    dg_abort_free(abort);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.closed, 1);
    dgt_assert_code(dg_abort_new(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_loop_finish(loop);
}

/* N5: dispose closes an open socket ('close' fires once); disposing again
 * while closing returns 0 and does not close twice; address() and close()
 * then answer NOT_RUNNING. */
static void dispose_case(bool bound)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_address addr;

    if (bound)
        dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_dispose(sock), 0);
    cr_assert_eq(ev.closed, 0, "'close' ran inside dg_socket_dispose");
    cr_assert_eq(dg_socket_dispose(sock), 0, "dispose is idempotent");
    dgt_assert_code(dg_socket_address(sock, &addr), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_close(sock, NULL, NULL), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &ev.closed, 1, DGT_WAIT_MS);
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(ev.closed, 1);
    dgt_assert_code(dg_socket_dispose(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_loop_finish(loop);
}

Test(dgram_creation, dispose_closes_a_bound_socket_once)
{
    dispose_case(true); /* N5 */
}

Test(dgram_creation, dispose_closes_an_unbound_socket_once)
{
    dispose_case(false); /* N5 */
}

/* L3: dgring creates the fd with the socket (libuv's init_ex): it is
 * valid at once, of the socket's family, and bind keeps it; getsockname on
 * it agrees with dg_socket_address afterwards. */
static void eager_fd(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dg_socket *sock;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    dg_address addr;
    int fd, port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_socket_new(loop, type, 0, NULL, NULL);
    fd = dg_socket_fd(sock);
    cr_assert_geq(fd, 0, "dg_socket_fd: %s", dg_err_name(fd));
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    cr_assert_eq(ss.ss_family, family);
    port = dgt_bind(loop, sock, dgt_loopback(family), 0);
    cr_assert_eq(dg_socket_fd(sock), fd);
    len = sizeof(ss);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    cr_assert_eq(dgt_sockaddr_port((struct sockaddr *)&ss), port);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_eq(addr.port, port);
    cr_assert_eq(addr.family, family);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

Test(dgram_creation, fd_exists_from_creation_udp4)
{
    eager_fd(DG_UDP4); /* L3 */
}

Test(dgram_creation, fd_exists_from_creation_udp6)
{
    eager_fd(DG_UDP6); /* L3 */
}

/* L3: a literal of the other family is refused synchronously
 * (libuv: EINVAL for an AF_INET6 handle bound to an IPv4 address). */
Test(dgram_creation, bind_to_the_other_family_is_invalid_address)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events e4 = {0}, e6 = {0};
    dg_socket *s4 = dgt_events_socket(loop, DG_UDP4, 0, &e4);
    dg_socket *s6 = dgt_events_socket(loop, DG_UDP6, 0, &e6);
    dg_address addr;

    dgt_assert_code(dg_socket_bind(s6, 0, "127.0.0.1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s4, 0, "::1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s4, 0, "::", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    /* Nothing changed: both are unbound and bind normally. */
    dgt_assert_code(dg_socket_address(s4, &addr), -EBADF);
    dgt_assert_code(dg_socket_address(s6, &addr), -EBADF);
    cr_assert(!dg_loop_alive(loop));
    dgt_bind(loop, s4, "127.0.0.1", 0);
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, s6);
    cr_assert_eq(e4.errors + e6.errors + e6.listening, 0);
    cr_assert_eq(e4.listening, 1);
    dgt_loop_finish(loop);
}

/* N47: creating sockets without binding does not keep the loop alive:
 * running it returns at once. */
Test(dgram_creation, unbound_sockets_do_not_keep_the_loop_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock[4];

    for (int i = 0; i < 4; i++)
        sock[i] = dgt_socket_new(loop, i % 2 ? DG_UDP6 : DG_UDP4, 0, NULL, NULL);
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    dgt_assert_code(dg_loop_close(loop), DG_ERR_LOOP_BUSY, "sockets are still open");
    for (int i = 0; i < 4; i++)
        dgt_close_socket(loop, sock[i]);
    dgt_loop_finish(loop);
}

/* N33 (the ALS analogue): the data pointer given at creation reaches
 * every handler. dgt_events checks it on each call via ev->sock; here the
 * check is explicit for listening and close. */
static void *seen_data[2];

static void data_listening(dg_socket *sock, void *data)
{
    (void)sock;
    seen_data[0] = data;
}

static void data_close(dg_socket *sock, void *data)
{
    (void)sock;
    seen_data[1] = data;
}

Test(dgram_creation, handler_data_reaches_every_handler)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int token = 42;
    dg_socket_handlers h = {.on_listening = data_listening, .on_close = data_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &token);

    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(seen_data[0], &token);
    cr_assert_eq(seen_data[1], &token);
    dgt_loop_finish(loop);
}

/* dg_socket_get_data gives the creation's data pointer back (also from a
 * per-call callback, whose own data is the call's); dg_socket_set_data
 * replaces it for the handlers that run afterwards, on_close included.
 * NULL sockets: get is NULL, set does nothing. */
static void *bind_cb_saw;
static int bind_cb_calls;

static void data_bind_cb(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)status;
    (void)err;
    (void)data;
    bind_cb_saw = dg_socket_get_data(sock);
    bind_cb_calls++;
}

Test(dgram_creation, socket_data_get_and_set)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int first = 1, second = 2, call = 3;
    dg_socket_handlers h = {.on_listening = data_listening, .on_close = data_close};
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, &h, &first);

    seen_data[0] = seen_data[1] = NULL;
    cr_assert_eq(dg_socket_get_data(sock), &first);
    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", data_bind_cb, &call), 0);
    dgt_run_until(loop, &bind_cb_calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bind_cb_saw, &first, "the socket's data, not the call's");
    cr_assert_eq(seen_data[0], &first);
    dg_socket_set_data(sock, &second);
    cr_assert_eq(dg_socket_get_data(sock), &second);
    dgt_close_socket(loop, sock);
    cr_assert_eq(seen_data[1], &second, "on_close got the data set after creation");
    cr_assert_null(dg_socket_get_data(NULL));
    dg_socket_set_data(NULL, &second); /* does nothing, does not crash */
    dgt_loop_finish(loop);
}

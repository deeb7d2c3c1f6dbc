/* dgram conformance, bind (docs/conformance.md; libuv udp_bind, udp_open,
 * getsockname_udp, udp_reuseport): asynchronous 'listening', the second
 * bind, default addresses, address() before and after (and what the kernel
 * says), synchronous argument errors, bind failures with Node's message and
 * the retry that follows, close while a bind or its lookup is pending,
 * ipv6Only, reuseAddr, reusePort, fd adoption and the port range. Every item
 * a test proves is named in a comment. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_bind, .timeout = 60);

/* N6: a second bind while binding, and from inside on_listening, is
 * ALREADY_BOUND and changes nothing; bind completes from the loop. */
static int rebind_rc = 1;

static void rebind_in_listening(dgt_events *ev, dg_socket *sock)
{
    (void)ev;
    rebind_rc = dg_socket_bind(sock, 0, "127.0.0.1", NULL, NULL);
}

Test(dgram_bind, second_bind_is_already_bound)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {.listening_hook = rebind_in_listening};
    dgt_status_rec bound = {.ev = &ev};
    dgt_status_rec other = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_address before, after;

    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", dgt_on_status, &bound), 0);
    cr_assert_eq(bound.calls + ev.listening, 0, "bind completed inside dg_socket_bind");
    dgt_assert_code(dg_socket_bind(sock, 0, "127.0.0.1", dgt_on_status, &other),
                    DG_ERR_SOCKET_ALREADY_BOUND, "while binding");
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(rebind_rc, DG_ERR_SOCKET_ALREADY_BOUND, "from inside on_listening");
    cr_assert_eq(dg_socket_address(sock, &before), 0);
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, dgt_on_status, &other),
                    DG_ERR_SOCKET_ALREADY_BOUND, "when bound");
    dgt_assert_code(dg_socket_bind(sock, 0, NULL, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND,
                    "when bound, without a callback");
    dg_bind_options bo = {.port = 0};
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &other),
                    DG_ERR_SOCKET_ALREADY_BOUND, "bind_ex when bound");
    cr_assert_eq(dg_socket_address(sock, &after), 0);
    cr_assert_eq(after.port, before.port);
    cr_assert_str_eq(dg_strerror(DG_ERR_SOCKET_ALREADY_BOUND), "Socket is already bound");
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 1);
    cr_assert_eq(other.calls, 0);
    cr_assert_eq(ev.listening, 1);
    cr_assert_str_eq(ev.log, "LBC");
    dgt_loop_finish(loop);
}

/* N7, N8, L25: bind to port 0 of an address (NULL and "" are the
 * unspecified address, "0.0.0.0" or "::"): 'listening' and then the bind
 * callback, only from the loop; address() is -EBADF before the bind (Node:
 * getsockname EBADF), then the address, the family and a port > 0 that the
 * kernel's getsockname agrees with; NOT_RUNNING once closing. */
static void bind_port_zero(dg_socket_type type, const char *address, const char *expect)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events ev = {0};
    dgt_status_rec bound = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    dg_socket *sock;
    dg_address addr;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_events_socket(loop, type, 0, &ev);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF, "address() before bind");
    cr_assert_str_eq(dg_err_name(-EBADF), "EBADF");
    cr_assert_eq(dg_socket_bind(sock, 0, address, dgt_on_status, &bound), 0);
    cr_assert_eq(bound.calls + ev.listening, 0, "bind completed inside dg_socket_bind");
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0, "bind: %s", dg_err_name(bound.status));
    cr_assert_eq(bound.listening_seen, 1, "'listening' runs before the bind callback");
    memset(&addr, 0x55, sizeof(addr));
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_eq(addr.family, family);
    cr_assert_str_eq(addr.address, expect);
    cr_assert_gt(addr.port, 0);
    cr_assert_leq(addr.port, 65535);
    /* The kernel agrees. */
    cr_assert_geq(dg_socket_fd(sock), 0);
    cr_assert_eq(getsockname(dg_socket_fd(sock), (struct sockaddr *)&ss, &sslen), 0);
    cr_assert_eq(ss.ss_family, family);
    cr_assert_eq(dgt_sockaddr_port((struct sockaddr *)&ss), addr.port);
    dgt_assert_code(dg_socket_address(sock, NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    dgt_assert_code(dg_socket_address(sock, &addr), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &cr.calls, 1, DGT_WAIT_MS);
    cr_assert_str_eq(ev.log, "LBCX");
    dgt_loop_finish(loop);
}

Test(dgram_bind, default_address_udp4_null)
{
    bind_port_zero(DG_UDP4, NULL, "0.0.0.0"); /* N7, L25 */
}

Test(dgram_bind, default_address_udp4_empty)
{
    bind_port_zero(DG_UDP4, "", "0.0.0.0"); /* N7 */
}

Test(dgram_bind, default_address_udp6_null)
{
    bind_port_zero(DG_UDP6, NULL, "::"); /* N7 */
}

Test(dgram_bind, default_address_udp6_empty)
{
    bind_port_zero(DG_UDP6, "", "::"); /* N7 */
}

/* N7: 'listening' comes from the loop even with no bind callback, never
 * inside the call. */
Test(dgram_bind, listening_without_a_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_address addr;

    cr_assert_eq(dg_socket_bind(sock, 0, NULL, NULL, NULL), 0);
    cr_assert_eq(ev.listening, 0);
    dgt_run_until(loop, &ev.listening, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_gt(addr.port, 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.errors, 0);
    cr_assert_eq(ev.closed, 1);
    dgt_loop_finish(loop);
}

/* N8: address() of a socket bound to loopback (bind_port_zero above). */
Test(dgram_bind, address_shape_udp4)
{
    bind_port_zero(DG_UDP4, "127.0.0.1", "127.0.0.1"); /* N8 */
}

Test(dgram_bind, address_shape_udp6)
{
    bind_port_zero(DG_UDP6, "::1", "::1"); /* N8 */
}

/* N9: a bind failure is asynchronous: no 'listening', on_error (no
 * callback) with code, syscall "bind", the address, no port, and Node's
 * message; the socket is unbound again (P5: address() answers as Node's
 * does after a failed bind, 0.0.0.0 port 0) and binds afterwards. */
Test(dgram_bind, bind_error_is_asynchronous_and_formatted)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_address addr;

    cr_assert_eq(dg_socket_bind(sock, 0, "1.1.1.1", NULL, NULL), 0);
    cr_assert_eq(ev.errors, 0, "the bind error was reported inside dg_socket_bind");
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    cr_assert_eq(ev.errors, 1);
    cr_assert_eq(ev.listening, 0);
    cr_assert_eq(ev.error.code, -EADDRNOTAVAIL, "code %s", dg_err_name(ev.error.code));
    cr_assert_str_eq(ev.error.syscall, "bind");
    cr_assert_str_eq(ev.error.address, "1.1.1.1");
    cr_assert_eq(ev.error.port, 0, "Node: port undefined");
    cr_assert_str_eq(ev.error_text, "bind EADDRNOTAVAIL 1.1.1.1");
    /* Unbound again (Node's bindState UNBOUND): bind works now. */
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, "0.0.0.0");
    cr_assert_eq(addr.port, 0);
    cr_assert(!dg_loop_alive(loop), "a socket whose bind failed keeps the loop alive");
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.errors, 1);
    cr_assert_eq(ev.listening, 1);
    dgt_loop_finish(loop);
}

/* N9, P3: with a port, Node's message carries it ("bind CODE addr:port");
 * with a callback the error still reaches on_error (Node's 'error'), then
 * the callback with the same record. */
Test(dgram_bind, bind_error_with_port_reaches_on_error_and_the_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec bound = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain); /* an ephemeral port, used only in the failing bind */
    dg_error err = {.code = -EADDRNOTAVAIL, .syscall = "bind", .port = port};
    char text[128], want[128];

    cr_assert_eq(dg_socket_bind(sock, port, "1.1.1.1", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, -EADDRNOTAVAIL);
    cr_assert_eq(ev.errors, 1, "Node emits 'error' also when bind had a callback");
    cr_assert_str_eq(ev.log, "EB", "on_error, then the bind callback");
    cr_assert_eq(ev.listening, 0);
    snprintf(err.address, sizeof(err.address), "1.1.1.1");
    dgt_format(&err, text, sizeof(text));
    snprintf(want, sizeof(want), "bind EADDRNOTAVAIL 1.1.1.1:%d", port);
    cr_assert_str_eq(text, want);
    cr_assert_str_eq(ev.error_text, want);
    close(plain);
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 1);
    dgt_loop_finish(loop);
}

/* N9: udp6 bound to an address no interface has. */
Test(dgram_bind, bind_error_udp6)
{
    dg_loop *loop;
    dgt_events ev = {0};
    dg_socket *sock;
    char want[64];

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_events_socket(loop, DG_UDP6, 0, &ev);
    cr_assert_eq(dg_socket_bind(sock, 0, "111::1", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    cr_assert(ev.error.code == -EADDRNOTAVAIL || ev.error.code == -EAFNOSUPPORT ||
                  ev.error.code == -EPROTONOSUPPORT,
              "code %s", dg_err_name(ev.error.code));
    snprintf(want, sizeof(want), "bind %s 111::1", dg_err_name(ev.error.code));
    cr_assert_str_eq(ev.error_text, want);
    cr_assert_str_eq(ev.error.address, "111::1");
    cr_assert_eq(ev.listening, 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.errors, 1);
    dgt_loop_finish(loop);
}

/* E1, L3: argument errors are synchronous and change nothing: a port out
 * of range, text that is no address (a plain name would be resolved, and no
 * test may depend on DNS), a literal of the other family, no socket; both
 * sockets stay unbound, keep no loop alive, and bind afterwards. */
Test(dgram_bind, synchronous_argument_errors_change_nothing)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events e4 = {0}, e6 = {0};
    dgt_status_rec never = {0};
    dg_socket *s4 = dgt_events_socket(loop, DG_UDP4, 0, &e4);
    dg_socket *s6;
    dg_address addr;

    dgt_assert_code(dg_socket_bind(s4, -1, "127.0.0.1", dgt_on_status, &never),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_bind(s4, 65536, "127.0.0.1", dgt_on_status, &never),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_bind(s4, 0, "not an ip!", dgt_on_status, &never),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s4, 0, "::1", dgt_on_status, &never), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(NULL, 0, "127.0.0.1", NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_address(s4, &addr), -EBADF, "a refused bind left an address");
    cr_assert(!dg_loop_alive(loop), "a refused bind left the socket alive");

    s6 = dgt_events_socket(loop, DG_UDP6, 0, &e6);
    dgt_assert_code(dg_socket_bind(s6, 0, "127.0.0.1", dgt_on_status, &never),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s6, 0, "not an ip!", dgt_on_status, &never),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s6, 70000, "::1", dgt_on_status, &never),
                    DG_ERR_SOCKET_BAD_PORT);

    dgt_bind(loop, s4, "127.0.0.1", 0);
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, s6);
    cr_assert_eq(never.calls, 0, "a refused bind called its callback");
    cr_assert_str_eq(e4.log, "LC");
    cr_assert_str_eq(e6.log, "C");
    dgt_loop_finish(loop);
}

/* N10, P3: two dgring sockets, neither with reuseAddr: the second bind to
 * the first one's port fails EADDRINUSE through on_error and then its
 * callback, no 'listening'. */
Test(dgram_bind, address_in_use_between_two_dgring_sockets)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ea = {0}, eb = {0};
    dgt_status_rec bound = {.ev = &eb};
    dg_socket *a = dgt_events_socket(loop, DG_UDP4, 0, &ea);
    dg_socket *b = dgt_events_socket(loop, DG_UDP4, 0, &eb);
    int port = dgt_bind(loop, a, "127.0.0.1", 0);

    cr_assert_eq(dg_socket_bind(b, port, "127.0.0.1", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, -EADDRINUSE);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    cr_assert_str_eq(ea.log, "LC");
    cr_assert_str_eq(eb.log, "EBC");
    dgt_loop_finish(loop);
}

/* N10, L1, P3: binding a port in use fails with EADDRINUSE, from the loop,
 * to on_error (syscall "bind", the address and the port, as Node) and then
 * to the bind callback if there is one; the socket is unbound again (P5:
 * address() is 0.0.0.0 port 0, as Node's) and can retry 20 times without
 * leaking fds, each attempt reporting exactly once; then it binds
 * elsewhere. */
static void retry_after_eaddrinuse(bool with_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);
    int fds = dgt_open_fds();
    char want[64];

    snprintf(want, sizeof(want), "bind EADDRINUSE 127.0.0.1:%d", port);
    for (int i = 0; i < 20; i++) {
        dgt_status_rec bound = {0};
        dg_address addr;

        cr_assert_eq(dg_socket_bind(sock, port, "127.0.0.1", with_callback ? dgt_on_status : NULL,
                                    &bound),
                     0, "attempt %d", i);
        cr_assert_eq(bound.calls + ev.errors, i, "attempt %d was reported inside dg_socket_bind",
                     i);
        dgt_run_until(loop, &ev.errors, i + 1, DGT_WAIT_MS);
        cr_assert_eq(ev.errors, i + 1);
        dgt_assert_code(ev.error.code, -EADDRINUSE);
        cr_assert_str_eq(ev.error.syscall, "bind");
        cr_assert_str_eq(ev.error.address, "127.0.0.1", "Node reports the failed address");
        cr_assert_eq(ev.error.port, port, "Node reports the failed port");
        cr_assert_str_eq(ev.error_text, want);
        if (with_callback) {
            cr_assert_eq(bound.calls, 1, "the callback follows on_error in the same turn");
            dgt_assert_code(bound.status, -EADDRINUSE);
        }
        dgt_assert_code_fmt(dg_socket_address(sock, &addr), 0, "attempt %d", i);
        cr_assert_eq(addr.port, 0, "attempt %d left it bound", i);
        cr_assert_eq(dgt_open_fds(), fds, "attempt %d changed the number of fds", i);
    }
    cr_assert_eq(ev.listening, 0);
    cr_assert_neq(dgt_bind(loop, sock, "127.0.0.1", 0), port, "it binds elsewhere");
    close(plain);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.errors, 20);
    dgt_loop_finish(loop);
}

Test(dgram_bind, retry_after_eaddrinuse_with_callback)
{
    retry_after_eaddrinuse(true); /* N10, L1 */
}

Test(dgram_bind, retry_after_eaddrinuse_without_callback)
{
    retry_after_eaddrinuse(false); /* N10 */
}

/* N11: close before the bind's lookup completes: the OS bind never
 * happens, no 'listening' and no on_error — also when the lookup then
 * fails; the bind callback ends with -ECANCELED (the header's rule for a
 * socket closed before 'listening'). */
static void close_during_bind_lookup(int fail_status, bool with_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = DGT_FAKE_LOOKUP_MANUAL, .fail_status = fail_status};
    dgt_status_rec bound = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dg_socket *sock;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "bind-host.test", with_callback ? dgt_on_status : NULL,
                                &bound),
                 0);
    /* The lookup is held: a turn completes nothing. */
    cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(lk.npending, 1);
    cr_assert_eq(bound.calls + ev.listening, 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    cr_assert_eq(dgt_fake_lookup_release(&lk), 1); /* the answer arrives after the close */
    dgt_run(loop, DGT_WAIT_MS);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.listening, 0, "no 'listening' after close");
    cr_assert_eq(ev.errors, 0, "a closed socket is silent");
    if (with_callback) {
        cr_assert_eq(bound.calls, 1);
        dgt_assert_code(bound.status, -ECANCELED);
        cr_assert_str_eq(ev.log, "BCX");
    } else {
        cr_assert_str_eq(ev.log, "CX");
    }
    dgt_loop_finish(loop);
}

Test(dgram_bind, close_during_bind_lookup_that_succeeds)
{
    close_during_bind_lookup(0, true); /* N11 */
}

Test(dgram_bind, close_during_bind_lookup_that_fails)
{
    close_during_bind_lookup(DG_ERR_DNS_NOTFOUND, true); /* N11 */
}

Test(dgram_bind, close_during_bind_lookup_without_callback)
{
    close_during_bind_lookup(DG_ERR_DNS_NOTFOUND, false); /* N11 */
}

/* N11: close right after binding to a literal, before the loop ran: the
 * bind callback still runs exactly once, with -ECANCELED; no 'listening',
 * no on_error; then on_close and the close callback. */
Test(dgram_bind, close_while_binding_completes_the_bind_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_status_rec bound = {.ev = &ev};
    dgt_close_rec cr = {.ev = &ev};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);

    cr_assert_eq(dg_socket_bind(sock, 0, "127.0.0.1", dgt_on_status, &bound), 0);
    cr_assert_eq(dg_socket_close(sock, dgt_on_close, &cr), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(cr.calls, 1);
    cr_assert_eq(bound.calls, 1, "bind returned 0, so its callback runs exactly once");
    dgt_assert_code(bound.status, -ECANCELED, "closed before 'listening'");
    cr_assert_str_eq(ev.log, "BCX", "no 'listening' nor on_error after close");
    dgt_loop_finish(loop);
}

/* N11/N3: a bind lookup that fails (socket open) reports the lookup's code
 * with the host name and leaves the socket unbound; a retry works. */
static void bind_lookup_failure(int mode)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.mode = mode, .fail_status = DG_ERR_DNS_NOTFOUND,
                          .fail_host = "missing.test"};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dg_socket *sock;
    dg_address addr;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    cr_assert_eq(dg_socket_bind(sock, 0, "missing.test", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, DG_ERR_DNS_NOTFOUND);
    cr_assert_str_eq(ev.error.address, "missing.test");
    cr_assert_eq(ev.listening, 0);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.errors, 1);
    cr_assert_eq(ev.listening, 1);
    dgt_loop_finish(loop);
}

Test(dgram_bind, bind_lookup_failure_sync)
{
    bind_lookup_failure(DGT_FAKE_LOOKUP_SYNC); /* N3 */
}

Test(dgram_bind, bind_lookup_failure_deferred)
{
    bind_lookup_failure(DGT_FAKE_LOOKUP_DEFERRED); /* N3 */
}

/* N3, P3: a lookup function that refuses at once (returns a negative
 * code): the failure still arrives from the loop, to on_error and then the
 * bind callback. */
Test(dgram_bind, bind_lookup_refusal_arrives_from_the_loop)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dgt_fake_lookup lk = {.fail_status = DG_ERR_DNS_SERVFAIL, .refuse = true};
    dgt_status_rec bound = {.ev = &ev};
    dg_socket_options options = dgt_fake_lookup_options(DG_UDP4, 0, &lk);
    dg_socket *sock;
    int rc;

    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    rc = dg_socket_bind(sock, 0, "refused.test", dgt_on_status, &bound);
    cr_assert_eq(rc, 0, "a refusing lookup function fails from the loop");
    cr_assert_eq(bound.calls, 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, DG_ERR_DNS_SERVFAIL);
    dgt_assert_code(ev.error.code, DG_ERR_DNS_SERVFAIL);
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 1);
    cr_assert_eq(ev.listening, 0);
    cr_assert_str_eq(ev.log, "EBC");
    dgt_loop_finish(loop);
}

/* Host names without DNS: "localhost" binds to loopback. */
Test(dgram_bind, localhost_binds_to_loopback)
{
    /* N3: the default resolver, no DNS for localhost */
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_address addr;

    dgt_bind(loop, sock, "localhost", 0);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

/* N12: udp6 with ipv6Only bound to "::" leaves the IPv4 side of its port
 * free; without ipv6Only the udp4 bind fails EADDRINUSE (on_error, then
 * the callback: P3). */
static void ipv6_only(bool v6only)
{
    dg_loop *loop;
    dgt_events e4 = {0};
    dg_socket *s6, *s4;
    dgt_status_rec bound = {0};
    int port;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    s6 = dgt_socket_new(loop, DG_UDP6, v6only ? DG_SOCKET_IPV6_ONLY : 0, NULL, NULL);
    s4 = dgt_events_socket(loop, DG_UDP4, 0, &e4);
    port = dgt_bind(loop, s6, "::", 0);
    cr_assert_eq(dg_socket_bind(s4, port, "0.0.0.0", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    if (v6only) {
        cr_assert_eq(bound.status, 0, "0.0.0.0:%d: %s", port, dg_err_name(bound.status));
        cr_assert_eq(e4.listening, 1);
    } else {
        dgt_assert_code(bound.status, -EADDRINUSE);
        cr_assert_eq(e4.listening, 0);
    }
    cr_assert_eq(e4.errors, v6only ? 0 : 1);
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, s6);
    dgt_loop_finish(loop);
}

Test(dgram_bind, ipv6_only_leaves_the_ipv4_port_free)
{
    ipv6_only(true); /* N12 */
}

Test(dgram_bind, dual_stack_holds_the_ipv4_port_too)
{
    ipv6_only(false); /* N12 */
}

/* N13, L1: with reuseAddr on both, two sockets bind the same port (and
 * say so in address()); without it on a third, that bind fails
 * EADDRINUSE. */
Test(dgram_bind, reuse_addr_shares_a_port)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ea = {0}, eb = {0};
    dg_socket *a = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &ea);
    dg_socket *b = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &eb);
    dg_socket *c = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_status_rec bound = {0};
    int port = dgt_bind(loop, a, "0.0.0.0", 0);
    dg_address addr;

    cr_assert_eq(dgt_bind(loop, b, "0.0.0.0", port), port);
    cr_assert_eq(dg_socket_address(b, &addr), 0);
    cr_assert_eq(addr.port, port);
    cr_assert_str_eq(addr.address, "0.0.0.0");
    cr_assert_eq(dg_socket_bind(c, port, "0.0.0.0", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, -EADDRINUSE);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    dgt_close_socket(loop, c);
    cr_assert_str_eq(ea.log, "LC");
    cr_assert_str_eq(eb.log, "LC");
    dgt_loop_finish(loop);
}

/* N14, L17: reusePort lets a second socket bind the first one's port; the
 * kernel spreads datagrams from 20 senders over both, and together they
 * receive every one. Without the flag on the second: EADDRINUSE. */
Test(dgram_bind, reuse_port_shares_a_port_and_the_traffic)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ea = {0}, eb = {0};
    dg_socket *a = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_PORT, &ea);
    dg_socket *b = dgt_events_socket(loop, DG_UDP4, DG_SOCKET_REUSE_PORT, &eb);
    dg_socket *c = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_status_rec bound = {0};
    int port = dgt_bind(loop, a, "127.0.0.1", 0);
    int total = 0;

    cr_assert_eq(dgt_bind(loop, b, "127.0.0.1", port), port);
    cr_assert_eq(dg_socket_bind(c, port, "127.0.0.1", dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    dgt_assert_code(bound.status, -EADDRINUSE);
    for (int i = 0; i < 20; i++) {
        int plain = dgt_plain_socket(AF_INET, 0);

        dgt_plain_send(plain, AF_INET, port, "ping", 4);
        close(plain);
    }
    while (total < 20) {
        dgt_run_once(loop, DGT_WAIT_MS);
        total = ea.messages + eb.messages;
    }
    cr_log_info("reusePort split: %d and %d", ea.messages, eb.messages);
    cr_assert_eq(total, 20);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    dgt_close_socket(loop, c);
    cr_assert_eq(ea.messages + eb.messages, 20);
    cr_assert_eq(ea.errors + eb.errors, 0);
    dgt_loop_finish(loop);
}

/* N15, L13: adopting a bound UDP fd (with and without SO_REUSEADDR, udp4
 * and udp6): 'listening' from the loop, address() equals the fd's
 * getsockname, the buffer-size options are applied (N2: 4096 -> 8192),
 * and it sends and receives. */
static int bound_plain_fd(int family, bool reuse)
{
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(family, 0, &ss);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;

    cr_assert_geq(fd, 0);
    if (reuse)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    return fd;
}

static void adopt_bound_fd(dg_socket_type type, bool reuse)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events ev = {0};
    dgt_status_rec bound = {.ev = &ev};
    dgt_send_rec sent = {0};
    dg_socket_options options = {.type = type, .recv_buffer_size = 4096,
                                 .send_buffer_size = 4096};
    dg_socket *sock;
    dg_address addr;
    int fd, plain, port;
    char buf[16];

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    cr_assert_eq(dgt_events_socket_opts(loop, &options, &ev, &sock), 0);
    fd = bound_plain_fd(family, reuse);
    port = dgt_plain_port(fd);
    dg_bind_options bo = {.fd = fd};
    cr_assert_eq(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), 0);
    cr_assert_eq(ev.listening + bound.calls, 0, "adoption completed inside the call");
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    cr_assert_str_eq(ev.log, "LB");
    cr_assert_eq(dg_socket_fd(sock), fd);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_eq(addr.port, port);
    cr_assert_str_eq(addr.address, dgt_loopback(family));
    cr_assert_eq(dg_socket_get_recv_buffer_size(sock, NULL), 8192);
    cr_assert_eq(dg_socket_get_send_buffer_size(sock, NULL), 8192);

    plain = dgt_plain_socket(family, 0);
    dgt_plain_send(plain, family, port, "in", 2);
    dgt_run_until(loop, &ev.messages, 1, DGT_WAIT_MS);
    cr_assert_eq(ev.length, 2);
    cr_assert_eq(dg_socket_send(sock, "out", 3, dgt_plain_port(plain), NULL, dgt_on_send, &sent),
                 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, 3);
    cr_assert_eq(dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, NULL), 3);
    close(plain);
    dgt_close_socket(loop, sock); /* closes fd: the socket owns it now */
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "the adopted fd stayed open after close");
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

Test(dgram_bind, adopt_bound_fd_udp4)
{
    adopt_bound_fd(DG_UDP4, false); /* N15, N2, L13 */
}

Test(dgram_bind, adopt_bound_fd_udp4_reuseaddr)
{
    adopt_bound_fd(DG_UDP4, true); /* N15, L13 */
}

Test(dgram_bind, adopt_bound_fd_udp6)
{
    adopt_bound_fd(DG_UDP6, false); /* N15 */
}

/* L13: an fd that is not bound yet is bound to the default address. */
Test(dgram_bind, adopt_unbound_fd)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    dgt_status_rec bound = {0};
    dg_address addr;

    cr_assert_geq(fd, 0);
    dg_bind_options bo = {.fd = fd};
    cr_assert_eq(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_gt(addr.port, 0);
    cr_assert_str_eq(addr.address, "0.0.0.0");
    dgt_close_socket(loop, sock);
    cr_assert_eq(ev.listening, 1);
    dgt_loop_finish(loop);
}

/* L13 (udp_open_connect): an fd connected already makes the socket
 * connected: remote_address works, a send without destination reaches the
 * peer, and one with a destination is IS_CONNECTED. */
Test(dgram_bind, adopt_connected_fd)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    int peer = dgt_plain_socket(AF_INET, 0);
    int fd = bound_plain_fd(AF_INET, false);
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET, dgt_plain_port(peer), &ss);
    dgt_status_rec bound = {0};
    dgt_send_rec sent = {0};
    dg_address remote;
    char buf[16];

    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
    dg_bind_options bo = {.fd = fd};
    cr_assert_eq(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    cr_assert_eq(dg_socket_remote_address(sock, &remote), 0);
    cr_assert_eq(remote.port, dgt_plain_port(peer));
    cr_assert_str_eq(remote.address, "127.0.0.1");
    dgt_assert_code(dg_socket_send(sock, "x", 1, dgt_plain_port(peer), "127.0.0.1", dgt_on_send,
                                   &sent),
                    DG_ERR_SOCKET_DGRAM_IS_CONNECTED);
    cr_assert_eq(dg_socket_send(sock, "hey", 3, 0, NULL, dgt_on_send, &sent), 0);
    dgt_run_until(loop, &sent.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, 3);
    cr_assert_eq(dgt_plain_recv(peer, buf, sizeof(buf), DGT_WAIT_MS, NULL), 3);
    cr_assert_eq(memcmp(buf, "hey", 3), 0);
    close(peer);
    dgt_close_socket(loop, sock);
    cr_assert_eq(sent.calls, 1);
    dgt_loop_finish(loop);
}

/* N15, L13: adoption errors are synchronous and change nothing: -EBADF
 * (not an open fd), INVALID_FD_TYPE (TCP, a pipe, the other family),
 * -EEXIST (an fd another dgring socket owns); afterwards the socket is
 * still unbound and binds normally, and the caller still owns its fds. */
Test(dgram_bind, adopt_errors_change_nothing)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dg_socket *owner = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int udp6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int closed = dup(tcp);
    int pipefd[2];
    dgt_status_rec bound = {0};
    dg_address addr;

    cr_assert_geq(tcp, 0);
    cr_assert_geq(closed, 0);
    cr_assert_eq(pipe(pipefd), 0);
    close(closed);
    dg_bind_options bo = {.fd = closed};
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), -EBADF);
    bo.fd = tcp;
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), DG_ERR_INVALID_FD_TYPE,
                    "TCP");
    bo.fd = pipefd[0];
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), DG_ERR_INVALID_FD_TYPE,
                    "a pipe");
    if (udp6 >= 0) {
        bo.fd = udp6;
        dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound),
                        DG_ERR_INVALID_FD_TYPE, "a udp6 fd for a udp4 socket");
    }
    bo.fd = dg_socket_fd(owner);
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), -EEXIST,
                    "the fd of another dgring socket");
    bo.fd = dg_socket_fd(sock);
    dgt_assert_code(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), -EEXIST,
                    "its own fd");
    dgt_assert_code(dg_socket_bind_ex(sock, NULL, dgt_on_status, &bound),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert_geq(fcntl(tcp, F_GETFD), 0, "a refused fd must stay open (the caller owns it)");
    cr_assert_geq(fcntl(pipefd[0], F_GETFD), 0);
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    cr_assert(!dg_loop_alive(loop));
    dgt_bind(loop, sock, "127.0.0.1", 0);
    close(tcp);
    close(pipefd[0]);
    close(pipefd[1]);
    if (udp6 >= 0)
        close(udp6);
    dgt_close_socket(loop, sock);
    dgt_close_socket(loop, owner);
    cr_assert_eq(bound.calls, 0);
    cr_assert_eq(ev.listening, 1);
    cr_assert_eq(ev.errors, 0);
    dgt_loop_finish(loop);
}

/* L13 (udp_open_twice): an fd adopted by one socket cannot be adopted by
 * a second one (EEXIST). */
Test(dgram_bind, adopted_fd_cannot_be_adopted_twice)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *a = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_socket *b = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int fd = bound_plain_fd(AF_INET, true);
    dgt_status_rec bound = {0};
    dg_bind_options bo = {.fd = fd};

    cr_assert_eq(dg_socket_bind_ex(a, &bo, dgt_on_status, &bound), 0);
    dgt_assert_code(dg_socket_bind_ex(b, &bo, NULL, NULL), -EEXIST);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    dgt_loop_finish(loop);
}

/* N6/N7 through bind_ex: port and address as dg_socket_bind; exclusive is
 * accepted (dgring sockets are always exclusive). */
Test(dgram_bind, bind_ex_with_port_and_address)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    dgt_status_rec bound = {.ev = &ev};
    dg_bind_options bo = {.port = 0, .address = "127.0.0.1", .exclusive = true, .fd = -1};
    dg_address addr;

    cr_assert_eq(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound), 0);
    dgt_run_until(loop, &bound.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(bound.status, 0);
    cr_assert_eq(dg_socket_address(sock, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");
    dgt_close_socket(loop, sock);
    cr_assert_str_eq(ev.log, "LBC");
    dgt_loop_finish(loop);
}

/* E1: the port is range-checked (Node truncates it silently):
 * < 0 or > 65535 is BAD_PORT, synchronously, and nothing changes. */
Test(dgram_bind, port_out_of_range_is_bad_port)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events ev = {0};
    dg_socket *sock = dgt_events_socket(loop, DG_UDP4, 0, &ev);
    const int bad[] = {-1, 65536, 70000, 65536 + 80, -65536};
    dgt_status_rec bound = {0};
    dg_address addr;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dg_bind_options bo = {.port = bad[i]};

        dgt_assert_code_fmt(dg_socket_bind(sock, bad[i], "127.0.0.1", dgt_on_status, &bound),
                        DG_ERR_SOCKET_BAD_PORT, "port %d", bad[i]);
        dgt_assert_code_fmt(dg_socket_bind_ex(sock, &bo, dgt_on_status, &bound),
                        DG_ERR_SOCKET_BAD_PORT, "bind_ex port %d", bad[i]);
    }
    dgt_assert_code(dg_socket_address(sock, &addr), -EBADF);
    cr_assert(!dg_loop_alive(loop));
    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(bound.calls, 0);
    cr_assert_eq(ev.listening, 1);
    dgt_loop_finish(loop);
}

/* N33: after a socket on a port closes, a new socket binds the same port
 * at once (no lingering state). */
Test(dgram_bind, same_port_binds_again_right_after_close)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *a = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_socket *b = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, a, "127.0.0.1", 0);

    dgt_close_socket(loop, a);
    cr_assert_eq(dgt_bind(loop, b, "127.0.0.1", port), port);
    dgt_close_socket(loop, b);
    dgt_loop_finish(loop);
}

/* N36 (the parsing half): a link-local literal with a %ifname scope is
 * accepted and carried into the error record; fe80::1 is not assigned to
 * lo, so the bind fails with EADDRNOTAVAIL for "fe80::1%lo". */
Test(dgram_bind, link_local_scope_is_parsed)
{
    dg_loop *loop;
    dgt_events ev = {0};
    dg_socket *sock;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    sock = dgt_events_socket(loop, DG_UDP6, 0, &ev);
    cr_assert_eq(dg_socket_bind(sock, 0, "fe80::1%lo", NULL, NULL), 0);
    dgt_run_until(loop, &ev.errors, 1, DGT_WAIT_MS);
    dgt_assert_code(ev.error.code, -EADDRNOTAVAIL);
    cr_assert_str_eq(ev.error.address, "fe80::1%lo");
    cr_assert_str_eq(ev.error_text, "bind EADDRNOTAVAIL fe80::1%lo");
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

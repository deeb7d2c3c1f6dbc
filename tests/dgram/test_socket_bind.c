/* Socket creation and bind: types and options, bind to port 0 and reading
 * the address back, the order and asynchrony of on_listening and the bind
 * callback, synchronous argument errors, EADDRINUSE delivered through the
 * callback or on_error (and binding again afterwards), SO_REUSEADDR, calls
 * on a closed socket and formatting socket addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(socket_bind, .timeout = 20);

/* Everything a socket's handlers and bind callback saw, in order. */
struct events {
    int seq;
    int listening;
    int listening_seq;
    int bound;
    int bound_seq;
    int bind_status;
    int closed;
    int messages;
    int errors;
    int error_code;
    char error_syscall[32];
    char error_address[sizeof(((dg_error *)0)->address)];
    int error_port;
};

static void ev_listening(dg_socket *sock, void *data)
{
    struct events *e = data;

    (void)sock;
    e->listening++;
    e->listening_seq = ++e->seq;
}

static void ev_close(dg_socket *sock, void *data)
{
    (void)sock;
    ((struct events *)data)->closed++;
}

static void ev_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    ((struct events *)data)->messages++;
}

static void ev_error(dg_socket *sock, const dg_error *err, void *data)
{
    struct events *e = data;

    (void)sock;
    e->errors++;
    e->error_code = err->code;
    snprintf(e->error_syscall, sizeof(e->error_syscall), "%s",
             err->syscall ? err->syscall : "(null)");
    snprintf(e->error_address, sizeof(e->error_address), "%s", err->address);
    e->error_port = err->port;
}

static void ev_bound(dg_socket *sock, int status, void *data)
{
    struct events *e = data;

    (void)sock;
    e->bound++;
    e->bound_seq = ++e->seq;
    e->bind_status = status;
}

static void count_closed(dg_socket *sock, void *data)
{
    (void)sock;
    (*(int *)data)++;
}

static const dg_socket_handlers ev_handlers = {
    .on_message = ev_message,
    .on_listening = ev_listening,
    .on_close = ev_close,
    .on_error = ev_error,
};

Test(socket_bind, create_udp4_and_udp6)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e4, e6;
    dg_socket *s4, *s6;

    memset(&e4, 0, sizeof(e4));
    memset(&e6, 0, sizeof(e6));
    s4 = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e4);
    s6 = dgt_socket_new(loop, DG_UDP6, 0, &ev_handlers, &e6);
    cr_assert_eq(dg_socket_get_type(s4), DG_UDP4);
    cr_assert_eq(dg_socket_get_type(s6), DG_UDP6);
    cr_assert_eq(dg_socket_loop(s4), loop);
    cr_assert_eq(dg_socket_loop(s6), loop);
    cr_assert(dg_socket_has_ref(s4));
    cr_assert(!dg_loop_alive(loop), "unbound sockets keep nothing alive");
    /* The fd exists from creation on, of the socket's family, yet unbound. */
    for (int i = 0; i < 2; i++) {
        dg_socket *s = i == 0 ? s4 : s6;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        dg_address a;

        cr_assert_geq(dg_socket_fd(s), 0);
        cr_assert_eq(getsockname(dg_socket_fd(s), (struct sockaddr *)&ss, &sslen), 0);
        cr_assert_eq(ss.ss_family, i == 0 ? AF_INET : AF_INET6);
        dgt_assert_code(dg_socket_address(s, &a), -EBADF, "created is not bound");
    }
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, s6);
    cr_assert_eq(e4.closed, 1);
    cr_assert_eq(e6.closed, 1);
    cr_assert_eq(e4.listening + e6.listening + e4.errors + e6.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_bind, create_rejects_bad_arguments)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket_options options;
    dg_socket *sock = NULL;

    memset(&options, 0, sizeof(options));
    options.type = (dg_socket_type)5;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_SOCKET_BAD_TYPE);
    options.type = (dg_socket_type)0;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_SOCKET_BAD_TYPE);
    cr_assert_null(sock);

    options.type = DG_UDP4;
    dgt_assert_code(dg_socket_create(NULL, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_create(loop, NULL, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);

    options.flags = 0x80;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE,
                    "unknown flags");
    options.flags = DG_SOCKET_IPV6_ONLY;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_INVALID_ARG_VALUE,
                    "IPV6_ONLY on udp4");
    options.flags = 0;
    options.recv_buffer_size = -1;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_OUT_OF_RANGE,
                    "negative recv_buffer_size");
    options.recv_buffer_size = 0;
    options.send_buffer_size = -1;
    dgt_assert_code(dg_socket_create(loop, &options, NULL, NULL, &sock), DG_ERR_OUT_OF_RANGE,
                    "negative send_buffer_size");
    cr_assert_null(sock);
    dgt_loop_finish(loop);
}

static void check_bind_port_zero(dg_socket_type type, const char *address, const char *expect)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e;
    dg_socket *sock;
    dg_address bound;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int fd;

    memset(&e, 0, sizeof(e));
    sock = dgt_socket_new(loop, type, 0, &ev_handlers, &e);
    dgt_assert_code(dg_socket_address(sock, &bound), -EBADF, "address() before bind");
    cr_assert_eq(dg_socket_bind(sock, address, 0, ev_bound, &e), 0);
    cr_assert_eq(e.listening, 0, "on_listening ran inside dg_socket_bind");
    cr_assert_eq(e.bound, 0, "the bind callback ran inside dg_socket_bind");
    dgt_run_until(loop, &e.bound, 1, DGT_WAIT_MS);
    cr_assert_eq(e.bind_status, 0, "bind: %s", dg_err_name(e.bind_status));
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e.bound, 1);
    cr_assert_lt(e.listening_seq, e.bound_seq, "on_listening must come before the bind callback");
    cr_assert_eq(e.errors, 0);

    memset(&bound, 0x55, sizeof(bound));
    cr_assert_eq(dg_socket_address(sock, &bound), 0);
    cr_assert_gt(bound.port, 0);
    cr_assert_leq(bound.port, 65535);
    cr_assert_eq(bound.family, dgt_family(type));
    cr_assert_str_eq(bound.address, expect);

    /* The kernel agrees. */
    fd = dg_socket_fd(sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sslen), 0);
    cr_assert_eq(dgt_sockaddr_port((struct sockaddr *)&ss), bound.port);
    cr_assert_eq(ss.ss_family, dgt_family(type));

    dgt_close_socket(loop, sock);
    cr_assert_eq(e.closed, 1);
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e.bound, 1);
    cr_assert_eq(e.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_bind, udp4_loopback_port_zero)
{
    check_bind_port_zero(DG_UDP4, "127.0.0.1", "127.0.0.1");
}

Test(socket_bind, udp4_unspecified_port_zero)
{
    check_bind_port_zero(DG_UDP4, NULL, "0.0.0.0");
}

Test(socket_bind, udp4_empty_address_is_unspecified)
{
    check_bind_port_zero(DG_UDP4, "", "0.0.0.0");
}

Test(socket_bind, udp6_loopback_port_zero)
{
    dgt_require_ipv6();
    check_bind_port_zero(DG_UDP6, "::1", "::1");
}

Test(socket_bind, udp6_unspecified_port_zero)
{
    dgt_require_ipv6();
    check_bind_port_zero(DG_UDP6, NULL, "::");
}

Test(socket_bind, bind_without_callback_still_listens)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e;
    dg_socket *sock;
    dg_address bound;

    memset(&e, 0, sizeof(e));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(e.listening, 0);
    dgt_run_until(loop, &e.listening, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_address(sock, &bound), 0);
    cr_assert_gt(bound.port, 0);
    dgt_close_socket(loop, sock);
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e.errors, 0);
    cr_assert_eq(e.closed, 1);
    dgt_loop_finish(loop);
}

Test(socket_bind, bind_twice_is_already_bound)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e, e2;
    dg_socket *sock;

    memset(&e, 0, sizeof(e));
    memset(&e2, 0, sizeof(e2));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", 0, ev_bound, &e), 0);
    /* Still binding: the loop has not run yet. */
    dgt_assert_code(dg_socket_bind(sock, "127.0.0.1", 0, ev_bound, &e2),
                    DG_ERR_SOCKET_ALREADY_BOUND);
    dgt_run_until(loop, &e.bound, 1, DGT_WAIT_MS);
    cr_assert_eq(e.bind_status, 0);
    /* Bound. */
    dgt_assert_code(dg_socket_bind(sock, "127.0.0.1", 0, ev_bound, &e2),
                    DG_ERR_SOCKET_ALREADY_BOUND);
    dgt_assert_code(dg_socket_bind(sock, NULL, 0, NULL, NULL), DG_ERR_SOCKET_ALREADY_BOUND);
    dgt_close_socket(loop, sock);
    cr_assert_eq(e.bound, 1);
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e2.bound, 0, "a refused bind must never call its callback");
    cr_assert_eq(e.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_bind, synchronous_argument_errors_change_nothing)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e, never;
    dg_socket *s4, *s6;
    dg_address bound;

    memset(&e, 0, sizeof(e));
    memset(&never, 0, sizeof(never));
    s4 = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    dgt_assert_code(dg_socket_bind(s4, "127.0.0.1", -1, ev_bound, &never), DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_bind(s4, "127.0.0.1", 65536, ev_bound, &never),
                    DG_ERR_SOCKET_BAD_PORT);
    /* Text that cannot be a host name, and a literal of the other family
     * (a plain name would be resolved, and no test may depend on DNS). */
    dgt_assert_code(dg_socket_bind(s4, "not an ip!", 0, ev_bound, &never), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s4, "::1", 0, ev_bound, &never), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(NULL, "127.0.0.1", 0, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_address(s4, &bound), -EBADF, "a refused bind left an address");
    cr_assert(!dg_loop_alive(loop), "a refused bind left the socket alive");

    s6 = dgt_socket_new(loop, DG_UDP6, 0, &ev_handlers, &e);
    dgt_assert_code(dg_socket_bind(s6, "127.0.0.1", 0, ev_bound, &never), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s6, "not an ip!", 0, ev_bound, &never), DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_bind(s6, "::1", 70000, ev_bound, &never), DG_ERR_SOCKET_BAD_PORT);

    /* Nothing changed: a valid bind still works. */
    dgt_bind(loop, s4, "127.0.0.1", 0);
    dgt_close_socket(loop, s4);
    dgt_close_socket(loop, s6);
    cr_assert_eq(never.bound + never.listening, 0);
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e.errors, 0);
    cr_assert_eq(e.closed, 2);
    dgt_loop_finish(loop);
}

Test(socket_bind, address_in_use_goes_to_the_bind_callback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int holder = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(holder);
    struct events e;
    dg_socket *sock;
    dg_address bound;
    int new_port;

    memset(&e, 0, sizeof(e));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", port, ev_bound, &e), 0,
                 "EADDRINUSE must be reported asynchronously");
    cr_assert_eq(e.bound, 0);
    dgt_run_until(loop, &e.bound, 1, DGT_WAIT_MS);
    cr_assert_eq(e.bind_status, -EADDRINUSE, "bind callback got %s", dg_err_name(e.bind_status));
    cr_assert_eq(e.listening, 0);
    cr_assert_eq(e.errors, 0, "with a bind callback the error goes there, not to on_error");
    dgt_assert_code(dg_socket_address(sock, &bound), -EBADF, "the socket is unbound again");

    /* Unbound again: it can bind elsewhere. */
    new_port = dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_neq(new_port, port);
    cr_assert_eq(e.listening, 1);
    dgt_close_socket(loop, sock);
    close(holder);
    cr_assert_eq(e.bound, 1);
    cr_assert_eq(e.errors, 0);
    cr_assert_eq(e.closed, 1);
    dgt_loop_finish(loop);
}

Test(socket_bind, address_in_use_without_callback_goes_to_on_error)
{
    dg_loop *loop = dgt_loop_new(NULL);
    int holder = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(holder);
    struct events e;
    dg_socket *sock;
    dg_address bound;

    memset(&e, 0, sizeof(e));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert_eq(e.errors, 0, "on_error ran inside dg_socket_bind");
    dgt_run_until(loop, &e.errors, 1, DGT_WAIT_MS);
    cr_assert_eq(e.errors, 1);
    cr_assert_eq(e.error_code, -EADDRINUSE, "on_error got %s", dg_err_name(e.error_code));
    cr_assert_str_eq(e.error_syscall, "bind");
    cr_assert_str_eq(e.error_address, "127.0.0.1", "Node reports the address of a failed bind");
    cr_assert_eq(e.error_port, port, "Node reports the port of a failed bind");
    cr_assert_eq(e.listening, 0);
    dgt_assert_code(dg_socket_address(sock, &bound), -EBADF);

    dgt_bind(loop, sock, "127.0.0.1", 0);
    dgt_close_socket(loop, sock);
    close(holder);
    cr_assert_eq(e.errors, 1);
    cr_assert_eq(e.listening, 1);
    cr_assert_eq(e.closed, 1);
    dgt_loop_finish(loop);
}

Test(socket_bind, address_in_use_between_two_dgring_sockets)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events ea, eb;
    dg_socket *a, *b;
    int port;

    memset(&ea, 0, sizeof(ea));
    memset(&eb, 0, sizeof(eb));
    a = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &ea);
    b = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &eb);
    port = dgt_bind(loop, a, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_bind(b, "127.0.0.1", port, ev_bound, &eb), 0);
    dgt_run_until(loop, &eb.bound, 1, DGT_WAIT_MS);
    cr_assert_eq(eb.bind_status, -EADDRINUSE);
    cr_assert_eq(eb.listening, 0);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    cr_assert_eq(ea.listening, 1);
    cr_assert_eq(ea.errors + eb.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_bind, reuse_addr_lets_two_sockets_share_a_port)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events ea, eb;
    dg_socket *a, *b;
    dg_address bound;
    int port;

    memset(&ea, 0, sizeof(ea));
    memset(&eb, 0, sizeof(eb));
    a = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &ev_handlers, &ea);
    b = dgt_socket_new(loop, DG_UDP4, DG_SOCKET_REUSE_ADDR, &ev_handlers, &eb);
    port = dgt_bind(loop, a, "127.0.0.1", 0);
    cr_assert_eq(dgt_bind(loop, b, "127.0.0.1", port), port);
    cr_assert_eq(dg_socket_address(b, &bound), 0);
    cr_assert_eq(bound.port, port);
    cr_assert_str_eq(bound.address, "127.0.0.1");
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    cr_assert_eq(ea.listening, 1);
    cr_assert_eq(eb.listening, 1);
    cr_assert_eq(ea.errors + eb.errors, 0);
    cr_assert_eq(ea.closed + eb.closed, 2);
    dgt_loop_finish(loop);
}

static void noop_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)status;
    (void)err;
    (*(int *)data)++;
}

static void check_calls_after_close(bool bound_first)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e, never;
    dg_socket *sock;
    dg_address bound;
    struct sockaddr_storage ss;
    socklen_t sslen = dgt_sockaddr(AF_INET, 9, &ss);
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    int closed = 0, sends = 0;

    memset(&e, 0, sizeof(e));
    memset(&never, 0, sizeof(never));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    if (bound_first)
        dgt_bind(loop, sock, "127.0.0.1", 0);
    cr_assert_eq(dg_socket_close(sock, count_closed, &closed), 0);
    /* Closing but not yet freed: every call is refused. */
    dgt_assert_code(dg_socket_close(sock, count_closed, &closed), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_bind(sock, "127.0.0.1", 0, ev_bound, &never),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_send(sock, "x", 1, 9, "127.0.0.1", noop_send, &sends),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_sendv(sock, &iov, 1, 9, "127.0.0.1", noop_send, &sends),
                    DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(
        dg_socket_send_to(sock, "x", 1, (struct sockaddr *)&ss, sslen, noop_send, &sends),
        DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_address(sock, &bound), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_assert_code(dg_socket_fd(sock), DG_ERR_SOCKET_DGRAM_NOT_RUNNING);
    dgt_run_until(loop, &closed, 1, DGT_WAIT_MS);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(closed, 1);
    cr_assert_eq(e.closed, 1);
    cr_assert_eq(sends, 0);
    cr_assert_eq(never.bound + never.listening, 0);
    cr_assert_eq(e.errors, 0);
    dgt_loop_finish(loop);
}

Test(socket_bind, calls_on_a_closing_bound_socket_are_not_running)
{
    check_calls_after_close(true);
}

Test(socket_bind, calls_on_a_closing_unbound_socket_are_not_running)
{
    check_calls_after_close(false);
}

Test(socket_bind, close_while_binding_completes_the_bind_once)
{
    dg_loop *loop = dgt_loop_new(NULL);
    struct events e;
    dg_socket *sock;
    int closed = 0;

    memset(&e, 0, sizeof(e));
    sock = dgt_socket_new(loop, DG_UDP4, 0, &ev_handlers, &e);
    cr_assert_eq(dg_socket_bind(sock, "127.0.0.1", 0, ev_bound, &e), 0);
    cr_assert_eq(dg_socket_close(sock, count_closed, &closed), 0);
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(closed, 1);
    cr_assert_eq(e.closed, 1);
    cr_assert_eq(e.bound, 1, "bind returned 0, so its callback runs exactly once");
    cr_assert_eq(e.bind_status, -ECANCELED, "closed before 'listening': bind callback got %s",
                 dg_err_name(e.bind_status));
    cr_assert_eq(e.listening, 0, "closed before 'listening': no on_listening");
    cr_assert_eq(e.errors, 0);
    dgt_loop_finish(loop);
}

/* ---- dg_address_from_sockaddr ---------------------------------------- */

Test(socket_bind, address_from_sockaddr_ipv4)
{
    struct sockaddr_in sin;
    dg_address a;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(41234);
    cr_assert_eq(inet_pton(AF_INET, "192.0.2.33", &sin.sin_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
    cr_assert_str_eq(a.address, "192.0.2.33");
    cr_assert_eq(a.family, AF_INET);
    cr_assert_eq(a.port, 41234);

    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons(65535);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a), 0);
    cr_assert_str_eq(a.address, "0.0.0.0");
    cr_assert_eq(a.port, 65535);
}

Test(socket_bind, address_from_sockaddr_ipv6)
{
    struct sockaddr_in6 sin6;
    dg_address a;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(9);
    sin6.sin6_addr = in6addr_loopback;
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "::1");
    cr_assert_eq(a.family, AF_INET6);
    cr_assert_eq(a.port, 9);

    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::17", &sin6.sin6_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "2001:db8::17");

    cr_assert_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, "::ffff:127.0.0.1");
    cr_assert_eq(a.family, AF_INET6);
}

Test(socket_bind, address_from_sockaddr_link_local_has_scope_name)
{
    struct sockaddr_in6 sin6;
    char ifname[IF_NAMESIZE];
    char want[DG_ADDRSTRLEN];
    unsigned index = if_nametoindex("lo");
    dg_address a;

    if (index == 0)
        cr_skip_test("no interface named lo to use as a scope");
    cr_assert_not_null(if_indextoname(index, ifname));
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(5353);
    sin6.sin6_scope_id = index;
    cr_assert_eq(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
    snprintf(want, sizeof(want), "fe80::1%%%s", ifname);
    cr_assert_eq(dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a), 0);
    cr_assert_str_eq(a.address, want);
    cr_assert_eq(a.port, 5353);
}

Test(socket_bind, address_from_sockaddr_rejects_bad_input)
{
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    dg_address a;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &a),
                    DG_ERR_INVALID_ADDRESS);
    ss.ss_family = AF_UNSPEC;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &a),
                    DG_ERR_INVALID_ADDRESS);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 1, &a),
                    DG_ERR_INVALID_ADDRESS, "short IPv4 length");

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    dgt_assert_code(
        dg_address_from_sockaddr((struct sockaddr *)&sin6, sizeof(struct sockaddr_in), &a),
        DG_ERR_INVALID_ADDRESS, "short IPv6 length");
}

/* Out of memory: a test allocator (dg_replace_allocator) that fails the
 * nth allocation. Each path below (loop new; socket create, bind, send,
 * receive, implicit bind, close; timers and posts; dg_lookup and sends to
 * host names through a scripted DNS server on 127.0.0.1; a reuse-port
 * group) runs for n = 1, 2, ... until it completes without reaching the
 * failure. For every n: each call either succeeds or returns -ENOMEM (the
 * resolver's DG_ERR_DNS_NOMEM where c-ares ran out), each callback reports
 * success or one of those, the cleanup that follows works, and after the
 * loop closed no block of the test allocator is live.
 * DGT_OOM_TRACE=1 prints a backtrace of each failed allocation. */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/dns_server.h"
#include "support/helpers.h"

/* ---- The failing allocator -------------------------------------------- */

static atomic_long alloc_calls;   /* allocations asked for since arming */
static atomic_long fail_at;       /* fail this one (1-based); 0 = never */
static atomic_bool failed;        /* the failure was injected */
static atomic_long live;          /* blocks handed out and not freed */

static bool should_fail(void)
{
    long n = atomic_fetch_add(&alloc_calls, 1) + 1;
    long at = atomic_load(&fail_at);
    if (at > 0 && n == at) {
        atomic_store(&failed, true);
        if (getenv("DGT_OOM_TRACE")) { /* debugging: who got the NULL */
            void *bt[32];
            int depth = backtrace(bt, 32);
            fprintf(stderr, "allocation %ld fails:\n", n);
            backtrace_symbols_fd(bt, depth, 2);
        }
        return true;
    }
    return false;
}

static void *t_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *t_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = calloc(count, size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *t_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = realloc(ptr, size);
    if (p && !ptr)
        atomic_fetch_add(&live, 1);
    return p;
}

static void t_free(void *ptr)
{
    if (ptr)
        atomic_fetch_sub(&live, 1);
    free(ptr);
}

static void install(void)
{
    int rc = dg_replace_allocator(t_malloc, t_realloc, t_calloc, t_free);
    cr_assert_eq(rc, 0, "dg_replace_allocator: %s", dg_err_name(rc));
}

TestSuite(oom, .init = install, .timeout = 120);

static bool is_nomem(int code)
{
    return code == -ENOMEM || code == DG_ERR_DNS_NOMEM;
}

/* The result of one step: success, or an out-of-memory error; anything
 * else fails the test. */
#define STEP_OK(expr)                                                                             \
    do {                                                                                          \
        int step_rc_ = (expr);                                                                    \
        cr_assert(step_rc_ == 0 || is_nomem(step_rc_), "%s at n=%ld: %d (%s)", #expr,             \
                  atomic_load(&fail_at), step_rc_, dg_err_name(step_rc_));                        \
    } while (0)

/* One step of a path: rc = expr, which must be 0 or out of memory; on
 * out of memory the path goes to its cleanup at out:. */
#define STEP(expr)                                                                                \
    do {                                                                                          \
        rc = (expr);                                                                              \
        STEP_OK(rc);                                                                              \
        if (rc < 0)                                                                               \
            goto out;                                                                             \
    } while (0)

/* Runs path for n = 1.. until it completes without the injected failure.
 * path returns 0 when every step succeeded, or the out-of-memory code it
 * stopped at. Returns how many allocations the whole path makes. */
static long sweep(const char *name, int (*path)(void *), void *arg)
{
    for (long n = 1;; n++) {
        cr_assert_lt(n, 20000, "%s: never completed", name);
        atomic_store(&alloc_calls, 0);
        atomic_store(&failed, false);
        atomic_store(&fail_at, n);
        int rc = path(arg);
        atomic_store(&fail_at, 0);
        cr_assert_eq(atomic_load(&live), 0, "%s: %ld blocks leaked with allocation %ld failing",
                     name, atomic_load(&live), n);
        cr_assert(rc == 0 || is_nomem(rc), "%s, allocation %ld failing: %d (%s)", name, n, rc,
                  dg_err_name(rc));
        if (!atomic_load(&failed)) {
            cr_assert_eq(rc, 0, "%s: failed (%s) with no allocation failing", name,
                         dg_err_name(rc));
            cr_log_info("%s: %ld allocations, each failed once", name, n - 1);
            return n - 1;
        }
    }
}

/* Runs the loop until *done is true, or until nothing is left that could
 * make it true (the loop is not alive). */
static void run_until(dg_loop *loop, const bool *done)
{
    while (!*done) {
        int r = dg_loop_run(loop, DG_RUN_ONCE);
        cr_assert_geq(r, 0, "dg_loop_run: %s", dg_err_name(r));
        if (r == 0 && !*done)
            break;
    }
}

/* A loop with few, small buffers, as every path starts: 0, or -ENOMEM
 * (a failed dg_loop_new leaves *out NULL). */
static int new_small_loop(dg_loop **out)
{
    dg_loop_options o;
    dg_loop_options_init(&o);
    o.recv_buffers = 16;
    o.recv_buffer_size = 2048;
    *out = NULL;
    int rc = dg_loop_new(out, &o);
    STEP_OK(rc);
    if (rc < 0)
        cr_assert_null(*out);
    return rc;
}

/* ---- Loop -------------------------------------------------------------- */

static int path_loop(void *arg)
{
    (void)arg;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    dgt_assert_code(dg_loop_close(loop), 0);
    return 0;
}

Test(oom, loop_new)
{
    long n = sweep("loop new", path_loop, NULL);
    cr_assert_gt(n, 0);
}

/* ---- Sockets ----------------------------------------------------------- */

struct sock_ctx {
    int binds;
    int bind_target;
    int bind_status;
    bool binds_done;
    int sends;
    int send_status;
    bool sends_done;
    int messages;
    bool message_done;
    int closes;
    int close_target;
    bool closes_done;
    int errors;
    int error_code;
    int listening;
};

static void sc_on_message(dg_socket *s, const dg_message *msg, void *data)
{
    struct sock_ctx *c = data;
    (void)s;
    cr_assert_eq(msg->length, 5);
    cr_assert_eq(memcmp(msg->data, "hello", 5), 0);
    c->messages++;
    c->message_done = true;
}

static void sc_on_close(dg_socket *s, void *data)
{
    struct sock_ctx *c = data;
    (void)s;
    c->closes++;
    c->closes_done = c->closes >= c->close_target;
}

static void sc_on_error(dg_socket *s, const dg_error *err, void *data)
{
    struct sock_ctx *c = data;
    (void)s;
    c->errors++;
    c->error_code = err->code;
    cr_assert(is_nomem(err->code), "on_error %s (%s)", dg_err_name(err->code),
              err->syscall ? err->syscall : "");
}

static void sc_on_listening(dg_socket *s, void *data)
{
    struct sock_ctx *c = data;
    (void)s;
    c->listening++;
}

static const dg_socket_handlers sc_handlers = {
    .on_message = sc_on_message,
    .on_close = sc_on_close,
    .on_error = sc_on_error,
    .on_listening = sc_on_listening,
};

static void sc_on_bind(dg_socket *s, int status, const dg_error *err, void *data)
{
    (void)err;
    struct sock_ctx *c = data;
    (void)s;
    STEP_OK(status);
    if (status < 0 && c->bind_status == 0)
        c->bind_status = status;
    c->binds_done = ++c->binds >= c->bind_target;
}

static void sc_on_send(dg_socket *s, int status, const dg_error *err, void *data)
{
    struct sock_ctx *c = data;
    (void)s;
    (void)err;
    cr_assert(status == 5 || is_nomem(status), "send callback: %d (%s)", status,
              dg_err_name(status));
    c->send_status = status < 0 ? status : 0;
    c->sends++;
    c->sends_done = true;
}

struct outcome_ctx {
    int status;
    bool done;
};

static void on_connected(dg_socket *s, int status, const dg_error *err, void *data)
{
    (void)err;
    struct outcome_ctx *o = data;
    (void)s;
    STEP_OK(status);
    cr_assert(!o->done, "connect callback twice");
    o->status = status;
    o->done = true;
}

/* Closes every socket in socks that exists, runs the loop until their
 * close callbacks ran, closes the loop. */
static void finish(dg_loop *loop, dg_socket **socks, int n, struct sock_ctx *c)
{
    c->close_target = 0;
    for (int i = 0; i < n; i++)
        if (socks[i])
            c->close_target++;
    c->closes = 0;
    c->closes_done = c->close_target == 0;
    for (int i = 0; i < n; i++)
        if (socks[i])
            dgt_assert_code(dg_socket_close(socks[i], NULL, NULL), 0);
    run_until(loop, &c->closes_done);
    cr_assert_eq(c->closes, c->close_target);
    /* nothing else (a stray send or lookup) may keep the loop alive */
    while (dg_loop_alive(loop))
        cr_assert_geq(dg_loop_run(loop, DG_RUN_ONCE), 0);
    dgt_assert_code(dg_loop_close(loop), 0);
}

/* Two sockets: create, bind both, send a datagram from one to the other,
 * receive it, close. Then an unbound third socket sends (implicit bind). */
/* Sends "hello" from sock to port/address (0/NULL: the connected peer)
 * and runs until its callback ran and, if it succeeded, the datagram
 * arrived. Returns the call's or the callback's error, else 0. */
static int send_hello(dg_loop *loop, dg_socket *sock, int port, const char *address,
                      struct sock_ctx *c)
{
    c->sends_done = false;
    c->message_done = false;
    int rc = dg_socket_send(sock, "hello", 5, port, address, sc_on_send, c);
    STEP_OK(rc);
    if (rc < 0)
        return rc;
    run_until(loop, &c->sends_done);
    if (c->send_status < 0)
        return c->send_status;
    run_until(loop, &c->message_done);
    return 0;
}

static int path_socket(void *arg)
{
    const char *address = arg;
    dg_socket_type type = strchr(address, ':') ? DG_UDP6 : DG_UDP4;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    struct sock_ctx c = {0};
    dg_socket *s[3] = {NULL, NULL, NULL};
    dg_socket_options o = {.type = type};

    for (int i = 0; i < 3; i++) {
        rc = dg_socket_create(loop, &o, &sc_handlers, &c, &s[i]);
        STEP_OK(rc);
        if (rc < 0) {
            cr_assert_null(s[i]);
            goto out;
        }
    }
    c.bind_target = 2;
    for (int i = 0; i < 2; i++) {
        rc = dg_socket_bind(s[i], 0, address, sc_on_bind, &c);
        STEP_OK(rc);
        if (rc < 0) {
            /* the binds that started still call back */
            c.bind_target = i;
            c.binds_done = c.binds >= i;
            run_until(loop, &c.binds_done);
            cr_assert_eq(c.binds, i);
            goto out;
        }
    }
    run_until(loop, &c.binds_done);
    cr_assert_eq(c.binds, 2);
    if ((rc = c.bind_status) < 0)
        goto out;
    dg_address a;
    dgt_assert_code(dg_socket_address(s[1], &a), 0);

    if ((rc = send_hello(loop, s[0], a.port, address, &c)) < 0)
        goto out;
    cr_assert_eq(c.sends, 1);
    cr_assert_eq(c.messages, 1);

    /* implicit bind, then the same datagram */
    if ((rc = send_hello(loop, s[2], a.port, address, &c)) < 0)
        goto out;
    cr_assert_eq(c.sends, 2);
    cr_assert_eq(c.messages, 2);

    /* connect, then a send to the connected peer */
    struct outcome_ctx co = {0};
    STEP(dg_socket_connect(s[2], a.port, address, on_connected, &co));
    run_until(loop, &co.done);
    if ((rc = co.status) < 0)
        goto out;
    if ((rc = send_hello(loop, s[2], 0, NULL, &c)) < 0) /* the connected peer */
        goto out;
    cr_assert_eq(c.messages, 3);
    rc = c.errors ? c.error_code : 0;
out:
    finish(loop, s, 3, &c);
    return rc;
}

Test(oom, socket_ipv4)
{
    cr_assert_gt(sweep("udp4 sockets", path_socket, "127.0.0.1"), 0);
}

Test(oom, socket_ipv6)
{
    dgt_require_ipv6();
    cr_assert_gt(sweep("udp6 sockets", path_socket, "::1"), 0);
}

/* Many sends in one turn: the send requests beyond the free list, a GSO
 * run, and payloads larger than the inline buffer. */
static int path_burst(void *arg)
{
    (void)arg;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    struct sock_ctx c = {0};
    dg_socket *s[1] = {NULL};
    dg_socket_options o = {.type = DG_UDP4};
    int sink = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(sink);
    static unsigned char big[4000];

    STEP(dg_socket_create(loop, &o, &sc_handlers, &c, &s[0]));
    for (int i = 0; i < 12; i++) {
        size_t len = i % 3 == 2 ? sizeof(big) : 100;
        rc = dg_socket_send(s[0], big, len, port, "127.0.0.1", NULL, NULL);
        STEP_OK(rc);
        if (rc < 0)
            break;
    }
    /* every started send ends (sent, or -ENOMEM through on_error) */
    while (dg_socket_send_queue_count(s[0]) > 0)
        cr_assert_geq(dg_loop_run(loop, DG_RUN_ONCE), 0);
    if (rc == 0 && c.errors)
        rc = c.error_code;
out:
    close(sink);
    finish(loop, s, 1, &c);
    return rc;
}

Test(oom, send_burst)
{
    cr_assert_gt(sweep("send burst", path_burst, NULL), 0);
}

/* ---- Timers and posts -------------------------------------------------- */

static void on_timer(dg_timer *t, void *data)
{
    (void)t;
    *(bool *)data = true;
}

static void on_post(dg_loop *loop, void *arg)
{
    (void)loop;
    *(bool *)arg = true;
}

static void on_timer_close(dg_timer *t, void *data)
{
    (void)t;
    *(bool *)data = true;
}

static int path_timer(void *arg)
{
    (void)arg;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    dg_timer *t[3] = {NULL, NULL, NULL};
    bool fired[3] = {false, false, false}, closed[3] = {false, false, false};
    bool posted = false;
    for (int i = 0; i < 3; i++) {
        rc = dg_timer_new(loop, &t[i]);
        STEP_OK(rc);
        if (rc < 0) {
            cr_assert_null(t[i]);
            goto out;
        }
        dgt_assert_code(dg_timer_start(t[i], (uint64_t)i, 0, on_timer, &fired[i]), 0);
    }
    rc = dg_loop_post(loop, on_post, &posted);
    STEP_OK(rc);
    if (rc == 0)
        run_until(loop, &posted);
    for (int i = 0; i < 3; i++)
        run_until(loop, &fired[i]);
out:
    for (int i = 0; i < 3; i++) {
        if (!t[i]) {
            closed[i] = true;
            continue;
        }
        dgt_assert_code(dg_timer_close(t[i], on_timer_close, &closed[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        run_until(loop, &closed[i]);
    while (dg_loop_alive(loop))
        cr_assert_geq(dg_loop_run(loop, DG_RUN_ONCE), 0);
    dgt_assert_code(dg_loop_close(loop), 0);
    return rc;
}

Test(oom, timers_and_posts)
{
    cr_assert_gt(sweep("timers", path_timer, NULL), 0);
}

/* ---- A signal handle and a fan-out ------------------------------------------ */

static void on_many_sent(dg_socket *sock, const dg_send_many_result *result, void *data)
{
    (void)sock;
    cr_expect_eq(result->sent + result->failed, 4);
    *(bool *)data = true;
}

static void on_never_signal(dg_signal *sig, int signum, void *data)
{
    (void)sig;
    (void)signum;
    (void)data;
}

static int path_signal_fanout(void *arg)
{
    (void)arg;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    struct sock_ctx c = {0};
    dg_socket *s[1] = {NULL};
    dg_signal *sig = NULL;
    dg_socket_options o = {.type = DG_UDP4};
    int sink = dgt_plain_socket(AF_INET, 0);
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET, dgt_plain_port(sink), &ss);
    dg_addr_key dests[4];
    bool sent = false;
    for (int i = 0; i < 4; i++)
        dg_addr_key_from_sockaddr((struct sockaddr *)&ss, len, &dests[i]);

    STEP(dg_signal_new(loop, &sig));
    STEP(dg_signal_start(sig, SIGUSR1, on_never_signal, NULL));
    STEP(dg_socket_create(loop, &o, &sc_handlers, &c, &s[0]));
    STEP(dg_socket_send_many(s[0], "fan", 3, dests, 4, on_many_sent, &sent));
    run_until(loop, &sent);
out:
    if (sig)
        dgt_assert_code(dg_signal_close(sig, NULL, NULL), 0);
    close(sink);
    finish(loop, s, 1, &c);
    return rc;
}

Test(oom, signal_and_send_many)
{
    cr_assert_gt(sweep("signal and fan-out", path_signal_fanout, NULL), 0);
}

/* ---- Resolver ---------------------------------------------------------- */

struct lk_ctx {
    int calls;
    int status;
    bool done;
};

static void on_lookup(dg_loop *loop, int status, const dg_address *address, void *data)
{
    struct lk_ctx *l = data;
    (void)loop;
    cr_assert(status == 0 || is_nomem(status), "lookup callback: %s at n=%ld", dg_err_name(status), atomic_load(&fail_at));
    cr_assert_eq(address != NULL, status == 0);
    if (status == 0)
        cr_assert_str_eq(address->address, "127.0.0.1");
    l->calls++;
    l->status = status;
    l->done = true;
}

/* dg_lookup of host (family 4, 6 or 0) run to its callback: returns the
 * call's code, or else the callback's status. */
static int lookup_once(dg_loop *loop, const char *host, int family)
{
    struct lk_ctx l = {0};
    int rc = dg_lookup(loop, host, family, on_lookup, &l);

    STEP_OK(rc);
    if (rc < 0)
        return rc;
    run_until(loop, &l.done);
    cr_assert_eq(l.calls, 1);
    return l.status;
}

static int path_lookup(void *arg)
{
    dgt_dns_server *server = arg;
    dg_loop *loop;
    int rc = new_small_loop(&loop);
    if (rc < 0)
        return rc;
    struct sock_ctx c = {0};
    dg_socket *s[1] = {NULL};
    int sink = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(sink);
    dg_resolver_options ro;
    dg_resolver_options_init(&ro);
    ro.resolv_conf = "/dev/null";
    ro.hosts_file = "/dev/null";
    /* c-ares 1.18 drops an answer it lacks memory to parse and asks again
     * after the timeout: the second try answers. */
    ro.timeout_ms = 1000;
    ro.tries = 3;
    STEP(dg_loop_set_resolver_options(loop, &ro));
    STEP(dg_loop_set_dns_servers(loop, dgt_dns_address(server)));
    if ((rc = lookup_once(loop, "a.test", 4)) < 0)
        goto out;
    /* both families at once (the AAAA half answers NODATA) */
    if ((rc = lookup_once(loop, "b.test", 0)) < 0)
        goto out;

    /* a bind to "localhost" (the resolver's own answer), then a send to a
     * host name */
    dg_socket_options o = {.type = DG_UDP4};
    STEP(dg_socket_create(loop, &o, &sc_handlers, &c, &s[0]));
    struct outcome_ctx bo = {0};
    STEP(dg_socket_bind(s[0], 0, "localhost", on_connected, &bo));
    run_until(loop, &bo.done);
    if ((rc = bo.status) < 0)
        goto out;
    STEP(dg_socket_send(s[0], "hello", 5, port, "c.test", sc_on_send, &c));
    run_until(loop, &c.sends_done);
    cr_assert_eq(c.sends, 1);
    if ((rc = c.send_status) < 0)
        goto out;
    char buf[16];
    cr_assert_eq(dgt_plain_recv(sink, buf, sizeof(buf), DGT_WAIT_MS, NULL), 5);
    rc = c.errors ? c.error_code : 0;
out:
    close(sink);
    finish(loop, s, 1, &c);
    return rc;
}

Test(oom, lookup_and_send_to_host_name)
{
    dgt_dns_server *server = dgt_dns_start();
    dgt_dns_set(server, "a.test", DGT_DNS_ANSWER, "127.0.0.1", NULL, 60, 0);
    dgt_dns_set(server, "b.test", DGT_DNS_ANSWER, "127.0.0.1", NULL, 60, 0);
    dgt_dns_set(server, "c.test", DGT_DNS_ANSWER, "127.0.0.1", NULL, 60, 0);
    cr_assert_gt(sweep("lookup", path_lookup, server), 0);
    dgt_dns_stop(server);
}

/* ---- Group ------------------------------------------------------------- */

/* Options for a small group: the given number of members on 127.0.0.1,
 * any port, with small receive rings. */
static dg_group_options small_group(unsigned threads)
{
    dg_group_options o;
    dg_group_options_init(&o);
    o.threads = threads;
    o.address = "127.0.0.1";
    o.loop.recv_buffers = 16;
    o.loop.recv_buffer_size = 2048;
    return o;
}

static int path_group(void *arg)
{
    (void)arg;
    dg_group_options o = small_group(2);
    dg_group *g = NULL;
    int rc = dg_group_start(&g, &o);
    STEP_OK(rc);
    if (rc < 0) {
        cr_assert_null(g);
        return rc;
    }
    rc = dg_group_stop(g);
    STEP_OK(rc);
    while (rc < 0) /* retry the members that did not get the request */
        rc = dg_group_stop(g);
    rc = dg_group_join(g, NULL);
    STEP_OK(rc);
    return rc;
}

Test(oom, group)
{
    cr_assert_gt(sweep("group", path_group, NULL), 0);
}

/* ---- The allocator's own contract ------------------------------------- */

Test(oom, replace_refused_while_memory_is_live)
{
    dg_loop *loop = NULL;
    dgt_assert_code(dg_replace_allocator(NULL, t_realloc, t_calloc, t_free),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_replace_allocator(t_malloc, NULL, t_calloc, t_free),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_replace_allocator(t_malloc, t_realloc, NULL, t_free),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_replace_allocator(t_malloc, t_realloc, t_calloc, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_loop_new(&loop, NULL), 0);
    cr_assert_gt(atomic_load(&live), 0, "the loop came from the replaced allocator");
    dgt_assert_code(dg_replace_allocator(malloc, realloc, calloc, free), -EBUSY);
    dgt_assert_code(dg_loop_close(loop), 0);
    cr_assert_eq(atomic_load(&live), 0);

    dg_abort *ab = NULL;
    dgt_assert_code(dg_abort_new(&ab), 0);
    dgt_assert_code(dg_replace_allocator(malloc, realloc, calloc, free), -EBUSY);
    dg_abort_free(ab);
    cr_assert_eq(atomic_load(&live), 0);

    dg_group_options go = small_group(1);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &go), 0);
    dgt_assert_code(dg_replace_allocator(malloc, realloc, calloc, free), -EBUSY);
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&live), 0);

    /* a loop that failed to start holds nothing */
    dg_loop_options bad;
    dg_loop_options_init(&bad);
    bad.recv_buffers = 3; /* not a power of two */
    dgt_assert_code(dg_loop_new(&loop, &bad), DG_ERR_INVALID_ARG_VALUE);
    /* nothing live: back to the C library's, and nothing counted any more */
    dgt_assert_code(dg_replace_allocator(malloc, realloc, calloc, free), 0);
    dgt_assert_code(dg_loop_new(&loop, NULL), 0);
    cr_assert_eq(atomic_load(&live), 0);
    dgt_assert_code(dg_loop_close(loop), 0);
}

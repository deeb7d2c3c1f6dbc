/* Backend choice: the loop option, DGRING_BACKEND, the automatic fallback
 * to epoll when io_uring is denied (a real seccomp filter, as in Docker's
 * default profile), and the loop counters. The rest of the suite runs on
 * both backends (scripts/test.sh runs it again with DGRING_BACKEND=epoll);
 * here each backend is also asked for by name in the same run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/helpers.h"
#include "support/seccomp.h"

TestSuite(backend, .timeout = 60);

enum { ECHO_COUNT = 200, PAYLOAD = 48 };

struct echo {
    dg_socket *server, *client;
    int server_port;
    int echoed;      /* datagrams the server answered */
    int received;    /* answers the client got, in order */
    int bad;
    uint32_t next;
};

static void server_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct echo *e = data;
    int rc = dg_socket_send_to(sock, msg->data, msg->length, msg->addr, msg->addrlen, NULL, NULL);
    if (rc == 0)
        e->echoed++;
    else
        e->bad++;
}

static void client_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct echo *e = data;
    uint32_t seq;

    (void)sock;
    if (msg->length != PAYLOAD) {
        e->bad++;
        return;
    }
    memcpy(&seq, msg->data, sizeof(seq));
    if (seq != e->next || dgt_check((const unsigned char *)msg->data + 4, PAYLOAD - 4, seq) !=
                              PAYLOAD - 4)
        e->bad++;
    e->next = seq + 1;
    e->received++;
}

/* Numbered datagrams through an echo server and back, one at a time so
 * nothing can be lost to a full queue: the backend must carry every one
 * in order. */
static void echo_roundtrip(dg_loop *loop)
{
    struct echo e = {0};
    dg_socket_handlers sh = {.on_message = server_message};
    dg_socket_handlers ch = {.on_message = client_message};

    e.server = dgt_socket_new(loop, DG_UDP4, 0, &sh, &e);
    e.client = dgt_socket_new(loop, DG_UDP4, 0, &ch, &e);
    e.server_port = dgt_bind(loop, e.server, "127.0.0.1", 0);
    dgt_bind(loop, e.client, "127.0.0.1", 0);
    for (uint32_t i = 0; i < ECHO_COUNT; i++) {
        unsigned char buf[PAYLOAD];
        memcpy(buf, &i, sizeof(i));
        dgt_fill(buf + 4, PAYLOAD - 4, i);
        cr_assert_eq(dg_socket_send(e.client, buf, sizeof(buf), e.server_port, "127.0.0.1", NULL,
                                    NULL),
                     0);
        dgt_run_until(loop, &e.received, (int)i + 1, 5000);
    }
    cr_assert_eq(e.bad, 0);
    cr_assert_eq(e.echoed, ECHO_COUNT);
    cr_assert_eq(e.received, ECHO_COUNT);
    dgt_close_socket(loop, e.server);
    dgt_close_socket(loop, e.client);
}

static dg_loop *loop_with_backend(unsigned backend)
{
    dg_loop_options o;

    dg_loop_options_init(&o);
    o.backend = backend;
    return dgt_loop_new(&o);
}

Test(backend, epoll_by_option_echoes)
{
    dg_loop *loop = loop_with_backend(DG_BACKEND_EPOLL);

    cr_assert_str_eq(dg_loop_backend(loop), "epoll");
    echo_roundtrip(loop);
    dgt_loop_finish(loop);
}

Test(backend, uring_by_option_echoes)
{
    dg_loop *loop = loop_with_backend(DG_BACKEND_URING);

    cr_assert_str_eq(dg_loop_backend(loop), "io_uring");
    cr_assert(dg_loop_capabilities(loop)->recvmsg_multishot);
    echo_roundtrip(loop);
    dgt_loop_finish(loop);
}

Test(backend, out_of_range_option_is_rejected)
{
    dg_loop_options o;
    dg_loop *loop = (dg_loop *)&o; /* must be reset to NULL */

    dg_loop_options_init(&o);
    o.backend = 3;
    cr_assert_eq(dg_loop_new(&loop, &o), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);
}

Test(backend, environment_variable_chooses)
{
    dg_loop *loop = NULL;

    setenv("DGRING_BACKEND", "epoll", 1);
    cr_assert_eq(dg_loop_new(&loop, NULL), 0);
    cr_assert_str_eq(dg_loop_backend(loop), "epoll");
    cr_assert_eq(dg_loop_close(loop), 0);

    setenv("DGRING_BACKEND", "io_uring", 1);
    cr_assert_eq(dg_loop_new(&loop, NULL), 0);
    cr_assert_str_eq(dg_loop_backend(loop), "io_uring");
    cr_assert_eq(dg_loop_close(loop), 0);

    setenv("DGRING_BACKEND", "uring", 1);
    cr_assert_eq(dg_loop_new(&loop, NULL), 0);
    cr_assert_str_eq(dg_loop_backend(loop), "io_uring");
    cr_assert_eq(dg_loop_close(loop), 0);
}

Test(backend, option_overrides_environment)
{
    dg_loop_options o;
    dg_loop *loop = NULL;

    setenv("DGRING_BACKEND", "epoll", 1);
    dg_loop_options_init(&o);
    o.backend = DG_BACKEND_URING;
    cr_assert_eq(dg_loop_new(&loop, &o), 0);
    cr_assert_str_eq(dg_loop_backend(loop), "io_uring");
    cr_assert_eq(dg_loop_close(loop), 0);
}

Test(backend, unknown_environment_value_is_an_error)
{
    dg_loop *loop = NULL;

    setenv("DGRING_BACKEND", "kqueue", 1);
    cr_assert_eq(dg_loop_new(&loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(loop);
}

/* io_uring_setup denied by seccomp: an automatic choice falls back to
 * epoll and still echoes; insisting on io_uring reports -EPERM. */
Test(backend, seccomp_denied_uring_falls_back_to_epoll)
{
    dg_loop_options o;
    dg_loop *loop = NULL;

    unsetenv("DGRING_BACKEND");
    cr_assert_eq(dgt_deny_io_uring(), 0, "installing the seccomp filter failed");

    dg_loop_options_init(&o);
    o.backend = DG_BACKEND_URING;
    cr_assert_eq(dg_loop_new(&loop, &o), -EPERM);
    cr_assert_null(loop);

    cr_assert_eq(dg_loop_new(&loop, NULL), 0);
    cr_assert_str_eq(dg_loop_backend(loop), "epoll");
    echo_roundtrip(loop);
    dgt_loop_finish(loop);
}

static void check_stats(dg_loop *loop)
{
    dg_loop_stats st;

    cr_assert_eq(dg_loop_get_stats(NULL, &st), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_loop_get_stats(loop, NULL), DG_ERR_INVALID_ARG_VALUE);
    echo_roundtrip(loop);
    cr_assert_eq(dg_loop_get_stats(loop, &st), 0);
    /* 400 datagrams received, 400 sent: at least that many completions
     * and operations, and far fewer system calls than datagrams would be
     * a benchmark's business, not a test's. */
    cr_assert_geq(st.completions, 2u * ECHO_COUNT, "completions %lu",
                  (unsigned long)st.completions);
    cr_assert_geq(st.submissions, 2u * ECHO_COUNT);
    cr_assert_gt(st.enters, 0);
    cr_assert_gt(st.turns, 0);
    cr_assert_eq(st.cq_dropped, 0);
}

Test(backend, loop_stats_count_work_uring)
{
    dg_loop *loop = loop_with_backend(DG_BACKEND_URING);
    check_stats(loop);
    dgt_loop_finish(loop);
}

Test(backend, loop_stats_count_work_epoll)
{
    dg_loop *loop = loop_with_backend(DG_BACKEND_EPOLL);
    check_stats(loop);
    dgt_loop_finish(loop);
}

Test(backend, null_loop_names_no_backend)
{
    cr_assert_null(dg_loop_backend(NULL));
}

/* A timer set "for ever" (dg_timer_start accepts up to UINT64_MAX / 2 ms)
 * must neither fire nor make the loop spin on a deadline that wrapped into
 * the past, on either backend; a short timer beside it fires normally. */
static void count_fire(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

static void forever_timer(unsigned backend)
{
    dg_loop *loop = loop_with_backend(backend);
    dg_timer *forever, *soon;
    int forever_fired = 0, soon_fired = 0;
    dg_loop_stats st;

    cr_assert_eq(dg_timer_new(loop, &forever), 0);
    cr_assert_eq(dg_timer_new(loop, &soon), 0);
    cr_assert_eq(dg_timer_start(forever, UINT64_MAX / 2, 0, count_fire, &forever_fired), 0);
    cr_assert_eq(dg_timer_start(soon, 20, 0, count_fire, &soon_fired), 0);
    dgt_run_until(loop, &soon_fired, 1, 5000);
    cr_assert_eq(forever_fired, 0);
    cr_assert_eq(dg_loop_get_stats(loop, &st), 0);
    /* A handful of turns; a wrapped deadline would fire and re-arm in a
     * loop, thousands of turns in those 20 ms. */
    cr_assert_lt(st.turns, 100, "%lu turns: the loop spun", (unsigned long)st.turns);
    dgt_close_timer(loop, forever);
    dgt_close_timer(loop, soon);
    dgt_loop_finish(loop);
}

Test(backend, forever_timer_neither_fires_nor_spins_uring)
{
    forever_timer(DG_BACKEND_URING);
}

Test(backend, forever_timer_neither_fires_nor_spins_epoll)
{
    forever_timer(DG_BACKEND_EPOLL);
}

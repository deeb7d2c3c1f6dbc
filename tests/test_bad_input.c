/* Bad input to every public call: NULL pointers, values out of range,
 * addresses of the wrong family, malformed and fuzzed address text, and
 * datagrams of zero and oversize lengths. Each call returns its documented
 * error and changes nothing: the objects involved keep working afterwards
 * (no handle, send or lookup left behind, counters untouched).
 * Existing suites cover Node's argument checks (dgram_*: ports, types,
 * buffer sizes, membership arguments); this one adds what they do not.
 * Host names only ever reach a DNS "server" on a dead loopback port, and
 * fuzzed text goes only to calls that send nothing (connect(2) of UDP,
 * dg_lookup), so no packet leaves loopback. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <signal.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(bad_input, .timeout = 120);

/* Loops here resolve names against nothing: no hosts file, no
 * resolv.conf, one DNS server on a loopback port nobody listens on. */
static dg_loop *quiet_loop(unsigned recv_buffer_size)
{
    dg_loop *loop = dgt_loop_new_sized(16, recv_buffer_size);
    dg_resolver_options ro;
    dg_resolver_options_init(&ro);
    ro.resolv_conf = "/dev/null";
    ro.hosts_file = "/dev/null";
    dgt_assert_code(dg_loop_set_resolver_options(loop, &ro), 0);
    dgt_assert_code(dg_loop_set_dns_servers(loop, "127.0.0.1:9"), 0);
    return loop;
}

static void assert_untouched(dg_loop *loop, dg_socket *s)
{
    dg_socket_stats st;
    dgt_assert_code(dg_socket_get_stats(s, &st), 0);
    cr_assert_eq(st.tx_datagrams + st.tx_errors + st.rx_datagrams, 0);
    cr_assert_eq(dg_socket_send_queue_count(s), 0);
    cr_assert_eq(dg_socket_send_queue_size(s), 0);
    /* nothing was queued: a turn runs nothing and the loop is idle */
    cr_assert_geq(dg_loop_run(loop, DG_RUN_NOWAIT), 0);
    cr_assert_eq(dg_socket_send_queue_count(s), 0);
}

/* ---- NULL ---------------------------------------------------------------- */

static void never_post(dg_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    cr_assert_fail("posted callback ran");
}

static void never_lookup(dg_loop *loop, int status, const dg_address *a, void *data)
{
    (void)loop;
    (void)status;
    (void)a;
    (void)data;
    cr_assert_fail("lookup callback ran");
}

static void never_timer(dg_timer *t, void *data)
{
    (void)t;
    (void)data;
    cr_assert_fail("timer ran");
}

Test(bad_input, null_handles_give_the_documented_error)
{
    char buf[64];
    dg_address a;
    dg_socket_stats st;
    dg_resolver_options ro;
    dg_resolver_stats rs;
    dg_resolver_options_init(&ro);
    const int V = DG_ERR_INVALID_ARG_VALUE, T = DG_ERR_INVALID_ARG_TYPE;

    /* loop */
    dgt_assert_code(dg_loop_new(NULL, NULL), V);
    dgt_assert_code(dg_loop_close(NULL), V);
    dgt_assert_code(dg_loop_run(NULL, DG_RUN_NOWAIT), V);
    dgt_assert_code(dg_loop_wake(NULL), V);
    dgt_assert_code(dg_loop_fd(NULL), V);
    dgt_assert_code(dg_loop_post(NULL, never_post, NULL), V);
    cr_assert(!dg_loop_alive(NULL));
    cr_assert_eq(dg_loop_timeout(NULL), -1);
    cr_assert_null(dg_loop_capabilities(NULL));
    cr_assert_null(dg_loop_get_data(NULL));
    dg_loop_stop(NULL);
    dg_loop_update_time(NULL);
    dg_loop_set_data(NULL, buf);
    dg_loop_options_init(NULL);
    dg_resolver_options_init(NULL);
    dg_group_options_init(NULL);
    /* timers */
    dgt_assert_code(dg_timer_new(NULL, NULL), V);
    dgt_assert_code(dg_timer_start(NULL, 1, 0, never_timer, NULL), V);
    dgt_assert_code(dg_timer_stop(NULL), V);
    dgt_assert_code(dg_timer_close(NULL, NULL, NULL), V);
    cr_assert(!dg_timer_active(NULL));
    dg_timer_ref(NULL);
    dg_timer_unref(NULL);
    dgt_assert_code(dg_timer_start_us(NULL, 1, 0, never_timer, NULL), V);
    cr_assert_eq(dg_timer_due_us(NULL), 0);
    cr_assert_eq(dg_loop_now_us(NULL), 0);
    /* signals (tests/core/test_signal.c has the rest) */
    dgt_assert_code(dg_signal_new(NULL, NULL), V);
    dgt_assert_code(dg_signal_start(NULL, SIGINT, NULL, NULL), V);
    dgt_assert_code(dg_signal_stop(NULL), V);
    dgt_assert_code(dg_signal_close(NULL, NULL, NULL), V);
    cr_assert(!dg_signal_active(NULL));
    cr_assert_eq(dg_signal_signum(NULL), 0);
    dg_signal_ref(NULL);
    dg_signal_unref(NULL);
    /* address keys (tests/core/test_address_key.c has the rest) */
    dgt_assert_code(dg_addr_key_from_sockaddr(NULL, 0, NULL), V);
    dgt_assert_code(dg_addr_key_to_sockaddr(NULL, NULL, NULL), V);
    dgt_assert_code(dg_addr_key_format(NULL, buf, sizeof(buf)), V);
    cr_assert(!dg_addr_key_equal(NULL, NULL));
    cr_assert_eq(dg_addr_key_compare(NULL, NULL), 0);
    (void)dg_addr_key_hash(NULL, 0);
    /* resolver */
    dgt_assert_code(dg_lookup(NULL, "localhost", 0, never_lookup, NULL), T);
    dgt_assert_code(dg_loop_set_resolver_options(NULL, &ro), V);
    dgt_assert_code(dg_loop_get_resolver_options(NULL, &ro), V);
    dgt_assert_code(dg_loop_set_dns_servers(NULL, "127.0.0.1"), V);
    dgt_assert_code(dg_loop_clear_dns_cache(NULL), V);
    dgt_assert_code(dg_loop_get_resolver_stats(NULL, &rs), V);
    /* abort handles */
    dgt_assert_code(dg_abort_new(NULL), V);
    cr_assert(!dg_abort_aborted(NULL));
    dg_abort_trigger(NULL);
    dg_abort_free(NULL);
    /* sockets */
    dgt_assert_code(dg_socket_create(NULL, &(dg_socket_options){.type = DG_UDP4}, NULL, NULL,
                                     &(dg_socket *){NULL}),
                    V);
    dgt_assert_code(dg_socket_bind(NULL, 0, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_bind_ex(NULL, &(dg_bind_options){0}, NULL, NULL), V);
    dgt_assert_code(dg_socket_send(NULL, "x", 1, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_send_many(NULL, "x", 1, NULL, 0, NULL, NULL), V);
    dgt_assert_code(dg_socket_send_slice(NULL, "x", 1, 0, 1, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_sendv(NULL, NULL, 0, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_send_to(NULL, "x", 1, NULL, 0, NULL, NULL), V);
    dgt_assert_code(dg_socket_connect(NULL, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_disconnect(NULL), V);
    dgt_assert_code(dg_socket_remote_address(NULL, &a), V);
    dgt_assert_code(dg_socket_address(NULL, &a), V);
    dgt_assert_code(dg_socket_set_broadcast(NULL, true), V);
    dgt_assert_code(dg_socket_set_ttl(NULL, 1), V);
    dgt_assert_code(dg_socket_set_multicast_ttl(NULL, 1), V);
    dgt_assert_code(dg_socket_set_multicast_loopback(NULL, true), V);
    dgt_assert_code(dg_socket_set_multicast_interface(NULL, "0.0.0.0"), V);
    dgt_assert_code(dg_socket_get_recv_buffer_size(NULL, NULL), V);
    dgt_assert_code(dg_socket_get_send_buffer_size(NULL, NULL), V);
    dgt_assert_code(dg_socket_set_recv_buffer_size(NULL, 1, NULL), V);
    dgt_assert_code(dg_socket_set_send_buffer_size(NULL, 1, NULL), V);
    dgt_assert_code(dg_socket_add_membership(NULL, "224.0.0.1", NULL), V);
    dgt_assert_code(dg_socket_drop_membership(NULL, "224.0.0.1", NULL), V);
    dgt_assert_code(dg_socket_add_source_specific_membership(NULL, "127.0.0.1", "232.1.1.1", NULL),
                    V);
    dgt_assert_code(
        dg_socket_drop_source_specific_membership(NULL, "127.0.0.1", "232.1.1.1", NULL), V);
    dgt_assert_code(dg_socket_close(NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_dispose(NULL), V);
    dgt_assert_code(dg_socket_get_stats(NULL, &st), V);
    dgt_assert_code(dg_message_keep(NULL, NULL, NULL), V);
    dgt_assert_code(dg_rx_buf_release(NULL), V);
    dgt_assert_code(dg_socket_fd(NULL), V);
    cr_assert(!dg_socket_has_ref(NULL));
    cr_assert_eq(dg_socket_send_queue_size(NULL), 0);
    cr_assert_eq(dg_socket_send_queue_count(NULL), 0);
    cr_assert_null(dg_socket_loop(NULL));
    dg_socket_ref(NULL);
    dg_socket_unref(NULL);
    /* groups */
    dgt_assert_code(dg_group_start(NULL, NULL), V);
    dgt_assert_code(dg_group_stop(NULL), V);
    dgt_assert_code(dg_group_join(NULL, NULL), V);
    dgt_assert_code(dg_group_port(NULL), V);
    dgt_assert_code(dg_group_stats(NULL, 0, &st), V);
    dgt_assert_code(dg_group_index(NULL), V);
    cr_assert_eq(dg_group_threads(NULL), 0);
    cr_assert_null(dg_group_loop(NULL, 0));
    cr_assert_null(dg_group_from_loop(NULL));
    /* plain helpers */
    dgt_assert_code(dg_error_format(NULL, buf, sizeof(buf)), V);
    dgt_assert_code(dg_address_from_sockaddr(NULL, sizeof(struct sockaddr_in), &a), V);
    cr_assert_not_null(dg_err_name(INT_MIN));
    cr_assert_not_null(dg_strerror(INT_MIN));
    cr_assert_not_null(dg_err_name(INT_MAX));
}

Test(bad_input, null_arguments_next_to_a_live_socket_change_nothing)
{
    dg_loop *loop = quiet_loop(2048);
    dg_socket *s = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dg_socket *none = NULL;
    const int V = DG_ERR_INVALID_ARG_VALUE, T = DG_ERR_INVALID_ARG_TYPE;
    dg_socket_options o = {.type = DG_UDP4};

    dgt_assert_code(dg_socket_create(loop, NULL, NULL, NULL, &none), V);
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, NULL), V);
    cr_assert_null(none);
    dgt_assert_code(dg_timer_new(loop, NULL), V);
    dgt_assert_code(dg_loop_post(loop, NULL, NULL), V);
    dgt_assert_code(dg_lookup(loop, NULL, 0, never_lookup, NULL), T);
    dgt_assert_code(dg_lookup(loop, "localhost", 0, NULL, NULL), T);
    dgt_assert_code(dg_loop_set_resolver_options(loop, NULL), V);
    dgt_assert_code(dg_loop_get_resolver_options(loop, NULL), V);
    dgt_assert_code(dg_loop_get_resolver_stats(loop, NULL), V);
    dgt_assert_code(dg_socket_bind_ex(s, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_send(s, NULL, 5, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_send_slice(s, NULL, 5, 0, 5, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_sendv(s, NULL, 3, 9, NULL, NULL, NULL), V);
    struct iovec holes[2] = {{.iov_base = "ab", .iov_len = 2}, {.iov_base = NULL, .iov_len = 4}};
    dgt_assert_code(dg_socket_sendv(s, holes, 2, 9, NULL, NULL, NULL), V);
    dgt_assert_code(dg_socket_send_to(s, "x", 1, NULL, 0, NULL, NULL), V);
    dgt_assert_code(dg_socket_remote_address(s, NULL), V);
    dgt_assert_code(dg_socket_address(s, NULL), V);
    dgt_assert_code(dg_socket_get_stats(s, NULL), V);
    dg_rx_buf *kept = (dg_rx_buf *)&o;
    dgt_assert_code(dg_message_keep(s, NULL, &kept), V);
    cr_assert_null(kept);
    /* outside any callback: nothing is being delivered */
    dg_message fake = {.data = "x", .length = 1, .size = 1};
    dgt_assert_code(dg_message_keep(s, &fake, &kept), DG_ERR_MESSAGE_NOT_CURRENT);
    dgt_assert_code(dg_message_keep(s, &fake, NULL), V);
    dgt_assert_code(dg_socket_set_multicast_interface(s, NULL), T);
    dgt_assert_code(dg_socket_add_membership(s, NULL, NULL), DG_ERR_MISSING_ARGS);
    dgt_assert_code(dg_socket_add_source_specific_membership(s, NULL, "232.1.1.1", NULL), T);
    dgt_assert_code(dg_socket_add_source_specific_membership(s, "127.0.0.1", NULL, NULL), T);
    dgt_assert_code(dg_error_format(&(dg_error){.code = -EINVAL}, NULL, 10), V);

    /* still unbound, nothing queued, nothing alive */
    dg_address a;
    dgt_assert_code(dg_socket_address(s, &a), -EBADF);
    assert_untouched(loop, s);
    cr_assert(!dg_loop_alive(loop));
    dg_resolver_stats rs;
    dgt_assert_code(dg_loop_get_resolver_stats(loop, &rs), 0);
    cr_assert_eq(rs.lookups, 0);
    /* and it works */
    dgt_bind(loop, s, "127.0.0.1", 0);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

/* ---- Out of range -------------------------------------------------------- */

Test(bad_input, out_of_range_values)
{
    const int V = DG_ERR_INVALID_ARG_VALUE;
    dg_loop *bad = NULL;
    dg_loop_options lo;

    dg_loop_options_init(&lo);
    lo.recv_buffers = 100; /* not a power of two */
    dgt_assert_code(dg_loop_new(&bad, &lo), V);
    lo.recv_buffers = 65536; /* above 32768 */
    dgt_assert_code(dg_loop_new(&bad, &lo), V);
    cr_assert_null(bad);

    dg_loop *loop = quiet_loop(2048);
    dg_resolver_options ro, before;
    dgt_assert_code(dg_loop_get_resolver_options(loop, &before), 0);
    dg_resolver_options_init(&ro);
    ro.tries = 0;
    dgt_assert_code(dg_loop_set_resolver_options(loop, &ro), V);
    ro.tries = 65;
    dgt_assert_code(dg_loop_set_resolver_options(loop, &ro), V);
    dg_resolver_options_init(&ro);
    ro.timeout_ms = 0;
    dgt_assert_code(dg_loop_set_resolver_options(loop, &ro), V);
    dg_resolver_options_init(&ro);
    ro.cache_max_entries = 1048577;
    dgt_assert_code(dg_loop_set_resolver_options(loop, &ro), V);
    dg_resolver_options now;
    dgt_assert_code(dg_loop_get_resolver_options(loop, &now), 0);
    cr_assert_eq(now.tries, before.tries);
    cr_assert_eq(now.timeout_ms, before.timeout_ms);
    cr_assert_eq(now.cache_max_entries, before.cache_max_entries);
    cr_assert_str_eq(now.resolv_conf, "/dev/null");

    /* lookups: family, empty and over-long names */
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    dgt_assert_code(dg_lookup(loop, "localhost", 5, never_lookup, NULL), V);
    dgt_assert_code(dg_lookup(loop, "localhost", -4, never_lookup, NULL), V);
    dgt_assert_code(dg_lookup(loop, "", 0, never_lookup, NULL), V);
    dgt_assert_code(dg_lookup(loop, longname, 4, never_lookup, NULL), V);
    /* server lists */
    dgt_assert_code(dg_loop_set_dns_servers(loop, "127.0.0.1:99999"), V);
    dgt_assert_code(dg_loop_set_dns_servers(loop, "not an address"), V);
    dgt_assert_code(dg_loop_set_dns_servers(loop, "[::1"), V);
    dgt_assert_code(
        dg_loop_set_dns_servers(loop, "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,"
                                      "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,"
                                      "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,"
                                      "127.0.0.1,127.0.0.1"),
        V);

    /* sockets: type, flags */
    dg_socket *s = NULL;
    const int types[] = {0, 1, 5, 7, 46, -4};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        dgt_assert_code_fmt(dg_socket_create(loop, &(dg_socket_options){.type = types[i]}, NULL, NULL,
                                         &s),
                        DG_ERR_SOCKET_BAD_TYPE, "type %d", types[i]);
    dgt_assert_code(dg_socket_create(loop, &(dg_socket_options){.type = DG_UDP4, .flags = 0x100},
                                     NULL, NULL, &s),
                    V);
    dgt_assert_code(dg_socket_create(loop,
                                     &(dg_socket_options){.type = DG_UDP4,
                                                          .flags = DG_SOCKET_IPV6_ONLY},
                                     NULL, NULL, &s),
                    V);
    dgt_assert_code(dg_socket_create(loop,
                                     &(dg_socket_options){.type = DG_UDP4,
                                                          .recv_buffer_size = -1},
                                     NULL, NULL, &s),
                    DG_ERR_OUT_OF_RANGE);
    cr_assert_null(s);

    s = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, s, "127.0.0.1", 0);
    dgt_assert_code(dg_socket_set_ttl(s, 0), -EINVAL);
    dgt_assert_code(dg_socket_set_ttl(s, 256), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_ttl(s, -1), -EINVAL);
    dgt_assert_code(dg_socket_set_multicast_ttl(s, 256), -EINVAL);
    dgt_assert_code(dg_socket_set_recv_buffer_size(s, -1, NULL), DG_ERR_SOCKET_BAD_BUFFER_SIZE);
    dgt_assert_code(dg_socket_set_send_buffer_size(s, (long long)INT_MAX + 1, NULL),
                    DG_ERR_SOCKET_BUFFER_SIZE);
    /* payload shapes */
    unsigned char b[8] = {0};
    dgt_assert_code(dg_socket_sendv(s, (struct iovec[]){{b, 1}}, -1, 9, NULL, NULL, NULL),
                    -EINVAL);
    struct iovec *many = calloc(1025, sizeof(*many));
    cr_assert_not_null(many);
    dgt_assert_code(dg_socket_sendv(s, many, 1025, 9, NULL, NULL, NULL), -EINVAL);
    free(many);
    dgt_assert_code(dg_socket_send_slice(s, b, sizeof(b), 9, 0, 9, NULL, NULL, NULL),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    dgt_assert_code(dg_socket_send_slice(s, b, sizeof(b), 4, 5, 9, NULL, NULL, NULL),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    /* offset + length wraps around */
    dgt_assert_code(dg_socket_send_slice(s, b, sizeof(b), 1, SIZE_MAX, 9, NULL, NULL, NULL),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    dgt_assert_code(dg_socket_send_slice(s, b, sizeof(b), SIZE_MAX, 2, 9, NULL, NULL, NULL),
                    DG_ERR_BUFFER_OUT_OF_BOUNDS);
    struct iovec wrap[2] = {{b, SIZE_MAX - 2}, {b, 8}};
    dgt_assert_code(dg_socket_sendv(s, wrap, 2, 9, NULL, NULL, NULL), -EMSGSIZE);
    struct iovec sum[2] = {{b, 40000}, {b, 30000}};
    dgt_assert_code(dg_socket_sendv(s, sum, 2, 9, NULL, NULL, NULL), -EMSGSIZE);
    /* ports on connect and send */
    dgt_assert_code(dg_socket_connect(s, 0, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_connect(s, INT_MIN, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send(s, b, 1, INT_MAX, NULL, NULL, NULL), DG_ERR_SOCKET_BAD_PORT);
    assert_untouched(loop, s);
    dgt_close_socket(loop, s);

    /* groups */
    dg_group *g = NULL;
    dg_group_options go;
    dg_group_options_init(&go);
    go.threads = 0;
    dgt_assert_code(dg_group_start(&g, &go), V);
    go.threads = DG_GROUP_MAX_THREADS + 1;
    dgt_assert_code(dg_group_start(&g, &go), V);
    dg_group_options_init(&go);
    go.port = 65536;
    dgt_assert_code(dg_group_start(&g, &go), DG_ERR_SOCKET_BAD_PORT);
    dg_group_options_init(&go);
    go.steering = (dg_group_steering)7;
    dgt_assert_code(dg_group_start(&g, &go), V);
    dg_group_options_init(&go);
    go.socket.type = (dg_socket_type)5;
    dgt_assert_code(dg_group_start(&g, &go), DG_ERR_SOCKET_BAD_TYPE);
    cr_assert_null(g);
    dgt_loop_finish(loop);
}

/* A group's index-taking calls with an index out of range. */
Test(bad_input, group_index_out_of_range)
{
    dg_group *g = NULL;
    dg_group_options go;
    dg_group_options_init(&go);
    go.threads = 1;
    go.address = "127.0.0.1";
    go.loop.recv_buffers = 16;
    go.loop.recv_buffer_size = 2048;
    dgt_assert_code(dg_group_start(&g, &go), 0);
    dg_socket_stats st;
    cr_assert_null(dg_group_loop(g, 1));
    cr_assert_null(dg_group_loop(g, UINT_MAX));
    cr_assert_null(dg_group_socket(g, 1));
    dgt_assert_code(dg_group_stats(g, 1, &st), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_stats(g, 0, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_post(g, 1, never_post, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_post(g, 0, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_group_threads(g), 1);
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
}

/* ---- Wrong family ------------------------------------------------------- */

static void wrong_family(dg_socket_type type)
{
    dg_loop *loop = quiet_loop(2048);
    dg_socket *s = dgt_socket_new(loop, type, 0, NULL, NULL);
    bool v4 = type == DG_UDP4;
    const char *other = v4 ? "::1" : "127.0.0.1";
    const int IA = DG_ERR_INVALID_ADDRESS;

    if (!v4)
        dgt_require_ipv6();
    dgt_assert_code(dg_socket_bind(s, 0, other, NULL, NULL), IA);
    dgt_assert_code(dg_socket_connect(s, 9, other, NULL, NULL), IA);
    dgt_assert_code(dg_socket_send(s, "x", 1, 9, other, NULL, NULL), IA);
    dgt_assert_code(dg_socket_send_slice(s, "x", 1, 0, 1, 9, other, NULL, NULL), IA);
    /* sockaddrs: the other family, AF_UNIX, AF_UNSPEC, a short length */
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(v4 ? AF_INET6 : AF_INET, 9, &ss);
    dgt_assert_code(dg_socket_send_to(s, "x", 1, (struct sockaddr *)&ss, len, NULL, NULL), IA);
    struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/tmp/x"};
    dgt_assert_code(dg_socket_send_to(s, "x", 1, (struct sockaddr *)&un, sizeof(un), NULL, NULL),
                    IA);
    struct sockaddr_storage unspec;
    memset(&unspec, 0, sizeof(unspec));
    dgt_assert_code(
        dg_socket_send_to(s, "x", 1, (struct sockaddr *)&unspec, sizeof(unspec), NULL, NULL), IA);
    len = dgt_sockaddr(v4 ? AF_INET : AF_INET6, 9, &ss);
    dgt_assert_code(dg_socket_send_to(s, "x", 1, (struct sockaddr *)&ss, len - 1, NULL, NULL), IA);
    dgt_assert_code(dg_socket_send_to(s, "x", 1, (struct sockaddr *)&ss, 0, NULL, NULL), IA);
    /* multicast groups of the other family */
    dgt_assert_code(dg_socket_add_membership(s, v4 ? "ff02::1" : "224.0.0.1", NULL), -EINVAL);
    dgt_assert_code(dg_socket_drop_membership(s, v4 ? "ff02::1" : "224.0.0.1", NULL), -EINVAL);

    dg_address a;
    dgt_assert_code(dg_socket_address(s, &a), -EBADF, "still unbound");
    assert_untouched(loop, s);
    dgt_bind(loop, s, dgt_loopback(dgt_family(type)), 0);
    dgt_close_socket(loop, s);
    dgt_loop_finish(loop);
}

Test(bad_input, wrong_family_udp4)
{
    wrong_family(DG_UDP4);
}

Test(bad_input, wrong_family_udp6)
{
    wrong_family(DG_UDP6);
}

Test(bad_input, address_from_sockaddr_rejects_short_and_foreign)
{
    dg_address a;
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET, 7, &ss);
    const int IA = DG_ERR_INVALID_ADDRESS;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, len - 1, &a), IA);
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, 0, &a), IA);
    len = dgt_sockaddr(AF_INET6, 7, &ss);
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, len - 1, &a), IA);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&un, sizeof(un), &a), IA);
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&ss, len, NULL),
                    DG_ERR_INVALID_ARG_VALUE);
    /* an IPv6 scope id that names no interface still formats */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_scope_id = 0x7fffffff};
    s6.sin6_addr.s6_addr[0] = 0xfe;
    s6.sin6_addr.s6_addr[1] = 0x80;
    dgt_assert_code(dg_address_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &a), 0);
    cr_assert_lt(strlen(a.address), sizeof(a.address));
}

/* ---- Malformed and fuzzed address text ----------------------------------- */

struct outcome {
    int calls;
    int status;
};

static void on_outcome(dg_socket *s, int status, const dg_error *err, void *data)
{
    (void)err;
    (void)s;
    struct outcome *o = data;
    o->calls++;
    o->status = status;
}

static void on_lookup_outcome(dg_loop *loop, int status, const dg_address *a, void *data)
{
    (void)loop;
    struct outcome *o = data;
    cr_assert_eq(a != NULL, status == 0);
    if (a)
        cr_assert_lt(strlen(a->address), sizeof(a->address));
    o->calls++;
    o->status = status;
}

/* text through connect (UDP connect(2) sends nothing) and dg_lookup: each
 * call either refuses at once with the documented code, or calls back
 * exactly once; nothing crashes and nothing is left behind. */
static void try_text(dg_loop *loop, dg_socket_type type, const char *text)
{
    dg_socket *s = dgt_socket_new(loop, type, 0, NULL, NULL);
    struct outcome c = {0}, l = {0};
    int rc = dg_socket_connect(s, 9, text, on_outcome, &c);
    cr_assert(rc == 0 || rc == DG_ERR_INVALID_ADDRESS, "connect(%s): %s", text, dg_err_name(rc));
    if (rc == 0)
        dgt_run_until(loop, &c.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(c.calls, rc == 0 ? 1 : 0);
    rc = dg_lookup(loop, text, type == DG_UDP4 ? 4 : 6, on_lookup_outcome, &l);
    cr_assert(rc == 0 || rc == DG_ERR_INVALID_ARG_VALUE || rc == DG_ERR_INVALID_ARG_TYPE,
              "lookup(%s): %s", text, dg_err_name(rc));
    if (rc == 0)
        dgt_run_until(loop, &l.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(l.calls, rc == 0 ? 1 : 0);
    dgt_close_socket(loop, s);
}

Test(bad_input, malformed_address_text)
{
    dg_loop *loop = quiet_loop(2048);
    static const char *const texts[] = {
        "1.2.3",           "256.1.1.1",       "1.2.3.4.5",      "::1::",        "[::1]",
        "1.2.3.4:80",      "::ffff:1.2.3",    "fe80::1%",       "fe80::1%%%",   "%eth0",
        "-bad-",           "a..b",            ".",              "..",           "with space",
        "tab\there",       "\x01\x02",        "\xff\xfe",       "localhost.",   "a.localhost",
        "0x7f.1",          "0177.0.0.1",      "::1%99999999999", "1e2.3.4.5",    "[",
        "]",               ":",               ":::",            "1:2:3:4:5:6:7:8:9",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        try_text(loop, DG_UDP4, texts[i]);
        try_text(loop, DG_UDP6, texts[i]);
    }
    /* a name of 253, 254 and 300 characters, and a label of 64 */
    char name[301];
    for (size_t n = 253; n <= 300; n += 47 / 2) {
        memset(name, 'a', n);
        for (size_t k = 50; k < n; k += 50)
            name[k] = '.';
        name[n] = '\0';
        try_text(loop, DG_UDP4, name);
    }
    memset(name, 'b', 64);
    strcpy(name + 64, ".test");
    try_text(loop, DG_UDP4, name);
    cr_assert(!dg_loop_alive(loop));
    dgt_loop_finish(loop);
}

Test(bad_input, fuzzed_address_text)
{
    dg_loop *loop = quiet_loop(2048);
    static const char alphabet[] = "0123456789abcdefABCDEF.:%[]-_ x/\\@\xff";
    unsigned seed = 12345;
    char text[80];
    for (int round = 0; round < 400; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % (sizeof(text) - 1);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            text[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        text[len] = '\0';
        try_text(loop, round % 2 ? DG_UDP6 : DG_UDP4, text);
    }
    cr_assert(!dg_loop_alive(loop));
    dgt_loop_finish(loop);
}

/* ---- Zero-length and oversize datagrams ---------------------------------- */

static void boundaries(dg_socket_type type)
{
    if (type == DG_UDP6)
        dgt_require_ipv6();
    size_t max = type == DG_UDP4 ? 65507 : 65527;
    dg_loop *loop = quiet_loop(65527);
    dgt_events ev = {0};
    dg_socket *rx = dgt_events_socket(loop, type, 0, &ev);
    dg_socket *tx = dgt_socket_new(loop, type, 0, NULL, NULL);
    const char *lo = dgt_loopback(dgt_family(type));
    int port = dgt_bind(loop, rx, lo, 0);
    dgt_bind(loop, tx, lo, 0);
    unsigned char *big = malloc(65536);
    cr_assert_not_null(big);
    dgt_fill(big, 65536, 7);
    dgt_send_rec rec = {0};

    /* zero length, four ways */
    dgt_assert_code(dg_socket_send(tx, NULL, 0, port, lo, dgt_on_send, &rec), 0);
    dgt_assert_code(dg_socket_send_slice(tx, big, 10, 10, 0, port, lo, dgt_on_send, &rec), 0);
    dgt_assert_code(dg_socket_sendv(tx, NULL, 0, port, lo, dgt_on_send, &rec), 0);
    struct sockaddr_storage ss;
    socklen_t sl = dgt_sockaddr(dgt_family(type), port, &ss);
    dgt_assert_code(dg_socket_send_to(tx, "", 0, (struct sockaddr *)&ss, sl, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &ev.messages, 4, DGT_WAIT_MS);
    cr_assert_eq(ev.empty_messages, 4);
    cr_assert_eq(rec.calls, 4);
    cr_assert_eq(rec.status, 0);

    /* the largest datagram arrives whole */
    dgt_assert_code(dg_socket_send(tx, big, max, port, lo, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &ev.messages, 5, DGT_WAIT_MS);
    cr_assert_eq(ev.size, max);
    cr_assert_eq(ev.length, max);
    cr_assert_eq(ev.flags & DG_MSG_TRUNC, 0);
    dgt_run_until(loop, &rec.calls, 5, DGT_WAIT_MS);
    cr_assert_eq(rec.status, (int)max);

    /* one byte more: the kernel refuses it, through the callback */
    dgt_assert_code(dg_socket_send(tx, big, max + 1, port, lo, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rec.calls, 6, DGT_WAIT_MS);
    dgt_assert_code(rec.status, -EMSGSIZE);
    /* also as a buffer list */
    struct iovec parts[3] = {{big, 30000}, {big, 30000}, {big, max + 1 - 60000}};
    dgt_assert_code(dg_socket_sendv(tx, parts, 3, port, lo, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rec.calls, 7, DGT_WAIT_MS);
    dgt_assert_code(rec.status, -EMSGSIZE);
    /* above any UDP datagram: refused at once, nothing queued */
    dg_socket_stats before, after;
    dgt_assert_code(dg_socket_get_stats(tx, &before), 0);
    dgt_assert_code(dg_socket_send(tx, big, 65536, port, lo, dgt_on_send, &rec), -EMSGSIZE);
    dgt_assert_code(dg_socket_send_slice(tx, big, 65536, 0, 65536, port, lo, dgt_on_send, &rec),
                    -EMSGSIZE);
    dgt_assert_code(dg_socket_send(tx, big, SIZE_MAX, port, lo, dgt_on_send, &rec), -EMSGSIZE);
    dgt_assert_code(dg_socket_get_stats(tx, &after), 0);
    cr_assert_eq(memcmp(&before, &after, sizeof(before)), 0);
    cr_assert_eq(dg_socket_send_queue_count(tx), 0);
    cr_assert_eq(rec.calls, 7);

    /* the socket still works */
    dgt_assert_code(dg_socket_send(tx, big, 100, port, lo, dgt_on_send, &rec), 0);
    dgt_run_until(loop, &ev.messages, 6, DGT_WAIT_MS);
    cr_assert_eq(ev.length, 100);
    cr_assert_eq(dgt_check(ev.data, 100, 7), 100);
    dgt_run_until(loop, &rec.calls, 8, DGT_WAIT_MS);
    cr_assert_eq(ev.messages, 6, "the refused datagrams never arrived");
    free(big);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, rx);
    dgt_loop_finish(loop);
}

Test(bad_input, zero_and_oversize_datagrams_udp4)
{
    boundaries(DG_UDP4);
}

Test(bad_input, zero_and_oversize_datagrams_udp6)
{
    boundaries(DG_UDP6);
}

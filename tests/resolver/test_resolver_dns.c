/* Resolver against the scripted DNS server (tests/support/dns_server.c):
 * error codes for SERVFAIL, REFUSED, NODATA and silence; TCP fallback for a
 * truncated answer; a slow answer within the timeout; exact query counts
 * (literals send none, the cache holds an answer for its TTL, equal
 * lookups in flight share one query, a cancelled waiter does not stop the
 * shared query); settings changes while a query is in flight (the old
 * channel finishes it, then goes); hundreds of sequential lookups through
 * sockets c-ares opens and closes (fd numbers reused) with no stray
 * completion; a socket closed while its send waits for a name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "resolver/resolver.h" /* dg__resolve, dg__resolve_cancel (static build) */
#include "support/dns_lookup.h"
#include "support/dns_server.h"
#include "support/helpers.h"

static dgt_dns_server *server;

static void server_up(void)
{
    server = dgt_dns_start();
}

static void server_down(void)
{
    dgt_dns_stop(server);
    server = NULL;
}

TestSuite(resolver_dns, .init = server_up, .fini = server_down, .timeout = 60);

static dg_loop *loop_on_server(unsigned timeout_ms, unsigned tries)
{
    return dgt_resolver_loop(dgt_dns_address(server), NULL, timeout_ms, tries);
}

Test(resolver_dns, error_codes)
{
    dg_loop *loop = loop_on_server(300, 1);
    dgt_lookup l;

    dgt_dns_set(server, "fail.test", DGT_DNS_SERVFAIL, NULL, NULL, 0, 0);
    dgt_dns_set(server, "refused.test", DGT_DNS_REFUSED, NULL, NULL, 0, 0);
    dgt_dns_set(server, "nodata.test", DGT_DNS_NODATA, NULL, NULL, 0, 0);
    dgt_dns_set(server, "v6only.test", DGT_DNS_ANSWER, NULL, "2001:db8::1", 60, 0);
    dgt_dns_set(server, "drop.test", DGT_DNS_DROP, NULL, NULL, 0, 0);

    cr_expect_eq(dgt_lookup_wait(loop, "fail.test", 4, &l), DG_ERR_DNS_SERVFAIL, "%s",
                 dg_err_name(l.status));
    cr_expect_eq(dgt_lookup_wait(loop, "refused.test", 4, &l), DG_ERR_DNS_REFUSED, "%s",
                 dg_err_name(l.status));
    cr_expect_eq(dgt_lookup_wait(loop, "nodata.test", 4, &l), DG_ERR_DNS_NOTFOUND, "%s",
                 dg_err_name(l.status));
    cr_expect_eq(dgt_lookup_wait(loop, "v6only.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    /* family 0: the A half fails (from the negative cache now), AAAA answers */
    cr_expect_eq(dgt_lookup_wait(loop, "v6only.test", 0, &l), 0);
    cr_expect_str_eq(l.address.address, "2001:db8::1");
    cr_expect_eq(dgt_lookup_wait(loop, "unknown.test", 6, &l), DG_ERR_DNS_NOTFOUND);
    cr_expect_eq(dgt_lookup_wait(loop, "drop.test", 4, &l), DG_ERR_DNS_TIMEOUT, "%s",
                 dg_err_name(l.status));
    /* family 0: no address anywhere, but one half timed out: ETIMEOUT */
    cr_expect_eq(dgt_lookup_wait(loop, "drop.test", 0, &l), DG_ERR_DNS_TIMEOUT);

    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.failures, 8, "got %llu", (unsigned long long)st.failures);
    dgt_loop_finish(loop);
}

Test(resolver_dns, truncated_answer_retried_over_tcp)
{
    dg_loop *loop = loop_on_server(0, 0);
    dgt_lookup l;

    dgt_dns_set(server, "big.test", DGT_DNS_TRUNCATE, "127.0.0.20", "::20", 60, 0);
    cr_expect_eq(dgt_lookup_wait(loop, "big.test", 4, &l), 0, "%s", dg_err_name(l.status));
    cr_expect_str_eq(l.address.address, "127.0.0.20");
    cr_expect_eq(dgt_dns_tcp_queries(server), 1);
    cr_expect_eq(dgt_dns_queries(server, "big.test"), 2, "one over UDP, one over TCP");
    cr_expect_eq(dgt_lookup_wait(loop, "big.test", 6, &l), 0);
    cr_expect_str_eq(l.address.address, "::20");
    cr_expect_eq(dgt_dns_tcp_queries(server), 2);
    dgt_loop_finish(loop);
}

Test(resolver_dns, slow_answer_within_the_timeout)
{
    dg_loop *loop = loop_on_server(1500, 1);
    dgt_lookup l;

    dgt_dns_set(server, "slow.test", DGT_DNS_ANSWER, "127.0.0.21", NULL, 60, 300);
    cr_expect_eq(dgt_lookup_wait(loop, "slow.test", 4, &l), 0, "%s", dg_err_name(l.status));
    cr_expect_str_eq(l.address.address, "127.0.0.21");
    cr_expect_eq(dgt_dns_queries(server, "slow.test"), 1);
    dgt_loop_finish(loop);
}

Test(resolver_dns, literals_send_no_query)
{
    dg_loop *loop = loop_on_server(0, 0);
    dgt_lookup l;

    dgt_lookup_wait(loop, "127.0.0.1", 4, &l);
    dgt_lookup_wait(loop, "::1", 0, &l);
    dgt_lookup_wait(loop, "10.1.2.3", 6, &l);
    cr_expect_eq(l.status, 0);
    cr_expect_str_eq(l.address.address, "10.1.2.3");
    cr_expect_eq(dgt_dns_total_queries(server), 0);
    dgt_loop_finish(loop);
}

Test(resolver_dns, cache_holds_an_answer_for_its_ttl)
{
    dg_loop *loop = loop_on_server(0, 0);
    dgt_lookup l;

    dgt_dns_set(server, "ttl.test", DGT_DNS_ANSWER, "127.0.0.22", NULL, 1, 0);
    for (int i = 0; i < 5; i++) {
        dgt_lookup_wait(loop, "ttl.test", 4, &l);
        cr_expect_str_eq(l.address.address, "127.0.0.22");
    }
    cr_expect_eq(dgt_dns_queries(server, "ttl.test"), 1, "within the TTL");
    dgt_sleep_ms(1100);
    dgt_lookup_wait(loop, "ttl.test", 4, &l);
    cr_expect_eq(dgt_dns_queries(server, "ttl.test"), 2, "after the TTL");
    cr_expect_eq(dgt_resolver_stats(loop).cache_hits, 4);

    /* a cache of size 0 keeps nothing */
    dg_resolver_options o;
    cr_assert_eq(dg_loop_get_resolver_options(loop, &o), 0);
    o.cache_max_entries = 0;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_lookup_wait(loop, "ttl.test", 4, &l);
    dgt_lookup_wait(loop, "ttl.test", 4, &l);
    cr_expect_eq(dgt_dns_queries(server, "ttl.test"), 4);
    dgt_loop_finish(loop);
}

Test(resolver_dns, cache_is_bounded)
{
    dg_loop *loop = loop_on_server(0, 0);
    dg_resolver_options o;
    dgt_lookup l;

    cr_assert_eq(dg_loop_get_resolver_options(loop, &o), 0);
    o.cache_max_entries = 2;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_dns_set(server, "c1.test", DGT_DNS_ANSWER, "127.0.1.1", NULL, 600, 0);
    dgt_dns_set(server, "c2.test", DGT_DNS_ANSWER, "127.0.1.2", NULL, 600, 0);
    dgt_dns_set(server, "c3.test", DGT_DNS_ANSWER, "127.0.1.3", NULL, 600, 0);
    dgt_lookup_wait(loop, "c1.test", 4, &l);
    dgt_lookup_wait(loop, "c2.test", 4, &l);
    dgt_lookup_wait(loop, "c1.test", 4, &l); /* c1 is now the most recent */
    dgt_lookup_wait(loop, "c3.test", 4, &l); /* evicts c2 */
    cr_expect_eq(dgt_resolver_stats(loop).cache_entries, 2);
    dgt_lookup_wait(loop, "c1.test", 4, &l);
    dgt_lookup_wait(loop, "c2.test", 4, &l);
    cr_expect_eq(dgt_dns_queries(server, "c1.test"), 1);
    cr_expect_eq(dgt_dns_queries(server, "c2.test"), 2);
    cr_expect_eq(dgt_dns_queries(server, "c3.test"), 1);
    dgt_loop_finish(loop);
}

Test(resolver_dns, equal_lookups_share_one_query)
{
    dg_loop *loop = loop_on_server(0, 0);
    dgt_lookup l[10];
    int done = 0;

    dgt_dns_set(server, "shared.test", DGT_DNS_ANSWER, "127.0.0.23", NULL, 0, 100);
    for (int i = 0; i < 10; i++)
        dgt_lookup_start(loop, "shared.test", 4, &l[i]);
    while (done < 10) {
        cr_assert_geq(dg_loop_run(loop, DG_RUN_ONCE), 0);
        done = 0;
        for (int i = 0; i < 10; i++)
            done += l[i].calls;
    }
    for (int i = 0; i < 10; i++)
        cr_expect_str_eq(l[i].address.address, "127.0.0.23");
    cr_expect_eq(dgt_dns_queries(server, "shared.test"), 1);
    cr_expect_eq(dgt_resolver_stats(loop).coalesced, 9);
    dgt_loop_finish(loop);
}

struct resolved {
    int calls;
    int status;
};

static void on_resolved(void *ctx, int status, const struct sockaddr *addr, socklen_t len)
{
    struct resolved *r = ctx;
    (void)addr;
    (void)len;
    r->calls++;
    r->status = status;
}

Test(resolver_dns, cancelled_waiter_leaves_the_shared_query_running)
{
    dg_loop *loop = loop_on_server(0, 0);
    struct resolved first = {0};
    struct dg__resolve_req *req;
    dgt_lookup second;

    dgt_dns_set(server, "half.test", DGT_DNS_ANSWER, "127.0.0.24", NULL, 60, 200);
    cr_assert_eq(dg__resolve(loop, "half.test", AF_INET, on_resolved, &first, &req), 0);
    dgt_lookup_start(loop, "half.test", 4, &second);
    dg__resolve_cancel(req);
    dgt_lookup_run(loop, &second.calls, 1);
    cr_expect_eq(first.calls, 1);
    cr_expect_eq(first.status, -ECANCELED);
    cr_expect_eq(second.status, 0);
    cr_expect_str_eq(second.address.address, "127.0.0.24");
    cr_expect_eq(dgt_dns_queries(server, "half.test"), 1);
    dgt_loop_finish(loop);
}

Test(resolver_dns, new_servers_while_a_query_is_in_flight)
{
    dgt_dns_server *other = dgt_dns_start();
    dg_loop *loop = loop_on_server(0, 0);
    dgt_lookup old_answer, new_answer;

    dgt_dns_set(server, "moved.test", DGT_DNS_ANSWER, "127.0.0.25", NULL, 60, 300);
    dgt_dns_set(other, "moved.test", DGT_DNS_ANSWER, "127.0.0.26", NULL, 60, 0);
    dgt_lookup_start(loop, "moved.test", 4, &old_answer);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(dg_loop_set_dns_servers(loop, dgt_dns_address(other)), 0);
    dgt_lookup_start(loop, "moved.test", 4, &new_answer);
    dgt_lookup_run(loop, &new_answer.calls, 1);
    dgt_lookup_run(loop, &old_answer.calls, 1);
    cr_expect_str_eq(old_answer.address.address, "127.0.0.25", "finished on the old channel");
    cr_expect_str_eq(new_answer.address.address, "127.0.0.26");
    dg_loop_run(loop, DG_RUN_NOWAIT); /* the retired channel is reaped */
    dgt_lookup_wait(loop, "moved.test", 4, &old_answer);
    cr_expect_str_eq(old_answer.address.address, "127.0.0.26",
                     "the old server's late answer was not cached");
    cr_expect_eq(dgt_resolver_stats(loop).channels, 2);
    dgt_loop_finish(loop);
    dgt_dns_stop(other);
}

Test(resolver_dns, closing_with_a_retired_channel_pending)
{
    dgt_dns_server *other = dgt_dns_start();
    dg_loop *loop = loop_on_server(0, 0);
    struct resolved a = {0}, b = {0};

    dgt_dns_set(server, "never.test", DGT_DNS_DROP, NULL, NULL, 0, 0);
    dgt_dns_set(other, "never.test", DGT_DNS_DROP, NULL, NULL, 0, 0);
    cr_assert_eq(dg__resolve(loop, "never.test", AF_INET, on_resolved, &a, NULL), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(dg_loop_set_dns_servers(loop, dgt_dns_address(other)), 0);
    cr_assert_eq(dg__resolve(loop, "never.test", AF_INET, on_resolved, &b, NULL), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(dg_loop_close(loop), 0);
    cr_expect_eq(a.calls, 1);
    cr_expect_eq(a.status, -ECANCELED);
    cr_expect_eq(b.calls, 1);
    cr_expect_eq(b.status, -ECANCELED);
    dgt_dns_stop(other);
}

/* c-ares closes its sockets when it has no query left, so every lookup
 * below opens a new one, usually with the fd number the last one had: a
 * poll that outlived its socket, or one removed by fd, would show up as a
 * missed answer (a timeout), a duplicate query, or a sanitizer report. */
#define SEQUENTIAL 300

Test(resolver_dns, sequential_lookups_reuse_fds_without_stray_completions)
{
    dg_loop *loop = loop_on_server(2000, 1);
    dg_resolver_options o;
    dgt_lookup l;
    unsigned tcp_lookups = 0;

    cr_assert_eq(dg_loop_get_resolver_options(loop, &o), 0);
    o.cache_max_entries = 0; /* every lookup is a query */
    o.negative_ttl_ms = 0;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_dns_set(server, "tcp.test", DGT_DNS_TRUNCATE, "127.0.0.27", NULL, 60, 0);
    dgt_dns_set(server, "udp.test", DGT_DNS_ANSWER, "127.0.0.28", NULL, 60, 0);
    for (int i = 0; i < SEQUENTIAL; i++) {
        char name[64];
        if (i % 10 == 0) {
            dgt_lookup_wait(loop, "tcp.test", 4, &l);
            cr_assert_str_eq(l.address.address, "127.0.0.27", "lookup %d: %s", i,
                             dg_err_name(l.status));
            tcp_lookups++;
        } else if (i % 10 == 5) {
            dgt_lookup_wait(loop, "udp.test", 4, &l);
            cr_assert_str_eq(l.address.address, "127.0.0.28", "lookup %d: %s", i,
                             dg_err_name(l.status));
        } else {
            snprintf(name, sizeof(name), "n%d.seq.test", i);
            cr_assert_eq(dgt_lookup_wait(loop, name, 4, &l), DG_ERR_DNS_NOTFOUND,
                         "lookup %d: %s", i, dg_err_name(l.status));
        }
    }
    cr_expect_eq(dgt_dns_tcp_queries(server), tcp_lookups);
    cr_expect_eq(dgt_dns_total_queries(server), SEQUENTIAL + tcp_lookups,
                 "every lookup sent exactly one query (plus one TCP retry when truncated)");
    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, SEQUENTIAL);
    cr_expect_eq(st.channels, 1);
    dgt_loop_finish(loop);
}

/* ---- Through a socket ------------------------------------------------------ */

struct sent {
    int calls;
    int status;
};

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct sent *s = data;
    (void)sock;
    (void)err;
    s->calls++;
    s->status = status;
}

Test(resolver_dns, closing_a_socket_cancels_its_lookup)
{
    dg_loop *loop = loop_on_server(0, 0);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    struct sent s = {0};

    dgt_dns_set(server, "hang.test", DGT_DNS_DROP, NULL, NULL, 0, 0);
    cr_assert_eq(dg_socket_send(sock, "x", 1, 9, "hang.test", on_sent, &s), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(s.calls, 0);
    dgt_close_socket(loop, sock);
    cr_expect_eq(s.calls, 1);
    cr_expect_eq(s.status, -ECANCELED, "%s", dg_err_name(s.status));
    dgt_loop_finish(loop);
}

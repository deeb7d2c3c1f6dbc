/* Resolver against a real DNS server: dnsmasq from Debian's archive on a
 * loopback port, serving A and AAAA records. Covers A, AAAA and family 0
 * lookups, literals and localhost without DNS (proved with a dead server),
 * hosts-file names and their reload, NXDOMAIN/NODATA as ENOTFOUND, a
 * timeout bounded by the configured timeout, cache hits while the server
 * is paused, TTL expiry, negative caching, cancellation (dg__resolve_cancel),
 * closing a loop with lookups pending, many concurrent lookups, a changed
 * resolv.conf, and sends to a host name through a socket. No test queries
 * the machine's configured DNS server: every loop is pointed at dnsmasq (or
 * at a dead port) and reads resolv.conf from /dev/null or a temp file. */
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

static dgt_dnsmasq *dns;

static const char *const dnsmasq_records[] = {
    "--address=/a.test/127.0.0.2",
    "--host-record=six.test,::1",
    "--host-record=both.test,127.0.0.3,::3",
    "--host-record=cached.test,127.0.0.4,3600",
    "--host-record=short.test,127.0.0.5,1",
    "--address=/here.test/127.0.0.1",
    "--address=/many.test/127.0.0.9",
    "--address=/host.one.test/127.0.0.11",
    "--address=/host.two.test/127.0.0.12",
    "--local=/test/", /* every other *.test name: NXDOMAIN */
    NULL,
};

static void dns_up(void)
{
    if (!dgt_dnsmasq_available())
        cr_skip_test("dnsmasq is not installed (scripts/deps.sh test installs dnsmasq-base)");
    dns = dgt_dnsmasq_start(dnsmasq_records);
}

static void dns_down(void)
{
    dgt_dnsmasq_stop(dns);
    dns = NULL;
}

TestSuite(resolver, .init = dns_up, .fini = dns_down, .timeout = 60);

static dg_loop *loop_on_dnsmasq(void)
{
    return dgt_resolver_loop(dgt_dnsmasq_address(dns), NULL, 0, 0);
}

/* A server address nothing answers on: a query would fail with
 * ECONNREFUSED, so success proves no query was needed. */
static char *dead_server(void)
{
    char *s = NULL;
    cr_assert_gt(asprintf(&s, "127.0.0.1:%d", dgt_dns_dead_port()), 0);
    return s;
}

static void expect_answer(const dgt_lookup *l, const char *address, int family)
{
    cr_expect_eq(l->status, 0, "status %s", dg_err_name(l->status));
    cr_expect_str_eq(l->address.address, address);
    cr_expect_eq(l->address.family, family);
    cr_expect_eq(l->address.port, 0);
}

Test(resolver, a_record)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    dgt_lookup_wait(loop, "a.test", 4, &l);
    expect_answer(&l, "127.0.0.2", AF_INET);
    dgt_lookup_wait(loop, "A.Test", 4, &l); /* names are case-insensitive */
    expect_answer(&l, "127.0.0.2", AF_INET);
    dgt_loop_finish(loop);
}

Test(resolver, aaaa_record)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    dgt_lookup_wait(loop, "six.test", 6, &l);
    expect_answer(&l, "::1", AF_INET6);
    dgt_lookup_wait(loop, "both.test", 6, &l);
    expect_answer(&l, "::3", AF_INET6);
    dgt_loop_finish(loop);
}

Test(resolver, family_zero_prefers_ipv4_then_ipv6)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    dgt_lookup_wait(loop, "both.test", 0, &l);
    expect_answer(&l, "127.0.0.3", AF_INET);
    dgt_lookup_wait(loop, "six.test", 0, &l); /* no A record: the AAAA answer */
    expect_answer(&l, "::1", AF_INET6);
    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 0, &l), DG_ERR_DNS_NOTFOUND);
    dgt_loop_finish(loop);
}

Test(resolver, literals_never_reach_dns)
{
    char *dead = dead_server();
    dg_loop *loop = dgt_resolver_loop(dead, NULL, 0, 0);
    dgt_lookup l;

    dgt_lookup_wait(loop, "127.0.0.7", 4, &l);
    expect_answer(&l, "127.0.0.7", AF_INET);
    dgt_lookup_wait(loop, "::1", 6, &l);
    expect_answer(&l, "::1", AF_INET6);
    dgt_lookup_wait(loop, "::1", 4, &l); /* Node answers a literal as it is */
    expect_answer(&l, "::1", AF_INET6);
    dgt_lookup_wait(loop, "192.0.2.1", 0, &l);
    expect_answer(&l, "192.0.2.1", AF_INET);
    dgt_lookup_wait(loop, "fe80::1%1", 6, &l);
    cr_expect_eq(l.status, 0);
    cr_expect_eq(strncmp(l.address.address, "fe80::1%", 8), 0, "got %s", l.address.address);

    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, 0, "literals went to DNS");
    cr_expect_eq(st.literals, 5);
    cr_expect_eq(st.channels, 0, "no c-ares channel is needed for literals");
    dgt_loop_finish(loop);
    free(dead);
}

Test(resolver, localhost_without_dns)
{
    char *dead = dead_server();
    char *empty_hosts = dgt_file_new("# no names\n");
    dg_loop *loop = dgt_resolver_loop(dead, NULL, 0, 0); /* the real /etc/hosts */
    dgt_lookup l;

    dgt_lookup_wait(loop, "localhost", 4, &l);
    expect_answer(&l, "127.0.0.1", AF_INET);
    dgt_lookup_wait(loop, "localhost", 6, &l);
    expect_answer(&l, "::1", AF_INET6);
    dgt_loop_finish(loop);

    /* With a hosts file that lacks it, localhost is still loopback
     * (RFC 6761), and so is any name under .localhost. */
    loop = dgt_resolver_loop(dead, empty_hosts, 0, 0);
    dgt_lookup_wait(loop, "LOCALHOST", 4, &l);
    expect_answer(&l, "127.0.0.1", AF_INET);
    dgt_lookup_wait(loop, "app.localhost", 6, &l);
    expect_answer(&l, "::1", AF_INET6);
    dgt_lookup_wait(loop, "localhost.", 0, &l);
    expect_answer(&l, "127.0.0.1", AF_INET);
    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, 0);
    cr_expect_eq(st.channels, 0);
    dgt_loop_finish(loop);
    unlink(empty_hosts);
    free(empty_hosts);
    free(dead);
}

Test(resolver, hosts_file_names_and_reload)
{
    char *dead = dead_server();
    char *hosts = dgt_file_new("# test hosts\n"
                               "127.0.0.42   MyHost.test  alias.test # comment\n"
                               "::42 myhost.test\n"
                               "127.0.0.43 myhost.test\n");
    dg_loop *loop = dgt_resolver_loop(dead, hosts, 0, 0);
    dgt_lookup l;

    dgt_lookup_wait(loop, "myhost.test", 4, &l);
    expect_answer(&l, "127.0.0.42", AF_INET); /* the first line wins */
    dgt_lookup_wait(loop, "alias.test", 4, &l);
    expect_answer(&l, "127.0.0.42", AF_INET);
    dgt_lookup_wait(loop, "myhost.test", 6, &l);
    expect_answer(&l, "::42", AF_INET6);
    cr_expect_eq(dgt_lookup_wait(loop, "alias.test", 6, &l), DG_ERR_DNS_CONNREFUSED,
                 "a name the hosts file lacks for a family goes to DNS");

    dgt_file_rewrite(hosts, "127.0.0.44 myhost.test\n");
    dgt_sleep_ms(1100); /* the file is checked at most once a second */
    dgt_lookup_wait(loop, "myhost.test", 4, &l);
    expect_answer(&l, "127.0.0.44", AF_INET);

    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.hosts_answers, 4);
    cr_expect_eq(st.queries, 1);
    dgt_loop_finish(loop);
    unlink(hosts);
    free(hosts);
    free(dead);
}

Test(resolver, nxdomain_and_nodata_are_enotfound)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    cr_expect_str_eq(dg_err_name(l.status), "ENOTFOUND");
    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 6, &l), DG_ERR_DNS_NOTFOUND);
    /* six.test exists but has no A record (NODATA) */
    cr_expect_eq(dgt_lookup_wait(loop, "six.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    dgt_loop_finish(loop);
}

Test(resolver, timeout_within_the_configured_time)
{
    int hole = dgt_dns_black_hole();
    char server[64];
    snprintf(server, sizeof(server), "127.0.0.1:%d", dgt_plain_port(hole));
    dg_loop *loop = dgt_resolver_loop(server, NULL, 200, 1);
    dgt_lookup l;

    uint64_t start = dgt_now_ms();
    cr_expect_eq(dgt_lookup_wait(loop, "silent.test", 4, &l), DG_ERR_DNS_TIMEOUT, "got %s",
                 dg_err_name(l.status));
    cr_expect_str_eq(dg_err_name(l.status), "ETIMEOUT");
    /* 200 ms configured; the slack only absorbs a slow (sanitized) run */
    cr_expect_leq(l.done_ms - start, 200 + 1800, "took %llu ms",
                  (unsigned long long)(l.done_ms - start));
    dgt_loop_finish(loop);
    close(hole);
}

Test(resolver, cache_answers_while_the_server_is_paused)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    dgt_lookup_wait(loop, "cached.test", 4, &l);
    expect_answer(&l, "127.0.0.4", AF_INET);
    dgt_dnsmasq_pause(dns);
    dgt_lookup_wait(loop, "cached.test", 4, &l);
    dgt_dnsmasq_resume(dns);
    expect_answer(&l, "127.0.0.4", AF_INET);

    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, 1);
    cr_expect_eq(st.cache_hits, 1);
    cr_expect_eq(st.cache_entries, 1);

    cr_assert_eq(dg_loop_clear_dns_cache(loop), 0);
    cr_expect_eq(dgt_resolver_stats(loop).cache_entries, 0);
    dgt_lookup_wait(loop, "cached.test", 4, &l);
    expect_answer(&l, "127.0.0.4", AF_INET);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 2);
    dgt_loop_finish(loop);
}

Test(resolver, ttl_expiry_queries_again)
{
    dg_loop *loop = loop_on_dnsmasq();
    dgt_lookup l;

    dgt_lookup_wait(loop, "short.test", 4, &l); /* TTL 1 s */
    expect_answer(&l, "127.0.0.5", AF_INET);
    dgt_lookup_wait(loop, "short.test", 4, &l);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 1, "within the TTL: from the cache");
    dgt_sleep_ms(1100);
    dgt_lookup_wait(loop, "short.test", 4, &l);
    expect_answer(&l, "127.0.0.5", AF_INET);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 2, "after the TTL: asked again");
    /* TTL 0 answers are not cached at all */
    dgt_lookup_wait(loop, "a.test", 4, &l);
    dgt_lookup_wait(loop, "a.test", 4, &l);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 4);
    dgt_loop_finish(loop);
}

Test(resolver, negative_cache)
{
    dg_loop *loop = loop_on_dnsmasq();
    dg_resolver_options o;
    dgt_lookup l;

    cr_assert_eq(dg_loop_get_resolver_options(loop, &o), 0);
    o.negative_ttl_ms = 60000;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    cr_assert_eq(dg_loop_set_dns_servers(loop, dgt_dnsmasq_address(dns)), 0);
    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    dgt_dnsmasq_pause(dns);
    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    dgt_dnsmasq_resume(dns);
    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, 1);
    cr_expect_eq(st.negative_hits, 1);

    /* a short negative TTL expires */
    o.negative_ttl_ms = 100;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_lookup_wait(loop, "nope.test", 4, &l);
    dgt_lookup_wait(loop, "nope.test", 4, &l);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 2);
    dgt_sleep_ms(200);
    cr_expect_eq(dgt_lookup_wait(loop, "nope.test", 4, &l), DG_ERR_DNS_NOTFOUND);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 3);

    /* and 0 turns it off */
    o.negative_ttl_ms = 0;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_lookup_wait(loop, "nope.test", 4, &l);
    dgt_lookup_wait(loop, "nope.test", 4, &l);
    cr_expect_eq(dgt_resolver_stats(loop).queries, 5);
    dgt_loop_finish(loop);
}

/* ---- dg__resolve (the socket layer's door), cancellation ------------------ */

struct resolved {
    int calls;
    int status;
    struct sockaddr_storage addr;
};

static void on_resolved(void *ctx, int status, const struct sockaddr *addr, socklen_t len)
{
    struct resolved *r = ctx;
    r->calls++;
    r->status = status;
    cr_expect_eq(addr != NULL, status == 0);
    if (addr)
        memcpy(&r->addr, addr, len);
}

Test(resolver, cancel_reports_ecanceled_once)
{
    dgt_dnsmasq_pause(dns); /* the query stays unanswered */
    dg_loop *loop = loop_on_dnsmasq();
    struct resolved pending = {0}, literal = {0}, twice = {0};
    struct dg__resolve_req *req_pending, *req_literal, *req_twice;

    cr_assert_eq(dg__resolve(loop, "a.test", AF_INET, on_resolved, &pending, &req_pending), 0);
    /* a literal's answer is already queued when it is cancelled */
    cr_assert_eq(dg__resolve(loop, "127.0.0.1", AF_INET, on_resolved, &literal, &req_literal), 0);
    cr_assert_eq(dg__resolve(loop, "b.test", AF_INET, on_resolved, &twice, &req_twice), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT); /* the queries are out, polls armed */
    cr_assert_eq(pending.calls + twice.calls, 0);
    cr_assert_eq(literal.calls, 1);

    cr_assert_eq(dg__resolve(loop, "127.0.0.1", AF_INET, on_resolved, &literal, &req_literal), 0);
    dg__resolve_cancel(req_pending);
    dg__resolve_cancel(req_literal);
    dg__resolve_cancel(req_twice);
    dg__resolve_cancel(req_twice);
    cr_expect_eq(pending.calls + twice.calls, 0, "cancel ran a callback inside the call");
    dgt_run(loop, DGT_WAIT_MS); /* ends: nothing keeps the loop alive */
    cr_expect_eq(pending.calls, 1);
    cr_expect_eq(pending.status, -ECANCELED);
    cr_expect_eq(literal.calls, 2);
    cr_expect_eq(literal.status, -ECANCELED);
    cr_expect_eq(twice.calls, 1);
    cr_expect_eq(twice.status, -ECANCELED);
    dgt_dnsmasq_resume(dns);
    cr_expect_eq(dg_loop_close(loop), 0); /* the queries still in c-ares are dropped */
}

struct counted_lookup {
    int calls;
    int status;
};

static void on_counted(dg_loop *loop, int status, const dg_address *address, void *data)
{
    struct counted_lookup *c = data;
    (void)loop;
    (void)address;
    c->calls++;
    c->status = status;
}

Test(resolver, closing_the_loop_finishes_every_lookup_once)
{
    int hole = dgt_dns_black_hole();
    char server[64];
    snprintf(server, sizeof(server), "127.0.0.1:%d", dgt_plain_port(hole));
    dg_loop *loop = dgt_resolver_loop(server, NULL, 0, 0);
    struct counted_lookup c[6] = {{0}};
    struct resolved r = {0};
    const char *names[] = {"x.test", "x.test", "y.test", "z.test", "127.0.0.1", "localhost"};
    const int families[] = {4, 4, 6, 0, 4, 6};

    for (int i = 0; i < 6; i++)
        cr_assert_eq(dg_lookup(loop, names[i], families[i], on_counted, &c[i]), 0);
    cr_assert_eq(dg__resolve(loop, "w.test", AF_INET6, on_resolved, &r, NULL), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT); /* literal and localhost answered */
    cr_assert_eq(c[4].calls, 1);
    cr_assert_eq(c[5].calls, 1);
    cr_assert(dg_loop_alive(loop), "pending lookups keep the loop alive");

    cr_assert_eq(dg_loop_close(loop), 0);
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(c[i].calls, 1, "lookup %d (%s) ran %d times", i, names[i], c[i].calls);
        if (i < 4)
            cr_expect_eq(c[i].status, -ECANCELED, "lookup %d: %s", i, dg_err_name(c[i].status));
    }
    cr_expect_eq(r.calls, 1);
    cr_expect_eq(r.status, -ECANCELED);
    close(hole);
}

static void on_lookup_again(dg_loop *loop, int status, const dg_address *address, void *data)
{
    struct counted_lookup *c = data;
    (void)address;
    c->calls++;
    c->status = status;
    /* called from dg_loop_close: new lookups are refused, not leaked */
    cr_expect_eq(dg_lookup(loop, "again.test", 4, on_counted, c), -ECANCELED);
}

Test(resolver, lookups_started_while_closing_are_refused)
{
    dgt_dnsmasq_pause(dns);
    dg_loop *loop = loop_on_dnsmasq();
    struct counted_lookup c = {0};

    cr_assert_eq(dg_lookup(loop, "a.test", 4, on_lookup_again, &c), 0);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(dg_loop_close(loop), 0);
    dgt_dnsmasq_resume(dns);
    cr_expect_eq(c.calls, 1);
    cr_expect_eq(c.status, -ECANCELED);
}

/* ---- Scale and configuration ----------------------------------------------- */

#define MANY 200

Test(resolver, many_concurrent_lookups)
{
    dg_loop *loop = loop_on_dnsmasq();
    static dgt_lookup l[2 * MANY];
    int done = 0;

    for (int i = 0; i < 2 * MANY; i++) {
        char name[64];
        snprintf(name, sizeof(name), "n%d.many.test", i % MANY);
        dgt_lookup_start(loop, name, 4, &l[i]);
    }
    while (done < 2 * MANY) {
        cr_assert_geq(dg_loop_run(loop, DG_RUN_ONCE), 0);
        done = 0;
        for (int i = 0; i < 2 * MANY; i++)
            done += l[i].calls;
    }
    for (int i = 0; i < 2 * MANY; i++) {
        cr_expect_eq(l[i].calls, 1);
        expect_answer(&l[i], "127.0.0.9", AF_INET);
    }
    dg_resolver_stats st = dgt_resolver_stats(loop);
    cr_expect_eq(st.queries, MANY);
    cr_expect_eq(st.coalesced, MANY, "equal lookups in flight share one query");
    cr_expect_eq(st.failures, 0);
    dgt_loop_finish(loop);
}

Test(resolver, resolv_conf_change_builds_a_new_channel)
{
    char *conf = dgt_file_new("search one.test\n");
    dg_loop *loop = loop_on_dnsmasq();
    dg_resolver_options o;
    dgt_lookup l;

    cr_assert_eq(dg_loop_get_resolver_options(loop, &o), 0);
    o.resolv_conf = conf;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_lookup_wait(loop, "host", 4, &l);
    expect_answer(&l, "127.0.0.11", AF_INET);

    dgt_file_rewrite(conf, "search two.test\n");
    dgt_sleep_ms(1100); /* resolv.conf is checked at most once a second */
    dgt_lookup_wait(loop, "host", 4, &l);
    expect_answer(&l, "127.0.0.12", AF_INET);
    cr_expect_eq(dgt_resolver_stats(loop).channels, 2);
    dgt_loop_finish(loop);
    unlink(conf);
    free(conf);
}

Test(resolver, environment_variable_names_the_servers)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_resolver_options o;
    struct counted_lookup c = {0};
    dgt_lookup l;

    cr_assert_eq(setenv("DGRING_DNS_SERVERS", dgt_dnsmasq_address(dns), 1), 0);
    dg_resolver_options_init(&o);
    o.resolv_conf = "/dev/null";
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    dgt_lookup_wait(loop, "a.test", 4, &l);
    expect_answer(&l, "127.0.0.2", AF_INET);

    /* read when a channel is built: a malformed value fails the call */
    cr_assert_eq(setenv("DGRING_DNS_SERVERS", "not-an-address", 1), 0);
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0); /* a new channel next time */
    cr_expect_eq(dg_lookup(loop, "a.test", 4, on_counted, &c), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_lookup(loop, "a.test", 0, on_counted, &c), DG_ERR_INVALID_ARG_VALUE);
    dgt_run(loop, DGT_WAIT_MS);
    cr_expect_eq(c.calls, 0, "a failed call never runs its callback");
    dgt_loop_finish(loop);
}

Test(resolver, settings_are_validated)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_resolver_options o;
    struct counted_lookup c = {0};

    cr_expect_eq(dg_lookup(NULL, "a.test", 4, on_counted, &c), DG_ERR_INVALID_ARG_TYPE);
    cr_expect_eq(dg_lookup(loop, NULL, 4, on_counted, &c), DG_ERR_INVALID_ARG_TYPE);
    cr_expect_eq(dg_lookup(loop, "a.test", 4, NULL, &c), DG_ERR_INVALID_ARG_TYPE);
    cr_expect_eq(dg_lookup(loop, "a.test", 5, on_counted, &c), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_lookup(loop, "", 4, on_counted, &c), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "bogus"), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "127.0.0.1:0"), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "127.0.0.1:70000"), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "[::1"), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "127.0.0.1,"), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(dg_loop_set_dns_servers(loop, "127.0.0.1:5353, [::1]:53,::1,127.0.0.2"), 0);
    cr_expect_eq(dg_loop_set_dns_servers(loop, NULL), 0);
    dg_resolver_options_init(&o);
    o.tries = 0;
    cr_expect_eq(dg_loop_set_resolver_options(loop, &o), DG_ERR_INVALID_ARG_VALUE);
    o.tries = 1;
    o.timeout_ms = 0;
    cr_expect_eq(dg_loop_set_resolver_options(loop, &o), DG_ERR_INVALID_ARG_VALUE);
    cr_expect_eq(c.calls, 0);
    dgt_loop_finish(loop);
}

/* ---- Through a socket --------------------------------------------------------- */

struct sent {
    int calls;
    int status;
    dg_error err;
};

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    struct sent *s = data;
    (void)sock;
    s->calls++;
    s->status = status;
    if (err)
        s->err = *err;
}

Test(resolver, socket_sends_to_a_host_name)
{
    dg_loop *loop = loop_on_dnsmasq();
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int peer = dgt_plain_socket(AF_INET, 0);
    struct sent ok = {0}, bad = {0};
    char buf[16];

    cr_assert_eq(dg_socket_send(sock, "hello", 5, dgt_plain_port(peer), "here.test", on_sent, &ok),
                 0);
    cr_assert_eq(dg_socket_send(sock, "lost", 4, dgt_plain_port(peer), "nope.test", on_sent, &bad),
                 0);
    dgt_lookup_run(loop, &ok.calls, 1);
    dgt_lookup_run(loop, &bad.calls, 1);
    cr_expect_eq(ok.status, 5, "send: %s", dg_err_name(ok.status));
    cr_expect_eq(dgt_plain_recv(peer, buf, sizeof(buf), DGT_WAIT_MS, NULL), 5);
    cr_expect_eq(memcmp(buf, "hello", 5), 0);
    cr_expect_eq(bad.status, DG_ERR_DNS_NOTFOUND, "send: %s", dg_err_name(bad.status));
    cr_expect_str_eq(bad.err.address, "nope.test", "the error names the host");
    dgt_close_socket(loop, sock);
    cr_expect_eq(ok.calls, 1);
    cr_expect_eq(bad.calls, 1);
    dgt_loop_finish(loop);
    close(peer);
}

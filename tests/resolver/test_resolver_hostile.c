/* Resolver against a hostile DNS server (the scripted server of
 * tests/support/dns_server.c): answers shorter than a header, with a
 * lying record count, a compression loop, a record cut short, another ID,
 * another question, an oversized record, an answer larger than c-ares
 * reads over UDP, a CNAME loop, a truncated answer whose TCP retry is hung
 * up on, and answers that arrive after the timeout. For each: the lookup
 * ends exactly once with the error code Node's dns module would report,
 * timeouts take at least the configured time, nothing is cached (a second
 * lookup reaches the server again) and, under ASan, nothing leaks or is
 * read out of bounds. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/dns_lookup.h"
#include "support/dns_server.h"
#include "support/helpers.h"

#define TIMEOUT_MS 150

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

TestSuite(resolver_hostile, .init = server_up, .fini = server_down, .timeout = 60);

/* A loop asking only the scripted server, one try of TIMEOUT_MS. */
static dg_loop *hostile_loop(void)
{
    return dgt_resolver_loop(dgt_dns_address(server), NULL, TIMEOUT_MS, 1);
}

/* Looks name up twice (family 4 or 6) with the server answering action.
 * Both lookups must end with want; each must reach the server (nothing
 * was cached); a timeout must have taken at least TIMEOUT_MS. */
static void expect_rejected(dg_loop *loop, const char *name, dgt_dns_action action, int family,
                            int want)
{
    dgt_lookup l;

    dgt_dns_set(server, name, action, "127.0.0.40", "2001:db8::40", 60, 0);
    for (unsigned round = 1; round <= 2; round++) {
        uint64_t start = dgt_now_ms();
        int status = dgt_lookup_wait(loop, name, family, &l);
        cr_expect_eq(status, want, "%s (family %d, lookup %u): %s, expected %s", name, family,
                     round, dg_err_name(status), dg_err_name(want));
        cr_expect_geq(dgt_dns_queries(server, name), round, "%s: lookup %u was not asked",
                      name, round);
        if (want == DG_ERR_DNS_TIMEOUT)
            cr_expect_geq(l.done_ms - start, TIMEOUT_MS, "%s timed out after %llu ms", name,
                          (unsigned long long)(l.done_ms - start));
    }
    cr_expect_eq(dgt_resolver_stats(loop).cache_entries, 0, "%s: an answer was cached", name);
}

/* What c-ares cannot match to the query it sent is ignored: the lookup
 * times out, as Node's does (ETIMEOUT). */
Test(resolver_hostile, answers_that_match_no_query_time_out)
{
    dg_loop *loop = hostile_loop();

    expect_rejected(loop, "short.test", DGT_DNS_SHORT, 4, DG_ERR_DNS_TIMEOUT);
    expect_rejected(loop, "id.test", DGT_DNS_WRONG_ID, 4, DG_ERR_DNS_TIMEOUT);
    expect_rejected(loop, "id6.test", DGT_DNS_WRONG_ID, 6, DG_ERR_DNS_TIMEOUT);
    expect_rejected(loop, "question.test", DGT_DNS_WRONG_QUESTION, 4, DG_ERR_DNS_TIMEOUT);
    cr_expect_str_eq(dg_err_name(DG_ERR_DNS_TIMEOUT), "ETIMEOUT");
    dgt_loop_finish(loop);
}

/* Answers to the question asked that cannot be read: EBADRESP. */
Test(resolver_hostile, malformed_answers_are_bad_responses)
{
    dg_loop *loop = hostile_loop();

    expect_rejected(loop, "count.test", DGT_DNS_BAD_COUNT, 4, DG_ERR_DNS_BADRESP);
    expect_rejected(loop, "loop.test", DGT_DNS_NAME_LOOP, 4, DG_ERR_DNS_BADRESP);
    expect_rejected(loop, "cut.test", DGT_DNS_CUT, 4, DG_ERR_DNS_BADRESP);
    expect_rejected(loop, "cut6.test", DGT_DNS_CUT, 6, DG_ERR_DNS_BADRESP);
    cr_expect_str_eq(dg_err_name(DG_ERR_DNS_BADRESP), "EBADRESP");
    dgt_loop_finish(loop);
}

/* A record too big for its type is no address: c-ares skips it, and the
 * lookup says ENOTFOUND, as Node's does; such an answer is not cached as
 * a "no such name" would be. */
Test(resolver_hostile, oversized_records)
{
    dg_loop *loop = hostile_loop();

    expect_rejected(loop, "fat.test", DGT_DNS_OVERSIZED, 4, DG_ERR_DNS_NOTFOUND);
    expect_rejected(loop, "fat6.test", DGT_DNS_OVERSIZED, 6, DG_ERR_DNS_NOTFOUND);
    dgt_loop_finish(loop);
}

/* An answer over 6 KB on UDP, more than the 512 bytes of plain DNS (a
 * misconfigured server): c-ares takes it for a truncated one and asks
 * again over TCP, where the same answer is valid: the first address,
 * cached for its TTL like any other (ASan checks the reading). */
Test(resolver_hostile, oversized_udp_answer_is_asked_again_over_tcp)
{
    dg_loop *loop = hostile_loop();
    dgt_lookup l;

    dgt_dns_set(server, "huge.test", DGT_DNS_HUGE, "127.0.0.43", NULL, 60, 0);
    cr_expect_eq(dgt_lookup_wait(loop, "huge.test", 4, &l), 0, "%s", dg_err_name(l.status));
    cr_expect_str_eq(l.address.address, "127.0.0.43");
    cr_expect_eq(dgt_dns_tcp_queries(server), 1);
    cr_expect_eq(dgt_lookup_wait(loop, "huge.test", 4, &l), 0);
    cr_expect_eq(dgt_dns_queries(server, "huge.test"), 2, "UDP, then TCP; then the cache");
    dgt_loop_finish(loop);
}

/* A CNAME chain that comes back to the name asked has no address: Node's
 * lookup says ENOTFOUND; it is not a "no such name" answer to remember. */
Test(resolver_hostile, cname_loop)
{
    dg_loop *loop = hostile_loop();

    expect_rejected(loop, "cycle.test", DGT_DNS_CNAME_LOOP, 4, DG_ERR_DNS_NOTFOUND);
    expect_rejected(loop, "cycle6.test", DGT_DNS_CNAME_LOOP, 6, DG_ERR_DNS_NOTFOUND);
    cr_expect_str_eq(dg_err_name(DG_ERR_DNS_NOTFOUND), "ENOTFOUND");
    dgt_loop_finish(loop);
}

/* The UDP answer says "truncated" and the TCP retry is hung up on. */
Test(resolver_hostile, truncated_answer_and_tcp_hang_up)
{
    dg_loop *loop = hostile_loop();

    expect_rejected(loop, "hangup.test", DGT_DNS_TC_TCP_CLOSE, 4, DG_ERR_DNS_CONNREFUSED);
    cr_expect_geq(dgt_dns_tcp_queries(server), 2, "the retries went over TCP");
    dgt_loop_finish(loop);
}

/* An answer that arrives after the lookup timed out reaches a c-ares
 * socket kept open by other queries in flight (c-ares closes its sockets
 * when no query is left), matches no query, and is dropped: the next
 * lookup of the name asks the server again. The answer comes 3 s late,
 * 20 times the timeout, so even a stalled loop times out first. */
#define LATE_MS 3000

Test(resolver_hostile, late_answer_is_ignored, .timeout = 60)
{
    dg_loop *loop = hostile_loop();
    dgt_lookup late, keep[2];
    unsigned sent_before = dgt_dns_delayed_sent(server), after = 0, i;
    uint64_t start = dgt_now_ms();

    dgt_dns_set(server, "late.test", DGT_DNS_ANSWER, "127.0.0.41", NULL, 60, LATE_MS);
    dgt_dns_set(server, "keep0.test", DGT_DNS_DROP, NULL, NULL, 0, 0);
    dgt_dns_set(server, "keep1.test", DGT_DNS_DROP, NULL, NULL, 0, 0);
    dgt_lookup_start(loop, "late.test", 4, &late);
    /* Keepers: a lookup of a silent name always in flight, each started
     * before the last one ends, until two rounds after the late answer
     * was sent (each round runs the loop, which reads the socket). */
    dgt_lookup_start(loop, "keep0.test", 4, &keep[0]);
    for (i = 1; after < 2; i++) {
        cr_assert_lt(dgt_now_ms() - start, 20000, "the late answer was never sent");
        after += dgt_dns_delayed_sent(server) > sent_before;
        dgt_lookup_start(loop, i % 2 ? "keep1.test" : "keep0.test", 4, &keep[i % 2]);
        dgt_lookup_run(loop, &keep[(i + 1) % 2].calls, 1);
        cr_assert_eq(keep[(i + 1) % 2].status, DG_ERR_DNS_TIMEOUT);
    }
    dgt_lookup_run(loop, &keep[(i + 1) % 2].calls, 1);
    cr_expect_eq(late.calls, 1);
    cr_expect_eq(late.status, DG_ERR_DNS_TIMEOUT, "%s", dg_err_name(late.status));
    cr_expect_geq(late.done_ms - start, TIMEOUT_MS);
    cr_expect_eq(dgt_resolver_stats(loop).cache_entries, 0, "the late answer was cached");
    dgt_dns_set(server, "late.test", DGT_DNS_ANSWER, "127.0.0.42", NULL, 60, 0);
    cr_expect_eq(dgt_lookup_wait(loop, "late.test", 4, &late), 0);
    cr_expect_str_eq(late.address.address, "127.0.0.42", "the late answer was used");
    cr_expect_eq(dgt_dns_queries(server, "late.test"), 2);
    dgt_loop_finish(loop);
}

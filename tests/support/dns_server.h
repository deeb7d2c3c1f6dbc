/* Test DNS servers on 127.0.0.1, so no resolver test ever queries the
 * machine's configured DNS server:
 *
 *  - a scripted server (UDP and TCP on the same ephemeral port, in a
 *    thread of the test process) whose answer per name is chosen by the
 *    test: records, silence, NXDOMAIN, NODATA, SERVFAIL, REFUSED, a
 *    truncated UDP answer (the full one over TCP), a slow answer, and
 *    hostile answers (malformed, cut, with another ID or question,
 *    oversized, CNAME loops; late ones are slow answers past the
 *    resolver's timeout); it counts the queries it receives;
 *  - dnsmasq from Debian's archive (dnsmasq-base), started on an ephemeral
 *    port as a child process, for tests against a real DNS server;
 *  - a "black hole": a bound UDP socket that never answers (timeouts).
 *
 * Failures are reported through Criterion assertions, from the test's own
 * thread.
 */
#ifndef DGRING_TEST_DNS_SERVER_H
#define DGRING_TEST_DNS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Scripted server ------------------------------------------------- */

typedef enum dgt_dns_action {
    DGT_DNS_ANSWER = 0, /* the name's records (NODATA for a type it has none of) */
    DGT_DNS_DROP,       /* never answer */
    DGT_DNS_NXDOMAIN,
    DGT_DNS_NODATA,     /* NOERROR with no records */
    DGT_DNS_SERVFAIL,
    DGT_DNS_REFUSED,
    DGT_DNS_TRUNCATE,   /* UDP: TC bit and no records; TCP: the full answer */
    DGT_DNS_TC_TCP_CLOSE, /* UDP: TC bit; TCP: the connection closed unanswered */
    /* Hostile answers (from here on; each keeps the query's ID unless
     * said otherwise, and its records use the rule's addresses): */
    DGT_DNS_SHORT,      /* 5 bytes: less than a DNS header */
    DGT_DNS_BAD_COUNT,  /* the header announces 2 answers, none follows */
    DGT_DNS_NAME_LOOP,  /* the record's name is a compression pointer to itself */
    DGT_DNS_CUT,        /* the record ends half-way through its data, no TC bit */
    DGT_DNS_WRONG_ID,   /* a correct answer with another ID */
    DGT_DNS_WRONG_QUESTION, /* a correct answer to another name */
    DGT_DNS_OVERSIZED,  /* one A/AAAA record with 300 bytes of data */
    DGT_DNS_HUGE,       /* 400 records: a UDP answer of over 6 KB */
    DGT_DNS_CNAME_LOOP, /* NAME CNAME loop2.NAME, loop2.NAME CNAME NAME, no address */
} dgt_dns_action;

typedef struct dgt_dns_server dgt_dns_server;

/* Starts the server; unknown names get NXDOMAIN. */
dgt_dns_server *dgt_dns_start(void);
/* Stops the thread, closes the sockets and frees the server. */
void dgt_dns_stop(dgt_dns_server *server);
int dgt_dns_port(const dgt_dns_server *server);
/* "127.0.0.1:PORT", for dg_loop_set_dns_servers(). Static per server. */
const char *dgt_dns_address(const dgt_dns_server *server);

/* Sets (or replaces) the rule for name (case-insensitive): the action, an
 * IPv4 and an IPv6 address (text, either may be NULL), the TTL of the
 * records, and a delay before each UDP answer (0 for none). */
void dgt_dns_set(dgt_dns_server *server, const char *name, dgt_dns_action action,
                 const char *ipv4, const char *ipv6, unsigned ttl, unsigned delay_ms);

/* Queries received for name (UDP and TCP, every type). */
unsigned dgt_dns_queries(dgt_dns_server *server, const char *name);
/* Queries received over TCP, all names. */
unsigned dgt_dns_tcp_queries(dgt_dns_server *server);
/* Every query received, all names, known or not. */
unsigned dgt_dns_total_queries(dgt_dns_server *server);
/* UDP answers sent after their delay so far (all names). */
unsigned dgt_dns_delayed_sent(dgt_dns_server *server);

/* ---- Black hole ------------------------------------------------------ */

/* A UDP socket bound to 127.0.0.1:0 that is never read: queries sent to
 * it time out. Returns the fd; its port is dgt_plain_port(fd). */
int dgt_dns_black_hole(void);

/* A UDP port on 127.0.0.1 with nothing bound to it (queries sent there
 * are refused by ICMP). */
int dgt_dns_dead_port(void);

/* ---- dnsmasq --------------------------------------------------------- */

typedef struct dgt_dnsmasq dgt_dnsmasq;

/* True if /usr/sbin/dnsmasq exists (scripts/deps.sh test installs it). */
bool dgt_dnsmasq_available(void);

/* Starts dnsmasq on 127.0.0.1 at a free port with no upstream servers, no
 * hosts file, no config file, and the given extra options (a
 * NULL-terminated list, such as "--address=/a.test/127.0.0.2"), and waits
 * until it answers. Asserts success. */
dgt_dnsmasq *dgt_dnsmasq_start(const char *const *options);
int dgt_dnsmasq_port(const dgt_dnsmasq *dnsmasq);
/* "127.0.0.1:PORT". */
const char *dgt_dnsmasq_address(const dgt_dnsmasq *dnsmasq);
/* SIGSTOP / SIGCONT: a paused server receives but never answers. */
void dgt_dnsmasq_pause(dgt_dnsmasq *dnsmasq);
void dgt_dnsmasq_resume(dgt_dnsmasq *dnsmasq);
/* Kills it, reaps it and frees the handle. */
void dgt_dnsmasq_stop(dgt_dnsmasq *dnsmasq);

/* Sends one query for name (type A) to 127.0.0.1:port and waits up to
 * timeout_ms for any answer. True if one came. */
bool dgt_dns_probe(int port, const char *name, unsigned timeout_ms);

#endif

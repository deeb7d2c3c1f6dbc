/* dgring: host name resolution (Node's dns.lookup, in C).
 *
 * Each loop has its own resolver, created on first use: a c-ares channel
 * driven by the loop's ring (no threads, no getaddrinfo, no blocking DNS
 * call), a cache that honours every answer's TTL, and the hosts file.
 * The socket calls that take a host name use the same resolver.
 *
 * Where an answer comes from, in order:
 *   1. IP literals ("192.0.2.1", "::1", "fe80::1%eth0") are answered as
 *      they are; they never reach DNS.
 *   2. The hosts file (/etc/hosts, or dg_resolver_options.hosts_file);
 *      "localhost" and names ending in ".localhost" are loopback even when
 *      the hosts file does not list them (RFC 6761). Never DNS.
 *   3. The loop's cache (positive answers for their TTL, "not found"
 *      answers for negative_ttl_ms).
 *   4. DNS through c-ares, asking only for the family needed: A for IPv4,
 *      AAAA for IPv6. Equal lookups in flight share one query.
 *
 * DNS servers, first match wins: dg_loop_set_dns_servers(); the
 * environment variable DGRING_DNS_SERVERS (same syntax, read when the
 * resolver builds its c-ares channel); the nameserver lines of
 * resolv.conf. Search domains and ndots always come from resolv.conf. When
 * resolv.conf changes (checked at most once a second, at the next lookup
 * that needs DNS) a new channel is built; lookups already in flight finish
 * on the old one.
 *
 * Callback contract: as everywhere in dgring, a call that fails never
 * calls its callback; a call that succeeds calls it exactly once, from the
 * loop, never inside the call. dg_loop_close() completes lookups still
 * pending with -ECANCELED (the callbacks run inside dg_loop_close).
 *
 * Errors delivered to callbacks (names are Node's dns codes, see error.h):
 *   DG_ERR_DNS_NOTFOUND     NXDOMAIN, or the name has no address of the
 *                           family asked (NODATA), as Node's lookup says
 *   DG_ERR_DNS_TIMEOUT      no answer within the configured timeout/tries
 *   DG_ERR_DNS_CONNREFUSED  every server refused (ICMP port unreachable)
 *   DG_ERR_DNS_SERVFAIL, DG_ERR_DNS_REFUSED, DG_ERR_DNS_FORMERR,
 *   DG_ERR_DNS_NOTIMP, DG_ERR_DNS_BADRESP, DG_ERR_DNS_BADNAME
 *   -ECANCELED              the loop closed first
 *   -ENOMEM
 *
 * Threading: every call here is for the loop's thread only.
 */
#ifndef DGRING_RESOLVER_H
#define DGRING_RESOLVER_H

#include <stdint.h>

#include "dgring/loop.h"
#include "dgring/socket.h"
#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Lookup ------------------------------------------------------------ */

/* status 0: address is the answer (address->port is 0), valid during the
 * callback only. status < 0: the error, address is NULL. */
typedef void (*dg_lookup_cb)(dg_loop *loop, int status, const dg_address *address, void *data);

/* Node's dns.lookup(name, { family }) without `all`: resolves name to one
 * address.
 *   family 4: an IPv4 address (A records).
 *   family 6: an IPv6 address (AAAA records).
 *   family 0: A and AAAA are asked at the same time; the answer is the
 *             first IPv4 address if there is one, else the first IPv6
 *             address. If neither exists the error is ENOTFOUND, unless
 *             one of the two failed otherwise (a timeout, SERVFAIL...), in
 *             which case that error is given (the IPv4 one first).
 * An IP literal is answered as it is, whatever family says (as in Node).
 * name is copied. data is passed to cb untouched.
 * Returns 0, or (cb never runs):
 *   DG_ERR_INVALID_ARG_TYPE   loop, name or cb is NULL
 *   DG_ERR_INVALID_ARG_VALUE  family is not 0, 4 or 6; name is empty or
 *                             longer than 255 bytes; DGRING_DNS_SERVERS is
 *                             malformed
 *   -ECANCELED                called while the loop is closing
 *   -ENOMEM, or a c-ares channel that cannot be built (DG_ERR_DNS_*). */
DG_EXPORT int dg_lookup(dg_loop *loop, const char *name, int family, dg_lookup_cb cb,
                        void *data);

/* ---- Configuration ----------------------------------------------------- */

/* Resolver settings of one loop. Fill with dg_resolver_options_init(),
 * then change what you need; values are taken as they are (0 disables the
 * cache or the negative cache). */
typedef struct dg_resolver_options {
    /* Timeout of the first try at each server, in ms (c-ares doubles it
     * each further round). Default 1000. Must be > 0. */
    unsigned timeout_ms;
    /* Tries per server. Default 2. Must be 1..64. With one server the
     * longest wait is timeout_ms * (2^tries - 1): 3 s by default (c-ares'
     * own defaults add up to more than a minute per name). */
    unsigned tries;
    /* Answers kept (positive and negative); the least recently used goes
     * first when full. Default 1024, at most 1048576; 0 turns the cache
     * off (equal lookups in flight still share one query). */
    unsigned cache_max_entries;
    /* How long ENOTFOUND (NXDOMAIN or NODATA) is remembered, in ms.
     * Default 1000; 0 turns negative caching off. */
    unsigned negative_ttl_ms;
    /* Path of resolv.conf (nameservers, search, ndots). NULL means
     * /etc/resolv.conf. Copied. */
    const char *resolv_conf;
    /* Path of the hosts file. NULL means /etc/hosts. Copied. */
    const char *hosts_file;
    unsigned reserved[8];
    void *reserved_ptr[4];
} dg_resolver_options;

/* Fills *options with the defaults. */
DG_EXPORT void dg_resolver_options_init(dg_resolver_options *options);

/* Replaces the loop's resolver settings (options and the strings it points
 * to are copied). Lookups already in flight finish with the old settings;
 * the cache is emptied. Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL loop or
 * options, a value out of range), -ECANCELED (loop closing), -ENOMEM. */
DG_EXPORT int dg_loop_set_resolver_options(dg_loop *loop, const dg_resolver_options *options);

/* The loop's current settings. The strings point into the loop and stay
 * valid until a dg_loop_set_resolver_options() changes them (passing the
 * same text back keeps them) or dg_loop_close().
 * Returns 0 or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_loop_get_resolver_options(const dg_loop *loop, dg_resolver_options *out);

/* Sets the DNS servers of the loop: a comma-separated list of IPv4 or
 * IPv6 addresses, each with an optional port (default 53):
 * "127.0.0.1:5353,[::1]:53,192.0.2.53". NULL or "" goes back to
 * DGRING_DNS_SERVERS or resolv.conf. servers is copied; lookups already in
 * flight finish on the old servers; the cache is emptied.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL loop, malformed list, more
 * than 16 servers), -ECANCELED (loop closing), -ENOMEM. */
DG_EXPORT int dg_loop_set_dns_servers(dg_loop *loop, const char *servers);

/* Empties the loop's cache. Returns 0 or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_loop_clear_dns_cache(dg_loop *loop);

/* Counters of a loop's resolver, for statistics and tests. */
typedef struct dg_resolver_stats {
    uint64_t lookups;       /* lookups started (dg_lookup and socket calls;
                               dg_lookup with family 0 counts two) */
    uint64_t literals;      /* answered as IP literals */
    uint64_t hosts_answers; /* answered from the hosts file or as localhost */
    uint64_t cache_hits;    /* answered from the cache (positive) */
    uint64_t negative_hits; /* ENOTFOUND answered from the cache */
    uint64_t coalesced;     /* joined an equal lookup already in flight */
    uint64_t queries;       /* lookups handed to c-ares (each may send
                               several packets: tries, servers, search
                               domains, a TCP retry) */
    uint64_t failures;      /* of those, how many ended in an error */
    uint64_t channels;      /* c-ares channels built (the first, then one
                               per settings or resolv.conf change) */
    uint64_t cache_entries; /* answers in the cache now */
    uint64_t reserved[6];
} dg_resolver_stats;

/* Copies the counters into *out (all zero if the loop never resolved).
 * Returns 0 or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_loop_get_resolver_stats(const dg_loop *loop, dg_resolver_stats *out);

#ifdef __cplusplus
}
#endif

#endif

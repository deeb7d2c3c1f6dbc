/* dgring resolver internals: shared between the resolver sources, never
 * installed. The layers above reach the resolver only through its
 * interface, resolver/resolver.h; the resolver itself uses only the core
 * (engine/core/core.h), never the socket layer.
 *
 * Files:
 *   resolver/request.c requests: literals, hosts, cache, dg_lookup, settings
 *   resolver/ares.c    the c-ares channel on the ring: sockets, polls,
 *                      the timeout, queries, the loop's calls (resolver.h)
 *   resolver/cache.c   the per-loop answer cache (TTL, LRU, negative)
 *   resolver/hosts.c   the hosts file, reloaded when it changes
 */
#ifndef DGRING_RESOLVER_INTERNAL_H
#define DGRING_RESOLVER_INTERNAL_H

#include <ares.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "dgring/resolver.h"
#include "engine/core/core.h"
#include "resolver.h"

/* Longest name accepted, without the NUL (RFC 1035's 255-byte wire limit
 * is a little stricter; c-ares checks the rest). */
#define DG__NAME_MAX 255
/* How often a changed resolv.conf or hosts file is looked for. */
#define DG__FILE_CHECK_MS 1000u
#define DG__SERVERS_MAX 16

/* One address of a DNS, hosts or cache answer (DNS answers carry no
 * IPv6 scope). */
struct dg__answer {
    int status; /* 0, or the error (negative cache entries) */
    int family; /* AF_INET or AF_INET6 when status is 0 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
};

/* ---- Cache (resolver/cache.c) ----------------------------------------- */
struct dg__cache_entry;

struct dg__cache {
    struct dg__cache_entry **buckets;
    unsigned nbuckets;    /* power of two, 0 until the first store */
    unsigned count;
    unsigned max;         /* 0: the cache is off */
    struct dg__list lru;  /* every entry, the most recently used first */
};

void dg__cache_init(struct dg__cache *cache, unsigned max);
void dg__cache_clear(struct dg__cache *cache);
/* Copies a live entry for (name, family) into *out and returns true;
 * removes it and returns false if it has expired. name is lower case. */
bool dg__cache_find(struct dg__cache *cache, const char *name, int family, uint64_t now_ms,
                    struct dg__answer *out);
/* Stores (or replaces) the answer for (name, family) until expires_ms,
 * evicting the least recently used entry when full. Returns 0 or -ENOMEM
 * (the cache is then unchanged; a lookup still gets its answer). */
int dg__cache_store(struct dg__cache *cache, const char *name, int family,
                    const struct dg__answer *answer, uint64_t expires_ms);
/* FNV-1a of name and family, shared with the in-flight query table. */
uint32_t dg__name_hash(const char *name, int family);

/* ---- Hosts file (resolver/hosts.c) ------------------------------------ */
struct dg__hosts_entry;

/* What a file looked like when it was read: a change in any field means
 * it was replaced or edited. */
struct dg__file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct dg__hosts {
    const char *path;              /* borrowed from the resolver */
    struct dg__hosts_entry *entries; /* sorted by (name, line) */
    unsigned count;
    char *names;                   /* the entries' names, one block */
    struct dg__file_id id;
    uint64_t checked_ms;
    bool loaded;
};

/* Reads the file if it is new or changed (checked at most once every
 * DG__FILE_CHECK_MS), then looks name (lower case) up for family. Returns
 * true and fills *out when found. A missing or unreadable file has no
 * names. */
bool dg__hosts_find(struct dg__hosts *hosts, const char *name, int family, uint64_t now_ms,
                    struct dg__answer *out);
void dg__hosts_free(struct dg__hosts *hosts);
/* Forgets what was read, so the next lookup reads the file again. */
void dg__hosts_reset(struct dg__hosts *hosts, const char *path);
/* Fills *id for path (exists false if it cannot be stat'ed). */
void dg__file_id_get(const char *path, struct dg__file_id *id);
bool dg__file_id_equal(const struct dg__file_id *a, const struct dg__file_id *b);

/* ---- c-ares on the ring (resolver/ares.c) ----------------------------- */

struct dg__channel;

/* One socket c-ares opened. Its poll's user_data is the record's address
 * (with DG__OP_POLL), and the record lives until that poll's final
 * completion, so the address names one poll among live ring operations:
 * polls are removed by this user_data, never by fd number (a closed fd
 * number is reused at once by the next socket). The record plays the part
 * of a generation number: a new socket, even on the same fd number, is a
 * new record. At most one poll per socket is in flight; a change of events
 * removes the old poll and arms the new one after its final completion.
 * A remove is executed inside the io_uring_enter that submits it, so it
 * can never hit a later poll whose record reused the address (and if it
 * did, that poll would end with -ECANCELED and simply be re-armed). */
struct dg__rsock {
    int fd;
    int type;                     /* SOCK_DGRAM or SOCK_STREAM */
    struct dg__resolver *res;
    struct dg__channel *channel;  /* NULL once c-ares closed it */
    struct dg__rsock *next;
    unsigned want;                /* POLLIN/POLLOUT c-ares asked for */
    unsigned armed;               /* events of the poll in flight */
    bool poll_inflight;
    bool remove_sent;             /* a poll remove for it is submitted */
    bool closing;                 /* c-ares closed it: close the fd after
                                     the poll's final completion */
    bool busy;                    /* its completion is being handled */
};

/* One c-ares channel. A settings or resolv.conf change retires it: it
 * takes no new queries and is destroyed (from the prepare step, never in a
 * c-ares callback) when its last query has called back. */
struct dg__channel {
    ares_channel ares;
    struct dg__resolver *res;
    struct dg__channel *next;     /* the resolver's list of channels */
    unsigned generation;
    unsigned queries;             /* queries whose c-ares callback is due */
    struct dg__file_id resolv_id; /* resolv.conf as it was read */
    bool retired;
    bool socket_nomem;            /* the last socket c-ares asked for failed
                                     for lack of memory */
};

/* A DNS lookup in flight, shared by every request for the same (name,
 * family). The c-ares callback only records the result here and moves the
 * query to the done list; dg__queries_finish() then caches it and queues
 * each waiter's callback. */
struct dg__query {
    struct dg__resolver *res;
    struct dg__channel *channel;
    struct dg__query *hnext;      /* in-flight table chain */
    struct dg__query *done_next;
    struct dg__list waiters;       /* struct dg__resolve_req, the newest first */
    uint32_t hash;
    int family;
    int server_status;            /* ARES_ESERVFAIL etc. a server answered */
    bool done;
    bool odd_negative;            /* "no address" from an answer that had
                                     records (a CNAME loop, records of the
                                     wrong size): not remembered */
    struct dg__answer answer;
    uint32_t ttl_s;
    char name[];                  /* lower case */
};

#define DG__INFLIGHT_BUCKETS 64u

/* One request: a dg__resolve() call. */
struct dg__resolve_req {
    struct dg__core *core;
    struct dg__query *query;       /* waiting on it, or NULL */
    struct dg__list link;          /* in the query's waiters */
    struct dg__deferred ev;
    dg__resolve_cb cb;
    void *ctx;
    int status;
    bool cancelled;
    bool finished;                 /* cb is running or has run */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct dg__server {
    int family;
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
    int port;
};

/* A loop's resolver (the core's resolver slot). */
struct dg__resolver {
    struct dg__core *core;
    dg_resolver_options options;   /* strings point at the copies below */
    char *resolv_conf;             /* NULL: /etc/resolv.conf */
    char *hosts_file;              /* NULL: /etc/hosts */
    struct dg__server servers[DG__SERVERS_MAX];
    unsigned nservers;             /* 0: DGRING_DNS_SERVERS or resolv.conf */

    struct dg__channel *channels;  /* the current one first, then retired */
    unsigned generation;
    uint64_t resolv_checked_ms;
    struct dg__rsock *socks;
    struct dg__query *inflight[DG__INFLIGHT_BUCKETS];
    struct dg__query *done_head, *done_tail;

    struct dg__cache cache;
    struct dg__hosts hosts;
    dg_resolver_stats stats;

    bool dirty;                    /* polls need arming or removing */
    bool timeout_dirty;            /* the timeout may need moving earlier */
    bool closing;                  /* dg_loop_close is tearing it down */
    struct dg__timeout timeout;    /* the earliest ares_timeout() of all channels */
};

/* The loop's resolver, created on first use, for a call that uses or
 * configures it. NULL with *err set: -ENOMEM, or -ECANCELED while it is
 * torn down (dg_loop_close). */
struct dg__resolver *dg__resolver_get(struct dg__core *c, int *err);
/* Joins the query in flight for (name, family) or starts one on the
 * current channel (built or rebuilt as needed). name is lower case. */
int dg__query_submit(struct dg__resolver *res, struct dg__resolve_req *req, const char *name,
                     int family);
/* Caches every recorded result and queues its waiters' callbacks (or, while
 * closing, runs them with -ECANCELED). Never called from inside c-ares. */
void dg__queries_finish(struct dg__resolver *res);
/* Retires the current channel: the next DNS lookup builds a new one. */
void dg__channel_retire(struct dg__resolver *res);
/* Maps an ARES_* status to a dgring code. */
int dg__ares_status(int status);

/* ---- Requests (resolver/request.c) ------------------------------------- */
/* Queues req's callback with status and addr (NULL on error). */
void dg__req_complete(struct dg__resolve_req *req, int status, const struct dg__answer *answer);
/* Runs req's callback now with -ECANCELED (loop closing). */
void dg__req_finish_now(struct dg__resolve_req *req, int status);
/* Parses "ip[:port],[ip6]:port,..." into servers; returns the count or
 * DG_ERR_INVALID_ARG_VALUE. */
int dg__servers_parse(const char *text, struct dg__server *servers, unsigned max);

#endif

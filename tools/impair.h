/* dgring-impair: a UDP impairment proxy on dgring.
 *
 * Clients send to the proxy's port; each client address:port is a flow
 * with its own upstream socket towards the target, so the target's replies
 * come back to that socket and go back to that client. Each direction of
 * each flow ("up": client to target, "down": target to client) passes
 * through the same steps, in this order:
 *
 *   size     a payload over --max-size bytes is dropped (a small MTU)
 *   loss     --loss: each datagram independently; Gilbert-Elliott bursts:
 *            a good and a bad state, --burst-enter / --burst-exit the
 *            chances per datagram of changing state, --burst-loss the loss
 *            in the bad state
 *   queue    at most --queue datagrams held per direction (all flows);
 *            one more arrives: dropped (tail drop)
 *   copy     --duplicate: an extra copy, which goes on like the first
 *   corrupt  --corrupt: one bit of the copy's payload flipped
 *   link     --rate: the direction's link sends one copy at a time, at
 *            that many kbit/s (payload and IP/UDP headers)
 *   delay    --delay plus a uniform --jitter either way, never below 0
 *   reorder  --reorder: the copy is held back until --reorder-depth later
 *            copies of its flow and direction left, or --reorder-wait ms
 *
 * Every decision is drawn from a stream of its own per flow and
 * direction, seeded from --seed, the flow's number (1, 2, ... in order of
 * arrival) and the direction: the same input sequence and options give
 * the same decisions. Which copies pass which others can still depend on
 * timing (jitter, the link, reorder waits that expire).
 *
 * Counting is exact: every datagram received and every extra copy ends
 * as forwarded, a send error, or one drop cause, so for every direction
 * received + duplicated == forwarded + send_errors + dropped_*.
 * "reordered" counts copies that left after a later datagram of their
 * direction, and only the first copy of each datagram; "duplicated"
 * counts extra copies made. A receiver on loopback that classifies by
 * sequence number (seen before: duplicate; below the highest seen:
 * reordered) counts the same numbers.
 *
 * The timers are dgring's (milliseconds): a copy never leaves before its
 * time, and may leave up to about a millisecond after it.
 *
 * Tool code on the public API only, like common.h.
 */
#ifndef DGRING_TOOLS_IMPAIR_H
#define DGRING_TOOLS_IMPAIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common.h"

/* The two directions of a flow. */
enum { IMPAIR_UP = 0, IMPAIR_DOWN = 1, IMPAIR_DIRECTIONS = 2 };

/* --direction: the directions impaired (the other passes untouched). */
enum { IMPAIR_WHICH_BOTH = 0, IMPAIR_WHICH_UP = 1, IMPAIR_WHICH_DOWN = 2 };

typedef struct impair_config {
    const char *address;     /* listen address; NULL: the unspecified one */
    int port;                /* listen port, 0: a free one */
    const char *target_host;
    int target_port;
    bool udp6;
    double loss;             /* percentages */
    double burst_enter;
    double burst_exit;
    double burst_loss;
    double duplicate;
    double corrupt;
    double reorder;
    unsigned reorder_depth;
    unsigned reorder_wait_ms;
    unsigned delay_ms;
    unsigned jitter_ms;
    uint64_t rate_kbit;      /* 0: no link limit */
    unsigned queue;
    unsigned max_size;
    unsigned max_flows;
    int rcvbuf;              /* SO_RCVBUF of every socket, 0: the system's */
    unsigned direction;      /* IMPAIR_WHICH_* */
    uint64_t impair_count;   /* impair only the first N of each flow and
                                direction; 0: every datagram */
    uint64_t seed;
    bool seed_given;
    bool json;
    const char *report;      /* --report FILE, or NULL */
} impair_config;

/* The counters of one direction, in report order. */
#define IMPAIR_COUNTERS(X)                                                                    \
    X(received) X(bytes) X(forwarded) X(duplicated) X(corrupted) X(delayed) X(reordered)     \
        X(dropped_size) X(dropped_loss) X(dropped_burst) X(dropped_queue) X(dropped_evicted) \
            X(dropped_closing) X(send_errors)

typedef struct impair_counts {
#define IMPAIR_FIELD(name) uint64_t name;
    IMPAIR_COUNTERS(IMPAIR_FIELD)
#undef IMPAIR_FIELD
} impair_counts;

/* An intrusive circular list with a sentinel. */
typedef struct impair_link {
    struct impair_link *prev, *next;
} impair_link;

#define IMPAIR_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The decision streams of a direction. */
enum {
    IMPAIR_DRAW_LOSS,
    IMPAIR_DRAW_BURST,
    IMPAIR_DRAW_DUPLICATE,
    IMPAIR_DRAW_CORRUPT,
    IMPAIR_DRAW_DELAY,
    IMPAIR_DRAW_REORDER,
    IMPAIR_DRAWS,
};

struct impair_flow;
struct impair_proxy;

typedef struct impair_dir {
    struct impair_flow *flow;
    unsigned which;           /* IMPAIR_UP or IMPAIR_DOWN */
    bool impaired;            /* --direction covers it */
    bool burst_bad;           /* the Gilbert-Elliott state */
    uint64_t draws[IMPAIR_DRAWS];
    uint64_t arrivals;        /* index of the next datagram to arrive */
    uint64_t highest_sent;    /* 1 + the highest index handed to dgring */
    impair_link pending;      /* the direction's copies not yet sent */
    impair_link held;         /* ... of those, held back for reordering */
    impair_counts counts;
} impair_dir;

typedef struct impair_flow {
    struct impair_proxy *proxy;
    uint64_t number;          /* 1, 2, ... in order of creation */
    struct sockaddr_storage client;
    socklen_t client_len;
    dg_socket *upstream;      /* NULL if it could not be created */
    struct impair_flow *bucket_next;
    impair_link recent;       /* in the proxy's LRU list, newest first */
    impair_dir dir[IMPAIR_DIRECTIONS];
    unsigned refs;            /* table, upstream socket, copies, sends */
    bool in_table;
    bool evicted;             /* left the table for a new flow (else: at exit) */
    unsigned char key[24];    /* the client address as the table compares it */
    size_t key_length;
} impair_flow;

typedef struct impair_packet {
    impair_dir *dir;
    uint64_t release_ns;      /* CLOCK_MONOTONIC: when it may leave */
    uint64_t order;           /* proxy-wide creation order: ties leave in it */
    uint64_t index;           /* the datagram's arrival index in dir */
    struct impair_packet *twin; /* the other copy, while it is pending */
    impair_link pending;
    impair_link held;
    size_t slot;              /* in the proxy's heap */
    unsigned followers;       /* held: departures still to wait for */
    bool reorder;             /* picked for reordering */
    bool is_held;
    bool twin_sent;           /* the other copy already left */
    size_t length;
    unsigned char data[];
} impair_packet;

typedef struct impair_proxy {
    const impair_config *config;
    dg_loop *loop;
    dg_socket *listener;
    dg_timer *timer;
    bool timer_armed;
    uint64_t timer_due_ns;
    struct sockaddr_storage target;
    socklen_t target_len;
    impair_flow **buckets;    /* hash table by client address */
    size_t bucket_mask;
    impair_link recent;       /* flows, most recently active first */
    unsigned flows;           /* in the table */
    uint64_t flows_created;
    uint64_t evictions;
    uint64_t stray;           /* replies from an address other than the target */
    uint64_t kernel_drops[IMPAIR_DIRECTIONS]; /* by the kernel before the proxy
                                                 read them (SO_RXQ_OVFL of the
                                                 listening socket, and of the
                                                 flows' sockets), as they closed */
    impair_packet **heap;     /* pending copies by release time */
    size_t heap_count, heap_capacity;
    uint64_t order;
    unsigned held[IMPAIR_DIRECTIONS];      /* copies pending, against --queue */
    uint64_t link_free_ns[IMPAIR_DIRECTIONS];
    uint64_t sends_in_flight;
    impair_counts total[IMPAIR_DIRECTIONS]; /* of the flows that ended */
    FILE *report;
    char backend[32];
    uint64_t seen;            /* datagrams read from any of the proxy's sockets */
    uint64_t seen_at_check;   /* ... at the last drain check */
    bool drain_was_quiet;     /* the last drain check found nothing queued or read */
    bool draining;            /* first signal: no new datagrams, let the held ones go */
    bool closing;             /* sockets and the timer are closing */
    bool error_shown;         /* the first send error was printed */
    int exit_code;
} impair_proxy;

/* ---- Lists (impair_path.c) ---------------------------------------------- */

void impair_list_init(impair_link *list);
void impair_list_append(impair_link *list, impair_link *item);
void impair_list_remove(impair_link *item);
bool impair_list_empty(const impair_link *list);

/* ---- The path of a datagram (impair_path.c) ------------------------------ */

/* Seeds d's decision streams for flow number `number`. */
void impair_dir_init(impair_dir *d, const impair_proxy *p, impair_flow *f, unsigned which);

/* A datagram of len bytes arrived in direction d: counts it and sends,
 * holds or drops it. */
void impair_arrive(impair_proxy *p, impair_dir *d, const void *data, size_t len);

/* Drops every copy d still holds, counted as `closing` or `evicted`. */
void impair_dir_discard(impair_proxy *p, impair_dir *d, bool evicted);

/* The release timer and the proxy's heap: frees the heap (empty by then). */
void impair_path_free(impair_proxy *p);

/* ---- Flows (impair_flow.c) ----------------------------------------------- */

/* Allocates the hash table for config->max_flows. Returns 0 or -ENOMEM. */
int impair_flows_init(impair_proxy *p);

/* The flow of client (created, evicting the least recently active one if
 * the table is full), made the most recent; NULL only without memory. */
impair_flow *impair_flow_for(impair_proxy *p, const struct sockaddr *client, socklen_t len);

/* Ends every flow in the table (at exit). */
void impair_flows_end_all(impair_proxy *p);

/* Takes and drops a reference; the last drop reports the flow and frees it. */
void impair_flow_ref(impair_flow *f);
void impair_flow_unref(impair_flow *f);

/* ---- The proxy (dgring-impair.c) -------------------------------------------- */

/* After a departure or a completed send: closes the proxy once the drain
 * that the first signal started is complete (nothing held, nothing in
 * flight). */
void impair_check_drained(impair_proxy *p);

/* ---- Output (impair_report.c) ---------------------------------------------- */

void impair_counts_add(impair_counts *sum, const impair_counts *c);

/* The record of a flow that ended, on stdout and in the report file. */
void impair_report_flow(impair_proxy *p, const impair_flow *f);

/* The totals at exit, on stdout and in the report file. */
void impair_report_totals(impair_proxy *p);

#endif

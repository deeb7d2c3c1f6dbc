/* dgring engine internals: shared between the engine sources, never installed.
 *
 * Names: dg__ is internal but shared between files; everything else in a
 * .c file is static.
 */
#ifndef DGRING_ENGINE_INTERNAL_H
#define DGRING_ENGINE_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dgring.h"

/* ---- Memory (engine/alloc.c) --------------------------------------------
 * Every allocation of engine/ and resolver/ goes through these, so
 * dg_replace_allocator() sees them all. dg__realloc(p, 0) frees p and
 * returns NULL. */
void *dg__malloc(size_t size);
void *dg__calloc(size_t count, size_t size);
void *dg__realloc(void *ptr, size_t size);
void dg__free(void *ptr);
char *dg__strdup(const char *s);

/* ---- Completion dispatch ----------------------------------------------
 * user_data of every SQE is a pointer to the object the completion belongs
 * to, with the completion kind in the low three bits (objects come from
 * malloc, so they are at least 8-byte aligned). One table maps kinds to
 * handlers (engine/loop.c). */
enum dg__op_kind {
    DG__OP_IGNORE = 0,  /* cancel and timeout-update results: nothing to do */
    DG__OP_RECV = 1,    /* multishot recvmsg of a dg_socket */
    DG__OP_SEND = 2,    /* sendmsg of a dg__send_req */
    DG__OP_TIMEOUT = 3, /* the loop's single timer timeout */
    DG__OP_WAKE = 4,    /* read of the loop's wake-up eventfd */
    DG__OP_RESOLVER = 5, /* poll or timeout of the loop's resolver */
    DG__OP_SEND_GSO = 6, /* one sendmsg carrying a run of datagrams (UDP_SEGMENT) */
    DG__OP_POST = 7,    /* a dg_loop_post() arriving via IORING_OP_MSG_RING, or
                           the sender's own MSG_RING result (tagged node) */
    DG__OP_KINDS = 8,
};

#define DG__UD(ptr, kind) ((uint64_t)(uintptr_t)(ptr) | (uint64_t)(kind))
#define DG__UD_KIND(ud) ((unsigned)((ud) & 7u))
#define DG__UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)7u))

/* ---- Deferred callbacks -----------------------------------------------
 * Work that must run from the loop but not inside the call that caused it
 * (listening events, bind failures, close callbacks, early send failures).
 * Intrusive, FIFO; the node lives inside the object it belongs to. */
struct dg__deferred {
    struct dg__deferred *next;
    void (*run)(struct dg__deferred *node);
    bool queued;
};

/* Bytes in front of the payload in each receive buffer: the kernel's
 * io_uring_recvmsg_out header, the sender's name, and control space for
 * SO_RXQ_OVFL's drop counter and UDP_GRO's segment size. */
/* The name area is rounded up to 8 so the control messages after it are
 * aligned for struct cmsghdr. */
#define DG__RECV_NAME_LEN ((unsigned)((sizeof(struct sockaddr_in6) + 7u) & ~7u))
#define DG__RECV_CONTROL_LEN ((unsigned)(CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int))))
#define DG__RECV_HEADER_LEN \
    ((unsigned)sizeof(struct io_uring_recvmsg_out) + DG__RECV_NAME_LEN + DG__RECV_CONTROL_LEN)

/* ---- Provided buffer ring (engine/bufring.c) --------------------------- */
struct dg__bufring {
    struct io_uring_buf_ring *ring; /* mmap'd descriptor ring shared with the kernel */
    size_t ring_bytes;
    unsigned char *mem;             /* count * buf_size bytes of buffers */
    size_t mem_bytes;
    unsigned count;                 /* power of two */
    unsigned mask;
    unsigned stride;                /* distance between buffers, 64-byte multiple */
    unsigned buf_size;              /* bytes the kernel may fill per buffer */
    unsigned pending;               /* recycled, not yet published */
    uint16_t group;
    bool registered;
};

/* count buffers of buf_size bytes, each starting on a 64-byte boundary. */
/* ring NULL: not registered with a kernel ring (the epoll backend reads
 * the descriptors itself). */
int dg__bufring_init(struct io_uring *ring, struct dg__bufring *br, unsigned count,
                     unsigned buf_size, uint16_t group);
void dg__bufring_destroy(struct io_uring *ring, struct dg__bufring *br);
/* Queues buffer bid for return; visible to the kernel at the next commit. */
void dg__bufring_recycle(struct dg__bufring *br, unsigned bid);
/* Publishes every recycled buffer with one tail store. */
void dg__bufring_commit(struct dg__bufring *br);
static inline unsigned char *dg__bufring_addr(const struct dg__bufring *br, unsigned bid)
{
    return br->mem + (size_t)bid * br->stride;
}

/* ---- Kept buffers and batch delivery (engine/socket.c) ------------------
 * One dg_rx_buf per provided buffer (indexed by bid, allocated with the
 * loop): the handle dg_message_keep() returns. A buffer goes back to the
 * ring when its delivery ended and every keep of it was released. */
struct dg_rx_buf {
    dg_loop *loop;
    uint32_t refs;                 /* keeps not yet released */
    bool out;                      /* delivery ended with keeps left: the
                                      last release recycles it */
};

#define DG__BATCH_MAX 64           /* == DG_MESSAGE_BATCH_MAX */

struct dg__rx {
    struct dg_rx_buf *bufs;        /* bufring.count entries; how many wait
                                      for releases is the loop's
                                      stats.rx_kept_buffers */
    /* The delivery in progress (on_message or on_message_batch): the
     * messages dg_message_keep() accepts. sock is NULL outside one. */
    dg_socket *sock;
    const dg_message *msgs;
    unsigned count;
    bool kept_any;                 /* a message of this delivery was kept */
    uint64_t kept_mask;            /* which ones (bit = index in msgs) */
    /* The batch being gathered for one socket's on_message_batch. */
    dg_socket *batch_sock;         /* NULL: no batch pending */
    unsigned batch_count;
    unsigned batch_nbids;          /* buffers all of whose datagrams are in */
    uint16_t batch_bids[DG__BATCH_MAX];
    dg_message batch_msgs[DG__BATCH_MAX];
};

/* Delivers the pending batch (if any) and returns its buffers; the loop
 * calls it before each commit of the buffer ring. */
void dg__rx_batch_flush(dg_loop *loop);
/* Whether the sockets waiting for a re-arm must wait for a release: every
 * buffer of the ring is kept by the user. */
static inline bool dg__rx_dry(const dg_loop_stats *stats, const struct dg__bufring *br)
{
    return stats->rx_kept_buffers >= br->count;
}

/* ---- Timers (engine/timer.c) ------------------------------------------- */
struct dg_timer {
    dg_loop *loop;
    dg_timer_cb cb;
    void *data;
    uint64_t deadline;  /* loop clock, ms */
    uint64_t repeat;
    uint64_t order;     /* start sequence: equal deadlines run in start order */
    unsigned heap_index;
    bool active;
    bool ref;
    bool counted;       /* contributes to loop->alive_handles */
    bool closing;
    dg_timer_close_cb close_cb;
    void *close_data;
    struct dg__deferred close_ev;
};

struct dg__timer_heap {
    dg_timer **items;
    unsigned count;
    unsigned cap;
};

bool dg__timers_run_due(dg_loop *loop);
/* Makes the ring's timeout match the earliest deadline (moved only earlier). */
void dg__timers_arm(dg_loop *loop);
void dg__timer_on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe);
/* ms until the earliest deadline, -1 if none. */
int dg__timers_next_ms(const dg_loop *loop);

/* ---- Extension hooks ----------------------------------------------------
 * The resolver (resolver/) plugs into a loop through these, so engine/
 * never includes resolver internals. Installed on first use. */
struct dg__loop_ext {
    /* A completion whose kind is DG__OP_RESOLVER. */
    void (*on_completion)(dg_loop *loop, const struct io_uring_cqe *cqe);
    /* Before each io_uring_enter: queue the SQEs the extension needs. */
    void (*prepare)(dg_loop *loop);
    /* From dg_loop_close, before anything is freed: cancel, finish every
     * request exactly once, release the extension's memory. */
    void (*destroy)(dg_loop *loop);
};

/* ---- The epoll backend (engine/emu.c) ------------------------------------
 * Carries out the ring operations the engine submits with epoll, recvmmsg
 * and sendmmsg; completions come back in the ring's own CQE format. */
struct dg__emu;
int dg__emu_new(struct dg__emu **out, struct dg__bufring *br, struct dg_loop_stats *stats,
                unsigned sq_entries, unsigned cq_entries);
void dg__emu_free(struct dg__emu *e);
struct io_uring_sqe *dg__emu_get_sqe(struct dg__emu *e);
unsigned dg__emu_sq_ready(const struct dg__emu *e);
/* Carries out every queued SQE; returns how many. */
int dg__emu_submit(struct dg__emu *e);
/* Turns readiness into completions; with block, waits for at least one. */
int dg__emu_wait(struct dg__emu *e, bool block);
unsigned dg__emu_cq_ready(const struct dg__emu *e);
unsigned dg__emu_peek_batch(struct dg__emu *e, struct io_uring_cqe **out, unsigned max);
void dg__emu_cq_advance(struct dg__emu *e, unsigned n);
/* The fd an embedding loop polls, and the eventfd that pokes it. */
int dg__emu_fd(const struct dg__emu *e);
int dg__emu_attach_notify(struct dg__emu *e, int fd);

/* Engine send buffers (dg_send_buffer_get): a pool per loop, mapped and,
 * on io_uring, registered with the ring at the first take. A buffer is the
 * user's between take and send (or put), then the engine's until the send
 * completes (zero-copy: until the kernel's notification). */
enum dg__sbuf_state { DG__SBUF_FREE, DG__SBUF_USER, DG__SBUF_ENGINE };
struct dg__sbuf {
    dg_send_buffer pub;            /* data, capacity: what the user sees */
    struct dg__sbuf *next_free;
    enum dg__sbuf_state state;
};
/* A power of two, so finding an entry from a user's pointer is a shift. */
_Static_assert((sizeof(struct dg__sbuf) & (sizeof(struct dg__sbuf) - 1)) == 0,
               "pool entries have a power-of-two size");
struct dg__sbuf_pool {
    struct dg__sbuf *bufs;         /* count entries, NULL until the first take */
    unsigned char *mem;            /* count * size bytes, page aligned */
    size_t mem_bytes;
    struct dg__sbuf *free;
    unsigned count;
    bool registered;               /* io_uring_register_buffers succeeded */
};
void dg__sbuf_pool_destroy(dg_loop *loop);

/* ---- The loop (engine/loop.c, engine/ring.c) --------------------------- */
struct dg_loop {
    struct io_uring ring;          /* unused when emu is set */
    struct dg__emu *emu;           /* the epoll backend, NULL on io_uring */
    dg_loop_stats stats;
    dg_loop_caps caps;
    dg_loop_options options;
    struct dg__bufring bufring;
    struct dg__rx rx;              /* kept buffers, batch delivery */

    /* keep-alive accounting */
    unsigned alive_handles;        /* referenced active sockets and timers */
    unsigned closing_handles;
    unsigned handle_count;         /* sockets and timers not yet freed */
    unsigned pending_sends;        /* sends whose callback has not run */
    unsigned pending_requests;     /* other requests that keep the loop alive
                                      (lookups) */

    struct dg__deferred *deferred_head, *deferred_tail;
    struct dg_socket *rearm_head;  /* sockets whose multishot must be re-armed */
    struct dg_socket *sockets;     /* every socket not yet freed */
    struct dg_socket *run_head;    /* sockets with a GSO run to hand to the ring */
    struct dg__gso_req *free_gso;
    struct dg__send_req *free_reqs;
    struct dg__sbuf_pool sbufs;
    unsigned zc_notifs;            /* zero-copy sends waiting for the kernel's
                                      notification: they keep the loop alive
                                      and dg_loop_close() busy */

    struct dg__timer_heap timers;
    uint64_t timer_order;
    uint64_t armed_deadline;       /* deadline of the ring timeout, ms */
    bool timeout_armed;            /* the ring's timeout op is in flight */
    struct __kernel_timespec timeout_ts;

    uint64_t now_ms;
    int wake_fd;                   /* eventfd read by a ring op: dg_loop_wake */
    uint64_t wake_buf;
    bool wake_armed;
    int notify_fd;                 /* eventfd registered with the ring: dg_loop_fd */
    bool poked;                    /* notify_fd written for work queued outside run */
    bool in_run;
    unsigned last_recv_completions; /* receive completions in the last turn:
                                       32+ make the next wait a batched one */
    bool closing;                  /* inside dg_loop_close: no new handles */
    atomic_bool stop;
    /* dg_loop_post (engine/post.c) */
    pthread_mutex_t post_lock;
    struct dg__post *post_head, *post_tail; /* posts from non-loop threads */
    atomic_bool posts_queued;
    atomic_uint posts_pending;     /* posted, not yet run: keeps the loop alive */
    void *resolver;                /* resolver/ state, NULL until first used */
    const struct dg__loop_ext *resolver_ext;
    void *data;
};

int dg__ring_init(dg_loop *loop);
void dg__ring_exit(dg_loop *loop);
/* Submits queued SQEs (io_uring or emulated); returns count or -errno. */
int dg__submit(dg_loop *loop);
/* An SQE, flushing the submission queue to the kernel if it is full.
 * NULL only if the kernel refuses the flush (the error is returned in *err). */
struct io_uring_sqe *dg__get_sqe(dg_loop *loop, int *err);

void dg__defer(dg_loop *loop, struct dg__deferred *node, void (*run)(struct dg__deferred *));
/* Makes dg_loop_fd() readable for work queued outside dg_loop_run(). */
void dg__loop_poke(dg_loop *loop);
void dg__loop_update_time(dg_loop *loop);

/* ---- Socket name resolution (engine/lookup.c) ---------------------------- */
struct dg__lookup {
    dg_socket *sock;
    void (*done)(struct dg__lookup *lk);  /* from the loop, exactly once */
    int port;
    int status;                           /* 0, DG_ERR_DNS_*, -errno, -ECANCELED */
    bool active;                          /* started, done not yet run */
    bool pending;                         /* a lookup is outstanding */
    bool user;                            /* ... by the socket's lookup option */
    bool cancelled;
    struct dg__resolve_req *req;
    struct sockaddr_storage addr;         /* the result, with port */
    socklen_t addrlen;
    char host[DG_HOSTSTRLEN];
    struct dg__deferred ev;
};

/* Resolves host (NULL/"" = the family's default: any for bind, loopback
 * otherwise) for socket s; done runs from the loop exactly once, and the
 * socket stays allocated until then. Returns 0, or DG_ERR_INVALID_ADDRESS
 * (done never runs). */
int dg__lookup_start(struct dg__lookup *lk, dg_socket *s, const char *host, int port,
                     bool for_bind, void (*done)(struct dg__lookup *));
/* Makes an active lookup end with -ECANCELED; no-op otherwise. */
void dg__lookup_cancel(struct dg__lookup *lk);
/* The error record for a failed lookup: DNS code, "getaddrinfo", host name. */
void dg__lookup_error(const struct dg__lookup *lk, dg_error *err);
/* 0 if text can be resolved for s (literal of its family, default, or a
 * host name), DG_ERR_INVALID_ADDRESS otherwise. */
int dg__check_address_text(const dg_socket *s, const char *text);
bool dg__is_host_name(const char *text);

/* ---- Cross-loop posts (engine/post.c) ----------------------------------- */
struct dg__post {
    struct dg__post *next;
    dg_loop *target;
    dg_post_cb cb;
    void *arg;
    atomic_int refs;               /* ring road: one per end still to complete */
};
/* Runs the posts queued by non-loop threads (loop thread, each turn). */
bool dg__posts_run_queued(dg_loop *loop);
void dg__post_on_completion(dg_loop *loop, const struct io_uring_cqe *cqe);
void dg__post_init(dg_loop *loop);
void dg__post_destroy(dg_loop *loop);
/* Sets the loop running on this thread (for dg_loop_post's ring road);
 * returns the previous one. */
dg_loop *dg__current_loop_swap(dg_loop *loop);

/* ---- Sockets (engine/socket.c, engine/send.c, engine/sockopt.c) ------- */
enum dg__socket_state {
    DG__UNBOUND,
    DG__BINDING,  /* resolving, or bind(2) done and 'listening'/error not yet emitted */
    DG__BOUND,
    DG__CLOSING,
    DG__CLOSED,
};

enum dg__connect_state {
    DG__DISCONNECTED,
    DG__CONNECTING,
    DG__CONNECTED,
};

struct dg__send_req {
    struct dg__send_req *next;     /* free list, or the socket's send queue */
    struct dg__deferred fail_ev;   /* completion without the kernel */
    int fail_status;
    bool resolving;                /* lookup in flight: not ready to leave */
    bool dns_failed;               /* fail_status came from the lookup */
    bool connected;                /* no destination: the connected peer */
    dg_socket *sock;
    dg_send_cb cb;
    void *cb_data;
    size_t len;
    unsigned char *heap;           /* payload when larger than inline */
    struct dg__sbuf *sbuf;         /* payload in an engine send buffer (no copy) */
    bool zerocopy;                 /* goes out with IORING_OP_SEND_ZC (never
                                      in a GSO run) */
    bool zc_notif_pending;         /* result seen, buffer still the kernel's */
    struct dg__lookup lookup;      /* host-name destinations (and all, with a
                                      user lookup function) */
    struct msghdr msg;
    struct iovec iov;
    struct sockaddr_storage addr;
    unsigned char inline_buf[1536];
};

/* A run of equal-size datagrams to one destination, sent as one sendmsg
 * with UDP_SEGMENT (GSO): the kernel splits it into the datagrams. */
#define DG__GSO_MAX_SEGMENTS 64
struct dg__gso_req {
    struct dg__gso_req *next;      /* free list */
    dg_socket *sock;
    struct dg__send_req *children; /* the datagrams, in order, via ->next */
    unsigned count;
    struct msghdr msg;
    struct iovec iov[DG__GSO_MAX_SEGMENTS];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
};

struct dg_abort {
    bool aborted;
    dg_socket *sockets;            /* registered, open sockets */
};

struct dg_socket {
    dg_loop *loop;
    dg_socket *loop_prev, *loop_next;   /* the loop's sockets (fd ownership checks) */
    int fd;
    dg_socket_type type;
    enum dg__socket_state state;
    enum dg__connect_state connect_state;
    dg_socket_options options;
    dg_socket_handlers handlers;
    void *data;
    bool ref;
    bool counted;
    bool recv_armed;
    bool rearm_queued;
    bool cancel_pending;           /* closing: the cancel SQE still to be queued */
    bool fd_bound;                 /* bind(2) succeeded: sends may leave */
    unsigned inflight;             /* ring ops, lookups and queued sends naming this socket */
    dg_socket *rearm_next;
    struct msghdr rmsg;            /* template for the multishot recvmsg */

    dg_abort *abort;
    dg_socket *abort_prev, *abort_next;

    /* bind */
    int bind_status;
    dg_error bind_error;           /* the record for a failed bind */
    dg_bind_cb bind_cb;
    void *bind_data;
    struct dg__lookup bind_lookup;
    struct dg__deferred bind_ev;

    /* connect */
    bool connect_resolved;
    dg_bind_cb connect_cb;
    void *connect_data;
    struct dg__lookup connect_lookup;

    /* the GSO run being built this turn (sends not yet handed to the ring) */
    struct dg__send_req *run_head, *run_tail;
    unsigned run_count;
    bool gso_off;                  /* DG_SOCKET_NO_GSO, or the kernel refused it */
    bool gro;                      /* UDP_GRO on: buffers may hold several datagrams */
    bool run_queued;
    dg_socket *run_next;           /* the loop's sockets with a run */

    /* sends waiting for a bind or a lookup, in call order */
    struct dg__send_req *sendq_head, *sendq_tail;
    struct dg__deferred sendq_ev;

    dg_close_cb close_cb;
    void *close_data;
    struct dg__deferred close_ev;

    size_t queue_bytes;
    size_t queue_count;
    dg_socket_stats stats;
};

void dg__socket_on_recv(dg_loop *loop, const struct io_uring_cqe *cqe);
void dg__socket_on_send(dg_loop *loop, const struct io_uring_cqe *cqe);
/* Re-arms every socket whose multishot receive ended. */
void dg__sockets_rearm(dg_loop *loop);
/* One operation naming the socket ended; the last one of a closing socket
 * closes its fd and queues the close callback. Inline: every send
 * completion passes here (the slow path is dg__socket_last_op_done). */
void dg__socket_last_op_done(dg_socket *s);
static inline void dg__socket_op_done(dg_socket *s)
{
    if (--s->inflight == 0 && s->state == DG__CLOSING)
        dg__socket_last_op_done(s);
}
/* Starts Node's implicit bind of an unbound socket (any address, port 0);
 * inline for the check every send makes. */
void dg__socket_bind_default(dg_socket *s);
static inline void dg__socket_implicit_bind(dg_socket *s)
{
    if (s->state == DG__UNBOUND)
        dg__socket_bind_default(s);
}
bool dg__socket_is_open(const dg_socket *s);
void dg__socket_emit_error(dg_socket *s, const dg_error *err);

/* send.c */
/* Sends queued behind a bind or lookup leave (or fail) in order. */
void dg__sendq_flush(dg_socket *s);
/* The bind failed or the socket closes: every queued send ends with
 * status, from the loop (never inside the caller), in order. */
void dg__sendq_fail(dg_socket *s, int status);
void dg__send_reqs_free(dg_loop *loop);
/* Hands every socket's pending run to the ring (before each enter). */
void dg__send_runs_flush(dg_loop *loop);
/* Hands one socket's run to the ring (before a close cancels its ops). */
void dg__send_run_flush(dg_socket *s);
void dg__socket_on_send_gso(dg_loop *loop, const struct io_uring_cqe *cqe);

/* ---- Name resolution (implemented in resolver/) -------------------------
 * The socket layer's only door into the resolver. */
typedef void (*dg__resolve_cb)(void *ctx, int status, const struct sockaddr *addr,
                               socklen_t addrlen);
struct dg__resolve_req;
/* Resolves name for family (AF_INET or AF_INET6) with the loop's resolver.
 * cb runs exactly once, from the loop and never inside this call: status 0
 * with the first address (port 0), or a DG_ERR_DNS_* code / negative errno,
 * or -ECANCELED after dg__resolve_cancel(). *out (may be NULL) is a handle
 * valid until cb runs. Returns 0, or a negative code and cb never runs. */
int dg__resolve(dg_loop *loop, const char *name, int family, dg__resolve_cb cb, void *ctx,
                struct dg__resolve_req **out);
/* Cancels a pending resolve: its cb runs from the loop with -ECANCELED. */
void dg__resolve_cancel(struct dg__resolve_req *req);

/* ---- Addresses (engine/address.c) -------------------------------------- */
/* Parses an IP literal of family (AF_INET/AF_INET6) with port into *out.
 * NULL or "" gives `empty_any ? unspecified : loopback`; "localhost" gives
 * loopback. Returns 0 or DG_ERR_INVALID_ADDRESS. */
int dg__parse_address(int family, const char *text, int port, bool empty_any,
                      struct sockaddr_storage *out, socklen_t *outlen);

#endif

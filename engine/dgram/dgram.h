/* Node's socket layer (engine/dgram/): the internal header of its files,
 * never installed. It builds on the core (engine/core/core.h) and reaches
 * the resolver only through dg__resolve() and dg__resolve_cancel().
 *
 * Files:
 *   socket.c       creation, bind (with fd adoption), connect, close, abort
 *                  handles, accessors
 *   recv.c         the receive path: multishot receive, delivery, batches,
 *                  kept buffers, re-arms
 *   recv_decode.c  decoding of one multishot recvmsg buffer (recv_decode.h)
 *   send.c         the send path: checks, the send queue, GSO runs
 *   send_many.c    send-to-many: one payload to many destinations
 *   sockopt.c      socket options, buffer sizes, multicast membership
 *   close_count.c  the datagrams a close discards: the kernel queue's,
 *                  read and counted before the fd closes
 *   lookup.c       name resolution for sockets (bind, connect, send)
 *
 * Names: dg__ is internal but shared between files; everything else in a
 * .c file is static.
 */
#ifndef DGRING_ENGINE_DGRAM_H
#define DGRING_ENGINE_DGRAM_H

#include "engine/core/core.h"
#include "recv_decode.h"
#include "resolver/resolver.h"

/* ---- Kept buffers and batch delivery (dgram/recv.c) ------------------
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
     * messages dg_message_keep() accepts. sock is NULL outside one; msgs
     * and count rest on slot (dg__rx_rest), so a plain delivery sets sock
     * only. */
    dg_socket *sock;
    const dg_message *msgs;
    unsigned count;
    dg_message slot;               /* the message of a plain datagram: its
                                      reserved and flags stay 0 */
    bool kept_any;                 /* a message of this delivery was kept */
    uint64_t kept_mask;            /* which ones (bit = index in msgs) */
    /* The batch being gathered for one socket's on_message_batch. */
    dg_socket *batch_sock;         /* NULL: no batch pending */
    unsigned batch_count;
    unsigned batch_nbids;          /* buffers all of whose datagrams are in */
    size_t batch_bytes;            /* the batch's payload bytes, counted as */
    unsigned batch_truncated;      /* it is gathered, for one stats update */
    unsigned keeps;                /* dg_message_keep()s not yet released,
                                      of every buffer */
    uint16_t batch_bids[DG__BATCH_MAX];
    dg_message batch_msgs[DG__BATCH_MAX];
};

/* What dg_message_keep() accepts between deliveries that use other
 * messages: the slot (while sock says a delivery is in progress). */
static inline void dg__rx_rest(struct dg__rx *rx)
{
    rx->msgs = &rx->slot;
    rx->count = 1;
}

/* Delivers the pending batch (if any) and returns its buffers; the loop
 * calls it before each commit of the buffer ring. */
void dg__rx_batch_flush(dg_loop *loop);
/* Whether the sockets waiting for a re-arm must wait for a release: every
 * buffer of the ring is kept by the user. */
static inline bool dg__rx_dry(const dg_loop_stats *stats, const struct dg__bufring *br)
{
    return stats->rx_kept_buffers >= br->count;
}

/* ---- Socket name resolution (dgram/lookup.c) ---------------------------- */
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

/* The largest UDP payload: 65535 bytes less the UDP header (8) and, for
 * IPv4, the IP header (20); IPv6's payload length leaves its header out. */
#define DG__UDP4_PAYLOAD_MAX 65507u
#define DG__UDP6_PAYLOAD_MAX 65527u
static inline size_t dg__udp_payload_max(dg_socket_type type)
{
    return type == DG_UDP4 ? DG__UDP4_PAYLOAD_MAX : DG__UDP6_PAYLOAD_MAX;
}

/* ---- Sockets (dgram/socket.c, recv.c, send.c, sockopt.c) ------- */
enum dg__socket_state {
    DG__UNBOUND,
    DG__BINDING,  /* resolving, or bind(2) done and 'listening'/error not yet emitted */
    DG__BOUND,
    DG__CLOSING,
    DG__CLOSED,
};

/* The receive's paths (dg_socket.rx_path, recv.c): a plain datagram of an
 * open socket goes straight to on_message or into the batch; everything
 * else, and every socket not open, takes the full path. */
enum dg__rx_path {
    DG__RX_SLOW,
    DG__RX_PLAIN,                  /* on_message, no on_message_batch */
    DG__RX_BATCH,                  /* on_message_batch */
};

enum dg__connect_state {
    DG__DISCONNECTED,
    DG__CONNECTING,
    DG__CONNECTED,
};

/* A send's cold part, allocated only when its destination is a name to
 * resolve (or any text, with the socket's lookup option). */
struct dg__send_slow {
    struct dg__send_req *req;
    struct dg__lookup lookup;
};

/* One send in flight: a slot of the loop's array (dgram.slots), taken from
 * its free list (dgram.free_slots), or a heap slot when every slot is held (zero-copy
 * sends keep theirs past the callback, until the kernel's notification).
 * A send fills only the fields below `msg`; `msg` and `iov` are written
 * only for a sendmsg (kernels without IORING_OP_SEND's address, GSO runs
 * read the head's address and the iovs). */
struct dg__send_req {
    struct dg__send_req *next;     /* the socket's send queue, run or stalled list */
    dg_socket *sock;
    dg_send_cb cb;
    void *cb_data;
    unsigned char *data;           /* the payload: inline_buf, heap or the sbuf's */
    uint32_t len;
    uint32_t namelen;              /* 0: the connected peer, or no address yet */
    uint32_t slot;                 /* index in dgram.slots; DG__SLOT_HEAP if none */
    int fail_status;
    bool resolving;                /* lookup in flight: not ready to leave */
    bool dns_failed;               /* fail_status came from the lookup */
    bool connected;                /* no destination: the connected peer */
    bool while_connecting;         /* made while a connect was in progress:
                                      waits for its outcome (Node: EISCONN
                                      if it connected) */
    bool zerocopy;                 /* goes out with IORING_OP_SEND_ZC (never
                                      in a GSO run) */
    bool zc_notif_pending;         /* result seen, buffer still the kernel's */
    bool cold;                     /* heap, sbuf or slow set, or a heap slot:
                                      the release's slow path */
    unsigned char *heap;           /* payload when larger than inline */
    struct dg__sbuf *sbuf;         /* payload in an engine send buffer (no copy) */
    struct dg__send_slow *slow;    /* host-name destinations */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;
    struct msghdr msg;
    struct iovec iov;
    unsigned char inline_buf[1536];
};
#define DG__SLOT_HEAP UINT32_MAX

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
    struct dg__list sockets;       /* registered, open sockets (abort_link),
                                      the newest first */
};

struct dg_socket {
    dg_loop *loop;
    struct dg__list loop_link;     /* in the loop's sockets (fd ownership checks) */
    int fd;
    dg_socket_type type;
    enum dg__socket_state state;   /* set with dg__socket_set_state */
    uint8_t rx_path;               /* enum dg__rx_path: which fast path of
                                      the receive may take its datagrams */
    enum dg__connect_state connect_state;
    dg_socket_options options;
    dg_socket_handlers handlers;
    void *data;
    bool ref;
    bool counted;
    bool recv_armed;
    bool rearm_queued;
    bool cancel_pending;           /* closing: the cancel SQE still to be queued */
    bool fd_bound;                 /* bind(2) succeeded: receiving, options apply */
    bool bind_tried;               /* bind(2) was called, even if it failed */
    bool adopted;                  /* the fd came from bind({fd}): it may be
                                      shared, so its close reads nothing */
    unsigned inflight;             /* ring ops, lookups and queued sends naming this socket */
    int fast_send;                 /* the family dg_socket_send_to may send to
                                      at once (-1: none): see
                                      dg__socket_fast_send_update */
    dg_socket *rearm_next;
    struct msghdr rmsg;            /* template for the multishot recvmsg */
    struct dg__last_dest {         /* dg_socket_send's last literal, parsed */
        char text[48];             /* as given (no "%scope"); */
        int port;                  /* 0: nothing cached */
        socklen_t len;
        struct sockaddr_in6 sa;    /* a sockaddr_in on udp4 */
    } last_dest;

    dg_abort *abort;               /* registered with it: in its sockets */
    struct dg__list abort_link;

    /* bind */
    int bind_status;
    dg_error bind_error;           /* the record for a failed bind */
    dg_bind_cb bind_cb;
    void *bind_data;
    struct dg__lookup bind_lookup;
    struct dg__deferred bind_ev;

    /* connect */
    bool connect_resolved;
    dg_connect_cb connect_cb;
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
    /* sends that found no SQE (back-pressure), older than the run and the
     * queue above; retried from sendq_ev */
    struct dg__send_req *stalled_head, *stalled_tail;

    dg_close_cb close_cb;
    void *close_data;
    struct dg__deferred close_ev;

    size_t queue_bytes;
    size_t queue_count;
    dg_socket_stats stats;
    uint32_t drops_seen;           /* the kernel's drop counter as last folded
                                      into stats.rx_kernel_drops */
};

/* Folds a reading of the socket's kernel drop counter (sk_drops: the
 * SO_RXQ_OVFL value a datagram carries, or SO_MEMINFO's at stats and close
 * time) into stats.rx_kernel_drops. The counter is 32 bits and wraps, and
 * readings come out of order (a datagram queued before an SO_MEMINFO read
 * carries an older count), so only a step forward modulo 2^32 counts.
 * Inline: the receive path calls it for each buffer that carries a count. */
static inline uint32_t dg__drops_ahead(uint32_t seen, uint32_t raw)
{
    uint32_t ahead = raw - seen;
    return ahead < 0x80000000u ? ahead : 0;
}
static inline void dg__socket_note_drops(dg_socket *s, uint32_t raw)
{
    uint32_t ahead = dg__drops_ahead(s->drops_seen, raw);
    s->stats.rx_kernel_drops += ahead;
    s->drops_seen += ahead;
}

/* The socket's kernel drop counter now (SO_MEMINFO, Linux 4.12); false
 * where the kernel lacks it. socket.c. */
bool dg__socket_read_drops(int fd, uint32_t *raw);

/* close_count.c */
/* Just before a socket's fd closes: folds in the kernel's drops and counts
 * in stats.rx_discarded_at_close the datagrams still queued on the fd
 * (read and dropped, none delivered). Not for an adopted fd (may be shared). */
void dg__socket_count_at_close(dg_socket *s);

/* recv.c */
/* Handles the receive completions at the start of cqes[0, n), the first
 * of which is one (kind DG__OP_RECV), up to the first of another kind;
 * returns how many. The loop's walk calls it for each run of them. */
unsigned dg__recv_completions(dg_loop *loop, const struct io_uring_cqe *cqes, unsigned n);
/* Arms the socket's multishot receive (queued for a re-arm if the ring
 * refuses an SQE). */
void dg__recv_arm(dg_socket *s);
/* Queues the socket for the next turn's re-arm step, which also retries a
 * closing socket's cancel. */
void dg__recv_queue_rearm(dg_socket *s);
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
/* Whether a send may go to the ring now: the socket is bound and
 * 'listening' was emitted (Node sends nothing before it), and no connect
 * is in progress (a send made meanwhile waits for its outcome). Inline:
 * every send asks. */
static inline bool dg__socket_sends_leave(const dg_socket *s)
{
    return s->state == DG__BOUND && s->connect_state != DG__CONNECTING;
}
/* The send fast path's flag: a socket address of the socket's family
 * leaves for the ring at once while the socket is bound ('listening'
 * emitted), neither connected nor connecting, and no send waits in its
 * queue. Called wherever one of those changes. */
static inline void dg__socket_fast_send_update(dg_socket *s)
{
    bool fast = s->state == DG__BOUND && s->connect_state == DG__DISCONNECTED && !s->sendq_head;
    s->fast_send = !fast ? -1 : s->type == DG_UDP4 ? AF_INET : AF_INET6;
}
/* Bound or binding, not closing: inline, the receive path asks per datagram. */
static inline bool dg__socket_is_open(const dg_socket *s)
{
    return s->state == DG__BINDING || s->state == DG__BOUND;
}
/* Every change of state goes through here, keeping rx_path (the
 * handlers are fixed when the socket is created) and fast_send. */
static inline void dg__socket_set_state(dg_socket *s, enum dg__socket_state state)
{
    s->state = state;
    if (!dg__socket_is_open(s))
        s->rx_path = DG__RX_SLOW;
    else if (s->handlers.on_message_batch)
        s->rx_path = DG__RX_BATCH;
    else
        s->rx_path = s->handlers.on_message ? DG__RX_PLAIN : DG__RX_SLOW;
    dg__socket_fast_send_update(s);
}
void dg__socket_emit_error(dg_socket *s, const dg_error *err);
/* Queues the cancel of every ring operation on a closing socket's fd
 * (retried from the re-arm step if the ring refuses an SQE). */
void dg__socket_close_cancel(dg_socket *s);

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

/* send_many.c */
void dg__socket_on_send_many(dg_loop *loop, const struct io_uring_cqe *cqe);

/* ---- The loop ------------------------------------------------------------
 * The socket layer's per-loop state, and the loop itself: its core first,
 * so core code reaches the core from a dg_loop * with a cast. */
struct dg__dgram {
    struct dg__rx rx;              /* kept buffers, batch delivery */
    unsigned pending_sends;        /* sends whose callback has not run (a
                                      fan-out counts one) */
    size_t fanout_destinations;    /* destinations of fan-outs in flight
                                      (max_fanout_destinations) */
    unsigned zc_notifs;            /* zero-copy sends waiting for the kernel's
                                      notification: they keep the loop alive
                                      and dg_loop_close() busy */
    struct dg_socket *rearm_head;  /* sockets whose multishot must be re-armed */
    struct dg__list sockets;       /* every socket not yet freed (loop_link) */
    struct dg_socket *run_head;    /* sockets with a GSO run to hand to the ring */
    struct dg__gso_req *free_gso;
    /* send slots: max_pending_sends of them, allocated at the first send
     * (one malloc: pages no send reaches stay untouched); free_slots is
     * the list of slots given back, linked through ->next; slots from
     * fresh_slots on were never taken */
    struct dg__send_req *slots;
    struct dg__send_req *free_slots;
    uint32_t fresh_slots;
};

struct dg_loop {
    struct dg__core core;          /* first: see dg__core_of() */
    struct dg__dgram dgram;
    void *data;
    dg_loop_error_cb on_error;     /* dg_loop_set_error_handler(), or NULL */
    void *on_error_data;
};
_Static_assert(offsetof(struct dg_loop, core) == 0, "the core starts the loop");

#endif

/* dgring's core: the ring services every other layer builds on, naming no
 * socket and no DNS. The only internal header of engine/core/ that other
 * folders include (docs/design.md, "Layers").
 *
 * Names: dg__ is internal but shared between files; everything else in a
 * .c file is static. Core functions take the loop's core (struct
 * dg__core); a public call that gets a dg_loop * reaches it with
 * dg__core_of(), which is a cast: the core is the loop's first member.
 *
 * Files:
 *   alloc.c    the replaceable allocator and the dg__ wrappers
 *   error.c    error names and sentences; dg_version
 *   address.c  IP literal parsing and formatting
 *   ring.c     the ring: setup, feature probe, SQEs, submit and wait, the
 *              CQ; the one seam between io_uring and the epoll backend
 *   epoll.c    the epoll backend, which emulates the ring's queues (epoll.h)
 *   bufring.c  the provided buffer ring
 *   sendbuf.c  the registered send buffer pool (dg_send_buffer_get)
 *   timer.c    timers: a heap and one ring timeout
 *   defer.c    the deferred-work queue
 *   handle.c   keep-alive and close bookkeeping of timers and signals
 *   wake.c     wake-ups, stop, the embedding fd and its pokes
 *   post.c     dg_loop_post: work handed over from other threads
 *   signal.c   dg_signal: a signalfd watched by a ring poll
 *   valgrind.h memcheck annotations for buffers the kernel reads and writes
 */
#ifndef DGRING_ENGINE_CORE_H
#define DGRING_ENGINE_CORE_H

#include <liburing.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dgring.h"

/* ---- Memory (core/alloc.c) ----------------------------------------------
 * Every allocation of engine/ and resolver/ goes through these, so
 * dg_replace_allocator() sees them all. dg__realloc(p, 0) frees p and
 * returns NULL. */
void *dg__malloc(size_t size);
void *dg__calloc(size_t count, size_t size);
void *dg__realloc(void *ptr, size_t size);
void dg__free(void *ptr);
char *dg__strdup(const char *s);
/* An object that owns library memory (a loop, group or abort handle) is
 * created (hold, before its first allocation) or gone (release, after its
 * last free): dg_replace_allocator() refuses while any is held. */
void dg__owner_hold(void);
void dg__owner_release(void);

/* ---- Intrusive lists ------------------------------------------------------
 * A circular doubly linked list whose head is a node of its own (set up
 * with dg__list_init), so inserting and removing need no special case and
 * no walk. An object joins a list through a struct dg__list member and is
 * found from it with DG__CONTAINER. A member that is on no list has NULL
 * links, as in zeroed memory. */
struct dg__list {
    struct dg__list *prev, *next;
};

#define DG__CONTAINER(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* Each node of head, first to last; the body must not remove pos. */
#define DG__LIST_FOR_EACH(pos, head) \
    for (struct dg__list *pos = (head)->next; pos != (head); pos = pos->next)

static inline void dg__list_init(struct dg__list *head)
{
    head->prev = head->next = head;
}

static inline bool dg__list_empty(const struct dg__list *head)
{
    return head->next == head;
}

static inline void dg__list_insert_head(struct dg__list *head, struct dg__list *node)
{
    node->prev = head;
    node->next = head->next;
    head->next->prev = node;
    head->next = node;
}

static inline void dg__list_insert_tail(struct dg__list *head, struct dg__list *node)
{
    node->next = head;
    node->prev = head->prev;
    head->prev->next = node;
    head->prev = node;
}

/* Takes node off its list (its links are then NULL). */
static inline void dg__list_remove(struct dg__list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}

/* Whether a member is on a list (not a list head). */
static inline bool dg__list_linked(const struct dg__list *node)
{
    return node->next != NULL;
}

/* Moves every node of from, in order, to the head to; from is left empty. */
static inline void dg__list_move(struct dg__list *to, struct dg__list *from)
{
    if (dg__list_empty(from)) {
        dg__list_init(to);
        return;
    }
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    dg__list_init(from);
}

/* ---- The clock ------------------------------------------------------------
 * CLOCK_MONOTONIC, the clock of every deadline: the loop clock, the ring's
 * absolute timeouts, the epoll backend's timerfd and the resolver's
 * checks. Read now, not the loop's cached time. */
static inline struct timespec dg__clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

static inline uint64_t dg__clock_ns(void)
{
    struct timespec ts = dg__clock_now();
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dg__clock_us(void)
{
    struct timespec ts = dg__clock_now();
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t dg__clock_ms(void)
{
    struct timespec ts = dg__clock_now();
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- Completion dispatch ----------------------------------------------
 * user_data of every SQE is a pointer to the object the completion belongs
 * to, with the completion kind in the low four bits: objects come from
 * the allocator, which returns memory aligned for any type (16 bytes on
 * the 64-bit targets dgring builds for), and the few that live inside
 * another object are declared _Alignas(DG__UD_ALIGN). The kinds are
 * numbers only: their handlers live in the layers, and one static table
 * in engine/loop.c maps kinds to handlers. */
enum dg__op_kind {
    DG__OP_IGNORE = 0,  /* cancel and timeout-update results: nothing to do */
    DG__OP_RECV = 1,    /* a socket's multishot recvmsg */
    DG__OP_SEND = 2,    /* one datagram's send or sendmsg */
    DG__OP_TIMEOUT = 3, /* a single ring timeout (struct dg__timeout) */
    DG__OP_WAKE = 4,    /* read of the loop's wake-up eventfd */
    DG__OP_POLL = 5,    /* a one-shot poll (the resolver's c-ares sockets) */
    DG__OP_SEND_GSO = 6, /* one sendmsg carrying a run of datagrams (UDP_SEGMENT) */
    DG__OP_POST = 7,    /* a dg_loop_post() arriving via IORING_OP_MSG_RING, or
                           the sender's own MSG_RING result (tagged node) */
    DG__OP_SIGNAL = 8,  /* the poll of the loop's signalfd (struct dg__signals) */
    DG__OP_SEND_MANY = 9, /* one destination of a fan-out (struct dg__send_many) */
    DG__OP_KINDS = 16,
};

#define DG__UD_ALIGN 16
_Static_assert(_Alignof(max_align_t) >= DG__UD_ALIGN, "allocations keep the kind's 4 bits free");
#define DG__UD(ptr, kind) ((uint64_t)(uintptr_t)(ptr) | (uint64_t)(kind))
#define DG__UD_KIND(ud) ((unsigned)((ud) & (DG__UD_ALIGN - 1u)))
#define DG__UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)(DG__UD_ALIGN - 1u)))

/* ---- Deferred callbacks (core/defer.c) ---------------------------------
 * Work that must run from the loop but not inside the call that caused it
 * (listening events, bind failures, close callbacks, early send failures).
 * Intrusive, FIFO; the node lives inside the object it belongs to. */
struct dg__deferred {
    struct dg__list link;          /* in the core's deferred queue: queued */
    void (*run)(struct dg__deferred *node);
};

/* ---- Handles (core/handle.c) -------------------------------------------
 * The bookkeeping timers and signals share. A handle counts in
 * core->handle_count from dg__handle_init until dg__handle_closed, and in
 * core->alive_handles while it is active, referenced and not closing. */
struct dg__handle {
    struct dg__core *core;
    bool ref;
    bool counted;                  /* contributes to core->alive_handles */
    bool closing;
    struct dg__deferred close_ev;
};
/* Referenced, counted in handle_count. */
void dg__handle_init(struct dg__handle *h, struct dg__core *c);
/* Makes alive_handles match: active is the owner's own state. */
void dg__handle_update_alive(struct dg__handle *h, bool active);
void dg__handle_set_ref(struct dg__handle *h, bool ref, bool active);
/* Marks the handle closing and queues finish, which runs from the loop:
 * it calls the owner's close callback, then dg__handle_closed, then frees
 * the owner. The owner is inactive from here on. */
void dg__handle_close(struct dg__handle *h, void (*finish)(struct dg__deferred *));
void dg__handle_closed(struct dg__handle *h);

/* ---- Provided buffer ring (core/bufring.c) ----------------------------- */
struct dg__bufring {
    struct io_uring_buf_ring *ring; /* mmap'd descriptor ring shared with the kernel */
    size_t ring_bytes;
    unsigned char *mem;             /* count * buf_size bytes of buffers */
    size_t mem_bytes;
    unsigned count;                 /* power of two */
    unsigned mask;
    unsigned stride;                /* distance between buffers, 64-byte multiple */
    unsigned buf_size;              /* bytes the kernel may fill per buffer */
    unsigned tail;                  /* descriptor the next recycled buffer fills
                                       (mod count) */
    unsigned published;             /* the tail the kernel was last given:
                                       tail - published recycled, not yet
                                       published */
    uint16_t group;
    bool registered;
};

/* count buffers of buf_size bytes, each starting on a 64-byte boundary. */
/* ring NULL: not registered with a kernel ring (the epoll backend reads
 * the descriptors itself). */
int dg__bufring_init(struct io_uring *ring, struct dg__bufring *br, unsigned count,
                     unsigned buf_size, uint16_t group);
void dg__bufring_destroy(struct io_uring *ring, struct dg__bufring *br);
static inline unsigned char *dg__bufring_addr(const struct dg__bufring *br, unsigned bid)
{
    return br->mem + (size_t)bid * br->stride;
}
/* Queues buffer bid, whose address (dg__bufring_addr) the caller has at
 * hand, for return: one descriptor written, visible to the kernel at the
 * next commit. Inline: every received buffer comes back through here. */
static inline void dg__bufring_put(struct dg__bufring *br, unsigned bid, unsigned char *addr)
{
    struct io_uring_buf *d = &br->ring->bufs[br->tail & br->mask];
    /* Every descriptor of buffer bid is the same (its address and size
     * never change; dg__bufring_init wrote them all) and the kernel writes
     * none (not an incremental ring): a slot that holds bid already, the
     * usual case when buffers come back in the order they were taken (one
     * slot per buffer), needs no store. */
    if (d->bid != (uint16_t)bid) {
        d->addr = (uint64_t)(uintptr_t)addr;
        d->len = br->buf_size;
        d->bid = (uint16_t)bid;
    }
    br->tail++;
}
static inline void dg__bufring_recycle(struct dg__bufring *br, unsigned bid)
{
    dg__bufring_put(br, bid, dg__bufring_addr(br, bid));
}
/* Publishes every recycled buffer with one tail store (the check for none
 * is inline: each turn's prepare step commits, mostly with nothing). */
void dg__bufring_publish(struct dg__bufring *br);
static inline void dg__bufring_commit(struct dg__bufring *br)
{
    if (br->tail != br->published)
        dg__bufring_publish(br);
}

/* ---- The single ring timeout (core/timer.c) ------------------------------
 * One absolute IORING_OP_TIMEOUT on CLOCK_MONOTONIC (nanoseconds, as the
 * ring takes them), only ever moved
 * earlier, in place, with IORING_TIMEOUT_UPDATE (5.11); a later deadline
 * waits for the armed timeout to fire, and its owner looks again then, so
 * steady ticking costs no removals. The loop's timers own one, the resolver
 * another. Its completion has kind DG__OP_TIMEOUT and the struct itself as
 * user_data (-ETIME when it fired, -ECANCELED when the loop closes). */
struct dg__timeout {
    _Alignas(DG__UD_ALIGN) struct __kernel_timespec ts; /* read by the kernel
                                                            while armed */
    uint64_t deadline;             /* of the armed timeout, ns */
    bool armed;                    /* in flight: its completion is due */
};
_Static_assert(_Alignof(struct dg__timeout) >= DG__UD_ALIGN, "user_data keeps the kind free");

struct dg__core;
/* Makes t fire no later than deadline (CLOCK_MONOTONIC ns): arms it, or
 * moves an armed one earlier. Returns false if no SQE could be had (the
 * owner tries again next turn). Inline for the common case, an armed
 * timeout that is early enough (each turn's prepare step asks). */
bool dg__timeout_set(struct dg__core *c, struct dg__timeout *t, uint64_t deadline);
static inline bool dg__timeout_arm(struct dg__core *c, struct dg__timeout *t, uint64_t deadline)
{
    if (t->armed && deadline >= t->deadline)
        return true; /* fires earlier; the owner looks again then */
    return dg__timeout_set(c, t, deadline);
}
/* Its completion arrived: the owner's handler calls this. */
static inline void dg__timeout_ended(struct dg__timeout *t)
{
    t->armed = false;
}

/* ---- Timers (core/timer.c) --------------------------------------------- */

struct dg_timer {
    struct dg__handle handle;
    dg_timer_cb cb;
    void *data;
    uint64_t deadline;  /* loop clock, µs */
    uint64_t repeat;    /* µs; 0: one-shot */
    uint64_t order;     /* start sequence: equal deadlines run in start order */
    unsigned heap_index;
    bool active;
    dg_timer_close_cb close_cb;
    void *close_data;
};

struct dg__timer_heap {
    dg_timer **items;
    unsigned count;
    unsigned cap;
};

/* ---- Engine send buffers (core/sendbuf.c) ---------------------------------
 * dg_send_buffer_get: a pool per loop, mapped and, on io_uring, registered
 * with the ring at the first take. A buffer is the user's between take and
 * send (or put), then the engine's until the send completes (zero-copy:
 * until the kernel's notification). */
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
void dg__sbuf_pool_destroy(struct dg__core *c);

/* Back to the pool (inline: every send from an engine buffer ends here). */
static inline void dg__sbuf_free(struct dg__sbuf_pool *p, struct dg__sbuf *b)
{
    b->state = DG__SBUF_FREE;
    b->next_free = p->free;
    p->free = b;
}

/* The pool entry behind a user's pointer, found without dereferencing a
 * pointer that is not one of the pool's buffers; NULL if it is not, or if
 * the buffer is not the user's to give. */
static inline struct dg__sbuf *dg__sbuf_owned(const struct dg__sbuf_pool *p, dg_send_buffer *buf)
{
    uintptr_t at = (uintptr_t)buf, base = (uintptr_t)p->bufs;
    if (!buf || !p->bufs || at < base || at >= base + (uintptr_t)p->count * sizeof(*p->bufs) ||
        (at - base) % sizeof(*p->bufs) != 0)
        return NULL;
    struct dg__sbuf *b = &p->bufs[(at - base) / sizeof(*p->bufs)];
    return b->state == DG__SBUF_USER ? b : NULL;
}

/* ---- Cross-loop posts (core/post.c) ------------------------------------- */
struct dg__post {
    struct dg__list link;          /* in the target's locked queue */
    struct dg__core *target;
    dg_post_cb cb;
    void *arg;
    atomic_int refs;               /* ring road: one per end still to complete */
};

/* ---- The loop's core ----------------------------------------------------- */
struct dg__epoll;

/* Work a layer queued for the next turn's prepare step (the step before
 * each io_uring_enter, engine/loop.c), so that a turn with none makes one
 * test instead of a call per step. The layer sets its bit where it queues
 * the work; the prepare step clears the bits before it runs the steps
 * (a step that queues again sets its bit again). */
enum dg__prepare_bit {
    DG__PREPARE_SEND_RUNS = 1u << 0, /* sockets with a GSO run to hand to the ring */
    DG__PREPARE_REARMS = 1u << 1,    /* sockets to re-arm, or a close's cancel to queue */
};

struct dg__core {
    struct io_uring ring;          /* unused when epoll is set */
    struct dg__epoll *epoll;       /* the epoll backend, NULL on io_uring */
    dg_loop_stats stats;
    dg_loop_caps caps;
    dg_loop_options options;
    struct dg__bufring bufring;
    struct dg__sbuf_pool sbufs;

    /* keep-alive accounting (dg_loop_alive adds the socket layer's) */
    unsigned alive_handles;        /* referenced active sockets and timers */
    unsigned closing_handles;
    unsigned handle_count;         /* sockets and timers not yet freed */
    unsigned pending_requests;     /* other requests that keep the loop alive
                                      (lookups) */

    struct dg__list deferred;      /* struct dg__deferred, FIFO */

    struct dg__timer_heap timers;
    uint64_t timer_order;
    struct dg__timeout timer_timeout; /* for the earliest timer */

    uint64_t now_us;               /* the loop clock (dg__loop_now_us) */
    bool now_stale;                /* now_us predates this turn: read the
                                      clock at its first use */
    unsigned prepare;              /* DG__PREPARE_* bits: queued work for
                                      the next turn's prepare step */
    bool enter_skip;               /* a non-blocking enter with no SQE may
                                      be skipped (ring.c, taskrun_visible) */
    int enter_fd;                  /* io_uring_enter's fd: the registered
                                      index, or the ring's fd (ring.c) */
    unsigned enter_flags;          /* IORING_ENTER_REGISTERED_RING or 0 */
    int wake_fd;                   /* eventfd read by a ring op: dg_loop_wake */
    uint64_t wake_buf;
    bool wake_armed;
    int notify_fd;                 /* eventfd registered with the ring: dg_loop_fd */
    bool poked;                    /* notify_fd written for work queued outside run */
    unsigned sq_free;              /* SQEs free at the last look at the kernel's
                                      head, less those taken since (io_uring
                                      only; dg__get_sqe) */
    bool in_run;
    unsigned last_recv_completions; /* receive completions in the last turn:
                                       32+ make the next wait a batched one */
    /* Batched waits adapt (ring.c, batch_wait_outcome): */
    unsigned batch_pause_turns;    /* busy turns each run waits plainly (0 until
                                      a batched wait timed out) */
    unsigned batch_pause_left;     /* of them, left in this run */
    bool batch_filled;             /* a batched wait filled in this run */
    bool closing;                  /* inside dg_loop_close: no new handles */
    atomic_bool stop;
    /* dg_loop_post (core/post.c) */
    pthread_mutex_t post_lock;
    struct dg__list posts;         /* struct dg__post from non-loop threads */
    atomic_bool posts_queued;
    atomic_uint posts_pending;     /* posted, not yet run: keeps the loop alive */
    void *resolver;                /* resolver/ state (opaque here), NULL
                                      until first used */
    struct dg__signals *signals;   /* dg_signal (core/signal.c), NULL until
                                      the first dg_signal_new */
};

/* The core of a loop, and back: struct dg_loop (engine/dgram/dgram.h)
 * starts with its core, so both are casts. */
static inline struct dg__core *dg__core_of(dg_loop *loop)
{
    return (struct dg__core *)(void *)loop;
}
static inline const struct dg__core *dg__core_of_const(const dg_loop *loop)
{
    return (const struct dg__core *)(const void *)loop;
}
static inline dg_loop *dg__loop_of(struct dg__core *c)
{
    return (dg_loop *)(void *)c;
}

/* ---- The ring (core/ring.c) --------------------------------------------- */
/* Opens the backend the options ask for (io_uring, falling back to epoll
 * where allowed) and the provided buffer ring of the given buffer size. */
int dg__ring_open(struct dg__core *c, unsigned buf_size);
/* Closes what dg__ring_open opened (after the loop's own operations ended). */
void dg__ring_close(struct dg__core *c);
/* Submits queued SQEs (io_uring or emulated); returns count or -errno. */
int dg__submit(struct dg__core *c);
/* dg__get_sqe's slow path: the free count it keeps ran out (it is read
 * again from the kernel's head, and the queue flushed if it is full), or
 * the backend is epoll (whose count is always 0). */
struct io_uring_sqe *dg__get_sqe_refill(struct dg__core *c, int *err);
/* SQEs queued and not yet submitted. */
unsigned dg__ring_sq_ready(const struct dg__core *c);
/* Ends every request on fd before it returns, so the caller may close fd
 * at once and the kernel lets go of what the fd holds (a socket's port):
 * the SQEs queued so far are submitted first (they name the fd's number,
 * which the next fd opened may reuse), then the fd's requests are
 * cancelled synchronously (io_uring: IORING_REGISTER_SYNC_CANCEL, 6.0;
 * epoll: in the emulator). Their completions (-ECANCELED, or the result of
 * a request that finished first) still arrive through the CQ afterwards,
 * exactly once each; they may be posted while the loop walks the CQ.
 * Returns 0, or a negative code when the ring cannot do it (no sync cancel
 * in the kernel, the submit failed, or the cancel timed out): then the
 * caller cancels asynchronously and closes fd after the last completion. */
int dg__ring_cancel_fd_sync(struct dg__core *c, int fd);
/* Submits this turn's SQEs and, with block, waits for a completion (after a
 * busy turn, for a batch of them or batch_wait_us); one io_uring_enter.
 * Returns 0 or a negative errno the loop cannot go on after. */
int dg__ring_enter(struct dg__core *c, bool block);
/* The CQ's functions for the epoll backend (ring.c); the inline ones below
 * read the kernel's CQ themselves, as a turn looks at it at least once. */
unsigned dg__ring_cq_ready_emulated(struct dg__core *c);
unsigned dg__ring_cq_window_emulated(struct dg__core *c, const struct io_uring_cqe **out,
                                     unsigned want);
void dg__ring_advance_emulated(struct dg__core *c, unsigned n);
/* Completions waiting in the CQ (an overflow is counted in the stats). */
static inline unsigned dg__ring_cq_ready(struct dg__core *c)
{
    if (c->epoll)
        return dg__ring_cq_ready_emulated(c);
    if (IO_URING_READ_ONCE(*c->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
        c->stats.cq_overflows++;
    return io_uring_smp_load_acquire(c->ring.cq.ktail) - *c->ring.cq.khead;
}
/* Up to want completions (want at most dg__ring_cq_ready's count), oldest
 * first, as one array at *out, valid (and unmoved, whatever completions
 * arrive meanwhile) until dg__ring_advance consumes them. Fewer when the
 * kernel's CQ wraps: the caller asks again. The kernel's CQEs are read
 * where they lie, between its head (ours to move) and its tail: it writes
 * past the tail only. The ring is never set up with IORING_SETUP_CQE32. */
static inline unsigned dg__ring_cq_window(struct dg__core *c, const struct io_uring_cqe **out,
                                          unsigned want)
{
    if (c->epoll)
        return dg__ring_cq_window_emulated(c, out, want);
    const struct io_uring_cq *cq = &c->ring.cq;
    unsigned at = *cq->khead & cq->ring_mask;
    unsigned n = cq->ring_entries - at; /* up to the end of the array */
    *out = &cq->cqes[at];
    return n < want ? n : want;
}
static inline void dg__ring_advance(struct dg__core *c, unsigned n)
{
    if (c->epoll)
        dg__ring_advance_emulated(c, n);
    else
        io_uring_smp_store_release(c->ring.cq.khead, *c->ring.cq.khead + n);
}
/* Completions waiting that no fd signals (the epoll backend makes them in
 * user space while submitting): an embedding loop must be poked for them. */
unsigned dg__ring_cq_unsignalled(const struct dg__core *c);
/* Makes eventfd fd readable on every completion (dg_loop_fd). */
int dg__ring_attach_notify(struct dg__core *c, int fd);
/* The fd an embedding event loop polls, once the eventfd is attached. */
int dg__ring_embed_fd(const struct dg__core *c);
/* Registers the send buffer pool as fixed buffers (index 0); false where
 * that is not possible, which only rules out zero-copy sends. */
bool dg__ring_register_buffers(struct dg__core *c, void *mem, size_t bytes);
/* The fd another loop's IORING_OP_MSG_RING reaches this one by; -1 when
 * this loop cannot receive one (the epoll backend). */
int dg__ring_msg_fd(const struct dg__core *c);
/* "io_uring" or "epoll" (dg_loop_backend). */
const char *dg__ring_backend_name(const struct dg__core *c);
/* The loop's statistics, with the kernel's count of dropped completions. */
void dg__ring_get_stats(const struct dg__core *c, dg_loop_stats *out);

/* ---- Timers (core/timer.c) ---------------------------------------------- */
/* Runs the timers due now (started before this call); returns whether any
 * ran. The no-timer check is inline, as every turn makes it twice. */
bool dg__timers_run_heap(struct dg__core *c);
static inline bool dg__timers_run_due(struct dg__core *c)
{
    return c->timers.count > 0 && dg__timers_run_heap(c);
}
/* Makes the ring's timeout match the earliest deadline (moved only
 * earlier); nothing, not even a call, when no timer is active. */
void dg__timers_arm_heap(struct dg__core *c);
static inline void dg__timers_arm(struct dg__core *c)
{
    if (c->timers.count > 0)
        dg__timers_arm_heap(c);
}
/* The timers' ring timeout ended (due timers run after the completions). */
void dg__timer_on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe);
/* µs until the earliest deadline (0: due now), -1 if no timer is active. */
int64_t dg__timers_next_us(const struct dg__core *c);
/* Reads the loop clock into c->now_us. */
static inline void dg__loop_update_time(struct dg__core *c)
{
    c->now_us = dg__clock_us();
    c->now_stale = false;
}
/* The loop clock at a turn's start and after its completions: read now
 * if a timer needs it, else at its first use in the turn
 * (dg__loop_now_us), so a turn with no timer and no reader makes no
 * clock call. Invariant: with a timer active now_us is current (starting
 * a timer reads the clock through dg__loop_now_us). */
static inline void dg__loop_turn_time(struct dg__core *c)
{
    if (c->timers.count > 0)
        dg__loop_update_time(c);
    else
        c->now_stale = true;
}
/* The loop clock of this turn: the same value for every reader until the
 * next turn or dg_loop_update_time(). */
static inline uint64_t dg__loop_now_us(struct dg__core *c)
{
    if (c->now_stale)
        dg__loop_update_time(c);
    return c->now_us;
}

/* ---- Deferred work (core/defer.c) ----------------------------------------- */
void dg__defer(struct dg__core *c, struct dg__deferred *node,
               void (*run)(struct dg__deferred *));
/* Runs what was queued before this call; returns whether anything ran.
 * The empty check is inline: every turn makes it twice. */
bool dg__deferred_run_queued(struct dg__core *c);
static inline bool dg__deferred_run(struct dg__core *c)
{
    return !dg__list_empty(&c->deferred) && dg__deferred_run_queued(c);
}

/* ---- Wake-ups and the embedding fd (core/wake.c) ---------------------------- */
/* The wake-up eventfd and its ring read. */
int dg__wake_open(struct dg__core *c);
void dg__wake_close(struct dg__core *c);
/* Re-arms the wake-up read if it ended (each turn's prepare step). */
void dg__wake_arm(struct dg__core *c);
static inline void dg__wake_prepare(struct dg__core *c)
{
    if (!c->wake_armed)
        dg__wake_arm(c);
}
void dg__wake_on_completion(dg_loop *loop, const struct io_uring_cqe *cqe);
/* Reads the embedding fd's pokes at the start of a turn (if there is an
 * embedding fd: the check is inline, every turn makes it). */
void dg__wake_read_notify(struct dg__core *c);
static inline void dg__wake_drain_notify(struct dg__core *c)
{
    if (c->notify_fd >= 0)
        dg__wake_read_notify(c);
}
/* Makes dg_loop_fd() readable for work queued outside dg_loop_run(); the
 * test for "inside it, or no fd, or poked already" is inline, as every SQE
 * makes it. */
void dg__loop_poke_fd(struct dg__core *c);
static inline void dg__loop_poke(struct dg__core *c)
{
    if (!c->in_run && c->notify_fd >= 0 && !c->poked)
        dg__loop_poke_fd(c);
}

/* An SQE, flushing the submission queue to the kernel if it is full.
 * NULL only if the kernel refuses the flush, with *err set: -EBUSY when it
 * refused for now (EBUSY or EAGAIN: completions to reap first), which is
 * back-pressure (try again after the next submit; the send path holds its
 * requests back, the others retry next turn); any other value is an error.
 * Inline: the next SQE is taken from a count of free ones the core keeps,
 * without liburing's reload of the kernel's head and its SQE128 and SQPOLL
 * tests (the ring never has either); every SQE the loop takes after setup
 * must come from here, or the count would be wrong. */
static inline struct io_uring_sqe *dg__take_sqe(struct dg__core *c)
{
    c->sq_free--; /* the caller saw it non-zero */
    struct io_uring_sq *sq = &c->ring.sq;
    return &sq->sqes[sq->sqe_tail++ & sq->ring_mask];
}
/* dg__get_sqe for a caller that made the poke itself (once for many). */
static inline struct io_uring_sqe *dg__get_sqe_poked(struct dg__core *c, int *err)
{
    if (c->sq_free == 0)
        return dg__get_sqe_refill(c, err);
    return dg__take_sqe(c);
}
static inline struct io_uring_sqe *dg__get_sqe(struct dg__core *c, int *err)
{
    dg__loop_poke(c); /* an embedding loop must come back to submit it */
    return dg__get_sqe_poked(c, err);
}

/* An IORING_OP_SEND (5.19: the address in the SQE) of len bytes at buf to
 * the socket address at addr, addrlen bytes, written in place: the fields
 * liburing's io_uring_prep_send and the address would set, the zeros as
 * constants. */
static inline void dg__sqe_send_to(struct io_uring_sqe *sqe, int fd, const void *buf,
                                   uint32_t len, const void *addr, uint16_t addrlen,
                                   uint64_t user_data)
{
    sqe->opcode = IORING_OP_SEND;
    sqe->flags = 0;
    sqe->ioprio = 0;
    sqe->fd = fd;
    sqe->addr2 = (uint64_t)(uintptr_t)addr;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = len;
    sqe->msg_flags = 0;
    sqe->user_data = user_data;
    sqe->buf_index = 0;
    sqe->personality = 0;
    sqe->addr_len = addrlen;
    sqe->__pad3[0] = 0;
    sqe->addr3 = 0;
    sqe->__pad2[0] = 0;
}

/* ---- Posts (core/post.c) ------------------------------------------------- */
/* Runs the posts queued by non-loop threads (loop thread, each turn; the
 * check for none is inline). Returns whether any ran. */
bool dg__posts_run_locked(struct dg__core *c);
static inline bool dg__posts_run_queued(struct dg__core *c)
{
    return atomic_load_explicit(&c->posts_queued, memory_order_acquire) &&
           dg__posts_run_locked(c);
}
void dg__post_on_completion(dg_loop *loop, const struct io_uring_cqe *cqe);
void dg__post_init(struct dg__core *c);
void dg__post_destroy(struct dg__core *c);
/* Sets the loop running on this thread (for dg_loop_post's ring road);
 * returns the previous one. */
struct dg__core *dg__current_core_swap(struct dg__core *c);

/* ---- Signals (core/signal.c) ----------------------------------------------- */
/* Arms the signalfd's poll if a handle is started and none is in flight
 * (each turn's prepare step; the check for no signals is inline). */
void dg__signals_arm(struct dg__core *c);
static inline void dg__signals_prepare(struct dg__core *c)
{
    if (c->signals)
        dg__signals_arm(c);
}
void dg__signals_on_poll(dg_loop *loop, const struct io_uring_cqe *cqe);
/* Whether the poll is in flight (the loop's close waits for its end). */
bool dg__signals_armed(const struct dg__core *c);
/* Closes the signalfd and frees the state, after the poll ended. */
void dg__signals_destroy(struct dg__core *c);

/* ---- Addresses (core/address.c) ---------------------------------------- */
/* An IPv4 literal as getaddrinfo (and so Node) reads one: inet_aton's
 * forms, "127.0.0.1" and the shorthands "127.1", "0x7f.1", "2130706433".
 * Returns 0 or DG_ERR_INVALID_ADDRESS. */
int dg__parse_ipv4(const char *text, struct in_addr *out);
/* Parses an IP literal of family (AF_INET/AF_INET6) with port into *out
 * (IPv4 as dg__parse_ipv4 does). NULL or "" gives `empty_any ? unspecified
 * : loopback`; "localhost" gives loopback. Returns 0 or
 * DG_ERR_INVALID_ADDRESS. */
int dg__parse_address(int family, const char *text, int port, bool empty_any,
                      struct sockaddr_storage *out, socklen_t *outlen);
/* Whether key is one dg_addr_key_from_sockaddr could have made: reserved
 * zero, AF_INET6, or AF_INET with no scope and zeros after its 4 bytes.
 * Inline for the fan-out's check of each destination. */
static inline bool dg__addr_key_valid(const dg_addr_key *key)
{
    static const uint8_t zeros[12];
    if (key->reserved != 0)
        return false;
    if (key->family == AF_INET6)
        return true;
    return key->family == AF_INET && key->scope_id == 0 &&
           __builtin_memcmp(key->addr + 4, zeros, sizeof(zeros)) == 0;
}
/* A valid key's socket address, every byte of its family's size written
 * (sizeof(struct sockaddr_in) or sizeof(struct sockaddr_in6)) at out,
 * which needs no alignment. Returns that size. */
static inline socklen_t dg__addr_key_write(const dg_addr_key *key, void *out)
{
    if (key->family == AF_INET) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(key->port)};
        __builtin_memcpy(&sin.sin_addr, key->addr, 4);
        __builtin_memcpy(out, &sin, sizeof(sin));
        return sizeof(sin);
    }
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(key->port),
                                .sin6_scope_id = key->scope_id};
    __builtin_memcpy(&sin6.sin6_addr, key->addr, 16);
    __builtin_memcpy(out, &sin6, sizeof(sin6));
    return sizeof(sin6);
}

#endif

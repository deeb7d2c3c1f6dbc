/* dgring: the event loop and its timers.
 *
 * A dg_loop owns one io_uring ring (or, where io_uring cannot be used, the
 * epoll backend, which emulates it). A loop and every socket, timer and
 * request of it are used from the thread that created the loop; using
 * them from another thread is undefined. Nothing checks this everywhere:
 * on io_uring with Linux 6.1 or later the ring is set up with
 * IORING_SETUP_SINGLE_ISSUER, and the kernel refuses an io_uring_enter
 * from another thread (-EEXIST), but earlier kernels and the epoll backend
 * do not notice. The calls that may come from any thread are
 * dg_loop_wake(), dg_loop_stop() and dg_loop_post(); of these, only
 * dg_loop_wake() and dg_loop_stop() may also come from a signal handler
 * (dg_loop_post allocates and may take a lock).
 *
 * Callback contract (for every call in dgring): a call that fails returns a
 * negative code and never calls its callback. A call that succeeds calls its
 * callback exactly once, from inside dg_loop_run(), never from inside the
 * call itself. Closing a handle completes its pending requests with
 * -ECANCELED before the handle's close callback runs.
 */
#ifndef DGRING_LOOP_H
#define DGRING_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dg_loop dg_loop;
typedef struct dg_timer dg_timer;

/* Options for dg_loop_new(). Initialise with dg_loop_options_init() and
 * change only the fields you care about; zero means "the default". */
typedef struct dg_loop_options {
    /* Submission queue entries. Default 256. Sends beyond this in one
     * turn are flushed to the kernel early, never dropped; if the kernel
     * refuses that flush for now (EBUSY, as kernels before 5.19 do while
     * completions overflow), the sends wait, in order, and leave after
     * the loop's next submit: back-pressure, never a failed send. */
    unsigned sq_entries;
    /* Provided receive buffers shared by the loop's sockets; a power of
     * two, at most 32768. Default 512. */
    unsigned recv_buffers;
    /* Largest datagram payload received without truncation. Default
     * 65527, the largest UDP payload (IPv6; IPv4's is 65507), so no
     * datagram of either family is cut, as in Node. What the default
     * costs: recv_buffers buffers of this size plus a 96-byte header,
     * each rounded up to 64 bytes: 512 x 65664 bytes = 32 MiB of address
     * space per loop, mapped at dg_loop_new() but resident only where
     * datagrams were written (a page or two per buffer for small ones,
     * the whole buffer once a large datagram used it). Telemetry and
     * game traffic can set 2048 or less to use far less memory. */
    unsigned recv_buffer_size;
    /* Sends in flight (submitted, callback not yet run) per loop before
     * dg_socket_send() answers DG_ERR_SEND_QUEUE_FULL. Default 4096. */
    unsigned max_pending_sends;
    /* Which backend runs the loop (dg_loop_backend_kind). Default
     * DG_BACKEND_AUTO: the environment variable DGRING_BACKEND if set
     * ("uring"/"io_uring" or "epoll"), otherwise io_uring, falling back to
     * epoll when the ring cannot be created (-EPERM: seccomp or
     * kernel.io_uring_disabled; -ENOSYS; -ENOMEM, as RLIMIT_MEMLOCK gives
     * before 5.12; a kernel without multishot recvmsg or buffer rings). */
    unsigned backend;
    /* io_uring: after a turn that handled at least 32 receive
     * completions (a flood of datagrams; send completions never count, as
     * a sender's window may be small), the next wait asks the kernel
     * for one completion per 128 receive buffers (4 with the default 512,
     * at most 128) or this many microseconds (never past the next timer),
     * whichever comes first, so a flood is drained with few system calls
     * (the kernel hands a multishot receive 33 datagrams per pass, and one
     * such wait lets it make up to twice that many passes: about half the
     * ring, which never runs dry). Light
     * traffic never waits: a turn with fewer completions returns on the
     * first one. The waits adapt: one that ends on this limit short of its
     * count (dg_loop_stats.batch_wait_timeouts: a burst that ended, not a
     * flood) makes every later run of busy turns wait plainly for its
     * first 4 turns (doubled per further timeout, at most 64), so paced
     * bursts pay it once, not once per burst, and floods keep their
     * batches. While such a wait lasts, dg_loop_stop(), dg_loop_wake()
     * and posts from other threads take effect at its end (at most this
     * long). 0 = the default, 200; DG_BATCH_WAIT_NONE turns it off
     * (lowest latency under load, more system calls). The epoll backend
     * ignores it. */
    unsigned batch_wait_us;
    /* Engine send buffers (dg_send_buffer_get): how many, and the bytes
     * each holds. Defaults 256 and 2048; at most 65536 buffers of at most
     * 65535 bytes. The pool costs nothing until the first
     * dg_send_buffer_get(), which maps it (and on io_uring registers it
     * with the ring as fixed buffers, so its pages stay resident). */
    unsigned send_buffers;
    unsigned send_buffer_size;
    /* io_uring: sends from engine send buffers of at least this many
     * bytes go out with IORING_OP_SEND_ZC from the registered buffer (no
     * copy into the kernel; the buffer returns to the pool when the
     * kernel's notification arrives). Pays for large datagrams and GSO
     * on real NICs; over loopback the kernel copies anyway and it costs
     * more (perf/results). 0 = never (the default). Ignored on the epoll
     * backend, where the ring cannot register the pool, and where sends
     * cannot carry an address (dg_loop_caps.send_to false: Linux 6.0,
     * or DGRING_NO_SEND_TO set). */
    unsigned send_zerocopy_min;
    /* dg_socket_send_many(): destinations of fan-outs in flight (called,
     * callback not yet run) on this loop, 1..65536. Default 8192. A
     * fan-out that would pass it answers DG_ERR_SEND_QUEUE_FULL; one larger
     * than it, DG_ERR_OUT_OF_RANGE. It bounds a fan-out's memory (about 30
     * bytes per destination, 90 on the sendmsg road) and sizes the
     * completion queue with recv_buffers and max_pending_sends. */
    unsigned max_fanout_destinations;
    unsigned reserved[6];
} dg_loop_options;

#define DG_BATCH_WAIT_NONE 0xffffffffu

/* Values of dg_loop_options.backend. */
typedef enum dg_loop_backend_kind {
    DG_BACKEND_AUTO = 0,
    /* io_uring only: dg_loop_new() fails rather than fall back. */
    DG_BACKEND_URING = 1,
    /* epoll with recvmmsg/sendmmsg batches: runs wherever io_uring is
     * denied, with the same API, callbacks and ordering. */
    DG_BACKEND_EPOLL = 2,
} dg_loop_backend_kind;

/* What the running kernel gave this loop, probed once in dg_loop_new().
 * On the epoll backend sq_entries and cq_entries are the emulated queues'
 * initial sizes (both grow on demand) and every other field is 0/false. */
typedef struct dg_loop_caps {
    unsigned sq_entries;          /* as granted by the kernel */
    unsigned cq_entries;          /* sized so receives cannot overflow it */
    unsigned setup_flags;         /* IORING_SETUP_* actually in use */
    unsigned features;            /* IORING_FEAT_* reported by the kernel */
    bool single_issuer;           /* IORING_SETUP_SINGLE_ISSUER (6.0) */
    bool defer_taskrun;           /* IORING_SETUP_DEFER_TASKRUN (6.1) */
    bool submit_all;              /* IORING_SETUP_SUBMIT_ALL (5.18) */
    bool coop_taskrun;            /* IORING_SETUP_COOP_TASKRUN (5.19), used
                                     only when DEFER_TASKRUN is not */
    bool recvmsg_multishot;       /* multishot recvmsg (6.0) */
    bool timeout_update;          /* IORING_TIMEOUT_UPDATE (5.11) */
    bool sendmsg_zc;              /* IORING_OP_SENDMSG_ZC (6.1) */
    bool msg_ring;                /* IORING_OP_MSG_RING (5.18) */
    bool send_to;                 /* IORING_OP_SEND with a destination
                                     (6.1): sends skip the msghdr copy */
    bool sync_cancel;             /* IORING_REGISTER_SYNC_CANCEL (6.0):
                                     dg_socket_close() frees the port before
                                     it returns (see there); the environment
                                     variable DGRING_NO_SYNC_CANCEL (any
                                     value) turns it off */
    bool reserved_flags[6];
    unsigned reserved[8];
} dg_loop_caps;

typedef enum dg_run_mode {
    /* Run until nothing keeps the loop alive (see dg_loop_alive) or
     * dg_loop_stop() is called. */
    DG_RUN_DEFAULT = 0,
    /* Wait for at least one event if the loop is alive, run the
     * callbacks that are ready, return. */
    DG_RUN_ONCE = 1,
    /* Run the callbacks that are ready without waiting. */
    DG_RUN_NOWAIT = 2,
} dg_run_mode;

/* Fills *options with the defaults. */
DG_EXPORT void dg_loop_options_init(dg_loop_options *options);

/* Creates a loop and its ring in the calling thread, which becomes the
 * loop's thread. options may be NULL for the defaults (copied).
 * Returns 0 and sets *out, or:
 *   DG_ERR_INVALID_ARG_VALUE  out is NULL, an option is out of range, or
 *                             DGRING_BACKEND names no backend
 *   DG_ERR_KERNEL_UNSUPPORTED DG_BACKEND_URING was asked for and the kernel
 *                             lacks multishot recvmsg or provided buffer
 *                             rings (Linux < 6.0)
 *   -EPERM                    DG_BACKEND_URING and io_uring is disabled or
 *                             denied by seccomp
 *   -ENOMEM, -EMFILE ... */
DG_EXPORT int dg_loop_new(dg_loop **out, const dg_loop_options *options);

/* Destroys a loop that has no live handles and frees it. Lookups still
 * pending (dg_lookup) end with -ECANCELED, their callbacks running inside
 * this call; from those callbacks new sockets and timers are refused
 * (-ECANCELED) and the loop can be neither run nor closed again.
 * Returns 0, or DG_ERR_LOOP_BUSY if sockets, timers or posts are still
 * pending (close them and run the loop until their close callbacks ran),
 * or when called from inside dg_loop_run() or itself; then nothing is
 * freed. loop == NULL returns DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_loop_close(dg_loop *loop);

/* Runs the loop in the given mode (loop's thread only; not reentrant:
 * calling it from a callback returns -EBUSY).
 * Returns 1 if the loop is still alive afterwards, 0 if not, or a
 * negative code on a fatal ring error. */
DG_EXPORT int dg_loop_run(dg_loop *loop, dg_run_mode mode);

/* Makes dg_loop_run() return after the current turn. Thread-safe and
 * async-signal-safe. */
DG_EXPORT void dg_loop_stop(dg_loop *loop);

/* Wakes a loop blocked in dg_loop_run() so it runs one more turn.
 * Thread-safe and async-signal-safe. Returns 0 or a negative errno. */
DG_EXPORT int dg_loop_wake(dg_loop *loop);

/* True if something keeps the loop alive: a referenced bound socket, a
 * referenced active timer, a pending send, a closing handle, or a
 * callback waiting to run. */
DG_EXPORT bool dg_loop_alive(const dg_loop *loop);

/* A file descriptor for embedding the loop in another event loop (epoll,
 * poll, libuv's uv_poll_t): it becomes readable (POLLIN) whenever the loop
 * has work; then call dg_loop_run(loop, DG_RUN_NOWAIT). The fd belongs to
 * the loop: do not close or read it. Created on first call (registering it
 * costs a little on every completion, so loops that are never embedded do
 * not pay). Returns the fd or a negative errno. */
DG_EXPORT int dg_loop_fd(dg_loop *loop);

/* Milliseconds until the loop's next timer is due, for an embedding loop's
 * own wait, rounded up (a timer due in 0.2 ms gives 1): -1 if no timer is
 * active, 0 if work is ready now. A dgring timer also makes dg_loop_fd()
 * readable when it fires, so using this is optional. */
DG_EXPORT int dg_loop_timeout(const dg_loop *loop);

/* The loop's cached monotonic clock (CLOCK_MONOTONIC), read at most once
 * per turn (at the turn's start while a timer is active, else at the
 * turn's first use of it) and by dg_loop_update_time(): in milliseconds
 * (dg_loop_now) and in microseconds (dg_loop_now_us); both are the same
 * reading, so dg_loop_now() == dg_loop_now_us() / 1000, and the reading
 * stays the same until the next turn or dg_loop_update_time(). Timers
 * count from it. 0 for a NULL loop. Loop thread only. */
DG_EXPORT uint64_t dg_loop_now(const dg_loop *loop);
DG_EXPORT uint64_t dg_loop_now_us(const dg_loop *loop);

/* Refreshes the cached clock. */
DG_EXPORT void dg_loop_update_time(dg_loop *loop);

/* The capabilities probed at creation. Valid for the loop's lifetime. */
DG_EXPORT const dg_loop_caps *dg_loop_capabilities(const dg_loop *loop);

/* The backend in use: "io_uring" or "epoll" (NULL for a NULL loop). */
DG_EXPORT const char *dg_loop_backend(const dg_loop *loop);

/* Loop counters, for statistics and tests. */
typedef struct dg_loop_stats {
    uint64_t turns;         /* loop iterations */
    uint64_t submissions;   /* operations handed to the kernel (SQEs; on
                               epoll, the emulated operations) */
    uint64_t enters;        /* system calls made to submit and wait
                               (io_uring_enter; on epoll, epoll_wait,
                               recvmmsg and sendmmsg) */
    uint64_t completions;   /* completions handled */
    uint64_t cq_overflows;  /* turns that found the completion queue
                               overflowed (the kernel keeps the extra
                               completions and dgring drains them: none is
                               lost unless the kernel ran out of memory,
                               counted in cq_dropped) */
    uint64_t cq_dropped;    /* completions the kernel dropped (its overflow
                               counter) */
    uint64_t rx_kept_buffers; /* receive buffers kept past their callback
                                 (dg_message_keep) and not yet released:
                                 a gauge, not a running total */
    uint64_t rx_discarded_at_close; /* the sum of rx_discarded_at_close of
                                       this loop's sockets whose close
                                       callbacks have run (added just
                                       before them) */
    uint64_t batch_wait_timeouts; /* batched waits (batch_wait_us) that ended
                                     on their time limit with fewer
                                     completions than they asked for (each
                                     makes later runs of busy turns start
                                     with plain waits; always 0 on epoll) */
    uint64_t reserved[3];
} dg_loop_stats;

/* Copies the loop's counters into *out. Returns 0 or
 * DG_ERR_INVALID_ARG_VALUE (NULL argument). */
DG_EXPORT int dg_loop_get_stats(const dg_loop *loop, dg_loop_stats *out);

/* ---- Cross-loop work ---------------------------------------------------
 * dg_loop_post(target, cb, arg) runs cb(target, arg) on target's thread,
 * from target's loop, exactly once. Thread-safe: callable from any thread,
 * including another loop's callbacks and target's own. From another
 * loop's thread on a kernel with IORING_OP_MSG_RING (5.18), the work goes
 * ring to ring (no lock, and no system call beyond the sender loop's next
 * io_uring_enter); otherwise through a locked queue and target's wake-up
 * eventfd. A post keeps target alive until its callback ran. arg is
 * borrowed until then. Do not post to a loop being closed.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL target or cb), -ENOMEM. */
typedef void (*dg_post_cb)(dg_loop *loop, void *arg);
DG_EXPORT int dg_loop_post(dg_loop *target, dg_post_cb cb, void *arg);

/* The user pointer of a loop (NULL until set). */
DG_EXPORT void dg_loop_set_data(dg_loop *loop, void *data);
DG_EXPORT void *dg_loop_get_data(const dg_loop *loop);

/* ---- Timers ----------------------------------------------------------
 * Timers live in a heap in the loop; the ring holds a single timeout
 * operation for the earliest deadline (nanoseconds, CLOCK_MONOTONIC),
 * updated in place only when a deadline moves earlier, so thousands of
 * timers cost one kernel timer. Deadlines are kept in microseconds of the
 * loop clock (dg_loop_now_us): a timer started with dg_timer_start_us()
 * runs at that resolution; dg_timer_start() is the same in milliseconds.
 *
 * Repeats are anchored to the schedule: a timer started at time T with
 * timeout t and repeat r is due at T + t, T + t + r, T + t + 2r, ...
 * however late the loop ran the previous callback and however long that
 * callback took (a 30 Hz tick whose callbacks take 20 ms still runs 30
 * times a second). A callback runs when the loop gets to it, at or after
 * its due time, never before. If the loop falls a whole period or more
 * behind (a callback or something else held the thread that long), the
 * periods that passed entirely are skipped, not run in a burst: the timer
 * runs once, late, and its next due time is the next point of the same
 * schedule. dg_timer_due_us() tells a callback where the schedule is. */

typedef void (*dg_timer_cb)(dg_timer *timer, void *data);
typedef void (*dg_timer_close_cb)(dg_timer *timer, void *data);

/* Creates a stopped timer on loop. Returns 0 and sets *out, or
 * DG_ERR_INVALID_ARG_VALUE, -ENOMEM, -ECANCELED (the loop is closing). */
DG_EXPORT int dg_timer_new(dg_loop *loop, dg_timer **out);

/* Starts (or restarts) a timer: cb runs from the loop timeout_ms after the
 * loop clock's current reading (dg_loop_now), then every repeat_ms on the
 * schedule described above if repeat_ms > 0. A restart replaces the
 * callback, data, deadline and repeat. data is borrowed until the timer is
 * stopped or closed. Values up to UINT64_MAX / 2 are accepted; the far
 * ones mean "never" in practice.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL timer or cb, a value above
 * UINT64_MAX / 2), DG_ERR_SOCKET_DGRAM_NOT_RUNNING (timer closed). Loop
 * thread only. */
DG_EXPORT int dg_timer_start(dg_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms,
                             dg_timer_cb cb, void *data);

/* dg_timer_start() in microseconds: cb runs timeout_us after
 * dg_loop_now_us(), then every repeat_us (if > 0), anchored to the
 * schedule. For ticks that are not a whole number of milliseconds: 30 Hz
 * is dg_timer_start_us(t, 33333, 33333, ...) and stays within 0.001% of
 * 30 Hz, where 33 ms would give 30.3 Hz. Same returns and errors as
 * dg_timer_start(). Loop thread only. */
DG_EXPORT int dg_timer_start_us(dg_timer *timer, uint64_t timeout_us, uint64_t repeat_us,
                                dg_timer_cb cb, void *data);

/* When the timer is next due, in microseconds of the loop clock
 * (dg_loop_now_us), or 0 if it is not active (stopped, closing, a one-shot
 * that ran). In a repeating timer's callback this is the next point of
 * its schedule, already set: one repeat after this run's due time, or more
 * when periods were skipped. Loop thread only; 0 for NULL. */
DG_EXPORT uint64_t dg_timer_due_us(const dg_timer *timer);

/* Stops a timer; its callback will not run until started again.
 * Stopping a stopped timer is a no-op. Returns 0 or
 * DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_timer_stop(dg_timer *timer);

/* Whether the timer is started. */
DG_EXPORT bool dg_timer_active(const dg_timer *timer);

/* An active referenced timer keeps the loop alive; unref excludes it. */
DG_EXPORT void dg_timer_ref(dg_timer *timer);
DG_EXPORT void dg_timer_unref(dg_timer *timer);

/* Stops and closes a timer; cb (may be NULL) runs from the loop, after
 * which the timer is freed. Returns 0, DG_ERR_INVALID_ARG_VALUE, or
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING if already closing. */
DG_EXPORT int dg_timer_close(dg_timer *timer, dg_timer_close_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif

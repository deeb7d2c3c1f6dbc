/* dgring: reuse-port groups, one loop per thread on one address.
 *
 * A group is N threads, each running its own dg_loop with its own UDP
 * socket bound to the same address and port with SO_REUSEPORT. The kernel
 * spreads incoming datagrams over the N sockets, so N cores receive in
 * parallel with no shared socket and no lock on the receive path. A flow
 * (source address and port to the group's address) always lands on the
 * same socket while the group's membership does not change.
 *
 * Exclusive (the default, dg_group_options.exclusive): SO_REUSEPORT lets
 * any socket of the same user join a port's group, so a second copy of a
 * collector would silently take part of the first one's traffic. An
 * exclusive group refuses to start on a port any socket holds (member 0
 * binds without SO_REUSEPORT: -EADDRINUSE, also for a second exclusive
 * group in another process), and delivers only to its own sockets: a
 * socket that joins later anyway (another process of the same user that
 * sets SO_REUSEPORT itself; the kernel lets it) binds but receives no
 * datagram. Only such a joiner is not told EADDRINUSE: the kernel checks
 * nothing else a program without privileges could use. docs/scaling.md
 * ("Exclusive groups") has the details and what was measured.
 *
 * Threading: every handler and the on_start/on_stop callbacks run on the
 * thread of the member they belong to, from that member's loop. The group
 * calls dg_group_stop(), dg_group_stats(), dg_group_post() and the plain
 * accessors are thread-safe; dg_group_start() and dg_group_join() are
 * called by the thread that owns the group (never from a group callback).
 *
 * Lifetime: dg_group_start() -> traffic -> dg_group_stop() (any thread,
 * any time, also from a callback) -> dg_group_join() (frees the group).
 * See docs/scaling.md for the design and how rates scale with cores.
 */
#ifndef DGRING_GROUP_H
#define DGRING_GROUP_H

#include <stdbool.h>

#include "dgring/loop.h"
#include "dgring/socket.h"
#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dg_group dg_group;

/* The most threads a group may have. */
#define DG_GROUP_MAX_THREADS 64

/* How the kernel picks the member socket for an incoming datagram. */
typedef enum dg_group_steering {
    /* The kernel's reuse-port choice: a hash of the 4-tuple (source and
     * destination address and port), so a flow sticks to one member. */
    DG_GROUP_STEER_HASH = 0,
    /* A classic BPF program (SO_ATTACH_REUSEPORT_CBPF) returns the number
     * of the CPU that is receiving the datagram, modulo the thread count:
     * the datagram goes to the member pinned to that CPU, so the kernel's
     * receive work and the loop's callbacks share one core and its cache.
     * Meant with pin = true, on CPUs 0..N-1, and with the NIC's RSS (or
     * RPS) spreading flows over those CPUs. A flow sticks to one member as
     * long as its packets keep arriving on one CPU. */
    DG_GROUP_STEER_CPU = 1,
} dg_group_steering;

/* Per-member callback: the member's loop, its index (0..threads-1) and
 * dg_group_options.data. */
typedef void (*dg_group_member_cb)(dg_loop *loop, unsigned index, void *data);

/* Options for dg_group_start(). Initialise with dg_group_options_init()
 * and change only the fields you need. */
typedef struct dg_group_options {
    /* Threads, loops and sockets: 1..DG_GROUP_MAX_THREADS. Default 1. */
    unsigned threads;
    /* The address every member binds (copied): an IP literal, NULL/"" for
     * the unspecified address of the socket type, or a host name resolved
     * once by member 0; the others bind the address member 0 got. */
    const char *address;
    /* 0..65535. 0 lets the kernel pick a port that no socket uses (member
     * 0 binds it without SO_REUSEPORT and sets the option right after),
     * and the other members bind the port member 0 got. */
    int port;
    /* Each member's socket options: type (DG_UDP4 default, DG_UDP6),
     * flags (DG_SOCKET_*; DG_SOCKET_REUSE_PORT is added as needed, see
     * exclusive; DG_SOCKET_REUSE_ADDR is refused for an exclusive group),
     * buffer sizes, lookup (called on each member's thread). signal must be
     * NULL (an abort handle belongs to one loop). */
    dg_socket_options socket;
    /* Handlers of every member's socket (copied). They run on the member's
     * thread; dg_socket_loop(sock) is its loop and dg_group_index() of
     * that loop its index. They may run before dg_group_start() returns,
     * as soon as a member is bound. The sockets belong to the group: do
     * not close them yourself; dg_group_stop() does. */
    dg_socket_handlers handlers;
    /* Passed to every handler and callback, on every thread: anything it
     * points to is shared by all members (use atomics or per-index
     * slots). Borrowed until dg_group_join() returned. */
    void *data;
    /* Options of every member's loop; zero fields mean the defaults. */
    dg_loop_options loop;
    /* Pins member i's thread to the i % n-th CPU of the n CPUs the calling
     * thread may run on (sched_getaffinity), before its loop is created. */
    bool pin;
    dg_group_steering steering;
    /* true (the default from dg_group_options_init): the port is the
     * group's alone. Member 0 binds without SO_REUSEPORT and turns it on
     * once bound, for the other members only (a group of one never turns
     * it on): the start fails with -EADDRINUSE on a port another socket
     * holds, whoever holds it, and another exclusive group started later
     * on this port (another copy of the program) gets -EADDRINUSE. With
     * more than one member, the last one attaches a classic BPF program
     * that answers only the members' socket numbers (DG_GROUP_STEER_HASH
     * becomes a hash of the source address and port computed by that
     * program; DG_GROUP_STEER_CPU is unchanged), so a socket that joins
     * later with SO_REUSEPORT of its own binds but gets no datagram.
     * false: the group shares the port like any SO_REUSEPORT socket: it
     * joins the reuse-port group of sockets already bound there (same
     * user), and later ones join it and take their share. */
    bool exclusive;
    /* Runs once on each member's thread after its socket is bound (for
     * instance to start timers on that loop). May be NULL. It may call
     * dg_loop_set_data(loop, ptr) to give the member state of its own:
     * every handler of that member reaches it with
     * dg_loop_get_data(dg_socket_loop(sock)), without a lock (only that
     * thread uses it) and without indexing a shared array:
     *
     *     static void on_start(dg_loop *loop, unsigned index, void *data)
     *     {
     *         struct app *app = data;
     *         dg_loop_set_data(loop, &app->members[index]);
     *     }
     *     static void on_message(dg_socket *sock, const dg_message *msg,
     *                            void *data)
     *     {
     *         struct member *m = dg_loop_get_data(dg_socket_loop(sock));
     *         m->datagrams++;
     *     }
     *
     * The pointer stays set until the member's loop closes (after
     * on_stop); free what it points to after dg_group_join(). Handlers may
     * run before on_start (datagrams can arrive as soon as the member is
     * bound): until then dg_loop_get_data() is NULL. */
    dg_group_member_cb on_start;
    /* Runs once on each member that got as far as on_start (its socket was
     * bound), on its thread, when the group stops, after the member's
     * socket close began (on_close follows from the loop): close here every
     * handle you created on that loop, or the member's thread cannot end
     * and dg_group_join() waits for it. May be NULL. */
    dg_group_member_cb on_stop;
    /* How often each member publishes its socket's counters for
     * dg_group_stats() from other threads, in ms. Default 1000. */
    unsigned stats_interval_ms;
    unsigned reserved_u[7];
    void *reserved_p[8];
} dg_group_options;

/* Fills *options with the defaults: 1 thread, udp4, unspecified address,
 * port 0, hash steering, exclusive, no pinning, default loop options. */
DG_EXPORT void dg_group_options_init(dg_group_options *options);

/* Starts a group: creates options->threads threads; member i creates its
 * loop in its own thread (after pinning, if asked), a referenced group
 * timer and its socket, and binds. Members bind one after another in
 * index order (so member i is socket i of the kernel's reuse-port group,
 * which DG_GROUP_STEER_CPU relies on). With DG_GROUP_STEER_CPU the last
 * member attaches the BPF program once every socket is bound (a group of
 * one needs none). Returns when every member is bound and its on_start
 * ran, or when one failed; then the members already started are stopped
 * and joined (their on_stop and close handlers run) and nothing is left
 * behind: no thread, no fd, no memory.
 * options is copied (address too); options->data is borrowed.
 * Returns 0 and sets *out, or (with *out NULL):
 *   DG_ERR_INVALID_ARG_VALUE  out or options NULL, threads 0 or > 64,
 *                             unknown steering, socket.signal set, an
 *                             invalid loop or socket option,
 *                             DG_SOCKET_REUSE_ADDR in an exclusive group
 *   DG_ERR_SOCKET_BAD_PORT    port < 0 or > 65535
 *   DG_ERR_SOCKET_BAD_TYPE    socket.type not DG_UDP4/DG_UDP6
 *   DG_ERR_INVALID_ADDRESS    address is a literal of the other family
 *   -EADDRINUSE               exclusive: the port is taken by any socket;
 *                             not exclusive: by a socket that is not
 *                             SO_REUSEPORT, or of another user
 *   -ECANCELED                a callback called dg_group_stop() before
 *                             the start completed
 *   the error of pthread_create, sched_setaffinity, dg_loop_new,
 *   dg_socket_create, bind (address unavailable, DNS errors), or of
 *   setsockopt(SO_ATTACH_REUSEPORT_CBPF) for DG_GROUP_STEER_CPU or an
 *   exclusive group of two or more members.
 * Call from the group's owner thread, never from a group callback. */
DG_EXPORT int dg_group_start(dg_group **out, const dg_group_options *options);

/* Asks every member to stop: each member, on its own thread, closes its
 * socket and the group's timer, runs on_stop, runs its loop until every
 * close callback (and every post already sent to it) ran exactly once,
 * and closes its loop; then its thread ends. Does not wait (see
 * dg_group_join). Idempotent: later calls return 0 and do nothing.
 * Thread-safe: any thread, including a group callback.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL group), or -ENOMEM if a stop
 * request could not be queued (calling again retries the members that did
 * not get it). */
DG_EXPORT int dg_group_stop(dg_group *group);

/* Waits until every member's thread ended (call dg_group_stop() first, or
 * have something else call it), then frees the group. If final_stats is
 * not NULL it receives each member's socket counters as of its close: an
 * array of dg_group_threads() elements.
 * Returns 0, or the first member error in index order: a fatal error of
 * dg_loop_run, DG_ERR_LOOP_BUSY when a member's loop still had handles
 * open after on_stop (that loop is then left open, its memory lost).
 * DG_ERR_INVALID_ARG_VALUE for NULL; -EDEADLK (nothing done) when called
 * from a member's own thread.
 * Owner thread only; exactly once per started group. */
DG_EXPORT int dg_group_join(dg_group *group, dg_socket_stats *final_stats);

/* The number of members. Thread-safe. 0 for NULL. */
DG_EXPORT unsigned dg_group_threads(const dg_group *group);

/* The port every member is bound to. Thread-safe. DG_ERR_INVALID_ARG_VALUE
 * for NULL. */
DG_EXPORT int dg_group_port(const dg_group *group);

/* Member index's loop, or NULL if index is out of range. Valid until
 * dg_group_join(). Use it on the member's own thread, or with
 * dg_loop_post() from anywhere while the group is not stopping; once
 * dg_group_stop() may have been called, post with dg_group_post(), which
 * knows when the loop is gone. Thread-safe. */
DG_EXPORT dg_loop *dg_group_loop(const dg_group *group, unsigned index);

/* Member index's socket, or NULL if index is out of range. Use it only on
 * the member's own thread (for instance from on_start or a post, to send
 * from the group's address and port), and not after on_stop. */
DG_EXPORT dg_socket *dg_group_socket(const dg_group *group, unsigned index);

/* The CPU member index's thread is pinned to, -1 when not pinned, or
 * DG_ERR_INVALID_ARG_VALUE for a bad group or index. Thread-safe. */
DG_EXPORT int dg_group_cpu(const dg_group *group, unsigned index);

/* dg_loop_post() to member index's loop: cb(loop, arg) runs once on that
 * member's thread. Safe at any time until dg_group_join(): a post sent
 * before the member closed its loop runs (it keeps the loop open until
 * then); after that the call fails and cb never runs. arg is borrowed
 * until cb ran. Thread-safe.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL group or cb, bad index),
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING (the member's loop is closed or was
 * never opened), -ENOMEM. */
DG_EXPORT int dg_group_post(dg_group *group, unsigned index, dg_post_cb cb, void *arg);

/* Member index's socket counters. On the member's own thread while its
 * socket is open: the live counters. Elsewhere: as the member last
 * published them (every stats_interval_ms, and at close; all zero before
 * the first publication). Thread-safe.
 * Returns 0 or DG_ERR_INVALID_ARG_VALUE (NULL argument, bad index). */
DG_EXPORT int dg_group_stats(dg_group *group, unsigned index, dg_socket_stats *out);

/* The index of the group member that runs loop, when called on that
 * member's thread (from any of its callbacks): 0..threads-1. Otherwise
 * (another thread, a loop that is not a group member, NULL)
 * DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_group_index(const dg_loop *loop);

/* The group whose member runs loop, on that member's thread; NULL
 * otherwise. Lets a callback reach the group (dg_group_stop,
 * dg_group_post) even before dg_group_start() returned. */
DG_EXPORT dg_group *dg_group_from_loop(const dg_loop *loop);

#ifdef __cplusplus
}
#endif

#endif

/* Reuse-port groups: N threads, each with its own loop and its own socket
 * on one address and port (SO_REUSEPORT).
 *
 * The owner thread (dg_group_start) starts the members one at a time: a
 * member pins itself, creates its loop (so the ring's single issuer is the
 * member's thread), a referenced group timer that keeps the loop alive and
 * publishes statistics, and its socket; binds; runs on_start; reports to
 * the owner; then runs its loop until the group stops. Binding in index
 * order makes member i socket i of the kernel's reuse-port group, which is
 * what the CPU steering program's answer means.
 *
 * An exclusive group (the default) keeps its port to itself, as far as the
 * kernel lets it: member 0 binds without SO_REUSEPORT (so the start fails
 * with EADDRINUSE on a port any socket holds) and turns the option on only
 * once bound, and only if other members follow; the last member attaches a
 * classic BPF program that only ever answers a member's socket number, so
 * a socket another process joins later (same user, SO_REUSEPORT: the
 * kernel allows it) gets no datagram. docs/scaling.md has the reasons and
 * the limits.
 *
 * Stopping travels as one dg_loop_post per member (exactly once, from any
 * thread). A member closes its loop only after its stop post ran, so a
 * stop post never reaches a closed loop; dg_group_post takes a per-member
 * read lock that the member takes for writing before closing its loop, so
 * user posts cannot either.
 */
#include <errno.h>
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "engine/core/core.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51 /* Linux 4.5, asm-generic/socket.h */
#endif

enum member_phase {
    MEMBER_STARTING,
    MEMBER_READY,
    MEMBER_FAILED,
};

struct member {
    dg_group *group;
    unsigned index;
    int cpu;                      /* -1: not pinned */
    pthread_t thread;
    bool thread_started;          /* owner thread only */

    /* Guarded by group->lock. */
    enum member_phase phase;
    int start_status;
    bool stop_sent;               /* stop post queued, or none needed */

    /* Published by the member once, read by any thread. */
    _Atomic(dg_loop *) loop;
    _Atomic(dg_socket *) sock;
    atomic_int port;
    char address[DG_ADDRSTRLEN];  /* read by the owner after READY */

    /* Member thread only. */
    dg_timer *timer;
    bool bind_done;
    int bind_status;
    bool started;                 /* bound, on_start called: on_stop is due */
    bool stopping;                /* the stop post ran */
    bool closing_socket;
    int error;                    /* first runtime error; read after join */

    /* dg_group_post against the loop's close. */
    pthread_rwlock_t post_lock;
    bool loop_open;               /* guarded by post_lock */

    pthread_mutex_t stats_lock;
    dg_socket_stats published;    /* guarded by stats_lock */
};

struct dg_group {
    dg_group_options options;     /* address points at address_copy */
    char *address_copy;
    char bind_address[DG_ADDRSTRLEN]; /* member 0's bound address, for 1..N-1 */
    atomic_int port;
    unsigned threads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;                /* guarded by lock */
    struct member members[];
};

/* The member whose thread this is, for dg_group_index/dg_group_from_loop. */
static __thread struct member *current_member;

DG_EXPORT void dg_group_options_init(dg_group_options *options)
{
    if (!options)
        return;
    memset(options, 0, sizeof(*options));
    options->threads = 1;
    options->socket.type = DG_UDP4;
    options->steering = DG_GROUP_STEER_HASH;
    options->exclusive = true;
    options->stats_interval_ms = 1000;
    dg_loop_options_init(&options->loop);
}

/* ---- Statistics ---------------------------------------------------------- */

static void publish_stats(struct member *m, dg_socket *sock)
{
    dg_socket_stats st;
    if (dg_socket_get_stats(sock, &st) < 0)
        return;
    pthread_mutex_lock(&m->stats_lock);
    m->published = st;
    pthread_mutex_unlock(&m->stats_lock);
}

static void on_tick(dg_timer *timer, void *data)
{
    (void)timer;
    struct member *m = data;
    dg_socket *sock = atomic_load_explicit(&m->sock, memory_order_relaxed);
    if (sock && !m->closing_socket)
        publish_stats(m, sock);
}

/* ---- Stopping (member thread) -------------------------------------------- */

static void on_socket_closed(dg_socket *sock, void *data)
{
    publish_stats(data, sock); /* final: nothing changes the counters now */
}

/* The stop post: closes what the group opened on this loop, then lets the
 * user close what on_start opened. Runs once per member. */
static void member_stop(dg_loop *loop, void *arg)
{
    struct member *m = arg;
    const dg_group_options *o = &m->group->options;
    if (m->stopping)
        return;
    m->stopping = true;
    dg_socket *sock = atomic_load_explicit(&m->sock, memory_order_relaxed);
    if (sock && !m->closing_socket) {
        m->closing_socket = true;
        dg_socket_close(sock, on_socket_closed, m);
    }
    if (m->timer) {
        dg_timer_close(m->timer, NULL, NULL);
        m->timer = NULL;
    }
    if (m->started && o->on_stop)
        o->on_stop(loop, m->index, o->data);
}

/* ---- Stop requests (any thread) ------------------------------------------ */

/* Queues the stop post of every member that has a loop and has none yet.
 * Caller holds group->lock. */
static int post_stops_locked(dg_group *g)
{
    int ret = 0;
    g->stopping = true;
    for (unsigned i = 0; i < g->threads; i++) {
        struct member *m = &g->members[i];
        dg_loop *loop = atomic_load_explicit(&m->loop, memory_order_acquire);
        if (m->stop_sent || !loop)
            continue;
        int err = dg_loop_post(loop, member_stop, m);
        if (err < 0)
            ret = err;
        else
            m->stop_sent = true;
    }
    return ret;
}

DG_EXPORT int dg_group_stop(dg_group *group)
{
    if (!group)
        return DG_ERR_INVALID_ARG_VALUE;
    pthread_mutex_lock(&group->lock);
    int ret = post_stops_locked(group);
    pthread_mutex_unlock(&group->lock);
    return ret;
}

/* The owner's stop on a failed start: a stop that cannot be queued for lack
 * of memory is retried, since the members would otherwise never end. */
static void stop_for_sure(dg_group *g)
{
    while (dg_group_stop(g) == -ENOMEM) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

/* ---- Starting (member thread) -------------------------------------------- */

static int member_pin(const struct member *m)
{
    if (m->cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(m->cpu, &set);
    int ret = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    return -ret;
}

/* A referenced timer: keeps the loop alive until the stop post closes it,
 * whatever the user does with the socket, and publishes the counters. */
static int member_timer_open(struct member *m, dg_loop *loop)
{
    unsigned every = m->group->options.stats_interval_ms;
    int ret = dg_timer_new(loop, &m->timer);
    if (ret == 0)
        ret = dg_timer_start(m->timer, every, every, on_tick, m);
    if (ret < 0 && m->timer) {
        dg_timer_close(m->timer, NULL, NULL);
        m->timer = NULL;
        dg_loop_run(loop, DG_RUN_DEFAULT); /* runs the close */
    }
    return ret;
}

/* Makes the loop known to the group. Returns true if the group is already
 * stopping: no stop post will come, the member stops itself. */
static bool member_register(struct member *m, dg_loop *loop)
{
    dg_group *g = m->group;
    pthread_rwlock_wrlock(&m->post_lock);
    m->loop_open = true;
    pthread_rwlock_unlock(&m->post_lock);
    pthread_mutex_lock(&g->lock);
    atomic_store_explicit(&m->loop, loop, memory_order_release);
    bool stopping = g->stopping;
    if (stopping)
        m->stop_sent = true;
    pthread_mutex_unlock(&g->lock);
    return stopping;
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    (void)sock;
    struct member *m = data;
    m->bind_done = true;
    m->bind_status = status;
}

static int attach_program(int fd, struct sock_filter *code, size_t len)
{
    struct sock_fprog prog = {.len = (unsigned short)len, .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0)
        return -errno;
    return 0;
}

/* Steers each datagram to socket (receiving CPU % threads) of the group. */
static int attach_cpu_steering(int fd, unsigned threads)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU)),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, threads),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    return attach_program(fd, code, sizeof(code) / sizeof(code[0]));
}

/* An exclusive group's hash steering: socket (hash of the source address
 * and port) % threads, so a flow sticks to one member and a socket that
 * joined later (number threads or above) is never chosen. The kernel's own
 * hash cannot be read from classic BPF, so this one folds the source
 * address words, XORs the source port and multiplies by the golden ratio.
 * The program runs with the packet's data at the UDP payload; SKF_NET_OFF
 * reaches the IP header (IPv4, or IPv6 on a dual-stack socket too). */
static int attach_hash_steering(int fd, unsigned threads)
{
    const uint32_t net = (uint32_t)SKF_NET_OFF;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, net),          /* 0: version, IHL */
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4, 14, 0),    /* IPv4: to 17 */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net + 8),      /* 3: IPv6 source */
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net + 12),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net + 16),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net + 20),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, net + 40),     /* source port */
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_JMP | BPF_JA, 6),                    /* to 23 */
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, net),         /* 17: X = IPv4 header length */
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, net),          /* source port */
        BPF_STMT(BPF_ST, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net + 12),     /* IPv4 source */
        BPF_STMT(BPF_LDX | BPF_MEM, 0),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1u), /* 23 */
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, threads),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    return attach_program(fd, code, sizeof(code) / sizeof(code[0]));
}

/* The last member's steering: CPU, or the exclusive group's hash. */
static int attach_steering(const dg_group *g, int fd)
{
    if (g->threads < 2)
        return 0; /* one socket: nothing to steer, nobody shares */
    if (g->options.steering == DG_GROUP_STEER_CPU)
        return attach_cpu_steering(fd, g->threads);
    return g->options.exclusive ? attach_hash_steering(fd, g->threads) : 0;
}

/* What follows a successful bind: member 0 of a kernel-chosen port or of an
 * exclusive group joins reuse-port only now (so it shares with no socket
 * that was there first; an exclusive group of one never does), the bound
 * address is read back, the last member attaches the steering. */
static int member_after_bind(struct member *m, dg_socket *sock, bool bound_alone)
{
    dg_group *g = m->group;
    int fd = dg_socket_fd(sock);
    if (fd < 0)
        return fd;
    int one = 1;
    bool join = bound_alone && (g->threads > 1 || !g->options.exclusive);
    if (join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        return -errno;
    dg_address a;
    int ret = dg_socket_address(sock, &a);
    if (ret < 0)
        return ret;
    atomic_store_explicit(&m->port, a.port, memory_order_relaxed);
    snprintf(m->address, sizeof(m->address), "%s", a.address);
    /* One socket needs no steering (and a lone socket that joined
     * reuse-port after bind has no group to attach it to: EINVAL). */
    if (m->index == g->threads - 1)
        ret = attach_steering(g, fd);
    return ret;
}

static int member_bind(struct member *m, dg_loop *loop)
{
    dg_group *g = m->group;
    const dg_group_options *o = &g->options;
    bool bound_alone = m->index == 0 && (o->port == 0 || o->exclusive);
    dg_socket_options so = o->socket;
    so.flags |= DG_SOCKET_REUSE_PORT;
    if (bound_alone)
        so.flags &= ~DG_SOCKET_REUSE_PORT;
    dg_socket *sock;
    int ret = dg_socket_create(loop, &so, &o->handlers, o->data, &sock);
    if (ret < 0)
        return ret;
    atomic_store_explicit(&m->sock, sock, memory_order_release);
    if (m->index == 0)
        ret = dg_socket_bind(sock, o->port, o->address, on_bound, m);
    else
        ret = dg_socket_bind(sock, atomic_load(&g->port), g->bind_address, on_bound, m);
    while (ret == 0 && !m->bind_done) {
        int run = dg_loop_run(loop, DG_RUN_ONCE);
        ret = run < 0 ? run : 0;
    }
    if (ret == 0)
        ret = m->bind_status;
    if (ret == 0)
        ret = member_after_bind(m, sock, bound_alone);
    return ret;
}

/* Tells the owner how the start went. A stop requested meanwhile makes
 * a successful start a cancelled one. */
static void member_report(struct member *m, int status)
{
    dg_group *g = m->group;
    pthread_mutex_lock(&g->lock);
    if (status == 0 && g->stopping)
        status = -ECANCELED;
    m->start_status = status;
    m->phase = status < 0 ? MEMBER_FAILED : MEMBER_READY;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void member_record_error(struct member *m, int err)
{
    if (m->error == 0)
        m->error = err;
}

/* Runs until the stop post ran and every handle closed. dg_loop_run
 * returns 1 after a dg_loop_stop() from outside the group: run on. */
static bool member_run(struct member *m, dg_loop *loop)
{
    for (;;) {
        int ret = dg_loop_run(loop, DG_RUN_DEFAULT);
        if (ret < 0) {
            member_record_error(m, ret);
            stop_for_sure(m->group);
            return false;
        }
        if (ret == 0 && m->stopping)
            return true;
    }
}

/* Refuses new posts, runs the ones that got in before that, closes the
 * loop. A loop whose ring failed is left open: its handles cannot be
 * closed without it. */
static void member_close(struct member *m, dg_loop *loop, bool healthy)
{
    pthread_rwlock_wrlock(&m->post_lock);
    m->loop_open = false;
    pthread_rwlock_unlock(&m->post_lock);
    /* dg_loop_post() may still touch the target after its callback ran
     * (the wake-up write follows the queue's unlock in engine/core/post.c), and
     * the stop post was sent under group->lock: taking it once waits for
     * that call to return before the loop and its eventfd go away. */
    pthread_mutex_lock(&m->group->lock);
    pthread_mutex_unlock(&m->group->lock);
    if (!healthy)
        return;
    int ret;
    while ((ret = dg_loop_run(loop, DG_RUN_DEFAULT)) > 0)
        ;
    if (ret == 0)
        ret = dg_loop_close(loop);
    if (ret < 0)
        member_record_error(m, ret);
}

static void *member_main(void *arg)
{
    struct member *m = arg;
    const dg_group_options *o = &m->group->options;
    dg_loop *loop = NULL;
    current_member = m;
    int ret = member_pin(m);
    if (ret == 0)
        ret = dg_loop_new(&loop, &o->loop);
    if (ret == 0 && (ret = member_timer_open(m, loop)) < 0)
        dg_loop_close(loop);
    if (ret < 0) {
        member_report(m, ret);
        return NULL;
    }
    bool stop_now = member_register(m, loop);
    ret = stop_now ? -ECANCELED : member_bind(m, loop);
    if (m->stopping) /* a stop post ran while binding */
        ret = -ECANCELED;
    if (ret == 0) {
        m->started = true; /* on_stop will run */
        if (o->on_start)
            o->on_start(loop, m->index, o->data);
    }
    member_report(m, ret);
    if (stop_now)
        member_stop(loop, m);
    member_close(m, loop, member_run(m, loop));
    current_member = NULL;
    return NULL;
}

/* ---- Starting (owner thread) --------------------------------------------- */

static int validate_options(const dg_group_options *o)
{
    if (o->threads < 1 || o->threads > DG_GROUP_MAX_THREADS)
        return DG_ERR_INVALID_ARG_VALUE;
    if (o->port < 0 || o->port > 65535)
        return DG_ERR_SOCKET_BAD_PORT;
    if (o->socket.type != DG_UDP4 && o->socket.type != DG_UDP6)
        return DG_ERR_SOCKET_BAD_TYPE;
    if (o->socket.signal != NULL)
        return DG_ERR_INVALID_ARG_VALUE;
    /* SO_REUSEADDR would let another socket with it share the port. */
    if (o->exclusive && (o->socket.flags & DG_SOCKET_REUSE_ADDR))
        return DG_ERR_INVALID_ARG_VALUE;
    if (o->steering != DG_GROUP_STEER_HASH && o->steering != DG_GROUP_STEER_CPU)
        return DG_ERR_INVALID_ARG_VALUE;
    return 0;
}

/* Member i runs on the (i % n)-th of the n CPUs this thread may use. */
static int assign_cpus(dg_group *g)
{
    cpu_set_t allowed;
    int cpus[CPU_SETSIZE];
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        return -errno;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[n++] = c;
    if (n == 0)
        return -EINVAL;
    for (unsigned i = 0; i < g->threads; i++)
        g->members[i].cpu = cpus[i % n];
    return 0;
}

static void group_free(dg_group *g)
{
    for (unsigned i = 0; i < g->threads; i++) {
        pthread_rwlock_destroy(&g->members[i].post_lock);
        pthread_mutex_destroy(&g->members[i].stats_lock);
    }
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    dg__free(g->address_copy);
    dg__free(g);
}

static dg_group *group_new(const dg_group_options *o)
{
    dg_group *g = dg__calloc(1, sizeof(*g) + (size_t)o->threads * sizeof(struct member));
    if (!g)
        return NULL;
    g->options = *o;
    if (o->address && !(g->address_copy = dg__strdup(o->address))) {
        dg__free(g);
        return NULL;
    }
    g->options.address = g->address_copy;
    g->options.stats_interval_ms = o->stats_interval_ms ? o->stats_interval_ms : 1000;
    g->threads = o->threads;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    for (unsigned i = 0; i < g->threads; i++) {
        struct member *m = &g->members[i];
        m->group = g;
        m->index = i;
        m->cpu = -1;
        pthread_rwlock_init(&m->post_lock, NULL);
        pthread_mutex_init(&m->stats_lock, NULL);
    }
    return g;
}

/* Starts member i and waits for its report. */
static int member_start(dg_group *g, unsigned i)
{
    struct member *m = &g->members[i];
    pthread_mutex_lock(&g->lock);
    bool stopping = g->stopping;
    pthread_mutex_unlock(&g->lock);
    if (stopping)
        return -ECANCELED;
    int ret = pthread_create(&m->thread, NULL, member_main, m);
    if (ret != 0)
        return -ret;
    m->thread_started = true;
    pthread_mutex_lock(&g->lock);
    while (m->phase == MEMBER_STARTING)
        pthread_cond_wait(&g->cond, &g->lock);
    ret = m->start_status;
    pthread_mutex_unlock(&g->lock);
    if (ret == 0 && i == 0) {
        atomic_store(&g->port, atomic_load(&m->port));
        snprintf(g->bind_address, sizeof(g->bind_address), "%s", m->address);
    }
    return ret;
}

static int join_threads(dg_group *g, dg_socket_stats *final_stats)
{
    int ret = 0;
    for (unsigned i = 0; i < g->threads; i++) {
        struct member *m = &g->members[i];
        if (m->thread_started)
            pthread_join(m->thread, NULL);
        if (ret == 0 && m->error < 0)
            ret = m->error;
        if (final_stats)
            final_stats[i] = m->published; /* the thread is gone: no lock */
    }
    return ret;
}

DG_EXPORT int dg_group_start(dg_group **out, const dg_group_options *options)
{
    if (!out || !options)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    int ret = validate_options(options);
    if (ret < 0)
        return ret;
    dg__owner_hold();
    dg_group *g = group_new(options);
    if (!g) {
        dg__owner_release();
        return -ENOMEM;
    }
    if (options->pin)
        ret = assign_cpus(g);
    for (unsigned i = 0; ret == 0 && i < g->threads; i++)
        ret = member_start(g, i);
    if (ret < 0) {
        stop_for_sure(g);
        join_threads(g, NULL);
        group_free(g);
        dg__owner_release();
        return ret;
    }
    *out = g;
    return 0;
}

DG_EXPORT int dg_group_join(dg_group *group, dg_socket_stats *final_stats)
{
    if (!group)
        return DG_ERR_INVALID_ARG_VALUE;
    if (current_member && current_member->group == group)
        return -EDEADLK;
    int ret = join_threads(group, final_stats);
    group_free(group);
    dg__owner_release();
    return ret;
}

/* ---- Accessors ------------------------------------------------------------- */

static struct member *member_at(const dg_group *g, unsigned index)
{
    if (!g || index >= g->threads)
        return NULL;
    return (struct member *)&g->members[index];
}

DG_EXPORT unsigned dg_group_threads(const dg_group *group)
{
    return group ? group->threads : 0;
}

DG_EXPORT int dg_group_port(const dg_group *group)
{
    if (!group)
        return DG_ERR_INVALID_ARG_VALUE;
    return atomic_load_explicit(&((dg_group *)group)->port, memory_order_relaxed);
}

DG_EXPORT dg_loop *dg_group_loop(const dg_group *group, unsigned index)
{
    struct member *m = member_at(group, index);
    return m ? atomic_load_explicit(&m->loop, memory_order_acquire) : NULL;
}

DG_EXPORT dg_socket *dg_group_socket(const dg_group *group, unsigned index)
{
    struct member *m = member_at(group, index);
    return m ? atomic_load_explicit(&m->sock, memory_order_acquire) : NULL;
}

DG_EXPORT int dg_group_cpu(const dg_group *group, unsigned index)
{
    struct member *m = member_at(group, index);
    return m ? m->cpu : DG_ERR_INVALID_ARG_VALUE;
}

DG_EXPORT int dg_group_post(dg_group *group, unsigned index, dg_post_cb cb, void *arg)
{
    struct member *m = member_at(group, index);
    if (!m || !cb)
        return DG_ERR_INVALID_ARG_VALUE;
    pthread_rwlock_rdlock(&m->post_lock);
    int ret = DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (m->loop_open)
        ret = dg_loop_post(atomic_load_explicit(&m->loop, memory_order_acquire), cb, arg);
    pthread_rwlock_unlock(&m->post_lock);
    return ret;
}

DG_EXPORT int dg_group_stats(dg_group *group, unsigned index, dg_socket_stats *out)
{
    struct member *m = member_at(group, index);
    if (!m || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    dg_socket *sock = atomic_load_explicit(&m->sock, memory_order_acquire);
    if (current_member == m && sock && !m->closing_socket)
        return dg_socket_get_stats(sock, out);
    pthread_mutex_lock(&m->stats_lock);
    *out = m->published;
    pthread_mutex_unlock(&m->stats_lock);
    return 0;
}

DG_EXPORT int dg_group_index(const dg_loop *loop)
{
    struct member *m = current_member;
    if (!loop || !m || atomic_load_explicit(&m->loop, memory_order_relaxed) != loop)
        return DG_ERR_INVALID_ARG_VALUE;
    return (int)m->index;
}

DG_EXPORT dg_group *dg_group_from_loop(const dg_loop *loop)
{
    struct member *m = current_member;
    if (!loop || !m || atomic_load_explicit(&m->loop, memory_order_relaxed) != loop)
        return NULL;
    return m->group;
}

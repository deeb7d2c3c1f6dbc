/* Reuse-port groups (dgring/group.h): N loops in N threads on one
 * 127.0.0.1 (or ::1) port. Many flows with distinct source ports are
 * received exactly once in total, each flow on one loop only, every
 * callback on its member's thread; a group stops cleanly from another
 * thread, from several at once, from a message callback and from on_start
 * (then the start is cancelled); a start that fails leaves no thread and no
 * fd behind; CPU steering attaches its BPF program (skipped with the reason
 * when the kernel refuses it) and sends each datagram to the member pinned
 * to the receiving CPU; dg_group_post and dg_loop_post reach the right
 * member, also while the group stops. Senders are plain BSD sockets, paced
 * per round so no receive queue can overflow; nothing here measures time.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"

#define MAX_FLOWS 64
#define MAX_MEMBERS 4
#define MAX_PER_FLOW 128
#define MAGIC_DATA 0x64677270u /* "dgrp" */
#define MAGIC_STOP 0x73746f70u /* "stop" */

struct payload {
    uint32_t magic;
    uint32_t flow;
    uint32_t seq;
};

/* Shared by every member: atomics, or slots written by one member only. */
struct ctx {
    unsigned threads;
    atomic_int total;
    atomic_int per_loop[MAX_MEMBERS];
    atomic_int flow_loop[MAX_FLOWS][MAX_MEMBERS];
    atomic_int seen[MAX_FLOWS][MAX_PER_FLOW];
    atomic_int bad;          /* wrong thread or index, malformed datagram */
    atomic_int starts;
    atomic_int stops;
    atomic_int closes;
    atomic_int listening;
    atomic_int stop_calls;   /* dg_group_stop made from a callback */
    int stop_in_start_index; /* on_start of this member stops the group; -1 none */
    pthread_t thread_of[MAX_MEMBERS]; /* slot i written by member i's on_start */
    atomic_bool thread_known[MAX_MEMBERS];
};

static void ctx_init(struct ctx *c, unsigned threads)
{
    memset(c, 0, sizeof(*c));
    c->threads = threads;
    c->stop_in_start_index = -1;
}

/* The member index of the calling callback, checked against its thread. */
static int member_index(struct ctx *c, dg_loop *loop)
{
    int idx = dg_group_index(loop);
    if (idx < 0 || (unsigned)idx >= c->threads) {
        atomic_fetch_add(&c->bad, 1);
        return -1;
    }
    if (atomic_load(&c->thread_known[idx]) && !pthread_equal(c->thread_of[idx], pthread_self()))
        atomic_fetch_add(&c->bad, 1);
    return idx;
}

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    struct ctx *c = data;
    dg_loop *loop = dg_socket_loop(sock);
    int idx = member_index(c, loop);
    struct payload p;
    if (idx < 0 || msg->length != sizeof(p)) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    memcpy(&p, msg->data, sizeof(p));
    if (p.magic == MAGIC_STOP) {
        atomic_fetch_add(&c->stop_calls, 1);
        if (dg_group_stop(dg_group_from_loop(loop)) != 0)
            atomic_fetch_add(&c->bad, 1);
        return;
    }
    if (p.magic != MAGIC_DATA || p.flow >= MAX_FLOWS || p.seq >= MAX_PER_FLOW) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    atomic_fetch_add(&c->seen[p.flow][p.seq], 1);
    atomic_fetch_add(&c->flow_loop[p.flow][idx], 1);
    atomic_fetch_add(&c->per_loop[idx], 1);
    atomic_fetch_add(&c->total, 1);
}

static void on_listening(dg_socket *sock, void *data)
{
    (void)sock;
    atomic_fetch_add(&((struct ctx *)data)->listening, 1);
}

static void on_close(dg_socket *sock, void *data)
{
    (void)sock;
    atomic_fetch_add(&((struct ctx *)data)->closes, 1);
}

static void on_start(dg_loop *loop, unsigned index, void *data)
{
    struct ctx *c = data;
    if (index >= MAX_MEMBERS || dg_group_index(loop) != (int)index ||
        dg_group_from_loop(loop) == NULL) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    c->thread_of[index] = pthread_self();
    atomic_store(&c->thread_known[index], true);
    atomic_fetch_add(&c->starts, 1);
    if ((int)index == c->stop_in_start_index) {
        atomic_fetch_add(&c->stop_calls, 1);
        dg_group_stop(dg_group_from_loop(loop));
    }
}

static void on_stop(dg_loop *loop, unsigned index, void *data)
{
    struct ctx *c = data;
    if (member_index(c, loop) != (int)index)
        atomic_fetch_add(&c->bad, 1);
    atomic_fetch_add(&c->stops, 1);
}

static dg_group_options group_options(struct ctx *c, unsigned threads, dg_socket_type type)
{
    dg_group_options o;
    dg_group_options_init(&o);
    o.threads = threads;
    o.address = type == DG_UDP6 ? "::1" : "127.0.0.1";
    o.socket.type = type;
    o.handlers.on_message = on_message;
    o.handlers.on_listening = on_listening;
    o.handlers.on_close = on_close;
    o.on_start = on_start;
    o.on_stop = on_stop;
    o.data = c;
    /* Small buffers: this test's datagrams are 12 bytes. */
    o.loop.recv_buffers = 256;
    o.loop.recv_buffer_size = 2048;
    return o;
}

/* ---- Waiting without timing assertions ---------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_briefly(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
    nanosleep(&ts, NULL);
}

/* Waits for *counter >= target; the deadline only turns a hang into a
 * readable failure. */
static void wait_count(atomic_int *counter, int target, const char *what)
{
    uint64_t deadline = now_ms() + DGT_WAIT_MS;
    while (atomic_load(counter) < target) {
        cr_assert(now_ms() < deadline, "%s: %d of %d arrived within the watchdog's %u ms", what,
                  atomic_load(counter), target, DGT_WAIT_MS);
        pause_briefly();
    }
}

static void *nothing(void *arg)
{
    return arg;
}

/* Threads of this process. One thread is created and joined first, so a
 * helper thread a runtime starts with the first pthread_create (TSan's
 * background thread) is counted before and after alike. */
static int open_tasks(void)
{
    static bool warmed;
    if (!warmed) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, nothing, NULL), 0);
        pthread_join(t, NULL);
        warmed = true;
    }
    DIR *dir = opendir("/proc/self/task");
    cr_assert_not_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* ---- Senders -------------------------------------------------------------- */

static void send_one(int fd, int family, int port, uint32_t magic, uint32_t flow, uint32_t seq)
{
    struct payload p = {.magic = magic, .flow = flow, .seq = seq};
    dgt_plain_send(fd, family, port, &p, sizeof(p));
}

/* flows sockets (distinct source ports) each send per_flow numbered
 * datagrams, one per flow per round; a round is received in full before
 * the next is sent, so at most `flows` datagrams wait in any queue. */
static void send_flows(struct ctx *c, int family, int port, int flows, int per_flow)
{
    int fds[MAX_FLOWS];
    cr_assert(flows <= MAX_FLOWS && per_flow <= MAX_PER_FLOW);
    for (int f = 0; f < flows; f++)
        fds[f] = dgt_plain_socket(family, 0);
    int base = atomic_load(&c->total);
    for (int r = 0; r < per_flow; r++) {
        for (int f = 0; f < flows; f++)
            send_one(fds[f], family, port, MAGIC_DATA, (uint32_t)f, (uint32_t)r);
        wait_count(&c->total, base + (r + 1) * flows, "datagrams");
    }
    for (int f = 0; f < flows; f++)
        close(fds[f]);
}

static void send_stop_datagram(int family, int port)
{
    int fd = dgt_plain_socket(family, 0);
    send_one(fd, family, port, MAGIC_STOP, 0, 0);
    close(fd);
}

/* ---- Checks --------------------------------------------------------------- */

/* Every datagram exactly once, each flow on one loop only; returns how many
 * loops received something. */
static unsigned check_exactly_once(struct ctx *c, int flows, int per_flow)
{
    cr_assert_eq(atomic_load(&c->total), flows * per_flow);
    for (int f = 0; f < flows; f++) {
        for (int s = 0; s < per_flow; s++)
            cr_assert_eq(atomic_load(&c->seen[f][s]), 1, "flow %d datagram %d seen %d times", f,
                         s, atomic_load(&c->seen[f][s]));
        unsigned loops = 0;
        for (unsigned i = 0; i < c->threads; i++)
            loops += atomic_load(&c->flow_loop[f][i]) > 0;
        cr_assert_eq(loops, 1, "flow %d was received by %u loops", f, loops);
    }
    unsigned used = 0;
    char dist[128] = "";
    for (unsigned i = 0; i < c->threads; i++) {
        int n = atomic_load(&c->per_loop[i]);
        used += n > 0;
        size_t len = strlen(dist);
        snprintf(dist + len, sizeof(dist) - len, " %d", n);
    }
    cr_log_info("%u loops, datagrams per loop:%s", c->threads, dist);
    return used;
}

/* What every test ends with: callbacks ran exactly once per member. */
static void check_callbacks(struct ctx *c, int started_members, int sockets)
{
    cr_assert_eq(atomic_load(&c->bad), 0, "callbacks on the wrong thread or with bad data");
    cr_assert_eq(atomic_load(&c->starts), started_members);
    cr_assert_eq(atomic_load(&c->stops), started_members);
    cr_assert_eq(atomic_load(&c->closes), sockets);
}

static void check_final_stats(struct ctx *c, const dg_socket_stats *st)
{
    uint64_t rx = 0;
    for (unsigned i = 0; i < c->threads; i++) {
        cr_assert_eq(st[i].rx_datagrams, (uint64_t)atomic_load(&c->per_loop[i]), "member %u", i);
        cr_assert_eq(st[i].rx_kernel_drops, 0, "member %u dropped", i);
        rx += st[i].rx_datagrams;
    }
    cr_assert_eq(rx, (uint64_t)atomic_load(&c->total));
}

static void check_accessors(dg_group *g, unsigned threads)
{
    cr_assert_eq(dg_group_threads(g), threads);
    cr_assert_gt(dg_group_port(g), 0);
    for (unsigned i = 0; i < threads; i++) {
        cr_assert_not_null(dg_group_loop(g, i));
        cr_assert_not_null(dg_group_socket(g, i));
        for (unsigned j = 0; j < i; j++)
            cr_assert_neq(dg_group_loop(g, i), dg_group_loop(g, j));
    }
    cr_assert_null(dg_group_loop(g, threads));
    cr_assert_null(dg_group_socket(g, threads));
    /* Not a member's thread: */
    dgt_assert_code(dg_group_index(dg_group_loop(g, 0)), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(dg_group_from_loop(dg_group_loop(g, 0)));
}

/* ---- Many flows ------------------------------------------------------------ */

/* exclusive: the default (the group's own steering program); shared: the
 * kernel's reuse-port hash. */
static void many_flows_steered(unsigned threads, dg_socket_type type, int flows, int per_flow,
                               bool exclusive)
{
    static struct ctx c;
    int family = dgt_family(type);
    int fds_before = dgt_open_fds(), tasks_before = open_tasks();
    ctx_init(&c, threads);
    dg_group_options o = group_options(&c, threads, type);
    o.exclusive = exclusive;
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    check_accessors(g, threads);
    cr_assert_eq(atomic_load(&c.starts), (int)threads, "on_start ran before start returned");
    cr_assert_eq(atomic_load(&c.listening), (int)threads);

    send_flows(&c, family, dg_group_port(g), flows, per_flow);
    dgt_assert_code(dg_group_stop(g), 0);
    dg_socket_stats st[MAX_MEMBERS];
    dgt_assert_code(dg_group_join(g, st), 0);

    unsigned used = check_exactly_once(&c, flows, per_flow);
    /* 64 flows all hashed to one member: probability 2^-63 with 2 (and
     * the exclusive group's hash is deterministic for given ports). */
    cr_assert_geq(used, 2u, "the steering spread %d flows over %u loops", flows, used);
    check_callbacks(&c, (int)threads, (int)threads);
    check_final_stats(&c, st);
    cr_assert_eq(dgt_open_fds(), fds_before, "fds leaked");
    cr_assert_eq(open_tasks(), tasks_before, "threads leaked");
}

TestSuite(group, .description = "reuse-port groups: one loop per thread on one port");

static void many_flows(unsigned threads, dg_socket_type type, int flows, int per_flow)
{
    many_flows_steered(threads, type, flows, per_flow, true);
}

Test(group, two_loops_receive_every_datagram_of_many_flows_exactly_once)
{
    many_flows(2, DG_UDP4, 64, 100);
}

Test(group, a_shared_group_spreads_flows_with_the_kernels_hash)
{
    many_flows_steered(2, DG_UDP4, 64, 100, false);
}

Test(group, four_loops_receive_every_datagram_of_many_flows_exactly_once)
{
    many_flows(4, DG_UDP4, 64, 100);
}

Test(group, two_loops_on_ipv6_loopback)
{
    dgt_require_ipv6();
    many_flows(2, DG_UDP6, 64, 20);
}

Test(group, a_single_flow_stays_on_one_loop)
{
    static struct ctx c;
    ctx_init(&c, 4);
    dg_group_options o = group_options(&c, 4, DG_UDP4);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    send_flows(&c, AF_INET, dg_group_port(g), 1, MAX_PER_FLOW);
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(check_exactly_once(&c, 1, MAX_PER_FLOW), 1u);
    check_callbacks(&c, 4, 4);
}

/* ---- Stopping --------------------------------------------------------------- */

static void *stop_thread(void *arg)
{
    dg_group_stop(arg);
    return NULL;
}

Test(group, stops_from_another_thread_and_from_several_at_once)
{
    static struct ctx c;
    ctx_init(&c, 4);
    dg_group_options o = group_options(&c, 4, DG_UDP4);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    send_flows(&c, AF_INET, dg_group_port(g), 16, 10);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, stop_thread, g), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    dgt_assert_code(dg_group_stop(g), 0); /* idempotent */
    dgt_assert_code(dg_group_join(g, NULL), 0);
    check_exactly_once(&c, 16, 10);
    check_callbacks(&c, 4, 4);
}

Test(group, stops_from_inside_a_message_callback)
{
    static struct ctx c;
    int fds_before = dgt_open_fds(), tasks_before = open_tasks();
    ctx_init(&c, 2);
    dg_group_options o = group_options(&c, 2, DG_UDP4);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    send_flows(&c, AF_INET, dg_group_port(g), 8, 10);
    send_stop_datagram(AF_INET, dg_group_port(g));
    /* Nobody else stops it: join returns once the callback's stop ran. */
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&c.stop_calls), 1);
    check_exactly_once(&c, 8, 10);
    check_callbacks(&c, 2, 2);
    cr_assert_eq(dgt_open_fds(), fds_before, "fds leaked");
    cr_assert_eq(open_tasks(), tasks_before, "threads leaked");
}

Test(group, a_stop_from_on_start_cancels_the_start)
{
    static struct ctx c;
    int fds_before = dgt_open_fds(), tasks_before = open_tasks();
    ctx_init(&c, 3);
    c.stop_in_start_index = 1;
    dg_group_options o = group_options(&c, 3, DG_UDP4);
    dg_group *g = (dg_group *)&c; /* must be reset */
    dgt_assert_code(dg_group_start(&g, &o), -ECANCELED);
    cr_assert_null(g);
    /* Members 0 and 1 started and stopped; member 2 never started. */
    check_callbacks(&c, 2, 2);
    cr_assert_eq(dgt_open_fds(), fds_before, "fds leaked");
    cr_assert_eq(open_tasks(), tasks_before, "threads leaked");
}

/* ---- Start errors ------------------------------------------------------------ */

Test(group, a_port_in_use_without_reuse_port_fails_the_start_and_leaks_nothing)
{
    static struct ctx c;
    int plain = dgt_plain_socket(AF_INET, 0); /* no SO_REUSEPORT */
    int fds_before = dgt_open_fds(), tasks_before = open_tasks();
    ctx_init(&c, 4);
    dg_group_options o = group_options(&c, 4, DG_UDP4);
    o.port = dgt_plain_port(plain);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), -EADDRINUSE);
    cr_assert_null(g);
    check_callbacks(&c, 0, 1); /* member 0's socket closed; no on_start */
    cr_assert_eq(atomic_load(&c.listening), 0);
    cr_assert_eq(dgt_open_fds(), fds_before, "fds leaked");
    cr_assert_eq(open_tasks(), tasks_before, "threads leaked");
    close(plain);
}

Test(group, invalid_options_are_refused_before_any_thread_starts)
{
    static struct ctx c;
    int tasks_before = open_tasks(), fds_before = dgt_open_fds();
    ctx_init(&c, 2);
    dg_group *g = NULL;
    dg_group_options o = group_options(&c, 2, DG_UDP4);
    dgt_assert_code(dg_group_start(NULL, &o), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_start(&g, NULL), DG_ERR_INVALID_ARG_VALUE);
    o.threads = 0;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    o.threads = DG_GROUP_MAX_THREADS + 1;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    o = group_options(&c, 2, DG_UDP4);
    o.port = 65536;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_SOCKET_BAD_PORT);
    o.port = -1;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_SOCKET_BAD_PORT);
    o = group_options(&c, 2, DG_UDP4);
    o.socket.type = (dg_socket_type)5;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_SOCKET_BAD_TYPE);
    o = group_options(&c, 2, DG_UDP4);
    o.steering = (dg_group_steering)7;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    o = group_options(&c, 2, DG_UDP4);
    o.socket.signal = (dg_abort *)&c;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    o = group_options(&c, 2, DG_UDP4);
    o.socket.flags = DG_SOCKET_REUSE_ADDR; /* would let SO_REUSEADDR sockets share */
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(g);
    cr_assert_eq(open_tasks(), tasks_before);
    /* Errors found by member 0 (a loop option, an address of the other
     * family, unknown socket flags): its thread is joined, nothing stays. */
    o = group_options(&c, 2, DG_UDP4);
    o.loop.recv_buffers = 3;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    o = group_options(&c, 2, DG_UDP4);
    o.address = "::1";
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ADDRESS);
    o = group_options(&c, 2, DG_UDP4);
    o.socket.flags = 0x8000u;
    dgt_assert_code(dg_group_start(&g, &o), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_null(g);
    check_callbacks(&c, 0, 1); /* the socket of the address case */
    cr_assert_eq(open_tasks(), tasks_before, "threads leaked");
    cr_assert_eq(dgt_open_fds(), fds_before, "fds leaked");
    /* Calls on a NULL group. */
    dgt_assert_code(dg_group_stop(NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_join(NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_port(NULL), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_group_threads(NULL), 0);
    cr_assert_null(dg_group_loop(NULL, 0));
    dgt_assert_code(dg_group_index(NULL), DG_ERR_INVALID_ARG_VALUE);
}

/* ---- CPU steering ------------------------------------------------------------- */

static bool lo_rps_off(void)
{
    FILE *f = fopen("/sys/class/net/lo/queues/rx-0/rps_cpus", "r");
    if (!f)
        return true; /* no RPS support compiled in */
    char buf[128] = "";
    bool off = fgets(buf, sizeof(buf), f) != NULL && strspn(buf, "0,\n") == strlen(buf);
    fclose(f);
    return off;
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof(set), &set), 0);
}

Test(group, cpu_steering_sends_each_datagram_to_the_member_of_the_receiving_cpu)
{
    static struct ctx c;
    cpu_set_t allowed;
    cr_assert_eq(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    int cpus[MAX_FLOWS], ncpu = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && ncpu < MAX_FLOWS; cpu++)
        if (CPU_ISSET(cpu, &allowed))
            cpus[ncpu++] = cpu;
    unsigned threads = ncpu >= 4 ? 4 : 2;
    ctx_init(&c, threads);
    dg_group_options o = group_options(&c, threads, DG_UDP4);
    o.pin = true;
    o.steering = DG_GROUP_STEER_CPU;
    dg_group *g = NULL;
    int ret = dg_group_start(&g, &o);
    if (ret == -EPERM || ret == -EINVAL || ret == -ENOPROTOOPT || ret == -EOPNOTSUPP)
        cr_skip_test("the kernel refused SO_ATTACH_REUSEPORT_CBPF or pinning: %s",
                     dg_err_name(ret));
    dgt_assert_code(ret, 0);
    for (unsigned i = 0; i < threads; i++)
        cr_assert_eq(dg_group_cpu(g, i), cpus[i % (unsigned)ncpu]);

    /* On loopback the sender's CPU does the receive work, so a sender
     * pinned to CPU x makes CPU x the receiving CPU. Flow f = CPU index,
     * but all from one socket: the 4-tuple (which the default hash
     * steering would follow) is the same for every CPU. */
    int fd = dgt_plain_socket(AF_INET, 0);
    int port = dg_group_port(g);
    for (int f = 0; f < ncpu; f++) {
        pin_self(cpus[f]);
        int base = atomic_load(&c.total);
        for (int s = 0; s < 32; s++)
            send_one(fd, AF_INET, port, MAGIC_DATA, (uint32_t)f, (uint32_t)s);
        wait_count(&c.total, base + 32, "steered datagrams");
    }
    close(fd);
    cr_assert_eq(sched_setaffinity(0, sizeof(allowed), &allowed), 0);
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&c.total), ncpu * 32);
    for (int f = 0; f < ncpu; f++)
        for (int s = 0; s < 32; s++)
            cr_assert_eq(atomic_load(&c.seen[f][s]), 1);
    check_callbacks(&c, (int)threads, (int)threads);
    /* The BPF program answers cpu % threads: exact when the allowed CPUs
     * are 0..n-1 and nothing (RPS) moves loopback's receive work. */
    bool exact = lo_rps_off() && cpus[ncpu - 1] == ncpu - 1;
    for (int f = 0; f < ncpu; f++) {
        int want = cpus[f] % (int)threads;
        if (exact)
            cr_assert_eq(atomic_load(&c.flow_loop[f][want]), 32,
                         "datagrams sent on CPU %d reached member %d %d times of 32", cpus[f],
                         want, atomic_load(&c.flow_loop[f][want]));
        else
            cr_log_warn("CPU %d -> member %d: %d of 32 (RPS on lo or sparse CPUs: not checked)",
                        cpus[f], want, atomic_load(&c.flow_loop[f][want]));
    }
}

/* ---- Posts between members -------------------------------------------------- */

struct post_ctx {
    struct ctx *c;
    dg_group *group;         /* set before the first post */
    atomic_int arrived[MAX_MEMBERS];
    atomic_int forwarded;
    atomic_int wrong;
    atomic_int late_ok;      /* accepted by dg_group_post after stop */
    atomic_int late_ran;
};

struct post_msg {
    struct post_ctx *pc;
    unsigned target;
    int hops;                /* forwards still to make */
    bool raw;                /* forward with dg_loop_post(dg_group_loop()) */
};

static struct post_msg post_msgs[MAX_MEMBERS * 8];

static void on_post(dg_loop *loop, void *arg)
{
    struct post_msg *m = arg;
    struct post_ctx *pc = m->pc;
    int idx = dg_group_index(loop);
    if (idx != (int)m->target || dg_group_from_loop(loop) != pc->group)
        atomic_fetch_add(&pc->wrong, 1);
    else
        atomic_fetch_add(&pc->arrived[idx], 1);
    if (m->hops-- <= 0)
        return;
    unsigned threads = dg_group_threads(pc->group);
    m->target = (m->target + 1) % threads;
    int ret = m->raw ? dg_loop_post(dg_group_loop(pc->group, m->target), on_post, m)
                     : dg_group_post(pc->group, m->target, on_post, m);
    if (ret != 0)
        atomic_fetch_add(&pc->wrong, 1);
    atomic_fetch_add(&pc->forwarded, 1);
}

static void on_late_post(dg_loop *loop, void *arg)
{
    (void)loop;
    atomic_fetch_add(&((struct post_ctx *)arg)->late_ran, 1);
}

/* Posts to every member until each refuses (its loop closed). */
static void *late_poster(void *arg)
{
    struct post_ctx *pc = arg;
    unsigned threads = dg_group_threads(pc->group);
    bool open[MAX_MEMBERS] = {true, true, true, true};
    for (unsigned left = threads; left > 0;) {
        for (unsigned i = 0; i < threads; i++) {
            if (!open[i])
                continue;
            int ret = dg_group_post(pc->group, i, on_late_post, pc);
            if (ret == 0) {
                atomic_fetch_add(&pc->late_ok, 1);
            } else {
                if (ret != DG_ERR_SOCKET_DGRAM_NOT_RUNNING)
                    atomic_fetch_add(&pc->wrong, 1);
                open[i] = false;
                left--;
            }
        }
        sched_yield();
    }
    return NULL;
}

Test(group, posts_reach_the_right_member_from_outside_and_between_loops)
{
    static struct ctx c;
    static struct post_ctx pc;
    const unsigned threads = 4;
    const int hops = 50;
    ctx_init(&c, threads);
    memset(&pc, 0, sizeof(pc));
    pc.c = &c;
    dg_group_options o = group_options(&c, threads, DG_UDP4);
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    pc.group = g;
    dgt_assert_code(dg_group_post(g, threads, on_post, &post_msgs[0]), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_post(g, 0, NULL, NULL), DG_ERR_INVALID_ARG_VALUE);
    /* Two messages per member start on it and travel round the ring of
     * members, one by dg_group_post, one by raw dg_loop_post. */
    int n = 0;
    for (unsigned i = 0; i < threads; i++)
        for (int k = 0; k < 2; k++) {
            post_msgs[n] = (struct post_msg){.pc = &pc, .target = i, .hops = hops, .raw = k};
            dgt_assert_code(dg_group_post(g, i, on_post, &post_msgs[n]), 0);
            n++;
        }
    wait_count(&pc.forwarded, n * hops, "forwarded posts");
    uint64_t deadline = now_ms() + DGT_WAIT_MS;
    for (;;) {
        int sum = 0;
        for (unsigned i = 0; i < threads; i++)
            sum += atomic_load(&pc.arrived[i]);
        if (sum == n * (hops + 1))
            break;
        cr_assert(now_ms() < deadline, "posts arrived: %d of %d", sum, n * (hops + 1));
        pause_briefly();
    }
    for (unsigned i = 0; i < threads; i++)
        cr_assert_eq(atomic_load(&pc.arrived[i]), 2 * (hops + 1), "member %u", i);

    /* While the group stops, dg_group_post from another thread either
     * delivers (exactly once) or refuses; it never reaches a closed loop. */
    pthread_t poster;
    cr_assert_eq(pthread_create(&poster, NULL, late_poster, &pc), 0);
    wait_count(&pc.late_ok, 100, "posts before the stop");
    dgt_assert_code(dg_group_stop(g), 0);
    pthread_join(poster, NULL);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&pc.wrong), 0);
    cr_assert_eq(atomic_load(&pc.late_ran), atomic_load(&pc.late_ok),
                 "every post dg_group_post accepted ran exactly once");
    cr_log_info("%d posts accepted by the poster racing the stop", atomic_load(&pc.late_ok));
    check_callbacks(&c, (int)threads, (int)threads);
}

/* ---- Statistics ----------------------------------------------------------------- */

struct stats_probe {
    dg_group *group;
    unsigned index;
    dg_socket_stats live;
    atomic_bool done;
};

static void on_stats_post(dg_loop *loop, void *arg)
{
    struct stats_probe *p = arg;
    (void)loop;
    dg_group_stats(p->group, p->index, &p->live);
    atomic_store(&p->done, true);
}

Test(group, stats_are_published_to_other_threads_and_live_on_the_member)
{
    static struct ctx c;
    ctx_init(&c, 2);
    dg_group_options o = group_options(&c, 2, DG_UDP4);
    o.stats_interval_ms = 5;
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    send_flows(&c, AF_INET, dg_group_port(g), 32, 10);
    /* Published: eventually the totals, read from this thread. */
    uint64_t deadline = now_ms() + DGT_WAIT_MS;
    for (;;) {
        dg_socket_stats a, b;
        dgt_assert_code(dg_group_stats(g, 0, &a), 0);
        dgt_assert_code(dg_group_stats(g, 1, &b), 0);
        if (a.rx_datagrams + b.rx_datagrams == 320)
            break;
        cr_assert(now_ms() < deadline, "published %llu of 320",
                  (unsigned long long)(a.rx_datagrams + b.rx_datagrams));
        pause_briefly();
    }
    /* Live: read on the member's own thread. */
    static struct stats_probe probes[2];
    for (unsigned i = 0; i < 2; i++) {
        probes[i] = (struct stats_probe){.group = g, .index = i};
        dgt_assert_code(dg_group_post(g, i, on_stats_post, &probes[i]), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        deadline = now_ms() + DGT_WAIT_MS;
        while (!atomic_load(&probes[i].done)) {
            cr_assert(now_ms() < deadline);
            pause_briefly();
        }
        cr_assert_eq(probes[i].live.rx_datagrams, (uint64_t)atomic_load(&c.per_loop[i]));
    }
    dg_socket_stats st;
    dgt_assert_code(dg_group_stats(g, 2, &st), DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_group_stop(g), 0);
    dg_socket_stats fin[2];
    dgt_assert_code(dg_group_join(g, fin), 0);
    check_final_stats(&c, fin);
    check_callbacks(&c, 2, 2);
}

/* ---- on_stop closes what on_start opened -------------------------------------- */

static dg_timer *user_timers[MAX_MEMBERS];
static atomic_int user_ticks, user_timer_closes;

static void on_user_tick(dg_timer *t, void *data)
{
    (void)t;
    (void)data;
    atomic_fetch_add(&user_ticks, 1);
}

static void on_user_timer_closed(dg_timer *t, void *data)
{
    (void)t;
    (void)data;
    atomic_fetch_add(&user_timer_closes, 1);
}

static void start_timer(dg_loop *loop, unsigned index, void *data)
{
    on_start(loop, index, data);
    if (dg_timer_new(loop, &user_timers[index]) == 0)
        dg_timer_start(user_timers[index], 1, 1, on_user_tick, NULL);
}

static void stop_timer(dg_loop *loop, unsigned index, void *data)
{
    on_stop(loop, index, data);
    dg_timer_close(user_timers[index], on_user_timer_closed, NULL);
}

Test(group, handles_opened_in_on_start_are_closed_in_on_stop)
{
    static struct ctx c;
    ctx_init(&c, 2);
    dg_group_options o = group_options(&c, 2, DG_UDP4);
    o.on_start = start_timer;
    o.on_stop = stop_timer;
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    wait_count(&user_ticks, 4, "timer ticks");
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&user_timer_closes), 2);
    check_callbacks(&c, 2, 2);
}

Test(group, on_stop_runs_for_every_started_member_without_an_on_start)
{
    static struct ctx c;
    ctx_init(&c, 3);
    dg_group_options o = group_options(&c, 3, DG_UDP4);
    o.on_start = NULL;
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    dgt_assert_code(dg_group_stop(g), 0);
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&c.stops), 3);
    cr_assert_eq(atomic_load(&c.closes), 3);
    cr_assert_eq(atomic_load(&c.bad), 0);
}

/* ---- A signal stops the group ---------------------------------------------
 * The pattern of docs/signals.md: the owner blocks the signal before the
 * group's threads start (they inherit the mask), member 0 watches it with a
 * dg_signal opened in on_start and closed in on_stop, and its callback
 * stops the group. The signal is sent to the process, as kill(1) would. */

static dg_signal *member_signal;
static atomic_int signal_stops, signal_closes;

/* data is member 0's loop. */
static void on_group_signal(dg_signal *sig, int signum, void *data)
{
    (void)sig;
    if (signum == SIGUSR1 && dg_group_index(data) == 0 &&
        dg_group_stop(dg_group_from_loop(data)) == 0)
        atomic_fetch_add(&signal_stops, 1);
}

static void on_group_signal_closed(dg_signal *sig, void *data)
{
    (void)sig;
    (void)data;
    atomic_fetch_add(&signal_closes, 1);
}

static void signal_in_start(dg_loop *loop, unsigned index, void *data)
{
    on_start(loop, index, data);
    if (index == 0 && dg_signal_new(loop, &member_signal) == 0)
        dg_signal_start(member_signal, SIGUSR1, on_group_signal, loop);
}

static void signal_in_stop(dg_loop *loop, unsigned index, void *data)
{
    on_stop(loop, index, data);
    if (index == 0)
        dg_signal_close(member_signal, on_group_signal_closed, NULL);
}

Test(group, a_signal_to_the_process_stops_the_group_through_member_0)
{
    static struct ctx c;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    ctx_init(&c, 2);
    dg_group_options o = group_options(&c, 2, DG_UDP4);
    o.on_start = signal_in_start;
    o.on_stop = signal_in_stop;
    dg_group *g = NULL;
    dgt_assert_code(dg_group_start(&g, &o), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    /* No dg_group_stop() here: the signal's callback makes it. */
    dgt_assert_code(dg_group_join(g, NULL), 0);
    cr_assert_eq(atomic_load(&signal_stops), 1);
    cr_assert_eq(atomic_load(&signal_closes), 1);
    check_callbacks(&c, 2, 2);
}

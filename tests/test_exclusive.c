/* Exclusive ports, with two real processes: this test holds a port (an
 * exclusive group, a shared one, or a single socket) and starts
 * tests/support/bind_probe.c, which tries to take the same port as another
 * copy of a program would. An exclusive group refuses to start on a port
 * anyone holds, and a second exclusive group, a dgring socket without
 * SO_REUSEPORT, or an exclusive group of one met by anything, gets
 * EADDRINUSE; a process that sets SO_REUSEPORT itself (dgring's
 * DG_SOCKET_REUSE_PORT, a non-exclusive group, or plain socket(2)) is let
 * in by the kernel but receives nothing: every datagram of many flows
 * reaches the exclusive group. A shared group (exclusive = false) does
 * split its flows with the joiner, for contrast. A single dgring socket
 * without DG_SOCKET_REUSE_PORT is exclusive by the kernel's rules.
 * Traffic: plain sockets on 127.0.0.1 / ::1, one datagram per flow. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"

#define FLOWS 120

TestSuite(exclusive, .timeout = 60);

extern char **environ;

static atomic_int group_received;

static void count_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    (void)data;
    atomic_fetch_add(&group_received, 1);
}

/* ---- The other process ---------------------------------------------------- */

struct probe {
    pid_t pid;
    FILE *out;
    char line[128];
};

/* Reads one line within DGT_WAIT_MS. */
static bool probe_line(struct probe *p)
{
    struct pollfd pfd = {.fd = fileno(p->out), .events = POLLIN};
    if (poll(&pfd, 1, DGT_WAIT_MS) <= 0 || !fgets(p->line, sizeof(p->line), p->out))
        return false;
    p->line[strcspn(p->line, "\n")] = '\0';
    return true;
}

/* Starts bind-probe MODE FAMILY PORT; returns after its first line. */
static void probe_start(struct probe *p, const char *mode, int family, int port)
{
    const char *exe = getenv("DGT_BIND_PROBE");
    char fam[4], portbuf[16];
    int fds[2];
    posix_spawn_file_actions_t fa;

    cr_assert_not_null(exe, "DGT_BIND_PROBE is not set (tests/meson.build sets it)");
    snprintf(fam, sizeof(fam), "%d", family == AF_INET ? 4 : 6);
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {(char *)exe, (char *)mode, fam, portbuf, NULL};
    cr_assert_eq(posix_spawn(&p->pid, exe, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    p->out = fdopen(fds[0], "r");
    cr_assert(probe_line(p), "bind-probe %s said nothing", mode);
}

/* Ends a probe that bound: SIGTERM, its count of datagrams received. */
static long probe_stop(struct probe *p)
{
    long received = -1;
    int status = 0;
    cr_assert_eq(kill(p->pid, SIGTERM), 0);
    cr_assert(probe_line(p), "bind-probe printed no count");
    cr_assert_eq(sscanf(p->line, "received %ld", &received), 1, "%s", p->line);
    cr_assert_eq(waitpid(p->pid, &status, 0), p->pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fclose(p->out);
    return received;
}

/* The probe must have failed with EADDRINUSE. */
static void expect_refused(const char *mode, int family, int port)
{
    struct probe p;
    int status = 0;
    probe_start(&p, mode, family, port);
    cr_assert_str_eq(p.line, "error EADDRINUSE", "bind-probe %s: %s", mode, p.line);
    cr_assert_eq(waitpid(p.pid, &status, 0), p.pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    fclose(p.out);
}

/* The probe binds; FLOWS datagrams from distinct source ports follow;
 * returns how many the probe received. Waits (bounded) until the group
 * here and the probe could have all of them. */
static long joined_receives(const char *mode, int family, int port, int want_here)
{
    struct probe p;
    probe_start(&p, mode, family, port);
    cr_assert_str_eq(p.line, "bound", "bind-probe %s: %s", mode, p.line);
    atomic_store(&group_received, 0);
    for (int i = 0; i < FLOWS; i++) {
        int fd = dgt_plain_socket(family, 0);
        dgt_plain_send(fd, family, port, "flow", 4);
        close(fd);
    }
    for (int waited = 0; waited < 2000 && atomic_load(&group_received) < want_here; waited += 5)
        dgt_sleep_ms(5);
    dgt_sleep_ms(50); /* what the probe would get has had time to arrive */
    return probe_stop(&p);
}

/* ---- The port's holder ------------------------------------------------------ */

static int start_group(dg_group **out, int family, unsigned threads, bool exclusive, int port)
{
    dg_group_options o;
    dg_group_options_init(&o);
    o.threads = threads;
    o.address = dgt_loopback(family);
    o.port = port;
    o.socket.type = family == AF_INET ? DG_UDP4 : DG_UDP6;
    o.handlers.on_message = count_message;
    o.exclusive = exclusive;
    o.loop.recv_buffers = 256;
    o.loop.recv_buffer_size = 2048;
    return dg_group_start(out, &o);
}

static dg_group *hold_group(int family, unsigned threads, bool exclusive, int port)
{
    dg_group *g = NULL;
    dgt_assert_code(start_group(&g, family, threads, exclusive, port), 0);
    return g;
}

static void release_group(dg_group *g)
{
    cr_assert_eq(dg_group_stop(g), 0);
    cr_assert_eq(dg_group_join(g, NULL), 0);
}

static void exclusive_group_keeps_its_traffic(int family)
{
    dg_group *g = hold_group(family, 2, true, 0);
    int port = dg_group_port(g);

    expect_refused("group", family, port);
    expect_refused("socket", family, port);
    long got = joined_receives("socket-reuseport", family, port, FLOWS);
    cr_assert_eq(got, 0, "a dgring DG_SOCKET_REUSE_PORT joiner got %ld datagrams", got);
    cr_assert_eq(atomic_load(&group_received), FLOWS);
    got = joined_receives("raw-reuseport", family, port, FLOWS);
    cr_assert_eq(got, 0, "a plain SO_REUSEPORT joiner got %ld datagrams", got);
    cr_assert_eq(atomic_load(&group_received), FLOWS);
    got = joined_receives("group-shared", family, port, FLOWS);
    cr_assert_eq(got, 0, "a shared group joining got %ld datagrams", got);
    cr_assert_eq(atomic_load(&group_received), FLOWS);
    release_group(g);
}

Test(exclusive, a_group_of_two_keeps_its_port_ipv4)
{
    exclusive_group_keeps_its_traffic(AF_INET);
}

Test(exclusive, a_group_of_two_keeps_its_port_ipv6)
{
    dgt_require_ipv6();
    exclusive_group_keeps_its_traffic(AF_INET6);
}

/* A group of one never turns SO_REUSEPORT on: nobody gets in. */
Test(exclusive, a_group_of_one_refuses_every_second_process)
{
    dg_group *g = hold_group(AF_INET, 1, true, 0);
    int port = dg_group_port(g);

    expect_refused("group", AF_INET, port);
    expect_refused("socket", AF_INET, port);
    expect_refused("socket-reuseport", AF_INET, port);
    expect_refused("raw-reuseport", AF_INET, port);
    expect_refused("group-shared", AF_INET, port);
    release_group(g);
}

/* The other way round: the port is held by a process that shares it; an
 * exclusive group does not join (exclusive = false would). */
Test(exclusive, an_exclusive_group_does_not_join_a_held_port)
{
    struct probe p;
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);
    close(plain); /* a port nobody holds now */

    probe_start(&p, "raw-reuseport", AF_INET, port);
    cr_assert_str_eq(p.line, "bound");
    dg_group *g = NULL;
    dgt_assert_code(start_group(&g, AF_INET, 2, true, port), -EADDRINUSE);
    cr_assert_null(g);
    dgt_assert_code(start_group(&g, AF_INET, 2, false, port), 0,
                    "a shared group joins the SO_REUSEPORT holder");
    release_group(g);
    probe_stop(&p);
}

/* For contrast: a shared group splits its flows with a joiner. */
Test(exclusive, a_shared_group_splits_its_flows_with_a_joiner)
{
    dg_group *g = hold_group(AF_INET, 2, false, 0);
    int port = dg_group_port(g);

    long got = joined_receives("socket-reuseport", AF_INET, port, 1);
    cr_assert_gt(got, 0, "no flow of %d reached the joiner", FLOWS);
    cr_assert_eq(got + atomic_load(&group_received), FLOWS);
    release_group(g);
}

/* A single socket without DG_SOCKET_REUSE_PORT (or REUSE_ADDR): the
 * kernel lets nobody else bind its port. */
Test(exclusive, a_single_socket_without_reuse_port_is_exclusive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_socket *sock = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    int port = dgt_bind(loop, sock, "127.0.0.1", 0);

    expect_refused("socket", AF_INET, port);
    expect_refused("socket-reuseport", AF_INET, port);
    expect_refused("raw-reuseport", AF_INET, port);
    expect_refused("group", AF_INET, port);
    expect_refused("group-shared", AF_INET, port);
    dgt_close_socket(loop, sock);
    dgt_loop_finish(loop);
}

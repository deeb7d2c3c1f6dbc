/* bind-probe: a second process that tries to take a UDP port another
 * process holds (tests/test_exclusive.c starts it).
 *
 *   bind-probe MODE 4|6 PORT
 *
 * MODE, on 127.0.0.1 or ::1:
 *   group             an exclusive dgring group of 2 (the default options)
 *   group-shared      a dgring group of 2 with exclusive = false
 *   socket            a dgring socket without DG_SOCKET_REUSE_PORT
 *   socket-reuseport  a dgring socket with DG_SOCKET_REUSE_PORT
 *   raw-reuseport     socket(2) with SO_REUSEPORT, no dgring at all
 *
 * Prints "error NAME" (dg_err_name of the code) and exits 1 if the port
 * cannot be had; otherwise prints "bound", counts the datagrams it
 * receives until SIGTERM, then prints "received N" and exits 0. SIGTERM is
 * blocked from the start and read with a dg_signal (or sigwait for the raw
 * socket), so it can come at any time. */
#include <dgring.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static atomic_long received;

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    (void)msg;
    (void)data;
    atomic_fetch_add(&received, 1);
}

static int fail(int code)
{
    printf("error %s\n", dg_err_name(code));
    fflush(stdout);
    return 1;
}

static void ready(void)
{
    printf("bound\n");
    fflush(stdout);
}

static void on_term(dg_signal *sig, int signum, void *data)
{
    (void)signum;
    *(bool *)data = true;
    dg_signal_close(sig, NULL, NULL);
}

/* Runs loop until SIGTERM (plus whatever else keeps it alive is the
 * caller's to close). */
static int wait_for_term(dg_loop *loop)
{
    dg_signal *sig;
    bool done = false;
    int rc = dg_signal_new(loop, &sig);
    if (rc == 0)
        rc = dg_signal_start(sig, SIGTERM, on_term, &done);
    while (rc == 0 && !done)
        rc = dg_loop_run(loop, DG_RUN_ONCE) < 0 ? -EIO : 0;
    return rc;
}

static int run_group(int family, int port, bool exclusive)
{
    dg_group_options o;
    dg_group *group;
    dg_loop *owner;
    dg_group_options_init(&o);
    o.threads = 2;
    o.address = family == 4 ? "127.0.0.1" : "::1";
    o.port = port;
    o.socket.type = family == 4 ? DG_UDP4 : DG_UDP6;
    o.handlers.on_message = on_message;
    o.exclusive = exclusive;
    int rc = dg_group_start(&group, &o);
    if (rc < 0)
        return fail(rc);
    ready();
    owner = NULL;
    if (dg_loop_new(&owner, NULL) == 0) {
        rc = wait_for_term(owner);
        dg_loop_run(owner, DG_RUN_DEFAULT);
        dg_loop_close(owner);
    }
    dg_group_stop(group);
    dg_group_join(group, NULL);
    return rc < 0 ? 1 : 0;
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    *(int *)data = status == 0 ? 1 : status;
}

static int run_socket(int family, int port, unsigned flags)
{
    dg_loop *loop;
    dg_socket *sock = NULL;
    dg_socket_options so = {.type = family == 4 ? DG_UDP4 : DG_UDP6, .flags = flags};
    dg_socket_handlers h = {.on_message = on_message};
    int bound = 0;
    int rc = dg_loop_new(&loop, NULL);
    if (rc == 0)
        rc = dg_socket_create(loop, &so, &h, NULL, &sock);
    if (rc == 0)
        rc = dg_socket_bind(sock, port, family == 4 ? "127.0.0.1" : "::1", on_bound, &bound);
    while (rc == 0 && bound == 0)
        rc = dg_loop_run(loop, DG_RUN_ONCE) < 0 ? -EIO : 0;
    if (rc == 0 && bound < 0)
        rc = bound;
    if (rc == 0) {
        ready();
        rc = wait_for_term(loop);
    }
    if (sock != NULL)
        dg_socket_close(sock, NULL, NULL);
    if (loop != NULL) {
        dg_loop_run(loop, DG_RUN_DEFAULT);
        dg_loop_close(loop);
    }
    return rc < 0 ? fail(rc) : 0;
}

/* No dgring: what any other program of the same user can do. */
static int run_raw(int family, int port)
{
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, family == 4 ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6,
             family == 4 ? sizeof(a4) : sizeof(a6)) < 0) {
        int err = -errno;
        if (fd >= 0)
            close(fd);
        return fail(err);
    }
    ready();
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                          {.fd = signalfd(-1, &term, SFD_CLOEXEC), .events = POLLIN}};
    char buf[64];
    while (poll(p, 2, -1) >= 0 && !(p[1].revents & POLLIN))
        if ((p[0].revents & POLLIN) && recv(fd, buf, sizeof(buf), 0) >= 0)
            atomic_fetch_add(&received, 1);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL); /* before any thread */
    if (argc != 4 || (strcmp(argv[2], "4") != 0 && strcmp(argv[2], "6") != 0)) {
        fprintf(stderr, "usage: bind-probe MODE 4|6 PORT\n");
        return 2;
    }
    const char *mode = argv[1];
    int family = atoi(argv[2]), port = atoi(argv[3]), rc;
    if (strcmp(mode, "group") == 0)
        rc = run_group(family, port, true);
    else if (strcmp(mode, "group-shared") == 0)
        rc = run_group(family, port, false);
    else if (strcmp(mode, "socket") == 0)
        rc = run_socket(family, port, 0);
    else if (strcmp(mode, "socket-reuseport") == 0)
        rc = run_socket(family, port, DG_SOCKET_REUSE_PORT);
    else if (strcmp(mode, "raw-reuseport") == 0)
        rc = run_raw(family, port);
    else
        return 2;
    if (rc == 0)
        printf("received %ld\n", atomic_load(&received));
    return rc;
}

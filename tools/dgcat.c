/* dgcat: a netcat for datagrams on dgring.
 *
 *   dgcat [options] HOST PORT          stdin -> datagrams to HOST:PORT,
 *                                      replies -> stdout
 *   dgcat -l [options] [ADDRESS] PORT  datagrams -> stdout, with sender
 *
 * dgring has no watcher for other file descriptors, so dgcat drives its
 * loop from a poll(2) loop of its own: the loop's embedding fd
 * (dg_loop_fd) and stdin, then dg_loop_run(DG_RUN_NOWAIT).
 *
 * Sending, dgcat connects its socket to HOST:PORT first, as nc -u does
 * (the library resolves a host name once): replies come only from there,
 * and the kernel reports an ICMP error such as port unreachable to the
 * socket, which dgcat prints before it exits 1. An error the kernel
 * recorded but no receive has reported yet is read (SO_ERROR) before the
 * socket closes. A broadcast (-b) or multicast destination stays
 * unconnected, since replies come from other addresses.
 *
 * Exit status: 0 done (end of input, --count, -w, SIGINT/SIGTERM), 1 on a
 * runtime failure (bind, an unresolvable host, a failed send, an ICMP
 * error, stdout), 2 on a bad command line.
 */
#include "cat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends in flight before stdin waits: enough to keep the kernel busy,
 * far below the loop's max_pending_sends. */
#define SEND_WINDOW 256
#define IDLE_CHECK_MAX_MS 100

typedef struct cat_state {
    const cat_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *idle_timer;      /* -w: checks the time since the last datagram */
    cat_input input;
    bool input_drained;        /* every complete datagram of stdin was sent */
    uint64_t received;
    uint64_t pending;          /* sends whose callback has not run */
    uint64_t last_activity_ns;
    bool ready;                /* bound, configured (and connected): stdin
                                  may be read */
    bool connected;            /* sends go to the connected peer */
    bool closing;
    int exit_code;
} cat_state;

/* Closes the timer and the socket; the loop then ends. Idempotent: runs
 * for --count, -w, the end of input, failures and every signal. */
static void cat_finish(void *ctx)
{
    cat_state *state = ctx;

    if (state->idle_timer != NULL) {
        dg_timer_close(state->idle_timer, NULL, NULL);
        state->idle_timer = NULL;
    }
    if (state->closing || state->sock == NULL)
        return;
    state->closing = true;
    dg_socket_close(state->sock, NULL, NULL);
}

/* Ends the run with status (the first failure's status is kept). */
static void cat_fail(cat_state *state, int status)
{
    if (state->exit_code == TOOL_EXIT_OK)
        state->exit_code = status;
    cat_finish(state);
}

/* "dgcat: HOST port PORT: recvmsg ECONNREFUSED (connection refused)":
 * the receive errors of a connected socket are the peer's ICMP errors. */
static void report_peer_error(const cat_state *state, const dg_error *err)
{
    const cat_config *config = state->config;

    tool_error(CAT_PROG, "%s port %d: %s %s (%s)", config->host, config->port,
               err->syscall != NULL ? err->syscall : "recvmsg", dg_err_name(err->code),
               dg_strerror(err->code));
}

/* An error the kernel recorded on the connected socket (an ICMP port
 * unreachable answering the last datagram) that no receive reported yet:
 * read (and cleared) with SO_ERROR. Returns true after reporting one,
 * which ends the run with status 1. */
static bool report_socket_error(cat_state *state)
{
    int fd = state->connected ? dg_socket_fd(state->sock) : -1;
    int error = 0;
    socklen_t len = sizeof(error);
    dg_error err = {.syscall = "recvmsg"};

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error == 0)
        return false;
    err.code = -error;
    if (state->exit_code == TOOL_EXIT_OK)
        report_peer_error(state, &err);
    cat_fail(state, TOOL_EXIT_FAILURE);
    return true;
}

/* Sending: done once stdin is sent, unless -w or --count asks to wait
 * for replies. */
static void maybe_done(cat_state *state)
{
    const cat_config *config = state->config;

    if (config->listen || !cat_input_done(&state->input) || state->pending > 0)
        return;
    if (config->wait_s == 0 && config->count == 0 && !report_socket_error(state))
        cat_finish(state);
}

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    cat_state *state = data;

    (void)sock;
    if (state->closing)
        return;
    state->received++;
    state->last_activity_ns = tool_now_ns();
    if (!cat_print_message(state->config, msg)) {
        tool_error(CAT_PROG, "stdout: %s", strerror(errno));
        cat_fail(state, TOOL_EXIT_FAILURE);
        return;
    }
    if (state->config->count > 0 && state->received >= state->config->count)
        cat_finish(state);
}

static bool emit_datagram(const void *data, size_t length, void *ctx);

/* A send completed: a failure ends the run (printed once); a success may
 * let the rest of stdin go out. */
static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    cat_state *state = data;

    (void)sock;
    state->pending--;
    if (status < 0 && status != -ECANCELED && state->exit_code == TOOL_EXIT_OK) {
        tool_error_dg(CAT_PROG, err);
        cat_fail(state, TOOL_EXIT_FAILURE);
    }
    if (!state->closing && !state->input_drained)
        state->input_drained = cat_input_emit(&state->input, emit_datagram, state);
    maybe_done(state);
}

/* Hands one datagram of stdin to dgring (which copies it). Returns false
 * to hold the rest back: the window is full or sending failed. */
static bool emit_datagram(const void *data, size_t length, void *ctx)
{
    cat_state *state = ctx;
    const cat_config *config = state->config;
    int rc;

    if (state->closing || state->pending >= SEND_WINDOW)
        return false;
    if (state->connected)
        rc = dg_socket_send(state->sock, data, length, 0, NULL, on_sent, state);
    else
        rc = dg_socket_send(state->sock, data, length, config->port, config->host, on_sent,
                            state);
    if (rc < 0) {
        tool_error_code(CAT_PROG, "send", rc);
        cat_fail(state, TOOL_EXIT_FAILURE);
        return false;
    }
    state->pending++;
    state->last_activity_ns = tool_now_ns();
    return true;
}

static void on_idle_check(dg_timer *timer, void *data)
{
    cat_state *state = data;
    uint64_t idle_ns = (uint64_t)(state->config->wait_s * 1e9);

    (void)timer;
    if (tool_now_ns() - state->last_activity_ns >= idle_ns && !report_socket_error(state))
        cat_finish(state);
}

/* Starts the -w timer, checking a few times per wait period. */
static int start_idle_timer(cat_state *state)
{
    uint64_t check_ms = (uint64_t)(state->config->wait_s * 1000 / 4);
    int rc;

    if (check_ms < 1)
        check_ms = 1;
    if (check_ms > IDLE_CHECK_MAX_MS)
        check_ms = IDLE_CHECK_MAX_MS;
    rc = dg_timer_new(state->loop, &state->idle_timer);
    if (rc == 0)
        rc = dg_timer_start(state->idle_timer, check_ms, check_ms, on_idle_check, state);
    if (rc < 0)
        tool_error_code(CAT_PROG, "timer", rc);
    return rc;
}

/* Applies the options that need a bound socket. Returns 0 or the code of
 * the option that failed, after printing it. */
static int configure_socket(cat_state *state)
{
    const cat_config *config = state->config;
    int rc = 0;

    if (config->broadcast && (rc = dg_socket_set_broadcast(state->sock, true)) < 0)
        tool_error_code(CAT_PROG, "setBroadcast", rc);
    else if (config->join_group != NULL &&
             (rc = dg_socket_add_membership(state->sock, config->join_group, config->iface)) < 0)
        tool_error(CAT_PROG, "addMembership %s: %s (%s)", config->join_group, dg_err_name(rc),
                   dg_strerror(rc));
    else if (!config->listen && config->iface != NULL &&
             (rc = dg_socket_set_multicast_interface(state->sock, config->iface)) < 0)
        tool_error(CAT_PROG, "setMulticastInterface %s: %s (%s)", config->iface,
                   dg_err_name(rc), dg_strerror(rc));
    return rc;
}

/* "listening ADDRESS:PORT" on stderr: stdout carries only datagrams. */
static int print_listening(const dg_socket *sock)
{
    dg_address bound;
    int rc = dg_socket_address(sock, &bound);

    if (rc < 0) {
        tool_error_code(CAT_PROG, "address", rc);
        return rc;
    }
    fprintf(stderr, "listening %s:%d\n", bound.address, bound.port);
    return 0;
}

/* Unicast destinations are connected, as nc -u connects: replies from
 * the peer only, and its ICMP errors reported. A broadcast (-b) or
 * multicast destination is answered from other addresses: unconnected. */
static bool wants_connect(const cat_config *config)
{
    return !config->listen && !config->broadcast && !cat_is_multicast(config->host, config->udp6);
}

static void on_connected(dg_socket *sock, int status, const dg_error *err, void *data)
{
    cat_state *state = data;

    (void)sock;
    if (status < 0) {
        if (!state->closing) /* -ECANCELED after a signal is no failure */
            tool_error_dg(CAT_PROG, err);
        cat_fail(state, TOOL_EXIT_FAILURE);
        return;
    }
    state->connected = true;
    state->ready = true;
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    cat_state *state = data;
    const cat_config *config = state->config;
    int rc;

    if (status < 0) {
        /* on_socket_error has printed it; -ECANCELED after a signal is no failure. */
        if (!state->closing)
            cat_fail(state, TOOL_EXIT_FAILURE);
        return;
    }
    if ((config->listen && print_listening(sock) < 0) || configure_socket(state) < 0 ||
        (config->wait_s > 0 && start_idle_timer(state) < 0)) {
        cat_fail(state, TOOL_EXIT_FAILURE);
        return;
    }
    state->last_activity_ns = tool_now_ns();
    if (!wants_connect(config)) {
        state->ready = true;
        return;
    }
    rc = dg_socket_connect(sock, config->port, config->host, on_connected, state);
    if (rc < 0) {
        tool_error_code(CAT_PROG, "connect", rc);
        cat_fail(state, TOOL_EXIT_FAILURE);
    }
}

/* Receive errors: when sending, an ICMP error from the peer (the socket
 * is connected) ends the run; a listener reports and goes on. */
static void on_socket_error(dg_socket *sock, const dg_error *err, void *data)
{
    cat_state *state = data;

    (void)sock;
    if (state->config->listen) {
        tool_error_dg(CAT_PROG, err);
        return;
    }
    if (state->exit_code == TOOL_EXIT_OK && !state->closing)
        report_peer_error(state, err);
    cat_fail(state, TOOL_EXIT_FAILURE);
}

/* Creates the socket and binds it: the local address and port when
 * listening, the source (or any) when sending, so that socket options
 * apply before the first datagram. */
static int cat_start(cat_state *state)
{
    const cat_config *config = state->config;
    dg_socket_options options = {
        .type = config->udp6 ? DG_UDP6 : DG_UDP4,
        .flags = config->join_group != NULL ? DG_SOCKET_REUSE_ADDR : 0,
    };
    dg_socket_handlers handlers = {.on_message = on_message, .on_error = on_socket_error};
    int port = config->listen ? config->port : config->local_port;
    int rc;

    tool_socket_buffers(&options, &config->net);
    rc = dg_socket_create(state->loop, &options, &handlers, state, &state->sock);

    if (rc < 0) {
        tool_error_code(CAT_PROG, "socket", rc);
        state->sock = NULL;
        return rc;
    }
    rc = dg_socket_bind(state->sock, port, config->local_address, on_bound, state);
    if (rc < 0) {
        tool_error_bind(CAT_PROG, rc, config->local_address, port, config->udp6);
        cat_finish(state);
    }
    return rc;
}

static bool wants_stdin(const cat_state *state)
{
    return !state->config->listen && state->ready && !state->closing &&
           !state->input.eof && state->input_drained && state->pending < SEND_WINDOW;
}

/* stdin is readable (or at its end, or not open at all). */
static void read_stdin(cat_state *state, short revents)
{
    int rc;

    if (revents & POLLNVAL) { /* stdin closed under us: an empty input */
        state->input.eof = true;
        maybe_done(state);
        return;
    }
    state->input_drained = false;
    rc = cat_input_read(&state->input, STDIN_FILENO, emit_datagram, state);
    if (rc < 0) {
        tool_error(CAT_PROG, "stdin: %s", strerror(-rc));
        cat_fail(state, TOOL_EXIT_FAILURE);
        return;
    }
    if (!state->closing)
        state->input_drained = cat_input_emit(&state->input, emit_datagram, state);
    maybe_done(state);
}

/* One round: wait for the loop's fd or stdin, run what is ready. Returns
 * 0 or a fatal code. */
static int drive_once(cat_state *state, int loop_fd)
{
    struct pollfd fds[2] = {
        {.fd = loop_fd, .events = POLLIN},
        {.fd = STDIN_FILENO, .events = POLLIN},
    };
    nfds_t count = wants_stdin(state) ? 2 : 1;
    int rc;

    if (poll(fds, count, dg_loop_timeout(state->loop)) < 0 && errno != EINTR)
        return -errno;
    rc = dg_loop_run(state->loop, DG_RUN_NOWAIT);
    if (rc < 0 && rc != -EINTR)
        return rc;
    /* One write for all the datagrams of the turn; a reader of a pipe
     * still sees each turn's datagrams at once. */
    if (fflush(stdout) != 0 && state->exit_code == TOOL_EXIT_OK) {
        tool_error(CAT_PROG, "stdout: %s", strerror(errno));
        cat_fail(state, TOOL_EXIT_FAILURE);
    }
    if (count == 2 && fds[1].revents != 0 && wants_stdin(state))
        read_stdin(state, fds[1].revents);
    return 0;
}

/* Runs until the socket closed. Signals finish the run. */
static int cat_drive(cat_state *state)
{
    unsigned finished_for = 0;
    int loop_fd = dg_loop_fd(state->loop);

    if (loop_fd < 0) {
        tool_error_code(CAT_PROG, "dg_loop_fd", loop_fd);
        cat_finish(state);
        return loop_fd;
    }
    while (dg_loop_alive(state->loop)) {
        int rc;
        if (tool_stop_requests() > finished_for) {
            finished_for = tool_stop_requests();
            cat_finish(state);
        }
        rc = drive_once(state, loop_fd);
        if (rc < 0) {
            tool_error(CAT_PROG, "loop: %s (%s)", dg_err_name(rc), dg_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* A closed stdin would let the loop's first fd become fd 0, and dgcat
 * would then read the ring's fd as its input: give it /dev/null (an empty
 * input) first, as daemons do. Returns false if even that fails. */
static bool ensure_stdin(void)
{
    if (fcntl(STDIN_FILENO, F_GETFD) >= 0 || errno != EBADF)
        return true;
    return open("/dev/null", O_RDONLY | O_CLOEXEC) == STDIN_FILENO;
}

int main(int argc, char *argv[])
{
    cat_config config = {.net = {.cpu = -1}};
    cat_state state = {.config = &config, .input_drained = true};
    int status = cat_parse_args(argc, argv, &config);

    if (status >= 0)
        return status;
    status = tool_dns_servers(CAT_PROG, &config.net);
    if (status != TOOL_EXIT_OK)
        return status;
    if (!ensure_stdin()) {
        tool_error(CAT_PROG, "stdin: %s", strerror(errno));
        return TOOL_EXIT_FAILURE;
    }
    if (cat_input_init(&state.input, &config) < 0) {
        tool_error(CAT_PROG, "out of memory");
        return TOOL_EXIT_FAILURE;
    }
    state.loop = tool_loop_open(CAT_PROG, NULL);
    if (state.loop == NULL) {
        cat_input_free(&state.input);
        return TOOL_EXIT_FAILURE;
    }
    if (cat_start(&state) < 0)
        state.exit_code = TOOL_EXIT_FAILURE;
    if (cat_drive(&state) < 0)
        return TOOL_EXIT_FAILURE; /* the ring failed: the loop cannot be closed */
    if (!tool_loop_close(CAT_PROG, state.loop))
        state.exit_code = TOOL_EXIT_FAILURE;
    cat_input_free(&state.input);
    return state.exit_code;
}

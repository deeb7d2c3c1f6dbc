/* perf/dgring_user.c: the `dgring-user` peer, dgring written the way its
 * README and docs tell a user to write it, and nothing more, so that the
 * table shows what a user's own program gets (issue 16).
 *
 * The one setting is the one the docs advise for small datagrams:
 * dg_loop_options_init(), then recv_buffer_size = 2048 (include/dgring/
 * loop.h: "Telemetry and game traffic can set 2048 or less"). The buffer
 * count (512), batched waits, the send queue, GSO and the socket options
 * are the library's defaults; datagrams arrive through plain on_message.
 * The benchmark adds only its counting (perf_rx_one, one increment per
 * echo) and, in recv, the idle timer every receiver here has.
 *
 *   dgring_user recv   counts datagrams (drain, stream, cost); ends after
 *                      --count datagrams or --idle-ms without one
 *   dgring_user echo   the README's first program: on_message ->
 *                      dg_socket_send_to(msg->addr), no callback; ends
 *                      after --count echoes, or on SIGTERM/SIGINT, and
 *                      prints its JSON line
 *   dgring_user sockperf-echo
 *                      the same echo answering sockperf's ping-pong client
 *                      (pingpong): sockperf ignores a verbatim echo, so the
 *                      reply clears its header's CLIENT flag (a copy, as
 *                      msg->data is read-only); otherwise the same program
 *   dgring_user send   sends --size datagrams to 127.0.0.1:--port for
 *                      --duration seconds (or --count datagrams) the way
 *                      docs/api.md says: dg_socket_send with the port and
 *                      address, a callback per send, sends until
 *                      DG_ERR_SEND_QUEUE_FULL ("wait for callbacks"), then
 *                      one more from each callback. Socket defaults, so
 *                      runs of equal-size sends to one destination made in
 *                      one turn leave as GSO sends (DG_SOCKET_NO_GSO's
 *                      comment in dgring/socket.h): there is no separate
 *                      GSO call for a user to make, so no `gso` mode
 *   dgring_user send-nogso
 *                      the same with the documented DG_SOCKET_NO_GSO flag:
 *                      one send per datagram, what sends cost when they do
 *                      not form runs (many destinations, mixed sizes)
 */
#include "common.h"

#include <dgring.h>
#include <signal.h>

#include "dgring_common.h"

#define USER_RECV_BUFFER_SIZE 2048 /* the docs' advice for small datagrams */

typedef struct user {
    const perf_opts *o;
    dg_loop_options lo;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *timer; /* recv: the benchmark's idle check */
    perf_rx rx;
    int port;
    bool done;
    uint64_t echoed, refused;
    /* send */
    unsigned char *payload;
    uint64_t issued, completed, errors;
    uint64_t inflight, start_ns, end_ns, deadline_ns;
    bool stopping; /* no more sends: the last callbacks end the run */
    double cpu0;
    dg_socket_stats stats; /* taken when the run ends */
    long long proc_drops;
} user;

static dg_loop *g_loop; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    dg_loop_stop(g_loop); /* async-signal-safe */
}

/* The run ends: counters first, then the handles close and the loop ends. */
static void finish(user *u)
{
    if (u->done)
        return;
    u->done = true;
    CALLGRIND_TOGGLE_COLLECT;
    dg_socket_get_stats(u->sock, &u->stats);
    u->proc_drops = u->port ? perf_proc_drops(u->port) : 0;
    if (u->timer)
        dg_timer_close(u->timer, NULL, NULL);
    dg_socket_close(u->sock, NULL, NULL);
}

static void on_listening(dg_socket *sock, void *data)
{
    user *u = data;
    dg_address a;
    if (dg_socket_address(sock, &a) < 0)
        perf_die_dg("dg_socket_address", -EBADF);
    u->port = a.port;
    perf_ready(u->port);
    CALLGRIND_TOGGLE_COLLECT;
}

/* ---- recv ------------------------------------------------------------- */

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    user *u = data;
    perf_rx_one(&u->rx, msg->data, msg->length);
    if (u->o->count && u->rx.packets >= u->o->count)
        finish(u);
}

static void on_idle_tick(dg_timer *t, void *data)
{
    (void)t;
    user *u = data;
    if (!u->done && perf_rx_idle_check(&u->rx, u->o->idle_ms))
        finish(u);
}

/* ---- echo ------------------------------------------------------------- */

static void on_echo(dg_socket *sock, const dg_message *msg, void *data)
{
    user *u = data;
    /* The payload is copied by the call; errors without a callback go to
     * on_error. DG_ERR_SEND_QUEUE_FULL is the one a flood can cause. */
    if (dg_socket_send_to(sock, msg->data, msg->length, msg->addr, msg->addrlen, NULL, NULL) < 0)
        u->refused++;
    else
        u->echoed++;
    if (u->o->count && u->echoed + u->refused >= u->o->count)
        finish(u);
}

/* sockperf's header (its src/message.h), network byte order: flags at
 * byte 8 (CLIENT 1, PONG_REQUEST 2, WARMUP 4). Its server answers CLIENT
 * messages that ask for a pong, not warm-up ones, with CLIENT cleared. */
static void on_sockperf(dg_socket *sock, const dg_message *msg, void *data)
{
    user *u = data;
    static unsigned char reply[65536];
    const unsigned char *in = msg->data;
    if (msg->length < 14 || msg->length > sizeof(reply))
        return;
    unsigned flags = (unsigned)in[8] << 8 | in[9];
    if (!(flags & 1) || (flags & 4) || !(flags & 2))
        return;
    memcpy(reply, in, msg->length);
    reply[9] = (unsigned char)(flags & ~1u);
    if (dg_socket_send_to(sock, reply, msg->length, msg->addr, msg->addrlen, NULL, NULL) < 0)
        u->refused++;
    else
        u->echoed++;
}

/* ---- send --------------------------------------------------------------- */

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data);

/* One datagram; false when the loop answers DG_ERR_SEND_QUEUE_FULL. */
static bool send_one(user *u)
{
    perf_stamp_seq(u->payload, (size_t)u->o->size, u->issued);
    int ret = dg_socket_send(u->sock, u->payload, (size_t)u->o->size, u->o->port, "127.0.0.1",
                             on_sent, u);
    if (ret == DG_ERR_SEND_QUEUE_FULL)
        return false;
    if (ret < 0)
        perf_die_dg("dg_socket_send", ret);
    u->issued++;
    u->inflight++;
    return true;
}

static bool send_over(user *u)
{
    if (u->o->count)
        return u->issued >= u->o->count;
    return (u->completed & 63) == 0 && perf_now_ns() >= u->deadline_ns;
}

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    user *u = data;
    u->inflight--;
    if (status >= 0)
        u->completed++;
    else
        u->errors++;
    if (!u->stopping && send_over(u))
        u->stopping = true;
    if (!u->stopping) {
        send_one(u); /* a slot is free: this send's callback frees it first */
        return;
    }
    if (u->inflight == 0 && !u->done) {
        u->end_ns = perf_now_ns();
        finish(u);
    }
}

static void on_send_listening(dg_socket *sock, void *data)
{
    (void)sock;
    user *u = data;
    u->start_ns = perf_now_ns();
    u->cpu0 = perf_cpu_seconds();
    u->deadline_ns = u->start_ns + (uint64_t)(u->o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    while (!(u->o->count && u->issued >= u->o->count) && send_one(u))
        ;
}

/* ---- main --------------------------------------------------------------- */

/* The loop with the docs' options and one socket bound on 127.0.0.1:port
 * (0: any); on_message NULL for the sender, which receives nothing. */
static void start(user *u, void (*on_msg)(dg_socket *, const dg_message *, void *),
                  unsigned flags, int port)
{
    dg_loop_options_init(&u->lo);
    u->lo.recv_buffer_size = USER_RECV_BUFFER_SIZE;
    int ret = dg_loop_new(&u->loop, &u->lo);
    if (ret < 0)
        perf_die_dg("dg_loop_new", ret);
    g_loop = u->loop;
    dg_socket_options so = {.type = DG_UDP4, .flags = flags};
    dg_socket_handlers h = {.on_message = on_msg,
                            .on_listening = on_msg ? on_listening : on_send_listening,
                            .on_error = perf_dg_on_error};
    if ((ret = dg_socket_create(u->loop, &so, &h, u, &u->sock)) < 0)
        perf_die_dg("dg_socket_create", ret);
    if ((ret = dg_socket_bind(u->sock, port, "127.0.0.1", NULL, NULL)) < 0)
        perf_die_dg("dg_socket_bind", ret);
}

static int do_recv(const perf_opts *o)
{
    user u = {.o = o};
    start(&u, on_message, 0, o->port);
    int ret;
    if ((ret = dg_timer_new(u.loop, &u.timer)) < 0 ||
        (ret = dg_timer_start(u.timer, 50, 50, on_idle_tick, &u)) < 0)
        perf_die_dg("timer", ret);
    if ((ret = dg_loop_run(u.loop, DG_RUN_DEFAULT)) < 0)
        perf_die_dg("dg_loop_run", ret);
    char extra[480];
    perf_dg_rx_json(&u.stats, &u.lo, extra, sizeof(extra));
    perf_dg_loop_json(u.loop, extra, sizeof(extra));
    perf_rx_report("dgring-user", &u.rx, u.proc_drops, "/proc/net/udp", extra);
    dg_loop_close(u.loop);
    return 0;
}

static int do_echo(const perf_opts *o, bool sockperf)
{
    user u = {.o = o};
    start(&u, sockperf ? on_sockperf : on_echo, 0, o->port);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int ret = dg_loop_run(u.loop, DG_RUN_DEFAULT);
    if (ret < 0)
        perf_die_dg("dg_loop_run", ret);
    if (!u.done) /* stopped by a signal */
        finish(&u);
    char extra[480];
    perf_dg_rx_json(&u.stats, &u.lo, extra, sizeof(extra));
    perf_dg_loop_json(u.loop, extra, sizeof(extra));
    printf("{\"peer\":\"dgring-user\",\"echoed\":%llu,\"refused\":%llu,\"tx_datagrams\":%llu,"
           "\"tx_errors\":%llu,\"tx_gso_sends\":%llu,\"rx_datagrams\":%llu,\"drops\":%lld%s}\n",
           (unsigned long long)u.echoed, (unsigned long long)u.refused,
           (unsigned long long)u.stats.tx_datagrams, (unsigned long long)u.stats.tx_errors,
           (unsigned long long)u.stats.tx_gso_sends, (unsigned long long)u.stats.rx_datagrams,
           u.proc_drops, extra);
    fflush(stdout);
    /* The sends of the last turn complete in the next ones; then it ends. */
    dg_loop_run(u.loop, DG_RUN_DEFAULT);
    dg_loop_close(u.loop);
    return 0;
}

static int do_send(const perf_opts *o, unsigned flags)
{
    user u = {.o = o};
    u.payload = calloc(1, o->size ? (size_t)o->size : 1);
    if (!u.payload)
        perf_die("calloc");
    start(&u, NULL, flags, 0);
    int ret = dg_loop_run(u.loop, DG_RUN_DEFAULT);
    if (ret < 0)
        perf_die_dg("dg_loop_run", ret);
    char extra[200];
    snprintf(extra, sizeof(extra),
             ",\"size\":%d,\"gso\":%s,\"tx_datagrams\":%llu,\"tx_gso_sends\":%llu,"
             "\"max_pending_sends\":%u",
             o->size, flags & DG_SOCKET_NO_GSO ? "false" : "true",
             (unsigned long long)u.stats.tx_datagrams, (unsigned long long)u.stats.tx_gso_sends,
             u.lo.max_pending_sends);
    perf_tx_report(flags & DG_SOCKET_NO_GSO ? "dgring-user-nogso" : "dgring-user", u.completed,
                   u.errors, u.start_ns, u.end_ns, u.cpu0, extra);
    dg_loop_close(u.loop);
    free(u.payload);
    return 0;
}

int main(int argc, char **argv)
{
    perf_opts o;
    perf_parse(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(o.mode, "recv") == 0)
        return do_recv(&o);
    if (strcmp(o.mode, "echo") == 0)
        return do_echo(&o, false);
    if (strcmp(o.mode, "sockperf-echo") == 0)
        return do_echo(&o, true);
    if (strcmp(o.mode, "send") == 0)
        return do_send(&o, 0);
    if (strcmp(o.mode, "send-nogso") == 0)
        return do_send(&o, DG_SOCKET_NO_GSO);
    perf_usage(argv[0]);
    return 2;
}

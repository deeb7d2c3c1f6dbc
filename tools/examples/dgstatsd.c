/* dgstatsd: a statsd-compatible telemetry aggregator on dgring.
 *
 * Receives statsd lines over UDP (several per datagram, separated by
 * newlines) on --threads loops of an exclusive reuse-port group, aggregates
 * counters, gauges and timers (statsd.h), and every --interval milliseconds
 * writes the interval's aggregates as one JSON line to stdout or --output
 * FILE (appended).
 *
 *   dgstatsd [--address A] [--port P] [--udp6] [--threads N] [--interval MS]
 *            [--output FILE] [--rcvbuf BYTES] [--max-metrics N]
 *
 * Signals: SIGINT or SIGTERM flushes what arrived since the last flush and
 * exits 0. SIGHUP reloads, which for dgstatsd means: flush what arrived so
 * far into the current output, then reopen --output (appending), so a log
 * rotation that renamed the file gets a new one; the aggregation goes on
 * (gauges are kept, as at every flush).
 *
 * What it shows of dgring: an exclusive group (a second dgstatsd on the
 * same port gets EADDRINUSE instead of silently taking half the traffic),
 * the owner thread's own loop with a repeating dg_timer for the flush and
 * dg_signal handles for the signals (blocked in main() before the group's
 * threads start), small receive buffers and a large SO_RCVBUF, and the
 * kernel's drop counter from the members' final statistics.
 *
 * The members share one aggregation store behind a mutex: parsing a few
 * statsd lines costs little next to receiving them, and one store keeps
 * statsd's meaning exact (gauges set in arrival order, one line per flush).
 *
 * Exit status: 0 after a signal, 1 on a runtime failure (the port is in
 * use, ...), 2 on a bad command line.
 */
#include <dgring.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example.h"
#include "statsd.h"

#define PROG "dgstatsd"
/* statsd clients keep datagrams under one MTU (hot-shots: 1432 bytes);
 * 16 KiB leaves room for jumbo frames and loopback batching. */
#define RECV_BUFFER_SIZE 16384

typedef struct statsd_config {
    const char *address;   /* NULL: every address */
    unsigned long port;
    bool udp6;
    unsigned long threads;
    unsigned long interval_ms;
    const char *output;    /* NULL: stdout */
    unsigned long rcvbuf;  /* SO_RCVBUF, 0: the system's default */
    unsigned long max_metrics;
} statsd_config;

typedef struct statsd_server {
    const statsd_config *config;
    dg_group *group;
    dg_loop *loop;          /* the owner's: flush timer and signals */
    dg_timer *flush_timer;
    dg_signal *sigint, *sigterm, *sighup;
    pthread_mutex_t lock;   /* store and out: members feed, the owner flushes */
    statsd_store store;
    FILE *out;
    atomic_ullong truncated; /* datagrams longer than RECV_BUFFER_SIZE */
    uint64_t last_flush_ms;
    unsigned drained;        /* members that answered the current drain */
    void (*after_drain)(struct statsd_server *); /* what the drain is for */
    bool closing;            /* a stop signal came: draining */
    bool stopped;            /* the last flush is written, the group stops */
    int exit_code;
} statsd_server;

static const char usage_text[] =
    "usage: " PROG " [--address A] [--port P] [--udp6] [--threads N] [--interval MS]\n"
    "                [--output FILE] [--rcvbuf BYTES] [--max-metrics N]\n"
    "\n"
    "Aggregates statsd counters (|c), gauges (|g) and timers (|ms, |h) received\n"
    "on UDP and writes them as one JSON line every interval.\n"
    "\n"
    "  --address A       address to bind (default: all addresses)\n"
    "  --port P          port to bind (default 8125; 0 picks a free port)\n"
    "  --udp6            use IPv6\n"
    "  --threads N       receiving loops, one thread each (default 1); the port\n"
    "                    is theirs alone: a second dgstatsd on it fails\n"
    "  --interval MS     flush interval in milliseconds (default 10000)\n"
    "  --output FILE     append the JSON lines to FILE instead of stdout\n"
    "  --rcvbuf BYTES    socket receive buffer (SO_RCVBUF)\n"
    "  --max-metrics N   distinct metrics kept (default 100000)\n"
    "\n"
    "SIGINT, SIGTERM: flush and exit. SIGHUP: flush and reopen --output.\n"
    "Prints \"listening ADDRESS:PORT\" on stderr once bound.\n";

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char *argv[], statsd_config *config)
{
    const example_option options[] = {
        {"address", EXAMPLE_STRING, &config->address, 0, 0},
        {"port", EXAMPLE_NUMBER, &config->port, 0, 65535},
        {"udp6", EXAMPLE_FLAG, &config->udp6, 0, 0},
        {"threads", EXAMPLE_NUMBER, &config->threads, 1, DG_GROUP_MAX_THREADS},
        {"interval", EXAMPLE_NUMBER, &config->interval_ms, 1, 86400000},
        {"output", EXAMPLE_STRING, &config->output, 0, 0},
        {"rcvbuf", EXAMPLE_NUMBER, &config->rcvbuf, 1, 1 << 30},
        {"max-metrics", EXAMPLE_NUMBER, &config->max_metrics, 1, 10000000},
    };

    return example_parse_options(PROG, argc, argv, options, sizeof(options) / sizeof(options[0]),
                                 usage_text);
}

static uint64_t wall_clock_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* ---- The members' side (any member's thread) ------------------------------ */

/* One datagram: every line in it is aggregated. msg is valid during this
 * callback only; statsd_feed copies what it keeps. */
static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    statsd_server *server = data;
    int rc;

    (void)sock;
    if (msg->flags & DG_MSG_TRUNC)
        atomic_fetch_add(&server->truncated, 1); /* its complete lines still count */
    pthread_mutex_lock(&server->lock);
    rc = statsd_feed(&server->store, msg->data, msg->length);
    pthread_mutex_unlock(&server->lock);
    if (rc < 0)
        fprintf(stderr, PROG ": out of memory, values lost\n");
}

static void on_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    example_print_error(PROG, err);
}

/* ---- The owner's loop: flushes and signals --------------------------------- */

/* Writes the interval's aggregates. */
static void flush(statsd_server *server)
{
    uint64_t now = dg_loop_now(server->loop);
    int rc;

    pthread_mutex_lock(&server->lock);
    rc = statsd_flush(&server->store, server->out, wall_clock_ms(), now - server->last_flush_ms);
    pthread_mutex_unlock(&server->lock);
    server->last_flush_ms = now;
    if (rc < 0) {
        fprintf(stderr, PROG ": writing the aggregates failed: %s\n", strerror(-rc));
        server->exit_code = 1;
    }
}

static void on_flush_timer(dg_timer *timer, void *data)
{
    (void)timer;
    flush(data);
}

/* The last flush, then the group stops and the owner's handles close;
 * main() joins the group once the owner's loop ended. Once. */
static void finish_stop(statsd_server *server)
{
    if (server->stopped)
        return;
    server->stopped = true;
    flush(server);
    dg_group_stop(server->group);
    dg_timer_close(server->flush_timer, NULL, NULL);
    dg_signal_close(server->sigint, NULL, NULL);
    dg_signal_close(server->sigterm, NULL, NULL);
    dg_signal_close(server->sighup, NULL, NULL);
}

/* Reload: flush into the current output, then reopen it (a rotated file
 * is let go; new lines go to a new file at the configured name). */
static void reload_output(statsd_server *server)
{
    FILE *reopened;

    flush(server);
    if (server->config->output == NULL)
        return;
    reopened = fopen(server->config->output, "a");
    if (reopened == NULL) {
        fprintf(stderr, PROG ": reload: %s: %s (still writing the old file)\n",
                server->config->output, strerror(errno));
        return;
    }
    pthread_mutex_lock(&server->lock);
    fclose(server->out);
    server->out = reopened;
    pthread_mutex_unlock(&server->lock);
    fprintf(stderr, PROG ": reloaded: %s reopened\n", server->config->output);
}

/* ---- Draining the members before a flush the signal asked for ---------------
 * A signal's flush must hold every datagram that reached a socket before
 * the signal: each member handles what its socket holds, answers, and the
 * owner flushes once all answered. */

/* On the owner's loop: one more member has handled everything that reached
 * its socket before the drain began. */
static void member_drained(dg_loop *loop, void *arg)
{
    statsd_server *server = arg;
    void (*then)(statsd_server *) = server->after_drain;

    (void)loop;
    if (then == NULL || ++server->drained < dg_group_threads(server->group))
        return;
    server->after_drain = NULL;
    then(server);
}

/* On a member's loop, twice: a post runs at the start of a turn, before
 * that turn's completions, so the second run comes after the member
 * handled every datagram its socket held when the first one ran. */
static void member_drain_again(dg_loop *loop, void *arg)
{
    statsd_server *server = arg;

    (void)loop;
    if (dg_loop_post(server->loop, member_drained, server) < 0)
        fprintf(stderr, PROG ": cannot report the drain: signal again to stop now\n");
}

static void member_drain(dg_loop *loop, void *arg)
{
    if (dg_loop_post(loop, member_drain_again, arg) < 0)
        member_drain_again(loop, arg);
}

/* Drains every member, then runs then(server) on the owner's loop. A stop
 * asked for while a reload drains takes the reload's place. */
static void drain_members(statsd_server *server, void (*then)(statsd_server *))
{
    if (server->after_drain != NULL) {
        if (then == finish_stop)
            server->after_drain = then;
        return;
    }
    server->after_drain = then;
    server->drained = 0;
    for (unsigned i = 0; i < dg_group_threads(server->group); i++)
        if (dg_group_post(server->group, i, member_drain, server) < 0)
            member_drained(server->loop, server); /* no drain for it: on with the rest */
}

/* SIGINT, SIGTERM: drain, the last flush, stop. A second one does not wait
 * for the members. */
static void on_stop_signal(dg_signal *sig, int signum, void *data)
{
    statsd_server *server = data;

    (void)sig;
    (void)signum;
    if (server->closing) {
        finish_stop(server);
        return;
    }
    server->closing = true;
    drain_members(server, finish_stop);
}

/* SIGHUP: drain, flush, reopen --output. */
static void on_reload_signal(dg_signal *sig, int signum, void *data)
{
    statsd_server *server = data;

    (void)sig;
    (void)signum;
    if (!server->closing)
        drain_members(server, reload_output);
}

static int watch(statsd_server *server, dg_signal **sig, int signum, dg_signal_cb cb)
{
    int rc = dg_signal_new(server->loop, sig);

    return rc < 0 ? rc : dg_signal_start(*sig, signum, cb, server);
}

/* The owner's loop, its flush timer and its signal handles. Returns 0 or a
 * code; on failure the caller stops the group, and closing the loop's
 * handles is left to the process's exit. */
static int open_owner_loop(statsd_server *server)
{
    unsigned long every = server->config->interval_ms;
    int rc = dg_loop_new(&server->loop, NULL);

    if (rc == 0)
        rc = dg_timer_new(server->loop, &server->flush_timer);
    if (rc == 0)
        rc = dg_timer_start(server->flush_timer, every, every, on_flush_timer, server);
    if (rc == 0)
        rc = watch(server, &server->sigint, SIGINT, on_stop_signal);
    if (rc == 0)
        rc = watch(server, &server->sigterm, SIGTERM, on_stop_signal);
    if (rc == 0)
        rc = watch(server, &server->sighup, SIGHUP, on_reload_signal);
    if (rc < 0)
        fprintf(stderr, PROG ": cannot start: %s (%s)\n", dg_err_name(rc), dg_strerror(rc));
    server->last_flush_ms = server->loop ? dg_loop_now(server->loop) : 0;
    return rc;
}

/* ---- Start and stop ---------------------------------------------------------- */

/* The exclusive group: small receive buffers (statsd datagrams are
 * small), the same handlers on every member. Prints the listening line. */
static int start_group(statsd_server *server)
{
    const statsd_config *config = server->config;
    dg_group_options o;
    int rc;

    dg_group_options_init(&o); /* exclusive by default */
    o.threads = (unsigned)config->threads;
    o.address = config->address;
    o.port = (int)config->port;
    o.socket.type = config->udp6 ? DG_UDP6 : DG_UDP4;
    o.socket.recv_buffer_size = (int)config->rcvbuf;
    o.handlers.on_message = on_message;
    o.handlers.on_error = on_error;
    o.data = server;
    o.loop.recv_buffer_size = RECV_BUFFER_SIZE;
    rc = dg_group_start(&server->group, &o);
    if (rc < 0) {
        fprintf(stderr, PROG ": cannot start: %s (%s)\n", dg_err_name(rc), dg_strerror(rc));
        return rc;
    }
    fprintf(stderr, "listening %s:%d\n",
            config->address ? config->address : (config->udp6 ? "::" : "0.0.0.0"),
            dg_group_port(server->group));
    return 0;
}

/* Joins the group and reports what its sockets saw, drops included: the
 * kernel's, and the datagrams still queued when the stop closed the
 * sockets (received, never aggregated), so datagrams + both = what the
 * clients sent. */
static void join_group(statsd_server *server)
{
    dg_socket_stats stats[DG_GROUP_MAX_THREADS];
    unsigned long long datagrams = 0, drops = 0, discarded = 0;
    unsigned threads = dg_group_threads(server->group);

    if (dg_group_join(server->group, stats) < 0)
        server->exit_code = 1;
    for (unsigned i = 0; i < threads; i++) {
        datagrams += stats[i].rx_datagrams;
        drops += stats[i].rx_kernel_drops;
        discarded += stats[i].rx_discarded_at_close;
    }
    fprintf(stderr,
            PROG ": %llu datagrams, %llu truncated, %llu dropped by the kernel, %llu discarded "
                 "at close\n",
            datagrams, (unsigned long long)atomic_load(&server->truncated), drops, discarded);
    fprintf(stderr, PROG ": %zu metrics kept (--max-metrics %zu), %llu values refused\n",
            server->store.used, server->store.max_metrics,
            (unsigned long long)server->store.refused);
}

/* Blocks the signals the owner's loop takes, before any thread exists:
 * every thread the group starts inherits the mask, so the kernel hands the
 * signals to no thread but the owner's signalfd. */
static void block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int serve(statsd_server *server)
{
    if (start_group(server) < 0)
        return 1;
    if (open_owner_loop(server) < 0) {
        dg_group_stop(server->group);
        join_group(server);
        return 1;
    }
    server->exit_code = 0;
    if (dg_loop_run(server->loop, DG_RUN_DEFAULT) < 0) /* until a stop signal */
        server->exit_code = 1;
    if (dg_loop_close(server->loop) < 0)
        server->exit_code = 1;
    join_group(server);
    return server->exit_code;
}

int main(int argc, char *argv[])
{
    statsd_config config = {.port = 8125, .threads = 1, .interval_ms = 10000,
                            .max_metrics = 100000};
    statsd_server server = {.config = &config, .out = stdout, .exit_code = 1};
    int status = parse_args(argc, argv, &config);

    if (status >= 0)
        return status;
    block_signals();
    if (config.output != NULL && (server.out = fopen(config.output, "a")) == NULL) {
        fprintf(stderr, PROG ": %s: %s\n", config.output, strerror(errno));
        return 1;
    }
    pthread_mutex_init(&server.lock, NULL);
    if (statsd_init(&server.store, config.max_metrics) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        status = 1;
    } else {
        status = serve(&server);
        statsd_free(&server.store);
    }
    pthread_mutex_destroy(&server.lock);
    if (server.out != stdout)
        fclose(server.out);
    return status;
}

/* dgstatsd: a statsd-compatible telemetry aggregator on dgring.
 *
 * Receives statsd lines over UDP (several per datagram, separated by
 * newlines), aggregates counters, gauges and timers (statsd.h), and every
 * --interval milliseconds writes the interval's aggregates as one JSON
 * line to stdout or --output FILE (appended). SIGINT or SIGTERM flushes
 * what arrived since the last flush and exits 0.
 *
 *   dgstatsd [--address A] [--port P] [--udp6] [--interval MS]
 *            [--output FILE] [--rcvbuf BYTES] [--max-metrics N]
 *
 * What it shows of dgring: a socket with a large SO_RCVBUF and small
 * receive buffers (telemetry datagrams are small), a repeating dg_timer for
 * the flush, the kernel's drop counter from dg_socket_get_stats(), and a
 * clean shutdown from a signal with dg_loop_stop().
 *
 * Exit status: 0 after a signal, 1 on a runtime failure, 2 on a bad
 * command line.
 */
#include <dgring.h>

#include <errno.h>
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
    unsigned long interval_ms;
    const char *output;    /* NULL: stdout */
    unsigned long rcvbuf;  /* SO_RCVBUF, 0: the system's default */
    unsigned long max_metrics;
} statsd_config;

typedef struct statsd_server {
    const statsd_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *flush_timer;
    FILE *out;
    statsd_store store;
    uint64_t truncated;     /* datagrams longer than RECV_BUFFER_SIZE */
    uint64_t last_flush_ms;
    bool closing;
    int exit_code;
} statsd_server;

static const char usage_text[] =
    "usage: " PROG " [--address A] [--port P] [--udp6] [--interval MS]\n"
    "                [--output FILE] [--rcvbuf BYTES] [--max-metrics N]\n"
    "\n"
    "Aggregates statsd counters (|c), gauges (|g) and timers (|ms, |h) received\n"
    "on UDP and writes them as one JSON line every interval.\n"
    "\n"
    "  --address A       address to bind (default: all addresses)\n"
    "  --port P          port to bind (default 8125; 0 picks a free port)\n"
    "  --udp6            use IPv6\n"
    "  --interval MS     flush interval in milliseconds (default 10000)\n"
    "  --output FILE     append the JSON lines to FILE instead of stdout\n"
    "  --rcvbuf BYTES    socket receive buffer (SO_RCVBUF)\n"
    "  --max-metrics N   distinct metrics kept (default 100000)\n"
    "\n"
    "Prints \"listening ADDRESS:PORT\" on stderr once bound.\n";

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char *argv[], statsd_config *config)
{
    const example_option options[] = {
        {"address", EXAMPLE_STRING, &config->address, 0, 0},
        {"port", EXAMPLE_NUMBER, &config->port, 0, 65535},
        {"udp6", EXAMPLE_FLAG, &config->udp6, 0, 0},
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

/* Writes the interval's aggregates and the socket's health. */
static void flush(statsd_server *server)
{
    uint64_t now = dg_loop_now(server->loop);
    int rc;

    rc = statsd_flush(&server->store, server->out, wall_clock_ms(), now - server->last_flush_ms);
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

/* One datagram: every line in it is aggregated. msg is valid during this
 * callback only; statsd_feed copies what it keeps. */
static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    statsd_server *server = data;

    (void)sock;
    if (msg->flags & DG_MSG_TRUNC)
        server->truncated++; /* its complete lines still count */
    if (statsd_feed(&server->store, msg->data, msg->length) < 0)
        fprintf(stderr, PROG ": out of memory, values lost\n");
}

static void on_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    example_print_error(PROG, err);
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    statsd_server *server = data;

    if (!example_bound(PROG, sock, status, stderr)) {
        server->exit_code = 1;
        return;
    }
    server->last_flush_ms = dg_loop_now(server->loop);
    if (dg_timer_start(server->flush_timer, server->config->interval_ms,
                       server->config->interval_ms, on_flush_timer, server) < 0)
        server->exit_code = 1;
}

/* Opens the socket and the timer and binds. Returns 0 or a code. */
static int server_start(statsd_server *server)
{
    const statsd_config *config = server->config;
    dg_socket_options options = {
        .type = config->udp6 ? DG_UDP6 : DG_UDP4,
        .recv_buffer_size = (int)config->rcvbuf,
    };
    dg_socket_handlers handlers = {.on_message = on_message, .on_error = on_error};
    int rc = dg_timer_new(server->loop, &server->flush_timer);

    if (rc == 0)
        rc = dg_socket_create(server->loop, &options, &handlers, server, &server->sock);
    if (rc == 0)
        rc = dg_socket_bind(server->sock, (int)config->port, config->address, on_bound, server);
    if (rc < 0)
        fprintf(stderr, PROG ": cannot start: %s (%s)\n", dg_err_name(rc), dg_strerror(rc));
    return rc;
}

/* The final flush, then closes everything so the loop ends. Idempotent:
 * runs after every signal. */
static void server_stop(void *ctx)
{
    statsd_server *server = ctx;
    dg_socket_stats stats;

    if (server->closing)
        return;
    server->closing = true;
    if (server->exit_code == 0)
        flush(server);
    if (server->sock != NULL && dg_socket_get_stats(server->sock, &stats) == 0)
        fprintf(stderr, PROG ": %llu datagrams, %llu truncated, %llu dropped by the kernel\n",
                (unsigned long long)stats.rx_datagrams, (unsigned long long)server->truncated,
                (unsigned long long)stats.rx_kernel_drops);
    if (server->flush_timer != NULL)
        dg_timer_close(server->flush_timer, NULL, NULL);
    if (server->sock != NULL)
        dg_socket_close(server->sock, NULL, NULL);
}

/* Creates the loop (small receive buffers: statsd datagrams are small)
 * and routes SIGINT/SIGTERM to it. Returns 0 or a code. */
static int open_loop(statsd_server *server)
{
    dg_loop_options options;
    int rc;

    dg_loop_options_init(&options);
    options.recv_buffer_size = RECV_BUFFER_SIZE;
    rc = dg_loop_new(&server->loop, &options);
    if (rc < 0) {
        fprintf(stderr, PROG ": cannot create the loop: %s\n", dg_strerror(rc));
        return rc;
    }
    rc = example_catch_signals(server->loop);
    if (rc < 0) {
        fprintf(stderr, PROG ": sigaction: %s\n", strerror(-rc));
        dg_loop_close(server->loop);
    }
    return rc;
}

int main(int argc, char *argv[])
{
    statsd_config config = {.port = 8125, .interval_ms = 10000, .max_metrics = 100000};
    statsd_server server = {.config = &config, .out = stdout, .exit_code = 1};
    int status = parse_args(argc, argv, &config);

    if (status >= 0)
        return status;
    if (config.output != NULL && (server.out = fopen(config.output, "a")) == NULL) {
        fprintf(stderr, PROG ": %s: %s\n", config.output, strerror(errno));
        return 1;
    }
    if (statsd_init(&server.store, config.max_metrics) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto close_output;
    }
    if (open_loop(&server) < 0)
        goto free_store;
    server.exit_code = 0;
    if (server_start(&server) < 0)
        server.exit_code = 1;
    if (example_run(server.loop, server_stop, &server, &server.exit_code) < 0)
        server.exit_code = 1;
    example_release_signals();
    dg_loop_close(server.loop);
free_store:
    statsd_free(&server.store);
close_output:
    if (server.out != stdout)
        fclose(server.out);
    return server.exit_code;
}

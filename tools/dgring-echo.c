/* dgring-echo: a UDP echo server on dgring.
 *
 * Sends every datagram back to its sender until SIGINT or SIGTERM (or,
 * with --count N, until N datagrams were received and echoed), then prints
 * what it did and the socket's own counters (dg_socket_get_stats), the
 * kernel's drops among them, final as of the close. Once bound it prints
 * "listening ADDRESS:PORT" (flushed; on stderr with --json, whose stdout
 * carries only JSON lines), so scripts can bind port 0 and read the port
 * back, then the receive buffer the kernel granted (32 MiB asked unless
 * --rcvbuf says otherwise) and whether net.core.rmem_max capped it.
 * --stats adds a line of statistics a second (--interval: every S) on
 * stderr; --sockperf answers the way sockperf's own server does (see
 * sockperf.h), so sockperf's ping-pong and under-load clients can measure
 * against dgring.
 *
 * Exit status: 0 after a signal or --count, 1 on a runtime failure (bind, loop),
 * 2 on a bad command line.
 */
#include "common.h"
#include "options.h"
#include "setup.h"
#include "sockperf.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "dgring-echo"
#define STATS_INTERVAL_MS 1000

typedef struct echo_config {
    const char *address; /* bind address; NULL = the unspecified address */
    int port;            /* 0 = a free port */
    bool udp4;           /* -4 */
    bool udp6;           /* -6, or inferred from an IPv6 --address */
    bool json;
    bool stats;          /* a line of statistics every interval on stderr */
    double interval;     /* seconds between them (default 1; implies --stats) */
    tool_net_options net; /* --rcvbuf, --sndbuf, --dns-server, --cpu */
    bool sockperf;       /* answer as sockperf's server instead of echoing */
    unsigned threads;    /* > 1: a reuse-port group of that many loops */
    uint64_t count;      /* > 0: stop after this many datagrams, echoed */
} echo_config;

/* Counters of the sockperf protocol (--sockperf only). */
typedef struct sockperf_counts {
    uint64_t messages;   /* client messages, warm-up excluded */
    uint64_t replies;    /* answers handed to dgring */
    uint64_t warmup;     /* warm-up messages, ignored */
    uint64_t ignored;    /* messages from servers, ignored */
    uint64_t malformed;  /* datagrams with no valid sockperf header */
} sockperf_counts;

/* The counters the per-second line reports as differences. */
typedef struct echo_counters {
    uint64_t received;
    uint64_t received_bytes;
    uint64_t sent;           /* echoes the kernel completed */
    uint64_t sent_bytes;
    uint64_t dropped;        /* not echoed: DG_ERR_SEND_QUEUE_FULL */
    uint64_t errors;         /* not echoed: any other send failure */
} echo_counters;

typedef struct echo_server {
    const echo_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *stats_timer;   /* every second with --stats */
    unsigned char *reply;    /* --sockperf: one answer being built */
    char backend[32];        /* copied: printed after the loop is gone */
    echo_counters now;
    echo_counters last;      /* at the previous per-second line */
    sockperf_counts sockperf;
    uint64_t kernel_drops;   /* the socket's, as of the last statistics (and
                                final once the socket closed) */
    tool_buffer rcvbuf;      /* granted, read once bound */
    tool_buffer sndbuf;
    bool have_rcvbuf;        /* both read */
    uint64_t answers;        /* sends dgring accepted */
    uint64_t completed;      /* ... whose callback ran */
    dg_socket_stats sock_stats; /* the socket's counters, taken in on_close */
    bool have_sock_stats;
    dg_loop_stats loop_stats;   /* the loop's counters, taken before it closes */
    bool have_loop_stats;
    unsigned seconds;        /* per-second lines printed */
    bool closing;
    int exit_code;
} echo_server;

enum { PARSE_OK = -1 };

static const char echo_intro[] =
    "Echoes every UDP datagram back to its sender until SIGINT/SIGTERM,\n"
    "then prints a summary and the socket's statistics.\n";

static const char echo_outro[] =
    "Prints \"listening ADDRESS:PORT\" once bound. Exit status: 0 after\n"
    "SIGINT/SIGTERM or --count, 1 on a runtime failure, 2 on a bad command line.\n";

#define FIELD(member) TOOL_FIELD(echo_config, member)

static const tool_option echo_table[] = {
    {"port", 'p', TOOL_ARG_NUMBER, FIELD(port), "P",
     "port to bind, 0..65535 (0 picks a free port)", .required = true, TOOL_PORT_RANGE(0)},
    {"address", 'B', TOOL_ARG_STRING, FIELD(address), "A",
     "IP address or host name to bind (default: all addresses; an IPv6 address implies -6)"},
    {"udp4", '4', TOOL_ARG_FLAG, FIELD(udp4), NULL,
     "use IPv4 (the default, unless --address is an IPv6 literal)"},
    {"udp6", '6', TOOL_ARG_FLAG, FIELD(udp6), NULL, "use IPv6 (implied by an IPv6 --address)"},
    {"stats", 0, TOOL_ARG_FLAG, FIELD(stats), NULL, "print statistics every second on stderr"},
    {"interval", 'i', TOOL_ARG_POSITIVE, FIELD(interval), "S",
     "print the statistics every S seconds instead (implies --stats)", .max = 86400,
     .expected = "seconds > 0"},
    {"sockperf", 0, TOOL_ARG_FLAG, FIELD(sockperf), NULL,
     "answer like sockperf's server: reply only to client messages that ask for it, with the "
     "client flag cleared"},
    {"json", 'J', TOOL_ARG_FLAG, FIELD(json), NULL,
     "print the summary (and --stats lines) as JSON objects; stdout carries only JSON lines, "
     "the listening line and notes go to stderr"},
    {"threads", 'P', TOOL_ARG_NUMBER, FIELD(threads), "N",
     "N loops in N threads on the same port (SO_REUSEPORT), 1..64; the summary has a line per "
     "thread and the total (not with --stats or --sockperf)",
     TOOL_THREADS_RANGE},
    TOOL_ROW_RCVBUF(echo_config, 0,
                    "ask for a receive buffer (SO_RCVBUF) of BYTES (K, M, G: powers of 1024; "
                    "default 32M); the kernel grants twice that, at most twice "
                    "net.core.rmem_max, and the size granted is printed"),
    TOOL_ROW_SNDBUF(echo_config, 0),
    TOOL_ROW_DNS_SERVER(echo_config, 0),
    TOOL_ROW_CPU(echo_config, 0, "pin the loop's thread to CPU N (with --threads, thread i to "
                 "CPU N + i)"),
    {"count", 0, TOOL_ARG_NUMBER, FIELD(count), "N",
     "stop once N datagrams were received and their echoes completed (not with --threads)",
     .min = 1, .max = UINT64_MAX, .expected = "a positive number"},
    {"help", 'h', TOOL_ARG_HELP, .help = "show this help"},
};

/* Returns PARSE_OK or the exit status to leave with. */
static int parse_args(int argc, char *argv[], echo_config *config)
{
    tool_options options = {
        .prog = PROG,
        .usage = PROG,
        .table = echo_table,
        .count = sizeof(echo_table) / sizeof(echo_table[0]),
        .intro = echo_intro,
        .outro = echo_outro,
    };
    int status = tool_options_parse(&options, argc, argv, config);

    if (status != PARSE_OK)
        return status;
    if (tool_options_missing(&options) != NULL) {
        tool_error(PROG, "missing --port (use --port 0 for a free port)");
        return TOOL_EXIT_USAGE;
    }
    if (config->udp4 && config->udp6) {
        tool_error(PROG, "-4 and -6 exclude each other");
        return TOOL_EXIT_USAGE;
    }
    if (!config->udp4 && tool_literal_family(config->address) == AF_INET6)
        config->udp6 = true;
    if (config->interval > 0)
        config->stats = true;
    if (!tool_options_given(&options, "rcvbuf"))
        config->net.rcvbuf = TOOL_RECEIVER_RCVBUF;
    if (config->threads > 1 && (config->stats || config->sockperf)) {
        tool_error(PROG, "--threads cannot be combined with --stats or --sockperf");
        return TOOL_EXIT_USAGE;
    }
    if (config->threads > 1 && config->count > 0) {
        tool_error(PROG, "--threads cannot be combined with --count");
        return TOOL_EXIT_USAGE;
    }
    return PARSE_OK;
}

/* Starts closing the socket and the statistics timer; the loop ends once
 * both closed. Idempotent: runs again for every signal. */
static void echo_finish(void *ctx)
{
    echo_server *server = ctx;

    if (server->stats_timer != NULL) {
        dg_timer_close(server->stats_timer, NULL, NULL);
        server->stats_timer = NULL;
    }
    if (server->closing)
        return;
    server->closing = true;
    dg_socket_close(server->sock, NULL, NULL);
}

/* --count: the last datagram arrived and every echo completed. */
static bool count_done(const echo_server *server)
{
    return server->config->count > 0 && server->now.received >= server->config->count &&
           server->completed == server->answers;
}

static void on_echo_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    echo_server *server = data;

    (void)sock;
    server->completed++;
    if (count_done(server))
        echo_finish(server);
    if (status >= 0) {
        server->now.sent++;
        server->now.sent_bytes += (uint64_t)status;
        return;
    }
    /* Only the first failure is printed: a flood must not flood stderr. */
    if (server->now.errors++ == 0 && status != -ECANCELED && err != NULL)
        tool_error_dg(PROG, err);
}

/* Sends len bytes at buf back to the sender of msg; they are copied by
 * the send, so buf may be reused at once. Only --count needs to know when
 * each echo completed; otherwise the echo goes without a callback (the
 * loop then needs one wake-up per request instead of two), failures come
 * to on_echo_error and the sent counts from the socket's statistics. */
static void answer(echo_server *server, const dg_message *msg, const void *buf, size_t len)
{
    dg_send_cb cb = server->config->count > 0 ? on_echo_sent : NULL;
    int rc = dg_socket_send_to(server->sock, buf, len, msg->addr, msg->addrlen, cb, server);

    if (rc == 0)
        server->answers++;
    else if (rc == DG_ERR_SEND_QUEUE_FULL)
        server->now.dropped++;
    else if (server->now.errors++ == 0)
        tool_error_code(PROG, "send", rc);
}

/* Handles one sockperf message of the datagram (header already read). */
static void sockperf_one(echo_server *server, const dg_message *msg, const unsigned char *start,
                         const sockperf_header *header)
{
    switch (sockperf_server_action(header)) {
    case SOCKPERF_NOT_CLIENT:
        server->sockperf.ignored++;
        return;
    case SOCKPERF_WARMUP:
        server->sockperf.warmup++;
        return;
    case SOCKPERF_COUNT_ONLY:
        server->sockperf.messages++;
        return;
    case SOCKPERF_REPLY:
        server->sockperf.messages++;
        server->sockperf.replies++;
        memcpy(server->reply, start, header->length);
        sockperf_make_reply(server->reply);
        answer(server, msg, server->reply, header->length);
        return;
    }
}

/* A datagram may carry several sockperf messages back to back (sockperf's
 * server accepts that); each is handled in turn. A datagram that does not
 * start with a valid header, or has a tail that is none, counts as
 * malformed from there on. */
static void sockperf_datagram(echo_server *server, const dg_message *msg)
{
    const unsigned char *data = msg->data;
    size_t offset = 0;

    while (offset < msg->length) {
        sockperf_header header;
        if (!sockperf_header_read(data + offset, msg->length - offset, &header)) {
            server->sockperf.malformed++;
            return;
        }
        sockperf_one(server, msg, data + offset, &header);
        offset += header.length;
    }
    if (msg->length == 0)
        server->sockperf.malformed++;
}

/* Answers the sender; the payload and address are copied by the send, so
 * their lifetime ending with this callback is fine. */
static void on_echo_message(dg_socket *sock, const dg_message *msg, void *data)
{
    echo_server *server = data;

    (void)sock;
    if (server->closing)
        return; /* --count reached: the rest of this batch is not ours */
    server->now.received++;
    server->now.received_bytes += msg->length;
    if (server->config->sockperf)
        sockperf_datagram(server, msg);
    else
        answer(server, msg, msg->data, msg->length);
    if (count_done(server))
        echo_finish(server);
}

/* Echoes sent without a callback are counted by the socket. */
static void sync_sent(echo_server *server, const dg_socket_stats *st)
{
    if (server->config->count > 0)
        return; /* counted by on_echo_sent */
    server->now.sent = st->tx_datagrams;
    server->now.sent_bytes = st->tx_bytes;
}

/* The socket is still valid in on_close: keep its final counters (the
 * kernel's drops up to the close among them). */
static void on_echo_close(dg_socket *sock, void *data)
{
    echo_server *server = data;

    server->have_sock_stats = dg_socket_get_stats(sock, &server->sock_stats) == 0;
    if (server->have_sock_stats) {
        sync_sent(server, &server->sock_stats);
        server->kernel_drops = server->sock_stats.rx_kernel_drops;
    }
}

/* Receive errors, and failed echoes sent without a callback: the socket
 * keeps running, so report and go on (only the first failed echo: a flood
 * must not flood stderr; cancelled ones at close are not failures). */
static void on_echo_error(dg_socket *sock, const dg_error *err, void *data)
{
    echo_server *server = data;

    (void)sock;
    if (err->syscall && strcmp(err->syscall, "send") == 0) {
        if (err->code != -ECANCELED && server->now.errors++ == 0)
            tool_error_dg(PROG, err);
        return;
    }
    tool_error_dg(PROG, err);
}


static void refresh_kernel_drops(echo_server *server)
{
    dg_socket_stats stats;

    if (!server->closing && dg_socket_get_stats(server->sock, &stats) == 0) {
        server->kernel_drops = stats.rx_kernel_drops;
        sync_sent(server, &stats);
    }
}

static void print_stats_json(const echo_server *server, const echo_counters *delta)
{
    tool_json json;

    double seconds = server->config->interval > 0 ? server->config->interval : 1;

    tool_json_begin(&json, stderr);
    tool_json_string(&json, "mode", "echo-stats");
    tool_json_uint(&json, "second", server->seconds);
    tool_json_double(&json, "elapsed", seconds * server->seconds, 3);
    tool_json_double(&json, "rx_pps", (double)delta->received / seconds, 1);
    tool_json_double(&json, "rx_mbps", (double)delta->received_bytes * 8 / 1e6 / seconds, 3);
    tool_json_double(&json, "tx_pps", (double)delta->sent / seconds, 1);
    tool_json_double(&json, "tx_mbps", (double)delta->sent_bytes * 8 / 1e6 / seconds, 3);
    tool_json_uint(&json, "dropped", delta->dropped);
    tool_json_uint(&json, "errors", delta->errors);
    tool_json_uint(&json, "kernel_drops", server->kernel_drops);
    tool_json_end(&json);
}

/* One line of the last interval's rates on stderr (--stats). */
static void on_stats(dg_timer *timer, void *data)
{
    echo_server *server = data;
    double seconds = server->config->interval > 0 ? server->config->interval : 1;
    refresh_kernel_drops(server); /* and the sent counts */
    echo_counters delta = {
        .received = server->now.received - server->last.received,
        .received_bytes = server->now.received_bytes - server->last.received_bytes,
        .sent = server->now.sent - server->last.sent,
        .sent_bytes = server->now.sent_bytes - server->last.sent_bytes,
        .dropped = server->now.dropped - server->last.dropped,
        .errors = server->now.errors - server->last.errors,
    };

    (void)timer;
    server->last = server->now;
    server->seconds++;
    if (server->config->json) {
        print_stats_json(server, &delta);
        return;
    }
    fprintf(stderr,
            "[%5.1fs] rx %.0f pkt/s %.1f Mbit/s  tx %.0f pkt/s %.1f Mbit/s  dropped %llu  "
            "errors %llu  kernel drops %llu\n",
            seconds * server->seconds, (double)delta.received / seconds,
            (double)delta.received_bytes * 8 / 1e6 / seconds, (double)delta.sent / seconds,
            (double)delta.sent_bytes * 8 / 1e6 / seconds, (unsigned long long)delta.dropped,
            (unsigned long long)delta.errors, (unsigned long long)server->kernel_drops);
}

/* Bound: print the port for scripts, then start the statistics. */
static void on_echo_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    echo_server *server = data;
    const echo_config *config = server->config;
    FILE *notes = tool_notes(config->json);
    int rc = tool_bind_done(PROG, sock, status, server->closing, notes);
    uint64_t every_ms = config->interval > 0 ? (uint64_t)(config->interval * 1000 + 0.5)
                                             : STATS_INTERVAL_MS;

    if (rc != TOOL_EXIT_OK) {
        server->exit_code = rc;
        echo_finish(server);
    }
    if (status < 0 || rc != TOOL_EXIT_OK)
        return;
    tool_buffer_read(&server->rcvbuf, sock, true, config->net.rcvbuf);
    tool_buffer_read(&server->sndbuf, sock, false, config->net.sndbuf);
    server->have_rcvbuf = true;
    tool_buffer_print(notes, &server->rcvbuf);
    if (config->net.sndbuf > 0)
        tool_buffer_print(notes, &server->sndbuf);
    if (!config->stats)
        return;
    rc = dg_timer_new(server->loop, &server->stats_timer);
    if (rc == 0)
        rc = dg_timer_start(server->stats_timer, every_ms > 0 ? every_ms : 1,
                            every_ms > 0 ? every_ms : 1, on_stats, server);
    if (rc < 0) {
        tool_error_code(PROG, "statistics timer", rc);
        server->exit_code = TOOL_EXIT_FAILURE;
        echo_finish(server);
    }
}

/* Creates and binds the socket. On failure sets exit_code and leaves any
 * created socket closing, so the loop still has to run. */
static void echo_start(echo_server *server)
{
    const echo_config *config = server->config;
    dg_socket_options options = {.type = config->udp6 ? DG_UDP6 : DG_UDP4};
    dg_socket_handlers handlers = {
        .on_message = on_echo_message,
        .on_error = on_echo_error,
        .on_close = on_echo_close,
    };
    int rc;

    tool_socket_buffers(&options, &config->net);
    rc = dg_socket_create(server->loop, &options, &handlers, server, &server->sock);

    if (rc < 0) {
        tool_error_code(PROG, "socket", rc);
        server->exit_code = TOOL_EXIT_FAILURE;
        server->closing = true; /* nothing to close */
        return;
    }
    server->exit_code = tool_bind_start(PROG, server->sock, config->address, config->port,
                                        config->udp6, on_echo_bound, server);
    if (server->exit_code != TOOL_EXIT_OK)
        echo_finish(server);
}

/* The counters of dg_socket_stats and dg_loop_stats the summary shows, in
 * its order. The names are the text's words and the JSON keys (the loop's
 * with "loop_" in front). Every counter is a uint64_t. */
typedef struct counter_field {
    const char *name;
    size_t offset;
} counter_field;

#define SOCKET_COUNTER(member) {#member, offsetof(dg_socket_stats, member)}
#define LOOP_COUNTER(member) {#member, offsetof(dg_loop_stats, member)}
#define COUNTERS(fields) fields, sizeof(fields) / sizeof(fields[0])

static const counter_field socket_counters[] = {
    SOCKET_COUNTER(rx_datagrams), SOCKET_COUNTER(rx_bytes),        SOCKET_COUNTER(rx_truncated),
    SOCKET_COUNTER(rx_rearms),    SOCKET_COUNTER(rx_no_buffers),   SOCKET_COUNTER(rx_kernel_drops),
    SOCKET_COUNTER(rx_gro_buffers), SOCKET_COUNTER(tx_datagrams), SOCKET_COUNTER(tx_bytes),
    SOCKET_COUNTER(tx_errors),    SOCKET_COUNTER(tx_gso_sends),
    SOCKET_COUNTER(rx_discarded_at_close),
};

static const counter_field loop_counters[] = {
    LOOP_COUNTER(turns),       LOOP_COUNTER(submissions),  LOOP_COUNTER(enters),
    LOOP_COUNTER(completions), LOOP_COUNTER(cq_overflows), LOOP_COUNTER(cq_dropped),
};

static uint64_t *counter_at(void *stats, const counter_field *field)
{
    return (uint64_t *)((char *)stats + field->offset);
}

static uint64_t counter_value(const void *stats, const counter_field *field)
{
    return *counter_at((void *)stats, field);
}

/* "LABEL: name value name value ...", one line. */
static void print_counters_text(const char *label, const void *stats,
                                const counter_field *fields, size_t count)
{
    printf("%s:", label);
    for (size_t i = 0; i < count; i++)
        printf(" %s %llu", fields[i].name, (unsigned long long)counter_value(stats, &fields[i]));
    printf("\n");
}

/* The same counters as keys of a JSON summary, each name after prefix. */
static void json_counters(tool_json *json, const char *prefix, const void *stats,
                          const counter_field *fields, size_t count)
{
    char key[64];

    for (size_t i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "%s%s", prefix, fields[i].name);
        tool_json_uint(json, key, counter_value(stats, &fields[i]));
    }
}

static void print_summary_text(const echo_server *server)
{
    const echo_counters *c = &server->now;
    const sockperf_counts *sp = &server->sockperf;

    printf("received %llu datagrams (%llu bytes), sent %llu datagrams, "
           "dropped %llu, errors %llu, kernel drops %llu [%s]\n",
           (unsigned long long)c->received, (unsigned long long)c->received_bytes,
           (unsigned long long)c->sent, (unsigned long long)c->dropped,
           (unsigned long long)c->errors, (unsigned long long)server->kernel_drops,
           server->backend);
    tool_explain_drops(stdout, server->kernel_drops, server->have_rcvbuf ? &server->rcvbuf : NULL);
    if (server->config->sockperf)
        printf("sockperf: %llu messages, %llu replies, %llu warm-up, %llu ignored, "
               "%llu malformed\n",
               (unsigned long long)sp->messages, (unsigned long long)sp->replies,
               (unsigned long long)sp->warmup, (unsigned long long)sp->ignored,
               (unsigned long long)sp->malformed);
    if (server->have_sock_stats)
        print_counters_text("socket", &server->sock_stats, COUNTERS(socket_counters));
    if (server->have_loop_stats)
        print_counters_text("loop", &server->loop_stats, COUNTERS(loop_counters));
    fflush(stdout);
}

static void print_summary(const echo_server *server)
{
    const sockperf_counts *sp = &server->sockperf;
    tool_json json;

    if (!server->config->json) {
        print_summary_text(server);
        return;
    }
    tool_json_begin(&json, stdout);
    tool_json_string(&json, "mode", server->config->sockperf ? "echo-sockperf" : "echo");
    tool_json_string(&json, "backend", server->backend);
    tool_json_uint(&json, "received", server->now.received);
    tool_json_uint(&json, "bytes", server->now.received_bytes);
    tool_json_uint(&json, "sent", server->now.sent);
    tool_json_uint(&json, "dropped", server->now.dropped);
    tool_json_uint(&json, "errors", server->now.errors);
    tool_json_uint(&json, "kernel_drops", server->kernel_drops);
    if (server->have_rcvbuf) {
        tool_buffer_json(&json, &server->rcvbuf);
        tool_buffer_json(&json, &server->sndbuf);
    }
    if (server->config->sockperf) {
        tool_json_uint(&json, "messages", sp->messages);
        tool_json_uint(&json, "replies", sp->replies);
        tool_json_uint(&json, "warmup", sp->warmup);
        tool_json_uint(&json, "ignored", sp->ignored);
        tool_json_uint(&json, "malformed", sp->malformed);
    }
    if (server->have_sock_stats)
        json_counters(&json, "", &server->sock_stats, COUNTERS(socket_counters));
    if (server->have_loop_stats)
        json_counters(&json, "loop_", &server->loop_stats, COUNTERS(loop_counters));
    tool_json_end(&json);
}

/* Runs the server to its end; returns the exit status. */
static int echo_run(echo_server *server)
{
    int rc;

    server->loop = tool_loop_open(PROG, NULL);
    if (server->loop == NULL)
        return TOOL_EXIT_FAILURE;
    snprintf(server->backend, sizeof(server->backend), "%s", dg_loop_backend(server->loop));
    server->exit_code = tool_pin_thread(PROG, &server->config->net, 0);
    if (server->exit_code == TOOL_EXIT_OK)
        echo_start(server);
    else
        server->closing = true; /* no socket was opened */
    rc = tool_run_loop(server->loop, echo_finish, server);
    if (rc < 0) {
        tool_error_code(PROG, "loop", rc);
        return TOOL_EXIT_FAILURE;
    }
    server->have_loop_stats = dg_loop_get_stats(server->loop, &server->loop_stats) == 0;
    if (!tool_loop_close(PROG, server->loop))
        return TOOL_EXIT_FAILURE;
    if (server->exit_code == TOOL_EXIT_OK)
        print_summary(server);
    return server->exit_code;
}

/* ---- --threads N: a reuse-port group ----------------------------------
 * Each thread runs its own loop and socket on the shared port; the kernel
 * spreads flows across them. The main thread only waits for a signal. */

static atomic_ulong group_dropped; /* echoes refused: DG_ERR_SEND_QUEUE_FULL */
static atomic_ulong group_errors;  /* other send and receive failures */

static void on_group_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)data;
    int rc = dg_socket_send_to(sock, msg->data, msg->length, msg->addr, msg->addrlen, NULL,
                               NULL);
    if (rc == DG_ERR_SEND_QUEUE_FULL)
        atomic_fetch_add(&group_dropped, 1);
    else if (rc < 0)
        atomic_fetch_add(&group_errors, 1);
}

static void on_group_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    (void)data;
    atomic_fetch_add(&group_errors, 1);
}

static char group_backend[16]; /* copied while the member loops exist */
static tool_buffer group_rcvbuf;  /* member 0's, read before the start returns */
static atomic_int group_pin_failed;

/* Member 0's receive buffer, on its thread before dg_group_start()
 * returns. */
static void on_group_listening(dg_socket *sock, void *data)
{
    const echo_config *config = data;

    if (dg_group_index(dg_socket_loop(sock)) == 0)
        tool_buffer_read(&group_rcvbuf, sock, true, config->net.rcvbuf);
}

/* --cpu: member i runs on CPU --cpu + i. */
static void on_group_start(dg_loop *loop, unsigned index, void *data)
{
    const echo_config *config = data;

    (void)loop;
    if (tool_pin_thread(PROG, &config->net, index) != TOOL_EXIT_OK)
        atomic_store(&group_pin_failed, 1);
}

/* One member's line: text before the summary, a JSON line after it. */
static void print_group_thread(const echo_config *config, unsigned i, const dg_socket_stats *st)
{
    tool_json json;

    if (!config->json) {
        printf("thread %u: received %llu datagrams (%llu bytes), sent %llu datagrams, kernel "
               "drops %llu\n",
               i, (unsigned long long)st->rx_datagrams, (unsigned long long)st->rx_bytes,
               (unsigned long long)st->tx_datagrams, (unsigned long long)st->rx_kernel_drops);
        return;
    }
    tool_json_begin(&json, stdout);
    tool_json_string(&json, "mode", "echo-thread");
    tool_json_uint(&json, "thread", i);
    json_counters(&json, "", st, COUNTERS(socket_counters));
    tool_json_end(&json);
}

static void print_group_summary(const echo_config *config, unsigned n, const dg_socket_stats *st)
{
    dg_socket_stats sum = {0};
    tool_json json;

    for (unsigned i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(socket_counters) / sizeof(socket_counters[0]); k++)
            *counter_at(&sum, &socket_counters[k]) += counter_value(&st[i], &socket_counters[k]);
        if (!config->json)
            print_group_thread(config, i, &st[i]);
    }
    if (!config->json) {
        printf("received %llu datagrams (%llu bytes), sent %llu datagrams, dropped %lu, "
               "errors %lu, kernel drops %llu [%s, %u threads]\n",
               (unsigned long long)sum.rx_datagrams, (unsigned long long)sum.rx_bytes,
               (unsigned long long)sum.tx_datagrams, atomic_load(&group_dropped),
               atomic_load(&group_errors), (unsigned long long)sum.rx_kernel_drops,
               group_backend, n);
        tool_explain_drops(stdout, sum.rx_kernel_drops, &group_rcvbuf);
        /* the sockets of all threads together */
        print_counters_text("socket", &sum, COUNTERS(socket_counters));
        fflush(stdout);
        return;
    }
    tool_json_begin(&json, stdout);
    tool_json_string(&json, "mode", "echo");
    tool_json_string(&json, "backend", group_backend);
    tool_json_uint(&json, "threads", n);
    tool_json_uint(&json, "received", sum.rx_datagrams);
    tool_json_uint(&json, "bytes", sum.rx_bytes);
    tool_json_uint(&json, "sent", sum.tx_datagrams);
    tool_json_uint(&json, "dropped", atomic_load(&group_dropped));
    tool_json_uint(&json, "errors", atomic_load(&group_errors));
    tool_json_uint(&json, "kernel_drops", sum.rx_kernel_drops);
    tool_buffer_json(&json, &group_rcvbuf);
    json_counters(&json, "", &sum, COUNTERS(socket_counters));
    tool_json_end(&json);
    for (unsigned i = 0; i < n; i++)
        print_group_thread(config, i, &st[i]);
}

/* Starts the group: prints the listening line and the receive buffer. */
static int echo_group_start(const echo_config *config, dg_group **group)
{
    dg_group_options o;

    tool_group_options_init(&o, config->threads, config->address, config->port, config->udp6);
    tool_socket_buffers(&o.socket, &config->net);
    o.handlers.on_message = on_group_message;
    o.handlers.on_error = on_group_error;
    o.handlers.on_listening = on_group_listening;
    o.on_start = on_group_start;
    o.data = (void *)config;
    if (tool_group_start(PROG, group, &o, tool_notes(config->json)) < 0)
        return -1;
    snprintf(group_backend, sizeof(group_backend), "%s",
             dg_loop_backend(dg_group_loop(*group, 0)));
    tool_buffer_print(tool_notes(config->json), &group_rcvbuf);
    return atomic_load(&group_pin_failed) ? -1 : 0;
}

/* Blocks SIGINT/SIGTERM in every thread (the group's threads inherit the
 * mask) and waits for one in the main thread. */
static int echo_run_group(const echo_config *config)
{
    static dg_socket_stats stats[64];
    dg_group *group = NULL;
    sigset_t stops;
    int sig = 0, started, rc;

    tool_block_stop_signals(&stops);
    started = echo_group_start(config, &group);
    if (group == NULL)
        return TOOL_EXIT_FAILURE;
    if (started == 0)
        sigwait(&stops, &sig);
    dg_group_stop(group);
    rc = dg_group_join(group, stats);
    if (rc < 0) {
        tool_error_code(PROG, "group", rc);
        return TOOL_EXIT_FAILURE;
    }
    if (started < 0)
        return TOOL_EXIT_USAGE; /* --cpu named a CPU the process may not use */
    print_group_summary(config, config->threads, stats);
    return TOOL_EXIT_OK;
}

int main(int argc, char *argv[])
{
    echo_config config = {.net = {.cpu = -1}};
    echo_server server = {.config = &config};
    int status = parse_args(argc, argv, &config);

    if (status != PARSE_OK)
        return status;
    status = tool_dns_servers(PROG, &config.net);
    if (status != TOOL_EXIT_OK)
        return status;
    if (config.threads > 1)
        return echo_run_group(&config);
    if (config.sockperf) {
        server.reply = malloc(TOOL_MAX_PAYLOAD); /* the loop's largest datagram */
        if (server.reply == NULL) {
            tool_error(PROG, "out of memory");
            return TOOL_EXIT_FAILURE;
        }
    }
    status = echo_run(&server);
    free(server.reply);
    return status;
}

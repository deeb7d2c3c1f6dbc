/* dgring-impair: a UDP impairment proxy on dgring.
 *
 * Listens on --port, forwards every client's datagrams to --target-host
 * and --target-port and the target's replies back, losing, delaying,
 * reordering, duplicating, corrupting and rate-limiting them as asked
 * (impair.h has the steps). Once bound it prints "listening ADDRESS:PORT"
 * on stdout. The first SIGINT/SIGTERM stops taking datagrams and lets the
 * held ones leave on time; a second drops them. Then it prints what it did
 * to each flow and in total (text, or JSON lines with --json; --report
 * FILE writes the JSON lines too).
 *
 * Exit status: 0 after a signal, 1 on a runtime failure (bind, a target
 * that does not resolve, the report file), 2 on a bad command line.
 */
#include "common.h"
#include "impair.h"
#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "dgring-impair"

enum { PARSE_OK = -1 };

static const char impair_intro[] =
    "Forwards UDP datagrams between clients and a target, both ways, one flow per\n"
    "client address and port, with loss, delay, reordering, duplication,\n"
    "corruption and a rate limit. Percentages may have decimals (0.5).\n";

static const char impair_outro[] =
    "Prints \"listening ADDRESS:PORT\" once bound. The first SIGINT/SIGTERM lets the\n"
    "datagrams still held leave on time, a second drops them; then every flow's\n"
    "record and the totals are printed. Exit status: 0 after a signal, 1 on a\n"
    "runtime failure, 2 on a bad command line.\n";

static const char *const direction_choices[] = {"both", "up", "down", NULL};

#define FIELD(member) TOOL_FIELD(impair_config, member)
#define MS_RANGE .min = 0, .max = 60000

static const tool_option impair_table[] = {
    {"port", 'p', TOOL_ARG_NUMBER, FIELD(port), "P",
     "port to listen on, 0..65535 (0 picks a free port)", .required = true, TOOL_PORT_RANGE(0)},
    {"address", 0, TOOL_ARG_STRING, FIELD(address), "A",
     "IP address or host name to listen on (default: all addresses)"},
    {"target-host", 0, TOOL_ARG_STRING, FIELD(target_host), "H",
     "where the datagrams go: an IP address or host name", .required = true},
    {"target-port", 0, TOOL_ARG_NUMBER, FIELD(target_port), "P", "the target's port, 1..65535",
     .required = true, TOOL_PORT_RANGE(1)},
    {"udp6", 0, TOOL_ARG_FLAG, FIELD(udp6), NULL, "use IPv6 on both sides (default IPv4)"},
    {"loss", 0, TOOL_ARG_PERCENT, FIELD(loss), "PCT", "drop this share of the datagrams"},
    {"burst-enter", 0, TOOL_ARG_PERCENT, FIELD(burst_enter), "PCT",
     "Gilbert-Elliott loss bursts: the chance per datagram of entering the bad state"},
    {"burst-exit", 0, TOOL_ARG_PERCENT, FIELD(burst_exit), "PCT",
     "the chance per datagram of leaving it (default 25: bursts of 4 on average)"},
    {"burst-loss", 0, TOOL_ARG_PERCENT, FIELD(burst_loss), "PCT",
     "the loss in the bad state (default 100)"},
    {"delay", 0, TOOL_ARG_NUMBER, FIELD(delay_ms), "MS",
     "hold every datagram MS milliseconds, 0..60000", MS_RANGE},
    {"jitter", 0, TOOL_ARG_NUMBER, FIELD(jitter_ms), "MS",
     "add a uniform random -MS..+MS to the delay (never below 0), 0..60000", MS_RANGE},
    {"reorder", 0, TOOL_ARG_PERCENT, FIELD(reorder), "PCT",
     "hold this share of the datagrams back until later ones of their flow and direction "
     "passed them"},
    {"reorder-depth", 0, TOOL_ARG_NUMBER, FIELD(reorder_depth), "N",
     "a datagram held back leaves after N later ones, 1..1000 (default 1)", .min = 1,
     .max = 1000},
    {"reorder-wait", 0, TOOL_ARG_NUMBER, FIELD(reorder_wait_ms), "MS",
     "or after MS milliseconds if fewer come, 0..60000 (default 100)", MS_RANGE},
    {"duplicate", 0, TOOL_ARG_PERCENT, FIELD(duplicate), "PCT",
     "send this share of the datagrams twice"},
    {"corrupt", 0, TOOL_ARG_PERCENT, FIELD(corrupt), "PCT",
     "flip one random bit in this share of the datagrams"},
    {"rate", 0, TOOL_ARG_NUMBER, FIELD(rate_kbit), "KBIT",
     "a link of KBIT kbit/s in each direction (payload and IP/UDP headers), 1..100000000",
     .min = 1, .max = 100000000},
    {"queue", 0, TOOL_ARG_NUMBER, FIELD(queue), "N",
     "the most datagrams held in each direction (delayed, on the link, held back), "
     "1..1000000 (default 1000); more are dropped",
     .min = 1, .max = 1000000},
    {"max-size", 0, TOOL_ARG_NUMBER, FIELD(max_size), "BYTES",
     "drop datagrams whose payload is over BYTES, as a small MTU would, 1..65535", .min = 1,
     .max = 65535},
    {"max-flows", 0, TOOL_ARG_NUMBER, FIELD(max_flows), "N",
     "the most flows at once, each with its own socket, 1..1000000 (default 1024); a new "
     "client beyond it evicts the least recently active flow",
     .min = 1, .max = 1000000},
    {"rcvbuf", 0, TOOL_ARG_NUMBER, FIELD(rcvbuf), "BYTES",
     "SO_RCVBUF of every socket, so bursts wait in the kernel instead of being dropped "
     "there (capped by net.core.rmem_max; the totals count the kernel's drops)",
     .min = 1, .max = 2147483647},
    {"direction", 0, TOOL_ARG_CHOICE, FIELD(direction), "WHICH",
     "the directions impaired: both, up (client to target) or down (default both)",
     .choices = direction_choices},
    {"impair-count", 0, TOOL_ARG_NUMBER, FIELD(impair_count), "N",
     "impair only the first N datagrams of each flow and direction; later ones pass "
     "untouched, so a receiver sees the end of every sequence (default: all)",
     .min = 1, .max = UINT64_MAX},
    {"seed", 0, TOOL_ARG_NUMBER, FIELD(seed), "N",
     "seed of every random decision (default: from the clock; the totals print it)",
     .min = 0, .max = UINT64_MAX},
    {"json", 0, TOOL_ARG_FLAG, FIELD(json), NULL, "print the records as JSON lines"},
    {"report", 0, TOOL_ARG_STRING, FIELD(report), "FILE",
     "also write the records to FILE as JSON lines"},
    {"help", 'h', TOOL_ARG_HELP, .help = "show this help"},
};

/* Options that refine another one. */
static int check_pairs(const tool_options *options)
{
    static const char *const pairs[][2] = {
        {"burst-exit", "burst-enter"},
        {"burst-loss", "burst-enter"},
        {"reorder-depth", "reorder"},
        {"reorder-wait", "reorder"},
    };

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        if (tool_options_given(options, pairs[i][0]) && !tool_options_given(options, pairs[i][1])) {
            tool_error(PROG, "--%s needs --%s", pairs[i][0], pairs[i][1]);
            return TOOL_EXIT_USAGE;
        }
    }
    return PARSE_OK;
}

/* Returns PARSE_OK or the exit status to leave with. */
static int parse_args(int argc, char *argv[], impair_config *config)
{
    tool_options options = {
        .prog = PROG,
        .usage = PROG,
        .table = impair_table,
        .count = sizeof(impair_table) / sizeof(impair_table[0]),
        .intro = impair_intro,
        .outro = impair_outro,
    };
    const tool_option *missing;
    int status = tool_options_parse(&options, argc, argv, config);

    if (status != PARSE_OK)
        return status;
    missing = tool_options_missing(&options);
    if (missing != NULL) {
        tool_error(PROG, "missing --%s", missing->name);
        return TOOL_EXIT_USAGE;
    }
    if (!tool_host_usable(config->target_host, config->udp6)) {
        tool_error(PROG, "bad target host '%s' for %s", config->target_host,
                   config->udp6 ? "udp6" : "udp4");
        return TOOL_EXIT_USAGE;
    }
    config->seed_given = tool_options_given(&options, "seed");
    return check_pairs(&options);
}

/* ---- Closing ------------------------------------------------------------------ */

/* Ends every flow (dropping what they hold) and closes the sockets and
 * the timer; the loop ends once the last send and close completed. */
static void proxy_close(impair_proxy *p)
{
    if (p->closing)
        return;
    p->closing = true;
    impair_flows_end_all(p);
    if (p->timer != NULL)
        dg_timer_close(p->timer, NULL, NULL);
    p->timer = NULL;
    if (p->listener != NULL)
        dg_socket_close(p->listener, NULL, NULL);
}

/* Bytes waiting in sock's kernel receive queue (SO_MEMINFO's receive
 * allocation; a datagram read into a ring buffer no longer counts), 0 when
 * it cannot be read. */
static uint32_t queued_bytes(const dg_socket *sock)
{
    uint32_t meminfo[SK_MEMINFO_VARS];
    socklen_t len = sizeof(meminfo);
    int fd = sock != NULL ? dg_socket_fd(sock) : -1;

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) < 0)
        return 0;
    return meminfo[SK_MEMINFO_RMEM_ALLOC];
}

/* Whether the kernel holds nothing more for the listener or any flow. */
static bool kernel_queues_empty(const impair_proxy *p)
{
    if (queued_bytes(p->listener) > 0)
        return false;
    for (const impair_link *l = p->recent.next; l != &p->recent; l = l->next)
        if (queued_bytes(IMPAIR_CONTAINER(l, impair_flow, recent)->upstream) > 0)
            return false;
    return true;
}

static void on_drain_check(dg_timer *timer, void *data)
{
    impair_proxy *p = data;

    (void)timer;
    p->timer_armed = false;
    impair_check_drained(p);
}

/* Draining ends when no copy is held, no send is in flight, and what the
 * kernel still queued for the proxy's sockets has been read and counted
 * (as dropped while closing): closing with datagrams queued would lose
 * them uncounted. So the sockets close only after two checks, 1 ms apart,
 * that find the kernel queues empty and nothing read in between (the turn
 * between them takes the completions of what was read already). */
void impair_check_drained(impair_proxy *p)
{
    bool quiet;

    if (!p->draining || p->closing || p->heap_count > 0 || p->sends_in_flight > 0)
        return;
    quiet = kernel_queues_empty(p) && p->seen == p->seen_at_check;
    if ((quiet && p->drain_was_quiet) || p->timer == NULL) {
        proxy_close(p);
        return;
    }
    p->drain_was_quiet = quiet;
    p->seen_at_check = p->seen;
    if (p->timer_armed)
        return;
    if (dg_timer_start(p->timer, 1, 0, on_drain_check, p) < 0)
        proxy_close(p); /* cannot wait: close as before */
    else
        p->timer_armed = true;
}

/* SIGINT/SIGTERM: the first drains, the second closes at once. */
static void impair_finish(void *ctx)
{
    impair_proxy *p = ctx;

    if (p->draining) {
        proxy_close(p);
        return;
    }
    p->draining = true;
    impair_check_drained(p);
}

/* ---- The listening socket -------------------------------------------------------- */

/* A datagram from a client: into its flow's up direction. While draining
 * no flow is created; such datagrams count in the totals only. */
static void on_client_message(dg_socket *sock, const dg_message *msg, void *data)
{
    impair_proxy *p = data;
    impair_flow *f = NULL;

    (void)sock;
    p->seen++;
    if (!p->draining && !p->closing)
        f = impair_flow_for(p, msg->addr, msg->addrlen);
    if (f != NULL) {
        impair_arrive(p, &f->dir[IMPAIR_UP], msg->data, msg->length);
        return;
    }
    p->total[IMPAIR_UP].received++;
    p->total[IMPAIR_UP].bytes += msg->length;
    if (p->draining || p->closing)
        p->total[IMPAIR_UP].dropped_closing++;
    else
        p->total[IMPAIR_UP].dropped_queue++; /* no memory for a flow */
}

static void on_listener_error(dg_socket *sock, const dg_error *err, void *data)
{
    impair_proxy *p = data;

    (void)sock;
    if (!p->error_shown) {
        p->error_shown = true;
        tool_error_dg(PROG, err);
    }
}

static void on_listener_close(dg_socket *sock, void *data)
{
    impair_proxy *p = data;
    dg_socket_stats stats;

    if (dg_socket_get_stats(sock, &stats) == 0)
        p->kernel_drops[IMPAIR_UP] = stats.rx_kernel_drops;
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    impair_proxy *p = data;
    const impair_config *config = p->config;
    int rc = tool_bind_done(PROG, sock, status, p->closing, tool_notes(config->json));

    (void)err;
    if (rc != TOOL_EXIT_OK) {
        p->exit_code = rc;
        proxy_close(p);
    }
}

/* The timer and the listening socket, once the target is known. */
static void proxy_start(impair_proxy *p)
{
    const impair_config *config = p->config;
    dg_socket_options options = {.type = config->udp6 ? DG_UDP6 : DG_UDP4,
                                 .recv_buffer_size = config->rcvbuf};
    dg_socket_handlers handlers = {
        .on_message = on_client_message,
        .on_error = on_listener_error,
        .on_close = on_listener_close,
    };
    int rc = dg_timer_new(p->loop, &p->timer);

    if (rc == 0)
        rc = dg_socket_create(p->loop, &options, &handlers, p, &p->listener);
    if (rc < 0) {
        tool_error_code(PROG, "socket", rc);
        p->exit_code = TOOL_EXIT_FAILURE;
        proxy_close(p);
        return;
    }
    p->exit_code = tool_bind_start(PROG, p->listener, config->address, config->port,
                                   config->udp6, on_bound, p);
    if (p->exit_code != TOOL_EXIT_OK)
        proxy_close(p);
}

/* ---- The target ------------------------------------------------------------------ */

/* The socket address of an IP literal (IPv6 may carry a %scope, by name
 * or number). */
static bool target_address(const char *text, int port, struct sockaddr_storage *out,
                           socklen_t *len)
{
    char copy[DG_ADDRSTRLEN];
    char *scope;

    memset(out, 0, sizeof(*out));
    snprintf(copy, sizeof(copy), "%s", text);
    scope = strchr(copy, '%');
    if (scope != NULL)
        *scope++ = '\0';
    if (tool_literal_family(copy) == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
        return inet_pton(AF_INET, copy, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    if (scope != NULL)
        in6->sin6_scope_id = if_nametoindex(scope) ? if_nametoindex(scope) : (uint32_t)atoi(scope);
    *len = sizeof(*in6);
    return inet_pton(AF_INET6, copy, &in6->sin6_addr) == 1;
}

static void on_target(dg_loop *loop, int status, const dg_address *address, void *data)
{
    impair_proxy *p = data;
    const impair_config *config = p->config;

    (void)loop;
    if (p->closing || p->draining)
        return; /* stopped before the target was known */
    if (status < 0) {
        tool_error(PROG, "cannot resolve host '%s': %s (%s)", config->target_host,
                   dg_err_name(status), dg_strerror(status));
        p->exit_code = TOOL_EXIT_FAILURE;
        return;
    }
    if (!target_address(address->address, config->target_port, &p->target, &p->target_len)) {
        tool_error(PROG, "target address '%s' cannot be used", address->address);
        p->exit_code = TOOL_EXIT_FAILURE;
        return;
    }
    proxy_start(p);
}

/* ---- Running ------------------------------------------------------------------------ */

/* The loop: buffers for the largest datagram of the family, and room for
 * a burst of released copies in flight. */
static dg_loop *impair_loop_open(const impair_config *config)
{
    dg_loop_options options;

    dg_loop_options_init(&options);
    options.recv_buffer_size = config->udp6 ? 65527 : 65507;
    options.max_pending_sends = 16384;
    return tool_loop_open(PROG, &options);
}

static int impair_run(impair_proxy *p)
{
    const impair_config *config = p->config;
    int rc;

    p->loop = impair_loop_open(config);
    if (p->loop == NULL)
        return TOOL_EXIT_FAILURE;
    snprintf(p->backend, sizeof(p->backend), "%s", dg_loop_backend(p->loop));
    rc = dg_lookup(p->loop, config->target_host, config->udp6 ? 6 : 4, on_target, p);
    if (rc < 0) {
        tool_error_code(PROG, "lookup", rc);
        tool_loop_close(PROG, p->loop);
        return TOOL_EXIT_FAILURE;
    }
    rc = tool_run_loop(p->loop, impair_finish, p);
    if (rc < 0) {
        tool_error_code(PROG, "loop", rc);
        return TOOL_EXIT_FAILURE;
    }
    if (!tool_loop_close(PROG, p->loop))
        return TOOL_EXIT_FAILURE;
    if (p->exit_code == TOOL_EXIT_OK)
        impair_report_totals(p);
    return p->exit_code;
}

int main(int argc, char *argv[])
{
    impair_config config = {
        .burst_exit = 25,
        .burst_loss = 100,
        .reorder_depth = 1,
        .reorder_wait_ms = 100,
        .queue = 1000,
        .max_flows = 1024,
    };
    impair_proxy proxy = {.config = &config};
    int status = parse_args(argc, argv, &config);

    if (status != PARSE_OK)
        return status;
    if (!config.seed_given)
        config.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (config.report != NULL && (proxy.report = fopen(config.report, "w")) == NULL) {
        tool_error(PROG, "cannot write '%s': %s", config.report, strerror(errno));
        return TOOL_EXIT_FAILURE;
    }
    if (impair_flows_init(&proxy) < 0) {
        tool_error(PROG, "out of memory");
        status = TOOL_EXIT_FAILURE;
    } else {
        status = impair_run(&proxy);
    }
    impair_path_free(&proxy);
    free(proxy.buckets);
    if (proxy.report != NULL && fclose(proxy.report) != 0 && status == TOOL_EXIT_OK) {
        tool_error(PROG, "cannot write '%s': %s", config.report, strerror(errno));
        status = TOOL_EXIT_FAILURE;
    }
    return status;
}

/* dgblast: a UDP packet-rate and latency tool on dgring.
 *
 *   dgblast send      -c HOST -p PORT [-s BYTES] [-t SECS] [-r RATE | -b BITS]
 *   dgblast recv      -p PORT [-B ADDRESS] [--idle-ms N] [--count C]
 *   dgblast pingpong  -c HOST -p PORT [-s BYTES] [-t SECS] [--sockperf]
 *   dgblast underload -c HOST -p PORT [-t SECS] [-r RATE] [--reply-every N]
 *
 * The short options follow iperf3 (-c host, -B bind address, -p, -t, -b
 * bitrate, -i interval, -J json, -A cpu, -O warm-up, -P threads) and
 * sockperf where iperf3 has none (-s size, -r rate; --full-log,
 * --rcvbuf/--sndbuf as its --buffer-size). Every mode prints a summary on
 * stdout (one JSON object on one line with --json, notes on stderr), a
 * progress line a second on stderr when it is a terminal, and stops early,
 * summary included, on SIGINT/SIGTERM. Latencies are round trips.
 * Exit status: 0 done, 1 runtime failure (pingpong/underload: no reply at
 * all), 2 bad command line.
 *
 * This file parses the command line and starts the mode; each mode lives
 * in blast_<mode>.c, what they share in blast_common.c.
 */
#include "blast.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

enum { PARSE_OK = -1 };

#define DEFAULT_SIZE 64
#define DEFAULT_DURATION_S 10
#define DEFAULT_IDLE_MS 2000
#define DEFAULT_TIMEOUT_MS 1000
#define DEFAULT_MAX_SENDERS 1024
#define UNDERLOAD_DEFAULT_RATE 10000  /* sockperf's under-load default */
#define UNDERLOAD_DEFAULT_REPLY_EVERY 100
#define MAX_DURATION_S 10000000
#define MAX_RATE 1000000000
#define MAX_BITRATE 1e13

static const char general_usage[] =
    "usage: dgblast MODE [options]   (dgblast MODE --help for details)\n"
    "\n"
    "  send       send datagrams to HOST:PORT, as fast as possible or at --rate\n"
    "  recv       receive datagrams and count rate, loss per sender, reordering\n"
    "             and the kernel's drops\n"
    "  pingpong   measure round trips against an echo server (dgring-echo),\n"
    "             one datagram in flight\n"
    "  underload  send at a steady rate and sample the round trip of a\n"
    "             fraction of the datagrams (sockperf's under-load test)\n"
    "\n"
    "Latencies are round trips (sockperf prints half of one unless given\n"
    "--full-rtt). Exit status: 0 done, 1 runtime failure, 2 bad command line.\n";

/* Short names for the table below. */
#define SEND BLAST_SEND
#define RECV BLAST_RECV
#define PINGPONG BLAST_PINGPONG
#define UNDERLOAD BLAST_UNDERLOAD
#define ROUND_TRIP BLAST_ROUND_TRIP_MODES
#define REMOTE BLAST_REMOTE_MODES
#define FIELD(member) TOOL_FIELD(blast_config, member)
#define SECONDS .max = MAX_DURATION_S, .expected = "seconds > 0"
#define RATE .max = MAX_RATE, .si = true, .expected = "datagrams/s > 0 (k, M, G allowed)"
#define MILLISECONDS .min = 1, .max = UINT32_MAX, .expected = "milliseconds > 0"

static const char *const pattern_names[] = {"zero", "random", "seq", NULL};

/* Every option of every mode; an option whose help or range differs
 * between modes has a row per group of modes. */
static const tool_option blast_table[] = {
    {"host", 'c', TOOL_ARG_STRING, FIELD(host), "H",
     "destination IP address or host name (an IPv6 address implies -6)", .modes = SEND,
     .required = true},
    {"host", 'c', TOOL_ARG_STRING, FIELD(host), "H",
     "echo server IP address or host name (an IPv6 address implies -6)", .modes = ROUND_TRIP,
     .required = true},
    {"port", 'p', TOOL_ARG_NUMBER, FIELD(port), "P", "destination port, 1..65535",
     .modes = SEND, .required = true, TOOL_PORT_RANGE(1)},
    {"port", 'p', TOOL_ARG_NUMBER, FIELD(port), "P",
     "port to bind, 0..65535 (0 picks a free port)", .modes = RECV, .required = true,
     TOOL_PORT_RANGE(0)},
    {"port", 'p', TOOL_ARG_NUMBER, FIELD(port), "P", "echo server port, 1..65535",
     .modes = ROUND_TRIP, .required = true, TOOL_PORT_RANGE(1)},
    {"address", 'B', TOOL_ARG_STRING, FIELD(address), "A",
     "IP address or host name to bind (default: all addresses; an IPv6 address implies -6)",
     .modes = RECV},
    {"size", 's', TOOL_ARG_NUMBER, FIELD(size), "B",
     "payload bytes, 0..65507 (default 64); from 16 on, each payload starts with the header "
     "recv counts by (sender id, sequence number)",
     .modes = SEND, .max = TOOL_MAX_PAYLOAD},
    {"size", 's', TOOL_ARG_NUMBER, FIELD(size), "B",
     "payload bytes, 16..65507 (14.. with --sockperf; default 64)", .modes = ROUND_TRIP,
     .max = TOOL_MAX_PAYLOAD},
    {"duration", 't', TOOL_ARG_POSITIVE, FIELD(duration), "S",
     "seconds to send for (fractions allowed; default 10)", .modes = SEND | UNDERLOAD, SECONDS},
    {"duration", 't', TOOL_ARG_POSITIVE, FIELD(duration), "S",
     "seconds to measure for (fractions allowed; default 10)", .modes = PINGPONG, SECONDS},
    {"rate", 'r', TOOL_ARG_POSITIVE, FIELD(rate), "R",
     "at most R datagrams per second, k/M/G allowed (default: unlimited)", .modes = SEND, RATE},
    {"rate", 'r', TOOL_ARG_POSITIVE, FIELD(rate), "R",
     "datagrams per second, k/M/G allowed (default 10000)", .modes = UNDERLOAD, RATE},
    {"bitrate", 'b', TOOL_ARG_POSITIVE, FIELD(bitrate), "BITS",
     "the rate in payload bits per second, k/M/G allowed, as iperf3's -b: datagrams per second "
     "= BITS / (8 x --size)",
     .modes = SEND | UNDERLOAD, .max = (uint64_t)MAX_BITRATE, .si = true,
     .expected = "bits/s > 0 (k, M, G allowed)"},
    {"skip-every", 0, TOOL_ARG_NUMBER, FIELD(skip_every), "N",
     "leave one sequence number out after every N datagrams: a known loss, which a receiver "
     "must count exactly (for testing loss accounting)",
     .modes = SEND, .min = 1, .max = UINT32_MAX, .expected = "a number > 0"},
    {"reply-every", 0, TOOL_ARG_NUMBER, FIELD(reply_every), "N",
     "sample the round trip of every Nth datagram (default 100); with --sockperf only those "
     "ask the server for a reply",
     .modes = UNDERLOAD, .min = 1, .max = UINT32_MAX, .what = "reply interval",
     .expected = "a number > 0"},
    {"warmup", 'O', TOOL_ARG_POSITIVE, FIELD(warmup), "S",
     "run S seconds first and leave their round trips out of the figures (as iperf3's -O); "
     "the run lasts S + --duration",
     .modes = ROUND_TRIP, SECONDS, .what = "warm-up"},
    {"idle-ms", 0, TOOL_ARG_NUMBER, FIELD(idle_ms), "N",
     "stop N ms after the last datagram (default 2000)", .modes = RECV, MILLISECONDS,
     .what = "idle time"},
    {"count", 0, TOOL_ARG_NUMBER, FIELD(count), "C", "stop after C datagrams", .modes = RECV,
     .min = 1, .max = UINT64_MAX, .expected = "a number > 0"},
    {"max-senders", 0, TOOL_ARG_NUMBER, FIELD(max_senders), "N",
     "follow at most N senders at once (default 1024, per thread); past it the one heard from "
     "least recently is evicted, and the summary says how many were",
     .modes = RECV, .min = 1, .max = BLAST_FLOWS_MAX, .what = "sender limit"},
    {"pattern", 0, TOOL_ARG_CHOICE, FIELD(pattern), "P",
     "payload after the header: zero (default), random or seq (byte i is i mod 256)",
     .modes = SEND, .choices = pattern_names},
    {"pattern", 0, TOOL_ARG_CHOICE, FIELD(pattern), "seq",
     "count datagrams whose payload breaks the seq pattern", .modes = RECV,
     .choices = pattern_names},
    {"pattern", 0, TOOL_ARG_CHOICE, FIELD(pattern), "P",
     "payload after the header: zero, random or seq", .modes = ROUND_TRIP,
     .choices = pattern_names},
    {"sockperf", 0, TOOL_ARG_FLAG, FIELD(sockperf), NULL,
     "speak sockperf's protocol: the server may be 'sockperf server' or "
     "'dgring-echo --sockperf'",
     .modes = PINGPONG},
    {"sockperf", 0, TOOL_ARG_FLAG, FIELD(sockperf), NULL,
     "speak sockperf's protocol (see pingpong)", .modes = UNDERLOAD},
    {"timeout-ms", 0, TOOL_ARG_NUMBER, FIELD(timeout_ms), "N",
     "a reply later than N ms is a loss (default 1000)", .modes = PINGPONG, MILLISECONDS,
     .what = "timeout"},
    {"timeout-ms", 0, TOOL_ARG_NUMBER, FIELD(timeout_ms), "N",
     "wait up to N ms for the last replies (default 1000)", .modes = UNDERLOAD, MILLISECONDS,
     .what = "timeout"},
    {"threads", 'P', TOOL_ARG_NUMBER, FIELD(threads), "N",
     "N senders, each its own loop, socket (source port), sender id and sequence, in N "
     "threads, 1..64; the summary adds a line per thread",
     .modes = SEND, TOOL_THREADS_RANGE},
    {"threads", 'P', TOOL_ARG_NUMBER, FIELD(threads), "N",
     "N loops in N threads on the same port (SO_REUSEPORT), 1..64; the summary adds a line "
     "per thread",
     .modes = RECV, TOOL_THREADS_RANGE},
    {"interval", 'i', TOOL_ARG_POSITIVE, FIELD(interval), "S",
     "print the packets and rate of every S seconds on stdout (JSON objects with --json)",
     SECONDS, .what = "interval"},
    {"full-log", 0, TOOL_ARG_STRING, FIELD(full_log), "FILE",
     "write every measured round trip to FILE as CSV (seq,tx_s,rx_s,rtt_us), as sockperf's "
     "--full-log",
     .modes = ROUND_TRIP},
    {"plot", 0, TOOL_ARG_STRING, FIELD(plot), "FILE",
     "draw the round-trip histogram and percentile curve into the PNG FILE (needs gnuplot)",
     .modes = ROUND_TRIP},
    {"plot", 0, TOOL_ARG_STRING, FIELD(plot), "FILE",
     "draw the rate of every --interval (default 1 s) into the PNG FILE (needs gnuplot)",
     .modes = RECV},
    TOOL_ROW_RCVBUF(blast_config, RECV,
                    "ask for a receive buffer (SO_RCVBUF) of BYTES (K, M, G: powers of 1024; "
                    "default 32M); the kernel grants twice that, at most twice "
                    "net.core.rmem_max, and the size granted is printed"),
    TOOL_ROW_RCVBUF(blast_config, REMOTE,
                    "ask for a receive buffer (SO_RCVBUF) of BYTES (K, M, G: powers of 1024; "
                    "default: the system's)"),
    TOOL_ROW_SNDBUF(blast_config, 0),
    TOOL_ROW_DNS_SERVER(blast_config, 0),
    TOOL_ROW_CPU(blast_config, 0, "pin the loop's thread to CPU N (with --threads, thread i to "
                 "CPU N + i)"),
    {"udp4", '4', TOOL_ARG_FLAG, FIELD(udp4), NULL,
     "use IPv4 (the default, unless the host or address is an IPv6 literal)"},
    {"udp6", '6', TOOL_ARG_FLAG, FIELD(udp6), NULL,
     "use IPv6 (implied by an IPv6 host or address)"},
    {"json", 'J', TOOL_ARG_FLAG, FIELD(json), NULL,
     "stdout carries only JSON lines: the summary as one object (and the --interval lines); "
     "the listening line and notes go to stderr"},
    {"help", 'h', TOOL_ARG_HELP, .help = "show this help"},
};

/* The modes, by name, with the text their --help ends with. */
static const struct {
    const char *name;
    blast_mode mode;
    const char *usage;
    const char *outro;
} blast_modes[] = {
    {"send", BLAST_SEND, "dgblast send", NULL},
    {"recv", BLAST_RECV, "dgblast recv", "Prints \"listening ADDRESS:PORT\" once bound.\n"},
    {"pingpong", BLAST_PINGPONG, "dgblast pingpong", "One datagram in flight at a time.\n"},
    {"underload", BLAST_UNDERLOAD, "dgblast underload",
     "Replies are counted for loss and reordering; the sampled ones give\n"
     "the latency percentiles.\n"},
};

/* The round-trip modes' payload must hold at least a probe header. */
static int check_probe_size(const blast_config *config)
{
    size_t minimum = blast_probe_header_size(config);

    if (config->size >= minimum)
        return PARSE_OK;
    tool_error(BLAST_PROG, "bad size %zu: %s%s needs at least %zu bytes", config->size,
               config->mode_name, config->sockperf ? " --sockperf" : "", minimum);
    return TOOL_EXIT_USAGE;
}

/* -4/-6, or the family of an IP literal --host/--address (as dgcat). */
static int choose_family(blast_config *config)
{
    const char *literal = config->mode == BLAST_RECV ? config->address : config->host;

    if (config->udp4 && config->udp6) {
        tool_error(BLAST_PROG, "-4 and -6 exclude each other");
        return TOOL_EXIT_USAGE;
    }
    if (!config->udp4 && tool_literal_family(literal) == AF_INET6)
        config->udp6 = true;
    return PARSE_OK;
}

/* --bitrate into --rate, and the modes' default rates. */
static int choose_rate(const tool_options *options, blast_config *config)
{
    if (config->bitrate > 0 && tool_options_given(options, "rate")) {
        tool_error(BLAST_PROG, "--rate and --bitrate exclude each other");
        return TOOL_EXIT_USAGE;
    }
    if (config->bitrate > 0 && config->size == 0) {
        tool_error(BLAST_PROG, "--bitrate needs a --size above 0");
        return TOOL_EXIT_USAGE;
    }
    if (config->bitrate > 0)
        config->rate = config->bitrate / (8.0 * (double)config->size);
    if (config->mode == BLAST_UNDERLOAD && config->rate == 0)
        config->rate = UNDERLOAD_DEFAULT_RATE;
    return PARSE_OK;
}

/* Checks what only the whole command line can tell: required options,
 * the host against the family, the rate, the round-trip modes' minimum
 * size. */
static int check_config(const tool_options *options, blast_config *config)
{
    const tool_option *missing = tool_options_missing(options);
    int status;

    if (missing != NULL) {
        tool_error(BLAST_PROG, "%s needs --%s", config->mode_name, missing->name);
        return TOOL_EXIT_USAGE;
    }
    status = choose_family(config);
    if (status == PARSE_OK)
        status = choose_rate(options, config);
    if (status != PARSE_OK)
        return status;
    if (config->mode != BLAST_RECV && !tool_host_usable(config->host, config->udp6)) {
        tool_error(BLAST_PROG, "bad host '%s': expected an %s address or a host name",
                   config->host, config->udp6 ? "IPv6" : "IPv4");
        return TOOL_EXIT_USAGE;
    }
    config->pattern_given = tool_options_given(options, "pattern");
    if (config->mode == BLAST_RECV && config->pattern_given &&
        config->pattern != BLAST_PATTERN_SEQ) {
        tool_error(BLAST_PROG, "recv can only check --pattern seq");
        return TOOL_EXIT_USAGE;
    }
    if (config->mode == BLAST_RECV && !tool_options_given(options, "rcvbuf"))
        config->net.rcvbuf = TOOL_RECEIVER_RCVBUF;
    if (config->mode & BLAST_ROUND_TRIP_MODES)
        return check_probe_size(config);
    return PARSE_OK;
}

/* Picks the mode named argv[0] and parses its options. Returns PARSE_OK
 * or the exit status. */
static int parse_mode_args(int argc, char *argv[], blast_config *config)
{
    tool_options options = {
        .prog = BLAST_PROG,
        .table = blast_table,
        .count = sizeof(blast_table) / sizeof(blast_table[0]),
    };
    size_t i = 0;
    int status;

    while (i < sizeof(blast_modes) / sizeof(blast_modes[0]) &&
           strcmp(argv[0], blast_modes[i].name) != 0)
        i++;
    if (i == sizeof(blast_modes) / sizeof(blast_modes[0])) {
        tool_error(BLAST_PROG, "unknown mode '%s': expected send, recv, pingpong or underload",
                   argv[0]);
        return TOOL_EXIT_USAGE;
    }
    config->mode = blast_modes[i].mode;
    config->mode_name = blast_modes[i].name;
    options.mode = config->mode;
    options.mode_name = config->mode_name;
    options.usage = blast_modes[i].usage;
    options.outro = blast_modes[i].outro;
    status = tool_options_parse(&options, argc, argv, config);
    return status == PARSE_OK ? check_config(&options, config) : status;
}

/* What must be in place before a mode starts: gnuplot for --plot, the
 * DNS server for every loop the mode makes. */
static int prepare(const blast_config *config)
{
    if (config->plot != NULL && !blast_plot_available())
        return TOOL_EXIT_FAILURE;
    return tool_dns_servers(BLAST_PROG, &config->net);
}

int main(int argc, char *argv[])
{
    blast_config config = {
        .size = DEFAULT_SIZE,
        .duration = DEFAULT_DURATION_S,
        .idle_ms = DEFAULT_IDLE_MS,
        .max_senders = DEFAULT_MAX_SENDERS,
        .reply_every = UNDERLOAD_DEFAULT_REPLY_EVERY,
        .timeout_ms = DEFAULT_TIMEOUT_MS,
        .net = {.cpu = -1},
    };
    int status;

    if (argc < 2) {
        tool_error(BLAST_PROG, "missing mode: send, recv, pingpong or underload (see --help)");
        return TOOL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(general_usage, stdout);
        return TOOL_EXIT_OK;
    }
    status = parse_mode_args(argc - 1, argv + 1, &config);
    if (status != PARSE_OK)
        return status;
    status = prepare(&config);
    if (status != TOOL_EXIT_OK)
        return status;
    if (config.mode == BLAST_SEND)
        return config.threads > 1 ? blast_send_threads_run(&config) : blast_send_run(&config);
    if (config.mode == BLAST_RECV)
        return config.threads > 1 ? blast_recv_threads_run(&config) : blast_recv_run(&config);
    if (config.mode == BLAST_UNDERLOAD)
        return blast_underload_run(&config);
    return blast_pingpong_run(&config);
}

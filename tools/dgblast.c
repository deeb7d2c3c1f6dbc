/* dgblast: a UDP packet-rate and latency tool on dgring.
 *
 *   dgblast send      --host H --port P --size B --duration S [--rate R]
 *   dgblast recv      --port P [--address A] [--idle-ms N] [--count C]
 *   dgblast pingpong  --host H --port P --duration S [--size B] [--sockperf]
 *   dgblast underload --host H --port P --duration S [--rate R]
 *                     [--reply-every N] [--sockperf]
 *
 * Every mode takes --udp6 and --json, prints a summary on stdout (one JSON
 * object on one line with --json), a progress line a second on stderr when
 * it is a terminal, and stops early, summary included, on SIGINT/SIGTERM.
 * Exit status: 0 done, 1 runtime failure, 2 bad command line.
 *
 * This file parses the command line and starts the mode; each mode lives
 * in blast_<mode>.c, what they share in blast_common.c.
 */
#include "blast.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

enum { PARSE_OK = -1 };

/* Sentinels for "not given" in a blast_config being parsed. */
#define UNSET_PORT (-1)
#define UNSET_SIZE ((size_t)-1)
#define PROBE_DEFAULT_SIZE 64
#define DEFAULT_IDLE_MS 2000
#define DEFAULT_TIMEOUT_MS 1000
#define UNDERLOAD_DEFAULT_RATE 10000  /* sockperf's under-load default */
#define UNDERLOAD_DEFAULT_REPLY_EVERY 100
#define MAX_DURATION_S 1e7
#define MAX_RATE 1e9

static const char general_usage[] =
    "usage: dgblast MODE [options]   (dgblast MODE --help for details)\n"
    "\n"
    "  send       send datagrams to HOST:PORT, as fast as possible or at --rate\n"
    "  recv       receive datagrams and count rate, loss and reordering\n"
    "  pingpong   measure round trips against an echo server (dgring-echo),\n"
    "             one datagram in flight\n"
    "  underload  send at a steady rate and sample the round trip of a\n"
    "             fraction of the datagrams (sockperf's under-load test)\n"
    "\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad command line.\n";

static const char send_usage[] =
    "usage: dgblast send --host H --port P --size B --duration S [--rate R]\n"
    "                    [--pattern P] [--threads N] [--udp6] [--json]\n"
    "\n"
    "  --host H       destination IP address or host name\n"
    "  --port P       destination port, 1..65535\n"
    "  --size B       payload bytes, 0..65507; from 8 on, each payload starts\n"
    "                 with a little-endian 64-bit sequence number\n"
    "  --duration S   seconds to send for (fractions allowed)\n"
    "  --rate R       at most R datagrams per second (default: unlimited)\n"
    "  --pattern P    payload after the sequence number: zero (default),\n"
    "                 random or seq (byte i is i mod 256)\n"
    "  --threads N    N senders, each its own loop, socket (source port) and\n"
    "                 sequence, in N threads, 1..64; the summary adds a line\n"
    "                 per thread\n";

static const char recv_usage[] =
    "usage: dgblast recv --port P [--address A] [--idle-ms N] [--count C]\n"
    "                    [--pattern seq] [--threads N] [--udp6] [--json]\n"
    "\n"
    "  --port P       port to bind, 0..65535 (0 picks a free port)\n"
    "  --address A    IP address or host name to bind (default: all addresses)\n"
    "  --idle-ms N    stop N ms after the last datagram (default 2000)\n"
    "  --count C      stop after C datagrams\n"
    "  --pattern seq  count datagrams whose payload breaks the seq pattern\n"
    "  --threads N    N loops in N threads on the same port (SO_REUSEPORT),\n"
    "                 1..64; the summary adds a line per thread\n"
    "\n"
    "Prints \"listening ADDRESS:PORT\" once bound.\n";

static const char pingpong_usage[] =
    "usage: dgblast pingpong --host H --port P --duration S [--size B]\n"
    "                        [--pattern P] [--sockperf] [--timeout-ms N]\n"
    "                        [--udp6] [--json]\n"
    "\n"
    "  --host H       echo server IP address or host name\n"
    "  --port P       echo server port, 1..65535\n"
    "  --duration S   seconds to run for (fractions allowed)\n"
    "  --size B       payload bytes, 16..65507 (14.. with --sockperf; default 64)\n"
    "  --pattern P    payload after the header: zero, random or seq\n"
    "  --sockperf     speak sockperf's protocol: the server may be\n"
    "                 'sockperf server' or 'dgring-echo --sockperf'\n"
    "  --timeout-ms N a reply later than N ms is a loss (default 1000)\n"
    "\n"
    "One datagram in flight at a time.\n";

static const char underload_usage[] =
    "usage: dgblast underload --host H --port P --duration S [--rate R]\n"
    "                         [--reply-every N] [--size B] [--pattern P]\n"
    "                         [--sockperf] [--timeout-ms N] [--udp6] [--json]\n"
    "\n"
    "  --host H          echo server IP address or host name\n"
    "  --port P          echo server port, 1..65535\n"
    "  --duration S      seconds to send for (fractions allowed)\n"
    "  --rate R          datagrams per second (default 10000)\n"
    "  --reply-every N   sample the round trip of every Nth datagram\n"
    "                    (default 100); with --sockperf only those ask\n"
    "                    the server for a reply\n"
    "  --size B          payload bytes, 16..65507 (14.. with --sockperf; default 64)\n"
    "  --pattern P       payload after the header: zero, random or seq\n"
    "  --sockperf        speak sockperf's protocol (see pingpong)\n"
    "  --timeout-ms N    wait up to N ms for the last replies (default 1000)\n"
    "\n"
    "Replies are counted for loss and reordering; the sampled ones give\n"
    "the latency percentiles.\n";

static const char common_usage[] =
    "  --udp6         use IPv6 (default IPv4)\n"
    "  --json         print the summary as one JSON object on one line\n"
    "  --help         show this help\n";

static const struct option blast_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"address", required_argument, NULL, 'a'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"rate", required_argument, NULL, 'r'},
    {"idle-ms", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'c'},
    {"pattern", required_argument, NULL, 'P'},
    {"sockperf", no_argument, NULL, 'S'},
    {"reply-every", required_argument, NULL, 'e'},
    {"timeout-ms", required_argument, NULL, 't'},
    {"threads", required_argument, NULL, 'T'},
    {"udp6", no_argument, NULL, '6'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The modes an option belongs to. */
static unsigned option_modes(int option)
{
    switch (option) {
    case 'H':
    case 's':
    case 'd':
        return BLAST_REMOTE_MODES;
    case 'r':
        return BLAST_SEND | BLAST_UNDERLOAD;
    case 'a':
    case 'i':
    case 'c':
        return BLAST_RECV;
    case 'S':
    case 't':
        return BLAST_ROUND_TRIP_MODES;
    case 'e':
        return BLAST_UNDERLOAD;
    case 'T':
        return BLAST_SEND | BLAST_RECV;
    default:
        return BLAST_REMOTE_MODES | BLAST_RECV;
    }
}

static void print_mode_usage(blast_mode mode)
{
    if (mode == BLAST_SEND)
        fputs(send_usage, stdout);
    else if (mode == BLAST_RECV)
        fputs(recv_usage, stdout);
    else if (mode == BLAST_PINGPONG)
        fputs(pingpong_usage, stdout);
    else
        fputs(underload_usage, stdout);
    fputs(common_usage, stdout);
}

/* --pattern NAME. Returns PARSE_OK or TOOL_EXIT_USAGE. */
static int apply_pattern(blast_config *config, const char *text)
{
    static const char *const names[] = {"zero", "random", "seq"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(text, names[i]) == 0) {
            config->pattern = (blast_pattern)i;
            config->pattern_given = true;
            return PARSE_OK;
        }
    }
    tool_error(BLAST_PROG, "bad pattern '%s': expected zero, random or seq", text);
    return TOOL_EXIT_USAGE;
}

/* Options taking a number. Returns PARSE_OK or TOOL_EXIT_USAGE. */
static int apply_number(blast_config *config, int option, const char *text)
{
    uint64_t value;
    bool zero_port = config->mode == BLAST_RECV;

    switch (option) {
    case 'p':
        if (tool_parse_port(text, zero_port, &config->port))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad port '%s': expected %d..65535", text, zero_port ? 0 : 1);
        return TOOL_EXIT_USAGE;
    case 's':
        if (tool_parse_uint64(text, 0, TOOL_MAX_PAYLOAD, &value)) {
            config->size = (size_t)value;
            return PARSE_OK;
        }
        tool_error(BLAST_PROG, "bad size '%s': expected 0..%d", text, TOOL_MAX_PAYLOAD);
        return TOOL_EXIT_USAGE;
    case 'd':
        if (tool_parse_positive(text, MAX_DURATION_S, &config->duration))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad duration '%s': expected seconds > 0", text);
        return TOOL_EXIT_USAGE;
    case 'r':
        if (tool_parse_positive(text, MAX_RATE, &config->rate))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad rate '%s': expected datagrams/s > 0", text);
        return TOOL_EXIT_USAGE;
    case 'i':
        if (tool_parse_uint64(text, 1, UINT32_MAX, &config->idle_ms))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad idle time '%s': expected milliseconds > 0", text);
        return TOOL_EXIT_USAGE;
    case 'e':
        if (tool_parse_uint64(text, 1, UINT32_MAX, &config->reply_every))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad reply interval '%s': expected a number > 0", text);
        return TOOL_EXIT_USAGE;
    case 't':
        if (tool_parse_uint64(text, 1, UINT32_MAX, &config->timeout_ms))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad timeout '%s': expected milliseconds > 0", text);
        return TOOL_EXIT_USAGE;
    case 'T':
        if (tool_parse_uint64(text, 1, 64, &value)) {
            config->threads = (unsigned)value;
            return PARSE_OK;
        }
        tool_error(BLAST_PROG, "bad thread count '%s': expected 1..64", text);
        return TOOL_EXIT_USAGE;
    default: /* 'c' */
        if (tool_parse_uint64(text, 1, UINT64_MAX, &config->count))
            return PARSE_OK;
        tool_error(BLAST_PROG, "bad count '%s': expected a number > 0", text);
        return TOOL_EXIT_USAGE;
    }
}

/* Applies one getopt_long() result. Returns PARSE_OK or the exit status. */
static int apply_option(blast_config *config, int option, int index, char *const argv[])
{
    if (option == '?' || option == ':') {
        tool_option_error(BLAST_PROG, option, argv);
        return TOOL_EXIT_USAGE;
    }
    /* Every option but -h is long only, so index names it. */
    if ((option_modes(option) & config->mode) == 0) {
        tool_error(BLAST_PROG, "option '--%s' does not apply to %s", blast_options[index].name,
                   config->mode_name);
        return TOOL_EXIT_USAGE;
    }
    switch (option) {
    case 'H':
        config->host = optarg;
        return PARSE_OK;
    case 'a':
        config->address = optarg;
        return PARSE_OK;
    case '6':
        config->udp6 = true;
        return PARSE_OK;
    case 'j':
        config->json = true;
        return PARSE_OK;
    case 'S':
        config->sockperf = true;
        return PARSE_OK;
    case 'P':
        return apply_pattern(config, optarg);
    case 'h':
        print_mode_usage(config->mode);
        return TOOL_EXIT_OK;
    default:
        return apply_number(config, option, optarg);
    }
}

/* Reports the first required option the mode lacks. Returns PARSE_OK or
 * TOOL_EXIT_USAGE. */
static int check_required(const blast_config *config)
{
    bool remote = config->mode != BLAST_RECV;
    const char *missing = NULL;

    if (remote && config->host == NULL)
        missing = "--host";
    else if (config->port == UNSET_PORT)
        missing = "--port";
    else if (config->mode == BLAST_SEND && config->size == UNSET_SIZE)
        missing = "--size";
    else if (remote && config->duration == 0)
        missing = "--duration";
    if (missing == NULL)
        return PARSE_OK;
    tool_error(BLAST_PROG, "%s needs %s", config->mode_name, missing);
    return TOOL_EXIT_USAGE;
}

/* The round-trip modes' payload size: the default, or at least a header. */
static int check_probe_size(blast_config *config)
{
    size_t minimum = blast_probe_header_size(config);

    if (config->size == UNSET_SIZE)
        config->size = PROBE_DEFAULT_SIZE;
    if (config->size >= minimum)
        return PARSE_OK;
    tool_error(BLAST_PROG, "bad size %zu: %s%s needs at least %zu bytes", config->size,
               config->mode_name, config->sockperf ? " --sockperf" : "", minimum);
    return TOOL_EXIT_USAGE;
}

/* Checks what only the whole command line can tell: required options,
 * the host against --udp6, the round-trip modes' minimum size. */
static int check_config(blast_config *config)
{
    int status = check_required(config);

    if (status != PARSE_OK)
        return status;
    if (config->mode != BLAST_RECV && !tool_host_usable(config->host, config->udp6)) {
        tool_error(BLAST_PROG, "bad host '%s': expected an %s address or a host name",
                   config->host, config->udp6 ? "IPv6" : "IPv4");
        return TOOL_EXIT_USAGE;
    }
    if (config->mode == BLAST_RECV && config->pattern_given &&
        config->pattern != BLAST_PATTERN_SEQ) {
        tool_error(BLAST_PROG, "recv can only check --pattern seq");
        return TOOL_EXIT_USAGE;
    }
    if (config->mode == BLAST_UNDERLOAD && config->rate == 0)
        config->rate = UNDERLOAD_DEFAULT_RATE;
    if (config->mode & BLAST_ROUND_TRIP_MODES)
        return check_probe_size(config);
    return PARSE_OK;
}

/* Parses the mode's options; argv[0] is the mode name. */
static int parse_mode_args(int argc, char *argv[], blast_config *config)
{
    int option, index = 0;

    opterr = 0;
    optind = 1;
    while ((option = getopt_long(argc, argv, ":h", blast_options, &index)) != -1) {
        int status = apply_option(config, option, index, argv);
        if (status != PARSE_OK)
            return status;
    }
    if (optind < argc) {
        tool_error(BLAST_PROG, "unexpected argument '%s'", argv[optind]);
        return TOOL_EXIT_USAGE;
    }
    return check_config(config);
}

/* Picks the mode from its name. Returns false if there is no such mode. */
static bool select_mode(const char *name, blast_config *config)
{
    static const struct {
        const char *name;
        blast_mode mode;
    } modes[] = {{"send", BLAST_SEND},
                 {"recv", BLAST_RECV},
                 {"pingpong", BLAST_PINGPONG},
                 {"underload", BLAST_UNDERLOAD}};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(name, modes[i].name) == 0) {
            config->mode = modes[i].mode;
            config->mode_name = modes[i].name;
            return true;
        }
    }
    return false;
}

int main(int argc, char *argv[])
{
    blast_config config = {
        .port = UNSET_PORT,
        .size = UNSET_SIZE,
        .idle_ms = DEFAULT_IDLE_MS,
        .reply_every = UNDERLOAD_DEFAULT_REPLY_EVERY,
        .timeout_ms = DEFAULT_TIMEOUT_MS,
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
    if (!select_mode(argv[1], &config)) {
        tool_error(BLAST_PROG, "unknown mode '%s': expected send, recv, pingpong or underload",
                   argv[1]);
        return TOOL_EXIT_USAGE;
    }
    status = parse_mode_args(argc - 1, argv + 1, &config);
    if (status != PARSE_OK)
        return status;
    if (config.mode == BLAST_SEND)
        return config.threads > 1 ? blast_send_threads_run(&config) : blast_send_run(&config);
    if (config.mode == BLAST_RECV)
        return config.threads > 1 ? blast_recv_threads_run(&config) : blast_recv_run(&config);
    if (config.mode == BLAST_UNDERLOAD)
        return blast_underload_run(&config);
    return blast_pingpong_run(&config);
}

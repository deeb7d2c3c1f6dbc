/* dgcat's command line. See cat.h; the flags follow nc -u where nc has
 * one (-l, -4, -6, -u, -s, -p, -w, -b). */
#include "cat.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <string.h>

enum { PARSE_OK = -1 };

#define MAX_WAIT_S 1e7

static const char usage_text[] =
    "usage: dgcat [options] HOST PORT            send stdin as datagrams to HOST:PORT\n"
    "       dgcat -l [options] [ADDRESS] PORT    receive datagrams and print them\n"
    "\n"
    "  -l, --listen          receive on [ADDRESS] PORT (0 picks a free port)\n"
    "  -4, -6                use IPv4 or IPv6 (default: from the addresses given,\n"
    "                        else IPv4)\n"
    "  -u, --udp             accepted for nc compatibility: always UDP\n"
    "  -s, --source ADDRESS  local address to bind\n"
    "  -p, --local-port PORT local port (listening: the port to receive on)\n"
    "  -w, --wait SECS       stop after SECS without a datagram sent or received;\n"
    "                        when sending, also wait this long for replies after\n"
    "                        the end of stdin\n"
    "      --count N         stop after receiving N datagrams\n"
    "      --format FORMAT   how to print received datagrams: text (default,\n"
    "                        sender and escaped payload), hex, json (one object a\n"
    "                        line: from, port, size, data) or raw (payload only)\n"
    "      --raw SIZE        send stdin in SIZE-byte datagrams instead of lines\n"
    "      --keep-newline    send each line with its newline\n"
    "      --join GROUP      receive multicast GROUP (listening)\n"
    "      --iface ADDRESS   interface for --join and for sending multicast\n"
    "  -b, --broadcast       allow sending to a broadcast address\n"
    "  -h, --help            show this help\n"
    "\n"
    "HOST may be an IP address or a host name. Sending reads stdin (one\n"
    "datagram per line) and prints replies; listening prints \"listening\n"
    "ADDRESS:PORT\" on stderr once bound. Exit status: 0 done, 1 runtime\n"
    "failure (bind, host name, send), 2 bad command line.\n";

static const struct option cat_options[] = {
    {"listen", no_argument, NULL, 'l'},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"udp", no_argument, NULL, 'u'},
    {"source", required_argument, NULL, 's'},
    {"local-port", required_argument, NULL, 'p'},
    {"wait", required_argument, NULL, 'w'},
    {"broadcast", no_argument, NULL, 'b'},
    {"count", required_argument, NULL, 'c'},
    {"format", required_argument, NULL, 'f'},
    {"raw", required_argument, NULL, 'r'},
    {"keep-newline", no_argument, NULL, 'n'},
    {"join", required_argument, NULL, 'J'},
    {"iface", required_argument, NULL, 'I'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What parsing collects before the positionals decide the mode. */
typedef struct cat_parse {
    bool ipv4;
    bool ipv6;
    const char *local_port_text;
} cat_parse;

/* Prints a usage problem naming value; returns TOOL_EXIT_USAGE. */
static int bad(const char *format, const char *value)
{
    tool_error(CAT_PROG, format, value);
    return TOOL_EXIT_USAGE;
}

/* Prints a usage problem; returns TOOL_EXIT_USAGE. */
static int usage_error(const char *message)
{
    tool_error(CAT_PROG, "%s", message);
    return TOOL_EXIT_USAGE;
}

static int apply_format(cat_config *config, const char *text)
{
    static const char *const names[] = {"text", "hex", "json", "raw"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(text, names[i]) == 0) {
            config->format = (cat_format)i;
            return PARSE_OK;
        }
    }
    return bad("bad format '%s': expected text, hex, json or raw", text);
}

/* Options with a numeric value. Returns PARSE_OK or TOOL_EXIT_USAGE. */
static int apply_number(cat_config *config, int option, const char *text)
{
    uint64_t value;

    switch (option) {
    case 'w':
        if (tool_parse_positive(text, MAX_WAIT_S, &config->wait_s))
            return PARSE_OK;
        return bad("bad wait '%s': expected seconds > 0", text);
    case 'c':
        if (tool_parse_uint64(text, 1, UINT64_MAX, &config->count))
            return PARSE_OK;
        return bad("bad count '%s': expected a number > 0", text);
    default: /* 'r' */
        if (tool_parse_uint64(text, 1, TOOL_MAX_PAYLOAD, &value)) {
            config->raw_size = (size_t)value;
            return PARSE_OK;
        }
        tool_error(CAT_PROG, "bad raw size '%s': expected 1..%d", text, TOOL_MAX_PAYLOAD);
        return TOOL_EXIT_USAGE;
    }
}

/* Applies one getopt_long() result. Returns PARSE_OK or the exit status. */
static int apply_option(cat_config *config, cat_parse *parse, int option, char *const argv[])
{
    switch (option) {
    case 'l':
        config->listen = true;
        return PARSE_OK;
    case '4':
        parse->ipv4 = true;
        return PARSE_OK;
    case '6':
        parse->ipv6 = true;
        return PARSE_OK;
    case 'u': /* nc's UDP flag: dgcat speaks nothing else */
        return PARSE_OK;
    case 's':
        config->local_address = optarg;
        return PARSE_OK;
    case 'p':
        parse->local_port_text = optarg;
        return PARSE_OK;
    case 'b':
        config->broadcast = true;
        return PARSE_OK;
    case 'n':
        config->keep_newline = true;
        return PARSE_OK;
    case 'J':
        config->join_group = optarg;
        return PARSE_OK;
    case 'I':
        config->iface = optarg;
        return PARSE_OK;
    case 'f':
        return apply_format(config, optarg);
    case 'w':
    case 'c':
    case 'r':
        return apply_number(config, option, optarg);
    case 'h':
        fputs(usage_text, stdout);
        return TOOL_EXIT_OK;
    default:
        tool_option_error(CAT_PROG, option, argv);
        return TOOL_EXIT_USAGE;
    }
}

static int parse_port(const char *text, bool allow_zero, int *out)
{
    if (tool_parse_port(text, allow_zero, out))
        return PARSE_OK;
    tool_error(CAT_PROG, "bad port '%s': expected %d..65535", text, allow_zero ? 0 : 1);
    return TOOL_EXIT_USAGE;
}

/* Listening: [ADDRESS] PORT, or -p PORT. */
static int take_listen_positionals(cat_config *config, cat_parse *parse, int count,
                                   char *const args[])
{
    const char *port_text = parse->local_port_text;

    if (count > 2 || (count == 2 && config->local_address != NULL) ||
        (count >= 1 && port_text != NULL))
        return usage_error("too many addresses or ports for -l (see --help)");
    if (count == 2)
        config->local_address = args[0];
    if (count >= 1)
        port_text = args[count - 1];
    if (port_text == NULL)
        return usage_error("-l needs a port (use 0 for a free port)");
    return parse_port(port_text, true, &config->port);
}

/* Sending: HOST PORT, with an optional -p source port. */
static int take_send_positionals(cat_config *config, cat_parse *parse, int count,
                                 char *const args[])
{
    int status;

    if (count != 2)
        return usage_error(count < 2 ? "missing HOST PORT (or -l to listen; see --help)"
                                     : "too many arguments (see --help)");
    config->host = args[0];
    status = parse_port(args[1], false, &config->port);
    if (status == PARSE_OK && parse->local_port_text != NULL)
        status = parse_port(parse->local_port_text, true, &config->local_port);
    return status;
}

/* IPv6 if asked for, or if an address given is an IPv6 literal. */
static int choose_family(cat_config *config, const cat_parse *parse)
{
    const char *texts[] = {config->host, config->local_address, config->join_group};
    bool literal6 = false;

    if (parse->ipv4 && parse->ipv6)
        return usage_error("-4 and -6 exclude each other");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        literal6 = literal6 || tool_literal_family(texts[i]) == AF_INET6;
    config->udp6 = parse->ipv6 || (!parse->ipv4 && literal6);
    return PARSE_OK;
}

/* Whether text is a multicast literal of the family (IPv6 may carry a
 * %scope, which dgring checks). */
static bool is_multicast_group(const char *text, bool udp6)
{
    unsigned char bytes[16];
    char unscoped[INET6_ADDRSTRLEN];
    size_t length = strcspn(text, "%");

    if (tool_literal_family(text) != (udp6 ? AF_INET6 : AF_INET) || length >= sizeof(unscoped))
        return false;
    memcpy(unscoped, text, length);
    unscoped[length] = '\0';
    if (inet_pton(udp6 ? AF_INET6 : AF_INET, unscoped, bytes) != 1)
        return false;
    return udp6 ? bytes[0] == 0xff : (bytes[0] & 0xf0) == 0xe0;
}

/* The addresses against the family, and options against the mode. */
static int check_config(const cat_config *config)
{
    const char *family = config->udp6 ? "IPv6" : "IPv4";

    if (config->host != NULL && !tool_host_usable(config->host, config->udp6)) {
        tool_error(CAT_PROG, "bad host '%s': expected an %s address or a host name",
                   config->host, family);
        return TOOL_EXIT_USAGE;
    }
    if (config->local_address != NULL && !tool_host_usable(config->local_address, config->udp6)) {
        tool_error(CAT_PROG, "bad local address '%s': expected an %s address or a host name",
                   config->local_address, family);
        return TOOL_EXIT_USAGE;
    }
    if (config->join_group != NULL && !is_multicast_group(config->join_group, config->udp6)) {
        tool_error(CAT_PROG, "bad group '%s': expected an %s multicast address",
                   config->join_group, family);
        return TOOL_EXIT_USAGE;
    }
    if (config->join_group != NULL && !config->listen)
        return usage_error("--join needs -l");
    if (config->listen && (config->raw_size > 0 || config->keep_newline))
        return usage_error("--raw and --keep-newline apply to sending, not to -l");
    if (config->raw_size > 0 && config->keep_newline)
        return usage_error("--keep-newline applies to lines, not to --raw");
    return PARSE_OK;
}

int cat_parse_args(int argc, char *argv[], cat_config *config)
{
    cat_parse parse = {0};
    int option, status;

    opterr = 0;
    while ((option = getopt_long(argc, argv, ":l46us:p:w:bh", cat_options, NULL)) != -1) {
        status = apply_option(config, &parse, option, argv);
        if (status != PARSE_OK)
            return status;
    }
    if (config->listen)
        status = take_listen_positionals(config, &parse, argc - optind, argv + optind);
    else
        status = take_send_positionals(config, &parse, argc - optind, argv + optind);
    if (status == PARSE_OK)
        status = choose_family(config, &parse);
    return status == PARSE_OK ? check_config(config) : status;
}

/* dgcat's command line, from options.c's table like the other tools'. See
 * cat.h; the flags follow nc -u where nc has one (-l, -4, -6, -u, -s, -p,
 * -w, -b). */
#include "cat.h"
#include "options.h"

#include <arpa/inet.h>
#include <string.h>

enum { PARSE_OK = -1 };

#define MAX_WAIT_S 10000000

static const char synopsis[] =
    "dgcat [options] HOST PORT            send stdin as datagrams to HOST:PORT\n"
    "       dgcat -l [options] [ADDRESS] PORT    receive datagrams and print them\n";

static const char outro[] =
    "HOST may be an IP address or a host name. Sending reads stdin (one\n"
    "datagram per line), prints replies and reports ICMP errors (a closed\n"
    "port: ECONNREFUSED), as nc -u does from its connected socket; listening\n"
    "prints \"listening ADDRESS:PORT\" on stderr once bound. Exit status: 0\n"
    "done, 1 runtime failure (bind, host name, send, ICMP error), 2 bad\n"
    "command line.\n";

static const char *const format_names[] = {"text", "hex", "json", "raw", NULL};

#define FIELD(member) TOOL_FIELD(cat_config, member)

static const tool_option cat_table[] = {
    {"listen", 'l', TOOL_ARG_FLAG, FIELD(listen), NULL,
     "receive on [ADDRESS] PORT (0 picks a free port)"},
    {"ipv4", '4', TOOL_ARG_FLAG, FIELD(ipv4), NULL,
     "use IPv4 (default: from the addresses given, else IPv4)"},
    {"ipv6", '6', TOOL_ARG_FLAG, FIELD(ipv6), NULL, "use IPv6"},
    {"udp", 'u', TOOL_ARG_FLAG, FIELD(udp), NULL, "accepted for nc compatibility: always UDP"},
    {"source", 's', TOOL_ARG_STRING, FIELD(local_address), "ADDRESS", "local address to bind"},
    {"local-port", 'p', TOOL_ARG_STRING, FIELD(local_port_text), "PORT",
     "local port (listening: the port to receive on)"},
    {"wait", 'w', TOOL_ARG_POSITIVE, FIELD(wait_s), "SECS",
     "stop after SECS without a datagram sent or received; when sending, also wait this long "
     "for replies and ICMP errors after the end of stdin",
     .max = MAX_WAIT_S, .expected = "seconds > 0"},
    {"count", 0, TOOL_ARG_NUMBER, FIELD(count), "N", "stop after receiving N datagrams",
     .min = 1, .max = UINT64_MAX, .expected = "a number > 0"},
    {"format", 0, TOOL_ARG_CHOICE, FIELD(format), "FORMAT",
     "how to print received datagrams: text (default, sender and escaped payload), hex, json "
     "(one object a line: from, port, size, data) or raw (payload only)",
     .choices = format_names},
    {"raw", 0, TOOL_ARG_NUMBER, FIELD(raw_size), "SIZE",
     "send stdin in SIZE-byte datagrams instead of lines", .min = 1, .max = TOOL_MAX_PAYLOAD,
     .what = "raw size"},
    {"keep-newline", 0, TOOL_ARG_FLAG, FIELD(keep_newline), NULL,
     "send each line with its newline"},
    {"join", 0, TOOL_ARG_STRING, FIELD(join_group), "GROUP",
     "receive multicast GROUP (listening)"},
    {"iface", 0, TOOL_ARG_STRING, FIELD(iface), "ADDRESS",
     "interface for --join and for sending multicast"},
    {"broadcast", 'b', TOOL_ARG_FLAG, FIELD(broadcast), NULL,
     "allow sending to a broadcast address (the socket then stays unconnected)"},
    TOOL_ROW_RCVBUF(cat_config, 0,
                    "ask for a receive buffer (SO_RCVBUF) of BYTES (K, M, G: powers of 1024; "
                    "default: the system's); the kernel grants twice that, at most twice "
                    "net.core.rmem_max"),
    TOOL_ROW_SNDBUF(cat_config, 0),
    TOOL_ROW_DNS_SERVER(cat_config, 0),
    {"help", 'h', TOOL_ARG_HELP, .help = "show this help"},
};

/* Prints a usage problem; returns TOOL_EXIT_USAGE. */
static int usage_error(const char *message)
{
    tool_error(CAT_PROG, "%s", message);
    return TOOL_EXIT_USAGE;
}

static int parse_port(const char *text, bool allow_zero, int *out)
{
    if (tool_parse_port(text, allow_zero, out))
        return PARSE_OK;
    tool_error(CAT_PROG, "bad port '%s': expected %d..65535", text, allow_zero ? 0 : 1);
    return TOOL_EXIT_USAGE;
}

/* Listening: [ADDRESS] PORT, or -p PORT. */
static int take_listen_positionals(cat_config *config, int count, char *const args[])
{
    const char *port_text = config->local_port_text;

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
static int take_send_positionals(cat_config *config, int count, char *const args[])
{
    int status;

    if (count != 2)
        return usage_error(count < 2 ? "missing HOST PORT (or -l to listen; see --help)"
                                     : "too many arguments (see --help)");
    config->host = args[0];
    status = parse_port(args[1], false, &config->port);
    if (status == PARSE_OK && config->local_port_text != NULL)
        status = parse_port(config->local_port_text, true, &config->local_port);
    return status;
}

/* IPv6 if asked for, or if an address given is an IPv6 literal. */
static int choose_family(cat_config *config)
{
    const char *texts[] = {config->host, config->local_address, config->join_group};
    bool literal6 = false;

    if (config->ipv4 && config->ipv6)
        return usage_error("-4 and -6 exclude each other");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        literal6 = literal6 || tool_literal_family(texts[i]) == AF_INET6;
    config->udp6 = config->ipv6 || (!config->ipv4 && literal6);
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

bool cat_is_multicast(const char *text, bool udp6)
{
    return text != NULL && is_multicast_group(text, udp6);
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
    tool_options options = {
        .prog = CAT_PROG,
        .usage = CAT_PROG,
        .table = cat_table,
        .count = sizeof(cat_table) / sizeof(cat_table[0]),
        .synopsis = synopsis,
        .outro = outro,
        .positionals = true,
    };
    int status = tool_options_parse(&options, argc, argv, config);

    if (status != PARSE_OK)
        return status;
    if (config->listen)
        status = take_listen_positionals(config, argc - options.next, argv + options.next);
    else
        status = take_send_positionals(config, argc - options.next, argv + options.next);
    if (status == PARSE_OK)
        status = choose_family(config);
    return status == PARSE_OK ? check_config(config) : status;
}

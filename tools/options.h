/* Command lines from one table, for dgblast, dgring-echo and dgring-impair.
 *
 * A tool describes each option once, as a row: long name, optional short
 * letter, the kind of value, the field of the tool's configuration it
 * sets, and its help. Everything else comes from the table: the arguments
 * of getopt_long(), the check of each value with the same error wording
 * in every tool ("bad WHAT 'TEXT': expected RANGE"), which options were
 * given, which required ones are missing, and the --help text. Since
 * test_man.sh checks every option of --help against the man page, the man
 * page is checked against the table too. Adding an option is adding a row
 * and reading its field.
 *
 * A tool with modes (dgblast send/recv/...) gives each row the modes it
 * belongs to; an option whose help or range differs between modes has a
 * row per group of modes, with the same name, letter and kind. An option
 * of another mode is refused with "option '--X' does not apply to MODE".
 *
 * Tool code on the public API only, like common.h.
 */
#ifndef DGRING_TOOLS_OPTIONS_H
#define DGRING_TOOLS_OPTIONS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

/* What follows an option, and how it is stored in its field. */
typedef enum tool_arg {
    TOOL_ARG_FLAG,     /* no value; sets a bool field to true */
    TOOL_ARG_STRING,   /* a const char * field, borrowed from argv */
    TOOL_ARG_NUMBER,   /* a decimal integer in [min, max], stored into an
                          unsigned or int field of 1, 2, 4 or 8 bytes */
    TOOL_ARG_POSITIVE, /* a double field: a finite number > 0, <= max;
                          with .si also 200k, 1.5M, 2G (powers of 1000) */
    TOOL_ARG_BYTES,    /* a byte count in [min, max] with an optional K, M
                          or G (powers of 1024, as iperf3's -w), stored as
                          TOOL_ARG_NUMBER stores */
    TOOL_ARG_PERCENT,  /* a double field: a finite number 0..100 (a share:
                          0.5 is one datagram in 200) */
    TOOL_ARG_CHOICE,   /* one of choices, stored as its index like a number
                          (an enum field) */
    TOOL_ARG_HELP,     /* prints the help; parsing ends with exit status 0 */
} tool_arg;

/* The field a row sets: TOOL_FIELD(blast_config, port). */
#define TOOL_FIELD(type, member) \
    .offset = offsetof(type, member), .width = sizeof(((type *)0)->member)

/* Ranges the tools share, for a row's designated initialisers. */
#define TOOL_PORT_RANGE(lowest) .min = (lowest), .max = 65535
#define TOOL_THREADS_RANGE .min = 1, .max = 64, .what = "thread count"

/* Rows every tool has, for a configuration type with a tool_net_options
 * member named net (common.h); help texts that differ are arguments. */
#define TOOL_ROW_RCVBUF(type, modes_, help_)                                                  \
    {"rcvbuf", 0, TOOL_ARG_BYTES, TOOL_FIELD(type, net.rcvbuf), "BYTES", (help_),           \
     .modes = (modes_), .min = 1, .max = INT_MAX, .what = "receive buffer size"}
#define TOOL_ROW_SNDBUF(type, modes_)                                                         \
    {"sndbuf", 0, TOOL_ARG_BYTES, TOOL_FIELD(type, net.sndbuf), "BYTES",                    \
     "ask for a send buffer (SO_SNDBUF) of BYTES (K, M, G: powers of 1024); the kernel "      \
     "grants twice that, at most twice net.core.wmem_max (default: the system's)",           \
     .modes = (modes_), .min = 1, .max = INT_MAX, .what = "send buffer size"}
#define TOOL_ROW_DNS_SERVER(type, modes_)                                                     \
    {"dns-server", 0, TOOL_ARG_STRING, TOOL_FIELD(type, net.dns_server), "IP[:PORT]",        \
     "resolve host names with this DNS server (a comma-separated list; default: "            \
     "DGRING_DNS_SERVERS, else /etc/resolv.conf)", .modes = (modes_)}
#define TOOL_ROW_CPU(type, modes_, help_)                                                     \
    {"cpu", 'A', TOOL_ARG_NUMBER, TOOL_FIELD(type, net.cpu), "N", (help_), .modes = (modes_),  \
     .max = 1023, .what = "CPU"}

/* One option. Unused members stay zero (designated initialisers). */
typedef struct tool_option {
    const char *name;    /* the long name, without "--" */
    char letter;         /* the short option (-p), 0 for none */
    tool_arg arg;
    size_t offset;       /* the field, set with TOOL_FIELD (not for */
    size_t width;        /* TOOL_ARG_HELP) */
    const char *value;   /* the value's name in --help ("P"); NULL for flags */
    const char *help;    /* one sentence; --help wraps it */
    unsigned modes;      /* the modes taking the option; 0: every mode */
    bool required;       /* the modes above cannot do without it */
    uint64_t min, max;   /* TOOL_ARG_NUMBER, TOOL_ARG_BYTES: the range;
                            TOOL_ARG_POSITIVE: max only */
    bool si;             /* TOOL_ARG_POSITIVE: k, M, G suffixes allowed */
    const char *const *choices; /* TOOL_ARG_CHOICE: names, NULL-terminated */
    const char *what;    /* "bad WHAT ...": what the value is; NULL: name */
    const char *expected; /* "... expected RANGE": NULL for "MIN..MAX" or,
                             for a choice, "a, b or c" */
} tool_option;

/* The most rows a table may have. */
#define TOOL_OPTIONS_MAX 64

/* One command line being parsed: the table, the mode, the help's frame,
 * and (filled by tool_options_parse) which rows were given. */
typedef struct tool_options {
    const char *prog;      /* the prefix of error lines: "dgblast" */
    const char *usage;     /* the help's "usage: " line starts with this */
    const tool_option *table;
    size_t count;          /* rows in table, <= TOOL_OPTIONS_MAX */
    unsigned mode;         /* the mode parsed; 0 for a tool without modes */
    const char *mode_name; /* the mode's name in messages, or NULL */
    const char *intro;     /* help text between the usage lines and the */
    const char *outro;     /* options, and after them; NULL for none */
    const char *synopsis;  /* the usage lines, written out, for a tool with
                              arguments; NULL: generated from the table */
    bool positionals;      /* non-option arguments allowed (see below) */
    int next;              /* after parsing: argv[next..argc) are the
                              non-option arguments */
    bool given[TOOL_OPTIONS_MAX];
} tool_options;

/* Parses the options of argv (argv[0] is the program or the mode name)
 * into config, the structure the rows' fields belong to; strings stay
 * borrowed from argv. Non-option arguments are refused, unless
 * options->positionals: then they are moved behind the options (GNU
 * getopt's order) and options->next indexes the first. Returns -1 to go
 * on, TOOL_EXIT_OK after printing the help on stdout, or TOOL_EXIT_USAGE
 * after printing the problem on stderr as one line. Uses getopt_long()'s
 * globals: one thread, one parse at a time. */
int tool_options_parse(tool_options *options, int argc, char *argv[], void *config);

/* Whether an option of this name was given (after tool_options_parse). */
bool tool_options_given(const tool_options *options, const char *name);

/* The first row of the mode marked required that was not given, in table
 * order, or NULL. The tool words the message ("send needs --host"). */
const tool_option *tool_options_missing(const tool_options *options);

/* Prints the help of the mode on out: "usage: " with the usage text and
 * the mode's options (required ones first, the rest in brackets), the
 * intro, one line or more per option, the outro. */
void tool_options_print_help(const tool_options *options, FILE *out);

#endif

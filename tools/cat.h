/* dgcat internals: the parsed command line, the output formats and the
 * stdin reader. dgcat.c has main, the sockets and the loop driver. */
#ifndef DGRING_TOOLS_CAT_H
#define DGRING_TOOLS_CAT_H

#include "common.h"
#include "setup.h"

#define CAT_PROG "dgcat"

typedef enum cat_format {
    CAT_FORMAT_TEXT = 0, /* "ADDRESS:PORT (N bytes): escaped payload" */
    CAT_FORMAT_HEX,      /* a header line, then a hex dump */
    CAT_FORMAT_JSON,     /* one JSON object per datagram per line */
    CAT_FORMAT_RAW,      /* the payload bytes only, as nc prints them */
} cat_format;

/* The command line, validated. */
typedef struct cat_config {
    bool listen;
    bool ipv4, ipv6;          /* -4, -6 (parsing only: udp6 is the result) */
    bool udp;                 /* -u: nc's flag, always true here */
    const char *local_port_text; /* -p, read once the mode is known */
    const char *host;         /* send: destination, IP literal or host name */
    int port;                 /* send: destination port; listen: local port */
    const char *local_address; /* address to bind; NULL = unspecified */
    int local_port;           /* send: source port, 0 = any */
    bool udp6;
    size_t raw_size;          /* --raw: datagram size; 0 = one per line */
    bool keep_newline;        /* lines keep their '\n' */
    cat_format format;
    const char *join_group;   /* --join: multicast group to receive */
    const char *iface;        /* --iface: multicast interface */
    bool broadcast;
    double wait_s;            /* -w: idle timeout; 0 = none */
    uint64_t count;           /* --count: stop after N received; 0 = none */
    tool_net_options net;     /* --rcvbuf, --sndbuf, --dns-server */
} cat_config;

/* Parses argv into *config. Returns -1 to go on, or the exit status (0
 * after --help, 2 after printing the problem). */
int cat_parse_args(int argc, char *argv[], cat_config *config);

/* Whether text is a multicast literal of the family (udp6 or not). */
bool cat_is_multicast(const char *text, bool udp6);

/* Prints msg on stdout in config->format, buffered: the caller flushes
 * once per loop turn, not once per datagram. Returns false if stdout
 * failed, after which the caller should stop. */
bool cat_print_message(const cat_config *config, const dg_message *msg);

/* ---- The stdin reader ---------------------------------------------------
 * Bytes from stdin are cut into datagrams: one per line (without its
 * '\n' unless keep_newline; lines longer than the largest datagram are
 * split), or --raw chunks of raw_size bytes (the last may be shorter). */

typedef struct cat_input {
    unsigned char *buffer;
    size_t capacity;
    size_t length;      /* bytes buffered, not yet sent */
    size_t raw_size;
    bool keep_newline;
    bool eof;
} cat_input;

/* Called for each datagram cut from the input; returns false to stop the
 * reader (the rest stays buffered). */
typedef bool (*cat_emit_fn)(const void *data, size_t length, void *ctx);

/* Returns 0 or -ENOMEM. */
int cat_input_init(cat_input *input, const cat_config *config);
void cat_input_free(cat_input *input);

/* Emits the complete datagrams already buffered (at end of file also the
 * incomplete rest). Returns true if none is left, false if emit stopped
 * early. */
bool cat_input_emit(cat_input *input, cat_emit_fn emit, void *ctx);

/* Reads once from fd (which poll() found readable) and emits as
 * cat_input_emit() does. Call it only after an emit returned true (so the
 * buffer has room for a read). Returns 0, or a negative errno from
 * read(2). */
int cat_input_read(cat_input *input, int fd, cat_emit_fn emit, void *ctx);

/* True once the end of the input was read and everything was emitted. */
bool cat_input_done(const cat_input *input);

#endif

/* Helpers shared by dgring-echo and dgblast: argument parsing, signal
 * handling, the loop driver, JSON output and percentiles.
 *
 * These are tool code, built on the public API only (<dgring.h>); nothing
 * here is part of the library or installed.
 */
#ifndef DGRING_TOOLS_COMMON_H
#define DGRING_TOOLS_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <dgring.h>

/* Exit statuses shared by every tool. */
enum {
    TOOL_EXIT_OK = 0,      /* done, including an early stop by SIGINT/SIGTERM */
    TOOL_EXIT_FAILURE = 1, /* a runtime failure: bind, loop, out of memory */
    TOOL_EXIT_USAGE = 2,   /* bad command line */
};

/* The largest UDP payload over IPv4, the limit the tools accept. */
#define TOOL_MAX_PAYLOAD 65507

/* ---- Messages ---------------------------------------------------------- */

/* Prints "PROG: MESSAGE\n" on stderr. Every tool error is one such line. */
void tool_error(const char *prog, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "PROG: " and err as dg_error_format() words it ("bind EADDRINUSE
 * 127.0.0.1:9"), with "SYSCALL: " in front when the text lacks it (dgring's
 * own codes format as a bare sentence). A failed host name lookup (syscall
 * "getaddrinfo") prints "PROG: cannot resolve host 'NAME': ENOTFOUND
 * (Domain name not found)". */
void tool_error_dg(const char *prog, const dg_error *err);

/* Prints a failed bind the way Node words it, "PROG: bind EADDRINUSE
 * 127.0.0.1:9"; address NULL or "" stands for the unspecified address. */
void tool_error_bind(const char *prog, int code, const char *address, int port, bool udp6);

/* Whether code is one of the resolver's (DG_ERR_DNS_*): a host name that
 * could not be resolved. */
bool tool_is_dns_error(int code);

/* Where a tool's notes go (the "listening" line, the buffer sizes):
 * stdout, or stderr with --json, whose stdout carries only JSON lines. */
FILE *tool_notes(bool json);

/* Prints "listening ADDRESS:PORT" for a bound socket on out and flushes,
 * the line scripts wait for. Returns 0, or the code of dg_socket_address()
 * after printing why. */
int tool_print_listening(const char *prog, const dg_socket *sock, FILE *out);

/* Starts dg_socket_bind(sock, port, address, cb, data) for a tool that
 * receives. Returns TOOL_EXIT_OK, or the exit status after printing why:
 * TOOL_EXIT_USAGE for an address the socket's family (udp6 or not) cannot
 * take, TOOL_EXIT_FAILURE for any other error. */
int tool_bind_start(const char *prog, dg_socket *sock, const char *address, int port, bool udp6,
                    dg_bind_cb cb, void *data);

/* Handles a bind callback's status: on success prints the "listening"
 * line on out (tool_print_listening). A failure prints nothing here:
 * dgring has reported it to the socket's on_error first (Node's 'error'),
 * which prints it; while the tool is closing the bind was cancelled and is
 * no failure. Returns TOOL_EXIT_OK or TOOL_EXIT_FAILURE. */
int tool_bind_done(const char *prog, dg_socket *sock, int status, bool closing, FILE *out);

/* Prints "PROG: WHAT: NAME (SENTENCE)" for a dgring return code. */
void tool_error_code(const char *prog, const char *what, int code);

/* Prints the problem getopt_long() reported as '?' (unknown option) or ':'
 * (missing value), for an optstring starting with ':' and opterr = 0. */
void tool_option_error(const char *prog, int result, char *const argv[]);

/* ---- Argument parsing --------------------------------------------------
 * Each parser accepts the whole text or nothing: no leading blanks, no
 * trailing characters, no overflow. They return false on bad input and
 * leave *out unchanged. */

/* A port 0..65535; 0 only if allow_zero. */
bool tool_parse_port(const char *text, bool allow_zero, int *out);

/* A decimal integer in [min, max]. */
bool tool_parse_uint64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* A finite number > 0 and <= max (seconds, rates). */
bool tool_parse_positive(const char *text, double max, double *out);

/* The same with an optional k/K, M or G suffix (powers of 1000): 200k. */
bool tool_parse_si(const char *text, double max, double *out);

/* A byte count in [min, max] with an optional K, M or G suffix (powers of
 * 1024, upper or lower case): 65536, 64K, 32M. */
bool tool_parse_bytes(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Whether host can be handed to dgring as a destination of the family
 * (udp6 or not): an IP literal of that family, or text shaped like a host
 * name ("localhost", "db.example"), which the library resolves from the
 * loop. False for a literal of the other family and for text that can be
 * neither (spaces, "1.2.3.4.5" stays a name: DNS decides). */
bool tool_host_usable(const char *host, bool udp6);

/* The address family of an IP literal (AF_INET, AF_INET6; IPv6 may carry
 * a %scope), or 0 if text is no IP literal. */
int tool_literal_family(const char *text);

/* ---- Time, sequence numbers -------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tool_now_ns(void);

/* 8-byte little-endian integers inside payloads (sequence numbers and
 * timestamps), independent of host byte order and alignment. */
void tool_put_u64le(void *dst, uint64_t value);
uint64_t tool_get_u64le(const void *src);

/* ---- Signals and the loop driver ----------------------------------------
 * SIGINT and SIGTERM set a counter and call dg_loop_stop() on the attached
 * loop (both async-signal-safe). The loop pointer and the counter are the
 * tools' only global mutable state. */

/* Installs the handlers for loop (without SA_RESTART, so a blocking wait
 * is interrupted). Returns 0 or a negative errno. */
int tool_signals_attach(dg_loop *loop);

/* Forgets the loop (signals stay counted); call before dg_loop_close(). */
void tool_signals_detach(void);

/* How many SIGINT/SIGTERM arrived so far. */
unsigned tool_stop_requests(void);

/* Called when the tool should wind down: stop starting work and close its
 * handles. Called once per arriving signal, so it must be idempotent. */
typedef void (*tool_finish_fn)(void *ctx);

/* Runs loop until nothing keeps it alive. Whenever dg_loop_run() returns
 * while a stop was requested, finish(ctx) is called so the handles close
 * and the loop winds down. Returns 0 or the fatal code of dg_loop_run(). */
int tool_run_loop(dg_loop *loop, tool_finish_fn finish, void *ctx);

/* Prints why a loop (or a group's loops) could not be created; names
 * DGRING_BACKEND when that is what dg_loop_new() refused. */
void tool_error_loop(const char *prog, int code);

/* Creates a loop with options (may be NULL) and attaches the signal
 * handlers to it. On failure prints why and returns NULL. */
dg_loop *tool_loop_open(const char *prog, const dg_loop_options *options);

/* Detaches the signals and closes loop, which must have no live handles.
 * Returns true on success; otherwise prints why (a library bug: the tools
 * close everything first). */
bool tool_loop_close(const char *prog, dg_loop *loop);

/* ---- Threads: reuse-port groups and worker loops ----------------------------
 * The main thread waits for SIGINT/SIGTERM with sigwait() or
 * sigtimedwait() while the threads run the loops. */

/* Blocks SIGINT and SIGTERM in the calling thread, and so in the threads
 * it starts afterwards, and sets *stops to them for sigwait(). */
void tool_block_stop_signals(sigset_t *stops);

/* Initialises options for a reuse-port group of `threads` loops bound to
 * address (NULL: the unspecified address) and port, UDP over IPv6 if
 * udp6; the caller adds handlers and data. */
void tool_group_options_init(dg_group_options *options, unsigned threads, const char *address,
                             int port, bool udp6);

/* Starts the group. Prints "listening ADDRESS:PORT" on out with the
 * address given or the unspecified one (the sockets belong to their
 * threads; the port is the group's) and flushes. Returns 0, or the code of
 * dg_group_start() after printing why. */
int tool_group_start(const char *prog, dg_group **group, const dg_group_options *options,
                     FILE *out);

/* ---- Live progress ------------------------------------------------------ */

/* True if progress lines should go to stderr (it is a terminal). */
bool tool_progress_wanted(void);

/* ---- JSON ----------------------------------------------------------------
 * One flat object on one line: tool_json_begin, fields, tool_json_end. */

typedef struct tool_json {
    FILE *out;
    unsigned fields;
} tool_json;

void tool_json_begin(tool_json *json, FILE *out);
void tool_json_string(tool_json *json, const char *key, const char *value);
void tool_json_uint(tool_json *json, const char *key, uint64_t value);
void tool_json_bool(tool_json *json, const char *key, bool value);
/* "key":null: a figure that has no value (a rate over too short a time). */
void tool_json_null(tool_json *json, const char *key);
/* Non-finite values print as 0: JSON has no NaN or infinity. */
void tool_json_double(tool_json *json, const char *key, double value, int decimals);
/* Closes the object, ends the line and flushes. */
void tool_json_end(tool_json *json);

/* ---- Samples and percentiles -------------------------------------------- */

/* A growable array of 64-bit samples. Zero-initialise; free with
 * tool_samples_free(). */
typedef struct tool_samples {
    uint64_t *items;
    size_t count;
    size_t capacity;
} tool_samples;

/* Appends value. Returns 0 or -ENOMEM (the array is unchanged). */
int tool_samples_push(tool_samples *samples, uint64_t value);
void tool_samples_sort(tool_samples *samples);
/* The nearest-rank percentile of sorted samples, per_mille in 1..1000
 * (500 = p50, 999 = p99.9, 1000 = max). 0 when there are no samples. */
uint64_t tool_samples_percentile(const tool_samples *samples, unsigned per_mille);
void tool_samples_free(tool_samples *samples);

/* count / seconds, or 0 when no time passed. */
double tool_rate(uint64_t count, double seconds);

/* The shortest time a rate is computed over: below it, the clock's and
 * the loop's granularity would make any rate fiction ("too short"). */
#define TOOL_RATE_MIN_SECONDS 0.005

/* Whether seconds is long enough for a rate. */
bool tool_rate_measurable(double seconds);

#endif

/* Helpers the example programs share: the command line, reporting a
 * socket's bind and errors, and running a loop until SIGINT/SIGTERM. Kept
 * apart so that each example's own file shows only what it does with
 * dgring. Like the examples, they use the public API only (<dgring.h>)
 * and stand alone: nothing here comes from the tools' common.c. */
#ifndef DGRING_EXAMPLES_EXAMPLE_H
#define DGRING_EXAMPLES_EXAMPLE_H

#include <dgring.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- The command line --------------------------------------------------- */

typedef enum example_arg {
    EXAMPLE_FLAG,   /* --name: sets a bool to true */
    EXAMPLE_STRING, /* --name TEXT: a const char *, borrowed from argv */
    EXAMPLE_NUMBER, /* --name N: an unsigned long in [min, max] */
} example_arg;

/* One option: --name, and the variable its value goes to. */
typedef struct example_option {
    const char *name;
    example_arg arg;
    void *target; /* bool *, const char ** or unsigned long *, per arg */
    unsigned long min, max;
} example_option;

/* Parses argv against options (count of them) into their targets;
 * -h/--help prints usage on stdout. Returns -1 to go on, 0 after --help,
 * or 2 after printing the problem on stderr ("PROG: bad value 'X' for
 * --name", "PROG: bad option '--x' (see --help)", "PROG: unexpected
 * argument 'X'"). Uses getopt_long(): one thread, once. */
int example_parse_options(const char *prog, int argc, char *argv[],
                          const example_option *options, size_t count, const char *usage);

/* A decimal number in [min, max], the whole text and nothing else. */
bool example_parse_ulong(const char *text, unsigned long min, unsigned long max,
                         unsigned long *out);

/* ---- Sockets ------------------------------------------------------------ */

/* For a bind callback: on success prints "listening ADDRESS:PORT" on out
 * and returns true; on failure returns false and prints nothing: dgring
 * reports a failed bind to the socket's on_error first, as Node's 'error',
 * and the examples' on_error prints it. */
bool example_bound(const char *prog, const dg_socket *sock, int status, FILE *out);

/* Prints "PROG: " and err as dg_error_format() words it, on stderr: what
 * an example's on_error handler does. */
void example_print_error(const char *prog, const dg_error *err);

/* ---- Signals and the loop ------------------------------------------------ */

/* SIGINT and SIGTERM set a flag and call dg_loop_stop(loop), which is
 * async-signal-safe, so dg_loop_run() returns and the program can close
 * its handles. Returns 0 or a negative errno. */
int example_catch_signals(dg_loop *loop);

/* Forgets the loop; call before dg_loop_close(). */
void example_release_signals(void);

/* Whether SIGINT or SIGTERM arrived. */
bool example_stop_requested(void);

/* Runs loop until no handle is left. Whenever dg_loop_run() returns after
 * a signal, or while *failed is nonzero (failed may be NULL), stop(ctx)
 * is called to close the program's handles; it must be idempotent.
 * Returns 0 or the fatal code of dg_loop_run(). */
int example_run(dg_loop *loop, void (*stop)(void *ctx), void *ctx, const int *failed);

#endif

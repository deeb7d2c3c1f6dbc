/* Helpers the example programs share: number parsing and stopping a loop
 * from SIGINT/SIGTERM. Kept apart so that each example's own file shows
 * only what it does with dgring. */
#ifndef DGRING_EXAMPLES_EXAMPLE_H
#define DGRING_EXAMPLES_EXAMPLE_H

#include <dgring.h>

#include <stdbool.h>

/* A decimal number in [min, max], the whole text and nothing else. */
bool example_parse_ulong(const char *text, unsigned long min, unsigned long max,
                         unsigned long *out);

/* SIGINT and SIGTERM set a flag and call dg_loop_stop(loop), which is
 * async-signal-safe, so dg_loop_run() returns and the program can close
 * its handles. Returns 0 or a negative errno. */
int example_catch_signals(dg_loop *loop);

/* Forgets the loop; call before dg_loop_close(). */
void example_release_signals(void);

/* Whether SIGINT or SIGTERM arrived. */
bool example_stop_requested(void);

#endif

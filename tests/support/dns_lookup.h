/* Helpers for the resolver suites: loops pointed only at a test DNS
 * server, lookups that record their one callback, temporary resolv.conf
 * and hosts files. Criterion assertions; the test's thread only. */
#ifndef DGRING_TEST_DNS_LOOKUP_H
#define DGRING_TEST_DNS_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>

#include <dgring.h>

/* What one dg_lookup's callback reported. */
typedef struct dgt_lookup {
    int calls;
    int status;
    dg_address address;  /* zeroed on error */
    bool had_address;    /* the callback got a non-NULL address */
    uint64_t done_ms;    /* dgt_now_ms() when the callback ran */
} dgt_lookup;

/* A loop whose resolver uses only servers ("127.0.0.1:PORT"), reads
 * resolv.conf from /dev/null (no search domains, no servers) and the hosts
 * file hosts_file (NULL: /etc/hosts), with timeout_ms and tries (0 keeps
 * the default). */
dg_loop *dgt_resolver_loop(const char *servers, const char *hosts_file, unsigned timeout_ms,
                           unsigned tries);

/* dg_lookup(loop, name, family) recording into *out; asserts the call
 * returned 0 and that the callback did not run inside it. */
void dgt_lookup_start(dg_loop *loop, const char *name, int family, dgt_lookup *out);

/* Starts a lookup and runs the loop until its callback ran, then one more
 * turn, asserting the callback ran exactly once. Returns its status. */
int dgt_lookup_wait(dg_loop *loop, const char *name, int family, dgt_lookup *out);

/* Runs the loop until *counter reaches target (watchdog DGT_WAIT_MS). */
void dgt_lookup_run(dg_loop *loop, const int *counter, int target);

/* The loop's resolver counters. */
dg_resolver_stats dgt_resolver_stats(const dg_loop *loop);

/* A new file under $TMPDIR (or /tmp) holding text; returns its malloc'd
 * path. dgt_file_rewrite replaces the content through a new inode (write
 * then rename), as editors and resolvconf do. */
char *dgt_file_new(const char *text);
void dgt_file_rewrite(const char *path, const char *text);

uint64_t dgt_now_ms(void);

#endif

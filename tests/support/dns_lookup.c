/* Resolver test helpers (see dns_lookup.h). */
#include "dns_lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

uint64_t dgt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

dg_loop *dgt_resolver_loop(const char *servers, const char *hosts_file, unsigned timeout_ms,
                           unsigned tries)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dg_resolver_options o;
    dg_resolver_options_init(&o);
    o.resolv_conf = "/dev/null";
    o.hosts_file = hosts_file;
    if (timeout_ms)
        o.timeout_ms = timeout_ms;
    if (tries)
        o.tries = tries;
    cr_assert_eq(dg_loop_set_resolver_options(loop, &o), 0);
    cr_assert_eq(dg_loop_set_dns_servers(loop, servers), 0, "servers %s", servers);
    return loop;
}

static void on_lookup(dg_loop *loop, int status, const dg_address *address, void *data)
{
    dgt_lookup *out = data;
    (void)loop;
    out->calls++;
    out->status = status;
    out->had_address = address != NULL;
    out->done_ms = dgt_now_ms();
    if (address)
        out->address = *address;
    else
        memset(&out->address, 0, sizeof(out->address));
}

void dgt_lookup_start(dg_loop *loop, const char *name, int family, dgt_lookup *out)
{
    memset(out, 0, sizeof(*out));
    int rc = dg_lookup(loop, name, family, on_lookup, out);
    cr_assert_eq(rc, 0, "dg_lookup(%s, %d): %s", name, family, dg_err_name(rc));
    cr_assert_eq(out->calls, 0, "the callback ran inside dg_lookup");
}

void dgt_lookup_run(dg_loop *loop, const int *counter, int target)
{
    dgt_run_until(loop, counter, target, DGT_WAIT_MS);
}

int dgt_lookup_wait(dg_loop *loop, const char *name, int family, dgt_lookup *out)
{
    dgt_lookup_start(loop, name, family, out);
    dgt_lookup_run(loop, &out->calls, 1);
    dg_loop_run(loop, DG_RUN_NOWAIT);
    cr_assert_eq(out->calls, 1, "lookup of %s: callback ran %d times", name, out->calls);
    cr_assert_eq(out->had_address, out->status == 0,
                 "address must be given exactly on success (status %s)",
                 dg_err_name(out->status));
    return out->status;
}

dg_resolver_stats dgt_resolver_stats(const dg_loop *loop)
{
    dg_resolver_stats st;
    cr_assert_eq(dg_loop_get_resolver_stats(loop, &st), 0);
    return st;
}

static void file_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

char *dgt_file_new(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path = NULL;
    cr_assert_gt(asprintf(&path, "%s/dgring-test-XXXXXX", dir && *dir ? dir : "/tmp"), 0);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp %s", path);
    close(fd);
    file_write(path, text);
    return path;
}

void dgt_file_rewrite(const char *path, const char *text)
{
    char *tmp = NULL;
    cr_assert_gt(asprintf(&tmp, "%s.new", path), 0);
    file_write(tmp, text);
    cr_assert_eq(rename(tmp, path), 0);
    free(tmp);
}

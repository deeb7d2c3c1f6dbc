/* Resource limits: with RLIMIT_NOFILE reached, dg_socket_create and
 * dg_loop_new answer -EMFILE (nothing leaked, nothing changed) and work
 * again once fds are free; 10,000 create/bind/close cycles on one loop
 * leave the process with the fds and the live allocations (counted by a
 * replaced allocator) it had before. Each Criterion test runs in its own
 * process, so lowering the limit there touches no other test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

/* ---- A counting allocator ---------------------------------------------- */

static atomic_long live;

static void *c_malloc(size_t size)
{
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *c_calloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *c_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size);
    if (p && !ptr)
        atomic_fetch_add(&live, 1);
    return p;
}

static void c_free(void *ptr)
{
    if (ptr)
        atomic_fetch_sub(&live, 1);
    free(ptr);
}

static void install(void)
{
    dgt_assert_code(dg_replace_allocator(c_malloc, c_realloc, c_calloc, c_free), 0);
}

TestSuite(limits, .init = install, .timeout = 120);

/* Open fds of this process (the directory's own fd not counted). */
static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* ---- File-descriptor limit --------------------------------------------- */

struct fillers {
    int fds[4096];
    int count;
};

/* Lowers the soft limit to limit, then opens fds until none is left. */
static void fill_fds(struct fillers *f, rlim_t limit)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_geq(rl.rlim_max, limit);
    rl.rlim_cur = limit;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    f->count = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cr_assert_eq(errno, EMFILE);
            break;
        }
        cr_assert_lt(f->count, 4096);
        f->fds[f->count++] = fd;
    }
}

static void free_fds(struct fillers *f, int n)
{
    while (n-- > 0 && f->count > 0)
        close(f->fds[--f->count]);
}

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    (void)sock;
    int *st = data;
    *st = status == 0 ? 1 : status;
}

Test(limits, emfile_from_create_and_loop_new_then_recovery)
{
    dg_loop *loop = dgt_loop_new_sized(16, 2048);
    dg_socket_options o = {.type = DG_UDP4};
    dg_socket *a = NULL, *b = NULL;
    int fds_before = fd_count();
    long live_before = atomic_load(&live);
    struct fillers *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);

    fill_fds(f, (rlim_t)fds_before + 64);

    /* no fd left: creation fails and changes nothing */
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, &a), -EMFILE);
    cr_assert_null(a);
    dgt_assert_code(dg_socket_create(loop, &(dg_socket_options){.type = DG_UDP6}, NULL, NULL, &a),
                    -EMFILE);
    cr_assert_null(a);
    dg_loop *other = NULL;
    dgt_assert_code(dg_loop_new(&other, NULL), -EMFILE);
    cr_assert_null(other);
    cr_assert_eq(atomic_load(&live), live_before, "a failed create leaked memory");
    cr_assert(!dg_loop_alive(loop));

    /* one fd free: one socket; it binds and receives; the next create fails */
    free_fds(f, 1);
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, &a), 0);
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, &b), -EMFILE);
    cr_assert_null(b);
    int bound = 0;
    dgt_assert_code(dg_socket_bind(a, 0, "127.0.0.1", on_bound, &bound), 0);
    dgt_run_until(loop, &bound, 1, DGT_WAIT_MS);
    cr_assert_eq(bound, 1, "bind: %s", dg_err_name(bound));

    /* fds back: everything works again */
    free_fds(f, f->count);
    dgt_assert_code(dg_socket_create(loop, &o, NULL, NULL, &b), 0);
    dgt_assert_code(dg_loop_new(&other, NULL), 0);
    dgt_assert_code(dg_loop_close(other), 0);
    dgt_close_socket(loop, a);
    dgt_close_socket(loop, b);
    cr_assert_eq(fd_count(), fds_before);
    cr_assert_eq(atomic_load(&live), live_before);
    dgt_loop_finish(loop);
    cr_assert_eq(atomic_load(&live), 0);
    free(f);
}

/* Every fd a new loop opens (ring, eventfd, ...) failing in turn. */
Test(limits, loop_new_with_each_fd_count_short)
{
    int fds_before = fd_count();
    struct fillers *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    /* how many fds one loop takes */
    dg_loop *loop = NULL;
    dgt_assert_code(dg_loop_new(&loop, NULL), 0);
    int per_loop = fd_count() - fds_before;
    dgt_assert_code(dg_loop_close(loop), 0);
    cr_assert_gt(per_loop, 0);

    fill_fds(f, (rlim_t)fds_before + 64);
    for (int free_now = 0; free_now < per_loop; free_now++) {
        free_fds(f, free_now);
        loop = NULL;
        dgt_assert_code_fmt(dg_loop_new(&loop, NULL), -EMFILE, "with %d fds free", free_now);
        cr_assert_null(loop);
        cr_assert_eq(atomic_load(&live), 0);
        /* take them back */
        for (int i = 0; i < free_now; i++) {
            int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            cr_assert_geq(fd, 0);
            f->fds[f->count++] = fd;
        }
    }
    free_fds(f, per_loop);
    dgt_assert_code(dg_loop_new(&loop, NULL), 0);
    dgt_assert_code(dg_loop_close(loop), 0);
    free_fds(f, f->count);
    cr_assert_eq(fd_count(), fds_before);
    cr_assert_eq(atomic_load(&live), 0);
    free(f);
}

/* ---- 10,000 cycles ------------------------------------------------------- */

#define CYCLES 10000
#define BATCH 50

struct cycle_ctx {
    int listening;
    int closed;
};

static void cy_listening(dg_socket *s, void *data)
{
    (void)s;
    ((struct cycle_ctx *)data)->listening++;
}

static void cy_close(dg_socket *s, void *data)
{
    (void)s;
    ((struct cycle_ctx *)data)->closed++;
}

static const dg_socket_handlers cy_handlers = {
    .on_listening = cy_listening,
    .on_close = cy_close,
};

static void cycle_batch(dg_loop *loop, struct cycle_ctx *c, int n, dg_socket_type type)
{
    dg_socket *s[BATCH];
    dg_socket_options o = {.type = type};
    int listening = c->listening, closed = c->closed;
    for (int i = 0; i < n; i++) {
        dgt_assert_code(dg_socket_create(loop, &o, &cy_handlers, c, &s[i]), 0);
        dgt_assert_code(dg_socket_bind(s[i], 0, dgt_loopback(dgt_family(type)), NULL, NULL), 0);
    }
    dgt_run_until(loop, &c->listening, listening + n, DGT_WAIT_MS);
    for (int i = 0; i < n; i++)
        dgt_assert_code(dg_socket_close(s[i], NULL, NULL), 0);
    dgt_run_until(loop, &c->closed, closed + n, DGT_WAIT_MS);
}

Test(limits, ten_thousand_create_bind_close_cycles_leak_nothing)
{
    int fds_before = fd_count();
    dg_loop *loop = dgt_loop_new_sized(16, 2048);
    struct cycle_ctx c = {0};
    /* the first batch sizes what the loop keeps for later ones */
    cycle_batch(loop, &c, BATCH, DG_UDP4);
    int fds_base = fd_count();
    long live_base = atomic_load(&live);
    for (int done = BATCH; done < CYCLES; done += BATCH)
        cycle_batch(loop, &c, BATCH, DG_UDP4);
    cr_assert_eq(c.listening, CYCLES);
    cr_assert_eq(c.closed, CYCLES);
    cr_assert_eq(fd_count(), fds_base, "fds leaked");
    cr_assert_eq(atomic_load(&live), live_base, "memory leaked: %ld blocks",
                 atomic_load(&live) - live_base);
    dgt_loop_finish(loop);
    cr_assert_eq(fd_count(), fds_before);
    cr_assert_eq(atomic_load(&live), 0);
}

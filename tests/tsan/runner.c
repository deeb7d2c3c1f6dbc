/* The runner behind tests/tsan/criterion/criterion.h (ThreadSanitizer
 * builds only; see that header for why Criterion itself cannot run).
 *
 *   test_x [--filter GLOB]     GLOB matches "suite::name" (fnmatch)
 *
 * Each test runs in a forked child of this single-threaded parent, so a
 * failed assertion, a crash or a TSan report (halt_on_error) ends only that
 * test. A child leaves with exit(), not _exit(), so TSan's exit-time check
 * (exitcode 66 when it reported a race) still runs. Exit status: 0 when
 * every test passed or skipped, 1 otherwise.
 */
#include <criterion/criterion.h>

#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SKIP_STATUS 77
#define TEST_TIMEOUT_S 300

static struct dgt_shim_test *tests;
static bool expect_failed;

void dgt_shim_register(struct dgt_shim_test *test)
{
    test->next = tests;
    tests = test;
}

static void vreport(const char *file, int line, const char *expr, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n  ", file, line, expr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

void dgt_shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, expr, fmt, ap);
    va_end(ap);
    exit(1);
}

void dgt_shim_expect_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, expr, fmt, ap);
    va_end(ap);
    expect_failed = true;
}

void dgt_shim_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "skipped: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(SKIP_STATUS);
}

void dgt_shim_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", level);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int by_name(const void *a, const void *b)
{
    const struct dgt_shim_test *x = *(const struct dgt_shim_test *const *)a;
    const struct dgt_shim_test *y = *(const struct dgt_shim_test *const *)b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

/* Runs one test in a child; returns 0 pass, 1 fail, 2 skip. */
static int run_one(const struct dgt_shim_test *t)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(TEST_TIMEOUT_S);
        t->fn();
        exit(expect_failed ? 1 : 0);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("waitpid");
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS)
        return 2;
    if (WIFSIGNALED(status))
        fprintf(stderr, "  (killed by signal %d)\n", WTERMSIG(status));
    else
        fprintf(stderr, "  (exit status %d)\n", WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    if (argc == 3 && strcmp(argv[1], "--filter") == 0)
        filter = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: %s [--filter GLOB]\n", argv[0]);
        return 2;
    }
    size_t n = 0;
    for (struct dgt_shim_test *t = tests; t; t = t->next)
        n++;
    struct dgt_shim_test **list = calloc(n ? n : 1, sizeof(*list));
    if (!list)
        return 1;
    n = 0;
    for (struct dgt_shim_test *t = tests; t; t = t->next)
        list[n++] = t;
    qsort(list, n, sizeof(*list), by_name);
    int counts[3] = {0, 0, 0};
    static const char *const words[3] = {"PASS", "FAIL", "SKIP"};
    for (size_t i = 0; i < n; i++) {
        char full[512];
        snprintf(full, sizeof(full), "%s::%s", list[i]->suite, list[i]->name);
        if (filter && fnmatch(filter, full, 0) != 0)
            continue;
        fprintf(stderr, "[RUN ] %s\n", full);
        int r = run_one(list[i]);
        counts[r]++;
        fprintf(stderr, "[%s] %s\n", words[r], full);
    }
    fprintf(stderr, "[====] Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n",
            counts[0] + counts[1] + counts[2], counts[0], counts[1], counts[2]);
    free(list);
    return counts[1] ? 1 : 0;
}

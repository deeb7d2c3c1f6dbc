/* A minimal stand-in for <criterion/criterion.h>, used only when the tests
 * are built with ThreadSanitizer (-Db_sanitize=thread).
 *
 * Why: Criterion's runner cannot start under TSan. BoxFort, its sandbox,
 * maps an inheritable arena at a random fixed address between 0x2000'0000'0000
 * and 0x6000'0000'0000, which TSan's x86-64 memory layout mostly reserves,
 * and the workers it spawns crash in libcriterion when it does get one
 * (Criterion issue #274, open since 2018). This header keeps the test
 * sources unchanged: the same Test/TestSuite/cr_* macros, each test run in
 * its own forked child by tests/tsan/runner.c, as Criterion does.
 *
 * Supported: Test, TestSuite (options ignored), cr_assert[_eq|_neq|_lt|
 * _leq|_gt|_geq|_null|_not_null|_fail], cr_expect[...], cr_skip_test,
 * cr_log_info/warn/error. Messages are printf formats given as literals.
 */
#ifndef DGT_TSAN_CRITERION_H
#define DGT_TSAN_CRITERION_H

#include <stddef.h>

struct dgt_shim_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct dgt_shim_test *next;
};

void dgt_shim_register(struct dgt_shim_test *test);
__attribute__((noreturn, format(printf, 4, 5))) void
dgt_shim_fail(const char *file, int line, const char *expr, const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void dgt_shim_expect_fail(const char *file, int line,
                                                                const char *expr,
                                                                const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void dgt_shim_skip(const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void dgt_shim_log(const char *level, const char *fmt, ...);

#define TestSuite(suite, ...) struct dgt_shim_suite_##suite##_unused

#define Test(suite, name, ...)                                                                  \
    static void suite##__##name(void);                                                          \
    static struct dgt_shim_test suite##__##name##_entry = {#suite, #name, suite##__##name,      \
                                                           NULL};                               \
    __attribute__((constructor)) static void suite##__##name##_register(void)                  \
    {                                                                                           \
        dgt_shim_register(&suite##__##name##_entry);                                            \
    }                                                                                           \
    static void suite##__##name(void)

#define cr_assert(cond, ...)                                                                    \
    do {                                                                                        \
        if (!(cond))                                                                            \
            dgt_shim_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                           \
    } while (0)
#define cr_expect(cond, ...)                                                                    \
    do {                                                                                        \
        if (!(cond))                                                                            \
            dgt_shim_expect_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                    \
    } while (0)

#define cr_assert_fail(...) dgt_shim_fail(__FILE__, __LINE__, "fail", " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) cr_expect((a) == (b), __VA_ARGS__)
#define cr_expect_neq(a, b, ...) cr_expect((a) != (b), __VA_ARGS__)
#define cr_expect_null(p, ...) cr_expect((p) == NULL, __VA_ARGS__)
#define cr_expect_not_null(p, ...) cr_expect((p) != NULL, __VA_ARGS__)

#define cr_skip_test(...) dgt_shim_skip(" " __VA_ARGS__)
#define cr_log_info(...) dgt_shim_log("info", " " __VA_ARGS__)
#define cr_log_warn(...) dgt_shim_log("warn", " " __VA_ARGS__)
#define cr_log_error(...) dgt_shim_log("error", " " __VA_ARGS__)

#endif

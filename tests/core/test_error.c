/* Error currency: dg_err_name()/dg_strerror() for every DG_ERR_* code, for
 * errno values, 0 and unknown values; dg_error_format()'s Node-shaped
 * messages, its snprintf-like truncation and argument checks; dg_version()
 * against the DG_VERSION_* macros. No loop, no sockets. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <dgring.h>

TestSuite(error, .timeout = 10);

struct code_entry {
    int value;
    const char *name;
    const char *text;
};

static const struct code_entry all_codes[] = {
#define ENTRY(suffix, value, name, text) {DG_ERR_##suffix, name, text},
    DG_ERROR_MAP(ENTRY)
#undef ENTRY
};

#define CODE_COUNT (sizeof(all_codes) / sizeof(all_codes[0]))

static bool is_dgram_code(int value)
{
    return value <= -10000 && value >= -10999;
}

static bool is_dns_code(int value)
{
    return value <= -11000 && value >= -11999;
}

Test(error, every_code_has_its_name_and_sentence)
{
    size_t dgram = 0;

    for (size_t i = 0; i < CODE_COUNT; i++) {
        const struct code_entry *e = &all_codes[i];
        const char *name = dg_err_name(e->value);
        const char *text = dg_strerror(e->value);

        cr_assert_not_null(name, "dg_err_name(%d) is NULL", e->value);
        cr_assert_not_null(text, "dg_strerror(%d) is NULL", e->value);
        cr_assert_str_eq(name, e->name, "dg_err_name(%d)", e->value);
        cr_assert_str_eq(text, e->text, "dg_strerror(%d)", e->value);
        if (is_dgram_code(e->value)) {
            cr_assert_eq(strncmp(name, "ERR_", 4), 0, "%s does not start with ERR_", name);
            dgram++;
        }
    }
    cr_assert_geq(dgram, 17, "the 17 original DG_ERR_* codes are all in the map");
}

Test(error, codes_are_distinct_and_in_their_ranges)
{
    for (size_t i = 0; i < CODE_COUNT; i++) {
        cr_assert(is_dgram_code(all_codes[i].value) || is_dns_code(all_codes[i].value),
                  "%s = %d is outside -10000..-11999", all_codes[i].name, all_codes[i].value);
        for (size_t j = i + 1; j < CODE_COUNT; j++)
            cr_assert_neq(all_codes[i].value, all_codes[j].value, "%s and %s share a value",
                          all_codes[i].name, all_codes[j].name);
    }
}

Test(error, dgram_codes_are_the_documented_values)
{
    cr_assert_eq(DG_ERR_SOCKET_BAD_PORT, -10001);
    cr_assert_eq(DG_ERR_SOCKET_BAD_TYPE, -10002);
    cr_assert_eq(DG_ERR_SOCKET_ALREADY_BOUND, -10003);
    cr_assert_eq(DG_ERR_SOCKET_DGRAM_NOT_RUNNING, -10006);
    cr_assert_eq(DG_ERR_INVALID_ARG_VALUE, -10009);
    cr_assert_eq(DG_ERR_INVALID_ADDRESS, -10014);
    cr_assert_eq(DG_ERR_LOOP_BUSY, -10015);
    cr_assert_eq(DG_ERR_SEND_QUEUE_FULL, -10016);
    cr_assert_eq(DG_ERR_KERNEL_UNSUPPORTED, -10017);
    cr_assert_str_eq(dg_err_name(DG_ERR_LOOP_BUSY), "ERR_LOOP_BUSY");
    cr_assert_str_eq(dg_err_name(DG_ERR_SOCKET_BAD_PORT), "ERR_SOCKET_BAD_PORT");
}

Test(error, errno_values_are_named_by_their_symbol)
{
    static const struct {
        int code;
        const char *name;
    } errnos[] = {
        {-EADDRINUSE, "EADDRINUSE"},
        {-EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {-ECONNREFUSED, "ECONNREFUSED"},
        {-EMSGSIZE, "EMSGSIZE"},
        {-ECANCELED, "ECANCELED"},
        {-EBADF, "EBADF"},
        {-EINVAL, "EINVAL"},
        {-ENOMEM, "ENOMEM"},
        {-EPERM, "EPERM"},
        {-EACCES, "EACCES"},
        {-EMFILE, "EMFILE"},
        {-ENOBUFS, "ENOBUFS"},
        {-ENETUNREACH, "ENETUNREACH"},
        {-EHOSTUNREACH, "EHOSTUNREACH"},
        {-EBUSY, "EBUSY"},
        {-EAFNOSUPPORT, "EAFNOSUPPORT"},
    };

    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
        const char *text = dg_strerror(errnos[i].code);

        cr_assert_str_eq(dg_err_name(errnos[i].code), errnos[i].name);
        cr_assert_not_null(text);
        cr_assert_gt(strlen(text), 0, "dg_strerror(-%s) is empty", errnos[i].name);
    }
}

Test(error, zero_is_ok)
{
    cr_assert_str_eq(dg_err_name(0), "OK");
    cr_assert_not_null(dg_strerror(0));
}

Test(error, unknown_values_are_unknown)
{
    static const int unknown[] = {1,      12345,  -10000,  -10999, -11000,
                                  -11999, -99999, INT_MIN, INT_MAX};

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        const char *text = dg_strerror(unknown[i]);

        for (size_t j = 0; j < CODE_COUNT; j++)
            cr_assert_neq(all_codes[j].value, unknown[i], "pick another unknown value");

        cr_assert_str_eq(dg_err_name(unknown[i]), "UNKNOWN", "dg_err_name(%d)", unknown[i]);
        cr_assert_not_null(text, "dg_strerror(%d) is NULL", unknown[i]);
    }
}

/* The user's range (error.h): every code from DG_ERR_LOOKUP_USER_FIRST
 * down to _LAST has one name and sentence, and its neighbours are not in
 * it; no dgring code is in it. */
Test(error, the_lookup_users_range)
{
    static const int inside[] = {DG_ERR_LOOKUP_USER_FIRST, DG_ERR_LOOKUP_USER_FIRST - 1,
                                 -25000, DG_ERR_LOOKUP_USER_LAST};
    static const int outside[] = {DG_ERR_LOOKUP_USER_FIRST + 1, DG_ERR_LOOKUP_USER_LAST - 1};

    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
        cr_assert_str_eq(dg_err_name(inside[i]), "ERR_LOOKUP_USER", "dg_err_name(%d)", inside[i]);
        cr_assert_str_eq(dg_strerror(inside[i]), "An error of the socket's lookup function");
    }
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
        cr_assert_str_eq(dg_err_name(outside[i]), "UNKNOWN", "dg_err_name(%d)", outside[i]);
    for (size_t j = 0; j < CODE_COUNT; j++)
        cr_assert(all_codes[j].value > DG_ERR_LOOKUP_USER_FIRST ||
                  all_codes[j].value < DG_ERR_LOOKUP_USER_LAST, "%s", all_codes[j].name);
}

static void expect_format(int code, const char *syscall, const char *address, int port,
                          const char *expected)
{
    dg_error err;
    char buf[256];
    int n;

    memset(&err, 0, sizeof(err));
    err.code = code;
    err.syscall = syscall;
    if (address)
        snprintf(err.address, sizeof(err.address), "%s", address);
    err.port = port;
    memset(buf, 'x', sizeof(buf));
    n = dg_error_format(&err, buf, sizeof(buf));
    cr_assert_eq(n, (int)strlen(expected), "returned %d for \"%s\"", n, expected);
    cr_assert_str_eq(buf, expected);
}

Test(error, format_with_address_and_port)
{
    expect_format(-EADDRINUSE, "bind", "0.0.0.0", 41234, "bind EADDRINUSE 0.0.0.0:41234");
    expect_format(-EMSGSIZE, "send", "127.0.0.1", 9, "send EMSGSIZE 127.0.0.1:9");
}

Test(error, format_port_zero_has_no_port)
{
    expect_format(-EADDRNOTAVAIL, "bind", "1.1.1.1", 0, "bind EADDRNOTAVAIL 1.1.1.1");
}

Test(error, format_without_address)
{
    expect_format(-ECONNREFUSED, "recvmsg", NULL, 0, "recvmsg ECONNREFUSED");
    expect_format(-ECONNREFUSED, "recvmsg", "", 0, "recvmsg ECONNREFUSED");
}

Test(error, format_dgring_code_is_its_sentence)
{
    expect_format(DG_ERR_SOCKET_BAD_PORT, NULL, NULL, 0, "Port should be > 0 and < 65536");
    expect_format(DG_ERR_SOCKET_DGRAM_NOT_RUNNING, NULL, NULL, 0, "Not running");
}

Test(error, format_buffer_size_error_is_nodes_message)
{
    dg_error err;
    char buf[256];

    memset(&err, 0, sizeof(err));
    err.code = DG_ERR_SOCKET_BUFFER_SIZE;
    err.syscall = "uv_recv_buffer_size";
    err.system_code = -EBADF;
    cr_assert_gt(dg_error_format(&err, buf, sizeof(buf)), 0);
    cr_assert_str_eq(
        buf, "Could not get or set buffer size: uv_recv_buffer_size returned EBADF (bad file "
             "descriptor)");
}

Test(error, format_truncates_like_snprintf)
{
    static const char full[] = "bind EADDRINUSE 0.0.0.0:41234";
    const int want = (int)strlen(full);
    dg_error err;
    char buf[64];

    memset(&err, 0, sizeof(err));
    err.code = -EADDRINUSE;
    err.syscall = "bind";
    strcpy(err.address, "0.0.0.0");
    err.port = 41234;

    /* Short buffer: NUL-terminated prefix, returns the length it wanted. */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(dg_error_format(&err, buf, 10), want);
    cr_assert_str_eq(buf, "bind EADD");
    cr_assert_eq(buf[10], 'x', "wrote past len");

    /* One byte short of fitting. */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(dg_error_format(&err, buf, (size_t)want), want);
    cr_assert_eq(strlen(buf), (size_t)want - 1);
    cr_assert_eq(strncmp(buf, full, (size_t)want - 1), 0);

    /* Exact fit. */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(dg_error_format(&err, buf, (size_t)want + 1), want);
    cr_assert_str_eq(buf, full);

    /* len 1: only the NUL. */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(dg_error_format(&err, buf, 1), want);
    cr_assert_eq(buf[0], '\0');
    cr_assert_eq(buf[1], 'x');

    /* len 0: nothing written at all. */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(dg_error_format(&err, buf, 0), want);
    cr_assert_eq(buf[0], 'x');
}

Test(error, format_rejects_null_arguments)
{
    dg_error err;
    char buf[32];

    memset(&err, 0, sizeof(err));
    err.code = -EINVAL;
    err.syscall = "send";
    cr_assert_eq(dg_error_format(NULL, buf, sizeof(buf)), DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_error_format(&err, NULL, sizeof(buf)), DG_ERR_INVALID_ARG_VALUE);
}

Test(error, version_matches_macros)
{
    char want[32];
    const char *text = dg_version_string();

    cr_assert_eq(dg_version(), ((unsigned)DG_VERSION_MAJOR << 16) |
                                   ((unsigned)DG_VERSION_MINOR << 8) | (unsigned)DG_VERSION_PATCH);
    snprintf(want, sizeof(want), "%d.%d.%d", DG_VERSION_MAJOR, DG_VERSION_MINOR, DG_VERSION_PATCH);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, want);
    cr_assert_eq(dg_version_string(), text, "the version string is not static storage");
}

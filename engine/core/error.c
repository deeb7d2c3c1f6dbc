/* Error names and sentences: one table (DG_ERROR_MAP) for dgring's codes,
 * glibc's own tables for errno values. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

struct error_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct error_entry error_table[] = {
#define DG__ERROR_ROW(suffix, value, name, text) {(value), (name), (text)},
    DG_ERROR_MAP(DG__ERROR_ROW)
#undef DG__ERROR_ROW
};

static const struct error_entry *find_entry(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return &error_table[i];
    return NULL;
}

static bool is_user_code(int code)
{
    return code <= DG_ERR_LOOKUP_USER_FIRST && code >= DG_ERR_LOOKUP_USER_LAST;
}

DG_EXPORT const char *dg_err_name(int code)
{
    if (code == 0)
        return "OK";
    const struct error_entry *e = find_entry(code);
    if (e)
        return e->name;
    if (is_user_code(code))
        return "ERR_LOOKUP_USER";
    if (code < 0 && code > -4096) {
        const char *name = strerrorname_np(-code);
        if (name)
            return name;
    }
    return "UNKNOWN";
}

DG_EXPORT const char *dg_strerror(int code)
{
    if (code == 0)
        return "Success";
    const struct error_entry *e = find_entry(code);
    if (e)
        return e->text;
    if (is_user_code(code))
        return "An error of the socket's lookup function";
    if (code < 0 && code > -4096) {
        const char *text = strerrordesc_np(-code);
        if (text)
            return text;
    }
    return "Unknown error";
}

DG_EXPORT int dg_error_format(const dg_error *err, char *buf, size_t len)
{
    if (!err || (!buf && len > 0))
        return DG_ERR_INVALID_ARG_VALUE;
    const char *name = dg_err_name(err->code);
    int n;
    if (err->code == DG_ERR_SOCKET_BUFFER_SIZE && err->syscall) {
        /* Node: "...: uv_recv_buffer_size returned EBADF (bad file descriptor)" */
        char text[128];
        snprintf(text, sizeof(text), "%s", dg_strerror(err->system_code));
        if (text[0] >= 'A' && text[0] <= 'Z')
            text[0] = (char)(text[0] - 'A' + 'a');
        n = snprintf(buf, len, "%s: %s returned %s (%s)", dg_strerror(err->code), err->syscall,
                     dg_err_name(err->system_code), text);
    } else if (!err->syscall) /* dgring's own errors read as Node's messages do */
        n = snprintf(buf, len, "%s", dg_strerror(err->code));
    else if (err->address[0] == '\0')
        n = snprintf(buf, len, "%s %s", err->syscall, name);
    else if (err->port == 0)
        n = snprintf(buf, len, "%s %s %s", err->syscall, name, err->address);
    else
        n = snprintf(buf, len, "%s %s %s:%d", err->syscall, name, err->address, err->port);
    return n;
}

DG_EXPORT unsigned dg_version(void)
{
    return (DG_VERSION_MAJOR << 16) | (DG_VERSION_MINOR << 8) | DG_VERSION_PATCH;
}

#define DG__STR2(x) #x
#define DG__STR(x) DG__STR2(x)

DG_EXPORT const char *dg_version_string(void)
{
    return DG__STR(DG_VERSION_MAJOR) "." DG__STR(DG_VERSION_MINOR) "." DG__STR(DG_VERSION_PATCH);
}

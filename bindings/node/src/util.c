/* Small Node-API helpers: arguments, numbers, strings, exceptions. */
#include <string.h>

#include "addon.h"

bool nd_args_get(napi_env env, napi_callback_info info, nd_args *a, size_t want)
{
    a->argc = ND_MAX_ARGS;
    if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok)
        return false;
    if (a->argc < want) {
        napi_throw_type_error(env, NULL, "dgring: missing arguments");
        return false;
    }
    return true;
}

int32_t nd_int(napi_env env, napi_value v, int32_t fallback)
{
    int32_t out;
    return napi_get_value_int32(env, v, &out) == napi_ok ? out : fallback;
}

double nd_double(napi_env env, napi_value v, double fallback)
{
    double out;
    return napi_get_value_double(env, v, &out) == napi_ok ? out : fallback;
}

bool nd_bool(napi_env env, napi_value v)
{
    bool out = false;
    napi_get_value_bool(env, v, &out);
    return out;
}

/* A string argument copied into buf; *out is NULL for undefined or null.
 * Returns 0, or DG_ERR_INVALID_ADDRESS when the text does not fit (no
 * address or host name is that long), DG_ERR_INVALID_ARG_TYPE otherwise. */
int nd_string(napi_env env, napi_value v, char *buf, size_t len, const char **out)
{
    napi_valuetype type;
    *out = NULL;
    napi_typeof(env, v, &type);
    if (type == napi_undefined || type == napi_null)
        return 0;
    if (type != napi_string)
        return DG_ERR_INVALID_ARG_TYPE;
    size_t n = 0;
    napi_get_value_string_utf8(env, v, NULL, 0, &n);
    if (n >= len)
        return DG_ERR_INVALID_ADDRESS;
    napi_get_value_string_utf8(env, v, buf, len, &n);
    if (strlen(buf) != n)
        return DG_ERR_INVALID_ADDRESS; /* an embedded NUL */
    *out = buf;
    return 0;
}

napi_value nd_number(napi_env env, double n)
{
    napi_value v;
    napi_create_double(env, n, &v);
    return v;
}

napi_value nd_undefined(napi_env env)
{
    napi_value v;
    napi_get_undefined(env, &v);
    return v;
}

/* {address, family, port} as Node's address() returns it. */
napi_value nd_address_object(napi_env env, const dg_address *a)
{
    napi_value obj, v;
    napi_create_object(env, &obj);
    napi_create_string_latin1(env, a->address, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, obj, "address", v);
    napi_create_string_latin1(env, a->family == AF_INET6 ? "IPv6" : "IPv4", NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, obj, "family", v);
    napi_set_named_property(env, obj, "port", nd_number(env, a->port));
    return obj;
}

/* An exception thrown by JS we called from the loop: reported the way Node
 * reports one from an event callback ('uncaughtException', or the end of
 * the process). */
void nd_handle_exception(napi_env env)
{
    bool pending = false;
    napi_value err;
    napi_is_exception_pending(env, &pending);
    if (pending && napi_get_and_clear_last_exception(env, &err) == napi_ok)
        napi_fatal_exception(env, err);
}

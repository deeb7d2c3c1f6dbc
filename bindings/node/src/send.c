/* send(): one datagram from a Buffer, TypedArray or DataView, or from an
 * array of them (one datagram holding them one after the other). dgring
 * copies the bytes before it returns, so JS may reuse them at once.
 *
 * Completions: a send with a JS callback carries its request id (chosen by
 * lib/loop.js, > 0) as its data and reports a ND_REC_SEND record; one
 * without has no callback in dgring either, so its failures go to
 * on_error, which keeps only a failed lookup (socket.c: Node emits that as
 * 'error' and drops every other error of a send without a callback). */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

#define ND_IOV_STACK 16

static void send_done(dg_socket *sock, int status, const dg_error *err, void *data)
{
    nd_socket *s = dg_socket_get_data(sock);
    if (s->env->tearing_down)
        return;
    int32_t obj = status < 0 && err ? nd_tape_error(s->env, err) : -1;
    nd_tape_record(s->env, s, ND_REC_SEND, (int32_t)(uintptr_t)data, status, obj);
}

/* The bytes of a Buffer, TypedArray or DataView; false if v is none. */
static bool view_bytes(napi_env env, napi_value v, void **data, size_t *len)
{
    bool is;
    if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
        napi_typedarray_type type;
        size_t count, offset;
        napi_value ab;
        napi_get_typedarray_info(env, v, &type, &count, data, &ab, &offset);
        static const size_t width[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
        *len = count * ((unsigned)type < sizeof(width) / sizeof(width[0]) ? width[type] : 1);
        return true;
    }
    if (napi_is_dataview(env, v, &is) == napi_ok && is) {
        napi_value ab;
        size_t offset;
        napi_get_dataview_info(env, v, len, data, &ab, &offset);
        return true;
    }
    return false;
}

static int send_list(nd_socket *s, napi_value list, int port, const char *address,
                     dg_send_cb cb, void *id)
{
    napi_env env = s->env->env;
    uint32_t n = 0;
    napi_get_array_length(env, list, &n);
    struct iovec stack[ND_IOV_STACK];
    struct iovec *iov = n <= ND_IOV_STACK ? stack : calloc(n, sizeof(*iov));
    if (!iov)
        return -ENOMEM;
    int ret = 0;
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        napi_value item;
        napi_get_element(env, list, i, &item);
        if (!view_bytes(env, item, &iov[i].iov_base, &iov[i].iov_len))
            ret = DG_ERR_INVALID_ARG_TYPE;
    }
    if (ret == 0)
        ret = dg_socket_sendv(s->dg, iov, (int)n, port, address, cb, id);
    if (iov != stack)
        free(iov);
    return ret;
}

/* send(handle, data, port, address|null, id): 0 or a negative code.
 * id 0 means no callback. */
ND_EXPORT(nd_send)
{
    ND_SOCKET_ARGS(5);
    char text[DG_HOSTSTRLEN];
    const char *address;
    int ret = nd_string(env, a.argv[3], text, sizeof(text), &address);
    if (ret < 0)
        return nd_number(env, ret);
    uint32_t id = (uint32_t)nd_int(env, a.argv[4], 0);
    dg_send_cb cb = id ? send_done : NULL;
    void *tag = (void *)(uintptr_t)id;
    int port = nd_int(env, a.argv[2], 0);
    void *data;
    size_t len;
    bool is_array = false;
    napi_is_array(env, a.argv[1], &is_array);
    if (is_array)
        ret = send_list(s, a.argv[1], port, address, cb, tag);
    else if (view_bytes(env, a.argv[1], &data, &len))
        ret = dg_socket_send(s->dg, data, len, port, address, cb, tag);
    else
        ret = DG_ERR_INVALID_ARG_TYPE;
    if (ret == DG_ERR_SEND_QUEUE_FULL)
        s->env->queue_full = true;
    else if (ret == 0)
        s->env->sent = true;
    nd_env_update(s->env);
    return nd_number(env, ret);
}

/* queue(handle): [bytes, count] of sends whose callbacks have not run. */
ND_EXPORT(nd_queue)
{
    ND_SOCKET_ARGS(1);
    napi_value arr;
    napi_create_array_with_length(env, 2, &arr);
    napi_set_element(env, arr, 0, nd_number(env, (double)dg_socket_send_queue_size(s->dg)));
    napi_set_element(env, arr, 1, nd_number(env, (double)dg_socket_send_queue_count(s->dg)));
    return arr;
}

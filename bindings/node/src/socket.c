/* Socket handles: creation, the event handlers dgring calls, bind,
 * connect, close, ref and unref, addresses. Each binding function returns
 * 0 or dgring's negative code as a number; lib/errors.js turns a code into
 * the Error Node would throw. */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* ---- Events ----------------------------------------------------------- */

static void on_listening(dg_socket *sock, void *data)
{
    (void)sock;
    nd_socket *s = data;
    nd_tape_record(s->env, s, ND_REC_LISTENING, 0, 0, 0);
}

/* Errors for 'error'. A send without a callback fails here too (send.c
 * gives dgring none); Node emits 'error' only when such a send's lookup
 * failed ("getaddrinfo ...") and drops its system errors ("send ..."),
 * cancellations at close included. */
static void on_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    nd_socket *s = data;
    if (s->env->tearing_down || (err->syscall && strcmp(err->syscall, "send") == 0))
        return;
    nd_tape_record(s->env, s, ND_REC_ERROR, nd_tape_error(s->env, err), 0, 0);
}

static void on_connect(dg_socket *sock, void *data)
{
    (void)sock;
    nd_socket *s = data;
    nd_tape_record(s->env, s, ND_REC_CONNECT, 0, -1, 0);
}

static void on_close(dg_socket *sock, void *data)
{
    (void)sock;
    nd_socket *s = data;
    nd_env *e = s->env;
    s->dg = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        e->sockets = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (e->tearing_down) {
        if (s->handle_gone)
            free(s);
        return;
    }
    nd_tape_record(e, s, ND_REC_CLOSE, 0, 0, 0);
}

const dg_socket_handlers nd_handlers = {
    .on_message_batch = nd_on_message_batch,
    .on_listening = on_listening,
    .on_close = on_close,
    .on_error = on_error,
    .on_connect = on_connect,
};

/* After the close record reached JS: the handle may be collected now, and
 * the nd_socket goes with it (handle_finalize). Idempotent. */
void nd_socket_closed(nd_socket *s)
{
    napi_env env = s->env->env;
    if (!s->owner_ref)
        return;
    napi_delete_reference(env, s->owner_ref);
    s->owner_ref = NULL;
    napi_async_destroy(env, s->async);
    s->async = NULL;
    uint32_t left;
    if (s->handle_ref)
        napi_reference_unref(env, s->handle_ref, &left);
}

/* ---- Creation --------------------------------------------------------- */

static void handle_finalize(napi_env env, void *data, void *hint)
{
    (void)hint;
    nd_socket *s = data;
    s->handle_gone = true;
    if (s->handle_ref)
        napi_delete_reference(env, s->handle_ref);
    s->handle_ref = NULL;
    if (s->dg)
        dg_socket_close(s->dg, NULL, NULL); /* only at teardown: open handles are held */
    else
        free(s);
}

nd_socket *nd_socket_of(napi_env env, napi_value handle)
{
    void *data = NULL;
    if (napi_unwrap(env, handle, &data) != napi_ok || !data)
        napi_throw_type_error(env, NULL, "dgring: not a socket handle");
    return data;
}

/* The handle object, wrapped, referenced and given its async context. */
static napi_status socket_wrap(napi_env env, nd_socket *s, napi_value owner, napi_value *out)
{
    napi_value handle, name;
    napi_status st = napi_create_object(env, &handle);
    if (st == napi_ok)
        st = napi_wrap(env, handle, s, handle_finalize, NULL, NULL);
    if (st != napi_ok)
        return st;
    napi_create_reference(env, handle, 1, &s->handle_ref);
    napi_create_reference(env, owner, 1, &s->owner_ref);
    napi_create_string_latin1(env, "UDPWRAP", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, handle, name, &s->async);
    *out = handle;
    return napi_ok;
}

static void socket_link(nd_env *e, nd_socket *s)
{
    s->next = e->sockets;
    if (s->next)
        s->next->prev = s;
    e->sockets = s;
}

/* create(owner, type, flags, recvBufferSize, sendBufferSize, hasLookup):
 * a handle, or a negative code. */
ND_EXPORT(nd_create)
{
    nd_args a;
    if (!nd_args_get(env, info, &a, 6))
        return NULL;
    nd_env *e = nd_env_of(env);
    int ret = nd_env_loop(e);
    if (ret < 0)
        return nd_number(env, ret);
    nd_socket *s = calloc(1, sizeof(*s));
    if (!s)
        return nd_number(env, -ENOMEM);
    s->env = e;
    s->has_lookup = nd_bool(env, a.argv[5]);
    dg_socket_options o = {
        .type = (dg_socket_type)nd_int(env, a.argv[1], 0),
        .flags = (unsigned)nd_int(env, a.argv[2], 0),
        .recv_buffer_size = nd_int(env, a.argv[3], 0),
        .send_buffer_size = nd_int(env, a.argv[4], 0),
        .lookup = s->has_lookup ? nd_lookup_bridge : NULL,
        .lookup_data = s,
    };
    ret = dg_socket_create(e->loop, &o, &nd_handlers, s, &s->dg);
    napi_value handle = NULL;
    if (ret == 0 && socket_wrap(env, s, a.argv[0], &handle) != napi_ok)
        ret = -ENOMEM; /* the dgring socket closes below */
    if (ret < 0) {
        if (s->dg)
            dg_socket_close(s->dg, NULL, NULL);
        else
            free(s);
        return nd_number(env, ret);
    }
    socket_link(e, s);
    return handle;
}

/* ---- bind, connect, close -------------------------------------------- */

/* The result of a call that may change what keeps the loop alive. */
static napi_value changed(nd_socket *s, int ret)
{
    nd_env_update(s->env);
    return nd_number(s->env->env, ret);
}

static void connect_done(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    nd_socket *s = data;
    if (status < 0 && !s->env->tearing_down)
        nd_tape_record(s->env, s, ND_REC_CONNECT, status, nd_tape_error(s->env, err), 0);
}

/* bind(handle, port, address|null) and connect(handle, port, address|null).
 * A bind's errors come as 'error' records (no callback), as Node emits them. */
static napi_value port_address_call(napi_env env, napi_callback_info info, bool connect)
{
    ND_SOCKET_ARGS(3);
    char text[DG_HOSTSTRLEN];
    const char *address;
    int ret = nd_string(env, a.argv[2], text, sizeof(text), &address);
    int port = nd_int(env, a.argv[1], 0);
    if (ret == 0)
        ret = connect ? dg_socket_connect(s->dg, port, address, connect_done, s)
                      : dg_socket_bind(s->dg, port, address, NULL, NULL);
    return changed(s, ret);
}

ND_EXPORT(nd_bind)
{
    return port_address_call(env, info, false);
}

ND_EXPORT(nd_connect)
{
    return port_address_call(env, info, true);
}

/* bindFd(handle, fd) */
ND_EXPORT(nd_bind_fd)
{
    ND_SOCKET_ARGS(2);
    dg_bind_options o = {.fd = nd_int(env, a.argv[1], -1)};
    return changed(s, dg_socket_bind_ex(s->dg, &o, NULL, NULL));
}

ND_EXPORT(nd_disconnect)
{
    ND_SOCKET_ARGS(1);
    return nd_number(env, dg_socket_disconnect(s->dg));
}

ND_EXPORT(nd_close)
{
    ND_SOCKET_ARGS(1);
    return changed(s, dg_socket_close(s->dg, NULL, NULL));
}

ND_EXPORT(nd_ref)
{
    ND_SOCKET_ARGS(2);
    if (nd_bool(env, a.argv[1]))
        dg_socket_ref(s->dg);
    else
        dg_socket_unref(s->dg);
    return changed(s, 0);
}

ND_EXPORT(nd_has_ref)
{
    ND_SOCKET_ARGS(1);
    napi_value v;
    napi_get_boolean(env, dg_socket_has_ref(s->dg), &v);
    return v;
}

/* address(handle) / remoteAddress(handle): {address, family, port} or a code. */
ND_EXPORT(nd_address)
{
    ND_SOCKET_ARGS(2);
    dg_address out;
    int ret = nd_bool(env, a.argv[1]) ? dg_socket_remote_address(s->dg, &out)
                                      : dg_socket_address(s->dg, &out);
    return ret < 0 ? nd_number(env, ret) : nd_address_object(env, &out);
}

/* Socket options, multicast membership and buffer sizes: thin calls that
 * return 0 (or the size) or dgring's negative code. */
#include <string.h>

#include "addon.h"

enum nd_option { ND_OPT_BROADCAST, ND_OPT_TTL, ND_OPT_MULTICAST_TTL, ND_OPT_MULTICAST_LOOP };

/* setOption(handle, which, value) */
ND_EXPORT(nd_set_option)
{
    ND_SOCKET_ARGS(3);
    int v = nd_int(env, a.argv[2], 0); /* ToInt32, as Node's Int32Value */
    switch (nd_int(env, a.argv[1], -1)) {
    case ND_OPT_BROADCAST:
        return nd_number(env, dg_socket_set_broadcast(s->dg, v != 0));
    case ND_OPT_TTL:
        return nd_number(env, dg_socket_set_ttl(s->dg, v));
    case ND_OPT_MULTICAST_TTL:
        return nd_number(env, dg_socket_set_multicast_ttl(s->dg, v));
    case ND_OPT_MULTICAST_LOOP:
        return nd_number(env, dg_socket_set_multicast_loopback(s->dg, v != 0));
    default:
        return nd_number(env, DG_ERR_INVALID_ARG_VALUE);
    }
}

/* setMulticastInterface(handle, iface) */
ND_EXPORT(nd_set_multicast_interface)
{
    ND_SOCKET_ARGS(2);
    char text[DG_HOSTSTRLEN];
    const char *iface;
    int ret = nd_string(env, a.argv[1], text, sizeof(text), &iface);
    if (ret == 0)
        ret = dg_socket_set_multicast_interface(s->dg, iface);
    return nd_number(env, ret);
}

enum nd_membership { ND_ADD, ND_DROP, ND_ADD_SOURCE, ND_DROP_SOURCE };

static int membership(dg_socket *dg, int op, const char *source, const char *group,
                      const char *iface)
{
    switch (op) {
    case ND_ADD:
        return dg_socket_add_membership(dg, group, iface);
    case ND_DROP:
        return dg_socket_drop_membership(dg, group, iface);
    case ND_ADD_SOURCE:
        return dg_socket_add_source_specific_membership(dg, source, group, iface);
    case ND_DROP_SOURCE:
        return dg_socket_drop_source_specific_membership(dg, source, group, iface);
    default:
        return DG_ERR_INVALID_ARG_VALUE;
    }
}

/* membership(handle, op, source|null, group, iface|null) */
ND_EXPORT(nd_membership)
{
    ND_SOCKET_ARGS(5);
    char source_text[DG_HOSTSTRLEN], group_text[DG_HOSTSTRLEN], iface_text[DG_HOSTSTRLEN];
    const char *source, *group, *iface;
    int ret = nd_string(env, a.argv[2], source_text, sizeof(source_text), &source);
    if (ret == 0)
        ret = nd_string(env, a.argv[3], group_text, sizeof(group_text), &group);
    if (ret == 0)
        ret = nd_string(env, a.argv[4], iface_text, sizeof(iface_text), &iface);
    if (ret == DG_ERR_INVALID_ADDRESS)
        ret = -EINVAL; /* text too long to be an address: Node's EINVAL */
    if (ret == 0)
        ret = membership(s->dg, nd_int(env, a.argv[1], -1), source, group, iface);
    nd_env_update(s->env); /* joining binds an unbound socket */
    return nd_number(env, ret);
}

/* bufferSize(handle, recv, size): size 0 reads. Returns the size, or
 * [code, syscall, system_code] for ERR_SOCKET_BUFFER_SIZE, or a code. */
ND_EXPORT(nd_buffer_size)
{
    ND_SOCKET_ARGS(3);
    bool recv = nd_bool(env, a.argv[1]);
    long long size = (long long)nd_double(env, a.argv[2], -1);
    dg_error err = {0};
    int ret;
    if (size == 0)
        ret = recv ? dg_socket_get_recv_buffer_size(s->dg, &err)
                   : dg_socket_get_send_buffer_size(s->dg, &err);
    else
        ret = recv ? dg_socket_set_recv_buffer_size(s->dg, size, &err)
                   : dg_socket_set_send_buffer_size(s->dg, size, &err);
    if (ret != DG_ERR_SOCKET_BUFFER_SIZE)
        return nd_number(env, ret);
    napi_value arr, v;
    napi_create_array_with_length(env, 3, &arr);
    napi_set_element(env, arr, 0, nd_number(env, ret));
    napi_create_string_utf8(env, err.syscall ? err.syscall : "", NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, arr, 1, v);
    napi_set_element(env, arr, 2, nd_number(env, err.system_code));
    return arr;
}

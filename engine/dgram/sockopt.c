/* Socket options, buffer sizes and multicast membership.
 *
 * Node's rules, with one deliberate change: every call checks for a
 * closed socket (DG_ERR_SOCKET_DGRAM_NOT_RUNNING), where Node forgets to
 * for setBroadcast/setTTL/setMulticastTTL/setMulticastLoopback. Node's
 * handle has no fd before bind, so options on an unbound socket fail
 * with EBADF; dgring's fd exists from creation but reports the same. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"

static bool is_v4(const dg_socket *s)
{
    return s->type == DG_UDP4;
}

/* Whether Node's handle would have a descriptor: after bind(2), and also
 * after a bind(2) that failed (libuv keeps the fd it made for it, and
 * options apply to it: P8). A bind whose lookup failed made none. */
static bool has_descriptor(const dg_socket *s)
{
    return s->fd_bound || s->bind_tried;
}

/* NOT_RUNNING after close, EBADF before bind. */
static int usable(const dg_socket *s)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    return has_descriptor(s) ? 0 : -EBADF;
}

static int set_int(const dg_socket *s, int level, int name, int value)
{
    return setsockopt(s->fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

DG_EXPORT int dg_socket_set_broadcast(dg_socket *sock, bool on)
{
    int ret = usable(sock);
    return ret < 0 ? ret : set_int(sock, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0);
}

/* A hop limit, [min, 255], as the IPv4 or IPv6 option of the socket's
 * family. */
static int set_hops(dg_socket *s, int value, int min, int v4_name, int v6_name)
{
    int ret = usable(s);
    if (ret < 0)
        return ret;
    if (value < min || value > 255)
        return -EINVAL;
    return is_v4(s) ? set_int(s, IPPROTO_IP, v4_name, value)
                    : set_int(s, IPPROTO_IPV6, v6_name, value);
}

DG_EXPORT int dg_socket_set_ttl(dg_socket *sock, int ttl)
{
    return set_hops(sock, ttl, 1, IP_TTL, IPV6_UNICAST_HOPS);
}

DG_EXPORT int dg_socket_set_multicast_ttl(dg_socket *sock, int ttl)
{
    return set_hops(sock, ttl, 0, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS);
}

DG_EXPORT int dg_socket_set_multicast_loopback(dg_socket *sock, bool on)
{
    int ret = usable(sock);
    if (ret < 0)
        return ret;
    return is_v4(sock) ? set_int(sock, IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0)
                       : set_int(sock, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0);
}

/* "addr%scope" -> address and interface index. An unknown interface name
 * gives index 0 (the default interface), as libuv's parser does. */
static int parse_v6_scoped(const char *text, struct in6_addr *addr, unsigned *index)
{
    char host[DG_ADDRSTRLEN];
    if (strlen(text) >= sizeof(host))
        return -EINVAL;
    snprintf(host, sizeof(host), "%s", text);
    *index = 0;
    char *pct = strchr(host, '%');
    if (pct) {
        *pct++ = '\0';
        char *end;
        unsigned long v = strtoul(pct, &end, 10);
        *index = (*pct && *end == '\0') ? (unsigned)v : if_nametoindex(pct);
    }
    return inet_pton(AF_INET6, host, addr) == 1 ? 0 : -EINVAL;
}

DG_EXPORT int dg_socket_set_multicast_interface(dg_socket *sock, const char *iface)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (!iface)
        return DG_ERR_INVALID_ARG_TYPE;
    int ret = usable(sock);
    if (ret < 0)
        return ret;
    /* libuv's reading, which Node's is: an IPv4 address sets IP_MULTICAST_IF,
     * an IPv6 one (its scope naming the interface) IPV6_MULTICAST_IF,
     * whatever the socket's family; the kernel answers for the mismatch
     * (ENOPROTOOPT for IPv6 on udp4; a udp6 socket takes an IPv4 interface
     * for its IPv4-mapped traffic). */
    struct in_addr a;
    if (inet_pton(AF_INET, iface, &a) == 1)
        return setsockopt(sock->fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof(a)) < 0 ? -errno : 0;
    struct in6_addr a6;
    unsigned index;
    if (parse_v6_scoped(iface, &a6, &index) < 0)
        return -EINVAL;
    return set_int(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)index);
}

/* ---- Buffer sizes -------------------------------------------------------- */

static int buffer_error(dg_error *err, int system_code, bool recv)
{
    if (err) {
        memset(err, 0, sizeof(*err));
        err->code = DG_ERR_SOCKET_BUFFER_SIZE;
        err->system_code = system_code;
        err->syscall = recv ? "uv_recv_buffer_size" : "uv_send_buffer_size";
    }
    return DG_ERR_SOCKET_BUFFER_SIZE;
}

/* size 0 queries, as libuv's uv_{recv,send}_buffer_size do. */
static int buffer_size(const dg_socket *s, long long size, bool recv, dg_error *err)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (size < 0)
        return DG_ERR_SOCKET_BAD_BUFFER_SIZE;
    if (size > INT_MAX)
        return buffer_error(err, -EINVAL, recv);
    if (!has_descriptor(s))
        return buffer_error(err, -EBADF, recv);
    int name = recv ? SO_RCVBUF : SO_SNDBUF;
    int value = (int)size;
    if (size > 0 && setsockopt(s->fd, SOL_SOCKET, name, &value, sizeof(value)) < 0)
        return buffer_error(err, -errno, recv);
    if (size > 0)
        return 0;
    socklen_t len = sizeof(value);
    if (getsockopt(s->fd, SOL_SOCKET, name, &value, &len) < 0)
        return buffer_error(err, -errno, recv);
    return value;
}

DG_EXPORT int dg_socket_get_recv_buffer_size(const dg_socket *sock, dg_error *err)
{
    return buffer_size(sock, 0, true, err);
}

DG_EXPORT int dg_socket_get_send_buffer_size(const dg_socket *sock, dg_error *err)
{
    return buffer_size(sock, 0, false, err);
}

DG_EXPORT int dg_socket_set_recv_buffer_size(dg_socket *sock, long long size, dg_error *err)
{
    int ret = buffer_size(sock, size, true, err);
    return ret < 0 ? ret : 0;
}

DG_EXPORT int dg_socket_set_send_buffer_size(dg_socket *sock, long long size, dg_error *err)
{
    int ret = buffer_size(sock, size, false, err);
    return ret < 0 ? ret : 0;
}

/* ---- Multicast membership ------------------------------------------------ */

static int interface_index(const char *iface, unsigned *index)
{
    *index = 0;
    if (!iface || !*iface)
        return 0;
    struct in6_addr unused;
    if (strchr(iface, ':'))
        return parse_v6_scoped(iface, &unused, index);
    char *end;
    unsigned long v = strtoul(iface, &end, 10);
    *index = *end == '\0' ? (unsigned)v : if_nametoindex(iface);
    return *index ? 0 : -EINVAL;
}

/* With apply false only parses: 0 or -EINVAL, nothing changes. */
static int membership_v4(dg_socket *s, const char *source, const char *group, const char *iface,
                         bool add, bool apply)
{
    struct in_addr g, i = {.s_addr = htonl(INADDR_ANY)}, src;
    if (inet_pton(AF_INET, group, &g) != 1)
        return -EINVAL;
    if (iface && inet_pton(AF_INET, iface, &i) != 1)
        return -EINVAL;
    if (source && inet_pton(AF_INET, source, &src) != 1)
        return -EINVAL;
    if (!apply)
        return 0;
    int ret;
    if (source) {
        struct ip_mreq_source m = {.imr_multiaddr = g, .imr_interface = i, .imr_sourceaddr = src};
        ret = setsockopt(s->fd, IPPROTO_IP, add ? IP_ADD_SOURCE_MEMBERSHIP : IP_DROP_SOURCE_MEMBERSHIP,
                         &m, sizeof(m));
    } else {
        struct ip_mreq m = {.imr_multiaddr = g, .imr_interface = i};
        ret = setsockopt(s->fd, IPPROTO_IP, add ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                         sizeof(m));
    }
    return ret < 0 ? -errno : 0;
}

static int membership_v6(dg_socket *s, const char *source, const char *group, const char *iface,
                         bool add, bool apply)
{
    struct sockaddr_in6 g = {.sin6_family = AF_INET6}, src = {.sin6_family = AF_INET6};
    unsigned index;
    if (inet_pton(AF_INET6, group, &g.sin6_addr) != 1 || interface_index(iface, &index) < 0)
        return -EINVAL;
    if (source && inet_pton(AF_INET6, source, &src.sin6_addr) != 1)
        return -EINVAL;
    if (!apply)
        return 0;
    int ret;
    if (source) {
        struct group_source_req r = {.gsr_interface = index};
        memcpy(&r.gsr_group, &g, sizeof(g));
        memcpy(&r.gsr_source, &src, sizeof(src));
        ret = setsockopt(s->fd, IPPROTO_IPV6,
                         add ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP, &r, sizeof(r));
    } else {
        struct ipv6_mreq m = {.ipv6mr_multiaddr = g.sin6_addr, .ipv6mr_interface = index};
        ret = setsockopt(s->fd, IPPROTO_IPV6, add ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP,
                         &m, sizeof(m));
    }
    return ret < 0 ? -errno : 0;
}

/* Like libuv, a membership call on an unbound socket binds it first
 * (any address, random port), so it can receive the group at all; but
 * only once its arguments parse, so a call refused with -EINVAL changes
 * nothing. */
static int membership(dg_socket *s, const char *source, const char *group, const char *iface,
                      bool add)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    int (*apply)(dg_socket *, const char *, const char *, const char *, bool, bool) =
        is_v4(s) ? membership_v4 : membership_v6;
    int ret = apply(s, source, group, iface, add, false);
    if (ret < 0)
        return ret;
    if (s->state == DG__UNBOUND && !s->bind_tried)
        dg__socket_implicit_bind(s); /* libuv binds only a handle without fd */
    return apply(s, source, group, iface, add, true);
}

DG_EXPORT int dg_socket_add_membership(dg_socket *sock, const char *group, const char *iface)
{
    if (sock && sock->state < DG__CLOSING && (!group || !*group))
        return DG_ERR_MISSING_ARGS;
    return membership(sock, NULL, group, iface, true);
}

DG_EXPORT int dg_socket_drop_membership(dg_socket *sock, const char *group, const char *iface)
{
    if (sock && sock->state < DG__CLOSING && (!group || !*group))
        return DG_ERR_MISSING_ARGS;
    return membership(sock, NULL, group, iface, false);
}

static int ssm_check(const dg_socket *sock, const char *source, const char *group)
{
    if (sock && sock->state < DG__CLOSING && (!source || !group))
        return DG_ERR_INVALID_ARG_TYPE;
    return 0;
}

DG_EXPORT int dg_socket_add_source_specific_membership(dg_socket *sock, const char *source,
                                                       const char *group, const char *iface)
{
    int ret = ssm_check(sock, source, group);
    return ret < 0 ? ret : membership(sock, source, group, iface, true);
}

DG_EXPORT int dg_socket_drop_source_specific_membership(dg_socket *sock, const char *source,
                                                        const char *group, const char *iface)
{
    int ret = ssm_check(sock, source, group);
    return ret < 0 ? ret : membership(sock, source, group, iface, false);
}

/* Decoding of one multishot recvmsg buffer: the io_uring_recvmsg_out
 * header, the sender's name, control messages and the payload.
 *
 * liburing's io_uring_recvmsg_* helpers trust the header: a controllen
 * larger than the template's control space, or a cmsg_len that is huge or
 * wraps pointer arithmetic, makes them read past the buffer or loop for
 * ever (tests/fuzz/corpus/recvmsg/regression-* and seed-cmsg-len-*). Here
 * every length is checked against what is left before it is used, all
 * arithmetic is on offsets, and headers are copied out with memcpy so the
 * buffer needs no particular alignment. For what the kernel writes the
 * result is the same. */
#include <errno.h>
#include <liburing.h>
#include <netinet/udp.h>
#include <string.h>

#include "recvmsg.h"

/* Reads the control messages in ctl[0, len): SO_RXQ_OVFL and UDP_GRO. A
 * cmsg_len shorter than a header or longer than what is left ends the walk
 * (the kernel never writes either). */
static void read_control(const unsigned char *ctl, size_t len, uint32_t *drops, int *gro_size)
{
    size_t off = 0;
    while (len - off >= sizeof(struct cmsghdr)) {
        struct cmsghdr c;
        memcpy(&c, ctl + off, sizeof(c));
        if (c.cmsg_len < sizeof(struct cmsghdr) || c.cmsg_len > len - off)
            break;
        const unsigned char *data = ctl + off + CMSG_LEN(0);
        if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SO_RXQ_OVFL &&
            c.cmsg_len >= CMSG_LEN(sizeof(*drops)))
            memcpy(drops, data, sizeof(*drops));
        else if (c.cmsg_level == SOL_UDP && c.cmsg_type == UDP_GRO &&
                 c.cmsg_len >= CMSG_LEN(sizeof(*gro_size)))
            memcpy(gro_size, data, sizeof(*gro_size));
        size_t step = CMSG_ALIGN(c.cmsg_len); /* cmsg_len <= len: no wrap */
        if (step > len - off)
            break; /* the last one, without its padding */
        off += step;
    }
}

int dg__recv_decode(const void *buf, int res, const struct msghdr *tmpl,
                    struct dg__recv_view *view)
{
    const unsigned char *b = buf;
    struct io_uring_recvmsg_out out;
    size_t name_space = tmpl->msg_namelen, ctl_space = tmpl->msg_controllen;
    if (res < 0 || (size_t)res < sizeof(out) || (size_t)res - sizeof(out) < name_space ||
        (size_t)res - sizeof(out) - name_space < ctl_space)
        return -EBADMSG;
    memcpy(&out, b, sizeof(out));
    size_t header = sizeof(out) + name_space + ctl_space;

    view->drops = 0;
    int gro_size = 0;
    /* The kernel reports how much of the control space it filled. */
    size_t ctl_len = out.controllen < ctl_space ? out.controllen : ctl_space;
    if (ctl_len > 0)
        read_control(b + sizeof(out) + name_space, ctl_len, &view->drops, &gro_size);

    view->name = (const struct sockaddr *)(const void *)(b + sizeof(out));
    view->namelen = out.namelen < tmpl->msg_namelen ? out.namelen : tmpl->msg_namelen;
    view->payload = b + header;
    view->length = (size_t)res - header;
    /* payloadlen is the datagram's real size (the receive is armed with
     * MSG_TRUNC); never less than what the buffer holds. */
    view->size = out.payloadlen > view->length ? out.payloadlen : view->length;
    view->truncated = out.flags & MSG_TRUNC;
    view->gro_size =
        gro_size > 0 && (size_t)gro_size < view->length ? (size_t)gro_size : 0;
    return 0;
}

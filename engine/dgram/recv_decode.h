/* Decoding of one multishot recvmsg buffer (dgram/recv_decode.c): pure,
 * no socket, no callbacks, so the fuzzer in tests/fuzz/ runs exactly the
 * code the receive path runs. */
#ifndef DGRING_ENGINE_DGRAM_RECV_DECODE_H
#define DGRING_ENGINE_DGRAM_RECV_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Bytes in front of the payload in each receive buffer: the kernel's
 * io_uring_recvmsg_out header, the sender's name, and control space for
 * SO_RXQ_OVFL's drop counter and UDP_GRO's segment size. */
/* The name area is rounded up to 8 so the control messages after it are
 * aligned for struct cmsghdr. */
#define DG__RECV_NAME_LEN ((unsigned)((sizeof(struct sockaddr_in6) + 7u) & ~7u))
#define DG__RECV_CONTROL_LEN ((unsigned)(CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int))))
#define DG__RECV_HEADER_LEN \
    ((unsigned)sizeof(struct io_uring_recvmsg_out) + DG__RECV_NAME_LEN + DG__RECV_CONTROL_LEN)

/* What one buffer holds. Every pointer points inside the buffer given to
 * dg__recv_decode(), and every byte it describes lies within its first
 * res bytes. */
struct dg__recv_view {
    const struct sockaddr *name;  /* the sender's address (buffer offset
                                     sizeof(struct io_uring_recvmsg_out)) */
    socklen_t namelen;            /* at most the template's msg_namelen */
    const unsigned char *payload; /* first payload byte */
    size_t length;                /* payload bytes in the buffer */
    size_t size;                  /* the datagram's real size, >= length */
    bool truncated;               /* the kernel's MSG_TRUNC */
    uint32_t drops;               /* SO_RXQ_OVFL counter, 0 if absent */
    size_t gro_size;              /* UDP_GRO segment size when the payload
                                     holds several datagrams: 0 < gro_size
                                     < length; 0 otherwise */
};

/* Decodes buf, of which the kernel filled res bytes (cqe->res) for a
 * multishot recvmsg armed with the msghdr tmpl (only its msg_namelen and
 * msg_controllen are read). Returns 0, or -EBADMSG if res is negative or
 * shorter than the header the kernel always writes (out is then
 * untouched). Lengths in the buffer's header are distrusted: no field can
 * make it read outside the first res bytes. */
/* Reads the control messages in ctl[0, len): SO_RXQ_OVFL's counter into
 * *drops and UDP_GRO's segment size into *gro_size (recv_decode.c;
 * called only when the kernel wrote control messages). */
void dg__recv_read_control(const unsigned char *ctl, size_t len, uint32_t *drops,
                           int *gro_size);

/* Inline: it runs once per received buffer (perf: out of line it cost
 * about 55 instructions per datagram in calls and spills). */
static inline int dg__recv_decode(const void *buf, int res, const struct msghdr *tmpl,
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
        dg__recv_read_control(b + sizeof(out) + name_space, ctl_len, &view->drops, &gro_size);

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

#endif

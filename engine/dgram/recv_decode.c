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

#include "recv_decode.h"

/* Reads the control messages in ctl[0, len): SO_RXQ_OVFL and UDP_GRO. A
 * cmsg_len shorter than a header or longer than what is left ends the walk
 * (the kernel never writes either). */
void dg__recv_read_control(const unsigned char *ctl, size_t len, uint32_t *drops,
                           int *gro_size)
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

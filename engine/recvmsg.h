/* Decoding of one multishot recvmsg buffer (engine/recvmsg.c): pure, no
 * socket, no callbacks, so the fuzzer in tests/fuzz/ runs exactly the code
 * the receive path runs. */
#ifndef DGRING_ENGINE_RECVMSG_H
#define DGRING_ENGINE_RECVMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
int dg__recv_decode(const void *buf, int res, const struct msghdr *tmpl,
                    struct dg__recv_view *out);

#endif

/* Memcheck annotations for what the kernel reads and writes behind
 * io_uring's back (docs/valgrind.md).
 *
 * Memcheck checks a recvmsg() or sendmsg() system call's buffers, but an
 * io_uring SQE is only memory the kernel reads later: memcheck cannot see
 * a provided buffer being filled or a send's payload being read. With
 * -Dvalgrind=true (scripts/valgrind.sh) these helpers tell it, so it judges
 * a multishot receive and a ring send as it judges the system calls:
 *  - a provided buffer is unaddressable while the kernel owns it (a read
 *    of a datagram after its callback returned is an invalid read);
 *  - on completion, exactly the bytes the kernel wrote become defined: the
 *    io_uring_recvmsg_out header, the source address (as long as the
 *    kernel copied), the control messages (controllen) and the payload;
 *    the rest of the reserved name and control areas is undefined, and the
 *    buffer past the completion's length stays unaddressable;
 *  - a sendmsg SQE's address, payload and control bytes must be defined.
 * Without the option every helper is an empty inline function. */
#ifndef DG_VG_H
#define DG_VG_H

#include <liburing.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef DG_VALGRIND
#include <valgrind/memcheck.h>

/* Whether the kernel fills the provided buffers of br: a buffer ring
 * registered with an io_uring (the epoll backend fills them with system
 * calls memcheck already follows). */
#define DG__VG_RING_FILLS(br) ((br)->registered)

/* The kernel owns the buffer again (after recycling it). */
static inline void dg__vg_buffer_to_kernel(void *buf, size_t size)
{
    VALGRIND_MAKE_MEM_NOACCESS(buf, size);
}

/* A multishot recvmsg completion of res bytes filled buf (size bytes),
 * laid out for mh's name and control lengths. */
static inline void dg__vg_buffer_filled(void *buf, size_t size, int res, const struct msghdr *mh)
{
    unsigned char *b = buf;
    size_t hdr = sizeof(struct io_uring_recvmsg_out);
    size_t len = res > 0 ? (size_t)res : 0;

    if (len > size)
        len = size;
    VALGRIND_MAKE_MEM_NOACCESS(b, size);
    VALGRIND_MAKE_MEM_UNDEFINED(b, len);
    if (len < hdr)
        return;
    VALGRIND_MAKE_MEM_DEFINED(b, hdr);
    const struct io_uring_recvmsg_out *out = buf;
    size_t name = out->namelen < mh->msg_namelen ? out->namelen : mh->msg_namelen;
    size_t control = out->controllen < mh->msg_controllen ? out->controllen : mh->msg_controllen;
    size_t payload_at = hdr + mh->msg_namelen + mh->msg_controllen;
    if (hdr + name <= len)
        VALGRIND_MAKE_MEM_DEFINED(b + hdr, name);
    if (hdr + mh->msg_namelen + control <= len)
        VALGRIND_MAKE_MEM_DEFINED(b + hdr + mh->msg_namelen, control);
    if (payload_at < len)
        VALGRIND_MAKE_MEM_DEFINED(b + payload_at, len - payload_at);
}

/* What memcheck checks for sendmsg(2), for a sendmsg SQE. */
static inline void dg__vg_check_send(const struct msghdr *msg)
{
    if (msg->msg_name)
        VALGRIND_CHECK_MEM_IS_DEFINED(msg->msg_name, msg->msg_namelen);
    for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++)
        VALGRIND_CHECK_MEM_IS_DEFINED(msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
    if (msg->msg_control)
        VALGRIND_CHECK_MEM_IS_DEFINED(msg->msg_control, msg->msg_controllen);
}

#else

#define DG__VG_RING_FILLS(br) ((void)(br), 0)

static inline void dg__vg_buffer_to_kernel(void *buf, size_t size)
{
    (void)buf;
    (void)size;
}

static inline void dg__vg_buffer_filled(void *buf, size_t size, int res, const struct msghdr *mh)
{
    (void)buf;
    (void)size;
    (void)res;
    (void)mh;
}

static inline void dg__vg_check_send(const struct msghdr *msg)
{
    (void)msg;
}

#endif
#endif

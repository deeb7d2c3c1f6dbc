/* Fuzz target: decoding of a multishot recvmsg buffer (dg__recv_decode,
 * engine/dgram/recv_decode.c, which the receive path runs on every completion).
 *
 * Input: byte 0 picks the template and res, bytes 1-2 a template's name and
 * control lengths; the rest is the buffer as the kernel would have filled
 * it: io_uring_recvmsg_out, name, control messages, payload. The buffer is
 * a heap block of exactly res bytes, so any read past res is caught.
 *   byte 0 bit 0: 0 = the engine's template (DG__RECV_NAME_LEN,
 *                 DG__RECV_CONTROL_LEN), 1 = lengths from bytes 1 and 2
 *   byte 0 bit 1: res = -(byte 1) (an error result) instead of the length */
#include <errno.h>
#include <liburing.h>
#include <string.h>

#include "fuzz.h"
#include "engine/core/core.h"
#include "engine/dgram/recv_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size - 3 > (size_t)INT32_MAX)
        return 0;
    struct msghdr tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    if (data[0] & 1) {
        tmpl.msg_namelen = data[1];
        tmpl.msg_controllen = data[2];
    } else {
        tmpl.msg_namelen = DG__RECV_NAME_LEN;
        tmpl.msg_controllen = DG__RECV_CONTROL_LEN;
    }
    int res = (data[0] & 2) ? -(int)data[1] : (int)(size - 3);
    size_t n = size - 3;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    if (n)
        memcpy(buf, data + 3, n);

    struct dg__recv_view v;
    memset(&v, 0x5a, sizeof(v));
    int ret = dg__recv_decode(buf, res, &tmpl, &v);
    size_t header = sizeof(struct io_uring_recvmsg_out) + tmpl.msg_namelen + tmpl.msg_controllen;
    if (res < 0 || (size_t)res < header) {
        FUZZ_CHECK(ret == -EBADMSG);
        free(buf);
        return 0;
    }
    FUZZ_CHECK(ret == 0);
    const unsigned char *end = buf + res;

    /* Name: where the kernel puts it, no longer than its space. */
    FUZZ_CHECK((const unsigned char *)v.name == buf + sizeof(struct io_uring_recvmsg_out));
    FUZZ_CHECK(v.namelen <= tmpl.msg_namelen);
    if (v.namelen > 0) { /* what a user does with msg->addr */
        dg_address a;
        (void)dg_address_from_sockaddr(v.name, v.namelen, &a);
    }

    /* Payload: after the header, up to res, never past it. */
    FUZZ_CHECK(v.payload == buf + header);
    FUZZ_CHECK(v.length == (size_t)(end - v.payload));
    FUZZ_CHECK(v.size >= v.length);
    FUZZ_CHECK(v.gro_size == 0 || v.gro_size < v.length);

    /* Walk the datagrams as deliver() hands them out, touching every byte
     * so a pointer out of bounds is caught. */
    unsigned sum = 0;
    size_t left = v.length, count = 0;
    const unsigned char *p = v.payload;
    size_t seg = v.gro_size ? v.gro_size : v.length;
    do {
        size_t len = left < seg ? left : seg;
        FUZZ_CHECK(p >= v.payload && p + len <= end);
        for (size_t i = 0; i < len; i++)
            sum += p[i];
        p += len;
        left -= len;
        count++;
    } while (left > 0);
    FUZZ_CHECK(p == end);
    FUZZ_CHECK(v.gro_size == 0 || count >= 2);
    /* Keeps the reads from being optimised away. */
    if (sum == 0xffffffffu)
        fprintf(stderr, "%u\n", sum);
    free(buf);
    return 0;
}

/* sockperf's message header; see sockperf.h. */
#include "sockperf.h"

/* Big-endian (network order) integers at any alignment. */
static void put_be(unsigned char *dst, uint64_t value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        dst[i] = (unsigned char)(value >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const unsigned char *src, unsigned bytes)
{
    uint64_t value = 0;

    for (unsigned i = 0; i < bytes; i++)
        value = (value << 8) | src[i];
    return value;
}

void sockperf_header_write(void *dst, const sockperf_header *header)
{
    unsigned char *bytes = dst;

    put_be(bytes, header->seq, 8);
    put_be(bytes + 8, header->flags, 2);
    put_be(bytes + 10, header->length, 4);
}

bool sockperf_header_read(const void *src, size_t size, sockperf_header *out)
{
    const unsigned char *bytes = src;
    sockperf_header header;

    if (size < SOCKPERF_HEADER_SIZE)
        return false;
    header.seq = get_be(bytes, 8);
    header.flags = (uint16_t)get_be(bytes + 8, 2);
    header.length = (uint32_t)get_be(bytes + 10, 4);
    if (header.length < SOCKPERF_HEADER_SIZE || header.length > size)
        return false;
    *out = header;
    return true;
}

sockperf_action sockperf_server_action(const sockperf_header *header)
{
    if (!(header->flags & SOCKPERF_FLAG_CLIENT))
        return SOCKPERF_NOT_CLIENT;
    if (header->flags & SOCKPERF_FLAG_WARMUP)
        return SOCKPERF_WARMUP;
    if (header->flags & SOCKPERF_FLAG_PONG_REQUEST)
        return SOCKPERF_REPLY;
    return SOCKPERF_COUNT_ONLY;
}

void sockperf_make_reply(void *msg)
{
    unsigned char *flags = (unsigned char *)msg + 8;
    uint16_t value = (uint16_t)get_be(flags, 2);

    put_be(flags, value & ~SOCKPERF_FLAG_CLIENT, 2);
}

/* dgblast payloads: patterns, probe headers and replies; see blast.h. */
#include "blast.h"
#include "sockperf.h"

#include <string.h>
#include <sys/random.h>

static const unsigned char seq_magic[4] = {'d', 'g', 'b', '1'};

uint32_t blast_sender_id(void)
{
    uint32_t id;

    /* Without getrandom (it cannot fail for 4 bytes on Linux >= 3.17), the
     * clock still tells two senders apart. */
    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint32_t)tool_now_ns();
    return id;
}

void blast_seq_write(unsigned char *payload, uint32_t sender, uint64_t seq)
{
    memcpy(payload, seq_magic, sizeof(seq_magic));
    for (int i = 0; i < 4; i++)
        payload[4 + i] = (unsigned char)(sender >> (8 * i));
    tool_put_u64le(payload + 8, seq);
}

bool blast_seq_read(const void *payload, size_t length, uint32_t *sender, uint64_t *seq)
{
    const unsigned char *bytes = payload;

    if (length < BLAST_SEQ_HEADER_SIZE || memcmp(bytes, seq_magic, sizeof(seq_magic)) != 0)
        return false;
    *sender = 0;
    for (int i = 0; i < 4; i++)
        *sender |= (uint32_t)bytes[4 + i] << (8 * i);
    *seq = tool_get_u64le(bytes + 8);
    return true;
}

/* xorshift64: a fixed seed, so "random" payloads are the same every run
 * and a capture of one run can be compared with another. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

void blast_fill_pattern(unsigned char *payload, size_t size, size_t from, blast_pattern pattern)
{
    uint64_t state = 0x9e3779b97f4a7c15u;

    for (size_t i = from; i < size; i++) {
        if (pattern == BLAST_PATTERN_SEQ)
            payload[i] = (unsigned char)i;
        else if (pattern == BLAST_PATTERN_RANDOM)
            payload[i] = (unsigned char)(next_random(&state) >> 56);
        else
            payload[i] = 0;
    }
}

bool blast_check_seq_pattern(const unsigned char *payload, size_t size, size_t from)
{
    for (size_t i = from; i < size; i++) {
        if (payload[i] != (unsigned char)i)
            return false;
    }
    return true;
}

size_t blast_probe_header_size(const blast_config *config)
{
    return config->sockperf ? SOCKPERF_HEADER_SIZE : BLAST_NATIVE_PROBE_SIZE;
}

uint64_t blast_probe_first_seq(const blast_config *config)
{
    return config->sockperf ? 1 : 0;
}

void blast_probe_write(const blast_config *config, unsigned char *payload, uint64_t seq,
                       bool want_reply, uint64_t now_ns)
{
    if (config->sockperf) {
        sockperf_header header = {
            .seq = seq,
            .flags = SOCKPERF_FLAG_CLIENT | (want_reply ? SOCKPERF_FLAG_PONG_REQUEST : 0),
            .length = (uint32_t)config->size,
        };
        sockperf_header_write(payload, &header);
        return;
    }
    tool_put_u64le(payload, seq);
    tool_put_u64le(payload + 8, now_ns);
}

bool blast_probe_reply_seq(const blast_config *config, const dg_message *msg, uint64_t *seq)
{
    sockperf_header header;

    if (!config->sockperf) {
        if (msg->length < BLAST_NATIVE_PROBE_SIZE)
            return false;
        *seq = tool_get_u64le(msg->data);
        return true;
    }
    if (!sockperf_header_read(msg->data, msg->length, &header) ||
        (header.flags & SOCKPERF_FLAG_CLIENT))
        return false;
    *seq = header.seq;
    return true;
}

/* dgblast payloads: patterns, probe headers and replies; see blast.h. */
#include "blast.h"
#include "sockperf.h"

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

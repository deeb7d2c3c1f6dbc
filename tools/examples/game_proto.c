/* The dggame protocol and its reliable-ordered channel; see game.h. */
#include "game.h"

#include <string.h>

/* ---- Little-endian fields --------------------------------------------- */

static void put_le(uint8_t *dst, uint64_t value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        dst[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t get_le(const uint8_t *src, unsigned bytes)
{
    uint64_t value = 0;

    for (unsigned i = 0; i < bytes; i++)
        value |= (uint64_t)src[i] << (8 * i);
    return value;
}

void game_put_u32(uint8_t *dst, uint32_t value)
{
    put_le(dst, value, 4);
}

uint32_t game_get_u32(const uint8_t *src)
{
    return (uint32_t)get_le(src, 4);
}

uint32_t game_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (uint32_t)(x >> 32);
}

/* ---- Packets ------------------------------------------------------------- */

/* The body size of each type; 0 for unknown types. RELIABLE's is its
 * fixed part, the message follows. */
static size_t body_size(uint8_t type)
{
    static const size_t sizes[] = {
        [GAME_HELLO] = 4,  [GAME_WELCOME] = 10, [GAME_INPUT] = 6,    [GAME_STATE] = 18,
        [GAME_PING] = 8,   [GAME_PONG] = 8,     [GAME_RELIABLE] = 5, [GAME_ACK] = 0,
        [GAME_TICK] = 14,
    };

    return type < sizeof(sizes) / sizeof(sizes[0]) ? sizes[type] : 0;
}

static bool known_type(uint8_t type)
{
    return type >= GAME_HELLO && type <= GAME_TICK;
}

/* The body of packet at body; returns its size. */
static size_t encode_body(const game_packet *p, uint8_t *body)
{
    switch (p->type) {
    case GAME_HELLO:
        put_le(body, p->a, 4);
        break;
    case GAME_WELCOME:
        put_le(body, p->a, 4);
        put_le(body + 4, p->b, 4);
        put_le(body + 8, p->count, 2);
        break;
    case GAME_INPUT:
        put_le(body, p->a, 4);
        body[4] = (uint8_t)p->dx;
        body[5] = (uint8_t)p->dy;
        break;
    case GAME_STATE:
        put_le(body, p->a, 4);
        put_le(body + 4, p->b, 4);
        put_le(body + 8, (uint32_t)p->x, 4);
        put_le(body + 12, (uint32_t)p->y, 4);
        put_le(body + 16, p->count, 2);
        break;
    case GAME_PING:
    case GAME_PONG:
        put_le(body, p->time_ns, 8);
        break;
    case GAME_RELIABLE:
        put_le(body, p->a, 4);
        body[4] = p->length;
        memcpy(body + 5, p->data, p->length);
        return 5 + p->length;
    case GAME_TICK:
        put_le(body, p->a, 4);
        put_le(body + 4, p->count, 2);
        put_le(body + 6, p->time_ns, 8);
        break;
    }
    return body_size(p->type);
}

size_t game_encode(const game_packet *packet, uint8_t *buf)
{
    memset(buf, 0, GAME_HEADER_SIZE);
    buf[0] = packet->type;
    put_le(buf + 4, packet->ack, 4);
    return GAME_HEADER_SIZE + encode_body(packet, buf + GAME_HEADER_SIZE);
}

static void decode_body(const uint8_t *body, game_packet *p)
{
    switch (p->type) {
    case GAME_HELLO:
        p->a = (uint32_t)get_le(body, 4);
        break;
    case GAME_WELCOME:
        p->a = (uint32_t)get_le(body, 4);
        p->b = (uint32_t)get_le(body + 4, 4);
        p->count = (uint16_t)get_le(body + 8, 2);
        break;
    case GAME_INPUT:
        p->a = (uint32_t)get_le(body, 4);
        p->dx = (int8_t)body[4];
        p->dy = (int8_t)body[5];
        break;
    case GAME_STATE:
        p->a = (uint32_t)get_le(body, 4);
        p->b = (uint32_t)get_le(body + 4, 4);
        p->x = (int32_t)(uint32_t)get_le(body + 8, 4);
        p->y = (int32_t)(uint32_t)get_le(body + 12, 4);
        p->count = (uint16_t)get_le(body + 16, 2);
        break;
    case GAME_PING:
    case GAME_PONG:
        p->time_ns = get_le(body, 8);
        break;
    case GAME_RELIABLE:
        p->a = (uint32_t)get_le(body, 4);
        p->length = body[4];
        p->data = body + 5;
        break;
    case GAME_TICK:
        p->a = (uint32_t)get_le(body, 4);
        p->count = (uint16_t)get_le(body + 4, 2);
        p->time_ns = get_le(body + 6, 8);
        break;
    }
}

bool game_decode(const void *data, size_t length, game_packet *out)
{
    const uint8_t *bytes = data;

    memset(out, 0, sizeof(*out));
    if (length < GAME_HEADER_SIZE || !known_type(bytes[0]))
        return false;
    out->type = bytes[0];
    out->ack = (uint32_t)get_le(bytes + 4, 4);
    if (length < GAME_HEADER_SIZE + body_size(out->type))
        return false;
    decode_body(bytes + GAME_HEADER_SIZE, out);
    if (out->type == GAME_RELIABLE &&
        (out->length > GAME_MAX_MESSAGE ||
         length < GAME_HEADER_SIZE + body_size(GAME_RELIABLE) + out->length))
        return false;
    return true;
}

/* ---- The reliable channel ------------------------------------------------ */

/* Sequence numbers wrap at 2^32: compare them by their distance. */
static bool seq_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static void transmit_slot(const game_channel *channel, const game_outgoing *slot,
                          game_transmit_fn transmit, void *ctx)
{
    game_packet packet = {
        .type = GAME_RELIABLE,
        .ack = channel->expected,
        .a = slot->seq,
        .length = slot->length,
        .data = slot->data,
    };

    transmit(&packet, ctx);
}

bool game_channel_send(game_channel *channel, const void *data, uint8_t length, uint64_t now_ms,
                       game_transmit_fn transmit, void *ctx)
{
    game_outgoing *slot = &channel->out[channel->next_seq % GAME_WINDOW];

    if (length > GAME_MAX_MESSAGE || channel->next_seq - channel->acked >= GAME_WINDOW)
        return false;
    slot->seq = channel->next_seq++;
    slot->length = length;
    memcpy(slot->data, data, length);
    slot->sent_ms = now_ms;
    slot->used = true;
    channel->queued++;
    transmit_slot(channel, slot, transmit, ctx);
    return true;
}

void game_channel_ack(game_channel *channel, uint32_t ack)
{
    /* An ack beyond what was sent is bogus; one below is old news. */
    if (seq_before(channel->next_seq, ack) || !seq_before(channel->acked, ack))
        return;
    while (channel->acked != ack) {
        channel->out[channel->acked % GAME_WINDOW].used = false;
        channel->acked++;
    }
}

void game_channel_receive(game_channel *channel, const game_packet *packet,
                          game_deliver_fn deliver, void *ctx)
{
    uint32_t seq = packet->a;
    game_incoming *slot = &channel->in[seq % GAME_WINDOW];

    if (seq_before(seq, channel->expected)) {
        channel->duplicates++;
        return;
    }
    if (seq - channel->expected >= GAME_WINDOW)
        return; /* beyond the window: the sender cannot have sent it yet */
    if (slot->used) { /* an early arrival that came twice */
        channel->duplicates++;
        return;
    }
    if (seq != channel->expected)
        channel->early++;
    slot->length = packet->length;
    memcpy(slot->data, packet->data, packet->length);
    slot->used = true;
    for (slot = &channel->in[channel->expected % GAME_WINDOW]; slot->used;
         slot = &channel->in[channel->expected % GAME_WINDOW]) {
        slot->used = false;
        channel->expected++;
        channel->delivered++;
        deliver(slot->data, slot->length, ctx);
    }
}

void game_channel_retransmit(game_channel *channel, uint64_t now_ms, uint64_t rto_ms,
                             game_transmit_fn transmit, void *ctx)
{
    for (uint32_t seq = channel->acked; seq != channel->next_seq; seq++) {
        game_outgoing *slot = &channel->out[seq % GAME_WINDOW];
        if (!slot->used || now_ms - slot->sent_ms < rto_ms)
            continue;
        slot->sent_ms = now_ms;
        channel->retransmits++;
        transmit_slot(channel, slot, transmit, ctx);
    }
}

bool game_channel_idle(const game_channel *channel)
{
    return channel->acked == channel->next_seq;
}

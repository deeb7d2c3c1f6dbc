/* Fuzz target: the dggame protocol (tools/examples/game_proto.c), the
 * parser every datagram a game server or bot receives goes through, and
 * the reliable channel that takes what it decodes.
 *
 * Input: a sequence of datagrams, each a length byte then that many bytes
 * (the last one takes what is left). Each is copied to a heap block of
 * exactly its size (a read past it is caught) and decoded:
 *   - decoding fails or gives a known type; a RELIABLE message lies
 *     inside the datagram and holds at most GAME_MAX_MESSAGE bytes;
 *   - a decoded packet encodes to at most GAME_MAX_PACKET bytes, and
 *     that encoding decodes to the same fields;
 *   - RELIABLE packets go to a receiving channel, every packet's ack to a
 *     sending channel that queued a few messages: the receiver delivers
 *     in sequence order only, never more than the window ahead, and the
 *     sender's acknowledged mark never passes what it sent. */
#include <string.h>

#include "fuzz.h"
#include "tools/examples/game.h"

typedef struct delivery {
    uint32_t delivered;
} delivery;

static void on_deliver(const uint8_t *data, uint8_t length, void *ctx)
{
    delivery *d = ctx;

    FUZZ_CHECK(length <= GAME_MAX_MESSAGE);
    FUZZ_CHECK(length == 0 || data != NULL);
    d->delivered++;
}

static void on_transmit(const game_packet *packet, void *ctx)
{
    uint8_t buf[GAME_MAX_PACKET];

    (void)ctx;
    FUZZ_CHECK(game_encode(packet, buf) <= GAME_MAX_PACKET);
}

static void same_packet(const game_packet *a, const game_packet *b)
{
    FUZZ_CHECK(a->type == b->type && a->ack == b->ack && a->a == b->a);
    FUZZ_CHECK(a->b == b->b && a->x == b->x && a->y == b->y);
    FUZZ_CHECK(a->dx == b->dx && a->dy == b->dy && a->count == b->count);
    FUZZ_CHECK(a->time_ns == b->time_ns && a->length == b->length);
    if (a->type == GAME_RELIABLE)
        FUZZ_CHECK(memcmp(a->data, b->data, a->length) == 0);
}

/* Decodes one datagram, checks it, feeds the channels. */
static void one_datagram(const uint8_t *bytes, size_t size, game_channel *rx, game_channel *tx,
                         delivery *d)
{
    game_packet packet, again;
    uint8_t buf[GAME_MAX_PACKET];

    if (!game_decode(bytes, size, &packet))
        return;
    FUZZ_CHECK(packet.type >= GAME_HELLO && packet.type <= GAME_TICK);
    if (packet.type == GAME_RELIABLE) {
        FUZZ_CHECK(packet.length <= GAME_MAX_MESSAGE);
        FUZZ_CHECK(packet.data + packet.length <= bytes + size);
    }
    size_t n = game_encode(&packet, buf);
    FUZZ_CHECK(n <= GAME_MAX_PACKET && n <= size);
    FUZZ_CHECK(game_decode(buf, n, &again));
    same_packet(&packet, &again);

    uint32_t expected = rx->expected;
    if (packet.type == GAME_RELIABLE)
        game_channel_receive(rx, &packet, on_deliver, d);
    FUZZ_CHECK(rx->expected - expected <= GAME_WINDOW);
    game_channel_ack(tx, packet.ack);
    FUZZ_CHECK(tx->next_seq - tx->acked <= GAME_WINDOW);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static game_channel rx, tx;
    delivery d = {0};
    const uint8_t message[4] = {GAME_CHAT, 0, 0, 0};

    memset(&rx, 0, sizeof(rx));
    memset(&tx, 0, sizeof(tx));
    for (int i = 0; i < 8; i++)
        FUZZ_CHECK(game_channel_send(&tx, message, sizeof(message), 0, on_transmit, NULL));
    size_t n;
    for (uint8_t *copy; (copy = fuzz_next_datagram(&data, &size, &n)) != NULL; free(copy))
        one_datagram(copy, n, &rx, &tx, &d);
    /* Delivered exactly the sequence numbers below expected, in order. */
    FUZZ_CHECK(d.delivered == rx.expected && rx.delivered == d.delivered);
    game_channel_retransmit(&tx, 1000, 1, on_transmit, NULL);
    FUZZ_CHECK(tx.acked <= tx.next_seq && tx.next_seq == 8);
    return 0;
}

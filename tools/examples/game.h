/* The dggame protocol, shared by the server (dggame.c) and the bots
 * (dgbots.c): packet layouts and a small reliable-ordered channel on top
 * of datagrams.
 *
 * Every packet starts with an 8-byte header, then its body; integers are
 * little-endian:
 *
 *   0  u8   type (GAME_*)
 *   1  u8   0
 *   2  u16  0
 *   4  u32  ack: the next reliable sequence number the sender expects
 *           from the receiver (every packet carries it: acks ride along)
 *
 *   HELLO    c->s  u32 nonce             join (repeated until WELCOME)
 *   WELCOME  s->c  u32 player, u32 nonce, u16 tick rate
 *   INPUT    c->s  u32 input seq, i8 dx, i8 dy     unreliable, latest wins
 *   STATE    s->c  u32 tick, u32 last input seq, i32 x, i32 y, u16 players
 *   PING     c->s  u64 client time (ns)  answered at once
 *   PONG     s->c  u64 the same time     round trip = now - time
 *   RELIABLE both  u32 seq, u8 length, then length bytes
 *   ACK      both  nothing: only the header's ack
 *   TICK     s->c  u32 tick, u16 players, u64 server clock (us)
 *                  the same bytes to every player each tick (one
 *                  send-to-many), so its header ack is 0: ignore it
 *
 * The reliable channel: each side numbers its reliable messages from 0,
 * keeps them until the peer's ack passes them, and sends them again when
 * no ack came within the retransmission timeout. The receiver delivers in
 * sequence order only: a message that arrives early waits in a window of
 * GAME_WINDOW slots for the ones before it; one already delivered is a
 * duplicate and only re-acknowledged.
 */
#ifndef DGRING_EXAMPLES_GAME_H
#define DGRING_EXAMPLES_GAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum game_packet_type {
    GAME_HELLO = 1,
    GAME_WELCOME = 2,
    GAME_INPUT = 3,
    GAME_STATE = 4,
    GAME_PING = 5,
    GAME_PONG = 6,
    GAME_RELIABLE = 7,
    GAME_ACK = 8,
    GAME_TICK = 9,
};

/* What the reliable messages say (their first byte). */
enum game_message_kind {
    GAME_EVENT = 1,    /* s->c: u32 event number, counted per player from 0 */
    GAME_CHAT = 2,     /* c->s: u32 chat number, counted per player from 0 */
    GAME_DONE = 3,     /* c->s: u32 chats sent; no more chats follow */
    GAME_FAREWELL = 4, /* s->c: u32 events sent, u32 chats received in
                          order; after DONE, so after every chat */
};

#define GAME_HEADER_SIZE 8
#define GAME_MAX_PACKET 64
#define GAME_MAX_MESSAGE 16 /* reliable payload bytes */
#define GAME_WINDOW 64      /* reliable messages in flight per direction */

/* A decoded packet. Only the fields of its type are set. */
typedef struct game_packet {
    uint8_t type;
    uint32_t ack;
    uint32_t a;          /* nonce, player, input seq, tick (STATE, TICK), reliable seq */
    uint32_t b;          /* nonce (WELCOME), last input seq (STATE) */
    int32_t x, y;        /* STATE */
    int8_t dx, dy;       /* INPUT */
    uint16_t count;      /* WELCOME tick rate, STATE and TICK players */
    uint64_t time_ns;    /* PING, PONG; TICK: the server clock in us */
    uint8_t length;      /* RELIABLE */
    const uint8_t *data; /* RELIABLE: points into the datagram */
} game_packet;

/* Encodes packet into buf (GAME_MAX_PACKET bytes). Returns the size. */
size_t game_encode(const game_packet *packet, uint8_t *buf);

/* Decodes a datagram. False if it is too short or of an unknown type. */
bool game_decode(const void *data, size_t length, game_packet *out);

/* ---- The reliable-ordered channel -------------------------------------- */

typedef struct game_outgoing {
    uint32_t seq;
    uint8_t length;
    uint8_t data[GAME_MAX_MESSAGE];
    uint64_t sent_ms;    /* last (re)transmission */
    bool used;
} game_outgoing;

typedef struct game_incoming {
    uint8_t length;
    uint8_t data[GAME_MAX_MESSAGE];
    bool used;
} game_incoming;

typedef struct game_channel {
    uint32_t next_seq;                  /* of the next message queued */
    uint32_t acked;                     /* every seq below is acknowledged */
    game_outgoing out[GAME_WINDOW];     /* by seq % GAME_WINDOW */
    uint32_t expected;                  /* next seq to deliver */
    game_incoming in[GAME_WINDOW];      /* early arrivals, by seq % GAME_WINDOW */
    uint64_t queued;                    /* statistics */
    uint64_t retransmits;
    uint64_t delivered;
    uint64_t duplicates;
    uint64_t early;                     /* arrived before an earlier one */
} game_channel;

/* Called for each message, in order. */
typedef void (*game_deliver_fn)(const uint8_t *data, uint8_t length, void *ctx);
/* Called to (re)send a RELIABLE packet. */
typedef void (*game_transmit_fn)(const game_packet *packet, void *ctx);

/* Queues a message (length <= GAME_MAX_MESSAGE) and transmits it.
 * Returns false, queuing nothing, if GAME_WINDOW messages await an ack. */
bool game_channel_send(game_channel *channel, const void *data, uint8_t length, uint64_t now_ms,
                       game_transmit_fn transmit, void *ctx);

/* The peer's ack: frees every message below it. */
void game_channel_ack(game_channel *channel, uint32_t ack);

/* A RELIABLE packet from the peer: delivers it and any early arrivals it
 * unblocks, in order. */
void game_channel_receive(game_channel *channel, const game_packet *packet,
                          game_deliver_fn deliver, void *ctx);

/* Sends again every message unacknowledged for rto_ms or more. */
void game_channel_retransmit(game_channel *channel, uint64_t now_ms, uint64_t rto_ms,
                             game_transmit_fn transmit, void *ctx);

/* Whether every message queued so far was acknowledged. */
bool game_channel_idle(const game_channel *channel);

/* ---- Small helpers shared by both programs ----------------------------- */

/* 32-bit little-endian access inside reliable messages. */
void game_put_u32(uint8_t *dst, uint32_t value);
uint32_t game_get_u32(const uint8_t *src);

/* A deterministic generator for simulated loss and bot inputs. */
uint32_t game_random(uint64_t *state);

#endif

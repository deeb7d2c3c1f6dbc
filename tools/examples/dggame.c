/* dggame: an authoritative game server on dgring (the protocol is in
 * game.h; dgbots is its load-testing client).
 *
 * One socket serves every player. A repeating dg_timer runs the tick loop
 * (--tick-hz, default 20) in microseconds (dg_timer_start_us: 30 Hz is
 * 33333 us, not a rounded 33 ms), anchored to its schedule: it applies
 * each player's latest input, sends every player the tick's TICK broadcast
 * with one dg_socket_send_many() (one payload, copied once), sends each
 * player its own state, queues a reliable event every --event-every ticks,
 * retransmits what was not acknowledged within --rto-ms and drops players
 * silent for --timeout-ms. Players are keyed by their address
 * (dg_addr_key, hashed with a random per-process seed) in an
 * open-addressing hash table. PINGs are answered at once, outside the
 * tick, so round trips measure the network and the loop, not the tick.
 *
 * The totals include how well the ticks kept time: the rate measured over
 * the run (ticks and the loop clock between the first and the last), the
 * latest a tick ran after its due time, and the ticks skipped because the
 * loop fell a whole period behind.
 *
 * --loss PERCENT drops that share of the datagrams received (a seeded,
 * repeatable choice) to exercise the reliable channel's retransmissions.
 *
 *   dggame [--address A] [--port P] [--udp6] [--tick-hz N] [--event-every N]
 *          [--rto-ms N] [--timeout-ms N] [--max-players N] [--loss PERCENT]
 *          [--json]
 *
 * Prints "listening ADDRESS:PORT" on stdout once bound, and its totals on
 * SIGINT/SIGTERM. Exit status: 0 after a signal, 1 on a runtime failure,
 * 2 on a bad command line.
 */
#include <dgring.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "example.h"
#include "game.h"

#define PROG "dggame"

typedef struct server_config {
    const char *address;
    unsigned long port;
    bool udp6;
    unsigned long tick_hz;
    unsigned long event_every;  /* ticks between reliable events */
    unsigned long rto_ms;
    unsigned long timeout_ms;
    unsigned long max_players;
    unsigned long loss_percent;
    bool json;
} server_config;

typedef struct player {
    dg_addr_key key;            /* who: the table's key */
    struct sockaddr_storage addr; /* where: for dg_socket_send_to */
    socklen_t addrlen;
    uint32_t id;
    int32_t x, y;
    int8_t dx, dy;              /* the latest input, applied every tick */
    uint32_t last_input;        /* its sequence number */
    bool has_input;
    game_channel channel;
    uint64_t last_heard_ms;
    uint32_t events_sent;
    uint32_t chats_received;
    bool done;                  /* DONE delivered, FAREWELL queued */
} player;

/* Totals over every player, departed ones included. */
typedef struct server_totals {
    uint64_t ticks;
    uint64_t players_seen;
    uint64_t farewells;          /* players that finished cleanly */
    uint64_t timed_out;
    uint64_t refused;            /* HELLOs beyond --max-players */
    uint64_t chat_order_errors;  /* chats out of order: must stay 0 */
    uint64_t chat_mismatches;    /* DONE's count != chats received */
    uint64_t retransmits;
    uint64_t duplicates;
    uint64_t bad_packets;
    uint64_t simulated_drops;
    uint64_t send_errors;
    uint64_t ticks_skipped;      /* periods the loop fell entirely behind */
    uint64_t tick_late_max_us;   /* the latest a tick ran after its due time */
    uint64_t first_tick_us;      /* loop clock at the first and last tick */
    uint64_t last_tick_us;
} server_totals;

typedef struct server {
    const server_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *tick_timer;
    player **players;            /* count live players, in no order */
    size_t count;
    player **index;              /* hash of addresses, index_size slots */
    size_t index_size;           /* a power of two >= 2 * max_players */
    uint64_t hash_seed;          /* random: senders cannot aim at one slot */
    dg_addr_key *dests;          /* the tick broadcast's destinations */
    uint64_t period_us;
    uint64_t tick_due_us;        /* when the tick running now was due */
    uint32_t next_id;
    uint64_t random;
    server_totals totals;
    bool closing;
    int exit_code;
} server;

/* ---- Players by address ------------------------------------------------ */

/* The index slot of key: its player, or the empty slot it would take. */
static player **index_slot(server *srv, const dg_addr_key *key)
{
    size_t mask = srv->index_size - 1;

    for (size_t i = dg_addr_key_hash(key, srv->hash_seed) & mask;; i = (i + 1) & mask) {
        if (srv->index[i] == NULL || dg_addr_key_equal(&srv->index[i]->key, key))
            return &srv->index[i];
    }
}

/* Rebuilds the index after a removal (open addressing has no cheap
 * delete; players leave far less often than packets arrive). */
static void index_rebuild(server *srv)
{
    memset(srv->index, 0, srv->index_size * sizeof(*srv->index));
    for (size_t i = 0; i < srv->count; i++)
        *index_slot(srv, &srv->players[i]->key) = srv->players[i];
}

/* Forgets players[i], adding its channel's counters to the totals. */
static void player_remove(server *srv, size_t i)
{
    player *gone = srv->players[i];

    srv->totals.retransmits += gone->channel.retransmits;
    srv->totals.duplicates += gone->channel.duplicates;
    srv->players[i] = srv->players[--srv->count];
    free(gone);
    index_rebuild(srv);
}

/* A new player at addr (addrlen bytes) keyed key, or NULL if the server
 * is full. */
static player *player_add(server *srv, const dg_addr_key *key,
                          const struct sockaddr_storage *addr, socklen_t addrlen)
{
    player *joined;

    if (srv->count == srv->config->max_players) {
        srv->totals.refused++;
        return NULL;
    }
    joined = calloc(1, sizeof(*joined));
    if (joined == NULL)
        return NULL;
    joined->key = *key;
    joined->addr = *addr;
    joined->addrlen = addrlen;
    joined->id = srv->next_id++;
    srv->players[srv->count++] = joined;
    *index_slot(srv, key) = joined;
    srv->totals.players_seen++;
    return joined;
}

/* ---- Sending ----------------------------------------------------------- */

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    server *srv = data;

    (void)sock;
    (void)err;
    if (status < 0 && status != -ECANCELED)
        srv->totals.send_errors++;
}

/* Sends packet to p, with p's current ack. The bytes are copied by
 * dg_socket_send_to, so the stack buffer may go right after. */
static void send_to_player(server *srv, player *p, game_packet *packet)
{
    uint8_t buf[GAME_MAX_PACKET];
    size_t length;

    packet->ack = p->channel.expected;
    length = game_encode(packet, buf);
    if (dg_socket_send_to(srv->sock, buf, length, (const struct sockaddr *)&p->addr,
                          p->addrlen, on_sent, srv) < 0)
        srv->totals.send_errors++;
}

typedef struct player_context {
    server *srv;
    player *p;
} player_context;

/* game_transmit_fn for a player's reliable channel. */
static void transmit_reliable(const game_packet *packet, void *ctx)
{
    player_context *pc = ctx;
    game_packet copy = *packet;

    send_to_player(pc->srv, pc->p, &copy);
}

static void send_message(server *srv, player *p, uint8_t kind, uint32_t a, uint32_t b)
{
    player_context pc = {srv, p};
    uint8_t message[9] = {kind};

    game_put_u32(message + 1, a);
    game_put_u32(message + 5, b);
    /* A full window means the player stopped acknowledging; the timeout
     * will drop it, so the message is not kept. */
    game_channel_send(&p->channel, message, sizeof(message), dg_loop_now(srv->loop),
                      transmit_reliable, &pc);
}

/* ---- The tick ---------------------------------------------------------- */

/* One player's part of a tick: move, send the state, maybe an event,
 * retransmit. */
static void tick_player(server *srv, player *p)
{
    player_context pc = {srv, p};
    game_packet state = {
        .type = GAME_STATE,
        .a = (uint32_t)srv->totals.ticks,
        .b = p->last_input,
        .count = (uint16_t)(srv->count > UINT16_MAX ? UINT16_MAX : srv->count),
    };

    p->x += p->dx;
    p->y += p->dy;
    state.x = p->x;
    state.y = p->y;
    send_to_player(srv, p, &state);
    if (!p->done && srv->totals.ticks % srv->config->event_every == 0)
        send_message(srv, p, GAME_EVENT, p->events_sent++, 0);
    game_channel_retransmit(&p->channel, dg_loop_now(srv->loop), srv->config->rto_ms,
                            transmit_reliable, &pc);
}

/* Whether players[i] is gone: silent too long, or finished and its
 * FAREWELL acknowledged. */
static bool player_gone(server *srv, const player *p)
{
    if (dg_loop_now(srv->loop) - p->last_heard_ms >= srv->config->timeout_ms) {
        srv->totals.timed_out++;
        return true;
    }
    if (p->done && game_channel_idle(&p->channel)) {
        srv->totals.farewells++;
        return true;
    }
    return false;
}

static void on_tick_sent(dg_socket *sock, const dg_send_many_result *result, void *data)
{
    server *srv = data;

    (void)sock;
    if (result->first_error != -ECANCELED)
        srv->totals.send_errors += result->failed;
}

/* The tick's broadcast: the same TICK datagram to every player, in one
 * dg_socket_send_many() (the payload is copied once, the destinations
 * too, so dests is free again at once). */
static void broadcast_tick(server *srv)
{
    uint8_t buf[GAME_MAX_PACKET];
    game_packet tick = {
        .type = GAME_TICK,
        .a = (uint32_t)srv->totals.ticks,
        .count = (uint16_t)(srv->count > UINT16_MAX ? UINT16_MAX : srv->count),
        .time_ns = dg_loop_now_us(srv->loop),
    };
    size_t length = game_encode(&tick, buf);

    for (size_t i = 0; i < srv->count; i++)
        srv->dests[i] = srv->players[i]->key;
    if (dg_socket_send_many(srv->sock, buf, length, srv->dests, srv->count, on_tick_sent, srv) < 0)
        srv->totals.send_errors += srv->count;
}

/* How well the tick keeps time: lateness against the schedule, periods
 * skipped, and the clock at the first and the last tick. */
static void tick_timing(server *srv, dg_timer *timer)
{
    server_totals *t = &srv->totals;
    uint64_t now = dg_loop_now_us(srv->loop), next_due = dg_timer_due_us(timer);

    if (now - srv->tick_due_us > t->tick_late_max_us)
        t->tick_late_max_us = now - srv->tick_due_us;
    if (next_due > srv->tick_due_us) /* repeating: the next due time is set */
        t->ticks_skipped += (next_due - srv->tick_due_us) / srv->period_us - 1;
    srv->tick_due_us = next_due;
    if (t->ticks == 1)
        t->first_tick_us = now;
    t->last_tick_us = now;
}

static void on_tick(dg_timer *timer, void *data)
{
    server *srv = data;

    srv->totals.ticks++;
    tick_timing(srv, timer);
    broadcast_tick(srv);
    for (size_t i = srv->count; i-- > 0;) {
        if (player_gone(srv, srv->players[i]))
            player_remove(srv, i);
        else
            tick_player(srv, srv->players[i]);
    }
}

/* ---- Receiving ----------------------------------------------------------- */

/* game_deliver_fn: a player's reliable messages, in order. */
static void deliver_from_player(const uint8_t *data, uint8_t length, void *ctx)
{
    player_context *pc = ctx;
    player *p = pc->p;
    uint32_t number = length >= 5 ? game_get_u32(data + 1) : 0;

    if (length < 5)
        return;
    if (data[0] == GAME_CHAT) {
        if (number != p->chats_received)
            pc->srv->totals.chat_order_errors++;
        p->chats_received++;
    } else if (data[0] == GAME_DONE && !p->done) {
        if (number != p->chats_received)
            pc->srv->totals.chat_mismatches++;
        p->done = true;
        send_message(pc->srv, p, GAME_FAREWELL, p->events_sent, p->chats_received);
    }
}

/* Handles a packet from a known player. */
static void handle_packet(server *srv, player *p, const game_packet *packet)
{
    player_context pc = {srv, p};
    game_packet reply = {0};

    game_channel_ack(&p->channel, packet->ack);
    switch (packet->type) {
    case GAME_HELLO: /* again: our WELCOME was lost */
        reply = (game_packet){.type = GAME_WELCOME, .a = p->id, .b = packet->a};
        reply.count = (uint16_t)srv->config->tick_hz;
        send_to_player(srv, p, &reply);
        break;
    case GAME_INPUT:
        if (!p->has_input || (int32_t)(packet->a - p->last_input) > 0) {
            p->dx = packet->dx;
            p->dy = packet->dy;
            p->last_input = packet->a;
            p->has_input = true;
        }
        break;
    case GAME_PING:
        reply = (game_packet){.type = GAME_PONG, .time_ns = packet->time_ns};
        send_to_player(srv, p, &reply);
        break;
    case GAME_RELIABLE:
        game_channel_receive(&p->channel, packet, deliver_from_player, &pc);
        /* Acknowledge at once, duplicates too: their first ack was lost. */
        reply.type = GAME_ACK;
        send_to_player(srv, p, &reply);
        break;
    }
}

/* A datagram: the sender is looked up by address; only HELLO creates a
 * player. msg is valid during this callback only. */
static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    server *srv = data;
    struct sockaddr_storage from = {0};
    dg_addr_key key;
    game_packet packet;
    player *p;

    (void)sock;
    if (srv->closing || msg->addrlen > sizeof(from) ||
        dg_addr_key_from_sockaddr(msg->addr, msg->addrlen, &key) < 0)
        return;
    memcpy(&from, msg->addr, msg->addrlen); /* aligned, and kept past the callback */
    if (game_random(&srv->random) % 100 < srv->config->loss_percent) {
        srv->totals.simulated_drops++;
        return;
    }
    if (!game_decode(msg->data, msg->length, &packet)) {
        srv->totals.bad_packets++;
        return;
    }
    p = *index_slot(srv, &key);
    if (p == NULL && packet.type == GAME_HELLO)
        p = player_add(srv, &key, &from, msg->addrlen);
    if (p == NULL)
        return;
    p->last_heard_ms = dg_loop_now(srv->loop);
    handle_packet(srv, p, &packet);
}

static void on_socket_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    example_print_error(PROG, err);
}

/* ---- Start, stop, report ------------------------------------------------- */

static void on_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    server *srv = data;

    if (!example_bound(PROG, sock, status, stdout)) {
        srv->exit_code = 1;
        return;
    }
    if (dg_timer_start_us(srv->tick_timer, srv->period_us, srv->period_us, on_tick, srv) < 0)
        srv->exit_code = 1;
    srv->tick_due_us = dg_timer_due_us(srv->tick_timer);
}

/* Allocates the player tables, opens the socket and the tick timer, and
 * binds. Returns 0 or a negative code after printing why. */
static int server_start(server *srv)
{
    const server_config *config = srv->config;
    dg_socket_options options = {.type = config->udp6 ? DG_UDP6 : DG_UDP4};
    dg_socket_handlers handlers = {.on_message = on_message, .on_error = on_socket_error};
    int rc = -ENOMEM;

    srv->index_size = 16;
    while (srv->index_size < 2 * config->max_players)
        srv->index_size *= 2;
    srv->players = calloc(config->max_players, sizeof(*srv->players));
    srv->index = calloc(srv->index_size, sizeof(*srv->index));
    srv->dests = calloc(config->max_players, sizeof(*srv->dests));
    srv->period_us = (1000000 + config->tick_hz / 2) / config->tick_hz;
    if (getrandom(&srv->hash_seed, sizeof(srv->hash_seed), 0) != sizeof(srv->hash_seed))
        srv->hash_seed = srv->random ^ (uint64_t)(uintptr_t)srv; /* weaker, still per run */
    if (srv->players != NULL && srv->index != NULL && srv->dests != NULL)
        rc = dg_timer_new(srv->loop, &srv->tick_timer);
    if (rc == 0)
        rc = dg_socket_create(srv->loop, &options, &handlers, srv, &srv->sock);
    if (rc == 0)
        rc = dg_socket_bind(srv->sock, (int)config->port, config->address, on_bound, srv);
    if (rc < 0)
        fprintf(stderr, PROG ": cannot start: %s (%s)\n", dg_err_name(rc), dg_strerror(rc));
    return rc;
}

/* Closes the timer and the socket; the loop ends once both closed.
 * Idempotent: runs after every signal. */
static void server_stop(void *ctx)
{
    server *srv = ctx;

    if (srv->closing)
        return;
    srv->closing = true;
    if (srv->tick_timer != NULL)
        dg_timer_close(srv->tick_timer, NULL, NULL);
    if (srv->sock != NULL)
        dg_socket_close(srv->sock, NULL, NULL);
}

/* Prints the totals: one JSON object, or "name value" pairs. */
static void print_totals(server *srv)
{
    const server_totals *t = &srv->totals;
    bool json = srv->config->json;

    while (srv->count > 0) /* fold the live players' counters in */
        player_remove(srv, srv->count - 1);
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {
        {"ticks", t->ticks},
        {"players_seen", t->players_seen},
        {"farewells", t->farewells},
        {"timed_out", t->timed_out},
        {"refused", t->refused},
        {"chat_order_errors", t->chat_order_errors},
        {"chat_mismatches", t->chat_mismatches},
        {"retransmits", t->retransmits},
        {"duplicates", t->duplicates},
        {"bad_packets", t->bad_packets},
        {"simulated_drops", t->simulated_drops},
        {"send_errors", t->send_errors},
        {"tick_hz", srv->config->tick_hz},
        {"tick_period_us", srv->period_us},
        {"tick_span_us", t->last_tick_us - t->first_tick_us},
        {"ticks_skipped", t->ticks_skipped},
        {"tick_late_max_us", t->tick_late_max_us},
    };
    /* The rate the ticks kept: ticks - 1 periods between the first and the
     * last one, by the loop clock. */
    double span_s = (double)(t->last_tick_us - t->first_tick_us) / 1e6;
    double rate = t->ticks > 1 && span_s > 0 ? (double)(t->ticks - 1) / span_s : 0;

    fputs(json ? "{\"mode\":\"dggame\"" : PROG ":", stdout);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        printf(json ? ",\"%s\":%llu" : " %s %llu", fields[i].name,
               (unsigned long long)fields[i].value);
    printf(json ? ",\"tick_rate_hz\":%.4f}\n" : " tick_rate_hz %.4f\n", rate);
    fflush(stdout);
}

/* ---- Command line ---------------------------------------------------------- */

static const char usage_text[] =
    "usage: dggame [--address A] [--port P] [--udp6] [--tick-hz N] [--event-every N]\n"
    "              [--rto-ms N] [--timeout-ms N] [--max-players N] [--loss PERCENT]\n"
    "              [--json]\n"
    "\n"
    "An authoritative game server: a tick loop, per-player state, and a\n"
    "reliable-ordered channel on top of datagrams (see dgbots).\n"
    "\n"
    "  --address A        address to bind (default: all addresses)\n"
    "  --port P           port to bind (default 7777; 0 picks a free port)\n"
    "  --udp6             use IPv6\n"
    "  --tick-hz N        ticks per second (default 20)\n"
    "  --event-every N    a reliable event to each player every N ticks (default 2)\n"
    "  --rto-ms N         retransmit unacknowledged messages after N ms (default 100)\n"
    "  --timeout-ms N     drop players silent for N ms (default 5000)\n"
    "  --max-players N    1..65536 (default 4096)\n"
    "  --loss PERCENT     drop this share of received datagrams, 0..50 (default 0)\n"
    "  --json             print the totals as one JSON object\n";

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char *argv[], server_config *config)
{
    const example_option options[] = {
        {"address", EXAMPLE_STRING, &config->address, 0, 0},
        {"port", EXAMPLE_NUMBER, &config->port, 0, 65535},
        {"udp6", EXAMPLE_FLAG, &config->udp6, 0, 0},
        {"tick-hz", EXAMPLE_NUMBER, &config->tick_hz, 1, 1000},
        {"event-every", EXAMPLE_NUMBER, &config->event_every, 1, 1000000},
        {"rto-ms", EXAMPLE_NUMBER, &config->rto_ms, 1, 60000},
        {"timeout-ms", EXAMPLE_NUMBER, &config->timeout_ms, 1, 3600000},
        {"max-players", EXAMPLE_NUMBER, &config->max_players, 1, 65536},
        {"loss", EXAMPLE_NUMBER, &config->loss_percent, 0, 50},
        {"json", EXAMPLE_FLAG, &config->json, 0, 0},
    };

    return example_parse_options(PROG, argc, argv, options, sizeof(options) / sizeof(options[0]),
                                 usage_text);
}

int main(int argc, char *argv[])
{
    server_config config = {
        .port = 7777, .tick_hz = 20, .event_every = 2, .rto_ms = 100,
        .timeout_ms = 5000, .max_players = 4096,
    };
    server srv = {.config = &config, .random = 0x2545f4914f6cdd1du, .next_id = 1};
    int status = parse_args(argc, argv, &config);

    if (status >= 0)
        return status;
    /* The tick broadcast reaches every player in one fan-out. */
    dg_loop_options lo;
    dg_loop_options_init(&lo);
    if (config.max_players > lo.max_fanout_destinations)
        lo.max_fanout_destinations = (unsigned)config.max_players;
    if (dg_loop_new(&srv.loop, &lo) < 0) {
        fprintf(stderr, PROG ": cannot set up the loop\n");
        return 1;
    }
    if (example_catch_signals(srv.loop) < 0) {
        fprintf(stderr, PROG ": sigaction failed: nothing could stop the server\n");
        dg_loop_close(srv.loop);
        return 1;
    }
    if (server_start(&srv) < 0) {
        srv.exit_code = 1;
        server_stop(&srv);
    }
    if (example_run(srv.loop, server_stop, &srv, &srv.exit_code) < 0)
        srv.exit_code = 1;
    example_release_signals();
    dg_loop_close(srv.loop);
    if (srv.exit_code == 0)
        print_totals(&srv);
    while (srv.count > 0)
        player_remove(&srv, srv.count - 1);
    free(srv.players);
    free(srv.index);
    free(srv.dests);
    return srv.exit_code;
}

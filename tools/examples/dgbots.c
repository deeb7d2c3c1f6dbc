/* dgbots: simulated players for dggame, all on one dgring loop.
 *
 * Each bot has its own socket (its own port, as a real player would) and
 * its own repeating timer, staggered so the bots do not all send in the
 * same millisecond. A bot says HELLO until WELCOMEd, then every period
 * sends its input, a PING every --ping-ms and a reliable CHAT every
 * --chat-ms. When --duration is up it sends a reliable DONE carrying how
 * many chats it sent; the server answers, after every event it sent, with
 * a reliable FAREWELL carrying its own counts. Since the channel delivers
 * in order, a bot that got its FAREWELL can check that it received every
 * event, and the server that it received every chat, in order.
 *
 * The report: bots connected, bots that got state, bots finished, the
 * PING round trips (min, p50, p90, p99, max) and the reliable channel's
 * counters. Exit status: 0 if every bot connected, got state and finished
 * with every reliable message delivered in order; 1 otherwise (one line
 * on stderr says what failed); 2 on a bad command line.
 */
#include <dgring.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example.h"
#include "game.h"

#define PROG "dgbots"

typedef struct bots_config {
    const char *host;
    unsigned long port;
    const char *bind_address;  /* NULL: the unspecified address */
    bool udp6;
    unsigned long bots;
    unsigned long duration_ms;
    unsigned long input_hz;
    unsigned long chat_ms;
    unsigned long ping_ms;
    unsigned long rto_ms;
    unsigned long finish_ms;   /* how long to wait for FAREWELLs */
    unsigned long loss_percent;
    bool json;
} bots_config;

typedef struct fleet fleet;

typedef struct bot {
    fleet *owner;
    dg_socket *sock;
    dg_timer *timer;
    uint32_t nonce;
    uint32_t player;
    bool connected;
    bool got_state;
    uint32_t ticks;            /* TICK broadcasts received */
    bool done_sent;
    bool finished;             /* FAREWELL delivered */
    bool closed;
    uint32_t input_seq;
    uint64_t last_ping_ms;
    uint64_t last_chat_ms;
    game_channel channel;
    uint32_t chats_sent;
    uint32_t events_received;
    uint32_t event_order_errors;
    uint32_t farewell_events;  /* the server's counts */
    uint32_t farewell_chats;
} bot;

/* Round-trip times, nanoseconds. */
typedef struct samples {
    uint64_t *items;
    size_t count;
    size_t capacity;
} samples;

struct fleet {
    const bots_config *config;
    dg_loop *loop;
    bot *bots;
    dg_timer *end_timer;       /* --duration: bots send DONE */
    dg_timer *deadline_timer;  /* --duration + --finish-ms: give up */
    bool timers_closed;
    bool time_up;
    unsigned long opened;      /* bots[0 .. opened) were opened */
    unsigned long open_bots;   /* of those, not closed yet */
    uint64_t random;
    uint64_t simulated_drops;
    uint64_t send_errors;
    samples rtts;
};

static uint64_t now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void samples_push(samples *s, uint64_t value)
{
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 1024;
        uint64_t *items = realloc(s->items, capacity * sizeof(*items));
        if (items == NULL)
            return; /* a sample fewer: the report stays meaningful */
        s->items = items;
        s->capacity = capacity;
    }
    s->items[s->count++] = value;
}

/* ---- Sending ----------------------------------------------------------- */

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    fleet *f = data;

    (void)sock;
    (void)err;
    if (status < 0 && status != -ECANCELED)
        f->send_errors++;
}

/* Sends packet to the server with the bot's ack. dgring copies the bytes
 * and resolves the host (cached after the first time). */
static void send_packet(bot *b, game_packet *packet)
{
    const bots_config *config = b->owner->config;
    uint8_t buf[GAME_MAX_PACKET];
    size_t length;

    packet->ack = b->channel.expected;
    length = game_encode(packet, buf);
    if (dg_socket_send(b->sock, buf, length, (int)config->port, config->host, on_sent,
                       b->owner) < 0)
        b->owner->send_errors++;
}

/* game_transmit_fn of a bot's reliable channel. */
static void transmit_reliable(const game_packet *packet, void *ctx)
{
    game_packet copy = *packet;

    send_packet(ctx, &copy);
}

static bool send_message(bot *b, uint8_t kind, uint32_t number)
{
    uint8_t message[9] = {kind};

    game_put_u32(message + 1, number);
    return game_channel_send(&b->channel, message, sizeof(message), dg_loop_now(b->owner->loop),
                             transmit_reliable, b);
}

/* ---- A bot's life -------------------------------------------------------- */

/* Closes the fleet's own timers (idempotent); the loop ends once the
 * bots closed too. */
static void fleet_close_timers(fleet *f)
{
    if (f->timers_closed)
        return;
    f->timers_closed = true;
    if (f->end_timer != NULL)
        dg_timer_close(f->end_timer, NULL, NULL);
    if (f->deadline_timer != NULL)
        dg_timer_close(f->deadline_timer, NULL, NULL);
}

/* Closes the bot's timer and socket (idempotent); the last bot closes
 * the fleet's timers. */
static void bot_close(bot *b)
{
    if (b->closed)
        return;
    b->closed = true;
    dg_timer_close(b->timer, NULL, NULL);
    dg_socket_close(b->sock, NULL, NULL);
    if (--b->owner->open_bots == 0)
        fleet_close_timers(b->owner);
}

/* What a connected bot sends each period. */
static void bot_play(bot *b, uint64_t now_ms)
{
    const bots_config *config = b->owner->config;
    game_packet input = {.type = GAME_INPUT, .a = ++b->input_seq};
    uint32_t r = game_random(&b->owner->random);

    input.dx = (int8_t)(r % 3) - 1;
    input.dy = (int8_t)((r >> 8) % 3) - 1;
    send_packet(b, &input);
    if (now_ms - b->last_ping_ms >= config->ping_ms) {
        game_packet ping = {.type = GAME_PING, .time_ns = now_ns()};
        send_packet(b, &ping);
        b->last_ping_ms = now_ms;
    }
    if (!b->owner->time_up && now_ms - b->last_chat_ms >= config->chat_ms &&
        send_message(b, GAME_CHAT, b->chats_sent)) {
        b->chats_sent++;
        b->last_chat_ms = now_ms;
    }
    if (b->owner->time_up && !b->done_sent)
        b->done_sent = send_message(b, GAME_DONE, b->chats_sent);
}

static void on_bot_timer(dg_timer *timer, void *data)
{
    bot *b = data;
    uint64_t now_ms = dg_loop_now(b->owner->loop);

    (void)timer;
    if (!b->connected) {
        game_packet hello = {.type = GAME_HELLO, .a = b->nonce};
        send_packet(b, &hello);
        return;
    }
    bot_play(b, now_ms);
    game_channel_retransmit(&b->channel, now_ms, b->owner->config->rto_ms, transmit_reliable, b);
}

/* game_deliver_fn: the server's reliable messages, in order. */
static void deliver_from_server(const uint8_t *data, uint8_t length, void *ctx)
{
    bot *b = ctx;
    uint32_t number = length >= 9 ? game_get_u32(data + 1) : 0;

    if (length < 9)
        return;
    if (data[0] == GAME_EVENT) {
        if (number != b->events_received)
            b->event_order_errors++;
        b->events_received++;
    } else if (data[0] == GAME_FAREWELL && !b->finished) {
        b->finished = true;
        b->farewell_events = number;
        b->farewell_chats = game_get_u32(data + 5);
    }
}

static void handle_packet(bot *b, const game_packet *packet)
{
    game_packet ack = {.type = GAME_ACK};

    if (packet->type == GAME_TICK) { /* one payload for all: its ack is not ours */
        b->ticks += b->connected;
        return;
    }
    game_channel_ack(&b->channel, packet->ack);
    if (packet->type == GAME_WELCOME && packet->b == b->nonce) {
        b->connected = true;
        b->player = packet->a;
    } else if (packet->type == GAME_STATE && b->connected) {
        b->got_state = true;
    } else if (packet->type == GAME_PONG) {
        samples_push(&b->owner->rtts, now_ns() - packet->time_ns);
    } else if (packet->type == GAME_RELIABLE) {
        game_channel_receive(&b->channel, packet, deliver_from_server, b);
        send_packet(b, &ack); /* at once, duplicates too */
        if (b->finished)
            bot_close(b); /* the ack above still leaves: sends queued
                             before a close are issued */
    }
}

static void on_bot_message(dg_socket *sock, const dg_message *msg, void *data)
{
    bot *b = data;
    game_packet packet;

    (void)sock;
    if (b->closed)
        return;
    if (game_random(&b->owner->random) % 100 < b->owner->config->loss_percent) {
        b->owner->simulated_drops++;
        return;
    }
    if (game_decode(msg->data, msg->length, &packet))
        handle_packet(b, &packet);
}

static void on_bot_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    example_print_error(PROG, err);
}

/* Opens bot i: its socket, bound to --bind (port 0), and its timer, which
 * starts at a staggered offset within the first period. */
static int bot_open(fleet *f, unsigned long i)
{
    const bots_config *config = f->config;
    bot *b = &f->bots[i];
    dg_socket_options options = {.type = config->udp6 ? DG_UDP6 : DG_UDP4};
    dg_socket_handlers handlers = {.on_message = on_bot_message, .on_error = on_bot_error};
    uint64_t period = 1000 / config->input_hz;
    int rc;

    b->owner = f;
    b->nonce = game_random(&f->random);
    b->closed = true; /* until both handles exist */
    rc = dg_socket_create(f->loop, &options, &handlers, b, &b->sock);
    if (rc < 0)
        return rc;
    rc = dg_timer_new(f->loop, &b->timer);
    if (rc < 0) {
        dg_socket_close(b->sock, NULL, NULL);
        return rc;
    }
    b->closed = false;
    f->opened = i + 1;
    f->open_bots++;
    rc = dg_socket_bind(b->sock, 0, config->bind_address, NULL, NULL);
    if (rc == 0)
        rc = dg_timer_start(b->timer, 1 + period * i / config->bots, period, on_bot_timer, b);
    return rc;
}

/* ---- The fleet ----------------------------------------------------------- */

static void on_time_up(dg_timer *timer, void *data)
{
    fleet *f = data;

    (void)timer;
    f->time_up = true; /* each bot sends DONE at its next period */
}

/* Closes every bot and the fleet's timers: at the deadline, on a
 * signal, or after a failure. Idempotent. */
static void fleet_stop(void *ctx)
{
    fleet *f = ctx;

    for (unsigned long i = 0; i < f->opened; i++)
        bot_close(&f->bots[i]);
    fleet_close_timers(f);
}

static void on_deadline(dg_timer *timer, void *data)
{
    (void)timer;
    fleet_stop(data);
}

static int fleet_start(fleet *f)
{
    const bots_config *config = f->config;
    int rc = dg_timer_new(f->loop, &f->end_timer);

    if (rc == 0)
        rc = dg_timer_new(f->loop, &f->deadline_timer);
    if (rc == 0)
        rc = dg_timer_start(f->end_timer, config->duration_ms, 0, on_time_up, f);
    if (rc == 0)
        rc = dg_timer_start(f->deadline_timer, config->duration_ms + config->finish_ms, 0,
                            on_deadline, f);
    for (unsigned long i = 0; rc == 0 && i < config->bots; i++)
        rc = bot_open(f, i);
    if (rc < 0)
        fprintf(stderr, PROG ": cannot start the bots: %s (%s)\n", dg_err_name(rc),
                dg_strerror(rc));
    return rc;
}

/* ---- The report ---------------------------------------------------------- */

typedef struct fleet_report {
    unsigned long connected, with_state, with_ticks, finished, mismatched;
    uint64_t ticks;
    uint64_t chats_sent, chats_confirmed, events_received, events_confirmed;
    uint64_t order_errors, retransmits, duplicates, early;
} fleet_report;

static void add_bot(fleet_report *r, const bot *b)
{
    r->connected += b->connected;
    r->with_state += b->got_state;
    r->with_ticks += b->ticks > 0;
    r->ticks += b->ticks;
    r->finished += b->finished;
    r->mismatched += b->finished && (b->farewell_chats != b->chats_sent ||
                                     b->farewell_events != b->events_received);
    r->chats_sent += b->chats_sent;
    r->chats_confirmed += b->farewell_chats;
    r->events_received += b->events_received;
    r->events_confirmed += b->farewell_events;
    r->order_errors += b->event_order_errors;
    r->retransmits += b->channel.retransmits;
    r->duplicates += b->channel.duplicates;
    r->early += b->channel.early;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted round trips, in microseconds
 * (per_mille 0: the smallest). */
static double rtt_us(const samples *s, unsigned per_mille)
{
    size_t rank = (s->count * per_mille + 999) / 1000;

    if (s->count == 0)
        return 0;
    return (double)s->items[rank > 0 ? rank - 1 : 0] / 1e3;
}

/* What failed, or NULL if every bot did all it should. */
static const char *verdict(const fleet *f, const fleet_report *r)
{
    unsigned long bots = f->config->bots;

    if (r->connected < bots)
        return "not every bot got a WELCOME";
    if (r->with_state < bots)
        return "not every bot got a STATE";
    if (r->with_ticks < bots)
        return "not every bot got a TICK broadcast";
    if (r->finished < bots)
        return "not every bot got its FAREWELL in time";
    if (r->order_errors > 0)
        return "reliable events arrived out of order";
    if (r->mismatched > 0)
        return "reliable messages went missing (FAREWELL counts differ)";
    return NULL;
}

static void print_report_json(const fleet *f, const fleet_report *r, bool in_order)
{
    const samples *s = &f->rtts;

    printf("{\"mode\":\"dgbots\",\"bots\":%lu,\"connected\":%lu,\"with_state\":%lu,"
           "\"with_ticks\":%lu,\"ticks\":%llu,\"finished\":%lu,\"in_order\":%s,\"rtt_samples\":%zu,"
           "\"rtt_min_us\":%.1f,\"rtt_p50_us\":%.1f,"
           "\"rtt_p90_us\":%.1f,\"rtt_p99_us\":%.1f,\"rtt_max_us\":%.1f,\"chats_sent\":%llu,"
           "\"chats_confirmed\":%llu,\"events_received\":%llu,\"events_confirmed\":%llu,"
           "\"retransmits\":%llu,\"duplicates\":%llu,\"early\":%llu,\"simulated_drops\":%llu,"
           "\"send_errors\":%llu}\n",
           f->config->bots, r->connected, r->with_state, r->with_ticks,
           (unsigned long long)r->ticks, r->finished, in_order ? "true" : "false", s->count,
           rtt_us(s, 0), rtt_us(s, 500), rtt_us(s, 900),
           rtt_us(s, 990), rtt_us(s, 1000), (unsigned long long)r->chats_sent,
           (unsigned long long)r->chats_confirmed, (unsigned long long)r->events_received,
           (unsigned long long)r->events_confirmed, (unsigned long long)r->retransmits,
           (unsigned long long)r->duplicates, (unsigned long long)r->early,
           (unsigned long long)f->simulated_drops, (unsigned long long)f->send_errors);
}

static void print_report_text(const fleet *f, const fleet_report *r, bool in_order)
{
    const samples *s = &f->rtts;

    printf("bots %lu: connected %lu, with state %lu, with ticks %lu (%llu ticks), finished %lu, "
           "in order: %s\n",
           f->config->bots, r->connected, r->with_state, r->with_ticks,
           (unsigned long long)r->ticks, r->finished, in_order ? "yes" : "no");
    printf("rtt us (%zu samples): min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           s->count, rtt_us(s, 0), rtt_us(s, 500), rtt_us(s, 900), rtt_us(s, 990), rtt_us(s, 1000));
    printf("reliable: chats sent %llu (confirmed %llu), events received %llu (confirmed %llu)\n",
           (unsigned long long)r->chats_sent, (unsigned long long)r->chats_confirmed,
           (unsigned long long)r->events_received, (unsigned long long)r->events_confirmed);
    printf("retransmits %llu, duplicates %llu, early %llu, simulated drops %llu, "
           "send errors %llu\n",
           (unsigned long long)r->retransmits, (unsigned long long)r->duplicates,
           (unsigned long long)r->early, (unsigned long long)f->simulated_drops,
           (unsigned long long)f->send_errors);
}

/* Prints the report; returns the exit status. */
static int report(fleet *f)
{
    fleet_report r = {0};
    const char *problem;

    for (unsigned long i = 0; i < f->config->bots; i++)
        add_bot(&r, &f->bots[i]);
    problem = verdict(f, &r);
    qsort(f->rtts.items, f->rtts.count, sizeof(*f->rtts.items), compare_u64);
    if (f->config->json)
        print_report_json(f, &r, problem == NULL);
    else
        print_report_text(f, &r, problem == NULL);
    fflush(stdout);
    if (problem == NULL)
        return 0;
    fprintf(stderr, PROG ": %s\n", problem);
    return 1;
}

/* ---- Command line ---------------------------------------------------------- */

static const char usage_text[] =
    "usage: dgbots --host H --port P [--bots N] [--duration MS] [--bind A] [--udp6]\n"
    "              [--input-hz N] [--chat-ms N] [--ping-ms N] [--rto-ms N]\n"
    "              [--finish-ms N] [--loss PERCENT] [--json]\n"
    "\n"
    "Connects N simulated players to a dggame server, all on one dgring loop,\n"
    "and reports round trips and the reliable channel's delivery.\n"
    "\n"
    "  --host H          server address or host name\n"
    "  --port P          server port\n"
    "  --bots N          players (default 50)\n"
    "  --duration MS     play this long (default 2000)\n"
    "  --bind A          local address of the bots' sockets (default: any)\n"
    "  --udp6            use IPv6\n"
    "  --input-hz N      inputs per second per bot (default 20)\n"
    "  --chat-ms N       a reliable chat every N ms per bot (default 100)\n"
    "  --ping-ms N       a ping every N ms per bot (default 100)\n"
    "  --rto-ms N        retransmit unacknowledged messages after N ms (default 100)\n"
    "  --finish-ms N     wait up to N ms after the duration for FAREWELLs\n"
    "                    (default 10000)\n"
    "  --loss PERCENT    drop this share of received datagrams, 0..50 (default 0)\n"
    "  --json            print the report as one JSON object\n";

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char *argv[], bots_config *config)
{
    const example_option options[] = {
        {"host", EXAMPLE_STRING, &config->host, 0, 0},
        {"port", EXAMPLE_NUMBER, &config->port, 1, 65535},
        {"bots", EXAMPLE_NUMBER, &config->bots, 1, 100000},
        {"duration", EXAMPLE_NUMBER, &config->duration_ms, 1, 86400000},
        {"bind", EXAMPLE_STRING, &config->bind_address, 0, 0},
        {"udp6", EXAMPLE_FLAG, &config->udp6, 0, 0},
        {"input-hz", EXAMPLE_NUMBER, &config->input_hz, 1, 1000},
        {"chat-ms", EXAMPLE_NUMBER, &config->chat_ms, 1, 3600000},
        {"ping-ms", EXAMPLE_NUMBER, &config->ping_ms, 1, 3600000},
        {"rto-ms", EXAMPLE_NUMBER, &config->rto_ms, 1, 60000},
        {"finish-ms", EXAMPLE_NUMBER, &config->finish_ms, 1, 3600000},
        {"loss", EXAMPLE_NUMBER, &config->loss_percent, 0, 50},
        {"json", EXAMPLE_FLAG, &config->json, 0, 0},
    };
    int status = example_parse_options(PROG, argc, argv, options,
                                       sizeof(options) / sizeof(options[0]), usage_text);

    if (status < 0 && (config->host == NULL || config->port == 0)) {
        fprintf(stderr, PROG ": --host and --port are required\n");
        return 2;
    }
    return status;
}

int main(int argc, char *argv[])
{
    bots_config config = {
        .bots = 50, .duration_ms = 2000, .input_hz = 20, .chat_ms = 100,
        .ping_ms = 100, .rto_ms = 100, .finish_ms = 10000,
    };
    fleet f = {.config = &config, .random = 0x9e3779b97f4a7c15u};
    dg_loop_options options;
    int status = parse_args(argc, argv, &config);

    if (status >= 0)
        return status;
    dg_loop_options_init(&options);
    options.recv_buffer_size = 2048; /* game packets are small */
    f.bots = calloc(config.bots, sizeof(*f.bots));
    if (f.bots == NULL || dg_loop_new(&f.loop, &options) < 0) {
        fprintf(stderr, PROG ": cannot set up the loop\n");
        free(f.bots);
        return 1;
    }
    if (example_catch_signals(f.loop) < 0)
        fprintf(stderr, PROG ": sigaction failed: signals will not stop the bots early\n");
    status = fleet_start(&f) < 0 ? 1 : 0;
    if (status != 0)
        fleet_stop(&f);
    if (example_run(f.loop, fleet_stop, &f, NULL) < 0)
        status = 1;
    example_release_signals();
    dg_loop_close(f.loop);
    if (status == 0)
        status = report(&f);
    free(f.rtts.items);
    free(f.bots);
    return status;
}

/* dgblast underload: latency under load, as sockperf's under-load test.
 *
 * Its latencies are full round trips (sockperf's own client prints half
 * of them unless given --full-rtt). --warmup SECS runs first at the same
 * rate; samples sent in it are left out of the percentiles (the counts
 * cover the whole run).
 *
 * Datagrams go out at --rate for --duration (paced by a 1 ms timer, never
 * more in flight than the send window). Every --reply-every'th one is a
 * sample: its send time is kept, and its reply gives one round-trip time.
 * dgblast's own echo server (dgring-echo) answers every datagram, so all
 * replies count for loss and reordering; with --sockperf only the samples
 * ask for a reply, as sockperf's client does, and only they are expected.
 * When time is up no new datagram starts; the run ends once every
 * expected reply arrived or --timeout-ms passed.
 */
#include "blast.h"

#include <errno.h>
#include <stdlib.h>

#define PACE_MS 1
/* As in send mode: the window stays below the loop's max_pending_sends and
 * SQ size, so sends made from callbacks never force an early SQ flush. */
#define SEND_QUEUE 4096
#define SEND_WINDOW (SEND_QUEUE - 64)
/* Samples awaiting their reply; a slot is reused after this many later
 * samples, by which time its reply is long overdue. */
#define SAMPLE_SLOTS 8192

typedef struct sample_slot {
    uint64_t seq;
    uint64_t sent_ns;
    bool waiting;
} sample_slot;

typedef struct underload_state {
    const blast_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *end_timer;    /* after --duration: stop sending */
    dg_timer *pace_timer;   /* every PACE_MS while sending */
    dg_timer *drain_timer;  /* --timeout-ms after the last send */
    dg_timer *interval_timer; /* --interval */
    blast_progress progress;
    blast_intervals intervals;
    blast_buffers buffers;
    FILE *full_log;         /* --full-log, or NULL */
    uint64_t measure_ns;    /* the end of --warmup */
    uint64_t warmup;        /* samples left out by --warmup */
    uint64_t kernel_drops;  /* the socket's, final once it closed */
    unsigned char *payload;
    sample_slot *slots;     /* SAMPLE_SLOTS entries */
    uint64_t next_seq;
    uint64_t scheduled;     /* datagrams due so far: sent or skipped */
    uint64_t in_flight;     /* sends whose callback has not run */
    uint64_t sent;          /* sends completed successfully */
    uint64_t sent_bytes;
    uint64_t skipped;       /* not sent: the send queue was full */
    uint64_t errors;
    uint64_t expected;      /* replies to expect */
    uint64_t replies;
    uint64_t stray;         /* datagrams that are no reply to us */
    uint64_t reordered;     /* replies behind a later one */
    uint64_t max_reply_seq;
    tool_samples rtts;      /* nanoseconds, one per sampled reply */
    uint64_t start_ns;
    uint64_t send_end_ns;
    bool sending_done;
    bool closing;
    int exit_code;
    char backend[32];
} underload_state;

static void underload_finish(void *ctx);

static bool is_sample(const underload_state *state, uint64_t seq)
{
    return seq % state->config->reply_every == 0;
}

static sample_slot *slot_of(underload_state *state, uint64_t seq)
{
    return &state->slots[(seq / state->config->reply_every) % SAMPLE_SLOTS];
}

static void count_error(underload_state *state, int code, const dg_error *err)
{
    if (blast_send_failed(&state->errors, code, err)) {
        state->exit_code = TOOL_EXIT_FAILURE;
        underload_finish(state);
    }
}

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    underload_state *state = data;

    (void)sock;
    state->in_flight--;
    if (status >= 0) {
        state->sent++;
        state->sent_bytes += (uint64_t)status;
    } else {
        count_error(state, status, err);
    }
}

/* Hands datagram next_seq to dgring. Returns 0 or the send's error. */
static int send_one(underload_state *state)
{
    const blast_config *config = state->config;
    uint64_t seq = state->next_seq;
    bool sample = is_sample(state, seq);
    uint64_t now = tool_now_ns();
    int rc;

    blast_probe_write(config, state->payload, seq, sample, now);
    rc = dg_socket_send(state->sock, state->payload, config->size, config->port, config->host,
                        on_sent, state);
    if (rc < 0)
        return rc;
    state->next_seq++;
    state->in_flight++;
    if (sample)
        *slot_of(state, seq) = (sample_slot){.seq = seq, .sent_ns = now, .waiting = true};
    if (sample || !config->sockperf)
        state->expected++;
    return 0;
}

/* Sends what the rate allows by now. A full queue skips the datagrams
 * due (counted, as sockperf counts its skipped sends) rather than
 * bursting them later; so does a send refused at once. */
static void on_pace(dg_timer *timer, void *data)
{
    underload_state *state = data;
    double elapsed = (double)(tool_now_ns() - state->start_ns) / 1e9;
    uint64_t due = (uint64_t)(state->config->rate * elapsed) + 1;

    (void)timer;
    while (!state->sending_done && state->scheduled < due) {
        int rc = state->in_flight < SEND_WINDOW ? send_one(state) : DG_ERR_SEND_QUEUE_FULL;
        if (rc == DG_ERR_SEND_QUEUE_FULL) {
            state->skipped += due - state->scheduled;
            state->scheduled = due;
            return;
        }
        state->scheduled++;
        if (rc < 0) {
            state->skipped++;
            count_error(state, rc, NULL);
        }
    }
}

static void maybe_done(underload_state *state)
{
    if (state->sending_done && state->in_flight == 0 && state->replies >= state->expected)
        underload_finish(state);
}

static void record_sample(underload_state *state, uint64_t seq, uint64_t now)
{
    sample_slot *slot = slot_of(state, seq);

    if (!slot->waiting || slot->seq != seq)
        return; /* a duplicate, or a reply so late its slot was reused */
    slot->waiting = false;
    if (slot->sent_ns < state->measure_ns) {
        state->warmup++;
        return;
    }
    if (state->full_log != NULL)
        blast_full_log_write(state->full_log, seq, slot->sent_ns, now);
    if (tool_samples_push(&state->rtts, now - slot->sent_ns) < 0) {
        tool_error(BLAST_PROG, "out of memory for round-trip times");
        state->exit_code = TOOL_EXIT_FAILURE;
        underload_finish(state);
    }
}

static void on_reply(dg_socket *sock, const dg_message *msg, void *data)
{
    underload_state *state = data;
    uint64_t now = tool_now_ns();
    uint64_t seq;

    (void)sock;
    if (state->closing)
        return;
    if (!blast_probe_reply_seq(state->config, msg, &seq) || seq >= state->next_seq) {
        state->stray++;
        return;
    }
    if (state->replies > 0 && seq < state->max_reply_seq)
        state->reordered++;
    if (state->replies == 0 || seq > state->max_reply_seq)
        state->max_reply_seq = seq;
    state->replies++;
    if (is_sample(state, seq))
        record_sample(state, seq, now);
    maybe_done(state);
}

static void on_drained(dg_timer *timer, void *data)
{
    (void)timer;
    underload_finish(data);
}

/* Time is up: no new datagrams; wait --timeout-ms for the last replies. */
static void on_end(dg_timer *timer, void *data)
{
    underload_state *state = data;

    (void)timer;
    state->sending_done = true;
    state->send_end_ns = tool_now_ns();
    blast_timer_close(&state->pace_timer);
    blast_timer_close(&state->end_timer);
    if (blast_timer_open(state->loop, &state->drain_timer, state->config->timeout_ms, 0,
                         on_drained, state) < 0) {
        state->exit_code = TOOL_EXIT_FAILURE;
        underload_finish(state);
        return;
    }
    maybe_done(state);
}

/* Stops everything: idempotent, runs at the end and on every signal. */
static void underload_finish(void *ctx)
{
    underload_state *state = ctx;

    if (!state->sending_done) {
        state->sending_done = true;
        state->send_end_ns = tool_now_ns();
    }
    blast_timer_close(&state->end_timer);
    blast_timer_close(&state->pace_timer);
    blast_timer_close(&state->drain_timer);
    blast_timer_close(&state->interval_timer);
    blast_timer_close(&state->progress.timer);
    if (state->sock != NULL && !state->closing) {
        state->closing = true;
        dg_socket_close(state->sock, NULL, NULL);
    }
}

static uint64_t lost(const underload_state *state)
{
    return state->expected > state->replies ? state->expected - state->replies : 0;
}

static void on_underload_progress(dg_timer *timer, void *data)
{
    underload_state *state = data;
    const tool_samples *rtts = &state->rtts;
    char extra[128];
    double last_us = rtts->count > 0 ? (double)rtts->items[rtts->count - 1] / 1e3 : 0;

    (void)timer;
    snprintf(extra, sizeof(extra), "replies %llu  outstanding %llu  last rtt %.1f us",
             (unsigned long long)state->replies, (unsigned long long)lost(state), last_us);
    blast_progress_print(&state->progress, state->sent, extra);
}

static void on_underload_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

static void on_underload_interval(dg_timer *timer, void *data)
{
    underload_state *state = data;

    (void)timer;
    (void)blast_intervals_tick(&state->intervals, state->config, state->sent);
}

/* Bound by the first send: the buffers granted. */
static void on_underload_listening(dg_socket *sock, void *data)
{
    underload_state *state = data;

    blast_buffers_read(&state->buffers, state->config, sock);
    blast_buffers_print(&state->buffers, state->config, false);
}

/* The socket's counters are final in on_close: its kernel drops. */
static void on_underload_close(dg_socket *sock, void *data)
{
    underload_state *state = data;

    state->kernel_drops = blast_kernel_drops(sock);
}

/* Opens the socket and timers. Returns 0, or a negative code after
 * printing why (what was opened is left for underload_finish). */
static int underload_start(underload_state *state)
{
    const blast_config *config = state->config;
    dg_socket_handlers handlers = {
        .on_message = on_reply,
        .on_error = on_underload_error,
        .on_listening = on_underload_listening,
        .on_close = on_underload_close,
    };
    uint64_t run_ms = (uint64_t)((config->warmup + config->duration) * 1000 + 0.5);
    int rc = blast_socket_open(state->loop, config, &handlers, state, &state->sock);

    if (rc < 0)
        return rc;
    state->next_seq = blast_probe_first_seq(config);
    state->start_ns = tool_now_ns();
    state->measure_ns = state->start_ns + (uint64_t)(config->warmup * 1e9);
    blast_intervals_init(&state->intervals, config);
    rc = blast_timer_open(state->loop, &state->end_timer, run_ms, 0, on_end, state);
    if (rc == 0)
        rc = blast_timer_open(state->loop, &state->pace_timer, 0, PACE_MS, on_pace, state);
    if (rc == 0)
        rc = blast_intervals_timer(&state->intervals, state->loop, &state->interval_timer,
                                   on_underload_interval, state);
    if (rc == 0)
        rc = blast_progress_start(&state->progress, state->loop, on_underload_progress, state);
    return rc;
}

static void underload_summary(underload_state *state)
{
    double seconds = (double)(state->send_end_ns - state->start_ns) / 1e9;
    tool_json json;

    blast_summary_begin(&json, state->config, state->backend, state->sent, state->sent_bytes,
                        seconds);
    if (!state->config->json) {
        printf("  replies %llu of %llu expected, lost %llu, reordered %llu, stray %llu, "
               "skipped %llu, errors %llu, kernel drops %llu",
               (unsigned long long)state->replies, (unsigned long long)state->expected,
               (unsigned long long)lost(state), (unsigned long long)state->reordered,
               (unsigned long long)state->stray, (unsigned long long)state->skipped,
               (unsigned long long)state->errors, (unsigned long long)state->kernel_drops);
        if (state->config->warmup > 0)
            printf(", %llu warm-up samples left out", (unsigned long long)state->warmup);
        printf("\n");
        blast_latency_summary(&json, state->config, &state->rtts);
        return;
    }
    tool_json_uint(&json, "replies", state->replies);
    tool_json_uint(&json, "expected", state->expected);
    tool_json_uint(&json, "lost", lost(state));
    tool_json_uint(&json, "reordered", state->reordered);
    tool_json_uint(&json, "stray", state->stray);
    tool_json_uint(&json, "skipped", state->skipped);
    tool_json_uint(&json, "errors", state->errors);
    tool_json_uint(&json, "kernel_drops", state->kernel_drops);
    tool_json_uint(&json, "warmup", state->warmup);
    blast_latency_summary(&json, state->config, &state->rtts);
    blast_buffers_json(&json, &state->buffers);
    tool_json_end(&json);
}

/* Runs the opened state's loop to its end and prints the summary.
 * Returns the exit status. */
static int underload_loop(underload_state *state)
{
    int rc;

    snprintf(state->backend, sizeof(state->backend), "%s", dg_loop_backend(state->loop));
    state->exit_code = tool_pin_thread(BLAST_PROG, &state->config->net, 0);
    if (state->exit_code != TOOL_EXIT_OK || underload_start(state) < 0) {
        if (state->exit_code == TOOL_EXIT_OK)
            state->exit_code = TOOL_EXIT_FAILURE;
        underload_finish(state);
    }
    rc = tool_run_loop(state->loop, underload_finish, state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "loop", rc);
        return TOOL_EXIT_FAILURE;
    }
    if (!tool_loop_close(BLAST_PROG, state->loop))
        return TOOL_EXIT_FAILURE;
    if (state->exit_code != TOOL_EXIT_OK)
        return state->exit_code;
    underload_summary(state);
    return blast_round_trip_end(state->config, &state->rtts, state->replies);
}

int blast_underload_run(const blast_config *config)
{
    underload_state state = {.config = config};
    dg_loop_options options;
    int status = TOOL_EXIT_FAILURE;

    dg_loop_options_init(&options);
    options.max_pending_sends = SEND_QUEUE;
    options.sq_entries = SEND_QUEUE;
    state.payload = calloc(1, config->size); /* size >= a header, checked at parsing */
    state.slots = calloc(SAMPLE_SLOTS, sizeof(*state.slots));
    if (state.payload == NULL || state.slots == NULL) {
        tool_error(BLAST_PROG, "out of memory");
        goto out;
    }
    blast_fill_pattern(state.payload, config->size, blast_probe_header_size(config),
                       config->pattern);
    if (config->full_log != NULL) {
        state.full_log = blast_full_log_open(config->full_log);
        if (state.full_log == NULL)
            goto out;
    }
    state.loop = tool_loop_open(BLAST_PROG, &options);
    if (state.loop != NULL)
        status = underload_loop(&state);
out:
    if (state.full_log != NULL && !blast_full_log_close(state.full_log, config->full_log))
        status = TOOL_EXIT_FAILURE;
    blast_intervals_free(&state.intervals);
    tool_samples_free(&state.rtts);
    free(state.slots);
    free(state.payload);
    return status;
}

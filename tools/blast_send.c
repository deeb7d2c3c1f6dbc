/* dgblast send: datagrams of --size bytes to --host:--port for --duration.
 *
 * Each datagram of 16 bytes or more starts with the header recv counts by
 * (blast_payload.c): the socket's random sender id and a sequence number
 * from 0; --skip-every N leaves a number out after every N datagrams, a
 * known loss for the receiver to find.
 *
 * Without --rate the sender keeps a window of sends in flight and tops it
 * up from the send callbacks, so the loop (not a busy spin) sets the pace.
 * With --rate a 1 ms timer sends whatever the rate allows by now, never
 * more than the window. When time is up no new send starts, the ones in
 * flight complete, then the socket closes and the loop ends.
 */
#include "blast.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#define PACE_MS 1
/* The loop's max_pending_sends and its submission queue size. The window
 * stays below both, with room for the loop's own SQEs (receive re-arm,
 * timers), so sends made from send callbacks always fit in the SQ and
 * dgring never has to flush it to the kernel in the middle of handling
 * completions: such a flush completes UDP sends inline, the completion
 * loop keeps finding a full batch, and timers and dg_loop_stop() starve
 * (see the report on engine/loop.c process_completions). */
#define SEND_QUEUE 4096
#define SEND_WINDOW (SEND_QUEUE - 64)

typedef struct send_state {
    const blast_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *end_timer;  /* fires once after --duration */
    dg_timer *pace_timer; /* every PACE_MS, only with --rate */
    dg_timer *interval_timer; /* --interval */
    blast_progress progress;
    blast_intervals intervals;
    blast_buffers buffers;
    unsigned char *payload;
    uint32_t sender;      /* the id in every header */
    uint64_t handed;      /* sends handed to dgring so far */
    uint64_t seq_skipped; /* --skip-every: numbers left out between
                             datagrams sent */
    uint64_t in_flight;   /* handed over, callback not yet run */
    uint64_t packets;     /* completed successfully */
    uint64_t published;   /* --threads: packets, for the main thread's
                             --interval lines (atomic) */
    uint64_t bytes;
    uint64_t errors;      /* failed synchronously or in their callback */
    uint64_t last_bytes;  /* bytes at the previous progress line */
    uint64_t start_ns;
    uint64_t end_ns;      /* last completion, or the stop if later */
    bool stopping;        /* no new sends */
    bool closing;         /* socket close requested */
    int exit_code;
    char backend[32];
} send_state;

static void send_finish(void *ctx);

/* A failed send: counted, the first printed; an unresolvable host ends
 * the run with exit status 1. */
static void count_error(send_state *state, int code, const dg_error *err)
{
    if (blast_send_failed(&state->errors, code, err)) {
        state->exit_code = TOOL_EXIT_FAILURE;
        send_finish(state);
    }
}

/* Closes the socket once nothing is in flight, or at once on a second
 * signal (pending sends then complete with -ECANCELED). */
static void close_when_drained(send_state *state)
{
    if (state->closing || (state->in_flight > 0 && tool_stop_requests() < 2))
        return;
    state->closing = true;
    dg_socket_close(state->sock, NULL, NULL);
}

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data);

/* Hands one datagram to dgring. Returns 0 or the send's error code. */
static int send_one(send_state *state)
{
    const blast_config *config = state->config;
    int rc;

    /* --skip-every N: datagram k carries k + k / N, so one number is
     * left out before every Nth datagram, always between two that go out
     * (a receiver sees every gap). */
    uint64_t skips = config->skip_every > 0 ? state->handed / config->skip_every : 0;

    if (config->size >= BLAST_SEQ_HEADER_SIZE)
        blast_seq_write(state->payload, state->sender, state->handed + skips);
    rc = dg_socket_send(state->sock, state->payload, config->size, config->port, config->host,
                        on_sent, state);
    if (rc == 0) {
        state->handed++;
        state->in_flight++;
        state->seq_skipped = skips;
    } else if (rc != DG_ERR_SEND_QUEUE_FULL) {
        count_error(state, rc, NULL);
    }
    return rc;
}

/* Sends until the window is full or `total` datagrams went out overall;
 * stops at the first refusal (queue full or error) until the next call. */
static void send_fill(send_state *state, uint64_t total)
{
    while (!state->stopping && state->in_flight < SEND_WINDOW && state->handed < total) {
        if (send_one(state) < 0)
            break;
    }
}

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    send_state *state = data;
    uint64_t now = tool_now_ns();

    (void)sock;
    state->in_flight--;
    if (status >= 0) {
        state->packets++;
        state->bytes += (uint64_t)status;
        if (state->config->threads > 1)
            __atomic_store_n(&state->published, state->packets, __ATOMIC_RELAXED);
    } else {
        count_error(state, status, err);
    }
    if (now > state->end_ns)
        state->end_ns = now;
    if (state->stopping)
        close_when_drained(state);
    else if (state->config->rate == 0)
        send_fill(state, UINT64_MAX);
}

/* With --rate: the first datagram goes at once, then rate per second. */
static void on_pace(dg_timer *timer, void *data)
{
    send_state *state = data;
    double elapsed = (double)(tool_now_ns() - state->start_ns) / 1e9;

    (void)timer;
    send_fill(state, (uint64_t)(state->config->rate * elapsed) + 1);
}

static void on_end(dg_timer *timer, void *data)
{
    (void)timer;
    send_finish(data);
}

static void on_send_progress(dg_timer *timer, void *data)
{
    send_state *state = data;
    char extra[96];
    double megabits = (double)(state->bytes - state->last_bytes) * 8 / 1e6;

    (void)timer;
    state->last_bytes = state->bytes;
    snprintf(extra, sizeof(extra), "%.1f Mbit/s  in flight %llu  errors %llu", megabits,
             (unsigned long long)state->in_flight, (unsigned long long)state->errors);
    blast_progress_print(&state->progress, state->packets, extra);
}

/* Stops sending: idempotent, runs on the end timer and on every signal. */
static void send_finish(void *ctx)
{
    send_state *state = ctx;
    uint64_t now = tool_now_ns();

    if (!state->stopping) {
        state->stopping = true;
        if (now > state->end_ns)
            state->end_ns = now;
    }
    blast_timer_close(&state->end_timer);
    blast_timer_close(&state->pace_timer);
    blast_timer_close(&state->interval_timer);
    blast_timer_close(&state->progress.timer);
    if (state->sock != NULL)
        close_when_drained(state);
}

static void on_send_interval(dg_timer *timer, void *data)
{
    send_state *state = data;

    (void)timer;
    (void)blast_intervals_tick(&state->intervals, state->config, state->packets);
}

/* Bound (implicitly, by the first send): the buffers granted. */
static void on_send_listening(dg_socket *sock, void *data)
{
    send_state *state = data;

    blast_buffers_read(&state->buffers, state->config, sock);
    if (state->config->threads <= 1)
        blast_buffers_print(&state->buffers, state->config, false);
}

static void on_send_socket_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

/* Opens the socket and timers and sends the first datagrams. Returns 0,
 * or a negative code after printing why (what was opened stays open for
 * send_finish to close). */
static int send_start(send_state *state)
{
    const blast_config *config = state->config;
    dg_socket_handlers handlers = {
        .on_error = on_send_socket_error,
        .on_listening = on_send_listening,
    };
    uint64_t duration_ms = (uint64_t)(config->duration * 1000 + 0.5);
    int rc = blast_socket_open(state->loop, config, &handlers, state, &state->sock);

    if (rc < 0)
        return rc;
    state->sender = blast_sender_id();
    blast_intervals_init(&state->intervals, config);
    rc = blast_timer_open(state->loop, &state->end_timer, duration_ms, 0, on_end, state);
    if (rc == 0 && config->threads <= 1) /* with --threads the main thread ticks */
        rc = blast_intervals_timer(&state->intervals, state->loop, &state->interval_timer,
                                   on_send_interval, state);
    if (rc == 0)
        rc = blast_progress_start(&state->progress, state->loop, on_send_progress, state);
    if (rc < 0)
        return rc;
    state->start_ns = tool_now_ns();
    state->end_ns = state->start_ns;
    if (config->rate > 0)
        return blast_timer_open(state->loop, &state->pace_timer, 0, PACE_MS, on_pace, state);
    send_fill(state, UINT64_MAX);
    return 0;
}

static void send_summary(const send_state *state)
{
    tool_json json;
    double seconds = (double)(state->end_ns - state->start_ns) / 1e9;
    const blast_config *config = state->config;

    blast_summary_begin(&json, config, state->backend, state->packets, state->bytes, seconds);
    if (!config->json) {
        printf("  errors %llu", (unsigned long long)state->errors);
        if (tool_rate_measurable(seconds))
            printf(", %.1f Mbit/s payload", tool_rate(state->bytes * 8, seconds) / 1e6);
        if (config->skip_every > 0)
            printf(", %llu sequence numbers skipped (--skip-every %llu)",
                   (unsigned long long)state->seq_skipped,
                   (unsigned long long)config->skip_every);
        printf("\n");
        fflush(stdout);
        return;
    }
    tool_json_uint(&json, "errors", state->errors);
    tool_json_uint(&json, "size", config->size);
    tool_json_uint(&json, "seq_skipped", state->seq_skipped);
    blast_buffers_json(&json, &state->buffers);
    tool_json_end(&json);
}

/* What every sender's payload holds before its header goes in. */
static unsigned char *payload_new(const blast_config *config)
{
    /* malloc(0) may return NULL; one byte keeps the NULL check meaningful. */
    unsigned char *payload = calloc(1, config->size > 0 ? config->size : 1);

    if (payload == NULL)
        tool_error(BLAST_PROG, "out of memory for a %zu-byte payload", config->size);
    else
        blast_fill_pattern(payload, config->size,
                           config->size >= BLAST_SEQ_HEADER_SIZE ? BLAST_SEQ_HEADER_SIZE : 0,
                           config->pattern);
    return payload;
}


int blast_send_run(const blast_config *config)
{
    send_state state = {.config = config};
    dg_loop_options options;
    int rc;

    dg_loop_options_init(&options);
    options.max_pending_sends = SEND_QUEUE;
    options.sq_entries = SEND_QUEUE;
    state.payload = payload_new(config);
    if (state.payload == NULL)
        return TOOL_EXIT_FAILURE;
    state.loop = tool_loop_open(BLAST_PROG, &options);
    if (state.loop == NULL) {
        free(state.payload);
        return TOOL_EXIT_FAILURE;
    }
    snprintf(state.backend, sizeof(state.backend), "%s", dg_loop_backend(state.loop));
    state.exit_code = tool_pin_thread(BLAST_PROG, &config->net, 0);
    if (state.exit_code != TOOL_EXIT_OK || send_start(&state) < 0) {
        if (state.exit_code == TOOL_EXIT_OK)
            state.exit_code = TOOL_EXIT_FAILURE;
        send_finish(&state);
    }
    rc = tool_run_loop(state.loop, send_finish, &state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "loop", rc);
        free(state.payload);
        return TOOL_EXIT_FAILURE;
    }
    if (!tool_loop_close(BLAST_PROG, state.loop))
        state.exit_code = TOOL_EXIT_FAILURE;
    if (state.exit_code == TOOL_EXIT_OK)
        send_summary(&state);
    blast_intervals_free(&state.intervals);
    free(state.payload);
    return state.exit_code;
}

/* ---- --threads N ---------------------------------------------------------
 * N senders, each with its own loop and socket (so its own source port and
 * sequence) in its own thread. Signals are blocked in the workers; the main
 * thread waits for them and hands each worker its stop with dg_loop_post,
 * under a lock that keeps the worker's loop open meanwhile. */

typedef struct send_worker {
    send_state state;
    unsigned index;
    pthread_t thread;
    pthread_mutex_t lock; /* guards loop_open against the loop's close */
    bool loop_open;
    bool done;
} send_worker;

static void post_finish(dg_loop *loop, void *arg)
{
    (void)loop;
    send_finish(arg);
}

static void *send_worker_main(void *arg)
{
    send_worker *w = arg;
    send_state *state = &w->state;
    dg_loop_options options;

    dg_loop_options_init(&options);
    options.max_pending_sends = SEND_QUEUE;
    options.sq_entries = SEND_QUEUE;
    int rc = dg_loop_new(&state->loop, &options);

    if (rc < 0) {
        tool_error_loop(BLAST_PROG, rc);
        state->exit_code = TOOL_EXIT_FAILURE;
        __atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
        return NULL;
    }
    snprintf(state->backend, sizeof(state->backend), "%s", dg_loop_backend(state->loop));
    pthread_mutex_lock(&w->lock);
    w->loop_open = true;
    pthread_mutex_unlock(&w->lock);
    state->exit_code = tool_pin_thread(BLAST_PROG, &state->config->net, w->index); /* --cpu */
    if (state->exit_code != TOOL_EXIT_OK || send_start(state) < 0) {
        if (state->exit_code == TOOL_EXIT_OK)
            state->exit_code = TOOL_EXIT_FAILURE;
        send_finish(state);
    }
    if (tool_run_loop(state->loop, send_finish, state) < 0)
        state->exit_code = TOOL_EXIT_FAILURE;
    pthread_mutex_lock(&w->lock);
    w->loop_open = false;
    pthread_mutex_unlock(&w->lock);
    while (dg_loop_close(state->loop) == DG_ERR_LOOP_BUSY) /* a stop posted late */
        dg_loop_run(state->loop, DG_RUN_DEFAULT);
    __atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static void stop_workers(send_worker *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&workers[i].lock);
        if (workers[i].loop_open)
            dg_loop_post(workers[i].state.loop, post_finish, &workers[i].state);
        pthread_mutex_unlock(&workers[i].lock);
    }
}

static bool workers_done(send_worker *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!__atomic_load_n(&workers[i].done, __ATOMIC_ACQUIRE))
            return false;
    return true;
}

/* One line per thread: text before the summary, JSON lines after it. */
static void send_thread_line(const blast_config *config, unsigned i, const send_state *s)
{
    double seconds = (double)(s->end_ns - s->start_ns) / 1e9;
    tool_json json;

    if (!config->json) {
        printf("thread %u: %llu packets, ", i, (unsigned long long)s->packets);
        if (tool_rate_measurable(seconds))
            printf("%.0f pps", tool_rate(s->packets, seconds));
        else
            printf("rate: too short");
        printf(", errors %llu, sequence numbers skipped %llu\n", (unsigned long long)s->errors,
               (unsigned long long)s->seq_skipped);
        return;
    }
    tool_json_begin(&json, stdout);
    tool_json_string(&json, "mode", "send-thread");
    tool_json_uint(&json, "thread", i);
    tool_json_uint(&json, "packets", s->packets);
    tool_json_uint(&json, "bytes", s->bytes);
    tool_json_uint(&json, "errors", s->errors);
    tool_json_uint(&json, "seq_skipped", s->seq_skipped);
    tool_json_end(&json);
}

/* Per-thread lines and the total as the summary. */
static int send_threads_summary(const blast_config *config, send_worker *workers, unsigned n)
{
    send_state sum = {.config = config};
    int status = TOOL_EXIT_OK;

    for (unsigned i = 0; i < n; i++) {
        const send_state *s = &workers[i].state;
        if (s->exit_code != TOOL_EXIT_OK)
            status = s->exit_code;
        sum.packets += s->packets;
        sum.bytes += s->bytes;
        sum.errors += s->errors;
        sum.seq_skipped += s->seq_skipped;
        if (sum.start_ns == 0 || s->start_ns < sum.start_ns)
            sum.start_ns = s->start_ns;
        if (s->end_ns > sum.end_ns)
            sum.end_ns = s->end_ns;
    }
    if (status != TOOL_EXIT_OK)
        return status;
    blast_buffers_print(&workers[0].state.buffers, config, false);
    sum.buffers = workers[0].state.buffers;
    snprintf(sum.backend, sizeof(sum.backend), "%s", workers[0].state.backend);
    for (unsigned i = 0; !config->json && i < n; i++)
        send_thread_line(config, i, &workers[i].state);
    send_summary(&sum);
    for (unsigned i = 0; config->json && i < n; i++)
        send_thread_line(config, i, &workers[i].state);
    return status;
}

/* Starts worker i; false (after printing why) if it could not start. */
static bool worker_start(send_worker *w, const blast_config *config, unsigned i)
{
    w->index = i;
    w->state.config = config;
    w->state.payload = payload_new(config);
    pthread_mutex_init(&w->lock, NULL);
    if (w->state.payload != NULL && pthread_create(&w->thread, NULL, send_worker_main, w) == 0)
        return true;
    tool_error(BLAST_PROG, "cannot start sender thread %u", i);
    free(w->state.payload);
    pthread_mutex_destroy(&w->lock);
    return false;
}

static uint64_t workers_packets(send_worker *workers, unsigned n)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < n; i++)
        total += __atomic_load_n(&workers[i].state.published, __ATOMIC_RELAXED);
    return total;
}

/* Waits for the workers, handing them a signal's stop and ticking the
 * --interval lines of the total. */
static void workers_wait(const blast_config *config, send_worker *workers, unsigned n,
                         const sigset_t *stops)
{
    struct timespec tick = {0, 20 * 1000000};
    blast_intervals intervals;

    blast_intervals_init(&intervals, config);
    while (!workers_done(workers, n)) {
        if (sigtimedwait(stops, NULL, &tick) > 0)
            stop_workers(workers, n);
        if (blast_intervals_due(&intervals))
            (void)blast_intervals_tick(&intervals, config, workers_packets(workers, n));
    }
    blast_intervals_free(&intervals);
}

int blast_send_threads_run(const blast_config *config)
{
    static send_worker workers[64];
    unsigned n = config->threads, started = 0;
    sigset_t stops;

    tool_block_stop_signals(&stops); /* the workers inherit the mask */
    while (started < n && worker_start(&workers[started], config, started))
        started++;
    if (started < n)
        stop_workers(workers, started);
    workers_wait(config, workers, started, &stops);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        pthread_mutex_destroy(&workers[i].lock);
        free(workers[i].state.payload);
        blast_intervals_free(&workers[i].state.intervals);
    }
    if (started < n)
        return TOOL_EXIT_FAILURE;
    return send_threads_summary(config, workers, n);
}

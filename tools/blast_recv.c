/* dgblast recv: binds, receives, and counts rate, loss and reordering.
 *
 * It stops --idle-ms after the last datagram (once one arrived), after
 * --count datagrams, or on a signal. Loss and reordering come from the
 * 8-byte sequence numbers dgblast send puts in front of payloads of 8 bytes
 * or more; they are estimates: a datagram counts as reordered when it
 * arrives after a higher sequence number, and the loss is the highest
 * sequence number + 1 minus the sequenced datagrams received (duplicates
 * would hide losses; UDP on one path rarely duplicates).
 */
#include "blast.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#define IDLE_CHECK_MAX_MS 100

typedef struct recv_state {
    const blast_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *idle_timer; /* repeating; checks the time since the last datagram */
    blast_progress progress;
    uint64_t packets;
    uint64_t bytes;
    uint64_t truncated;   /* larger than the receive buffer */
    uint64_t first_ns;    /* first datagram; 0 until one arrived */
    uint64_t last_ns;     /* latest datagram */
    uint64_t sequenced;   /* datagrams that carried a sequence number */
    uint64_t max_seq;     /* highest sequence number seen, if sequenced > 0 */
    uint64_t reordered;
    uint64_t corrupt;     /* --pattern seq: payloads that break it */
    uint64_t lost_total;  /* --threads: the members' losses added up */
    bool lost_summed;
    bool closing;
    int exit_code;
    char backend[32];
} recv_state;

static void recv_finish(void *ctx)
{
    recv_state *state = ctx;

    blast_timer_close(&state->idle_timer);
    blast_timer_close(&state->progress.timer);
    if (state->closing || state->sock == NULL)
        return;
    state->closing = true;
    dg_socket_close(state->sock, NULL, NULL);
}

static uint64_t lost_estimate(const recv_state *state)
{
    if (state->lost_summed)
        return state->lost_total;
    if (state->sequenced == 0 || state->max_seq + 1 <= state->sequenced)
        return 0;
    return state->max_seq + 1 - state->sequenced;
}

static void track_sequence(recv_state *state, const dg_message *msg)
{
    uint64_t seq;

    if (msg->length < 8)
        return;
    seq = tool_get_u64le(msg->data);
    if (state->sequenced > 0 && seq < state->max_seq)
        state->reordered++;
    if (state->sequenced == 0 || seq > state->max_seq)
        state->max_seq = seq;
    state->sequenced++;
}

static void on_recv_message(dg_socket *sock, const dg_message *msg, void *data)
{
    recv_state *state = data;
    uint64_t now = tool_now_ns();

    (void)sock;
    if (state->closing) /* stop at exactly --count */
        return;
    if (state->packets++ == 0)
        state->first_ns = now;
    state->last_ns = now;
    state->bytes += msg->size;
    if (msg->flags & DG_MSG_TRUNC)
        state->truncated++;
    if (state->config->pattern_given &&
        !blast_check_seq_pattern(msg->data, msg->length, msg->length >= 8 ? 8 : 0))
        state->corrupt++;
    track_sequence(state, msg);
    if (state->config->count > 0 && state->packets >= state->config->count)
        recv_finish(state);
}

/* Waiting for the first datagram has no time limit; idling after it has. */
static void on_idle_check(dg_timer *timer, void *data)
{
    recv_state *state = data;
    uint64_t idle_ns = state->config->idle_ms * 1000000u;

    (void)timer;
    if (state->packets > 0 && tool_now_ns() - state->last_ns >= idle_ns)
        recv_finish(state);
}

static void on_recv_progress(dg_timer *timer, void *data)
{
    recv_state *state = data;
    char extra[96];

    (void)timer;
    snprintf(extra, sizeof(extra), "total %llu  lost %llu  reordered %llu",
             (unsigned long long)state->packets, (unsigned long long)lost_estimate(state),
             (unsigned long long)state->reordered);
    blast_progress_print(&state->progress, state->packets, extra);
}

static void on_recv_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    recv_state *state = data;
    int code = tool_bind_done(BLAST_PROG, sock, status, state->closing);

    if (code != TOOL_EXIT_OK) {
        state->exit_code = code;
        recv_finish(state);
    }
}

static void on_recv_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

/* Opens the socket and timers and binds. On failure sets exit_code; what
 * was opened is left for recv_finish to close. */
static void recv_start(recv_state *state)
{
    dg_socket_handlers handlers = {.on_message = on_recv_message, .on_error = on_recv_error};
    uint64_t check_ms = state->config->idle_ms / 4;
    int rc;

    if (check_ms < 1)
        check_ms = 1;
    if (check_ms > IDLE_CHECK_MAX_MS)
        check_ms = IDLE_CHECK_MAX_MS;
    rc = blast_socket_open(state->loop, state->config, &handlers, state, &state->sock);
    if (rc == 0)
        rc = blast_timer_open(state->loop, &state->idle_timer, check_ms, check_ms,
                              on_idle_check, state);
    if (rc == 0)
        rc = blast_progress_start(&state->progress, state->loop, on_recv_progress, state);
    if (rc < 0)
        state->exit_code = TOOL_EXIT_FAILURE;
    else
        state->exit_code = tool_bind_start(BLAST_PROG, state->sock, state->config->address,
                                           state->config->port, state->config->udp6,
                                           on_recv_bound, state);
}

static void recv_summary(const recv_state *state)
{
    tool_json json;
    double seconds = (double)(state->last_ns - state->first_ns) / 1e9;

    blast_summary_begin(&json, state->config, state->backend, state->packets, state->bytes,
                        seconds);
    if (!state->config->json) {
        printf("  lost %llu, reordered %llu, truncated %llu",
               (unsigned long long)lost_estimate(state), (unsigned long long)state->reordered,
               (unsigned long long)state->truncated);
        if (state->config->pattern_given)
            printf(", corrupt %llu", (unsigned long long)state->corrupt);
        printf("\n");
        fflush(stdout);
        return;
    }
    tool_json_uint(&json, "lost", lost_estimate(state));
    tool_json_uint(&json, "reordered", state->reordered);
    tool_json_uint(&json, "truncated", state->truncated);
    if (state->config->pattern_given)
        tool_json_uint(&json, "corrupt", state->corrupt);
    tool_json_end(&json);
}

int blast_recv_run(const blast_config *config)
{
    recv_state state = {.config = config};
    int rc;

    state.loop = tool_loop_open(BLAST_PROG, NULL);
    if (state.loop == NULL)
        return TOOL_EXIT_FAILURE;
    snprintf(state.backend, sizeof(state.backend), "%s", dg_loop_backend(state.loop));
    recv_start(&state);
    if (state.exit_code != TOOL_EXIT_OK)
        recv_finish(&state);
    rc = tool_run_loop(state.loop, recv_finish, &state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "loop", rc);
        return TOOL_EXIT_FAILURE;
    }
    if (!tool_loop_close(BLAST_PROG, state.loop))
        return TOOL_EXIT_FAILURE;
    if (state.exit_code == TOOL_EXIT_OK)
        recv_summary(&state);
    return state.exit_code;
}

/* ---- --threads N: a reuse-port group ---------------------------------
 * Each member counts into its own recv_state from its own thread; the main
 * thread only watches the published totals to apply --count and --idle-ms
 * and waits for SIGINT/SIGTERM. Per-flow sequence tracking stays right
 * because the kernel keeps a flow on one member. */

typedef struct recv_member {
    recv_state state;
    _Atomic uint64_t packets; /* published copies for the main thread */
    _Atomic uint64_t last_ns;
} recv_member;

typedef struct recv_group {
    blast_config member_config; /* count 0: members never stop by themselves */
    recv_member members[64];
} recv_group;

static void on_group_recv(dg_socket *sock, const dg_message *msg, void *data)
{
    recv_group *g = data;
    recv_member *m = &g->members[dg_group_index(dg_socket_loop(sock))];

    on_recv_message(sock, msg, &m->state);
    atomic_store_explicit(&m->packets, m->state.packets, memory_order_relaxed);
    atomic_store_explicit(&m->last_ns, m->state.last_ns, memory_order_relaxed);
}

/* Whether --count or --idle-ms says the run is over. */
static bool group_done(const blast_config *config, recv_group *g)
{
    uint64_t total = 0, last = 0;

    for (unsigned i = 0; i < config->threads; i++) {
        uint64_t t = atomic_load_explicit(&g->members[i].last_ns, memory_order_relaxed);
        total += atomic_load_explicit(&g->members[i].packets, memory_order_relaxed);
        if (t > last)
            last = t;
    }
    if (config->count > 0 && total >= config->count)
        return true;
    return total > 0 && tool_now_ns() - last >= config->idle_ms * 1000000u;
}

/* Adds member counts into *sum; first/last span all members. */
static void group_sum(const blast_config *config, recv_group *g, recv_state *sum)
{
    for (unsigned i = 0; i < config->threads; i++) {
        const recv_state *m = &g->members[i].state;
        sum->packets += m->packets;
        sum->bytes += m->bytes;
        sum->truncated += m->truncated;
        sum->reordered += m->reordered;
        sum->corrupt += m->corrupt;
        if (m->packets > 0 && (sum->first_ns == 0 || m->first_ns < sum->first_ns))
            sum->first_ns = m->first_ns;
        if (m->last_ns > sum->last_ns)
            sum->last_ns = m->last_ns;
        sum->lost_total += lost_estimate(m);
        if (!config->json)
            printf("thread %u: %llu packets, %llu bytes, lost %llu\n", i,
                   (unsigned long long)m->packets, (unsigned long long)m->bytes,
                   (unsigned long long)lost_estimate(m));
    }
}

static int wait_group_end(const blast_config *config, recv_group *g, const sigset_t *stops)
{
    struct timespec tick = {0, 20 * 1000000};

    for (;;) {
        if (sigtimedwait(stops, NULL, &tick) > 0 || group_done(config, g))
            return 0;
    }
}

int blast_recv_threads_run(const blast_config *config)
{
    static recv_group g; /* 64 members: too big for the stack */
    sigset_t stops;
    dg_group_options o;
    dg_group *group;

    tool_block_stop_signals(&stops); /* the members inherit the mask */
    g.member_config = *config;
    g.member_config.count = 0;
    for (unsigned i = 0; i < config->threads; i++)
        g.members[i].state.config = &g.member_config;
    tool_group_options_init(&o, config->threads, config->address, config->port, config->udp6);
    o.handlers.on_message = on_group_recv;
    o.handlers.on_error = on_recv_error;
    o.data = &g;
    int rc = tool_group_start(BLAST_PROG, &group, &o);
    if (rc < 0)
        return TOOL_EXIT_FAILURE;
    recv_state sum = {.config = config};
    snprintf(sum.backend, sizeof(sum.backend), "%s", dg_loop_backend(dg_group_loop(group, 0)));
    wait_group_end(config, &g, &stops);
    dg_group_stop(group);
    rc = dg_group_join(group, NULL);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "group", rc);
        return TOOL_EXIT_FAILURE;
    }
    sum.lost_summed = true;
    group_sum(config, &g, &sum);
    recv_summary(&sum);
    return TOOL_EXIT_OK;
}

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

static void on_recv_bound(dg_socket *sock, int status, void *data)
{
    recv_state *state = data;
    const blast_config *config = state->config;

    if (status < 0) {
        if (!state->closing) { /* -ECANCELED after a signal is no failure */
            tool_error_bind(BLAST_PROG, status, config->address, config->port, config->udp6);
            state->exit_code = TOOL_EXIT_FAILURE;
            recv_finish(state);
        }
        return;
    }
    if (tool_print_listening(BLAST_PROG, sock) < 0) {
        state->exit_code = TOOL_EXIT_FAILURE;
        recv_finish(state);
    }
}

static void on_recv_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

static int recv_bind(recv_state *state)
{
    const blast_config *config = state->config;
    int rc = dg_socket_bind(state->sock, config->address, config->port, on_recv_bound, state);

    if (rc == DG_ERR_INVALID_ADDRESS) {
        tool_error(BLAST_PROG, "bad address '%s' for %s", config->address,
                   config->udp6 ? "udp6" : "udp4");
        state->exit_code = TOOL_EXIT_USAGE;
    } else if (rc < 0) {
        tool_error_bind(BLAST_PROG, rc, config->address, config->port, config->udp6);
        state->exit_code = TOOL_EXIT_FAILURE;
    }
    return rc;
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
        recv_bind(state);
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

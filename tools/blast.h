/* dgblast internals: the parsed command line, the four modes
 * (blast_<mode>.c), their payloads (blast_payload.c) and what they share
 * (blast_common.c: timers, progress lines, the summary's common part).
 * dgblast.c only parses the command line and starts a mode. */
#ifndef DGRING_TOOLS_BLAST_H
#define DGRING_TOOLS_BLAST_H

#include "common.h"

#define BLAST_PROG "dgblast"

typedef enum blast_mode {
    BLAST_SEND = 1,
    BLAST_RECV = 2,
    BLAST_PINGPONG = 4,
    BLAST_UNDERLOAD = 8,
} blast_mode;

/* The modes that measure round trips against an echo server, and those
 * that send to a --host. */
#define BLAST_ROUND_TRIP_MODES (BLAST_PINGPONG | BLAST_UNDERLOAD)
#define BLAST_REMOTE_MODES (BLAST_SEND | BLAST_ROUND_TRIP_MODES)

/* What fills a payload after its header (--pattern). */
typedef enum blast_pattern {
    BLAST_PATTERN_ZERO = 0, /* zero bytes */
    BLAST_PATTERN_RANDOM,   /* pseudo-random bytes, the same in every run */
    BLAST_PATTERN_SEQ,      /* byte i of the datagram is i mod 256 */
} blast_pattern;

/* The command line, validated: every mode reads only its own fields. */
typedef struct blast_config {
    blast_mode mode;
    const char *mode_name; /* "send", "recv", "pingpong", "underload" */
    const char *host;      /* send, pingpong, underload: IP literal or host name */
    const char *address;   /* recv: bind address, NULL = unspecified */
    int port;              /* remote modes: 1..65535; recv: 0..65535 */
    size_t size;           /* remote modes: payload bytes */
    double duration;       /* remote modes: seconds */
    double rate;           /* send: datagrams per second, 0 = unlimited;
                              underload: datagrams per second */
    uint64_t idle_ms;      /* recv: stop this long after the last datagram */
    uint64_t count;        /* recv: stop after this many, 0 = no limit */
    uint64_t reply_every;  /* underload: every Nth datagram is sampled */
    uint64_t timeout_ms;   /* pingpong, underload: how long a reply may take */
    blast_pattern pattern;
    bool pattern_given;    /* recv: verify the seq pattern */
    bool sockperf;         /* pingpong, underload: sockperf's message header */
    bool json;
    bool udp6;
    unsigned threads;      /* send, recv: > 1 runs that many loops in threads */
} blast_config;

/* Each mode runs to completion and returns the exit status. */
int blast_send_run(const blast_config *config);
int blast_recv_run(const blast_config *config);
/* --threads N for recv (blast_recv.c) and send (blast_send.c). */
int blast_recv_threads_run(const blast_config *config);
int blast_send_threads_run(const blast_config *config);
int blast_pingpong_run(const blast_config *config);
int blast_underload_run(const blast_config *config);

/* ---- Payloads (blast_payload.c) ------------------------------------------
 * dgblast's own datagrams start with a little-endian 64-bit sequence number
 * (send: from 8 bytes on) and, in pingpong and underload, the send time in
 * CLOCK_MONOTONIC nanoseconds (bytes 8..15). With --sockperf they start
 * with sockperf's 14-byte header instead (sockperf.h). The rest is the
 * --pattern. */

#define BLAST_NATIVE_PROBE_SIZE 16 /* sequence number + send time */

/* Fills bytes [from, size) of payload with pattern. */
void blast_fill_pattern(unsigned char *payload, size_t size, size_t from, blast_pattern pattern);

/* Whether bytes [from, size) follow BLAST_PATTERN_SEQ. */
bool blast_check_seq_pattern(const unsigned char *payload, size_t size, size_t from);

/* The bytes before the pattern in a probe of this configuration. */
size_t blast_probe_header_size(const blast_config *config);

/* The sequence number of a round-trip mode's first probe: sockperf's
 * client counts from 1, dgblast's own from 0. */
uint64_t blast_probe_first_seq(const blast_config *config);

/* Writes the header of probe seq into payload (config->size bytes, the
 * pattern already in place): sockperf's header, asking for a reply if
 * want_reply, or dgblast's sequence number and send time now_ns. */
void blast_probe_write(const blast_config *config, unsigned char *payload, uint64_t seq,
                       bool want_reply, uint64_t now_ns);

/* The sequence number of a reply to a probe. False if msg is none: too
 * short, or (sockperf) no valid header or a message sent by a client. */
bool blast_probe_reply_seq(const blast_config *config, const dg_message *msg, uint64_t *seq);

/* ---- Shared by the modes (blast_common.c) ------------------------------- */

/* Reports a failed send (code, and err if the callback had one) once: the
 * first failure is printed, the rest only counted in *errors. Returns true
 * if the failure is fatal for the run (a host name that does not resolve:
 * every further send would fail the same way). -ECANCELED is neither
 * printed nor counted. */
bool blast_send_failed(uint64_t *errors, int code, const dg_error *err);

/* Opens a timer on loop and starts it; on failure prints why, returns a
 * negative code and leaves *out NULL. */
int blast_timer_open(dg_loop *loop, dg_timer **out, uint64_t timeout_ms, uint64_t repeat_ms,
                     dg_timer_cb cb, void *data);

/* Closes *timer if open and sets it to NULL (idempotent). */
void blast_timer_close(dg_timer **timer);

/* Opens a socket of the configured family with handlers and data; on
 * failure prints why and returns a negative code. */
int blast_socket_open(dg_loop *loop, const blast_config *config,
                      const dg_socket_handlers *handlers, void *data, dg_socket **out);

/* Once-a-second progress on a terminal's stderr. */
typedef struct blast_progress {
    dg_timer *timer;
    uint64_t start_ns;
    uint64_t last_packets; /* packets at the previous line */
    unsigned seconds;      /* lines printed */
} blast_progress;

/* Starts the progress timer (cb every second) if stderr is a terminal;
 * otherwise does nothing. Returns 0 or a negative code. */
int blast_progress_start(blast_progress *progress, dg_loop *loop, dg_timer_cb cb, void *data);

/* Prints "[  Ns] R pkt/s  EXTRA" for the packets since the last line. */
void blast_progress_print(blast_progress *progress, uint64_t packets, const char *extra);

/* The fields every summary has. Human form: "MODE: N packets, B bytes in
 * S s, R pps (backend B)". JSON form: opens the object with "mode",
 * "backend", "packets", "bytes", "seconds", "pps"; the mode adds its own
 * fields and calls tool_json_end(). */
void blast_summary_begin(tool_json *json, const blast_config *config, const char *backend,
                         uint64_t packets, uint64_t bytes, double seconds);

/* Sorts rtts (nanoseconds) and reports p50, p90, p99, p99.9 and max in
 * microseconds: as the fields p50_us ... max_us of the open JSON object
 * json, or as a "  latency us (N samples): p50 ..." line. */
void blast_latency_summary(tool_json *json, const blast_config *config, tool_samples *rtts);

#endif

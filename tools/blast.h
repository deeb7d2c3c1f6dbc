/* dgblast internals: the parsed command line, the four modes
 * (blast_<mode>.c), their payloads (blast_payload.c) and what they share
 * (blast_common.c: timers, progress lines, the summary's common part).
 * dgblast.c only parses the command line and starts a mode. */
#ifndef DGRING_TOOLS_BLAST_H
#define DGRING_TOOLS_BLAST_H

#include "common.h"
#include "setup.h"

#include <sys/socket.h>

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
    size_t size;           /* remote modes: payload bytes (default 64) */
    double duration;       /* remote modes: seconds (default 10) */
    double rate;           /* send: datagrams per second, 0 = unlimited;
                              underload: datagrams per second */
    double bitrate;        /* send, underload: payload bits per second, the
                              rate in iperf3's terms (0: not given) */
    double warmup;         /* pingpong, underload: seconds first, unmeasured */
    double interval;       /* seconds between interval lines; 0 = none */
    uint64_t idle_ms;      /* recv: stop this long after the last datagram */
    uint64_t count;        /* recv: stop after this many, 0 = no limit */
    uint64_t max_senders;  /* recv: senders whose sequence is followed */
    uint64_t skip_every;   /* send: leave out a sequence number after every
                              N datagrams (loss the receiver must count) */
    uint64_t reply_every;  /* underload: every Nth datagram is sampled */
    uint64_t timeout_ms;   /* pingpong, underload: how long a reply may take */
    const char *full_log;  /* pingpong, underload: CSV of every sample */
    const char *plot;      /* PNG: latency (round trips) or rate (recv) */
    blast_pattern pattern;
    bool pattern_given;    /* recv: verify the seq pattern */
    bool sockperf;         /* pingpong, underload: sockperf's message header */
    bool json;
    bool udp4;             /* -4: IPv4 even for a host name */
    bool udp6;             /* -6, or inferred from an IPv6 --host/--address */
    unsigned threads;      /* send, recv: > 1 runs that many loops in threads */
    tool_net_options net;  /* --rcvbuf, --sndbuf, --dns-server, --cpu */
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
 * dgblast send's datagrams of BLAST_SEQ_HEADER_SIZE bytes or more start
 * with the header recv counts them by: the magic "dgb1", the sender's id
 * (a random little-endian 32-bit number per sending socket) and the
 * little-endian 64-bit sequence number. Anything else (a shorter payload,
 * another program's) is foreign to recv. In pingpong and underload the
 * datagrams start with the sequence number and the send time in
 * CLOCK_MONOTONIC nanoseconds (both little-endian 64-bit), or with
 * --sockperf with sockperf's 14-byte header (sockperf.h). The rest is the
 * --pattern. */

#define BLAST_SEQ_HEADER_SIZE 16   /* magic + sender id + sequence number */
#define BLAST_NATIVE_PROBE_SIZE 16 /* sequence number + send time */

/* A random sender id for a sending socket. */
uint32_t blast_sender_id(void);

/* Writes send's header into payload (BLAST_SEQ_HEADER_SIZE bytes). */
void blast_seq_write(unsigned char *payload, uint32_t sender, uint64_t seq);

/* Reads send's header from a datagram of length bytes. False if it has
 * none (foreign): too short, or not the magic. */
bool blast_seq_read(const void *payload, size_t length, uint32_t *sender, uint64_t *seq);

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

/* ---- Senders (blast_flows.c) ----------------------------------------------
 * recv follows the sequence of each sender: a flow is the sender's address
 * and port and the id in its header, so any number of senders into one
 * socket (or one member of a group) are counted apart. A flow's loss is
 * the sequence numbers it skipped (its highest + 1 minus the distinct
 * numbers received, counting from 0); a number received before is a
 * duplicate, one first seen behind the flow's highest is reordered (as
 * dgring-impair counts them). Duplicates are told apart within the last
 * BLAST_SEQ_WINDOW numbers up to the highest; one further behind counts
 * as reordered. The table holds at most `capacity` flows, so a flood of
 * senders (hostile or not) cannot grow memory: a new sender past the cap
 * evicts the one heard from least recently, whose counts so far are kept
 * in the totals. A sender heard again after its eviction is followed
 * from the sequence number it comes back with, so its loss is counted
 * from there (and the totals say how many were evicted). */

typedef struct blast_flow blast_flow;

#define BLAST_SEQ_WINDOW 512 /* bits per flow (64 bytes) */

typedef struct blast_flows {
    blast_flow *flows;     /* capacity entries, count in use */
    uint32_t *slots;       /* hash index: flow index + 1, 0 = empty */
    uint32_t mask;         /* slots - 1 (a power of two >= 2 * capacity) */
    uint32_t capacity;
    uint32_t count;
    uint32_t newest;       /* most recently heard flow (UINT32_MAX: none) */
    uint32_t oldest;       /* least recently heard: evicted first */
    uint64_t seed;         /* of the hash: random, so no sender can aim */
    uint64_t admitted;     /* flows ever started */
    uint64_t evicted;
    uint64_t retired_lost; /* what evicted flows had counted */
    uint64_t retired_reordered;
    uint64_t retired_duplicates;
} blast_flows;

/* What the flows counted, evicted ones included. */
typedef struct blast_flow_totals {
    uint64_t senders;      /* flows started (a sender back after eviction
                              counts again) */
    uint64_t evicted;
    uint64_t lost;
    uint64_t reordered;
    uint64_t duplicates;
} blast_flow_totals;

/* Returns 0 or -ENOMEM; capacity 1..BLAST_FLOWS_MAX. */
#define BLAST_FLOWS_MAX (1u << 20)
int blast_flows_init(blast_flows *flows, uint32_t capacity);
void blast_flows_free(blast_flows *flows);

/* Counts datagram seq of sender id from address from (its flow is
 * started, evicting the oldest if the table is full). */
void blast_flows_count(blast_flows *flows, const struct sockaddr *from, uint32_t sender,
                       uint64_t seq);

/* Adds the flows' totals into *out. */
void blast_flows_totals(const blast_flows *flows, blast_flow_totals *out);

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
 * S s, R pps (backend B)", the rate "too short" under
 * TOOL_RATE_MIN_SECONDS. JSON form: opens the object with "mode",
 * "backend", "packets", "bytes", "seconds", "pps" (null when too short);
 * the mode adds its own fields and calls tool_json_end(). */
void blast_summary_begin(tool_json *json, const blast_config *config, const char *backend,
                         uint64_t packets, uint64_t bytes, double seconds);

/* Sorts rtts (nanoseconds) and reports p50, p90, p99, p99.9 and max round
 * trips in microseconds: as the fields rtt_samples, rtt_p50_us ...
 * rtt_max_us of the open JSON object json (null without samples), or as a
 * "  round trip us (N samples): p50 ..." line. */
void blast_latency_summary(tool_json *json, const blast_config *config, tool_samples *rtts);

/* The socket buffers of a mode's socket: asked (from the command line),
 * then read once bound. */
typedef struct blast_buffers {
    tool_buffer receive;
    tool_buffer send;
    bool known;            /* read after the bind */
} blast_buffers;

/* Reads the granted sizes of a bound socket. */
void blast_buffers_read(blast_buffers *buffers, const blast_config *config,
                        const dg_socket *sock);

/* Prints each buffer that was asked for (and the receive buffer anyway
 * when receive_note) on the notes stream (tool_notes). */
void blast_buffers_print(const blast_buffers *buffers, const blast_config *config,
                         bool receive_note);

/* The socket's kernel drops (dg_socket_get_stats): final in on_close,
 * where the modes read them. */
uint64_t blast_kernel_drops(const dg_socket *sock);

/* The buffers as JSON keys (rcvbuf..., sndbuf...), once known. */
void blast_buffers_json(tool_json *json, const blast_buffers *buffers);

/* ---- Intervals (blast_common.c) --------------------------------------------
 * --interval SECS prints a line per interval on stdout, "[ 1.0- 2.0 s] N
 * packets, R pps" or a JSON object starting {"interval":...; recv's --plot
 * keeps the points for the rate curve. */
typedef struct blast_intervals {
    double seconds;         /* interval length; 0 = no lines */
    bool print;             /* print lines (else only keep points) */
    bool keep;              /* keep the points (--plot) */
    uint64_t start_ns;      /* start of the first interval */
    uint64_t last_ns;       /* end of the previous interval */
    uint64_t last_packets;
    uint64_t next_ns;       /* blast_intervals_due(): the end of this one */
    unsigned count;
    tool_samples ends_ns;   /* --plot: interval ends since start_ns */
    tool_samples packets;   /* ... and the packets counted in each */
} blast_intervals;

/* Sets up intervals from the configuration (--interval; recv's --plot
 * keeps points, every second unless --interval says), starting now. */
void blast_intervals_init(blast_intervals *intervals, const blast_config *config);

/* Opens a timer on loop calling cb at the end of every interval, if
 * intervals are wanted (*timer stays NULL otherwise). Returns 0 or a
 * negative code after printing why. */
int blast_intervals_timer(const blast_intervals *intervals, dg_loop *loop, dg_timer **timer,
                          dg_timer_cb cb, void *data);

/* For a thread without a loop (--threads' main thread, which polls):
 * whether the current interval is over by now; the next one starts. */
bool blast_intervals_due(blast_intervals *intervals);

/* One interval ended now with packets counted so far; prints its line.
 * Returns 0 or -ENOMEM (a point could not be kept). */
int blast_intervals_tick(blast_intervals *intervals, const blast_config *config,
                         uint64_t packets);

void blast_intervals_free(blast_intervals *intervals);

/* ---- Round-trip modes (blast_common.c) ------------------------------------ */

/* After the summary: a run without a single reply fails (exit status 1,
 * saying so: no echo server there, or its replies do not come back);
 * --plot draws the sorted round trips. Returns the exit status. */
int blast_round_trip_end(const blast_config *config, const tool_samples *rtts, uint64_t replies);

/* ---- Plots and the full log (blast_plot.c) -------------------------------- */

/* Whether gnuplot can be run; prints how to install it if not. */
bool blast_plot_available(void);

/* Draws the round-trip histogram and percentile curve of sorted rtts
 * (nanoseconds) into png with gnuplot. Returns TOOL_EXIT_OK or
 * TOOL_EXIT_FAILURE after printing why. */
int blast_plot_latency(const char *png, const tool_samples *rtts, const char *title);

/* Draws the rate per interval into png. Returns as above. */
int blast_plot_rate(const char *png, const blast_intervals *intervals, const char *title);

/* --full-log: opens path and writes the CSV header "seq,tx_s,rx_s,rtt_us".
 * NULL after printing why. */
FILE *blast_full_log_open(const char *path);

/* One sample: its sequence number, send and receive times (ns). */
void blast_full_log_write(FILE *log, uint64_t seq, uint64_t sent_ns, uint64_t received_ns);

/* Closes the log; false (after printing why) if writing failed. */
bool blast_full_log_close(FILE *log, const char *path);

#endif

/* Shared helpers for the engine test suites: running a loop with a
 * watchdog that fails the test instead of hanging, closing handles and
 * checking that a loop ends empty, and plain blocking BSD sockets on
 * 127.0.0.1 / ::1 to cross-check dgring against the kernel API.
 *
 * Every helper reports failures through Criterion assertions, so it may only
 * be called from the test's own thread (the loop's thread), outside dgring
 * callbacks unless said otherwise.
 */
#ifndef DGRING_TEST_HELPERS_H
#define DGRING_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <dgring.h>

/* Asserts that a call returned the code want, naming both codes on failure;
 * an optional string literal adds context. */
#define dgt_assert_code(expr, want, ...)                                                           \
    do {                                                                                           \
        int dgt_got_ = (expr);                                                                     \
        int dgt_want_ = (want);                                                                    \
        cr_assert_eq(dgt_got_, dgt_want_, "%s\n  returned %d (%s), want %d (%s) %s", #expr,        \
                     dgt_got_, dg_err_name(dgt_got_), dgt_want_, dg_err_name(dgt_want_),           \
                     "" __VA_ARGS__);                                                              \
    } while (0)

/* Default watchdog for one wait in a test: generous, never a performance
 * bound; it only turns a hang into a readable failure. */
#define DGT_WAIT_MS 5000u

/* ---- Loops ---------------------------------------------------------- */

/* dg_loop_new() with the given options (NULL for the defaults); asserts
 * success. */
dg_loop *dgt_loop_new(const dg_loop_options *options);

/* Whether loops made with default options run on the epoll backend
 * (DGRING_BACKEND=epoll, or io_uring unavailable). */
bool dgt_backend_is_epoll(void);

/* A loop whose options are the defaults changed by recv_buffers and
 * recv_buffer_size (0 keeps the default). */
dg_loop *dgt_loop_new_sized(unsigned recv_buffers, unsigned recv_buffer_size);

/* Runs dg_loop_run(loop, DG_RUN_DEFAULT) and fails the test if it has not
 * returned after timeout_ms (a watchdog thread calls dg_loop_stop()).
 * Returns dg_loop_run's result, which it asserts is not negative. */
int dgt_run(dg_loop *loop, unsigned timeout_ms);

/* Runs the loop in DG_RUN_ONCE turns until *counter >= target. Fails the
 * test if that takes longer than timeout_ms, if the loop stops being alive
 * before, or if dg_loop_run returns an error.
 * Diagnosis only: with DGT_NUDGE_MS=n in the environment a thread also
 * calls dg_loop_wake() every n ms meanwhile, so a library whose DG_RUN_ONCE
 * sleeps through ready work still gets through the other suites. Never set
 * it in CI; the loop suite's once_* tests check that behaviour unaided. */
void dgt_run_until(dg_loop *loop, const int *counter, int target, unsigned timeout_ms);

/* The same, but returns false instead of failing when timeout_ms pass (or
 * the count was only reached after the watchdog woke the loop), so the
 * caller can print its own diagnosis. Other failures still fail the test. */
bool dgt_try_run_until(dg_loop *loop, const int *counter, int target, unsigned timeout_ms);

/* One dg_loop_run(loop, DG_RUN_ONCE) that must return within timeout_ms;
 * returns its result, which it asserts is not negative. */
int dgt_run_once(dg_loop *loop, unsigned timeout_ms);

/* Asserts the loop has nothing alive and closes it (dg_loop_close == 0). */
void dgt_loop_finish(dg_loop *loop);

/* ---- Handles -------------------------------------------------------- */

/* Creates a socket of the given type with handlers (may be NULL) and
 * data; asserts success. */
dg_socket *dgt_socket_new(dg_loop *loop, dg_socket_type type, unsigned flags,
                          const dg_socket_handlers *handlers, void *data);

/* Binds sock to address:port and runs the loop until the bind callback
 * ran; asserts it reported 0 and returns the bound port. */
int dgt_bind(dg_loop *loop, dg_socket *sock, const char *address, int port);

/* A UDP port free on both IPv4 and IPv6 right now: the kernel's choice for
 * a dual-stack socket on "::" (which it picks free in both families), read
 * and closed again. For tests that bind one family with ipv6Only and then
 * the other on the same port: a port picked for "::" with ipv6Only alone
 * may already be held on the IPv4 side by any other process. */
int dgt_free_dual_stack_port(void);

/* Closes sock and runs the loop until its close callback ran, asserting it
 * ran exactly once. */
void dgt_close_socket(dg_loop *loop, dg_socket *sock);

/* Closes timer and runs the loop until its close callback ran, asserting
 * it ran exactly once. */
void dgt_close_timer(dg_loop *loop, dg_timer *timer);

/* ---- Watchdog ------------------------------------------------------- */

/* A thread that calls dg_loop_stop(loop) (repeatedly) once timeout_ms have
 * passed without dgt_watchdog_cancel(). */
typedef struct dgt_watchdog dgt_watchdog;
dgt_watchdog *dgt_watchdog_start(dg_loop *loop, unsigned timeout_ms);
/* Stops and frees the watchdog; returns true if it had fired. */
bool dgt_watchdog_cancel(dgt_watchdog *watchdog);
/* Whether it has fired (any thread). */
bool dgt_watchdog_fired(const dgt_watchdog *watchdog);
/* DGT_NUDGE_MS from the environment, 0 when unset. */
unsigned dgt_nudge_ms(void);

/* ---- Plain BSD sockets ---------------------------------------------- */

/* "127.0.0.1" for AF_INET, "::1" for AF_INET6. */
const char *dgt_loopback(int family);

/* AF_INET for DG_UDP4, AF_INET6 for DG_UDP6. */
int dgt_family(dg_socket_type type);

/* Skips the test (visibly, with the reason) if ::1 cannot be bound. */
void dgt_require_ipv6(void);

/* Fills *ss with loopback:port of the family; returns its length. */
socklen_t dgt_sockaddr(int family, int port, struct sockaddr_storage *ss);

/* A blocking SOCK_DGRAM socket bound to loopback port 0 (rcvbuf > 0 sets
 * SO_RCVBUF first). Asserts success; returns the fd. */
int dgt_plain_socket(int family, int rcvbuf);

/* The bound port of a plain socket. */
int dgt_plain_port(int fd);

/* sendto() loopback:port; asserts the whole datagram was sent. */
void dgt_plain_send(int fd, int family, int port, const void *buf, size_t len);

/* Waits up to timeout_ms for a datagram and receives up to len bytes of it
 * into buf; returns the datagram's real length (recv with MSG_TRUNC) or -1
 * on timeout. from may be NULL. */
ssize_t dgt_plain_recv(int fd, void *buf, size_t len, unsigned timeout_ms,
                       struct sockaddr_storage *from);

/* Receives without waiting; returns the real length or -1 if nothing is
 * queued. */
ssize_t dgt_plain_recv_nowait(int fd, void *buf, size_t len);

/* The port in a sockaddr_in / sockaddr_in6. */
int dgt_sockaddr_port(const struct sockaddr *sa);

/* Fills buf[0..len) with a pattern that depends on seed and position. */
void dgt_fill(void *buf, size_t len, unsigned seed);

/* Index of the first byte that differs from the pattern, or len. */
size_t dgt_check(const void *buf, size_t len, unsigned seed);

/* Sleeps for ms milliseconds (used only to pace a sender, never to wait
 * for a result). */
void dgt_sleep_ms(unsigned ms);

/* ---- dgram conformance suites (tests/dgram/) ---------------------------- */

/* dgt_assert_code with a printf-style context: fmt and its arguments. */
#define dgt_assert_code_fmt(expr, want, fmt, ...)                                                  \
    do {                                                                                           \
        int dgt_got_ = (expr);                                                                     \
        int dgt_want_ = (want);                                                                    \
        cr_assert_eq(dgt_got_, dgt_want_, "%s\n  returned %d (%s), want %d (%s) " fmt, #expr,     \
                     dgt_got_, dg_err_name(dgt_got_), dgt_want_, dg_err_name(dgt_want_),           \
                     __VA_ARGS__);                                                                 \
    } while (0)

/* Bytes of each datagram dgt_events keeps: more than a UDP datagram can
 * carry, so every datagram is kept whole. */
#define DGT_KEEP_BYTES 65536

/* Everything a socket's handlers saw. Use with dgt_events_handlers and the
 * dgt_events itself as the socket's data. log holds one letter per event
 * in order: L listening, M message, E error, K connect, C close; the
 * recorders below add B (bind/connect callback), S (send callback) and
 * X (close callback) when their ev field points here. */
typedef struct dgt_events {
    dg_socket *sock; /* when set, every handler checks it got this socket */
    int messages;
    int listening;
    int errors;
    int connects;
    int closed;
    int empty_messages;
    size_t bytes; /* sum of message lengths */
    char log[256];
    /* The last datagram. */
    unsigned char data[DGT_KEEP_BYTES];
    size_t length;
    size_t size;
    unsigned flags;
    dg_address from;
    int from_rc;
    /* The last error, and dg_error_format() of it. */
    dg_error error;
    char error_text[512];
    /* Optional: runs at the end of on_message / on_listening / on_error. */
    void (*message_hook)(struct dgt_events *ev, dg_socket *sock, const dg_message *msg);
    void (*listening_hook)(struct dgt_events *ev, dg_socket *sock);
    void (*error_hook)(struct dgt_events *ev, dg_socket *sock, const dg_error *err);
    void *user;
} dgt_events;

extern const dg_socket_handlers dgt_events_handlers;

/* Appends one letter to ev->log (silently stops when full). */
void dgt_events_log(dgt_events *ev, char letter);

/* dgt_socket_new with dgt_events_handlers and ev; sets ev->sock. */
dg_socket *dgt_events_socket(dg_loop *loop, dg_socket_type type, unsigned flags,
                             dgt_events *ev);

/* dg_socket_create with full options and dgt_events_handlers; returns the
 * code and sets *out (ev->sock too on success). */
int dgt_events_socket_opts(dg_loop *loop, const dg_socket_options *options, dgt_events *ev,
                           dg_socket **out);

/* ---- Numbered datagrams ------------------------------------------------
 * A 4-byte sequence number, then dgt_fill() bytes seeded with it: the
 * receiver checks that each datagram is whole, next in order and intact. */
typedef struct dgt_numbered {
    int messages;
    int bad; /* wrong size, flags, sequence or payload */
    uint32_t next_seq;
} dgt_numbered;
/* Writes datagram seq, len >= 4 bytes, into buf. */
void dgt_numbered_fill(void *buf, size_t len, uint32_t seq);
/* Checks that msg is n's next datagram and counts it. */
void dgt_numbered_check(dgt_numbered *n, const dg_message *msg);
/* An on_message handler whose data is a dgt_numbered. */
void dgt_on_numbered(dg_socket *sock, const dg_message *msg, void *data);

/* A send callback recorder (pass the record as the callback's data). */
typedef struct dgt_send_rec {
    int calls;
    int errors; /* callbacks with status < 0 */
    int status;
    bool err_null;
    dg_error err;
    char text[512];
    int listening_seen; /* ev->listening when the callback ran, if ev */
    dgt_events *ev;
} dgt_send_rec;
void dgt_on_send(dg_socket *sock, int status, const dg_error *err, void *data);

/* A bind or connect callback recorder. */
typedef struct dgt_status_rec {
    int calls;
    int status;
    int listening_seen; /* ev->listening when the callback ran, if ev */
    int connects_seen;  /* ev->connects when the callback ran, if ev */
    dgt_events *ev;
} dgt_status_rec;
void dgt_on_status(dg_socket *sock, int status, const dg_error *err, void *data);

/* A close callback recorder: data is a dgt_close_rec. */
typedef struct dgt_close_rec {
    int calls;
    dgt_events *ev;
} dgt_close_rec;
void dgt_on_close(dg_socket *sock, void *data);

/* dg_error_format into buf, asserting it fitted. */
void dgt_format(const dg_error *err, char *buf, size_t len);

/* A scripted lookup function for the socket option `lookup`, so host-name
 * tests never reach the machine's DNS. Pass dgt_fake_lookup_fn as the option
 * and a dgt_fake_lookup as lookup_data.
 * Answers: an IP literal of the asked family is answered as itself; any
 * other name with answer4/answer6 (default 127.0.0.1 / ::1). When
 * fail_status < 0, hosts equal to fail_host (every host if fail_host is
 * NULL) fail with fail_status instead; with refuse set, the failure is the
 * lookup function's return value instead of a done() call.
 * Modes: SYNC calls done() inside the lookup function; DEFERRED calls it
 * from a 0 ms dgring timer; MANUAL keeps it until dgt_fake_lookup_release(). */
enum { DGT_FAKE_LOOKUP_SYNC = 0, DGT_FAKE_LOOKUP_DEFERRED = 1, DGT_FAKE_LOOKUP_MANUAL = 2 };
#define DGT_FAKE_LOOKUP_LOG 64
#define DGT_FAKE_LOOKUP_PENDING 32
typedef struct dgt_fake_lookup {
    int mode;
    int fail_status;
    const char *fail_host;
    bool refuse;
    const char *answer4;
    const char *answer6;
    const char *manual_host; /* MANUAL applies only to this host if set;
                                other hosts are answered SYNC */
    int calls;
    char hosts[DGT_FAKE_LOOKUP_LOG][DG_HOSTSTRLEN];
    int families[DGT_FAKE_LOOKUP_LOG];
    int answered;     /* done() calls made so far */
    int timers_live;  /* DEFERRED timers not yet closed */
    int npending;
    struct dgt_fake_lookup_pending {
        dg_lookup_done done;
        void *ctx;
        int status;
        char address[DG_ADDRSTRLEN];
        int family;
    } pending[DGT_FAKE_LOOKUP_PENDING];
} dgt_fake_lookup;

int dgt_fake_lookup_fn(dg_socket *sock, const char *host, int family, dg_lookup_done done,
                  void *done_ctx, void *lookup_data);

/* Answers every MANUAL lookup held so far, oldest first (loop thread,
 * outside dgring callbacks or inside them). Returns how many. */
int dgt_fake_lookup_release(dgt_fake_lookup *lk);

/* How many lookups asked for host. */
int dgt_fake_lookup_count(const dgt_fake_lookup *lk, const char *host);

/* Socket options for type and flags with the scripted lookup lk. */
dg_socket_options dgt_fake_lookup_options(dg_socket_type type, unsigned flags, dgt_fake_lookup *lk);

/* The lookup tests' pair: a receiver with dgt_events rx bound to the
 * loopback address of type's family, port 0, and an unbound sender with
 * dgt_events tx whose lookup option is lk. Asserts success; returns the
 * receiver's port (the sockets are rx->sock and tx->sock). */
int dgt_lookup_pair(dg_loop *loop, dg_socket_type type, dgt_fake_lookup *lk, dgt_events *rx,
                    dgt_events *tx);

/* Open file descriptors of this process (entries of /proc/self/fd). */
int dgt_open_fds(void);

/* Runs the loop (DG_RUN_DEFAULT, watchdog timeout_ms) after starting a
 * referenced timer of ms milliseconds, so callbacks that would follow
 * from events already in the kernel get their chance; used only to show
 * that something does NOT happen, never to time anything. */
void dgt_settle(dg_loop *loop, unsigned ms);

#endif

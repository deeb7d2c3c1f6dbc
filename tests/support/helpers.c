/* Shared helpers for the engine test suites (see helpers.h). */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* ---- Watchdog ------------------------------------------------------- */

struct dgt_watchdog {
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool cancelled;
    atomic_bool fired;
    dg_loop *loop;
    unsigned timeout_ms;
    unsigned nudge_ms;
};

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *watchdog_main(void *arg)
{
    dgt_watchdog *w = arg;
    struct timespec deadline;

    deadline_after(&deadline, w->timeout_ms);
    pthread_mutex_lock(&w->mutex);
    while (!w->cancelled) {
        struct timespec until = deadline;

        if (w->nudge_ms) {
            struct timespec nudge;

            deadline_after(&nudge, w->nudge_ms);
            if (nudge.tv_sec < until.tv_sec ||
                (nudge.tv_sec == until.tv_sec && nudge.tv_nsec < until.tv_nsec))
                until = nudge;
        }
        if (pthread_cond_timedwait(&w->cond, &w->mutex, &until) != ETIMEDOUT)
            continue;
        if (until.tv_sec == deadline.tv_sec && until.tv_nsec == deadline.tv_nsec)
            break;
        dg_loop_wake(w->loop);
    }
    /* Keep stopping until cancelled: a stop that lands between two
     * dg_loop_run calls may be consumed by the wrong one. */
    while (!w->cancelled) {
        atomic_store(&w->fired, true);
        pthread_mutex_unlock(&w->mutex);
        dg_loop_stop(w->loop);
        dg_loop_wake(w->loop);
        pthread_mutex_lock(&w->mutex);
        deadline_after(&deadline, 50);
        while (!w->cancelled) {
            if (pthread_cond_timedwait(&w->cond, &w->mutex, &deadline) == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&w->mutex);
    return NULL;
}

unsigned dgt_nudge_ms(void)
{
    const char *text = getenv("DGT_NUDGE_MS");

    return text ? (unsigned)strtoul(text, NULL, 10) : 0;
}

static dgt_watchdog *watchdog_start(dg_loop *loop, unsigned timeout_ms, unsigned nudge_ms)
{
    dgt_watchdog *w = calloc(1, sizeof(*w));
    pthread_condattr_t attr;

    cr_assert_not_null(w);
    w->loop = loop;
    w->timeout_ms = timeout_ms;
    w->nudge_ms = nudge_ms;
    atomic_init(&w->fired, false);
    pthread_mutex_init(&w->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    cr_assert_eq(pthread_create(&w->thread, NULL, watchdog_main, w), 0);
    return w;
}

dgt_watchdog *dgt_watchdog_start(dg_loop *loop, unsigned timeout_ms)
{
    return watchdog_start(loop, timeout_ms, 0);
}

bool dgt_watchdog_fired(const dgt_watchdog *watchdog)
{
    return atomic_load(&((dgt_watchdog *)watchdog)->fired);
}

bool dgt_watchdog_cancel(dgt_watchdog *w)
{
    bool fired;

    pthread_mutex_lock(&w->mutex);
    w->cancelled = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    fired = atomic_load(&w->fired);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mutex);
    free(w);
    return fired;
}

/* ---- Loops ---------------------------------------------------------- */

dg_loop *dgt_loop_new(const dg_loop_options *options)
{
    dg_loop *loop = NULL;
    int rc = dg_loop_new(&loop, options);

    /* No skips: where io_uring is missing the loop falls back to epoll. */
    cr_assert_eq(rc, 0, "dg_loop_new: %s (%d)", dg_err_name(rc), rc);
    cr_assert_not_null(loop);
    return loop;
}

bool dgt_backend_is_epoll(void)
{
    dg_loop *loop = NULL;
    bool epoll = false;

    if (dg_loop_new(&loop, NULL) == 0) {
        epoll = strcmp(dg_loop_backend(loop), "epoll") == 0;
        dg_loop_close(loop);
    }
    return epoll;
}

dg_loop *dgt_loop_new_sized(unsigned recv_buffers, unsigned recv_buffer_size)
{
    dg_loop_options options;

    dg_loop_options_init(&options);
    if (recv_buffers)
        options.recv_buffers = recv_buffers;
    if (recv_buffer_size)
        options.recv_buffer_size = recv_buffer_size;
    return dgt_loop_new(&options);
}

int dgt_run(dg_loop *loop, unsigned timeout_ms)
{
    dgt_watchdog *w = dgt_watchdog_start(loop, timeout_ms);
    int rc = dg_loop_run(loop, DG_RUN_DEFAULT);
    bool fired = dgt_watchdog_cancel(w);

    cr_assert(!fired, "dg_loop_run(DG_RUN_DEFAULT) did not return within %u ms", timeout_ms);
    cr_assert_geq(rc, 0, "dg_loop_run: %s (%d)", dg_err_name(rc), rc);
    return rc;
}

bool dgt_try_run_until(dg_loop *loop, const int *counter, int target, unsigned timeout_ms)
{
    dgt_watchdog *w = watchdog_start(loop, timeout_ms, dgt_nudge_ms());
    int rc = 1;

    while (*counter < target && !dgt_watchdog_fired(w)) {
        rc = dg_loop_run(loop, DG_RUN_ONCE);
        if (rc <= 0)
            break;
    }
    if (dgt_watchdog_cancel(w))
        return false;
    if (*counter >= target)
        return true;
    cr_assert_geq(rc, 0, "dg_loop_run: %s (%d)", dg_err_name(rc), rc);
    cr_assert_fail("the loop stopped being alive while waiting for a count of %d (got %d)", target,
                   *counter);
    return false;
}

void dgt_run_until(dg_loop *loop, const int *counter, int target, unsigned timeout_ms)
{
    /* Reaching the count only after the watchdog woke the loop is a hang
     * too: the loop slept through work it had. */
    bool reached = dgt_try_run_until(loop, counter, target, timeout_ms);

    cr_assert(reached, "waited %u ms for a count of %d, got %d%s", timeout_ms, target, *counter,
              *counter >= target ? " only after the watchdog woke the loop" : "");
}

int dgt_run_once(dg_loop *loop, unsigned timeout_ms)
{
    dgt_watchdog *w = dgt_watchdog_start(loop, timeout_ms);
    int rc = dg_loop_run(loop, DG_RUN_ONCE);
    bool fired = dgt_watchdog_cancel(w);

    cr_assert(!fired, "dg_loop_run(DG_RUN_ONCE) did not return within %u ms", timeout_ms);
    cr_assert_geq(rc, 0, "dg_loop_run: %s (%d)", dg_err_name(rc), rc);
    return rc;
}

void dgt_loop_finish(dg_loop *loop)
{
    int rc;

    cr_assert(!dg_loop_alive(loop), "the loop still has something alive at the end");
    rc = dg_loop_close(loop);
    cr_assert_eq(rc, 0, "dg_loop_close: %s (%d)", dg_err_name(rc), rc);
}

/* ---- Handles -------------------------------------------------------- */

dg_socket *dgt_socket_new(dg_loop *loop, dg_socket_type type, unsigned flags,
                          const dg_socket_handlers *handlers, void *data)
{
    dg_socket_options options = {.type = type, .flags = flags};
    dg_socket *sock = NULL;
    int rc;

    rc = dg_socket_create(loop, &options, handlers, data, &sock);
    cr_assert_eq(rc, 0, "dg_socket_create: %s (%d)", dg_err_name(rc), rc);
    cr_assert_not_null(sock);
    return sock;
}

struct bind_result {
    int calls;
    int status;
};

static void on_bind(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    struct bind_result *result = data;

    (void)sock;
    result->calls++;
    result->status = status;
}

int dgt_bind(dg_loop *loop, dg_socket *sock, const char *address, int port)
{
    struct bind_result result = {0, 0};
    dg_address bound;
    int rc;

    rc = dg_socket_bind(sock, port, address, on_bind, &result);
    cr_assert_eq(rc, 0, "dg_socket_bind: %s (%d)", dg_err_name(rc), rc);
    dgt_run_until(loop, &result.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(result.calls, 1);
    cr_assert_eq(result.status, 0, "bind callback: %s (%d)", dg_err_name(result.status),
                 result.status);
    rc = dg_socket_address(sock, &bound);
    cr_assert_eq(rc, 0, "dg_socket_address: %s (%d)", dg_err_name(rc), rc);
    cr_assert_gt(bound.port, 0);
    return bound.port;
}

static void on_socket_closed(dg_socket *sock, void *data)
{
    (void)sock;
    (*(int *)data)++;
}

void dgt_close_socket(dg_loop *loop, dg_socket *sock)
{
    int closed = 0;
    int rc = dg_socket_close(sock, on_socket_closed, &closed);

    cr_assert_eq(rc, 0, "dg_socket_close: %s (%d)", dg_err_name(rc), rc);
    cr_assert_eq(closed, 0, "close callback ran inside dg_socket_close");
    dgt_run_until(loop, &closed, 1, DGT_WAIT_MS);
    cr_assert_eq(closed, 1);
}

static void on_timer_closed(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

void dgt_close_timer(dg_loop *loop, dg_timer *timer)
{
    int closed = 0;
    int rc = dg_timer_close(timer, on_timer_closed, &closed);

    cr_assert_eq(rc, 0, "dg_timer_close: %s (%d)", dg_err_name(rc), rc);
    cr_assert_eq(closed, 0, "close callback ran inside dg_timer_close");
    dgt_run_until(loop, &closed, 1, DGT_WAIT_MS);
    cr_assert_eq(closed, 1);
}

/* ---- Plain BSD sockets ---------------------------------------------- */

const char *dgt_loopback(int family)
{
    return family == AF_INET6 ? "::1" : "127.0.0.1";
}

int dgt_family(dg_socket_type type)
{
    return type == DG_UDP6 ? AF_INET6 : AF_INET;
}

void dgt_require_ipv6(void)
{
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(AF_INET6, 0, &ss);
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int err;

    if (fd < 0)
        cr_skip_test("no IPv6 sockets here: %s", strerror(errno));
    err = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    close(fd);
    if (err)
        cr_skip_test("IPv6 loopback ::1 cannot be bound here: %s", strerror(err));
}

int dgt_free_dual_stack_port(void)
{
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    socklen_t len = sizeof(any);
    int off = 0;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)), 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&any, len), 0, "bind [::]:0: %s", strerror(errno));
    int port = dgt_plain_port(fd);
    close(fd);
    return port;
}

socklen_t dgt_sockaddr(int family, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_addr = in6addr_loopback;
        return sizeof(*sin6);
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof(*sin);
}

int dgt_plain_socket(int family, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t len = dgt_sockaddr(family, 0, &ss);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0,
                     "SO_RCVBUF: %s", strerror(errno));
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "bind: %s", strerror(errno));
    return fd;
}

int dgt_sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

int dgt_plain_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0, "getsockname: %s",
                 strerror(errno));
    return dgt_sockaddr_port((struct sockaddr *)&ss);
}

void dgt_plain_send(int fd, int family, int port, const void *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sslen = dgt_sockaddr(family, port, &ss);
    ssize_t n;

    do
        n = sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sslen);
    while (n < 0 && errno == EINTR);
    cr_assert_eq(n, (ssize_t)len, "sendto: %s", n < 0 ? strerror(errno) : "short");
}

ssize_t dgt_plain_recv(int fd, void *buf, size_t len, unsigned timeout_ms,
                       struct sockaddr_storage *from)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    socklen_t fromlen = sizeof(*from);
    int ready;

    do
        ready = poll(&pfd, 1, (int)timeout_ms);
    while (ready < 0 && errno == EINTR);
    cr_assert_geq(ready, 0, "poll: %s", strerror(errno));
    if (ready == 0)
        return -1;
    return recvfrom(fd, buf, len, MSG_TRUNC, (struct sockaddr *)from, from ? &fromlen : NULL);
}

ssize_t dgt_plain_recv_nowait(int fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT | MSG_TRUNC);

    if (n < 0) {
        cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
        return -1;
    }
    return n;
}

void dgt_fill(void *buf, size_t len, unsigned seed)
{
    unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i * 131u + (i >> 8) * 7u + seed * 29u + 1u);
}

size_t dgt_check(const void *buf, size_t len, unsigned seed)
{
    const unsigned char *p = buf;

    for (size_t i = 0; i < len; i++) {
        if (p[i] != (unsigned char)(i * 131u + (i >> 8) * 7u + seed * 29u + 1u))
            return i;
    }
    return len;
}

void dgt_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- dgram conformance suites (tests/dgram/) ---------------------------- */

#include <dirent.h>
#include <stdio.h>

void dgt_events_log(dgt_events *ev, char letter)
{
    size_t n = strlen(ev->log);

    if (n + 1 < sizeof(ev->log)) {
        ev->log[n] = letter;
        ev->log[n + 1] = '\0';
    }
}

static void events_check_sock(dgt_events *ev, dg_socket *sock)
{
    if (ev->sock)
        cr_expect_eq(sock, ev->sock, "a handler got another socket than its own");
}

static void events_message(dg_socket *sock, const dg_message *msg, void *data)
{
    dgt_events *ev = data;

    events_check_sock(ev, sock);
    ev->messages++;
    dgt_events_log(ev, 'M');
    ev->length = msg->length;
    ev->size = msg->size;
    ev->flags = msg->flags;
    ev->bytes += msg->length;
    if (msg->length == 0)
        ev->empty_messages++;
    memcpy(ev->data, msg->data, msg->length < DGT_KEEP_BYTES ? msg->length : DGT_KEEP_BYTES);
    ev->from_rc = dg_address_from_sockaddr(msg->addr, msg->addrlen, &ev->from);
    if (ev->message_hook)
        ev->message_hook(ev, sock, msg);
}

static void events_listening(dg_socket *sock, void *data)
{
    dgt_events *ev = data;

    events_check_sock(ev, sock);
    ev->listening++;
    dgt_events_log(ev, 'L');
    if (ev->listening_hook)
        ev->listening_hook(ev, sock);
}

static void events_error(dg_socket *sock, const dg_error *err, void *data)
{
    dgt_events *ev = data;

    events_check_sock(ev, sock);
    cr_expect_not_null(err, "on_error without an error record");
    ev->errors++;
    dgt_events_log(ev, 'E');
    if (err) {
        ev->error = *err;
        if (dg_error_format(err, ev->error_text, sizeof(ev->error_text)) < 0)
            ev->error_text[0] = '\0';
    }
    if (ev->error_hook)
        ev->error_hook(ev, sock, err);
}

static void events_connect(dg_socket *sock, void *data)
{
    dgt_events *ev = data;

    events_check_sock(ev, sock);
    ev->connects++;
    dgt_events_log(ev, 'K');
}

static void events_close(dg_socket *sock, void *data)
{
    dgt_events *ev = data;

    events_check_sock(ev, sock);
    ev->closed++;
    dgt_events_log(ev, 'C');
}

const dg_socket_handlers dgt_events_handlers = {
    .on_message = events_message,
    .on_listening = events_listening,
    .on_close = events_close,
    .on_error = events_error,
    .on_connect = events_connect,
};

dg_socket *dgt_events_socket(dg_loop *loop, dg_socket_type type, unsigned flags,
                             dgt_events *ev)
{
    ev->sock = dgt_socket_new(loop, type, flags, &dgt_events_handlers, ev);
    return ev->sock;
}

int dgt_events_socket_opts(dg_loop *loop, const dg_socket_options *options, dgt_events *ev,
                           dg_socket **out)
{
    int rc = dg_socket_create(loop, options, &dgt_events_handlers, ev, out);

    if (rc == 0)
        ev->sock = *out;
    return rc;
}

void dgt_numbered_fill(void *buf, size_t len, uint32_t seq)
{
    memcpy(buf, &seq, sizeof(seq));
    dgt_fill((char *)buf + sizeof(seq), len - sizeof(seq), seq);
}

void dgt_numbered_check(dgt_numbered *n, const dg_message *msg)
{
    uint32_t seq;
    if (msg->length < sizeof(seq) || msg->length != msg->size || msg->flags != 0) {
        n->bad++;
        return;
    }
    memcpy(&seq, msg->data, sizeof(seq));
    size_t rest = msg->length - sizeof(seq);
    if (seq != n->next_seq || dgt_check((const char *)msg->data + sizeof(seq), rest, seq) != rest)
        n->bad++;
    n->next_seq = seq + 1;
    n->messages++;
}

void dgt_on_numbered(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    dgt_numbered_check(data, msg);
}

void dgt_on_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    dgt_send_rec *r = data;

    (void)sock;
    r->calls++;
    r->errors += status < 0;
    r->status = status;
    r->err_null = err == NULL;
    if (err) {
        r->err = *err;
        if (dg_error_format(err, r->text, sizeof(r->text)) < 0)
            r->text[0] = '\0';
    }
    if (r->ev) {
        r->listening_seen = r->ev->listening;
        dgt_events_log(r->ev, 'S');
    }
}

void dgt_on_status(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    dgt_status_rec *r = data;

    (void)sock;
    r->calls++;
    r->status = status;
    if (r->ev) {
        r->listening_seen = r->ev->listening;
        r->connects_seen = r->ev->connects;
        dgt_events_log(r->ev, 'B');
    }
}

void dgt_on_close(dg_socket *sock, void *data)
{
    dgt_close_rec *r = data;

    (void)sock;
    r->calls++;
    if (r->ev)
        dgt_events_log(r->ev, 'X');
}

void dgt_format(const dg_error *err, char *buf, size_t len)
{
    int n = dg_error_format(err, buf, len);

    cr_assert_geq(n, 0, "dg_error_format: %s", dg_err_name(n));
    cr_assert_lt((size_t)n, len, "dg_error_format wanted %d bytes", n);
}

/* ---- The scripted lookup -------------------------------------------- */

struct deferred_answer {
    dg_timer *timer;
    dgt_fake_lookup *lk;
    struct dgt_fake_lookup_pending answer;
};

static bool is_literal(const char *host, int family)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char copy[DG_ADDRSTRLEN];
    char *pct;

    snprintf(copy, sizeof(copy), "%s", host);
    pct = strchr(copy, '%');
    if (pct && family == 6)
        *pct = '\0';
    return inet_pton(family == 6 ? AF_INET6 : AF_INET, copy, buf) == 1;
}

static void deferred_closed(dg_timer *timer, void *data)
{
    struct deferred_answer *d = data;

    (void)timer;
    d->lk->timers_live--;
    free(d);
}

static void deferred_fire(dg_timer *timer, void *data)
{
    struct deferred_answer *d = data;
    struct dgt_fake_lookup_pending *a = &d->answer;

    d->lk->answered++;
    a->done(a->ctx, a->status, a->status == 0 ? a->address : NULL, a->family);
    cr_expect_eq(dg_timer_close(timer, deferred_closed, d), 0);
}

int dgt_fake_lookup_fn(dg_socket *sock, const char *host, int family, dg_lookup_done done,
                  void *done_ctx, void *lookup_data)
{
    dgt_fake_lookup *lk = lookup_data;
    struct dgt_fake_lookup_pending a;
    bool fail;
    int mode = lk->mode;

    cr_expect_not_null(host);
    cr_expect(family == 4 || family == 6, "lookup family %d", family);
    if (sock)
        cr_expect_eq(family, dg_socket_get_type(sock) == DG_UDP6 ? 6 : 4,
                     "lookup family %d for a udp%d socket", family,
                     dg_socket_get_type(sock) == DG_UDP6 ? 6 : 4);
    if (lk->calls < DGT_FAKE_LOOKUP_LOG) {
        snprintf(lk->hosts[lk->calls], DG_HOSTSTRLEN, "%s", host);
        lk->families[lk->calls] = family;
    }
    lk->calls++;
    fail = lk->fail_status < 0 && (!lk->fail_host || strcmp(lk->fail_host, host) == 0);
    if (fail && lk->refuse)
        return lk->fail_status;
    memset(&a, 0, sizeof(a));
    a.done = done;
    a.ctx = done_ctx;
    a.family = family;
    if (fail) {
        a.status = lk->fail_status;
    } else if (is_literal(host, family)) {
        snprintf(a.address, sizeof(a.address), "%s", host);
    } else {
        const char *answer = family == 6 ? lk->answer6 : lk->answer4;

        snprintf(a.address, sizeof(a.address), "%s",
                 answer ? answer : family == 6 ? "::1" : "127.0.0.1");
    }
    if (mode == DGT_FAKE_LOOKUP_MANUAL && lk->manual_host && strcmp(lk->manual_host, host) != 0)
        mode = DGT_FAKE_LOOKUP_SYNC;
    if (mode == DGT_FAKE_LOOKUP_MANUAL) {
        cr_assert_lt(lk->npending, DGT_FAKE_LOOKUP_PENDING, "too many manual lookups held");
        lk->pending[lk->npending++] = a;
        return 0;
    }
    if (mode == DGT_FAKE_LOOKUP_DEFERRED) {
        struct deferred_answer *d = calloc(1, sizeof(*d));

        cr_assert_not_null(d);
        d->lk = lk;
        d->answer = a;
        cr_assert_eq(dg_timer_new(dg_socket_loop(sock), &d->timer), 0);
        cr_assert_eq(dg_timer_start(d->timer, 0, 0, deferred_fire, d), 0);
        lk->timers_live++;
        return 0;
    }
    lk->answered++;
    done(done_ctx, a.status, a.status == 0 ? a.address : NULL, a.family);
    return 0;
}

int dgt_fake_lookup_release(dgt_fake_lookup *lk)
{
    int n = lk->npending;

    /* Copy first: done() may start another lookup that lands in pending. */
    struct dgt_fake_lookup_pending held[DGT_FAKE_LOOKUP_PENDING];

    memcpy(held, lk->pending, sizeof(held[0]) * (size_t)n);
    lk->npending = 0;
    for (int i = 0; i < n; i++) {
        lk->answered++;
        held[i].done(held[i].ctx, held[i].status, held[i].status == 0 ? held[i].address : NULL,
                     held[i].family);
    }
    return n;
}

int dgt_fake_lookup_count(const dgt_fake_lookup *lk, const char *host)
{
    int n = 0;

    for (int i = 0; i < lk->calls && i < DGT_FAKE_LOOKUP_LOG; i++)
        if (strcmp(lk->hosts[i], host) == 0)
            n++;
    return n;
}

dg_socket_options dgt_fake_lookup_options(dg_socket_type type, unsigned flags, dgt_fake_lookup *lk)
{
    dg_socket_options options = {
        .type = type, .flags = flags, .lookup = dgt_fake_lookup_fn, .lookup_data = lk};

    return options;
}

int dgt_lookup_pair(dg_loop *loop, dg_socket_type type, dgt_fake_lookup *lk, dgt_events *rx,
                    dgt_events *tx)
{
    dg_socket_options options = dgt_fake_lookup_options(type, 0, lk);
    dg_socket *sock = NULL;
    int port;

    dgt_events_socket(loop, type, 0, rx);
    port = dgt_bind(loop, rx->sock, dgt_loopback(dgt_family(type)), 0);
    cr_assert_eq(dgt_events_socket_opts(loop, &options, tx, &sock), 0);
    return port;
}

int dgt_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *entry;
    int n = 0;

    cr_assert_not_null(dir, "opendir /proc/self/fd: %s", strerror(errno));
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own fd */
}

static void settle_fired(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

void dgt_settle(dg_loop *loop, unsigned ms)
{
    dg_timer *timer;
    int fired = 0;

    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, ms, 0, settle_fired, &fired), 0);
    dgt_run_until(loop, &fired, 1, DGT_WAIT_MS + ms);
    dgt_close_timer(loop, timer);
}

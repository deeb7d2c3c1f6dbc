/* perf/libuv_bench.c: libuv (Debian's libuv1-dev, 1.44) uv_udp_t peers.
 *
 *   libuv_bench recv        uv_udp_t with UV_UDP_RECVMMSG: the alloc
 *                           callback hands over 20 x 64 KiB so libuv reads
 *                           20 datagrams per recvmmsg (its maximum)
 *   libuv_bench send        --window uv_udp_send requests in flight (64),
 *                           refilled from the send callback (libuv flushes
 *                           its queue with sendmmsg)
 *   libuv_bench send-try    uv_udp_try_send in a loop: one sendmsg each
 *   libuv_bench echo        the recv socket sends every datagram back to its
 *                           sender with uv_udp_try_send, or, when libuv
 *                           still has queued sends (UV_EAGAIN), a copy with
 *                           uv_udp_send behind them; ends after --count
 *                           echoes or on SIGTERM
 */
#include "common.h"

#include <uv.h>

#define MMSG_BYTES (20u * 65536u)

typedef struct bench {
    const perf_opts *o;
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer;
    perf_rx rx;
    int port;
    bool done;
    long long proc_drops;
    /* sender */
    struct sockaddr_in to;
    uint64_t issued, completed, errors;
    uint64_t start_ns, end_ns, deadline_ns;
    double cpu0;
    unsigned inflight;
} bench;

static bench g;

static void uv_die(const char *what, int code)
{
    fprintf(stderr, "%s: %s\n", what, uv_strerror(code));
    exit(1);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char *mem;
    if (!mem && !(mem = malloc(MMSG_BYTES)))
        perf_die("malloc");
    *buf = uv_buf_init(mem, MMSG_BYTES);
}

/* The receiver's other handle: its idle timer (recv) or SIGTERM (echo). */
static uv_handle_t *g_side;

static void finish(void)
{
    if (g.done)
        return;
    g.done = true;
    CALLGRIND_TOGGLE_COLLECT;
    g.proc_drops = perf_proc_drops(g.port);
    uv_udp_recv_stop(&g.udp);
    uv_close((uv_handle_t *)&g.udp, NULL);
    uv_close(g_side, NULL);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    (void)h;
    (void)flags;
    if (nread < 0) {
        fprintf(stderr, "recv: %s\n", uv_strerror((int)nread));
        return;
    }
    if (addr == NULL || g.done) /* nothing more for now, or the MMSG_FREE call */
        return;
    perf_rx_one(&g.rx, buf->base, (size_t)nread);
    if (g.o->count && g.rx.packets >= g.o->count)
        finish();
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (perf_rx_idle_check(&g.rx, g.o->idle_ms))
        finish();
}

/* g.udp bound to 127.0.0.1:--port with recvmmsg, receiving into recv_cb. */
static void open_receiver(const perf_opts *o, uv_udp_recv_cb recv_cb)
{
    g.o = o;
    g.loop = uv_default_loop();
    int r = uv_udp_init_ex(g.loop, &g.udp, AF_INET | UV_UDP_RECVMMSG);
    if (r < 0)
        uv_die("uv_udp_init_ex", r);
    struct sockaddr_in a = perf_loopback(o->port);
    if ((r = uv_udp_bind(&g.udp, (const struct sockaddr *)&a, 0)) < 0)
        uv_die("uv_udp_bind", r);
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&g.udp, &fd);
    if (o->rcvbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->rcvbuf, sizeof(o->rcvbuf)) < 0)
        perf_die("SO_RCVBUFFORCE");
    g.port = perf_bound_port(fd);
    if ((r = uv_udp_recv_start(&g.udp, on_alloc, recv_cb)) < 0)
        uv_die("uv_udp_recv_start", r);
}

static int do_recv(const perf_opts *o)
{
    open_receiver(o, on_recv);
    uv_timer_init(g.loop, &g.timer);
    g_side = (uv_handle_t *)&g.timer;
    uv_timer_start(&g.timer, on_tick, 50, 50);
    perf_ready(g.port);
    CALLGRIND_TOGGLE_COLLECT;
    uv_run(g.loop, UV_RUN_DEFAULT);
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"libuv\":\"%s\",\"recvmmsg\":%s", uv_version_string(),
             uv_udp_using_recvmmsg(&g.udp) ? "true" : "false");
    perf_rx_report("libuv", &g.rx, g.proc_drops, "/proc/net/udp", extra);
    return 0;
}

/* ---- Senders ----------------------------------------------------------- */

/* Requests come from a free list, as a careful libuv user would keep. */
typedef struct send_req {
    uv_udp_send_t req;
    struct send_req *next;
    unsigned char data[];
} send_req;

static send_req *g_free;

static void send_one(void);

static void on_sent(uv_udp_send_t *req, int status)
{
    g.inflight--;
    if (status >= 0)
        g.completed++;
    else
        g.errors++;
    send_req *sr = (send_req *)req;
    sr->next = g_free;
    g_free = sr;
    if (!g.done) {
        if (g.o->count) {
            if (g.issued >= g.o->count)
                g.done = true;
        } else if ((g.completed & 63) == 0 && perf_now_ns() >= g.deadline_ns) {
            g.done = true;
        }
    }
    if (!g.done)
        send_one();
    else if (g.inflight == 0 && g.end_ns == 0) {
        g.end_ns = perf_now_ns();
        CALLGRIND_TOGGLE_COLLECT;
        uv_close((uv_handle_t *)&g.udp, NULL);
    }
}

static void send_one(void)
{
    size_t size = (size_t)g.o->size;
    send_req *r = g_free;
    if (r)
        g_free = r->next;
    else if (!(r = malloc(sizeof(*r) + (size ? size : 1))))
        perf_die("malloc");
    perf_stamp_seq(r->data, size, g.issued);
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)size);
    int ret = uv_udp_send(&r->req, &g.udp, &b, 1, (const struct sockaddr *)&g.to, on_sent);
    if (ret < 0)
        uv_die("uv_udp_send", ret);
    g.issued++;
    g.inflight++;
}

static int do_send(const perf_opts *o, bool try_send)
{
    g.o = o;
    g.loop = uv_default_loop();
    g.to = perf_loopback(o->port);
    int r = uv_udp_init(g.loop, &g.udp);
    if (r < 0)
        uv_die("uv_udp_init", r);
    struct sockaddr_in a = perf_loopback(0);
    if ((r = uv_udp_bind(&g.udp, (const struct sockaddr *)&a, 0)) < 0)
        uv_die("uv_udp_bind", r);
    g.start_ns = perf_now_ns();
    g.cpu0 = perf_cpu_seconds();
    g.deadline_ns = g.start_ns + (uint64_t)(o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    if (try_send) {
        size_t size = (size_t)o->size;
        unsigned char *data = calloc(1, size ? size : 1);
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)size);
        for (;;) {
            perf_stamp_seq(data, size, g.issued);
            int ret = uv_udp_try_send(&g.udp, &b, 1, (const struct sockaddr *)&g.to);
            g.issued++;
            if (ret >= 0)
                g.completed++;
            else
                g.errors++;
            if (o->count) {
                if (g.issued >= o->count)
                    break;
            } else if ((g.issued & 63) == 0 && perf_now_ns() >= g.deadline_ns) {
                break;
            }
        }
        g.end_ns = perf_now_ns();
        CALLGRIND_TOGGLE_COLLECT;
        uv_close((uv_handle_t *)&g.udp, NULL);
    } else {
        for (int i = 0; i < o->window; i++)
            send_one();
    }
    uv_run(g.loop, UV_RUN_DEFAULT);
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"libuv\":\"%s\",\"window\":%d,\"size\":%d",
             uv_version_string(), try_send ? 1 : o->window, o->size);
    perf_tx_report(try_send ? "libuv-try" : "libuv", g.completed, g.errors, g.start_ns, g.end_ns,
                   g.cpu0, extra);
    return 0;
}

/* ---- Echo ---------------------------------------------------------------- */

typedef struct echo_req {
    uv_udp_send_t req;
    uv_buf_t buf;
    char data[];
} echo_req;

static uint64_t g_echoed, g_echo_queued, g_echo_failed;
static uv_signal_t g_sigterm;

static void on_echo_sent(uv_udp_send_t *req, int status)
{
    if (status < 0)
        g_echo_failed++;
    free(req);
}

static void on_echo_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                         const struct sockaddr *addr, unsigned flags)
{
    (void)flags;
    if (nread < 0 || addr == NULL || g.done)
        return;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int r = uv_udp_try_send(h, &b, 1, addr);
    if (r == UV_EAGAIN) { /* sends are queued: this one goes behind them */
        echo_req *e = malloc(sizeof(*e) + (size_t)nread);
        if (!e)
            perf_die("malloc");
        memcpy(e->data, buf->base, (size_t)nread);
        e->buf = uv_buf_init(e->data, (unsigned)nread);
        if ((r = uv_udp_send(&e->req, h, &e->buf, 1, addr, on_echo_sent)) < 0)
            free(e);
        else
            g_echo_queued++;
    }
    if (r < 0)
        g_echo_failed++;
    else
        g_echoed++;
    if (g.o->count && g_echoed + g_echo_failed >= g.o->count)
        finish();
}

static void on_sigterm(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    finish();
}

static int do_echo(const perf_opts *o)
{
    open_receiver(o, on_echo_recv);
    uv_signal_init(g.loop, &g_sigterm);
    g_side = (uv_handle_t *)&g_sigterm;
    uv_signal_start(&g_sigterm, on_sigterm, SIGTERM);
    perf_ready(g.port);
    CALLGRIND_TOGGLE_COLLECT;
    uv_run(g.loop, UV_RUN_DEFAULT);
    printf("{\"peer\":\"libuv\",\"echoed\":%llu,\"queued\":%llu,\"send_errors\":%llu,"
           "\"drops\":%lld,\"libuv\":\"%s\",\"recvmmsg\":%s}\n",
           (unsigned long long)g_echoed, (unsigned long long)g_echo_queued,
           (unsigned long long)g_echo_failed, g.proc_drops, uv_version_string(),
           uv_udp_using_recvmmsg(&g.udp) ? "true" : "false");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    perf_opts o;
    perf_parse(&o, argc, argv);
    if (strcmp(o.mode, "recv") == 0)
        return do_recv(&o);
    if (strcmp(o.mode, "send") == 0)
        return do_send(&o, false);
    if (strcmp(o.mode, "send-try") == 0)
        return do_send(&o, true);
    if (strcmp(o.mode, "echo") == 0)
        return do_echo(&o);
    perf_usage(argv[0]);
    return 2;
}

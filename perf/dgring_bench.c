/* perf/dgring_bench.c: dgring's receiver and sender for the benchmark,
 * written on the public API only (<dgring.h>), as a telemetry user would.
 *
 *   dgring_bench recv        counts datagrams; loop options recv_buffers
 *                            4096, recv_buffer_size 2048 (with --gro:
 *                            1024 buffers of 65507 bytes and DG_SOCKET_GRO);
 *                            --buffers N changes recv_buffers;
 *                            --wait-nr 1 waits for one completion at a
 *                            time (batch_wait_us = DG_BATCH_WAIT_NONE)
 *   dgring_bench recv-batch  the same receiver with on_message_batch: the
 *                            datagrams of one loop turn in one call
 *   dgring_bench send        --window sends in flight (64), each refilled
 *                            from its send callback; dgring's defaults, so
 *                            runs of equal datagrams may leave as GSO
 *   dgring_bench send-nogso  the same with DG_SOCKET_NO_GSO: one send SQE
 *                            per datagram, batched per io_uring_enter
 *   dgring_bench send-ebuf, send-ebuf-nogso
 *                            the same two, each datagram written into an
 *                            engine send buffer (dg_send_buffer_get) and
 *                            sent without a copy (dg_socket_send_buffer_to);
 *                            --zerocopy also sets send_zerocopy_min to 1
 *
 * --window 1 is the "single" API: one datagram, then its callback, then
 * the next.
 */
#include "common.h"

#include <dgring.h>

#include "dgring_common.h"

#define RECV_BUFFERS 4096
#define RECV_BUFFER_SIZE 2048

typedef struct bench {
    const perf_opts *o;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *timer;
    perf_rx rx;
    int port;
    bool done;
    /* sender */
    struct sockaddr_in to;
    unsigned char *payload;
    uint64_t issued, completed, errors, refused;
    uint64_t start_ns, end_ns, deadline_ns;
    double cpu0;
    unsigned inflight;
    bool ebuf;        /* engine send buffers */
    unsigned starved; /* sends waiting for a buffer (zero-copy) */
    bool retry_posted;
} bench;

static void finish(bench *b)
{
    if (b->done)
        return;
    b->done = true;
    if (b->timer)
        dg_timer_close(b->timer, NULL, NULL);
    dg_socket_close(b->sock, NULL, NULL);
}

/* ---- Receiver ---------------------------------------------------------- */

static dg_socket_stats g_stats;
static long long g_proc_drops = -1;

static void recv_finish(bench *b)
{
    CALLGRIND_TOGGLE_COLLECT;
    dg_socket_get_stats(b->sock, &g_stats);
    g_proc_drops = perf_proc_drops(b->port);
    finish(b);
}

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)sock;
    bench *b = data;
    perf_rx_one(&b->rx, msg->data, msg->length);
    if (b->o->count && b->rx.packets >= b->o->count && !b->done)
        recv_finish(b);
}

#ifdef DG_MESSAGE_BATCH_MAX
static void on_message_batch(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    (void)sock;
    bench *b = data;
    for (size_t i = 0; i < count; i++)
        perf_rx_one(&b->rx, msgs[i].data, msgs[i].length);
    if (b->o->count && b->rx.packets >= b->o->count && !b->done)
        recv_finish(b);
}
#endif

static void on_idle_tick(dg_timer *t, void *data)
{
    (void)t;
    bench *b = data;
    if (!b->done && perf_rx_idle_check(&b->rx, b->o->idle_ms))
        recv_finish(b);
}

static void on_recv_listening(dg_socket *sock, void *data)
{
    bench *b = data;
    dg_address a;
    if (dg_socket_address(sock, &a) < 0)
        perf_die_dg("address", -EBADF);
    b->port = a.port;
    int rcvbuf = b->o->rcvbuf;
    if (rcvbuf > 0 &&
        setsockopt(dg_socket_fd(sock), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        perf_die("SO_RCVBUFFORCE");
    perf_ready(b->port);
    CALLGRIND_TOGGLE_COLLECT;
}

static int do_recv(const perf_opts *o, bool batch)
{
    bench b = {.o = o};
    dg_loop_options lo;
    dg_loop_options_init(&lo);
    lo.recv_buffers = o->buffers ? (unsigned)o->buffers : o->gro ? 1024 : RECV_BUFFERS;
    lo.recv_buffer_size = o->gro ? 65507 : RECV_BUFFER_SIZE;
    if (o->wait_nr == 1)
        lo.batch_wait_us = DG_BATCH_WAIT_NONE;
    int ret = dg_loop_new(&b.loop, &lo);
    if (ret < 0)
        perf_die_dg("dg_loop_new", ret);
    dg_socket_options so = {.type = DG_UDP4};
    if (o->gro) {
#ifdef DG_SOCKET_GRO
        so.flags |= DG_SOCKET_GRO;
#else
        fprintf(stderr, "this dgring has no DG_SOCKET_GRO\n");
        return 3;
#endif
    }
    dg_socket_handlers h = {
        .on_message = on_message, .on_listening = on_recv_listening, .on_error = perf_dg_on_error};
    if (batch) {
#ifdef DG_MESSAGE_BATCH_MAX
        h.on_message_batch = on_message_batch;
#else
        fprintf(stderr, "this dgring has no on_message_batch\n");
        return 3;
#endif
    }
    if ((ret = dg_socket_create(b.loop, &so, &h, &b, &b.sock)) < 0)
        perf_die_dg("dg_socket_create", ret);
    if ((ret = dg_socket_bind(b.sock, o->port, "127.0.0.1", NULL, NULL)) < 0)
        perf_die_dg("dg_socket_bind", ret);
    if ((ret = dg_timer_new(b.loop, &b.timer)) < 0 ||
        (ret = dg_timer_start(b.timer, 50, 50, on_idle_tick, &b)) < 0)
        perf_die_dg("timer", ret);
    if ((ret = dg_loop_run(b.loop, DG_RUN_DEFAULT)) < 0)
        perf_die_dg("dg_loop_run", ret);
    char extra[480];
    perf_dg_rx_json(&g_stats, &lo, extra, sizeof(extra));
    perf_dg_loop_json(b.loop, extra, sizeof(extra));
    size_t used = strlen(extra);
    snprintf(extra + used, sizeof(extra) - used, ",\"gro\":%s", o->gro ? "true" : "false");
    perf_rx_report(o->gro ? (batch ? "dgring+gro-rxbatch" : "dgring+gro")
                          : (batch ? "dgring-rxbatch" : "dgring"),
                   &b.rx, g_proc_drops, "/proc/net/udp",
                   extra);
    dg_loop_close(b.loop);
    return 0;
}

/* ---- Sender ------------------------------------------------------------ */

static void send_next(bench *b);

/* After the last callback: the sender's clock stops and its socket closes. */
static void maybe_end(bench *b)
{
    if (b->inflight == 0 && b->end_ns == 0 && !b->retry_posted) {
        b->end_ns = perf_now_ns();
        CALLGRIND_TOGGLE_COLLECT;
        if (b->timer)
            dg_timer_close(b->timer, NULL, NULL);
        b->timer = NULL;
        dg_socket_close(b->sock, NULL, NULL);
    }
}

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    bench *b = data;
    b->inflight--;
    if (status >= 0)
        b->completed++;
    else
        b->errors++;
    if (!b->done) {
        if (b->o->count) {
            if (b->issued >= b->o->count)
                b->done = true;
        } else if ((b->completed & 63) == 0 && perf_now_ns() >= b->deadline_ns) {
            b->done = true;
        }
    }
    if (!b->done)
        send_next(b);
    else
        maybe_end(b);
}

/* Zero-copy buffers return with the kernel's notifications, which can
 * lag the send callbacks by thousands; a send that finds the pool empty
 * waits for the next loop turn instead of shrinking the window. */
static void retry_starved(dg_loop *loop, void *arg)
{
    (void)loop;
    bench *b = arg;
    b->retry_posted = false;
    unsigned n = b->starved;
    b->starved = 0;
    while (n-- > 0 && !b->done)
        send_next(b);
    if (b->done)
        maybe_end(b);
}

static void send_next(bench *b)
{
    int ret;
    if (b->ebuf) {
        dg_send_buffer *buf;
        if ((ret = dg_send_buffer_get(b->loop, &buf)) == -ENOBUFS) {
            b->starved++;
            if (!b->retry_posted && dg_loop_post(b->loop, retry_starved, b) == 0)
                b->retry_posted = true;
            return;
        }
        if (ret < 0)
            perf_die_dg("dg_send_buffer_get", ret);
        perf_stamp_seq(buf->data, (size_t)b->o->size, b->issued);
        ret = dg_socket_send_buffer_to(b->sock, buf, (size_t)b->o->size,
                                       (const struct sockaddr *)&b->to, sizeof(b->to), on_sent,
                                       b);
        if (ret < 0)
            dg_send_buffer_put(b->loop, buf);
    } else {
        perf_stamp_seq(b->payload, (size_t)b->o->size, b->issued);
        ret = dg_socket_send_to(b->sock, b->payload, (size_t)b->o->size,
                                (const struct sockaddr *)&b->to, sizeof(b->to), on_sent, b);
    }
    if (ret < 0) {
        if (ret == DG_ERR_SEND_QUEUE_FULL) {
            b->refused++;
            return;
        }
        perf_die_dg("dg_socket_send_to", ret);
    }
    b->issued++;
    b->inflight++;
}

static void on_send_listening(dg_socket *sock, void *data)
{
    (void)sock;
    bench *b = data;
    b->start_ns = perf_now_ns();
    b->cpu0 = perf_cpu_seconds();
    b->deadline_ns = b->start_ns + (uint64_t)(b->o->duration * 1e9);
    CALLGRIND_TOGGLE_COLLECT;
    for (int i = 0; i < b->o->window; i++) {
        if (b->o->count && b->issued >= b->o->count)
            break;
        send_next(b);
    }
}

static int do_send(const perf_opts *o, bool nogso, bool ebuf, bool zerocopy)
{
    bench b = {.o = o, .ebuf = ebuf};
    b.to = perf_loopback(o->port);
    b.payload = calloc(1, o->size ? (size_t)o->size : 1);
    dg_loop_options lo;
    dg_loop_options_init(&lo);
    lo.recv_buffers = 64; /* it receives nothing */
    lo.recv_buffer_size = RECV_BUFFER_SIZE;
    if (ebuf) {
        /* Zero-copy buffers come back with the kernel's notifications,
         * a little after the send callbacks: room for those in flight. */
        lo.send_buffers = (unsigned)o->window * (zerocopy ? 64 : 1) + 64;
        lo.send_buffer_size = o->size > 0 ? (unsigned)o->size : 1;
        lo.send_zerocopy_min = zerocopy ? 1 : 0;
    }
    int ret = dg_loop_new(&b.loop, &lo);
    if (ret < 0)
        perf_die_dg("dg_loop_new", ret);
    dg_socket_options so = {.type = DG_UDP4};
    if (nogso) {
#ifdef DG_SOCKET_NO_GSO
        so.flags |= DG_SOCKET_NO_GSO;
#endif
    }
    dg_socket_handlers h = {.on_listening = on_send_listening, .on_error = perf_dg_on_error};
    if ((ret = dg_socket_create(b.loop, &so, &h, &b, &b.sock)) < 0)
        perf_die_dg("dg_socket_create", ret);
    if ((ret = dg_socket_bind(b.sock, 0, "127.0.0.1", NULL, NULL)) < 0)
        perf_die_dg("dg_socket_bind", ret);
    if ((ret = dg_loop_run(b.loop, DG_RUN_DEFAULT)) < 0)
        perf_die_dg("dg_loop_run", ret);
    char extra[160];
    snprintf(extra, sizeof(extra),
             ",\"window\":%d,\"size\":%d,\"gso\":%s,\"engine_buffers\":%s,\"zerocopy\":%s,"
             "\"refused\":%llu",
             o->window, o->size, nogso ? "false" : "true", ebuf ? "true" : "false",
             zerocopy ? "true" : "false", (unsigned long long)b.refused);
    const char *peer = o->window == 1 ? "dgring" : nogso ? "dgring-nogso" : "dgring";
    perf_tx_report(peer, b.completed, b.errors, b.start_ns, b.end_ns, b.cpu0, extra);
    dg_loop_close(b.loop);
    return 0;
}

int main(int argc, char **argv)
{
    perf_opts o;
    perf_parse(&o, argc, argv);
    if (strcmp(o.mode, "recv") == 0)
        return do_recv(&o, false);
    if (strcmp(o.mode, "recv-batch") == 0)
        return do_recv(&o, true);
    bool zc = o.zerocopy;
    if (strcmp(o.mode, "send") == 0)
        return do_send(&o, false, false, false);
    if (strcmp(o.mode, "send-nogso") == 0)
        return do_send(&o, true, false, false);
    if (strcmp(o.mode, "send-ebuf") == 0)
        return do_send(&o, false, true, zc);
    if (strcmp(o.mode, "send-ebuf-nogso") == 0)
        return do_send(&o, true, true, zc);
    perf_usage(argv[0]);
    return 2;
}

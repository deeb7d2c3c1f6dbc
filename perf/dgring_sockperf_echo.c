/* perf/dgring_sockperf_echo.c: an echo on dgring's public API that answers
 * sockperf's ping-pong protocol, for the pingpong scenario (until
 * `dgring-echo --sockperf` exists; perf/run prefers that when it does).
 *
 * sockperf's header (its src/message.h), network byte order: a 64-bit
 * sequence number at 0, 16-bit flags at 8, the 32-bit length at 10 (14
 * bytes). Its server answers messages flagged CLIENT (1) and PONG_REQUEST
 * (2), not WARMUP (4), with CLIENT cleared; so does this.
 *
 *   dgring_sockperf_echo [--port P]     prints "ready PORT PID"
 * Default loop options (the echo is a latency test, not a buffer test).
 */
#include "common.h"

#include <dgring.h>
#include <signal.h>

static unsigned char g_reply[65536];

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)data;
    if (msg->length < 14 || msg->length > sizeof(g_reply))
        return;
    const unsigned char *in = msg->data;
    unsigned flags = (unsigned)in[8] << 8 | in[9];
    if (!(flags & 1) || (flags & 4) || !(flags & 2))
        return;
    memcpy(g_reply, in, msg->length); /* msg->data is read-only */
    flags &= ~1u;
    g_reply[8] = (unsigned char)(flags >> 8);
    g_reply[9] = (unsigned char)flags;
    /* the payload is copied by the call; NULL callback: errors go to on_error */
    dg_socket_send_to(sock, g_reply, msg->length, msg->addr, msg->addrlen, NULL, NULL);
}

static void on_listening(dg_socket *sock, void *data)
{
    (void)data;
    dg_address a;
    dg_socket_address(sock, &a);
    perf_ready(a.port);
}

static void on_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    char text[256];
    dg_error_format(err, text, sizeof(text));
    fprintf(stderr, "dgring error: %s\n", text);
}

static dg_loop *g_loop;

static void on_signal(int sig)
{
    (void)sig;
    dg_loop_stop(g_loop); /* async-signal-safe */
}

int main(int argc, char **argv)
{
    perf_opts o;
    char *args[] = {argv[0], "echo", NULL};
    if (argc > 1 && strcmp(argv[1], "echo") == 0) {
        perf_parse(&o, argc, argv);
    } else {
        /* allow "dgring_sockperf_echo --port P" without a mode word */
        char **v = calloc((size_t)argc + 2, sizeof(char *));
        v[0] = argv[0];
        v[1] = args[1];
        for (int i = 1; i < argc; i++)
            v[i + 1] = argv[i];
        perf_parse(&o, argc + 1, v);
    }
    int ret = dg_loop_new(&g_loop, NULL);
    dg_socket *sock;
    dg_socket_options so = {.type = DG_UDP4};
    dg_socket_handlers h = {.on_message = on_message, .on_listening = on_listening,
                            .on_error = on_error};
    if (ret < 0 || (ret = dg_socket_create(g_loop, &so, &h, NULL, &sock)) < 0 ||
        (ret = dg_socket_bind(sock, o.port, "127.0.0.1", NULL, NULL)) < 0) {
        fprintf(stderr, "dgring: %s\n", dg_strerror(ret));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ret = dg_loop_run(g_loop, DG_RUN_DEFAULT);
    return ret < 0 ? 1 : 0;
}

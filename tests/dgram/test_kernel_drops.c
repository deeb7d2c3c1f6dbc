/* Kernel drops in dg_socket_get_stats(): rx_kernel_drops is the socket's
 * own drop counter up to the moment of the call, not only as of the last
 * datagram delivered (issue 14). The oracle is the kernel itself: the
 * "drops" column of the socket's row in /proc/net/udp (udp6 for IPv6),
 * found by the socket's inode. Each test floods a socket whose receive
 * buffer holds a few datagrams while its loop does not run, so the kernel
 * drops the rest, then compares:
 *
 *  - frozen: before the loop delivered anything, the count equals the
 *    kernel's (SO_RXQ_OVFL alone would say 0: no datagram carried it);
 *  - tail: after every queued datagram was delivered and nothing more
 *    arrived, the count equals the kernel's and sent - received (the
 *    queued datagrams were counted before the drops that followed them);
 *  - close: the counters read in on_close, after the fd closed, hold the
 *    drops up to the close;
 *
 * for udp4 and udp6. Nothing waits for a timing: the loop runs until the
 * kernel queue is empty, the watchdog only turns a hang into a failure. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(kernel_drops, .timeout = 60);

enum { FLOOD = 2000, PAYLOAD = 512, RCVBUF = 4096 };

typedef struct drop_rx {
    dg_socket *sock;
    int received;
    int closed;
    dg_socket_stats at_close;   /* dg_socket_get_stats() in on_close */
} drop_rx;

static void count_message(dg_socket *sock, const dg_message *msg, void *data)
{
    drop_rx *rx = data;

    (void)sock;
    (void)msg;
    rx->received++;
}

static void keep_final_stats(dg_socket *sock, void *data)
{
    drop_rx *rx = data;

    cr_assert_eq(dg_socket_get_stats(sock, &rx->at_close), 0);
    rx->closed++;
}

/* Looks for the socket with this inode in /proc/net/udp (or udp6): true
 * with its drops column in *drops if listed. */
static bool proc_find_drops(const char *path, ino_t inode, unsigned long *drops)
{
    FILE *f = fopen(path, "r");
    char line[512];
    unsigned long found_inode;

    cr_assert_not_null(f, "cannot open %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %lu", &found_inode,
                   drops) == 2 &&
            found_inode == (unsigned long)inode) {
            fclose(f);
            return true;
        }
    }
    fclose(f);
    return false;
}

/* The drops column of the socket with this inode; fails the test if the
 * socket is not listed. The file is read again a few times first: the
 * kernel lists it a page per read(), walking its hash table as it stands
 * then, so a read racing with other processes' sockets coming and going
 * can skip a line (seen with the suites running in parallel). */
static unsigned long proc_drops(int family, ino_t inode)
{
    const char *path = family == AF_INET ? "/proc/net/udp" : "/proc/net/udp6";
    unsigned long drops;

    for (int attempt = 0; attempt < 5; attempt++)
        if (proc_find_drops(path, inode, &drops))
            return drops;
    cr_assert_fail("inode %lu is not in %s", (unsigned long)inode, path);
    return 0;
}

static ino_t socket_inode(const dg_socket *sock)
{
    struct stat st;

    cr_assert_eq(fstat(dg_socket_fd(sock), &st), 0);
    return st.st_ino;
}

static uint64_t stats_drops(const dg_socket *sock)
{
    dg_socket_stats st;

    cr_assert_eq(dg_socket_get_stats(sock, &st), 0);
    return st.rx_kernel_drops;
}

/* A socket of type with a receive buffer of RCVBUF bytes, bound to
 * loopback port 0; returns the port. */
static int open_small(dg_loop *loop, dg_socket_type type, drop_rx *rx)
{
    dg_socket_handlers h = {.on_message = count_message, .on_close = keep_final_stats};
    dg_socket_options o = {.type = type, .recv_buffer_size = RCVBUF};

    memset(rx, 0, sizeof(*rx));
    cr_assert_eq(dg_socket_create(loop, &o, &h, rx, &rx->sock), 0);
    return dgt_bind(loop, rx->sock, dgt_loopback(dgt_family(type)), 0);
}

/* FLOOD datagrams from a plain socket while the loop does not run. */
static void flood(int family, int port)
{
    unsigned char payload[PAYLOAD];
    int plain = dgt_plain_socket(family, 0);

    memset(payload, 'x', sizeof(payload));
    for (int i = 0; i < FLOOD; i++)
        dgt_plain_send(plain, family, port, payload, sizeof(payload));
    close(plain);
}

/* Runs the loop until the socket's kernel queue is empty. */
static void drain(dg_loop *loop, const dg_socket *sock)
{
    for (int i = 0; i < 100000; i++) {
        int queued = 0;

        cr_assert_eq(ioctl(dg_socket_fd(sock), FIONREAD, &queued), 0);
        if (queued == 0)
            return;
        dgt_run_once(loop, DGT_WAIT_MS);
    }
    cr_assert_fail("the socket's queue never emptied");
}

/* A loop and a small-buffered socket that a flood has just hit while the
 * loop did not run, and the kernel's count of its drops. */
typedef struct flooded {
    int family;
    dg_loop *loop;
    drop_rx rx;
    unsigned long kernel;  /* /proc/net/udp drops right after the flood */
} flooded;

static void flood_socket(flooded *f, dg_socket_type type)
{
    f->family = dgt_family(type);
    f->loop = dgt_loop_new_sized(8, 1024);
    flood(f->family, open_small(f->loop, type, &f->rx));
    f->kernel = proc_drops(f->family, socket_inode(f->rx.sock));
    cr_assert_gt(f->kernel, 0, "a %d-byte buffer kept %d datagrams of %d bytes", RCVBUF, FLOOD,
                 PAYLOAD);
}

static void frozen(dg_socket_type type)
{
    flooded f;

    flood_socket(&f, type);
    cr_log_info("frozen: kernel drops %lu, delivered %d", f.kernel, f.rx.received);
    cr_assert_eq(stats_drops(f.rx.sock), (uint64_t)f.kernel);
    dgt_close_socket(f.loop, f.rx.sock);
    dgt_loop_finish(f.loop);
}

Test(kernel_drops, frozen_receiver_udp4)
{
    frozen(DG_UDP4);
}

Test(kernel_drops, frozen_receiver_udp6)
{
    dgt_require_ipv6();
    frozen(DG_UDP6);
}

static void tail(dg_socket_type type)
{
    flooded f;
    uint64_t counted;

    flood_socket(&f, type);
    drain(f.loop, f.rx.sock);
    cr_assert_eq(proc_drops(f.family, socket_inode(f.rx.sock)), f.kernel,
                 "drops while draining: nothing was sent");
    counted = stats_drops(f.rx.sock);
    cr_log_info("tail: sent %d, received %d, kernel drops %lu, counted %llu", FLOOD,
                f.rx.received, f.kernel, (unsigned long long)counted);
    cr_assert_eq(counted, (uint64_t)f.kernel);
    cr_assert_eq(counted, (uint64_t)(FLOOD - f.rx.received), "sent %d, received %d", FLOOD,
                 f.rx.received);
    dgt_close_socket(f.loop, f.rx.sock);
    dgt_loop_finish(f.loop);
}

Test(kernel_drops, tail_after_the_last_datagram_udp4)
{
    tail(DG_UDP4);
}

Test(kernel_drops, tail_after_the_last_datagram_udp6)
{
    dgt_require_ipv6();
    tail(DG_UDP6);
}

static void at_close(dg_socket_type type)
{
    flooded f;

    flood_socket(&f, type);
    dgt_close_socket(f.loop, f.rx.sock);
    cr_assert_eq(f.rx.closed, 1);
    cr_log_info("close: kernel drops %lu, in on_close %llu", f.kernel,
                (unsigned long long)f.rx.at_close.rx_kernel_drops);
    cr_assert_eq(f.rx.at_close.rx_kernel_drops, (uint64_t)f.kernel);
    dgt_loop_finish(f.loop);
}

Test(kernel_drops, final_in_on_close_udp4)
{
    at_close(DG_UDP4);
}

Test(kernel_drops, final_in_on_close_udp6)
{
    dgt_require_ipv6();
    at_close(DG_UDP6);
}

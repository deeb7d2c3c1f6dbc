/* source_flood: one datagram from each of N distinct source addresses, at
 * a dggame or dgstatsd on 127.0.0.1 (tests/tools/examples/test_flood.sh).
 * Plain sockets, no dgring.
 *
 *   source_flood PORT COUNT game|statsd
 *
 * Every address of 127.0.0.0/8 is local, so one socket bound to 0.0.0.0
 * sends datagram i from 127.1.0.0 + i by naming that source in an
 * IP_PKTINFO control message (as perf/echo_gen.c does); replies to any of
 * them come back to the same socket.
 *   game:   datagram i is a HELLO with nonce i. Then a barrier: the
 *           WELCOMEs that came back name the admitted sources (their nonce);
 *           one of them sends a PING and waits for its PONG. The server
 *           handles its datagrams in order, so the PONG means it has
 *           handled every HELLO that reached it.
 *   statsd: datagram i is "flood.<i, padded to 150 characters>:1|c", a
 *           new metric name each (no barrier: the test waits for the
 *           flushes to account for every datagram).
 * Prints "sent N", then (game) "welcomed W", "pings P" (the PINGs the
 * barrier sent, one unless one was lost) and "barrier ok". Exit 0, or
 * 1 if sending failed or the barrier did not come within 30 s, 2 on a bad
 * command line. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_PAYLOAD 200
#define BASE_ADDR 0x7f010000u /* 127.1.0.0 */
#define CTL_SPACE CMSG_SPACE(sizeof(struct in_pktinfo))

static struct sockaddr_in target;
static int fd;

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The payload of datagram i; returns its size. */
static size_t payload(int game, uint32_t i, uint8_t type, uint8_t *buf)
{
    if (game) {
        memset(buf, 0, 16);
        buf[0] = type; /* HELLO 1: u32 nonce; PING 5: u64 time */
        put_u32(buf + 8, i);
        return type == 1 ? 12 : 16;
    }
    return (size_t)snprintf((char *)buf, MAX_PAYLOAD, "flood.%0150u:1|c", i);
}

/* Sends count datagrams starting at i, datagram k from BASE_ADDR + k. */
static int send_from(int game, uint32_t first, unsigned count, uint8_t type)
{
    static uint8_t bufs[BATCH][MAX_PAYLOAD];
    static unsigned char ctl[BATCH][CTL_SPACE];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];

    memset(msgs, 0, sizeof(msgs));
    for (unsigned k = 0; k < count; k++) {
        iov[k] = (struct iovec){bufs[k], payload(game, first + k, type, bufs[k])};
        msgs[k].msg_hdr = (struct msghdr){.msg_name = &target, .msg_namelen = sizeof(target),
                                          .msg_iov = &iov[k], .msg_iovlen = 1,
                                          .msg_control = ctl[k], .msg_controllen = CTL_SPACE};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo pi = {.ipi_spec_dst.s_addr = htonl(BASE_ADDR + first + k)};
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    }
    for (unsigned done = 0; done < count;) {
        int r = sendmmsg(fd, msgs + done, count - done, 0);
        if (r < 0) {
            perror("source_flood: sendmmsg");
            return -1;
        }
        done += (unsigned)r;
    }
    return 0;
}

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* Reads replies for wait_ms (TICKs keep coming: a deadline, not a quiet
 * spell): counts WELCOMEs (remembering one's nonce in *admitted) and
 * returns 1 as soon as a PONG came. */
static int read_replies(int wait_ms, unsigned long *welcomed, uint32_t *admitted)
{
    uint8_t buf[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    long long end = now_ms() + wait_ms;

    while (now_ms() < end && poll(&p, 1, (int)(end - now_ms())) > 0) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n >= 12 && buf[0] == 2) { /* WELCOME: u32 player, u32 nonce */
            (*welcomed)++;
            *admitted = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 |
                        (uint32_t)buf[14] << 16 | (uint32_t)buf[15] << 24;
        } else if (n >= 16 && buf[0] == 6) {
            return 1;
        }
    }
    return 0;
}

/* The game barrier; see the top. */
static int barrier(void)
{
    unsigned long welcomed = 0;
    uint32_t admitted = UINT32_MAX;

    read_replies(500, &welcomed, &admitted);
    printf("welcomed %lu\n", welcomed);
    if (admitted == UINT32_MAX) {
        fprintf(stderr, "source_flood: no WELCOME came back\n");
        return 1;
    }
    for (int tries = 0; tries < 30; tries++) {
        if (send_from(1, admitted, 1, 5) < 0)
            return 1;
        if (read_replies(1000, &welcomed, &admitted)) {
            printf("pings %d\nbarrier ok\n", tries + 1);
            return 0;
        }
    }
    fprintf(stderr, "source_flood: no PONG within 30 s\n");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[3], "game") != 0 && strcmp(argv[3], "statsd") != 0)) {
        fprintf(stderr, "usage: source_flood PORT COUNT game|statsd\n");
        return 2;
    }
    int game = strcmp(argv[3], "game") == 0;
    unsigned long count = strtoul(argv[2], NULL, 10);
    target = (struct sockaddr_in){.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[1])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    int big = 16 << 20;
    if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0) {
        perror("source_flood: socket");
        return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    for (unsigned long i = 0; i < count; i += BATCH) {
        unsigned n = count - i < BATCH ? (unsigned)(count - i) : BATCH;
        if (send_from(game, (uint32_t)i, n, 1) < 0)
            return 1;
        /* A breath between batches, so the server's socket queue keeps up
         * (what it drops anyway, the counts account for). */
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    printf("sent %lu\n", count);
    fflush(stdout);
    return game ? barrier() : 0;
}

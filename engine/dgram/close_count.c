/* The datagrams a close discards, counted (dg_socket_stats
 * .rx_discarded_at_close). A close, as Node's, drops what the socket
 * received but did not deliver; a collector that must not lose packets
 * unseen needs the number. Two places hold such datagrams: the loop's
 * receive buffers (recv.c counts those as it returns them) and the
 * socket's kernel receive queue, counted here just before the fd closes.
 *
 * The kernel keeps no count of the datagrams in a UDP queue, only their
 * bytes (SO_MEMINFO, sock_diag), so the queue is read: recvmmsg with
 * MSG_DONTWAIT | MSG_TRUNC into no buffer at all, which takes each
 * datagram off and counts it without copying its payload. So that the read
 * ends and nothing slips in behind it before close(2), a filter that drops
 * everything is attached first (SO_ATTACH_FILTER); the kernel counts what
 * the filter turns away in the socket's drop counter, so those datagrams
 * (arrived during the close) are read off SO_MEMINFO and counted here
 * too, not as kernel drops. (What no user-space read can close: a datagram
 * the kernel is enqueuing on another CPU in the instant the filter takes
 * effect, or the fd closes, passes uncounted.) Should the filter be
 * refused (a program locked its own with SO_LOCK_FILTER), the read stops
 * after DRAIN_MAX_UNFILTERED datagrams and arrivals after it go uncounted.
 *
 * An adopted fd (bind({fd})) is left alone: it may be shared with another
 * process (socket activation, a cluster's handle), whose datagrams the
 * read would take and whose socket the filter would silence. This file
 * runs at close only, never on the receive path. */
#include <errno.h>
#include <linux/filter.h>
#include <string.h>
#include <sys/socket.h>

#include "dgram.h"

#define DRAIN_BATCH 64
#define DRAIN_MAX_UNFILTERED (1u << 20)
#define DRAIN_ERRORS_MAX 8 /* pending errors (an ICMP's) each end one read */

/* Makes the kernel drop every datagram that arrives from now on (counted
 * in its drop counter). False if it refused. */
static bool block_arrivals(int fd)
{
    struct sock_filter drop_all = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {.len = 1, .filter = &drop_all};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0;
}

/* Takes up to max datagrams off fd's receive queue without waiting and
 * without copying them; returns how many it took. */
static uint64_t drain_queue(int fd, uint64_t max)
{
    struct mmsghdr mm[DRAIN_BATCH];
    uint64_t taken = 0;
    unsigned errors = 0;
    memset(mm, 0, sizeof(mm)); /* no name, no control, no iovec */
    while (taken < max) {
        int r = recvmmsg(fd, mm, DRAIN_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (r > 0) {
            taken += (unsigned)r;
        } else if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
                   ++errors > DRAIN_ERRORS_MAX) {
            break;
        }
    }
    return taken;
}

void dg__socket_count_at_close(dg_socket *s)
{
    uint32_t raw;
    bool read = dg__socket_read_drops(s->fd, &raw);
    if (read)
        dg__socket_note_drops(s, raw);
    if (!s->fd_bound || s->adopted)
        return; /* nothing can be queued, or the queue is not only ours */
    bool blocked = block_arrivals(s->fd);
    uint64_t discarded = drain_queue(s->fd, blocked ? UINT64_MAX : DRAIN_MAX_UNFILTERED);
    if (blocked && read && dg__socket_read_drops(s->fd, &raw)) {
        uint32_t turned_away = dg__drops_ahead(s->drops_seen, raw);
        s->drops_seen += turned_away; /* arrived during the close: not a kernel drop */
        discarded += turned_away;
    }
    s->stats.rx_discarded_at_close += discarded;
}

/* Send-to-many (fan-out): one payload, copied once, to an array of
 * destinations, with one callback for the whole fan-out.
 *
 * One allocation holds the request, the destinations as socket addresses
 * the kernel reads after submission, on the sendmsg road a msghdr per
 * destination, and the payload. Each destination is one SQE naming the
 * same payload: IORING_OP_SEND with the address where the kernel takes one
 * (dg_loop_caps.send_to), else IORING_OP_SENDMSG, which the epoll backend
 * turns into sendmmsg batches. Every SQE's completion carries the request
 * as user_data; the last one ends it.
 *
 * Bounds: a fan-out counts as one send against max_pending_sends, and its
 * destinations against the loop's max_fanout_destinations (destinations of
 * fan-outs in flight), which also sizes the completion queue. */
#include <errno.h>
#include <string.h>

#include "dgram.h"
#include "engine/core/valgrind.h"

struct dg__send_many {
    dg_socket *sock;
    dg_send_many_cb cb;
    void *cb_data;
    size_t count;                  /* destinations */
    size_t len;                    /* payload bytes */
    size_t outstanding;            /* SQEs whose completion has not come */
    dg_send_many_result result;
    socklen_t addrlen;             /* of each destination */
    unsigned char *addrs;          /* count * addrlen bytes */
    struct msghdr *msgs;           /* sendmsg road: one per destination */
    unsigned char *payload;
    struct iovec iov;              /* the payload, for every msghdr */
    struct dg__deferred done_ev;   /* an end without completions */
};

/* The one allocation: the request, the addresses, the msghdrs (sendmsg
 * road), the payload. Sizes are bounded by the checks before (count by
 * max_fanout_destinations, len by 65535), so nothing overflows. */
static struct dg__send_many *many_alloc(size_t count, socklen_t addrlen, bool msgs, size_t len)
{
    size_t at_addrs = sizeof(struct dg__send_many);
    size_t at_msgs = (at_addrs + count * addrlen + 15u) & ~(size_t)15u;
    size_t at_payload = at_msgs + (msgs ? count * sizeof(struct msghdr) : 0);
    unsigned char *mem = dg__malloc(at_payload + (len ? len : 1));
    if (!mem)
        return NULL;
    struct dg__send_many *m = (struct dg__send_many *)mem;
    memset(m, 0, sizeof(*m));
    m->addrs = mem + at_addrs;
    m->msgs = msgs ? (struct msghdr *)(void *)(mem + at_msgs) : NULL;
    m->payload = mem + at_payload;
    m->addrlen = addrlen;
    m->count = count;
    m->len = len;
    return m;
}

/* Ends the fan-out: counters, the callback, the socket's reference. */
static void many_finish(struct dg__send_many *m)
{
    dg_socket *s = m->sock;
    dg_loop *loop = s->loop;
    s->stats.tx_datagrams += m->result.sent;
    s->stats.tx_bytes += (uint64_t)m->result.sent * m->len;
    s->stats.tx_errors += m->result.failed;
    s->queue_bytes -= m->count * m->len;
    s->queue_count -= m->count;
    loop->dgram.pending_sends--;
    loop->dgram.fanout_destinations -= m->count;
    dg_send_many_result result = m->result;
    dg_send_many_cb cb = m->cb;
    void *cb_data = m->cb_data;
    dg__free(m);
    if (cb)
        cb(s, &result, cb_data);
    dg__socket_op_done(s);
}

static void many_finish_deferred(struct dg__deferred *node)
{
    many_finish(DG__CONTAINER(node, struct dg__send_many, done_ev));
}

static void many_count(struct dg__send_many *m, int res, size_t n)
{
    if (res >= 0) {
        m->result.sent += n;
        return;
    }
    m->result.failed += n;
    if (m->result.first_error == 0)
        m->result.first_error = res;
}

void dg__socket_on_send_many(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)loop;
    struct dg__send_many *m = DG__UD_PTR(cqe->user_data);
    many_count(m, cqe->res, 1);
    if (--m->outstanding == 0)
        many_finish(m);
}

/* Destination i's SQE. */
static void many_prep(struct dg__send_many *m, struct io_uring_sqe *sqe, size_t i)
{
    dg_socket *s = m->sock;
    void *addr = m->addrs + i * m->addrlen;
    if (m->msgs) {
        struct msghdr *msg = &m->msgs[i];
        memset(msg, 0, sizeof(*msg));
        msg->msg_name = addr;
        msg->msg_namelen = m->addrlen;
        msg->msg_iov = &m->iov;
        msg->msg_iovlen = 1;
        dg__vg_check_send(msg);
        io_uring_prep_sendmsg(sqe, s->fd, msg, 0);
        io_uring_sqe_set_data64(sqe, DG__UD(m, DG__OP_SEND_MANY));
    } else {
        dg__sqe_send_to(sqe, s->fd, m->payload, (uint32_t)m->len, addr, (uint16_t)m->addrlen,
                        DG__UD(m, DG__OP_SEND_MANY));
    }
}

/* One SQE per destination. Returns the error if not even the first could
 * be queued (nothing happened); a later refusal counts the destinations
 * left as failed with it. */
static int many_submit(struct dg__send_many *m)
{
    struct dg__core *c = &m->sock->loop->core;
    dg__loop_poke(c); /* once: dg__get_sqe's, for every SQE below */
    size_t i;
    for (i = 0; i < m->count; i++) {
        int err = 0;
        struct io_uring_sqe *sqe = dg__get_sqe_poked(c, &err);
        if (!sqe) {
            if (i == 0)
                return err;
            many_count(m, err, m->count - i);
            break;
        }
        many_prep(m, sqe, i);
    }
    m->outstanding = i;
    if (m->outstanding == 0) /* count 0: the callback still comes from the loop */
        dg__defer(c, &m->done_ev, many_finish_deferred);
    return 0;
}

/* The synchronous checks on the destinations: each of the socket's family,
 * an address, a port. */
static int many_check_dests(const dg_socket *s, const dg_addr_key *dests, size_t count)
{
    int family = s->type == DG_UDP4 ? AF_INET : AF_INET6;
    for (size_t i = 0; i < count; i++) {
        if (dests[i].family != family || !dg__addr_key_valid(&dests[i]))
            return DG_ERR_INVALID_ADDRESS;
        if (dests[i].port == 0)
            return DG_ERR_SOCKET_BAD_PORT;
    }
    return 0;
}

static int many_check(dg_socket *s, const void *buf, size_t len, const dg_addr_key *dests,
                      size_t count)
{
    if (!s || (!buf && len > 0) || (!dests && count > 0))
        return DG_ERR_INVALID_ARG_VALUE;
    if (len > 65535)
        return -EMSGSIZE;
    if (s->connect_state == DG__CONNECTED)
        return DG_ERR_SOCKET_DGRAM_IS_CONNECTED;
    dg_loop *loop = s->loop;
    if (count > loop->core.options.max_fanout_destinations)
        return DG_ERR_OUT_OF_RANGE;
    int ret = many_check_dests(s, dests, count);
    if (ret < 0)
        return ret;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (loop->dgram.pending_sends >= loop->core.options.max_pending_sends ||
        count > loop->core.options.max_fanout_destinations - loop->dgram.fanout_destinations)
        return DG_ERR_SEND_QUEUE_FULL;
    return 0;
}

static void many_fill(struct dg__send_many *m, const void *buf, const dg_addr_key *dests)
{
    for (size_t i = 0; i < m->count; i++) /* checked: each of the socket's family */
        (void)dg__addr_key_write(&dests[i], m->addrs + i * m->addrlen);
    if (m->len)
        memcpy(m->payload, buf, m->len);
    m->iov.iov_base = m->payload;
    m->iov.iov_len = m->len;
}

DG_EXPORT int dg_socket_send_many(dg_socket *sock, const void *buf, size_t len,
                                  const dg_addr_key *dests, size_t count, dg_send_many_cb cb,
                                  void *cb_data)
{
    int ret = many_check(sock, buf, len, dests, count);
    if (ret < 0)
        return ret;
    dg__socket_implicit_bind(sock);
    if (!sock->fd_bound)
        return -EBADF; /* its bind waits for a host name */
    dg_loop *loop = sock->loop;
    socklen_t addrlen = sock->type == DG_UDP4 ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6);
    struct dg__send_many *m = many_alloc(count, addrlen, !loop->core.caps.send_to, len);
    if (!m)
        return -ENOMEM;
    m->sock = sock;
    m->cb = cb;
    m->cb_data = cb_data;
    many_fill(m, buf, dests);
    dg__send_run_flush(sock); /* earlier datagrams of a GSO run leave first */
    ret = many_submit(m);
    if (ret < 0) {
        dg__free(m);
        return ret;
    }
    sock->inflight++;
    sock->queue_bytes += count * len;
    sock->queue_count += count;
    loop->dgram.pending_sends++;
    loop->dgram.fanout_destinations += count;
    return 0;
}

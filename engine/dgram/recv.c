/* The receive path: one multishot recvmsg per socket over the loop's
 * provided buffer ring, delivery of each buffer's datagram(s) to
 * on_message or gathered for on_message_batch, kept buffers
 * (dg_message_keep) and the re-arm of receives that ended.
 *
 * This is the hot path: per datagram it decodes the buffer in place
 * (recv_decode.h), calls the user once and recycles the buffer; the buffers
 * of a walk of completions go back to the kernel with one commit (the
 * loop's). Nothing here allocates. */
#include <errno.h>
#include <stddef.h>

#include "dgram.h"
#include "engine/core/valgrind.h"

/* ---- Arming ------------------------------------------------------------- */

void dg__recv_queue_rearm(dg_socket *s)
{
    if (s->rearm_queued)
        return;
    s->rearm_queued = true;
    s->rearm_next = s->loop->dgram.rearm_head;
    s->loop->dgram.rearm_head = s;
    s->loop->core.prepare |= DG__PREPARE_REARMS;
}

void dg__recv_arm(dg_socket *s)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(&s->loop->core, &err);
    if (!sqe) {
        dg__recv_queue_rearm(s); /* the ring refused a flush; try again next turn */
        return;
    }
    /* MSG_TRUNC makes the kernel report a truncated datagram's real size
     * in io_uring_recvmsg_out.payloadlen. */
    io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->rmsg, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = s->loop->core.bufring.group;
    io_uring_sqe_set_data64(sqe, DG__UD(s, DG__OP_RECV));
    s->recv_armed = true;
    s->inflight++;
}

/* ---- Kept buffers ------------------------------------------------------ */

_Static_assert(DG__BATCH_MAX == DG_MESSAGE_BATCH_MAX, "one batch size");
_Static_assert(DG__BATCH_MAX <= 64, "kept_mask has a bit per batched message");

/* Buffer bid, at buf, goes back to the ring (visible at the next commit). */
static inline void rx_return(dg_loop *loop, unsigned bid, unsigned char *buf)
{
    struct dg__bufring *br = &loop->core.bufring;
    dg__bufring_put(br, bid, buf);
    if (DG__VG_RING_FILLS(br))
        dg__vg_buffer_to_kernel(buf, br->buf_size);
}

static inline void rx_recycle(dg_loop *loop, unsigned bid)
{
    rx_return(loop, bid, dg__bufring_addr(&loop->core.bufring, bid));
}

/* Every datagram of buffer bid was delivered: back to the ring, unless the
 * user kept it, in which case the last release returns it. */
static void rx_buffer_done(dg_loop *loop, unsigned bid)
{
    struct dg_rx_buf *b = &loop->dgram.rx.bufs[bid];
    if (b->refs == 0) {
        rx_recycle(loop, bid);
        return;
    }
    b->out = true;
    loop->core.stats.rx_kept_buffers++;
}

DG_EXPORT int dg_message_keep(dg_socket *sock, const dg_message *msg, dg_rx_buf **out)
{
    if (out)
        *out = NULL;
    if (!sock || !msg || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    dg_loop *loop = sock->loop;
    struct dg__rx *rx = &loop->dgram.rx;
    /* Compared as integers: msg may point anywhere. */
    uintptr_t at = (uintptr_t)msg, first = (uintptr_t)rx->msgs;
    if (rx->sock != sock || at < first || at >= first + rx->count * sizeof(dg_message) ||
        (at - first) % sizeof(dg_message) != 0)
        return DG_ERR_MESSAGE_NOT_CURRENT;
    unsigned index = (unsigned)((at - first) / sizeof(dg_message));
    uint64_t bit = UINT64_C(1) << index;
    if (rx->kept_mask & bit)
        return DG_ERR_MESSAGE_ALREADY_KEPT;
    const struct dg__bufring *br = &loop->core.bufring;
    uintptr_t data = (uintptr_t)msg->data, mem = (uintptr_t)br->mem;
    if (data < mem || data >= mem + br->mem_bytes)
        return DG_ERR_MESSAGE_NOT_CURRENT; /* the user rewrote msg->data */
    unsigned bid = (unsigned)((data - mem) / br->stride);
    struct dg_rx_buf *b = &rx->bufs[bid];
    b->refs++;
    rx->keeps++;
    rx->kept_mask |= bit;
    rx->kept_any = true;
    *out = b;
    return 0;
}

DG_EXPORT int dg_rx_buf_release(dg_rx_buf *buf)
{
    if (!buf)
        return DG_ERR_INVALID_ARG_VALUE;
    if (buf->refs == 0)
        return DG_ERR_BUFFER_NOT_KEPT;
    dg_loop *loop = buf->loop;
    loop->dgram.rx.keeps--;
    if (--buf->refs > 0 || !buf->out)
        return 0; /* more keeps, or its delivery is still going on */
    buf->out = false;
    loop->core.stats.rx_kept_buffers--;
    rx_recycle(loop, (unsigned)(buf - loop->dgram.rx.bufs));
    /* Published by the loop's next prepare step, which also re-arms the
     * sockets that ran out of buffers; an embedding loop must come back. */
    dg__loop_poke(&loop->core);
    return 0;
}

/* ---- Delivery ------------------------------------------------------------ */

/* Every datagram handed to the user counts in its socket's statistics. */
static inline void rx_count(dg_socket *s, size_t length, unsigned flags)
{
    s->stats.rx_datagrams++;
    s->stats.rx_bytes += length;
    if (flags & DG_MSG_TRUNC)
        s->stats.rx_truncated++;
}

static inline void deliver_one(dg_socket *s, dg_message *m)
{
    rx_count(s, m->length, m->flags);
    if (s->handlers.on_message)
        s->handlers.on_message(s, m, s->data);
}

/* The message a decoded buffer gives: the whole datagram, or (GRO) the
 * sender, with each segment's data and length filled in by the caller. */
static inline void message_from_view(dg_message *m, const struct dg__recv_view *v)
{
    m->addr = v->name;
    m->addrlen = v->namelen;
    m->reserved = 0;
    m->data = v->payload;
    m->length = v->length;
    m->size = v->size;
    m->flags = v->truncated ? DG_MSG_TRUNC : 0;
}

/* The datagrams of a UDP_GRO buffer, in order: one sender, all of the
 * segment size but the last. */
struct gro_split {
    const unsigned char *next;
    size_t left;
    size_t segment;
};

/* Starts splitting v's payload (m keeps the sender) and counts the buffer. */
static inline void gro_start(struct gro_split *g, dg_socket *s, dg_message *m,
                             const struct dg__recv_view *v)
{
    g->next = v->payload;
    g->left = v->length;
    g->segment = v->gro_size;
    m->flags = 0;
    s->stats.rx_gro_buffers++;
}

/* The next datagram into m (data, length, size); false when none is left. */
static inline bool gro_next(struct gro_split *g, dg_message *m)
{
    if (g->left == 0)
        return false;
    m->data = g->next;
    m->length = m->size = g->left < g->segment ? g->left : g->segment;
    g->next += m->length;
    g->left -= m->length;
    return true;
}

/* The datagrams left in a GRO buffer whose socket closed mid-way. */
static inline uint64_t gro_left(const struct gro_split *g)
{
    return (g->left + g->segment - 1) / g->segment;
}

/* A buffer (res >= 0) that arrived for a closed socket: its datagram(s)
 * are dropped, and counted (dg_socket_stats.rx_discarded_at_close). */
static __attribute__((noinline, cold)) void rx_discard(dg_socket *s, void *buf, int res)
{
    struct dg__recv_view v;
    if (dg__recv_decode(buf, res, &s->rmsg, &v) < 0)
        return;
    if (v.drops)
        dg__socket_note_drops(s, v.drops);
    struct gro_split g = {.left = v.length, .segment = v.gro_size};
    s->stats.rx_discarded_at_close += v.gro_size == 0 ? 1 : gro_left(&g);
}

/* Decodes one buffer the kernel filled and hands its datagram(s) to the
 * user: with UDP_GRO a buffer may hold several datagrams of one sender,
 * all of gro_size bytes but the last. */
static void deliver_decoded(dg_socket *s, void *buf, int res)
{
    struct dg__recv_view v;
    if (dg__recv_decode(buf, res, &s->rmsg, &v) < 0)
        return; /* shorter than the header the kernel always writes: cannot happen */
    if (v.drops)
        dg__socket_note_drops(s, v.drops);
    dg_message m;
    message_from_view(&m, &v);
    struct dg__rx *rx = &s->loop->dgram.rx;
    rx->sock = s; /* what dg_message_keep accepts */
    rx->msgs = &m;
    rx->count = 1;
    if (v.gro_size == 0) {
        deliver_one(s, &m);
    } else {
        struct gro_split g;
        gro_start(&g, s, &m, &v);
        while (dg__socket_is_open(s) && gro_next(&g, &m)) { /* the callback may close it */
            deliver_one(s, &m);
            rx->kept_mask = 0; /* the next segment is another message */
        }
        if (g.left > 0) /* closed by the callback: no division per buffer otherwise */
            s->stats.rx_discarded_at_close += gro_left(&g);
    }
    rx->sock = NULL;
    dg__rx_rest(rx);
}

/* The common buffer, read without a view: the kernel wrote no control
 * message (no SO_RXQ_OVFL drop count, no UDP_GRO segment size) and did not
 * truncate, so it holds one datagram whose payload is everything after the
 * template's fixed header: every socket's template has DG__RECV_NAME_LEN
 * and DG__RECV_CONTROL_LEN (socket.c), so the offsets are constants. Fills
 * m and returns true; returns false (m untouched) for any other buffer
 * (or a negative res), which dg__recv_decode() takes in full. Reads only
 * within the first res bytes, as the full decode. With constant_zero, m's
 * reserved and flags are left alone: they are 0 already (the loop's
 * slot). */
static inline bool decode_plain(const unsigned char *buf, int res, dg_message *m,
                                bool constant_zero)
{
    const size_t header = DG__RECV_HEADER_LEN;
    if (res < (int)header)
        return false;
    /* The header's fields read one by one: each test is one compare with
     * memory. */
    uint32_t namelen, controllen, flags;
    memcpy(&controllen, buf + offsetof(struct io_uring_recvmsg_out, controllen), 4);
    memcpy(&flags, buf + offsetof(struct io_uring_recvmsg_out, flags), 4);
    if (controllen != 0 || (flags & MSG_TRUNC))
        return false;
    memcpy(&namelen, buf + offsetof(struct io_uring_recvmsg_out, namelen), 4);
    size_t length = (size_t)res - header;
    m->addr = (const struct sockaddr *)(const void *)(buf + sizeof(struct io_uring_recvmsg_out));
    m->addrlen = namelen < DG__RECV_NAME_LEN ? namelen : DG__RECV_NAME_LEN;
    m->data = buf + header;
    m->length = length;
    m->size = length; /* not truncated: payloadlen is length (the full decode
                         takes the larger, which is the same here) */
    if (!constant_zero) {
        m->reserved = 0;
        m->flags = 0;
    }
    return true;
}

/* The plain datagram decoded into the loop's slot, to on_message (which
 * has_handler says is set, else it is tested); the slot is what
 * dg_message_keep accepts while rx->sock says so, which the caller clears
 * (a run of them once, at its end). */
static inline void deliver_slot(dg_socket *s, struct dg__rx *rx, bool has_handler)
{
    rx_count(s, rx->slot.length, 0); /* a plain datagram is never truncated */
    rx->sock = s;
    if (has_handler || s->handlers.on_message)
        s->handlers.on_message(s, &rx->slot, s->data);
}

/* One buffer (res >= 0) to on_message: the plain datagram straight from
 * the buffer, anything else (control messages, truncation, GRO) through
 * the full decode. */
static inline void deliver(dg_socket *s, unsigned char *buf, int res)
{
    struct dg__rx *rx = &s->loop->dgram.rx;
    if (decode_plain(buf, res, &rx->slot, true)) {
        deliver_slot(s, rx, false);
        rx->sock = NULL;
    } else {
        deliver_decoded(s, buf, res);
    }
}

/* ---- Batch delivery (on_message_batch) ----------------------------------- */

/* The batch's buffers go back. Nothing can add to the batch during the
 * callback (no completion walk runs inside it), so they are exactly those
 * gathered. With no keep outstanding anywhere in the loop, no buffer can
 * have one: one pass, no per-buffer test. */
static void batch_return(dg_loop *loop)
{
    struct dg__rx *rx = &loop->dgram.rx;
    if (rx->keeps != 0) {
        for (unsigned i = 0; i < rx->batch_nbids; i++)
            rx_buffer_done(loop, rx->batch_bids[i]);
        return;
    }
    for (unsigned i = 0; i < rx->batch_nbids; i++)
        rx_recycle(loop, rx->batch_bids[i]);
}

void dg__rx_batch_flush(dg_loop *loop)
{
    struct dg__rx *rx = &loop->dgram.rx;
    dg_socket *s = rx->batch_sock;
    if (!s)
        return;
    unsigned n = rx->batch_count;
    if (n > 0 && dg__socket_is_open(s)) {
        s->stats.rx_datagrams += n; /* counted as the batch was gathered */
        s->stats.rx_bytes += rx->batch_bytes;
        s->stats.rx_truncated += rx->batch_truncated;
        rx->sock = s;
        rx->msgs = rx->batch_msgs;
        rx->count = n;
        s->handlers.on_message_batch(s, rx->batch_msgs, n, s->data);
        rx->sock = NULL;
        dg__rx_rest(rx);
        rx->kept_mask = 0;
        rx->kept_any = false;
    } else {
        s->stats.rx_discarded_at_close += n; /* closed with its batch pending */
    }
    batch_return(loop);
    rx->batch_count = 0;
    rx->batch_nbids = 0;
    rx->batch_bytes = 0;
    rx->batch_truncated = 0;
    rx->batch_sock = NULL;
}

/* The batch's next message was written in place: counted for the flush. */
static inline void batch_took(struct dg__rx *rx)
{
    const dg_message *m = &rx->batch_msgs[rx->batch_count++];
    rx->batch_bytes += m->length;
    if (m->flags & DG_MSG_TRUNC)
        rx->batch_truncated++;
}

static void batch_add(struct dg__rx *rx, const dg_message *m)
{
    rx->batch_msgs[rx->batch_count] = *m;
    batch_took(rx);
}

/* The datagrams of one UDP_GRO buffer into the socket's batch, which is
 * flushed whenever it fills (possibly in the middle of the buffer, whose
 * remaining datagrams then start the next batch). */
static void batch_gro_buffer(dg_loop *loop, dg_socket *s, unsigned bid, dg_message *m,
                             const struct dg__recv_view *v)
{
    struct dg__rx *rx = &loop->dgram.rx;
    if (v->length == 0) { /* no segment to deliver (the kernel never sends one) */
        rx_recycle(loop, bid);
        return;
    }
    struct gro_split g;
    gro_start(&g, s, m, v);
    while (gro_next(&g, m)) {
        batch_add(rx, m);
        if (g.left == 0)
            rx->batch_bids[rx->batch_nbids++] = (uint16_t)bid;
        if (rx->batch_count == DG__BATCH_MAX) {
            dg__rx_batch_flush(loop);
            if (g.left > 0 && !dg__socket_is_open(s)) { /* closed by the callback */
                s->stats.rx_discarded_at_close += gro_left(&g);
                rx_buffer_done(loop, bid);
                return;
            }
            if (g.left > 0)
                rx->batch_sock = s;
        }
    }
}

/* Buffer bid's one datagram is in the batch: the buffer is the batch's
 * until the flush, which runs now if the batch is full. */
static inline void batch_buffer_added(dg_loop *loop, unsigned bid)
{
    struct dg__rx *rx = &loop->dgram.rx;
    rx->batch_bids[rx->batch_nbids++] = (uint16_t)bid;
    if (rx->batch_count == DG__BATCH_MAX)
        dg__rx_batch_flush(loop);
}

/* Buffer bid's plain datagram was decoded into the batch's next slot: s's
 * batch takes it (a plain datagram is never truncated), and the buffer. */
static inline void batch_took_plain(dg_loop *loop, dg_socket *s, unsigned bid)
{
    struct dg__rx *rx = &loop->dgram.rx;
    rx->batch_sock = s;
    rx->batch_bytes += rx->batch_msgs[rx->batch_count++].length;
    batch_buffer_added(loop, bid);
}

/* Adds the datagram(s) of one buffer to the socket's batch; flushes when
 * the batch is full (possibly in the middle of a GRO buffer, whose
 * remaining datagrams then start the next batch). */
static void batch_buffer(dg_loop *loop, dg_socket *s, unsigned bid, void *buf, int res)
{
    struct dg__rx *rx = &loop->dgram.rx;
    struct dg__recv_view v;
    if (rx->batch_sock != s)
        dg__rx_batch_flush(loop); /* one socket per batch */
    if (res < 0 || !dg__socket_is_open(s)) {
        if (res >= 0)
            rx_discard(s, buf, res);
        rx_recycle(loop, bid);
        return;
    }
    /* The plain datagram is read straight into the batch's next slot. */
    if (decode_plain(buf, res, &rx->batch_msgs[rx->batch_count], false)) {
        batch_took_plain(loop, s, bid);
        return;
    }
    if (dg__recv_decode(buf, res, &s->rmsg, &v) < 0) {
        rx_recycle(loop, bid);
        return;
    }
    rx->batch_sock = s;
    if (v.drops)
        dg__socket_note_drops(s, v.drops);
    dg_message m;
    message_from_view(&m, &v);
    if (v.gro_size == 0) {
        batch_add(rx, &m);
        batch_buffer_added(loop, bid);
        return;
    }
    batch_gro_buffer(loop, s, bid, &m, &v);
}

/* Buffer bid was delivered to on_message: back to the ring, unless the
 * user kept it (dg_message_keep said so in kept_any: rare). */
static inline void rx_delivered(dg_loop *loop, unsigned bid)
{
    struct dg__rx *rx = &loop->dgram.rx;
    if (rx->kept_any) {
        rx->kept_any = false;
        rx->kept_mask = 0;
        rx_buffer_done(loop, bid);
    } else {
        rx_recycle(loop, bid); /* its address is needed only if the slot differs */
    }
}

/* A buffer for on_message: delivered, then back to the ring unless the
 * user kept it. */
static inline void rx_buffer(dg_loop *loop, dg_socket *s, unsigned bid, unsigned char *buf,
                             int res)
{
    if (loop->dgram.rx.batch_sock)
        dg__rx_batch_flush(loop); /* another socket's datagrams came first */
    if (res >= 0 && dg__socket_is_open(s))
        deliver(s, buf, res);
    else if (res >= 0)
        rx_discard(s, buf, res);
    rx_delivered(loop, bid);
}

/* A completion without a buffer: ENOBUFS or an error. Out of line (and
 * its error record with it): a flood never comes here. */
static __attribute__((noinline, cold)) void rx_no_buffer(dg_loop *loop, dg_socket *s, int res)
{
    if (loop->dgram.rx.batch_sock == s)
        dg__rx_batch_flush(loop); /* its datagrams came first */
    if (res == -ENOBUFS) {
        s->stats.rx_no_buffers++; /* the datagrams wait in the socket queue */
    } else if (res < 0 && res != -ECANCELED && dg__socket_is_open(s)) {
        dg_error err = {.code = res, .syscall = "recvmsg"};
        dg__socket_emit_error(s, &err);
    }
}

/* The multishot receive ended (no IORING_CQE_F_MORE). */
static __attribute__((noinline)) void rx_ended(dg_socket *s)
{
    s->recv_armed = false;
    if (dg__socket_is_open(s))
        dg__recv_queue_rearm(s); /* after this batch's buffers are back in the ring */
    dg__socket_op_done(s);
}

/* Buffer bid, which a completion of s with result res carries (marked
 * as the kernel filled it, for memcheck). */
static inline unsigned char *rx_filled_buffer(dg_loop *loop, dg_socket *s, unsigned bid, int res)
{
    struct dg__bufring *br = &loop->core.bufring;
    unsigned char *buf = dg__bufring_addr(br, bid);
    if (DG__VG_RING_FILLS(br))
        dg__vg_buffer_filled(buf, br->buf_size, res, &s->rmsg);
    return buf;
}

/* One receive completion, whatever it carries: a buffer for on_message or
 * for the batch, an error, the end of the multishot receive. Out of line:
 * nearly every completion takes a run (rx_plain_run, rx_batch_run) instead. */
static __attribute__((noinline)) void rx_completion(dg_loop *loop, dg_socket *s,
                                                    const struct io_uring_cqe *cqe)
{
    unsigned flags = cqe->flags;
    int res = cqe->res;
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        unsigned char *buf = rx_filled_buffer(loop, s, bid, res);
        if (s->handlers.on_message_batch)
            batch_buffer(loop, s, bid, buf, res);
        else
            rx_buffer(loop, s, bid, buf, res);
    } else {
        rx_no_buffer(loop, s, res);
    }
    if (!(flags & IORING_CQE_F_MORE))
        rx_ended(s);
}

/* A run of the completions nearly every datagram makes, from c on: a
 * socket in DG__RX_PLAIN (open, on_message, no batch mode), a receive that
 * goes on (IORING_CQE_F_MORE), a plain datagram (decode_plain), no batch
 * pending (the caller's test: the callback cannot start one). Each goes
 * from the loop's slot to on_message and its buffer back to the ring.
 * Returns the first completion not taken (end, another kind, or one for
 * the general path). rx->sock is set before each callback and cleared
 * once, when the run ends: between two callbacks of a run no user code
 * runs, and every other delivery sets it itself. */
static inline const struct io_uring_cqe *rx_plain_run(dg_loop *loop, const struct io_uring_cqe *c,
                                                      const struct io_uring_cqe *end)
{
    struct dg__rx *rx = &loop->dgram.rx;
    do {
        dg_socket *s = DG__UD_PTR(c->user_data);
        unsigned flags = c->flags;
        int res = c->res;
        /* A result of at least the header is a datagram, so the completion
         * carries a buffer (IORING_CQE_F_BUFFER): a receive that selects
         * buffers never succeeds without one. */
        if (s->rx_path != DG__RX_PLAIN || !(flags & IORING_CQE_F_MORE) ||
            res < (int)DG__RECV_HEADER_LEN)
            break;
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        unsigned char *buf = rx_filled_buffer(loop, s, bid, res);
        if (!decode_plain(buf, res, &rx->slot, true))
            break;
        deliver_slot(s, rx, true); /* DG__RX_PLAIN: on_message is set */
        rx_delivered(loop, bid);
    } while (++c < end && DG__UD_KIND(c->user_data) == DG__OP_RECV);
    rx->sock = NULL;
    return c;
}

/* rx_plain_run's twin for on_message_batch: a run of completions of one
 * socket (the same user data) in DG__RX_BATCH whose plain datagrams are
 * read into the batch's next slots, with the batch's count, buffers and
 * bytes in locals until the run ends (no user code runs while a batch is
 * gathered). A full batch is flushed and ends the run (its callback may
 * have changed the socket). Takes nothing if another socket's batch is
 * pending. Returns the first completion not taken. */
static inline const struct io_uring_cqe *rx_batch_run(dg_loop *loop, const struct io_uring_cqe *c,
                                                      const struct io_uring_cqe *end)
{
    struct dg__rx *rx = &loop->dgram.rx;
    const uint64_t ud = c->user_data;
    dg_socket *s = DG__UD_PTR(ud);
    if (s->rx_path != DG__RX_BATCH || (rx->batch_sock != s && rx->batch_sock))
        return c;
    dg_message *m = &rx->batch_msgs[rx->batch_count];
    uint16_t *bids = &rx->batch_bids[rx->batch_nbids];
    size_t bytes = rx->batch_bytes;
    /* One bound for both the run and the batch's free slots. */
    const struct io_uring_cqe *last = c + (DG__BATCH_MAX - rx->batch_count);
    if (last > end)
        last = end;
    do {
        unsigned flags = c->flags;
        int res = c->res;
        /* At least the header: a datagram, so a buffer (rx_plain_run). */
        if (!(flags & IORING_CQE_F_MORE) || res < (int)DG__RECV_HEADER_LEN)
            break;
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        unsigned char *buf = rx_filled_buffer(loop, s, bid, res);
        if (!decode_plain(buf, res, m, false))
            break;
        bytes += m->length; /* a plain datagram is never truncated */
        m++;
        *bids++ = (uint16_t)bid;
    } while (++c < last && c->user_data == ud);
    rx->batch_count = (unsigned)(m - rx->batch_msgs);
    rx->batch_nbids = (unsigned)(bids - rx->batch_bids);
    rx->batch_bytes = bytes;
    if (rx->batch_count > 0)
        rx->batch_sock = s;
    if (rx->batch_count == DG__BATCH_MAX)
        dg__rx_batch_flush(loop);
    return c;
}

/* Whether c is past the run of receive completions that ends at end. */
static inline bool rx_run_over(const struct io_uring_cqe *c, const struct io_uring_cqe *end)
{
    return c == end || DG__UD_KIND(c->user_data) != DG__OP_RECV;
}

unsigned dg__recv_completions(dg_loop *loop, const struct io_uring_cqe *cqes, unsigned n)
{
    const struct io_uring_cqe *c = cqes, *end = cqes + n;
    for (;;) {
        if (!loop->dgram.rx.batch_sock) {
            c = rx_plain_run(loop, c, end);
            if (rx_run_over(c, end))
                break;
        }
        const struct io_uring_cqe *next = rx_batch_run(loop, c, end);
        if (next == c) /* anything else: the general path */
            rx_completion(loop, DG__UD_PTR(c->user_data), next++);
        c = next;
        if (rx_run_over(c, end))
            break;
    }
    return (unsigned)(c - cqes);
}

/* With every buffer kept by the user a receive would end at once with
 * ENOBUFS: such sockets stay queued until a dg_rx_buf_release(). */
void dg__sockets_rearm(dg_loop *loop)
{
    dg_socket *s = loop->dgram.rearm_head;
    bool dry = dg__rx_dry(&loop->core.stats, &loop->core.bufring);
    loop->dgram.rearm_head = NULL;
    while (s) {
        dg_socket *next = s->rearm_next;
        s->rearm_queued = false;
        if (s->state == DG__CLOSING && s->cancel_pending) {
            dg__socket_close_cancel(s);
        } else if (dg__socket_is_open(s) && s->fd_bound && !s->recv_armed) {
            if (dry) {
                dg__recv_queue_rearm(s);
            } else {
                s->stats.rx_rearms++;
                dg__recv_arm(s);
            }
        }
        s = next;
    }
}

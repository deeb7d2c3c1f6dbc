/* The send path: argument checks in Node's order, the payload copy, the
 * per-socket queue that keeps datagrams in call order while a bind or a
 * host-name lookup is pending, and completion with exactly one callback.
 *
 * A send request leaves for the ring at once when nothing is queued ahead
 * of it and the socket's fd is bound; otherwise it waits in the socket's
 * send queue, which dg__sendq_flush() empties from the loop. */
#include <errno.h>
#include <limits.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"
#include "send_done.h"
#include "engine/core/valgrind.h"

#define DG__MAX_IOV 1024 /* IOV_MAX on Linux */

/* ---- Send slots ----------------------------------------------------------
 * A send takes a slot of the loop's array (max_pending_sends of them) from
 * the free list: no allocation, no clearing; req_init writes the fields
 * every send reads. The list holds the slots given back; the slots never
 * taken yet come after them in order (their pages stay untouched until a
 * send reaches them). A zero-copy send keeps its slot past its callback
 * until the kernel's notification, so slots can run out while
 * max_pending_sends is not reached: those sends get a heap slot. */

static __attribute__((noinline, cold)) struct dg__send_req *slot_take_slow(dg_loop *loop)
{
    struct dg__dgram *d = &loop->dgram;
    uint32_t n = loop->core.options.max_pending_sends;
    struct dg__send_req *req;
    if (!d->slots && !(d->slots = dg__malloc(n * sizeof(*d->slots))))
        return NULL;
    if (d->fresh_slots < n) { /* a slot no send has had yet */
        req = &d->slots[d->fresh_slots];
        req->slot = d->fresh_slots++;
    } else if ((req = dg__malloc(sizeof(*req)))) { /* every slot held: a heap slot */
        req->slot = DG__SLOT_HEAP;
    }
    return req;
}

static inline struct dg__send_req *slot_take(dg_loop *loop)
{
    struct dg__dgram *d = &loop->dgram;
    struct dg__send_req *req = d->free_slots;
    if (__builtin_expect(!req, 0))
        return slot_take_slow(loop);
    d->free_slots = req->next; /* req->slot is its own since its first take */
    return req;
}

/* The fields a send from a slot of the list reads while no heap
 * payload, engine buffer or lookup is attached (cold false: those three
 * pointers are read only when cold is set), for a send of len bytes from
 * the inline buffer to nowhere yet (the callers set payload and address).
 * The constants are adjacent, so they are written as one block. */
static inline void req_init_stack(struct dg__send_req *req, dg_socket *s, dg_send_cb cb,
                                  void *cb_data)
{
    req->sock = s;
    req->cb = cb;
    req->cb_data = cb_data;
    req->data = req->inline_buf;
    req->fail_status = 0;
    req->resolving = false;
    req->dns_failed = false;
    req->connected = false;
    req->while_connecting = false;
    req->zerocopy = false;
    req->zc_notif_pending = false;
    req->cold = false;
}

/* The fields every send reads (req_init_stack's, and the pointers the
 * general path attaches to, for any slot). */
static inline void req_init(struct dg__send_req *req, dg_socket *s, dg_send_cb cb,
                            void *cb_data)
{
    req_init_stack(req, s, cb, cb_data);
    req->cold = req->slot == DG__SLOT_HEAP;
    req->heap = NULL;
    req->sbuf = NULL;
    req->slow = NULL;
}

__attribute__((noinline, cold)) void dg__send_release_cold(dg_loop *loop,
                                                           struct dg__send_req *req)
{
    dg__free(req->heap);
    req->heap = NULL;
    if (req->sbuf) {
        dg__sbuf_free(&loop->core.sbufs, req->sbuf);
        req->sbuf = NULL;
    }
    dg__free(req->slow);
    req->slow = NULL;
    if (req->slot == DG__SLOT_HEAP)
        dg__free(req);
    else
        dg__send_slot_free(loop, req);
}

static inline void req_release(dg_loop *loop, struct dg__send_req *req)
{
    dg__send_release(loop, req);
}

void dg__send_reqs_free(dg_loop *loop)
{
    dg__free(loop->dgram.slots);
    loop->dgram.slots = NULL;
    loop->dgram.free_slots = NULL;
    loop->dgram.fresh_slots = 0;
    while (loop->dgram.free_gso) {
        struct dg__gso_req *next = loop->dgram.free_gso->next;
        dg__free(loop->dgram.free_gso);
        loop->dgram.free_gso = next;
    }
}

/* The error record Node builds for a failed send. */
static void send_error(const struct dg__send_req *req, int res, dg_error *err)
{
    if (req->dns_failed) {
        dg__lookup_error(&req->slow->lookup, err);
        return;
    }
    dg_address a;
    memset(err, 0, sizeof(*err));
    err->code = res;
    err->syscall = "send";
    if (!req->connected && req->namelen > 0 &&
        dg_address_from_sockaddr(&req->addr.sa, req->namelen, &a) == 0) {
        snprintf(err->address, sizeof(err->address), "%s", a.address);
        err->port = a.port;
    }
}

/* send_complete for a failed send: the error record (about 300 bytes)
 * lives only here, off the path every successful send takes. */
static __attribute__((noinline, cold)) void send_failed(struct dg__send_req *req, int res)
{
    dg_socket *s = req->sock;
    dg_error err;
    s->stats.tx_errors++;
    send_error(req, res, &err);
    void *cb_data;
    dg_send_cb cb = dg__send_dequeue(req, &cb_data, false);
    if (cb)
        cb(s, res, &err, cb_data);
    else
        dg__socket_emit_error(s, &err);
    dg__socket_op_done(s);
}

/* Ends a request: counters, the callback (or on_error), then the socket's
 * reference. Always runs from the loop. Inline in every caller: a call
 * and its register saves were about 10 instructions of each send. */
static inline __attribute__((always_inline)) void send_complete(struct dg__send_req *req,
                                                                int res)
{
    if (res < 0) {
        send_failed(req, res);
        return;
    }
    dg__send_succeeded(req, res, false);
}

__attribute__((noinline)) void dg__socket_on_send(dg_loop *loop,
                                                  const struct io_uring_cqe *cqe)
{
    struct dg__send_req *req = DG__UD_PTR(cqe->user_data);
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* A zero-copy send's second completion: the kernel no longer
         * reads the buffer, so it (and the request) go back. */
        req->zc_notif_pending = false;
        loop->dgram.zc_notifs--;
        req_release(loop, req);
        return;
    }
    if (cqe->flags & IORING_CQE_F_MORE) {
        req->zc_notif_pending = true; /* a notification follows */
        loop->dgram.zc_notifs++;
    }
    send_complete(req, cqe->res);
}

/* Large sends from a registered engine buffer skip the kernel's copy. */
static bool wants_zerocopy(const dg_loop *loop, const struct dg__send_req *req)
{
    unsigned min = loop->core.options.send_zerocopy_min;
    return req->sbuf && min > 0 && req->len >= min && loop->core.sbufs.registered &&
           loop->core.caps.send_to;
}

/* The msghdr of a request that goes out with sendmsg (kernels without
 * IORING_OP_SEND's address; memcheck's view of every send). */
static void req_msg_fill(struct dg__send_req *req)
{
    req->iov.iov_base = req->data;
    req->iov.iov_len = req->len;
    req->msg = (struct msghdr){
        .msg_name = req->namelen ? &req->addr : NULL,
        .msg_namelen = req->namelen,
        .msg_iov = &req->iov,
        .msg_iovlen = 1,
    };
}

/* One SQE; the kernel sees it at this turn's io_uring_enter. Inline in
 * every caller, as send_complete. */
static inline __attribute__((always_inline)) int req_submit(struct dg__send_req *req)
{
    dg_socket *s = req->sock;
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(&s->loop->core, &err);
    if (!sqe)
        return err;
#ifdef DG_VALGRIND
    req_msg_fill(req);
    dg__vg_check_send(&req->msg);
#endif
    if (!s->loop->core.caps.send_to) {
        req_msg_fill(req);
        io_uring_prep_sendmsg(sqe, s->fd, &req->msg, 0);
    } else {
        /* sendto as a ring op: the kernel copies neither a msghdr nor an
         * iovec (about 3% of a send's cost here, perf/results). Zero-copy
         * reads the registered pool, index 0 (one region). */
        if (req->zerocopy)
            io_uring_prep_send_zc_fixed(sqe, s->fd, req->data, req->len, 0, 0, 0);
        else
            io_uring_prep_send(sqe, s->fd, req->data, req->len, 0);
        if (req->namelen) {
            sqe->addr2 = (uint64_t)(uintptr_t)&req->addr;
            sqe->addr_len = (uint16_t)req->namelen;
        }
    }
    io_uring_sqe_set_data64(sqe, DG__UD(req, DG__OP_SEND));
    return 0;
}

/* ---- GSO runs ------------------------------------------------------------
 * Sends that are ready to leave are appended to the socket's run; a run
 * holds datagrams of one size to one destination and goes to the ring as
 * a single UDP_SEGMENT sendmsg before the turn's io_uring_enter. Anything
 * that does not fit ends the run first, so datagrams keep their order. */

static size_t gso_limit(const dg_socket *s)
{
    return dg__udp_payload_max(s->type);
}

static bool run_accepts(const dg_socket *s, const struct dg__send_req *req)
{
    const struct dg__send_req *head = s->run_head;
    if (req->len != head->len || req->connected != head->connected ||
        s->run_count >= DG__GSO_MAX_SEGMENTS || (s->run_count + 1) * req->len > gso_limit(s))
        return false;
    if (req->connected)
        return true;
    if (req->namelen != head->namelen)
        return false;
    /* Constant sizes, so the compiler compares in registers (a memcmp
     * call of variable length was 4% of a GSO send's instructions). */
    if (req->namelen == sizeof(struct sockaddr_in))
        return memcmp(&req->addr, &head->addr, sizeof(struct sockaddr_in)) == 0;
    return memcmp(&req->addr, &head->addr, sizeof(struct sockaddr_in6)) == 0;
}

static struct dg__gso_req *gso_alloc(dg_loop *loop)
{
    struct dg__gso_req *g = loop->dgram.free_gso;
    if (g)
        loop->dgram.free_gso = g->next;
    else if (!(g = dg__malloc(sizeof(*g))))
        return NULL;
    memset(g, 0, offsetof(struct dg__gso_req, iov));
    return g;
}

static void gso_release(dg_loop *loop, struct dg__gso_req *g)
{
    g->next = loop->dgram.free_gso;
    loop->dgram.free_gso = g;
}

/* One sendmsg for the whole run; the kernel cuts it into datagrams of
 * the first one's size. */
static int gso_submit(dg_socket *s, struct dg__send_req *head, unsigned count)
{
    struct dg__gso_req *g = gso_alloc(s->loop);
    if (!g)
        return -ENOMEM;
    g->sock = s;
    g->children = head;
    g->count = count;
    unsigned i = 0;
    for (struct dg__send_req *r = head; r; r = r->next)
        g->iov[i++] = (struct iovec){.iov_base = r->data, .iov_len = r->len};
    g->msg = (struct msghdr){.msg_name = head->namelen ? &head->addr : NULL,
                             .msg_namelen = head->namelen};
    g->msg.msg_iov = g->iov;
    g->msg.msg_iovlen = count;
    g->msg.msg_control = g->control.buf;
    g->msg.msg_controllen = sizeof(g->control.buf);
    /* The kernel reads msg_controllen bytes, the padding after the
     * 2-byte segment size too (memcheck flags it: docs/valgrind.md). */
    memset(&g->control, 0, sizeof(g->control));
    struct cmsghdr *c = CMSG_FIRSTHDR(&g->msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)head->len;
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(&s->loop->core, &err);
    if (!sqe) {
        gso_release(s->loop, g);
        return err;
    }
    dg__vg_check_send(&g->msg);
    io_uring_prep_sendmsg(sqe, s->fd, &g->msg, 0);
    io_uring_sqe_set_data64(sqe, DG__UD(g, DG__OP_SEND_GSO));
    return 0;
}

static void sendq_fail_one(dg_socket *s, struct dg__send_req *req, int status);
static void sendq_flush_deferred(struct dg__deferred *node);

/* A socket's FIFO lists of requests (the send queue, the stalled list):
 * a head, a tail, linked through req->next. */
static void req_list_push(struct dg__send_req **head, struct dg__send_req **tail,
                          struct dg__send_req *req)
{
    req->next = NULL;
    if (*tail)
        (*tail)->next = req;
    else
        *head = req;
    *tail = req;
}

static struct dg__send_req *req_list_pop(struct dg__send_req **head, struct dg__send_req **tail)
{
    struct dg__send_req *req = *head;
    *head = req->next;
    if (!*head)
        *tail = NULL;
    req->next = NULL;
    return req;
}

/* ---- Back-pressure: no SQE -------------------------------------------------
 * dg__get_sqe answers -EBUSY when the SQ is full and the kernel refuses
 * the early flush (kernels before 5.19 do while the CQ has overflowed
 * entries). That is back-pressure, not a failed send: the request, and
 * every later one of the socket that would go to the ring, waits in the
 * socket's stalled list, in call order, and goes out from the loop after
 * the next submit (sendq_ev). A socket that closes meanwhile completes
 * them with -ECANCELED, as any send still pending at close. */

static void stalled_push(dg_socket *s, struct dg__send_req *req)
{
    req_list_push(&s->stalled_head, &s->stalled_tail, req);
    dg__defer(&s->loop->core, &s->sendq_ev, sendq_flush_deferred);
}

/* To the ring, behind any stalled request of the socket. Returns 0 (sent
 * or stalled) or the ring's error. */
static int req_to_ring(struct dg__send_req *req)
{
    dg_socket *s = req->sock;
    int ret = s->stalled_head ? -EBUSY : req_submit(req);
    if (ret == -EBUSY) {
        stalled_push(s, req);
        return 0;
    }
    return ret;
}

/* Hands the stalled requests to the ring in order, until one still finds
 * no SQE (then it waits for the next turn) or none is left. */
static void stalled_retry(dg_socket *s)
{
    while (s->stalled_head) {
        struct dg__send_req *req = s->stalled_head;
        int ret = s->state >= DG__CLOSING ? -ECANCELED : req_submit(req);
        if (ret == -EBUSY) {
            dg__defer(&s->loop->core, &s->sendq_ev, sendq_flush_deferred);
            return;
        }
        req_list_pop(&s->stalled_head, &s->stalled_tail);
        if (ret < 0)
            send_complete(req, ret);
    }
}

/* Sends the requests of a list one by one; a request the ring refuses
 * fails through its callback, from the loop. */
static void submit_each(struct dg__send_req *req)
{
    while (req) {
        struct dg__send_req *next = req->next;
        req->next = NULL;
        int ret = req_to_ring(req);
        if (ret < 0)
            sendq_fail_one(req->sock, req, ret);
        req = next;
    }
}

void dg__send_run_flush(dg_socket *s)
{
    struct dg__send_req *head = s->run_head;
    unsigned count = s->run_count;
    if (!head)
        return;
    s->run_head = s->run_tail = NULL;
    s->run_count = 0;
    if (count > 1 && !s->stalled_head && gso_submit(s, head, count) == 0)
        return;
    submit_each(head);
}

void dg__send_runs_flush(dg_loop *loop)
{
    dg_socket *s = loop->dgram.run_head;
    loop->dgram.run_head = NULL;
    while (s) {
        dg_socket *next = s->run_next;
        s->run_queued = false;
        dg__send_run_flush(s);
        s = next;
    }
}

/* A request ready to leave: into the socket's run, or to the ring. */
static int req_dispatch(struct dg__send_req *req)
{
    dg_socket *s = req->sock;
    bool runs = !(s->gso_off || req->len == 0 || req->zerocopy);
    if (s->run_head && !(runs && run_accepts(s, req))) {
        if (runs && s->run_count == 1) {
            /* A run of one (replies to many peers) leaves as a plain
             * send, as the flush would send it, and this request takes
             * its place: no list walk, no flush call. */
            struct dg__send_req *prev = s->run_head;
            req->next = NULL;
            s->run_head = s->run_tail = req;
            int ret = req_to_ring(prev);
            if (ret < 0)
                sendq_fail_one(s, prev, ret);
            return 0;
        }
        dg__send_run_flush(s);
    }
    if (!runs)
        return req_to_ring(req);
    req->next = NULL;
    if (s->run_tail)
        s->run_tail->next = req;
    else
        s->run_head = req;
    s->run_tail = req;
    s->run_count++;
    if (!s->run_queued) {
        s->run_queued = true;
        s->run_next = s->loop->dgram.run_head;
        s->loop->dgram.run_head = s;
        s->loop->core.prepare |= DG__PREPARE_SEND_RUNS;
        dg__loop_poke(&s->loop->core);
    }
    return 0;
}

void dg__socket_on_send_gso(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    struct dg__gso_req *g = DG__UD_PTR(cqe->user_data);
    dg_socket *s = g->sock;
    struct dg__send_req *req = g->children;
    gso_release(loop, g);
    if ((cqe->res == -EIO || cqe->res == -EINVAL) && s->state < DG__CLOSING) {
        /* The kernel or the device cannot segment this: no GSO on this
         * socket from now on, and the run leaves datagram by datagram. */
        s->gso_off = true;
        submit_each(req);
        return;
    }
    if (cqe->res >= 0)
        s->stats.tx_gso_sends++;
    while (req) {
        struct dg__send_req *next = req->next;
        send_complete(req, cqe->res >= 0 ? (int)req->len : cqe->res);
        req = next;
    }
}

static void sendq_push(dg_socket *s, struct dg__send_req *req)
{
    req_list_push(&s->sendq_head, &s->sendq_tail, req);
    s->fast_send = -1; /* later sends queue behind it */
}

/* A queued request's status once nothing holds it back: a destination
 * given while a connect was in progress meets a connected socket with
 * EISCONN, as libuv answers Node. 1 while it must still wait. */
static int sendq_ready(const dg_socket *s, const struct dg__send_req *req)
{
    if (req->fail_status < 0)
        return req->fail_status;
    if (s->state != DG__BOUND || (req->while_connecting && s->connect_state == DG__CONNECTING))
        return 1; /* waiting for 'listening', or for the connect's outcome */
    if (req->while_connecting && !req->connected && s->connect_state == DG__CONNECTED)
        return -EISCONN;
    return 0;
}

void dg__sendq_flush(dg_socket *s)
{
    while (s->sendq_head && !s->sendq_head->resolving) {
        struct dg__send_req *head = s->sendq_head;
        int status = sendq_ready(s, head);
        if (status > 0)
            break;
        req_list_pop(&s->sendq_head, &s->sendq_tail);
        if (status == 0)
            status = req_dispatch(head);
        if (status < 0)
            send_complete(head, status);
    }
    dg__socket_fast_send_update(s);
}

static void sendq_flush_deferred(struct dg__deferred *node)
{
    dg_socket *s = DG__CONTAINER(node, dg_socket, sendq_ev);
    stalled_retry(s);
    dg__sendq_flush(s);
}

void dg__sendq_fail(dg_socket *s, int status)
{
    for (struct dg__send_req *req = s->sendq_head; req; req = req->next) {
        if (req->fail_status == 0)
            req->fail_status = status;
        if (req->resolving)
            dg__lookup_cancel(&req->slow->lookup);
    }
    if (s->sendq_head)
        dg__defer(&s->loop->core, &s->sendq_ev, sendq_flush_deferred);
}

/* Queues a request that could not leave so it fails from the loop. */
static void sendq_fail_one(dg_socket *s, struct dg__send_req *req, int status)
{
    req->fail_status = status;
    sendq_push(s, req);
    dg__defer(&s->loop->core, &s->sendq_ev, sendq_flush_deferred);
}

static void send_lookup_done(struct dg__lookup *lk)
{
    struct dg__send_req *req = DG__CONTAINER(lk, struct dg__send_slow, lookup)->req;
    req->resolving = false;
    if (req->fail_status == 0 && lk->status < 0) {
        req->fail_status = lk->status;
        req->dns_failed = lk->status != -ECANCELED;
    } else if (req->fail_status == 0 && lk->addrlen > sizeof(req->addr)) {
        req->fail_status = -EAFNOSUPPORT; /* never: lookups give the socket's family */
    } else if (req->fail_status == 0) {
        memcpy(&req->addr, &lk->addr, lk->addrlen);
        req->namelen = lk->addrlen;
    }
    dg__sendq_flush(req->sock);
}

/* Where a datagram goes: the connected peer, a socket address, or text to
 * parse or resolve with a port. */
struct destination {
    const struct sockaddr *sa;
    socklen_t salen;
    const char *text;
    int port;
    bool connected;
};

/* A payload copy with fixed-size moves up to 128 bytes (two that may
 * overlap), so the common datagram makes no memcpy call. */
static inline void payload_copy(unsigned char *dst, const unsigned char *src, size_t n)
{
    if (n >= 16 && n <= 32) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n > 32 && n <= 64) {
        memcpy(dst, src, 32);
        memcpy(dst + n - 32, src + n - 32, 32);
    } else if (n > 64 && n <= 128) {
        memcpy(dst, src, 64);
        memcpy(dst + n - 64, src + n - 64, 64);
    } else if (n) {
        memcpy(dst, src, n);
    }
}

/* A socket address of the socket's family (check_sockaddr or a parsed
 * literal: salen is one of the two sizes), with fixed-size moves. */
static inline void addr_copy(struct dg__send_req *req, const struct sockaddr *sa, socklen_t salen)
{
    if (salen == sizeof(struct sockaddr_in))
        memcpy(&req->addr, sa, sizeof(struct sockaddr_in));
    else
        memcpy(&req->addr, sa, sizeof(struct sockaddr_in6));
    req->namelen = salen;
}

/* The payload into the request (inline, or a heap buffer when larger). */
static int req_fill(struct dg__send_req *req, const struct iovec *iov, int iovcnt, size_t total)
{
    if (total > sizeof(req->inline_buf)) {
        if (!(req->heap = dg__malloc(total)))
            return -ENOMEM;
        req->cold = true;
        req->data = req->heap;
    }
    req->len = (uint32_t)total;
    if (iovcnt == 1) {
        payload_copy(req->data, iov[0].iov_base, total);
        return 0;
    }
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(req->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    return 0;
}

/* A host name (or any text, with a lookup option): the request's cold
 * part holds the lookup, and the request waits for it. */
static __attribute__((noinline, cold)) int req_lookup(struct dg__send_req *req,
                                                      const struct destination *d)
{
    if (!(req->slow = dg__malloc(sizeof(*req->slow))))
        return -ENOMEM;
    req->cold = true;
    req->slow->req = req;
    req->resolving = true; /* literals were parsed by send_checked */
    int ret = dg__lookup_start(&req->slow->lookup, req->sock, d->text, d->port, false,
                               send_lookup_done);
    if (ret < 0)
        req->resolving = false;
    return ret;
}

/* Fills the destination, or starts its lookup (then the request waits). */
static int req_destination(struct dg__send_req *req, const struct destination *d)
{
    req->connected = d->connected;
    req->namelen = 0; /* connected, or no address until the lookup gives one */
    if (d->connected)
        return 0;
    if (d->sa) {
        addr_copy(req, d->sa, d->salen);
        return 0;
    }
    return req_lookup(req, d);
}

/* The payload stays where it is: an engine buffer the request now owns.
 * Whether it goes zero-copy is decided here, once. */
static void req_adopt(dg_loop *loop, struct dg__send_req *req, struct dg__sbuf *b, size_t len)
{
    req->sbuf = b;
    req->cold = true;
    b->state = DG__SBUF_ENGINE;
    req->len = (uint32_t)len;
    req->data = b->pub.data;
    req->zerocopy = wants_zerocopy(loop, req);
}

/* Undoes req_adopt on a synchronous failure: the buffer is the user's
 * again, and req_release must not put it back in the pool. */
static void req_fail_release(dg_loop *loop, struct dg__send_req *req)
{
    if (req->sbuf) {
        req->sbuf->state = DG__SBUF_USER;
        req->sbuf = NULL;
    }
    req_release(loop, req);
}

/* An accepted send: its socket's reference and the queue's counters (the
 * callback's send_dequeue undoes them). */
static inline void send_counted(dg_socket *s, size_t len)
{
    s->inflight++;
    s->queue_bytes += len;
    ((dg_socket *)dg__unrelated(s))->queue_count++;
    s->loop->dgram.pending_sends++;
}

static int send_enqueue(dg_socket *s, const struct iovec *iov, int iovcnt, size_t total,
                        const struct destination *d, struct dg__sbuf *sbuf, dg_send_cb cb,
                        void *cb_data)
{
    dg_loop *loop = s->loop;
    if (loop->dgram.pending_sends >= loop->core.options.max_pending_sends)
        return DG_ERR_SEND_QUEUE_FULL;
    struct dg__send_req *req = slot_take(loop);
    if (!req)
        return -ENOMEM;
    req_init(req, s, cb, cb_data);
    int ret = 0;
    if (sbuf)
        req_adopt(loop, req, sbuf, total);
    else
        ret = req_fill(req, iov, iovcnt, total);
    if (ret == 0)
        ret = req_destination(req, d);
    if (ret < 0) {
        req_fail_release(loop, req);
        return ret;
    }
    dg__socket_implicit_bind(s);
    req->while_connecting = s->connect_state == DG__CONNECTING;
    if (!req->resolving && !s->sendq_head && dg__socket_sends_leave(s)) {
        ret = req_dispatch(req);
        if (ret < 0) {
            req_fail_release(loop, req);
            return ret;
        }
    } else {
        sendq_push(s, req);
    }
    send_counted(s, total);
    return 0;
}

static int check_payload(const struct iovec *iov, int iovcnt, size_t *total)
{
    if (iovcnt < 0 || iovcnt > DG__MAX_IOV)
        return -EINVAL;
    if (iovcnt > 0 && !iov)
        return DG_ERR_INVALID_ARG_VALUE;
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len > 0)
            return DG_ERR_INVALID_ARG_VALUE;
        if (iov[i].iov_len > 65535 || sum + iov[i].iov_len > 65535)
            return -EMSGSIZE; /* no UDP datagram is larger; checked before a sum could wrap */
        sum += iov[i].iov_len;
    }
    *total = sum;
    return 0;
}

/* Node's order: the payload, then the destination against the connect
 * state, then whether the socket still runs. */
static int send_checked(dg_socket *s, const struct iovec *iov, int iovcnt,
                        struct destination *d, struct dg__sbuf *sbuf, dg_send_cb cb,
                        void *cb_data)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    size_t total = 0;
    int ret = check_payload(iov, iovcnt, &total);
    if (ret < 0)
        return ret;
    /* A literal destination, parsed: d->sa points here. Not part of
     * struct destination, whose zeroing every send would pay for. */
    struct sockaddr_storage parsed;
    bool has_dest = d->sa || d->port != 0 || d->text != NULL;
    if (s->connect_state == DG__CONNECTED) {
        if (has_dest)
            return DG_ERR_SOCKET_DGRAM_IS_CONNECTED;
        d->connected = true;
    } else if (!d->sa) {
        if (d->port <= 0 || d->port > 65535)
            return DG_ERR_SOCKET_BAD_PORT;
        int family = s->type == DG_UDP4 ? AF_INET : AF_INET6;
        /* A literal is parsed once, here, and travels as a sockaddr; only
         * names (and every address with a lookup option) go on to resolve. */
        if (!s->options.lookup &&
            dg__parse_address(family, d->text, d->port, false, &parsed, &d->salen) == 0)
            d->sa = (const struct sockaddr *)&parsed;
        else if ((ret = dg__check_address_text(s, d->text)) < 0)
            return ret;
    }
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    return send_enqueue(s, iov, iovcnt, total, d, sbuf, cb, cb_data);
}

DG_EXPORT int dg_socket_sendv(dg_socket *sock, const struct iovec *iov, int iovcnt, int port,
                              const char *address, dg_send_cb cb, void *cb_data)
{
    struct destination d = {.text = address, .port = port};
    return send_checked(sock, iov, iovcnt, &d, NULL, cb, cb_data);
}

DG_EXPORT int dg_socket_send_slice(dg_socket *sock, const void *buf, size_t buflen, size_t offset,
                                   size_t length, int port, const char *address, dg_send_cb cb,
                                   void *cb_data)
{
    if (!buf && buflen > 0)
        return DG_ERR_INVALID_ARG_VALUE;
    if (offset > buflen || length > buflen - offset)
        return DG_ERR_BUFFER_OUT_OF_BOUNDS;
    const char *base = buf ? (const char *)buf + offset : NULL;
    return dg_socket_send(sock, base, length, port, address, cb, cb_data);
}

/* The checks dg_socket_send_to adds for a socket address; 0 if fine. */
static int check_sockaddr(const dg_socket *sock, const struct sockaddr *to, socklen_t tolen,
                          socklen_t *need_out)
{
    if (!to)
        return DG_ERR_INVALID_ARG_VALUE;
    socklen_t need = sock->type == DG_UDP4 ? sizeof(struct sockaddr_in)
                                           : sizeof(struct sockaddr_in6);
    if (to->sa_family != (sock->type == DG_UDP4 ? AF_INET : AF_INET6) || tolen < need)
        return DG_ERR_INVALID_ADDRESS;
    if (((const struct sockaddr_in *)to)->sin_port == 0) /* same offset in sockaddr_in6 */
        return sock->connect_state == DG__CONNECTED ? DG_ERR_SOCKET_DGRAM_IS_CONNECTED
                                                    : DG_ERR_SOCKET_BAD_PORT;
    *need_out = need;
    return 0;
}

static int send_to_full(dg_socket *sock, const void *buf, size_t len, const struct sockaddr *to,
                        socklen_t tolen, dg_send_cb cb, void *cb_data);

/* Whether a payload may take a fast path: there, and within a slot's
 * inline buffer (larger ones need a heap buffer, the full path's). */
static inline bool fits_inline(const void *buf, size_t len)
{
    return buf && len <= sizeof(((struct dg__send_req *)0)->inline_buf);
}

/* Whether a request that goes to the ring (no GSO run) may go straight
 * into an SQE: nothing stalled ahead, a free SQE (never, on the epoll
 * backend) and IORING_OP_SEND's address. */
static inline bool send_direct_ok(const dg_socket *s)
{
    const struct dg__core *c = &s->loop->core;
    return !s->stalled_head && c->sq_free != 0 && c->caps.send_to;
}

/* send_direct's SQE, written in place, without the embedding poke. */
static inline __attribute__((always_inline)) void send_direct_sqe(dg_socket *s,
                                                                  struct dg__send_req *req)
{
    struct io_uring_sqe *sqe = dg__take_sqe(&s->loop->core);
#ifdef DG_VALGRIND
    req_msg_fill(req);
    dg__vg_check_send(&req->msg);
#endif
    dg__sqe_send_to(sqe, s->fd, req->data, req->len, &req->addr, (uint16_t)req->namelen,
                    DG__UD(req, DG__OP_SEND));
}

/* req_submit for send_direct_ok's case, the SQE written in place. */
static inline __attribute__((always_inline)) void send_direct(dg_socket *s,
                                                              struct dg__send_req *req)
{
    dg__loop_poke(&s->loop->core); /* as dg__get_sqe */
    send_direct_sqe(s, req);
}

/* Whether a fast-path request goes straight into an SQE: no GSO (and no
 * run left from before the kernel refused it) and send_direct_ok. */
static inline bool send_direct_now(const dg_socket *s)
{
    return s->gso_off && !s->run_head && send_direct_ok(s);
}

/* Whether send_to_fast's common case holds: send_direct_now and no
 * embedding poke due. */
static inline bool send_leaf_ok(const dg_socket *s)
{
    const struct dg__core *c = &s->loop->core;
    return send_direct_now(s) && (c->in_run || c->notify_fd < 0 || c->poked);
}

/* The rest of send_to_fast once the request is written (payload and
 * address too): GSO runs, a stalled socket, a full SQ, a poke due or the
 * epoll backend. Out of line, so that the common case calls no function
 * and makes no frame. */
static __attribute__((noinline)) int send_fast_queue(dg_socket *s, struct dg__send_req *req,
                                                    size_t len)
{
    if (send_direct_now(s)) {
        send_direct(s, req); /* req_to_ring's outcome, without its tests */
        send_counted(s, len);
        return 0;
    }
    req->heap = NULL; /* read by the general path's failures (req_fail_release) */
    req->sbuf = NULL;
    req->slow = NULL;
    /* Without GSO (and no run left from before the kernel refused it)
     * the request goes to the ring: req_dispatch's outcome, one test. */
    int ret = s->gso_off && !s->run_head ? req_to_ring(req) : req_dispatch(req);
    if (ret < 0) {
        req_release(s->loop, req);
        return ret;
    }
    send_counted(s, len);
    return 0;
}

/* send_to_fast's payloads outside 16-64 bytes (a call of memcpy), out of
 * line for the same reason. */
static __attribute__((noinline)) int send_fast_copy(dg_socket *s, struct dg__send_req *req,
                                                   const void *buf, size_t len,
                                                   const struct sockaddr *to, socklen_t need)
{
    payload_copy(req->data, buf, len);
    addr_copy(req, to, need);
    return send_fast_queue(s, req, len);
}

/* dg_socket_send_to on a socket whose fast_send flag names to's family:
 * when every check send_checked would make passes, the send is a slot,
 * two copies and the SQE (or the run); anything else goes to the full
 * path, which returns its errors. The same outcome either way. */
static inline int send_to_fast(dg_socket *s, const void *buf, size_t len,
                               const struct sockaddr *to, socklen_t tolen, dg_send_cb cb,
                               void *cb_data)
{
    dg_loop *loop = s->loop;
    socklen_t need = to->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6);
    if (tolen < need || ((const struct sockaddr_in *)to)->sin_port == 0 ||
        loop->dgram.pending_sends >= loop->core.options.max_pending_sends ||
        !loop->dgram.free_slots)
        return send_to_full(s, buf, len, to, tolen, cb, cb_data);
    struct dg__send_req *req = slot_take(loop); /* from the list: not empty */
    req_init_stack(req, s, cb, cb_data);
    req->len = (uint32_t)len;
    if (len < 16 || len > 64)
        return send_fast_copy(s, req, buf, len, to, need);
    payload_copy(req->data, buf, len); /* two fixed-size moves, no call */
    addr_copy(req, to, need);
    if (!send_leaf_ok(s))
        return send_fast_queue(s, req, len);
    send_direct_sqe(s, req);
    send_counted(s, len);
    return 0;
}

DG_EXPORT int dg_socket_send_to(dg_socket *sock, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen, dg_send_cb cb,
                                void *cb_data)
{
    if (sock && to && to->sa_family == sock->fast_send && fits_inline(buf, len))
        return send_to_fast(sock, buf, len, to, tolen, cb, cb_data);
    return send_to_full(sock, buf, len, to, tolen, cb, cb_data);
}

/* Parses a literal for dg_socket_send's fast path and remembers it in
 * the socket's last_dest (a literal's meaning never changes, but a scope
 * name's index can, so "%scope" texts are not kept). NULL: not a literal. */
static __attribute__((noinline)) const struct sockaddr *last_dest_parse(dg_socket *s,
                                                                        const char *address,
                                                                        int port,
                                                                        socklen_t *len)
{
    struct dg__last_dest *c = &s->last_dest;
    struct sockaddr_storage ss;
    socklen_t salen = 0;
    if (dg__parse_address(s->fast_send, address, port, false, &ss, &salen) < 0)
        return NULL;
    size_t n = address ? strnlen(address, sizeof(c->text)) : sizeof(c->text);
    c->port = 0;
    if (n < sizeof(c->text) && !memchr(address, '%', n)) {
        memcpy(c->text, address, n + 1);
        c->port = port;
    }
    memcpy(&c->sa, &ss, salen);
    c->len = salen;
    *len = salen;
    return (const struct sockaddr *)&c->sa;
}

/* A literal address on a ready socket (the way docs/api.md sends) takes
 * dg_socket_send_to's fast path, parsed once per new text: send_checked
 * would parse it the same way and send the same socket address, so the
 * outcome is the same. Names, a lookup option and every error go the
 * full way. */
DG_EXPORT int dg_socket_send(dg_socket *sock, const void *buf, size_t len, int port,
                             const char *address, dg_send_cb cb, void *cb_data)
{
    if (sock && sock->fast_send >= 0 && !sock->options.lookup && fits_inline(buf, len) &&
        port > 0 && port <= 65535) {
        const struct dg__last_dest *c = &sock->last_dest;
        socklen_t salen = c->len;
        const struct sockaddr *sa = (const struct sockaddr *)&c->sa;
        if (!address || c->port != port || strncmp(c->text, address, sizeof(c->text)) != 0)
            sa = last_dest_parse(sock, address, port, &salen);
        if (sa)
            return send_to_fast(sock, buf, len, sa, salen, cb, cb_data);
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return dg_socket_sendv(sock, &iov, 1, port, address, cb, cb_data);
}

/* Every case dg_socket_send_to's fast path does not take. */
static __attribute__((noinline)) int send_to_full(dg_socket *sock, const void *buf, size_t len,
                                                  const struct sockaddr *to, socklen_t tolen,
                                                  dg_send_cb cb, void *cb_data)
{
    socklen_t need = 0;
    int ret = sock ? check_sockaddr(sock, to, tolen, &need) : DG_ERR_INVALID_ARG_VALUE;
    if (ret < 0)
        return ret;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct destination d = {.sa = to, .salen = need};
    return send_checked(sock, &iov, 1, &d, NULL, cb, cb_data);
}

/* An engine buffer the caller may send: theirs, and len within it. */
static int sbuf_check(dg_socket *sock, dg_send_buffer *buf, size_t len, struct dg__sbuf **out)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__sbuf *b = dg__sbuf_owned(&sock->loop->core.sbufs, buf);
    if (!b)
        return DG_ERR_INVALID_ARG_VALUE;
    if (len > b->pub.capacity)
        return DG_ERR_BUFFER_OUT_OF_BOUNDS;
    *out = b;
    return 0;
}

DG_EXPORT int dg_socket_send_buffer(dg_socket *sock, dg_send_buffer *buf, size_t len, int port,
                                    const char *address, dg_send_cb cb, void *cb_data)
{
    struct dg__sbuf *b = NULL;
    int ret = sbuf_check(sock, buf, len, &b);
    if (ret < 0)
        return ret;
    struct iovec iov = {.iov_base = b->pub.data, .iov_len = len};
    struct destination d = {.text = address, .port = port};
    return send_checked(sock, &iov, 1, &d, b, cb, cb_data);
}

DG_EXPORT int dg_socket_send_buffer_to(dg_socket *sock, dg_send_buffer *buf, size_t len,
                                       const struct sockaddr *to, socklen_t tolen,
                                       dg_send_cb cb, void *cb_data)
{
    struct dg__sbuf *b = NULL;
    socklen_t need = 0;
    int ret = sbuf_check(sock, buf, len, &b);
    if (ret == 0)
        ret = check_sockaddr(sock, to, tolen, &need);
    if (ret < 0)
        return ret;
    struct iovec iov = {.iov_base = b->pub.data, .iov_len = len};
    struct destination d = {.sa = to, .salen = need};
    return send_checked(sock, &iov, 1, &d, b, cb, cb_data);
}

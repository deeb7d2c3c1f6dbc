/* UDP sockets: creation, bind, the multishot receive, sends and close.
 *
 * Lifetime: a socket is freed only after its close callback ran, and its
 * close callback runs only after every ring operation that names it
 * (s->inflight) has posted its final completion, so a completion never
 * meets freed memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SOCKET_OF(node, field) ((dg_socket *)((char *)(node) - offsetof(dg_socket, field)))

static int socket_family(const dg_socket *s)
{
    return s->type == DG_UDP4 ? AF_INET : AF_INET6;
}

static bool socket_is_open(const dg_socket *s)
{
    return s->state == DG__BINDING || s->state == DG__BOUND;
}

/* A bound, referenced socket keeps the loop alive. */
static void socket_update_alive(dg_socket *s)
{
    bool want = socket_is_open(s) && s->ref;
    if (want == s->counted)
        return;
    s->counted = want;
    if (want)
        s->loop->alive_handles++;
    else
        s->loop->alive_handles--;
}

static void socket_emit_error(dg_socket *s, const dg_error *err)
{
    if (s->handlers.on_error)
        s->handlers.on_error(s, err, s->data);
}

static void error_with_address(dg_error *err, int code, const char *syscall,
                               const struct sockaddr *sa, socklen_t len)
{
    dg_address a;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->syscall = syscall;
    if (sa && dg_address_from_sockaddr(sa, len, &a) == 0) {
        memcpy(err->address, a.address, sizeof(err->address));
        err->port = a.port;
    }
}

/* ---- Creation ---------------------------------------------------------- */

static int set_int_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

static int validate_options(const dg_socket_options *o)
{
    if (o->type != DG_UDP4 && o->type != DG_UDP6)
        return DG_ERR_SOCKET_BAD_TYPE;
    if (o->flags & ~(DG_SOCKET_REUSE_ADDR | DG_SOCKET_IPV6_ONLY))
        return DG_ERR_INVALID_ARG_VALUE;
    if ((o->flags & DG_SOCKET_IPV6_ONLY) && o->type != DG_UDP6)
        return DG_ERR_INVALID_ARG_VALUE;
    if (o->recv_buffer_size < 0 || o->send_buffer_size < 0)
        return DG_ERR_SOCKET_BAD_BUFFER_SIZE;
    return 0;
}

/* A blocking fd on purpose: the ring never blocks on it (io_uring tries
 * non-blocking first and polls), and some kernels fail O_NONBLOCK files
 * with EAGAIN instead of polling. */
static int open_fd(const dg_socket_options *o)
{
    int fd = socket(o->type == DG_UDP4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ret = 0;
    if (o->flags & DG_SOCKET_REUSE_ADDR)
        ret = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (ret == 0 && o->type == DG_UDP6)
        ret = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(o->flags & DG_SOCKET_IPV6_ONLY));
    if (ret == 0) /* kernel drop counter on every datagram; optional (2.6.33+) */
        (void)set_int_option(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

DG_EXPORT int dg_socket_create(dg_loop *loop, const dg_socket_options *options,
                               const dg_socket_handlers *handlers, void *data,
                               dg_socket **out)
{
    if (!loop || !options || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    int ret = validate_options(options);
    if (ret < 0)
        return ret;
    dg_socket *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int fd = open_fd(options);
    if (fd < 0) {
        free(s);
        return fd;
    }
    s->loop = loop;
    s->fd = fd;
    s->type = options->type;
    s->options = *options;
    if (handlers)
        s->handlers = *handlers;
    s->data = data;
    s->ref = true;
    s->state = DG__UNBOUND;
    s->rmsg.msg_namelen = DG__RECV_NAME_LEN;
    s->rmsg.msg_controllen = DG__RECV_CONTROL_LEN;
    loop->handle_count++;
    *out = s;
    return 0;
}

/* ---- Receive ----------------------------------------------------------- */

static void queue_rearm(dg_socket *s)
{
    if (s->rearm_queued)
        return;
    s->rearm_queued = true;
    s->rearm_next = s->loop->rearm_head;
    s->loop->rearm_head = s;
}

static void recv_arm(dg_socket *s)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(s->loop, &err);
    if (!sqe) {
        queue_rearm(s); /* the ring refused a flush; try again next turn */
        return;
    }
    io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->rmsg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = s->loop->bufring.group;
    io_uring_sqe_set_data64(sqe, DG__UD(s, DG__OP_RECV));
    s->recv_armed = true;
    s->inflight++;
}

static uint32_t read_drop_counter(struct io_uring_recvmsg_out *out, struct msghdr *mh)
{
    for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(out, mh); c;
         c = io_uring_recvmsg_cmsg_nexthdr(out, mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
            c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof(drops));
            return drops;
        }
    }
    return 0;
}

/* Decodes one buffer the kernel filled and hands the datagram to the user. */
static void deliver(dg_socket *s, void *buf, int res)
{
    struct io_uring_recvmsg_out *out = io_uring_recvmsg_validate(buf, res, &s->rmsg);
    if (!out)
        return; /* shorter than the header the kernel always writes: cannot happen */
    dg_message m;
    m.data = io_uring_recvmsg_payload(out, &s->rmsg);
    m.length = io_uring_recvmsg_payload_length(out, res, &s->rmsg);
    m.size = out->payloadlen;
    m.addr = io_uring_recvmsg_name(out);
    m.addrlen = out->namelen < s->rmsg.msg_namelen ? out->namelen : s->rmsg.msg_namelen;
    m.flags = (out->flags & MSG_TRUNC) ? DG_MSG_TRUNC : 0;
    m.reserved = 0;
    if (out->controllen > 0) {
        uint32_t drops = read_drop_counter(out, &s->rmsg);
        if (drops)
            s->stats.rx_kernel_drops = drops;
    }
    s->stats.rx_datagrams++;
    s->stats.rx_bytes += m.length;
    if (m.flags & DG_MSG_TRUNC)
        s->stats.rx_truncated++;
    if (s->handlers.on_message)
        s->handlers.on_message(s, &m, s->data);
}

static void socket_op_done(dg_socket *s);

void dg__socket_on_recv(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    dg_socket *s = DG__UD_PTR(cqe->user_data);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (cqe->res >= 0 && socket_is_open(s))
            deliver(s, dg__bufring_addr(&loop->bufring, bid), cqe->res);
        dg__bufring_recycle(&loop->bufring, bid);
    } else if (cqe->res == -ENOBUFS) {
        s->stats.rx_no_buffers++; /* the datagrams wait in the socket queue */
    } else if (cqe->res < 0 && cqe->res != -ECANCELED && socket_is_open(s)) {
        dg_error err = {.code = cqe->res, .syscall = "recvmsg"};
        socket_emit_error(s, &err);
    }
    if (more)
        return;
    s->recv_armed = false;
    if (socket_is_open(s))
        queue_rearm(s); /* after this batch's buffers are back in the ring */
    socket_op_done(s);
}

static void issue_close_cancel(dg_socket *s);

void dg__sockets_rearm(dg_loop *loop)
{
    dg_socket *s = loop->rearm_head;
    loop->rearm_head = NULL;
    while (s) {
        dg_socket *next = s->rearm_next;
        s->rearm_queued = false;
        if (s->state == DG__CLOSING && s->cancel_pending) {
            issue_close_cancel(s);
        } else if (socket_is_open(s) && !s->recv_armed) {
            s->stats.rx_rearms++;
            recv_arm(s);
        }
        s = next;
    }
}

static void rearm_unlink(dg_socket *s)
{
    if (!s->rearm_queued)
        return;
    for (dg_socket **p = &s->loop->rearm_head; *p; p = &(*p)->rearm_next) {
        if (*p == s) {
            *p = s->rearm_next;
            break;
        }
    }
    s->rearm_queued = false;
}

/* ---- Bind -------------------------------------------------------------- */

static int apply_buffer_sizes(dg_socket *s)
{
    int ret = 0;
    if (s->options.recv_buffer_size > 0)
        ret = set_int_option(s->fd, SOL_SOCKET, SO_RCVBUF, s->options.recv_buffer_size);
    if (ret == 0 && s->options.send_buffer_size > 0)
        ret = set_int_option(s->fd, SOL_SOCKET, SO_SNDBUF, s->options.send_buffer_size);
    return ret;
}

static void bind_finish(struct dg__deferred *node)
{
    dg_socket *s = SOCKET_OF(node, bind_ev);
    int status = s->bind_status;
    if (s->state == DG__CLOSING) {
        status = -ECANCELED; /* closed before 'listening': the request ends here */
    } else if (status == 0) {
        s->state = DG__BOUND;
        if (s->handlers.on_listening)
            s->handlers.on_listening(s, s->data);
    } else {
        s->state = DG__UNBOUND; /* Node: the socket may be bound again */
        socket_update_alive(s);
    }
    if (s->bind_cb) {
        dg_bind_cb cb = s->bind_cb;
        s->bind_cb = NULL;
        cb(s, status, s->bind_data);
    } else if (status < 0 && status != -ECANCELED) {
        dg_error err = {.code = status, .syscall = "bind", .port = s->bind_port};
        memcpy(err.address, s->bind_address, sizeof(err.address));
        socket_emit_error(s, &err);
    }
}

/* bind(2) and the options Node applies right after it. */
static int bind_now(dg_socket *s, const struct sockaddr *sa, socklen_t len)
{
    int ret = bind(s->fd, sa, len) < 0 ? -errno : 0;
    if (ret == 0)
        ret = apply_buffer_sizes(s);
    dg_address a;
    if (dg_address_from_sockaddr(sa, len, &a) == 0) {
        memcpy(s->bind_address, a.address, sizeof(s->bind_address));
        s->bind_port = a.port;
    }
    return ret;
}

/* The socket is BINDING until bind_finish emits 'listening' (status 0) or
 * the error from the loop. */
static void begin_binding(dg_socket *s, int status, dg_bind_cb cb, void *cb_data)
{
    s->bind_status = status;
    s->bind_cb = cb;
    s->bind_data = cb_data;
    s->state = DG__BINDING;
    socket_update_alive(s);
    if (status == 0)
        recv_arm(s);
    dg__defer(s->loop, &s->bind_ev, bind_finish);
}

DG_EXPORT int dg_socket_bind(dg_socket *sock, const char *address, int port, dg_bind_cb cb,
                             void *cb_data)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (sock->state != DG__UNBOUND)
        return DG_ERR_SOCKET_ALREADY_BOUND;
    if (port < 0 || port > 65535)
        return DG_ERR_SOCKET_BAD_PORT;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = dg__parse_address(socket_family(sock), address, port, true, &ss, &len);
    if (ret < 0)
        return ret;
    /* a bind(2) failure is reported from the loop, as Node does */
    begin_binding(sock, bind_now(sock, (struct sockaddr *)&ss, len), cb, cb_data);
    return 0;
}

/* Node's implicit bind before the first send: the unspecified address and
 * a random port. Unlike an explicit bind its failure is returned to the
 * send that caused it, so the send fails synchronously and nothing is
 * left half-done. */
static int ensure_bound(dg_socket *s)
{
    if (s->state != DG__UNBOUND)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = dg__parse_address(socket_family(s), NULL, 0, true, &ss, &len);
    if (ret < 0)
        return ret;
    ret = bind_now(s, (struct sockaddr *)&ss, len);
    if (ret == 0)
        begin_binding(s, 0, NULL, NULL);
    return ret;
}

/* ---- Send -------------------------------------------------------------- */

static struct dg__send_req *req_alloc(dg_loop *loop, size_t len)
{
    struct dg__send_req *req = loop->free_reqs;
    if (req)
        loop->free_reqs = req->next;
    else if (!(req = malloc(sizeof(*req))))
        return NULL;
    memset(req, 0, offsetof(struct dg__send_req, inline_buf));
    if (len > sizeof(req->inline_buf)) {
        req->heap = malloc(len);
        if (!req->heap) {
            req->next = loop->free_reqs;
            loop->free_reqs = req;
            return NULL;
        }
    }
    return req;
}

static void req_release(dg_loop *loop, struct dg__send_req *req)
{
    free(req->heap);
    req->heap = NULL;
    req->next = loop->free_reqs;
    loop->free_reqs = req;
}

void dg__send_reqs_free(dg_loop *loop)
{
    while (loop->free_reqs) {
        struct dg__send_req *next = loop->free_reqs->next;
        free(loop->free_reqs);
        loop->free_reqs = next;
    }
}

static void send_complete(struct dg__send_req *req, int res)
{
    dg_socket *s = req->sock;
    dg_loop *loop = s->loop;
    dg_error err;
    if (res >= 0) {
        s->stats.tx_datagrams++;
        s->stats.tx_bytes += (uint64_t)res;
    } else {
        s->stats.tx_errors++;
        error_with_address(&err, res, "send", (struct sockaddr *)&req->addr,
                           req->msg.msg_namelen);
    }
    s->queue_bytes -= req->len;
    s->queue_count--;
    loop->pending_sends--;
    dg_send_cb cb = req->cb;
    void *cb_data = req->cb_data;
    req_release(loop, req);
    if (cb)
        cb(s, res, res < 0 ? &err : NULL, cb_data);
    else if (res < 0)
        socket_emit_error(s, &err);
    socket_op_done(s);
}

void dg__socket_on_send(dg_loop *loop, const struct io_uring_cqe *cqe)
{
    (void)loop;
    send_complete(DG__UD_PTR(cqe->user_data), cqe->res);
}

static void send_fail_deferred(struct dg__deferred *node)
{
    struct dg__send_req *req =
        (struct dg__send_req *)((char *)node - offsetof(struct dg__send_req, fail_ev));
    send_complete(req, req->fail_status);
}

static void req_fill(struct dg__send_req *req, const struct iovec *iov, int iovcnt,
                     size_t total, const struct sockaddr *to, socklen_t tolen)
{
    unsigned char *dst = req->heap ? req->heap : req->inline_buf;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(dst + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    req->len = total;
    req->iov.iov_base = dst;
    req->iov.iov_len = total;
    memcpy(&req->addr, to, tolen);
    req->msg.msg_name = &req->addr;
    req->msg.msg_namelen = tolen;
    req->msg.msg_iov = &req->iov;
    req->msg.msg_iovlen = 1;
}

/* Queues one datagram; the kernel sees it at this turn's io_uring_enter. */
static int send_submit(dg_socket *s, const struct iovec *iov, int iovcnt, size_t total,
                       const struct sockaddr *to, socklen_t tolen, dg_send_cb cb, void *cb_data)
{
    dg_loop *loop = s->loop;
    if (loop->pending_sends >= loop->options.max_pending_sends)
        return DG_ERR_SEND_QUEUE_FULL;
    int ret = ensure_bound(s);
    if (ret < 0)
        return ret;
    struct dg__send_req *req = req_alloc(loop, total);
    if (!req)
        return -ENOMEM;
    req_fill(req, iov, iovcnt, total, to, tolen);
    req->sock = s;
    req->cb = cb;
    req->cb_data = cb_data;
    if (s->state == DG__BINDING && s->bind_status < 0) {
        /* The bind this send waits for failed: the send fails with it,
         * after the bind error, from the loop. */
        req->fail_status = s->bind_status;
        dg__defer(loop, &req->fail_ev, send_fail_deferred);
    } else {
        struct io_uring_sqe *sqe = dg__get_sqe(loop, &ret);
        if (!sqe) {
            req_release(loop, req);
            return ret;
        }
        io_uring_prep_sendmsg(sqe, s->fd, &req->msg, 0);
        io_uring_sqe_set_data64(sqe, DG__UD(req, DG__OP_SEND));
    }
    s->inflight++;
    s->queue_bytes += total;
    s->queue_count++;
    loop->pending_sends++;
    return 0;
}

static int check_payload(const struct iovec *iov, int iovcnt, size_t *total)
{
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return DG_ERR_INVALID_ARG_VALUE;
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len > 0)
            return DG_ERR_INVALID_ARG_VALUE;
        if (iov[i].iov_len > 65535 || sum + iov[i].iov_len > 65535)
            return -EMSGSIZE; /* no UDP datagram is larger; checked before summing overflows */
        sum += iov[i].iov_len;
    }
    *total = sum;
    return 0;
}

static int send_common(dg_socket *s, const struct iovec *iov, int iovcnt,
                       const struct sockaddr *to, socklen_t tolen, dg_send_cb cb, void *cb_data)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    size_t total = 0;
    int ret = check_payload(iov, iovcnt, &total);
    if (ret < 0)
        return ret;
    return send_submit(s, iov, iovcnt, total, to, tolen, cb, cb_data);
}

static int parse_destination(const dg_socket *s, int port, const char *address,
                             struct sockaddr_storage *ss, socklen_t *len)
{
    if (port <= 0 || port > 65535)
        return DG_ERR_SOCKET_BAD_PORT;
    return dg__parse_address(socket_family(s), address, port, false, ss, len);
}

DG_EXPORT int dg_socket_sendv(dg_socket *sock, const struct iovec *iov, int iovcnt, int port,
                              const char *address, dg_send_cb cb, void *cb_data)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = sock->state >= DG__CLOSING ? DG_ERR_SOCKET_DGRAM_NOT_RUNNING
                                         : parse_destination(sock, port, address, &ss, &len);
    if (ret < 0)
        return ret;
    return send_common(sock, iov, iovcnt, (struct sockaddr *)&ss, len, cb, cb_data);
}

DG_EXPORT int dg_socket_send(dg_socket *sock, const void *buf, size_t len, int port,
                             const char *address, dg_send_cb cb, void *cb_data)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return dg_socket_sendv(sock, &iov, 1, port, address, cb, cb_data);
}

DG_EXPORT int dg_socket_send_to(dg_socket *sock, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen, dg_send_cb cb,
                                void *cb_data)
{
    if (!sock || !to)
        return DG_ERR_INVALID_ARG_VALUE;
    socklen_t need = sock->type == DG_UDP4 ? sizeof(struct sockaddr_in)
                                           : sizeof(struct sockaddr_in6);
    if (to->sa_family != socket_family(sock) || tolen < need)
        return DG_ERR_INVALID_ADDRESS;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return send_common(sock, &iov, 1, to, need, cb, cb_data);
}

/* ---- Close ------------------------------------------------------------- */

static void close_finish(struct dg__deferred *node)
{
    dg_socket *s = SOCKET_OF(node, close_ev);
    dg_loop *loop = s->loop;
    s->state = DG__CLOSED;
    rearm_unlink(s);
    if (s->handlers.on_close)
        s->handlers.on_close(s, s->data);
    if (s->close_cb)
        s->close_cb(s, s->close_data);
    loop->closing_handles--;
    loop->handle_count--;
    free(s);
}

/* Every ring operation on the fd has ended: the fd can go. */
static void socket_op_done(dg_socket *s)
{
    s->inflight--;
    if (s->state != DG__CLOSING || s->inflight > 0)
        return;
    close(s->fd);
    s->fd = -1;
    dg__defer(s->loop, &s->close_ev, close_finish);
}

/* One cancel for every request on the fd: the multishot receive and any
 * send the kernel is still waiting to issue (those end with -ECANCELED).
 * Sends already issued complete with their real result. */
static void issue_close_cancel(dg_socket *s)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(s->loop, &err);
    if (!sqe) {
        s->cancel_pending = true;
        queue_rearm(s); /* retried in the next turn's prepare step */
        return;
    }
    s->cancel_pending = false;
    io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, DG__UD(NULL, DG__OP_IGNORE));
}

DG_EXPORT int dg_socket_close(dg_socket *sock, dg_close_cb cb, void *cb_data)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    sock->state = DG__CLOSING;
    sock->close_cb = cb;
    sock->close_data = cb_data;
    socket_update_alive(sock);
    sock->loop->closing_handles++;
    if (sock->inflight > 0) {
        issue_close_cancel(sock);
        return 0;
    }
    sock->inflight = 1; /* reuse the common path */
    socket_op_done(sock);
    return 0;
}

/* ---- Small accessors --------------------------------------------------- */

DG_EXPORT int dg_socket_address(const dg_socket *sock, dg_address *out)
{
    if (!sock || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (sock->state == DG__UNBOUND || sock->bind_status < 0)
        return -EBADF; /* Node: getsockname EBADF */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(sock->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return dg_address_from_sockaddr((struct sockaddr *)&ss, len, out);
}

DG_EXPORT void dg_socket_ref(dg_socket *sock)
{
    if (!sock)
        return;
    sock->ref = true;
    socket_update_alive(sock);
}

DG_EXPORT void dg_socket_unref(dg_socket *sock)
{
    if (!sock)
        return;
    sock->ref = false;
    socket_update_alive(sock);
}

DG_EXPORT bool dg_socket_has_ref(const dg_socket *sock)
{
    return sock && sock->ref;
}

DG_EXPORT size_t dg_socket_send_queue_size(const dg_socket *sock)
{
    return sock ? sock->queue_bytes : 0;
}

DG_EXPORT size_t dg_socket_send_queue_count(const dg_socket *sock)
{
    return sock ? sock->queue_count : 0;
}

DG_EXPORT int dg_socket_get_stats(const dg_socket *sock, dg_socket_stats *out)
{
    if (!sock || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = sock->stats;
    return 0;
}

DG_EXPORT int dg_socket_fd(const dg_socket *sock)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    return sock->fd;
}

DG_EXPORT dg_loop *dg_socket_loop(const dg_socket *sock)
{
    return sock ? sock->loop : NULL;
}

DG_EXPORT dg_socket_type dg_socket_get_type(const dg_socket *sock)
{
    return sock ? sock->type : (dg_socket_type)0;
}

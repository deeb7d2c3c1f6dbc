/* UDP sockets: creation, bind (with fd adoption), connect, close and the
 * abort handle. The receive path is in recv.c, sends in send.c, options and
 * multicast in sockopt.c.
 *
 * Lifetime: a socket is freed only after its close callback ran, and its
 * close callback runs only after every operation that names it
 * (s->inflight: ring operations, lookups, queued sends) has ended, so no
 * completion ever meets freed memory. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dgram.h"

/* Public structs grow only into their reserved space (ABI). */
_Static_assert(sizeof(dg_socket_stats) == 16 * sizeof(uint64_t), "dg_socket_stats keeps its size");

static int socket_family(const dg_socket *s)
{
    return s->type == DG_UDP4 ? AF_INET : AF_INET6;
}

/* A bound (or binding), referenced socket keeps the loop alive. */
static void socket_update_alive(dg_socket *s)
{
    bool want = dg__socket_is_open(s) && s->ref;
    if (want == s->counted)
        return;
    s->counted = want;
    if (want)
        s->loop->core.alive_handles++;
    else
        s->loop->core.alive_handles--;
}

void dg__socket_emit_error(dg_socket *s, const dg_error *err)
{
    if (err->code == DG_ERR_LOOKUP_REPORTED)
        return; /* the lookup function reported it (socket.h, dg_lookup_fn) */
    if (s->handlers.on_error) {
        s->handlers.on_error(s, err, s->data);
        return;
    }
    s->stats.unhandled_errors++; /* Node would throw; C cannot, so it counts */
    if (s->loop->on_error)
        s->loop->on_error(s, err, s->loop->on_error_data);
}

DG_EXPORT int dg_loop_set_error_handler(dg_loop *loop, dg_loop_error_cb cb, void *data)
{
    if (!loop)
        return DG_ERR_INVALID_ARG_VALUE;
    loop->on_error = cb;
    loop->on_error_data = cb ? data : NULL;
    return 0;
}

/* Node's exceptionWithHostPort: code, syscall, address and port. */
static void error_at(dg_error *err, int code, const char *syscall, const struct sockaddr *sa,
                     socklen_t len)
{
    dg_address a;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->syscall = syscall;
    if (sa && dg_address_from_sockaddr(sa, len, &a) == 0) {
        snprintf(err->address, sizeof(err->address), "%s", a.address);
        err->port = a.port;
    }
}

static int set_int_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

/* ---- Creation ---------------------------------------------------------- */

static int validate_options(const dg_socket_options *o)
{
    if (o->type != DG_UDP4 && o->type != DG_UDP6)
        return DG_ERR_SOCKET_BAD_TYPE;
    if (o->flags & ~(DG_SOCKET_REUSE_ADDR | DG_SOCKET_IPV6_ONLY | DG_SOCKET_REUSE_PORT |
                     DG_SOCKET_NO_GSO | DG_SOCKET_GRO))
        return DG_ERR_INVALID_ARG_VALUE;
    if ((o->flags & DG_SOCKET_IPV6_ONLY) && o->type != DG_UDP6)
        return DG_ERR_INVALID_ARG_VALUE;
    if (o->recv_buffer_size < 0 || o->send_buffer_size < 0)
        return DG_ERR_OUT_OF_RANGE; /* Node: validateUint32 */
    return 0;
}

/* A blocking fd: the ring never blocks on it (io_uring tries without
 * waiting first, then polls), and the fd stays usable as the user expects
 * from dg_socket_fd(). */
static int open_fd(const dg_socket_options *o)
{
    int fd = socket(socket_family(&(dg_socket){.type = o->type}), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ret = 0;
    if (o->flags & DG_SOCKET_REUSE_ADDR)
        ret = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (ret == 0 && (o->flags & DG_SOCKET_REUSE_PORT))
        ret = set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (ret == 0 && o->type == DG_UDP6)
        ret = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(o->flags & DG_SOCKET_IPV6_ONLY));
    if (ret == 0) /* the kernel's drop counter on every datagram; optional */
        (void)set_int_option(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    if (ret == 0 && (o->flags & DG_SOCKET_GRO))
        ret = set_int_option(fd, SOL_UDP, UDP_GRO, 1);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

static void loop_link(dg_socket *s)
{
    dg__list_insert_head(&s->loop->dgram.sockets, &s->loop_link);
    s->loop->core.handle_count++;
}

static void loop_unlink(dg_socket *s)
{
    dg__list_remove(&s->loop_link);
    s->loop->core.handle_count--;
}

static void abort_link(dg_socket *s, dg_abort *a)
{
    s->abort = a;
    dg__list_insert_head(&a->sockets, &s->abort_link);
}

static void abort_unlink(dg_socket *s)
{
    if (!s->abort)
        return;
    dg__list_remove(&s->abort_link);
    s->abort = NULL;
}

static dg_socket *abort_first(dg_abort *a)
{
    return DG__CONTAINER(a->sockets.next, dg_socket, abort_link);
}

DG_EXPORT int dg_socket_create(dg_loop *loop, const dg_socket_options *options,
                               const dg_socket_handlers *handlers, void *data,
                               dg_socket **out)
{
    if (!loop || !options || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    *out = NULL;
    if (loop->core.closing)
        return -ECANCELED;
    int ret = validate_options(options);
    if (ret < 0)
        return ret;
    if ((options->flags & DG_SOCKET_GRO) &&
        loop->core.options.recv_buffer_size < dg__udp_payload_max(options->type))
        return DG_ERR_INVALID_ARG_VALUE; /* coalesced datagrams would be cut */
    dg_socket *s = dg__calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int fd = open_fd(options);
    if (fd < 0) {
        dg__free(s);
        return fd;
    }
    s->loop = loop;
    s->fd = fd;
    s->type = options->type;
    dg__socket_fast_send_update(s); /* off: -1 matches no sa_family */
    s->options = *options;
    if (handlers)
        s->handlers = *handlers;
    s->data = data;
    s->ref = true;
    s->gso_off = options->flags & DG_SOCKET_NO_GSO;
    s->gro = options->flags & DG_SOCKET_GRO;
    s->rmsg.msg_namelen = DG__RECV_NAME_LEN;
    s->rmsg.msg_controllen = DG__RECV_CONTROL_LEN;
    loop_link(s);
    *out = s;
    if (options->signal && options->signal->aborted)
        dg_socket_close(s, NULL, NULL); /* Node: closed at once, 'close' follows */
    else if (options->signal)
        abort_link(s, options->signal);
    return 0;
}

/* Takes a socket about to be freed off the loop's re-arm and run lists
 * (singly linked; only closing sockets pay for the walk). */
static void loop_lists_unlink(dg_socket *s)
{
    if (s->rearm_queued) {
        dg_socket **p = &s->loop->dgram.rearm_head;
        while (*p && *p != s)
            p = &(*p)->rearm_next;
        if (*p)
            *p = s->rearm_next;
        s->rearm_queued = false;
    }
    if (s->run_queued) {
        dg_socket **p = &s->loop->dgram.run_head;
        while (*p && *p != s)
            p = &(*p)->run_next;
        if (*p)
            *p = s->run_next;
        s->run_queued = false;
    }
}

/* ---- Connect (the parts bind needs first) ------------------------------- */

static void connect_finish(dg_socket *s, int status, const dg_error *err)
{
    dg_connect_cb cb = s->connect_cb;
    s->connect_cb = NULL;
    if (status == 0) {
        s->connect_state = DG__CONNECTED;
        dg__socket_fast_send_update(s);
        if (s->handlers.on_connect)
            s->handlers.on_connect(s, s->data);
    } else {
        s->connect_state = DG__DISCONNECTED; /* Node: a failed connect may be retried */
        dg__socket_fast_send_update(s);
    }
    if (cb)
        cb(s, status, status < 0 ? err : NULL, s->connect_data);
    else if (status < 0 && status != -ECANCELED)
        dg__socket_emit_error(s, err);
    dg__sendq_flush(s); /* the sends made while connecting */
}

/* The connect's outcome once both the bind and the peer's lookup are done:
 * Node connects only after 'listening', so even a failed lookup is
 * reported after it. The bind's error if the implicit bind failed,
 * -ECANCELED if the socket closed meanwhile, the lookup's error, or
 * connect(2)'s result. */
static void connect_continue(dg_socket *s)
{
    if (s->connect_state != DG__CONNECTING || !s->connect_resolved)
        return;
    if (s->state == DG__CLOSING) {
        dg_error err = {.code = -ECANCELED, .syscall = "connect"};
        connect_finish(s, -ECANCELED, &err);
        return;
    }
    if (s->state == DG__UNBOUND) {
        connect_finish(s, s->bind_status, &s->bind_error);
        return;
    }
    if (s->state != DG__BOUND)
        return; /* 'listening' comes first (Node); bind_finish comes back here */
    struct dg__lookup *lk = &s->connect_lookup;
    dg_error err;
    int ret = lk->status;
    if (ret < 0) {
        dg__lookup_error(lk, &err);
    } else {
        ret = connect(s->fd, (struct sockaddr *)&lk->addr, lk->addrlen) < 0 ? -errno : 0;
        error_at(&err, ret, "connect", (struct sockaddr *)&lk->addr, lk->addrlen);
    }
    connect_finish(s, ret, &err);
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

/* A failed bind, as Node reports it: 'error' (on_error) with Node's
 * message, also when bind had a callback; then that callback with the same
 * record, as the callback contract wants (bind returned 0). The socket is
 * unbound first, so either may bind it again (Node's bind-error-repeat),
 * and the sends that waited for the bind are already marked failed. */
static void bind_failed(dg_socket *s, int status, dg_bind_cb cb, void *cb_data)
{
    dg_error err = s->bind_error; /* a bind from on_error rewrites it */
    dg__socket_set_state(s, DG__UNBOUND);
    socket_update_alive(s);
    dg__sendq_fail(s, status);
    if (s->handlers.on_error || !cb)
        dg__socket_emit_error(s, &err);
    if (cb)
        cb(s, status, &err, cb_data);
    connect_continue(s);
}

/* Runs from the loop: 'listening' or the error, then whatever waited for
 * the bind: queued sends leave after 'listening' (Node), then a connect. */
static void bind_finish(dg_socket *s)
{
    int status = s->bind_status;
    dg_bind_cb cb = s->bind_cb;
    void *cb_data = s->bind_data;
    s->bind_cb = NULL;
    if (s->state == DG__CLOSING) {
        if (cb) { /* closed before 'listening': the request ends here */
            dg_error err = {.code = -ECANCELED, .syscall = "bind"};
            cb(s, -ECANCELED, &err, cb_data);
        }
        connect_continue(s);
        return;
    }
    if (status < 0) {
        bind_failed(s, status, cb, cb_data);
        return;
    }
    dg__socket_set_state(s, DG__BOUND);
    if (s->handlers.on_listening)
        s->handlers.on_listening(s, s->data);
    if (cb)
        cb(s, 0, NULL, cb_data);
    dg__sendq_flush(s);
    connect_continue(s);
}

static void bind_finish_deferred(struct dg__deferred *node)
{
    bind_finish(DG__CONTAINER(node, dg_socket, bind_ev));
}

/* bind(2) and the options Node applies right after it. */
static void bind_syscall(dg_socket *s, const struct sockaddr *sa, socklen_t len)
{
    int ret = bind(s->fd, sa, len) < 0 ? -errno : 0;
    s->bind_tried = true;
    if (ret == 0)
        ret = apply_buffer_sizes(s);
    error_at(&s->bind_error, ret, "bind", sa, len);
    s->bind_status = ret;
    if (ret == 0) {
        s->fd_bound = true;
        dg__recv_arm(s);
    }
}

static void bind_lookup_done(struct dg__lookup *lk)
{
    dg_socket *s = lk->sock;
    if (lk->status < 0) {
        s->bind_status = lk->status;
        dg__lookup_error(lk, &s->bind_error);
    } else if (s->state != DG__CLOSING) {
        bind_syscall(s, (struct sockaddr *)&lk->addr, lk->addrlen);
    }
    bind_finish(s);
}

/* UNBOUND -> BINDING. Literals bind now (the outcome still arrives from
 * the loop); names, and every address when the socket has a lookup
 * function, are resolved first. */
static int bind_start(dg_socket *s, const char *address, int port, dg_bind_cb cb, void *cb_data)
{
    struct sockaddr_storage ss;
    socklen_t len;
    bool literal = !s->options.lookup &&
                   dg__parse_address(socket_family(s), address, port, true, &ss, &len) == 0;
    if (!literal) {
        int ret = dg__lookup_start(&s->bind_lookup, s, address, port, true, bind_lookup_done);
        if (ret < 0)
            return ret;
    }
    dg__socket_set_state(s, DG__BINDING);
    s->bind_status = 0;
    s->bind_cb = cb;
    s->bind_data = cb_data;
    socket_update_alive(s);
    if (literal) {
        bind_syscall(s, (struct sockaddr *)&ss, len);
        dg__defer(&s->loop->core, &s->bind_ev, bind_finish_deferred);
    }
    return 0;
}

static int bind_check(const dg_socket *s)
{
    if (!s)
        return DG_ERR_INVALID_ARG_VALUE;
    if (s->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (s->state != DG__UNBOUND)
        return DG_ERR_SOCKET_ALREADY_BOUND;
    return 0;
}

DG_EXPORT int dg_socket_bind(dg_socket *sock, int port, const char *address, dg_bind_cb cb,
                             void *cb_data)
{
    int ret = bind_check(sock);
    if (ret < 0)
        return ret;
    if (port < 0 || port > 65535)
        return DG_ERR_SOCKET_BAD_PORT;
    ret = dg__check_address_text(sock, address);
    if (ret < 0)
        return ret;
    return bind_start(sock, address, port, cb, cb_data);
}

void dg__socket_bind_default(dg_socket *s)
{
    (void)bind_start(s, NULL, 0, NULL, NULL); /* the default literal cannot fail */
}

/* ---- Adopting an fd (bind({fd})) ----------------------------------------- */

static int check_adoptable(const dg_socket *s, int fd)
{
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    int type = 0, domain = 0, protocol = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return errno == ENOTSOCK ? DG_ERR_INVALID_FD_TYPE : -errno;
    len = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    len = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
    if (type != SOCK_DGRAM || domain != socket_family(s) || protocol != IPPROTO_UDP)
        return DG_ERR_INVALID_FD_TYPE;
    DG__LIST_FOR_EACH(node, &s->loop->dgram.sockets) {
        const dg_socket *o = DG__CONTAINER(node, dg_socket, loop_link);
        if (o->fd == fd && o->state < DG__CLOSED)
            return -EEXIST;
    }
    return 0;
}

/* An fd that is not bound yet gets the default address, as libuv's
 * uv_udp_open + recv_start would. A connected fd stays connected. */
static int adopt_fd(dg_socket *s, int fd)
{
    int ret = check_adoptable(s, fd);
    if (ret < 0)
        return ret;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    bool unbound = (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port == 0) ||
                   (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port == 0);
    close(s->fd);
    s->fd = fd;
    s->adopted = true;
    (void)set_int_option(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        s->connect_state = DG__CONNECTED;
    dg__socket_set_state(s, DG__BINDING);
    s->bind_cb = NULL;
    socket_update_alive(s);
    if (unbound) {
        dg__parse_address(socket_family(s), NULL, 0, true, &ss, &len);
        bind_syscall(s, (struct sockaddr *)&ss, len);
    } else {
        s->bind_status = apply_buffer_sizes(s);
        error_at(&s->bind_error, s->bind_status, "bind", NULL, 0);
        s->fd_bound = s->bind_status == 0;
        if (s->fd_bound)
            dg__recv_arm(s);
    }
    dg__defer(&s->loop->core, &s->bind_ev, bind_finish_deferred);
    return 0;
}

DG_EXPORT int dg_socket_bind_ex(dg_socket *sock, const dg_bind_options *options, dg_bind_cb cb,
                                void *cb_data)
{
    int ret = bind_check(sock);
    if (ret < 0)
        return ret;
    if (!options)
        return DG_ERR_INVALID_ARG_VALUE;
    if (options->fd > 0) {
        ret = adopt_fd(sock, options->fd);
        if (ret == 0) {
            sock->bind_cb = cb;
            sock->bind_data = cb_data;
        }
        return ret;
    }
    return dg_socket_bind(sock, options->port, options->address, cb, cb_data);
}

/* ---- Connect ------------------------------------------------------------ */

static void connect_lookup_done(struct dg__lookup *lk)
{
    dg_socket *s = lk->sock;
    s->connect_resolved = true; /* the outcome, failure too, waits for the bind */
    connect_continue(s);
}

DG_EXPORT int dg_socket_connect(dg_socket *sock, int port, const char *address, dg_connect_cb cb,
                                void *cb_data)
{
    if (port <= 0 || port > 65535)
        return DG_ERR_SOCKET_BAD_PORT; /* Node validates the port before all else */
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (sock->connect_state != DG__DISCONNECTED)
        return DG_ERR_SOCKET_DGRAM_IS_CONNECTED;
    int ret = dg__lookup_start(&sock->connect_lookup, sock, address, port, false,
                               connect_lookup_done);
    if (ret < 0)
        return ret;
    sock->connect_state = DG__CONNECTING;
    dg__socket_fast_send_update(sock);
    sock->connect_resolved = false;
    sock->connect_cb = cb;
    sock->connect_data = cb_data;
    dg__socket_implicit_bind(sock);
    return 0;
}

DG_EXPORT int dg_socket_disconnect(dg_socket *sock)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (sock->connect_state != DG__CONNECTED)
        return DG_ERR_SOCKET_DGRAM_NOT_CONNECTED;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(sock->fd, &unspec, sizeof(unspec)) < 0)
        return -errno;
    sock->connect_state = DG__DISCONNECTED;
    dg__socket_fast_send_update(sock);
    return 0;
}

DG_EXPORT int dg_socket_remote_address(const dg_socket *sock, dg_address *out)
{
    if (!sock || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (sock->connect_state != DG__CONNECTED)
        return DG_ERR_SOCKET_DGRAM_NOT_CONNECTED;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(sock->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return dg_address_from_sockaddr((struct sockaddr *)&ss, len, out);
}

/* ---- Close --------------------------------------------------------------- */

/* The kernel's drop counter of the socket now (SO_MEMINFO, Linux 4.12).
 * False where the kernel lacks it: the count then stays as of the last
 * datagram's SO_RXQ_OVFL. One syscall, made only at stats and close time,
 * never on the receive path. */
bool dg__socket_read_drops(int fd, uint32_t *raw)
{
    uint32_t meminfo[SK_MEMINFO_VARS];
    socklen_t len = sizeof(meminfo);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) < 0 ||
        len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))
        return false;
    *raw = meminfo[SK_MEMINFO_DROPS];
    return true;
}

static void close_finish(struct dg__deferred *node)
{
    dg_socket *s = DG__CONTAINER(node, dg_socket, close_ev);
    dg_loop *loop = s->loop;
    dg__socket_set_state(s, DG__CLOSED);
    loop_lists_unlink(s);
    loop->core.stats.rx_discarded_at_close += s->stats.rx_discarded_at_close;
    if (s->handlers.on_close)
        s->handlers.on_close(s, s->data);
    if (s->close_cb)
        s->close_cb(s, s->close_data);
    loop->core.closing_handles--;
    loop_unlink(s);
    dg__free(s);
}

/* The drops up to the close and the datagrams it discards are counted
 * first, so the counters the close callback (and anyone after it) reads
 * are final; fd -1 says the number is no longer ours to ask about. */
static void close_fd(dg_socket *s)
{
    if (s->fd < 0)
        return;
    dg__socket_count_at_close(s);
    close(s->fd);
    s->fd = -1;
}

void dg__socket_last_op_done(dg_socket *s)
{
    close_fd(s);
    dg__defer(&s->loop->core, &s->close_ev, close_finish);
}

/* Node's close frees the port before it returns, so a.close();
 * b.bind(samePort) works. The fd's requests end now (their completions
 * follow from the loop) and the fd closes at once; where the ring cannot
 * cancel synchronously, the cancel is queued and the fd closes after the
 * last completion, as before Linux 6.0. */
static void close_fd_now(dg_socket *s)
{
    if (dg__ring_cancel_fd_sync(&s->loop->core, s->fd) < 0) {
        dg__socket_close_cancel(s);
        return;
    }
    close_fd(s);
}

/* One cancel for every request on the fd: the multishot receive and any
 * send the kernel is still waiting to issue (those end with -ECANCELED).
 * Sends already issued complete with their real result. */
void dg__socket_close_cancel(dg_socket *s)
{
    int err = 0;
    struct io_uring_sqe *sqe = dg__get_sqe(&s->loop->core, &err);
    if (!sqe) {
        s->cancel_pending = true;
        dg__recv_queue_rearm(s); /* retried in the next turn's prepare step */
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
    dg__socket_set_state(sock, DG__CLOSING);
    sock->close_cb = cb;
    sock->close_data = cb_data;
    socket_update_alive(sock);
    abort_unlink(sock);
    sock->loop->core.closing_handles++;
    dg__send_run_flush(sock); /* sends made before close leave before the cancel */
    dg__lookup_cancel(&sock->bind_lookup);
    dg__lookup_cancel(&sock->connect_lookup);
    dg__sendq_fail(sock, -ECANCELED);
    if (sock->recv_armed || sock->inflight > 0)
        close_fd_now(sock);
    sock->inflight++; /* the close itself, so the common path ends it */
    dg__socket_op_done(sock);
    return 0;
}

DG_EXPORT int dg_socket_dispose(dg_socket *sock)
{
    if (!sock)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return 0;
    return dg_socket_close(sock, NULL, NULL);
}

/* ---- Abort handles ------------------------------------------------------- */

DG_EXPORT int dg_abort_new(dg_abort **out)
{
    if (!out)
        return DG_ERR_INVALID_ARG_VALUE;
    dg__owner_hold();
    *out = dg__calloc(1, sizeof(**out));
    if (!*out) {
        dg__owner_release();
        return -ENOMEM;
    }
    dg__list_init(&(*out)->sockets);
    return 0;
}

DG_EXPORT void dg_abort_trigger(dg_abort *abort)
{
    if (!abort)
        return;
    abort->aborted = true;
    while (!dg__list_empty(&abort->sockets))
        dg_socket_close(abort_first(abort), NULL, NULL); /* unlinks it */
}

DG_EXPORT bool dg_abort_aborted(const dg_abort *abort)
{
    return abort && abort->aborted;
}

DG_EXPORT void dg_abort_free(dg_abort *abort)
{
    if (!abort)
        return;
    while (!dg__list_empty(&abort->sockets))
        abort_unlink(abort_first(abort));
    dg__free(abort);
    dg__owner_release();
}

/* ---- Small accessors ----------------------------------------------------- */

DG_EXPORT int dg_socket_address(const dg_socket *sock, dg_address *out)
{
    if (!sock || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    if (sock->state >= DG__CLOSING)
        return DG_ERR_SOCKET_DGRAM_NOT_RUNNING;
    if (!sock->fd_bound && !sock->bind_tried)
        return -EBADF; /* Node: getsockname EBADF; after a failed bind(2),
                          the unbound fd's 0.0.0.0:0 or [::]:0, as Node */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(sock->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return dg_address_from_sockaddr((struct sockaddr *)&ss, len, out);
}

DG_EXPORT void dg_socket_ref(dg_socket *sock)
{
    if (!sock || sock->state >= DG__CLOSING)
        return;
    sock->ref = true;
    socket_update_alive(sock);
}

DG_EXPORT void dg_socket_unref(dg_socket *sock)
{
    if (!sock || sock->state >= DG__CLOSING)
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
    uint32_t raw;
    if (sock->fd >= 0 && dg__socket_read_drops(sock->fd, &raw))
        out->rx_kernel_drops += dg__drops_ahead(sock->drops_seen, raw);
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

DG_EXPORT void *dg_socket_get_data(const dg_socket *sock)
{
    return sock ? sock->data : NULL;
}

DG_EXPORT void dg_socket_set_data(dg_socket *sock, void *data)
{
    if (sock)
        sock->data = data;
}

/* dgring: UDP sockets, the C form of Node's dgram.Socket.
 *
 * Ownership rules used below:
 *   "copied"                  dgring keeps its own copy before the call returns
 *   "borrowed until callback" the pointer must stay valid until the callback ran
 *   "valid during callback"   the pointer dies when the callback returns
 *
 * Threading: a socket is used only from its loop's thread.
 *
 * NULL: every call below given a NULL socket (or a NULL required pointer
 * not listed otherwise) returns DG_ERR_INVALID_ARG_VALUE and does nothing;
 * calls returning a count, bool or pointer return 0, false or NULL, and
 * calls returning nothing do nothing.
 */
#ifndef DGRING_SOCKET_H
#define DGRING_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "dgring/address.h"
#include "dgring/loop.h"
#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dg_socket dg_socket;

typedef enum dg_socket_type {
    DG_UDP4 = 4,
    DG_UDP6 = 6,
} dg_socket_type;

/* Big enough for any IPv6 text with a %ifname scope, and a NUL. */
#define DG_ADDRSTRLEN 64
/* Big enough for any host name (253 characters) and a NUL. */
#define DG_HOSTSTRLEN 256

/* An address as Node reports it: socket.address(), rinfo. */
typedef struct dg_address {
    char address[DG_ADDRSTRLEN]; /* "127.0.0.1", "::1", "fe80::1%eth0" */
    int family;                  /* AF_INET or AF_INET6 ("IPv4"/"IPv6" in Node) */
    int port;
} dg_address;

/* An error as Node reports it for system errors: a code plus the syscall
 * and, where Node has them, the address and port. */
typedef struct dg_error {
    int code;                    /* negative errno or DG_ERR_* */
    const char *syscall;         /* "bind", "send", "recvmsg", ... or NULL */
    char address[DG_HOSTSTRLEN]; /* "" when there is none; the host name
                                    for DNS errors */
    int port;                    /* 0 when there is none */
    int system_code;             /* for DG_ERR_SOCKET_BUFFER_SIZE: the
                                    negative errno it wraps, else 0 */
} dg_error;

/* Formats err the way Node's message reads: "bind EADDRINUSE 0.0.0.0:41234",
 * "send EMSGSIZE 127.0.0.1:9", "bind EADDRNOTAVAIL 1.1.1.1" (port 0),
 * "recvmsg ECONNREFUSED" (no address), "Could not get or set buffer size:
 * uv_recv_buffer_size returned EBADF (bad file descriptor)" for
 * DG_ERR_SOCKET_BUFFER_SIZE, or the dgring sentence for other DG_ERR_*
 * codes without a syscall. Writes at most len bytes including the NUL and returns
 * the length it wanted (like snprintf), or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_error_format(const dg_error *err, char *buf, size_t len);

/* Flags of a received datagram. */
#define DG_MSG_TRUNC 0x1u /* payload longer than the receive buffer: length
                             holds what was kept, size the real size */

/* A received datagram. Everything it points to is valid during the
 * message callback only, unless the buffer is kept (dg_message_keep()). */
typedef struct dg_message {
    const void *data;            /* payload */
    size_t length;               /* bytes at data */
    size_t size;                 /* the datagram's real size (rinfo.size) */
    const struct sockaddr *addr; /* sender */
    socklen_t addrlen;
    unsigned flags;              /* DG_MSG_* */
    unsigned reserved;
} dg_message;

/* Event handlers, given at creation (Node's 'message', 'listening',
 * 'close', 'error' events). Any may be NULL. All run from the loop. */
typedef struct dg_socket_handlers {
    void (*on_message)(dg_socket *sock, const dg_message *msg, void *data);
    void (*on_listening)(dg_socket *sock, void *data);
    void (*on_close)(dg_socket *sock, void *data);
    /* Node's 'error': every bind failure (also when bind had a callback,
     * which runs after this), receive errors, and connect and send errors
     * whose call had no callback. err is valid during the callback. A
     * socket without on_error counts each such error in
     * dg_socket_stats.unhandled_errors (where Node would throw) and hands
     * it to the loop's error handler, if one is set
     * (dg_loop_set_error_handler). */
    void (*on_error)(dg_socket *sock, const dg_error *err, void *data);
    /* 'connect': dg_socket_connect() succeeded. */
    void (*on_connect)(dg_socket *sock, void *data);
    /* Optional batch delivery: when set, the datagrams this socket received
     * in one completion walk of the loop (one turn) arrive here, in arrival
     * order, at most DG_MESSAGE_BATCH_MAX per call (a turn may make several
     * calls; count >= 1), and on_message is not called for them. Each
     * msgs[i] is exactly what on_message would have got (length, size,
     * DG_MSG_TRUNC, sender); msgs and everything it points to are valid
     * during the call, or past it for the buffers kept with
     * dg_message_keep(). If the callback closes the socket, the datagrams
     * not yet handed over are dropped (their buffers still go back). */
    void (*on_message_batch)(dg_socket *sock, const dg_message *msgs, size_t count, void *data);
    void (*reserved[4])(void);
} dg_socket_handlers;

/* The loop's error handler: the analogue of Node's
 * process.on('uncaughtException') for dgram's unhandled 'error'. */
typedef void (*dg_loop_error_cb)(dg_socket *sock, const dg_error *err, void *data);

/* Sets the handler that receives every error a socket of this loop would
 * give to on_error while it has none (each is still counted in that
 * socket's dg_socket_stats.unhandled_errors); err is valid during the
 * call, which runs on the loop thread as on_error would. cb NULL removes
 * the handler (then such errors are only counted). A program that must
 * not run on after an unexpected error can abort there, as Node does.
 * Loop thread only. Returns 0, or DG_ERR_INVALID_ARG_VALUE for a NULL
 * loop. */
DG_EXPORT int dg_loop_set_error_handler(dg_loop *loop, dg_loop_error_cb cb, void *data);

/* Most datagrams one on_message_batch call carries. */
#define DG_MESSAGE_BATCH_MAX 64

/* A received buffer kept past its callback (dg_message_keep()). */
typedef struct dg_rx_buf dg_rx_buf;

/* Keeps the receive buffer that holds msg, so msg->data (and msg->addr)
 * stay valid after the callback returns, until dg_rx_buf_release(*out).
 * Call it from on_message (msg as given) or on_message_batch (a pointer
 * into the msgs array given) of sock, during that call. Zero allocation:
 * the handle belongs to the loop. With DG_SOCKET_GRO one buffer may carry
 * several datagrams; keeping several of them gives the same handle, each
 * keep to be released once, and the buffer returns to the ring after the
 * last release. While buffers are kept the ring has fewer to receive into;
 * when every buffer is kept the multishot receive ends and datagrams wait
 * in the socket's kernel queue (none lost by dgring) until a release, after
 * which the socket is re-armed from the loop.
 * Returns 0 and sets *out, or (with *out set to NULL when out is not NULL)
 * DG_ERR_INVALID_ARG_VALUE (NULL argument), DG_ERR_MESSAGE_NOT_CURRENT
 * (called outside that callback, for another socket, or with a message
 * that is not the one being delivered) or DG_ERR_MESSAGE_ALREADY_KEPT
 * (this message was kept already). Loop thread only. */
DG_EXPORT int dg_message_keep(dg_socket *sock, const dg_message *msg, dg_rx_buf **out);

/* Releases one keep of buf: after the last one the buffer goes back to the
 * ring (published before the loop next waits) and any socket that stopped
 * receiving for want of buffers is re-armed. Valid after the socket that
 * received it closed; not after dg_loop_close(), which frees every kept
 * buffer with the loop. Loop thread only, from a callback or between runs.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL) or DG_ERR_BUFFER_NOT_KEPT (no
 * keep of it is outstanding, for instance a second release). */
DG_EXPORT int dg_rx_buf_release(dg_rx_buf *buf);

/* Exclusivity: a socket with neither DG_SOCKET_REUSE_ADDR nor
 * DG_SOCKET_REUSE_PORT has its port to itself: another bind of that port
 * on the same address (or the unspecified one), by this process or
 * another, fails with EADDRINUSE, whatever options it sets (the kernel's
 * rule; tests/test_exclusive.c checks it from a second process). With
 * DG_SOCKET_REUSE_ADDR, sockets that set it too may bind the port (one of
 * them gets each unicast datagram); with DG_SOCKET_REUSE_PORT, any
 * socket of the same user that sets SO_REUSEPORT joins and takes a share
 * of the flows. For several loops on one port without sharing it with
 * anyone else, use an exclusive group (dgring/group.h). */
#define DG_SOCKET_REUSE_ADDR 0x1u /* SO_REUSEADDR before bind (reuseAddr) */
#define DG_SOCKET_IPV6_ONLY 0x2u  /* IPV6_V6ONLY (ipv6Only), udp6 only */
#define DG_SOCKET_REUSE_PORT 0x4u /* SO_REUSEPORT before bind (reusePort) */
/* Runs of equal-size datagrams to one destination sent in one turn leave
 * as one UDP_SEGMENT (GSO) send, split by the kernel; each datagram still
 * gets its own callback. On by default; this flag turns it off. GSO also
 * turns itself off for the socket when the kernel answers EIO or EINVAL,
 * and the run is re-sent datagram by datagram. */
#define DG_SOCKET_NO_GSO 0x8u
/* UDP_GRO: the kernel may hand over several datagrams of one flow in one
 * buffer; dgring splits them again, so on_message still sees one datagram
 * at a time. Needs receive buffers that hold the largest coalesced
 * payload: dg_loop_options.recv_buffer_size >= 65507 for udp4, 65527 for
 * udp6 (else dg_socket_create returns DG_ERR_INVALID_ARG_VALUE). Each
 * such buffer holds up to 64 KiB of datagrams, so far fewer buffers are
 * needed than without GRO: perf/run's gro scenario compares 64 and 1024
 * (perf/results/; which wins has varied from run to run). */
#define DG_SOCKET_GRO 0x10u

/* Node's lookup option: a user function that resolves host names for one
 * socket instead of dgring's resolver. It is called for every address the
 * socket resolves (bind, connect, send), IP literals and the defaults
 * ("0.0.0.0", "127.0.0.1", "::", "::1") included, as Node does.
 * It must call done(done_ctx, status, address, family) exactly once, now
 * or later from the loop's thread: status 0 with an IP literal of the
 * given family (address is copied), or a negative code and address NULL.
 * Returning a negative code instead means failure and done must then not
 * be called. Results always reach the socket from the loop, never inside
 * the call that started the lookup. The failure codes a lookup function
 * gives, returned or through done:
 *   DG_ERR_DNS_* or -errno     as dgring's resolver would fail;
 *   DG_ERR_LOOKUP_USER_FIRST .. _LAST (error.h)
 *                              a failure of its own: the code reaches the
 *                              call's callback or on_error unchanged, so the
 *                              function can tell which of its failures it
 *                              was (a binding keeps an error object per code);
 *   DG_ERR_LOOKUP_REPORTED     a failure it has already reported itself (a
 *                              binding whose lookup function threw: the
 *                              exception left the call, as in Node): the
 *                              call fails with this code, but on_error is
 *                              never called for it, for the call's own
 *                              failure or for the sends it fails; a
 *                              callback still runs, exactly once, with it. */
typedef void (*dg_lookup_done)(void *done_ctx, int status, const char *address, int family);
typedef int (*dg_lookup_fn)(dg_socket *sock, const char *host, int family, dg_lookup_done done,
                            void *done_ctx, void *lookup_data);

/* Node's signal option: an abort handle. Aborting it closes every socket
 * created with it, as dg_socket_close() would; a socket created with an
 * already aborted handle is closed at once ('close' follows from the
 * loop). Aborting after the socket closed does nothing. Loop thread only. */
typedef struct dg_abort dg_abort;
DG_EXPORT int dg_abort_new(dg_abort **out);
/* Closes the sockets still registered. Idempotent. */
DG_EXPORT void dg_abort_trigger(dg_abort *abort);
/* Whether the handle has been aborted (dg_abort_trigger() ran). */
DG_EXPORT bool dg_abort_aborted(const dg_abort *abort);
/* Frees the handle; sockets still registered forget it. */
DG_EXPORT void dg_abort_free(dg_abort *abort);

/* createSocket's options. Zero-initialise, then set what you need. */
typedef struct dg_socket_options {
    dg_socket_type type;   /* DG_UDP4 or DG_UDP6; anything else is
                              DG_ERR_SOCKET_BAD_TYPE */
    unsigned flags;        /* DG_SOCKET_* */
    int recv_buffer_size;  /* SO_RCVBUF applied at bind, 0 = system default */
    int send_buffer_size;  /* SO_SNDBUF applied at bind, 0 = system default */
    dg_lookup_fn lookup;   /* NULL: dgring's resolver */
    void *lookup_data;     /* passed to lookup */
    dg_abort *signal;      /* borrowed while the socket is open; may be NULL */
    void *reserved[5];
} dg_socket_options;

/* Per-socket counters, for statistics and tests. */
typedef struct dg_socket_stats {
    uint64_t rx_datagrams;   /* delivered to on_message */
    uint64_t rx_bytes;       /* payload bytes delivered */
    uint64_t rx_truncated;   /* datagrams delivered with DG_MSG_TRUNC */
    uint64_t rx_rearms;      /* multishot receives armed again after ending */
    uint64_t rx_no_buffers;  /* times the buffer ring ran dry (kernel kept
                                the datagrams queued; none lost by dgring) */
    uint64_t tx_datagrams;   /* sends completed successfully */
    uint64_t tx_bytes;
    uint64_t tx_errors;      /* sends completed with an error */
    uint64_t rx_kernel_drops; /* datagrams the kernel dropped for this
                                 socket (its receive queue was full, or a
                                 checksum failed): the socket's own drop
                                 counter, the "drops" column of
                                 /proc/net/udp, up to the moment of
                                 dg_socket_get_stats() (see there) */
    uint64_t tx_gso_sends;   /* GSO sends that carried a run of datagrams */
    uint64_t rx_gro_buffers; /* received buffers that held several
                                datagrams (UDP_GRO) */
    uint64_t tx_zerocopy_sends; /* sends that left with IORING_OP_SEND_ZC
                                   (dg_loop_options.send_zerocopy_min) */
    uint64_t unhandled_errors; /* errors for on_error on a socket that has
                                  none (where Node would throw its unhandled
                                  'error'); counted also when the loop's
                                  error handler took them */
    uint64_t rx_discarded_at_close; /* datagrams the socket had received
                                       but never delivered because it
                                       closed: in the loop's receive buffers
                                       (a close from a callback in the middle
                                       of a turn's datagrams) or in the
                                       kernel's receive queue at the close
                                       (see dg_socket_close()). Final in the
                                       close callback */
    uint64_t reserved[2];
} dg_socket_stats;

/* Outcome of a bind or a connect: status 0 on success (err NULL), or the
 * negative code with err describing it the way Node's Error does (syscall
 * "bind"/"connect", address, port; the host name for DNS errors); err is
 * valid during the callback. */
typedef void (*dg_bind_cb)(dg_socket *sock, int status, const dg_error *err, void *data);
typedef void (*dg_connect_cb)(dg_socket *sock, int status, const dg_error *err, void *data);
/* status >= 0: bytes sent; < 0: the error, described by err (valid during
 * the callback; NULL on success). */
typedef void (*dg_send_cb)(dg_socket *sock, int status, const dg_error *err, void *data);
typedef void (*dg_close_cb)(dg_socket *sock, void *data);

/* Creates a UDP socket (Node's dgram.createSocket). options is copied;
 * handlers is copied; data is passed to every handler. The fd is created
 * now (so dg_socket_fd() works at once) but the socket counts as unbound
 * until bind or an implicit bind.
 * Returns 0 and sets *out, or DG_ERR_SOCKET_BAD_TYPE,
 * DG_ERR_INVALID_ARG_VALUE (NULL loop/options/out, unknown flags,
 * IPV6_ONLY on udp4), DG_ERR_OUT_OF_RANGE (negative buffer sizes, Node's
 * validateUint32), -EMFILE, -ENOMEM, -ECANCELED (the loop is closing).
 * An unbound socket does not keep the loop alive. With an already aborted options.signal the socket is
 * returned closing: 'close' follows from the loop. */
DG_EXPORT int dg_socket_create(dg_loop *loop, const dg_socket_options *options,
                               const dg_socket_handlers *handlers, void *data,
                               dg_socket **out);

/* Addresses: wherever a call takes `const char *address`, it is copied and
 * may be an IP literal of the socket's family (IPv6 with %scope; IPv4 also
 * in the shorthand forms getaddrinfo and Node accept: "127.1", "0x7f.1",
 * "2130706433"), a host name (resolved from the loop, by the socket's
 * lookup option or dgring's resolver; "localhost" and hosts-file names need
 * no DNS), or NULL/"" for the default (bind: 0.0.0.0 or ::; send/connect:
 * 127.0.0.1 or ::1).
 * DG_ERR_INVALID_ADDRESS (synchronous) means a literal of the other family
 * or text that cannot be a host name; resolution failures (ENOTFOUND, ...)
 * arrive from the loop like any other error of the call. */

/* Binds to port (0 picks a free port) and address, in Node's order
 * bind(port, address), then starts receiving.
 * Asynchronous as in Node: the outcome arrives from the loop, on_listening
 * then cb(sock, 0, NULL, cb_data) on success. On failure the socket is
 * unbound again (it may be bound again, also from the handlers below;
 * dg_socket_address() then gives the unbound address, as Node's does),
 * then on_error gets it with syscall "bind" (Node's "bind EADDRINUSE
 * 0.0.0.0:41234"; "getaddrinfo ENOTFOUND host" for a name), as Node emits
 * 'error' whether or not bind had a callback, and then cb(sock, code, err,
 * cb_data) with the same record, so the call's callback still runs exactly
 * once (Node never calls it: it is a 'listening' listener there). Sends
 * waiting for the bind fail with its error. A socket closed before
 * 'listening' gets cb with -ECANCELED and no on_listening. cb may be
 * NULL.
 * Synchronous errors (nothing changes): DG_ERR_SOCKET_DGRAM_NOT_RUNNING
 * (closed), DG_ERR_SOCKET_ALREADY_BOUND (bound or binding, including the
 * implicit bind of a send), DG_ERR_SOCKET_BAD_PORT (port < 0 or > 65535),
 * DG_ERR_INVALID_ADDRESS, DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_socket_bind(dg_socket *sock, int port, const char *address, dg_bind_cb cb,
                             void *cb_data);

/* bind(options) in Node: port and address as in dg_socket_bind(), or fd
 * to adopt an existing UDP socket (then port and address are ignored). */
typedef struct dg_bind_options {
    int port;
    const char *address;   /* copied */
    /* Node's exclusive: whether cluster workers may share the handle.
     * dgring has no cluster: every socket owns its own fd, so the field is
     * accepted for compatibility and changes nothing. Whether another
     * process may bind the same port is the socket's flags' business (see
     * "Exclusivity" above). */
    bool exclusive;
    int fd;                /* > 0: adopt this fd; 0 or -1: none */
    void *reserved[4];
} dg_bind_options;

/* bind({port, address, exclusive, fd}). Errors as dg_socket_bind(), and
 * for fd adoption (synchronous, nothing changes): -EBADF (not an open fd),
 * DG_ERR_INVALID_FD_TYPE (not a datagram socket of the socket's family),
 * -EEXIST (the fd belongs to another dgring socket of this process).
 * An adopted fd gets the socket's buffer-size options, is 'listening' from
 * the loop, and counts as connected if it was connected already. The
 * socket owns the fd afterwards and closes it on close. */
DG_EXPORT int dg_socket_bind_ex(dg_socket *sock, const dg_bind_options *options, dg_bind_cb cb,
                                void *cb_data);

/* Sends one datagram of len bytes (len may be 0) to address:port (see
 * "Addresses" above; NULL/"" is loopback). On a connected socket pass port
 * 0 and address NULL: the datagram goes to the connected peer.
 * The payload is copied before the call returns: the caller may reuse buf
 * at once. An unbound socket is bound to the unspecified address and a
 * random port first (Node's implicit bind, once). Nothing leaves before
 * 'listening' (so options set in on_listening, such as broadcast, apply to
 * the sends queued before it), and datagrams leave in call order, also
 * when some wait for a host name. A send with a destination made while a
 * connect is in progress waits for the connect's outcome: if the socket
 * connected, it fails with -EISCONN and sends nothing (libuv's answer to
 * Node); if the connect failed, it goes to its destination.
 * cb (may be NULL) runs exactly once from the loop with the byte count or
 * the error (syscall "send", or the DNS error with the host name); a send
 * still pending when the socket closes completes with -ECANCELED; a send
 * waiting for a bind that fails completes with the bind's error. Errors
 * with no cb go to on_error.
 * Synchronous errors, checked in this order: DG_ERR_INVALID_ARG_VALUE
 * (buf NULL with len > 0), DG_ERR_SOCKET_DGRAM_IS_CONNECTED (a destination
 * on a connected socket), DG_ERR_SOCKET_BAD_PORT (port <= 0 or > 65535 on
 * an unconnected socket), DG_ERR_INVALID_ADDRESS,
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING, -EMSGSIZE (len > 65535, no UDP datagram
 * is larger; sizes the kernel refuses, such as 65508..65535 over IPv4,
 * fail through cb with -EMSGSIZE as in Node), DG_ERR_SEND_QUEUE_FULL (see
 * dg_loop_options.max_pending_sends), errors of the implicit bind,
 * -ENOMEM. */
DG_EXPORT int dg_socket_send(dg_socket *sock, const void *buf, size_t len, int port,
                             const char *address, dg_send_cb cb, void *cb_data);

/* send(buffer, offset, length, ...): sends bytes [offset, offset+length)
 * of buf (buflen bytes). DG_ERR_BUFFER_OUT_OF_BOUNDS when offset > buflen
 * or offset + length > buflen; otherwise as dg_socket_send(). */
DG_EXPORT int dg_socket_send_slice(dg_socket *sock, const void *buf, size_t buflen, size_t offset,
                                   size_t length, int port, const char *address, dg_send_cb cb,
                                   void *cb_data);

/* The same with a list of buffers sent as one datagram (Node's send with
 * an array). iov and the bytes it points to are copied; iovcnt 0 sends one
 * empty datagram, as Node does for an empty list; iovcnt < 0 or > 1024
 * gives -EINVAL (libuv's nbufs check). */
DG_EXPORT int dg_socket_sendv(dg_socket *sock, const struct iovec *iov, int iovcnt, int port,
                              const char *address, dg_send_cb cb, void *cb_data);

/* The same to a socket address (for instance msg->addr of a received
 * datagram, to answer its sender). to is copied. Errors as dg_socket_send,
 * plus DG_ERR_INVALID_ADDRESS for a family the socket cannot reach and
 * DG_ERR_SOCKET_DGRAM_IS_CONNECTED on a connected socket. */
DG_EXPORT int dg_socket_send_to(dg_socket *sock, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen, dg_send_cb cb,
                                void *cb_data);

/* ---- Engine send buffers (no copy) -------------------------------------
 * The calls above copy the payload, so the caller's buffer is free at
 * once. A sender that builds datagrams anyway can instead take a buffer
 * from the loop's pool, write the datagram into it and hand it to
 * dg_socket_send_buffer(): nothing is copied in user space. On io_uring
 * the pool is registered with the ring (fixed buffers), and with
 * dg_loop_options.send_zerocopy_min set, large sends from it go out with
 * IORING_OP_SEND_ZC, which skips the kernel's copy too. Loop thread only. */
typedef struct dg_send_buffer {
    void *data;      /* write the datagram here */
    size_t capacity; /* bytes at data: dg_loop_options.send_buffer_size */
} dg_send_buffer;

/* Takes a buffer from loop's pool (mapping, and registering, the pool on
 * the first call). The buffer is the caller's until it is sent or put
 * back. Returns 0 and sets *out, or DG_ERR_INVALID_ARG_VALUE (NULL
 * argument), -ENOBUFS (every buffer is taken or in flight: send or put
 * some back, or raise dg_loop_options.send_buffers), -ENOMEM. */
DG_EXPORT int dg_send_buffer_get(dg_loop *loop, dg_send_buffer **out);

/* Gives back to loop a buffer taken with dg_send_buffer_get() and not sent.
 * DG_ERR_INVALID_ARG_VALUE for NULL, a pointer that is not one of the
 * loop's buffers, or a buffer that is not the caller's (already put back,
 * or given to a send). */
DG_EXPORT int dg_send_buffer_put(dg_loop *loop, dg_send_buffer *buf);

/* Sends the first len bytes of buf as one datagram, as dg_socket_send()
 * (same destinations, checks, order and callbacks). On 0 the buffer is
 * the engine's: do not touch it; it returns to the pool by itself just
 * before cb runs, so cb may take it again for the next datagram
 * (zero-copy: once the kernel lets go of it, which may be well after
 * cb). On an error return nothing happened and the buffer
 * is still the caller's. Extra errors: DG_ERR_INVALID_ARG_VALUE when buf
 * is not a buffer the caller took from sock's loop, DG_ERR_BUFFER_OUT_OF_BOUNDS
 * when len > buf->capacity. */
DG_EXPORT int dg_socket_send_buffer(dg_socket *sock, dg_send_buffer *buf, size_t len, int port,
                                    const char *address, dg_send_cb cb, void *cb_data);

/* The same to a socket address, as dg_socket_send_to(). */
DG_EXPORT int dg_socket_send_buffer_to(dg_socket *sock, dg_send_buffer *buf, size_t len,
                                       const struct sockaddr *to, socklen_t tolen,
                                       dg_send_cb cb, void *cb_data);

/* ---- Send-to-many (fan-out) ---------------------------------------------
 * One datagram to many destinations: a game server's tick state to every
 * player, a collector's reply to its clients. The payload is copied once;
 * each destination is one send of that copy (on io_uring one SQE each, on
 * the epoll backend sendmmsg batches), and one callback reports the whole
 * fan-out. A fan-out counts as one send against max_pending_sends; its
 * destinations count against dg_loop_options.max_fanout_destinations
 * (destinations in flight per loop), which bounds its memory. */
typedef struct dg_send_many_result {
    size_t sent;      /* destinations the datagram was sent to */
    size_t failed;    /* destinations whose send failed (or was cancelled) */
    int first_error;  /* the first failure's code (negative errno), 0 if none */
    int reserved;
} dg_send_many_result;

/* result is valid during the callback. */
typedef void (*dg_send_many_cb)(dg_socket *sock, const dg_send_many_result *result,
                                void *data);

/* Sends len bytes of buf as one datagram to each of dests[0..count) (keys
 * of the socket's family, with a port; dg_addr_key_from_sockaddr() of
 * msg->addr gives one). buf and dests are copied: both may be reused at
 * once. count 0 is allowed (the callback reports nothing sent). An
 * unbound socket is bound first, as dg_socket_send() does. The datagrams
 * leave after the socket's earlier sends that are ready to go; sends still
 * waiting for a host-name lookup may leave after them. cb (may be NULL)
 * runs once from the loop when every destination's send completed, with
 * how many went out and how many failed (per-destination failures do not
 * go to on_error); closing the socket ends the sends not yet made with
 * -ECANCELED, counted as failed.
 * Synchronous errors (nothing is sent), checked in this order:
 * DG_ERR_INVALID_ARG_VALUE (NULL sock; buf NULL with len > 0; dests NULL
 * with count > 0), -EMSGSIZE (len > 65535), DG_ERR_SOCKET_DGRAM_IS_CONNECTED
 * (the socket is connected), DG_ERR_OUT_OF_RANGE (count >
 * max_fanout_destinations), DG_ERR_INVALID_ADDRESS (a destination of the
 * other family or no address at all), DG_ERR_SOCKET_BAD_PORT (a destination
 * with port 0), DG_ERR_SOCKET_DGRAM_NOT_RUNNING (closed),
 * DG_ERR_SEND_QUEUE_FULL (max_pending_sends sends, or fan-outs holding
 * more than max_fanout_destinations - count destinations, are in flight:
 * wait for callbacks), -EBADF (the socket's bind still waits for a host
 * name), -ENOMEM, or the ring's error if it refused the first send. Loop
 * thread only. */
DG_EXPORT int dg_socket_send_many(dg_socket *sock, const void *buf, size_t len,
                                  const dg_addr_key *dests, size_t count, dg_send_many_cb cb,
                                  void *cb_data);

/* Node's connect(port, address, cb): associates the socket with
 * address:port (host name, IP literal, or NULL/"" for loopback), binding it
 * first if needed. From the loop, after 'listening' (as Node connects only
 * once bound): on_connect then cb(sock, 0, NULL, cb_data); or on failure
 * (lookup or connect(2)) cb with the error, or on_error if cb is NULL
 * (syscall "connect", or "getaddrinfo" with the host name), and the socket
 * is disconnected again. A socket closed first gets cb with -ECANCELED.
 * Synchronous errors: DG_ERR_SOCKET_BAD_PORT (checked first: port <= 0 or
 * > 65535), DG_ERR_SOCKET_DGRAM_NOT_RUNNING, DG_ERR_SOCKET_DGRAM_IS_CONNECTED
 * (connecting or connected), DG_ERR_INVALID_ADDRESS (a literal of the other
 * family). On a connected socket sends take port 0 and address NULL. */
DG_EXPORT int dg_socket_connect(dg_socket *sock, int port, const char *address, dg_connect_cb cb,
                                void *cb_data);

/* Node's disconnect(). Returns 0, DG_ERR_SOCKET_DGRAM_NOT_CONNECTED,
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING, or -errno from connect(AF_UNSPEC). */
DG_EXPORT int dg_socket_disconnect(dg_socket *sock);

/* Node's remoteAddress(). Returns 0, DG_ERR_SOCKET_DGRAM_NOT_CONNECTED,
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING. */
DG_EXPORT int dg_socket_remote_address(const dg_socket *sock, dg_address *out);

/* ---- Options ----------------------------------------------------------
 * Each returns 0 or a negative code: DG_ERR_SOCKET_DGRAM_NOT_RUNNING after
 * close (dgring checks where Node forgets to), -EBADF on a socket with no
 * descriptor in Node's sense (Node: "setTTL EBADF"): never bound, or whose
 * bind failed in its lookup; after a bind(2) that failed they apply to the
 * unbound descriptor, as Node's do. -EINVAL for a value out of range.
 * The syscall names Node would print are given for dg_error_format. */

/* setBroadcast(flag): SO_BROADCAST. Syscall "setBroadcast". */
DG_EXPORT int dg_socket_set_broadcast(dg_socket *sock, bool on);
/* setTTL(ttl): unicast hop limit, 1..255. Syscall "setTTL". */
DG_EXPORT int dg_socket_set_ttl(dg_socket *sock, int ttl);
/* setMulticastTTL(ttl): 0..255. Syscall "setMulticastTTL". */
DG_EXPORT int dg_socket_set_multicast_ttl(dg_socket *sock, int ttl);
/* setMulticastLoopback(flag). Syscall "setMulticastLoopback". */
DG_EXPORT int dg_socket_set_multicast_loopback(dg_socket *sock, bool on);
/* setMulticastInterface(iface), read as libuv reads it for Node: an IPv4
 * address of a local interface ("0.0.0.0" = the default choice) sets
 * IP_MULTICAST_IF, on udp4 and for a udp6 socket's IPv4 traffic alike;
 * an IPv6 address sets IPV6_MULTICAST_IF to its scope: "::%ifname" or
 * "::%index" (an unknown name, or no scope, picks the default). The kernel
 * answers for the family: IPv6 text on udp4 is -ENOPROTOOPT.
 * DG_ERR_INVALID_ARG_TYPE for NULL, -EINVAL for text that does not parse.
 * Syscall "setMulticastInterface". */
DG_EXPORT int dg_socket_set_multicast_interface(dg_socket *sock, const char *iface);

/* get/set{Recv,Send}BufferSize. The getters return the size (Linux
 * reports twice what was set) or a negative code. The setters take
 * size >= 0 (0 only queries); size < 0 gives DG_ERR_SOCKET_BAD_BUFFER_SIZE;
 * size > INT_MAX, a socket without descriptor (as above) or a failing
 * setsockopt give
 * DG_ERR_SOCKET_BUFFER_SIZE, and if err is not NULL it receives the record
 * (system_code -EINVAL/-EBADF, syscall "uv_recv_buffer_size" or
 * "uv_send_buffer_size") whose dg_error_format() is Node's message. */
DG_EXPORT int dg_socket_get_recv_buffer_size(const dg_socket *sock, dg_error *err);
DG_EXPORT int dg_socket_get_send_buffer_size(const dg_socket *sock, dg_error *err);
DG_EXPORT int dg_socket_set_recv_buffer_size(dg_socket *sock, long long size, dg_error *err);
DG_EXPORT int dg_socket_set_send_buffer_size(dg_socket *sock, long long size, dg_error *err);

/* ---- Multicast --------------------------------------------------------
 * addMembership(group, iface) / dropMembership: group is an IPv4 or IPv6
 * multicast literal (copied); iface NULL lets the kernel choose (IPv4: an
 * interface address; IPv6: an interface name or index). An unbound socket
 * is first bound as send() would (any address, random port), unless a
 * bind(2) already failed on it (libuv binds only a handle without fd).
 * Errors: DG_ERR_MISSING_ARGS (group NULL or ""), DG_ERR_SOCKET_DGRAM_NOT_RUNNING,
 * -EINVAL (group, source or iface does not parse, or is of the other
 * family; checked before the implicit bind, so the socket stays unbound),
 * -EADDRNOTAVAIL (drop of a group never joined; -EINVAL for a
 * source-specific drop never joined, as Linux answers), other -errno from
 * setsockopt. Syscalls "addMembership"/"dropMembership". */
DG_EXPORT int dg_socket_add_membership(dg_socket *sock, const char *group, const char *iface);
DG_EXPORT int dg_socket_drop_membership(dg_socket *sock, const char *group, const char *iface);
/* Source-specific: receive group traffic from source only. Errors as
 * above, plus DG_ERR_INVALID_ARG_TYPE for a NULL source or group (Node's
 * "sourceAddress"/"groupAddress" type checks). Syscalls
 * "addSourceSpecificMembership"/"dropSourceSpecificMembership". */
DG_EXPORT int dg_socket_add_source_specific_membership(dg_socket *sock, const char *source,
                                                       const char *group, const char *iface);
DG_EXPORT int dg_socket_drop_source_specific_membership(dg_socket *sock, const char *source,
                                                        const char *group, const char *iface);

/* Node's socket.address(): the bound address. Returns 0,
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING if closed, -EBADF if never bound (Node:
 * getsockname EBADF). After a bind whose bind(2) failed, the socket's own
 * unbound address, "0.0.0.0" or "::" with port 0, as Node answers (Node's
 * handle has its descriptor then); after a bind whose lookup failed,
 * -EBADF. */
DG_EXPORT int dg_socket_address(const dg_socket *sock, dg_address *out);

/* Formats a socket address as Node's rinfo does (IPv6 link-local with
 * %ifname). Returns 0, or DG_ERR_INVALID_ADDRESS for a family other than
 * AF_INET/AF_INET6 or a short length. */
DG_EXPORT int dg_address_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                       dg_address *out);

/* Closes the socket (Node's close): stops receiving, and closes the fd
 * before it returns, so the port is free at once (Node: a.close();
 * b.bind(samePort) listens): the sends already handed over leave first,
 * then every request still on the fd is cancelled synchronously (io_uring:
 * IORING_REGISTER_SYNC_CANCEL, Linux 6.0, dg_loop_caps.sync_cancel; the
 * epoll backend always). Should the kernel refuse that (it is probed: no
 * sync cancel, or a request that would not end within a second), the
 * cancel is asynchronous and the fd, with its port, closes only after the
 * last completion, from the loop. Either way every pending request completes
 * exactly once, from the loop (sends the kernel has not finished with
 * -ECANCELED), then on_close and cb (may be NULL) run and the socket is
 * freed. Returns 0, or DG_ERR_SOCKET_DGRAM_NOT_RUNNING if already
 * closing.
 * Datagrams the socket received but will not deliver are dropped, as in
 * Node, and counted in dg_socket_stats.rx_discarded_at_close (final in
 * on_close and cb, and added to dg_loop_stats.rx_discarded_at_close just
 * before them): those already in the loop's receive buffers (a close from
 * on_message with more of the turn's datagrams to come, a close while
 * their completions wait) and those in the kernel's receive queue, which
 * the close reads off the fd (without copying them) just before closing
 * it, with a filter attached first that turns away and counts any that
 * arrive meanwhile. An fd adopted with dg_socket_bind_ex() may be shared
 * with another process, so its queue is left as it is and not counted. */
DG_EXPORT int dg_socket_close(dg_socket *sock, dg_close_cb cb, void *cb_data);

/* Node's [Symbol.asyncDispose]: closes the socket if it is open, and is a
 * no-op returning 0 on a socket that is already closing. (Like every call,
 * not valid after the close callback has run: the socket is freed then.) */
DG_EXPORT int dg_socket_dispose(dg_socket *sock);

/* A bound, referenced socket keeps the loop alive; unref excludes it
 * (pending sends still do). Both are idempotent, and no-ops on a closing
 * socket; has_ref says whether the socket is referenced (a new one is). */
DG_EXPORT void dg_socket_ref(dg_socket *sock);
DG_EXPORT void dg_socket_unref(dg_socket *sock);
DG_EXPORT bool dg_socket_has_ref(const dg_socket *sock);

/* Node's getSendQueueSize()/getSendQueueCount(): bytes and datagrams
 * handed to the socket whose send callbacks have not run yet. */
DG_EXPORT size_t dg_socket_send_queue_size(const dg_socket *sock);
DG_EXPORT size_t dg_socket_send_queue_count(const dg_socket *sock);

/* Copies the socket's counters into *out. rx_kernel_drops is read from
 * the kernel at the call (SO_MEMINFO: one getsockopt, never made on the
 * receive path), so drops after the last datagram delivered, such as the
 * tail of a burst followed by silence, are counted; in between, each
 * datagram's SO_RXQ_OVFL count keeps it current. When the socket's fd
 * closes (after dg_socket_close(), before the close callbacks) the count is
 * read a last time, and from then on the counters are final. The kernel's
 * counter is 32 bits; dgring widens it, counting across its wrap as long
 * as fewer than 2^31 drops happen between two readings. On kernels
 * without SO_MEMINFO (before 4.12) the count is as of the last datagram.
 * Loop thread only (also from on_close). Returns 0 or
 * DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_socket_get_stats(const dg_socket *sock, dg_socket_stats *out);

/* The socket's file descriptor (for options dgring has no call for), or
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING. Do not close it or read from it; a
 * duplicate of it finds the socket silenced and its queue emptied by the
 * socket's close (see dg_socket_close()). */
DG_EXPORT int dg_socket_fd(const dg_socket *sock);

/* The loop the socket was created on, and its type (DG_UDP4 or DG_UDP6);
 * NULL and 0 for a NULL sock. Valid until the close callback has run, also
 * while the socket closes. Loop thread only. */
DG_EXPORT dg_loop *dg_socket_loop(const dg_socket *sock);
DG_EXPORT dg_socket_type dg_socket_get_type(const dg_socket *sock);

/* The user pointer of a socket: the data given to dg_socket_create(),
 * which every handler receives. set replaces it, for the handlers that run
 * from then on; get lets a per-call callback (bind, connect, send, close),
 * whose own data pointer belongs to the call, find the socket's object.
 * NULL socket: get returns NULL, set does nothing. Valid until the close
 * callback has run, also while the socket closes. Loop thread only. */
DG_EXPORT void *dg_socket_get_data(const dg_socket *sock);
DG_EXPORT void dg_socket_set_data(dg_socket *sock, void *data);

#ifdef __cplusplus
}
#endif

#endif

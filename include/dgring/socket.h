/* dgring: UDP sockets, the C form of Node's dgram.Socket.
 *
 * Ownership rules used below:
 *   "copied"                  dgring keeps its own copy before the call returns
 *   "borrowed until callback" the pointer must stay valid until the callback ran
 *   "valid during callback"   the pointer dies when the callback returns
 *
 * Threading: a socket is used only from its loop's thread.
 */
#ifndef DGRING_SOCKET_H
#define DGRING_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

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
    char address[DG_ADDRSTRLEN]; /* "" when there is none */
    int port;                    /* 0 when there is none */
} dg_error;

/* Formats err the way Node's message reads: "bind EADDRINUSE 0.0.0.0:41234",
 * "send EMSGSIZE 127.0.0.1:9", "bind EADDRNOTAVAIL 1.1.1.1" (port 0),
 * "recvmsg ECONNREFUSED" (no address), or the dgring sentence for
 * DG_ERR_* codes. Writes at most len bytes including the NUL and returns
 * the length it wanted (like snprintf), or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_error_format(const dg_error *err, char *buf, size_t len);

/* Flags of a received datagram. */
#define DG_MSG_TRUNC 0x1u /* payload longer than the receive buffer: length
                             holds what was kept, size the real size */

/* A received datagram. Everything it points to is valid during the
 * message callback only. */
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
    /* Errors with no per-call callback to go to (receive errors, a bind
     * failure when bind had no callback, ...). err is valid during the
     * callback. */
    void (*on_error)(dg_socket *sock, const dg_error *err, void *data);
    void (*reserved[6])(void);
} dg_socket_handlers;

#define DG_SOCKET_REUSE_ADDR 0x1u /* SO_REUSEADDR before bind (reuseAddr) */
#define DG_SOCKET_IPV6_ONLY 0x2u  /* IPV6_V6ONLY (ipv6Only), udp6 only */

/* createSocket's options. Zero-initialise, then set what you need. */
typedef struct dg_socket_options {
    dg_socket_type type;   /* DG_UDP4 or DG_UDP6; anything else is
                              DG_ERR_SOCKET_BAD_TYPE */
    unsigned flags;        /* DG_SOCKET_* */
    int recv_buffer_size;  /* SO_RCVBUF applied at bind, 0 = system default */
    int send_buffer_size;  /* SO_SNDBUF applied at bind, 0 = system default */
    void *reserved[8];
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
    uint64_t rx_kernel_drops; /* datagrams the kernel dropped because the
                                 socket's receive queue was full
                                 (SO_RXQ_OVFL, as of the last datagram) */
    uint64_t reserved[7];
} dg_socket_stats;

typedef void (*dg_bind_cb)(dg_socket *sock, int status, void *data);
/* status >= 0: bytes sent; < 0: the error, described by err (valid during
 * the callback; NULL on success). */
typedef void (*dg_send_cb)(dg_socket *sock, int status, const dg_error *err, void *data);
typedef void (*dg_close_cb)(dg_socket *sock, void *data);

/* Creates a UDP socket (Node's dgram.createSocket). options is copied;
 * handlers is copied; data is passed to every handler.
 * Returns 0 and sets *out, or DG_ERR_SOCKET_BAD_TYPE,
 * DG_ERR_INVALID_ARG_VALUE (NULL loop/options/out, unknown flags, negative
 * buffer sizes, IPV6_ONLY on udp4), -EMFILE, -ENOMEM. An unbound socket
 * does not keep the loop alive. */
DG_EXPORT int dg_socket_create(dg_loop *loop, const dg_socket_options *options,
                               const dg_socket_handlers *handlers, void *data,
                               dg_socket **out);

/* Binds to address (an IP literal of the socket's family, copied; NULL or
 * "" means the unspecified address) and port (0 picks a free port), then
 * starts receiving. Asynchronous as in Node: the outcome arrives from the
 * loop, on_listening then cb(sock, 0, cb_data) on success; on failure
 * cb(sock, -errno, cb_data), or on_error with syscall "bind" if cb is NULL,
 * and the socket is unbound again. cb may be NULL.
 * Synchronous errors (nothing changes): DG_ERR_SOCKET_DGRAM_NOT_RUNNING
 * (closed), DG_ERR_SOCKET_ALREADY_BOUND (bound or binding),
 * DG_ERR_SOCKET_BAD_PORT (port < 0 or > 65535), DG_ERR_INVALID_ADDRESS
 * (not a literal of the socket's family), DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_socket_bind(dg_socket *sock, const char *address, int port, dg_bind_cb cb,
                             void *cb_data);

/* Sends one datagram of len bytes (len may be 0) to address:port.
 * address is an IP literal of the socket's family (copied); NULL or ""
 * means loopback (127.0.0.1 or ::1), as in Node.
 * The payload is copied before the call returns: the caller may reuse buf
 * at once. An unbound socket is bound to the unspecified address and a
 * random port first (Node's implicit bind; 'listening' follows).
 * cb (may be NULL) runs exactly once from the loop with the byte count or
 * the error; a send still pending when the socket closes completes with
 * -ECANCELED. Send errors with no cb go to on_error.
 * Synchronous errors: DG_ERR_SOCKET_DGRAM_NOT_RUNNING,
 * DG_ERR_SOCKET_BAD_PORT (port <= 0 or > 65535), DG_ERR_INVALID_ADDRESS,
 * DG_ERR_SEND_QUEUE_FULL (see dg_loop_options.max_pending_sends),
 * DG_ERR_INVALID_ARG_VALUE (buf NULL with len > 0), -EMSGSIZE (len >
 * 65535), errors of the implicit bind, -ENOMEM. */
DG_EXPORT int dg_socket_send(dg_socket *sock, const void *buf, size_t len, int port,
                             const char *address, dg_send_cb cb, void *cb_data);

/* The same with a list of buffers sent as one datagram (Node's send with
 * an array). iov and the bytes it points to are copied. */
DG_EXPORT int dg_socket_sendv(dg_socket *sock, const struct iovec *iov, int iovcnt, int port,
                              const char *address, dg_send_cb cb, void *cb_data);

/* The same to a socket address (for instance msg->addr of a received
 * datagram, to answer its sender). to is copied. Errors as dg_socket_send,
 * plus DG_ERR_INVALID_ADDRESS for a family the socket cannot reach. */
DG_EXPORT int dg_socket_send_to(dg_socket *sock, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen, dg_send_cb cb,
                                void *cb_data);

/* Node's socket.address(): the bound address. Returns 0, -EBADF if not
 * bound, DG_ERR_SOCKET_DGRAM_NOT_RUNNING if closed. */
DG_EXPORT int dg_socket_address(const dg_socket *sock, dg_address *out);

/* Formats a socket address as Node's rinfo does (IPv6 link-local with
 * %ifname). Returns 0, or DG_ERR_INVALID_ADDRESS for a family other than
 * AF_INET/AF_INET6 or a short length. */
DG_EXPORT int dg_address_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                       dg_address *out);

/* Closes the socket (Node's close): stops receiving (the multishot
 * receive is cancelled and its final completion awaited), completes
 * sends the kernel has not finished with -ECANCELED, closes the fd, then
 * runs on_close and cb (may be NULL) from the loop and frees the socket.
 * Returns 0, or DG_ERR_SOCKET_DGRAM_NOT_RUNNING if already closing. */
DG_EXPORT int dg_socket_close(dg_socket *sock, dg_close_cb cb, void *cb_data);

/* A bound, referenced socket keeps the loop alive; unref excludes it
 * (pending sends still do). Both are idempotent. */
DG_EXPORT void dg_socket_ref(dg_socket *sock);
DG_EXPORT void dg_socket_unref(dg_socket *sock);
DG_EXPORT bool dg_socket_has_ref(const dg_socket *sock);

/* Node's getSendQueueSize()/getSendQueueCount(): bytes and datagrams
 * handed to the socket whose send callbacks have not run yet. */
DG_EXPORT size_t dg_socket_send_queue_size(const dg_socket *sock);
DG_EXPORT size_t dg_socket_send_queue_count(const dg_socket *sock);

/* Copies the socket's counters into *out. Returns 0 or
 * DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_socket_get_stats(const dg_socket *sock, dg_socket_stats *out);

/* The socket's file descriptor (for options dgring has no call for), or
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING. Do not close it or read from it. */
DG_EXPORT int dg_socket_fd(const dg_socket *sock);

DG_EXPORT dg_loop *dg_socket_loop(const dg_socket *sock);
DG_EXPORT dg_socket_type dg_socket_get_type(const dg_socket *sock);

#ifdef __cplusplus
}
#endif

#endif

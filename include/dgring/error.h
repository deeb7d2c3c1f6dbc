/* dgring: error codes, names and messages.
 *
 * One error currency: every dgring call returns an int. Zero or a positive
 * count means success; a negative value is an error code:
 *   -1 .. -4095        negative errno values from the kernel or libc
 *   -10000 .. -10999   dgring's own codes, named after Node's dgram errors
 *   -11000 .. -11999   resolver (DNS) codes, named after Node's dns errors
 *   -20000 .. -29999   the user's: codes a socket's lookup function may
 *                      give (DG_ERR_LOOKUP_USER_FIRST .. _LAST); dgring
 *                      never produces them and passes them on unchanged
 * The library never returns -1 for "see errno" and never writes errno.
 */
#ifndef DGRING_ERROR_H
#define DGRING_ERROR_H

#include <stddef.h>

#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(enum suffix, value, Node-style name, sentence) */
#define DG_ERROR_MAP(X)                                                              \
    X(SOCKET_BAD_PORT, -10001, "ERR_SOCKET_BAD_PORT",                                \
      "Port should be > 0 and < 65536")                                              \
    X(SOCKET_BAD_TYPE, -10002, "ERR_SOCKET_BAD_TYPE",                                \
      "Bad socket type specified. Valid types are: udp4, udp6")                      \
    X(SOCKET_ALREADY_BOUND, -10003, "ERR_SOCKET_ALREADY_BOUND",                      \
      "Socket is already bound")                                                     \
    X(SOCKET_DGRAM_IS_CONNECTED, -10004, "ERR_SOCKET_DGRAM_IS_CONNECTED",            \
      "Already connected")                                                           \
    X(SOCKET_DGRAM_NOT_CONNECTED, -10005, "ERR_SOCKET_DGRAM_NOT_CONNECTED",          \
      "Not connected")                                                               \
    X(SOCKET_DGRAM_NOT_RUNNING, -10006, "ERR_SOCKET_DGRAM_NOT_RUNNING",              \
      "Not running")                                                                 \
    X(SOCKET_BUFFER_SIZE, -10007, "ERR_SOCKET_BUFFER_SIZE",                          \
      "Could not get or set buffer size")                                            \
    X(SOCKET_BAD_BUFFER_SIZE, -10008, "ERR_SOCKET_BAD_BUFFER_SIZE",                  \
      "Buffer size must be a positive integer")                                      \
    X(INVALID_ARG_VALUE, -10009, "ERR_INVALID_ARG_VALUE",                            \
      "An argument has an invalid value")                                            \
    X(INVALID_ARG_TYPE, -10010, "ERR_INVALID_ARG_TYPE",                              \
      "An argument is missing or of the wrong type")                                 \
    X(BUFFER_OUT_OF_BOUNDS, -10011, "ERR_BUFFER_OUT_OF_BOUNDS",                      \
      "Offset or length is outside of buffer bounds")                                \
    X(MISSING_ARGS, -10012, "ERR_MISSING_ARGS",                                      \
      "A required argument was not specified")                                       \
    X(OUT_OF_RANGE, -10013, "ERR_OUT_OF_RANGE",                                      \
      "A value is out of range")                                                     \
    X(INVALID_ADDRESS, -10014, "ERR_INVALID_ADDRESS",                                \
      "The address is not a valid IP address for this socket type")                  \
    X(LOOP_BUSY, -10015, "ERR_LOOP_BUSY",                                            \
      "The loop still has live handles or pending requests")                        \
    X(SEND_QUEUE_FULL, -10016, "ERR_SEND_QUEUE_FULL",                                \
      "Too many sends in flight on this loop; wait for send callbacks")              \
    X(KERNEL_UNSUPPORTED, -10017, "ERR_KERNEL_UNSUPPORTED",                          \
      "The running kernel lacks an io_uring feature dgring requires")                \
    X(INVALID_FD_TYPE, -10018, "ERR_INVALID_FD_TYPE",                                \
      "Unsupported fd type: the fd is not a UDP socket of this family")              \
    X(LOOKUP_REPORTED, -10019, "ERR_LOOKUP_REPORTED",                              \
      "The socket's lookup function reported this failure itself")                  \
    X(MESSAGE_NOT_CURRENT, -10030, "ERR_MESSAGE_NOT_CURRENT",                        \
      "The message is not the one being delivered to this socket's callback")       \
    X(MESSAGE_ALREADY_KEPT, -10031, "ERR_MESSAGE_ALREADY_KEPT",                      \
      "The message's buffer was already kept for this message")                     \
    X(BUFFER_NOT_KEPT, -10032, "ERR_BUFFER_NOT_KEPT",                                \
      "The receive buffer has no keep left to release")                             \
    /* DNS errors: the names are Node's dns error codes */                           \
    X(DNS_NODATA, -11001, "ENODATA", "DNS server returned an answer with no data")   \
    X(DNS_FORMERR, -11002, "EFORMERR", "DNS server claims query was misformatted")   \
    X(DNS_SERVFAIL, -11003, "ESERVFAIL", "DNS server returned general failure")      \
    X(DNS_NOTFOUND, -11004, "ENOTFOUND", "Domain name not found")                    \
    X(DNS_NOTIMP, -11005, "ENOTIMP", "DNS server does not implement the operation")  \
    X(DNS_REFUSED, -11006, "EREFUSED", "DNS server refused query")                   \
    X(DNS_BADQUERY, -11007, "EBADQUERY", "Misformatted DNS query")                   \
    X(DNS_BADNAME, -11008, "EBADNAME", "Misformatted host name")                     \
    X(DNS_BADFAMILY, -11009, "EBADFAMILY", "Unsupported address family")             \
    X(DNS_BADRESP, -11010, "EBADRESP", "Misformatted DNS reply")                     \
    X(DNS_CONNREFUSED, -11011, "ECONNREFUSED", "Could not contact DNS servers")      \
    X(DNS_TIMEOUT, -11012, "ETIMEOUT", "Timeout while contacting DNS servers")       \
    X(DNS_EOF, -11013, "EOF", "End of file")                                         \
    X(DNS_FILE, -11014, "EFILE", "Error reading file")                               \
    X(DNS_NOMEM, -11015, "ENOMEM", "Out of memory")                                  \
    X(DNS_DESTRUCTION, -11016, "EDESTRUCTION", "Channel is being destroyed")         \
    X(DNS_CANCELLED, -11017, "ECANCELLED", "DNS query cancelled")

enum dg_error_code {
#define DG__ERROR_ENUM(suffix, value, name, text) DG_ERR_##suffix = (value),
    DG_ERROR_MAP(DG__ERROR_ENUM)
#undef DG__ERROR_ENUM
};

/* The user's range: a lookup function (dg_lookup_fn, socket.h) that fails
 * with a reason of its own gives a code from this range, say FIRST - n for
 * its n-th kept error, and gets the same code back in the callback's or
 * on_error's dg_error (err->code; syscall "getaddrinfo", the host in
 * address), so it can find its own record of the failure. dg_err_name()
 * says "ERR_LOOKUP_USER" for every code of the range. */
#define DG_ERR_LOOKUP_USER_FIRST (-20000)
#define DG_ERR_LOOKUP_USER_LAST (-29999)

/* Name of a code: "ERR_SOCKET_BAD_PORT" for dgring codes, the errno
 * symbol ("EADDRINUSE") for negative errno values, "OK" for 0 and
 * "UNKNOWN" for anything else. Never NULL; the string is static. */
DG_EXPORT const char *dg_err_name(int code);

/* A one-sentence description of a code. Never NULL; the string is static. */
DG_EXPORT const char *dg_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif

/* dgring: socket addresses as keys.
 *
 * A server that keeps state per peer (a game's players, a collector's
 * clients) looks the peer up by the sender address of every datagram.
 * dg_addr_key is that address in a compact, fixed-size form that can be
 * copied, compared, hashed and stored in a table: the family, the port,
 * the IP address and, for IPv6, the scope (the interface of a link-local
 * address: fe80::1%eth0 and fe80::1%eth1 are different peers). IPv6's flow
 * label is left out: it may change between datagrams of one peer.
 *
 * Keys of different families never compare equal: an IPv4 peer seen on a
 * dual-stack udp6 socket arrives as ::ffff:a.b.c.d (AF_INET6) and keys as
 * such; one socket always gives the same peer the same key.
 *
 * All calls are pure functions of their arguments (no loop, no state):
 * any thread. Pointers are read during the call only.
 */
#ifndef DGRING_ADDRESS_H
#define DGRING_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 24 bytes, no padding: two keys of one peer are equal byte for byte, so
 * memcmp() and a byte hash of the whole struct work too. Fill it with
 * dg_addr_key_from_sockaddr(), not by hand (unused bytes must be zero). */
typedef struct dg_addr_key {
    uint8_t family;     /* AF_INET or AF_INET6 */
    uint8_t reserved;   /* 0 */
    uint16_t port;      /* host byte order */
    uint32_t scope_id;  /* IPv6 sin6_scope_id (interface index); 0 for IPv4 */
    uint8_t addr[16];   /* network order; IPv4 in the first 4 bytes, then zeros */
} dg_addr_key;

/* Big enough for any dg_addr_key_format() text and its NUL:
 * "[" IPv6 "%" interface name "]:" port. */
#define DG_ADDR_KEY_STRLEN 72

/* The key of a socket address (msg->addr and msg->addrlen of a received
 * datagram, or any sockaddr_in / sockaddr_in6). Returns 0, or (with *out
 * zeroed when out is not NULL) DG_ERR_INVALID_ARG_VALUE (NULL sa or out)
 * or DG_ERR_INVALID_ADDRESS (a family other than AF_INET/AF_INET6, such as
 * AF_UNIX, or len shorter than the family's sockaddr). */
DG_EXPORT int dg_addr_key_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                        dg_addr_key *out);

/* The socket address of a key, for dg_socket_send_to() and the like:
 * fills *out (zeroed first) and *len (sizeof(struct sockaddr_in) or
 * sizeof(struct sockaddr_in6)). Returns 0, DG_ERR_INVALID_ARG_VALUE (a
 * NULL argument) or DG_ERR_INVALID_ADDRESS (a key no address gives:
 * unknown family, a reserved byte set, IPv4 with a scope or bytes past
 * the fourth). */
DG_EXPORT int dg_addr_key_to_sockaddr(const dg_addr_key *key, struct sockaddr_storage *out,
                                      socklen_t *len);

/* Whether a and b are the same peer (family, address, port, scope). False
 * if either is NULL. */
DG_EXPORT bool dg_addr_key_equal(const dg_addr_key *a, const dg_addr_key *b);

/* A total order for sorted tables: by family (IPv4 first), then address
 * (as a number), then port, then scope. Returns < 0, 0 or > 0 as a sorts
 * before, with or after b; NULL sorts before every key (two NULLs are
 * equal). */
DG_EXPORT int dg_addr_key_compare(const dg_addr_key *a, const dg_addr_key *b);

/* A 64-bit hash of the key, keyed by seed, for hash tables: equal keys
 * hash equally, and every bit of the key moves every bit of the hash.
 * Datagram senders choose their own source ports (and, off a LAN,
 * addresses); a table keyed by them should use a seed nobody outside the
 * process knows (random, from getrandom(2), per process or per table),
 * so senders cannot pick addresses that collide. Not a cryptographic
 * MAC. A NULL key hashes like an all-zero key. */
DG_EXPORT uint64_t dg_addr_key_hash(const dg_addr_key *key, uint64_t seed);

/* Formats the key as "127.0.0.1:41234", "[::1]:41234" or
 * "[fe80::1%eth0]:41234" (the scope as an interface name when one has that
 * index, else as its number). Writes at most len bytes including the NUL
 * (buf may be NULL when len is 0) and returns the length the whole text
 * needs, like snprintf (less than DG_ADDR_KEY_STRLEN), or
 * DG_ERR_INVALID_ARG_VALUE (NULL key, or NULL buf with len > 0) or
 * DG_ERR_INVALID_ADDRESS (as dg_addr_key_to_sockaddr). */
DG_EXPORT int dg_addr_key_format(const dg_addr_key *key, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif

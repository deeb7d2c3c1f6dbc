/* sockperf's UDP message header, for dgring-echo --sockperf and
 * dgblast --sockperf.
 *
 * sockperf (3.x) puts a 14-byte header, in network byte order, in front of
 * every message its client and server exchange:
 *
 *   offset 0   8 bytes  sequence number, counted by the client from 1
 *   offset 8   2 bytes  flags: SOCKPERF_FLAG_*
 *   offset 10  4 bytes  length of the whole message, header included
 *
 * The rest of the message is payload the server sends back untouched. A
 * server answers a message only if it comes from a client, is no warm-up
 * message and asks for a reply; the answer is the same message with the
 * client flag cleared, which is how sockperf's client tells its server's
 * answer from its own message (a plain echo is ignored by it).
 *
 * Written from the protocol's description; no sockperf code is used.
 */
#ifndef DGRING_TOOLS_SOCKPERF_H
#define DGRING_TOOLS_SOCKPERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOCKPERF_HEADER_SIZE 14

#define SOCKPERF_FLAG_CLIENT 0x1u        /* sent by a client */
#define SOCKPERF_FLAG_PONG_REQUEST 0x2u  /* the client wants this answered */
#define SOCKPERF_FLAG_WARMUP 0x4u        /* warm-up: never answered or counted */

typedef struct sockperf_header {
    uint64_t seq;
    uint16_t flags;
    uint32_t length; /* whole message, header included */
} sockperf_header;

/* Writes header at dst, which must have SOCKPERF_HEADER_SIZE bytes. */
void sockperf_header_write(void *dst, const sockperf_header *header);

/* Reads the header at the start of the size bytes at src. Returns false
 * if size is too short for one, or if its length field is shorter than a
 * header or longer than size (a message cut off or not sockperf's). */
bool sockperf_header_read(const void *src, size_t size, sockperf_header *out);

/* What a sockperf server does with a message whose header is h. */
typedef enum sockperf_action {
    SOCKPERF_REPLY,        /* answer it (pong request from a client) */
    SOCKPERF_COUNT_ONLY,   /* a client message that wants no answer */
    SOCKPERF_WARMUP,       /* a client's warm-up message: ignore */
    SOCKPERF_NOT_CLIENT,   /* sent by a server: ignore */
} sockperf_action;

sockperf_action sockperf_server_action(const sockperf_header *header);

/* Turns the message at msg (header included) into the server's answer in
 * place: clears the client flag and leaves everything else as it was. */
void sockperf_make_reply(void *msg);

#endif

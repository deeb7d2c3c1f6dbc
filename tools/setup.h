/* What every tool may ask of its sockets, loop and thread: receive and
 * send buffer sizes (--rcvbuf, --sndbuf), the DNS server (--dns-server)
 * and CPU pinning (--cpu), with the rows of options.h; and the report of
 * the buffer sizes the kernel granted.
 *
 * Buffers. Linux doubles the size asked with SO_RCVBUF (for its own
 * bookkeeping) and caps what it doubles at net.core.rmem_max (wmem_max
 * for SO_SNDBUF). The tools ask with the plain options, as sockperf's
 * --buffer-size and iperf3's -w do, never with SO_RCVBUFFORCE (which
 * would pass the cap as root): they measure what an unprivileged program
 * on the machine gets. When the cap cut a request they say so and how to
 * raise it (sysctl -w net.core.rmem_max=BYTES, as root).
 *
 * Tool code on the public API only, like common.h.
 */
#ifndef DGRING_TOOLS_SETUP_H
#define DGRING_TOOLS_SETUP_H

#include "common.h"

/* The fields the shared rows set (options.h: TOOL_ROW_RCVBUF ...); a
 * tool's configuration has one named net. */
typedef struct tool_net_options {
    uint64_t rcvbuf;        /* SO_RCVBUF to ask for; 0: the system default */
    uint64_t sndbuf;        /* SO_SNDBUF to ask for; 0: the system default */
    const char *dns_server; /* NULL: DGRING_DNS_SERVERS, else resolv.conf */
    int cpu;                /* the first CPU to pin loop threads to; -1: none */
} tool_net_options;

/* The receive buffer dgblast recv and dgring-echo ask for unless told,
 * so that a receiver briefly off the CPU does not lose a burst: the
 * kernel charges each queued datagram its buffer's true size (hundreds
 * of bytes even for a tiny payload), so the default 208 KiB holds only a
 * few hundred datagrams, 32 MiB tens of thousands. */
#define TOOL_RECEIVER_RCVBUF (32u << 20)

/* Sets options->recv_buffer_size and send_buffer_size from net (applied
 * by dgring when the socket binds). */
void tool_socket_buffers(dg_socket_options *options, const tool_net_options *net);

/* --dns-server: checks the list (with dg_loop_set_dns_servers() on a
 * scratch epoll loop) and sets DGRING_DNS_SERVERS to it, so that every
 * loop the tool creates, its threads' and groups' too, asks that server.
 * Call from main before any loop or thread exists. Returns TOOL_EXIT_OK,
 * or TOOL_EXIT_USAGE after printing why the list is no good. */
int tool_dns_servers(const char *prog, const tool_net_options *net);

/* Pins the calling thread to CPU net->cpu + offset (no-op when cpu < 0).
 * Returns TOOL_EXIT_OK, or TOOL_EXIT_USAGE after printing which CPUs the
 * process may use. */
int tool_pin_thread(const char *prog, const tool_net_options *net, unsigned offset);

/* One socket buffer: what was asked, what the kernel granted, its cap. */
typedef struct tool_buffer {
    bool receive;           /* SO_RCVBUF (else SO_SNDBUF) */
    uint64_t asked;         /* 0: nothing asked, the system default */
    int granted;            /* bytes, as getsockopt reports them; < 0 unknown */
    uint64_t limit;         /* net.core.rmem_max or wmem_max; 0 unknown */
} tool_buffer;

/* Reads the granted size of a bound socket and the system's cap. */
void tool_buffer_read(tool_buffer *buffer, const dg_socket *sock, bool receive,
                      uint64_t asked);

/* Whether the system's cap cut the request. */
bool tool_buffer_capped(const tool_buffer *buffer);

/* One line on out: "receive buffer 8388608 bytes (asked 33554432;
 * net.core.rmem_max=4194304 capped it: as root, sysctl -w
 * net.core.rmem_max=33554432 raises it)", or what the default is. */
void tool_buffer_print(FILE *out, const tool_buffer *buffer);

/* When drops > 0, a line on out saying that the kernel dropped them
 * because the socket's receive queue was full, and what would hold more:
 * a larger --rcvbuf, or raising net.core.rmem_max where it capped the
 * buffer (rcvbuf may be NULL when unknown). */
void tool_explain_drops(FILE *out, uint64_t drops, const tool_buffer *rcvbuf);

/* The buffer as keys of a JSON summary: PREFIX (granted), PREFIX_asked,
 * PREFIX_capped; prefix "rcvbuf" or "sndbuf". */
void tool_buffer_json(tool_json *json, const tool_buffer *buffer);

#endif

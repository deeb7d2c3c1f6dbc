/* Sending and receiving on loopback: payloads of 0 bytes up to the IPv4 and
 * IPv6 maximum checked byte by byte, the sender's address, send callbacks,
 * sendv, send_to as an echo, truncation, argument errors, EMSGSIZE,
 * implicit bind, the send queue counters and limit, and cross-checks
 * against plain BSD sockets in both directions. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(socket_io, .timeout = 30);

/* Each socket here records what its handlers saw in a dgt_events (which
 * keeps the whole of every datagram up to DGT_KEEP_BYTES, more than UDP
 * carries), on the heap. */
static dgt_events *peer_new(dg_loop *loop, dg_socket_type type)
{
    dgt_events *p = calloc(1, sizeof(*p));

    cr_assert_not_null(p);
    dgt_events_socket(loop, type, 0, p);
    return p;
}

/* Binds to loopback:0 and returns the port. */
static int peer_bind(dg_loop *loop, dgt_events *p, dg_socket_type type)
{
    return dgt_bind(loop, p->sock, dgt_loopback(dgt_family(type)), 0);
}

/* Closes the socket (on_close exactly once) after checking it never saw
 * an error nor a second 'listening'. */
static void peer_free(dg_loop *loop, dgt_events *p)
{
    int closed = p->closed;

    cr_assert_eq(p->errors, 0, "on_error ran %d times", p->errors);
    cr_assert_leq(p->listening, 1, "on_listening ran %d times", p->listening);
    dgt_close_socket(loop, p->sock);
    cr_assert_eq(p->closed, closed + 1, "on_close ran %d times", p->closed - closed);
    free(p);
}

static void check_stats(dg_socket *sock, uint64_t rx, uint64_t rx_bytes, uint64_t tx,
                        uint64_t tx_bytes)
{
    dg_socket_stats st;

    memset(&st, 0x55, sizeof(st));
    cr_assert_eq(dg_socket_get_stats(sock, &st), 0);
    cr_assert_eq(st.rx_datagrams, rx, "rx_datagrams %llu", (unsigned long long)st.rx_datagrams);
    cr_assert_eq(st.rx_bytes, rx_bytes, "rx_bytes %llu", (unsigned long long)st.rx_bytes);
    cr_assert_eq(st.tx_datagrams, tx, "tx_datagrams %llu", (unsigned long long)st.tx_datagrams);
    cr_assert_eq(st.tx_bytes, tx_bytes, "tx_bytes %llu", (unsigned long long)st.tx_bytes);
    cr_assert_eq(st.tx_errors, 0);
    cr_assert_eq(st.rx_truncated, 0);
}

static void roundtrip(dg_socket_type type, size_t size, bool null_buf)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *rx, *tx;
    dgt_send_rec rec = {0};
    unsigned char *payload;
    dg_address tx_addr;
    int rx_port, rc;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    rx = peer_new(loop, type);
    tx = peer_new(loop, type);
    rx_port = peer_bind(loop, rx, type);
    peer_bind(loop, tx, type);
    cr_assert_eq(dg_socket_address(tx->sock, &tx_addr), 0);

    payload = malloc(size + 1);
    cr_assert_not_null(payload);
    dgt_fill(payload, size, 7);
    rc = dg_socket_send(tx->sock, null_buf ? NULL : payload, size, rx_port, dgt_loopback(family),
                        dgt_on_send, &rec);
    cr_assert_eq(rc, 0, "dg_socket_send(%zu bytes): %s", size, dg_err_name(rc));
    cr_assert_eq(rec.calls, 0, "the send callback ran inside dg_socket_send");
    /* The payload was copied: scribbling on it now changes nothing. */
    memset(payload, 0xEE, size + 1);

    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.status, (int)size, "send callback status %d (%s)", rec.status,
                 dg_err_name(rec.status));
    cr_assert(rec.err_null, "err must be NULL on success");

    cr_assert_eq(rx->messages, 1);
    cr_assert_eq(rx->length, size, "length %zu, want %zu", rx->length, size);
    cr_assert_eq(rx->size, size);
    cr_assert_eq(rx->flags, 0);
    cr_assert_eq(dgt_check(rx->data, size, 7), size, "payload differs at byte %zu",
                 dgt_check(rx->data, size, 7));
    cr_assert_eq(rx->from_rc, 0);
    cr_assert_eq(rx->from.family, family);
    cr_assert_str_eq(rx->from.address, tx_addr.address);
    cr_assert_eq(rx->from.port, tx_addr.port);

    check_stats(rx->sock, 1, size, 0, 0);
    check_stats(tx->sock, 0, 0, 1, size);

    peer_free(loop, rx);
    cr_assert_eq(tx->messages + tx->errors, 0);
    peer_free(loop, tx);
    free(payload);
    dgt_loop_finish(loop);
}

Test(socket_io, udp4_0_bytes)
{
    roundtrip(DG_UDP4, 0, false);
}
Test(socket_io, udp4_0_bytes_null_buffer)
{
    roundtrip(DG_UDP4, 0, true);
}
Test(socket_io, udp4_1_byte)
{
    roundtrip(DG_UDP4, 1, false);
}
Test(socket_io, udp4_1472_bytes)
{
    roundtrip(DG_UDP4, 1472, false);
}
Test(socket_io, udp4_65507_bytes)
{
    roundtrip(DG_UDP4, 65507, false);
}
Test(socket_io, udp6_0_bytes)
{
    roundtrip(DG_UDP6, 0, false);
}
Test(socket_io, udp6_1_byte)
{
    roundtrip(DG_UDP6, 1, false);
}
Test(socket_io, udp6_1472_bytes)
{
    roundtrip(DG_UDP6, 1472, false);
}
Test(socket_io, udp6_65487_bytes)
{
    roundtrip(DG_UDP6, 65487, false);
}
Test(socket_io, udp6_65507_bytes)
{
    roundtrip(DG_UDP6, 65507, false);
}

Test(socket_io, sendv_sends_one_datagram)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *rx = peer_new(loop, DG_UDP4);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    char a[] = "hello", b[] = ", ", c[] = "world";
    struct iovec iov[3] = {{a, 5}, {b, 2}, {c, 5}};
    int port = peer_bind(loop, rx, DG_UDP4);

    peer_bind(loop, tx, DG_UDP4);
    cr_assert_eq(dg_socket_sendv(tx->sock, iov, 3, port, "127.0.0.1", dgt_on_send, &rec), 0);
    /* iov and its bytes were copied. */
    memset(a, 'X', 5);
    memset(iov, 0, sizeof(iov));
    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 12);
    cr_assert_eq(rx->messages, 1);
    cr_assert_eq(rx->length, 12);
    cr_assert_eq(memcmp(rx->data, "hello, world", 12), 0);
    peer_free(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 1);
    dgt_loop_finish(loop);
}

Test(socket_io, sendv_rejects_bad_vectors)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    struct iovec iov = {NULL, 4};

    peer_bind(loop, tx, DG_UDP4);
    dgt_assert_code(dg_socket_sendv(tx->sock, NULL, 1, 9, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_sendv(tx->sock, &iov, -1, 9, "127.0.0.1", dgt_on_send, &rec), -EINVAL,
                    "iovcnt < 0 (libuv's nbufs check)");
    dgt_assert_code(dg_socket_sendv(tx->sock, &iov, 1025, 9, "127.0.0.1", dgt_on_send, &rec),
                    -EINVAL, "iovcnt > 1024");
    dgt_assert_code(dg_socket_sendv(tx->sock, &iov, 1, 9, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE, "iov_base NULL with iov_len > 0");
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 0);
    dgt_loop_finish(loop);
}

Test(socket_io, sendv_of_no_buffers_sends_an_empty_datagram)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *rx = peer_new(loop, DG_UDP4);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    struct iovec unused = {NULL, 0};
    int port = peer_bind(loop, rx, DG_UDP4);

    peer_bind(loop, tx, DG_UDP4);
    cr_assert_eq(dg_socket_sendv(tx->sock, &unused, 0, port, "127.0.0.1", dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 0);
    cr_assert_eq(rx->length, 0);
    cr_assert_eq(rx->size, 0);
    peer_free(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 1);
    dgt_loop_finish(loop);
}

/* A message hook that sends every datagram back to its sender with
 * dg_socket_send_to; user is the int where it keeps the last result. */
static void echo_back(dgt_events *ev, dg_socket *sock, const dg_message *msg)
{
    *(int *)ev->user =
        dg_socket_send_to(sock, msg->data, msg->length, msg->addr, msg->addrlen, NULL, NULL);
}

static void echo_roundtrip(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *server, *client;
    dgt_send_rec rec = {0};
    dg_address server_addr;
    int port, echo_rc = 1;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    server = peer_new(loop, type);
    client = peer_new(loop, type);
    server->message_hook = echo_back;
    server->user = &echo_rc;
    port = peer_bind(loop, server, type);
    peer_bind(loop, client, type);
    cr_assert_eq(dg_socket_address(server->sock, &server_addr), 0);
    cr_assert_eq(
        dg_socket_send(client->sock, "ping", 4, port, dgt_loopback(family), dgt_on_send, &rec), 0);
    dgt_run_until(loop, &client->messages, 1, DGT_WAIT_MS);
    cr_assert_eq(server->messages, 1);
    cr_assert_eq(echo_rc, 0, "dg_socket_send_to: %s", dg_err_name(echo_rc));
    cr_assert_eq(client->messages, 1);
    cr_assert_eq(client->length, 4);
    cr_assert_eq(memcmp(client->data, "ping", 4), 0);
    cr_assert_eq(client->from.port, port);
    cr_assert_str_eq(client->from.address, server_addr.address);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 4);
    /* The echo's send (no callback) must drain before the close. */
    peer_free(loop, server);
    peer_free(loop, client);
    cr_assert_eq(rec.calls, 1);
    dgt_loop_finish(loop);
}

Test(socket_io, send_to_echo_udp4)
{
    echo_roundtrip(DG_UDP4);
}
Test(socket_io, send_to_echo_udp6)
{
    echo_roundtrip(DG_UDP6);
}

Test(socket_io, send_to_rejects_a_family_it_cannot_reach)
{
    dg_loop *loop;
    dgt_events *tx;
    dgt_send_rec rec = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    tx = peer_new(loop, DG_UDP4);
    peer_bind(loop, tx, DG_UDP4);
    len = dgt_sockaddr(AF_INET6, 9, &ss);
    dgt_assert_code(
        dg_socket_send_to(tx->sock, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
        DG_ERR_INVALID_ADDRESS);
    len = dgt_sockaddr(AF_INET, 9, &ss);
    rc = dg_socket_send_to(tx->sock, "x", 1, (struct sockaddr *)&ss, len - 1, dgt_on_send, &rec);
    cr_assert(rc == DG_ERR_INVALID_ADDRESS || rc == DG_ERR_INVALID_ARG_VALUE,
              "short address length: %s", dg_err_name(rc));
    rc = dg_socket_send_to(tx->sock, "x", 1, NULL, len, dgt_on_send, &rec);
    cr_assert(rc == DG_ERR_INVALID_ADDRESS || rc == DG_ERR_INVALID_ARG_VALUE, "NULL address: %s",
              dg_err_name(rc));
    len = dgt_sockaddr(AF_INET, 0, &ss);
    dgt_assert_code(
        dg_socket_send_to(tx->sock, "x", 1, (struct sockaddr *)&ss, len, dgt_on_send, &rec),
        DG_ERR_SOCKET_BAD_PORT);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 0);
    dgt_loop_finish(loop);
}

Test(socket_io, truncation_is_flagged)
{
    dg_loop *loop = dgt_loop_new_sized(0, 100);
    dgt_events *rx = peer_new(loop, DG_UDP4);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    unsigned char payload[500];
    dg_socket_stats st;
    int port = peer_bind(loop, rx, DG_UDP4);

    peer_bind(loop, tx, DG_UDP4);
    dgt_fill(payload, sizeof(payload), 3);
    cr_assert_eq(dg_socket_send(tx->sock, payload, 500, port, "127.0.0.1", dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    cr_assert(rx->flags & DG_MSG_TRUNC, "flags 0x%x lack DG_MSG_TRUNC", rx->flags);
    cr_assert_eq(rx->size, 500, "size %zu (length %zu): size must be the datagram's real size",
                 rx->size, rx->length);
    cr_assert_eq(rx->length, 100, "length %zu: recv_buffer_size 100 is the largest payload kept",
                 rx->length);
    cr_assert_eq(dgt_check(rx->data, 100, 3), 100, "kept bytes differ");
    cr_assert_eq(dg_socket_get_stats(rx->sock, &st), 0);
    cr_assert_eq(st.rx_truncated, 1);
    cr_assert_eq(st.rx_datagrams, 1);

    /* The next, smaller datagram is whole again. */
    cr_assert_eq(dg_socket_send(tx->sock, payload, 60, port, "127.0.0.1", dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rx->messages, 2, DGT_WAIT_MS);
    cr_assert_eq(rx->length, 60);
    cr_assert_eq(rx->size, 60);
    cr_assert_eq(rx->flags, 0);
    cr_assert_eq(dg_socket_get_stats(rx->sock, &st), 0);
    cr_assert_eq(st.rx_truncated, 1);
    cr_assert_eq(st.rx_datagrams, 2);
    dgt_run_until(loop, &rec.calls, 2, DGT_WAIT_MS);
    peer_free(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 2);
    dgt_loop_finish(loop);
}

Test(socket_io, send_argument_errors)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};

    peer_bind(loop, tx, DG_UDP4);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 0, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 65536, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, -1, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_SOCKET_BAD_PORT);
    dgt_assert_code(dg_socket_send(tx->sock, NULL, 1, 9, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 9, "not an ip!", dgt_on_send, &rec),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 9, "::1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send(NULL, "x", 1, 9, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ARG_VALUE);
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(tx->sock), 0);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 0, "a refused send must never call its callback");
    dgt_loop_finish(loop);
}

Test(socket_io, udp6_send_argument_errors)
{
    dg_loop *loop;
    dgt_events *tx;
    dgt_send_rec rec = {0};

    dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    tx = peer_new(loop, DG_UDP6);
    peer_bind(loop, tx, DG_UDP6);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 9, "127.0.0.1", dgt_on_send, &rec),
                    DG_ERR_INVALID_ADDRESS);
    dgt_assert_code(dg_socket_send(tx->sock, "x", 1, 0, "::1", dgt_on_send, &rec),
                    DG_ERR_SOCKET_BAD_PORT);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 0);
    dgt_loop_finish(loop);
}

Test(socket_io, larger_than_65535_is_emsgsize_synchronously)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    unsigned char *big = calloc(1, 65536);

    cr_assert_not_null(big);
    peer_bind(loop, tx, DG_UDP4);
    dgt_assert_code(dg_socket_send(tx->sock, big, 65536, 9, "127.0.0.1", dgt_on_send, &rec),
                    -EMSGSIZE);
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 0);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 0);
    free(big);
    dgt_loop_finish(loop);
}

/* Above the family's maximum but within 65535: the kernel refuses it and
 * the header says the refusal comes through the callback, exactly once. */
static void check_too_big(dg_socket_type type, size_t len)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *rx, *tx;
    dgt_send_rec rec = {0};
    unsigned char *big = calloc(1, len);
    int port, rc;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    cr_assert_not_null(big);
    loop = dgt_loop_new(NULL);
    rx = peer_new(loop, type);
    tx = peer_new(loop, type);
    port = peer_bind(loop, rx, type);
    peer_bind(loop, tx, type);
    rc = dg_socket_send(tx->sock, big, len, port, dgt_loopback(family), dgt_on_send, &rec);
    cr_assert_eq(rc, 0,
                 "dg_socket_send(%zu) returned %s; sizes the kernel refuses fail "
                 "through the callback",
                 len, dg_err_name(rc));
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, -EMSGSIZE, "send callback got %d (%s)", rec.status,
                 dg_err_name(rec.status));
    cr_assert(!rec.err_null, "an error status comes with a dg_error");
    cr_assert_eq(rec.err.code, -EMSGSIZE);
    cr_assert_str_eq(rec.err.syscall, "send");
    cr_assert_eq(rx->messages + tx->errors, 0);
    peer_free(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 1);
    free(big);
    dgt_loop_finish(loop);
}

Test(socket_io, udp4_65508_bytes_is_emsgsize_once)
{
    check_too_big(DG_UDP4, 65508);
}
Test(socket_io, udp4_65535_bytes_is_emsgsize_once)
{
    check_too_big(DG_UDP4, 65535);
}
Test(socket_io, udp6_65528_bytes_is_emsgsize_once)
{
    check_too_big(DG_UDP6, 65528);
}

static void check_implicit_bind(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *rx, *tx;
    dgt_send_rec r1 = {0}, r2 = {0};
    dg_address tx_addr;
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    rx = peer_new(loop, type);
    tx = peer_new(loop, type);
    port = peer_bind(loop, rx, type);
    dgt_assert_code(dg_socket_address(tx->sock, &tx_addr), -EBADF);
    /* Two sends back to back before the loop runs (libuv's
     * udp_send_immediate): both go out behind the implicit bind. */
    cr_assert_eq(
        dg_socket_send(tx->sock, "one", 3, port, dgt_loopback(family), dgt_on_send, &r1), 0);
    cr_assert_eq(
        dg_socket_send(tx->sock, "two!", 4, port, dgt_loopback(family), dgt_on_send, &r2), 0);
    cr_assert_eq(tx->listening, 0, "on_listening ran inside dg_socket_send");
    cr_assert_eq(r1.calls + r2.calls, 0);
    dgt_run_until(loop, &rx->messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &r2.calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &r1.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r1.status, 3);
    cr_assert_eq(r2.status, 4);
    cr_assert_eq(tx->listening, 1);
    cr_assert_eq(dg_socket_address(tx->sock, &tx_addr), 0);
    cr_assert_gt(tx_addr.port, 0);
    cr_assert_eq(tx_addr.family, family);
    cr_assert_str_eq(tx_addr.address, family == AF_INET ? "0.0.0.0" : "::");
    cr_assert_eq(rx->messages, 2);
    cr_assert_eq(rx->length, 4, "the datagrams arrived out of order");
    cr_assert_eq(memcmp(rx->data, "two!", 4), 0);
    cr_assert_eq(rx->from.port, tx_addr.port);
    cr_assert_str_eq(rx->from.address, dgt_loopback(family));
    /* Implicitly bound, it also receives. */
    cr_assert_eq(dg_socket_send(rx->sock, "back", 4, tx_addr.port, NULL, NULL, NULL), 0);
    dgt_run_until(loop, &tx->messages, 1, DGT_WAIT_MS);
    cr_assert_eq(memcmp(tx->data, "back", 4), 0);
    peer_free(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(r1.calls, 1);
    cr_assert_eq(r2.calls, 1);
    dgt_loop_finish(loop);
}

Test(socket_io, implicit_bind_udp4)
{
    check_implicit_bind(DG_UDP4);
}
Test(socket_io, implicit_bind_udp6)
{
    check_implicit_bind(DG_UDP6);
}

Test(socket_io, null_address_means_loopback)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *rx = peer_new(loop, DG_UDP4);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec r1 = {0}, r2 = {0};
    int port = peer_bind(loop, rx, DG_UDP4);

    peer_bind(loop, tx, DG_UDP4);
    cr_assert_eq(dg_socket_send(tx->sock, "a", 1, port, NULL, dgt_on_send, &r1), 0);
    cr_assert_eq(dg_socket_send(tx->sock, "b", 1, port, "", dgt_on_send, &r2), 0);
    dgt_run_until(loop, &rx->messages, 2, DGT_WAIT_MS);
    dgt_run_until(loop, &r2.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(r1.calls, 1);
    cr_assert_eq(r1.status, 1);
    cr_assert_eq(r2.status, 1);
    peer_free(loop, rx);
    peer_free(loop, tx);
    dgt_loop_finish(loop);
}

static void check_plain_to_dgring(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *rx;
    int plain, port;
    char text[32];

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    rx = peer_new(loop, type);
    port = peer_bind(loop, rx, type);
    plain = dgt_plain_socket(family, 0);
    for (int i = 0; i < 3; i++) {
        int n = snprintf(text, sizeof(text), "datagram %d", i);

        dgt_plain_send(plain, family, port, text, (size_t)n);
        dgt_run_until(loop, &rx->messages, i + 1, DGT_WAIT_MS);
        cr_assert_eq(rx->length, (size_t)n);
        cr_assert_eq(memcmp(rx->data, text, (size_t)n), 0);
        cr_assert_eq(rx->flags, 0);
        cr_assert_eq(rx->from.port, dgt_plain_port(plain));
        cr_assert_str_eq(rx->from.address, dgt_loopback(family));
    }
    close(plain);
    peer_free(loop, rx);
    dgt_loop_finish(loop);
}

Test(socket_io, plain_sendto_reaches_dgring_udp4)
{
    check_plain_to_dgring(DG_UDP4);
}
Test(socket_io, plain_sendto_reaches_dgring_udp6)
{
    check_plain_to_dgring(DG_UDP6);
}

static void check_dgring_to_plain(dg_socket_type type)
{
    int family = dgt_family(type);
    dg_loop *loop;
    dgt_events *tx;
    dgt_send_rec rec[3];
    int plain, tx_port;
    unsigned char buf[2048];
    struct sockaddr_storage from;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    loop = dgt_loop_new(NULL);
    tx = peer_new(loop, type);
    tx_port = peer_bind(loop, tx, type);
    plain = dgt_plain_socket(family, 0);
    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 3; i++) {
        unsigned char payload[1000];

        dgt_fill(payload, sizeof(payload), (unsigned)i);
        cr_assert_eq(dg_socket_send(tx->sock, payload, 100 + 300 * (size_t)i, dgt_plain_port(plain),
                                    dgt_loopback(family), dgt_on_send, &rec[i]),
                     0);
    }
    dgt_run_until(loop, &rec[2].calls, 1, DGT_WAIT_MS);
    for (int i = 0; i < 3; i++) {
        size_t want = 100 + 300 * (size_t)i;
        ssize_t n = dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, &from);

        cr_assert_eq(rec[i].calls, 1);
        cr_assert_eq(rec[i].status, (int)want);
        cr_assert_eq(n, (ssize_t)want, "datagram %d: got %zd bytes", i, n);
        cr_assert_eq(dgt_check(buf, want, (unsigned)i), want);
        cr_assert_eq(from.ss_family, family);
        cr_assert_eq(dgt_sockaddr_port((struct sockaddr *)&from), tx_port);
    }
    cr_assert_eq(dgt_plain_recv_nowait(plain, buf, sizeof(buf)), -1, "an extra datagram");
    close(plain);
    peer_free(loop, tx);
    dgt_loop_finish(loop);
}

Test(socket_io, dgring_send_reaches_plain_recvfrom_udp4)
{
    check_dgring_to_plain(DG_UDP4);
}
Test(socket_io, dgring_send_reaches_plain_recvfrom_udp6)
{
    check_dgring_to_plain(DG_UDP6);
}

Test(socket_io, send_queue_counters_rise_and_return_to_zero)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec[3];
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);
    unsigned char payload[30] = {0};
    unsigned char buf[64];

    peer_bind(loop, tx, DG_UDP4);
    memset(rec, 0, sizeof(rec));
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(tx->sock), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dg_socket_send(tx->sock, payload, 10 * (size_t)(i + 1), port, "127.0.0.1",
                                    dgt_on_send, &rec[i]),
                     0);
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 3);
    cr_assert_eq(dg_socket_send_queue_size(tx->sock), 60);
    cr_assert(dg_loop_alive(loop));
    dgt_run_until(loop, &rec[0].calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rec[1].calls, 1, DGT_WAIT_MS);
    dgt_run_until(loop, &rec[2].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 0);
    cr_assert_eq(dg_socket_send_queue_size(tx->sock), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rec[i].calls, 1);
        cr_assert_eq(rec[i].status, 10 * (i + 1));
        cr_assert_eq(dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, NULL), 10 * (i + 1));
    }
    check_stats(tx->sock, 0, 0, 3, 60);
    close(plain);
    peer_free(loop, tx);
    dgt_loop_finish(loop);
}

Test(socket_io, pending_sends_keep_an_unreferenced_socket_alive)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    int plain = dgt_plain_socket(AF_INET, 0);
    unsigned char buf[16];

    peer_bind(loop, tx, DG_UDP4);
    dg_socket_unref(tx->sock);
    cr_assert(!dg_loop_alive(loop));
    cr_assert_eq(dg_socket_send(tx->sock, "abc", 3, dgt_plain_port(plain), "127.0.0.1",
                                dgt_on_send, &rec),
                 0);
    cr_assert(dg_loop_alive(loop), "a pending send keeps the loop alive");
    cr_assert_eq(dgt_run(loop, DGT_WAIT_MS), 0);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.status, 3);
    cr_assert_eq(dgt_plain_recv(plain, buf, sizeof(buf), DGT_WAIT_MS, NULL), 3);
    close(plain);
    peer_free(loop, tx);
    dgt_loop_finish(loop);
}

Test(socket_io, max_pending_sends_is_enforced)
{
    dg_loop_options options;
    dg_loop *loop;
    dgt_events *tx;
    dgt_send_rec rec[6];
    int plain = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(plain);
    int rc;

    dg_loop_options_init(&options);
    options.max_pending_sends = 4;
    loop = dgt_loop_new(&options);
    tx = peer_new(loop, DG_UDP4);
    peer_bind(loop, tx, DG_UDP4);
    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dg_socket_send(tx->sock, "q", 1, port, "127.0.0.1", dgt_on_send, &rec[i]), 0);
    rc = dg_socket_send(tx->sock, "q", 1, port, "127.0.0.1", dgt_on_send, &rec[4]);
    cr_assert_eq(rc, DG_ERR_SEND_QUEUE_FULL, "the fifth send returned %s", dg_err_name(rc));
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 4);
    for (int i = 0; i < 4; i++)
        dgt_run_until(loop, &rec[i].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dg_socket_send(tx->sock, "q", 1, port, "127.0.0.1", dgt_on_send, &rec[5]), 0,
                 "room again after the callbacks");
    dgt_run_until(loop, &rec[5].calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec[4].calls, 0);
    for (int i = 0; i < 6; i++) {
        if (i != 4)
            cr_assert_eq(rec[i].status, 1);
    }
    close(plain);
    peer_free(loop, tx);
    dgt_loop_finish(loop);
}

static void stop_loop_cb(dg_timer *timer, void *data)
{
    (void)timer;
    (*(int *)data)++;
}

Test(socket_io, send_to_a_closed_port_succeeds_without_errors)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    dgt_send_rec rec = {0};
    int gone = dgt_plain_socket(AF_INET, 0);
    int port = dgt_plain_port(gone);
    dg_timer *timer;
    int fired = 0;

    close(gone);
    peer_bind(loop, tx, DG_UDP4);
    cr_assert_eq(dg_socket_send(tx->sock, "lost", 4, port, "127.0.0.1", dgt_on_send, &rec), 0);
    dgt_run_until(loop, &rec.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(rec.status, 4, "unconnected UDP: ICMP errors are not reported to sends");
    /* Give a port-unreachable ICMP time to arrive; nothing may surface. */
    cr_assert_eq(dg_timer_new(loop, &timer), 0);
    cr_assert_eq(dg_timer_start(timer, 100, 0, stop_loop_cb, &fired), 0);
    dgt_run_until(loop, &fired, 1, DGT_WAIT_MS);
    dgt_close_timer(loop, timer);
    cr_assert_eq(tx->errors, 0);
    cr_assert_eq(tx->messages, 0);
    peer_free(loop, tx);
    cr_assert_eq(rec.calls, 1);
    dgt_loop_finish(loop);
}

/* 100 numbered datagrams queued before the loop runs arrive once each, in
 * order and intact. */
static void count_send(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    (void)err;
    cr_expect_eq(status, 32);
    (*(int *)data)++;
}

Test(socket_io, hundred_datagrams_arrive_once_in_order)
{
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_numbered n = {0};
    dg_socket_handlers h = {.on_message = dgt_on_numbered};
    dg_socket *rx = dgt_socket_new(loop, DG_UDP4, 0, &h, &n);
    dgt_events *tx = peer_new(loop, DG_UDP4);
    int sent = 0;
    int port = dgt_bind(loop, rx, "127.0.0.1", 0);

    peer_bind(loop, tx, DG_UDP4);
    for (uint32_t i = 0; i < 100; i++) {
        unsigned char payload[32];

        dgt_numbered_fill(payload, sizeof(payload), i);
        cr_assert_eq(dg_socket_send(tx->sock, payload, 32, port, "127.0.0.1", count_send, &sent),
                     0);
    }
    cr_assert_eq(dg_socket_send_queue_count(tx->sock), 100);
    dgt_run_until(loop, &n.messages, 100, DGT_WAIT_MS);
    dgt_run_until(loop, &sent, 100, DGT_WAIT_MS);
    cr_assert_eq(n.messages, 100);
    cr_assert_eq(n.bad, 0, "datagrams of the wrong size, out of order or changed");
    cr_assert_eq(sent, 100);
    dgt_close_socket(loop, rx);
    peer_free(loop, tx);
    cr_assert_eq(n.messages, 100);
    dgt_loop_finish(loop);
}

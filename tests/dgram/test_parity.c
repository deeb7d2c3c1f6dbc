/* dgram conformance, Node parity (docs/conformance.md, section F): what a
 * program ported from Node's dgram relies on and no Node test asserts. Each
 * test is named for Node 20's behaviour, observed with a small Node script
 * on loopback; the expected values quoted below are what Node printed.
 *   P4  the largest udp6 datagram arrives whole
 *   P6  IPv4 shorthand literals are addresses */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/helpers.h"

TestSuite(dgram_parity, .timeout = 60);

/* ---- P4: the largest datagrams arrive whole with default options ----------
 * Node: udp6 send 65527 65527 / udp6 received length 65527 rinfo.size
 * 65527 whole true; udp4 the same with 65507; udp6 send 65528: send
 * EMSGSIZE ::1:9. */
static void largest_datagram(dg_socket_type type, size_t size)
{
    dg_loop *loop;
    dgt_events *rx = calloc(1, sizeof(*rx));
    dgt_send_rec sent = {0}, too_big = {0};
    dg_socket *tx;
    unsigned char *buf = malloc(size + 1);
    const char *to = dgt_loopback(dgt_family(type));
    char want[64];
    int port;

    if (type == DG_UDP6)
        dgt_require_ipv6();
    cr_assert_not_null(rx);
    cr_assert_not_null(buf);
    loop = dgt_loop_new(NULL); /* default options */
    dgt_events_socket(loop, type, 0, rx);
    port = dgt_bind(loop, rx->sock, to, 0);
    tx = dgt_socket_new(loop, type, 0, NULL, NULL);
    dgt_fill(buf, size + 1, 7);
    cr_assert_eq(dg_socket_send(tx, buf, size, port, to, dgt_on_send, &sent), 0);
    dgt_run_until(loop, &rx->messages, 1, DGT_WAIT_MS);
    cr_assert_eq(sent.status, (int)size);
    cr_assert_eq(rx->length, size, "received %zu of %zu bytes", rx->length, size);
    cr_assert_eq(rx->size, size);
    cr_assert_eq(rx->flags, 0, "DG_MSG_TRUNC with the default receive buffers");
    cr_assert_eq(dgt_check(rx->data, size, 7), size, "payload differs");
    cr_assert_eq(dg_socket_send(tx, buf, size + 1, 9, to, dgt_on_send, &too_big), 0);
    dgt_run_until(loop, &too_big.calls, 1, DGT_WAIT_MS);
    snprintf(want, sizeof(want), "send EMSGSIZE %s:9", to);
    cr_assert_str_eq(too_big.text, want);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, rx->sock);
    dgt_loop_finish(loop);
    free(buf);
    free(rx);
}

Test(dgram_parity, udp6_65527_byte_datagram_arrives_whole_with_default_options)
{
    largest_datagram(DG_UDP6, 65527); /* P4 */
}

Test(dgram_parity, udp4_65507_byte_datagram_arrives_whole_with_default_options)
{
    largest_datagram(DG_UDP4, 65507); /* P4 */
}

/* ---- P6: IPv4 shorthand literals are addresses ----------------------------
 * Node (in an empty network namespace, so no DNS could answer):
 *   "127.1" send -> 5, received from 127.0.0.1; the same for "0x7f.1",
 *   "0x7f000001", "2130706433", "0177.0.0.1", "127.0.1";
 *   bind("127.1") address() 127.0.0.1; connect("0x7f.1") 127.0.0.1;
 *   udp6 send to "127.1" -> getaddrinfo EAI_ADDRFAMILY 127.1 (an IPv4
 *   literal on udp6; dgring: DG_ERR_INVALID_ADDRESS, as for "127.0.0.1").
 * These sockets have no lookup option and the suite's DNS server is a
 * closed loopback port: a form sent to DNS would fail. */
static const char *const shorthand[] = {"127.1",      "0x7f.1",     "0x7f000001",
                                        "2130706433", "0177.0.0.1", "127.0.1"};
#define SHORTHAND_COUNT (sizeof(shorthand) / sizeof(shorthand[0]))

struct looked_up {
    int calls;
    int status;
    char address[DG_ADDRSTRLEN];
};

static void on_looked_up(dg_loop *loop, int status, const dg_address *address, void *data)
{
    struct looked_up *l = data;

    (void)loop;
    l->calls++;
    l->status = status;
    if (address)
        snprintf(l->address, sizeof(l->address), "%s", address->address);
}

Test(dgram_parity, ipv4_shorthand_literals_are_addresses)
{
    /* P6 */
    dg_loop *loop = dgt_loop_new(NULL);
    dgt_events rx = {0};
    dgt_send_rec sent[SHORTHAND_COUNT];
    dgt_status_rec connected = {0};
    struct looked_up looked = {0};
    dgt_fake_lookup lk = {0};
    dgt_send_rec named = {0};
    dg_socket_options six_options;
    dg_socket *tx, *bound, *conn, *six;
    dg_address addr;
    int port;

    memset(sent, 0, sizeof(sent));
    dgt_events_socket(loop, DG_UDP4, 0, &rx);
    port = dgt_bind(loop, rx.sock, "127.0.0.1", 0);
    tx = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    for (size_t i = 0; i < SHORTHAND_COUNT; i++) {
        cr_assert_eq(dg_socket_send(tx, shorthand[i], strlen(shorthand[i]), port, shorthand[i],
                                    dgt_on_send, &sent[i]),
                     0, "%s", shorthand[i]);
    }
    dgt_run_until(loop, &rx.messages, (int)SHORTHAND_COUNT, DGT_WAIT_MS);
    for (size_t i = 0; i < SHORTHAND_COUNT; i++)
        cr_assert_eq(sent[i].status, (int)strlen(shorthand[i]), "%s: %s", shorthand[i],
                     dg_err_name(sent[i].status));
    cr_assert_str_eq(rx.from.address, "127.0.0.1");

    bound = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    dgt_bind(loop, bound, "127.1", 0);
    cr_assert_eq(dg_socket_address(bound, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");

    conn = dgt_socket_new(loop, DG_UDP4, 0, NULL, NULL);
    cr_assert_eq(dg_socket_connect(conn, port, "0x7f.1", dgt_on_status, &connected), 0);
    dgt_run_until(loop, &connected.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(connected.status, 0, "%s", dg_err_name(connected.status));
    cr_assert_eq(dg_socket_remote_address(conn, &addr), 0);
    cr_assert_str_eq(addr.address, "127.0.0.1");

    /* dns.lookup answers them without DNS too. */
    cr_assert_eq(dg_lookup(loop, "127.1", 4, on_looked_up, &looked), 0);
    dgt_run_until(loop, &looked.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(looked.status, 0, "%s", dg_err_name(looked.status));
    cr_assert_str_eq(looked.address, "127.0.0.1");

    /* On udp6 they are IPv4 literals; "127.1." is a host name (it goes to
     * the socket's lookup function, which answers ::1). */
    six_options = dgt_fake_lookup_options(DG_UDP6, 0, &lk);
    cr_assert_eq(dg_socket_create(loop, &six_options, NULL, NULL, &six), 0);
    dgt_assert_code(dg_socket_send(six, "x", 1, port, "127.1", NULL, NULL), DG_ERR_INVALID_ADDRESS,
                    "an IPv4 literal on udp6");
    dgt_assert_code(dg_socket_bind(six, 0, "0x7f.1", NULL, NULL), DG_ERR_INVALID_ADDRESS);
    cr_assert_eq(dg_socket_send(six, "x", 1, port, "127.1.", dgt_on_send, &named), 0);
    dgt_run_until(loop, &named.calls, 1, DGT_WAIT_MS);
    cr_assert_eq(dgt_fake_lookup_count(&lk, "127.1."), 1, "\"127.1.\" is a name");

    dgt_close_socket(loop, six);
    dgt_close_socket(loop, conn);
    dgt_close_socket(loop, bound);
    dgt_close_socket(loop, tx);
    dgt_close_socket(loop, rx.sock);
    dgt_loop_finish(loop);
}

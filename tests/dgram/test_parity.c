/* dgram conformance, Node parity (docs/conformance.md, section F): what a
 * program ported from Node's dgram relies on and no Node test asserts. Each
 * test is named for Node 20's behaviour, observed with a small Node script
 * on loopback; the expected values quoted below are what Node printed.
 *   P4  the largest udp6 datagram arrives whole */
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

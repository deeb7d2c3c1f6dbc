/* dg__parse_ipv4: the dotted-quad fast path takes exactly what inet_aton
 * takes for that form and gives the same address; everything else reaches
 * inet_aton's forms (shorthand, octal, hex) or is refused as before, and
 * white space anywhere is refused (getaddrinfo's rule). No sockets. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine/core/core.h"

TestSuite(parse_ipv4, .timeout = 30);

/* What the parser must answer: inet_aton, with white space refused. */
static int reference(const char *text, struct in_addr *out)
{
    if (text[0] == '\0' || strpbrk(text, " \t\n\v\f\r"))
        return DG_ERR_INVALID_ADDRESS;
    return inet_aton(text, out) ? 0 : DG_ERR_INVALID_ADDRESS;
}

static void agrees(const char *text)
{
    struct in_addr got = {0}, want = {0};
    int ret = dg__parse_ipv4(text, &got);
    int ref = reference(text, &want);
    cr_assert_eq(ret, ref, "\"%s\": %d, inet_aton says %d", text, ret, ref);
    if (ret == 0)
        cr_assert_eq(got.s_addr, want.s_addr, "\"%s\": %08x, inet_aton %08x", text,
                     ntohl(got.s_addr), ntohl(want.s_addr));
}

Test(parse_ipv4, dotted_quads_and_their_edges)
{
    static const char *const text[] = {
        "127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4", "10.200.30.4",
        "256.0.0.1", "1.2.3.256", "1.2.3.999", "1.2.3.1000", "1.2.3.0255",
        "010.0.0.1", "1.2.3.08", "1.2.3.00", "00.0.0.0", "0x7f.0.0.1", "127.1",
        "127.0.1", "2130706433", "0177.0.0.1", "1.2.3.4.", "1.2.3.4.5", ".1.2.3",
        "1..2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "1.2.3.4x",
        "1.2.3.-4", "+1.2.3.4", "1.2.3.4a", "localhost", "::1", "."};
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        agrees(text[i]);
}

Test(parse_ipv4, null_and_empty_are_refused)
{
    struct in_addr a;
    cr_assert_eq(dg__parse_ipv4(NULL, &a), DG_ERR_INVALID_ADDRESS);
    cr_assert_eq(dg__parse_ipv4("", &a), DG_ERR_INVALID_ADDRESS);
}

/* Random strings over the characters that matter, in dotted-quad shapes
 * most of the time: the fast path and inet_aton never disagree. */
Test(parse_ipv4, random_texts_agree_with_inet_aton)
{
    static const char alphabet[] = "0123456789.....x ";
    unsigned seed = 12345;
    char text[20];
    for (int n = 0; n < 200000; n++) {
        int len = 1 + rand_r(&seed) % 18;
        for (int i = 0; i < len; i++)
            text[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        text[len] = '\0';
        agrees(text);
    }
}

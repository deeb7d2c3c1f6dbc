/* How dgring widens the kernel's 32-bit drop counter into
 * dg_socket_stats.rx_kernel_drops (engine/dgram/dgram.h): readings come
 * from each datagram's SO_RXQ_OVFL and from SO_MEMINFO at stats and close
 * time, possibly out of order, and the counter wraps at 2^32. Only a step
 * forward modulo 2^32 (less than 2^31) counts. The kernel cannot be made to
 * wrap its counter in a test, so this reaches the internal fold directly
 * (static link); test_kernel_drops.c checks the real counts. */
#include <string.h>

#include <criterion/criterion.h>

#include "engine/dgram/dgram.h"

TestSuite(drop_counter);

static uint64_t fold(dg_socket *s, uint32_t raw)
{
    dg__socket_note_drops(s, raw);
    return s->stats.rx_kernel_drops;
}

Test(drop_counter, counts_forward_steps)
{
    dg_socket s;

    memset(&s, 0, sizeof(s));
    cr_assert_eq(fold(&s, 5), 5);
    cr_assert_eq(fold(&s, 5), 5, "the same reading twice counts once");
    cr_assert_eq(fold(&s, 12), 12);
}

Test(drop_counter, ignores_an_older_reading)
{
    dg_socket s;

    memset(&s, 0, sizeof(s));
    cr_assert_eq(fold(&s, 1000), 1000); /* SO_MEMINFO at stats time */
    cr_assert_eq(fold(&s, 990), 1000, "a datagram queued before carries an older count");
    cr_assert_eq(fold(&s, 1001), 1001);
}

Test(drop_counter, counts_across_the_wrap)
{
    dg_socket s;

    memset(&s, 0, sizeof(s));
    s.drops_seen = 0xfffffff0u;
    s.stats.rx_kernel_drops = 0xfffffff0u;
    cr_assert_eq(fold(&s, 0x10), 0x100000010ull, "16 before the wrap, 16 after");
    cr_assert_eq(s.drops_seen, 0x10u);
}

Test(drop_counter, ahead_without_folding)
{
    cr_assert_eq(dg__drops_ahead(7, 9), 2);
    cr_assert_eq(dg__drops_ahead(9, 7), 0);
    cr_assert_eq(dg__drops_ahead(0xffffffffu, 1), 2);
    cr_assert_eq(dg__drops_ahead(0, 0x80000000u), 0, "half the range away: taken as older");
}

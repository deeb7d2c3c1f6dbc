/* The provided buffer ring that multishot receives draw from.
 *
 * liburing 2.3 has io_uring_register_buf_ring() but not the allocation
 * helper that 2.4 added (io_uring_setup_buf_ring), so the descriptor ring
 * is mmap'd and registered here. Buffers go back to the kernel in batches:
 * dg__bufring_put() (inline, core.h) fills descriptors at a running tail,
 * dg__bufring_commit() publishes them all with one tail store per batch of
 * completions. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core.h"

static void *map_anonymous(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int dg__bufring_init(struct io_uring *ring, struct dg__bufring *br, unsigned count,
                     unsigned buf_size, uint16_t group)
{
    int ret = -ENOMEM;
    memset(br, 0, sizeof(*br));
    br->count = count;
    br->mask = (unsigned)io_uring_buf_ring_mask(count);
    br->buf_size = buf_size;
    br->stride = (buf_size + 63u) & ~63u; /* cache-line aligned buffers */
    br->group = group;
    br->ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
    br->mem_bytes = (size_t)count * br->stride;

    br->ring = map_anonymous(br->ring_bytes); /* the kernel wants it page aligned */
    if (!br->ring)
        goto fail;
    br->mem = map_anonymous(br->mem_bytes);   /* untouched pages stay non-resident */
    if (!br->mem)
        goto fail;

    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br->ring,
        .ring_entries = count,
        .bgid = group,
    };
    if (ring) {
        ret = io_uring_register_buf_ring(ring, &reg, 0);
        if (ret < 0)
            goto fail;
        br->registered = true;
    }

    io_uring_buf_ring_init(br->ring);
    /* Every descriptor written in full once (dg__bufring_put skips a slot
     * that holds its buffer already, and the mapping is zeroed). */
    for (unsigned bid = 0; bid < count; bid++)
        io_uring_buf_ring_add(br->ring, dg__bufring_addr(br, bid), buf_size, (unsigned short)bid,
                              br->mask, (int)bid);
    br->tail = count;
    dg__bufring_commit(br);
    return 0;

fail:
    dg__bufring_destroy(ring, br);
    return ret;
}

void dg__bufring_destroy(struct io_uring *ring, struct dg__bufring *br)
{
    if (br->registered && ring)
        io_uring_unregister_buf_ring(ring, br->group);
    if (br->mem)
        munmap(br->mem, br->mem_bytes);
    if (br->ring)
        munmap(br->ring, br->ring_bytes);
    memset(br, 0, sizeof(*br));
}

void dg__bufring_publish(struct dg__bufring *br)
{
    io_uring_buf_ring_advance(br->ring, (int)(br->tail - br->published));
    br->published = br->tail;
}

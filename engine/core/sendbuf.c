/* Engine send buffers (dg_send_buffer_get): a pool per loop that a user
 * writes datagrams into and sends without a copy (engine/dgram/send.c).
 * Mapped at the first take and, on io_uring, registered with the ring:
 * fixed buffers are what IORING_OP_SEND_ZC sends from without pinning
 * pages per send. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core.h"

static int sbuf_pool_init(struct dg__core *c)
{
    struct dg__sbuf_pool *p = &c->sbufs;
    unsigned count = c->options.send_buffers, size = c->options.send_buffer_size;
    size_t stride = ((size_t)size + 63u) & ~(size_t)63u; /* cache-line aligned */
    void *mem = mmap(NULL, (size_t)count * stride, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -ENOMEM;
    struct dg__sbuf *bufs = dg__calloc(count, sizeof(*bufs));
    if (!bufs) {
        munmap(mem, (size_t)count * stride);
        return -ENOMEM;
    }
    p->mem = mem;
    p->mem_bytes = (size_t)count * stride;
    p->bufs = bufs;
    p->count = count;
    for (unsigned i = count; i-- > 0;) {
        bufs[i].pub.data = p->mem + (size_t)i * stride;
        bufs[i].pub.capacity = size;
        bufs[i].state = DG__SBUF_FREE;
        bufs[i].next_free = p->free;
        p->free = &bufs[i];
    }
    /* Fixed buffers: what IORING_OP_SEND_ZC can send from without pinning
     * pages per send. Optional: without it there is no zero-copy, and
     * sends still copy nothing in user space. */
    p->registered = dg__ring_register_buffers(c, p->mem, p->mem_bytes);
    return 0;
}

void dg__sbuf_pool_destroy(struct dg__core *c)
{
    struct dg__sbuf_pool *p = &c->sbufs;
    if (p->mem)
        munmap(p->mem, p->mem_bytes);
    dg__free(p->bufs);
    memset(p, 0, sizeof(*p));
}

DG_EXPORT int dg_send_buffer_get(dg_loop *loop, dg_send_buffer **out)
{
    if (!loop || !out)
        return DG_ERR_INVALID_ARG_VALUE;
    struct dg__core *c = dg__core_of(loop);
    if (!c->sbufs.bufs) {
        int ret = sbuf_pool_init(c);
        if (ret < 0)
            return ret;
    }
    struct dg__sbuf *b = c->sbufs.free;
    if (!b)
        return -ENOBUFS;
    c->sbufs.free = b->next_free;
    b->state = DG__SBUF_USER;
    *out = &b->pub;
    return 0;
}

DG_EXPORT int dg_send_buffer_put(dg_loop *loop, dg_send_buffer *buf)
{
    struct dg__sbuf *b = loop ? dg__sbuf_owned(&dg__core_of(loop)->sbufs, buf) : NULL;
    if (!b)
        return DG_ERR_INVALID_ARG_VALUE;
    dg__sbuf_free(&dg__core_of(loop)->sbufs, b);
    return 0;
}

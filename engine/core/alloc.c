/* The replaceable allocator (dg_replace_allocator) and the dg__ wrappers
 * every engine and resolver allocation goes through. */
#include <ares.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static struct {
    dg_malloc_fn malloc_fn;
    dg_realloc_fn realloc_fn;
    dg_calloc_fn calloc_fn;
    dg_free_fn free_fn;
} allocator = {malloc, realloc, calloc, free};

/* Live objects that own library memory: loops (with everything allocated
 * for them: sockets, timers, requests, resolver state, posts to them),
 * groups and abort handles. Every block is allocated for one of them
 * while it exists and freed before it goes, so none live means no block
 * live, and dg_replace_allocator() refuses while any is: no block is ever
 * freed by an allocator that did not allocate it. Written when an owner
 * is created or destroyed, never per allocation: a group's threads
 * allocate without sharing a counter. */
static atomic_uint live_owners;
static bool ares_routed;

void dg__owner_hold(void)
{
    atomic_fetch_add_explicit(&live_owners, 1, memory_order_relaxed);
}

void dg__owner_release(void)
{
    atomic_fetch_sub_explicit(&live_owners, 1, memory_order_release);
}

void *dg__malloc(size_t size)
{
    return allocator.malloc_fn(size);
}

void *dg__calloc(size_t count, size_t size)
{
    return allocator.calloc_fn(count, size);
}

void *dg__realloc(void *ptr, size_t size)
{
    if (!ptr)
        return dg__malloc(size);
    if (size == 0) {
        /* c-ares may ask; give glibc's answer without relying on the
         * replacement's reading of it. */
        dg__free(ptr);
        return NULL;
    }
    return allocator.realloc_fn(ptr, size);
}

void dg__free(void *ptr)
{
    if (!ptr)
        return;
    /* A free never changes errno as seen by dgring's callers. */
    int saved = errno;
    allocator.free_fn(ptr);
    errno = saved;
}

char *dg__strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = dg__malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

DG_EXPORT int dg_replace_allocator(dg_malloc_fn malloc_fn, dg_realloc_fn realloc_fn,
                                   dg_calloc_fn calloc_fn, dg_free_fn free_fn)
{
    if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
        return DG_ERR_INVALID_ARG_VALUE;
    if (atomic_load_explicit(&live_owners, memory_order_acquire) != 0)
        return -EBUSY;
    if (!ares_routed) {
        /* c-ares keeps one allocator per process; pointing it at the
         * wrappers once makes it follow every later replacement. */
        if (ares_library_init_mem(ARES_LIB_INIT_ALL, dg__malloc, dg__free, dg__realloc) !=
            ARES_SUCCESS)
            return -ENOMEM;
        ares_routed = true;
    }
    allocator.malloc_fn = malloc_fn;
    allocator.realloc_fn = realloc_fn;
    allocator.calloc_fn = calloc_fn;
    allocator.free_fn = free_fn;
    return 0;
}

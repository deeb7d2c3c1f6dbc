/* dgring: a replaceable memory allocator.
 *
 * Every block dgring allocates (loops, sockets, send requests, timers,
 * resolver state, groups, abort handles) and every block c-ares allocates
 * for dgring's resolver goes through four functions, the C library's by
 * default. A program may swap in its own, for accounting, arenas or
 * fault-injection tests, the way libuv's uv_replace_allocator() works.
 */
#ifndef DGRING_ALLOC_H
#define DGRING_ALLOC_H

#include <stddef.h>

#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(*dg_malloc_fn)(size_t size);
typedef void *(*dg_realloc_fn)(void *ptr, size_t size);
typedef void *(*dg_calloc_fn)(size_t count, size_t size);
typedef void (*dg_free_fn)(void *ptr);

/* Replaces the allocator. The functions must behave as their C library
 * namesakes (malloc, realloc, calloc, free): realloc(NULL, n) allocates,
 * free(NULL) does nothing, a failure returns NULL. They may be called
 * from any thread that runs a dgring loop or group.
 * Allowed only while no block from the current allocator is live: before
 * the first dg_loop_new(), dg_abort_new() or dg_group_start(), or after
 * everything was closed, freed or joined again. Not thread-safe with any
 * other dgring call.
 * The first call also hands these functions to c-ares
 * (ares_library_init_mem), process-wide: if the program uses c-ares itself,
 * call this before it creates any c-ares channel, and call it again only
 * once those channels are destroyed (dgring does not count their memory).
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (a NULL function; nothing changes),
 * or -EBUSY (memory from the current allocator is still live: a loop,
 * abort handle or group exists; nothing changes). */
DG_EXPORT int dg_replace_allocator(dg_malloc_fn malloc_fn, dg_realloc_fn realloc_fn,
                                   dg_calloc_fn calloc_fn, dg_free_fn free_fn);

#ifdef __cplusplus
}
#endif

#endif

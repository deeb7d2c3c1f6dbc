/* Shared by the fuzz targets in tests/fuzz/ and their replay driver. */
#ifndef DGRING_TESTS_FUZZ_H
#define DGRING_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property: report it and abort, which both libFuzzer and the
 * replay driver count as a crash. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* The next datagram of an input made of datagrams, each a length byte
 * then that many bytes (the last one takes what is left): a heap copy of
 * exactly its size (so a read past it is caught), its size in *length.
 * Advances *data and *size; aborts when out of memory. NULL at the end. */
static inline uint8_t *fuzz_next_datagram(const uint8_t **data, size_t *size, size_t *length)
{
    if (*size == 0)
        return NULL;
    size_t n = (*data)[0];
    if (n > *size - 1)
        n = *size - 1;
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, *data + 1, n);
    *data += 1 + n;
    *size -= 1 + n;
    *length = n;
    return copy;
}

#endif

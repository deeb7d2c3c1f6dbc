/* dgcat's stdin reader: bytes in, datagrams out. See cat.h. */
#include "cat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room for one largest datagram plus one read's worth after it, so a
 * read always has space once complete datagrams are emitted. */
#define INPUT_READ_SIZE 65536
#define INPUT_CAPACITY (TOOL_MAX_PAYLOAD + INPUT_READ_SIZE)

int cat_input_init(cat_input *input, const cat_config *config)
{
    memset(input, 0, sizeof(*input));
    input->buffer = malloc(INPUT_CAPACITY);
    if (input->buffer == NULL)
        return -ENOMEM;
    input->capacity = INPUT_CAPACITY;
    input->raw_size = config->raw_size;
    input->keep_newline = config->keep_newline;
    return 0;
}

void cat_input_free(cat_input *input)
{
    free(input->buffer);
    input->buffer = NULL;
}

/* The size of the next datagram at the start of the buffer and how many
 * buffered bytes it uses up, or false if none is complete yet. */
static bool next_datagram(const cat_input *input, size_t *send, size_t *consume)
{
    const unsigned char *newline;
    size_t limit = input->length < TOOL_MAX_PAYLOAD ? input->length : TOOL_MAX_PAYLOAD;

    if (input->raw_size > 0) {
        if (input->length < input->raw_size && !(input->eof && input->length > 0))
            return false;
        *send = *consume = input->length < input->raw_size ? input->length : input->raw_size;
        return true;
    }
    newline = memchr(input->buffer, '\n', limit);
    if (newline != NULL) {
        *consume = (size_t)(newline - input->buffer) + 1;
        *send = input->keep_newline ? *consume : *consume - 1;
        return true;
    }
    /* A line longer than a datagram is split; the rest at EOF is sent. */
    if (limit == TOOL_MAX_PAYLOAD || (input->eof && input->length > 0)) {
        *send = *consume = limit;
        return true;
    }
    return false;
}

bool cat_input_emit(cat_input *input, cat_emit_fn emit, void *ctx)
{
    size_t start = 0, send, consume;
    bool drained = false;

    while (true) {
        cat_input view = *input;
        view.buffer += start;
        view.length -= start;
        if (!next_datagram(&view, &send, &consume)) {
            drained = true;
            break;
        }
        if (!emit(view.buffer, send, ctx))
            break;
        start += consume;
    }
    memmove(input->buffer, input->buffer + start, input->length - start);
    input->length -= start;
    return drained;
}

int cat_input_read(cat_input *input, int fd, cat_emit_fn emit, void *ctx)
{
    ssize_t got;

    /* After a complete emit less than one datagram is buffered, so the
     * read always has INPUT_READ_SIZE bytes of room. */
    got = read(fd, input->buffer + input->length, INPUT_READ_SIZE);
    if (got < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if (got == 0)
        input->eof = true;
    input->length += (size_t)got;
    cat_input_emit(input, emit, ctx);
    return 0;
}

bool cat_input_done(const cat_input *input)
{
    return input->eof && input->length == 0;
}

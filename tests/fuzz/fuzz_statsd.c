/* Fuzz target: dgstatsd's line parser and aggregation
 * (tools/examples/statsd.c), which take every datagram from the network.
 *
 * Input: byte 0 is the metric cap (0-15); the rest is a sequence of
 * datagrams, each a length byte then that many bytes (the last takes what
 * is left), each copied to a heap block of exactly its size. Every
 * datagram is fed to a store, and every line of it also to
 * statsd_parse_line on its own heap copy:
 *   - a line counts as parsed exactly when statsd_parse_line accepts it,
 *     and then it gave at least one value, each of a known type with a
 *     finite value and a sample rate in (0, 1]; a rejected line gave none;
 *   - lines + bad_lines is the number of non-empty lines fed;
 *   - the store never keeps more metrics than its cap, and refuses a
 *     value (counted as dropped) only when it is full;
 *   - each flush writes one line, a JSON object, and resets the counts.
 * Every few datagrams the store is flushed, as dgstatsd's timer does. */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "tools/examples/statsd.h"

typedef struct line_check {
    size_t values;
} line_check;

static void on_value(const char *name, size_t name_length, const statsd_sample *sample,
                     void *ctx)
{
    line_check *check = ctx;

    FUZZ_CHECK(name != NULL && name_length > 0 && name_length <= STATSD_MAX_NAME);
    FUZZ_CHECK(sample->type == STATSD_COUNTER || sample->type == STATSD_GAUGE ||
               sample->type == STATSD_TIMER);
    FUZZ_CHECK(isfinite(sample->value));
    FUZZ_CHECK(sample->sample_rate > 0 && sample->sample_rate <= 1);
    check->values++;
}

/* Parses each line of the datagram on its own; returns how many lines are
 * non-empty and how many of them parse. */
static void parse_lines(const uint8_t *data, size_t size, uint64_t *lines, uint64_t *good)
{
    while (size > 0) {
        const uint8_t *newline = memchr(data, '\n', size);
        size_t line = newline ? (size_t)(newline - data) : size;
        size_t content = line > 0 && data[line - 1] == '\r' ? line - 1 : line;
        if (content > 0) {
            char *copy = malloc(content);
            if (!copy)
                abort();
            memcpy(copy, data, content);
            line_check check = {0};
            bool ok = statsd_parse_line(copy, content, on_value, &check);
            FUZZ_CHECK(ok ? check.values > 0 : check.values == 0);
            free(copy);
            (*lines)++;
            *good += ok;
        }
        data += line + (newline != NULL);
        size -= line + (newline != NULL);
    }
}

static void flush(statsd_store *store)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);

    if (!out)
        abort();
    FUZZ_CHECK(statsd_flush(store, out, 1, 1) == 0);
    fclose(out);
    FUZZ_CHECK(length >= 3 && text[0] == '{' && text[length - 2] == '}' &&
               text[length - 1] == '\n');
    FUZZ_CHECK(memchr(text, '\n', length) == text + length - 1);
    FUZZ_CHECK(store->counts.datagrams == 0 && store->counts.lines == 0);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    statsd_store store;
    uint64_t lines = 0, good = 0;
    unsigned fed = 0;

    if (size < 1)
        return 0;
    FUZZ_CHECK(statsd_init(&store, data[0] % 16) == 0);
    data++;
    size--;
    size_t n;
    for (uint8_t *copy; (copy = fuzz_next_datagram(&data, &size, &n)) != NULL;) {
        uint64_t dropped = store.counts.dropped;
        parse_lines(copy, n, &lines, &good);
        FUZZ_CHECK(statsd_feed(&store, copy, n) == 0);
        FUZZ_CHECK(store.counts.dropped == dropped || store.used == store.max_metrics);
        free(copy);
        FUZZ_CHECK(store.used <= store.max_metrics);
        FUZZ_CHECK(store.counts.lines == good && store.counts.lines + store.counts.bad_lines == lines);
        if (++fed % 4 == 0) {
            flush(&store);
            lines = good = 0;
        }
    }
    flush(&store);
    statsd_free(&store);
    return 0;
}

/* The statsd protocol and its aggregation, for the dgstatsd example.
 *
 * A statsd datagram holds one or more lines separated by '\n'; a line is
 *
 *     name:value|type[|@sample_rate][|#tags]
 *
 * with type c (counter), g (gauge; a value with a leading sign changes
 * the gauge by that much), ms (timer) or h (histogram, kept as a timer).
 * Several values may share a name: "name:1|c:2|c". Tags (DogStatsD) are
 * accepted and ignored.
 *
 * Aggregation between two flushes: counters add value / sample_rate;
 * gauges keep their last value across flushes; timers keep their samples
 * and report count (weighted by 1 / sample_rate), min, max, mean and the
 * nearest-rank p50, p90 and p99. Nothing here knows about sockets: the
 * example feeds datagrams in and writes flushes out.
 */
#ifndef DGRING_EXAMPLES_STATSD_H
#define DGRING_EXAMPLES_STATSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STATSD_MAX_NAME 200

typedef enum statsd_type {
    STATSD_COUNTER,
    STATSD_GAUGE,
    STATSD_TIMER,
} statsd_type;

/* One parsed value of a line. */
typedef struct statsd_sample {
    statsd_type type;
    double value;
    double sample_rate;  /* (0, 1]; 1 when the line has none */
    bool gauge_delta;    /* a gauge value written with a sign: +5, -3 */
} statsd_sample;

typedef struct statsd_metric statsd_metric;

/* Counts of what arrived since the last flush. */
typedef struct statsd_counts {
    uint64_t datagrams;
    uint64_t lines;        /* lines that parsed */
    uint64_t bad_lines;    /* lines that did not, or were not statsd */
    uint64_t dropped;      /* values for new names beyond max_metrics */
} statsd_counts;

/* The aggregation state. Zero-initialise, then statsd_init(). */
typedef struct statsd_store {
    statsd_metric **slots;  /* open addressing by (type, name) */
    size_t capacity;        /* a power of two */
    size_t used;
    size_t max_metrics;
    uint64_t refused;       /* values refused for new names, ever (counts.dropped
                               is the interval's share) */
    statsd_counts counts;
} statsd_store;

/* Returns 0 or -ENOMEM. max_metrics bounds the distinct (type, name)
 * pairs kept, so a flood of new names cannot exhaust memory. */
int statsd_init(statsd_store *store, size_t max_metrics);
void statsd_free(statsd_store *store);

/* Parses the values of one line (no '\n' inside), calling add for each.
 * Returns false, having called add for none, if the line is malformed. */
bool statsd_parse_line(const char *line, size_t length,
                       void (*add)(const char *name, size_t name_length,
                                   const statsd_sample *sample, void *ctx),
                       void *ctx);

/* Feeds one datagram (length bytes, not NUL-terminated): every line is
 * parsed and aggregated. Returns 0 or -ENOMEM. */
int statsd_feed(statsd_store *store, const void *data, size_t length);

/* Writes the aggregates of the interval as one JSON object on one line
 * (timestamp_ms, interval_ms, the counts, metrics: the distinct metrics
 * kept, counters, gauges, timers; names sorted), then resets counters, timers and counts. Gauges stay. Returns
 * 0, -ENOMEM, or -EIO if out failed. */
int statsd_flush(statsd_store *store, FILE *out, uint64_t timestamp_ms, uint64_t interval_ms);

#endif

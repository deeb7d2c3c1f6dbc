/* statsd parsing and aggregation; see statsd.h. */
#include "statsd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES_PER_LINE 32
#define MAX_FIELD 64

struct statsd_metric {
    statsd_type type;
    bool touched;          /* counters, timers: updated since the last flush;
                              gauges: ever set */
    double value;          /* counter sum, gauge value */
    double weight;         /* timer: sum of 1 / sample_rate */
    double *samples;       /* timer values of this interval */
    size_t count;
    size_t capacity;
    char name[];           /* NUL-terminated */
};

/* ---- Parsing -------------------------------------------------------------- */

/* Copies [start, start + length) into buffer as a C string. False if it
 * does not fit. */
static bool copy_field(const char *start, size_t length, char *buffer, size_t size)
{
    if (length >= size)
        return false;
    memcpy(buffer, start, length);
    buffer[length] = '\0';
    return true;
}

/* A finite number and nothing else. */
static bool parse_number(const char *text, size_t length, double *out)
{
    char buffer[MAX_FIELD];
    char *end;

    if (length == 0 || !copy_field(text, length, buffer, sizeof(buffer)) || buffer[0] == ' ')
        return false;
    *out = strtod(buffer, &end);
    return *end == '\0' && isfinite(*out);
}

static bool parse_type(const char *text, size_t length, statsd_type *out)
{
    if (length == 1 && text[0] == 'c')
        *out = STATSD_COUNTER;
    else if (length == 1 && text[0] == 'g')
        *out = STATSD_GAUGE;
    else if ((length == 2 && memcmp(text, "ms", 2) == 0) ||
             (length == 1 && (text[0] == 'h' || text[0] == 'd')))
        *out = STATSD_TIMER;
    else
        return false;
    return true;
}

/* The fields after the type: "@rate" and "#tags", in any order. */
static bool parse_options(const char *text, size_t length, statsd_sample *sample)
{
    while (length > 0) {
        const char *bar = memchr(text, '|', length);
        size_t field = bar != NULL ? (size_t)(bar - text) : length;
        if (field > 0 && text[0] == '@') {
            if (!parse_number(text + 1, field - 1, &sample->sample_rate) ||
                sample->sample_rate <= 0 || sample->sample_rate > 1)
                return false;
        } else if (field == 0 || text[0] != '#') {
            return false;
        }
        text += field + (bar != NULL);
        length -= field + (bar != NULL);
    }
    return true;
}

/* One "value|type[|@rate][|#tags]" part of a line. */
static bool parse_value(const char *text, size_t length, statsd_sample *sample)
{
    const char *bar = memchr(text, '|', length);
    const char *type, *rest;
    size_t type_length;

    if (bar == NULL)
        return false;
    type = bar + 1;
    rest = memchr(type, '|', length - (size_t)(type - text));
    type_length = rest != NULL ? (size_t)(rest - type) : length - (size_t)(type - text);
    memset(sample, 0, sizeof(*sample));
    sample->sample_rate = 1;
    if (!parse_number(text, (size_t)(bar - text), &sample->value) ||
        !parse_type(type, type_length, &sample->type))
        return false;
    sample->gauge_delta = sample->type == STATSD_GAUGE && (text[0] == '+' || text[0] == '-');
    if (rest == NULL)
        return true;
    return parse_options(rest + 1, length - (size_t)(rest + 1 - text), sample);
}

/* The length of the value part at text: up to the ':' that starts the
 * next value, or the end of the line. A "#tags" field may hold ':' itself
 * (DogStatsD's "#env:prod"), so inside one only '|' ends the field. */
static size_t part_length(const char *text, size_t length)
{
    bool in_tags = false;
    size_t i;

    for (i = 0; i < length; i++) {
        if (text[i] == '|')
            in_tags = i + 1 < length && text[i + 1] == '#';
        else if (text[i] == ':' && !in_tags)
            break;
    }
    return i;
}

bool statsd_parse_line(const char *line, size_t length,
                       void (*add)(const char *name, size_t name_length,
                                   const statsd_sample *sample, void *ctx),
                       void *ctx)
{
    statsd_sample samples[MAX_VALUES_PER_LINE];
    const char *colon = memchr(line, ':', length);
    size_t name_length = colon != NULL ? (size_t)(colon - line) : 0;
    size_t count = 0, at = name_length + 1;

    if (name_length == 0 || name_length > STATSD_MAX_NAME || memchr(line, '|', name_length))
        return false;
    while (at <= length) {
        const char *part = line + at;
        size_t part_size = part_length(part, length - at);
        if (count == MAX_VALUES_PER_LINE || !parse_value(part, part_size, &samples[count]))
            return false;
        count++;
        at += part_size + 1;
    }
    for (size_t i = 0; i < count; i++)
        add(line, name_length, &samples[i], ctx);
    return count > 0;
}

/* ---- The store ------------------------------------------------------------ */

int statsd_init(statsd_store *store, size_t max_metrics)
{
    size_t capacity = 64;

    while (capacity < max_metrics * 2 && capacity < ((size_t)1 << 30))
        capacity *= 2;
    memset(store, 0, sizeof(*store));
    store->slots = calloc(capacity, sizeof(*store->slots));
    if (store->slots == NULL)
        return -ENOMEM;
    store->capacity = capacity;
    store->max_metrics = max_metrics;
    return 0;
}

void statsd_free(statsd_store *store)
{
    for (size_t i = 0; i < store->capacity; i++) {
        if (store->slots[i] != NULL) {
            free(store->slots[i]->samples);
            free(store->slots[i]);
        }
    }
    free(store->slots);
    store->slots = NULL;
}

/* FNV-1a of the type and the name. */
static size_t metric_hash(statsd_type type, const char *name, size_t length)
{
    uint64_t hash = 14695981039346656037u ^ (uint64_t)type;

    hash *= 1099511628211u;
    for (size_t i = 0; i < length; i++) {
        hash ^= (unsigned char)name[i];
        hash *= 1099511628211u;
    }
    return (size_t)hash;
}

/* The slot of (type, name): its metric, or the empty slot it would go in.
 * The table is at most half full, so an empty slot always exists. */
static statsd_metric **find_slot(statsd_store *store, statsd_type type, const char *name,
                                 size_t length)
{
    size_t mask = store->capacity - 1;
    size_t i = metric_hash(type, name, length) & mask;

    for (;; i = (i + 1) & mask) {
        statsd_metric *metric = store->slots[i];
        if (metric == NULL ||
            (metric->type == type && strlen(metric->name) == length &&
             memcmp(metric->name, name, length) == 0))
            return &store->slots[i];
    }
}

/* The metric (type, name), created if new. NULL if the store is full
 * (counted as dropped) or memory ran out (*oom set). */
static statsd_metric *metric_get(statsd_store *store, statsd_type type, const char *name,
                                 size_t length, bool *oom)
{
    statsd_metric **slot = find_slot(store, type, name, length);
    statsd_metric *metric;

    if (*slot != NULL)
        return *slot;
    if (store->used >= store->max_metrics) {
        store->counts.dropped++;
        store->refused++;
        return NULL;
    }
    metric = calloc(1, sizeof(*metric) + length + 1);
    if (metric == NULL) {
        *oom = true;
        return NULL;
    }
    metric->type = type;
    memcpy(metric->name, name, length);
    *slot = metric;
    store->used++;
    return metric;
}

static int timer_push(statsd_metric *metric, double value)
{
    if (metric->count == metric->capacity) {
        size_t capacity = metric->capacity ? metric->capacity * 2 : 16;
        double *samples = realloc(metric->samples, capacity * sizeof(*samples));
        if (samples == NULL)
            return -ENOMEM;
        metric->samples = samples;
        metric->capacity = capacity;
    }
    metric->samples[metric->count++] = value;
    return 0;
}

typedef struct feed_context {
    statsd_store *store;
    bool oom;
} feed_context;

/* statsd_parse_line's add: aggregates one value. */
static void aggregate(const char *name, size_t length, const statsd_sample *sample, void *ctx)
{
    feed_context *feed = ctx;
    statsd_metric *metric = metric_get(feed->store, sample->type, name, length, &feed->oom);

    if (metric == NULL)
        return;
    if (sample->type == STATSD_COUNTER) {
        metric->value += sample->value / sample->sample_rate;
    } else if (sample->type == STATSD_GAUGE) {
        metric->value = sample->gauge_delta ? metric->value + sample->value : sample->value;
    } else {
        if (timer_push(metric, sample->value) < 0) {
            feed->oom = true;
            return;
        }
        metric->weight += 1 / sample->sample_rate;
    }
    metric->touched = true;
}

int statsd_feed(statsd_store *store, const void *data, size_t length)
{
    feed_context feed = {.store = store};
    const char *text = data;

    store->counts.datagrams++;
    while (length > 0) {
        const char *newline = memchr(text, '\n', length);
        size_t line = newline != NULL ? (size_t)(newline - text) : length;
        size_t content = line > 0 && text[line - 1] == '\r' ? line - 1 : line;
        if (content > 0 && statsd_parse_line(text, content, aggregate, &feed))
            store->counts.lines++;
        else if (content > 0)
            store->counts.bad_lines++;
        text += line + (newline != NULL);
        length -= line + (newline != NULL);
    }
    return feed.oom ? -ENOMEM : 0;
}

/* ---- Flushing ------------------------------------------------------------- */

static int compare_names(const void *a, const void *b)
{
    const statsd_metric *x = *(statsd_metric *const *)a;
    const statsd_metric *y = *(statsd_metric *const *)b;

    return strcmp(x->name, y->name);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* A JSON number; a sum that overflowed to infinity prints as null. */
static void put_number(FILE *out, double value)
{
    if (isfinite(value))
        fprintf(out, "%.15g", value);
    else
        fputs("null", out);
}

static void put_name(FILE *out, const char *name)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputs("\":", out);
}

/* Nearest rank: the smallest sample with at least per_cent% at or below. */
static double percentile(const statsd_metric *metric, unsigned per_cent)
{
    size_t rank = (metric->count * per_cent + 99) / 100;

    return metric->samples[rank > 0 ? rank - 1 : 0];
}

static void put_timer(FILE *out, statsd_metric *metric)
{
    double sum = 0;

    qsort(metric->samples, metric->count, sizeof(double), compare_doubles);
    for (size_t i = 0; i < metric->count; i++)
        sum += metric->samples[i];
    fputs("{\"count\":", out);
    put_number(out, metric->weight);
    fputs(",\"min\":", out);
    put_number(out, metric->samples[0]);
    fputs(",\"max\":", out);
    put_number(out, metric->samples[metric->count - 1]);
    fputs(",\"mean\":", out);
    put_number(out, sum / (double)metric->count);
    fputs(",\"p50\":", out);
    put_number(out, percentile(metric, 50));
    fputs(",\"p90\":", out);
    put_number(out, percentile(metric, 90));
    fputs(",\"p99\":", out);
    put_number(out, percentile(metric, 99));
    fputc('}', out);
}

/* ,"key":{...} with the touched metrics of type, sorted by name. */
static int put_section(statsd_store *store, FILE *out, const char *key, statsd_type type)
{
    statsd_metric **list = malloc((store->used + 1) * sizeof(*list));
    size_t count = 0;

    if (list == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < store->capacity; i++) {
        statsd_metric *metric = store->slots[i];
        if (metric != NULL && metric->type == type && metric->touched)
            list[count++] = metric;
    }
    qsort(list, count, sizeof(*list), compare_names);
    fprintf(out, ",\"%s\":{", key);
    for (size_t i = 0; i < count; i++) {
        fputs(i > 0 ? "," : "", out);
        put_name(out, list[i]->name);
        if (type == STATSD_TIMER)
            put_timer(out, list[i]);
        else
            put_number(out, list[i]->value);
    }
    fputc('}', out);
    free(list);
    return 0;
}

/* Starts the next interval: counters and timers empty, gauges kept. */
static void reset_interval(statsd_store *store)
{
    for (size_t i = 0; i < store->capacity; i++) {
        statsd_metric *metric = store->slots[i];
        if (metric == NULL || metric->type == STATSD_GAUGE)
            continue;
        metric->touched = false;
        metric->value = 0;
        metric->weight = 0;
        metric->count = 0;
    }
    memset(&store->counts, 0, sizeof(store->counts));
}

int statsd_flush(statsd_store *store, FILE *out, uint64_t timestamp_ms, uint64_t interval_ms)
{
    const statsd_counts *c = &store->counts;
    int rc;

    fprintf(out,
            "{\"timestamp_ms\":%llu,\"interval_ms\":%llu,\"datagrams\":%llu,\"lines\":%llu,"
            "\"bad_lines\":%llu,\"dropped\":%llu,\"metrics\":%llu",
            (unsigned long long)timestamp_ms, (unsigned long long)interval_ms,
            (unsigned long long)c->datagrams, (unsigned long long)c->lines,
            (unsigned long long)c->bad_lines, (unsigned long long)c->dropped,
            (unsigned long long)store->used);
    rc = put_section(store, out, "counters", STATSD_COUNTER);
    if (rc == 0)
        rc = put_section(store, out, "gauges", STATSD_GAUGE);
    if (rc == 0)
        rc = put_section(store, out, "timers", STATSD_TIMER);
    fputs("}\n", out);
    reset_interval(store);
    if (fflush(out) != 0 || ferror(out))
        return -EIO;
    return rc;
}

/* What dgring-impair did, per flow and in total: text (or, with --json,
 * JSON lines) on stdout, and JSON lines in the --report file. The JSON
 * keys are the counter names of impair.h with "up_" or "down_" in front. */
#include "impair.h"

#include <string.h>

typedef struct counter {
    const char *name;
    size_t offset;
} counter;

#define IMPAIR_COUNTER_ROW(name) {#name, offsetof(impair_counts, name)},
static const counter counters[] = {IMPAIR_COUNTERS(IMPAIR_COUNTER_ROW)};
#undef IMPAIR_COUNTER_ROW

#define COUNTER_COUNT (sizeof(counters) / sizeof(counters[0]))
#define DROPPED_PREFIX "dropped_"

static uint64_t *counter_at(impair_counts *c, size_t i)
{
    return (uint64_t *)(void *)((char *)c + counters[i].offset);
}

static uint64_t counter_value(const impair_counts *c, size_t i)
{
    return *counter_at((impair_counts *)c, i);
}

static bool is_drop(size_t i)
{
    return strncmp(counters[i].name, DROPPED_PREFIX, strlen(DROPPED_PREFIX)) == 0;
}

void impair_counts_add(impair_counts *sum, const impair_counts *c)
{
    for (size_t i = 0; i < COUNTER_COUNT; i++)
        *counter_at(sum, i) += counter_value(c, i);
}

static const char *const direction_names[IMPAIR_DIRECTIONS] = {"up", "down"};

static void json_counts(tool_json *json, const impair_counts counts[IMPAIR_DIRECTIONS])
{
    char key[64];

    for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++) {
        for (size_t i = 0; i < COUNTER_COUNT; i++) {
            snprintf(key, sizeof(key), "%s_%s", direction_names[which], counters[i].name);
            tool_json_uint(json, key, counter_value(&counts[which], i));
        }
    }
}

/* "  up   received 10 (100 bytes), forwarded 9, ..., dropped 1 (loss 1),
 * send errors 0": the drop causes that happened, in brackets. */
static void text_counts(FILE *out, const char *label, const impair_counts *c)
{
    uint64_t dropped = 0;
    const char *separator = " (";

    for (size_t i = 0; i < COUNTER_COUNT; i++)
        dropped += is_drop(i) ? counter_value(c, i) : 0;
    fprintf(out,
            "  %-4s received %llu (%llu bytes), forwarded %llu, duplicated %llu, corrupted %llu, "
            "delayed %llu, reordered %llu, dropped %llu",
            label, (unsigned long long)c->received, (unsigned long long)c->bytes,
            (unsigned long long)c->forwarded, (unsigned long long)c->duplicated,
            (unsigned long long)c->corrupted, (unsigned long long)c->delayed,
            (unsigned long long)c->reordered, (unsigned long long)dropped);
    for (size_t i = 0; i < COUNTER_COUNT; i++) {
        if (!is_drop(i) || counter_value(c, i) == 0)
            continue;
        fprintf(out, "%s%s %llu", separator, counters[i].name + strlen(DROPPED_PREFIX),
                (unsigned long long)counter_value(c, i));
        separator = ", ";
    }
    fprintf(out, "%s, send errors %llu\n", dropped > 0 ? ")" : "",
            (unsigned long long)c->send_errors);
}

static void json_flow(FILE *out, const impair_flow *f, const dg_address *client)
{
    impair_counts counts[IMPAIR_DIRECTIONS] = {f->dir[IMPAIR_UP].counts,
                                               f->dir[IMPAIR_DOWN].counts};
    tool_json json;

    tool_json_begin(&json, out);
    tool_json_uint(&json, "flow", f->number);
    tool_json_string(&json, "client", client->address);
    tool_json_uint(&json, "client_port", (uint64_t)client->port);
    tool_json_string(&json, "end", f->evicted ? "evicted" : "exit");
    json_counts(&json, counts);
    tool_json_end(&json);
}

void impair_report_flow(impair_proxy *p, const impair_flow *f)
{
    dg_address client = {.address = "?"};

    (void)dg_address_from_sockaddr((const struct sockaddr *)&f->client, f->client_len, &client);
    if (p->config->json) {
        json_flow(stdout, f, &client);
    } else {
        printf("flow %llu %s%s%s:%d (%s)\n", (unsigned long long)f->number,
               client.family == AF_INET6 ? "[" : "", client.address,
               client.family == AF_INET6 ? "]" : "", client.port,
               f->evicted ? "evicted" : "exit");
        for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++)
            text_counts(stdout, direction_names[which], &f->dir[which].counts);
        fflush(stdout);
    }
    if (p->report != NULL)
        json_flow(p->report, f, &client);
}

static void json_totals(FILE *out, const impair_proxy *p)
{
    tool_json json;

    tool_json_begin(&json, out);
    tool_json_string(&json, "mode", "impair");
    tool_json_string(&json, "backend", p->backend);
    tool_json_uint(&json, "seed", p->config->seed);
    tool_json_uint(&json, "flows", p->flows_created);
    tool_json_uint(&json, "evictions", p->evictions);
    tool_json_uint(&json, "max_flows", p->config->max_flows);
    tool_json_uint(&json, "stray", p->stray);
    tool_json_uint(&json, "up_kernel_drops", p->kernel_drops[IMPAIR_UP]);
    tool_json_uint(&json, "down_kernel_drops", p->kernel_drops[IMPAIR_DOWN]);
    json_counts(&json, p->total);
    tool_json_end(&json);
}

void impair_report_totals(impair_proxy *p)
{
    if (p->config->json) {
        json_totals(stdout, p);
    } else {
        printf("total: %llu flows (%llu evicted), %llu stray datagrams, kernel drops before "
               "the proxy up %llu down %llu, seed %llu [%s]\n",
               (unsigned long long)p->flows_created, (unsigned long long)p->evictions,
               (unsigned long long)p->stray, (unsigned long long)p->kernel_drops[IMPAIR_UP],
               (unsigned long long)p->kernel_drops[IMPAIR_DOWN],
               (unsigned long long)p->config->seed, p->backend);
        for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++)
            text_counts(stdout, direction_names[which], &p->total[which]);
        fflush(stdout);
    }
    if (p->report != NULL)
        json_totals(p->report, p);
}

/* dgblast recv's senders: a bounded table of flows, see blast.h.
 *
 * The flows live in one array of `capacity` entries; a hash index of
 * twice as many slots (linear probing, entries removed by backward shift)
 * finds them, and a list through the entries in the order they were last
 * heard from picks the one to evict. Per datagram: one hash, a probe or
 * two, and moving the flow to the front of the list. */
#include "blast.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct flow_key {
    uint32_t sender;
    uint16_t port;         /* network order, as in the sockaddr */
    uint16_t family;
    unsigned char address[16];
} flow_key;

struct blast_flow {
    flow_key key;
    uint32_t hash;
    uint32_t newer, older; /* the recency list; NONE at its ends */
    uint64_t base;         /* the first sequence number counted */
    uint64_t max_seq;
    uint64_t received;     /* distinct sequence numbers */
    uint64_t reordered;
    uint64_t duplicates;
    uint64_t seen[BLAST_SEQ_WINDOW / 64]; /* bit seq % BLAST_SEQ_WINDOW: seq
                                             received, for the window of
                                             sequence numbers up to max_seq */
};

int blast_flows_init(blast_flows *flows, uint32_t capacity)
{
    uint32_t slots = 2;

    memset(flows, 0, sizeof(*flows));
    if (capacity == 0 || capacity > BLAST_FLOWS_MAX)
        return -EINVAL;
    while (slots < 2 * capacity)
        slots *= 2;
    flows->flows = calloc(capacity, sizeof(*flows->flows));
    flows->slots = calloc(slots, sizeof(*flows->slots));
    if (flows->flows == NULL || flows->slots == NULL) {
        blast_flows_free(flows);
        return -ENOMEM;
    }
    flows->mask = slots - 1;
    flows->capacity = capacity;
    flows->newest = flows->oldest = NONE;
    flows->seed = ((uint64_t)blast_sender_id() << 32 | blast_sender_id()) | 1;
    return 0;
}

void blast_flows_free(blast_flows *flows)
{
    free(flows->flows);
    free(flows->slots);
    flows->flows = NULL;
    flows->slots = NULL;
}

/* The key of a datagram: unknown families key on the sender id alone. */
static void make_key(flow_key *key, const struct sockaddr *from, uint32_t sender)
{
    memset(key, 0, sizeof(*key));
    key->sender = sender;
    if (from == NULL)
        return;
    key->family = (uint16_t)from->sa_family;
    if (from->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)from;
        key->port = in->sin_port;
        memcpy(key->address, &in->sin_addr, sizeof(in->sin_addr));
    } else if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)from;
        key->port = in6->sin6_port;
        memcpy(key->address, &in6->sin6_addr, sizeof(in6->sin6_addr));
    }
}

/* FNV-1a over the key, started from the table's random seed. */
static uint32_t hash_key(const blast_flows *flows, const flow_key *key)
{
    const unsigned char *bytes = (const unsigned char *)key;
    uint64_t h = 0xcbf29ce484222325u ^ flows->seed;

    for (size_t i = 0; i < sizeof(*key); i++) {
        h ^= bytes[i];
        h *= 0x100000001b3u;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* ---- The recency list ------------------------------------------------- */

static void list_unlink(blast_flows *flows, uint32_t i)
{
    blast_flow *f = &flows->flows[i];

    if (f->newer != NONE)
        flows->flows[f->newer].older = f->older;
    else
        flows->newest = f->older;
    if (f->older != NONE)
        flows->flows[f->older].newer = f->newer;
    else
        flows->oldest = f->newer;
}

static void list_push_newest(blast_flows *flows, uint32_t i)
{
    blast_flow *f = &flows->flows[i];

    f->newer = NONE;
    f->older = flows->newest;
    if (flows->newest != NONE)
        flows->flows[flows->newest].newer = i;
    flows->newest = i;
    if (flows->oldest == NONE)
        flows->oldest = i;
}

/* ---- The hash index --------------------------------------------------- */

/* The slot holding flow i, or of key if absent (an empty slot). */
static uint32_t find_slot(const blast_flows *flows, const flow_key *key, uint32_t hash)
{
    uint32_t s = hash & flows->mask;

    while (flows->slots[s] != 0 &&
           memcmp(&flows->flows[flows->slots[s] - 1].key, key, sizeof(*key)) != 0)
        s = (s + 1) & flows->mask;
    return s;
}

/* Empties slot s and moves later entries of its probe run back, so every
 * entry stays reachable from its home slot. */
static void remove_slot(blast_flows *flows, uint32_t s)
{
    uint32_t next = (s + 1) & flows->mask;

    while (flows->slots[next] != 0) {
        uint32_t home = flows->flows[flows->slots[next] - 1].hash & flows->mask;
        /* next may move to s if its home is not in (s, next] cyclically */
        bool between = s <= next ? (home > s && home <= next) : (home > s || home <= next);
        if (!between) {
            flows->slots[s] = flows->slots[next];
            s = next;
        }
        next = (next + 1) & flows->mask;
    }
    flows->slots[s] = 0;
}

static uint64_t flow_lost(const blast_flow *f)
{
    uint64_t span = f->max_seq - f->base + 1;

    return span > f->received ? span - f->received : 0;
}

/* Frees the entry of the least recently heard flow, keeping its counts in
 * the totals; returns its index. */
static uint32_t evict_oldest(blast_flows *flows)
{
    uint32_t i = flows->oldest;
    blast_flow *f = &flows->flows[i];

    flows->retired_lost += flow_lost(f);
    flows->retired_reordered += f->reordered;
    flows->retired_duplicates += f->duplicates;
    flows->evicted++;
    remove_slot(flows, find_slot(flows, &f->key, f->hash));
    list_unlink(flows, i);
    return i;
}

/* Starts the flow of key in slot s with its first datagram seq. A sender
 * never seen is counted from 0 (dgblast send starts there, so a lost first
 * datagram is a loss); once flows were evicted a new flow may be an
 * evicted one coming back, so it is counted from where it is. */
static void start_flow(blast_flows *flows, const flow_key *key, uint32_t hash, uint32_t s,
                       uint64_t seq)
{
    uint32_t i;
    blast_flow *f;

    if (flows->count < flows->capacity) {
        i = flows->count++;
    } else {
        i = evict_oldest(flows);
        s = find_slot(flows, key, hash); /* the removal may have opened an earlier slot */
    }
    f = &flows->flows[i];
    *f = (blast_flow){.key = *key, .hash = hash, .max_seq = seq, .received = 1};
    f->base = flows->evicted > 0 ? seq : 0;
    f->seen[seq % BLAST_SEQ_WINDOW / 64] = 1ull << (seq % 64);
    flows->slots[s] = i + 1;
    list_push_newest(flows, i);
    flows->admitted++;
}

/* Whether seq's bit is set; sets it. */
static bool test_and_set(blast_flow *f, uint64_t seq)
{
    uint64_t *word = &f->seen[seq % BLAST_SEQ_WINDOW / 64];
    uint64_t bit = 1ull << (seq % 64);
    bool was = (*word & bit) != 0;

    *word |= bit;
    return was;
}

/* Counts seq in f: a new highest (the bits of the numbers skipped are
 * cleared: not received), a duplicate (its bit set), or reordered (below
 * the highest, first seen; one too far behind to tell counts so). */
static void count_seq(blast_flow *f, uint64_t seq)
{
    if (seq > f->max_seq) {
        if (seq - f->max_seq >= BLAST_SEQ_WINDOW)
            memset(f->seen, 0, sizeof(f->seen));
        else
            for (uint64_t s = f->max_seq + 1; s < seq; s++)
                f->seen[s % BLAST_SEQ_WINDOW / 64] &= ~(1ull << (s % 64));
        f->max_seq = seq;
        f->seen[seq % BLAST_SEQ_WINDOW / 64] &= ~(1ull << (seq % 64));
    }
    if (f->max_seq - seq < BLAST_SEQ_WINDOW && test_and_set(f, seq)) {
        f->duplicates++;
        return;
    }
    f->received++;
    if (seq < f->max_seq)
        f->reordered++;
}

void blast_flows_count(blast_flows *flows, const struct sockaddr *from, uint32_t sender,
                       uint64_t seq)
{
    flow_key key;
    uint32_t hash, s, i;
    blast_flow *f;

    make_key(&key, from, sender);
    hash = hash_key(flows, &key);
    s = find_slot(flows, &key, hash);
    if (flows->slots[s] == 0) {
        start_flow(flows, &key, hash, s, seq);
        return;
    }
    i = flows->slots[s] - 1;
    f = &flows->flows[i];
    count_seq(f, seq);
    if (flows->newest != i) {
        list_unlink(flows, i);
        list_push_newest(flows, i);
    }
}

void blast_flows_totals(const blast_flows *flows, blast_flow_totals *out)
{
    out->senders += flows->admitted;
    out->evicted += flows->evicted;
    out->lost += flows->retired_lost;
    out->reordered += flows->retired_reordered;
    out->duplicates += flows->retired_duplicates;
    for (uint32_t i = 0; i < flows->count; i++) {
        out->lost += flow_lost(&flows->flows[i]);
        out->reordered += flows->flows[i].reordered;
        out->duplicates += flows->flows[i].duplicates;
    }
}

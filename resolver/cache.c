/* The per-loop answer cache: a chained hash table keyed by (lower-case
 * name, family), with an LRU list for the size bound. Every entry carries
 * its own expiry: the answer's TTL for addresses, negative_ttl_ms for
 * ENOTFOUND. Expired entries are dropped when met, or evicted first by
 * their age in the LRU list. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct dg__cache_entry {
    struct dg__cache_entry *hnext;
    struct dg__list lru_link;
    uint64_t expires_ms;
    uint32_t hash;
    int family;
    struct dg__answer answer;
    char name[];
};

uint32_t dg__name_hash(const char *name, int family)
{
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

void dg__cache_init(struct dg__cache *cache, unsigned max)
{
    memset(cache, 0, sizeof(*cache));
    cache->max = max;
    dg__list_init(&cache->lru);
}

static struct dg__cache_entry *lru_entry(struct dg__list *node)
{
    return DG__CONTAINER(node, struct dg__cache_entry, lru_link);
}

void dg__cache_clear(struct dg__cache *cache)
{
    while (!dg__list_empty(&cache->lru)) {
        struct dg__cache_entry *e = lru_entry(cache->lru.next);
        dg__list_remove(&e->lru_link);
        dg__free(e);
    }
    dg__free(cache->buckets);
    dg__cache_init(cache, cache->max);
}

static struct dg__cache_entry **bucket_of(struct dg__cache *cache, uint32_t hash)
{
    return &cache->buckets[hash & (cache->nbuckets - 1)];
}

/* The link that points at the entry for (name, family), or at the NULL
 * ending its chain. */
static struct dg__cache_entry **entry_link(struct dg__cache *cache, const char *name, int family,
                                           uint32_t hash)
{
    struct dg__cache_entry **link = bucket_of(cache, hash);
    while (*link) {
        struct dg__cache_entry *e = *link;
        if (e->hash == hash && e->family == family && strcmp(e->name, name) == 0)
            break;
        link = &e->hnext;
    }
    return link;
}

static void entry_remove(struct dg__cache *cache, struct dg__cache_entry *e)
{
    struct dg__cache_entry **link = bucket_of(cache, e->hash);
    while (*link != e)
        link = &(*link)->hnext;
    *link = e->hnext;
    dg__list_remove(&e->lru_link);
    cache->count--;
    dg__free(e);
}

bool dg__cache_find(struct dg__cache *cache, const char *name, int family, uint64_t now_ms,
                    struct dg__answer *out)
{
    if (cache->count == 0)
        return false;
    struct dg__cache_entry *e = *entry_link(cache, name, family, dg__name_hash(name, family));
    if (!e)
        return false;
    if (e->expires_ms <= now_ms) {
        entry_remove(cache, e);
        return false;
    }
    dg__list_remove(&e->lru_link);
    dg__list_insert_head(&cache->lru, &e->lru_link);
    *out = e->answer;
    return true;
}

/* Buckets for the configured maximum (load factor at most 1), allocated on
 * the first store so a loop that never resolves pays nothing. */
static int buckets_alloc(struct dg__cache *cache)
{
    unsigned n = 16;
    while (n < cache->max && n < (1u << 20))
        n *= 2;
    cache->buckets = dg__calloc(n, sizeof(*cache->buckets));
    if (!cache->buckets)
        return -ENOMEM;
    cache->nbuckets = n;
    return 0;
}

int dg__cache_store(struct dg__cache *cache, const char *name, int family,
                    const struct dg__answer *answer, uint64_t expires_ms)
{
    if (cache->max == 0)
        return 0;
    if (!cache->buckets && buckets_alloc(cache) < 0)
        return -ENOMEM;
    uint32_t hash = dg__name_hash(name, family);
    struct dg__cache_entry *old = *entry_link(cache, name, family, hash);
    if (old)
        entry_remove(cache, old);
    size_t len = strlen(name);
    struct dg__cache_entry *e = dg__malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    if (cache->count >= cache->max)
        entry_remove(cache, lru_entry(cache->lru.prev));
    memcpy(e->name, name, len + 1);
    e->hash = hash;
    e->family = family;
    e->answer = *answer;
    e->expires_ms = expires_ms;
    struct dg__cache_entry **head = bucket_of(cache, hash);
    e->hnext = *head;
    *head = e;
    dg__list_insert_head(&cache->lru, &e->lru_link);
    cache->count++;
    return 0;
}

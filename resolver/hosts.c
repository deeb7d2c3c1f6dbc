/* The hosts file: read once, kept as entries sorted by name (binary
 * search, so a large blocklist-style file costs little per lookup), read
 * again when its identity (inode, size, mtime) changes, which is checked
 * at most once every DG__FILE_CHECK_MS. The first line that names a host
 * for a family wins, as with glibc. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HOSTS_DEFAULT_PATH "/etc/hosts"
#define HOSTS_MAX_BYTES (64u << 20) /* refuse absurd files instead of eating memory */

struct dg__hosts_entry {
    const char *name; /* lower case, inside hosts->names */
    unsigned line;
    int family;
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
};

void dg__file_id_get(const char *path, struct dg__file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (stat(path, &st) != 0)
        return;
    id->exists = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
}

bool dg__file_id_equal(const struct dg__file_id *a, const struct dg__file_id *b)
{
    if (a->exists != b->exists)
        return false;
    if (!a->exists)
        return true;
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static const char *hosts_path(const struct dg__hosts *hosts)
{
    return hosts->path ? hosts->path : HOSTS_DEFAULT_PATH;
}

void dg__hosts_free(struct dg__hosts *hosts)
{
    dg__free(hosts->entries);
    dg__free(hosts->names);
    hosts->entries = NULL;
    hosts->names = NULL;
    hosts->count = 0;
    hosts->loaded = false;
}

void dg__hosts_reset(struct dg__hosts *hosts, const char *path)
{
    dg__hosts_free(hosts);
    memset(hosts, 0, sizeof(*hosts));
    hosts->path = path;
}

/* The whole file as a NUL-terminated string, or NULL. */
static char *file_read(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = dg__malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0 || len + 1 < cap)
            break;
        char *bigger = cap < HOSTS_MAX_BYTES ? dg__realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            dg__free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static bool parse_address(const char *text, struct dg__hosts_entry *e)
{
    char host[INET6_ADDRSTRLEN + 1];
    size_t n = strcspn(text, "%"); /* a scope cannot be carried; drop it */
    if (n >= sizeof(host))
        return false;
    memcpy(host, text, n);
    host[n] = '\0';
    if (inet_pton(AF_INET, host, &e->addr.v4) == 1)
        e->family = AF_INET;
    else if (inet_pton(AF_INET6, host, &e->addr.v6) == 1)
        e->family = AF_INET6;
    else
        return false;
    return true;
}

static int entries_grow(struct dg__hosts *hosts, unsigned *cap)
{
    if (hosts->count < *cap)
        return 0;
    unsigned want = *cap ? *cap * 2 : 32;
    struct dg__hosts_entry *e = dg__realloc(hosts->entries, (size_t)want * sizeof(*e));
    if (!e)
        return -ENOMEM;
    hosts->entries = e;
    *cap = want;
    return 0;
}

/* Adds an entry for every name on one line (cut at '#'). */
static int parse_line(struct dg__hosts *hosts, char *line, unsigned lineno, unsigned *cap)
{
    char *save = NULL;
    line[strcspn(line, "#")] = '\0';
    char *tok = strtok_r(line, " \t\r", &save);
    struct dg__hosts_entry proto = {.line = lineno};
    if (!tok || !parse_address(tok, &proto))
        return 0;
    while ((tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
        if (entries_grow(hosts, cap) < 0)
            return -ENOMEM;
        for (char *p = tok; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        proto.name = tok;
        hosts->entries[hosts->count++] = proto;
    }
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct dg__hosts_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Reads and indexes the file; a missing file simply has no names. */
static void hosts_load(struct dg__hosts *hosts)
{
    dg__hosts_free(hosts);
    hosts->loaded = true;
    hosts->names = file_read(hosts_path(hosts));
    if (!hosts->names)
        return;
    unsigned cap = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(hosts->names, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (parse_line(hosts, line, ++lineno, &cap) < 0) {
            dg__hosts_free(hosts);
            hosts->loaded = false; /* out of memory: try again next time */
            return;
        }
    }
    if (hosts->count > 1)
        qsort(hosts->entries, hosts->count, sizeof(*hosts->entries), entry_cmp);
}

static void hosts_refresh(struct dg__hosts *hosts, uint64_t now_ms)
{
    if (hosts->loaded && now_ms - hosts->checked_ms < DG__FILE_CHECK_MS)
        return;
    hosts->checked_ms = now_ms;
    struct dg__file_id id;
    dg__file_id_get(hosts_path(hosts), &id);
    if (hosts->loaded && dg__file_id_equal(&id, &hosts->id))
        return;
    hosts_load(hosts);
    hosts->id = id;
}

/* Index of the first entry for name, or count. */
static unsigned lower_bound(const struct dg__hosts *hosts, const char *name)
{
    unsigned lo = 0, hi = hosts->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (strcmp(hosts->entries[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool dg__hosts_find(struct dg__hosts *hosts, const char *name, int family, uint64_t now_ms,
                    struct dg__answer *out)
{
    hosts_refresh(hosts, now_ms);
    for (unsigned i = lower_bound(hosts, name); i < hosts->count; i++) {
        const struct dg__hosts_entry *e = &hosts->entries[i];
        if (strcmp(e->name, name) != 0)
            break;
        if (e->family != family)
            continue;
        memset(out, 0, sizeof(*out));
        out->family = family;
        if (family == AF_INET)
            out->addr.v4 = e->addr.v4;
        else
            out->addr.v6 = e->addr.v6;
        return true;
    }
    return false;
}

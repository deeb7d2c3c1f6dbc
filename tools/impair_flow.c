/* The flows of dgring-impair: a hash table by client address with a
 * least-recently-active list for the --max-flows cap, and each flow's
 * upstream socket; see impair.h. */
#include "impair.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* The address as bytes to hash and compare: family, port, address and,
 * for IPv6, the scope. Returns the length, 0 for another family. */
static size_t address_key(const struct sockaddr *sa, socklen_t len, unsigned char key[24])
{
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_port, 2);
        memcpy(key + 3, &in->sin_addr, 4);
        return 7;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        key[0] = 6;
        memcpy(key + 1, &in6->sin6_port, 2);
        memcpy(key + 3, &in6->sin6_addr, 16);
        memcpy(key + 19, &in6->sin6_scope_id, 4);
        return 23;
    }
    return 0;
}

/* FNV-1a. */
static size_t key_hash(const unsigned char *key, size_t length)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < length; i++)
        h = (h ^ key[i]) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 32));
}

int impair_flows_init(impair_proxy *p)
{
    size_t buckets = 64;

    while (buckets < 2 * (size_t)p->config->max_flows)
        buckets *= 2;
    p->buckets = calloc(buckets, sizeof(*p->buckets));
    if (p->buckets == NULL)
        return -ENOMEM;
    p->bucket_mask = buckets - 1;
    impair_list_init(&p->recent);
    return 0;
}

void impair_flow_ref(impair_flow *f)
{
    f->refs++;
}

void impair_flow_unref(impair_flow *f)
{
    impair_proxy *p = f->proxy;

    if (--f->refs > 0)
        return;
    impair_report_flow(p, f);
    for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++)
        impair_counts_add(&p->total[which], &f->dir[which].counts);
    free(f);
}

/* ---- The upstream socket ------------------------------------------------------ */

static bool from_target(const impair_proxy *p, const dg_message *msg)
{
    unsigned char a[24], b[24];
    size_t n = address_key(msg->addr, msg->addrlen, a);

    return n > 0 && n == address_key((const struct sockaddr *)&p->target, p->target_len, b) &&
           memcmp(a, b, n) == 0;
}

/* Makes f the most recently active flow. */
static void touch(impair_proxy *p, impair_flow *f)
{
    impair_list_remove(&f->recent);
    impair_list_append(&p->recent, &f->recent);
}

/* A reply from the target, or a stray datagram from anyone else. */
static void on_upstream_message(dg_socket *sock, const dg_message *msg, void *data)
{
    impair_flow *f = data;
    impair_proxy *p = f->proxy;

    (void)sock;
    p->seen++;
    if (!from_target(p, msg)) {
        p->stray++;
        return;
    }
    if (f->in_table)
        touch(p, f);
    impair_arrive(p, &f->dir[IMPAIR_DOWN], msg->data, msg->length);
}

static void on_upstream_close(dg_socket *sock, void *data)
{
    impair_flow *f = data;
    dg_socket_stats stats;

    if (dg_socket_get_stats(sock, &stats) == 0)
        f->proxy->kernel_drops[IMPAIR_DOWN] += stats.rx_kernel_drops;
    impair_flow_unref(f);
}

static void on_upstream_error(dg_socket *sock, const dg_error *err, void *data)
{
    impair_flow *f = data;

    (void)sock;
    if (!f->proxy->error_shown) {
        f->proxy->error_shown = true;
        tool_error_dg("dgring-impair", err);
    }
}

/* The flow's socket towards the target, bound to a free port (sends wait
 * for the bind). Without one, the flow's upstream copies count as send
 * errors; the first failure is printed. */
static void open_upstream(impair_proxy *p, impair_flow *f)
{
    dg_socket_options options = {.type = p->config->udp6 ? DG_UDP6 : DG_UDP4,
                                 .recv_buffer_size = p->config->rcvbuf};
    dg_socket_handlers handlers = {
        .on_message = on_upstream_message,
        .on_close = on_upstream_close,
        .on_error = on_upstream_error,
    };
    int rc = dg_socket_create(p->loop, &options, &handlers, f, &f->upstream);

    if (rc == 0) {
        f->refs++; /* until on_upstream_close */
        rc = dg_socket_bind(f->upstream, 0, NULL, NULL, NULL);
        if (rc < 0) {
            dg_socket_close(f->upstream, NULL, NULL);
            f->upstream = NULL;
        }
    } else {
        f->upstream = NULL;
    }
    if (rc < 0 && !p->error_shown) {
        p->error_shown = true;
        tool_error_code("dgring-impair", "upstream socket", rc);
    }
}

/* ---- The table ------------------------------------------------------------------- */

static impair_flow **bucket_of(impair_proxy *p, const unsigned char *key, size_t length)
{
    return &p->buckets[key_hash(key, length) & p->bucket_mask];
}

/* Takes f out of the table, drops what it holds, closes its socket; the
 * flow is reported and freed once its last send completed. */
static void flow_end(impair_proxy *p, impair_flow *f, bool evicted)
{
    impair_flow **link = bucket_of(p, f->key, f->key_length);

    while (*link != f)
        link = &(*link)->bucket_next;
    *link = f->bucket_next;
    impair_list_remove(&f->recent);
    f->in_table = false;
    f->evicted = evicted;
    p->flows--;
    for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++)
        impair_dir_discard(p, &f->dir[which], evicted);
    if (f->upstream != NULL)
        dg_socket_close(f->upstream, NULL, NULL);
    f->upstream = NULL;
    impair_flow_unref(f); /* the table's reference */
}

static impair_flow *flow_new(impair_proxy *p, const struct sockaddr *client, socklen_t len,
                             const unsigned char *key, size_t key_length)
{
    impair_flow *f = calloc(1, sizeof(*f));
    impair_flow **bucket = bucket_of(p, key, key_length);

    if (f == NULL)
        return NULL;
    f->proxy = p;
    f->number = ++p->flows_created;
    memcpy(&f->client, client, len);
    f->client_len = len;
    memcpy(f->key, key, key_length);
    f->key_length = key_length;
    for (unsigned which = 0; which < IMPAIR_DIRECTIONS; which++)
        impair_dir_init(&f->dir[which], p, f, which);
    f->refs = 1; /* the table's */
    f->in_table = true;
    f->bucket_next = *bucket;
    *bucket = f;
    impair_list_init(&f->recent);
    impair_list_append(&p->recent, &f->recent);
    p->flows++;
    open_upstream(p, f);
    return f;
}

impair_flow *impair_flow_for(impair_proxy *p, const struct sockaddr *client, socklen_t len)
{
    unsigned char key[24];
    size_t length = address_key(client, len, key);

    if (length == 0)
        return NULL;
    for (impair_flow *f = *bucket_of(p, key, length); f != NULL; f = f->bucket_next) {
        if (f->key_length == length && memcmp(f->key, key, length) == 0) {
            touch(p, f);
            return f;
        }
    }
    if (p->flows >= p->config->max_flows) {
        p->evictions++;
        flow_end(p, IMPAIR_CONTAINER(p->recent.next, impair_flow, recent), true);
    }
    return flow_new(p, client, len, key, length);
}

void impair_flows_end_all(impair_proxy *p)
{
    while (!impair_list_empty(&p->recent))
        flow_end(p, IMPAIR_CONTAINER(p->recent.next, impair_flow, recent), false);
}

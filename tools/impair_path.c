/* The path of a datagram through dgring-impair: the decisions, the heap
 * of copies waiting for their time, the release timer and departures;
 * see impair.h for the steps and how they are counted. */
#include "impair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000u
#define NOT_IN_HEAP SIZE_MAX

/* ---- Lists ---------------------------------------------------------------- */

void impair_list_init(impair_link *list)
{
    list->prev = list->next = list;
}

void impair_list_append(impair_link *list, impair_link *item)
{
    item->prev = list->prev;
    item->next = list;
    list->prev->next = item;
    list->prev = item;
}

void impair_list_remove(impair_link *item)
{
    item->prev->next = item->next;
    item->next->prev = item->prev;
    item->prev = item->next = item;
}

bool impair_list_empty(const impair_link *list)
{
    return list->next == list;
}

/* ---- Decisions -------------------------------------------------------------
 * Each stream is a splitmix64 sequence: a counter advanced by the golden
 * ratio, mixed. Streams are independent, so turning one impairment on
 * does not change the decisions of another. */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint64_t draw(impair_dir *d, unsigned stream)
{
    d->draws[stream] += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(d->draws[stream]);
}

/* True with probability percent / 100 (no draw for 0 or 100). */
static bool chance(impair_dir *d, unsigned stream, double percent)
{
    if (percent <= 0)
        return false;
    if (percent >= 100)
        return true;
    return (double)(draw(d, stream) >> 11) * 0x1p-53 * 100.0 < percent;
}

/* A number in [0, bound), bound > 0 (the modulo's bias is below 2^-40
 * for the bounds used here). */
static uint64_t below(impair_dir *d, unsigned stream, uint64_t bound)
{
    return draw(d, stream) % bound;
}

void impair_dir_init(impair_dir *d, const impair_proxy *p, impair_flow *f, unsigned which)
{
    unsigned chosen = p->config->direction;

    memset(d, 0, sizeof(*d));
    d->flow = f;
    d->which = which;
    d->impaired = chosen == IMPAIR_WHICH_BOTH ||
                  (chosen == IMPAIR_WHICH_UP && which == IMPAIR_UP) ||
                  (chosen == IMPAIR_WHICH_DOWN && which == IMPAIR_DOWN);
    for (unsigned k = 0; k < IMPAIR_DRAWS; k++)
        d->draws[k] = mix64(p->config->seed ^ mix64(f->number << 8 | which << 4 | k));
    impair_list_init(&d->pending);
    impair_list_init(&d->held);
}

/* The Gilbert-Elliott step of one datagram: the state moves first, then
 * the bad state loses its share. */
static bool burst_lost(impair_dir *d, const impair_config *config)
{
    if (config->burst_enter <= 0)
        return false;
    if (d->burst_bad)
        d->burst_bad = !chance(d, IMPAIR_DRAW_BURST, config->burst_exit);
    else
        d->burst_bad = chance(d, IMPAIR_DRAW_BURST, config->burst_enter);
    return d->burst_bad && chance(d, IMPAIR_DRAW_BURST, config->burst_loss);
}

/* ---- The heap of pending copies, earliest release first ------------------- */

static bool earlier(const impair_packet *a, const impair_packet *b)
{
    return a->release_ns != b->release_ns ? a->release_ns < b->release_ns : a->order < b->order;
}

static void heap_set(impair_proxy *p, size_t i, impair_packet *pk)
{
    p->heap[i] = pk;
    pk->slot = i;
}

static void heap_up(impair_proxy *p, size_t i)
{
    impair_packet *pk = p->heap[i];

    while (i > 0 && earlier(pk, p->heap[(i - 1) / 2])) {
        heap_set(p, i, p->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(p, i, pk);
}

static void heap_down(impair_proxy *p, size_t i)
{
    impair_packet *pk = p->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= p->heap_count)
            break;
        if (child + 1 < p->heap_count && earlier(p->heap[child + 1], p->heap[child]))
            child++;
        if (!earlier(p->heap[child], pk))
            break;
        heap_set(p, i, p->heap[child]);
        i = child;
    }
    heap_set(p, i, pk);
}

/* Room for n more copies, so that a push never fails. */
static bool heap_reserve(impair_proxy *p, size_t n)
{
    size_t capacity = p->heap_capacity ? p->heap_capacity : 64;
    impair_packet **heap;

    while (capacity < p->heap_count + n)
        capacity *= 2;
    if (capacity == p->heap_capacity)
        return true;
    heap = realloc(p->heap, capacity * sizeof(*heap));
    if (heap == NULL)
        return false;
    p->heap = heap;
    p->heap_capacity = capacity;
    return true;
}

static void heap_push(impair_proxy *p, impair_packet *pk)
{
    heap_set(p, p->heap_count++, pk);
    heap_up(p, pk->slot);
}

static void heap_remove(impair_proxy *p, impair_packet *pk)
{
    size_t i = pk->slot;
    impair_packet *last = p->heap[--p->heap_count];

    pk->slot = NOT_IN_HEAP;
    if (last == pk)
        return;
    heap_set(p, i, last);
    heap_up(p, i);
    heap_down(p, last->slot);
}

void impair_path_free(impair_proxy *p)
{
    free(p->heap);
    p->heap = NULL;
    p->heap_count = p->heap_capacity = 0;
}

/* ---- Copies ---------------------------------------------------------------- */

static impair_packet *packet_new(impair_proxy *p, impair_dir *d, const void *data, size_t len,
                                 uint64_t index)
{
    impair_packet *pk = malloc(sizeof(*pk) + len);

    if (pk == NULL)
        return NULL;
    memset(pk, 0, sizeof(*pk));
    pk->dir = d;
    pk->index = index;
    pk->order = p->order++;
    pk->slot = NOT_IN_HEAP;
    pk->length = len;
    if (len > 0)
        memcpy(pk->data, data, len);
    impair_list_append(&d->pending, &pk->pending);
    impair_list_init(&pk->held);
    p->held[d->which]++;
    impair_flow_ref(d->flow);
    return pk;
}

/* Frees a copy that left or was dropped (it is out of the heap). */
static void packet_free(impair_proxy *p, impair_packet *pk)
{
    impair_flow *flow = pk->dir->flow;

    if (pk->twin != NULL)
        pk->twin->twin = NULL;
    impair_list_remove(&pk->pending);
    impair_list_remove(&pk->held);
    p->held[pk->dir->which]--;
    free(pk);
    impair_flow_unref(flow);
}

/* ---- Departures ------------------------------------------------------------ */

static void on_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    impair_dir *d = data;
    impair_flow *f = d->flow;
    impair_proxy *p = f->proxy;

    (void)sock;
    if (status >= 0) {
        d->counts.forwarded++;
    } else if (status == -ECANCELED && !f->in_table) {
        /* The proxy closed the socket itself: the flow ended. */
        if (f->evicted)
            d->counts.dropped_evicted++;
        else
            d->counts.dropped_closing++;
    } else {
        d->counts.send_errors++;
        if (!p->error_shown && err != NULL) {
            p->error_shown = true;
            tool_error_dg("dgring-impair", err);
        }
    }
    p->sends_in_flight--;
    impair_flow_unref(f);
    impair_check_drained(p);
}

/* Counts the copy as it leaves: reordered if a later datagram of its
 * direction left before it, unless its twin did (then the receiver sees
 * this one as the duplicate). */
static void note_departure(impair_packet *pk)
{
    impair_dir *d = pk->dir;

    if (!pk->twin_sent && pk->index + 1 < d->highest_sent)
        d->counts.reordered++;
    if (pk->index + 1 > d->highest_sent)
        d->highest_sent = pk->index + 1;
    if (pk->twin != NULL)
        pk->twin->twin_sent = true;
}

/* Hands the copy to dgring, which copies the bytes: up to the target from
 * the flow's socket, down to the client from the listening socket. */
static void send_copy(impair_proxy *p, impair_packet *pk)
{
    impair_dir *d = pk->dir;
    impair_flow *f = d->flow;
    bool up = d->which == IMPAIR_UP;
    dg_socket *sock = up ? f->upstream : p->listener;
    const struct sockaddr *to = (const struct sockaddr *)(up ? &p->target : &f->client);
    int rc;

    if (sock == NULL) {
        d->counts.send_errors++; /* no upstream socket: said when it failed */
        return;
    }
    rc = dg_socket_send_to(sock, pk->data, pk->length, to, up ? p->target_len : f->client_len,
                           on_sent, d);
    if (rc == 0) {
        note_departure(pk);
        p->sends_in_flight++;
        impair_flow_ref(f);
        return;
    }
    d->counts.send_errors++;
    if (!p->error_shown) {
        p->error_shown = true;
        tool_error_code("dgring-impair", "send", rc);
    }
}

/* A copy of d left: each copy held back in d waits for one fewer. */
static void count_follower(impair_dir *d)
{
    for (impair_link *l = d->held.next; l != &d->held; l = l->next) {
        impair_packet *h = IMPAIR_CONTAINER(l, impair_packet, held);
        if (h->followers > 0)
            h->followers--;
    }
}

/* The first copy held back in d that waits for no more followers. */
static impair_packet *held_ready(impair_dir *d)
{
    for (impair_link *l = d->held.next; l != &d->held; l = l->next) {
        impair_packet *h = IMPAIR_CONTAINER(l, impair_packet, held);
        if (h->followers == 0)
            return h;
    }
    return NULL;
}

/* pk leaves now, then every copy held back in its direction that no
 * longer waits. */
static void depart(impair_proxy *p, impair_packet *pk)
{
    impair_dir *d = pk->dir;
    impair_flow *f = d->flow;

    impair_flow_ref(f); /* d lives until the last copy is freed */
    do {
        if (pk->slot != NOT_IN_HEAP)
            heap_remove(p, pk);
        send_copy(p, pk);
        count_follower(d);
        packet_free(p, pk);
    } while ((pk = held_ready(d)) != NULL);
    impair_flow_unref(f);
}

/* The copy's time came and it was picked for reordering: it waits for
 * followers, or for --reorder-wait. */
static void start_hold(impair_proxy *p, impair_packet *pk, uint64_t now)
{
    const impair_config *config = p->config;

    pk->is_held = true;
    pk->followers = config->reorder_depth;
    pk->release_ns = now + (uint64_t)config->reorder_wait_ms * NS_PER_MS;
    impair_list_append(&pk->dir->held, &pk->held);
    heap_push(p, pk);
}

/* ---- The release timer ------------------------------------------------------ */

static void on_release(dg_timer *timer, void *data);

/* Makes the timer fire for the earliest pending copy. */
static void schedule(impair_proxy *p)
{
    uint64_t due, now, wait_ms;

    if (p->heap_count == 0 || p->timer == NULL)
        return;
    due = p->heap[0]->release_ns;
    if (p->timer_armed && p->timer_due_ns <= due)
        return; /* fires first; on_release looks again */
    now = tool_now_ns();
    wait_ms = due > now ? (due - now + NS_PER_MS - 1) / NS_PER_MS : 0;
    dg_loop_update_time(p->loop);
    if (dg_timer_start(p->timer, wait_ms, 0, on_release, p) == 0) {
        p->timer_armed = true;
        p->timer_due_ns = due;
    }
}

/* Sends what is due by the clock (never by the loop's cached time, so
 * nothing leaves early), holds back what was picked for reordering. */
static void on_release(dg_timer *timer, void *data)
{
    impair_proxy *p = data;
    uint64_t now = tool_now_ns();

    (void)timer;
    p->timer_armed = false;
    while (p->heap_count > 0 && p->heap[0]->release_ns <= now) {
        impair_packet *pk = p->heap[0];
        if (pk->reorder && !pk->is_held) {
            heap_remove(p, pk);
            start_hold(p, pk, now);
        } else {
            depart(p, pk);
        }
    }
    schedule(p);
    impair_check_drained(p);
}

/* ---- Arrivals --------------------------------------------------------------- */

/* Size, loss, bursts, queue: false (and counted) if the datagram is
 * dropped. Both loss streams draw for every datagram of the right size,
 * so each is a function of the datagram's position alone. */
static bool admitted(impair_proxy *p, impair_dir *d, size_t len)
{
    const impair_config *config = p->config;
    impair_counts *c = &d->counts;
    bool lost, burst;

    if (config->max_size > 0 && len > config->max_size) {
        c->dropped_size++;
        return false;
    }
    lost = chance(d, IMPAIR_DRAW_LOSS, config->loss);
    burst = burst_lost(d, config);
    if (lost || burst) {
        if (lost)
            c->dropped_loss++;
        else
            c->dropped_burst++;
        return false;
    }
    if (p->held[d->which] >= config->queue || !heap_reserve(p, 2)) {
        c->dropped_queue++; /* tail drop (or no memory to hold it) */
        return false;
    }
    return true;
}

/* The link of d's direction: when a copy of len bytes has crossed it. */
static uint64_t link_time(impair_proxy *p, const impair_dir *d, size_t len, uint64_t now)
{
    uint64_t rate = p->config->rate_kbit;
    uint64_t *free_at = &p->link_free_ns[d->which];
    uint64_t bits = ((uint64_t)len + (p->config->udp6 ? 48 : 28)) * 8;
    uint64_t start;

    if (rate == 0)
        return now;
    start = *free_at > now ? *free_at : now;
    *free_at = start + bits * 1000000u / rate; /* bits / (rate * 1000 / s), in ns */
    return *free_at;
}

/* --delay with a uniform --jitter either way, never below zero. */
static uint64_t delay_ns(impair_dir *d, const impair_config *config)
{
    int64_t delay = (int64_t)config->delay_ms * NS_PER_MS;
    int64_t jitter = (int64_t)config->jitter_ms * NS_PER_MS;

    if (jitter > 0)
        delay += (int64_t)below(d, IMPAIR_DRAW_DELAY, 2 * (uint64_t)jitter + 1) - jitter;
    return delay > 0 ? (uint64_t)delay : 0;
}

/* The copy's own decisions: a flipped bit, its time on the link, its
 * delay, whether it is held back. */
static void shape(impair_proxy *p, impair_packet *pk, uint64_t now)
{
    const impair_config *config = p->config;
    impair_dir *d = pk->dir;

    pk->release_ns = now;
    if (!d->impaired)
        return;
    if (pk->length > 0 && chance(d, IMPAIR_DRAW_CORRUPT, config->corrupt)) {
        uint64_t bit = below(d, IMPAIR_DRAW_CORRUPT, (uint64_t)pk->length * 8);
        pk->data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        d->counts.corrupted++;
    }
    pk->release_ns = link_time(p, d, pk->length, now) + delay_ns(d, config);
    pk->reorder = chance(d, IMPAIR_DRAW_REORDER, config->reorder);
}

/* A shaped copy leaves now, is held back now, or waits for its time. */
static void place(impair_proxy *p, impair_packet *pk, uint64_t now)
{
    if (pk->release_ns > now) {
        pk->dir->counts.delayed++;
        heap_push(p, pk);
    } else if (pk->reorder) {
        start_hold(p, pk, now);
    } else {
        depart(p, pk);
    }
}

/* The copies of one admitted datagram: one, or two with --duplicate. */
static unsigned make_copies(impair_proxy *p, impair_dir *d, const void *data, size_t len,
                            uint64_t index, impair_packet *copies[2])
{
    unsigned wanted = d->impaired && chance(d, IMPAIR_DRAW_DUPLICATE, p->config->duplicate) ? 2 : 1;
    unsigned made = 0;

    d->counts.duplicated += wanted - 1;
    for (unsigned k = 0; k < wanted; k++) {
        impair_packet *pk = packet_new(p, d, data, len, index);
        if (pk == NULL)
            d->counts.dropped_queue++; /* no memory to hold it */
        else
            copies[made++] = pk;
    }
    if (made == 2) {
        copies[0]->twin = copies[1];
        copies[1]->twin = copies[0];
    }
    return made;
}

void impair_arrive(impair_proxy *p, impair_dir *d, const void *data, size_t len)
{
    uint64_t index = d->arrivals++;
    impair_packet *copies[2];
    unsigned made;
    uint64_t now;

    d->counts.received++;
    d->counts.bytes += len;
    if (p->config->impair_count > 0 && index == p->config->impair_count)
        d->impaired = false; /* --impair-count: the rest pass untouched */
    if (!d->flow->in_table && d->flow->evicted) {
        d->counts.dropped_evicted++;
        return;
    }
    if (p->draining || p->closing || !d->flow->in_table) {
        d->counts.dropped_closing++;
        return;
    }
    if (d->impaired && !admitted(p, d, len))
        return; /* an untouched direction's copies leave at once */
    made = make_copies(p, d, data, len, index, copies);
    now = tool_now_ns();
    for (unsigned k = 0; k < made; k++)
        shape(p, copies[k], now);
    for (unsigned k = 0; k < made; k++)
        place(p, copies[k], now);
    schedule(p);
}

void impair_dir_discard(impair_proxy *p, impair_dir *d, bool evicted)
{
    while (!impair_list_empty(&d->pending)) {
        impair_packet *pk = IMPAIR_CONTAINER(d->pending.next, impair_packet, pending);
        if (pk->slot != NOT_IN_HEAP)
            heap_remove(p, pk);
        if (evicted)
            d->counts.dropped_evicted++;
        else
            d->counts.dropped_closing++;
        packet_free(p, pk);
    }
}

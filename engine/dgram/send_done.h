/* The end of a send that succeeded, inline where its completion is read:
 * in send.c's completions and in the loop's walk (engine/loop.c), which
 * thus calls no function between a plain send's CQE and its callback. */
#ifndef DG_ENGINE_DGRAM_SEND_DONE_H
#define DG_ENGINE_DGRAM_SEND_DONE_H

#include "engine/dgram/dgram.h"

/* The same pointer, which the compiler can no longer relate to others:
 * two adjacent counters updated through different names stay two scalar
 * adds. gcc's SLP vectorizer otherwise packs them into one SSE add that
 * costs more (a constant's load, the value's move and shuffle, a spill:
 * about 5 instructions more for each pair of a send). */
static inline void *dg__unrelated(void *p)
{
    __asm__("" : "+r"(p));
    return p;
}

/* A request's heap payload, engine buffer, lookup state or heap slot go
 * back (send.c); the rare part of dg__send_release. */
void dg__send_release_cold(dg_loop *loop, struct dg__send_req *req);

/* A slot of the array back on the loop's free list. */
static inline void dg__send_slot_free(dg_loop *loop, struct dg__send_req *req)
{
    req->next = loop->dgram.free_slots;
    loop->dgram.free_slots = req;
}

/* The request's slot back on the free list (or its rare parts freed). */
static inline void dg__send_release(dg_loop *loop, struct dg__send_req *req)
{
    if (req->cold)
        dg__send_release_cold(loop, req);
    else
        dg__send_slot_free(loop, req);
}

/* The request leaves the socket's queue and goes back to the free list
 * (or, zero-copy, waits for its notification; never when plain, a CQE
 * without flags); returns its callback. */
static inline __attribute__((always_inline)) dg_send_cb
dg__send_dequeue(struct dg__send_req *req, void **cb_data, bool plain)
{
    dg_socket *s = req->sock;
    dg_loop *loop = s->loop;
    s->queue_bytes -= req->len;
    ((dg_socket *)dg__unrelated(s))->queue_count--;
    loop->dgram.pending_sends--;
    dg_send_cb cb = req->cb;
    *cb_data = req->cb_data;
    if (plain || !req->zc_notif_pending)
        dg__send_release(loop, req); /* else at the notification */
    return cb;
}

/* A send that moved res >= 0 bytes: counters, the callback, then the
 * socket's reference. Always runs from the loop. plain: its CQE had no
 * flags, so no zero-copy notification follows (zc_notif_pending is set
 * only from a CQE with IORING_CQE_F_MORE). */
static inline __attribute__((always_inline)) void dg__send_succeeded(struct dg__send_req *req,
                                                                      int res, bool plain)
{
    dg_socket *s = req->sock;
    s->stats.tx_datagrams++;
    ((dg_socket *)dg__unrelated(s))->stats.tx_bytes += (uint64_t)res;
    s->stats.tx_zerocopy_sends += req->zerocopy;
    void *cb_data;
    dg_send_cb cb = dg__send_dequeue(req, &cb_data, plain);
    if (cb)
        cb(s, res, NULL, cb_data);
    dg__socket_op_done(s);
}

#endif

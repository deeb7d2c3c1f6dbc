/* The deferred-work queue: callbacks that must run from the loop but not
 * inside the call that caused them (listening events, bind failures, close
 * callbacks, early send failures). Queueing pokes the embedding fd, so an
 * embedding loop comes back to run them. */
#include "core.h"

void dg__defer(struct dg__core *c, struct dg__deferred *node,
               void (*run)(struct dg__deferred *))
{
    if (dg__list_linked(&node->link))
        return; /* already queued */
    node->run = run;
    dg__list_insert_tail(&c->deferred, &node->link);
    dg__loop_poke(c);
}

/* Runs what was queued before this call; what those callbacks queue runs
 * next turn, so a callback that keeps deferring cannot starve the ring.
 * Returns whether anything ran. */
bool dg__deferred_run_queued(struct dg__core *c)
{
    struct dg__list now;
    dg__list_move(&now, &c->deferred);
    if (dg__list_empty(&now))
        return false;
    while (!dg__list_empty(&now)) {
        struct dg__deferred *node = DG__CONTAINER(now.next, struct dg__deferred, link);
        dg__list_remove(&node->link); /* no longer queued: may queue again */
        node->run(node);              /* may free node */
    }
    return true;
}

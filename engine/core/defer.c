/* The deferred-work queue: callbacks that must run from the loop but not
 * inside the call that caused them (listening events, bind failures, close
 * callbacks, early send failures). Queueing pokes the embedding fd, so an
 * embedding loop comes back to run them. */
#include "core.h"

void dg__defer(struct dg__core *c, struct dg__deferred *node,
               void (*run)(struct dg__deferred *))
{
    if (node->queued)
        return;
    node->run = run;
    node->next = NULL;
    node->queued = true;
    if (c->deferred_tail)
        c->deferred_tail->next = node;
    else
        c->deferred_head = node;
    c->deferred_tail = node;
    dg__loop_poke(c);
}

/* Runs what was queued before this call; what those callbacks queue runs
 * next turn, so a callback that keeps deferring cannot starve the ring.
 * Returns whether anything ran. */
bool dg__deferred_run_queued(struct dg__core *c)
{
    struct dg__deferred *node = c->deferred_head;
    struct dg__deferred *last = c->deferred_tail;
    if (!node)
        return false;
    c->deferred_head = NULL;
    c->deferred_tail = NULL;
    for (;;) {
        struct dg__deferred *next = node->next;
        bool was_last = node == last;
        node->queued = false;
        node->run(node); /* may free node */
        if (was_last)
            break;
        node = next;
    }
    return true;
}

/* What timers and signals share as handles of the loop: keep-alive
 * accounting (a handle keeps the loop alive while it is active, referenced
 * and not closing), and the close protocol (closing from the call, the
 * close callback from the loop, then the handle is gone). */
#include "core.h"

void dg__handle_init(struct dg__handle *h, struct dg__core *c)
{
    h->core = c;
    h->ref = true;
    c->handle_count++;
}

void dg__handle_update_alive(struct dg__handle *h, bool active)
{
    bool want = active && h->ref && !h->closing;
    if (want == h->counted)
        return;
    h->counted = want;
    if (want)
        h->core->alive_handles++;
    else
        h->core->alive_handles--;
}

void dg__handle_set_ref(struct dg__handle *h, bool ref, bool active)
{
    h->ref = ref;
    dg__handle_update_alive(h, active);
}

void dg__handle_close(struct dg__handle *h, void (*finish)(struct dg__deferred *))
{
    h->closing = true;
    dg__handle_update_alive(h, false);
    h->core->closing_handles++;
    dg__defer(h->core, &h->close_ev, finish);
}

void dg__handle_closed(struct dg__handle *h)
{
    h->core->closing_handles--;
    h->core->handle_count--;
}

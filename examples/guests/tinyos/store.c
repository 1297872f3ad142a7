/*
 * xenstore: libguest's client (pvkit/xenstore.h) over start_info's store page and event channel.
 * The client never waits by itself; it calls back into the kernel to notify the store's port, wait
 * for it and read the clock, and these are those callbacks.
 */
#include "kernel.h"
#include <pvkit/xenstore.h> /* not included by pvkit/guest.h */

static struct pvk_xs_client store; /* about 6 KiB: static, not on the 16 KiB stack */
static uint32_t store_port;
static bool connected;

static void store_notify(void *context)
{
    (void)context;
    (void)pvk_evtchn_notify(store_port);
}

/* Waits on the masked port (SCHEDOP_poll); the client's "forever" is the wait's 0. */
static int store_wait(void *context, uint64_t deadline)
{
    (void)context;
    return pvk_evtchn_wait(store_port, deadline == PVK_XS_FOREVER ? 0 : deadline);
}

static uint64_t store_now(void *context)
{
    (void)context;
    return pvk_monotonic_ns();
}

int store_init(const struct pvk_start_info *start_info)
{
    void *page = pvk_mfn_to_virt(start_info->store_mfn); /* the builder mapped it */
    if (page == NULL)
        return -1;
    store_port = start_info->store_evtchn;
    /* The builder bound the port; waiting needs it masked with no handler (else the upcall takes
     * its events). Clearing the handler masks it; the "not bound" (4) it returns is expected. */
    (void)pvk_evtchn_clear_handler(store_port);
    const struct pvk_xs_channel channel = {store_notify, store_wait, store_now, NULL};
    pvk_xs_init(&store, page, &channel);
    pvk_xs_set_timeout(&store, 1000 * NS_PER_MS); /* a store that never answers is an error */
    connected = true;
    return 0;
}

/* Reads a node (relative paths are under the domain's home, /local/domain/<id>) into `value`;
 * 0 or a negative Xen errno. */
int store_read(const char *path, char *value, size_t capacity)
{
    if (!connected)
        return -PVK_XEN_ENOTCONN;
    return pvk_xs_read(&store, 0, path, value, capacity, NULL);
}

/*
 * xenstore: libguest's client (pvkit/xenstore.h). pvk_xenstore() is this domain's own connection,
 * over start_info's store page and event channel, made on first use.
 */
#include "kernel.h"

static struct pvk_xs_client *store;

int store_init(const struct pvk_start_info *start_info)
{
    (void)start_info; /* pvk_xenstore() finds the store page and port there itself */
    store = pvk_xenstore();
    if (store == NULL)
        return -1;
    pvk_xs_set_timeout(store, 1000 * NS_PER_MS); /* a store that never answers is an error */
    return 0;
}

/* Reads a node (relative paths are under the domain's home, /local/domain/<id>) into `value`;
 * 0 or a negative Xen errno. */
int store_read(const char *path, char *value, size_t capacity)
{
    if (store == NULL)
        return -PVK_XEN_ENOTCONN;
    return pvk_xs_read(store, 0, path, value, capacity, NULL);
}

/*
 * The xenstore client and xenbus for C code (guest/xenstore.hpp and guest/xenbus.hpp say how
 * they work). Every function returns 0 or a negative Xen errno: the store's own errors
 * (-PVK_XEN_ENOENT, -PVK_XEN_EACCES, -PVK_XEN_EAGAIN...), or the client's: -PVK_XEN_ETIME (the
 * deadline passed), -PVK_XEN_ENOTCONN (the connection broke: see pvk_xs_broken), -PVK_XEN_EBADMSG
 * (a reply not understood), -PVK_XEN_ERANGE (a buffer too small), -PVK_XEN_E2BIG (a request over
 * 4096 bytes), -PVK_XEN_EINVAL (a bad argument). Transaction 0 is "none".
 *
 * Example: the runtime's event channel behind three callbacks, then a read and a watch.
 *
 *     static void notify(void *port) { struct pvk_evtchn_send send = {.port = *(uint32_t *)port};
 *                                      pvk_evtchnop_send(&send); }
 *     static int wait(void *port, uint64_t deadline) { ... block until the port fires; 0 at deadline }
 *     static uint64_t now(void *port) { ... system time in ns }
 *
 *     static struct pvk_xs_client xs;
 *     uint32_t port = start_info->store_evtchn;
 *     struct pvk_xs_channel channel = {notify, wait, now, &port};
 *     char value[64], event[256];
 *     const char *path, *token;
 *     size_t length;
 *     pvk_xs_init(&xs, store_page, &channel);
 *     if (pvk_xs_read(&xs, 0, "name", value, sizeof value, &length) == 0)
 *         pvk_xs_write(&xs, 0, "data/greeting", "hello");
 *     pvk_xs_watch(&xs, "device", "devices");
 *     while (pvk_xs_next_event(&xs, event, sizeof event, PVK_XS_FOREVER, "devices", &path, &token) == 0)
 *         handle_device_change(path);
 */
#ifndef PVKIT_XENSTORE_H
#define PVKIT_XENSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <pvkit/xen-abi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PVK_XS_FOREVER UINT64_MAX

/* The store's event channel, as the guest's runtime provides it. `wait` returns nonzero once the
 * port fired since it last returned (at once if it had), or 0 when `deadline` (on now's clock,
 * ns) passes first. */
struct pvk_xs_channel {
    void (*notify)(void *context);
    int (*wait)(void *context, uint64_t deadline);
    uint64_t (*now)(void *context);
    void *context;
};

/* Room for the client; pvk_xs_init fills it. */
#define PVK_XS_CLIENT_BYTES 6144
struct pvk_xs_client {
    uint64_t opaque[PVK_XS_CLIENT_BYTES / 8];
};

/* Access letters of a permission entry. */
enum pvk_xs_access { PVK_XS_PERM_NONE = 0, PVK_XS_PERM_READ = 1, PVK_XS_PERM_WRITE = 2, PVK_XS_PERM_BOTH = 3 };
struct pvk_xs_perm {
    uint16_t domain;
    uint8_t access; /* enum pvk_xs_access */
};

/* The channel is copied; the page stays the client's for its life. */
void pvk_xs_init(struct pvk_xs_client *xs, struct pvk_xenstore_domain_interface *page,
                 const struct pvk_xs_channel *channel);
/* Per-request timeout in ns (PVK_XS_FOREVER, the default: none). */
void pvk_xs_set_timeout(struct pvk_xs_client *xs, uint64_t nanoseconds);
/* 0 while the connection works, else why it broke (1 request indexes, 2 response indexes,
 * 3 oversized message, 4 request interrupted by the deadline). */
int pvk_xs_broken(const struct pvk_xs_client *xs);

/* The value and a NUL into `value`; its length (without the NUL) to *length if not NULL. */
int pvk_xs_read(struct pvk_xs_client *xs, uint32_t tx, const char *path, char *value, size_t capacity,
                size_t *length);
int pvk_xs_write(struct pvk_xs_client *xs, uint32_t tx, const char *path, const char *value);
int pvk_xs_write_bytes(struct pvk_xs_client *xs, uint32_t tx, const char *path, const void *value, size_t length);
int pvk_xs_mkdir(struct pvk_xs_client *xs, uint32_t tx, const char *path);
int pvk_xs_rm(struct pvk_xs_client *xs, uint32_t tx, const char *path);
/* The children's names, each NUL-ended, one after another into `names`; their number to *count. */
int pvk_xs_directory(struct pvk_xs_client *xs, uint32_t tx, const char *path, char *names, size_t capacity,
                     size_t *count);
/* Up to `capacity` entries; the node's number of entries to *count (-ERANGE if over capacity). */
int pvk_xs_get_perms(struct pvk_xs_client *xs, uint32_t tx, const char *path, struct pvk_xs_perm *perms,
                     size_t capacity, size_t *count);
int pvk_xs_set_perms(struct pvk_xs_client *xs, uint32_t tx, const char *path, const struct pvk_xs_perm *perms,
                     size_t count);
int pvk_xs_watch(struct pvk_xs_client *xs, const char *path, const char *token);
int pvk_xs_unwatch(struct pvk_xs_client *xs, const char *path, const char *token);
int pvk_xs_transaction_start(struct pvk_xs_client *xs, uint32_t *tx);
/* -EAGAIN: the store changed meanwhile, nothing was committed; start the transaction again. */
int pvk_xs_transaction_end(struct pvk_xs_client *xs, uint32_t tx, int commit);
int pvk_xs_get_domain_path(struct pvk_xs_client *xs, uint16_t domain, char *path, size_t capacity);
/* The oldest watch event (with `token`, unless NULL) into `buffer`; *path and *token point into
 * it. Waits until `deadline` (0: only what arrived), else -ETIME. */
int pvk_xs_next_event(struct pvk_xs_client *xs, char *buffer, size_t capacity, uint64_t deadline,
                      const char *token, const char **path, const char **event_token);

/* xenbus. States are io/xenbus.h's XenbusState values (0 Unknown ... 6 Closed). */
enum pvk_xenbus_state {
    PVK_XENBUS_UNKNOWN = 0,
    PVK_XENBUS_INITIALISING = 1,
    PVK_XENBUS_INIT_WAIT = 2,
    PVK_XENBUS_INITIALISED = 3,
    PVK_XENBUS_CONNECTED = 4,
    PVK_XENBUS_CLOSING = 5,
    PVK_XENBUS_CLOSED = 6,
};
struct pvk_xenbus_key {
    const char *name;
    const char *value;
};
int pvk_xenbus_read_state(struct pvk_xs_client *xs, const char *device, uint32_t *state);
/* <device>/<key> as a decimal number at most `max` into *value: 0, or a negative errno (-EBADMSG
 * for anything but such a number). */
int pvk_xenbus_read_number(struct pvk_xs_client *xs, const char *device, const char *key, uint64_t max,
                           uint64_t *value);
int pvk_xenbus_switch_state(struct pvk_xs_client *xs, const char *device, uint32_t state);
/* -ENODEV when the other end closes instead; *seen (if not NULL) gets the state last read. */
int pvk_xenbus_wait_for_state(struct pvk_xs_client *xs, const char *other_end, uint32_t wanted, uint64_t deadline,
                              uint32_t *seen);
/* Waits while the other end is Closing or Closed (a frontend coming back waits so for its backend);
 * 0 and *state the state it then holds (PVK_XENBUS_UNKNOWN when the other end is gone), or
 * -PVK_XEN_ETIME at the deadline, or the store's error. */
int pvk_xenbus_wait_while_closed(struct pvk_xs_client *xs, const char *other_end, uint64_t deadline, uint32_t *state);
/* `backend` nonzero: <device>/backend and backend-id, else frontend and frontend-id. */
int pvk_xenbus_read_other_end(struct pvk_xs_client *xs, const char *device, int backend, char *path,
                              size_t capacity, uint16_t *domain);
/* The keys, and the state unless PVK_XENBUS_UNKNOWN, in one transaction retried on EAGAIN. */
int pvk_xenbus_publish(struct pvk_xs_client *xs, const char *device, const struct pvk_xenbus_key *keys,
                       size_t count, uint32_t state);

/* Images only: this domain's own connection to the store, made on first use from start_info (see
 * guest::xenstore()); NULL without a store page. */
struct pvk_xs_client *pvk_xenstore(void);

#ifdef __cplusplus
}
#endif
#endif

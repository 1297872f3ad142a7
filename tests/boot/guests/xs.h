/* A small xenstore client for the conformance guests, over the store ring start_info names (the
 * wire protocol of io/xs_wire.h): one request at a time, its reply waited for by yielding; watch
 * events that arrive meanwhile are counted, the last one kept. */
#ifndef XS_H
#define XS_H
#include <stdint.h>
#include <pvkit/guest.h>

/* Finds the store page (through the M2P, in the initial mapping) and its event channel. */
void xs_init(const struct pvk_start_info *info);

/* One request: `payload` of `length` bytes (strings with their NULs, as the message wants).
 * Returns the reply's type (PVK_XS_ERROR for an error, whose name is then in `reply`) and copies
 * its payload, NUL-terminated, into `reply`; -1 when the reply does not fit. */
int xs_request(uint32_t type, uint32_t transaction, const char *payload, uint32_t length, char *reply,
               uint32_t capacity);

/* The usual requests: 0 on success, else -1 (`xs_error` holds the error's name). */
int xs_write(uint32_t transaction, const char *path, const char *value);
int xs_read(uint32_t transaction, const char *path, char *value, uint32_t capacity);
int xs_set_perms(const char *path, const char *perms, uint32_t perms_length);
int xs_watch(const char *path, const char *token);
int xs_transaction_start(uint32_t *transaction);
int xs_transaction_end(uint32_t transaction, int commit);
/* Waits (yielding) until a watch event comes that was not seen yet; 0, or -1 on a broken ring. */
int xs_wait_watch_event(void);

extern char xs_error[32];
extern char xs_last_event[256]; /* path NUL token of the last watch event */
extern uint64_t xs_watch_events;

/* For hostile guests: bytes put on the request ring as they are, then a notification; and the
 * ring itself. */
void xs_send_raw(const void *bytes, uint32_t length);
volatile struct pvk_xenstore_domain_interface *xs_ring(void);

/* Decimal text of `value` into `text` (room for 21 bytes); parsing back, 0 for no digits. */
void xs_decimal(uint64_t value, char *text);
uint64_t xs_parse_decimal(const char *text);
#endif

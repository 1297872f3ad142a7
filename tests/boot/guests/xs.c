#include "xs.h"

extern char __pvk_virt_base[];

static volatile struct pvk_xenstore_domain_interface *ring;
static uint32_t store_port;
static uint32_t next_request = 1;
char xs_error[32];
char xs_last_event[256];
uint64_t xs_watch_events;
static uint64_t events_seen;

void xs_init(const struct pvk_start_info *info)
{
    const uint64_t *m2p = (const uint64_t *)PVK_MACH2PHYS_VIRT_START;
    ring = (volatile struct pvk_xenstore_domain_interface *)(__pvk_virt_base + m2p[info->store_mfn] * 4096);
    store_port = info->store_evtchn;
}

static void notify(void)
{
    struct pvk_evtchn_send send = {.port = store_port};
    pvk_evtchnop_send(&send);
}

static void put(const void *bytes, uint32_t length)
{
    const char *from = bytes;
    for (uint32_t done = 0; done < length;) {
        if (ring->req_prod - ring->req_cons == PVK_XENSTORE_RING_SIZE) {
            notify();
            pvk_schedop_yield();
            continue;
        }
        ring->req[ring->req_prod % PVK_XENSTORE_RING_SIZE] = from[done++];
        __asm__ volatile("" ::: "memory");
        ring->req_prod = ring->req_prod + 1;
    }
}

static void get(void *bytes, uint32_t length)
{
    char *to = bytes;
    for (uint32_t done = 0; done < length;) {
        if (ring->rsp_prod == ring->rsp_cons) {
            pvk_schedop_yield();
            continue;
        }
        __asm__ volatile("" ::: "memory");
        to[done++] = ring->rsp[ring->rsp_cons % PVK_XENSTORE_RING_SIZE];
        ring->rsp_cons = ring->rsp_cons + 1;
    }
    notify();
}

/* Reads one message; watch events are recorded and 0 returned, else 1 with the header. */
static int get_message(struct pvk_xsd_sockmsg *header, char *payload, uint32_t capacity, int *fits)
{
    get(header, sizeof *header);
    *fits = header->len < capacity;
    for (uint32_t i = 0; i < header->len; ++i) {
        char c;
        get(&c, 1);
        if (i < capacity)
            payload[i] = c;
    }
    if (*fits)
        payload[header->len] = '\0';
    if (header->type != PVK_XS_WATCH_EVENT)
        return 1;
    for (uint32_t i = 0; i < sizeof xs_last_event; ++i)
        xs_last_event[i] = i < header->len && i < capacity ? payload[i] : '\0';
    ++xs_watch_events;
    return 0;
}

void xs_send_raw(const void *bytes, uint32_t length)
{
    put(bytes, length);
    notify();
}

volatile struct pvk_xenstore_domain_interface *xs_ring(void)
{
    return ring;
}

int xs_request(uint32_t type, uint32_t transaction, const char *payload, uint32_t length, char *reply,
               uint32_t capacity)
{
    const struct pvk_xsd_sockmsg header = {.type = type, .req_id = next_request++, .tx_id = transaction, .len = length};
    put(&header, sizeof header);
    put(payload, length);
    notify();
    struct pvk_xsd_sockmsg answer;
    int fits;
    while (!get_message(&answer, reply, capacity, &fits) || answer.req_id != header.req_id)
        ;
    return fits ? (int)answer.type : -1;
}

static uint32_t length_of(const char *text)
{
    uint32_t length = 0;
    while (text[length] != '\0')
        ++length;
    return length;
}

static int check(int type, uint32_t expected, const char *reply)
{
    if (type == (int)expected)
        return 0;
    for (uint32_t i = 0; i < sizeof xs_error; ++i)
        xs_error[i] = type == PVK_XS_ERROR && i + 1 < sizeof xs_error ? reply[i] : '\0';
    return -1;
}

/* A request whose payload is `path` with its NUL, then `rest_length` bytes of `rest`. */
static int path_request(uint32_t type, uint32_t transaction, const char *path, const char *rest, uint32_t rest_length)
{
    char message[512], reply[64];
    const uint32_t path_length = length_of(path) + 1;
    if (path_length + rest_length > sizeof message)
        return -1;
    for (uint32_t i = 0; i < path_length; ++i)
        message[i] = path[i];
    for (uint32_t i = 0; i < rest_length; ++i)
        message[path_length + i] = rest[i];
    return check(xs_request(type, transaction, message, path_length + rest_length, reply, sizeof reply), type, reply);
}

int xs_write(uint32_t transaction, const char *path, const char *value)
{
    return path_request(PVK_XS_WRITE, transaction, path, value, length_of(value));
}

int xs_read(uint32_t transaction, const char *path, char *value, uint32_t capacity)
{
    return check(xs_request(PVK_XS_READ, transaction, path, length_of(path) + 1, value, capacity), PVK_XS_READ, value);
}

int xs_set_perms(const char *path, const char *perms, uint32_t perms_length)
{
    return path_request(PVK_XS_SET_PERMS, 0, path, perms, perms_length);
}

int xs_watch(const char *path, const char *token)
{
    return path_request(PVK_XS_WATCH, 0, path, token, length_of(token) + 1);
}

int xs_transaction_start(uint32_t *transaction)
{
    char reply[32];
    if (check(xs_request(PVK_XS_TRANSACTION_START, 0, "", 1, reply, sizeof reply), PVK_XS_TRANSACTION_START, reply) != 0)
        return -1;
    *transaction = (uint32_t)xs_parse_decimal(reply);
    return 0;
}

int xs_transaction_end(uint32_t transaction, int commit)
{
    char reply[32];
    return check(xs_request(PVK_XS_TRANSACTION_END, transaction, commit ? "T" : "F", 2, reply, sizeof reply),
                 PVK_XS_TRANSACTION_END, reply);
}

int xs_wait_watch_event(void)
{
    while (xs_watch_events == events_seen) {
        if (ring->rsp_prod == ring->rsp_cons) {
            pvk_schedop_yield();
            continue;
        }
        struct pvk_xsd_sockmsg header;
        char payload[256];
        int fits;
        get_message(&header, payload, sizeof payload, &fits);
    }
    events_seen = xs_watch_events;
    return 0;
}

void xs_decimal(uint64_t value, char *text)
{
    char digits[21];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int i = 0; i < count; ++i)
        text[i] = digits[count - 1 - i];
    text[count] = '\0';
}

uint64_t xs_parse_decimal(const char *text)
{
    uint64_t value = 0;
    for (; *text >= '0' && *text <= '9'; ++text)
        value = value * 10 + (uint64_t)(*text - '0');
    return value;
}

// pvkit/xenstore.h: the C functions over XenstoreClient and xenbus, the client living in the
// caller's struct pvk_xs_client.
#include <guest/xenbus.hpp>
#include <guest/xenstore.hpp>
#include <pvkit/xenstore.h>

#include <new>

namespace {
using namespace pvkit::guest;

// The C callbacks as a StoreChannel.
class CChannel final : public StoreChannel {
public:
    explicit CChannel(const pvk_xs_channel& channel) : channel_{channel} {}
    void notify() override { channel_.notify(channel_.context); }
    bool wait(std::uint64_t deadline) override { return channel_.wait(channel_.context, deadline) != 0; }
    std::uint64_t now() override { return channel_.now(channel_.context); }

private:
    pvk_xs_channel channel_;
};

struct CClient {
    CClient(pvk_xenstore_domain_interface& page, const pvk_xs_channel& callbacks)
        : channel{callbacks}, client{reinterpret_cast<pvkit::abi::xenstore_domain_interface&>(page), channel} {}
    CChannel channel;
    XenstoreClient client;
};

static_assert(sizeof(CClient) <= sizeof(pvk_xs_client), "PVK_XS_CLIENT_BYTES is too small");
static_assert(alignof(CClient) <= alignof(pvk_xs_client));
static_assert(sizeof(pvk_xenstore_domain_interface) == sizeof(pvkit::abi::xenstore_domain_interface));
static_assert(sizeof(pvk_xs_perm) == 4 && static_cast<int>(XsAccess::both) == PVK_XS_PERM_BOTH);
static_assert(static_cast<std::uint32_t>(XenbusState::closed) == PVK_XENBUS_CLOSED);

}  // namespace

namespace pvkit::guest {
// The C++ client inside a C one (the runtime's xenstore() gives it out).
XenstoreClient& client_of(pvk_xs_client* xs) { return std::launder(reinterpret_cast<CClient*>(xs->opaque))->client; }
}  // namespace pvkit::guest

namespace {

const XenstoreClient& client_of(const pvk_xs_client* xs) {
    return std::launder(reinterpret_cast<const CClient*>(xs->opaque))->client;
}

// A C string as a view; no strlen in a freestanding guest.
std::string_view text(const char* string) {
    std::size_t length = 0;
    while (string != nullptr && string[length] != '\0')
        ++length;
    return {string, length};
}

template <class T>
int status(const XsResult<T>& result) {
    return result.xen_errno();
}

}  // namespace

extern "C" {

void pvk_xs_init(pvk_xs_client* xs, pvk_xenstore_domain_interface* page, const pvk_xs_channel* channel) {
    new (xs->opaque) CClient(*page, *channel);
}

void pvk_xs_set_timeout(pvk_xs_client* xs, uint64_t nanoseconds) { client_of(xs).set_timeout(nanoseconds); }

int pvk_xs_broken(const pvk_xs_client* xs) { return static_cast<int>(client_of(xs).broken()); }

int pvk_xs_read(pvk_xs_client* xs, uint32_t tx, const char* path, char* value, size_t capacity, size_t* length) {
    XsResult<std::size_t> read = client_of(xs).read(text(path), {value, capacity}, {tx});
    if (read && length != nullptr)
        *length = *read;
    return status(read);
}

int pvk_xs_write(pvk_xs_client* xs, uint32_t tx, const char* path, const char* value) {
    return status(client_of(xs).write(text(path), text(value), {tx}));
}

int pvk_xs_write_bytes(pvk_xs_client* xs, uint32_t tx, const char* path, const void* value, size_t length) {
    return status(client_of(xs).write(text(path), {static_cast<const char*>(value), length}, {tx}));
}

int pvk_xs_mkdir(pvk_xs_client* xs, uint32_t tx, const char* path) {
    return status(client_of(xs).mkdir(text(path), {tx}));
}

int pvk_xs_rm(pvk_xs_client* xs, uint32_t tx, const char* path) { return status(client_of(xs).rm(text(path), {tx})); }

int pvk_xs_directory(pvk_xs_client* xs, uint32_t tx, const char* path, char* names, size_t capacity, size_t* count) {
    XsResult<XsNames> listed = client_of(xs).directory(text(path), {names, capacity}, {tx});
    if (listed && count != nullptr)
        *count = listed->count;
    return status(listed);
}

int pvk_xs_get_perms(pvk_xs_client* xs, uint32_t tx, const char* path, pvk_xs_perm* perms, size_t capacity,
                     size_t* count) {
    XsPermission entries[16];
    XsResult<std::size_t> got = client_of(xs).get_perms(text(path), entries, {tx});
    if (!got)
        return status(got);
    if (count != nullptr)
        *count = *got;
    if (*got > capacity)
        return -static_cast<int>(XsErrc::erange);
    for (std::size_t i = 0; i < *got; ++i)
        perms[i] = {entries[i].domain, static_cast<uint8_t>(entries[i].access)};
    return 0;
}

int pvk_xs_set_perms(pvk_xs_client* xs, uint32_t tx, const char* path, const pvk_xs_perm* perms, size_t count) {
    XsPermission entries[16];
    if (count > sizeof entries / sizeof entries[0])
        return -static_cast<int>(XsErrc::e2big);
    for (std::size_t i = 0; i < count; ++i)
        entries[i] = {perms[i].domain, static_cast<XsAccess>(perms[i].access)};
    return status(client_of(xs).set_perms(text(path), {entries, count}, {tx}));
}

int pvk_xs_watch(pvk_xs_client* xs, const char* path, const char* token) {
    return status(client_of(xs).watch(text(path), text(token)));
}

int pvk_xs_unwatch(pvk_xs_client* xs, const char* path, const char* token) {
    return status(client_of(xs).unwatch(text(path), text(token)));
}

int pvk_xs_transaction_start(pvk_xs_client* xs, uint32_t* tx) {
    XsResult<XsTransaction> started = client_of(xs).transaction_start();
    if (started)
        *tx = started->id;
    return status(started);
}

int pvk_xs_transaction_end(pvk_xs_client* xs, uint32_t tx, int commit) {
    return status(client_of(xs).transaction_end({tx}, commit != 0));
}

int pvk_xs_get_domain_path(pvk_xs_client* xs, uint16_t domain, char* path, size_t capacity) {
    return status(client_of(xs).get_domain_path(domain, {path, capacity}));
}

int pvk_xs_next_event(pvk_xs_client* xs, char* buffer, size_t capacity, uint64_t deadline, const char* token,
                      const char** path, const char** event_token) {
    XsResult<XsWatchEvent> event = client_of(xs).next_event({buffer, capacity}, deadline, text(token));
    if (event) {
        // Both strings are NUL-ended in the buffer, as the event carried them.
        *path = event->path.data();
        *event_token = event->token.data();
    }
    return status(event);
}

int pvk_xenbus_read_state(pvk_xs_client* xs, const char* device, uint32_t* state) {
    XsResult<XenbusState> read = read_state(client_of(xs), text(device));
    if (read)
        *state = static_cast<uint32_t>(*read);
    return status(read);
}

int pvk_xenbus_read_number(pvk_xs_client* xs, const char* device, const char* key, uint64_t max, uint64_t* value) {
    XsResult<std::uint64_t> read = read_number(client_of(xs), text(device), text(key), max);
    if (read)
        *value = *read;
    return status(read);
}

int pvk_xenbus_switch_state(pvk_xs_client* xs, const char* device, uint32_t state) {
    return status(switch_state(client_of(xs), text(device), static_cast<XenbusState>(state)));
}

int pvk_xenbus_wait_for_state(pvk_xs_client* xs, const char* other_end, uint32_t wanted, uint64_t deadline,
                              uint32_t* seen) {
    XenbusState last = XenbusState::unknown;
    const int result = status(wait_for_state(client_of(xs), text(other_end), static_cast<XenbusState>(wanted),
                                             deadline, &last));
    if (seen != nullptr)
        *seen = static_cast<uint32_t>(last);
    return result;
}

int pvk_xenbus_wait_while_closed(pvk_xs_client* xs, const char* other_end, uint64_t deadline, uint32_t* state) {
    const XsResult<XenbusState> left = wait_while_closed(client_of(xs), text(other_end), deadline);
    if (left && state != nullptr)
        *state = static_cast<uint32_t>(*left);
    return status(left);
}

int pvk_xenbus_read_other_end(pvk_xs_client* xs, const char* device, int backend, char* path, size_t capacity,
                              uint16_t* domain) {
    XsResult<XenbusPeer> peer = read_other_end(client_of(xs), text(device),
                                               backend != 0 ? XenbusEnd::backend : XenbusEnd::frontend,
                                               {path, capacity});
    if (peer && domain != nullptr)
        *domain = peer->domain;
    return status(peer);
}

int pvk_xenbus_publish(pvk_xs_client* xs, const char* device, const pvk_xenbus_key* keys, size_t count,
                       uint32_t state) {
    XenbusKey entries[16];
    if (count > sizeof entries / sizeof entries[0])
        return -static_cast<int>(XsErrc::e2big);
    for (std::size_t i = 0; i < count; ++i)
        entries[i] = {text(keys[i].name), text(keys[i].value)};
    return status(publish(client_of(xs), text(device), {entries, count}, static_cast<XenbusState>(state)));
}

}  // extern "C"

// xenbus: device paths, state changes and the handshake's waits over the xenstore client.
#include <guest/xenbus.hpp>

#include "text.hpp"

#include <optional>

namespace pvkit::guest {
namespace {

// The watch token of wait_for_state(); one wait at a time per client (requests are synchronous).
constexpr std::string_view state_token = "pvkit-xenbus-state";

struct PathBuffer {
    char bytes[xenbus_path_max];
};

// `<device>/<key>` into `buffer`.
XsResult<std::string_view> key_path(PathBuffer& buffer, std::string_view device, std::string_view key) {
    TextBuilder path{buffer.bytes};
    path.add(device).add("/").add(key);
    if (path.overflowing())
        return XsErrc::enametoolong;
    return path.text();
}

XsResult<XenbusState> parse_state(std::string_view text) {
    std::uint64_t number = 0;
    if (!parse_decimal(text, static_cast<std::uint64_t>(XenbusState::reconfigured), number))
        return XsErrc::ebadmsg;
    return static_cast<XenbusState>(number);
}

bool closing(XenbusState state) { return state == XenbusState::closing || state == XenbusState::closed; }

// Runs `body(tx)` in a transaction and commits, again while the commit ends EAGAIN. body returns
// an error to abort (a body error of EAGAIN is retried too); `done` set by body ends without a
// write (the transaction is aborted, which cannot conflict).
template <class Body>
XsResult<void> in_transaction(XenstoreClient& store, Body body) {
    for (unsigned attempt = 0; attempt < xenbus_transaction_attempts; ++attempt) {
        XsResult<XsTransaction> tx = store.transaction_start();
        if (!tx)
            return tx.error();
        bool done = false;
        XsResult<void> applied = body(*tx, done);
        if (!applied || done) {
            // The body's outcome stands whatever the abort says (it can only fail as the ring does).
            (void)store.transaction_end(*tx, false);
            if (!applied && applied.error() == XsErrc::eagain)
                continue;
            return applied;
        }
        XsResult<void> committed = store.transaction_end(*tx, true);
        if (committed || committed.error() != XsErrc::eagain)
            return committed;
    }
    return XsErrc::eagain;
}

}  // namespace

XsResult<std::string_view> frontend_device_path(std::span<char> path, DomainId front, std::string_view type,
                                                std::uint32_t id) {
    TextBuilder text{path};
    text.add("/local/domain/").add_decimal(front).add("/device/").add(type).add("/").add_decimal(id);
    if (text.overflowing())
        return XsErrc::enametoolong;
    return text.text();
}

XsResult<std::string_view> backend_device_path(std::span<char> path, DomainId back, std::string_view type,
                                               DomainId front, std::uint32_t id) {
    TextBuilder text{path};
    text.add("/local/domain/").add_decimal(back).add("/backend/").add(type).add("/").add_decimal(front);
    text.add("/").add_decimal(id);
    if (text.overflowing())
        return XsErrc::enametoolong;
    return text.text();
}

XsResult<XenbusState> read_state(XenstoreClient& store, std::string_view device) {
    PathBuffer buffer;
    XsResult<std::string_view> path = key_path(buffer, device, "state");
    if (!path)
        return path.error();
    char value[decimal_digits_max + 1];
    XsResult<std::size_t> length = store.read(*path, value);
    // Gone, or gone with the other end's domain (whose home no longer grants this one a read):
    // unknown, as Linux reads any state it cannot read.
    if (!length)
        return length.error() == XsErrc::enoent || length.error() == XsErrc::eacces
                   ? XsResult<XenbusState>{XenbusState::unknown}
                   : length.error();
    return parse_state({value, *length});
}

XsResult<std::uint64_t> parse_number(std::string_view text, std::uint64_t max) {
    std::uint64_t number = 0;
    if (!parse_decimal(text, max, number))
        return XsErrc::ebadmsg;
    return number;
}

XsResult<std::uint64_t> read_number(XenstoreClient& store, std::string_view device, std::string_view key,
                                    std::uint64_t max) {
    PathBuffer buffer;
    XsResult<std::string_view> path = key_path(buffer, device, key);
    if (!path)
        return path.error();
    char value[decimal_digits_max + 1];
    XsResult<std::size_t> length = store.read(*path, value);
    if (!length)
        return length.error() == XsErrc::erange ? XsErrc::ebadmsg : length.error();  // too long for a number
    return parse_number({value, *length}, max);
}

XsResult<void> switch_state(XenstoreClient& store, std::string_view device, XenbusState state) {
    PathBuffer buffer;
    XsResult<std::string_view> path = key_path(buffer, device, "state");
    if (!path)
        return path.error();
    return in_transaction(store, [&](XsTransaction tx, bool& done) -> XsResult<void> {
        char value[decimal_digits_max + 1];
        XsResult<std::size_t> length = store.read(*path, value, tx);
        if (!length)
            return length.error();
        XsResult<XenbusState> current = parse_state({value, *length});
        if (current && *current == state) {
            done = true;
            return {};
        }
        return store.write(*path, {value, format_decimal(static_cast<std::uint32_t>(state), value)}, tx);
    });
}

namespace {
// Reads `<other_end>/state` and hands it to `until`, again at each change, until it returns an
// outcome (or the read fails, or `deadline` passes: ETIME), through a watch set for the call and
// removed before it returns.
template <typename Until>
XsResult<void> watch_state(XenstoreClient& store, std::string_view other_end, std::uint64_t deadline, Until until) {
    PathBuffer buffer;
    XsResult<std::string_view> path = key_path(buffer, other_end, "state");
    if (!path)
        return path.error();
    if (XsResult<void> watched = store.watch(*path, state_token); !watched)
        return watched.error();
    XsResult<void> outcome{};
    for (;;) {
        // Read first, then wait: every change after this read fires the watch, so none is missed.
        store.discard_events(state_token);
        XsResult<XenbusState> state = read_state(store, other_end);
        if (!state) {
            outcome = state.error();
            break;
        }
        if (const std::optional<XsResult<void>> said = until(*state)) {
            outcome = *said;
            break;
        }
        if (XsResult<void> waited = store.wait_for_event(state_token, deadline); !waited) {
            outcome = waited.error();
            break;
        }
    }
    XsResult<void> unwatched = store.unwatch(*path, state_token);
    store.discard_events(state_token);
    return outcome ? unwatched : outcome;
}
}  // namespace

XsResult<void> wait_for_state(XenstoreClient& store, std::string_view other_end, XenbusState wanted,
                              std::uint64_t deadline, XenbusState* seen) {
    return watch_state(store, other_end, deadline, [&](XenbusState state) -> std::optional<XsResult<void>> {
        if (seen != nullptr)
            *seen = state;
        if (state == wanted)
            return XsResult<void>{};
        if (closing(state) && !closing(wanted))
            return XsResult<void>{XsErrc::enodev};
        return std::nullopt;
    });
}

XsResult<XenbusState> wait_while_closed(XenstoreClient& store, std::string_view other_end, std::uint64_t deadline) {
    XenbusState last = XenbusState::unknown;
    XsResult<void> left = watch_state(store, other_end, deadline, [&](XenbusState state) -> std::optional<XsResult<void>> {
        last = state;
        return closing(state) ? std::nullopt : std::optional<XsResult<void>>{XsResult<void>{}};
    });
    if (!left)
        return left.error();
    return last;
}

XsResult<XenbusPeer> read_other_end(XenstoreClient& store, std::string_view device, XenbusEnd which,
                                    std::span<char> path) {
    // Views of literals each, so that no strlen runs.
    const std::string_view key =
        which == XenbusEnd::backend ? std::string_view{"backend"} : std::string_view{"frontend"};
    const std::string_view id_key =
        which == XenbusEnd::backend ? std::string_view{"backend-id"} : std::string_view{"frontend-id"};
    PathBuffer buffer;
    XsResult<std::string_view> key_at = key_path(buffer, device, key);
    if (!key_at)
        return key_at.error();
    XsResult<std::size_t> length = store.read(*key_at, path);
    if (!length)
        return length.error();
    XenbusPeer peer{{path.data(), *length}, 0};
    key_at = key_path(buffer, device, id_key);
    if (!key_at)
        return key_at.error();
    char value[decimal_digits_max + 1];
    XsResult<std::size_t> id_length = store.read(*key_at, value);
    if (!id_length)
        return id_length.error();
    std::uint64_t domain = 0;
    if (!parse_decimal({value, *id_length}, 0xffff, domain))
        return XsErrc::ebadmsg;
    peer.domain = static_cast<DomainId>(domain);
    return peer;
}

XsResult<void> publish(XenstoreClient& store, std::string_view device, std::span<const XenbusKey> keys,
                       XenbusState state) {
    return in_transaction(store, [&](XsTransaction tx, bool&) -> XsResult<void> {
        PathBuffer buffer;
        for (const XenbusKey& key : keys) {
            XsResult<std::string_view> path = key_path(buffer, device, key.name);
            if (!path)
                return path.error();
            if (XsResult<void> written = store.write(*path, key.value, tx); !written)
                return written;
        }
        if (state == XenbusState::unknown)
            return {};
        XsResult<std::string_view> path = key_path(buffer, device, "state");
        if (!path)
            return path.error();
        char value[decimal_digits_max];
        return store.write(*path, {value, format_decimal(static_cast<std::uint32_t>(state), value)}, tx);
    });
}

}  // namespace pvkit::guest

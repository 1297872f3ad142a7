// xenbus: the handshake of Xen's split drivers, through the xenstore.
//
// A device has two directories. The toolstack (libxl, or whoever builds the domains; in the unit
// tests, the test through hv::xenstore::Store) creates both before either driver starts:
//   frontend  /local/domain/<front>/device/<type>/<id>           owned by the frontend domain,
//             readable by the backend; keys backend, backend-id, state = 1
//   backend   /local/domain/<back>/backend/<type>/<front>/<id>   owned by the backend domain,
//             readable by the frontend; keys frontend, frontend-id, state = 1, and the device's
//             parameters (a vbd's params, mode...)
// Then each end moves its own `state` node through XenbusState and watches the other's: for a
// blkfront/blkback pair, the backend goes InitWait once it can take a ring, the frontend grants
// its ring page, writes ring-ref and event-channel (publish(), one transaction) and goes
// Initialised, the backend maps them and goes Connected, and the frontend goes Connected too.
// Teardown goes Closing then Closed on both sides.
#pragma once

#include <guest/xenstore.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace pvkit::guest {

// io/xenbus.h's enum xenbus_state.
enum class XenbusState : std::uint32_t {
    unknown = 0,
    initialising = 1,
    init_wait = 2,
    initialised = 3,
    connected = 4,
    closing = 5,
    closed = 6,
    reconfiguring = 7,
    reconfigured = 8,
};

// Paths are built in buffers of this size (NUL included); longer ones are ENAMETOOLONG.
inline constexpr std::size_t xenbus_path_max = 256;
// Transactions are tried this many times while they end EAGAIN; then EAGAIN is returned.
inline constexpr unsigned xenbus_transaction_attempts = 16;

// "/local/domain/<front>/device/<type>/<id>" into `path` (with a NUL after it).
XsResult<std::string_view> frontend_device_path(std::span<char> path, DomainId front, std::string_view type,
                                                std::uint32_t id);
// "/local/domain/<back>/backend/<type>/<front>/<id>" into `path`.
XsResult<std::string_view> backend_device_path(std::span<char> path, DomainId back, std::string_view type,
                                               DomainId front, std::uint32_t id);

// `<device>/state`; a missing node, or one this domain may no longer read (its domain is gone), is
// `unknown` (as Linux reads it). EBADMSG when the node holds anything but a state's number.
XsResult<XenbusState> read_state(XenstoreClient& store, std::string_view device);

// A number as the xenstore keeps numbers: decimal text (no sign, no leading zero but "0"), at most
// `max`; EBADMSG for anything else.
XsResult<std::uint64_t> parse_number(std::string_view text, std::uint64_t max = ~std::uint64_t{0});
// `<device>/<key>` read and parsed so (Linux's xenbus_read_unsigned, without its default): the
// read's errors, or EBADMSG.
XsResult<std::uint64_t> read_number(XenstoreClient& store, std::string_view device, std::string_view key,
                                    std::uint64_t max = ~std::uint64_t{0});

// Sets `<device>/state` unless it holds `state` already (no watch then fires), in a transaction
// so that a node the toolstack removed is not made again: ENOENT then.
XsResult<void> switch_state(XenstoreClient& store, std::string_view device, XenbusState state);

// Waits until `<other_end>/state` is `wanted`, through a watch on it (set for the call, removed
// before it returns). ENODEV when the other end goes Closing or Closed instead (unless that is what
// is wanted); ETIME when `deadline` passes. The state last seen goes to `*seen` if given.
XsResult<void> wait_for_state(XenstoreClient& store, std::string_view other_end, XenbusState wanted,
                              std::uint64_t deadline, XenbusState* seen = nullptr);
// Waits while `<other_end>/state` is Closing or Closed, as a frontend coming back (Initialising
// again) does for its backend's answer; the state it then holds (Unknown when the other end is
// gone), or ETIME.
XsResult<XenbusState> wait_while_closed(XenstoreClient& store, std::string_view other_end, std::uint64_t deadline);

enum class XenbusEnd : std::uint8_t { backend, frontend };

// The other end of a device, as its directory names it: `<device>/backend` and `backend-id` (or
// frontend, frontend-id). The path is copied into `path`.
struct XenbusPeer {
    std::string_view path;
    DomainId domain = 0;
};
XsResult<XenbusPeer> read_other_end(XenstoreClient& store, std::string_view device, XenbusEnd which,
                                    std::span<char> path);

// One key to publish under a device directory.
struct XenbusKey {
    std::string_view name;   // relative to the device: "ring-ref", "event-channel"...
    std::string_view value;
};

// Writes every key under `device` and, unless `state` is unknown, the device's state, in one
// transaction, started again while it ends EAGAIN (xenbus_transaction_attempts times).
XsResult<void> publish(XenstoreClient& store, std::string_view device, std::span<const XenbusKey> keys,
                       XenbusState state = XenbusState::unknown);

}  // namespace pvkit::guest

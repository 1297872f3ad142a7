// The xenstore client: requests over the store page that start_info names (store_mfn,
// store_evtchn), in the xs_wire protocol of Xen's io/xs_wire.h.
//
// The page holds two byte rings of XENSTORE_RING_SIZE bytes: req[] (the guest produces, req_prod
// is ours, req_cons the store's) and rsp[] (the store produces replies and watch events, rsp_prod
// is the store's, rsp_cons ours). Indexes run free and wrap at 2^32; a byte's slot is the index
// modulo the ring size. Every message is an xsd_sockmsg header (type, req_id, tx_id, len) and len
// bytes of payload, at most XENSTORE_PAYLOAD_MAX, in any number of pieces.
//
// How the client works. One request at a time: it writes the request as far as req[] has room,
// notifies, and while the rest waits for room (or the reply is awaited) it takes whatever rsp[]
// holds. Watch events (XS_WATCH_EVENT) may come before the reply: they are queued in the client's
// own fixed storage (event_storage bytes) and handed out by next_event(); an event that does not
// fit is dropped and counted (dropped_events()), never blocks the ring. A reply's payload goes
// straight into the caller's buffer, so nothing is allocated and no 4 KiB copy is kept.
//
// The store is not trusted. The store's indexes are read once per pass: a req_cons past our
// req_prod or an rsp_prod more than a ring ahead of rsp_cons, or a header with len over
// XENSTORE_PAYLOAD_MAX, breaks the connection for good (the stream can no longer be followed):
// that call and every later one fail ENOTCONN, and broken() says why. A reply we cannot make sense
// of (wrong type or transaction, payload not in the message's format) fails that one call with
// EBADMSG and the connection goes on. Only slots index % size are ever touched.
//
// Nothing locks: one caller at a time per client (a guest with several vCPUs serializes its calls).
//
// Waiting is not ours: the guest's runtime (or a test) gives a StoreChannel that notifies the
// store's event channel and waits for it to fire, up to a deadline on its own clock.
#pragma once

#include <pvkit/abi.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pvkit::guest {

using DomainId = abi::domid_t;
using XsErrc = abi::Errc;

// The value of an operation, or the error: a Xen errno. Errors the store sends are its names
// parsed back (ENOENT, EACCES, EAGAIN, ...; an unknown name is EIO); the client's own are
//   ETIME     the deadline passed first (a reply coming later is recognised and dropped)
//   ENOTCONN  the connection is broken (broken() says why); nothing more goes through it
//   EBADMSG   the store's reply was not what the request calls for; the connection goes on
//   ERANGE    the caller's buffer is too small for the reply (which is then dropped)
//   E2BIG     the request would be over XENSTORE_PAYLOAD_MAX; nothing was sent
//   EINVAL    an argument holds a NUL byte, or a permission is malformed; nothing was sent
template <class T>
class [[nodiscard]] XsResult {
public:
    constexpr XsResult(T value) : ok_{true}, value_{value} {}
    constexpr XsResult(XsErrc error) : ok_{false}, error_{error} {}
    constexpr explicit operator bool() const { return ok_; }
    constexpr const T& operator*() const { return value_; }
    constexpr const T* operator->() const { return &value_; }
    constexpr XsErrc error() const { return ok_ ? XsErrc{} : error_; }
    // 0, or the error negated as a hypercall would return it.
    constexpr int xen_errno() const { return ok_ ? 0 : -static_cast<int>(error_); }

private:
    bool ok_;
    union {
        T value_;
        XsErrc error_;
    };
};

template <>
class [[nodiscard]] XsResult<void> {
public:
    constexpr XsResult() = default;
    constexpr XsResult(XsErrc error) : error_{error} {}
    constexpr explicit operator bool() const { return error_ == XsErrc{}; }
    constexpr XsErrc error() const { return error_; }
    constexpr int xen_errno() const { return -static_cast<int>(error_); }

private:
    XsErrc error_{};
};

// The guest's side of the store's event channel, given by the runtime (or a test).
class StoreChannel {
public:
    // Signals the store (EVTCHNOP_send on start_info's store_evtchn).
    virtual void notify() = 0;
    // Returns once the store's port fired since the last return (at once if it did already), or
    // false when `deadline` (on now()'s clock) passes first. Returning true with nothing new is
    // allowed: the client looks at the ring again and waits again.
    virtual bool wait(std::uint64_t deadline) = 0;
    // The clock of deadlines, in nanoseconds (Xen system time in a guest).
    virtual std::uint64_t now() = 0;

protected:
    ~StoreChannel() = default;
};

// A transaction; id 0 is "none": the operation is applied on its own.
struct XsTransaction {
    std::uint32_t id = 0;
};

// Access letters of a permission string: n, r, w, b.
enum class XsAccess : std::uint8_t { none, read, write, both };

// One entry of a node's permission list: entry 0 is the owner and everyone else's access.
struct XsPermission {
    DomainId domain = 0;
    XsAccess access = XsAccess::none;
};

// A watch event: views into the buffer given to next_event().
struct XsWatchEvent {
    std::string_view path;
    std::string_view token;
};

// string_view's find() calls memchr and substr() may throw, neither of which a freestanding guest
// has: the client looks for NULs with this. The index of the first NUL at or after `from`, or
// text.size() when there is none.
constexpr std::size_t find_nul(std::string_view text, std::size_t from = 0) {
    while (from < text.size() && text[from] != '\0')
        ++from;
    return from;
}

// Names returned by directory(): views into the caller's buffer, each name NUL-ended there.
struct XsNames {
    std::string_view bytes;  // every name with its NUL
    std::size_t count = 0;

    struct Iterator {
        std::string_view rest;
        std::string_view operator*() const { return {rest.data(), find_nul(rest)}; }
        Iterator& operator++() {
            const std::size_t end = find_nul(rest);
            rest.remove_prefix(end < rest.size() ? end + 1 : end);
            return *this;
        }
        bool operator==(const Iterator& other) const { return rest.size() == other.rest.size(); }
    };
    Iterator begin() const { return {bytes}; }
    Iterator end() const { return {{bytes.data() + bytes.size(), 0}}; }
};

// Why a connection broke (ENOTCONN for good).
enum class XsBroken : std::uint8_t {
    no,
    request_indexes,      // the store's req_cons is past our req_prod
    response_indexes,     // the store's rsp_prod is more than a ring ahead of rsp_cons
    oversized_message,    // a header's len is over XENSTORE_PAYLOAD_MAX
    interrupted_request,  // the deadline passed with a request half-written into req[]
};

class XenstoreClient {
public:
    static constexpr std::uint64_t forever = ~std::uint64_t{0};
    static constexpr std::size_t event_storage = 4096;
    // Scratch for short replies (OK, error names, numbers) and permission strings.
    static constexpr std::size_t scratch_size = 512;

    // Takes the page's indexes as they are (a boot loader may have used the ring before).
    XenstoreClient(abi::xenstore_domain_interface& page, StoreChannel& channel);
    XenstoreClient(const XenstoreClient&) = delete;
    XenstoreClient& operator=(const XenstoreClient&) = delete;

    // How long each request may take, in nanoseconds of the channel's clock; forever by default.
    void set_timeout(std::uint64_t nanoseconds) { timeout_ = nanoseconds; }

    // The value, copied into `value` with a NUL after it; returns its length (ERANGE when
    // value.size() < length + 1).
    XsResult<std::size_t> read(std::string_view path, std::span<char> value, XsTransaction tx = {});
    XsResult<void> write(std::string_view path, std::string_view value, XsTransaction tx = {});
    XsResult<void> mkdir(std::string_view path, XsTransaction tx = {});
    XsResult<void> rm(std::string_view path, XsTransaction tx = {});
    // The children's names, into `names`.
    XsResult<XsNames> directory(std::string_view path, std::span<char> names, XsTransaction tx = {});
    // Copies the node's permission list into `perms`; returns its length (ERANGE if longer).
    XsResult<std::size_t> get_perms(std::string_view path, std::span<XsPermission> perms, XsTransaction tx = {});
    XsResult<void> set_perms(std::string_view path, std::span<const XsPermission> perms, XsTransaction tx = {});
    // A watch fires once at once, then on every change at or below `path`.
    XsResult<void> watch(std::string_view path, std::string_view token);
    XsResult<void> unwatch(std::string_view path, std::string_view token);
    XsResult<XsTransaction> transaction_start();
    // Commits (or aborts) and ends the transaction. EAGAIN: the store changed meanwhile and nothing
    // was committed; start again.
    XsResult<void> transaction_end(XsTransaction tx, bool commit);
    // "/local/domain/<domain>", into `path` with a NUL after it.
    XsResult<std::string_view> get_domain_path(DomainId domain, std::span<char> path);

    // The oldest queued watch event (with `token`, if one is given), copied into `buffer`, waiting
    // for one until `deadline` (0: only what has arrived). ETIME when none came; ERANGE when it
    // does not fit (it stays queued).
    XsResult<XsWatchEvent> next_event(std::span<char> buffer, std::uint64_t deadline, std::string_view token = {});
    // Waits until an event with `token` (any, if empty) is queued or an event has been dropped
    // since the call began (the caller should then look again at what it watches); ETIME.
    XsResult<void> wait_for_event(std::string_view token, std::uint64_t deadline);
    // Removes the queued events with `token` (all, if empty); returns how many.
    std::size_t discard_events(std::string_view token);
    std::size_t queued_events() const { return queued_events_; }
    std::uint64_t dropped_events() const { return dropped_events_; }
    // Replies that matched no request waiting (late ones after ETIME, or invented), dropped.
    std::uint64_t stale_replies() const { return stale_replies_; }
    XsBroken broken() const { return broken_; }
    std::uint64_t channel_now() { return channel_.now(); }

    // Any request: `parts` are sent one after another as the payload (put the NULs in them); the
    // reply's payload goes to `reply`, whose length is returned. The reply's type must be `type`
    // (XS_ERROR is turned into its error). For messages the operations above do not cover.
    XsResult<std::size_t> request(std::uint32_t type, XsTransaction tx, std::span<const std::string_view> parts,
                                  std::span<char> reply);

private:
    // The message being taken from rsp[].
    enum class Sink : std::uint8_t { header, reply, error, event, discard };

    std::uint64_t request_deadline();
    XsResult<void> send(const abi::xsd_sockmsg& header, std::span<const std::string_view> parts,
                        std::uint64_t deadline);
    XsResult<void> put_bytes(std::string_view bytes, std::uint64_t deadline);
    // After a look at the ring that did (moved) or did not find something: whether to look again,
    // waiting for the port first if nothing moved; false once the deadline has passed.
    bool keep_waiting(bool moved, std::uint64_t deadline);
    bool deadline_passed(std::uint64_t deadline) { return deadline != forever && channel_.now() >= deadline; }
    // Takes what rsp[] holds; returns whether anything was taken.
    bool take_responses();
    void take_byte(char byte);
    void start_message();
    void finish_message();
    void break_connection(XsBroken why) {
        if (broken_ == XsBroken::no)
            broken_ = why;
    }
    // A request whose reply must be "OK".
    XsResult<void> expect_ok(std::uint32_t type, XsTransaction tx, std::span<const std::string_view> parts);
    // Requests whose payload is `path` and its NUL.
    XsResult<std::size_t> path_request(std::uint32_t type, std::string_view path, XsTransaction tx,
                                       std::span<char> reply);
    XsResult<void> path_ok_request(std::uint32_t type, std::string_view path, XsTransaction tx);
    // The first queued event record with `token` (any, if empty): its offset, or event_storage.
    std::size_t find_event(std::string_view token) const;
    void remove_event(std::size_t offset);

    abi::xenstore_domain_interface& page_;
    StoreChannel& channel_;
    std::uint64_t timeout_ = forever;
    abi::XENSTORE_RING_IDX req_prod_;
    abi::XENSTORE_RING_IDX rsp_cons_;
    XsBroken broken_ = XsBroken::no;
    std::uint32_t next_req_id_ = 1;

    // The request waiting for its reply (req_id 0: none), and where its reply goes.
    std::uint32_t waiting_req_id_ = 0;
    bool reply_done_ = false;
    abi::xsd_sockmsg reply_header_{};
    char* reply_buffer_ = nullptr;
    std::size_t reply_capacity_ = 0;
    std::size_t reply_length_ = 0;  // payload bytes that arrived (some may not have fit)

    // Reassembly of the message being taken.
    Sink sink_ = Sink::header;
    unsigned char header_bytes_[sizeof(abi::xsd_sockmsg)]{};
    std::uint32_t header_taken_ = 0;
    abi::xsd_sockmsg incoming_{};
    std::uint32_t payload_taken_ = 0;

    // Queued events: records of a 4-byte length and "path\0token\0", oldest first, in
    // events_[0, events_used_); an event arriving is written after them.
    char events_[event_storage]{};
    std::size_t events_used_ = 0;
    std::size_t queued_events_ = 0;
    std::uint64_t dropped_events_ = 0;
    std::uint64_t stale_replies_ = 0;

    char error_name_[16]{};
    char scratch_[scratch_size]{};
};

// Runtime (images only): this domain's own connection, made on first use from start_info's store
// page and event channel (the channel masked and waited for with guest::wait, the clock
// monotonic_ns); the same client pvk_xenstore() gives C. Null for a domain without a store page
// (the initial domain) or when the runtime cannot start.
XenstoreClient* xenstore();

}  // namespace pvkit::guest

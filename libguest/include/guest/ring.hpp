// Shared request/response rings: the layout and protocol of Xen's public io/ring.h, as a template.
//
// Layout. A SharedRing<Request, Response, Bytes> occupies exactly `Bytes` (a page, or a power-of-two
// number of pages) shared between a front end and a back end. It opens with a 64-byte header:
// req_prod, req_event, rsp_prod, rsp_event (32-bit free-running indexes), a 4-byte private union
// (netif's smartpoll_active, tapif_user's msg) and 44 bytes of padding; then the entries, each a
// union of one request and one response. The entry count is the largest power of two that fits,
// as Xen's __RING_SIZE computes. tests/abi checks all of this against Xen's own macros.
//
// Indexes. Indexes only grow and wrap at 2^32; an index selects entry `index & (size - 1)`, so no
// index, however wild, addresses memory outside the ring. Each end keeps private copies
// (FrontRing: req_prod_pvt, rsp_cons; BackRing: rsp_prod_pvt, req_cons) and publishes its producer
// index with a write fence before it, so the other end sees the entries before the index.
// Invariants each end keeps on its own side:
//   front: rsp_cons <= req_prod_pvt and req_prod_pvt - rsp_cons <= size (requests outstanding);
//   back:  rsp_prod_pvt <= req_cons and req_cons - rsp_prod_pvt <= size (requests being served).
//
// Notification. A consumer that is about to sleep writes `consumed + 1` into the event field
// (req_event / rsp_event) and looks once more (final_check_*); a producer that publishes indexes
// (old, new] must notify if the event index lies in that interval. With the full fence between the
// producer's index write and its event read, and between the consumer's event write and its second
// look, no wake-up is lost: either the producer sees the new event or the consumer sees the work.
//
// Hostility. Indexes written by the other end are read once per operation into a local, and
// entries are copied out before use, so the other end cannot change what was checked. A producer
// index that claims more entries than can exist is reported (RingTake::producer_overflow) and
// nothing is consumed; counts are clamped to the ring size.
//
// Freestanding: no allocation, no exceptions; fences are the compiler's atomic fences.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace pvkit::guest {

using RingIndex = std::uint32_t;  // Xen's RING_IDX

// The fences io/ring.h uses: xen_wmb before publishing a producer index, xen_rmb after reading
// one, xen_mb between publishing and reading the other end's event index.
struct CpuRingFences {
    static void write() { std::atomic_thread_fence(std::memory_order_release); }
    static void read() { std::atomic_thread_fence(std::memory_order_acquire); }
    static void full() { std::atomic_thread_fence(std::memory_order_seq_cst); }
};

// The largest power of two not above `n` (0 for 0), as io/ring.h's __RD32.
constexpr std::size_t round_down_to_power_of_two(std::size_t n) {
    std::size_t power = 1;
    if (n == 0)
        return 0;
    while (power <= n / 2)
        power *= 2;
    return power;
}

inline constexpr std::size_t ring_header_bytes = 64;

template <class Request, class Response, std::size_t Bytes = 4096>
struct SharedRing {
    static_assert(std::is_trivially_copyable_v<Request> && std::is_trivially_copyable_v<Response>,
                  "ring entries are copied between domains byte for byte");
    static_assert(Bytes % 4096 == 0 && (Bytes & (Bytes - 1)) == 0, "a ring is a power-of-two number of pages");

    union Entry {
        Request req;
        Response rsp;
    };
    static constexpr RingIndex size =
        static_cast<RingIndex>(round_down_to_power_of_two((Bytes - ring_header_bytes) / sizeof(Entry)));
    static_assert(size >= 1, "a request or response larger than the ring");

    RingIndex req_prod;
    RingIndex req_event;
    RingIndex rsp_prod;
    RingIndex rsp_event;
    union {
        struct {
            std::uint8_t smartpoll_active;
        } netif;
        struct {
            std::uint8_t msg;
        } tapif_user;
        std::uint8_t pvt_pad[4];
    } pvt;
    std::uint8_t pad[44];
    Entry ring[size];

    // SHARED_RING_INIT: both producers at 0, both consumers asking for the first entry.
    void init() {
        req_prod = rsp_prod = 0;
        req_event = rsp_event = 1;
        for (auto& byte : pvt.pvt_pad)
            byte = 0;
        for (auto& byte : pad)
            byte = 0;
    }
};

// What taking the next entry from the other end's producer gave.
enum class RingTake : std::uint8_t {
    taken,              // one entry copied out and consumed
    empty,              // nothing published beyond what was consumed
    producer_overflow,  // the other end claims more entries than can exist; nothing consumed
};

namespace ring_detail {
inline RingIndex load(const RingIndex& shared) { return __atomic_load_n(&shared, __ATOMIC_RELAXED); }
inline void store(RingIndex& shared, RingIndex value) { __atomic_store_n(&shared, value, __ATOMIC_RELAXED); }

// RING_PUSH_*_AND_CHECK_NOTIFY's rule: notify if the consumer's event index is in (old, new].
constexpr bool event_in_published(RingIndex old_prod, RingIndex new_prod, RingIndex event) {
    return static_cast<RingIndex>(new_prod - event) < static_cast<RingIndex>(new_prod - old_prod);
}

// Copies an entry the other end may still be writing, once, so checks and use see the same bytes.
template <class T>
void copy_out(T& out, const T& shared) {
    auto* to = reinterpret_cast<unsigned char*>(&out);
    auto* from = reinterpret_cast<const volatile unsigned char*>(&shared);
    for (std::size_t i = 0; i < sizeof(T); ++i)
        to[i] = from[i];
}

// Publishes a producer index (RING_PUSH_*): the entries first, then the index.
template <class Fences>
void publish(RingIndex& shared_prod, RingIndex new_prod) {
    Fences::write();
    store(shared_prod, new_prod);
}

// RING_PUSH_*_AND_CHECK_NOTIFY: publishes, then reads the consumer's event index after a full fence.
template <class Fences>
bool publish_and_check_notify(RingIndex& shared_prod, RingIndex new_prod, const RingIndex& shared_event) {
    const RingIndex old_prod = load(shared_prod);
    publish<Fences>(shared_prod, new_prod);
    Fences::full();
    return event_in_published(old_prod, new_prod, load(shared_event));
}

// RING_FINAL_CHECK_FOR_*: `unconsumed` is asked once, and again after asking for an event.
template <class Fences, class Unconsumed>
bool final_check(RingIndex& shared_event, RingIndex consumed, Unconsumed unconsumed) {
    if (unconsumed() != 0)
        return true;
    store(shared_event, consumed + 1);
    Fences::full();
    return unconsumed() != 0;
}

// Writes an entry at `produced` (not yet published), if `room` allows.
template <class Entry, class T>
bool put(Entry* entries, RingIndex size, RingIndex& produced, bool room, T Entry::*member, const T& value) {
    if (!room)
        return false;
    entries[produced & (size - 1)].*member = value;
    ++produced;
    return true;
}

// Takes the entry at `consumed` if the other end published it. The other end's producer index is
// refused if it runs more than `limit` past `base`.
template <class Fences, class Entry, class T>
RingTake take(const RingIndex& shared_prod, RingIndex& consumed, RingIndex base, RingIndex limit, Entry* entries,
              RingIndex size, T Entry::*member, T& out) {
    const RingIndex prod = load(shared_prod);
    Fences::read();  // the entries after the index
    if (static_cast<RingIndex>(prod - base) > limit)
        return RingTake::producer_overflow;
    if (prod == consumed)
        return RingTake::empty;
    copy_out(out, entries[consumed & (size - 1)].*member);
    ++consumed;
    return RingTake::taken;
}
}  // namespace ring_detail

// The front end: produces requests, consumes responses.
template <class Ring, class Fences = CpuRingFences>
class FrontRing {
public:
    using Request = decltype(Ring::Entry::req);
    using Response = decltype(Ring::Entry::rsp);
    static constexpr RingIndex size = Ring::size;

    // FRONT_RING_ATTACH: take over a ring whose indexes stand at `start`.
    explicit FrontRing(Ring& shared, RingIndex start = 0) : shared_(&shared), req_prod_pvt_(start), rsp_cons_(start) {}
    // XEN_FRONT_RING_INIT: initialise the shared page and attach at 0.
    static FrontRing init(Ring& shared) {
        shared.init();
        return FrontRing(shared);
    }

    RingIndex requests_produced() const { return req_prod_pvt_; }  // req_prod_pvt
    RingIndex responses_consumed() const { return rsp_cons_; }      // rsp_cons
    RingIndex free_requests() const { return size - (req_prod_pvt_ - rsp_cons_); }
    bool full() const { return free_requests() == 0; }

    // Writes a request into the next free slot (not yet visible to the back end). False when full.
    [[nodiscard]] bool queue_request(const Request& request) {
        return ring_detail::put(shared_->ring, size, req_prod_pvt_, !full(), &Ring::Entry::req, request);
    }

    // RING_PUSH_REQUESTS.
    void push_requests() { ring_detail::publish<Fences>(shared_->req_prod, req_prod_pvt_); }
    // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: publishes; whether the back end must be notified.
    [[nodiscard]] bool push_requests_and_check_notify() {
        return ring_detail::publish_and_check_notify<Fences>(shared_->req_prod, req_prod_pvt_, shared_->req_event);
    }

    // Responses published and not yet taken, at most the requests outstanding (a back end that
    // claims more is hostile: see response_producer_overflow).
    RingIndex unconsumed_responses() const {
        const RingIndex published = ring_detail::load(shared_->rsp_prod) - rsp_cons_;
        const RingIndex outstanding = req_prod_pvt_ - rsp_cons_;
        return published < outstanding ? published : outstanding;
    }
    // The back end claims responses to requests never made (RING_RESPONSE_PROD_OVERFLOW, tightened
    // from "more than a ring" to "more than outstanding").
    bool response_producer_overflow() const {
        return static_cast<RingIndex>(ring_detail::load(shared_->rsp_prod) - rsp_cons_) >
               static_cast<RingIndex>(req_prod_pvt_ - rsp_cons_);
    }

    // Copies the next response out and consumes it; refuses more responses than requests outstanding.
    [[nodiscard]] RingTake take_response(Response& out) {
        return ring_detail::take<Fences>(shared_->rsp_prod, rsp_cons_, rsp_cons_, req_prod_pvt_ - rsp_cons_,
                                         shared_->ring, size, &Ring::Entry::rsp, out);
    }

    // RING_FINAL_CHECK_FOR_RESPONSES: whether responses are waiting; if none, asks to be notified
    // of the next one and looks again.
    [[nodiscard]] bool final_check_for_responses() {
        return ring_detail::final_check<Fences>(shared_->rsp_event, rsp_cons_, [this] { return unconsumed_responses(); });
    }

private:
    Ring* shared_;
    RingIndex req_prod_pvt_;
    RingIndex rsp_cons_;
};

// The back end: consumes requests, produces responses. Everything the front end writes is hostile.
template <class Ring, class Fences = CpuRingFences>
class BackRing {
public:
    using Request = decltype(Ring::Entry::req);
    using Response = decltype(Ring::Entry::rsp);
    static constexpr RingIndex size = Ring::size;

    // BACK_RING_ATTACH: take over a ring whose indexes stand at `start`.
    explicit BackRing(Ring& shared, RingIndex start = 0) : shared_(&shared), rsp_prod_pvt_(start), req_cons_(start) {}

    RingIndex responses_produced() const { return rsp_prod_pvt_; }  // rsp_prod_pvt
    RingIndex requests_consumed() const { return req_cons_; }       // req_cons

    // XEN_RING_NR_UNCONSUMED_REQUESTS: requests published and not taken, clamped to the slots the
    // back end has not yet answered, so a hostile req_prod never yields more than a ring's worth.
    RingIndex unconsumed_requests() const {
        const RingIndex published = ring_detail::load(shared_->req_prod) - req_cons_;
        const RingIndex room = size - (req_cons_ - rsp_prod_pvt_);
        return published < room ? published : room;
    }
    // RING_REQUEST_PROD_OVERFLOW: the front end claims more requests than the ring holds.
    bool request_producer_overflow() const {
        return static_cast<RingIndex>(ring_detail::load(shared_->req_prod) - rsp_prod_pvt_) > size;
    }

    // Copies the next request out and consumes it. Taken only when req_prod - rsp_prod_pvt <= size
    // and req_cons != req_prod, so req_cons - rsp_prod_pvt < size: the slot holds an unanswered
    // request (RING_REQUEST_CONS_OVERFLOW cannot hold).
    [[nodiscard]] RingTake take_request(Request& out) {
        return ring_detail::take<Fences>(shared_->req_prod, req_cons_, rsp_prod_pvt_, size, shared_->ring, size,
                                         &Ring::Entry::req, out);
    }

    // Writes a response into the next slot (not yet visible). False if every request taken has
    // been answered already: a response needs a consumed request's slot.
    [[nodiscard]] bool queue_response(const Response& response) {
        return ring_detail::put(shared_->ring, size, rsp_prod_pvt_, rsp_prod_pvt_ != req_cons_, &Ring::Entry::rsp, response);
    }

    // RING_PUSH_RESPONSES.
    void push_responses() { ring_detail::publish<Fences>(shared_->rsp_prod, rsp_prod_pvt_); }
    // RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publishes; whether the front end must be notified.
    [[nodiscard]] bool push_responses_and_check_notify() {
        return ring_detail::publish_and_check_notify<Fences>(shared_->rsp_prod, rsp_prod_pvt_, shared_->rsp_event);
    }

    // RING_FINAL_CHECK_FOR_REQUESTS.
    [[nodiscard]] bool final_check_for_requests() {
        return ring_detail::final_check<Fences>(shared_->req_event, req_cons_, [this] { return unconsumed_requests(); });
    }

private:
    Ring* shared_;
    RingIndex rsp_prod_pvt_;
    RingIndex req_cons_;
};

}  // namespace pvkit::guest

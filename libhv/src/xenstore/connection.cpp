// One domain's store ring (io/xs_wire.h), served from inside the hypervisor.
//
// The page holds two byte rings of XENSTORE_RING_SIZE bytes: req[] (guest to store) and rsp[]
// (store to guest), each with free-running 32-bit indexes; a byte's slot is its index modulo the
// ring size, which divides 2^32, so wrapping needs no care. Messages are an xsd_sockmsg header
// and `len` bytes of payload, and may be cut anywhere by the ring's end or by the guest.
//
// Who owns what
// -------------
// The guest writes req_prod and rsp_cons; the server writes req_cons and rsp_prod and never reads
// them back: it keeps req_cons_ and rsp_prod_, taken from the page once at construction, and
// stores them into the page only as a report. Each pass loads the guest's two indexes once, and
// only those copies are used, so a guest changing them mid-pass cannot make a check and a copy see
// different values.
//
// What a pass keeps
// -----------------
// req_prod - req_cons_ must be at most the ring size, and so must rsp_prod_ - rsp_cons; a guest
// following the protocol cannot make either larger (it would have produced over unread bytes, or
// consumed bytes never written). Such a connection is broken for good: no byte of the page is read
// or written again, the guest is not notified, and its watches and transactions stay until the
// Connection is destroyed. So every byte read lies in req[] and every byte written in rsp[].
//
// Requests are taken one at a time into request_ and answered into reply_; no request is read
// while a reply waits for room in rsp[], so the state kept is bounded: one request, one reply and
// the event queue (Limits::events_per_connection). A header whose len is over XENSTORE_PAYLOAD_MAX
// is answered EINVAL at once and its len bytes are discarded as they arrive; the connection stays
// in step and goes on (xenstored instead drops such a connection). A message half-written into
// rsp[] is finished before any other starts; a reply goes before queued events, which go in order.
//
// Ordering: req_prod and rsp_cons are loaded with acquire before the slots are touched; req_cons
// and rsp_prod are stored with release after. Each slot access is one relaxed atomic access.
// Work per pass: at most one ring of bytes each way, so at most 64 requests (16-byte headers).
#include "internal.hpp"

namespace hv::xenstore {

using namespace detail;

namespace {

using Index = abi::XENSTORE_RING_IDX;
constexpr std::uint32_t ring_size = abi::XENSTORE_RING_SIZE;
static_assert(ring_size == sizeof(abi::xenstore_domain_interface::req) &&
              ring_size == sizeof(abi::xenstore_domain_interface::rsp) && (ring_size & (ring_size - 1)) == 0);

Index load_acquire(const Index& index) { return __atomic_load_n(&index, __ATOMIC_ACQUIRE); }
void store_release(Index& index, Index value) { __atomic_store_n(&index, value, __ATOMIC_RELEASE); }

}  // namespace

Connection::Connection(Store& store, DomId domain, bool privileged, abi::xenstore_domain_interface& page)
    : store_{store},
      domain_{domain},
      privileged_{privileged},
      page_{page},
      req_cons_{__atomic_load_n(&page.req_cons, __ATOMIC_RELAXED)},
      rsp_prod_{__atomic_load_n(&page.rsp_prod, __ATOMIC_RELAXED)} {
    next_ = store.connections_;
    if (next_ != nullptr)
        next_->prev_ = this;
    store.connections_ = this;
}

Connection::~Connection() {
    if (prev_ != nullptr)
        prev_->next_ = next_;
    else
        store_.connections_ = next_;
    if (next_ != nullptr)
        next_->prev_ = prev_;
    StoreInternals::drop_watches(*this);
    StoreInternals::drop_transactions(*this);
    StoreInternals::drop_events(*this);
}

bool Connection::pending_output() const { return reply_length_ != 0 || events_ != nullptr; }

ServiceResult Connection::service() {
    ServiceResult result;
    if (broken_) {
        result.broken = true;
        return result;
    }
    // Decode: the guest's indexes, once each, and whether they are possible at all.
    const Index req_prod = load_acquire(page_.req_prod);
    const Index rsp_cons = load_acquire(page_.rsp_cons);
    std::uint32_t readable = req_prod - req_cons_;
    const std::uint32_t in_flight = rsp_prod_ - rsp_cons;
    if (readable > ring_size || in_flight > ring_size) {
        broken_ = true;
        result.broken = true;
        return result;
    }
    std::uint32_t space = ring_size - in_flight;
    // Invoke: every slot touched below is inside its ring.
    for (;;) {
        const std::uint32_t written = ConnectionInternals::write_output(*this, space);
        space -= written;
        result.produced += written;
        bool progress = written != 0;

        if (readable != 0 && skip_ != 0) {
            const std::uint32_t dropped = readable < skip_ ? readable : skip_;
            req_cons_ += dropped;
            skip_ -= dropped;
            readable -= dropped;
            result.consumed += dropped;
            progress = true;
        }
        if (reply_length_ == 0 && skip_ == 0) {
            abi::xsd_sockmsg header{};
            if (request_length_ >= header_size)
                std::memcpy(&header, request_.data(), header_size);
            const std::uint32_t wanted = request_length_ < header_size
                                             ? static_cast<std::uint32_t>(header_size) - request_length_
                                             : static_cast<std::uint32_t>(header_size) + header.len - request_length_;
            const std::uint32_t taken = readable < wanted ? readable : wanted;
            for (std::uint32_t i = 0; i < taken; ++i)
                request_[request_length_ + i] =
                    __atomic_load_n(&page_.req[(req_cons_ + i) % ring_size], __ATOMIC_RELAXED);
            request_length_ += taken;
            req_cons_ += taken;
            readable -= taken;
            result.consumed += taken;
            progress = progress || taken != 0;
            if (request_length_ >= header_size) {
                std::memcpy(&header, request_.data(), header_size);
                if (header.len > abi::XENSTORE_PAYLOAD_MAX) {
                    // Refused: answered EINVAL now (as a message of no valid type, req_id and
                    // tx_id echoed), its payload dropped as it comes.
                    skip_ = header.len;
                    header.len = 0;
                    header.type = abi::XS_INVALID;
                    std::memcpy(request_.data(), &header, header_size);
                }
                if (request_length_ == header_size + header.len) {
                    ConnectionInternals::answer(*this);
                    request_length_ = 0;
                    ++result.requests;
                    progress = true;
                }
            }
        }
        if (!progress)
            break;
    }
    if (result.consumed != 0)
        store_release(page_.req_cons, req_cons_);
    if (result.produced != 0)
        store_release(page_.rsp_prod, rsp_prod_);
    result.notify = result.consumed != 0 || result.produced != 0;
    return result;
}

std::uint32_t ConnectionInternals::write_output(Connection& c, std::uint32_t space) {
    std::uint32_t total = 0;
    while (total < space) {
        const bool event = c.event_sent_ != 0 || (c.reply_length_ == 0 && c.events_ != nullptr);
        if (!event && c.reply_length_ == 0)
            break;
        const char* bytes = event ? c.events_->bytes() : c.reply_.data();
        const std::uint32_t length = event ? c.events_->length : c.reply_length_;
        std::uint32_t& sent = event ? c.event_sent_ : c.reply_sent_;
        const std::uint32_t count = length - sent < space - total ? length - sent : space - total;
        for (std::uint32_t i = 0; i < count; ++i)
            __atomic_store_n(&c.page_.rsp[(c.rsp_prod_ + i) % ring_size], bytes[sent + i], __ATOMIC_RELAXED);
        c.rsp_prod_ += count;
        sent += count;
        total += count;
        if (sent != length)
            break;
        if (event) {
            QueuedEvent* done = c.events_;
            c.events_ = done->next;
            if (c.events_ == nullptr)
                c.last_event_ = nullptr;
            --c.event_count_;
            c.event_sent_ = 0;
            free_event(c, done);
        } else {
            c.reply_length_ = 0;
            c.reply_sent_ = 0;
        }
    }
    return total;
}

}  // namespace hv::xenstore

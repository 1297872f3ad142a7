// The xenstore client's ring work: writing a request into req[] as room appears, and taking
// replies and watch events out of rsp[] byte by byte, whatever pieces they come in.
//
// Invariants:
//   - req_prod_ and rsp_cons_ are ours and only grow; the page's copies are stored with release
//     after the bytes they cover, and the store's indexes are loaded with acquire, once a pass.
//   - Every ring slot touched is index % XENSTORE_RING_SIZE; every byte of rsp[] is copied once
//     (into the header, the caller's reply buffer, the event queue, or nowhere) and parsed from
//     the copy, so a store changing bytes under us changes only what we read, never where.
//   - At most one request waits for its reply (waiting_req_id_ != 0); a message with another
//     req_id is stale and dropped. Payload bytes beyond a sink's capacity are counted, not stored.
//   - events_[0, events_used_) holds whole records only; an event still arriving is written after
//     them and becomes a record when complete and well-formed.
#include <guest/xenstore.hpp>

#include "text.hpp"

namespace pvkit::guest {
namespace {

using Index = abi::XENSTORE_RING_IDX;
constexpr Index ring_size = abi::XENSTORE_RING_SIZE;
constexpr std::size_t record_header = sizeof(std::uint32_t);

Index load_acquire(const Index& index) { return __atomic_load_n(&index, __ATOMIC_ACQUIRE); }
void store_release(Index& index, Index value) { __atomic_store_n(&index, value, __ATOMIC_RELEASE); }

std::uint32_t record_length(const char* record) {
    std::uint32_t length;
    __builtin_memcpy(&length, record, sizeof length);
    return length;
}

// An event payload is "path\0token\0": exactly two NULs, the last byte one of them.
bool well_formed_event(std::string_view payload) {
    std::size_t nuls = 0;
    for (char byte : payload)
        nuls += byte == '\0' ? 1 : 0;
    return nuls == 2 && payload.back() == '\0';
}

std::string_view event_token(const char* record) {
    const std::string_view payload{record + record_header, record_length(record)};
    const std::size_t first = find_nul(payload);
    return {payload.data() + first + 1, payload.size() - first - 2};
}

}  // namespace

XenstoreClient::XenstoreClient(abi::xenstore_domain_interface& page, StoreChannel& channel)
    : page_{page},
      channel_{channel},
      req_prod_{__atomic_load_n(&page.req_prod, __ATOMIC_RELAXED)},
      rsp_cons_{__atomic_load_n(&page.rsp_cons, __ATOMIC_RELAXED)} {}

std::uint64_t XenstoreClient::request_deadline() {
    if (timeout_ == forever)
        return forever;
    const std::uint64_t now = channel_.now();
    return now > forever - timeout_ ? forever : now + timeout_;
}

XsResult<std::size_t> XenstoreClient::request(std::uint32_t type, XsTransaction tx,
                                              std::span<const std::string_view> parts, std::span<char> reply) {
    if (broken_ != XsBroken::no)
        return XsErrc::enotconn;
    std::size_t length = 0;
    for (std::string_view part : parts)
        length += part.size();
    if (length > abi::XENSTORE_PAYLOAD_MAX)
        return XsErrc::e2big;
    if (next_req_id_ == 0)
        next_req_id_ = 1;
    const abi::xsd_sockmsg header{type, next_req_id_++, tx.id, static_cast<std::uint32_t>(length)};
    waiting_req_id_ = header.req_id;
    reply_done_ = false;
    reply_buffer_ = reply.data();
    reply_capacity_ = reply.size();
    reply_length_ = 0;

    const std::uint64_t deadline = request_deadline();
    XsResult<void> sent = send(header, parts, deadline);
    while (sent && !reply_done_) {
        const bool moved = take_responses();
        if (broken_ != XsBroken::no)
            sent = XsErrc::enotconn;
        else if (!reply_done_ && !keep_waiting(moved, deadline))
            sent = XsErrc::etime;
    }
    waiting_req_id_ = 0;
    if (!sent) {
        // A reply half-taken into the caller's buffer goes nowhere from now on.
        if (sink_ == Sink::reply || sink_ == Sink::error)
            sink_ = Sink::discard;
        return sent.error();
    }
    if (reply_header_.type == abi::XS_ERROR) {
        std::string_view name;
        if (reply_length_ > sizeof error_name_ || !one_string({error_name_, reply_length_}, name))
            return XsErrc::ebadmsg;
        return error_from_name(name);
    }
    if (reply_header_.type != type || reply_header_.tx_id != tx.id)
        return XsErrc::ebadmsg;
    if (reply_length_ > reply.size())
        return XsErrc::erange;
    return reply_length_;
}

bool XenstoreClient::keep_waiting(bool moved, std::uint64_t deadline) {
    // A store that keeps sending (events, stale replies) must not hold us past the deadline.
    if (moved)
        return !deadline_passed(deadline);
    return channel_.wait(deadline);
}

XsResult<void> XenstoreClient::send(const abi::xsd_sockmsg& header, std::span<const std::string_view> parts,
                                    std::uint64_t deadline) {
    char header_bytes[sizeof header];
    __builtin_memcpy(header_bytes, &header, sizeof header);
    bool started = false;
    for (std::size_t part = 0; part <= parts.size(); ++part) {
        std::string_view bytes = part == 0 ? std::string_view{header_bytes, sizeof header_bytes} : parts[part - 1];
        while (!bytes.empty()) {
            const Index used = req_prod_ - load_acquire(page_.req_cons);
            if (used > ring_size) {
                break_connection(XsBroken::request_indexes);
                return XsErrc::enotconn;
            }
            const Index room = ring_size - used;
            if (room == 0) {
                // Full: let the store drain it, taking what it sends meanwhile (it may wait for
                // rsp[] room before reading on).
                channel_.notify();
                const bool moved = take_responses();
                if (broken_ != XsBroken::no)
                    return XsErrc::enotconn;
                if (!keep_waiting(moved, deadline)) {
                    // Half a request in req[] cannot be taken back: the stream is lost.
                    if (started)
                        break_connection(XsBroken::interrupted_request);
                    return XsErrc::etime;
                }
                continue;
            }
            const std::size_t count = bytes.size() < room ? bytes.size() : room;
            for (std::size_t i = 0; i < count; ++i)
                __atomic_store_n(&page_.req[(req_prod_ + i) % ring_size], bytes[i], __ATOMIC_RELAXED);
            req_prod_ += static_cast<Index>(count);
            store_release(page_.req_prod, req_prod_);
            bytes.remove_prefix(count);
            started = true;
        }
    }
    channel_.notify();
    return {};
}

bool XenstoreClient::take_responses() {
    if (broken_ != XsBroken::no)
        return false;
    const Index available = load_acquire(page_.rsp_prod) - rsp_cons_;
    if (available > ring_size) {
        break_connection(XsBroken::response_indexes);
        return false;
    }
    if (available == 0)
        return false;
    Index taken = 0;
    while (taken < available && broken_ == XsBroken::no)
        take_byte(__atomic_load_n(&page_.rsp[(rsp_cons_ + taken++) % ring_size], __ATOMIC_RELAXED));
    rsp_cons_ += taken;
    store_release(page_.rsp_cons, rsp_cons_);
    // The store may be waiting for room to write more.
    channel_.notify();
    return true;
}

void XenstoreClient::take_byte(char byte) {
    if (sink_ == Sink::header) {
        header_bytes_[header_taken_++] = static_cast<unsigned char>(byte);
        if (header_taken_ == sizeof header_bytes_)
            start_message();
        return;
    }
    switch (sink_) {
    case Sink::reply:
        if (payload_taken_ < reply_capacity_)
            reply_buffer_[payload_taken_] = byte;
        break;
    case Sink::error:
        if (payload_taken_ < sizeof error_name_)
            error_name_[payload_taken_] = byte;
        break;
    case Sink::event:
        events_[events_used_ + record_header + payload_taken_] = byte;
        break;
    case Sink::header:
    case Sink::discard:
        break;
    }
    if (++payload_taken_ == incoming_.len)
        finish_message();
}

void XenstoreClient::start_message() {
    __builtin_memcpy(&incoming_, header_bytes_, sizeof incoming_);
    header_taken_ = 0;
    payload_taken_ = 0;
    if (incoming_.len > abi::XENSTORE_PAYLOAD_MAX) {
        break_connection(XsBroken::oversized_message);
        return;
    }
    if (incoming_.type == abi::XS_WATCH_EVENT) {
        // events_used_ may be event_storage itself: add, never subtract.
        const bool fits = events_used_ + record_header + incoming_.len <= event_storage;
        dropped_events_ += fits ? 0 : 1;
        sink_ = fits ? Sink::event : Sink::discard;
    } else if (waiting_req_id_ != 0 && incoming_.req_id == waiting_req_id_ && !reply_done_) {
        sink_ = incoming_.type == abi::XS_ERROR ? Sink::error : Sink::reply;
    } else {
        ++stale_replies_;
        sink_ = Sink::discard;
    }
    if (incoming_.len == 0)
        finish_message();
}

void XenstoreClient::finish_message() {
    if (sink_ == Sink::reply || sink_ == Sink::error) {
        reply_header_ = incoming_;
        reply_length_ = payload_taken_;
        reply_done_ = true;
    } else if (sink_ == Sink::event) {
        char* record = events_ + events_used_;
        if (well_formed_event({record + record_header, incoming_.len})) {
            __builtin_memcpy(record, &incoming_.len, record_header);
            events_used_ += record_header + incoming_.len;
            ++queued_events_;
        } else {
            ++dropped_events_;
        }
    }
    sink_ = Sink::header;
}

std::size_t XenstoreClient::find_event(std::string_view token) const {
    for (std::size_t offset = 0; offset < events_used_; offset += record_header + record_length(events_ + offset))
        if (token.empty() || event_token(events_ + offset) == token)
            return offset;
    return event_storage;
}

void XenstoreClient::remove_event(std::size_t offset) {
    const std::size_t size = record_header + record_length(events_ + offset);
    // An event still arriving sits after the records and moves down with them.
    const std::size_t arriving = sink_ == Sink::event ? record_header + payload_taken_ : 0;
    __builtin_memmove(events_ + offset, events_ + offset + size, events_used_ + arriving - offset - size);
    events_used_ -= size;
    --queued_events_;
}

std::size_t XenstoreClient::discard_events(std::string_view token) {
    std::size_t removed = 0;
    for (std::size_t offset = find_event(token); offset != event_storage; offset = find_event(token)) {
        remove_event(offset);
        ++removed;
    }
    return removed;
}

XsResult<void> XenstoreClient::wait_for_event(std::string_view token, std::uint64_t deadline) {
    const std::uint64_t dropped_before = dropped_events_;
    for (;;) {
        const bool moved = take_responses();
        if (find_event(token) != event_storage)
            return {};
        // A drop may have been the event awaited: the caller looks again, unless time is up (a
        // store flooding events must not keep a caller looping past its deadline).
        if (dropped_events_ != dropped_before)
            return deadline_passed(deadline) ? XsResult<void>{XsErrc::etime} : XsResult<void>{};
        if (broken_ != XsBroken::no)
            return XsErrc::enotconn;
        if (!keep_waiting(moved, deadline))
            return XsErrc::etime;
    }
}

XsResult<XsWatchEvent> XenstoreClient::next_event(std::span<char> buffer, std::uint64_t deadline,
                                                  std::string_view token) {
    for (;;) {
        const std::size_t offset = find_event(token);
        if (offset != event_storage) {
            const std::uint32_t length = record_length(events_ + offset);
            if (length > buffer.size())
                return XsErrc::erange;
            __builtin_memcpy(buffer.data(), events_ + offset + record_header, length);
            remove_event(offset);
            const std::string_view payload{buffer.data(), length};
            const std::size_t first = find_nul(payload);
            return XsWatchEvent{{payload.data(), first}, {payload.data() + first + 1, length - first - 2}};
        }
        if (XsResult<void> waited = wait_for_event(token, deadline); !waited)
            return waited.error();
    }
}

}  // namespace pvkit::guest

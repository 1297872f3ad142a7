// The 2-level event-channel demux and mask/unmask; the protocol is described in guest/events.hpp.
#include <guest/events.hpp>

namespace pvkit::guest {
namespace {
using Word = abi::xen_ulong_t;

Word bit_of(EventPort port) { return Word{1} << (port % EventChannels::bits_per_word); }
Word& word_of(Word* words, EventPort port) { return words[port / EventChannels::bits_per_word]; }

// Clears `bit` in `word`; whether it was set.
bool test_and_clear(Word& word, Word bit) { return (__atomic_fetch_and(&word, ~bit, __ATOMIC_SEQ_CST) & bit) != 0; }
bool test_and_set(Word& word, Word bit) { return (__atomic_fetch_or(&word, bit, __ATOMIC_SEQ_CST) & bit) != 0; }
}  // namespace

EventError EventChannels::bind(EventPort port, EventHandler handler, void* context) {
    if (port >= bindable_ports())
        return EventError::port_out_of_range;
    if (handler == nullptr)
        return EventError::no_handler;
    if (table_[port].handler != nullptr)
        return EventError::already_bound;
    table_[port] = {handler, context};
    return EventError::none;
}

EventError EventChannels::unbind(EventPort port) {
    if (port >= bindable_ports())
        return EventError::port_out_of_range;
    if (table_[port].handler == nullptr)
        return EventError::not_bound;
    table_[port] = {};
    return EventError::none;
}

void EventChannels::dispatch(EventPort port, UpcallResult& result) {
    // Cleared before the handler runs: an event sent while it runs sets the bit again and is seen.
    test_and_clear(word_of(shared_->evtchn_pending, port), bit_of(port));
    if (port < bindable_ports() && table_[port].handler != nullptr) {
        table_[port].handler(port, table_[port].context);
        ++result.handled;
    } else {
        ++result.unbound;
    }
}

UpcallResult EventChannels::handle_upcall() {
    UpcallResult result;
    for (;;) {
        __atomic_store_n(&vcpu_->evtchn_upcall_pending, 0, __ATOMIC_SEQ_CST);
        Word selector = __atomic_exchange_n(&vcpu_->evtchn_pending_sel, Word{0}, __ATOMIC_SEQ_CST);
        if (selector == 0)
            return result;
        ++result.passes;
        while (selector != 0) {
            const unsigned word_index = static_cast<unsigned>(__builtin_ctzll(selector));
            selector &= selector - 1;
            Word active = __atomic_load_n(&shared_->evtchn_pending[word_index], __ATOMIC_SEQ_CST) &
                          ~__atomic_load_n(&shared_->evtchn_mask[word_index], __ATOMIC_SEQ_CST);
            while (active != 0) {
                const unsigned bit = static_cast<unsigned>(__builtin_ctzll(active));
                active &= active - 1;
                dispatch(static_cast<EventPort>(word_index * bits_per_word + bit), result);
            }
        }
        if (__atomic_load_n(&vcpu_->evtchn_upcall_pending, __ATOMIC_SEQ_CST) == 0)
            return result;
    }
}

EventError EventChannels::mask(EventPort port) {
    if (port >= max_ports)
        return EventError::port_out_of_range;
    test_and_set(word_of(shared_->evtchn_mask, port), bit_of(port));
    return EventError::none;
}

EventError EventChannels::unmask(EventPort port, bool* upcall_pending) {
    if (port >= max_ports)
        return EventError::port_out_of_range;
    if (unmask_hypercall_ != nullptr) {
        unmask_hypercall_(port, unmask_context_);
    } else if (test_and_clear(word_of(shared_->evtchn_mask, port), bit_of(port)) &&
               test(shared_->evtchn_pending, port) &&
               !test_and_set(vcpu_->evtchn_pending_sel, Word{1} << (port / bits_per_word))) {
        // The selector bit was clear, so no upcall is on its way for this word: raise one.
        __atomic_store_n(&vcpu_->evtchn_upcall_pending, 1, __ATOMIC_SEQ_CST);
    }
    if (upcall_pending != nullptr)
        *upcall_pending = __atomic_load_n(&vcpu_->evtchn_upcall_pending, __ATOMIC_SEQ_CST) != 0;
    return EventError::none;
}

EventError EventChannels::clear_pending(EventPort port) {
    if (port >= max_ports)
        return EventError::port_out_of_range;
    test_and_clear(word_of(shared_->evtchn_pending, port), bit_of(port));
    return EventError::none;
}

}  // namespace pvkit::guest

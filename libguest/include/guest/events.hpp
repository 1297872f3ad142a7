// Event channels, 2-level ABI: the upcall demux over shared_info and a vcpu_info, a handler table,
// and mask/unmask.
//
// The bits. shared_info.evtchn_pending and evtchn_mask hold one bit per port (4096 ports in 64
// words); vcpu_info.evtchn_pending_sel has one bit per pending word that the hypervisor raised for
// this vCPU, and evtchn_upcall_pending says that some selector bit may be set. The hypervisor sets
// pending, then the selector bit, then upcall_pending; the guest clears them in the reverse order,
// so nothing the hypervisor raises between the guest's steps is lost:
//   1. clear upcall_pending;  2. exchange the selector with 0;  3. for each word it named, take
//   pending & ~mask;  4. for each port in it, clear the pending bit, then call the port's handler;
//   5. if upcall_pending was raised meanwhile, scan again.
// A port whose pending bit is set while masked stays pending and is not called; unmask() re-raises
// it (clear the mask bit; if pending, set its selector bit and upcall_pending), as Xen's own
// EVTCHNOP_unmask does, so an event that arrived while masked is delivered on the next scan.
//
// The table. Handlers live in a table the caller provides (no allocation): a port can be bound only
// if it is below both the table size and 4096. An event on a port without a handler is cleared and
// counted. All bit changes are atomic read-modify-writes, since the hypervisor writes the same words.
#pragma once

#include <pvkit/abi.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pvkit::guest {

using EventPort = abi::evtchn_port_t;
using EventHandler = void (*)(EventPort port, void* context);

struct EventBinding {
    EventHandler handler = nullptr;
    void* context = nullptr;
};

enum class EventError : std::uint8_t {
    none,
    port_out_of_range,  // at or beyond the table or the 2-level ABI's 4096 ports
    no_handler,         // bind() given a null handler
    already_bound,
    not_bound,
};

// What one handle_upcall() did.
struct UpcallResult {
    unsigned handled = 0;   // handlers called
    unsigned unbound = 0;   // pending ports without a handler, cleared
    unsigned passes = 0;    // selector exchanges that found work
};

class EventChannels {
public:
    static constexpr EventPort max_ports = abi::EVTCHN_2L_NR_CHANNELS;
    static constexpr unsigned bits_per_word = 64;
    // EVTCHNOP_unmask through the hypervisor, for a port bound to another vCPU (or any port, if the
    // caller prefers): the hypervisor clears the mask and re-raises the event itself.
    using UnmaskHypercall = void (*)(EventPort port, void* context);

    EventChannels(abi::shared_info& shared, abi::vcpu_info& vcpu, std::span<EventBinding> table)
        : shared_(&shared), vcpu_(&vcpu), table_(table) {}

    void set_unmask_hypercall(UnmaskHypercall hypercall, void* context) {
        unmask_hypercall_ = hypercall;
        unmask_context_ = context;
    }

    [[nodiscard]] EventError bind(EventPort port, EventHandler handler, void* context);
    [[nodiscard]] EventError unbind(EventPort port);
    bool bound(EventPort port) const { return port < bindable_ports() && table_[port].handler != nullptr; }

    // The upcall: steps 1-5 above. Call with events masked for this vCPU (the event callback is
    // entered that way).
    UpcallResult handle_upcall();

    [[nodiscard]] EventError mask(EventPort port);
    // Clears the mask bit and re-raises a pending event; through the hypercall hook if one is set.
    // Whether an upcall is now pending on this vCPU (the caller delivers it when it unmasks events).
    [[nodiscard]] EventError unmask(EventPort port, bool* upcall_pending = nullptr);
    [[nodiscard]] EventError clear_pending(EventPort port);
    bool pending(EventPort port) const { return port < max_ports && test(shared_->evtchn_pending, port); }
    bool masked(EventPort port) const { return port < max_ports && test(shared_->evtchn_mask, port); }

private:
    EventPort bindable_ports() const {
        return table_.size() < max_ports ? static_cast<EventPort>(table_.size()) : max_ports;
    }
    static bool test(const abi::xen_ulong_t* words, EventPort port) {
        return (__atomic_load_n(&words[port / bits_per_word], __ATOMIC_RELAXED) >> (port % bits_per_word)) & 1;
    }
    void dispatch(EventPort port, UpcallResult& result);

    abi::shared_info* shared_;
    abi::vcpu_info* vcpu_;
    std::span<EventBinding> table_;
    UnmaskHypercall unmask_hypercall_ = nullptr;
    void* unmask_context_ = nullptr;
};

}  // namespace pvkit::guest

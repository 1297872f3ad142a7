// Event channels at run time (guest/evtchn.hpp): EVTCHNOP_* wrappers, the handler table behind the
// upcall, waiting with SCHEDOP_poll, and the C API of pvkit/evtchn.h.
#include <guest/evtchn.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

#include <new>

extern "C" char pvk_event_callback[];

namespace pvkit::guest {

namespace {
// Ports the handler table covers; waiting works on every port.
constexpr std::size_t handled_ports = 1024;
EventBinding handler_table[handled_ports];
alignas(EventChannels) unsigned char channels_storage[sizeof(EventChannels)];
EventChannels* channels = nullptr;
bool setup_failed = false;

abi::vcpu_info& this_vcpu() { return shared_info().vcpu_info[0]; }

void unmask_by_hypercall(EventPort port, void*) {
    abi::evtchn_unmask request{port};
    (void)hypercall::evtchnop_unmask(&request);
}

// Binds with events masked on this vCPU, and masks the new port before unmasking them, so that the
// upcall cannot take (and clear) an event of the port before anyone waits for it.
template <typename Bind>
long bind_masked(Bind bind) {
    if (!events_setup())
        return -static_cast<long>(abi::XEN_ENOSYS);
    const bool were_masked = events_disable();
    const long port = bind();
    if (port >= 0)
        (void)channels->mask(static_cast<EventPort>(port));
    events_restore(were_masked);
    return port;
}

bool take_pending(EventPort port) {
    auto& word = shared_info().evtchn_pending[port / EventChannels::bits_per_word];
    const std::uint64_t bit = std::uint64_t{1} << (port % EventChannels::bits_per_word);
    return (__atomic_fetch_and(&word, ~bit, __ATOMIC_ACQ_REL) & bit) != 0;
}
}  // namespace

bool events_setup() {
    if (channels != nullptr || setup_failed)
        return channels != nullptr;
    abi::shared_info& shared = shared_info();
    abi::callback_register callback{};
    callback.type = abi::CALLBACKTYPE_event;
    callback.flags = abi::CALLBACKF_mask_events;
    callback.address = reinterpret_cast<std::uintptr_t>(pvk_event_callback);
    if (hypercall::callbackop_register(&callback) != 0) {
        setup_failed = true;
        return false;
    }
    channels = new (channels_storage) EventChannels(shared, shared.vcpu_info[0], handler_table);
    channels->set_unmask_hypercall(unmask_by_hypercall, nullptr);
    events_enable();
    return true;
}

EventChannels* event_channels() { return events_setup() ? channels : nullptr; }

long bind_virq(std::uint32_t virq) {
    return bind_masked([virq] {
        abi::evtchn_bind_virq request{virq, 0, 0};
        const long result = hypercall::evtchnop_bind_virq(&request);
        return result == 0 ? static_cast<long>(request.port) : result;
    });
}

long bind_interdomain(abi::domid_t remote_domain, EventPort remote_port) {
    return bind_masked([remote_domain, remote_port] {
        abi::evtchn_bind_interdomain request{remote_domain, remote_port, 0};
        const long result = hypercall::evtchnop_bind_interdomain(&request);
        return result == 0 ? static_cast<long>(request.local_port) : result;
    });
}

long alloc_unbound(abi::domid_t remote_domain) {
    return bind_masked([remote_domain] {
        abi::evtchn_alloc_unbound request{static_cast<abi::domid_t>(abi::DOMID_SELF), remote_domain, 0};
        const long result = hypercall::evtchnop_alloc_unbound(&request);
        return result == 0 ? static_cast<long>(request.port) : result;
    });
}

long bind_ipi(std::uint32_t vcpu) {
    return bind_masked([vcpu] {
        abi::evtchn_bind_ipi request{vcpu, 0};
        const long result = hypercall::evtchnop_bind_ipi(&request);
        return result == 0 ? static_cast<long>(request.port) : result;
    });
}

long close_port(EventPort port) {
    (void)clear_handler(port);
    abi::evtchn_close request{port};
    return hypercall::evtchnop_close(&request);
}

long notify(EventPort port) {
    abi::evtchn_send request{port};
    return hypercall::evtchnop_send(&request);
}

EventError set_handler(EventPort port, EventHandler handler, void* context) {
    EventChannels* events = event_channels();
    if (events == nullptr)
        return EventError::not_bound;
    const EventError bound = events->bind(port, handler, context);
    return bound != EventError::none ? bound : events->unmask(port);
}

EventError clear_handler(EventPort port) {
    EventChannels* events = event_channels();
    if (events == nullptr)
        return EventError::not_bound;
    (void)events->mask(port);
    return events->unbind(port);
}

bool wait(EventPort port, std::uint64_t deadline_ns) {
    if (port >= EventChannels::max_ports)
        return false;
    for (;;) {
        if (take_pending(port))
            return true;
        if (deadline_ns != 0 && monotonic_ns() >= deadline_ns)
            return false;
        // Returns when the port is pending, at the deadline, or early (Xen allows spurious wake-ups).
        abi::sched_poll poll{abi::guest_handle<EventPort>::from(&port), 1, deadline_ns};
        if (hypercall::schedop_poll(&poll) != 0)
            return take_pending(port);
    }
}

bool wait_any(std::span<const EventPort> ports, std::uint64_t deadline_ns) {
    if (ports.empty() || ports.size() > max_polled_ports)
        return false;
    // Every pending bit is taken, so that one return answers for all the ports that fired.
    const auto take_all = [ports] {
        bool any = false;
        for (const EventPort port : ports)
            any = (port < EventChannels::max_ports && take_pending(port)) || any;
        return any;
    };
    for (;;) {
        if (take_all())
            return true;
        if (deadline_ns != 0 && monotonic_ns() >= deadline_ns)
            return false;
        abi::sched_poll poll{abi::guest_handle<EventPort>::from(const_cast<EventPort*>(ports.data())),
                             static_cast<std::uint32_t>(ports.size()), deadline_ns};
        if (hypercall::schedop_poll(&poll) != 0)
            return take_all();
    }
}

bool events_disable() {
    auto& mask = this_vcpu().evtchn_upcall_mask;
    const bool was_masked = __atomic_exchange_n(&mask, std::uint8_t{1}, __ATOMIC_SEQ_CST) != 0;
    return was_masked;
}

void events_enable() {
    abi::vcpu_info& vcpu = this_vcpu();
    __atomic_store_n(&vcpu.evtchn_upcall_mask, std::uint8_t{0}, __ATOMIC_SEQ_CST);
    // An event raised while masked waits for the next exit from the hypervisor: make one now.
    if (__atomic_load_n(&vcpu.evtchn_upcall_pending, __ATOMIC_SEQ_CST) != 0)
        (void)hypercall::xen_version(abi::XENVER_version, nullptr);
}

void events_restore(bool were_masked) {
    if (were_masked)
        (void)events_disable();
    else
        events_enable();
}

}  // namespace pvkit::guest

// Called by pvk_event_callback with events masked. The demux rescans while the hypervisor raises
// upcall_pending; the loop here also covers an event raised after its last look.
extern "C" void pvk_event_upcall() {
    using namespace pvkit::guest;
    if (channels == nullptr)
        return;
    pvkit::abi::vcpu_info& vcpu = this_vcpu();
    do
        (void)channels->handle_upcall();
    while (__atomic_load_n(&vcpu.evtchn_upcall_pending, __ATOMIC_ACQUIRE) != 0);
}

using namespace pvkit::guest;

extern "C" {
int pvk_events_setup(void) { return events_setup() ? 0 : -1; }
long pvk_evtchn_bind_virq(uint32_t virq) { return bind_virq(virq); }
long pvk_evtchn_bind_interdomain(uint16_t remote_domain, uint32_t remote_port) {
    return bind_interdomain(remote_domain, remote_port);
}
long pvk_evtchn_alloc_unbound(uint16_t remote_domain) { return alloc_unbound(remote_domain); }
long pvk_evtchn_bind_ipi(uint32_t vcpu) { return bind_ipi(vcpu); }
long pvk_evtchn_close(uint32_t port) { return close_port(port); }
long pvk_evtchn_notify(uint32_t port) { return notify(port); }
int pvk_evtchn_set_handler(uint32_t port, pvk_evtchn_handler handler, void* context) {
    return static_cast<int>(set_handler(port, handler, context));
}
int pvk_evtchn_clear_handler(uint32_t port) { return static_cast<int>(clear_handler(port)); }
int pvk_evtchn_wait(uint32_t port, uint64_t deadline_ns) { return wait(port, deadline_ns) ? 1 : 0; }
int pvk_evtchn_wait_any(const uint32_t* ports, size_t count, uint64_t deadline_ns) {
    if (count > max_polled_ports)
        return -1;
    return wait_any({ports, count}, deadline_ns) ? 1 : 0;
}
int pvk_events_disable(void) { return events_disable() ? 1 : 0; }
void pvk_events_enable(void) { events_enable(); }
void pvk_events_restore(int were_masked) { events_restore(were_masked != 0); }
}

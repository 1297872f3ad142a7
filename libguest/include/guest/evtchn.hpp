// Event channels at run time: binding ports through EVTCHNOP_*, handlers called from the upcall,
// and waiting for a port. (guest/events.hpp is the demux this sits on.)
//
// Two ways to take a port's events:
//   - a handler: set_handler() puts it in the handler table and unmasks the port; the upcall
//     (src/events/upcall.S, registered with CALLBACKOP_register) clears the pending bit and calls
//     it with events masked on this vCPU. Handlers run in interrupt context: short, no blocking.
//   - waiting: wait(port, deadline) takes the pending bit itself (test and clear), or blocks in
//     SCHEDOP_poll until it is set or the deadline passes. The port must have no handler and stay
//     masked (the upcall would otherwise clear an unhandled pending port before the waiter sees it).
// Every bind_* here returns the new port masked and without a handler, ready to be waited for;
// a binding's pending bit is left as the hypervisor set it (bind_interdomain sets it, as on Xen).
// Functions return the port (or 0) when they succeed, else a negative Xen errno (-XEN_EINVAL...).
//
// Events: setup registers the upcall and unmasks events on this vCPU (vCPU 0, its vcpu_info in
// shared_info); events_disable()/events_enable() mask and unmask them around critical sections.
// Only vCPU 0 is served: no register_vcpu_info, no per-vCPU tables.
#pragma once

#include <guest/events.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pvkit::guest {

// Shared_info mapped, the handler table, the upcall registered, events unmasked; idempotent.
// Whether it worked (the other functions call it).
bool events_setup();
// The demux over the runtime's table, or null when setup failed.
EventChannels* event_channels();

long bind_virq(std::uint32_t virq);
long bind_interdomain(abi::domid_t remote_domain, EventPort remote_port);
long alloc_unbound(abi::domid_t remote_domain);
long bind_ipi(std::uint32_t vcpu);
long close_port(EventPort port);       // also drops its handler
long notify(EventPort port);           // EVTCHNOP_send

[[nodiscard]] EventError set_handler(EventPort port, EventHandler handler, void* context);
[[nodiscard]] EventError clear_handler(EventPort port);  // and masks the port

// Waits for `port` until system time `deadline_ns` (0: no limit); whether it came (its pending
// bit is then clear again).
bool wait(EventPort port, std::uint64_t deadline_ns);

// Waits for any of `ports` as wait() does for one (SCHEDOP_poll over them all), and takes the
// pending bits of every one that fired; whether any had. At most max_polled_ports ports.
inline constexpr std::size_t max_polled_ports = 128;
bool wait_any(std::span<const EventPort> ports, std::uint64_t deadline_ns);

// Masks events on this vCPU; whether they were masked already.
bool events_disable();
// Unmasks them, and takes an upcall at once if one is pending.
void events_enable();
// Restores the state events_disable() returned.
void events_restore(bool were_masked);

}  // namespace pvkit::guest

// Raising events: send, the hypervisor's VIRQs and channels, unmask; and status.
#include <hv/evtchn.hpp>

#include "shared_bits.hpp"

namespace hv::evtchn {

void EventChannels::raise(EvtchnDomain& domain, Port port) { deliver(domain, port, domain.ops->set_pending(domain, port)); }

void EventChannels::deliver(EvtchnDomain& domain, Port port, Signal signal) {
    if (signal == Signal::none)
        return;
    if (signal == Signal::upcall)
        platform_.kick_vcpu(domain, domain.ports[port.value].notify_vcpu);
    platform_.wake_pollers(domain, port);
}

Result<void> EventChannels::send(EvtchnDomain& caller, Port port) {
    if (port.value >= caller.ports.size())
        return Errc::einval;
    const PortEntry& entry = caller.ports[port.value];
    switch (entry.state) {
    case PortState::interdomain:
        raise(*entry.peer, Port{entry.peer_port});
        return {};
    case PortState::ipi:
        raise(caller, port);
        return {};
    case PortState::unbound:
        // Nobody to tell yet: dropped, as Xen does; the bind starts the new end pending instead.
        return {};
    case PortState::hypervisor:
        platform_.hypervisor_channel_signalled(caller, port);
        return {};
    default:  // free, reserved, virq: nothing a guest may send on
        return Errc::einval;
    }
}

Result<void> EventChannels::unmask(EvtchnDomain& caller, Port port) {
    if (port.value >= caller.ports.size())
        return Errc::einval;
    // Any valid port, even a free one, as Xen: the mask bit is the guest's.
    if (caller.ops->unmask(caller, port) == Signal::upcall)
        platform_.kick_vcpu(caller, caller.ports[port.value].notify_vcpu);
    return {};
}

bool EventChannels::send_virq(EvtchnDomain& domain, std::uint32_t vcpu, std::uint32_t virq) {
    if (virq >= abi::NR_VIRQS)
        return false;
    const std::uint32_t holder = is_global_virq(virq) ? 0 : vcpu;
    if (holder >= domain.vcpus.size())
        return false;
    const abi::evtchn_port_t port = domain.vcpus[holder].virq_ports[virq];
    if (port == 0)
        return false;
    raise(domain, Port{port});
    return true;
}

bool EventChannels::send_global_virq(std::uint32_t virq) {
    if (virq >= abi::NR_VIRQS || !is_global_virq(virq))
        return false;
    EvtchnDomain* handler = global_handlers_[virq] != nullptr ? global_handlers_[virq] : control_;
    return handler != nullptr && send_virq(*handler, 0, virq);
}

Result<void> EventChannels::set_control_domain(EvtchnDomain* control) {
    if (control != nullptr && domain(control->id) != control)
        return Errc::einval;
    control_ = control;
    return {};
}

Result<void> EventChannels::set_global_virq_handler(std::uint32_t virq, EvtchnDomain* handler) {
    if (virq >= abi::NR_VIRQS || !is_global_virq(virq))
        return Errc::einval;
    if (handler != nullptr && domain(handler->id) != handler)
        return Errc::einval;
    global_handlers_[virq] = handler;
    return {};
}

Result<void> EventChannels::signal_hypervisor_channel(EvtchnDomain& domain, Port port) {
    if (port.value >= domain.ports.size() || domain.ports[port.value].state != PortState::hypervisor)
        return Errc::einval;
    raise(domain, port);
    return {};
}

Result<void> EventChannels::move_vcpu_info(EvtchnDomain& domain, std::uint32_t vcpu, abi::vcpu_info& info) {
    if (vcpu >= domain.vcpus.size())
        return Errc::enoent;
    domain.vcpus[vcpu].info = &info;
    __atomic_fetch_or(&info.evtchn_pending_sel, ~shared_bits::Word{0}, __ATOMIC_SEQ_CST);
    if (shared_bits::mark_upcall_pending(info))
        platform_.kick_vcpu(domain, vcpu);
    return {};
}

Result<abi::evtchn_status> EventChannels::status(EvtchnDomain& caller, abi::domid_t dom, Port port) {
    const auto target = controlled_domain(caller, dom);
    if (!target)
        return target.error();
    const EvtchnDomain& domain = **target;
    if (port.value >= domain.ports.size())
        return Errc::einval;

    const PortEntry& entry = domain.ports[port.value];
    abi::evtchn_status answer{};
    answer.dom = dom;
    answer.port = port.value;
    answer.vcpu = entry.notify_vcpu;
    switch (entry.state) {
    case PortState::free:
    case PortState::reserved:
        answer.status = abi::EVTCHNSTAT_closed;
        break;
    case PortState::unbound:
        answer.status = abi::EVTCHNSTAT_unbound;
        answer.u.unbound.dom = entry.unbound_remote.value;
        break;
    case PortState::interdomain:
        answer.status = abi::EVTCHNSTAT_interdomain;
        answer.u.interdomain.dom = entry.peer->id.value;
        answer.u.interdomain.port = entry.peer_port;
        break;
    case PortState::virq:
        answer.status = abi::EVTCHNSTAT_virq;
        answer.u.virq = entry.virq;
        break;
    case PortState::ipi:
        answer.status = abi::EVTCHNSTAT_ipi;
        break;
    case PortState::hypervisor:
        // Connected, to the hypervisor itself; there is no port at that end.
        answer.status = abi::EVTCHNSTAT_interdomain;
        answer.u.interdomain.dom = abi::DOMID_XEN;
        answer.u.interdomain.port = 0;
        break;
    }
    return answer;
}

}  // namespace hv::evtchn

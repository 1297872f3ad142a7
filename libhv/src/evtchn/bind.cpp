// Binding ports: alloc_unbound, bind_interdomain, bind_virq, bind_ipi, the hypervisor's channels,
// and moving a port to another vCPU (bind_vcpu).
//
// Each operation first checks everything, in Xen's order so that the error is Xen's, including
// that a free port exists; after its first change it cannot fail.
#include <hv/evtchn.hpp>

namespace hv::evtchn {

Result<Port> EventChannels::alloc_unbound(EvtchnDomain& caller, abi::domid_t dom, abi::domid_t remote_dom) {
    const auto target = controlled_domain(caller, dom);
    if (!target)
        return target.error();
    EvtchnDomain& domain = **target;
    const auto port = find_free_port(domain);
    if (!port)
        return port.error();

    occupy(domain, *port, PortState::unbound, 0);
    // DOMID_SELF names the caller, which is not the port's domain when a privileged domain
    // allocates for another. The remote need not exist yet: it is only a name until it binds.
    domain.ports[port->value].unbound_remote = remote_dom == abi::DOMID_SELF ? caller.id : DomId{remote_dom};
    return *port;
}

Result<Port> EventChannels::bind_interdomain(EvtchnDomain& caller, abi::domid_t remote_dom, Port remote_port) {
    EvtchnDomain* remote = domain(remote_dom == abi::DOMID_SELF ? caller.id : DomId{remote_dom});
    if (remote == nullptr)
        return Errc::esrch;
    const auto local_port = find_free_port(caller);
    if (!local_port)
        return local_port.error();
    // A port that is not waiting for this caller is refused exactly as one that does not exist.
    if (remote_port.value >= remote->ports.size())
        return Errc::einval;
    PortEntry& far = remote->ports[remote_port.value];
    if (far.state != PortState::unbound || far.unbound_remote != caller.id)
        return Errc::einval;

    occupy(caller, *local_port, PortState::interdomain, 0);
    PortEntry& near = caller.ports[local_port->value];
    near.peer = remote;
    near.peer_port = remote_port.value;
    far.state = PortState::interdomain;
    far.peer = &caller;
    far.peer_port = local_port->value;
    far.unbound_remote = DomId{abi::DOMID_INVALID};
    // Sends on the remote end while it was unbound were dropped: start pending so none is lost.
    raise(caller, *local_port);
    return *local_port;
}

Result<Port> EventChannels::bind_virq(EvtchnDomain& caller, std::uint32_t virq, std::uint32_t vcpu) {
    if (virq >= abi::NR_VIRQS)
        return Errc::einval;
    if (is_global_virq(virq) && vcpu != 0)
        return Errc::einval;
    if (vcpu >= caller.vcpus.size())
        return Errc::enoent;
    if (caller.vcpus[vcpu].virq_ports[virq] != 0)
        return Errc::eexist;
    const auto port = find_free_port(caller);
    if (!port)
        return port.error();

    occupy(caller, *port, PortState::virq, vcpu);
    caller.ports[port->value].virq = static_cast<std::uint8_t>(virq);
    caller.vcpus[vcpu].virq_ports[virq] = port->value;
    return *port;
}

Result<Port> EventChannels::bind_ipi(EvtchnDomain& caller, std::uint32_t vcpu) {
    return bind_to_vcpu(caller, PortState::ipi, vcpu);
}

Result<Port> EventChannels::bind_hypervisor_channel(EvtchnDomain& domain, std::uint32_t vcpu) {
    return bind_to_vcpu(domain, PortState::hypervisor, vcpu);
}

// A port whose only binding is the vCPU it notifies: enoent for no such vCPU, enospc.
Result<Port> EventChannels::bind_to_vcpu(EvtchnDomain& domain, PortState state, std::uint32_t vcpu) {
    if (vcpu >= domain.vcpus.size())
        return Errc::enoent;
    const auto port = find_free_port(domain);
    if (!port)
        return port.error();
    occupy(domain, *port, state, vcpu);
    return *port;
}

Result<void> EventChannels::close_hypervisor_channel(EvtchnDomain& domain, Port port) {
    if (port.value >= domain.ports.size() || domain.ports[port.value].state != PortState::hypervisor)
        return Errc::einval;
    close_port(domain, port);
    return {};
}

// IPI and per-vCPU VIRQ ports stay on the vCPU they were bound to; a port in any other state but
// free can move (Xen refuses free ports and, for guests, the channels it consumes itself; the
// hypervisor channels here may move, since the backend does not care which vCPU it wakes).
Result<void> EventChannels::bind_vcpu(EvtchnDomain& caller, Port port, std::uint32_t vcpu) {
    if (vcpu >= caller.vcpus.size())
        return Errc::enoent;
    if (port.value >= caller.ports.size())
        return Errc::einval;
    PortEntry& entry = caller.ports[port.value];
    switch (entry.state) {
    case PortState::virq:
        if (!is_global_virq(entry.virq))
            return Errc::einval;
        break;
    case PortState::unbound:
    case PortState::interdomain:
    case PortState::hypervisor:
        break;
    default:
        return Errc::einval;
    }
    entry.notify_vcpu = vcpu;
    return {};
}

}  // namespace hv::evtchn

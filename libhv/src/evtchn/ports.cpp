// Event channels: the ports of every domain, how they are allocated, bound and closed.
//
// Ports
// -----
// A domain's ports are numbered 0 to ports.size() - 1, in storage its embedder gives it, no more
// than its ABI can name (4096 for the 2-level ABI). Every such number is a *valid* port; an
// operation naming any other port gets einval. Port 0 is reserved for ever, so that 0 can mean "no
// port" (in EvtchnVcpu::virq_ports, and in guests). A domain allocates the lowest free port from 1
// up to its max_port; when none is left it gets enospc, and a dying domain gets einval, so that a
// domain being torn down cannot keep making work for its teardown.
//
// States and transitions (PortState)
// ----------------------------------
//   free -> unbound       alloc_unbound, by the domain, or by a privileged domain for it. The port
//                         names the one domain that may bind to it (unbound_remote).
//   free -> interdomain   bind_interdomain: the caller's new port and the remote unbound port that
//                         names the caller become the two ends of one channel in one step. The new
//                         end starts pending, since sends on the unbound end were dropped (as Xen).
//   free -> virq, ipi     bind_virq, bind_ipi: bound to the vCPU given, for good for a per-vCPU VIRQ
//                         and an IPI; a global VIRQ is bound on vCPU 0 and may move (bind_vcpu).
//   free -> hypervisor    bind_hypervisor_channel: the hypervisor's own backends (console, store).
//   in use -> free        close (the guest; not a hypervisor channel), reset (every port but the
//                         hypervisor channels), close_all_ports (teardown: every port), and
//                         release_port. Closing one end of a channel turns the other end back to
//                         unbound, waiting for the domain that closed to bind again.
// Only a free port is ever allocated, and a port becomes free with its pending bit cleared and its
// notify vCPU back to 0, so a reused port carries nothing of its past binding. Its mask bit belongs
// to the guest and stays as the guest left it.
//
// What always holds (check_invariants in invariants.cpp checks every item)
// -----------------------------------------------------------------------
//   - Port 0 of every domain is reserved and no other port is; ports_in_use counts the ports that
//     are neither free nor reserved.
//   - Every port's notify_vcpu is one of the domain's vCPUs; a free port's is 0.
//   - Only interdomain ports have a peer. An interdomain port's peer is a registered domain, its
//     peer_port is a valid port there, and that port is interdomain and names this domain and port
//     back: the ends of a channel always come in pairs that point at each other.
//   - Only unbound ports name an unbound_remote (DOMID_INVALID elsewhere). An unbound port may
//     name any id, one no domain has included: it is only a name until that domain binds.
//   - A virq port's VIRQ is below NR_VIRQS, and the port is recorded for it in virq_ports of its
//     notify vCPU for a per-vCPU VIRQ, of vCPU 0 for a global one; every recorded port is such a
//     port. So a VIRQ is bound at most once per vCPU (per domain when global), and closing its port
//     forgets the binding.
//   - The control domain and the global VIRQ handlers are registered domains.
// So no port refers to a domain that is gone: a domain leaves the registry only with no port in
// use, and closing its ports has turned every peer back to unbound (which names a domain id only).
//
// What the guest owns
// -------------------
// The pending and mask bitmaps, the selectors and the upcall flags are in memory the guest writes
// at will (shared_info, vcpu_info). No invariant is about them and no decision that matters for
// safety reads them: they only decide whether a vCPU is notified. They are changed with atomic bit
// operations only (shared_bits.hpp), since the guest changes them concurrently.
//
// The caller serializes all operations on one EventChannels (one physical CPU for now); only the
// memory shared with guests is accessed atomically.
#include <hv/evtchn.hpp>

namespace hv::evtchn {
namespace {

bool in_use(PortState state) { return state != PortState::free && state != PortState::reserved; }

}  // namespace

EvtchnDomain::EvtchnDomain(DomId domain_id, abi::shared_info& shared_info, std::span<PortEntry> port_storage,
                           std::span<EvtchnVcpu> vcpu_storage, bool is_privileged)
    : id{domain_id},
      privileged{is_privileged},
      shared{shared_info},
      ports{port_storage},
      vcpus{vcpu_storage},
      max_port{port_storage.empty() ? 0 : static_cast<std::uint32_t>(port_storage.size() - 1)},
      ops{&two_level_port_ops()} {
    for (PortEntry& entry : ports)
        entry = PortEntry{};
    if (!ports.empty())
        ports[0].state = PortState::reserved;
    for (std::size_t index = 0; index < vcpus.size(); ++index) {
        EvtchnVcpu& vcpu = vcpus[index];
        vcpu.virq_ports = {};
        vcpu.placeholder = abi::vcpu_info{};
        vcpu.info = index < abi::XEN_LEGACY_MAX_VCPUS ? &shared.vcpu_info[index] : &vcpu.placeholder;
    }
}

Result<void> EventChannels::add_domain(EvtchnDomain& domain) {
    if (domain.ports.empty() || domain.ports.size() > domain.ops->max_ports() || domain.vcpus.empty() ||
        domain.id.value >= abi::DOMID_FIRST_RESERVED)
        return Errc::einval;
    if (!domains_.insert_unique(domain).second)
        return Errc::eexist;
    return {};
}

Result<void> EventChannels::remove_domain(EvtchnDomain& domain) {
    if (this->domain(domain.id) != &domain)
        return Errc::esrch;
    if (domain.ports_in_use != 0)
        return Errc::ebusy;
    domains_.erase(domains_.iterator_to(domain));
    if (control_ == &domain)
        control_ = nullptr;
    for (EvtchnDomain*& handler : global_handlers_) {
        if (handler == &domain)
            handler = nullptr;
    }
    return {};
}

EvtchnDomain* EventChannels::domain(DomId id) {
    const auto found = domains_.find(id);
    return found == domains_.end() ? nullptr : &*found;
}

Result<EvtchnDomain*> EventChannels::controlled_domain(EvtchnDomain& caller, abi::domid_t id) {
    if (id == abi::DOMID_SELF)
        return &caller;
    EvtchnDomain* found = domain(DomId{id});
    if (found == nullptr)
        return Errc::esrch;
    // Checked before anything about the domain's ports (Xen checks after), so that a domain without
    // privilege learns nothing about another domain's ports, not even how many it has.
    if (found != &caller && !caller.privileged)
        return Errc::eperm;
    return found;
}

Result<Port> EventChannels::find_free_port(const EvtchnDomain& domain) const {
    if (domain.dying)
        return Errc::einval;
    const std::uint64_t highest = domain.ports.size() - 1;
    const std::uint64_t last = domain.max_port < highest ? domain.max_port : highest;
    for (std::uint64_t port = 1; port <= last; ++port) {
        if (domain.ports[port].state == PortState::free)
            return Port{static_cast<abi::evtchn_port_t>(port)};
    }
    return Errc::enospc;
}

void EventChannels::occupy(EvtchnDomain& domain, Port port, PortState state, std::uint32_t vcpu) {
    PortEntry& entry = domain.ports[port.value];
    entry = PortEntry{};
    entry.state = state;
    entry.notify_vcpu = vcpu;
    ++domain.ports_in_use;
}

// Frees a port in use, undoing what its binding recorded elsewhere.
void EventChannels::close_port(EvtchnDomain& domain, Port port) {
    PortEntry& entry = domain.ports[port.value];
    switch (entry.state) {
    case PortState::virq: {
        const std::uint32_t holder = is_global_virq(entry.virq) ? 0 : entry.notify_vcpu;
        domain.vcpus[holder].virq_ports[entry.virq] = 0;
        break;
    }
    case PortState::interdomain: {
        PortEntry& remote = entry.peer->ports[entry.peer_port];
        remote.state = PortState::unbound;
        remote.peer = nullptr;
        remote.peer_port = 0;
        remote.unbound_remote = domain.id;
        break;
    }
    default:
        break;
    }
    domain.ops->clear_pending(domain, port);
    entry = PortEntry{};
    --domain.ports_in_use;
}

Result<void> EventChannels::close(EvtchnDomain& caller, Port port) {
    if (port.value >= caller.ports.size())
        return Errc::einval;
    const PortState state = caller.ports[port.value].state;
    if (!in_use(state) || state == PortState::hypervisor)
        return Errc::einval;
    close_port(caller, port);
    return {};
}

void EventChannels::release_port(EvtchnDomain& domain, Port port) {
    if (port.value < domain.ports.size() && in_use(domain.ports[port.value].state))
        close_port(domain, port);
}

bool EventChannels::close_all_ports(EvtchnDomain& domain, std::uint32_t budget) {
    domain.dying = true;
    for (std::size_t port = 1; port < domain.ports.size() && domain.ports_in_use != 0; ++port) {
        if (!in_use(domain.ports[port].state))
            continue;
        if (budget == 0)
            return false;
        close_port(domain, Port{static_cast<abi::evtchn_port_t>(port)});
        --budget;
    }
    return domain.ports_in_use == 0;
}

Result<void> EventChannels::reset(EvtchnDomain& caller, abi::domid_t dom) {
    const auto target = controlled_domain(caller, dom);
    if (!target)
        return target.error();
    EvtchnDomain& domain = **target;
    // Another domain's ports change under it only while it cannot run.
    if (&domain != &caller && !platform_.paused_by_controller(domain))
        return Errc::einval;
    for (std::size_t port = 1; port < domain.ports.size() && domain.ports_in_use != 0; ++port) {
        const PortState state = domain.ports[port].state;
        if (in_use(state) && state != PortState::hypervisor)
            close_port(domain, Port{static_cast<abi::evtchn_port_t>(port)});
    }
    return {};
}

bool EventChannels::is_pending(const EvtchnDomain& domain, Port port) const {
    return port.value < domain.ports.size() && domain.ops->is_pending(domain, port);
}

bool EventChannels::is_masked(const EvtchnDomain& domain, Port port) const {
    return port.value < domain.ports.size() && domain.ops->is_masked(domain, port);
}

}  // namespace hv::evtchn

// The invariant checker: what ports.cpp promises, checked over every port of every domain.
#include <hv/evtchn.hpp>

namespace hv::evtchn {
namespace {

class Checker {
public:
    explicit Checker(const EventChannels& channels) : channels_{channels} {}

    std::optional<InvariantViolation> run(const EvtchnDomain* control, std::span<EvtchnDomain* const> handlers) {
        for (const EvtchnDomain& domain : channels_.domains()) {
            check_domain(domain);
            if (violation_)
                return violation_;
        }
        if (control != nullptr)
            expect(registered(control), "the control domain is not registered", *control, Port{0});
        for (const EvtchnDomain* handler : handlers) {
            if (handler != nullptr)
                expect(registered(handler), "a global VIRQ handler is not registered", *handler, Port{0});
        }
        return violation_;
    }

private:
    void expect(bool holds, const char* what, const EvtchnDomain& domain, Port port) {
        if (!holds && !violation_)
            violation_ = InvariantViolation{what, domain.id, port};
    }

    bool registered(const EvtchnDomain* domain) const {
        const auto found = channels_.domains().find(domain->id);
        return found != channels_.domains().end() && &*found == domain;
    }

    void check_domain(const EvtchnDomain& domain) {
        const Port none{0};
        expect(!domain.ports.empty() && domain.ports.size() <= domain.ops->max_ports(),
               "the port table is empty or larger than the ABI can name", domain, none);
        expect(!domain.vcpus.empty(), "the domain has no vCPU", domain, none);
        if (violation_)
            return;
        expect(domain.ports[0].state == PortState::reserved, "port 0 is not reserved", domain, none);
        std::uint32_t in_use = 0;
        for (std::size_t index = 1; index < domain.ports.size() && !violation_; ++index) {
            const Port port{static_cast<abi::evtchn_port_t>(index)};
            const PortState state = domain.ports[index].state;
            if (state != PortState::free)
                ++in_use;
            check_port(domain, port);
        }
        expect(in_use == domain.ports_in_use, "ports_in_use does not count the ports in use", domain, none);
        for (std::size_t vcpu = 0; vcpu < domain.vcpus.size() && !violation_; ++vcpu)
            check_virq_bindings(domain, static_cast<std::uint32_t>(vcpu));
    }

    void check_port(const EvtchnDomain& domain, Port port) {
        const PortEntry& entry = domain.ports[port.value];
        expect(entry.state != PortState::reserved, "a port other than 0 is reserved", domain, port);
        expect(entry.notify_vcpu < domain.vcpus.size(), "a port notifies a vCPU that does not exist", domain, port);
        expect((entry.peer != nullptr) == (entry.state == PortState::interdomain),
               "a port has a peer exactly when it is interdomain: broken", domain, port);
        // An unbound port may wait for any id, DOMID_INVALID included (as Xen, which does not check).
        expect(entry.state == PortState::unbound || entry.unbound_remote == DomId{abi::DOMID_INVALID},
               "a port that is not unbound names an unbound remote", domain, port);
        expect(entry.state == PortState::virq || entry.virq == 0, "a port that is not a VIRQ records one", domain, port);
        if (violation_)
            return;
        switch (entry.state) {
        case PortState::free:
            expect(entry == PortEntry{}, "a free port keeps state of a past binding", domain, port);
            break;
        case PortState::interdomain:
            check_peer(domain, port, entry);
            break;
        case PortState::virq: {
            if (entry.virq >= abi::NR_VIRQS) {
                expect(false, "a VIRQ port's VIRQ is out of range", domain, port);
                break;
            }
            const std::uint32_t holder = is_global_virq(entry.virq) ? 0 : entry.notify_vcpu;
            expect(domain.vcpus[holder].virq_ports[entry.virq] == port.value,
                   "a VIRQ port is not the one recorded for its VIRQ", domain, port);
            break;
        }
        default:
            break;
        }
    }

    void check_peer(const EvtchnDomain& domain, Port port, const PortEntry& entry) {
        if (entry.peer == nullptr)
            return;  // reported above
        if (!registered(entry.peer)) {
            expect(false, "an interdomain port's peer is not a registered domain", domain, port);
            return;
        }
        const EvtchnDomain& peer = *entry.peer;
        if (entry.peer_port == 0 || entry.peer_port >= peer.ports.size()) {
            expect(false, "an interdomain port's peer port is not a valid port", domain, port);
            return;
        }
        const PortEntry& back = peer.ports[entry.peer_port];
        expect(back.state == PortState::interdomain && back.peer == &domain && back.peer_port == port.value,
               "the two ends of an interdomain channel do not name each other", domain, port);
    }

    void check_virq_bindings(const EvtchnDomain& domain, std::uint32_t vcpu) {
        for (std::uint32_t virq = 0; virq < abi::NR_VIRQS; ++virq) {
            const abi::evtchn_port_t recorded = domain.vcpus[vcpu].virq_ports[virq];
            if (recorded == 0)
                continue;
            const Port port{recorded};
            if (recorded >= domain.ports.size()) {
                expect(false, "a recorded VIRQ port is not a valid port", domain, port);
                return;
            }
            const PortEntry& entry = domain.ports[recorded];
            const bool holder = is_global_virq(virq) ? vcpu == 0 : entry.notify_vcpu == vcpu;
            expect(entry.state == PortState::virq && entry.virq == virq && holder,
                   "a recorded VIRQ port is not bound to that VIRQ on that vCPU", domain, port);
        }
    }

    const EventChannels& channels_;
    std::optional<InvariantViolation> violation_;
};

}  // namespace

std::optional<InvariantViolation> check_invariants(const EventChannels& channels) {
    return Checker{channels}.run(channels.control_domain(), channels.global_virq_handlers());
}

}  // namespace hv::evtchn

// Event channels: ports, their bindings, and the EVTCHNOPs of event_channel_op.
//
// Each domain has a table of ports in storage its embedder provides. A port is free, or bound as
// one end of an interdomain channel (unbound while it waits for its peer), to a virtual IRQ, to an
// IPI between the domain's own vCPUs, or to a consumer inside the hypervisor (the console and store
// backends). Sending on a port makes its target pending through the domain's PortOps (the 2-level
// ABI over shared_info), which kicks the notified vCPU through the platform.
//
// The states, their transitions and the invariants kept are written at the top of
// libhv/src/evtchn/ports.cpp; check_invariants() checks them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include <boost/intrusive/set.hpp>

#include <hv/core.hpp>
#include <hv/evtchn_port_ops.hpp>
#include <hv/guest_memory.hpp>
#include <hv/hypercall_dispatch.hpp>

namespace hv::evtchn {

namespace abi = pvkit::abi;

enum class PortState : std::uint8_t {
    free,         // not in use; the only state a port can be allocated from
    reserved,     // port 0: never allocated, so a guest can use 0 for "no port"
    unbound,      // one end of an interdomain channel, waiting for `unbound_remote` to bind
    interdomain,  // one end of an interdomain channel; `peer`/`peer_port` is the other end
    virq,         // receives virtual IRQ `virq`
    ipi,          // receives the domain's own sends, on `notify_vcpu`
    hypervisor,   // connected to a consumer in the hypervisor (console, store backends)
};

// One port of one domain. 24 bytes: 4096 ports are 96 KiB.
struct PortEntry {
    EvtchnDomain* peer = nullptr;                     // interdomain: the other end's domain
    abi::evtchn_port_t peer_port = 0;                 // interdomain: the other end's port
    std::uint32_t notify_vcpu = 0;                    // the vCPU whose upcall this port raises
    DomId unbound_remote{abi::DOMID_INVALID};         // unbound: the one domain that may bind to it
    PortState state = PortState::free;
    std::uint8_t virq = 0;                            // virq: which one

    bool operator==(const PortEntry&) const = default;
};
static_assert(sizeof(PortEntry) <= 24);

// A vCPU as the event channels see it.
struct EvtchnVcpu {
    // Where this vCPU's upcall flag and selector live: its slot in shared_info, or the vcpu_info
    // it registered (move_vcpu_info). Set by EvtchnDomain's constructor.
    abi::vcpu_info* info = nullptr;
    // The port bound to each VIRQ on this vCPU; 0 when none. Global VIRQs are kept on vCPU 0.
    std::array<abi::evtchn_port_t, abi::NR_VIRQS> virq_ports{};
    // Where events go for a vCPU beyond shared_info's XEN_LEGACY_MAX_VCPUS slots until it registers
    // a vcpu_info of its own (Xen's dummy_vcpu_info).
    abi::vcpu_info placeholder{};
};

// A domain as the event channels see it. It takes part in an EventChannels between add_domain and
// remove_domain, and must stay where it is meanwhile (ports point at their peers' domains).
struct EvtchnDomain {
    // `ports` has one entry per port number (at most the ABI's max_ports()); `vcpus` one per vCPU.
    // The domain may allocate ports 1 to ports.size() - 1 unless set_max_port lowers that.
    EvtchnDomain(DomId domain_id, abi::shared_info& shared_info, std::span<PortEntry> port_storage,
                 std::span<EvtchnVcpu> vcpu_storage, bool is_privileged = false);
    EvtchnDomain(const EvtchnDomain&) = delete;
    EvtchnDomain& operator=(const EvtchnDomain&) = delete;

    // The highest port number the domain may allocate (Xen's max_evtchn_port). Ports above it that
    // are in use stay in use.
    void set_max_port(std::uint32_t port) { max_port = port; }

    boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> registry_link;
    DomId id;
    bool privileged;
    bool dying = false;                // being destroyed: no new port is allocated in it
    abi::shared_info& shared;
    std::span<PortEntry> ports;
    std::span<EvtchnVcpu> vcpus;
    std::uint32_t max_port;
    std::uint32_t ports_in_use = 0;    // ports neither free nor reserved
    const PortOps* ops;                // the ABI the guest sees its events through
};

struct DomainIdOf {
    using type = DomId;
    const DomId& operator()(const EvtchnDomain& domain) const { return domain.id; }
};
using DomainRegistry = boost::intrusive::set<
    EvtchnDomain,
    boost::intrusive::member_hook<EvtchnDomain, decltype(EvtchnDomain::registry_link), &EvtchnDomain::registry_link>,
    boost::intrusive::key_of_value<DomainIdOf>>;

// What the event channels need from the machine.
class EvtchnPlatform {
public:
    // The vCPU's evtchn_upcall_pending was just set: make it notice (wake it if blocked, interrupt
    // it if running on another CPU; a vCPU running here sees it on its way back to the guest).
    virtual void kick_vcpu(const EvtchnDomain& domain, std::uint32_t vcpu) = 0;
    // A port of `domain` became pending, masked or not: wake its vCPUs blocked in SCHEDOP_poll on it.
    virtual void wake_pollers(const EvtchnDomain& domain, Port port) = 0;
    // The guest sent on a hypervisor channel (bind_hypervisor_channel): the backend has work.
    virtual void hypervisor_channel_signalled(const EvtchnDomain& domain, Port port) = 0;
    // Whether the domain is paused by its controller: only then may another domain reset its ports.
    virtual bool paused_by_controller(const EvtchnDomain& domain) = 0;

protected:
    ~EvtchnPlatform() = default;
};

inline constexpr bool is_global_virq(std::uint32_t virq) {
    // Xen's per-vCPU VIRQs; on x86 every other one, the architecture's included, is global.
    return virq != abi::VIRQ_TIMER && virq != abi::VIRQ_DEBUG && virq != abi::VIRQ_XENOPROF &&
           virq != abi::VIRQ_XENPMU;
}

// The event channels of all domains, and the operations on them. Every operation validates all it
// was given before it changes anything: one that fails has changed nothing. Errors are Xen's.
class EventChannels {
public:
    explicit EventChannels(EvtchnPlatform& platform) : platform_{platform} {}
    EventChannels(const EventChannels&) = delete;
    EventChannels& operator=(const EventChannels&) = delete;

    EvtchnPlatform& platform() { return platform_; }

    // Domains. add_domain: einval for storage the ABI cannot use (no port, more ports than it can
    // name, no vCPU), eexist for a taken id. remove_domain: ebusy while the domain has a port in use
    // (close_all_ports first); it stops being a global VIRQ handler.
    Result<void> add_domain(EvtchnDomain& domain);
    Result<void> remove_domain(EvtchnDomain& domain);
    EvtchnDomain* domain(DomId id);
    const DomainRegistry& domains() const { return domains_; }

    // Domain destruction: marks the domain dying (no new port), then closes up to `budget` of its
    // ports, whatever their state. True once none is in use; call again until then.
    bool close_all_ports(EvtchnDomain& domain, std::uint32_t budget);

    // The EVTCHNOPs, for `caller`. Domain arguments are raw so DOMID_SELF can be said.
    Result<Port> alloc_unbound(EvtchnDomain& caller, abi::domid_t dom, abi::domid_t remote_dom);
    Result<Port> bind_interdomain(EvtchnDomain& caller, abi::domid_t remote_dom, Port remote_port);
    Result<Port> bind_virq(EvtchnDomain& caller, std::uint32_t virq, std::uint32_t vcpu);
    Result<Port> bind_ipi(EvtchnDomain& caller, std::uint32_t vcpu);
    Result<void> close(EvtchnDomain& caller, Port port);
    Result<void> send(EvtchnDomain& caller, Port port);
    // The answer to EVTCHNOP_status: the request's dom and port, and what the port is.
    Result<abi::evtchn_status> status(EvtchnDomain& caller, abi::domid_t dom, Port port);
    Result<void> bind_vcpu(EvtchnDomain& caller, Port port, std::uint32_t vcpu);
    Result<void> unmask(EvtchnDomain& caller, Port port);
    Result<void> reset(EvtchnDomain& caller, abi::domid_t dom);

    // For the hypervisor. send_virq raises `virq` on `domain`: a per-vCPU VIRQ on `vcpu`'s binding,
    // a global one on the domain's (bound on vCPU 0, delivered to its notify vCPU). False when
    // nothing is bound. send_global_virq raises a global VIRQ in its handler domain, by default the
    // control domain.
    bool send_virq(EvtchnDomain& domain, std::uint32_t vcpu, std::uint32_t virq);
    bool send_global_virq(std::uint32_t virq);
    // The domain global VIRQs go to unless a handler is set (Xen's hardware domain); einval for a
    // domain that is not registered, nullptr for none.
    Result<void> set_control_domain(EvtchnDomain* domain);
    // einval for a per-vCPU or unknown VIRQ, or a domain that is not registered; nullptr gives the
    // VIRQ back to the control domain.
    Result<void> set_global_virq_handler(std::uint32_t virq, EvtchnDomain* domain);
    const EvtchnDomain* control_domain() const { return control_; }
    std::span<EvtchnDomain* const> global_virq_handlers() const { return global_handlers_; }

    // Channels between a guest and a backend in the hypervisor (its console, its store): a port of
    // the guest whose sends reach the platform's hypervisor_channel_signalled. The guest may move
    // it to another vCPU but cannot close it; EVTCHNOP_reset leaves it; close_all_ports ends it.
    Result<Port> bind_hypervisor_channel(EvtchnDomain& domain, std::uint32_t vcpu);
    Result<void> signal_hypervisor_channel(EvtchnDomain& domain, Port port);  // the backend -> guest
    Result<void> close_hypervisor_channel(EvtchnDomain& domain, Port port);

    // A vCPU registered a vcpu_info of its own (VCPUOP_register_vcpu_info, which copies the old
    // contents): events go there from now on. Every selector bit and the upcall flag are set so
    // that nothing pending is lost (the guest sees a spurious event at worst), and the vCPU kicked.
    Result<void> move_vcpu_info(EvtchnDomain& domain, std::uint32_t vcpu, abi::vcpu_info& info);

    // Closes any port of `domain` in use, whatever its state: teardown, and undoing a bind whose
    // result the guest cannot be told.
    void release_port(EvtchnDomain& domain, Port port);

    bool is_pending(const EvtchnDomain& domain, Port port) const;  // false for an invalid port
    bool is_masked(const EvtchnDomain& domain, Port port) const;

private:
    // The domain `id` names for `caller`: itself (DOMID_SELF or its own id), or another one if the
    // caller is privileged; esrch, eperm.
    Result<EvtchnDomain*> controlled_domain(EvtchnDomain& caller, abi::domid_t id);
    Result<Port> bind_to_vcpu(EvtchnDomain& domain, PortState state, std::uint32_t vcpu);
    Result<Port> find_free_port(const EvtchnDomain& domain) const;
    void occupy(EvtchnDomain& domain, Port port, PortState state, std::uint32_t vcpu);
    void raise(EvtchnDomain& domain, Port port);
    void deliver(EvtchnDomain& domain, Port port, Signal signal);
    void close_port(EvtchnDomain& domain, Port port);

    EvtchnPlatform& platform_;
    DomainRegistry domains_;
    EvtchnDomain* control_ = nullptr;
    std::array<EvtchnDomain*, abi::NR_VIRQS> global_handlers_{};
};

// event_channel_op as a hypercall: the calling domain and the memory its arguments are in.
struct EvtchnCaller {
    EvtchnDomain& domain;
    GuestMemory& memory;
};

// Copies the command's argument in (efault), performs it, and copies the result back into the same
// struct as Xen does (ports of binds, the status). A bind whose result cannot be written back is
// undone and gives efault. EVTCHNOP_bind_pirq gives enosys: there are no physical IRQs to bind. The
// FIFO commands (init_control, expand_array, set_priority) and unknown ones give enosys, which
// guests take as "use the 2-level ABI".
long event_channel_op(EventChannels& channels, EvtchnCaller& caller, const hypercall_args::event_channel_op& args);

// The invariant checker (invariants.cpp): the first broken invariant, if any.
struct InvariantViolation {
    const char* what;
    DomId domain;
    Port port;
};
std::optional<InvariantViolation> check_invariants(const EventChannels& channels);

}  // namespace hv::evtchn

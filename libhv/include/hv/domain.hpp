// Domains: the lifecycle that ties one domain's memory, event channels, grant table and console
// together, and the hypercalls that are not one component's alone.
//
// A Domain lives in storage its embedder gives (DomainStorage) and takes part in a Domains between
// create() and the destroy() that finishes. Domains owns the event channels and grant tables of
// every domain over the embedder's PageTables, and is their platform: it turns what they need from
// the machine into the few calls of DomainPlatform. The lifecycle, its states and the teardown
// order are written at the top of libhv/src/domain/domains.cpp.
//
// The hypercalls (hypercalls.hpp) reach a domain through a HypercallCaller: the calling vCPU, the
// memory its arguments are in, and the preemption and continuation of this call.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <boost/intrusive/set.hpp>

#include <hv/console.hpp>
#include <hv/xenstore.hpp>
#include <hv/evtchn.hpp>
#include <hv/gnttab.hpp>

namespace hv::domain {

namespace abi = pvkit::abi;

enum class DomainState : std::uint8_t {
    running,   // its vCPUs run unless paused or blocked
    shutdown,  // stopped for good with shutdown_reason; waits for destroy()
    dying,     // destroy() has begun
};

// One vCPU as the scheduler sees it; its memory and event state are kept beside it (Domain).
struct Vcpu {
    bool initialised = false;        // has registers to start from: vCPU 0 from the builder, others
                                     // from VCPUOP_initialise
    bool online = false;             // vCPU 0 comes up with the domain; others through VCPUOP_up
    bool blocked = false;            // SCHEDOP_block or SCHEDOP_poll: until an event wakes it
    bool polling = false;            // SCHEDOP_poll: woken by its ports (or any port) and its timeout
    abi::evtchn_port_t poll_port = 0;  // polling one port: that one; 0: polling several
    std::optional<Mfn> vcpu_info_frame;  // the frame of its registered vcpu_info, if it moved it
};

// What a domain is created with. `name` prefixes its console lines (cut to console::max_name_length).
struct DomainConfig {
    DomId id;
    std::string_view name;
    std::uint64_t max_pages;
    bool privileged = false;   // may act on other domains (Xen's control domain rights)
    bool console_write = false;  // console_io writes reach the console (Xen allows it to its console domain)
};

// Storage an embedder gives a domain: one port entry per event-channel port it may use, the
// grant table's storage, and the three per-vCPU arrays, all of one length (the vCPU count).
struct DomainStorage {
    std::span<evtchn::PortEntry> ports;
    gnttab::GrantTableStorage grants;
    std::span<Vcpu> vcpus;
    std::span<mm::VcpuMmu> vcpu_memory;
    std::span<evtchn::EvtchnVcpu> vcpu_events;
};

struct Domain {
    Domain(const DomainConfig& config, DomainStorage domain_storage, console::ConsoleSink& console_sink);
    Domain(const Domain&) = delete;
    Domain& operator=(const Domain&) = delete;

    DomId id() const { return memory.id; }
    std::string_view name() const { return console.name(); }
    std::uint32_t vcpu_count() const { return static_cast<std::uint32_t>(vcpus.size()); }
    // Whether vCPU `vcpu` may be given the CPU.
    bool runnable(std::uint32_t vcpu) const {
        return state == DomainState::running && pause_count == 0 && vcpus[vcpu].online && !vcpus[vcpu].blocked;
    }

    boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> registry_link;
    mm::DomainMemory memory;
    std::optional<evtchn::EvtchnDomain> events;  // from create() until its ports are closed
    gnttab::GrantTable grants;
    console::DomainConsole console;
    DomainStorage storage;
    std::span<Vcpu> vcpus;
    bool console_write;
    DomainState state = DomainState::running;
    std::uint32_t pause_count = 1;               // controller pauses; a new domain starts paused
    std::uint32_t shutdown_reason = 0;           // SHUTDOWN_*, valid once shut down
    std::optional<std::uint32_t> shutdown_code;  // SCHEDOP_shutdown_code: the reason a later shutdown reports
    std::uint64_t vm_assist = 0;                 // VMASST_TYPE_* bits enabled
    Mfn shared_info{0};
    std::optional<Mfn> console_ring;             // the PV console page (attach_console_ring)...
    std::optional<console::ConsoleRing> console_backend;  // ...and its backend
    console::ConsoleInput* console_input = nullptr;      // the platform's input for the ring, if any
    Port console_port{0};
    std::optional<Mfn> store_ring;               // the xenstore page (attach_store_ring)...
    std::optional<xenstore::Connection> store_connection;  // ...and its server
    Port store_port{0};
    std::uint8_t teardown_step = 0;              // progress of destroy()
};

struct DomainIdOf {
    using type = DomId;
    const DomId& operator()(const Domain& domain) const { return domain.memory.id; }
};
using DomainRegistry = boost::intrusive::set<
    Domain, boost::intrusive::member_hook<Domain, decltype(Domain::registry_link), &Domain::registry_link>,
    boost::intrusive::key_of_value<DomainIdOf>>;

// What the domains need from the machine: the scheduler's side of events, blocking and shutdown.
class DomainPlatform {
public:
    // vCPU `vcpu` has an upcall pending or was woken: run it soon (interrupt it if running elsewhere).
    virtual void kick_vcpu(Domain& domain, std::uint32_t vcpu) = 0;
    // SCHEDOP_yield: give the CPU to another runnable vCPU if there is one.
    virtual void yield(Domain& domain, std::uint32_t vcpu) = 0;
    // SCHEDOP_poll with a timeout: call Domains::poll_timed_out at system time `deadline_ns`. The
    // timer need not be cancelled when the vCPU wakes before: a late call is recognised.
    virtual void set_poll_timeout(Domain& domain, std::uint32_t vcpu, std::uint64_t deadline_ns) = 0;
    // The domain shut down (its vCPUs no longer run) or finished being destroyed.
    virtual void domain_shut_down(Domain& domain) = 0;
    virtual void domain_destroyed(DomId id) = 0;

protected:
    ~DomainPlatform() = default;
};

// Every domain, over one memory component. All operations are serialized by the caller.
class Domains final : private evtchn::EvtchnPlatform {
public:
    // `store`, if given, serves the domains' xenstore rings (attach_store_ring).
    Domains(mm::PageTables& page_tables, DomainPlatform& platform, xenstore::Store* store = nullptr);
    Domains(const Domains&) = delete;
    Domains& operator=(const Domains&) = delete;

    mm::PageTables& page_tables() { return tables_; }
    mm::FrameTable& frames() { return tables_.frames(); }
    evtchn::EventChannels& event_channels() { return channels_; }
    gnttab::GrantTables& grant_tables() { return grants_; }
    DomainPlatform& platform() { return platform_; }

    // Registers the domain with every component and gives it its shared_info frame and first
    // grant-table frame, with event delivery masked on every vCPU until the guest unmasks it, as
    // Xen's domain builders leave it; vCPU 0 is online and the domain paused once (unpause to run it). The
    // first privileged domain becomes the control domain (global VIRQs). einval for an id outside
    // the ordinary range, vCPU arrays of different or zero length or storage a component cannot
    // use; eexist for a taken id; enomem when the heap cannot give the frames. On failure nothing
    // stays registered and no frame is lost.
    Result<void> create(Domain& domain);
    Domain* find(DomId id);
    const DomainRegistry& domains() const { return registry_; }

    // The controller's pause: a domain runs only with no pause outstanding. einval to unpause a
    // domain that is not paused.
    void pause(Domain& domain);
    Result<void> unpause(Domain& domain);

    // The domain stops for good (SCHEDOP_shutdown, a crash): its vCPUs no longer run, its console
    // is flushed, the controller is told through VIRQ_DOM_EXC and the platform. A reason set
    // earlier with SCHEDOP_shutdown_code wins. A second shutdown changes nothing.
    void shutdown(Domain& domain, std::uint32_t reason);
    void crash(Domain& domain) { shutdown(domain, abi::SHUTDOWN_crash); }

    // Tears the domain down, at most `budget` ports, mappings or frames per call: the first call
    // pauses it (the platform must not run a vCPU that is not runnable()); then its mappings of
    // others' grants, its ports (peers see their ends unbound), its grant table, its console ring,
    // then every frame. True once it is gone from every component (its storage may be reused);
    // until then call again. A domain whose grants others still map waits here, memory held,
    // until they unmap or are destroyed in turn.
    bool destroy(Domain& domain, unsigned budget);

    // The PV console ring: `ring`, a frame of the domain's own, is served by the console backend
    // over a new hypervisor channel bound to vCPU 0, whose port is returned (start_info.console).
    // einval for a frame the domain does not own or a second ring; the errors of binding a port.
    Result<Port> attach_console_ring(Domain& domain, Mfn ring);

    // The xenstore ring: `ring`, a frame of the domain's own, is served by a connection to the
    // store over a new hypervisor channel bound to vCPU 0, whose port is returned
    // (start_info.store_evtchn); the domain is introduced to the store, with its name and id under
    // /local/domain/<id>/name and domid. einval without a store, for a frame the domain does not own or a
    // second ring; the store's errors; the errors of binding a port. On failure nothing stays.
    Result<Port> attach_store_ring(Domain& domain, Mfn ring);
    bool has_store() const { return store_ != nullptr; }
    xenstore::Store* store() { return store_; }

    // VCPUOP_register_vcpu_info: vCPU `vcpu`'s vcpu_info moves to `offset` in `frame`, a frame of
    // the domain's own, held with a writable type until the domain dies (so that it never becomes
    // a page table). The current contents are copied there first and every event is flagged, so
    // that nothing pending is lost. einval for an offset where a vcpu_info does not fit or that
    // is not aligned for it, a vCPU
    // that already moved its vcpu_info, or a frame that is not the domain's or cannot be writable.
    Result<void> register_vcpu_info(Domain& domain, std::uint32_t vcpu, Mfn frame, std::uint32_t offset);
    // Serves the domain's store ring, then every other connection with output waiting (watch
    // events its requests fired), signalling each domain whose ring moved.
    void service_store(Domain& domain);
    // Serves every connection with output waiting, signalling each domain whose ring moved: call
    // it after changing the store directly as the toolstack (the watch events it fired).
    void serve_waiting_store_connections();

    // Moves what the guest wrote to its ring onto the console and what fits of its console_input
    // into the ring, and signals the guest when either moved. Call it also when input arrives.
    void service_console(Domain& domain);

    // A poll timeout of vCPU `vcpu` of domain `id` passed: the vCPU stops polling, if it still is
    // (the domain may be gone, or the vCPU woken by an event, since the timer was set).
    void poll_timed_out(DomId id, std::uint32_t vcpu);

private:
    // evtchn::EvtchnPlatform
    void kick_vcpu(const evtchn::EvtchnDomain& domain, std::uint32_t vcpu) override;
    void wake_pollers(const evtchn::EvtchnDomain& domain, Port port) override;
    void hypervisor_channel_signalled(const evtchn::EvtchnDomain& domain, Port port) override;
    bool paused_by_controller(const evtchn::EvtchnDomain& domain) override;

    // Ends vCPU `vcpu`'s block or poll and kicks it.
    void wake(Domain& domain, std::uint32_t vcpu);
    // A reference and a writable type on a frame of the domain's that the hypervisor writes (its
    // console ring, a vcpu_info); false when the frame is not the domain's or cannot be writable.
    bool hold_writable(Domain& domain, Mfn frame);
    void release_writable(Mfn frame);
    Domain& of(const evtchn::EvtchnDomain& events);
    // A domain's store connection served, and signalled if its ring moved.
    void serve_store_connection(Domain& domain);
    Result<void> register_domain(Domain& domain);

    mm::PageTables& tables_;
    DomainPlatform& platform_;
    evtchn::EventChannels channels_{*this};
    gnttab::GrantTables grants_;
    DomainRegistry registry_;
    xenstore::Store* store_;
};

}  // namespace hv::domain

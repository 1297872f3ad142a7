// The domain lifecycle.
//
// A domain is created running but paused once by its controller; unpause lets its online vCPUs
// run. It leaves `running` only forwards: to `shutdown` (SCHEDOP_shutdown, a crash, a remote
// shutdown), which stops its vCPUs for good, and to `dying` when destroy() begins. destroy() takes
// it apart in an order where no component ever points into something already gone:
//   1. its mappings of other domains' grants (their pins and page-table entries);
//   2. its event-channel ports, peers' ends becoming unbound, then its event-channel registration
//      (shared_info is not touched after this), its grant table marked dying, its console ring let
//      go, its store connection closed and the domain released from the store;
//   3. every frame: bases, pins, allocations (PageTables::relinquish);
//   4. its grant table, once no other domain maps one of its grants: until then the domain waits
//      here, its still-mapped frames alive through the mappers' references;
//   5. its frame-table registration, once it owns no frame; then the controller hears of it.
// Each step does a bounded amount of work per call and remembers where it stopped.
#include <hv/domain.hpp>

#include <charconv>

namespace hv::domain {

namespace {

// "/local/domain/<id>/<key>" in `buffer`.
std::string_view home_key(std::span<char> buffer, DomId id, std::string_view key) {
    constexpr std::string_view home = "/local/domain/";
    char* out = std::copy(home.begin(), home.end(), buffer.data());
    out = std::to_chars(out, buffer.data() + buffer.size(), id.value).ptr;
    *out++ = '/';
    out = std::copy(key.begin(), key.end(), out);
    return {buffer.data(), static_cast<std::size_t>(out - buffer.data())};
}

enum TeardownStep : std::uint8_t {
    release_mappings,
    close_ports,
    relinquish_memory,
    remove_grant_table,
    remove_memory,
    gone,
};
}  // namespace

Domain::Domain(const DomainConfig& config, DomainStorage domain_storage, console::ConsoleSink& console_sink)
    : memory{config.id, config.max_pages, config.privileged},
      grants{memory, domain_storage.grants},
      console{console_sink, config.name},
      storage{domain_storage},
      vcpus{domain_storage.vcpus},
      console_write{config.console_write} {}

Domains::Domains(mm::PageTables& page_tables, DomainPlatform& platform, xenstore::Store* store)
    : tables_{page_tables}, platform_{platform}, grants_{page_tables}, store_{store} {}

Domain* Domains::find(DomId id) {
    const auto found = registry_.find(id);
    return found == registry_.end() ? nullptr : &*found;
}

Result<void> Domains::create(Domain& domain) {
    const DomainStorage& storage = domain.storage;
    const std::size_t vcpus = storage.vcpus.size();
    if (domain.id().value >= abi::DOMID_FIRST_RESERVED || vcpus == 0 || storage.vcpu_memory.size() != vcpus ||
        storage.vcpu_events.size() != vcpus)
        return Errc::einval;
    if (find(domain.id()) != nullptr)
        return Errc::eexist;
    if (auto added = frames().add_domain(domain.memory); !added)
        return added;
    const auto shared_info = frames().take_from_heap();
    if (!shared_info) {
        (void)frames().remove_domain(domain.memory);
        return shared_info.error();
    }
    frames().share_with(domain.memory, *shared_info);
    domain.shared_info = *shared_info;
    for (std::size_t i = 0; i < vcpus; ++i) {
        storage.vcpus[i] = Vcpu{};
        storage.vcpus[i].initialised = storage.vcpus[i].online = i == 0;
        storage.vcpu_memory[i] = mm::VcpuMmu{.domain = domain.id()};
    }

    auto& info = *reinterpret_cast<abi::shared_info*>(frames().platform().map(*shared_info));
    domain.events.emplace(domain.id(), info, storage.ports, storage.vcpu_events, domain.memory.privileged);
    for (evtchn::EvtchnVcpu& vcpu : storage.vcpu_events)
        vcpu.info->evtchn_upcall_mask = 1;
    registry_.insert(domain);
    auto registered = register_domain(domain);
    if (!registered) {
        registry_.erase(registry_.iterator_to(domain));
        domain.events.reset();
        while (!tables_.relinquish(domain.memory, storage.vcpu_memory, UINT32_MAX)) {
        }
        (void)frames().remove_domain(domain.memory);
        return registered;
    }
    if (domain.memory.privileged && channels_.control_domain() == nullptr)
        (void)channels_.set_control_domain(&*domain.events);
    return {};
}

Result<void> Domains::register_domain(Domain& domain) {
    if (auto added = channels_.add_domain(*domain.events); !added)
        return added;
    if (auto added = grants_.add(domain.grants); !added) {
        (void)channels_.remove_domain(*domain.events);
        return added;
    }
    return {};
}

void Domains::pause(Domain& domain) { ++domain.pause_count; }

Result<void> Domains::unpause(Domain& domain) {
    if (domain.pause_count == 0)
        return Errc::einval;
    if (--domain.pause_count == 0) {
        for (std::uint32_t vcpu = 0; vcpu < domain.vcpu_count(); ++vcpu)
            if (domain.runnable(vcpu))
                platform_.kick_vcpu(domain, vcpu);
    }
    return {};
}

void Domains::shutdown(Domain& domain, std::uint32_t reason) {
    if (domain.state != DomainState::running)
        return;
    domain.state = DomainState::shutdown;
    domain.shutdown_reason = domain.shutdown_code.value_or(reason);
    service_console(domain);  // its last words may still be in the ring
    domain.console.flush();
    channels_.send_global_virq(abi::VIRQ_DOM_EXC);
    platform_.domain_shut_down(domain);
}

bool Domains::destroy(Domain& domain, unsigned budget) {
    switch (domain.teardown_step) {
    case release_mappings:
        if (domain.state != DomainState::dying) {
            pause(domain);
            service_console(domain);
            domain.console.flush();
        }
        domain.state = DomainState::dying;
        if (!grants_.release_mappings(domain.grants, budget))
            return false;
        domain.teardown_step = close_ports;
        [[fallthrough]];
    case close_ports:
        if (!channels_.close_all_ports(*domain.events, budget))
            return false;
        (void)channels_.remove_domain(*domain.events);
        domain.events.reset();
        grants_.mark_dying(domain.grants);
        if (domain.console_ring) {
            domain.console_backend.reset();
            release_writable(*domain.console_ring);
            domain.console_ring.reset();
        }
        if (domain.store_ring) {
            (void)store_->release(domain.id());
            domain.store_connection.reset();
            release_writable(*domain.store_ring);
            domain.store_ring.reset();
            serve_waiting_store_connections();  // @releaseDomain and the watches its end fired
        }
        for (Vcpu& vcpu : domain.vcpus) {
            if (vcpu.vcpu_info_frame)
                release_writable(*vcpu.vcpu_info_frame);
            vcpu.vcpu_info_frame.reset();
        }
        domain.teardown_step = relinquish_memory;
        [[fallthrough]];
    case relinquish_memory:
        if (!tables_.relinquish(domain.memory, domain.storage.vcpu_memory, budget))
            return false;
        domain.teardown_step = remove_grant_table;
        [[fallthrough]];
    case remove_grant_table:
        if (!grants_.remove(domain.grants))
            return false;
        domain.teardown_step = remove_memory;
        [[fallthrough]];
    case remove_memory:
        if (!frames().remove_domain(domain.memory))
            return false;
        registry_.erase(registry_.iterator_to(domain));
        domain.teardown_step = gone;
        channels_.send_global_virq(abi::VIRQ_DOM_EXC);
        platform_.domain_destroyed(domain.id());
        [[fallthrough]];
    default:
        return true;
    }
}

// A frame of the domain's that the hypervisor writes: a writable type keeps the guest from turning
// it into a page table we would then write.
bool Domains::hold_writable(Domain& domain, Mfn frame) {
    if (!frames().get_page(frame, domain.memory))
        return false;
    if (!tables_.get_type(frame, mm::PageType::writable, domain.memory)) {
        frames().put_page(frame);
        return false;
    }
    return true;
}

void Domains::release_writable(Mfn frame) {
    tables_.put_type(frame);
    frames().put_page(frame);
}

Result<Port> Domains::attach_console_ring(Domain& domain, Mfn ring) {
    if (domain.console_ring || domain.state != DomainState::running || !hold_writable(domain, ring))
        return Errc::einval;
    const auto port = channels_.bind_hypervisor_channel(*domain.events, 0);
    if (!port) {
        release_writable(ring);
        return port.error();
    }
    domain.console_ring = ring;
    domain.console_port = *port;
    domain.console_backend.emplace(*reinterpret_cast<abi::xencons_interface*>(frames().platform().map(ring)),
                                   domain.console);
    return *port;
}

Result<Port> Domains::attach_store_ring(Domain& domain, Mfn ring) {
    if (store_ == nullptr || domain.store_ring || domain.state != DomainState::running || !hold_writable(domain, ring))
        return Errc::einval;
    const auto port = channels_.bind_hypervisor_channel(*domain.events, 0);
    if (!port) {
        release_writable(ring);
        return port.error();
    }
    const auto undo = [&](Errc error) -> Result<Port> {
        (void)channels_.close_hypervisor_channel(*domain.events, *port);
        release_writable(ring);
        return error;
    };
    if (const auto introduced = store_->introduce(domain.id()); !introduced)
        return undo(introduced.error());
    // The toolstack's first keys, as xl writes them: the home path holds the domain's name and id,
    // and cpu/<n>/availability says which vCPUs the guest may bring up (Linux reads it).
    const auto decimal = [](std::span<char> buffer, std::uint32_t value) {
        return std::string_view{buffer.data(), static_cast<std::size_t>(
                                                   std::to_chars(buffer.data(), buffer.data() + buffer.size(), value).ptr -
                                                   buffer.data())};
    };
    std::array<char, 64> path{};
    std::array<char, 32> key{};
    std::array<char, 8> id_text{};
    Result<void> written = store_->write(home_key(path, domain.id(), "name"), domain.name());
    if (written)
        written = store_->write(home_key(path, domain.id(), "domid"), decimal(id_text, domain.id().value));
    for (std::uint32_t vcpu = 0; written && vcpu < domain.vcpu_count(); ++vcpu) {
        const std::string_view number = decimal(id_text, vcpu);
        constexpr std::string_view prefix = "cpu/", suffix = "/availability";
        char* end = std::copy(number.begin(), number.end(), std::copy(prefix.begin(), prefix.end(), key.data()));
        end = std::copy(suffix.begin(), suffix.end(), end);
        written = store_->write(home_key(path, domain.id(), {key.data(), static_cast<std::size_t>(end - key.data())}),
                                "online");
    }
    if (!written) {
        (void)store_->release(domain.id());
        return undo(written.error());
    }
    domain.store_ring = ring;
    domain.store_port = *port;
    domain.store_connection.emplace(*store_, domain.id(), domain.memory.privileged,
                                    *reinterpret_cast<abi::xenstore_domain_interface*>(frames().platform().map(ring)));
    return *port;
}

void Domains::serve_store_connection(Domain& domain) {
    if (domain.store_connection->service().notify)
        (void)channels_.signal_hypervisor_channel(*domain.events, domain.store_port);
}

void Domains::serve_waiting_store_connections() {
    for (Domain& other : registry_)
        if (other.store_connection && other.store_connection->pending_output())
            serve_store_connection(other);
}

void Domains::service_store(Domain& domain) {
    if (domain.store_connection)
        serve_store_connection(domain);
    serve_waiting_store_connections();
}

Result<void> Domains::register_vcpu_info(Domain& domain, std::uint32_t vcpu, Mfn frame, std::uint32_t offset) {
    constexpr std::uint64_t page_size = 4096;
    if (vcpu >= domain.vcpu_count() || domain.vcpus[vcpu].vcpu_info_frame || !domain.events ||
        offset > page_size - sizeof(abi::vcpu_info) || offset % alignof(abi::vcpu_info) != 0 ||
        !hold_writable(domain, frame))
        return Errc::einval;
    auto* info = reinterpret_cast<abi::vcpu_info*>(frames().platform().map(frame) + offset);
    *info = *domain.events->vcpus[vcpu].info;
    if (const auto moved = channels_.move_vcpu_info(*domain.events, vcpu, *info); !moved) {
        release_writable(frame);
        return moved.error();
    }
    domain.vcpus[vcpu].vcpu_info_frame = frame;
    return {};
}

void Domains::service_console(Domain& domain) {
    if (!domain.console_backend)
        return;
    if (domain.console_backend->service(domain.console_input).notify)
        (void)channels_.signal_hypervisor_channel(*domain.events, domain.console_port);
}

void Domains::wake(Domain& domain, std::uint32_t vcpu) {
    Vcpu& state = domain.vcpus[vcpu];
    state.polling = false;
    state.poll_port = 0;
    state.blocked = false;
    platform_.kick_vcpu(domain, vcpu);
}

void Domains::poll_timed_out(DomId id, std::uint32_t vcpu) {
    Domain* domain = find(id);
    if (domain != nullptr && vcpu < domain->vcpu_count() && domain->vcpus[vcpu].polling)
        wake(*domain, vcpu);
}

Domain& Domains::of(const evtchn::EvtchnDomain& events) { return *find(events.id); }

void Domains::kick_vcpu(const evtchn::EvtchnDomain& events, std::uint32_t vcpu) { wake(of(events), vcpu); }

void Domains::wake_pollers(const evtchn::EvtchnDomain& events, Port port) {
    Domain& domain = of(events);
    for (std::uint32_t vcpu = 0; vcpu < domain.vcpu_count(); ++vcpu) {
        const Vcpu& state = domain.vcpus[vcpu];
        if (state.polling && (state.poll_port == 0 || state.poll_port == port.value))
            wake(domain, vcpu);
    }
}

void Domains::hypervisor_channel_signalled(const evtchn::EvtchnDomain& events, Port port) {
    Domain& domain = of(events);
    if (domain.console_ring && port == domain.console_port)
        service_console(domain);
    if (domain.store_ring && port == domain.store_port)
        service_store(domain);
}

bool Domains::paused_by_controller(const evtchn::EvtchnDomain& events) { return of(events).pause_count != 0; }

}  // namespace hv::domain

#include "domain_fixture.hpp"

namespace domain_test {
namespace {

TEST_CASE_METHOD(DomainFixture, "a new domain is registered everywhere, paused, with vCPU 0 online",
                 "[domain][create]") {
    const auto free_before = frames.free_frames();
    TestDomain guest{sink, {DomId{3}, "guest", 16}};
    REQUIRE(domains.create(guest.domain));

    CHECK(domains.find(DomId{3}) == &guest.domain);
    CHECK(frames.domain(DomId{3}) == &guest.domain.memory);
    CHECK(domains.event_channels().domain(DomId{3}) == &*guest.domain.events);
    CHECK(domains.grant_tables().find(DomId{3}) == &guest.domain.grants);
    CHECK(guest.domain.pause_count == 1);
    CHECK(guest.vcpus[0].online);
    CHECK_FALSE(guest.vcpus[1].online);
    CHECK_FALSE(guest.domain.runnable(0));
    // shared_info and the first grant-table frame come from the heap, not from the domain's pages.
    CHECK(frames.free_frames() == free_before - 2);
    CHECK(guest.domain.memory.tot_pages == 2);

    REQUIRE(domains.unpause(guest.domain));
    CHECK(guest.domain.runnable(0));
    CHECK(machine.kicks == std::vector<FakeDomainPlatform::VcpuEvent>{{3, 0}});
    require_invariants({&guest});
}

TEST_CASE_METHOD(DomainFixture, "creation refuses bad ids, bad storage and taken ids, leaving nothing behind",
                 "[domain][create][hostile]") {
    const auto free_before = frames.free_frames();
    TestDomain reserved{sink, {DomId{abi::DOMID_SELF}, "self", 16}};
    CHECK(domains.create(reserved.domain).error() == Errc::einval);
    TestDomain no_vcpus{sink, {DomId{4}, "none", 16}, 0};
    CHECK(domains.create(no_vcpus.domain).error() == Errc::einval);
    TestDomain no_ports{sink, {DomId{4}, "noports", 16}, 1, 0};
    CHECK(domains.create(no_ports.domain).error() == Errc::einval);
    TestDomain no_grant_storage{sink, {DomId{4}, "nogrants", 16}, 1, 8, 0};
    CHECK(domains.create(no_grant_storage.domain).error() == Errc::einval);

    TestDomain first{sink, {DomId{4}, "first", 16}};
    REQUIRE(domains.create(first.domain));
    TestDomain twin{sink, {DomId{4}, "twin", 16}};
    CHECK(domains.create(twin.domain).error() == Errc::eexist);

    CHECK(domains.domains().size() == 1);
    CHECK(frames.domains().size() == 1);
    CHECK(domains.grant_tables().registered().size() == 1);
    CHECK(frames.free_frames() == free_before - 2);
    REQUIRE(destroy(first));
    CHECK(frames.free_frames() == free_before);
}

TEST_CASE_METHOD(DomainFixture, "creation without the frames it needs gives enomem and loses none",
                 "[domain][create]") {
    DomainMemory hog{DomId{90}, frame_count};
    REQUIRE(frames.add_domain(hog));
    const auto leave = GENERATE(0u, 1u);  // no frame for shared_info; one for it but none for the grant table
    while (frames.free_frames() > leave)
        REQUIRE(frames.allocate(hog));

    TestDomain guest{sink, {DomId{5}, "guest", 16}};
    CHECK(domains.create(guest.domain).error() == Errc::enomem);
    CHECK(frames.free_frames() == leave);
    CHECK(domains.find(DomId{5}) == nullptr);
    CHECK(frames.domain(DomId{5}) == nullptr);
    CHECK(domains.event_channels().domain(DomId{5}) == nullptr);
    CHECK(domains.grant_tables().find(DomId{5}) == nullptr);

    while (!tables.relinquish(hog, {}, UINT32_MAX)) {
    }
    REQUIRE(frames.remove_domain(hog));
}

TEST_CASE_METHOD(DomainFixture, "pauses nest, and unpausing a running domain is refused", "[domain][pause]") {
    auto guest = make(1, "guest");
    CHECK(domains.unpause(guest->domain).error() == Errc::einval);
    domains.pause(guest->domain);
    domains.pause(guest->domain);
    CHECK_FALSE(guest->domain.runnable(0));
    REQUIRE(domains.unpause(guest->domain));
    CHECK_FALSE(guest->domain.runnable(0));
    machine.kicks.clear();
    REQUIRE(domains.unpause(guest->domain));
    CHECK(guest->domain.runnable(0));
    CHECK(machine.kicks == std::vector<FakeDomainPlatform::VcpuEvent>{{1, 0}});
}

TEST_CASE_METHOD(DomainFixture, "a shutdown stops the domain, flushes its console and tells the controller",
                 "[domain][shutdown]") {
    auto control = make(0, "control", true);
    auto guest = make(1, "guest");
    abi::evtchn_bind_virq bind{abi::VIRQ_DOM_EXC, 0, 0};
    REQUIRE(op(*control, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_virq, bind) == 0);
    guest->domain.console.write(std::span{"last words", 10});

    domains.shutdown(guest->domain, abi::SHUTDOWN_reboot);
    CHECK(guest->domain.state == DomainState::shutdown);
    CHECK(guest->domain.shutdown_reason == abi::SHUTDOWN_reboot);
    CHECK_FALSE(guest->domain.runnable(0));
    CHECK(machine.shut_down == std::vector<abi::domid_t>{1});
    CHECK(sink.text == "(guest) last words\n");
    CHECK(domains.event_channels().is_pending(*control->domain.events, Port{bind.port}));

    // A second shutdown changes nothing.
    domains.shutdown(guest->domain, abi::SHUTDOWN_crash);
    CHECK(guest->domain.shutdown_reason == abi::SHUTDOWN_reboot);
    CHECK(machine.shut_down.size() == 1);
}

TEST_CASE_METHOD(DomainFixture, "destroy gives back every frame, port and grant, and unbinds the peer",
                 "[domain][destroy]") {
    const auto free_before = frames.free_frames();
    auto granter = make(1, "granter");
    auto mapper = make(2, "mapper");
    const auto [granter_port, mapper_port] = connect(*granter, *mapper);
    const Mfn shared = allocate(granter->domain.memory);
    grant(*granter, 8, *mapper, shared);
    const auto mapped = map_grant(*mapper, *granter, 8, free_area);
    REQUIRE(mapped.status == abi::GNTST_okay);
    CHECK(mapper->memory->translate(free_area, true) == platform.map(shared));
    require_invariants({granter.get(), mapper.get()});

    REQUIRE(destroy(*mapper));
    CHECK(machine.destroyed == std::vector<abi::domid_t>{2});
    CHECK(grant_flags(*granter, 8) == abi::GTF_permit_access);  // no longer reading or writing
    CHECK(granter->domain.grants.pinned == 0);
    auto status = domains.event_channels().status(*granter->domain.events, abi::DOMID_SELF, granter_port);
    REQUIRE(status);
    CHECK(status->status == abi::EVTCHNSTAT_unbound);
    require_invariants({granter.get()});

    REQUIRE(destroy(*granter));
    CHECK(domains.domains().empty());
    CHECK(frames.domains().empty());
    CHECK(domains.grant_tables().registered().empty());
    CHECK(domains.event_channels().domains().empty());
    CHECK(frames.free_frames() == free_before);
    (void)mapper_port;
}

TEST_CASE_METHOD(DomainFixture, "a granter whose grant is still mapped waits, memory held, until the mapper unmaps",
                 "[domain][destroy][lifetime]") {
    const auto free_before = frames.free_frames();
    auto granter = make(1, "granter");
    auto mapper = make(2, "mapper");
    const Mfn shared = allocate(granter->domain.memory);
    std::memcpy(platform.map(shared), "granted", 8);
    grant(*granter, 8, *mapper, shared);
    const auto mapped = map_grant(*mapper, *granter, 8, free_area);
    REQUIRE(mapped.status == abi::GNTST_okay);

    CHECK_FALSE(destroy(*granter));
    CHECK(granter->domain.state == DomainState::dying);
    CHECK(domains.find(DomId{1}) == &granter->domain);
    // The mapper still sees the page, and it is still the granter's.
    CHECK(std::memcmp(mapper->memory->translate(free_area, false), "granted", 8) == 0);
    CHECK(frames.info(shared).owner == DomId{1});
    CHECK(machine.destroyed.empty());
    // A dying granter's grants cannot be mapped again.
    CHECK(map_grant(*mapper, *granter, 8, free_area + page_size).status == abi::GNTST_bad_domain);

    CHECK(unmap_grant(*mapper, mapped.handle, free_area) == abi::GNTST_okay);
    REQUIRE(destroy(*granter));
    CHECK(machine.destroyed == std::vector<abi::domid_t>{1});
    REQUIRE(destroy(*mapper));
    CHECK(frames.free_frames() == free_before);
}

TEST_CASE_METHOD(DomainFixture, "destroying the mapper first releases its mappings of a live granter",
                 "[domain][destroy][lifetime]") {
    auto granter = make(1, "granter");
    auto mapper = make(2, "mapper");
    const Mfn shared = allocate(granter->domain.memory);
    grant(*granter, 9, *mapper, shared, abi::GTF_permit_access | abi::GTF_readonly);
    REQUIRE(map_grant(*mapper, *granter, 9, free_area, abi::GNTMAP_host_map | abi::GNTMAP_readonly).status ==
            abi::GNTST_okay);
    CHECK(grant_flags(*granter, 9) == (abi::GTF_permit_access | abi::GTF_readonly | abi::GTF_reading));

    REQUIRE(destroy(*mapper));
    CHECK(grant_flags(*granter, 9) == (abi::GTF_permit_access | abi::GTF_readonly));
    // The granter can take its frame back now (end access, then free it).
    REQUIRE(frames.release(granter->domain.memory, shared));
    require_invariants({granter.get()});
}

TEST_CASE_METHOD(DomainFixture, "the PV console ring is served when the guest signals it, and at shutdown",
                 "[domain][console]") {
    auto guest = make(1, "guest");
    auto other = make(2, "other");
    const Mfn ring = allocate(guest->domain.memory);  // not mapped by the guest: only the backend types it
    CHECK(domains.attach_console_ring(guest->domain, allocate(other->domain.memory)).error() == Errc::einval);
    const auto port = domains.attach_console_ring(guest->domain, ring);
    REQUIRE(port);
    CHECK(domains.attach_console_ring(guest->domain, ring).error() == Errc::einval);

    // The guest's console driver: bytes into out[], out_prod moved, then a send on its port.
    auto& page = *reinterpret_cast<abi::xencons_interface*>(platform.map(ring));
    const auto produce = [&](std::string_view text) {
        for (char c : text)
            page.out[page.out_prod++ % sizeof page.out] = c;
    };
    produce("hello\nwor");
    abi::evtchn_send send{port->value};
    REQUIRE(op(*guest, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_send, send) == 0);
    CHECK(sink.text == "(guest) hello\n");
    CHECK(page.out_cons == 9);
    CHECK(domains.event_channels().is_pending(*guest->domain.events, *port));  // the backend answered

    // The platform's input for the domain goes into in[] when the ring is next served, and what
    // does not fit waits for the guest to consume: its signal serves the ring again.
    hv::console::ConsoleInput input;
    guest->domain.console_input = &input;
    for (char c : std::string_view{"ls\r"})
        REQUIRE(input.push(c));
    auto& shared = *reinterpret_cast<abi::shared_info*>(platform.map(guest->domain.shared_info));
    shared.evtchn_pending[port->value / 64] &= ~(1ull << (port->value % 64));  // the guest took the event
    REQUIRE_FALSE(domains.event_channels().is_pending(*guest->domain.events, *port));
    domains.service_console(guest->domain);
    CHECK(page.in_prod == 3);
    CHECK(std::string_view{page.in, 3} == "ls\r");
    CHECK(input.empty());
    CHECK(domains.event_channels().is_pending(*guest->domain.events, *port));

    // The page stays a plain writable page while it is a console ring.
    CHECK(frames.info(ring).type == PageType::writable);
    CHECK(frames.info(ring).type_count == 1);
    abi::mmuext_op pin{};
    pin.cmd = abi::MMUEXT_PIN_L1_TABLE;
    pin.arg1.mfn = ring.value;
    poke(*guest, argument_area, pin);
    CHECK(call(*guest, abi::HYPERVISOR_mmuext_op, {argument_area, 1, 0, abi::DOMID_SELF}) == error(Errc::einval));

    // What the guest wrote but never signalled is seen at its shutdown, the partial line ended.
    produce("ld");
    domains.shutdown(guest->domain, abi::SHUTDOWN_poweroff);
    CHECK(sink.text == "(guest) hello\n(guest) world\n");
    REQUIRE(destroy(*guest));
    CHECK(frames.info(ring).owner != DomId{1});
}

TEST_CASE_METHOD(DomainFixture, "the xenstore ring is served when the guest signals it, and let go at destroy",
                 "[domain][xenstore]") {
    auto guest = make(1, "guest");
    auto other = make(2, "other");
    CHECK(domains.attach_store_ring(guest->domain, allocate(other->domain.memory)).error() == Errc::einval);
    CHECK_FALSE(store.introduced(DomId{1}));  // nothing stays of the refused attach
    const Mfn ring = allocate(guest->domain.memory);
    const auto port = domains.attach_store_ring(guest->domain, ring);
    REQUIRE(port);
    CHECK(domains.attach_store_ring(guest->domain, ring).error() == Errc::einval);
    CHECK(store.introduced(DomId{1}));
    CHECK(frames.info(ring).type == PageType::writable);

    // The guest's xenbus: a READ of "name" (relative to its home) into req[], then a send.
    auto& page = *reinterpret_cast<abi::xenstore_domain_interface*>(platform.map(ring));
    const abi::xsd_sockmsg request{abi::XS_READ, 7, 0, 5};
    std::memcpy(page.req, &request, sizeof request);
    std::memcpy(page.req + sizeof request, "name", 5);
    page.req_prod = sizeof request + 5;
    abi::evtchn_send send{port->value};
    REQUIRE(op(*guest, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_send, send) == 0);
    CHECK(page.req_cons == page.req_prod);
    abi::xsd_sockmsg reply{};
    std::memcpy(&reply, page.rsp, sizeof reply);
    CHECK(reply.type == abi::XS_READ);
    CHECK(reply.req_id == 7);
    CHECK(std::string_view{page.rsp + sizeof reply, reply.len} == "guest");  // the toolstack wrote its name
    std::array<char, 8> domid{};
    const auto length = store.read("/local/domain/1/domid", domid);
    REQUIRE(length);
    CHECK(std::string_view{domid.data(), *length} == "1");
    for (const char* cpu : {"/local/domain/1/cpu/0/availability", "/local/domain/1/cpu/1/availability"}) {
        std::array<char, 8> availability{};
        const auto read = store.read(cpu, availability);  // one key per vCPU, as xl writes them
        REQUIRE(read);
        CHECK(std::string_view{availability.data(), *read} == "online");
    }
    std::array<char, 8> none{};
    CHECK_FALSE(store.read("/local/domain/1/cpu/2/availability", none));
    CHECK(domains.event_channels().is_pending(*guest->domain.events, *port));
    require_invariants({guest.get(), other.get()});

    REQUIRE(destroy(*guest));
    CHECK_FALSE(store.introduced(DomId{1}));
    CHECK(frames.info(ring).owner != DomId{1});
}

TEST_CASE_METHOD(DomainFixture, "destroy stops a running domain with blocked and polling vCPUs",
                 "[domain][destroy]") {
    const auto free_before = frames.free_frames();
    auto guest = make(1, "guest");
    guest->vcpus[1].online = true;
    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_block, 0}, 1) == 0);
    abi::sched_poll poll{{argument_area + 64}, 0, 5'000};
    CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_poll, poll) == 0);
    guest->domain.console.write(std::span{"unfinished", 10});

    CHECK_FALSE(domains.destroy(guest->domain, 1));
    CHECK(guest->domain.pause_count == 1);
    CHECK_FALSE(guest->domain.runnable(0));
    CHECK_FALSE(guest->domain.runnable(1));
    CHECK(sink.text == "(guest) unfinished\n");
    REQUIRE(destroy(*guest));
    domains.poll_timed_out(DomId{1}, 0);  // its timer fires after it is gone: nothing happens
    CHECK(frames.free_frames() == free_before);
}

// The lifecycle stress the issue asks for: domains created and destroyed 10,000 times with grants
// mapped and channels bound between them, torn down in either order; nothing may leak.
TEST_CASE_METHOD(DomainFixture, "10,000 create/destroy cycles with grants and ports in use leak nothing",
                 "[domain][destroy][stress]") {
    const auto free_before = frames.free_frames();
    auto control = make(0, "control", true);
    abi::evtchn_bind_virq dom_exc{abi::VIRQ_DOM_EXC, 0, 0};
    REQUIRE(op(*control, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_virq, dom_exc) == 0);
    const auto control_frames = free_before - frames.free_frames();

    for (int cycle = 0; cycle < 10'000; ++cycle) {
        const auto first = static_cast<abi::domid_t>(1 + 2 * (cycle % 100));
        auto granter = make(first, "granter");
        auto mapper = make(first + 1, "mapper");
        connect(*granter, *mapper);
        const Port control_port = connect(*mapper, *control).second;
        const Mfn shared = allocate(granter->domain.memory);
        grant(*granter, 8, *mapper, shared);
        const auto mapped = map_grant(*mapper, *granter, 8, free_area);
        REQUIRE(mapped.status == abi::GNTST_okay);
        if (cycle % 2 == 0) {
            REQUIRE(destroy(*mapper, 3));
            REQUIRE(destroy(*granter, 3));
        } else {
            CHECK_FALSE(domains.destroy(granter->domain, 1000));  // waits for the mapper
            REQUIRE(destroy(*mapper, 3));
            REQUIRE(destroy(*granter, 3));
        }
        // The control domain closes its end, as a backend does when its frontend goes.
        abi::evtchn_close close{control_port.value};
        REQUIRE(op(*control, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_close, close) == 0);
        if (cycle % 1000 == 0)
            require_invariants({control.get()});
    }

    CHECK(frames.free_frames() == free_before - control_frames);
    CHECK(domains.domains().size() == 1);
    CHECK(domains.event_channels().domains().size() == 1);
    CHECK(domains.grant_tables().registered().size() == 1);
    CHECK(control->domain.events->ports_in_use == 1);
    CHECK(control->domain.grants.maptrack_in_use == 0);
    CHECK(domains.event_channels().is_pending(*control->domain.events, Port{dom_exc.port}));
    require_invariants({control.get()});
}

}  // namespace
}  // namespace domain_test

// Domains joining and leaving, port limits, and a long run of binds and closes.
#include "evtchn_fixture.hpp"

using namespace evtchn_test;

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a domain id is registered once, with storage the ABI can use", "[evtchn]") {
    abi::shared_info shared{};
    std::vector<PortEntry> ports(8), none, too_many(abi::EVTCHN_2L_NR_CHANNELS + 1);
    std::vector<EvtchnVcpu> vcpus(1), no_vcpus;
    EvtchnDomain twin{DomId{1}, shared, ports, vcpus};
    CHECK(channels.add_domain(twin).error() == Errc::eexist);
    EvtchnDomain portless{DomId{7}, shared, none, vcpus};
    CHECK(channels.add_domain(portless).error() == Errc::einval);
    EvtchnDomain oversized{DomId{7}, shared, too_many, vcpus};
    CHECK(channels.add_domain(oversized).error() == Errc::einval);
    EvtchnDomain headless{DomId{7}, shared, ports, no_vcpus};
    CHECK(channels.add_domain(headless).error() == Errc::einval);
    EvtchnDomain reserved{DomId{abi::DOMID_SELF}, shared, ports, vcpus};
    CHECK(channels.add_domain(reserved).error() == Errc::einval);
    CHECK(channels.domain(DomId{1}) == &dom1.domain);
    CHECK(channels.domain(DomId{7}) == nullptr);
    CHECK(channels.remove_domain(twin).error() == Errc::esrch);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a domain's storage is reset when it is set up", "[evtchn]") {
    abi::shared_info shared{};
    std::vector<PortEntry> ports(4);
    ports[2].state = PortState::ipi;
    ports[3].notify_vcpu = 9;
    std::vector<EvtchnVcpu> vcpus(1);
    vcpus[0].virq_ports[abi::VIRQ_TIMER] = 3;
    EvtchnDomain domain{DomId{7}, shared, ports, vcpus};
    CHECK(ports[0].state == PortState::reserved);
    CHECK(ports[2] == PortEntry{});
    CHECK(ports[3] == PortEntry{});
    CHECK(vcpus[0].virq_ports[abi::VIRQ_TIMER] == 0);
    CHECK(vcpus[0].info == &shared.vcpu_info[0]);
    CHECK(domain.max_port == 3);
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: every kind of bind stops at the domain's port limit with enospc",
                 "[evtchn][hostile]") {
    dom1.domain.set_max_port(5);
    for (int i = 0; i < 5; ++i)
        bind_ipi(dom1, 0);
    const Port offered = alloc_unbound(dom2, 1);
    const Snapshot before = snapshot();
    abi::evtchn_alloc_unbound alloc{abi::DOMID_SELF, 2, 0};
    CHECK(call(dom1, abi::EVTCHNOP_alloc_unbound, alloc) == error(Errc::enospc));
    abi::evtchn_alloc_unbound for_dom1{1, 0, 0};
    CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, for_dom1) == error(Errc::enospc));
    CHECK(try_bind_interdomain(dom1, 2, offered.value) == error(Errc::enospc));
    CHECK(try_bind_interdomain(dom1, 2, 60) == error(Errc::enospc));  // the caller's own port first, as Xen
    CHECK(try_bind_virq(dom1, abi::VIRQ_TIMER, 0) == error(Errc::enospc));
    CHECK(try_bind_ipi(dom1, 1) == error(Errc::enospc));
    CHECK(channels.bind_hypervisor_channel(dom1.domain, 0).error() == Errc::enospc);
    CHECK(snapshot() == before);
    CHECK(dom1.domain.ports_in_use == 5);

    REQUIRE(close(dom1, 3) == 0);
    CHECK(bind_interdomain(dom1, 2, offered) == Port{3});
    // Lowering the limit below ports in use keeps them; raising it gives more.
    dom1.domain.set_max_port(2);
    CHECK(status(dom1, 5).status == abi::EVTCHNSTAT_ipi);
    CHECK(try_bind_ipi(dom1, 0) == error(Errc::enospc));
    dom1.domain.set_max_port(1000);  // more than the storage: the storage is the limit
    for (std::uint32_t port = 6; port < 64; ++port)
        CHECK(bind_ipi(dom1, 0) == Port{port});
    CHECK(try_bind_ipi(dom1, 0) == error(Errc::enospc));
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a dying domain allocates no port and its teardown releases every peer",
                 "[evtchn]") {
    const Port offered = alloc_unbound(dom1, 2);
    const Port front = bind_interdomain(dom2, 1, offered);
    const Port back = alloc_unbound(dom0, 1);
    const Port to_back = bind_interdomain(dom1, 0, back);
    bind_virq(dom1, abi::VIRQ_TIMER, 1);
    bind_ipi(dom1, 0);
    const Port waiting_for_dom2 = alloc_unbound(dom1, 2);
    REQUIRE(channels.bind_hypervisor_channel(dom1.domain, 0));
    CHECK(dom1.domain.ports_in_use == 6);

    CHECK_FALSE(channels.close_all_ports(dom1.domain, 2));
    CHECK(dom1.domain.ports_in_use == 4);
    require_invariants();
    CHECK(channels.remove_domain(dom1.domain).error() == Errc::ebusy);
    // Dying: nothing new, not even for the control domain; binding to what is left still works.
    CHECK(try_bind_ipi(dom1, 0) == error(Errc::einval));
    abi::evtchn_alloc_unbound for_dom1{1, 0, 0};
    CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, for_dom1) == error(Errc::einval));
    const Port late = bind_interdomain(dom2, 1, waiting_for_dom2);

    CHECK(channels.close_all_ports(dom1.domain, 100));
    REQUIRE(channels.remove_domain(dom1.domain));
    require_invariants();
    for (const Port port : {front, late}) {
        CHECK(status(dom2, port.value).status == abi::EVTCHNSTAT_unbound);
        CHECK(status(dom2, port.value).u.unbound.dom == 1);
    }
    CHECK(status(dom0, back.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(send(dom0, back.value) == 0);  // dropped: nobody is there
    CHECK(try_bind_interdomain(dom0, 1, to_back.value) == error(Errc::esrch));
    CHECK(dom2.domain.ports_in_use == 2);
    CHECK(dom0.domain.ports_in_use == 1);
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: 10,000 cycles of alloc, bind, send and close leak no port", "[evtchn]") {
    for (int cycle = 0; cycle < 10000; ++cycle) {
        const Port offered = alloc_unbound(dom1, 2);
        const Port front = bind_interdomain(dom2, 1, offered);
        REQUIRE(send(dom1, offered.value) == 0);
        REQUIRE(send(dom2, front.value) == 0);
        const Port timer = bind_virq(dom2, abi::VIRQ_TIMER, cycle % 2);
        const Port ipi = bind_ipi(dom1, cycle % 2);
        REQUIRE(send(dom1, ipi.value) == 0);
        REQUIRE(channels.send_virq(dom2.domain, cycle % 2, abi::VIRQ_TIMER));
        if (cycle % 2 == 0) {
            REQUIRE(close(dom1, offered.value) == 0);
            REQUIRE(close(dom2, front.value) == 0);
        } else {
            REQUIRE(close(dom2, front.value) == 0);
            REQUIRE(close(dom1, offered.value) == 0);
        }
        REQUIRE(close(dom2, timer.value) == 0);
        REQUIRE(close(dom1, ipi.value) == 0);
        consume(dom1, 0);
        consume(dom1, 1);
        consume(dom2, 0);
        consume(dom2, 1);
        if (cycle % 1000 == 0)
            require_invariants();
    }
    for (TestDomain* d : all()) {
        CHECK(d->domain.ports_in_use == 0);
        for (std::size_t port = 1; port < d->ports.size(); ++port)
            CHECK(d->ports[port] == PortEntry{});
        for (const EvtchnVcpu& vcpu : d->vcpus)
            CHECK(vcpu.virq_ports == std::array<abi::evtchn_port_t, abi::NR_VIRQS>{});
        for (const auto word : d->shared->evtchn_pending)
            CHECK(word == 0);
    }
    require_invariants();
}

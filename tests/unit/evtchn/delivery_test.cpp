// The 2-level ABI: pending, mask, selector and upcall bits, and who gets kicked.
#include "evtchn_fixture.hpp"

using namespace evtchn_test;

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a masked port stays pending without an upcall until unmask re-delivers it",
                 "[evtchn]") {
    const Port ipi = bind_ipi(dom1, 1);
    mask(dom1, ipi);
    REQUIRE(send(dom1, ipi.value) == 0);
    CHECK(pending(dom1, ipi));
    CHECK(selector(dom1, 1) == 0);
    CHECK_FALSE(upcall(dom1, 1));
    CHECK(platform.kicks.empty());
    CHECK(platform.wakes == std::vector<FakePlatform::Event>{{1, ipi.value}});  // a poller would see it
    CHECK(channels.is_pending(dom1.domain, ipi));
    CHECK(channels.is_masked(dom1.domain, ipi));

    REQUIRE(unmask(dom1, ipi.value) == 0);
    CHECK_FALSE(channels.is_masked(dom1.domain, ipi));
    CHECK(selector(dom1, 1) == 1);
    CHECK(upcall(dom1, 1));
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{1, 1}});
    CHECK(consume(dom1, 1) == std::vector<std::uint32_t>{ipi.value});

    // Unmasking what is not pending, or not masked, delivers nothing.
    const Snapshot before = snapshot();
    REQUIRE(unmask(dom1, ipi.value) == 0);
    mask(dom1, ipi);
    REQUIRE(unmask(dom1, ipi.value) == 0);
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: unmask accepts any valid port and refuses others", "[evtchn][hostile]") {
    const Snapshot before = snapshot();
    CHECK(unmask(dom1, 0) == 0);
    CHECK(unmask(dom1, 63) == 0);  // free, as Xen
    CHECK(unmask(dom1, 64) == error(Errc::einval));
    CHECK(unmask(dom1, 0xFFFF'FFFF) == error(Errc::einval));
    CHECK(snapshot() == before);
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: the guest's handler and further events in the same word need one kick",
                 "[evtchn]") {
    const Port a = bind_ipi(dom1, 0);
    const Port b = bind_ipi(dom1, 0);
    REQUIRE(send(dom1, a.value) == 0);
    REQUIRE(send(dom1, b.value) == 0);  // the selector bit is already set: no new upcall
    CHECK(platform.kicks.size() == 1);
    CHECK(platform.wakes.size() == 2);
    CHECK(consume(dom1, 0) == std::vector<std::uint32_t>{a.value, b.value});
    REQUIRE(send(dom1, b.value) == 0);
    CHECK(platform.kicks.size() == 2);
    // Selector set but upcall flag still up (the guest has not returned yet): no kick either.
    dom1.vcpus[0].info->evtchn_pending_sel = 0;
    REQUIRE(send(dom1, a.value) == 0);
    CHECK(platform.kicks.size() == 2);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: ports in the second selector word set the second selector bit", "[evtchn]") {
    TestDomain big{DomId{5}, abi::EVTCHN_2L_NR_CHANNELS, 1, false};
    REQUIRE(channels.add_domain(big.domain));
    big.domain.set_max_port(100);
    std::vector<Port> ports;
    for (int i = 0; i < 70; ++i)
        ports.push_back(bind_ipi(big, 0));
    CHECK(ports.back() == Port{70});
    REQUIRE(send(big, 70) == 0);
    CHECK(selector(big, 0) == 2);
    CHECK(big.shared->evtchn_pending[1] == std::uint64_t{1} << 6);
    REQUIRE(send(big, 4095) == error(Errc::einval));
    CHECK(status(big, 4095).status == abi::EVTCHNSTAT_closed);
    abi::evtchn_status out;
    CHECK(status(big, abi::DOMID_SELF, 4096, out) == error(Errc::einval));
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a vCPU beyond shared_info's slots gets events once it registers vcpu_info",
                 "[evtchn]") {
    TestDomain wide{DomId{6}, 64, abi::XEN_LEGACY_MAX_VCPUS + 1, false};
    REQUIRE(channels.add_domain(wide.domain));
    const std::uint32_t last = abi::XEN_LEGACY_MAX_VCPUS;
    const Port ipi = bind_ipi(wide, last);
    REQUIRE(send(wide, ipi.value) == 0);  // goes to the placeholder: nothing in shared_info
    CHECK(wide.vcpus[last].info == &wide.vcpus[last].placeholder);
    for (const auto& info : wide.shared->vcpu_info)
        CHECK(info.evtchn_pending_sel == 0);

    abi::vcpu_info registered{};
    platform.kicks.clear();
    REQUIRE(channels.move_vcpu_info(wide.domain, last, registered));
    CHECK(registered.evtchn_pending_sel == ~std::uint64_t{0});  // look everywhere: nothing is lost
    CHECK(registered.evtchn_upcall_pending == 1);
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{6, last}});
    CHECK(consume(wide, last) == std::vector<std::uint32_t>{ipi.value});
    REQUIRE(send(wide, ipi.value) == 0);
    CHECK(registered.evtchn_pending_sel == 1);
    CHECK(channels.move_vcpu_info(wide.domain, last + 1, registered).error() == Errc::enoent);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: the 2-level operations are one implementation of the port-ops interface",
                 "[evtchn]") {
    const PortOps& ops = two_level_port_ops();
    CHECK(dom1.domain.ops == &ops);
    CHECK(ops.max_ports() == abi::EVTCHN_2L_NR_CHANNELS);
    const Port ipi = bind_ipi(dom1, 0);
    CHECK(ops.set_pending(dom1.domain, ipi) == Signal::upcall);
    CHECK(ops.set_pending(dom1.domain, ipi) == Signal::none);
    CHECK(ops.is_pending(dom1.domain, ipi));
    ops.clear_pending(dom1.domain, ipi);
    CHECK_FALSE(ops.is_pending(dom1.domain, ipi));
    mask(dom1, ipi);
    CHECK(ops.set_pending(dom1.domain, ipi) == Signal::pending);
    CHECK(ops.unmask(dom1.domain, ipi) == Signal::none);  // the selector bit was still set
    consume(dom1, 0);
    mask(dom1, ipi);
    CHECK(ops.set_pending(dom1.domain, ipi) == Signal::pending);
    CHECK(ops.unmask(dom1.domain, ipi) == Signal::upcall);
}

#include "evtchn_fixture.hpp"

using namespace evtchn_test;

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a per-vCPU VIRQ is bound once per vCPU and raised on that vCPU", "[evtchn]") {
    const Port timer0 = bind_virq(dom1, abi::VIRQ_TIMER, 0);
    const Port timer1 = bind_virq(dom1, abi::VIRQ_TIMER, 1);
    CHECK(timer0 != timer1);
    CHECK(status(dom1, timer1.value).status == abi::EVTCHNSTAT_virq);
    CHECK(status(dom1, timer1.value).u.virq == abi::VIRQ_TIMER);
    CHECK(status(dom1, timer1.value).vcpu == 1);

    CHECK(channels.send_virq(dom1.domain, 1, abi::VIRQ_TIMER));
    CHECK(pending(dom1, timer1));
    CHECK_FALSE(pending(dom1, timer0));
    CHECK(upcall(dom1, 1));
    CHECK_FALSE(upcall(dom1, 0));
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{1, 1}});
    CHECK(consume(dom1, 1) == std::vector<std::uint32_t>{timer1.value});
    // Nothing bound: nothing raised.
    CHECK_FALSE(channels.send_virq(dom1.domain, 1, abi::VIRQ_DEBUG));
    CHECK_FALSE(channels.send_virq(dom1.domain, 5, abi::VIRQ_TIMER));
    CHECK_FALSE(channels.send_virq(dom1.domain, 0, abi::NR_VIRQS));
    CHECK_FALSE(channels.send_virq(dom2.domain, 0, abi::VIRQ_TIMER));
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: binding a VIRQ twice, out of range, or global on a vCPU other than 0 is refused",
                 "[evtchn][hostile]") {
    bind_virq(dom1, abi::VIRQ_TIMER, 0);
    bind_virq(dom1, abi::VIRQ_CONSOLE, 0);
    const Snapshot before = snapshot();
    CHECK(try_bind_virq(dom1, abi::VIRQ_TIMER, 0) == error(Errc::eexist));
    CHECK(try_bind_virq(dom1, abi::VIRQ_CONSOLE, 0) == error(Errc::eexist));
    CHECK(try_bind_virq(dom1, abi::VIRQ_CONSOLE, 1) == error(Errc::einval));
    CHECK(try_bind_virq(dom1, abi::VIRQ_DOM_EXC, 1) == error(Errc::einval));
    CHECK(try_bind_virq(dom1, abi::NR_VIRQS, 0) == error(Errc::einval));
    CHECK(try_bind_virq(dom1, 0xFFFF'FFFF, 0) == error(Errc::einval));
    CHECK(try_bind_virq(dom1, abi::VIRQ_DEBUG, 2) == error(Errc::enoent));
    CHECK(try_bind_virq(dom1, abi::VIRQ_DEBUG, 0xFFFF'FFFF) == error(Errc::enoent));
    CHECK(try_bind_virq(dom1, abi::VIRQ_DOM_EXC, 0xFFFF'FFFF) == error(Errc::einval));  // global first, as Xen
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: closing a VIRQ port forgets the binding so it can be bound again", "[evtchn]") {
    const Port timer = bind_virq(dom1, abi::VIRQ_TIMER, 1);
    REQUIRE(close(dom1, timer.value) == 0);
    CHECK(dom1.vcpus[1].virq_ports[abi::VIRQ_TIMER] == 0);
    CHECK_FALSE(channels.send_virq(dom1.domain, 1, abi::VIRQ_TIMER));
    CHECK(bind_virq(dom1, abi::VIRQ_TIMER, 1) == timer);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: global VIRQs go to the control domain unless another handler is set",
                 "[evtchn]") {
    const Port console0 = bind_virq(dom0, abi::VIRQ_CONSOLE, 0);
    const Port console1 = bind_virq(dom1, abi::VIRQ_CONSOLE, 0);
    CHECK(channels.send_global_virq(abi::VIRQ_CONSOLE));
    CHECK(pending(dom0, console0));
    CHECK_FALSE(pending(dom1, console1));
    CHECK_FALSE(channels.send_global_virq(abi::VIRQ_DOM_EXC));  // dom0 did not bind it
    CHECK_FALSE(channels.send_global_virq(abi::VIRQ_TIMER));    // per-vCPU: not global

    CHECK(channels.set_global_virq_handler(abi::VIRQ_TIMER, &dom1.domain).error() == Errc::einval);
    CHECK(channels.set_global_virq_handler(abi::NR_VIRQS, &dom1.domain).error() == Errc::einval);
    TestDomain stranger{DomId{9}, 8, 1, false};
    CHECK(channels.set_global_virq_handler(abi::VIRQ_CONSOLE, &stranger.domain).error() == Errc::einval);
    CHECK(channels.set_control_domain(&stranger.domain).error() == Errc::einval);
    REQUIRE(channels.set_global_virq_handler(abi::VIRQ_CONSOLE, &dom1.domain));
    CHECK(channels.send_global_virq(abi::VIRQ_CONSOLE));
    CHECK(pending(dom1, console1));
    require_invariants();

    // A handler that goes away gives the VIRQ back to the control domain.
    consume(dom0, 0);
    REQUIRE(channels.close_all_ports(dom1.domain, 100));
    REQUIRE(channels.remove_domain(dom1.domain));
    CHECK(channels.global_virq_handlers()[abi::VIRQ_CONSOLE] == nullptr);
    CHECK(channels.send_global_virq(abi::VIRQ_CONSOLE));
    CHECK(pending(dom0, console0));
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a global VIRQ moves to another vCPU while per-vCPU VIRQs and IPIs stay",
                 "[evtchn]") {
    const Port console = bind_virq(dom1, abi::VIRQ_CONSOLE, 0);
    REQUIRE(bind_vcpu(dom1, console.value, 1) == 0);
    CHECK(status(dom1, console.value).vcpu == 1);
    CHECK(channels.send_virq(dom1.domain, 0, abi::VIRQ_CONSOLE));
    CHECK(upcall(dom1, 1));
    CHECK_FALSE(upcall(dom1, 0));
    CHECK(dom1.vcpus[0].virq_ports[abi::VIRQ_CONSOLE] == console.value);  // still recorded on vCPU 0
    require_invariants();

    const Port timer = bind_virq(dom1, abi::VIRQ_TIMER, 0);
    const Port ipi = bind_ipi(dom1, 0);
    const Snapshot before = snapshot();
    CHECK(bind_vcpu(dom1, timer.value, 1) == error(Errc::einval));
    CHECK(bind_vcpu(dom1, ipi.value, 1) == error(Errc::einval));
    CHECK(bind_vcpu(dom1, 40, 1) == error(Errc::einval));           // free
    CHECK(bind_vcpu(dom1, 64, 1) == error(Errc::einval));           // past the table
    CHECK(bind_vcpu(dom1, console.value, 2) == error(Errc::enoent));
    CHECK(bind_vcpu(dom1, 64, 2) == error(Errc::enoent));           // the vCPU is checked first, as Xen
    CHECK(snapshot() == before);
    // Closing a moved global VIRQ port still forgets it.
    REQUIRE(close(dom1, console.value) == 0);
    CHECK(dom1.vcpus[0].virq_ports[abi::VIRQ_CONSOLE] == 0);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: unbound and interdomain ports move to another vCPU", "[evtchn]") {
    const Port waiting = alloc_unbound(dom1, 2);
    REQUIRE(bind_vcpu(dom1, waiting.value, 1) == 0);
    const Port front = bind_interdomain(dom2, 1, waiting);
    CHECK(status(dom1, waiting.value).vcpu == 1);  // binding keeps the remote end's vCPU
    REQUIRE(send(dom2, front.value) == 0);
    CHECK(upcall(dom1, 1));
    CHECK(selector(dom1, 0) == 0);
    REQUIRE(bind_vcpu(dom2, front.value, 1) == 0);
    consume(dom2, 0);
    REQUIRE(send(dom1, waiting.value) == 0);
    CHECK(upcall(dom2, 1));
    // A freed port's vCPU returns to 0.
    REQUIRE(close(dom2, front.value) == 0);
    CHECK(status(dom2, front.value).vcpu == 0);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: an IPI port raises its own vCPU", "[evtchn]") {
    const Port ipi = bind_ipi(dom1, 1);
    CHECK(status(dom1, ipi.value).status == abi::EVTCHNSTAT_ipi);
    CHECK(status(dom1, ipi.value).vcpu == 1);
    REQUIRE(send(dom1, ipi.value) == 0);
    CHECK(pending(dom1, ipi));
    CHECK(upcall(dom1, 1));
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{1, 1}});
    const Snapshot before = snapshot();
    CHECK(try_bind_ipi(dom1, 2) == error(Errc::enoent));
    CHECK(try_bind_ipi(dom1, 0x8000'0000) == error(Errc::enoent));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a guest cannot send on a VIRQ port, a closed port, or past its table",
                 "[evtchn][hostile]") {
    const Port timer = bind_virq(dom1, abi::VIRQ_TIMER, 0);
    const Port ipi = bind_ipi(dom1, 0);
    REQUIRE(close(dom1, ipi.value) == 0);
    const Snapshot before = snapshot();
    CHECK(send(dom1, timer.value) == error(Errc::einval));
    CHECK(send(dom1, ipi.value) == error(Errc::einval));
    CHECK(close(dom1, ipi.value) == error(Errc::einval));  // closed twice
    CHECK(send(dom1, 64) == error(Errc::einval));
    CHECK(send(dom1, 0xFFFF'FFFF) == error(Errc::einval));
    CHECK(close(dom1, 64) == error(Errc::einval));
    CHECK(close(dom1, 0x8000'0000) == error(Errc::einval));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a hypervisor channel signals the backend and cannot be closed by the guest",
                 "[evtchn]") {
    const auto console = channels.bind_hypervisor_channel(dom1.domain, 0);
    REQUIRE(console);
    const Port port = *console;
    CHECK(status(dom1, port.value).status == abi::EVTCHNSTAT_interdomain);
    CHECK(status(dom1, port.value).u.interdomain.dom == abi::DOMID_XEN);
    REQUIRE(send(dom1, port.value) == 0);
    CHECK(platform.backend == std::vector<FakePlatform::Event>{{1, port.value}});
    CHECK_FALSE(pending(dom1, port));
    REQUIRE(channels.signal_hypervisor_channel(dom1.domain, port));
    CHECK(pending(dom1, port));
    CHECK(upcall(dom1, 0));
    REQUIRE(bind_vcpu(dom1, port.value, 1) == 0);

    const Snapshot before = snapshot();
    CHECK(close(dom1, port.value) == error(Errc::einval));
    CHECK(channels.signal_hypervisor_channel(dom1.domain, Port{port.value + 1}).error() == Errc::einval);
    CHECK(channels.close_hypervisor_channel(dom1.domain, Port{0}).error() == Errc::einval);
    CHECK(channels.bind_hypervisor_channel(dom1.domain, 2).error() == Errc::enoent);
    CHECK(snapshot() == before);
    REQUIRE(reset(dom1, abi::DOMID_SELF) == 0);  // the guest's reset leaves it
    CHECK(dom1.ports[port.value].state == PortState::hypervisor);
    REQUIRE(channels.close_hypervisor_channel(dom1.domain, port));
    CHECK(dom1.domain.ports_in_use == 0);
    require_invariants();
}

// event_channel_op as guests issue it: argument copying, status, reset, unknown commands.
#include "evtchn_fixture.hpp"

#include <random>

using namespace evtchn_test;

namespace {

struct EvtchnHandlers {
    EventChannels& channels;
    long event_channel_op(EvtchnCaller& caller, const args::event_channel_op& a) {
        return hv::evtchn::event_channel_op(channels, caller, a);
    }
};

}  // namespace

TEST_CASE_METHOD(EvtchnFixture, "evtchn: event_channel_op is reached through the generated dispatcher", "[evtchn]") {
    EvtchnHandlers handlers{channels};
    EvtchnCaller caller{dom1.domain, memory};
    const abi::evtchn_bind_ipi request{1, 0};
    std::memcpy(memory.bytes.data(), &request, sizeof(request));
    const hv::HypercallRegisters registers{abi::HYPERVISOR_event_channel_op,
                                           {abi::EVTCHNOP_bind_ipi, GuestBuffer::base, 0, 0, 0}};
    CHECK(hv::dispatch_hypercall(handlers, caller, registers) == 0);
    abi::evtchn_bind_ipi answer;
    std::memcpy(&answer, memory.bytes.data(), sizeof(answer));
    CHECK(answer.port == 1);
    CHECK(answer.vcpu == 1);
    CHECK(dom1.ports[1].state == PortState::ipi);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: unknown commands, bind_pirq and the FIFO commands give enosys",
                 "[evtchn][hostile]") {
    const Snapshot before = snapshot();
    abi::evtchn_bind_pirq pirq{1, abi::BIND_PIRQ__WILL_SHARE, 0};
    CHECK(call(dom0, abi::EVTCHNOP_bind_pirq, pirq) == error(Errc::enosys));
    abi::evtchn_init_control control{};
    CHECK(call(dom1, abi::EVTCHNOP_init_control, control) == error(Errc::enosys));
    abi::evtchn_expand_array expand{};
    CHECK(call(dom1, abi::EVTCHNOP_expand_array, expand) == error(Errc::enosys));
    abi::evtchn_set_priority priority{1, 0};
    CHECK(call(dom1, abi::EVTCHNOP_set_priority, priority) == error(Errc::enosys));
    for (std::int32_t command : {14, 15, 1000, -1, INT32_MIN}) {
        EvtchnCaller caller{dom1.domain, memory};
        CHECK(event_channel_op(channels, caller, args::event_channel_op{command, {GuestBuffer::base}}) ==
              error(Errc::enosys));
    }
    CHECK(snapshot() == before);
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: an argument the guest cannot show gives efault and changes nothing",
                 "[evtchn][hostile]") {
    const Port waiting = alloc_unbound(dom1, 2);
    const Snapshot before = snapshot();
    EvtchnCaller caller{dom2.domain, memory};
    const std::uint64_t addresses[] = {0, 0xdead'0000, GuestBuffer::base + 0x10000 - 4,  // last 4 bytes only
                                       0x0000'8000'0000'0000, 0xFFFF'8000'0000'1000, ~std::uint64_t{0}};
    for (const std::uint64_t address : addresses) {
        for (unsigned command = 0; command <= abi::EVTCHNOP_reset; ++command) {
            if (command == abi::EVTCHNOP_bind_pirq)
                continue;
            // Structs of 4 bytes or less are readable at the last 4 bytes of the buffer.
            const bool small = command == abi::EVTCHNOP_close || command == abi::EVTCHNOP_send ||
                               command == abi::EVTCHNOP_unmask || command == abi::EVTCHNOP_reset;
            if (address == GuestBuffer::base + 0x10000 - 4 && small)
                continue;
            INFO("command " << command << " at " << std::hex << address);
            CHECK(event_channel_op(channels, caller,
                                   args::event_channel_op{static_cast<std::int32_t>(command), {address}}) ==
                  error(Errc::efault));
        }
    }
    CHECK(snapshot() == before);
    CHECK(dom2.ports[1].state == PortState::free);
    CHECK(dom1.ports[waiting.value].state == PortState::unbound);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a bind whose result cannot be written back changes nothing",
                 "[evtchn][hostile]") {
    const Port waiting = alloc_unbound(dom1, 2);
    SECTION("the argument is read-only") {
        const std::uint64_t read_only = GuestBuffer::read_only_offset;
        const Snapshot before = snapshot();
        abi::evtchn_bind_interdomain bind{1, waiting.value, 0};
        CHECK(call(dom2, abi::EVTCHNOP_bind_interdomain, bind, read_only) == error(Errc::efault));
        abi::evtchn_alloc_unbound alloc{abi::DOMID_SELF, 0, 0};
        CHECK(call(dom2, abi::EVTCHNOP_alloc_unbound, alloc, read_only) == error(Errc::efault));
        abi::evtchn_alloc_unbound foreign{2, 0, 0};
        CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, foreign, read_only) == error(Errc::efault));
        abi::evtchn_bind_virq virq{abi::VIRQ_TIMER, 0, 0};
        CHECK(call(dom2, abi::EVTCHNOP_bind_virq, virq, read_only) == error(Errc::efault));
        abi::evtchn_bind_ipi ipi{0, 0};
        CHECK(call(dom2, abi::EVTCHNOP_bind_ipi, ipi, read_only) == error(Errc::efault));
        abi::evtchn_status status{};
        status.dom = abi::DOMID_SELF;
        CHECK(call(dom2, abi::EVTCHNOP_status, status, read_only) == error(Errc::efault));
        CHECK(snapshot() == before);
        CHECK(bind.local_port == 0);
        CHECK(alloc.port == 0);
        CHECK(virq.port == 0);
        CHECK(ipi.port == 0);
        CHECK(status.status == 0);
    }
    SECTION("another vCPU unmaps it between the check and the answer") {
        const Snapshot before = snapshot();
        memory.writes_allowed = 1;  // the check passes, the answer fails
        abi::evtchn_bind_interdomain bind{1, waiting.value, 0};
        CHECK(call(dom2, abi::EVTCHNOP_bind_interdomain, bind) == error(Errc::efault));
        Snapshot after = snapshot();
        CHECK(after.ports == before.ports);
        CHECK(after.in_use == before.in_use);
        CHECK_FALSE(pending(dom2, Port{1}));
        memory.writes_allowed = 1;
        abi::evtchn_alloc_unbound foreign{2, 0, 0};
        CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, foreign) == error(Errc::efault));
        memory.writes_allowed = 1;
        abi::evtchn_bind_virq virq{abi::VIRQ_TIMER, 1, 0};
        CHECK(call(dom2, abi::EVTCHNOP_bind_virq, virq) == error(Errc::efault));
        after = snapshot();
        CHECK(after.ports == before.ports);
        CHECK(after.virqs == before.virqs);
        CHECK(after.in_use == before.in_use);
    }
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: status reports every kind of port, and another domain's only to privilege",
                 "[evtchn][hostile]") {
    const Port waiting = alloc_unbound(dom1, 2);
    const Port timer = bind_virq(dom1, abi::VIRQ_TIMER, 1);
    abi::evtchn_status out;
    REQUIRE(status(dom0, 1, waiting.value, out) == 0);
    CHECK(out.dom == 1);
    CHECK(out.port == waiting.value);
    CHECK(out.status == abi::EVTCHNSTAT_unbound);
    CHECK(out.u.unbound.dom == 2);
    REQUIRE(status(dom1, 1, timer.value, out) == 0);  // itself by number
    CHECK(out.status == abi::EVTCHNSTAT_virq);
    CHECK(out.u.virq == abi::VIRQ_TIMER);
    CHECK(out.vcpu == 1);

    const Snapshot before = snapshot();
    CHECK(status(dom2, 1, waiting.value, out) == error(Errc::eperm));
    CHECK(status(dom2, 1, 1000, out) == error(Errc::eperm));  // not even whether the port exists
    CHECK(status(dom2, 77, 1, out) == error(Errc::esrch));
    CHECK(status(dom0, 1, 64, out) == error(Errc::einval));
    CHECK(status(dom1, abi::DOMID_SELF, 0xFFFF'FFFF, out) == error(Errc::einval));
    CHECK(snapshot() == before);
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: reset closes all of a domain's ports, for itself or a paused domain",
                 "[evtchn]") {
    const Port waiting = alloc_unbound(dom1, 2);
    const Port front = bind_interdomain(dom2, 1, waiting);
    bind_virq(dom1, abi::VIRQ_TIMER, 0);
    bind_ipi(dom1, 1);
    alloc_unbound(dom1, 0);

    const Snapshot before = snapshot();
    CHECK(reset(dom2, 1) == error(Errc::eperm));
    CHECK(reset(dom0, 1) == error(Errc::einval));  // running: not under the controller's pause
    CHECK(reset(dom0, 77) == error(Errc::esrch));
    CHECK(snapshot() == before);

    SECTION("by itself") { REQUIRE(reset(dom1, abi::DOMID_SELF) == 0); }
    SECTION("by the control domain while paused") {
        platform.paused.insert(1);
        REQUIRE(reset(dom0, 1) == 0);
    }
    CHECK(dom1.domain.ports_in_use == 0);
    CHECK(dom1.vcpus[0].virq_ports[abi::VIRQ_TIMER] == 0);
    CHECK(status(dom2, front.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(status(dom2, front.value).u.unbound.dom == 1);
    require_invariants();
    // Usable again at once.
    CHECK(bind_virq(dom1, abi::VIRQ_TIMER, 0) == Port{1});
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: garbage arguments to every command keep every invariant", "[evtchn][hostile]") {
    std::mt19937_64 random{20240601};
    std::vector<TestDomain*> domains = all();
    const Port waiting = alloc_unbound(dom1, 2);
    bind_interdomain(dom2, 1, waiting);
    platform.paused.insert(2);
    dom1.domain.set_max_port(8);  // so that some binds run out
    int succeeded = 0;
    std::set<long> errors;
    for (int round = 0; round < 20000; ++round) {
        TestDomain& caller = *domains[random() % domains.size()];
        // Small numbers half of the time, so that some calls succeed.
        for (std::size_t i = 0; i < 32; i += 8) {
            std::uint64_t word = random();
            if (random() % 2)
                word &= 0x0000'0003'0000'0003ULL | (random() % 2 ? 0x3F'0000'003FULL : 0);
            std::memcpy(memory.bytes.data() + i, &word, sizeof(word));
        }
        const std::int32_t command = static_cast<std::int32_t>(random() % 16);
        EvtchnCaller context{caller.domain, memory};
        const long result = event_channel_op(channels, context, args::event_channel_op{command, {GuestBuffer::base}});
        CHECK((result == 0 || (result < 0 && result >= -111)));  // Xen's errno range
        if (result == 0)
            ++succeeded;
        else
            errors.insert(result);
        if (random() % 64 == 0)
            channels.send_virq(caller.domain, static_cast<std::uint32_t>(random() % 3),
                               static_cast<std::uint32_t>(random() % 25));
        if (round % 97 == 0) {
            const auto violation = check_invariants(channels);
            if (violation)
                FAIL("round " << round << ": " << violation->what << " (domain " << violation->domain.value
                              << ", port " << violation->port.value << ")");
        }
    }
    require_invariants();
    // The garbage reached past decoding: some calls did something, and most refusals were seen.
    CHECK(succeeded > 1000);
    CHECK(errors == std::set<long>{error(Errc::eperm), error(Errc::esrch), error(Errc::eexist),
                                   error(Errc::einval), error(Errc::enoent), error(Errc::enospc), error(Errc::enosys)});
    for (TestDomain* d : domains)
        CHECK(channels.close_all_ports(d->domain, 64));
    for (TestDomain* d : domains)
        CHECK(d->domain.ports_in_use == 0);
    require_invariants();
}

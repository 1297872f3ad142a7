#include "evtchn_fixture.hpp"

using namespace evtchn_test;

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a new domain has port 0 reserved and every other port closed", "[evtchn]") {
    for (std::uint32_t port : {0u, 1u, 63u}) {
        const auto answer = status(dom1, port);
        CHECK(answer.status == abi::EVTCHNSTAT_closed);
        CHECK(answer.vcpu == 0);
    }
    const Snapshot before = snapshot();
    CHECK(close(dom1, 0) == error(Errc::einval));
    CHECK(send(dom1, 0) == error(Errc::einval));
    CHECK(bind_vcpu(dom1, 0, 1) == error(Errc::einval));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: alloc_unbound takes the lowest free port and names who may bind it", "[evtchn]") {
    const Port first = alloc_unbound(dom1, 2);
    const Port second = alloc_unbound(dom1, abi::DOMID_SELF);
    CHECK(first == Port{1});
    CHECK(second == Port{2});
    CHECK(status(dom1, first.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(status(dom1, first.value).u.unbound.dom == 2);
    CHECK(status(dom1, second.value).u.unbound.dom == 1);  // DOMID_SELF is the caller
    CHECK(dom1.domain.ports_in_use == 2);
    REQUIRE(close(dom1, first.value) == 0);
    CHECK(alloc_unbound(dom1, 0) == first);  // the freed port is the lowest again
    // Any id may be named, as Xen: a port waiting for a domain that cannot exist just waits.
    const Port hopeless = alloc_unbound(dom1, abi::DOMID_INVALID);
    CHECK(status(dom1, hopeless.value).u.unbound.dom == abi::DOMID_INVALID);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: only a privileged domain allocates an unbound port in another domain",
                 "[evtchn][hostile]") {
    const Snapshot before = snapshot();
    abi::evtchn_alloc_unbound foreign{2, 1, 0};
    CHECK(call(dom1, abi::EVTCHNOP_alloc_unbound, foreign) == error(Errc::eperm));
    abi::evtchn_alloc_unbound nobody{77, 1, 0};
    CHECK(call(dom1, abi::EVTCHNOP_alloc_unbound, nobody) == error(Errc::esrch));
    CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, nobody) == error(Errc::esrch));
    abi::evtchn_alloc_unbound reserved{abi::DOMID_IO, 1, 0};
    CHECK(call(dom0, abi::EVTCHNOP_alloc_unbound, reserved) == error(Errc::esrch));
    CHECK(snapshot() == before);

    // dom0 sets up a channel for dom1 to its own backend: DOMID_SELF names dom0, the caller.
    const Port port = alloc_unbound(dom0, abi::DOMID_SELF, 1);
    CHECK(dom1.ports[port.value].state == PortState::unbound);
    CHECK(dom1.ports[port.value].unbound_remote == DomId{0});
    CHECK(dom0.domain.ports_in_use == 0);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: two domains connect, signal each other, and either may close first",
                 "[evtchn]") {
    const bool frontend_closes_first = GENERATE(true, false);
    const Port remote = alloc_unbound(dom1, 2);
    platform.kicks.clear();
    const Port local = bind_interdomain(dom2, 1, remote);
    require_invariants();

    // Both ends name each other.
    CHECK(status(dom1, remote.value).status == abi::EVTCHNSTAT_interdomain);
    CHECK(status(dom1, remote.value).u.interdomain.dom == 2);
    CHECK(status(dom1, remote.value).u.interdomain.port == local.value);
    CHECK(status(dom2, local.value).u.interdomain.dom == 1);
    CHECK(status(dom2, local.value).u.interdomain.port == remote.value);
    // The new end starts pending, in case dom1 sent before the bind.
    CHECK(pending(dom2, local));
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{2, 0}});
    CHECK(consume(dom2, 0) == std::vector<std::uint32_t>{local.value});

    // dom1 -> dom2: the pending bit, the selector bit of the port's word and the upcall flag.
    platform.kicks.clear();
    REQUIRE(send(dom1, remote.value) == 0);
    CHECK(pending(dom2, local));
    CHECK(selector(dom2, 0) == std::uint64_t{1} << (local.value / 64));
    CHECK(upcall(dom2, 0));
    CHECK(platform.kicks == std::vector<FakePlatform::Event>{{2, 0}});
    CHECK(platform.wakes.back() == FakePlatform::Event{2, local.value});
    // A second send before the guest looks changes nothing and kicks nobody.
    REQUIRE(send(dom1, remote.value) == 0);
    CHECK(platform.kicks.size() == 1);
    CHECK(consume(dom2, 0) == std::vector<std::uint32_t>{local.value});
    CHECK_FALSE(pending(dom1, remote));

    // dom2 -> dom1.
    REQUIRE(send(dom2, local.value) == 0);
    CHECK(pending(dom1, remote));
    CHECK(upcall(dom1, 0));
    CHECK(consume(dom1, 0) == std::vector<std::uint32_t>{remote.value});

    TestDomain& closer = frontend_closes_first ? dom2 : dom1;
    TestDomain& stayer = frontend_closes_first ? dom1 : dom2;
    const Port closed = frontend_closes_first ? local : remote;
    const Port kept = frontend_closes_first ? remote : local;
    REQUIRE(send(stayer, kept.value) == 0);  // left pending at close: the freed port forgets it
    REQUIRE(close(closer, closed.value) == 0);
    require_invariants();
    CHECK(status(closer, closed.value).status == abi::EVTCHNSTAT_closed);
    CHECK_FALSE(pending(closer, closed));
    CHECK(status(stayer, kept.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(status(stayer, kept.value).u.unbound.dom == closer.domain.id.value);
    // Sends on the unbound end are dropped; on the closed one refused.
    const Snapshot before = snapshot();
    CHECK(send(stayer, kept.value) == 0);
    CHECK(send(closer, closed.value) == error(Errc::einval));
    CHECK(snapshot() == before);
    // The domain that closed may connect again; no other may.
    CHECK(try_bind_interdomain(dom0, stayer.domain.id.value, kept.value) == error(Errc::einval));
    const Port again = bind_interdomain(closer, stayer.domain.id.value, kept);
    CHECK(status(closer, again.value).u.interdomain.port == kept.value);
    REQUIRE(close(stayer, kept.value) == 0);
    REQUIRE(close(closer, again.value) == 0);
    CHECK(dom1.domain.ports_in_use == 0);
    CHECK(dom2.domain.ports_in_use == 0);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: a domain connects to itself through DOMID_SELF", "[evtchn]") {
    const Port waiting = alloc_unbound(dom1, abi::DOMID_SELF);
    const Port bound = bind_interdomain(dom1, abi::DOMID_SELF, waiting);
    CHECK(bound != waiting);
    CHECK(status(dom1, waiting.value).u.interdomain.dom == 1);
    CHECK(status(dom1, waiting.value).u.interdomain.port == bound.value);
    consume(dom1, 0);
    REQUIRE(send(dom1, waiting.value) == 0);
    CHECK(pending(dom1, bound));
    CHECK_FALSE(pending(dom1, waiting));
    REQUIRE(send(dom1, bound.value) == 0);
    CHECK(pending(dom1, waiting));
    REQUIRE(close(dom1, bound.value) == 0);
    CHECK(status(dom1, waiting.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(status(dom1, waiting.value).u.unbound.dom == 1);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: binding to a port that is not waiting for the caller is refused",
                 "[evtchn][hostile]") {
    const Port for_dom0 = alloc_unbound(dom1, 0);
    const Port for_dom2 = alloc_unbound(dom1, 2);
    const Port connected = bind_interdomain(dom2, 1, for_dom2);
    const Snapshot before = snapshot();
    CHECK(try_bind_interdomain(dom2, 1, for_dom0.value) == error(Errc::einval));    // someone else's
    CHECK(try_bind_interdomain(dom2, 1, for_dom2.value) == error(Errc::einval));    // already connected
    CHECK(try_bind_interdomain(dom0, 2, connected.value) == error(Errc::einval));   // the other end
    CHECK(try_bind_interdomain(dom2, 1, 40) == error(Errc::einval));                // free
    CHECK(try_bind_interdomain(dom2, 1, 0) == error(Errc::einval));                 // reserved
    CHECK(try_bind_interdomain(dom2, 1, 64) == error(Errc::einval));                // past the table
    CHECK(try_bind_interdomain(dom2, 1, 0xFFFF'FFFF) == error(Errc::einval));
    CHECK(try_bind_interdomain(dom2, 77, for_dom2.value) == error(Errc::esrch));    // nobody
    CHECK(try_bind_interdomain(dom2, abi::DOMID_XEN, 1) == error(Errc::esrch));
    CHECK(try_bind_interdomain(dom2, abi::DOMID_SELF, for_dom0.value) == error(Errc::einval));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(EvtchnFixture, "evtchn: three domains: a backend serves two guests that cannot touch each other",
                 "[evtchn][hostile]") {
    // dom0 offers one port to each guest.
    const Port to_dom1 = alloc_unbound(dom0, 1);
    const Port to_dom2 = alloc_unbound(dom0, 2);
    // dom1 tries to take dom2's channel first, then its own.
    const Snapshot before = snapshot();
    CHECK(try_bind_interdomain(dom1, 0, to_dom2.value) == error(Errc::einval));
    CHECK(snapshot() == before);
    const Port front1 = bind_interdomain(dom1, 0, to_dom1);
    const Port front2 = bind_interdomain(dom2, 0, to_dom2);
    consume(dom1, 0);
    consume(dom2, 0);

    // Traffic in both directions on both channels, each to the right port only.
    REQUIRE(send(dom1, front1.value) == 0);
    REQUIRE(send(dom2, front2.value) == 0);
    CHECK(consume(dom0, 0) == std::vector<std::uint32_t>{to_dom1.value, to_dom2.value});
    REQUIRE(send(dom0, to_dom2.value) == 0);
    CHECK(consume(dom1, 0).empty());
    CHECK(consume(dom2, 0) == std::vector<std::uint32_t>{front2.value});
    // dom1 cannot send on or close dom0's or dom2's ports: port numbers are per domain.
    CHECK(dom1.ports[to_dom2.value].state == PortState::free);
    CHECK(send(dom1, to_dom2.value) == error(Errc::einval));

    // dom1 goes away: dom0's end waits for dom1 again, dom2's channel is untouched.
    CHECK_FALSE(channels.close_all_ports(dom1.domain, 0));
    CHECK(channels.close_all_ports(dom1.domain, 100));
    REQUIRE(channels.remove_domain(dom1.domain));
    require_invariants();
    CHECK(status(dom0, to_dom1.value).status == abi::EVTCHNSTAT_unbound);
    CHECK(status(dom0, to_dom1.value).u.unbound.dom == 1);
    REQUIRE(send(dom2, front2.value) == 0);
    CHECK(consume(dom0, 0) == std::vector<std::uint32_t>{to_dom2.value});
    CHECK(try_bind_interdomain(dom2, 1, front1.value) == error(Errc::esrch));
}

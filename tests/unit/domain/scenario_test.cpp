// Domains working together as split drivers do: a frontend shares a ring page through a grant and
// an event channel with its backend, they exchange messages, and either side goes away first.
#include "domain_fixture.hpp"

namespace domain_test {
namespace {

// The ring both guests see: requests from the frontend, responses from the backend.
struct Ring {
    std::uint32_t request_producer;
    std::uint32_t response_producer;
    std::array<std::uint32_t, 32> requests;
    std::array<std::uint32_t, 32> responses;
};

struct SplitDriverFixture : DomainFixture {
    static constexpr std::uint64_t frontend_ring = 0x50000;  // where the frontend maps its own page
    static constexpr std::uint32_t ring_ref = 8;

    SplitDriverFixture() {
        // The frontend's guest: a page of its own, mapped, granted to the backend.
        ring_frame = allocate(frontend->domain.memory);
        REQUIRE(call(*frontend, abi::HYPERVISOR_update_va_mapping, {frontend_ring, entry(ring_frame, rw), 0}) == 0);
        poke(*frontend, frontend_ring, Ring{});
        grant(*frontend, ring_ref, *backend, ring_frame);
        std::tie(frontend_port, backend_port) = connect(*frontend, *backend);
        // The backend's guest maps the ring where it likes.
        const auto mapped = map_grant(*backend, *frontend, ring_ref, free_area);
        REQUIRE(mapped.status == abi::GNTST_okay);
        backend_handle = mapped.handle;
        abi::evtchn_bind_virq dom_exc{abi::VIRQ_DOM_EXC, 0, 0};
        REQUIRE(op(*control, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_virq, dom_exc) == 0);
        dom_exc_port = Port{dom_exc.port};
    }

    // Takes the event on `port` if it is pending, as the guest's upcall handler would.
    bool take_event(TestDomain& test, Port port) {
        auto& pending = shared_info(test).evtchn_pending[port.value / 64];
        const std::uint64_t bit = std::uint64_t{1} << (port.value % 64);
        const bool was = (pending & bit) != 0;
        pending &= ~bit;
        return was;
    }
    long notify(TestDomain& test, Port port) {
        abi::evtchn_send send{port.value};
        return op(test, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_send, send);
    }

    std::unique_ptr<TestDomain> control = make(0, "control", true);
    std::unique_ptr<TestDomain> frontend = make(1, "frontend");
    std::unique_ptr<TestDomain> backend = make(2, "backend");
    Mfn ring_frame{0};
    Port frontend_port{0}, backend_port{0}, dom_exc_port{0};
    std::uint32_t backend_handle = 0;
};

TEST_CASE_METHOD(SplitDriverFixture, "a granted ring and an event channel carry requests and responses",
                 "[domain][scenario]") {
    for (std::uint32_t message = 0; message < 100; ++message) {
        // Frontend: a request, then the notification.
        Ring ring = peek<Ring>(*frontend, frontend_ring);
        ring.requests[ring.request_producer % 32] = message * 3;
        ++ring.request_producer;
        poke(*frontend, frontend_ring, ring);
        REQUIRE(notify(*frontend, frontend_port) == 0);

        // Backend: woken on its port, it answers through its mapping of the same page.
        REQUIRE(take_event(*backend, backend_port));
        Ring seen = peek<Ring>(*backend, free_area);
        REQUIRE(seen.request_producer == message + 1);
        seen.responses[seen.response_producer % 32] = seen.requests[message % 32] + 1;
        ++seen.response_producer;
        poke(*backend, free_area, seen);
        REQUIRE(notify(*backend, backend_port) == 0);

        REQUIRE(take_event(*frontend, frontend_port));
        const Ring answered = peek<Ring>(*frontend, frontend_ring);
        REQUIRE(answered.response_producer == message + 1);
        REQUIRE(answered.responses[message % 32] == message * 3 + 1);
    }
    require_invariants({control.get(), frontend.get(), backend.get()});
}

TEST_CASE_METHOD(SplitDriverFixture, "a third domain can neither bind the channel nor map the grant",
                 "[domain][scenario][hostile]") {
    auto intruder = make(3, "intruder");
    abi::evtchn_alloc_unbound fresh{abi::DOMID_SELF, 2, 0};
    REQUIRE(op(*frontend, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_alloc_unbound, fresh) == 0);
    abi::evtchn_bind_interdomain bind{1, fresh.port, 0};
    CHECK(op(*intruder, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_interdomain, bind) ==
          error(Errc::einval));
    abi::evtchn_bind_interdomain taken{1, frontend_port.value, 0};
    CHECK(op(*intruder, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_interdomain, taken) ==
          error(Errc::einval));
    abi::evtchn_send foreign{backend_port.value};  // a port number of another domain means nothing here
    CHECK(op(*intruder, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_send, foreign) == error(Errc::einval));
    CHECK_FALSE(take_event(*frontend, frontend_port));

    abi::gnttab_map_grant_ref map{};
    map.host_addr = free_area;
    map.flags = abi::GNTMAP_host_map;
    map.ref = ring_ref;
    map.dom = 1;
    REQUIRE(grant_op(*intruder, abi::GNTTABOP_map_grant_ref, map) == 0);
    CHECK(map.status == abi::GNTST_general_error);  // Xen's answer to an entry naming another domain
    CHECK(intruder->memory->translate(free_area, false) == nullptr);
    // Nor unmap the backend's mapping with its handle.
    abi::gnttab_unmap_grant_ref unmap{free_area, 0, backend_handle, 0};
    REQUIRE(grant_op(*intruder, abi::GNTTABOP_unmap_grant_ref, unmap) == 0);
    CHECK(unmap.status == abi::GNTST_bad_handle);
    CHECK(backend->memory->translate(free_area, true) == platform.map(ring_frame));
    require_invariants({control.get(), frontend.get(), backend.get(), intruder.get()});
}

TEST_CASE_METHOD(SplitDriverFixture, "either side may go first; the other sees its end unbound and goes on",
                 "[domain][scenario][destroy]") {
    const bool frontend_first = GENERATE(true, false);
    TestDomain& first = frontend_first ? *frontend : *backend;
    TestDomain& survivor = frontend_first ? *backend : *frontend;
    const Port survivor_port = frontend_first ? backend_port : frontend_port;

    abi::sched_shutdown crash{abi::SHUTDOWN_crash};
    REQUIRE(op(first, abi::HYPERVISOR_sched_op, abi::SCHEDOP_shutdown, crash) == 0);
    REQUIRE(take_event(*control, dom_exc_port));
    if (frontend_first) {
        // The granter is gone from the guests' view but its page lives on while the backend maps it.
        CHECK_FALSE(domains.destroy(first.domain, 1'000));
        CHECK(backend->memory->translate(free_area, true) == platform.map(ring_frame));
        CHECK(unmap_grant(*backend, backend_handle, free_area) == abi::GNTST_okay);
    }
    REQUIRE(destroy(first));
    CHECK(take_event(*control, dom_exc_port));

    abi::evtchn_status status{abi::DOMID_SELF, survivor_port.value, 0, 0, {}};
    REQUIRE(op(survivor, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_status, status) == 0);
    CHECK(status.status == abi::EVTCHNSTAT_unbound);
    CHECK(notify(survivor, survivor_port) == 0);  // an unbound port drops what is sent on it, as Xen
    CHECK(survivor.domain.state == DomainState::running);
    require_invariants({control.get(), &survivor});

    REQUIRE(destroy(survivor));
    CHECK(domains.domains().size() == 1);
    CHECK(frames.domains().size() == 1);
}

}  // namespace
}  // namespace domain_test

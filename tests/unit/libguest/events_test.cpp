// guest/events.hpp: the 2-level upcall demux and mask/unmask over a fake shared_info.
#include <guest/events.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <vector>

namespace {
using namespace pvkit::guest;
namespace abi = pvkit::abi;

// What the hypervisor does to send an event to vCPU 0 (evtchn_2l_set_pending).
void raise(abi::shared_info& shared, EventPort port) {
    shared.evtchn_pending[port / 64] |= 1ull << (port % 64);
    if (shared.evtchn_mask[port / 64] & (1ull << (port % 64)))
        return;
    shared.vcpu_info[0].evtchn_pending_sel |= 1ull << (port / 64);
    shared.vcpu_info[0].evtchn_upcall_pending = 1;
}

struct EventsFixture {
    abi::shared_info shared{};
    std::array<EventBinding, 256> table{};
    EventChannels events{shared, shared.vcpu_info[0], table};
    std::vector<EventPort> calls;
    std::vector<bool> pending_during_call;

    static void record(EventPort port, void* context) {
        auto* self = static_cast<EventsFixture*>(context);
        self->calls.push_back(port);
        self->pending_during_call.push_back(self->events.pending(port));
    }
    void bind(EventPort port) { REQUIRE(events.bind(port, record, this) == EventError::none); }
};
}  // namespace

TEST_CASE_METHOD(EventsFixture, "libguest: an upcall calls each pending unmasked port's handler once, in port order",
                 "[unit][events]") {
    for (EventPort port : {3u, 64u, 65u, 130u})
        bind(port);
    for (EventPort port : {130u, 65u, 3u, 64u})
        raise(shared, port);

    const UpcallResult result = events.handle_upcall();
    CHECK(calls == std::vector<EventPort>{3, 64, 65, 130});
    CHECK(pending_during_call == std::vector<bool>(4, false));  // cleared before each handler
    CHECK(result.handled == 4);
    CHECK(result.unbound == 0);
    CHECK(result.passes == 1);
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 0);
    CHECK(shared.vcpu_info[0].evtchn_pending_sel == 0);
    for (auto word : shared.evtchn_pending)
        CHECK(word == 0);

    calls.clear();
    CHECK(events.handle_upcall().handled == 0);  // nothing left
    CHECK(calls.empty());
}

TEST_CASE_METHOD(EventsFixture, "libguest: a masked port stays pending and is not called", "[unit][events]") {
    bind(5);
    bind(6);
    REQUIRE(events.mask(5) == EventError::none);
    raise(shared, 6);
    shared.evtchn_pending[0] |= 1ull << 5;  // pending while masked: the hypervisor raises no selector for it

    events.handle_upcall();
    CHECK(calls == std::vector<EventPort>{6});
    CHECK(events.pending(5));
    CHECK(events.masked(5));
    CHECK(shared.vcpu_info[0].evtchn_pending_sel == 0);
}

TEST_CASE_METHOD(EventsFixture, "libguest: only words named by the selector are scanned", "[unit][events]") {
    bind(70);
    shared.evtchn_pending[1] = 1ull << 6;  // port 70 pending, but its selector bit never raised
    shared.vcpu_info[0].evtchn_upcall_pending = 1;
    const UpcallResult result = events.handle_upcall();
    CHECK(calls.empty());
    CHECK(result.passes == 0);
    CHECK(events.pending(70));
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 0);
}

TEST_CASE_METHOD(EventsFixture, "libguest: an event raised by a handler is handled in the same upcall", "[unit][events]") {
    bind(1);
    REQUIRE(events.bind(
                2, [](EventPort port, void* context) {
                    auto* self = static_cast<EventsFixture*>(context);
                    self->calls.push_back(port);
                    if (self->calls.size() == 1) {
                        raise(self->shared, 2);    // again, while its own handler runs
                        raise(self->shared, 200);  // and another word
                    }
                },
                this) == EventError::none);
    bind(200);
    raise(shared, 2);
    const UpcallResult result = events.handle_upcall();
    CHECK(calls == std::vector<EventPort>{2, 2, 200});
    CHECK(result.passes == 2);
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 0);
    CHECK_FALSE(events.pending(2));
}

TEST_CASE_METHOD(EventsFixture, "libguest: an event on a port without a handler is cleared and counted", "[unit][events]") {
    raise(shared, 9);
    raise(shared, 4000);  // beyond the table, within the ABI
    const UpcallResult result = events.handle_upcall();
    CHECK(result.handled == 0);
    CHECK(result.unbound == 2);
    CHECK_FALSE(events.pending(9));
    CHECK_FALSE(events.pending(4000));
}

TEST_CASE_METHOD(EventsFixture, "libguest: unmasking a port that became pending re-raises its event", "[unit][events]") {
    bind(66);
    REQUIRE(events.mask(66) == EventError::none);
    raise(shared, 66);
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 0);

    bool upcall = false;
    REQUIRE(events.unmask(66, &upcall) == EventError::none);
    CHECK(upcall);
    CHECK_FALSE(events.masked(66));
    CHECK(shared.vcpu_info[0].evtchn_pending_sel == 1ull << 1);
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 1);

    events.handle_upcall();
    CHECK(calls == std::vector<EventPort>{66});
}

TEST_CASE_METHOD(EventsFixture, "libguest: unmasking a port with nothing pending raises nothing", "[unit][events]") {
    REQUIRE(events.mask(66) == EventError::none);
    bool upcall = true;
    REQUIRE(events.unmask(66, &upcall) == EventError::none);
    CHECK_FALSE(upcall);
    CHECK_FALSE(events.masked(66));
    CHECK(shared.vcpu_info[0].evtchn_pending_sel == 0);
    CHECK(shared.vcpu_info[0].evtchn_upcall_pending == 0);
}

TEST_CASE_METHOD(EventsFixture, "libguest: with an unmask hook, unmask goes to the hypervisor and touches nothing itself",
                 "[unit][events]") {
    std::vector<EventPort> hypercalls;
    events.set_unmask_hypercall([](EventPort port, void* context) { static_cast<std::vector<EventPort>*>(context)->push_back(port); },
                                &hypercalls);
    REQUIRE(events.mask(7) == EventError::none);
    raise(shared, 7);
    const abi::shared_info before = shared;
    REQUIRE(events.unmask(7) == EventError::none);
    CHECK(hypercalls == std::vector<EventPort>{7});
    CHECK(std::memcmp(&before, &shared, sizeof shared) == 0);
}

TEST_CASE_METHOD(EventsFixture, "libguest: bind, unbind, mask and unmask refuse bad ports and change nothing",
                 "[unit][events][hostile]") {
    bind(10);
    const auto table_before = table;
    const abi::shared_info shared_before = shared;
    CHECK(events.bind(256, record, this) == EventError::port_out_of_range);  // beyond the table
    CHECK(events.bind(10, record, nullptr) == EventError::already_bound);
    CHECK(events.bind(11, nullptr, this) == EventError::no_handler);
    CHECK(events.unbind(12) == EventError::not_bound);
    CHECK(events.unbind(300) == EventError::port_out_of_range);
    CHECK(events.mask(4096) == EventError::port_out_of_range);
    CHECK(events.unmask(4096) == EventError::port_out_of_range);
    CHECK(events.clear_pending(0xFFFFFFFFu) == EventError::port_out_of_range);
    CHECK(std::memcmp(&table_before, &table, sizeof table) == 0);
    CHECK(std::memcmp(&shared_before, &shared, sizeof shared) == 0);
    CHECK(table[10].context == this);

    REQUIRE(events.unbind(10) == EventError::none);
    CHECK_FALSE(events.bound(10));
    CHECK(events.bind(10, record, nullptr) == EventError::none);
}

TEST_CASE("libguest: a table larger than the ABI binds only the ABI's ports", "[unit][events][hostile]") {
    abi::shared_info shared{};
    static std::array<EventBinding, 5000> table{};
    EventChannels events{shared, shared.vcpu_info[0], table};
    CHECK(events.bind(4095, [](EventPort, void*) {}, nullptr) == EventError::none);
    CHECK(events.bind(4096, [](EventPort, void*) {}, nullptr) == EventError::port_out_of_range);
    CHECK(table[4096].handler == nullptr);
}

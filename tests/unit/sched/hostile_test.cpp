// The platform's mistakes: each is a no-op that leaves the queues as they were.
#include "sched_fixture.hpp"

namespace sched_test {
namespace {

// What the scheduler keeps of a vCPU, to show that a misuse changed none of it.
struct Snapshot {
    VcpuState state;
    bool boosted;
    std::uint64_t slice_left;
    std::uint64_t runtime;
    bool operator==(const Snapshot&) const = default;
};

Snapshot snap(const SchedVcpu& vcpu) {
    return {vcpu.state(), vcpu.boosted(), vcpu.slice_left_ns(), vcpu.runtime_ns()};
}

struct Setup {
    Scheduler s;
    SchedVcpu running{DomId{1}, 0}, queued{DomId{2}, 0}, boosted{DomId{3}, 0}, blocked{DomId{4}, 0},
        stranger{DomId{5}, 0};

    // running is current (picked at 0, the clock at 200 us), queued waits in the normal queue,
    // boosted in the boosted queue (for running to reach min_run), blocked is blocked, stranger
    // was never added.
    Setup() {
        for (SchedVcpu* v : {&running, &queued, &boosted, &blocked})
            s.add(*v);
        s.wake(boosted, 0);  // a slice to be boosted with
        s.block(boosted, 0);
        s.wake(running, 0);
        s.wake(queued, 0);
        REQUIRE(s.schedule(0).next == &running);
        s.wake(boosted, 200 * us);
        REQUIRE(boosted.boosted());
        REQUIRE(s.schedule(200 * us).next == &running);
        REQUIRE_SCHED_INVARIANTS(s);
    }

    std::vector<Snapshot> all() const {
        return {snap(running), snap(queued), snap(boosted), snap(blocked), snap(stranger)};
    }

    // What runs from here on, a slice at a time, with nobody woken or blocked.
    std::vector<SchedVcpu*> picks(std::uint64_t from, int count) {
        std::vector<SchedVcpu*> order;
        std::uint64_t now = from;
        for (int i = 0; i < count; ++i) {
            Decision d = s.schedule(now);
            REQUIRE_SCHED_INVARIANTS(s);
            order.push_back(d.next);
            now = d.slice_end_ns;
        }
        return order;
    }
};

const std::vector<SchedVcpu*> expected_picks(Setup& t) {
    return {&t.running, &t.boosted, &t.running, &t.queued, &t.boosted};
}

TEST_CASE("sched: waking a runnable or running vCPU changes nothing", "[sched][hostile]") {
    Setup t;
    const auto before = t.all();
    t.s.wake(t.running, 200 * us);
    t.s.wake(t.queued, 200 * us);
    t.s.wake(t.boosted, 200 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.s.runnable_count() == 3);
    CHECK(t.picks(200 * us, 5) == expected_picks(t));
}

TEST_CASE("sched: blocking a blocked vCPU changes nothing, not even its sleep credit", "[sched][hostile]") {
    Setup t;
    const auto before = t.all();
    t.s.block(t.blocked, 200 * us);
    t.s.block(t.blocked, 200 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.picks(200 * us, 5) == expected_picks(t));
}

TEST_CASE("sched: a vCPU never added, or added elsewhere, is left alone", "[sched][hostile]") {
    Setup t;
    const auto before = t.all();
    t.s.remove(t.stranger);
    t.s.wake(t.stranger, 200 * us);
    t.s.block(t.stranger, 200 * us);
    t.s.yield(t.stranger, 200 * us);
    CHECK_FALSE(t.s.runnable(t.stranger));
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.s.vcpu_count() == 4);

    Scheduler other;
    other.add(t.queued);  // already in t.s
    other.remove(t.running);
    other.wake(t.blocked, 200 * us);
    other.block(t.queued, 200 * us);
    other.yield(t.running, 200 * us);
    REQUIRE_SCHED_INVARIANTS(other);
    CHECK(other.vcpu_count() == 0);
    CHECK(other.schedule(200 * us).next == nullptr);
    t.s.add(t.running);  // added twice: its runtime and slice are not reset
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.picks(200 * us, 5) == expected_picks(t));
}

TEST_CASE("sched: yield by a vCPU that is not running changes nothing", "[sched][hostile]") {
    Setup t;
    const auto before = t.all();
    t.s.yield(t.queued, 200 * us);
    t.s.yield(t.boosted, 200 * us);
    t.s.yield(t.blocked, 200 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.picks(200 * us, 5) == expected_picks(t));
}

TEST_CASE("sched: removing twice, or blocking and waking a removed vCPU, changes nothing", "[sched][hostile]") {
    Setup t;
    t.s.remove(t.queued);
    const auto before = t.all();
    t.s.remove(t.queued);
    t.s.wake(t.queued, 200 * us);
    t.s.block(t.queued, 200 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.all() == before);
    CHECK(t.picks(200 * us, 4) == std::vector<SchedVcpu*>{&t.running, &t.boosted, &t.running, &t.boosted});
}

TEST_CASE("sched: time going backwards is taken as the latest time, and charges nothing", "[sched][hostile]") {
    Setup t;  // the clock is at 200 us, running picked at 0
    Decision d = t.s.schedule(50 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.running);
    CHECK(t.s.now() == 200 * us);
    CHECK(t.running.runtime_ns() == 200 * us);
    CHECK(d.slice_end_ns == min_run);  // still min_run from its pick
    t.s.block(t.running, 0);  // charged 0 more
    CHECK(t.running.runtime_ns() == 200 * us);
    t.s.wake(t.running, 0);   // slept "from 200 us until 0": no credit, no wrap-around
    CHECK(t.running.slice_left_ns() == slice - 200 * us);
    d = t.s.schedule(10 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.boosted);
    CHECK(d.slice_end_ns > t.s.now());
    CHECK(t.s.idle_ns() == 0);
}

TEST_CASE("sched: the end of time saturates the slice end", "[sched][hostile]") {
    Scheduler s;
    SchedVcpu a{DomId{1}, 0};
    s.add(a);
    const std::uint64_t late = no_deadline - slice / 2;
    s.wake(a, late);
    Decision d = s.schedule(late);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(d.next == &a);
    CHECK(d.slice_end_ns == no_deadline);
    d = s.schedule(no_deadline);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(d.next == &a);
    CHECK(a.runtime_ns() == slice / 2);
}

TEST_CASE("sched: a slice of 0 or a min_run beyond the slice is clamped", "[sched][hostile]") {
    Scheduler zero{0, 0};
    CHECK(zero.slice_ns() == 1);
    CHECK(zero.min_run_ns() == 0);
    Scheduler wide{5 * ms, 8 * ms};
    CHECK(wide.min_run_ns() == 5 * ms);
    SchedVcpu a{DomId{1}, 0}, b{DomId{2}, 0};
    zero.add(a);
    zero.add(b);
    zero.wake(a, 0);
    zero.wake(b, 0);
    std::uint64_t now = 0;
    for (int i = 0; i < 10; ++i) {  // a nanosecond each, in turn
        Decision d = zero.schedule(now);
        REQUIRE_SCHED_INVARIANTS(zero);
        CHECK(d.next == (i % 2 == 0 ? &a : &b));
        CHECK(d.slice_end_ns == now + 1);
        now = d.slice_end_ns;
    }
}

}  // namespace
}  // namespace sched_test

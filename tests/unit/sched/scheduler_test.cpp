// The scheduler's decisions one step at a time: picking, idling, boost, yield and remove.
#include "sched_fixture.hpp"

namespace sched_test {
namespace {

struct ThreeVcpus {
    Scheduler s;
    SchedVcpu a{DomId{1}, 0}, b{DomId{2}, 0}, c{DomId{3}, 0};

    ThreeVcpus() {
        s.add(a);
        s.add(b);
        s.add(c);
    }

    // A new vCPU has no slice; one woken and blocked again before it runs keeps the slice it was
    // given at the normal tail, so that its next wake boosts it.
    void give_slice(SchedVcpu& vcpu) {
        s.wake(vcpu, s.now());
        s.block(vcpu, s.now());
        REQUIRE(vcpu.slice_left_ns() == slice);
    }
};

TEST_CASE("sched: a vCPU added is blocked, and nothing runs until one is woken", "[sched]") {
    Scheduler s;
    SchedVcpu a{DomId{1}, 0};
    CHECK(a.state() == VcpuState::offline);
    s.add(a);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(a.state() == VcpuState::blocked);
    CHECK(s.contains(a));
    CHECK_FALSE(s.runnable(a));
    CHECK(s.runnable_count() == 0);

    Decision idle = s.schedule(5 * ms);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(idle.next == nullptr);
    CHECK(idle.slice_end_ns == no_deadline);
    CHECK(s.current() == nullptr);

    s.wake(a, 7 * ms);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(s.runnable(a));
    CHECK_FALSE(a.boosted());  // a new vCPU is not boosted: it has no slice to spend yet
    CHECK(s.runnable_count() == 1);
    Decision first = s.schedule(7 * ms);
    REQUIRE_SCHED_INVARIANTS(s);
    CHECK(first.next == &a);
    CHECK(first.slice_end_ns == 7 * ms + slice);
    CHECK(a.state() == VcpuState::running);
    CHECK(s.current() == &a);
    CHECK(s.idle_ns() == 2 * ms);  // from the first time given (5 ms) to the pick
}

TEST_CASE("sched: a lone vCPU keeps the CPU slice after slice, and is charged for all of it", "[sched]") {
    Scheduler s;
    SchedVcpu a{DomId{1}, 0};
    s.add(a);
    s.wake(a, 0);
    Decision d = s.schedule(0);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(d.next == &a);
        CHECK(s.schedule(d.slice_end_ns - 1).next == &a);  // an early scheduling point changes nothing
        REQUIRE_SCHED_INVARIANTS(s);
        d = s.schedule(d.slice_end_ns);
        REQUIRE_SCHED_INVARIANTS(s);
    }
    CHECK(d.next == &a);
    CHECK(d.slice_end_ns == 6 * slice);
    CHECK(a.runtime_ns() == 5 * slice);
    CHECK(s.idle_ns() == 0);
}

TEST_CASE("sched: a blocked vCPU is never picked", "[sched]") {
    ThreeVcpus t;
    t.s.wake(t.a, 0);
    t.s.wake(t.c, 0);
    std::uint64_t now = 0;
    for (int i = 0; i < 20; ++i) {
        Decision d = t.s.schedule(now);
        REQUIRE_SCHED_INVARIANTS(t.s);
        REQUIRE(d.next != nullptr);
        CHECK(d.next != &t.b);
        if (i == 7) {  // c blocks, whether running or waiting; a alone goes on
            t.s.block(t.c, now);
            REQUIRE_SCHED_INVARIANTS(t.s);
            CHECK(t.c.state() == VcpuState::blocked);
            continue;
        }
        if (i > 7)
            CHECK(d.next == &t.a);
        now = d.slice_end_ns;
    }
    CHECK(t.b.runtime_ns() == 0);
}

TEST_CASE("sched: a woken vCPU preempts a vCPU that has run min_run, not one that just started", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.b);
    t.s.wake(t.a, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    CHECK_FALSE(t.a.boosted());
    // b wakes at 0.4 ms: boosted, but a has not run min_run yet.
    t.s.wake(t.b, 400 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.b.boosted());
    Decision d = t.s.schedule(400 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.a);
    CHECK(d.slice_end_ns == min_run);  // the platform comes back when a may be preempted
    d = t.s.schedule(min_run);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.b);
    CHECK(d.slice_end_ns == min_run + slice);
    CHECK(t.a.state() == VcpuState::runnable);
    CHECK(t.a.slice_left_ns() == slice - min_run);  // a keeps the rest of its slice...
    CHECK(t.a.runtime_ns() == min_run);

    // ...and is first in line, before c, woken meanwhile (new, so not boosted).
    t.s.wake(t.c, min_run + 10 * us);
    t.s.block(t.b, min_run + 50 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    d = t.s.schedule(min_run + 50 * us);
    CHECK(d.next == &t.a);
    CHECK(d.slice_end_ns == min_run + 50 * us + slice - min_run);
    CHECK(t.b.runtime_ns() == 50 * us);
    CHECK(t.s.schedule(d.slice_end_ns).next == &t.c);
}

TEST_CASE("sched: a vCPU is preempted only after min_run of its own run, however it was picked", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.b);
    t.give_slice(t.c);
    t.s.wake(t.a, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.wake(t.b, 3 * ms);  // a has run 3 ms: b preempts at the scheduling point right away
    CHECK(t.s.schedule(3 * ms).next == &t.b);
    t.s.block(t.b, 3 * ms + 10 * us);
    CHECK(t.s.schedule(3 * ms + 10 * us).next == &t.a);  // a back: min_run counts from this pick
    t.s.wake(t.c, 3 * ms + 20 * us);
    Decision d = t.s.schedule(3 * ms + 20 * us);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.a);
    CHECK(d.slice_end_ns == 3 * ms + 10 * us + min_run);
    CHECK(t.s.schedule(d.slice_end_ns - 1).next == &t.a);
    CHECK(t.s.schedule(d.slice_end_ns).next == &t.c);
}

TEST_CASE("sched: a boosted vCPU does not preempt a boosted current", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.a);
    t.give_slice(t.b);
    t.s.wake(t.a, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    CHECK(t.a.boosted());
    t.s.wake(t.b, 2 * ms);
    Decision d = t.s.schedule(2 * ms);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.a);
    CHECK(d.slice_end_ns == slice);  // the end of a's slice, no earlier preemption point
    CHECK(t.s.schedule(5 * ms).next == &t.a);
    t.s.block(t.a, 6 * ms);
    CHECK(t.s.schedule(6 * ms).next == &t.b);
}

TEST_CASE("sched: a boosted vCPU that runs a whole slice loses the boost", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.b);
    t.give_slice(t.c);
    t.s.wake(t.a, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.wake(t.b, 0);
    Decision d = t.s.schedule(min_run);  // b preempts a
    REQUIRE(d.next == &t.b);
    CHECK(t.b.boosted());
    d = t.s.schedule(d.slice_end_ns);  // b used its whole slice: a new one, at the normal tail
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.a);
    CHECK_FALSE(t.b.boosted());
    CHECK(t.b.state() == VcpuState::runnable);
    CHECK(t.b.slice_left_ns() == slice);
    CHECK(t.b.runtime_ns() == slice);

    // Now a woken c preempts a after min_run; b, unboosted, waits its turn behind a.
    const std::uint64_t now = d.slice_end_ns - (slice - min_run);  // a picked again here
    t.s.wake(t.c, now);
    CHECK(t.s.schedule(now + min_run).next == &t.c);
    t.s.block(t.c, now + min_run + 1 * us);
    CHECK(t.s.schedule(now + min_run + 1 * us).next == &t.a);
    REQUIRE_SCHED_INVARIANTS(t.s);
}

TEST_CASE("sched: the boost spends only what is left of the slice; a new slice waits its turn", "[sched]") {
    ThreeVcpus t;
    t.s.wake(t.a, 0);
    t.s.wake(t.b, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.block(t.a, slice - 1 * ms);  // a blocks with 1 ms left
    REQUIRE(t.s.schedule(slice - 1 * ms).next == &t.b);
    // a slept 1 ms while one other vCPU wanted the CPU: it earns half of that.
    t.s.wake(t.a, slice);
    CHECK(t.a.boosted());
    CHECK(t.a.slice_left_ns() == 1'500 * us);
    Decision d = t.s.schedule(slice);  // b has run min_run: a preempts it...
    REQUIRE(d.next == &t.a);
    CHECK(d.slice_end_ns == slice + 1'500 * us);  // ...for what it has left
    d = t.s.schedule(d.slice_end_ns);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.b);  // a is at the normal tail with a new slice, behind b
    CHECK_FALSE(t.a.boosted());
    CHECK(t.a.slice_left_ns() == slice);
    CHECK(t.a.runtime_ns() == slice + 500 * us);

    // A vCPU that blocks with nothing left and wakes at once is not boosted: it goes to the tail
    // with a new slice.
    const std::uint64_t now = d.slice_end_ns - (slice - min_run);  // when b was picked again
    REQUIRE(t.s.schedule(d.slice_end_ns).next == &t.a);
    const std::uint64_t a_out = d.slice_end_ns + slice;
    t.s.block(t.a, a_out);  // exactly as its slice runs out
    CHECK(t.a.slice_left_ns() == 0);
    REQUIRE(t.s.schedule(a_out).next == &t.b);
    t.s.wake(t.a, a_out);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK_FALSE(t.a.boosted());
    CHECK(t.a.slice_left_ns() == slice);
    d = t.s.schedule(a_out + min_run);
    CHECK(d.next == &t.b);
    CHECK(d.slice_end_ns == a_out + slice);  // no preemption point: nothing boosted waits
    (void)now;
}

TEST_CASE("sched: a vCPU earns back its share of the time it slept, up to one slice", "[sched]") {
    ThreeVcpus t;
    t.s.wake(t.a, 0);
    t.s.wake(t.b, 0);
    t.s.wake(t.c, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.block(t.a, 4 * ms);  // 6 ms left
    REQUIRE(t.s.schedule(4 * ms).next == &t.b);
    t.s.wake(t.a, 7 * ms);  // slept 3 ms; b and c want the CPU: a earns a third, 1 ms
    CHECK(t.a.slice_left_ns() == 7 * ms);
    t.s.block(t.a, 7 * ms);
    t.s.wake(t.a, 1'007 * ms);  // a long sleep: no more than a whole slice
    CHECK(t.a.slice_left_ns() == slice);
    CHECK(t.a.boosted());
    t.s.block(t.a, 1'007 * ms);
    t.s.wake(t.a, 1'007 * ms);  // no sleep, nothing earned, nothing lost
    CHECK(t.a.slice_left_ns() == slice);
    REQUIRE_SCHED_INVARIANTS(t.s);
}

TEST_CASE("sched: a yield lets every other runnable vCPU run before the yielder", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.a);
    t.s.wake(t.a, 0);
    t.s.wake(t.b, 0);
    t.s.wake(t.c, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    CHECK(t.a.boosted());
    t.s.yield(t.a, 1 * ms);  // boosted a goes behind b and c, unboosted
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.s.current() == nullptr);
    CHECK_FALSE(t.a.boosted());
    CHECK(t.a.runtime_ns() == 1 * ms);
    CHECK(t.a.slice_left_ns() == slice - 1 * ms);
    std::uint64_t now = 1 * ms;
    std::vector<SchedVcpu*> order;
    for (int i = 0; i < 3; ++i) {
        Decision d = t.s.schedule(now);
        REQUIRE_SCHED_INVARIANTS(t.s);
        order.push_back(d.next);
        now += 100 * us;
        t.s.yield(*d.next, now);
    }
    CHECK(order == std::vector<SchedVcpu*>{&t.b, &t.c, &t.a});
}

TEST_CASE("sched: a yield with no other vCPU runnable gives the CPU back at once", "[sched]") {
    ThreeVcpus t;
    t.s.wake(t.a, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.yield(t.a, 2 * ms);
    Decision d = t.s.schedule(2 * ms);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(d.next == &t.a);
    CHECK(d.slice_end_ns == slice);  // with the rest of its slice
}

TEST_CASE("sched: removing the current vCPU leaves none current; the next pick goes on", "[sched]") {
    ThreeVcpus t;
    t.s.wake(t.a, 0);
    t.s.wake(t.b, 0);
    REQUIRE(t.s.schedule(0).next == &t.a);
    t.s.wake(t.c, 1 * ms);  // the clock is at 1 ms
    t.s.remove(t.a);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.s.current() == nullptr);
    CHECK(t.a.state() == VcpuState::offline);
    CHECK_FALSE(t.s.contains(t.a));
    CHECK(t.a.runtime_ns() == 1 * ms);  // charged up to the latest time the scheduler was given
    CHECK(t.s.vcpu_count() == 2);
    CHECK(t.s.runnable_count() == 2);
    CHECK(t.s.schedule(1 * ms).next == &t.b);
    REQUIRE_SCHED_INVARIANTS(t.s);
}

TEST_CASE("sched: removing a queued or a blocked vCPU takes it out of every queue", "[sched]") {
    ThreeVcpus t;
    t.give_slice(t.b);
    t.s.wake(t.a, 0);
    t.s.wake(t.b, 0);
    t.s.wake(t.c, 0);
    REQUIRE(t.s.schedule(0).next == &t.b);
    REQUIRE(t.s.schedule(min_run).next == &t.b);
    t.s.remove(t.c);  // queued (normal)
    REQUIRE_SCHED_INVARIANTS(t.s);
    t.s.block(t.b, min_run);
    REQUIRE(t.s.schedule(min_run).next == &t.a);
    t.s.wake(t.b, min_run);
    t.s.remove(t.b);  // queued (boosted)
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.s.schedule(min_run).slice_end_ns == min_run + slice);  // no preemption point left
    t.s.add(t.c);
    t.s.block(t.c, min_run);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.c.state() == VcpuState::blocked);
    t.s.remove(t.c);  // blocked
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.s.vcpu_count() == 1);
    CHECK(t.s.runnable_count() == 1);
    std::uint64_t now = min_run;
    for (int i = 0; i < 4; ++i) {
        Decision d = t.s.schedule(now);
        CHECK(d.next == &t.a);
        now = d.slice_end_ns;
    }
    // Waking or blocking a removed vCPU does nothing; it can be added again, blocked and fresh.
    t.s.wake(t.b, now);
    t.s.block(t.c, now);
    REQUIRE_SCHED_INVARIANTS(t.s);
    CHECK(t.b.state() == VcpuState::offline);
    t.s.add(t.b);
    CHECK(t.b.state() == VcpuState::blocked);
    CHECK(t.b.runtime_ns() == 0);
    t.s.wake(t.b, now);
    CHECK(t.s.schedule(now + min_run).next == &t.b);
    REQUIRE_SCHED_INVARIANTS(t.s);
}

TEST_CASE("sched: a scheduler that goes away takes its vCPUs out first", "[sched]") {
    SchedVcpu a{DomId{1}, 0}, b{DomId{1}, 1}, c{DomId{2}, 0};
    {
        Scheduler s;
        s.add(a);
        s.add(b);
        s.add(c);
        s.wake(a, 0);
        s.wake(b, 0);
        REQUIRE(s.schedule(0).next == &a);
    }
    CHECK(a.state() == VcpuState::offline);
    CHECK(b.state() == VcpuState::offline);
    CHECK(c.state() == VcpuState::offline);
    Scheduler other;
    other.add(a);  // usable in another one
    CHECK(other.contains(a));
    REQUIRE_SCHED_INVARIANTS(other);
}

}  // namespace
}  // namespace sched_test

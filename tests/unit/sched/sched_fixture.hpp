// Helpers for the scheduler's tests: an invariant check that says what broke, and a small
// simulation of guests that compute, exchange events and block, driven by the scheduler's decisions.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <hv/sched.hpp>

namespace sched_test {

using hv::DomId;
using namespace hv::sched;

constexpr std::uint64_t us = 1'000;
constexpr std::uint64_t ms = 1'000'000;
constexpr std::uint64_t slice = default_slice_ns;
constexpr std::uint64_t min_run = default_min_run_ns;

inline std::string describe(const std::optional<InvariantViolation>& violation) {
    if (!violation)
        return "none";
    return std::string{violation->what} + " (domain " + std::to_string(violation->domain.value) + " vcpu " +
           std::to_string(violation->vcpu) + ")";
}

#define REQUIRE_SCHED_INVARIANTS(scheduler)                  \
    do {                                                     \
        const auto violation_ = (scheduler).check_invariants(); \
        INFO("invariant broken: " << describe(violation_));  \
        REQUIRE_FALSE(violation_.has_value());               \
    } while (0)

// A guest vCPU in the simulation. A CPU-bound one always has work. Any other works `work_ns` for
// each event it is sent, then sends its peer an event if `echo` (for an event from its peer) or
// `ping_on_tick` (for a tick of its periodic timer) says so, and blocks when no event is left.
struct SimVcpu {
    SimVcpu(std::uint16_t domain, std::uint64_t work) : sched{DomId{domain}, 0}, work_ns{work} {}

    SchedVcpu sched;
    bool cpu_bound = false;
    std::uint64_t work_ns = 0;
    SimVcpu* peer = nullptr;
    bool echo = false;
    bool ping_on_tick = false;
    std::uint64_t period_ns = 0;  // periodic timer, 0: none
    std::uint64_t next_tick = 0;

    // What the simulation keeps.
    std::uint32_t peer_events = 0;
    std::uint32_t tick_events = 0;
    bool handling_tick = false;
    std::uint64_t work_left = 0;
    std::uint64_t ran_ns = 0;           // measured by the simulation, to check the scheduler's charge
    std::uint64_t handled_from_peer = 0;
    std::uint64_t woken_at = 0;
    bool waiting_since_wake = false;
    std::vector<std::uint64_t> wake_latencies;
};

class Simulation {
public:
    Simulation(Scheduler& scheduler, std::vector<SimVcpu*> vcpus) : s_{scheduler}, vcpus_{std::move(vcpus)} {}

    std::uint64_t now = 0;
    std::uint64_t context_switches = 0;

    void send(SimVcpu& to, bool tick) {
        (tick ? to.tick_events : to.peer_events)++;
        if (!to.cpu_bound && to.sched.state() == VcpuState::blocked) {
            to.woken_at = now;
            to.waiting_since_wake = true;
        }
        s_.wake(to.sched, now);
    }

    void run_until(std::uint64_t end) {
        const SchedVcpu* last = nullptr;
        while (now < end) {
            const Decision decision = s_.schedule(now);
            REQUIRE_SCHED_INVARIANTS(s_);
            const std::uint64_t external = std::min(next_tick(), end);
            if (decision.next == nullptr) {
                REQUIRE(decision.slice_end_ns == no_deadline);
                now = external;
                fire_ticks();
                continue;
            }
            REQUIRE(decision.slice_end_ns > now);
            SimVcpu& vcpu = of(*decision.next);
            if (decision.next != last)
                ++context_switches;
            last = decision.next;
            if (vcpu.waiting_since_wake) {
                vcpu.wake_latencies.push_back(now - vcpu.woken_at);
                vcpu.waiting_since_wake = false;
            }
            if (!vcpu.cpu_bound && vcpu.work_left == 0 && !take_event(vcpu)) {
                s_.block(vcpu.sched, now);
                continue;
            }
            std::uint64_t stop = std::min(decision.slice_end_ns, external);
            if (!vcpu.cpu_bound)
                stop = std::min(stop, now + vcpu.work_left);
            vcpu.ran_ns += stop - now;
            if (!vcpu.cpu_bound)
                vcpu.work_left -= stop - now;
            now = stop;
            if (!vcpu.cpu_bound && vcpu.work_left == 0)
                finish_event(vcpu);
            fire_ticks();
        }
    }

private:
    SimVcpu& of(SchedVcpu& sched) {
        for (SimVcpu* vcpu : vcpus_)
            if (&vcpu->sched == &sched)
                return *vcpu;
        FAIL("the scheduler picked a vCPU the simulation does not know");
        return *vcpus_.front();
    }

    bool take_event(SimVcpu& vcpu) {
        if (vcpu.peer_events > 0) {
            --vcpu.peer_events;
            vcpu.handling_tick = false;
        } else if (vcpu.tick_events > 0) {
            --vcpu.tick_events;
            vcpu.handling_tick = true;
        } else {
            return false;
        }
        vcpu.work_left = vcpu.work_ns;
        return true;
    }

    void finish_event(SimVcpu& vcpu) {
        if (!vcpu.handling_tick)
            ++vcpu.handled_from_peer;
        const bool notify = vcpu.handling_tick ? vcpu.ping_on_tick : vcpu.echo;
        if (notify && vcpu.peer != nullptr)
            send(*vcpu.peer, false);
        if (!take_event(vcpu))
            s_.block(vcpu.sched, now);  // SCHEDOP_block: nothing more to do
    }

    std::uint64_t next_tick() const {
        std::uint64_t earliest = no_deadline;
        for (const SimVcpu* vcpu : vcpus_)
            if (vcpu->period_ns != 0)
                earliest = std::min(earliest, vcpu->next_tick);
        return earliest;
    }

    void fire_ticks() {
        for (SimVcpu* vcpu : vcpus_) {
            if (vcpu->period_ns != 0 && vcpu->next_tick <= now) {
                vcpu->next_tick += vcpu->period_ns;
                send(*vcpu, true);
            }
        }
    }

    Scheduler& s_;
    std::vector<SimVcpu*> vcpus_;
};

}  // namespace sched_test

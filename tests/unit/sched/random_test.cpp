// Random operations (fixed seeds) against a model of the states, with the invariants and the
// accounting checked after every step.
#include "sched_fixture.hpp"

#include <array>
#include <random>

namespace sched_test {
namespace {

TEST_CASE("sched: random operations keep the queues, the states and the accounting consistent",
          "[sched][random]") {
    const auto seed = GENERATE(1u, 2u, 3u, 20240611u);
    INFO("seed " << seed);
    std::mt19937_64 rng{seed};
    auto below = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>{0, n - 1}(rng); };

    Scheduler s{slice, min_run};
    std::array<SchedVcpu, 7> vcpus;
    for (std::size_t i = 0; i < vcpus.size(); ++i)
        vcpus[i].domain = DomId{static_cast<std::uint16_t>(1 + i / 2)};
    std::array<VcpuState, 7> model{};  // what each vCPU's state must be
    model.fill(VcpuState::offline);
    std::uint64_t now = 0, start = 0;
    bool started = false;
    std::uint64_t removed_runtime = 0;  // charged to vCPUs before they were removed
    std::uint64_t picks = 0, idles = 0;

    for (int step = 0; step < 20'000; ++step) {
        // Time mostly moves on, by up to two slices; sometimes it stands still or goes back.
        const std::uint64_t r = below(10);
        if (r < 7)
            now += below(2 * slice);
        else if (r == 9 && now > 0)
            now -= below(now < ms ? now : ms);
        const std::size_t i = below(vcpus.size());
        SchedVcpu& v = vcpus[i];
        const std::uint64_t given_time = now;
        bool timed = true;

        switch (below(7)) {
        case 0:
            s.add(v);
            timed = false;
            if (model[i] == VcpuState::offline)
                model[i] = VcpuState::blocked;
            break;
        case 1:
            s.remove(v);  // the current one is charged up to the latest time first
            if (model[i] != VcpuState::offline)
                removed_runtime += v.runtime_ns();
            timed = false;
            model[i] = VcpuState::offline;
            break;
        case 2:
            s.wake(v, now);
            if (model[i] == VcpuState::blocked)
                model[i] = VcpuState::runnable;
            break;
        case 3:
            s.block(v, now);
            if (model[i] == VcpuState::runnable || model[i] == VcpuState::running)
                model[i] = VcpuState::blocked;
            break;
        case 4:
            s.yield(v, now);
            if (model[i] == VcpuState::running)
                model[i] = VcpuState::runnable;
            break;
        default: {
            const std::size_t wanting = s.runnable_count();
            Decision d = s.schedule(now);
            if (s.current() != nullptr && d.next == nullptr)
                FAIL("schedule() returned idle with a current vCPU");
            CHECK((d.next == nullptr) == (wanting == 0));
            if (d.next == nullptr) {
                ++idles;
                CHECK(d.slice_end_ns == no_deadline);
            } else {
                ++picks;
                CHECK(d.slice_end_ns > s.now());
                CHECK(d.slice_end_ns <= s.now() + slice);
                for (std::size_t j = 0; j < vcpus.size(); ++j) {
                    if (model[j] == VcpuState::running)
                        model[j] = VcpuState::runnable;
                    if (&vcpus[j] == d.next) {
                        REQUIRE(model[j] == VcpuState::runnable);  // a blocked vCPU is never picked
                        model[j] = VcpuState::running;
                    }
                }
            }
            // Everything up to now is charged to someone or to idle time.
            std::uint64_t charged = removed_runtime;
            for (const SchedVcpu& w : vcpus)
                if (s.contains(w))
                    charged += w.runtime_ns();
            if (started)
                CHECK(charged + s.idle_ns() == s.now() - start);
            break;
        }
        }
        if (timed && !started) {
            started = true;
            start = given_time;
        }
        REQUIRE_SCHED_INVARIANTS(s);
        for (std::size_t j = 0; j < vcpus.size(); ++j) {
            INFO("step " << step << " vcpu " << j);
            REQUIRE(vcpus[j].state() == model[j]);
            REQUIRE(s.runnable(vcpus[j]) == (model[j] == VcpuState::runnable || model[j] == VcpuState::running));
        }
    }
    CHECK(picks > 1000);
    CHECK(idles > 10);
}

}  // namespace
}  // namespace sched_test

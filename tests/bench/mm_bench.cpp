// The memory component's hot paths, each beside a baseline measured in the same process:
// `baseline_ns` is what the same number of locked adds (the floor for counting references) costs.
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "bench_machine.hpp"

namespace {

using namespace bench;
namespace abi = pvkit::abi;

constexpr std::size_t frame_count = 4096;
constexpr std::uint64_t rw = pte::present | pte::writable;

struct Machine {
    Machine() {
        frames.add_to_heap(Mfn{1}, frame_count - 1);
        (void)frames.add_domain(domain);
    }
    Mfn allocate() { return *frames.allocate(domain); }
    std::uint64_t* table(Mfn frame) { return reinterpret_cast<std::uint64_t*>(platform.map(frame)); }
    // An L1 whose 512 entries map 512 distinct frames, writable.
    Mfn full_l1() {
        const Mfn l1 = allocate();
        for (unsigned i = 0; i < entries_per_table; ++i)
            table(l1)[i] = (allocate().value << 12) | rw;
        return l1;
    }

    ArrayPlatform platform{frame_count};
    std::vector<PageInfo> infos = std::vector<PageInfo>(frame_count);
    std::vector<std::uint64_t> m2p = std::vector<std::uint64_t>(frame_count);
    FrameTable frames{platform, infos, m2p};
    PageTables tables{frames};
    DomainMemory domain{DomId{1}, frame_count};
    VcpuMmu vcpu{.domain = DomId{1}};
    FlatGuestMemory memory;
    NeverPreempt preemption;
    Continuation continuation;
    MmuCaller caller{domain, vcpu, memory, preemption, continuation};
};

// `count` locked adds on distinct counters, in nanoseconds: the baseline.
double locked_adds_ns(unsigned count) {
    static std::array<std::atomic<std::uint32_t>, entries_per_table> counters{};
    constexpr int rounds = 2000;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < rounds; ++round)
        for (unsigned i = 0; i < count; ++i)
            counters[i % counters.size()].fetch_add(1, std::memory_order_relaxed);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    return std::chrono::duration<double, std::nano>(elapsed).count() / rounds;
}

void pin_and_unpin_full_l1(benchmark::State& state) {
    Machine machine;
    const Mfn l1 = machine.full_l1();
    for (auto _ : state) {
        if (!machine.tables.pin(machine.domain, l1, 1) || !machine.tables.unpin(machine.domain, l1) ||
            !machine.tables.drain(machine.domain, 1))
            state.SkipWithError("pin, unpin or devalidation failed");
    }
    state.counters["baseline_ns"] = locked_adds_ns(2 * entries_per_table);
    state.SetItemsProcessed(state.iterations() * entries_per_table);
}
BENCHMARK(pin_and_unpin_full_l1);

// Validation alone: the unpin and its devalidation run with the clock stopped (which itself costs
// a few hundred nanoseconds per iteration, so this is an upper bound).
void validate_full_l1(benchmark::State& state) {
    Machine machine;
    const Mfn l1 = machine.full_l1();
    for (auto _ : state) {
        if (!machine.tables.pin(machine.domain, l1, 1))
            state.SkipWithError("pin failed");
        state.PauseTiming();
        if (!machine.tables.unpin(machine.domain, l1) || !machine.tables.drain(machine.domain, 1))
            state.SkipWithError("unpin or devalidation failed");
        state.ResumeTiming();
    }
    state.counters["baseline_ns"] = locked_adds_ns(entries_per_table);
    state.SetItemsProcessed(state.iterations() * entries_per_table);
}
BENCHMARK(validate_full_l1);

void pin_and_unpin_empty_l4(benchmark::State& state) {
    Machine machine;
    const Mfn l4 = machine.allocate();
    for (auto _ : state) {
        if (!machine.tables.pin(machine.domain, l4, 4) || !machine.tables.unpin(machine.domain, l4) ||
            !machine.tables.drain(machine.domain, 1))
            state.SkipWithError("pin, unpin or devalidation failed");
    }
    state.counters["baseline_ns"] = locked_adds_ns(2);
}
BENCHMARK(pin_and_unpin_empty_l4);

// mmu_update of `batch` entries per call, alternating each entry between two frames.
void mmu_update_entries(benchmark::State& state) {
    const auto batch = static_cast<unsigned>(state.range(0));
    Machine machine;
    const Mfn l1 = machine.allocate();
    (void)machine.tables.pin(machine.domain, l1, 1);
    const Mfn targets[2] = {machine.allocate(), machine.allocate()};
    std::vector<abi::mmu_update> requests[2];
    for (int variant = 0; variant < 2; ++variant)
        for (unsigned i = 0; i < entries_per_table; ++i)
            requests[variant].push_back({(l1.value << 12) + i * 8, (targets[variant].value << 12) | rw});
    const GuestHandle<abi::mmu_update> list{FlatGuestMemory::base};
    int variant = 0;
    for (auto _ : state) {
        std::memcpy(machine.memory.bytes.data(), requests[variant].data(), entries_per_table * sizeof(abi::mmu_update));
        for (unsigned first = 0; first < entries_per_table; first += batch) {
            const GuestHandle<abi::mmu_update> part{list.address + first * sizeof(abi::mmu_update)};
            if (mmu_update(machine.tables, machine.caller, {part, batch, GuestHandle<std::uint32_t>{0}, abi::DOMID_SELF}) != 0)
                state.SkipWithError("mmu_update failed");
        }
        variant ^= 1;
    }
    state.counters["baseline_ns"] = locked_adds_ns(4 * entries_per_table);  // get+put of page and type
    state.SetItemsProcessed(state.iterations() * entries_per_table);
}
BENCHMARK(mmu_update_entries)->Arg(1)->Arg(512)->ArgName("batch");

}  // namespace

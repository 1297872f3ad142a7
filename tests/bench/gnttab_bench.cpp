// The grant tables' hot paths through the hypercall entry point grant_table_op, each beside a
// baseline measured in the same process, and `ratio`, the benchmark's time per iteration over it:
// - map_and_unmap_grant: GNTMAP_host_map of one grant into the mapper's page tables, then
//   unmap_grant_ref; `baseline_ns` is the mapper mapping and unmapping a page of its own in the
//   same L1 entry through mmu_update (the page-table work without the grant).
// - copy_4k_from_grant: GNTTABOP_copy of a whole page; `baseline_ns` is a plain 4 KiB memcpy
//   between the same two page-aligned frames, measured just before the copies run.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <hv/gnttab.hpp>

#include "bench_machine.hpp"

namespace {

using namespace bench;
using hv::gnttab::GrantHandle;
using hv::gnttab::GrantTable;
using hv::gnttab::GrantTables;
namespace abi = pvkit::abi;

constexpr std::size_t frame_count = 1024;
constexpr std::uint64_t rw = pte::present | pte::writable;

// One domain's grant table over storage of its own: one frame of grants, 64 maptrack entries.
struct DomainGrants {
    explicit DomainGrants(DomainMemory& domain) : table{domain, {frames, active, maptrack}} {}

    std::vector<std::uint64_t> frames = std::vector<std::uint64_t>(1);
    std::vector<gnttab::ActiveEntry> active = std::vector<gnttab::ActiveEntry>(gnttab::entries_per_frame);
    std::vector<gnttab::MaptrackEntry> maptrack = std::vector<gnttab::MaptrackEntry>(64);
    GrantTable table;
};

// dom1 grants, dom2 maps and copies. dom2's address space is a pinned L4 -> L3 -> L2 -> L1 chain
// installed as its kernel base: virtual page i is L1 entry i.
struct Machine {
    static constexpr std::uint64_t mapped_address = 0x1000;  // L1 entry 1, empty to begin with

    Machine() {
        frames.add_to_heap(Mfn{1}, frame_count - 1);  // frame 0 stays out: never valid to map
        ok = frames.add_domain(dom1) && frames.add_domain(dom2) && grants.add(g1.table) && grants.add(g2.table);
        if (!ok)
            return;
        l4 = allocate(dom2), l3 = allocate(dom2), l2 = allocate(dom2), l1 = allocate(dom2);
        table(l4)[0] = (l3.value << 12) | rw;
        table(l3)[0] = (l2.value << 12) | rw;
        table(l2)[0] = (l1.value << 12) | rw;
        ok = ok && tables.pin(dom2, l4, 4) && tables.set_kernel_base(dom2, vcpu2, l4);
        granted = allocate(dom1);
        own = allocate(dom2);
    }
    Mfn allocate(DomainMemory& domain) {
        const auto frame = frames.allocate(domain);
        ok = ok && frame;
        return frame ? *frame : Mfn{0};
    }
    std::uint64_t* table(Mfn frame) { return reinterpret_cast<std::uint64_t*>(platform.map(frame)); }
    // dom1's entry `ref`, written in the order grant_table.h asks for: domid and frame, then flags.
    void grant(std::uint32_t ref, Mfn frame, std::uint16_t flags) {
        std::byte* entry = platform.map(Mfn{g1.frames[0]}) + ref * sizeof(abi::grant_entry_v1);
        const auto frame_number = static_cast<std::uint32_t>(frame.value);
        std::memcpy(entry + 2, &dom2.id.value, 2);
        std::memcpy(entry + 4, &frame_number, 4);
        std::memcpy(entry, &flags, 2);
    }
    template <class Op>
    void place(std::uint64_t offset, const Op& op) {
        std::memcpy(memory.bytes.data() + offset, &op, sizeof(op));
    }
    // A field the hypercall wrote back, read alone as a guest reads it (reading the whole
    // structure would stall on store forwarding from the smaller write-back, and time that).
    template <class Field>
    Field read_back(std::uint64_t offset) {
        Field value;
        std::memcpy(&value, memory.bytes.data() + offset, sizeof(value));
        return value;
    }
    // One grant_table_op from dom2 of one structure at `offset` in its memory.
    long grant_table_op(unsigned command, std::uint64_t offset) {
        return gnttab::grant_table_op(grants, caller,
                                      hypercall_args::grant_table_op{command, GuestHandle<void>{FlatGuestMemory::base + offset}, 1});
    }

    ArrayPlatform platform{frame_count};
    std::vector<PageInfo> infos = std::vector<PageInfo>(frame_count);
    std::vector<std::uint64_t> m2p = std::vector<std::uint64_t>(frame_count);
    FrameTable frames{platform, infos, m2p};
    PageTables tables{frames};
    DomainMemory dom1{DomId{1}, frame_count}, dom2{DomId{2}, frame_count};
    GrantTables grants{tables};
    DomainGrants g1{dom1}, g2{dom2};
    VcpuMmu vcpu2{.domain = DomId{2}};
    FlatGuestMemory memory;
    NeverPreempt preemption;
    Continuation continuation;
    mm::MmuCaller caller{dom2, vcpu2, memory, preemption, continuation};
    Mfn l4{0}, l3{0}, l2{0}, l1{0};
    Mfn granted{0};  // dom1's frame that it grants to dom2
    Mfn own{0};      // a frame of dom2's own
    bool ok = true;
};

double per_round_ns(std::chrono::steady_clock::duration elapsed, double rounds) {
    return std::chrono::duration<double, std::nano>(elapsed).count() / rounds;
}

// The baseline of a map and unmap: dom2 maps its own frame writable at the L1 entry the grant
// goes to, then clears that entry, each by an mmu_update of one entry. Nanoseconds per pair.
double own_map_and_unmap_ns(Machine& machine) {
    const std::uint64_t entry = (machine.l1.value << 12) + 8 * (Machine::mapped_address >> 12) + abi::MMU_NORMAL_PT_UPDATE;
    constexpr std::uint64_t map_offset = 0x1000, unmap_offset = 0x1100;
    machine.place(map_offset, abi::mmu_update{entry, (machine.own.value << 12) | rw});
    machine.place(unmap_offset, abi::mmu_update{entry, 0});
    const auto update = [&](std::uint64_t offset) {
        return mmu_update(machine.tables, machine.caller,
                          {GuestHandle<abi::mmu_update>{FlatGuestMemory::base + offset}, 1, GuestHandle<std::uint32_t>{0},
                           abi::DOMID_SELF});
    };
    constexpr int rounds = 50'000;
    long failed = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < rounds; ++round)
        failed |= update(map_offset) | update(unmap_offset);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    return failed != 0 ? -1.0 : per_round_ns(elapsed, rounds);
}

// map_grant_ref then unmap_grant_ref of one grant, each a grant_table_op of one structure placed
// in dom2's memory; the handle goes from the map's result into the unmap as a guest passes it.
void map_and_unmap_grant(benchmark::State& state) {
    Machine machine;
    constexpr std::uint32_t ref = 8;
    if (!machine.ok) {
        state.SkipWithError("machine setup failed");
        return;
    }
    machine.grant(ref, machine.granted, abi::GTF_permit_access);
    const double baseline_ns = own_map_and_unmap_ns(machine);
    if (baseline_ns < 0) {
        state.SkipWithError("the mmu_update baseline failed");
        return;
    }
    constexpr std::uint64_t map_offset = 0, unmap_offset = 0x100;
    abi::gnttab_map_grant_ref map{};
    map.host_addr = Machine::mapped_address;
    map.flags = abi::GNTMAP_host_map;
    map.ref = ref;
    map.dom = machine.dom1.id.value;
    machine.place(map_offset, map);
    abi::gnttab_unmap_grant_ref unmap{};
    unmap.host_addr = Machine::mapped_address;
    machine.place(unmap_offset, unmap);

    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        const long mapped = machine.grant_table_op(abi::GNTTABOP_map_grant_ref, map_offset);
        const auto map_status = machine.read_back<std::int16_t>(map_offset + offsetof(abi::gnttab_map_grant_ref, status));
        const auto handle = machine.read_back<GrantHandle>(map_offset + offsetof(abi::gnttab_map_grant_ref, handle));
        machine.place(unmap_offset + offsetof(abi::gnttab_unmap_grant_ref, handle), handle);
        const long unmapped = machine.grant_table_op(abi::GNTTABOP_unmap_grant_ref, unmap_offset);
        const auto unmap_status =
            machine.read_back<std::int16_t>(unmap_offset + offsetof(abi::gnttab_unmap_grant_ref, status));
        if (mapped != 0 || unmapped != 0 || map_status != 0 || unmap_status != 0)
            state.SkipWithError("map_grant_ref or unmap_grant_ref failed");
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (machine.table(machine.l1)[Machine::mapped_address >> 12] != 0 || machine.g1.table.pinned != 0)
        state.SkipWithError("the grant is still mapped or pinned");
    const double ns = per_round_ns(elapsed, static_cast<double>(state.iterations()));
    state.counters["baseline_ns"] = baseline_ns;
    state.counters["ratio"] = ns / baseline_ns;
}
BENCHMARK(map_and_unmap_grant);

// The C library's memcpy, called as libhv calls its memmove: through the library, never expanded
// inline by the compiler (GCC turns a constant 4 KiB memcpy into rep movsq), so that the baseline
// and the grant copy run the same kind of copy routine.
void* (*volatile library_memcpy)(void*, const void*, std::size_t) = std::memcpy;

// A plain 4 KiB memcpy from `source` to `dest`, nanoseconds per copy.
double memcpy_4k_ns(std::byte* dest, const std::byte* source) {
    constexpr int rounds = 200'000;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < rounds; ++round) {
        library_memcpy(dest, source, page_size);
        benchmark::ClobberMemory();
    }
    return per_round_ns(std::chrono::steady_clock::now() - start, rounds);
}

// The same memcpy as a benchmark of its own, between the two frames copy_4k_from_grant uses.
void memcpy_4k(benchmark::State& state) {
    Machine machine;
    std::byte* dest = machine.platform.map(machine.own);
    const std::byte* source = machine.platform.map(machine.granted);
    for (auto _ : state) {
        library_memcpy(dest, source, page_size);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(page_size));
}
BENCHMARK(memcpy_4k);

// GNTTABOP_copy of one whole page, source by grant reference (dom1's grant to dom2), destination
// dom2's own frame by gmfn with DOMID_SELF: a backend pulling a frontend's page into its own
// buffer (netback's transmit path). The structure stays in dom2's memory: the hypercall writes
// back only its status.
void copy_4k_from_grant(benchmark::State& state) {
    Machine machine;
    constexpr std::uint32_t ref = 9;
    if (!machine.ok) {
        state.SkipWithError("machine setup failed");
        return;
    }
    machine.grant(ref, machine.granted, abi::GTF_permit_access | abi::GTF_readonly);
    std::memset(machine.platform.map(machine.granted), 0x5A, page_size);
    const double baseline_ns = memcpy_4k_ns(machine.platform.map(machine.own), machine.platform.map(machine.granted));
    abi::gnttab_copy copy{};
    copy.source.u.ref = ref;
    copy.source.domid = machine.dom1.id.value;
    copy.dest.u.gmfn = machine.own.value;
    copy.dest.domid = abi::DOMID_SELF;
    copy.len = page_size;
    copy.flags = abi::GNTCOPY_source_gref;
    machine.place(0, copy);

    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (machine.grant_table_op(abi::GNTTABOP_copy, 0) != 0 ||
            machine.read_back<std::int16_t>(offsetof(abi::gnttab_copy, status)) != 0)
            state.SkipWithError("GNTTABOP_copy failed");
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (std::memcmp(machine.platform.map(machine.own), machine.platform.map(machine.granted), page_size) != 0 ||
        machine.g1.table.pinned != 0)
        state.SkipWithError("the page was not copied, or the grant is still pinned");
    const double ns = per_round_ns(elapsed, static_cast<double>(state.iterations()));
    state.counters["baseline_ns"] = baseline_ns;
    state.counters["ratio"] = ns / baseline_ns;
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(page_size));
}
BENCHMARK(copy_4k_from_grant);

}  // namespace

// The grant-table tests' machine: the memory hypercalls' fixture (256 frames, dom0 privileged,
// dom1, dom2, a guest buffer) plus a grant table per domain, a vCPU for dom0, and helpers that
// issue grant_table_op as a guest would.
#pragma once

#include "../mm/mmu_ops_fixture.hpp"

#include <tuple>

#include <hv/gnttab.hpp>

namespace gnttab_test {
using namespace mm_test;
using hv::GrantRef;
using hv::gnttab::ActiveEntry;
using hv::gnttab::CheckScope;
using hv::gnttab::GrantHandle;
using hv::gnttab::GrantTable;
using hv::gnttab::GrantTables;
using hv::gnttab::MaptrackEntry;
using GS = abi::GrantStatus;

constexpr std::int16_t status(GS value) { return static_cast<std::int16_t>(value); }
constexpr long error(Errc value) { return hv::xen_errno(value); }

// One domain's grant table over storage of the test's own.
struct DomainGrants {
    explicit DomainGrants(DomainMemory& domain, std::size_t max_frames = 4, std::size_t maptrack_entries = 64)
        : frames(max_frames), active(max_frames * hv::gnttab::entries_per_frame), maptrack(maptrack_entries),
          table{domain, {frames, active, maptrack}} {}

    std::vector<std::uint64_t> frames;
    std::vector<ActiveEntry> active;
    std::vector<MaptrackEntry> maptrack;
    GrantTable table;
};

// Everything a refused grant operation must leave as it was: memory (grant entries and page tables
// included), every frame's counts, and every table's pins and handles.
struct GrantState {
    Snapshot memory;
    std::vector<std::tuple<std::uint64_t, std::uint16_t, std::uint16_t, std::uint16_t>> active;
    std::vector<std::tuple<std::uint64_t, std::uint32_t, std::uint16_t, std::uint16_t>> maptrack;
    std::vector<std::array<std::uint32_t, 7>> counters;
    bool operator==(const GrantState&) const = default;
};

constexpr std::uint64_t page_address(unsigned index) { return std::uint64_t{index} << 12; }
constexpr std::uint64_t pte_address(Mfn table, unsigned index) { return (table.value << 12) | (index * 8ull); }

// Takes all but `leave` frames out of the heap, and gives them back when it goes.
struct HeapHog {
    HeapHog(MmFixture& machine, std::uint64_t leave) : fixture{machine} {
        REQUIRE(fixture.frames.add_domain(domain));
        while (fixture.frames.free_frames() > leave)
            REQUIRE(fixture.frames.allocate(domain));
    }
    ~HeapHog() {
        while (!fixture.tables.relinquish(domain, {}, 64)) {
        }
        (void)fixture.frames.remove_domain(domain);
    }
    MmFixture& fixture;
    DomainMemory domain{DomId{9}, 1u << 20};
};

struct GnttabFixture : MmuOpsFixture {
    GnttabFixture() {
        for (DomainGrants* domain : {&g0, &g1, &g2})
            REQUIRE(grants.add(domain->table));
    }

    // The callers, one per domain.
    MmuCaller& as(DomainMemory& domain) { return &domain == &dom0 ? as0 : &domain == &dom1 ? as1 : as2; }
    DomainGrants& grants_of(DomainMemory& domain) { return &domain == &dom0 ? g0 : &domain == &dom1 ? g1 : g2; }
    VcpuMmu& vcpu_of(DomainMemory& domain) { return &domain == &dom0 ? vcpu0 : &domain == &dom1 ? vcpus[0] : vcpus[1]; }

    // A domain's address space: a pinned chain installed as its kernel base. Page i (i >= 1) of
    // the address space is mapped by entry i of chain.l1, empty to begin with.
    Chain address_space(DomainMemory& domain) {
        const Chain chain = build_chain(domain);
        REQUIRE(tables.pin(domain, chain.l4, 4));
        REQUIRE(tables.set_kernel_base(domain, vcpu_of(domain), chain.l4));
        return chain;
    }

    // The granter's entry `ref`, written in the order grant_table.h asks for: domid and frame,
    // then flags.
    std::byte* entry_bytes(DomainGrants& granter, std::uint32_t ref) {
        const Mfn frame{granter.frames[ref / hv::gnttab::entries_per_frame]};
        return platform.map(frame) + (ref % hv::gnttab::entries_per_frame) * 8;
    }
    void grant(DomainGrants& granter, std::uint32_t ref, DomId grantee, Mfn frame,
               std::uint16_t flags = abi::GTF_permit_access) {
        std::byte* entry = entry_bytes(granter, ref);
        const auto frame_number = static_cast<std::uint32_t>(frame.value);
        std::memcpy(entry + 2, &grantee.value, 2);
        std::memcpy(entry + 4, &frame_number, 4);
        std::memcpy(entry, &flags, 2);
    }
    std::uint16_t flags(DomainGrants& granter, std::uint32_t ref) {
        std::uint16_t value;
        std::memcpy(&value, entry_bytes(granter, ref), 2);
        return value;
    }
    void set_flags(DomainGrants& granter, std::uint32_t ref, std::uint16_t value) {
        std::memcpy(entry_bytes(granter, ref), &value, 2);
    }

    // grant_table_op with `ops` placed at the start of the guest buffer.
    template <class Op>
    long call(MmuCaller& caller, unsigned command, std::initializer_list<Op> ops, std::uint32_t count) {
        const auto list = place<Op>(0, ops);
        return hv::gnttab::grant_table_op(grants, caller,
                                          args::grant_table_op{command, GuestHandle<void>{list.address}, count});
    }
    template <class Op>
    long call(MmuCaller& caller, unsigned command, std::initializer_list<Op> ops) {
        return call(caller, command, ops, static_cast<std::uint32_t>(ops.size()));
    }
    // Element `index` of the guest buffer's array, as the hypercall left it.
    template <class Op>
    Op result(std::size_t index = 0) {
        Op value;
        std::memcpy(&value, memory.bytes.data() + index * sizeof(Op), sizeof(Op));
        return value;
    }

    static abi::gnttab_map_grant_ref map_op(DomId granter, std::uint32_t ref, std::uint64_t host_addr,
                                            std::uint32_t map_flags = abi::GNTMAP_host_map) {
        abi::gnttab_map_grant_ref op{};
        op.host_addr = host_addr;
        op.flags = map_flags;
        op.ref = ref;
        op.dom = granter.value;
        op.handle = 0xEEEE'EEEE;
        return op;
    }
    // One map_grant_ref: its status; the handle and bus address it gave, on success.
    struct Mapped {
        std::int16_t status;
        GrantHandle handle;
        std::uint64_t dev_bus_addr;
    };
    Mapped map(MmuCaller& caller, DomId granter, std::uint32_t ref, std::uint64_t host_addr,
               std::uint32_t map_flags = abi::GNTMAP_host_map) {
        REQUIRE(call(caller, abi::GNTTABOP_map_grant_ref, {map_op(granter, ref, host_addr, map_flags)}) == 0);
        const auto op = result<abi::gnttab_map_grant_ref>();
        return {op.status, op.handle, op.dev_bus_addr};
    }
    std::int16_t unmap(MmuCaller& caller, GrantHandle handle, std::uint64_t host_addr, std::uint64_t dev_bus_addr = 0) {
        REQUIRE(call(caller, abi::GNTTABOP_unmap_grant_ref,
                     {abi::gnttab_unmap_grant_ref{host_addr, dev_bus_addr, handle, 0x5555}}) == 0);
        return result<abi::gnttab_unmap_grant_ref>().status;
    }
    static abi::gnttab_copy_ptr by_ref(DomId granter, std::uint32_t ref, std::uint16_t offset = 0) {
        abi::gnttab_copy_ptr side{};
        side.u.ref = ref;
        side.domid = granter.value;
        side.offset = offset;
        return side;
    }
    static abi::gnttab_copy_ptr by_frame(Mfn frame, std::uint16_t offset = 0, abi::domid_t domid = abi::DOMID_SELF) {
        abi::gnttab_copy_ptr side{};
        side.u.gmfn = frame.value;
        side.domid = domid;
        side.offset = offset;
        return side;
    }
    static abi::gnttab_copy copy_op(abi::gnttab_copy_ptr source, abi::gnttab_copy_ptr dest, std::uint16_t length,
                                    std::uint16_t copy_flags) {
        abi::gnttab_copy op{};
        op.source = source;
        op.dest = dest;
        op.len = length;
        op.flags = copy_flags;
        op.status = 0x5555;
        return op;
    }
    std::int16_t copy(MmuCaller& caller, const abi::gnttab_copy& op) {
        REQUIRE(call(caller, abi::GNTTABOP_copy, {op}) == 0);
        return result<abi::gnttab_copy>().status;
    }

    GrantState state() const {
        GrantState now{snapshot(), {}, {}, {}};
        for (const DomainGrants* domain : {&g0, &g1, &g2}) {
            for (const ActiveEntry& entry : domain->active)
                now.active.emplace_back(entry.frame, entry.readers, entry.writers, entry.user.value);
            for (const MaptrackEntry& entry : domain->maptrack)
                now.maptrack.emplace_back(entry.pte, entry.ref, entry.flags, entry.granter.value);
            const GrantTable& table = domain->table;
            now.counters.push_back({table.nr_frames, table.pinned, table.maptrack_limit, table.maptrack_in_use,
                                    table.free_head, table.free_tail, table.dying});
        }
        return now;
    }

    // Both checkers: the memory component's (with dom0's vCPU too) and the grant tables'.
    void require_all_invariants(CheckScope scope = CheckScope::guest_visible_state) {
        const std::vector<VcpuMmu> all{vcpus[0], vcpus[1], vcpu0};
        if (const auto violation = hv::mm::check_invariants(frames, all, {}, scratch))
            FAIL("mm invariant broken: " << violation->what << " (frame " << violation->frame.value << ")");
        if (const auto violation = hv::gnttab::check_invariants(grants, scope))
            FAIL("grant invariant broken: " << violation->what << " (domain " << violation->domain.value << ", index "
                                            << violation->index << ")");
    }

    GrantTables grants{tables};
    DomainGrants g0{dom0}, g1{dom1}, g2{dom2};
    VcpuMmu vcpu0{.domain = DomId{0}};
    MmuCaller as0{dom0, vcpu0, memory, preemption, continuation};
    MmuCaller as1{dom1, vcpus[0], memory, preemption, continuation};
    MmuCaller as2{dom2, vcpus[1], memory, preemption, continuation};
};

}  // namespace gnttab_test

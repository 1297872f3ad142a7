// x86-64 PV page tables: validation of guest page-table entries, types on first use, pins and bases.
//
// A PV guest writes its own page tables only through the hypervisor; this component decides what
// each entry may map and keeps the frame table's counts exact (see libhv/src/mm/frame_table.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include <hv/mm.hpp>

namespace hv::mm {

// Bits of an x86-64 page-table entry.
namespace pte {
inline constexpr std::uint64_t present = 1ull << 0;
inline constexpr std::uint64_t writable = 1ull << 1;
inline constexpr std::uint64_t user = 1ull << 2;
inline constexpr std::uint64_t write_through = 1ull << 3;
inline constexpr std::uint64_t cache_disable = 1ull << 4;
inline constexpr std::uint64_t accessed = 1ull << 5;
inline constexpr std::uint64_t dirty = 1ull << 6;
inline constexpr std::uint64_t large = 1ull << 7;  // a superpage at L2/L3, the PAT bit at L1
inline constexpr std::uint64_t global = 1ull << 8;
inline constexpr std::uint64_t guest_kernel = 1ull << 52;  // software bit: a guest-kernel mapping (Xen's choice)
inline constexpr std::uint64_t no_execute = 1ull << 63;
inline constexpr std::uint64_t frame_mask = 0x000F'FFFF'FFFF'F000;

constexpr Mfn frame(std::uint64_t entry) { return Mfn{(entry & frame_mask) >> 12}; }
}  // namespace pte

// L4 slots 256-271 belong to the hypervisor in every guest address space.
inline constexpr unsigned first_hypervisor_l4_slot = 256;
inline constexpr unsigned hypervisor_l4_slot_count = 16;
constexpr bool is_hypervisor_l4_slot(unsigned slot) {
    return slot >= first_hypervisor_l4_slot && slot < first_hypervisor_l4_slot + hypervisor_l4_slot_count;
}

// The GDT frames a guest may install: those below the hypervisor's reserved GDT entries.
inline constexpr unsigned max_gdt_frames = pvkit::abi::FIRST_RESERVED_GDT_PAGE;

// The memory state of one vCPU: its page-table roots, each holding a general and an L4 type
// reference; its GDT frames, each holding a general and a descriptor-page type reference; and its
// LDT (MMUEXT_SET_LDT).
struct VcpuMmu {
    DomId domain;
    std::optional<Mfn> kernel_base{};
    std::optional<Mfn> user_base{};
    std::array<std::uint64_t, max_gdt_frames> gdt_frames{};
    std::uint32_t gdt_entries = 0;
    std::uint64_t ldt_base = 0;
    std::uint32_t ldt_entries = 0;

    unsigned gdt_frame_count() const { return (gdt_entries + entries_per_table - 1) / entries_per_table; }
};

// A validation stopped at its budget: the operation makes no change a guest can see and is to be
// issued again (a hypercall continuation), when the validation goes on where it stopped. The memory
// hypercalls turn it into a continuation; a guest never receives it.
inline constexpr Errc validation_incomplete = Errc::eagain;

class PageTables {
public:
    explicit PageTables(FrameTable& frames) : frames_{frames} {}

    FrameTable& frames() { return frames_; }

    // How many entries one memory hypercall may validate before it stops with
    // validation_incomplete and continues later (a partially validated table remembers how far it
    // got). Direct calls to this class are not limited.
    void set_validation_step(std::uint32_t entries) { validation_step_ = entries; }

    // Limits validation to one step for as long as it lives: the memory hypercalls hold one.
    class ValidationStep {
    public:
        explicit ValidationStep(PageTables& tables) : tables_{tables} {
            tables_.validation_budget_ = tables_.validation_step_;
        }
        ~ValidationStep() { tables_.validation_budget_ = UINT32_MAX; }
        ValidationStep(const ValidationStep&) = delete;
        ValidationStep& operator=(const ValidationStep&) = delete;

    private:
        PageTables& tables_;
    };

    // A type reference: the first one gives the frame its type, validating every entry of a page
    // table (and taking the references they need), possibly over several calls (see
    // validation_incomplete); a partially validated table serves no other use until it is done. The last one queues a page table for
    // devalidation: dropping its entries' references can cascade through a whole hierarchy, so it
    // is done a bounded number of tables at a time by drain(). A queued table keeps its type and a
    // general reference; getting it back with the same type takes it off the queue, and any other
    // use devalidates it first.
    Result<void> get_type(Mfn frame, PageType type, DomainMemory& owner);
    void put_type(Mfn frame);

    // Devalidates up to `budget` of the domain's queued tables; true when none is left. The memory
    // hypercalls drain what they queue before they return (mmu_ops.hpp's finish_devalidation,
    // preemptible through a continuation), so that a guest, and the next call of its multicall,
    // sees the same effects as if the work had been immediate; whoever calls this class directly
    // drains before a guest can look.
    bool drain(DomainMemory& domain, unsigned budget);

    // mmuext_op PIN_Lx_TABLE / UNPIN_TABLE.
    Result<void> pin(DomainMemory& domain, Mfn frame, unsigned level);
    Result<void> unpin(DomainMemory& domain, Mfn frame);

    // set_gdt: `entries` descriptors (at most FIRST_RESERVED_GDT_ENTRY) in `gdt_frames`, each of
    // which becomes a descriptor page; the previous GDT's frames are let go, and the platform is
    // told (MemoryPlatform::gdt_changed). einval when a frame cannot be a descriptor page, and then
    // the old GDT stays.
    Result<void> set_gdt(DomainMemory& domain, VcpuMmu& vcpu, std::span<const std::uint64_t> gdt_frames,
                         std::uint32_t entries);

    // mmuext_op NEW_BASEPTR / NEW_USER_BASEPTR (frame 0 clears the user base).
    Result<void> set_kernel_base(DomainMemory& domain, VcpuMmu& vcpu, Mfn frame);
    Result<void> set_user_base(DomainMemory& domain, VcpuMmu& vcpu, Mfn frame);
    // The vCPU's kernel and user bases are let go (a VCPUOP_initialise that failed half-way).
    void drop_bases(DomainMemory& domain, VcpuMmu& vcpu);

    // Entry `index` of page table `table`, owned by `table_owner`, becomes `value` once validated;
    // a mapped frame must belong to `frame_owner` (the foreign domain of mmu_update, else the table's
    // owner). With `preserve_ad` the entry keeps its accessed and dirty bits. On failure nothing changes.
    Result<void> update_entry(DomainMemory& table_owner, DomainMemory& frame_owner, Mfn table, unsigned index,
                              std::uint64_t value, bool preserve_ad);

    // Teardown, in bounded steps: drops the bases, every pin and every allocation reference of the
    // domain, at most `budget` frames or queued devalidations per call. True once nothing is left to
    // drop; the frames return to the heap as their last references go.
    bool relinquish(DomainMemory& domain, std::span<VcpuMmu> vcpus, unsigned budget);

    // The current value of an entry, as the hypervisor sees it.
    std::uint64_t read_entry(Mfn table, unsigned index);

    // The L1 entry that maps guest address `address` in `vcpu`'s current (kernel) page tables:
    // einval when the address is not a guest's, or no L1 maps it.
    struct EntryLocation {
        Mfn table;
        unsigned index;
    };
    Result<EntryLocation> locate_l1_entry(const VcpuMmu& vcpu, std::uint64_t address);

private:
    Result<void> acquire_entry(unsigned level, std::uint64_t entry, Mfn table, DomainMemory& table_owner,
                                        DomainMemory& frame_owner);
    void release_entry(unsigned level, std::uint64_t entry, Mfn table);
    Result<void> acquire_linear(unsigned level, std::uint64_t entry, Mfn table, DomainMemory& owner);
    Result<void> change_type(Mfn frame, PageInfo& page, PageType type, DomainMemory& owner);
    Result<void> validate_table(Mfn table, unsigned level, DomainMemory& owner);
    Result<void> continue_validation(Mfn frame, DomainMemory& owner);
    void abandon_validation(PageInfo& page);
    void release_entries(Mfn table, unsigned level, unsigned count);
    void devalidate(PageInfo& page);
    static void requeue(PageInfo& page, FrameList& list);
    Result<void> get_page_and_type(Mfn frame, PageType type, DomainMemory& owner);
    Result<void> replace_base(DomainMemory& domain, std::optional<Mfn>& base, std::optional<Mfn> frame);
    void put_page_and_type(Mfn frame);
    std::span<std::uint64_t, entries_per_table> table_entries(Mfn table);

    FrameTable& frames_;
    std::uint32_t validation_step_ = 4096;  // eight full tables
    std::uint32_t validation_budget_ = UINT32_MAX;
};

// Recomputes every reference and type count from the page tables, pins and bases, and checks the
// rules that must always hold. `writable_holds` are the frames the hypervisor itself holds a
// general and a writable type reference on (console rings), once each. Returns the first violation
// found, or an empty optional. For tests and debug builds: it reads every frame, with `scratch`
// (one element per frame) to count in.
struct InvariantViolation {
    const char* what;
    Mfn frame;
};
struct ExpectedCounts {
    std::uint32_t refs;
    std::uint32_t types;
    std::int32_t linear;
};
std::optional<InvariantViolation> check_invariants(FrameTable& frames, std::span<const VcpuMmu> vcpus,
                                                   std::span<const Mfn> writable_holds,
                                                   std::span<ExpectedCounts> scratch);

}  // namespace hv::mm

// Grant tables, version 1: how one domain lets another map or copy its pages.
//
// A domain (the granter) writes grant entries {flags, domid, frame} into its grant table, frames
// the hypervisor shares with it; another domain (the mapper) names an entry by (domain, ref) to
// map the frame into its own page tables or to copy to or from it. Xen's grant_table.h is the
// contract. The invariants this component keeps are written at the top of
// libhv/src/gnttab/grant_table.cpp.
//
// Embedding: give every domain a GrantTable over storage of your own (GrantTableStorage), register
// it with GrantTables::add, and route hypercall 20 to grant_table_op. Tearing a domain down:
//   1. release_mappings(table, budget) until it returns true: the domain's own mappings of others'
//      grants go, their page-table entries cleared and their pins dropped;
//   2. mark_dying(table): its grants can no longer be mapped or copied, and its grant-table frames
//      are no longer touched, so that PageTables::relinquish may return them to the heap;
//   3. PageTables::relinquish. Frames that other domains still map stay alive (their page-table
//      entries hold references) until those domains unmap them or are torn down in turn;
//   4. remove(table) once it returns success (ebusy while others still map its grants);
//      then FrameTable::remove_domain.
// All operations on one FrameTable and its GrantTables are serialized by the caller, as for mm.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include <boost/intrusive/set.hpp>

#include <hv/mmu_ops.hpp>

namespace hv::gnttab {

using mm::DomainMemory;
using mm::FrameTable;
using mm::PageTables;

// Version 1 entries are 8 bytes: 512 to a frame.
inline constexpr std::uint32_t entries_per_frame = mm::page_size / sizeof(pvkit::abi::grant_entry_v1);
// A table starts with one frame, as Xen's do (GNTTAB_NR_RESERVED_ENTRIES fit in it).
inline constexpr std::uint32_t initial_frames = 1;
// grant_table_op's command keeps the sub-op in its low 12 bits (Xen's GNTTABOP_CMD_MASK).
inline constexpr std::uint32_t command_mask = 0xFFF;
// Unmaps are applied in chunks of this many; the mapper's TLB is flushed once per chunk, before
// the granter can see any of the chunk's grants as no longer in use.
inline constexpr unsigned unmap_chunk = 32;

using GrantStatus = pvkit::abi::GrantStatus;
using GrantHandle = pvkit::abi::grant_handle_t;

// What one grant entry is pinned for: Xen's active grant entry. An entry is pinned while a mapping
// of it exists (or a copy is in flight), by one domain at a time, and remembers the frame the grant
// named when it was first pinned: later changes of the guest's entry do not move existing pins.
struct ActiveEntry {
    std::uint64_t frame = 0;                       // machine frame number, valid while pinned
    std::uint16_t readers = 0;                     // read-only pins
    std::uint16_t writers = 0;                     // writable pins
    DomId user{pvkit::abi::DOMID_INVALID};         // the domain holding the pins

    bool pinned() const { return readers != 0 || writers != 0; }
};

// One mapping a domain holds of another's grant; its index is the handle given to the guest.
struct MaptrackEntry {
    std::uint64_t pte = 0;                         // machine address of the L1 entry that maps it
    std::uint32_t ref = 0;                         // the grant; for a free entry, the next free handle
    std::uint16_t flags = 0;                       // GNTMAP_* of the mapping; 0 for a free entry
    DomId granter{pvkit::abi::DOMID_INVALID};
};

// Storage an embedder gives one domain's grant table. `frames` bounds the table's size (the most
// grant-table frames the domain may have); `active` needs entries_per_frame entries per frame;
// `maptrack` bounds the mappings of others' grants the domain may hold at once.
struct GrantTableStorage {
    std::span<std::uint64_t> frames;
    std::span<ActiveEntry> active;
    std::span<MaptrackEntry> maptrack;
};

// One domain's grant table (its grants, as a granter) and maptrack (its mappings, as a mapper).
// The fields are the component's; embedders and tests read them.
struct GrantTable {
    GrantTable(DomainMemory& owner, GrantTableStorage table_storage);
    GrantTable(const GrantTable&) = delete;
    GrantTable& operator=(const GrantTable&) = delete;

    DomId id() const { return domain.id; }
    std::uint32_t nr_entries() const { return nr_frames * entries_per_frame; }

    static constexpr std::uint32_t no_handle = UINT32_MAX;

    boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> registry_link;
    DomainMemory& domain;
    GrantTableStorage storage;
    std::uint32_t max_frames;              // set by the storage given
    std::uint32_t nr_frames = 0;           // grant-table frames shared with the domain so far
    std::uint32_t pinned = 0;              // active entries with a pin
    bool dying = false;                    // see mark_dying
    std::uint32_t maptrack_limit = 0;      // handles below this have been handed out at least once
    std::uint32_t maptrack_in_use = 0;
    std::uint32_t free_head = no_handle;   // free handles below maptrack_limit, oldest first, so
    std::uint32_t free_tail = no_handle;   //   that a handle just unmapped is reused last
    std::uint32_t release_cursor = 0;      // progress of release_mappings
};

struct GrantTableIdOf {
    using type = DomId;
    const DomId& operator()(const GrantTable& table) const { return table.domain.id; }
};
using GrantTableRegistry =
    boost::intrusive::set<GrantTable,
                          boost::intrusive::member_hook<GrantTable, decltype(GrantTable::registry_link),
                                                        &GrantTable::registry_link>,
                          boost::intrusive::key_of_value<GrantTableIdOf>>;

// Every domain's grant table, over the memory component they share.
class GrantTables {
public:
    explicit GrantTables(PageTables& tables) : tables_{tables} {}
    GrantTables(const GrantTables&) = delete;
    GrantTables& operator=(const GrantTables&) = delete;

    PageTables& page_tables() { return tables_; }
    FrameTable& frames() { return tables_.frames(); }

    // Registers a domain's table and gives it its first frame: a frame taken from the heap and
    // shared with the domain (FrameTable::take_from_heap, share_with), not charged to its
    // max_pages. eexist for a second table of one domain; einval when the storage cannot hold one
    // frame's entries; enomem when the heap is empty.
    Result<void> add(GrantTable& table);
    // Unregisters a table: ebusy while the domain holds mappings of others' grants, or others
    // still hold pins on its grants. Its grant-table frames stay the domain's (PageTables::relinquish
    // returns them).
    Result<void> remove(GrantTable& table);
    GrantTable* find(DomId id);
    const GrantTableRegistry& registered() const { return registry_; }

    // The domain is going away: its grants can no longer be mapped or copied (bad_domain), the
    // table no longer grows, and its grant-table frames are no longer read or written, so that
    // the memory component may free them. Pins others hold stay until they unmap.
    void mark_dying(GrantTable& table);
    // Drops up to `budget` of the domain's mappings of others' grants: each page-table entry that
    // still maps its grant is cleared, the pins go, and the granters see their entries no longer in
    // use. True once none is left. For a domain that no longer runs (paused or dying).
    bool release_mappings(GrantTable& table, unsigned budget);

    // Grows a table to `nr_frames` frames (setup_table): einval beyond its maximum or for a dying
    // table; enomem if the heap cannot give them all, and then the table keeps its size.
    Result<void> grow(GrantTable& table, std::uint32_t nr_frames);

private:
    PageTables& tables_;
    GrantTableRegistry registry_;
};

// The grant_table_op hypercall: `count` structures of the sub-op's type at `uop`, each carrying
// its own status, with Xen's rules: 0 when every structure was processed (their statuses say how
// each went), -EFAULT when one cannot be read or written back, -EINVAL for a bad count or a
// command with continuation bits, -ENOSYS for sub-ops not provided and for a caller with no
// grant table. Long batches stop when `caller.preemption` says so and ask to be issued again for
// the rest through `caller.continuation`.
long grant_table_op(GrantTables& tables, mm::MmuCaller& caller, const hypercall_args::grant_table_op& args);

// The grant invariants, recomputed from scratch. `hypervisor_state` checks what the hypervisor
// alone keeps (pins against maptrack entries, handles, frames), which no guest action can break;
// `guest_visible_state` also checks what a guest could disturb by breaking the rules of the
// grant ABI: GTF_reading/GTF_writing in its own grant entries set exactly while pinned, and every
// mapping's page-table entry still mapping its frame (a guest that clears or overwrites it
// through mmu_update instead of unmap_grant_ref leaves a stale handle, as on Xen). For tests and
// debug builds; it reads every registered table.
enum class CheckScope { hypervisor_state, guest_visible_state };
struct GrantInvariantViolation {
    const char* what;
    DomId domain;
    std::uint32_t index;  // a grant ref, a handle or a frame slot, as `what` says
};
std::optional<GrantInvariantViolation> check_invariants(GrantTables& tables,
                                                        CheckScope scope = CheckScope::guest_visible_state);

}  // namespace hv::gnttab

// Grant tables: who may map or copy which frame of whom, and what is mapped where.
//
// Three records
// -------------
// A domain's *grant entries* (version 1: flags, domid, frame) live in its grant-table frames:
// hypervisor frames shared with it, writable, so the guest changes them at any moment. The
// hypervisor reads an entry only to decide whether a new pin is allowed, and writes only its
// GTF_reading and GTF_writing bits, always by atomic operations on the (flags, domid) word.
//
// An *active entry* per grant entry (ActiveEntry, in hypervisor storage) counts the pins on it,
// read-only and writable, all held by one domain (`user`) and all naming one frame, fixed at the
// first pin. A pin exists for each mapping of the grant, and for each copy in flight.
//
// A *maptrack entry* per mapping (MaptrackEntry, in the mapper's table; its index is the handle)
// records the granter, the ref, the GNTMAP flags and the L1 entry the mapping was written to.
//
// What holds between operations (check_invariants in invariants.cpp recomputes it)
// -----------------------------------------------------------------------------
// 1. An active entry's readers and writers equal the maptrack entries, in its user's table, that
//    name it read-only and writable. An entry without pins has no user and no frame; `pinned`
//    counts a table's entries with pins; a table is unregistered only when it has none and holds
//    no mappings itself, so every maptrack entry finds its granter's active entry.
// 2. A handle below maptrack_limit is either in use (flags != 0) or on the free list, once.
// 3. GTF_reading is set in a grant entry exactly while it has pins, GTF_writing exactly while it
//    has writable pins: as far as the hypervisor writes them. A granter that writes these bits
//    itself breaks only its own view, so this is a guest-visible invariant.
// 4. Every maptrack entry's L1 entry maps its frame, writable iff the mapping is. Also guest
//    visible: a mapper may overwrite the entry through mmu_update instead of unmapping (Xen
//    permits it too); its handle then stays, stale, until unmapped or released at teardown.
//
// Why no reference can dangle
// ---------------------------
// Grants hold no frame references of their own. A grant mapping is an ordinary L1 entry written
// through PageTables::update_entry, which takes the frame's general reference (and writable type
// reference) and drops them when the entry changes, however it changes: unmap, mmu_update,
// teardown of the page table. So a granter that gives a mapped frame back (decrease_reservation),
// or dies, drops only its allocation reference; the frame lives, unallocated, until the last
// mapping goes. A copy holds its own references, and a pin, for the length of the copy. Since the
// mapping is the only holder, whatever happens to the pins can never free a frame early or keep
// one forever: the memory component's counts stay exact on their own.
// A dying granter's grant-table frames are no longer touched (mark_dying; shared_entry also checks
// that the table still owns each frame), so the memory component may free them at any time.
//
// Order against the granter
// -------------------------
// A granter may reuse a frame as soon as it sees GTF_reading and GTF_writing clear. So an unmap
// clears the mapping, then the mapper's TLB is flushed, and only then does the pin go (a chunk of
// unmaps at a time), as in Xen.
//
// Callers serialize every operation on one FrameTable and its GrantTables (one lock).
#include <algorithm>

#include "grant_access.hpp"

namespace hv::gnttab {
using namespace detail;

namespace {
constexpr std::uint32_t frame_capacity(const GrantTableStorage& storage) {
    return static_cast<std::uint32_t>(std::min<std::size_t>(
        {storage.frames.size(), storage.active.size() / entries_per_frame, UINT32_MAX / entries_per_frame}));
}
}  // namespace

GrantTable::GrantTable(DomainMemory& owner, GrantTableStorage table_storage)
    : domain{owner}, storage{table_storage}, max_frames{frame_capacity(table_storage)} {}

GrantTable* GrantTables::find(DomId id) {
    const auto found = registry_.find(id);
    return found == registry_.end() ? nullptr : &*found;
}

Result<void> GrantTables::add(GrantTable& table) {
    if (table.max_frames < initial_frames)
        return Errc::einval;
    if (find(table.id()) != nullptr)
        return Errc::eexist;
    if (auto grown = grow(table, initial_frames); !grown)
        return grown;
    registry_.insert_unique(table);
    return {};
}

Result<void> GrantTables::remove(GrantTable& table) {
    if (find(table.id()) != &table)
        return Errc::einval;
    if (table.maptrack_in_use != 0 || table.pinned != 0)
        return Errc::ebusy;
    registry_.erase(registry_.iterator_to(table));
    return {};
}

Result<void> GrantTables::grow(GrantTable& table, std::uint32_t nr_frames) {
    if (nr_frames > table.max_frames || table.dying)
        return Errc::einval;
    FrameTable& frames = this->frames();
    const std::uint32_t first = table.nr_frames;
    // Take every new frame before sharing any, so that a failure can put them all back. They are
    // hypervisor memory (Xen's xenheap), not charged to the domain's max_pages.
    for (std::uint32_t i = first; i < nr_frames; ++i) {
        const auto frame = frames.take_from_heap();
        if (!frame) {
            while (i-- > first)
                frames.add_to_heap(Mfn{table.storage.frames[i]}, 1);
            return Errc::enomem;
        }
        table.storage.frames[i] = frame->value;
    }
    for (std::uint32_t i = first; i < nr_frames; ++i) {
        // Shared: the domain may map it writable; it never becomes a page table, the domain cannot
        // give it back, and it returns to the heap when the domain is torn down.
        const Mfn frame{table.storage.frames[i]};
        frames.share_with(table.domain, frame);
        frames.set_machine_to_phys(frame, ~std::uint64_t{0});  // no guest frame number (Xen's INVALID_M2P_ENTRY)
    }
    table.nr_frames = std::max(first, nr_frames);
    return {};
}

void GrantTables::mark_dying(GrantTable& table) { table.dying = true; }

bool GrantTables::release_mappings(GrantTable& mapper, unsigned budget) {
    FrameTable& frames = this->frames();
    const std::uint32_t first = mapper.release_cursor;
    const std::uint32_t end = first + std::min<std::uint32_t>(budget, mapper.maptrack_limit - first);
    // Clear every page-table entry of this step first...
    for (std::uint32_t handle = first; handle < end; ++handle) {
        const MaptrackEntry& map = mapper.storage.maptrack[handle];
        const GrantTable* granter = map.flags != 0 ? find(map.granter) : nullptr;
        if (granter == nullptr)
            continue;
        const PteLocation where{Mfn{map.pte >> 12}, static_cast<unsigned>((map.pte & (mm::page_size - 1)) / 8)};
        const Mfn frame{granter->storage.active[map.ref].frame};
        if (is_l1_of(frames, where.table, mapper.id()) &&
            pte_maps(tables_.read_entry(where.table, where.index), frame, map.flags & abi::GNTMAP_readonly))
            (void)tables_.update_entry(mapper.domain, mapper.domain, where.table, where.index, 0, false);
    }
    // ...so that one flush covers them all before any granter sees its grant unused.
    frames.flush_owed();
    for (std::uint32_t handle = first; handle < end; ++handle) {
        const MaptrackEntry map = mapper.storage.maptrack[handle];
        if (map.flags == 0)
            continue;
        if (GrantTable* granter = find(map.granter))
            unpin_grant(frames, *granter, map.ref, map.flags & abi::GNTMAP_readonly);
        put_handle(mapper, handle);
    }
    mapper.release_cursor = end;
    if (end < mapper.maptrack_limit)
        return false;
    mapper.release_cursor = 0;
    if (mapper.maptrack_in_use != 0)
        return false;  // mapped again behind the cursor: the domain was still running
    // Every handle is free: start the maptrack afresh.
    mapper.maptrack_limit = 0;
    mapper.free_head = mapper.free_tail = GrantTable::no_handle;
    return true;
}

}  // namespace hv::gnttab

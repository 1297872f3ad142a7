// The grant invariant checker: what grant_table.cpp promises, recomputed from scratch.
#include <atomic>

#include "grant_access.hpp"

namespace hv::gnttab {
using namespace detail;

namespace {

class Checker {
public:
    Checker(GrantTables& tables, CheckScope scope) : tables_{tables}, frames_{tables.frames()}, scope_{scope} {}

    std::optional<GrantInvariantViolation> run() {
        for (const GrantTable& table : tables_.registered()) {
            check_frames(table);
            check_handles(table);
            check_mappings(table);
            check_pins(table);
        }
        return violation_;
    }

private:
    bool expect(bool holds, const char* what, const GrantTable& table, std::uint32_t index) {
        if (!holds && !violation_)
            violation_ = GrantInvariantViolation{what, table.id(), index};
        return holds;
    }
    bool guest_state() const { return scope_ == CheckScope::guest_visible_state; }

    void check_frames(const GrantTable& table) {
        expect(table.nr_frames >= initial_frames && table.nr_frames <= table.max_frames,
               "a table's size is outside its bounds", table, table.nr_frames);
        for (std::uint32_t i = 0; i < table.nr_frames && !table.dying; ++i) {
            const Mfn frame{table.storage.frames[i]};
            if (!expect(frames_.is_valid(frame), "a grant-table frame is beyond the frame table", table, i))
                continue;
            const mm::PageInfo& page = frames_.info(frame);
            expect(page.owner == table.id() && page.has(mm::PageInfo::shared) && page.has(mm::PageInfo::allocated),
                   "a live table's frame is not shared with its domain", table, i);
        }
    }

    // Every handle below the limit is in use or free, once; the free list ends at the tail.
    void check_handles(const GrantTable& table) {
        const std::uint32_t limit = table.maptrack_limit;
        if (!expect(limit <= table.storage.maptrack.size(), "the maptrack limit is beyond its storage", table, limit))
            return;
        std::uint32_t in_use = 0;
        for (std::uint32_t handle = 0; handle < limit; ++handle)
            in_use += table.storage.maptrack[handle].flags != 0;
        expect(in_use == table.maptrack_in_use, "maptrack_in_use differs from the handles in use", table, in_use);
        std::uint32_t free = 0, last = GrantTable::no_handle;
        for (std::uint32_t handle = table.free_head; handle != GrantTable::no_handle && !violation_;
             handle = table.storage.maptrack[handle].ref) {
            if (!expect(handle < limit && free < limit, "the free list leaves the maptrack or loops", table, handle))
                return;
            expect(table.storage.maptrack[handle].flags == 0, "a free handle is in use", table, handle);
            last = handle;
            ++free;
        }
        expect(last == table.free_tail, "the free list does not end at its tail", table, last);
        expect(free + in_use == limit, "a handle is neither in use nor free", table, free);
    }

    // Every mapping names a pin of its granter's, held by this domain; and (guest-visible) its L1
    // entry still maps the pinned frame with the mapping's access.
    void check_mappings(const GrantTable& mapper) {
        for (std::uint32_t handle = 0; handle < mapper.maptrack_limit && !violation_; ++handle) {
            const MaptrackEntry& map = mapper.storage.maptrack[handle];
            if (map.flags == 0)
                continue;
            expect((map.flags & abi::GNTMAP_host_map) && !(map.flags & ~kept_map_flags),
                   "a mapping has flags of no host mapping", mapper, handle);
            GrantTable* granter = tables_.find(map.granter);
            if (!expect(granter != nullptr && map.ref < granter->nr_entries(),
                        "a mapping names a grant that does not exist", mapper, handle))
                continue;
            const ActiveEntry& active = granter->storage.active[map.ref];
            const bool readonly = map.flags & abi::GNTMAP_readonly;
            expect(active.user == mapper.id() && (readonly ? active.readers : active.writers) != 0,
                   "a mapping's grant is not pinned by its mapper", mapper, handle);
            if (!guest_state())
                continue;
            const Mfn table{map.pte >> 12};
            const unsigned index = static_cast<unsigned>((map.pte & (mm::page_size - 1)) / 8);
            expect(is_l1_of(frames_, table, mapper.id()) &&
                       pte_maps(tables_.page_tables().read_entry(table, index), Mfn{active.frame}, readonly),
                   "a mapping's page-table entry no longer maps its grant", mapper, handle);
        }
    }

    // Every pin is a mapping: the counts equal the maptrack entries naming the grant, in the table
    // of the one domain holding them; and (guest-visible) the entry's flags say so.
    void check_pins(const GrantTable& granter) {
        std::uint32_t pinned = 0;
        for (std::uint32_t ref = 0; ref < granter.storage.active.size() && !violation_; ++ref) {
            const ActiveEntry& active = granter.storage.active[ref];
            if (!active.pinned()) {
                expect(active.frame == 0 && active.user == DomId{abi::DOMID_INVALID},
                       "an unpinned active entry keeps a frame or a user", granter, ref);
                if (ref < granter.nr_entries())
                    check_entry_flags(granter, ref, active);
                continue;
            }
            ++pinned;
            if (!expect(ref < granter.nr_entries(), "a pin beyond the table's entries", granter, ref))
                continue;
            count_mappings(granter, ref, active);
            check_entry_flags(granter, ref, active);
        }
        expect(pinned == granter.pinned, "`pinned` differs from the entries pinned", granter, pinned);
    }

    void count_mappings(const GrantTable& granter, std::uint32_t ref, const ActiveEntry& active) {
        GrantTable* user = tables_.find(active.user);
        if (!expect(user != nullptr, "a grant is pinned by a domain with no table", granter, ref))
            return;
        std::uint32_t readers = 0, writers = 0;
        for (std::uint32_t handle = 0; handle < user->maptrack_limit; ++handle) {
            const MaptrackEntry& map = user->storage.maptrack[handle];
            if (map.flags != 0 && map.granter == granter.id() && map.ref == ref)
                ++(map.flags & abi::GNTMAP_readonly ? readers : writers);
        }
        expect(readers == active.readers && writers == active.writers,
               "a grant's pin counts differ from the mappings of it", granter, ref);
    }

    void check_entry_flags(const GrantTable& granter, std::uint32_t ref, const ActiveEntry& active) {
        if (!guest_state())
            return;
        std::uint32_t* entry = shared_entry(frames_, granter, ref);
        if (entry == nullptr)
            return;
        const std::uint16_t flags = entry_flags(std::atomic_ref<std::uint32_t>{entry[0]}.load());
        expect(static_cast<bool>(flags & abi::GTF_reading) == active.pinned(),
               "GTF_reading disagrees with the grant's pins", granter, ref);
        expect(static_cast<bool>(flags & abi::GTF_writing) == (active.writers != 0),
               "GTF_writing disagrees with the grant's writable pins", granter, ref);
    }

    GrantTables& tables_;
    FrameTable& frames_;
    CheckScope scope_;
    std::optional<GrantInvariantViolation> violation_;
};

}  // namespace

std::optional<GrantInvariantViolation> check_invariants(GrantTables& tables, CheckScope scope) {
    return Checker{tables, scope}.run();
}

}  // namespace hv::gnttab

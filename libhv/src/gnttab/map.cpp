// GNTTABOP_map_grant_ref, unmap_grant_ref and unmap_and_replace for PV guests: host mappings are
// L1 entries in the mapper's own page tables.
#include "grant_access.hpp"

namespace hv::gnttab::detail {
namespace {

constexpr PteLocation location_of(const MaptrackEntry& map) {
    return {Mfn{map.pte >> 12}, static_cast<unsigned>((map.pte & (mm::page_size - 1)) / 8)};
}

GrantStatus map_host(Call& call, abi::gnttab_map_grant_ref& op) {
    PageTables& tables = call.tables.page_tables();
    const bool readonly = op.flags & abi::GNTMAP_readonly;
    // Decode: everything that can be refused without changing anything, in Xen's order.
    if (!(op.flags & (abi::GNTMAP_device_map | abi::GNTMAP_host_map)))
        return GrantStatus::bad_gntref;
    // A device mapping needs an IOMMU, or a domain trusted to program DMA with machine addresses;
    // neither is offered. Xen refuses it the same way to domains that cannot have one.
    if (op.flags & abi::GNTMAP_device_map)
        return GrantStatus::general_error;
    GrantTable* granter = call.tables.find(DomId{op.dom});
    if (granter == nullptr || granter->dying)
        return GrantStatus::bad_domain;
    if (!has_free_handle(call.own))
        return GrantStatus::no_device_space;  // Xen's status for an exhausted maptrack
    if (const GrantStatus pinnable = check_pinnable(*granter, op.ref, call.own.id(), readonly);
        pinnable != GrantStatus::okay)
        return pinnable;
    const auto where = locate_host_entry(tables, call.caller, op.host_addr, op.flags & abi::GNTMAP_contains_pte);
    if (!where)
        return GrantStatus::general_error;

    // Invoke: the pin can still be refused by the guest's entry, and the page-table entry by the
    // frame's type (a page table is never mapped writable); each undoes what came before it.
    Mfn frame{0};
    if (const GrantStatus pinned =
            pin_grant(tables.frames(), *granter, op.ref, call.own.id(), readonly, Purpose::mapping, frame);
        pinned != GrantStatus::okay)
        return pinned;
    if (!tables.update_entry(call.caller.domain, granter->domain, where->table, where->index,
                             grant_pte(frame, op.flags), false)) {
        unpin_grant(tables.frames(), *granter, op.ref, readonly);
        return GrantStatus::general_error;
    }
    const GrantHandle handle = take_handle(call.own);
    call.own.storage.maptrack[handle] = MaptrackEntry{
        where->address(), op.ref, static_cast<std::uint16_t>(op.flags & kept_map_flags), granter->id()};
    op.handle = handle;
    op.dev_bus_addr = frame.value << 12;
    return GrantStatus::okay;
}

}  // namespace

void map_grant_ref(Call& call, abi::gnttab_map_grant_ref& op) { op.status = status_code(map_host(call, op)); }

GrantStatus unmap_host_mapping(Call& call, GrantHandle handle, std::uint64_t host_addr, std::uint64_t dev_bus_addr,
                               std::uint64_t new_addr, std::optional<UnmapDone>& done) {
    PageTables& tables = call.tables.page_tables();
    GrantTable& own = call.own;
    done.reset();
    if (handle >= own.maptrack_limit || own.storage.maptrack[handle].flags == 0)
        return GrantStatus::bad_handle;
    MaptrackEntry& map = own.storage.maptrack[handle];
    GrantTable* granter = call.tables.find(map.granter);
    if (granter == nullptr || map.ref >= granter->nr_entries())
        return GrantStatus::bad_handle;  // cannot happen: a granter with pins stays registered
    const Mfn frame{granter->storage.active[map.ref].frame};
    const bool readonly = map.flags & abi::GNTMAP_readonly;
    if (dev_bus_addr != 0 && dev_bus_addr != frame.value << 12)
        return GrantStatus::general_error;
    if (host_addr == 0)
        return GrantStatus::okay;  // nothing asked of the host mapping, which stays (grant_table.h)

    // The entry at host_addr must be this handle's, and still map its frame as it was mapped.
    const bool contains_pte = map.flags & abi::GNTMAP_contains_pte;
    const auto where = locate_host_entry(tables, call.caller, host_addr, contains_pte);
    if (!where || *where != location_of(map) || !pte_maps(tables.read_entry(where->table, where->index), frame, readonly))
        return GrantStatus::general_error;
    std::uint64_t replacement = 0;
    std::optional<PteLocation> moved_from;
    if (new_addr != 0) {
        // unmap_and_replace: the entry that maps new_addr moves over the grant mapping and new_addr
        // is left unmapped. Only for mappings made by virtual address, as Xen.
        const auto from = contains_pte ? Result<PteLocation>{Errc::einval}
                                       : locate_host_entry(tables, call.caller, new_addr, false);
        if (!from || *from == *where)
            return GrantStatus::general_error;
        replacement = tables.read_entry(from->table, from->index);
        moved_from = *from;
    }
    // The replacement is validated as any entry of the caller's (a frame of its own): if refused,
    // nothing has changed.
    if (!tables.update_entry(call.caller.domain, call.caller.domain, where->table, where->index, replacement, false))
        return GrantStatus::general_error;
    if (moved_from)
        (void)tables.update_entry(call.caller.domain, call.caller.domain, moved_from->table, moved_from->index, 0,
                                  false);
    map.flags = 0;  // no longer usable; the handle is freed by complete_unmap
    done = UnmapDone{granter, map.ref, readonly, handle};
    return GrantStatus::okay;
}

void complete_unmap(Call& call, const UnmapDone& done) {
    unpin_grant(call.tables.frames(), *done.granter, done.ref, done.readonly);
    put_handle(call.own, done.handle);
}

}  // namespace hv::gnttab::detail

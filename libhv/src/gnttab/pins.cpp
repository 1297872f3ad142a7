// Pins on grant entries, maptrack handles, and the page-table entries of host mappings.
#include <algorithm>
#include <atomic>

#include "grant_access.hpp"

namespace hv::gnttab::detail {
namespace {

using mm::PageInfo;

// Retries of the compare-exchange on an entry the guest keeps changing before we give up on it,
// so that a guest cannot hold the hypervisor in the loop (Xen allows as many).
constexpr int max_entry_retries = 5;

constexpr std::uint32_t max_pins = UINT16_MAX;

// Sets GTF_reading (and GTF_writing) in a grant entry, checking in the same atomic step that the
// entry still grants what the pin needs. `already_pinned`: an upgrade to writable of an entry in
// use, whose type and domid were checked when it was first pinned.
GrantStatus mark_in_use(std::uint32_t& header_word, DomId user, bool readonly, bool already_pinned, Purpose purpose) {
    std::atomic_ref<std::uint32_t> header{header_word};
    const std::uint16_t type_mask =
        abi::GTF_type_mask | (purpose == Purpose::mapping ? abi::GTF_sub_page : 0);
    const std::uint32_t in_use = abi::GTF_reading | (readonly ? 0 : abi::GTF_writing);
    std::uint32_t seen = header.load(std::memory_order_acquire);
    for (int attempt = 1;; ++attempt) {
        if (!already_pinned &&
            ((entry_flags(seen) & type_mask) != abi::GTF_permit_access || entry_domid(seen) != user.value))
            return GrantStatus::general_error;
        if (!readonly && (entry_flags(seen) & abi::GTF_readonly))
            return GrantStatus::general_error;
        // Acquire: the frame the granter wrote before publishing the flags is read after this.
        if (header.compare_exchange_strong(seen, seen | in_use, std::memory_order_acq_rel))
            return GrantStatus::okay;
        if (attempt == max_entry_retries)
            return GrantStatus::general_error;
    }
}

void clear_in_use(std::uint32_t& header_word, std::uint32_t bits) {
    std::atomic_ref<std::uint32_t>{header_word}.fetch_and(~bits, std::memory_order_release);
}

bool is_granters_frame(const FrameTable& frames, Mfn frame, DomId granter) {
    if (!frames.is_valid(frame))
        return false;
    const PageInfo& page = frames.info(frame);
    return page.owner == granter && page.ref_count != 0;
}

std::uint32_t maptrack_capacity(const GrantTable& table) {
    return static_cast<std::uint32_t>(std::min<std::size_t>(table.storage.maptrack.size(), GrantTable::no_handle));
}

}  // namespace

std::uint32_t* shared_entry(FrameTable& frames, const GrantTable& granter, std::uint32_t ref) {
    if (granter.dying)
        return nullptr;
    const Mfn frame{granter.storage.frames[ref / entries_per_frame]};
    const PageInfo& page = frames.info(frame);
    if (page.owner != granter.id() || !page.has(PageInfo::shared) || !page.has(PageInfo::allocated))
        return nullptr;
    return reinterpret_cast<std::uint32_t*>(frames.platform().map(frame) +
                                            (ref % entries_per_frame) * sizeof(abi::grant_entry_v1));
}

GrantStatus check_pinnable(const GrantTable& granter, std::uint32_t ref, DomId user, bool readonly) {
    if (ref >= granter.nr_entries())
        return GrantStatus::bad_gntref;
    const ActiveEntry& active = granter.storage.active[ref];
    if (active.pinned() && (active.user != user || (readonly ? active.readers : active.writers) == max_pins))
        return GrantStatus::general_error;
    return GrantStatus::okay;
}

GrantStatus pin_grant(FrameTable& frames, GrantTable& granter, std::uint32_t ref, DomId user, bool readonly,
                      Purpose purpose, Mfn& frame) {
    if (const GrantStatus pinnable = check_pinnable(granter, ref, user, readonly); pinnable != GrantStatus::okay)
        return pinnable;
    std::uint32_t* entry = shared_entry(frames, granter, ref);
    if (entry == nullptr)
        return GrantStatus::bad_domain;
    ActiveEntry& active = granter.storage.active[ref];
    const bool first = !active.pinned();
    if (first || (!readonly && active.writers == 0)) {
        if (const GrantStatus marked = mark_in_use(entry[0], user, readonly, !first, purpose);
            marked != GrantStatus::okay)
            return marked;
    }
    if (first) {
        // Read once: the granter may change it, but this pin keeps the frame it saw.
        const Mfn granted{std::atomic_ref<std::uint32_t>{entry[1]}.load(std::memory_order_relaxed)};
        if (!is_granters_frame(frames, granted, granter.id())) {
            clear_in_use(entry[0], abi::GTF_reading | (readonly ? 0 : abi::GTF_writing));
            return GrantStatus::bad_page;
        }
        active.frame = granted.value;
        active.user = user;
        ++granter.pinned;
    }
    ++(readonly ? active.readers : active.writers);
    frame = Mfn{active.frame};
    return GrantStatus::okay;
}

void unpin_grant(FrameTable& frames, GrantTable& granter, std::uint32_t ref, bool readonly) {
    ActiveEntry& active = granter.storage.active[ref];
    std::uint32_t clear = 0;
    if (readonly)
        --active.readers;
    else if (--active.writers == 0)
        clear |= abi::GTF_writing;
    if (!active.pinned()) {
        clear |= abi::GTF_reading;
        active = ActiveEntry{};
        --granter.pinned;
    }
    if (clear != 0) {
        if (std::uint32_t* entry = shared_entry(frames, granter, ref))
            clear_in_use(entry[0], clear);
    }
}

bool has_free_handle(const GrantTable& table) {
    return table.free_head != GrantTable::no_handle || table.maptrack_limit < maptrack_capacity(table);
}

GrantHandle take_handle(GrantTable& table) {
    // The most recently freed handle is reused only when nothing else is left, so that a guest's
    // stale handle rarely names someone else's mapping (Xen keeps one entry back the same way).
    GrantHandle handle;
    const bool only_recent = table.free_head == table.free_tail;
    if (table.free_head != GrantTable::no_handle && (!only_recent || table.maptrack_limit == maptrack_capacity(table))) {
        handle = table.free_head;
        table.free_head = table.storage.maptrack[handle].ref;
        if (table.free_head == GrantTable::no_handle)
            table.free_tail = GrantTable::no_handle;
    } else {
        handle = table.maptrack_limit++;
    }
    ++table.maptrack_in_use;
    return handle;
}

void put_handle(GrantTable& table, GrantHandle handle) {
    table.storage.maptrack[handle] = MaptrackEntry{};
    table.storage.maptrack[handle].ref = GrantTable::no_handle;
    if (table.free_tail == GrantTable::no_handle)
        table.free_head = handle;
    else
        table.storage.maptrack[table.free_tail].ref = handle;
    table.free_tail = handle;
    --table.maptrack_in_use;
}

bool is_l1_of(const FrameTable& frames, Mfn table, DomId owner) {
    if (!frames.is_valid(table))
        return false;
    const PageInfo& page = frames.info(table);
    return page.owner == owner && page.type == mm::PageType::l1 && page.type_count != 0;
}

Result<PteLocation> locate_host_entry(PageTables& tables, mm::MmuCaller& caller, std::uint64_t host_addr,
                                      bool contains_pte) {
    PteLocation where{Mfn{host_addr >> 12}, static_cast<unsigned>((host_addr & (mm::page_size - 1)) / 8)};
    if (contains_pte) {
        if (host_addr % sizeof(std::uint64_t) != 0)
            return Errc::einval;  // it would overlap two entries
    } else {
        const auto found = tables.locate_l1_entry(caller.vcpu, host_addr);
        if (!found)
            return found.error();
        where = {found->table, found->index};
    }
    if (!is_l1_of(tables.frames(), where.table, caller.domain.id))
        return Errc::einval;
    return where;
}

std::uint64_t grant_pte(Mfn frame, std::uint32_t map_flags) {
    namespace pte = mm::pte;
    std::uint64_t entry = (frame.value << 12) | pte::present | pte::accessed | pte::dirty | pte::no_execute;
    if (!(map_flags & abi::GNTMAP_readonly))
        entry |= pte::writable;
    if (map_flags & abi::GNTMAP_application_map)
        entry |= pte::user;
    // XENFEAT_gnttab_map_avail_bits: the flags from GNTMAP_guest_avail0 up go into the PTE's three
    // available bits, and no further: the rest of GNTMAP_guest_avail_mask would reach the frame.
    constexpr unsigned available_bits_shift = 9;
    constexpr std::uint32_t available_bits = 7;
    entry |= std::uint64_t{(map_flags >> abi::GNTMAP_guest_avail0_bit) & available_bits} << available_bits_shift;
    return entry;
}

bool pte_maps(std::uint64_t entry, Mfn frame, bool readonly) {
    return (entry & mm::pte::present) && mm::pte::frame(entry) == frame &&
           static_cast<bool>(entry & mm::pte::writable) == !readonly;
}

}  // namespace hv::gnttab::detail

// The frame table: ownership, references and the heap.
//
// How frames are counted
// ----------------------
// Every machine frame has a PageInfo. Its *owner* is the domain the frame belongs to, or
// DOMID_INVALID for a frame in the heap. A frame reaches a domain in one of two ways: allocated
// from the heap (its RAM), or shared with it by the hypervisor (shared_info, grant-table frames),
// which sets the `shared` flag. Both kinds sit in the owner's frame list and count in tot_pages.
//
// The *general reference count* (ref_count) counts every reason the frame must not be freed:
//   - the allocation reference, held while the `allocated` flag is set (RAM and shared frames);
//   - one per present entry, in any validated page table, that maps or links to the frame;
//   - one per pin, and one per vCPU page-table base (kernel or user) that names the frame.
// When it reaches zero the frame leaves its owner and returns to the heap. So a frame that a
// domain gives back (decrease_reservation) while it is still mapped stays allocated to nobody but
// alive until the last mapping goes: nothing ever points at a freed frame.
//
// The *type* says what the frame is used as: a page table of level 1-4, a descriptor page, a
// writable page, or nothing in particular. The *type count* counts the references that need the
// frame to keep that type: a writable L1 mapping needs `writable`; an L2 entry needs its target to
// stay an L1; a pin or a page-table base needs its table to stay a table. A frame changes type
// only while its type count is zero, so at every moment:
//   - no frame is both a page table (or descriptor page) and mapped writable anywhere;
//   - a page table's entries were validated when it became one, and every later write to them is
//     validated before it is made (mmu_update, update_va_mapping, the writable-page-table
//     emulation), so every present entry of every page table holds the references it needs;
//   - when a page table's type count drops to zero it is devalidated: the references its present
//     entries hold are put, and its type becomes `none`.
// Every type reference is accompanied by a general reference, so ref_count >= type_count.
//
// Linear (self) mappings: an entry of a level-k table may point at a level-k table only read-only,
// and then holds a type reference on it. To keep such references from forming cycles that never
// drop to zero (Xen's XSA-240), a table either holds linear entries or is the target of them,
// never both: linear_count > 0 counts the linear entries a table holds, < 0 those pointing at it.
// A table that maps itself read-only holds no reference on itself: it would never drop.
//
// check_invariants() (invariants.cpp) recomputes every count from the page tables, the pins and
// the bases, and compares.
//
// The caller serializes all operations on one frame table (one physical CPU for now).
#include <cstring>

#include <hv/mm.hpp>

namespace hv::mm {

FrameTable::FrameTable(MemoryPlatform& platform, std::span<PageInfo> frames, std::span<std::uint64_t> machine_to_phys)
    : platform_{platform}, frames_{frames}, m2p_{machine_to_phys} {}

Result<void> FrameTable::add_domain(DomainMemory& domain) {
    if (!domains_.insert_unique(domain).second)
        return Errc::eexist;
    return {};
}

Result<void> FrameTable::remove_domain(DomainMemory& domain) {
    if (domain.tot_pages != 0)
        return Errc::ebusy;
    flush_owed();
    domains_.erase(domains_.iterator_to(domain));
    return {};
}

DomainMemory* FrameTable::domain(DomId id) {
    const auto found = domains_.find(id);
    return found == domains_.end() ? nullptr : &*found;
}

void FrameTable::add_to_heap(Mfn first, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
        PageInfo& page = info(Mfn{first.value + i});
        page = PageInfo{};
        free_list_.push_back(page);
        ++free_count_;
    }
}

Result<Mfn> FrameTable::take_from_heap() {
    if (free_list_.empty())
        return Errc::enomem;
    PageInfo& page = free_list_.front();
    free_list_.pop_front();
    --free_count_;
    const Mfn frame = mfn_of(page);
    std::memset(platform_.map(frame), 0, page_size);
    return frame;
}

Result<Mfn> FrameTable::allocate(DomainMemory& domain) {
    if (domain.tot_pages >= domain.max_pages)
        return Errc::enomem;
    const auto frame = take_from_heap();
    if (!frame)
        return frame;
    PageInfo& page = info(*frame);
    page.owner = domain.id;
    page.flags = PageInfo::allocated;
    page.ref_count = 1;
    domain.frames.push_back(page);
    ++domain.tot_pages;
    return *frame;
}

void FrameTable::share_with(DomainMemory& domain, Mfn frame) {
    PageInfo& page = info(frame);
    page.owner = domain.id;
    page.flags = PageInfo::allocated | PageInfo::shared;
    page.ref_count = 1;
    domain.frames.push_back(page);
    ++domain.tot_pages;
}

Result<void> FrameTable::release(DomainMemory& domain, Mfn frame) {
    if (!is_valid(frame))
        return Errc::einval;
    PageInfo& page = info(frame);
    if (page.owner != domain.id || !page.has(PageInfo::allocated) || page.has(PageInfo::shared))
        return Errc::einval;
    page.flags &= static_cast<std::uint8_t>(~PageInfo::allocated);
    put_page(frame);
    return {};
}

void FrameTable::defer_flush(DomainMemory& domain) {
    if (!domain.flush_owed) {
        domain.flush_owed = true;
        ++owed_flushes_;
    }
}

void FrameTable::flush_owed() {
    if (owed_flushes_ == 0)
        return;
    for (DomainMemory& domain : domains_) {
        if (domain.flush_owed) {
            platform_.flush_tlb(domain);
            domain.flush_owed = false;
        }
    }
    owed_flushes_ = 0;
}

void FrameTable::free(PageInfo& page) {
    flush_owed();
    // The frame is in one of its owner's two lists; unlinking the node works for either.
    FrameList::node_algorithms::unlink(FrameList::value_traits::to_node_ptr(page));
    --domain(page.owner)->tot_pages;
    page = PageInfo{};
    free_list_.push_back(page);
    ++free_count_;
}

}  // namespace hv::mm

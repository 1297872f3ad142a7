// Memory: pages with their machine frames, and machine frames mapped where the guest wants them.
//
// A PV guest's page tables hold machine frames, so sharing and device work need a page's mfn (its
// pfn through the p2m list) and a way to map a frame that is not the guest's (a grant-table frame,
// a foreign frame). update_va_mapping rewrites one existing L1 entry, so only addresses with an
// L1 can be remapped: here, the pages the page allocator hands out (the start of day gives every
// one an L1 entry). Such a page is a window: map_frame() puts another frame at its address (its
// own frame stays the guest's, unmapped), restore_page() maps its own frame back before it is
// freed. Mapping at other addresses is not done here.
#pragma once

#include <guest/pages.hpp>

#include <cstdint>

namespace pvkit::guest {

struct Page {
    void* address;      // null when allocation failed
    Pfn pfn;
    std::uint64_t mfn;
};

inline constexpr std::uint64_t pte_present = 0x1, pte_writable = 0x2, pte_accessed = 0x20, pte_dirty = 0x40;

// A page from the allocator (set up on first use), with its address and frame; not zeroed.
Page allocate_page();
// Gives it back; whether the allocator took it (a double free is refused).
bool free_page(const Page& page);
// The machine frame behind an address of the domain's mapping (virt_base + pfn * 4 KiB).
std::uint64_t virt_to_mfn(const void* address);
// Maps machine frame `mfn` at `address` (a window page), read-only or writable; the hypercall's
// result (0, or a negative Xen errno).
long map_frame(void* address, std::uint64_t mfn, bool writable);
// Maps the page's own frame back at `address`, writable.
long restore_page(void* address);

}  // namespace pvkit::guest

// Start of day: what a guest has before its main function, and the opt-in setup after it.
//
// pvk_start (src/boot/start.cpp) runs the global constructors, then calls pvk_main(start_info), or
// in a C++ guest that defines no pvk_main, guest_main(start_info) below. Constructors run before
// any setup: they must not allocate. The rest is opt-in, done by setup() or lazily by the part
// that needs it:
//   - shared_info() maps the shared_info frame (start_info.shared_info) over a whole page of the
//     image, which the mapping replaces (a smaller object would let the linker put other
//     variables in the rest of the page);
//   - setup_memory() runs the page allocator over the pfns that the domain builder left free
//     (boot_layout() below) up to nr_pages, keeps its bitmap in the first of them, and makes the
//     heap (pvk_malloc, operator new) the global one. The pfns past the builder's mapping get L1
//     tables of the allocator's pages (2 MiB each, linked into the builder's L2 with mmu_update)
//     and are handed out once mapped.
//
// The builder's layout (docs/builder.md): pfn n is mapped at VIRT_BASE + n * 4 KiB; the image,
// the p2m list, start_info, the xenstore and console pages, the bootstrap page tables (pt_base,
// nr_pt_frames) and one boot-stack page come first; the mapping then goes on for at least 512
// KiB, rounded up to 4 MiB. setup_memory() maps the rest the same way, as far as the L2 of the
// builder's mapping reaches (1 GiB from a kernel at -2 GiB); pages past that are never handed out.
#pragma once

#include <guest/pages.hpp>
#include <pvkit/abi.hpp>

#include <cstdint>

namespace pvkit::guest {

// The C++ main function: defined by the guest when it has no pvk_main. Its return value is
// pvk_main's: 0 powers the domain off, anything else crashes it.
int guest_main(const abi::start_info& start_info);

struct BootLayout {
    std::uint64_t first_free_pfn;  // the first pfn after everything the builder put down
    std::uint64_t mapped_pages;    // pfns [0, mapped_pages) are mapped at virt_base + pfn * 4 KiB
};
// From start_info and the image's own bounds (virtual addresses). mapped_pages is capped at
// nr_pages; first_free_pfn is at most mapped_pages.
BootLayout boot_layout(const abi::start_info& info, std::uint64_t virt_base, std::uint64_t image_end);

// Runtime (images only).
const abi::start_info& start_info();
// SCHEDOP_shutdown with `reason`: how pvk_main's return ends the domain, and a fault's crash.
[[noreturn]] void shut_down(abi::ShutdownReason reason);
// The shared_info page, mapped on first use; vCPU 0's vcpu_info is vcpu_info[0].
abi::shared_info& shared_info();
// The page allocator and heap over the free pfns, set up on first use; null if that failed.
PageAllocator* page_allocator();
// Maps shared_info and sets up memory. Whether both worked.
bool setup();

void* pfn_to_virt(Pfn pfn);
Pfn virt_to_pfn(const void* address);
std::uint64_t pfn_to_mfn(Pfn pfn);  // through the p2m list
// Where the builder maps machine frame `mfn` of this domain (through the read-only M2P), or null
// when it is not in the initial mapping.
void* mfn_to_virt(std::uint64_t mfn);

}  // namespace pvkit::guest

// Pages with their machine frames and window mappings (guest/frames.hpp), and pvkit/memory.h.
#include <guest/frames.hpp>
#include <guest/start.hpp>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

namespace pvkit::guest {

Page allocate_page() {
    PageAllocator* pages = page_allocator();
    const PageRun run = pages != nullptr ? pages->allocate() : PageRun{Pfn{0}, PageError::out_of_memory};
    if (!run)
        return {nullptr, Pfn{0}, 0};
    return {pfn_to_virt(run.first), run.first, pfn_to_mfn(run.first)};
}

bool free_page(const Page& page) {
    PageAllocator* pages = page_allocator();
    return pages != nullptr && pages->free(page.pfn) == PageError::none;
}

std::uint64_t virt_to_mfn(const void* address) { return pfn_to_mfn(virt_to_pfn(address)); }

long map_frame(void* address, std::uint64_t mfn, bool writable) {
    const std::uint64_t flags = pte_present | pte_accessed | (writable ? pte_writable | pte_dirty : 0);
    return hypercall::update_va_mapping(reinterpret_cast<std::uintptr_t>(address), mfn * 4096 | flags, abi::UVMF_INVLPG);
}

long restore_page(void* address) { return map_frame(address, virt_to_mfn(address), true); }

}  // namespace pvkit::guest

using namespace pvkit::guest;

extern "C" int pvk_page_alloc(struct pvk_page* page) {
    const Page allocated = allocate_page();
    *page = {allocated.address, allocated.pfn.value, allocated.mfn};
    return allocated.address != nullptr ? 0 : -1;
}
extern "C" pvk_page_usage pvk_page_get_usage(void) {
    const PageAllocator* pages = page_allocator();
    if (pages == nullptr)
        return {0, 0};
    return {pages->total_pages(), pages->free_pages()};
}
extern "C" int pvk_page_free(const struct pvk_page* page) {
    return free_page({page->address, Pfn{page->pfn}, page->mfn}) ? 0 : -1;
}
extern "C" uint64_t pvk_virt_to_mfn(const void* address) { return virt_to_mfn(address); }
extern "C" void* pvk_mfn_to_virt(uint64_t mfn) { return mfn_to_virt(mfn); }
extern "C" long pvk_map_frame(void* address, uint64_t mfn, int writable) { return map_frame(address, mfn, writable != 0); }
extern "C" long pvk_restore_page(void* address) { return restore_page(address); }

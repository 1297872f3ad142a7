// The opt-in start of day (guest/start.hpp): shared_info mapped over a page of the image, the page
// allocator and heap over the pfns the builder left free, and the C API of pvkit/start.h.
#include <guest/frames.hpp>
#include <guest/heap.hpp>
#include <guest/start.hpp>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

#include <new>

extern "C" char __pvk_virt_base[], __pvk_image_end[];

namespace pvkit::guest {

namespace {
constexpr std::uint64_t page_bytes = 4096;
// The machine-to-phys table Xen maps read-only for PV guests (HYPERVISOR_VIRT_START).
const volatile std::uint64_t* const machine_to_phys = reinterpret_cast<const std::uint64_t*>(0xFFFF800000000000ull);

union SharedInfoPage {
    abi::shared_info info;
    unsigned char bytes[page_bytes];
};
alignas(page_bytes) SharedInfoPage shared_info_page;
bool shared_info_mapped = false;

PageAllocator allocator;
alignas(Heap) unsigned char heap_storage[sizeof(Heap)];
enum class MemoryState : std::uint8_t { not_tried, ready, failed } memory_state = MemoryState::not_tried;

std::uint64_t virt_base() { return reinterpret_cast<std::uintptr_t>(__pvk_virt_base); }
void* map_heap_page(Pfn pfn, void*) { return pfn_to_virt(pfn); }

bool init_memory() {
    const BootLayout layout =
        boot_layout(start_info(), virt_base(), reinterpret_cast<std::uintptr_t>(__pvk_image_end));
    const std::size_t count = layout.mapped_pages - layout.first_free_pfn;
    const std::size_t words = PageAllocator::bitmap_words(count);
    const std::size_t bitmap_pages = (words * 8 + page_bytes - 1) / page_bytes;
    if (count <= bitmap_pages)
        return false;
    // The bitmap lives in the first free pages, which the allocator then keeps for itself.
    const Pfn first{layout.first_free_pfn};
    std::span<std::uint64_t> bitmap(static_cast<std::uint64_t*>(pfn_to_virt(first)), words);
    if (allocator.init(first, count, bitmap) != PageError::none || allocator.reserve(first, bitmap_pages) != PageError::none)
        return false;
    set_global_heap(new (heap_storage) Heap(allocator, map_heap_page, nullptr));
    return true;
}
}  // namespace

abi::shared_info& shared_info() {
    if (!shared_info_mapped) {
        const std::uint64_t entry = start_info().shared_info | pte_present | pte_writable | pte_accessed | pte_dirty;
        shared_info_mapped = hypercall::update_va_mapping(reinterpret_cast<std::uintptr_t>(&shared_info_page), entry,
                                                          abi::UVMF_INVLPG) == 0;
    }
    return shared_info_page.info;
}

PageAllocator* page_allocator() {
    if (memory_state == MemoryState::not_tried)
        memory_state = init_memory() ? MemoryState::ready : MemoryState::failed;
    return memory_state == MemoryState::ready ? &allocator : nullptr;
}

bool setup() {
    (void)shared_info();
    return shared_info_mapped && page_allocator() != nullptr;
}

void* pfn_to_virt(Pfn pfn) { return reinterpret_cast<void*>(virt_base() + pfn.value * page_bytes); }
Pfn virt_to_pfn(const void* address) { return Pfn{(reinterpret_cast<std::uintptr_t>(address) - virt_base()) / page_bytes}; }
std::uint64_t pfn_to_mfn(Pfn pfn) { return reinterpret_cast<const std::uint64_t*>(start_info().mfn_list)[pfn.value]; }

void* mfn_to_virt(std::uint64_t mfn) {
    const std::uint64_t pfn = machine_to_phys[mfn];
    const BootLayout layout =
        boot_layout(start_info(), virt_base(), reinterpret_cast<std::uintptr_t>(__pvk_image_end));
    if (pfn >= layout.mapped_pages || pfn_to_mfn(Pfn{pfn}) != mfn)  // the M2P may name another domain's pfn
        return nullptr;
    return pfn_to_virt(Pfn{pfn});
}

}  // namespace pvkit::guest

using namespace pvkit::guest;

extern "C" int pvk_setup(void) { return setup() ? 0 : -1; }
extern "C" volatile struct pvk_shared_info* pvk_shared_info(void) {
    return reinterpret_cast<volatile struct pvk_shared_info*>(&shared_info());
}

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

// Pages past the initial mapping get page tables of our own, one L1 (2 MiB) at a time. pfns below
// this are mapped at virt_base + pfn * 4 KiB (it stays 0 until then: the initial mapping counts).
std::uint64_t extended_end = 0;
constexpr std::uint64_t entries_per_table = 512;
constexpr std::uint64_t entry_frame_mask = 0x000f'ffff'ffff'f000ull;

constexpr std::uint64_t table_index(std::uint64_t address, unsigned level) {
    return (address >> (12 + 9 * (level - 1))) & (entries_per_table - 1);
}

// The machine frame of the L2 table whose entries map `address`, or 0 when no L3 entry leads to
// one (past the first GiB of a kernel at -2 GiB: nothing here builds L2s).
std::uint64_t l2_table_mfn(std::uint64_t address) {
    const auto* l4 = reinterpret_cast<const std::uint64_t*>(start_info().pt_base);
    const std::uint64_t l4_entry = l4[table_index(address, 4)];
    const auto* l3 = l4_entry & pte_present
                         ? static_cast<const std::uint64_t*>(mfn_to_virt((l4_entry & entry_frame_mask) / page_bytes))
                         : nullptr;
    const std::uint64_t l3_entry = l3 != nullptr ? l3[table_index(address, 3)] : 0;
    return l3_entry & pte_present ? (l3_entry & entry_frame_mask) / page_bytes : 0;
}

// Maps the 512 pfns from `first` (those below nr_pages) through a new L1 table. The table is a
// page of the allocator, filled while writable, then mapped read-only and linked into the L2 with
// mmu_update: the hypervisor refuses to type as L1 a frame the guest can still write.
bool map_l1_chunk(std::uint64_t first, std::uint64_t nr_pages) {
    const std::uint64_t address = virt_base() + first * page_bytes;
    const std::uint64_t l2_mfn = l2_table_mfn(address);
    const auto* l2 = l2_mfn != 0 ? static_cast<const std::uint64_t*>(mfn_to_virt(l2_mfn)) : nullptr;
    if (l2 == nullptr || (l2[table_index(address, 2)] & pte_present))
        return false;
    const PageRun table = allocator.allocate();
    if (!table)
        return false;
    auto* entries = static_cast<std::uint64_t*>(pfn_to_virt(table.first));
    const std::uint64_t present = pte_present | pte_writable | pte_accessed | pte_dirty;
    for (std::uint64_t i = 0; i < entries_per_table; ++i)
        entries[i] = first + i < nr_pages ? pfn_to_mfn(Pfn{first + i}) * page_bytes | present : 0;
    const std::uint64_t table_mfn = pfn_to_mfn(table.first);
    abi::mmu_update link{(l2_mfn * page_bytes + table_index(address, 2) * 8) | abi::MMU_NORMAL_PT_UPDATE,
                         table_mfn * page_bytes | present};
    std::uint32_t done = 0;
    if (map_frame(entries, table_mfn, false) == 0 &&
        hypercall::mmu_update(&link, 1, &done, static_cast<std::uint32_t>(abi::DOMID_SELF)) == 0)
        return true;
    (void)restore_page(entries);
    (void)allocator.free(table.first);
    return false;
}

bool init_memory() {
    const BootLayout layout =
        boot_layout(start_info(), virt_base(), reinterpret_cast<std::uintptr_t>(__pvk_image_end));
    const std::uint64_t nr_pages = start_info().nr_pages;
    const std::size_t count = nr_pages - layout.first_free_pfn;
    const std::size_t words = PageAllocator::bitmap_words(count);
    const std::size_t bitmap_pages = (words * 8 + page_bytes - 1) / page_bytes;
    if (layout.mapped_pages - layout.first_free_pfn <= bitmap_pages)
        return false;
    // The bitmap lives in the first free pages, which the allocator then keeps for itself; the
    // pages past the initial mapping stay reserved until they are mapped.
    const Pfn first{layout.first_free_pfn};
    std::span<std::uint64_t> bitmap(static_cast<std::uint64_t*>(pfn_to_virt(first)), words);
    if (allocator.init(first, count, bitmap) != PageError::none || allocator.reserve(first, bitmap_pages) != PageError::none)
        return false;
    if (nr_pages > layout.mapped_pages &&
        allocator.reserve(Pfn{layout.mapped_pages}, nr_pages - layout.mapped_pages) != PageError::none)
        return false;
    set_global_heap(new (heap_storage) Heap(allocator, map_heap_page, nullptr));
    // The builder maps whole 4 MiB from a 2 MiB-aligned base (Xen kernels' and guest.ld's), so
    // the rest starts on an L1 boundary. What cannot be mapped stays reserved.
    if (virt_base() % (entries_per_table * page_bytes) != 0 || layout.mapped_pages % entries_per_table != 0)
        return true;
    for (std::uint64_t chunk = layout.mapped_pages; chunk < nr_pages; chunk += entries_per_table) {
        if (!map_l1_chunk(chunk, nr_pages))
            break;
        const std::uint64_t end = chunk + entries_per_table < nr_pages ? chunk + entries_per_table : nr_pages;
        if (allocator.free(Pfn{chunk}, end - chunk) != PageError::none)
            break;
        extended_end = end;
    }
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
    const std::uint64_t mapped = extended_end > layout.mapped_pages ? extended_end : layout.mapped_pages;
    if (pfn >= mapped || pfn_to_mfn(Pfn{pfn}) != mfn)  // the M2P may name another domain's pfn
        return nullptr;
    return pfn_to_virt(Pfn{pfn});
}

}  // namespace pvkit::guest

using namespace pvkit::guest;

extern "C" int pvk_setup(void) { return setup() ? 0 : -1; }
extern "C" volatile struct pvk_shared_info* pvk_shared_info(void) {
    return reinterpret_cast<volatile struct pvk_shared_info*>(&shared_info());
}

// Where the domain builder's start-of-day area ends (guest/start.hpp): arithmetic over start_info.
#include <guest/start.hpp>

namespace pvkit::guest {

namespace {
constexpr std::uint64_t page_bytes = 4096;
constexpr std::uint64_t spare_pages = 512 * 1024 / page_bytes;  // the builder's 512 KiB at least
constexpr std::uint64_t mapping_granule = 4 * 1024 * 1024 / page_bytes;

constexpr std::uint64_t max(std::uint64_t a, std::uint64_t b) { return a > b ? a : b; }
constexpr std::uint64_t min(std::uint64_t a, std::uint64_t b) { return a < b ? a : b; }
constexpr std::uint64_t pages_up_to(std::uint64_t address, std::uint64_t virt_base) {
    return address > virt_base ? (address - virt_base + page_bytes - 1) / page_bytes : 0;
}
}  // namespace

BootLayout boot_layout(const abi::start_info& info, std::uint64_t virt_base, std::uint64_t image_end) {
    const std::uint64_t start_info_address = reinterpret_cast<std::uintptr_t>(&info);
    // Each part's end as a pfn count; the page tables come last, then the builder's boot stack.
    const std::uint64_t tables_end = pages_up_to(info.pt_base, virt_base) + info.nr_pt_frames;
    const std::uint64_t bootstrap_end = tables_end + 1;
    std::uint64_t first_free = bootstrap_end;
    first_free = max(first_free, pages_up_to(image_end, virt_base));
    first_free = max(first_free, pages_up_to(info.mfn_list + info.nr_pages * 8, virt_base));
    first_free = max(first_free, pages_up_to(start_info_address + page_bytes, virt_base));
    const std::uint64_t granules = (bootstrap_end + spare_pages + mapping_granule - 1) / mapping_granule;
    const std::uint64_t mapped = min(granules * mapping_granule, info.nr_pages);
    return {min(first_free, mapped), mapped};
}

}  // namespace pvkit::guest

// guest/start.hpp: where the domain builder's start-of-day area ends, from start_info.
#include <guest/start.hpp>

#include <catch2/catch.hpp>

namespace {
using namespace pvkit::guest;
namespace abi = pvkit::abi;

constexpr std::uint64_t base = 0xFFFFFFFF80000000ull;
constexpr std::uint64_t page = 4096;
}  // namespace

TEST_CASE("libguest: the free pfns start after the page tables and the boot stack", "[libguest][start]") {
    // Laid out as docs/builder.md says: a 40-page image, the p2m list of a 16 MiB domain (4096
    // pages, 8 pages of list), start_info, store, console, 5 page-table frames, the boot stack.
    alignas(4096) static abi::start_info info{};
    info.nr_pages = 4096;
    info.mfn_list = base + 40 * page;
    info.pt_base = base + 51 * page;
    info.nr_pt_frames = 5;
    const BootLayout layout = boot_layout(info, base, base + 40 * page - 100);
    // start_info is the test's own object, not at pfn 48; it lies outside [base, ...) and so
    // counts for nothing.
    CHECK(layout.first_free_pfn == 51 + 5 + 1);
    // 57 pages, then 512 KiB (128 pages) of spare, rounded up to 4 MiB (1024 pages).
    CHECK(layout.mapped_pages == 1024);
}

TEST_CASE("libguest: the mapping grows by 4 MiB when the spare does not fit, capped at nr_pages", "[libguest][start]") {
    alignas(4096) static abi::start_info info{};
    info.nr_pages = 1500;
    info.mfn_list = base + 900 * page;
    info.pt_base = base + 903 * page;
    info.nr_pt_frames = 6;
    const BootLayout layout = boot_layout(info, base, base + 900 * page);
    CHECK(layout.first_free_pfn == 910);
    CHECK(layout.mapped_pages == 1500);  // 910 + 128 needs 2048, but the domain has 1500
    info.nr_pages = 4096;
    CHECK(boot_layout(info, base, base + 900 * page).mapped_pages == 2048);
}

TEST_CASE("libguest: an image or p2m list past the page tables moves the first free pfn", "[libguest][start]") {
    alignas(4096) static abi::start_info info{};
    info.nr_pages = 8192;
    info.pt_base = base + 10 * page;
    info.nr_pt_frames = 2;
    info.mfn_list = base + 20 * page;  // 8192 entries: 16 pages, to pfn 36
    CHECK(boot_layout(info, base, base + 30 * page + 1).first_free_pfn == 36);
    CHECK(boot_layout(info, base, base + 50 * page + 1).first_free_pfn == 51);
}

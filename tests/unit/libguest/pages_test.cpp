// guest/pages.hpp: the page allocator over a range of pfns, its bitmap in the test's memory.
#include <guest/pages.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <vector>

namespace {
using namespace pvkit::guest;

struct PagesFixture {
    static constexpr std::uint64_t first_pfn = 0x123;  // not a multiple of any alignment tested
    static constexpr std::size_t page_count = 200;     // not a multiple of 64
    std::vector<std::uint64_t> bitmap = std::vector<std::uint64_t>(PageAllocator::bitmap_words(page_count), 0xAAAA);
    PageAllocator pages;
    PagesFixture() { REQUIRE(pages.init(Pfn{first_pfn}, page_count, bitmap) == PageError::none); }
};
}  // namespace

TEST_CASE_METHOD(PagesFixture, "libguest: single pages are handed out once each until the range is exhausted",
                 "[unit][pages]") {
    CHECK(pages.free_pages() == page_count);
    std::set<std::uint64_t> seen;
    for (std::size_t i = 0; i < page_count; ++i) {
        const PageRun page = pages.allocate();
        REQUIRE(page);
        CHECK(page.first.value >= first_pfn);
        CHECK(page.first.value < first_pfn + page_count);
        CHECK(seen.insert(page.first.value).second);
    }
    CHECK(pages.free_pages() == 0);
    const auto bitmap_before = bitmap;
    const PageRun none = pages.allocate();
    CHECK(none.error == PageError::out_of_memory);
    CHECK(bitmap == bitmap_before);
    CHECK(pages.check_invariants());

    REQUIRE(pages.free(Pfn{first_pfn + 77}) == PageError::none);
    const PageRun again = pages.allocate();
    REQUIRE(again);
    CHECK(again.first == Pfn{first_pfn + 77});
    CHECK(pages.check_invariants());
}

TEST_CASE_METHOD(PagesFixture, "libguest: a double free is refused and changes nothing", "[unit][pages][hostile]") {
    const PageRun page = pages.allocate();
    REQUIRE(page);
    REQUIRE(pages.free(page.first) == PageError::none);
    const auto bitmap_before = bitmap;
    const std::size_t free_before = pages.free_pages();
    CHECK(pages.free(page.first) == PageError::not_allocated);
    CHECK(bitmap == bitmap_before);
    CHECK(pages.free_pages() == free_before);

    // A run that is only partly allocated: refused as a whole.
    const PageRun run = pages.allocate(4);
    REQUIRE(run);
    REQUIRE(pages.free(Pfn{run.first.value + 3}) == PageError::none);
    const auto bitmap_partial = bitmap;
    CHECK(pages.free(run.first, 4) == PageError::not_allocated);
    CHECK(bitmap == bitmap_partial);
    CHECK(pages.allocated(run.first));
    CHECK(pages.check_invariants());
}

TEST_CASE_METHOD(PagesFixture, "libguest: pages outside the range are refused and change nothing", "[unit][pages][hostile]") {
    REQUIRE(pages.reserve(Pfn{first_pfn}, page_count) == PageError::none);
    const auto bitmap_before = bitmap;
    CHECK(pages.free(Pfn{first_pfn - 1}) == PageError::out_of_range);
    CHECK(pages.free(Pfn{first_pfn + page_count}) == PageError::out_of_range);
    CHECK(pages.free(Pfn{first_pfn + page_count - 2}, 3) == PageError::out_of_range);
    CHECK(pages.free(Pfn{first_pfn}, SIZE_MAX) == PageError::out_of_range);
    CHECK(pages.free(Pfn{UINT64_MAX}, 2) == PageError::out_of_range);
    CHECK(pages.free(Pfn{first_pfn}, 0) == PageError::invalid_argument);
    CHECK(pages.reserve(Pfn{first_pfn + page_count}) == PageError::out_of_range);
    CHECK(bitmap == bitmap_before);
    CHECK(pages.free_pages() == 0);
    CHECK_FALSE(pages.allocated(Pfn{first_pfn + page_count}));  // past the end: not ours
}

TEST_CASE_METHOD(PagesFixture, "libguest: contiguous runs are found first fit, aligned on request", "[unit][pages]") {
    const PageRun a = pages.allocate(10);
    REQUIRE(a);
    CHECK(a.first == Pfn{first_pfn});
    const PageRun aligned = pages.allocate(8, 8);
    REQUIRE(aligned);
    CHECK(aligned.first.value % 8 == 0);
    CHECK(aligned.first.value >= first_pfn + 10);
    CHECK(aligned.first.value == 0x130);  // the first multiple of 8 at or after 0x123 + 10
    const PageRun big_align = pages.allocate(1, 64);
    REQUIRE(big_align);
    CHECK(big_align.first.value == 0x140);

    // A hole too small is skipped; the run goes after it.
    REQUIRE(pages.free(Pfn{first_pfn + 2}, 3) == PageError::none);
    const PageRun four = pages.allocate(4);
    REQUIRE(four);
    CHECK(four.first.value > first_pfn + 10);
    const PageRun three = pages.allocate(3);
    REQUIRE(three);
    CHECK(three.first == Pfn{first_pfn + 2});  // exactly fills the hole
    CHECK(pages.check_invariants());

    CHECK(pages.allocate(0).error == PageError::invalid_argument);
    CHECK(pages.allocate(2, 3).error == PageError::invalid_argument);
    CHECK(pages.allocate(page_count).error == PageError::out_of_memory);
}

TEST_CASE_METHOD(PagesFixture, "libguest: a run larger than any free stretch fails even with enough free pages",
                 "[unit][pages]") {
    // Reserve every fourth page: 150 pages free, no 4 in a row.
    for (std::size_t i = 0; i < page_count; i += 4)
        REQUIRE(pages.reserve(Pfn{first_pfn + i}) == PageError::none);
    CHECK(pages.free_pages() == 150);
    const auto bitmap_before = bitmap;
    CHECK(pages.allocate(4).error == PageError::out_of_memory);
    CHECK(bitmap == bitmap_before);
    const PageRun three = pages.allocate(3);
    REQUIRE(three);
    CHECK(three.first == Pfn{first_pfn + 1});
    CHECK(pages.reserve(Pfn{first_pfn + 4}) == PageError::already_allocated);
    CHECK(pages.check_invariants());
}

TEST_CASE("libguest: the page allocator checks its bitmap and range at init", "[unit][pages][hostile]") {
    std::vector<std::uint64_t> bitmap(2, 0x1234);
    PageAllocator pages;
    CHECK(pages.init(Pfn{0}, 129, bitmap) == PageError::bitmap_too_small);
    CHECK(bitmap == std::vector<std::uint64_t>(2, 0x1234));
    CHECK(pages.init(Pfn{0}, 0, bitmap) == PageError::invalid_argument);
    CHECK(pages.init(Pfn{UINT64_MAX - 3}, 10, bitmap) == PageError::invalid_argument);
    REQUIRE(pages.init(Pfn{0}, 128, bitmap) == PageError::none);
    CHECK(pages.free_pages() == 128);
    CHECK(pages.check_invariants());
    REQUIRE(pages.allocate(128));
    bitmap[1] = 0;  // a test of the checker itself: set bits lost behind the allocator's back
    CHECK_FALSE(pages.check_invariants());
}

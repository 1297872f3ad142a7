#include "mm_fixture.hpp"

using namespace mm_test;

TEST_CASE_METHOD(MmFixture, "mm: an allocated frame is zeroed, owned, listed and holds its allocation reference", "[mm]") {
    std::memset(platform.map(Mfn{1}), 0xAB, page_size);
    const Mfn frame = allocate(dom1);
    CHECK(frame == Mfn{1});
    CHECK(std::all_of(table(frame), table(frame) + entries_per_table, [](std::uint64_t e) { return e == 0; }));
    CHECK(frames.info(frame).owner == dom1.id);
    CHECK(frames.info(frame).ref_count == 1);
    CHECK(dom1.tot_pages == 1);
    CHECK(frames.free_frames() == frame_count - 2);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: allocation stops at the domain's limit with enomem", "[mm][hostile]") {
    DomainMemory small{DomId{3}, 2};
    REQUIRE(frames.add_domain(small));
    allocate(small);
    allocate(small);
    const auto third = frames.allocate(small);
    REQUIRE_FALSE(third);
    CHECK(third.error() == Errc::enomem);
    CHECK(small.tot_pages == 2);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a domain id can be registered once, and removed only when it owns nothing", "[mm]") {
    DomainMemory twin{DomId{1}, 10};
    CHECK(frames.add_domain(twin).error() == Errc::eexist);
    allocate(dom2);
    CHECK(frames.remove_domain(dom2).error() == Errc::ebusy);
    CHECK(frames.domain(DomId{2}) == &dom2);
}

TEST_CASE_METHOD(MmFixture, "mm: a released frame returns to the heap on its last reference", "[mm]") {
    const Mfn frame = allocate(dom1);
    REQUIRE(frames.get_page(frame, dom1));  // a mapping somewhere
    REQUIRE(frames.release(dom1, frame));
    CHECK(frames.info(frame).owner == dom1.id);  // still alive: mapped
    CHECK(dom1.tot_pages == 1);
    frames.put_page(frame);
    CHECK(frames.info(frame).owner == DomId{pvkit::abi::DOMID_INVALID});
    CHECK(dom1.tot_pages == 0);
    CHECK(frames.free_frames() == frame_count - 1);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: get_page refuses frames of other domains, free frames and invalid frames", "[mm][hostile]") {
    const Mfn mine = allocate(dom1);
    CHECK_FALSE(frames.get_page(mine, dom2));
    CHECK_FALSE(frames.get_page(Mfn{200}, dom1));  // in the heap
    CHECK_FALSE(frames.get_page(Mfn{frame_count}, dom1));
    CHECK_FALSE(frames.release(dom2, mine));
    CHECK(frames.info(mine).ref_count == 1);
    require_invariants();
}

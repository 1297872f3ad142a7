// Lifetimes: frames given back or domains torn down while grants are mapped.
#include "gnttab_fixture.hpp"

using namespace gnttab_test;

namespace {
constexpr std::uint16_t source_gref = abi::GNTCOPY_source_gref;
constexpr std::uint16_t dest_gref = abi::GNTCOPY_dest_gref;
}  // namespace

struct TeardownFixture : GnttabFixture {
    // The embedder's teardown of one domain, in bounded steps, checking every invariant between
    // steps. Returns whether the domain could be removed (no one else maps its grants any more).
    bool tear_down(DomainMemory& domain, unsigned budget = 2) {
        GrantTable& table = grants_of(domain).table;
        while (!grants.release_mappings(table, budget))
            require_all_invariants();
        grants.mark_dying(table);
        while (!tables.relinquish(domain, std::span{&vcpu_of(domain), 1}, budget))
            require_all_invariants();
        require_all_invariants();
        return finish(domain);
    }
    bool finish(DomainMemory& domain) {
        if (!grants.remove(grants_of(domain).table))
            return false;
        REQUIRE(frames.remove_domain(domain));
        return true;
    }
};

TEST_CASE_METHOD(GnttabFixture, "gnttab: a granted frame given back while mapped lives until unmapped", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));

    const std::uint64_t heap = frames.free_frames();
    REQUIRE(frames.release(dom1, shared));  // decrease_reservation
    CHECK(frames.free_frames() == heap);
    CHECK(frames.info(shared).ref_count == 1);  // the mapping's
    CHECK(frames.info(shared).owner == dom1.id);
    CHECK_FALSE(frames.info(shared).has(PageInfo::allocated));
    std::memcpy(platform.map(pte::frame(table(chain.l1)[1])), "still here", 10);
    require_all_invariants();

    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    CHECK(frames.free_frames() == heap + 1);
    CHECK(frames.info(shared).owner == DomId{abi::DOMID_INVALID});
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    // The grant still names the frame, which is no longer dom1's: a new mapping is refused.
    CHECK(map(as2, dom1.id, 1, page_address(1)).status == status(GS::bad_page));
    require_all_invariants();
}

TEST_CASE_METHOD(TeardownFixture, "gnttab: tearing the mapper down first releases its mappings in steps", "[gnttab]") {
    address_space(dom2);
    std::vector<Mfn> shared;
    for (unsigned ref = 1; ref <= 5; ++ref) {
        shared.push_back(allocate(dom1));
        grant(g1, ref, dom2.id, shared.back(), ref % 2 ? abi::GTF_permit_access : abi::GTF_permit_access | abi::GTF_readonly);
        const std::uint32_t how = ref % 2 ? abi::GNTMAP_host_map : abi::GNTMAP_host_map | abi::GNTMAP_readonly;
        REQUIRE(map(as2, dom1.id, ref, page_address(ref), how).status == status(GS::okay));
    }
    CHECK(g1.table.pinned == 5);
    int steps = 1;
    while (!grants.release_mappings(g2.table, 2)) {
        ++steps;
        require_all_invariants();
    }
    CHECK(steps == 3);
    CHECK(g2.table.maptrack_in_use == 0);
    CHECK(g2.table.maptrack_limit == 0);
    CHECK(g1.table.pinned == 0);
    for (unsigned ref = 1; ref <= 5; ++ref) {
        CHECK((flags(g1, ref) & (abi::GTF_reading | abi::GTF_writing)) == 0);
        CHECK(frames.info(shared[ref - 1]).ref_count == 1);
    }
    require_all_invariants();
    const std::uint64_t heap = frames.free_frames();
    CHECK(tear_down(dom2));
    CHECK(frames.free_frames() == heap + 6);  // its address space (5 frames) and its grant-table frame
    require_all_invariants();
}

TEST_CASE_METHOD(TeardownFixture, "gnttab: tearing the granter down first leaves the frame to its mapper", "[gnttab]") {
    const Mfn shared = allocate(dom1), other = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    grant(g1, 2, dom2.id, other);
    const Chain own = address_space(dom1);
    // dom1 maps its own grant-table frame, as guests do.
    REQUIRE(tables.update_entry(dom1, dom1, own.l1, 1, entry(Mfn{g1.frames[0]}, rw), false));
    const Chain chain = address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));

    CHECK_FALSE(tear_down(dom1));
    CHECK(grants.remove(g1.table).error() == Errc::ebusy);
    CHECK(frames.remove_domain(dom1).error() == Errc::ebusy);
    CHECK(dom1.tot_pages == 1);                   // only the mapped frame is left
    CHECK(frames.info(shared).ref_count == 1);
    CHECK(frames.info(Mfn{g1.frames[0]}).owner == DomId{abi::DOMID_INVALID});  // grant-table frame freed
    std::memcpy(platform.map(pte::frame(table(chain.l1)[1])), "mapper still writes", 19);

    // A dying granter's grants can no longer be mapped or copied.
    const GrantState before = state();
    CHECK(map(as2, dom1.id, 2, page_address(2)).status == status(GS::bad_domain));
    CHECK(copy(as2, copy_op(by_ref(dom1.id, 2), by_frame(chain.data), 8, source_gref)) == status(GS::bad_domain));
    CHECK(state() == before);
    require_all_invariants();

    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    CHECK(dom1.tot_pages == 0);
    CHECK(frames.info(shared).owner == DomId{abi::DOMID_INVALID});
    CHECK(finish(dom1));
    require_all_invariants();
}

TEST_CASE_METHOD(TeardownFixture, "gnttab: three domains share through a backend, then go in any order", "[gnttab]") {
    // dom1 and dom2 are frontends: each grants dom0 a ring page writable and a data page read-only.
    // dom0 maps both rings, answers requests through them, and copies data from dom1 to dom2.
    const Mfn ring1 = allocate(dom1), data1 = allocate(dom1), ring2 = allocate(dom2), data2 = allocate(dom2);
    grant(g1, 8, dom0.id, ring1);
    grant(g1, 9, dom0.id, data1, abi::GTF_permit_access | abi::GTF_readonly);
    grant(g2, 8, dom0.id, ring2);
    grant(g2, 9, dom0.id, data2);
    std::memcpy(platform.map(data1), "payload of dom1", 15);
    std::memcpy(platform.map(ring1), "request 1", 9);
    std::memcpy(platform.map(ring2), "request 2", 9);
    const Chain backend = address_space(dom0);
    address_space(dom1);
    address_space(dom2);
    const Mapped map1 = map(as0, dom1.id, 8, page_address(1));
    const Mapped map2 = map(as0, dom2.id, 8, pte_address(backend.l1, 2), abi::GNTMAP_host_map | abi::GNTMAP_contains_pte);
    REQUIRE(map1.status == status(GS::okay));
    REQUIRE(map2.status == status(GS::okay));
    CHECK(map1.handle != map2.handle);
    require_all_invariants();

    // The backend reads both requests and answers through its mappings.
    CHECK(std::memcmp(platform.map(pte::frame(table(backend.l1)[1])), "request 1", 9) == 0);
    CHECK(std::memcmp(platform.map(pte::frame(table(backend.l1)[2])), "request 2", 9) == 0);
    std::memcpy(platform.map(pte::frame(table(backend.l1)[1])), "response 1", 10);
    CHECK(std::memcmp(platform.map(ring1), "response 1", 10) == 0);
    // And moves dom1's data to dom2 without mapping either.
    CHECK(copy(as0, copy_op(by_ref(dom1.id, 9), by_ref(dom2.id, 9, 100), 15, source_gref | dest_gref)) ==
          status(GS::okay));
    CHECK(std::memcmp(platform.map(data2) + 100, "payload of dom1", 15) == 0);
    // dom1 may not use dom2's grants to dom0.
    CHECK(map(as1, dom2.id, 8, page_address(1)).status == status(GS::general_error));
    require_all_invariants();

    // dom1 goes first, its ring still mapped by dom0; then dom0, with dom2's ring still mapped;
    // then dom2.
    CHECK_FALSE(tear_down(dom1));
    require_all_invariants();
    CHECK(unmap(as0, map1.handle, page_address(1)) == status(GS::okay));
    CHECK(finish(dom1));
    require_all_invariants();
    CHECK(tear_down(dom0));
    CHECK(flags(g2, 8) == abi::GTF_permit_access);
    CHECK(tear_down(dom2));
    CHECK(frames.free_frames() == frame_count - 1);  // every frame, grant tables included, is back
    CHECK(grants.registered().empty());
}

TEST_CASE_METHOD(TeardownFixture, "gnttab: remove waits for the domain's mappings and for its mapped grants", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom2);
    REQUIRE(map(as2, dom1.id, 1, page_address(1)).status == status(GS::okay));
    CHECK(grants.remove(g2.table).error() == Errc::ebusy);  // holds a mapping
    CHECK(grants.remove(g1.table).error() == Errc::ebusy);  // its grant is mapped
    CHECK(tear_down(dom2));
    CHECK(grants.remove(g1.table));
    CHECK(grants.find(dom1.id) == nullptr);
}

// Guests that attack the grant tables, or break the grant ABI's rules.
#include "gnttab_fixture.hpp"

#include <atomic>
#include <thread>

using namespace gnttab_test;

TEST_CASE_METHOD(GnttabFixture, "gnttab: grant refs are bounded by the table's current size", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    address_space(dom2);
    for (std::uint32_t ref : {512u, 2047u, 0x8000'0000u, 0xFFFF'FFFFu})
        CHECK(map(as2, dom1.id, ref, page_address(1)).status == status(GS::bad_gntref));
    abi::gnttab_setup_table grow{};
    grow.dom = abi::DOMID_SELF;
    grow.nr_frames = 4;
    grow.frame_list = GuestHandle<abi::xen_pfn_t>{GuestBuffer::base + 0x1000};
    REQUIRE(call(as1, abi::GNTTABOP_setup_table, {grow}) == 0);
    REQUIRE(result<abi::gnttab_setup_table>().status == status(GS::okay));
    grant(g1, 2047, dom2.id, shared);  // the last entry of the fourth frame
    CHECK(map(as2, dom1.id, 2047, page_address(1)).status == status(GS::okay));
    CHECK(map(as2, dom1.id, 2048, page_address(2)).status == status(GS::bad_gntref));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a revoked grant cannot be mapped again", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    // While mapped, the granter sees the entry in use and cannot revoke it by the ABI's rules.
    CHECK((flags(g1, 1) & abi::GTF_reading));
    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    set_flags(g1, 1, abi::GTF_invalid);  // revoked: its compare-exchange of an idle entry to 0
    const GrantState before = state();
    CHECK(map(as2, dom1.id, 1, page_address(1)).status == status(GS::general_error));
    CHECK(copy(as2, copy_op(by_ref(dom1.id, 1), by_frame(allocate(dom2)), 8, abi::GNTCOPY_source_gref)) ==
          status(GS::general_error));
    CHECK(state().active == before.active);
    CHECK(flags(g1, 1) == abi::GTF_invalid);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: double unmaps and forged handles are refused", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1), other = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    grant(g1, 2, dom2.id, other);
    address_space(dom1);
    address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    // dom1 holds no mappings: dom2's handle means nothing to it.
    GrantState before = state();
    CHECK(unmap(as1, mapped.handle, page_address(1)) == status(GS::bad_handle));
    CHECK(state() == before);

    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    before = state();
    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::bad_handle));  // twice
    for (GrantHandle forged : {1u, 63u, 64u, 0x7FFF'FFFFu, 0xFFFF'FFFFu})
        CHECK(unmap(as2, forged, page_address(1)) == status(GS::bad_handle));
    CHECK(state() == before);

    // A handle unmaps only its own mapping, at the address it was made at.
    const Mapped first = map(as2, dom1.id, 2, page_address(2));
    const Mapped second = map(as2, dom1.id, 2, page_address(3));
    REQUIRE(second.status == status(GS::okay));
    CHECK(unmap(as2, first.handle, page_address(3)) == status(GS::general_error));
    CHECK(unmap(as2, second.handle, page_address(2)) == status(GS::general_error));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a grant is for its domid only, privileged or not", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom0);
    address_space(dom1);
    const GrantState before = state();
    CHECK(map(as0, dom1.id, 1, page_address(1)).status == status(GS::general_error));  // dom0 is privileged
    CHECK(map(as1, dom1.id, 1, page_address(1)).status == status(GS::general_error));  // the granter itself
    CHECK(state() == before);
    // A domain may map a grant it made to itself.
    grant(g1, 2, dom1.id, shared);
    CHECK(map(as1, dom1.id, 2, page_address(1)).status == status(GS::okay));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a read-only grant never gets a writable mapping", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared, abi::GTF_permit_access | abi::GTF_readonly);
    const Chain chain = address_space(dom2);
    GrantState before = state();
    CHECK(map(as2, dom1.id, 1, page_address(1)).status == status(GS::general_error));
    CHECK(state() == before);
    REQUIRE(map(as2, dom1.id, 1, page_address(1), abi::GNTMAP_host_map | abi::GNTMAP_readonly).status ==
            status(GS::okay));
    // Pinned read-only, the upgrade to writable is checked again, and refused.
    before = state();
    CHECK(map(as2, dom1.id, 1, page_address(2)).status == status(GS::general_error));
    CHECK(state() == before);
    // Nor can the read-only mapping be made writable through mmu_update: the frame is not dom2's.
    CHECK_FALSE(tables.update_entry(dom2, dom2, chain.l1, 1, table(chain.l1)[1] | pte::writable, false));
    CHECK(flags(g1, 1) == (abi::GTF_permit_access | abi::GTF_readonly | abi::GTF_reading));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: contains_pte must name an L1 entry of the caller's own", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    const Chain theirs = address_space(dom1);
    const Chain chain = address_space(dom2);
    const std::uint32_t by_pte = abi::GNTMAP_host_map | abi::GNTMAP_contains_pte;
    struct Case {
        const char* what;
        std::uint64_t address;
    };
    const Case cases[] = {
        {"an L1 of another domain", pte_address(theirs.l1, 5)},
        {"its own L4", pte_address(chain.l4, 5)},
        {"its own L3", pte_address(chain.l3, 5)},
        {"its own L2", pte_address(chain.l2, 5)},
        {"an ordinary frame of its own", pte_address(chain.data, 5)},
        {"its own grant-table frame", pte_address(Mfn{g2.frames[0]}, 5)},
        {"a frame in the heap", pte_address(Mfn{frames.frame_count() - 1}, 5)},
        {"a frame beyond the frame table", pte_address(Mfn{frames.frame_count() + 7}, 5)},
        {"a misaligned entry", pte_address(chain.l1, 5) + 1},
    };
    for (const Case& bad : cases) {
        INFO(bad.what);
        const GrantState before = state();
        CHECK(map(as2, dom1.id, 1, bad.address, by_pte).status == status(GS::general_error));
        CHECK(state() == before);
    }
    CHECK(map(as2, dom1.id, 1, pte_address(chain.l1, 5), by_pte).status == status(GS::okay));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: map flags reach the grant PTE only through their defined bits", "[gnttab][hostile]") {
    // Bits 5-15 mean nothing to a map; of GNTMAP_guest_avail_mask (bits 16-31) only the three x86
    // has room for count. Bits 19 and up must never reach PTE bit 12 and up: that is the frame.
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const std::uint32_t defined = abi::GNTMAP_device_map | abi::GNTMAP_host_map | abi::GNTMAP_readonly |
                                  abi::GNTMAP_application_map | abi::GNTMAP_contains_pte |
                                  (7u << abi::GNTMAP_guest_avail0_bit);
    const std::uint32_t avail = GENERATE(0u, 2u, 7u);
    const std::uint32_t map_flags =
        abi::GNTMAP_host_map | ~defined | (avail << abi::GNTMAP_guest_avail0_bit);
    INFO("flags " << std::hex << map_flags);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(3), map_flags);
    REQUIRE(mapped.status == status(GS::okay));
    // A kernel mapping, as without the undefined bits.
    CHECK(table(chain.l1)[3] == ((shared.value << 12) | pte::present | pte::writable | pte::user | pte::guest_kernel |
                                 pte::accessed | pte::dirty | pte::no_execute | (std::uint64_t{avail} << 9)));
    CHECK(frames.info(shared).ref_count == 2);
    require_all_invariants();
    CHECK(unmap(as2, mapped.handle, page_address(3)) == status(GS::okay));
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a grant changed while pinned keeps its pinned frame", "[gnttab][hostile]") {
    const Mfn first = allocate(dom1), second = allocate(dom1);
    grant(g1, 1, dom2.id, first);
    const Chain chain = address_space(dom2);
    REQUIRE(map(as2, dom1.id, 1, page_address(1)).status == status(GS::okay));
    grant(g1, 1, dom2.id, second, abi::GTF_permit_access | abi::GTF_reading | abi::GTF_writing);
    REQUIRE(map(as2, dom1.id, 1, page_address(2)).status == status(GS::okay));
    CHECK(pte::frame(table(chain.l1)[2]) == first);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a mapping destroyed through mmu_update leaves a stale handle", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    // Xen's grant_table.h: mappings should only be destroyed by unmap. The memory component still
    // drops the entry's references; the pin stays until the handle is released.
    REQUIRE(tables.update_entry(dom2, dom2, chain.l1, 1, 0, false));
    CHECK(frames.info(shared).ref_count == 1);
    require_all_invariants(CheckScope::hypervisor_state);
    const auto violation = hv::gnttab::check_invariants(grants);
    REQUIRE(violation);
    CHECK(std::string_view{violation->what} == "a mapping's page-table entry no longer maps its grant");

    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::general_error));
    CHECK((flags(g1, 1) & abi::GTF_reading));
    while (!grants.release_mappings(g2.table, 8)) {
    }
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a granter clearing its flags while mapped hurts only itself", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    set_flags(g1, 1, abi::GTF_invalid);  // against the rules: the entry is in use
    require_all_invariants(CheckScope::hypervisor_state);
    CHECK(hv::gnttab::check_invariants(grants).has_value());
    // The pin, not the entry, decides: the mapping stays valid and its frame alive.
    CHECK(frames.info(shared).ref_count == 2);
    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    CHECK(flags(g1, 1) == abi::GTF_invalid);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a frame the granter does not own cannot be granted", "[gnttab][hostile]") {
    const Mfn dom2s = allocate(dom2);
    grant(g1, 1, dom0.id, dom2s);                 // dom1 "grants" a frame of dom2's
    grant(g1, 2, dom0.id, Mfn{g2.frames[0]});     // or dom2's grant-table frame
    grant(g1, 3, dom0.id, Mfn{0});                // or a frame no one owns
    address_space(dom0);
    for (std::uint32_t ref : {1u, 2u, 3u}) {
        const GrantState before = state();
        CHECK(map(as0, dom1.id, ref, page_address(1)).status == status(GS::bad_page));
        CHECK(copy(as0, copy_op(by_ref(dom1.id, ref), by_frame(allocate(dom0)), 8, abi::GNTCOPY_source_gref)) ==
              status(GS::bad_page));
        CHECK(state().active == before.active);
    }
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a granter changing its entry while it is being mapped", "[gnttab][hostile]") {
    // The granter flips GTF_readonly by compare-exchange, as grant_table.h allows, from another
    // CPU, while the mapper maps and unmaps writable. Each map either succeeds writable or is
    // refused; nothing is ever left pinned or half done.
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom2);
    auto* header = reinterpret_cast<std::uint32_t*>(entry_bytes(g1, 1));
    std::atomic<bool> stop{false};
    std::thread granter{[&] {
        std::atomic_ref<std::uint32_t> word{*header};
        while (!stop.load(std::memory_order_relaxed)) {
            std::uint32_t seen = word.load();
            if (!(seen & abi::GTF_writing))
                word.compare_exchange_weak(seen, seen ^ abi::GTF_readonly);
        }
    }};
    int mapped = 0, refused = 0;
    for (int i = 0; i < 2000; ++i) {
        const Mapped attempt = map(as2, dom1.id, 1, page_address(1));
        if (attempt.status == status(GS::okay)) {
            ++mapped;
            REQUIRE(unmap(as2, attempt.handle, page_address(1)) == status(GS::okay));
        } else {
            REQUIRE(attempt.status == status(GS::general_error));
            ++refused;
        }
    }
    stop = true;
    granter.join();
    INFO(mapped << " mapped, " << refused << " refused");
    CHECK(mapped + refused == 2000);
    CHECK(g1.table.pinned == 0);
    CHECK((flags(g1, 1) & (abi::GTF_reading | abi::GTF_writing)) == 0);
    require_all_invariants();
}

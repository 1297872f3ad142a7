#include "mm_fixture.hpp"

using namespace mm_test;

TEST_CASE_METHOD(MmFixture, "mm: pinning an L4 validates the whole chain and takes one reference per link", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    CHECK(frames.info(chain.l4).type == PageType::l4);
    CHECK(frames.info(chain.l3).type == PageType::l3);
    CHECK(frames.info(chain.l2).type == PageType::l2);
    CHECK(frames.info(chain.l1).type == PageType::l1);
    CHECK(frames.info(chain.data).type == PageType::writable);
    CHECK(frames.info(chain.l4).ref_count == 2);  // allocation + pin
    CHECK(frames.info(chain.l1).ref_count == 2);  // allocation + the L2 entry
    CHECK(frames.info(chain.data).type_count == 1);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: validation forces the user bit on every present entry and marks kernel mappings", "[mm]") {
    const Chain chain = build_chain(dom1);
    const Mfn user_page = allocate(dom1);
    table(chain.l1)[1] = entry(user_page, ro | pte::user);
    table(chain.l1)[7] = 0xdead'0000;  // not present: left alone
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    CHECK(table(chain.l4)[0] == entry(chain.l3, rw | pte::user | pte::accessed));
    CHECK(table(chain.l3)[0] == entry(chain.l2, rw | pte::user));
    CHECK(table(chain.l2)[0] == entry(chain.l1, rw | pte::user));
    CHECK(table(chain.l1)[0] == entry(chain.data, rw | pte::user | pte::guest_kernel));
    CHECK(table(chain.l1)[1] == entry(user_page, ro | pte::user));
    CHECK(table(chain.l1)[7] == 0xdead'0000);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: global mappings are for guest user pages only", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(chain.data, ro | pte::global), false).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1,
                              entry(chain.data, ro | pte::user | pte::guest_kernel | pte::global), false)
              .error() == Errc::einval);
    CHECK(snapshot() == before);
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(chain.data, ro | pte::user | pte::global), false));
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: unpinning the root drops every reference the chain held", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.unpin(dom1, chain.l4));
    CHECK(frames.info(chain.l4).has(PageInfo::devalidating));  // queued, not yet devalidated
    require_invariants();
    CHECK(tables.drain(dom1, 2) == false);  // a bounded step: the L4 and the L3
    CHECK(frames.info(chain.l3).type == PageType::none);
    CHECK(frames.info(chain.l2).has(PageInfo::devalidating));
    CHECK(tables.drain(dom1, 2) == true);
    for (const Mfn frame : {chain.l4, chain.l3, chain.l2, chain.l1, chain.data}) {
        CHECK(frames.info(frame).type == PageType::none);
        CHECK(frames.info(frame).ref_count == 1);
    }
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: L4 hypervisor slots are filled on validation and refused to the guest", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    table(chain.l4)[256] = entry(chain.l3, rw);  // a guest value in a hypervisor slot is not honoured
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    for (unsigned slot = 256; slot < 272; ++slot)
        CHECK(table(chain.l4)[slot] == platform.hypervisor_l4_entry(dom1, slot));
    CHECK(table(chain.l4)[255] == 0);
    CHECK(table(chain.l4)[272] == 0);
    const Snapshot before = snapshot();
    for (const unsigned slot : {256u, 263u, 271u}) {
        const auto update = tables.update_entry(dom1, dom1, chain.l4, slot, entry(chain.l3, ro), false);
        CHECK(update.error() == Errc::einval);
    }
    CHECK(snapshot() == before);
    CHECK(tables.update_entry(dom1, dom1, chain.l4, 272, entry(chain.l3, ro), false));
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a writable mapping of a page table is ebusy, directly or through an alias", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    SECTION("the L1 maps itself writable") {
        CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(chain.l1, rw), false).error() == Errc::ebusy);
    }
    SECTION("the L1 maps the L4 writable") {
        CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(chain.l4, rw), false).error() == Errc::ebusy);
    }
    SECTION("a second, unpinned L1 that maps the first writable cannot be pinned") {
        const Mfn alias = allocate(dom1);
        table(alias)[0] = entry(chain.l1, rw);
        const Snapshot with_alias = snapshot();
        CHECK(tables.pin(dom1, alias, 1).error() == Errc::ebusy);
        CHECK(snapshot() == with_alias);
        return;
    }
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a read-only mapping of a page table is allowed", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 1, entry(chain.l2, ro), false));
    CHECK(frames.info(chain.l2).ref_count == 3);  // allocation, the L3 entry, the mapping
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a frame mapped writable cannot become a page table", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, chain.data, 1).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, chain.l2, 1, entry(chain.data, rw), false).error() == Errc::einval);
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: mapping another domain's frame is ebusy and changes nothing", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn theirs = allocate(dom2);
    const Snapshot before = snapshot();
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(theirs, ro), false).error() == Errc::ebusy);
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(Mfn{250}, ro), false).error() == Errc::ebusy);  // free
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(Mfn{frame_count + 5}, ro), false).error() == Errc::eperm);
    CHECK(tables.update_entry(dom1, dom1, chain.l2, 1, entry(theirs, rw), false).error() == Errc::einval);
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: an unprivileged domain cannot validate another domain's table", "[mm][hostile]") {
    const Chain theirs = build_chain(dom2);
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, theirs.l1, 1).error() == Errc::einval);
    CHECK(snapshot() == before);
}

TEST_CASE_METHOD(MmFixture, "mm: flags outside each level's permitted set are einval", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn spare_l1 = allocate(dom1);
    const Snapshot before = snapshot();
    struct Case {
        Mfn table;
        std::uint64_t value;
    };
    const Case refused[] = {
        {chain.l1, entry(chain.data, ro | pte::write_through)},
        {chain.l1, entry(chain.data, ro | pte::cache_disable)},
        {chain.l1, entry(chain.data, ro | pte::large)},  // PAT
        {chain.l2, entry(spare_l1, ro | pte::large)},    // a 2 MiB superpage
        {chain.l3, entry(spare_l1, ro | pte::large)},    // a 1 GiB superpage
        {chain.l2, entry(spare_l1, ro | pte::global)},
        {chain.l4, entry(spare_l1, ro | pte::global)},
    };
    for (const Case& c : refused) {
        INFO("entry " << std::hex << c.value);
        CHECK(tables.update_entry(dom1, dom1, c.table, 1, c.value, false).error() == Errc::einval);
    }
    CHECK(snapshot() == before);
    // Software bits, NX and accessed/dirty are the guest's to use.
    const std::uint64_t allowed = entry(chain.data, ro | pte::accessed | pte::dirty | pte::no_execute | (0x7ull << 9) |
                                                        (0x7FFull << 52));
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, allowed, false));
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: an L2 entry must link an L1; an L1 used as an L2 is type confusion", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    CHECK(tables.update_entry(dom1, dom1, chain.l3, 1, entry(chain.l1, rw), false).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, chain.l4, 1, entry(chain.l2, rw), false).error() == Errc::einval);
    CHECK(tables.pin(dom1, chain.l2, 1).error() == Errc::einval);
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a failing entry leaves the table's earlier entries as the guest wrote them", "[mm][hostile]") {
    const Mfn l1 = allocate(dom1);
    const Mfn data = allocate(dom1);
    const Mfn theirs = allocate(dom2);
    table(l1)[0] = entry(data, rw);
    table(l1)[1] = entry(data, ro);
    table(l1)[2] = entry(theirs, ro);
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, l1, 1).error() == Errc::ebusy);
    CHECK(snapshot() == before);  // no user bit left behind, no reference kept
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: updating an entry takes the new references before dropping the old", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn other = allocate(dom1);
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, entry(other, rw), false));
    CHECK(frames.info(chain.data).type == PageType::none);
    CHECK(frames.info(chain.data).ref_count == 1);
    CHECK(frames.info(other).type == PageType::writable);
    // Same frame again, read-only: the writable type goes, the mapping stays.
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, entry(other, ro), false));
    CHECK(frames.info(other).type == PageType::none);
    CHECK(frames.info(other).ref_count == 2);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a frame once mapped writable is flushed from TLBs before it becomes a table", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, 0, false));  // drops the writable mapping of data
    const int flushes = platform.flushes;
    CHECK(dom1.flush_owed);
    REQUIRE(tables.pin(dom1, chain.data, 1));  // the data frame becomes an L1...
    CHECK(platform.flushes == flushes + 1);    // ...only after the stale writable translation is gone
    CHECK_FALSE(dom1.flush_owed);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a former page table is flushed from TLBs before it is mapped writable", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn l1 = allocate(dom1);
    REQUIRE(tables.update_entry(dom1, dom1, chain.l2, 1, entry(l1, rw), false));  // l1 becomes an L1
    REQUIRE(tables.update_entry(dom1, dom1, chain.l2, 1, 0, false));             // ...and is unlinked
    settle();
    const int flushes = platform.flushes;
    // A CPU may still cache the L2 entry that pointed at it: writing its entries must not be
    // possible until that is flushed.
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 1, entry(l1, rw), false));
    CHECK(platform.flushes == flushes + 1);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a frame is flushed from TLBs before it returns to the heap", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(frames.release(dom1, chain.data));
    const int flushes = platform.flushes;
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, 0, false));  // last mapping: the frame is freed
    CHECK(platform.flushes == flushes + 1);
    CHECK(frames.info(chain.data).owner == DomId{pvkit::abi::DOMID_INVALID});
}

TEST_CASE_METHOD(MmFixture, "mm: preserve_ad keeps the entry's accessed and dirty bits", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    table(chain.l1)[0] |= pte::accessed | pte::dirty;  // set by the MMU
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, entry(chain.data, ro), true));
    CHECK(table(chain.l1)[0] == entry(chain.data, ro | pte::accessed | pte::dirty | pte::user | pte::guest_kernel));
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: updates go only to validated tables the caller owns", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    const Snapshot before = snapshot();
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 0, 0, false).error() == Errc::einval);  // not a table yet
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot pinned = snapshot();
    CHECK(tables.update_entry(dom2, dom2, chain.l1, 0, 0, false).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 512, 0, false).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, Mfn{frame_count}, 0, 0, false).error() == Errc::einval);
    CHECK(snapshot() == pinned);
    CHECK(before != pinned);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: pinning twice and unpinning what is not pinned are einval", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l1, 1));
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, chain.l1, 1).error() == Errc::einval);
    CHECK(tables.unpin(dom1, chain.l2).error() == Errc::einval);
    CHECK(tables.unpin(dom2, chain.l1).error() == Errc::einval);
    CHECK(tables.pin(dom1, chain.l1, 5).error() == Errc::einval);
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a table in use as a base stays a table after its pin is dropped", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.set_kernel_base(dom1, vcpus[0], chain.l4));
    REQUIRE(tables.unpin(dom1, chain.l4));
    CHECK(frames.info(chain.l4).type == PageType::l4);
    CHECK(frames.info(chain.data).type == PageType::writable);
    require_invariants();
    // Now nothing holds it writable-safe but the base: mapping it writable must still fail.
    const Mfn l1 = allocate(dom1);
    table(l1)[0] = entry(chain.l4, rw);
    CHECK(tables.pin(dom1, l1, 1).error() == Errc::ebusy);
    REQUIRE(tables.set_kernel_base(dom1, vcpus[0], build_chain(dom1).l4));
    settle();
    CHECK(frames.info(chain.l4).type == PageType::none);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: the user base may be cleared with frame 0", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.set_user_base(dom1, vcpus[0], chain.l4));
    CHECK(frames.info(chain.l4).type == PageType::l4);
    REQUIRE(tables.set_user_base(dom1, vcpus[0], Mfn{0}));
    CHECK_FALSE(vcpus[0].user_base.has_value());
    settle();
    CHECK(frames.info(chain.l4).type == PageType::none);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: linear page tables are read-only, same level, and one level deep", "[mm][hostile]") {
    const Chain a = build_chain(dom1);
    const Chain b = build_chain(dom1);
    REQUIRE(tables.pin(dom1, a.l4, 4));
    REQUIRE(tables.pin(dom1, b.l4, 4));
    SECTION("a self map, read-only, holds no reference on itself") {
        const std::uint32_t refs = frames.info(a.l4).ref_count;
        REQUIRE(tables.update_entry(dom1, dom1, a.l4, 510, entry(a.l4, ro), false));
        CHECK(frames.info(a.l4).ref_count == refs);
        CHECK(tables.update_entry(dom1, dom1, a.l4, 511, entry(a.l4, rw), false).error() == Errc::einval);
    }
    SECTION("a read-only link to another L4 holds a type reference on it") {
        REQUIRE(tables.update_entry(dom1, dom1, a.l4, 510, entry(b.l4, ro), false));
        CHECK(frames.info(b.l4).type_count == 2);
        CHECK(frames.info(a.l4).linear_count == 1);
        CHECK(frames.info(b.l4).linear_count == -1);
        const Snapshot before = snapshot();
        CHECK(tables.update_entry(dom1, dom1, a.l4, 511, entry(b.l4, rw), false).error() == Errc::einval);
        // b is a linear target: it may not hold linear entries (no chains, no cycles).
        CHECK(tables.update_entry(dom1, dom1, b.l4, 510, entry(a.l4, ro), false).error() == Errc::einval);
        CHECK(snapshot() == before);
        REQUIRE(tables.update_entry(dom1, dom1, a.l4, 510, 0, false));
        CHECK(frames.info(b.l4).linear_count == 0);
        CHECK(frames.info(a.l4).linear_count == 0);
    }
    SECTION("the same rule at L2") {
        REQUIRE(tables.update_entry(dom1, dom1, a.l2, 5, entry(b.l2, ro), false));
        CHECK(tables.update_entry(dom1, dom1, a.l2, 6, entry(b.l2, rw), false).error() == Errc::einval);
    }
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a frame given back while mapped leaves the domain with its last mapping", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const std::uint64_t pages = dom1.tot_pages;
    REQUIRE(frames.release(dom1, chain.data));
    CHECK(frames.info(chain.data).owner == dom1.id);  // still mapped, still alive
    CHECK(dom1.tot_pages == pages);
    require_invariants();
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 0, 0, false));
    CHECK(frames.info(chain.data).owner == DomId{pvkit::abi::DOMID_INVALID});
    CHECK(dom1.tot_pages == pages - 1);
    // It is gone: mapping it again is refused.
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 0, entry(chain.data, ro), false).error() == Errc::ebusy);
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: teardown returns every frame, in bounded steps", "[mm]") {
    const Chain chain = build_chain(dom1);
    const Chain second = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.pin(dom1, second.l1, 1));
    REQUIRE(tables.set_kernel_base(dom1, vcpus[0], second.l4));
    REQUIRE(tables.update_entry(dom1, dom1, chain.l4, 500, entry(second.l4, ro), false));  // linear
    REQUIRE(frames.release(dom1, chain.data));
    const std::uint64_t heap_before = frames.free_frames();
    int calls = 0;
    while (!tables.relinquish(dom1, std::span{vcpus}.first(1), 3)) {
        ++calls;
        require_invariants();
        REQUIRE(calls < 10);
    }
    CHECK(calls == 5);  // 10 frames + 8 devalidations (two 4-level chains), 3 per call: 6 calls
    CHECK(dom1.tot_pages == 0);
    CHECK(frames.free_frames() == heap_before + 10);
    CHECK_FALSE(vcpus[0].kernel_base.has_value());
    REQUIRE(frames.remove_domain(dom1));
    require_invariants();
}

TEST_CASE_METHOD(MmFixture, "mm: a frame the hypervisor shares with a domain is mappable writable, never a table", "[mm][hostile]") {
    const auto taken = frames.take_from_heap();
    REQUIRE(taken);
    const Mfn shared_info = *taken;
    frames.share_with(dom1, shared_info);
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 1, entry(shared_info, rw), false));
    CHECK(frames.info(shared_info).type == PageType::writable);
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 1, 0, false));
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, shared_info, 1).error() == Errc::einval);
    CHECK(tables.update_entry(dom1, dom1, chain.l2, 1, entry(shared_info, rw), false).error() == Errc::einval);
    CHECK(frames.release(dom1, shared_info).error() == Errc::einval);  // not the domain's to give back
    CHECK(snapshot() == before);
    CHECK(tables.update_entry(dom1, dom2, chain.l1, 1, entry(shared_info, ro), false).error() == Errc::ebusy);
    require_invariants();
    while (!tables.relinquish(dom1, std::span{vcpus}.first(1), 8))
        ;
    CHECK(frames.info(shared_info).owner == DomId{pvkit::abi::DOMID_INVALID});  // back in the heap
    require_invariants();
}

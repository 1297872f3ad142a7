#include "mmu_ops_fixture.hpp"

using namespace mm_test;


TEST_CASE_METHOD(MmuOpsFixture, "mm: mmu_update applies a batch and reports how many entries it did", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn a = allocate(dom1), b = allocate(dom1);
    CHECK(update({write_entry(chain.l1, 1, entry(a, rw)), write_entry(chain.l1, 2, entry(b, ro))}) == 0);
    CHECK(done_count() == 2);
    CHECK(frames.info(a).type == PageType::writable);
    CHECK(frames.info(b).ref_count == 2);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: a batch stops at its first failure, which changes nothing", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn a = allocate(dom1);
    const std::uint64_t before = table(chain.l1)[3];
    CHECK(update({write_entry(chain.l1, 1, entry(a, ro)), write_entry(chain.l1, 2, entry(chain.l2, rw)),
                  write_entry(chain.l1, 3, entry(a, ro))}) == hv::xen_errno(Errc::ebusy));
    CHECK(done_count() == 1);
    CHECK(table(chain.l1)[2] == 0);
    CHECK(table(chain.l1)[3] == before);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: mmu_update refuses bad commands, lists and foreign domains", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    CHECK(update({write_entry(chain.l1, 1, 0, 5)}) == hv::xen_errno(Errc::enosys));
    CHECK(mmu_update(tables, caller, args::mmu_update{GuestHandle<abi::mmu_update>{0xdead0000}, 1, done_handle(),
                                                      abi::DOMID_SELF}) == hv::xen_errno(Errc::efault));
    CHECK(done_count() == 0);
    CHECK(update({write_entry(chain.l1, 1, 0)}, 2) == hv::xen_errno(Errc::eperm));   // unprivileged
    CHECK(update({write_entry(chain.l1, 1, 0)}, 1) == hv::xen_errno(Errc::esrch));   // itself, by number
    CHECK(update({write_entry(chain.l1, 1, 0)}, 77) == hv::xen_errno(Errc::esrch));  // nobody
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: a privileged domain maps another domain's frame through foreigndom", "[mm]") {
    VcpuMmu vcpu{.domain = dom0.id};
    MmuCaller privileged{dom0, vcpu, memory, preemption, continuation};
    const Chain chain = build_chain(dom0);
    REQUIRE(tables.pin(dom0, chain.l4, 4));
    const Mfn theirs = allocate(dom2);
    const auto list = place<abi::mmu_update>(0, {write_entry(chain.l1, 1, entry(theirs, rw))});
    CHECK(mmu_update(tables, privileged, args::mmu_update{list, 1, done_handle(), abi::DOMID_SELF}) ==
          hv::xen_errno(Errc::ebusy));
    CHECK(mmu_update(tables, privileged, args::mmu_update{list, 1, done_handle(), 2}) == 0);
    CHECK(frames.info(theirs).type == PageType::writable);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: machine-to-phys updates only for the caller's own frames", "[mm][hostile]") {
    const Mfn mine = allocate(dom1), theirs = allocate(dom2);
    CHECK(update({write_entry(mine, 0, 42, abi::MMU_MACHPHYS_UPDATE)}) == 0);
    CHECK(frames.machine_to_phys(mine) == 42);
    CHECK(update({write_entry(theirs, 0, 43, abi::MMU_MACHPHYS_UPDATE)}) == hv::xen_errno(Errc::einval));
    CHECK(frames.machine_to_phys(theirs) == 0);
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: mmu_update on an ordinary frame is a plain write", "[mm]") {
    const Mfn data = allocate(dom1), theirs = allocate(dom2);
    CHECK(update({write_entry(data, 5, 0x1234)}) == 0);
    CHECK(table(data)[5] == 0x1234);
    CHECK(frames.info(data).type == PageType::none);
    CHECK(update({write_entry(theirs, 5, 0x1234)}) == hv::xen_errno(Errc::einval));
    CHECK(table(theirs)[5] == 0);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: a long batch continues where it was preempted", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn a = allocate(dom1);
    preemption.allowed = 1;  // the first element always runs; stop before the third
    const auto list = place<abi::mmu_update>(0, {write_entry(chain.l1, 1, entry(a, ro)), write_entry(chain.l1, 2, entry(a, ro)),
                                                 write_entry(chain.l1, 3, entry(a, ro)), write_entry(chain.l1, 4, entry(a, ro))});
    CHECK(mmu_update(tables, caller, args::mmu_update{list, 4, done_handle(), abi::DOMID_SELF}) == 0);
    REQUIRE(continuation.requested);
    CHECK(done_count() == 2);
    const HypercallRegisters again = continuation.registers;
    CHECK(again.number == abi::HYPERVISOR_mmu_update);
    CHECK(again.args[0] == list.address + 2 * sizeof(abi::mmu_update));
    CHECK(again.args[1] == (2 | batch_continued));
    require_invariants();
    continuation = {};
    preemption.allowed = 1 << 30;
    MmuHandlers handlers{tables};
    CHECK(hv::dispatch_hypercall(handlers, caller, again) == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(done_count() == 4);
    CHECK(frames.info(a).ref_count == 5);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: mmuext_op pins, switches bases and unpins in one batch", "[mm]") {
    const Chain chain = build_chain(dom1);
    CHECK(extended({op(abi::MMUEXT_PIN_L4_TABLE, chain.l4.value), op(abi::MMUEXT_NEW_BASEPTR, chain.l4.value),
                    op(abi::MMUEXT_NEW_USER_BASEPTR, chain.l4.value), op(abi::MMUEXT_TLB_FLUSH_LOCAL),
                    op(abi::MMUEXT_UNPIN_TABLE, chain.l4.value)}) == 0);
    CHECK(done_count() == 5);
    CHECK(vcpus[0].kernel_base == chain.l4);
    CHECK(frames.info(chain.l4).type_count == 2);  // the two bases
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: mmuext_op refuses what Xen refuses", "[mm][hostile]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn theirs = allocate(dom2);
    const Snapshot before = snapshot();
    CHECK(extended({op(abi::MMUEXT_UNPIN_TABLE, chain.l2.value)}) == hv::xen_errno(Errc::einval));
    CHECK(extended({op(abi::MMUEXT_PIN_L1_TABLE, theirs.value)}) == hv::xen_errno(Errc::einval));
    CHECK(extended({op(abi::MMUEXT_NEW_BASEPTR, chain.l1.value)}) == hv::xen_errno(Errc::einval));  // an L1
    CHECK(extended({op(abi::MMUEXT_MARK_SUPER, chain.l1.value)}) == hv::xen_errno(Errc::eopnotsupp));
    CHECK(extended({op(99)}) == hv::xen_errno(Errc::enosys));
    CHECK(extended({op(abi::MMUEXT_FLUSH_CACHE)}) == hv::xen_errno(Errc::eacces));
    CHECK(extended({op(abi::MMUEXT_TLB_FLUSH_MULTI, 0, 0xbad000)}) == hv::xen_errno(Errc::efault));
    CHECK(extended({op(abi::MMUEXT_CLEAR_PAGE, theirs.value)}) == hv::xen_errno(Errc::einval));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: SET_LDT takes a page-aligned guest range of at most 8192 entries", "[mm][hostile]") {
    CHECK(extended({op(abi::MMUEXT_SET_LDT, 0x7000'0000, 16)}) == 0);
    CHECK(vcpus[0].ldt_base == 0x7000'0000);
    CHECK(vcpus[0].ldt_entries == 16);
    CHECK(extended({op(abi::MMUEXT_SET_LDT, 0x7000'0008, 16)}) == hv::xen_errno(Errc::einval));
    CHECK(extended({op(abi::MMUEXT_SET_LDT, 0x7000'0000, 8193)}) == hv::xen_errno(Errc::einval));
    CHECK(extended({op(abi::MMUEXT_SET_LDT, 0xFFFF'8000'0000'0000, 16)}) == hv::xen_errno(Errc::einval));
    CHECK(vcpus[0].ldt_base == 0x7000'0000);
    CHECK(extended({op(abi::MMUEXT_SET_LDT, 0x1234, 0)}) == 0);  // no LDT: the base is ignored
    CHECK(vcpus[0].ldt_base == 0);
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: CLEAR_PAGE and COPY_PAGE need a destination that can be writable", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn source = allocate(dom1), destination = allocate(dom1);
    table(source)[9] = 0x99;
    CHECK(extended({op(abi::MMUEXT_COPY_PAGE, destination.value, source.value)}) == 0);
    CHECK(table(destination)[9] == 0x99);
    CHECK(extended({op(abi::MMUEXT_CLEAR_PAGE, destination.value)}) == 0);
    CHECK(table(destination)[9] == 0);
    const Snapshot before = snapshot();
    CHECK(extended({op(abi::MMUEXT_CLEAR_PAGE, chain.l1.value)}) == hv::xen_errno(Errc::einval));
    CHECK(extended({op(abi::MMUEXT_COPY_PAGE, chain.l2.value, source.value)}) == hv::xen_errno(Errc::einval));
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: update_va_mapping finds the L1 through the current page tables", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    REQUIRE(tables.set_kernel_base(dom1, vcpus[0], chain.l4));
    const Mfn page = allocate(dom1);
    const std::uint64_t va = 7 * page_size;  // L4/L3/L2 entry 0, L1 entry 7
    const int flushes = platform.flushes;
    CHECK(update_va_mapping(tables, caller, args::update_va_mapping{va, entry(page, rw), abi::UVMF_INVLPG}) == 0);
    CHECK((table(chain.l1)[7] & pte::frame_mask) == (page.value << 12));
    CHECK(platform.flushes > flushes);
    const Snapshot before = snapshot();
    CHECK(update_va_mapping(tables, caller, args::update_va_mapping{va, 0, 3}) == hv::xen_errno(Errc::einval));
    CHECK(update_va_mapping(tables, caller, args::update_va_mapping{1ull << 39, 0, 0}) == hv::xen_errno(Errc::einval));
    CHECK(update_va_mapping(tables, caller, args::update_va_mapping{0xFFFF'8000'0000'0000, 0, 0}) ==
          hv::xen_errno(Errc::einval));
    CHECK(update_va_mapping(tables, caller, args::update_va_mapping{va, 0, abi::UVMF_TLB_FLUSH | 0xbad000}) ==
          hv::xen_errno(Errc::efault));
    CHECK(update_va_mapping_otherdomain(tables, caller, args::update_va_mapping_otherdomain{va, 0, 0, 2}) ==
          hv::xen_errno(Errc::eperm));
    CHECK(snapshot() == before);
    require_invariants();
}

// Regression: a table being updated was devalidated and retyped by the cascade its new entry set
// off (a queued table revalidated as another level), so the update wrote an L3 entry into what had
// become an L1 and a guest could map a live L2 writable. The table now keeps its type throughout.
TEST_CASE_METHOD(MmuOpsFixture, "mm: a table keeps its type while one of its entries is updated", "[mm][hostile]") {
    const Mfn a = allocate(dom1), r = allocate(dom1), q = allocate(dom1), t = allocate(dom1);
    table(q)[5] = entry(t, ro);  // Q, once an L3, links T read-only: a linear entry
    table(a)[0] = entry(q, rw);
    table(a)[1] = entry(r, rw);
    REQUIRE(tables.pin(dom1, t, 3));
    REQUIRE(tables.pin(dom1, a, 4));
    REQUIRE(tables.unpin(dom1, t));  // T's only type reference is now Q's linear entry
    settle();
    require_invariants();
    // Unlink Q (queued for devalidation), then ask T for an entry linking Q as an L2. Through
    // PageTables, so that Q is still queued: mmu_update would devalidate it between the two.
    REQUIRE(tables.update_entry(dom1, dom1, a, 0, 0, false));
    CHECK(frames.info(q).has(PageInfo::devalidating));
    CHECK(tables.update_entry(dom1, dom1, t, 7, entry(q, rw), false).error() == Errc::einval);
    CHECK(frames.info(t).type == PageType::l3);
    CHECK(table(t)[7] == 0);
    require_invariants();
    settle();
    require_invariants();
}

// Devalidation finished within the memory hypercalls: a hierarchy whose last use goes is gone when
// the call returns, so the guest's next call (in Linux, the next entry of the same multicall) can
// make its tables writable.
#include "mmu_ops_fixture.hpp"

using namespace mm_test;

namespace {

// As Linux lays it out: a kernel address space, pinned and vCPU 0's base, whose L1 maps read-only
// (its direct map) the four table pages of a process's hierarchy.
struct ProcessFixture : MmuOpsFixture {
    ProcessFixture() {
        for (unsigned i = 0; i < 4; ++i)
            table(kernel.l1)[first_slot + i] = entry(process_tables()[i], ro);
        REQUIRE(tables.pin(dom1, kernel.l4, 4));
        REQUIRE(tables.set_kernel_base(dom1, vcpus[0], kernel.l4));
    }

    // The order in which xen_pgd_unpin makes them writable: the levels below first, the L4 last.
    std::array<Mfn, 4> process_tables() const { return {process.l3, process.l2, process.l1, process.l4}; }
    static std::uint64_t address_of(unsigned i) { return (first_slot + i) * page_size; }

    // update_va_mapping of table page `i` to a writable mapping, as Linux's xen_unpin_page.
    long make_writable(unsigned i) {
        return update_va_mapping(tables, caller,
                                 args::update_va_mapping{address_of(i), entry(process_tables()[i], rw), 0});
    }
    void require_hierarchy_gone() {
        CHECK(dom1.devalidating.empty());
        for (const Mfn frame : process_tables()) {
            CHECK(frames.info(frame).type == PageType::none);
            CHECK(frames.info(frame).type_count == 0);
            CHECK_FALSE(frames.info(frame).has(PageInfo::devalidating));
        }
    }
    void require_all_writable() {
        for (unsigned i = 0; i < 4; ++i) {
            INFO("table page " << i);
            CHECK(make_writable(i) == 0);
            CHECK(frames.info(process_tables()[i]).type == PageType::writable);
        }
        CHECK_FALSE(continuation.requested);
        require_invariants();
    }
    // Issues the continuation the last call asked for, as the guest does.
    long reissue() {
        const HypercallRegisters again = continuation.registers;
        continuation = {};
        MmuHandlers handlers{tables};
        return hv::dispatch_hypercall(handlers, caller, again);
    }

    static constexpr unsigned first_slot = 8;
    const Chain kernel = build_chain(dom1);
    const Chain process = build_chain(dom1);
};

}  // namespace

TEST_CASE_METHOD(ProcessFixture, "mm: unpin an L4, then map its L3/L2/L1 pages writable in the same multicall succeeds",
                 "[mm]") {
    REQUIRE(tables.pin(dom1, process.l4, 4));
    require_invariants();
    // xen_pgd_unpin's multicall: the unpin, then one update_va_mapping per table page; nothing
    // runs in between.
    CHECK(extended({op(abi::MMUEXT_UNPIN_TABLE, process.l4.value)}) == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(done_count() == 1);
    require_hierarchy_gone();
    require_invariants();
    require_all_writable();
}

TEST_CASE_METHOD(ProcessFixture, "mm: a base switch dropping an L4's last use devalidates it before returning",
                 "[mm]") {
    SECTION("NEW_BASEPTR") {
        REQUIRE(tables.set_kernel_base(dom1, vcpus[0], process.l4));  // the base is its only use
        CHECK(extended({op(abi::MMUEXT_NEW_BASEPTR, kernel.l4.value)}) == 0);
        CHECK(vcpus[0].kernel_base == kernel.l4);
    }
    SECTION("NEW_USER_BASEPTR") {
        REQUIRE(tables.set_user_base(dom1, vcpus[0], process.l4));
        CHECK(extended({op(abi::MMUEXT_NEW_USER_BASEPTR, 0)}) == 0);
        CHECK_FALSE(vcpus[0].user_base);
    }
    CHECK_FALSE(continuation.requested);
    require_hierarchy_gone();
    require_all_writable();
}

TEST_CASE_METHOD(ProcessFixture, "mm: an mmu_update unlinking the last use of a table devalidates what hangs from it",
                 "[mm]") {
    // The process's L3 linked from a second slot of the kernel's L4, and nothing else.
    CHECK(update({write_entry(kernel.l4, 1, entry(process.l3, rw))}) == 0);
    CHECK(frames.info(process.l1).type == PageType::l1);
    CHECK(update({write_entry(kernel.l4, 1, 0)}) == 0);
    CHECK_FALSE(continuation.requested);
    require_hierarchy_gone();
    require_all_writable();
}

TEST_CASE_METHOD(ProcessFixture, "mm: a preempted devalidation is resumed by the continuation before the batch goes on",
                 "[mm][continuation]") {
    REQUIRE(tables.pin(dom1, process.l4, 4));
    // Linux reuses page-table pages: the process's L3 becomes an L1 in the same batch, which needs
    // its entry's target, the former L2, to be writable: all of the hierarchy above it gone.
    const auto list = place<abi::mmuext_op>(
        0, {op(abi::MMUEXT_UNPIN_TABLE, process.l4.value), op(abi::MMUEXT_PIN_L1_TABLE, process.l3.value)});
    preemption.allowed = 1;  // the L4 and the L3 are devalidated, then others wait
    CHECK(mmuext_op(tables, caller, args::mmuext_op{list, 2, done_handle(), abi::DOMID_SELF}) == 0);
    REQUIRE(continuation.requested);
    CHECK(done_count() == 1);
    const HypercallRegisters rest = continuation.registers;
    CHECK(rest.number == abi::HYPERVISOR_mmuext_op);
    CHECK(rest.args[0] == list.address + sizeof(abi::mmuext_op));
    CHECK(rest.args[1] == (1 | batch_continued));
    CHECK(frames.info(process.l3).type == PageType::none);
    CHECK(frames.info(process.l2).has(PageInfo::devalidating));
    CHECK(frames.info(process.l1).type == PageType::l1);
    require_invariants();

    // Others still wait: the continuation devalidates one more table and asks again, unchanged.
    preemption.allowed = 0;
    CHECK(reissue() == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.args[0] == rest.args[0]);
    CHECK(continuation.registers.args[1] == rest.args[1]);
    CHECK(frames.info(process.l2).type == PageType::none);
    CHECK(frames.info(process.l1).has(PageInfo::devalidating));
    CHECK_FALSE(frames.info(process.l3).has(PageInfo::pinned));
    require_invariants();

    preemption.allowed = 1 << 30;
    CHECK(reissue() == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(done_count() == 2);
    CHECK(frames.info(process.l3).type == PageType::l1);
    CHECK(frames.info(process.l3).has(PageInfo::pinned));
    CHECK(frames.info(process.l2).type == PageType::writable);
    CHECK(dom1.devalidating.empty());
    require_invariants();
}

TEST_CASE_METHOD(ProcessFixture, "mm: a batch ending in a cut-short devalidation returns its result from the continuation",
                 "[mm][continuation]") {
    SECTION("the unpin succeeded") {
        REQUIRE(tables.pin(dom1, process.l4, 4));
        preemption.allowed = 0;
        CHECK(extended({op(abi::MMUEXT_UNPIN_TABLE, process.l4.value)}) == 0);
        REQUIRE(continuation.requested);
        CHECK(continuation.registers.args[1] == batch_continued);  // no element left
        CHECK(done_count() == 1);
        CHECK(frames.info(process.l3).has(PageInfo::devalidating));
        preemption.allowed = 1 << 30;
        CHECK(reissue() == 0);
    }
    SECTION("the pin failed after validating what it had to let go") {
        // The process's L3 goes in entry 0 of a new L4 whose entry 1 links another domain's frame:
        // validation takes the L3's hierarchy, then fails, and drops it again.
        const Mfn root = allocate(dom1);
        table(root)[0] = entry(process.l3, rw);
        table(root)[1] = entry(allocate(dom2), rw);
        preemption.allowed = 0;
        CHECK(extended({op(abi::MMUEXT_PIN_L4_TABLE, root.value)}) == 0);
        REQUIRE(continuation.requested);
        CHECK(done_count() == 0);
        CHECK(frames.info(process.l2).has(PageInfo::devalidating));
        require_invariants();
        preemption.allowed = 1 << 30;
        CHECK(reissue() == hv::xen_errno(Errc::einval));
        CHECK(done_count() == 0);
        CHECK(frames.info(root).type == PageType::none);
    }
    CHECK_FALSE(continuation.requested);
    require_hierarchy_gone();
    require_all_writable();
}

TEST_CASE_METHOD(ProcessFixture, "mm: update_va_mapping first finishes queued devalidation, a table per call if others wait",
                 "[mm][continuation]") {
    REQUIRE(tables.pin(dom1, process.l4, 4));
    REQUIRE(tables.unpin(dom1, process.l4));  // directly: the whole hierarchy is still queued
    preemption.allowed = 0;
    int issued = 1;
    CHECK(make_writable(0) == 0);
    while (continuation.requested) {
        CHECK(continuation.registers.number == abi::HYPERVISOR_update_va_mapping);
        CHECK(continuation.registers.args[0] == address_of(0));
        require_invariants();
        CHECK(reissue() == 0);
        REQUIRE(++issued < 10);
    }
    CHECK(issued == 4);  // the L4, L3, L2 and L1 one per call; the update in the last
    CHECK(frames.info(process.l3).type == PageType::writable);
    require_invariants();
}

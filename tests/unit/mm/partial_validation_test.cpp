// Validation in bounded steps: a hierarchy too large for one step is validated over several calls.
#include "mmu_ops_fixture.hpp"

using namespace mm_test;

namespace {
// A chain whose L1 maps `mapped` distinct frames: 3 + `mapped` entries to validate.
struct Deep {
    MmFixture::Chain chain;
    unsigned entries;
};
Deep deep_chain(MmFixture& machine, DomainMemory& domain, unsigned mapped) {
    const auto chain = machine.build_chain(domain);
    for (unsigned i = 1; i < mapped; ++i)
        machine.table(chain.l1)[i] = entry(machine.allocate(domain), rw);
    return {chain, 3 + mapped};
}
}  // namespace

TEST_CASE_METHOD(MmuOpsFixture, "mm: a pin too large for one step takes several, each keeping every invariant", "[mm]") {
    const Deep deep = deep_chain(*this, dom1, 40);
    int calls = 0;
    for (;;) {
        ++calls;
        // What a hypercall does for each step: a budget of 16 entries.
        tables.set_validation_step(16);
        const PageTables::ValidationStep step{tables};
        const auto pinned = tables.pin(dom1, deep.chain.l4, 4);
        if (pinned)
            break;
        REQUIRE(pinned.error() == validation_incomplete);
        CHECK(frames.info(deep.chain.l4).has(PageInfo::partial));
        CHECK_FALSE(frames.info(deep.chain.l4).has(PageInfo::pinned));
        require_invariants();
        REQUIRE(calls < 20);
    }
    CHECK(calls == 3);  // 16 of the L1's 40 entries per step; the upper levels complete with it
    CHECK(frames.info(deep.chain.l4).has(PageInfo::pinned));
    CHECK(frames.info(deep.chain.l1).type == PageType::l1);
    CHECK_FALSE(frames.info(deep.chain.l1).has(PageInfo::partial));
    CHECK(frames.info(deep.chain.data).type == PageType::writable);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: a partially validated table serves no other use", "[mm][hostile]") {
    const Deep deep = deep_chain(*this, dom1, 40);
    const Chain other = build_chain(dom1);
    REQUIRE(tables.pin(dom1, other.l4, 4));
    {
        tables.set_validation_step(10);
        const PageTables::ValidationStep step{tables};
        REQUIRE(tables.pin(dom1, deep.chain.l4, 4).error() == validation_incomplete);
    }
    const Snapshot before = snapshot();
    CHECK(tables.pin(dom1, deep.chain.l1, 2).error() == Errc::einval);  // a partial L1 is no L2
    CHECK(tables.update_entry(dom1, dom1, other.l1, 1, entry(deep.chain.l1, rw), false).error() == Errc::ebusy);
    CHECK(tables.update_entry(dom1, dom1, deep.chain.l1, 0, 0, false).error() == Errc::einval);  // not yet a table
    CHECK(snapshot() == before);
    CHECK(tables.pin(dom1, deep.chain.l1, 1));  // the same use finishes it
    CHECK_FALSE(frames.info(deep.chain.l1).has(PageInfo::partial));
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: teardown abandons partial validations and returns every frame", "[mm]") {
    const Deep deep = deep_chain(*this, dom1, 40);
    {
        tables.set_validation_step(20);
        const PageTables::ValidationStep step{tables};
        REQUIRE(tables.pin(dom1, deep.chain.l4, 4).error() == validation_incomplete);
    }
    const std::uint64_t owned = dom1.tot_pages;
    const std::uint64_t heap = frames.free_frames();
    while (!tables.relinquish(dom1, std::span{vcpus}.first(1), 4))
        require_invariants();
    CHECK(dom1.tot_pages == 0);
    CHECK(frames.free_frames() == heap + owned);
    require_invariants();
}

TEST_CASE_METHOD(MmuOpsFixture, "mm: mmuext_op continues a pin whose validation needs several steps", "[mm]") {
    const Deep deep = deep_chain(*this, dom1, 40);
    MmuHandlers handlers{tables};
    tables.set_validation_step(8);
    const auto list = place<abi::mmuext_op>(0, {op(abi::MMUEXT_PIN_L4_TABLE, deep.chain.l4.value),
                                                op(abi::MMUEXT_NEW_BASEPTR, deep.chain.l4.value)});
    HypercallRegisters call{abi::HYPERVISOR_mmuext_op, {list.address, 2, done_handle().address, abi::DOMID_SELF}};
    int issued = 0;
    for (;;) {
        ++issued;
        continuation = {};
        REQUIRE(hv::dispatch_hypercall(handlers, caller, call) == 0);
        require_invariants();
        if (!continuation.requested)
            break;
        call = continuation.registers;
        REQUIRE(issued < 20);
    }
    CHECK(issued == 5);  // 8 of the L1's 40 entries per step; NEW_BASEPTR follows in the last one
    CHECK(done_count() == 2);
    CHECK(frames.info(deep.chain.l4).has(PageInfo::pinned));
    CHECK(vcpus[0].kernel_base == deep.chain.l4);
}

#include "mmu_ops_fixture.hpp"

using namespace mm_test;

namespace {
struct MemoryOpFixture : MmuOpsFixture {
    // A xen_memory_reservation at offset 0x100 of the guest buffer, its extent list at 0x200.
    long reserve(unsigned command, std::initializer_list<abi::xen_pfn_t> extents, std::uint32_t order = 0,
                 abi::domid_t domid = abi::DOMID_SELF, std::uint64_t start_extent = 0) {
        const auto list = place<abi::xen_pfn_t>(0x200, extents);
        abi::xen_memory_reservation request{};
        request.extent_start = list;
        request.nr_extents = extents.size();
        request.extent_order = order;
        request.domid = domid;
        place<abi::xen_memory_reservation>(0x100, {request});
        return call(command | (start_extent << memop_extent_shift), 0x100);
    }
    long ask(unsigned command, abi::domid_t domid) {
        place<abi::domid_t>(0x100, {domid});
        return call(command, 0x100);
    }
    long call(std::uint64_t command, std::uint64_t offset) {
        return hv::dispatch_hypercall(handlers, caller,
                                      HypercallRegisters{abi::HYPERVISOR_memory_op, {command, GuestBuffer::base + offset}});
    }
    abi::xen_pfn_t extent(unsigned index) {
        abi::xen_pfn_t value;
        std::memcpy(&value, memory.bytes.data() + 0x200 + index * sizeof(value), sizeof(value));
        return value;
    }

    MmuHandlers handlers{tables};
};
}  // namespace

TEST_CASE_METHOD(MemoryOpFixture, "mm: increase_reservation hands out frames and names them", "[mm]") {
    CHECK(reserve(abi::XENMEM_increase_reservation, {0, 0, 0}) == 3);
    CHECK(dom1.tot_pages == 3);
    for (unsigned i = 0; i < 3; ++i)
        CHECK(frames.info(Mfn{extent(i)}).owner == dom1.id);
    require_invariants();
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: a reservation stops at the domain's limit and reports what it did", "[mm][hostile]") {
    DomainMemory small{DomId{5}, 2};
    REQUIRE(frames.add_domain(small));
    VcpuMmu vcpu{.domain = small.id};
    MmuCaller tiny{small, vcpu, memory, preemption, continuation};
    const auto list = place<abi::xen_pfn_t>(0x200, {0, 0, 0, 0});
    abi::xen_memory_reservation request{};
    request.extent_start = list;
    request.nr_extents = 4;
    request.domid = abi::DOMID_SELF;
    place<abi::xen_memory_reservation>(0x100, {request});
    CHECK(hv::dispatch_hypercall(handlers, tiny, HypercallRegisters{abi::HYPERVISOR_memory_op,
                                                                     {abi::XENMEM_increase_reservation, GuestBuffer::base + 0x100}}) == 2);
    CHECK(small.tot_pages == 2);
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: extents larger than a page are not handed out", "[mm]") {
    CHECK(reserve(abi::XENMEM_increase_reservation, {0}, 9) == 0);
    CHECK(dom1.tot_pages == 0);
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: populate_physmap records the guest frame in the M2P", "[mm]") {
    CHECK(reserve(abi::XENMEM_populate_physmap, {100, 101}) == 2);
    CHECK(frames.machine_to_phys(Mfn{extent(0)}) == 100);
    CHECK(frames.machine_to_phys(Mfn{extent(1)}) == 101);
    require_invariants();
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: decrease_reservation gives frames back, even pinned or mapped ones", "[mm]") {
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Mfn spare = allocate(dom1);
    const std::uint64_t pages = dom1.tot_pages;
    CHECK(reserve(abi::XENMEM_decrease_reservation, {spare.value, chain.data.value}) == 2);
    CHECK(frames.info(spare).owner == DomId{pvkit::abi::DOMID_INVALID});  // freed at once
    CHECK(frames.info(chain.data).owner == dom1.id);                     // still mapped by the L1
    CHECK(dom1.tot_pages == pages - 1);
    require_invariants();
    CHECK(reserve(abi::XENMEM_decrease_reservation, {chain.l4.value}) == 1);
    CHECK_FALSE(continuation.requested);
    // The L4 went with its pin; the tables below it were devalidated before memory_op returned,
    // which dropped the last mapping of the data frame, which went too.
    CHECK(frames.info(chain.l4).owner == DomId{pvkit::abi::DOMID_INVALID});
    CHECK(frames.info(chain.data).owner == DomId{pvkit::abi::DOMID_INVALID});
    CHECK(frames.info(chain.l1).type == PageType::none);
    CHECK(dom1.tot_pages == pages - 3);
    require_invariants();
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: decrease_reservation stops at a frame the domain does not own", "[mm][hostile]") {
    const Mfn mine = allocate(dom1), theirs = allocate(dom2);
    const Snapshot before = snapshot();
    CHECK(reserve(abi::XENMEM_decrease_reservation, {theirs.value, mine.value}) == 0);
    CHECK(reserve(abi::XENMEM_decrease_reservation, {frame_count + 9}) == 0);
    CHECK(snapshot().pages == before.pages);
    CHECK(reserve(abi::XENMEM_decrease_reservation, {mine.value, theirs.value}) == 1);
    require_invariants();
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: reservation sizes of oneself, or of others with privilege", "[mm][hostile]") {
    allocate(dom1);
    allocate(dom2);
    allocate(dom2);
    CHECK(ask(abi::XENMEM_current_reservation, abi::DOMID_SELF) == 1);
    CHECK(ask(abi::XENMEM_maximum_reservation, abi::DOMID_SELF) == 100);
    CHECK(ask(abi::XENMEM_current_reservation, 2) == hv::xen_errno(Errc::eperm));
    CHECK(ask(abi::XENMEM_current_reservation, 9) == hv::xen_errno(Errc::esrch));
    VcpuMmu vcpu{.domain = dom0.id};
    MmuCaller privileged{dom0, vcpu, memory, preemption, continuation};
    place<abi::domid_t>(0x100, {2});
    CHECK(hv::dispatch_hypercall(handlers, privileged, HypercallRegisters{abi::HYPERVISOR_memory_op,
                                                                           {abi::XENMEM_current_reservation, GuestBuffer::base + 0x100}}) == 2);
    CHECK(call(abi::XENMEM_maximum_ram_page, 0) == static_cast<long>(frame_count));
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: a long reservation continues from the extent it reached", "[mm]") {
    preemption.allowed = 1;
    CHECK(reserve(abi::XENMEM_increase_reservation, {0, 0, 0, 0, 0}) == 2);
    REQUIRE(continuation.requested);
    const HypercallRegisters again = continuation.registers;
    CHECK(again.args[0] == (abi::XENMEM_increase_reservation | (2u << memop_extent_shift)));
    continuation = {};
    preemption.allowed = 1 << 30;
    CHECK(hv::dispatch_hypercall(handlers, caller, again) == 5);
    CHECK(dom1.tot_pages == 5);
    require_invariants();
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: machphys_mapping gives Xen's fixed M2P window", "[mm]") {
    REQUIRE(call(abi::XENMEM_machphys_mapping, 0x100) == 0);
    abi::xen_machphys_mapping mapping;
    std::memcpy(&mapping, memory.bytes.data() + 0x100, sizeof mapping);
    CHECK(mapping.v_start == 0xFFFF'8000'0000'0000);
    CHECK(mapping.v_end == 0xFFFF'8040'0000'0000);
    CHECK(mapping.max_mfn == (0x40'0000'0000 >> 3) - 1);
    CHECK(call(abi::XENMEM_machphys_mapping, 0xF000'0000) == hv::xen_errno(Errc::efault));
}

TEST_CASE_METHOD(MemoryOpFixture, "mm: memory_op refuses unknown sub-ops and misplaced extents", "[mm][hostile]") {
    CHECK(call(abi::XENMEM_memory_map, 0x100) == hv::xen_errno(Errc::enosys));
    CHECK(call(63, 0x100) == hv::xen_errno(Errc::enosys));
    CHECK(call(abi::XENMEM_maximum_ram_page | (1u << memop_extent_shift), 0) == hv::xen_errno(Errc::einval));
    CHECK(reserve(abi::XENMEM_increase_reservation, {0}, 0, abi::DOMID_SELF, 5) == hv::xen_errno(Errc::einval));
    CHECK(call(abi::XENMEM_increase_reservation, 0xF000'0000) == hv::xen_errno(Errc::efault));
    CHECK(dom1.tot_pages == 0);
}

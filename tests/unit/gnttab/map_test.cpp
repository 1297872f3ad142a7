// map_grant_ref, unmap_grant_ref and unmap_and_replace.
#include "gnttab_fixture.hpp"

using namespace gnttab_test;

namespace {
// Writes through a domain's mapping: the frame its L1 entry names, as the CPU would reach it.
void write_through(ArrayPlatform& platform, std::uint64_t pte, std::string_view text) {
    REQUIRE((pte & pte::present));
    std::memcpy(platform.map(pte::frame(pte)), text.data(), text.size());
}
}  // namespace

TEST_CASE_METHOD(GnttabFixture, "gnttab: dom1 grants a page, dom2 maps it writable, writes, dom1 reads", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 8, dom2.id, shared);
    const Chain chain = address_space(dom2);

    const Mapped mapped = map(as2, dom1.id, 8, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    CHECK(mapped.handle == 0);
    CHECK(mapped.dev_bus_addr == shared.value << 12);
    const std::uint64_t installed = table(chain.l1)[1];
    CHECK(pte::frame(installed) == shared);
    CHECK((installed & (pte::present | pte::writable | pte::no_execute)) == (pte::present | pte::writable | pte::no_execute));
    CHECK((installed & pte::guest_kernel));  // a kernel mapping: no GNTMAP_application_map
    CHECK(flags(g1, 8) == (abi::GTF_permit_access | abi::GTF_reading | abi::GTF_writing));
    CHECK(frames.info(shared).ref_count == 2);
    CHECK(frames.info(shared).type == PageType::writable);
    CHECK(g1.active[8].user == dom2.id);
    CHECK(g1.active[8].writers == 1);
    require_all_invariants();

    write_through(platform, installed, "written by dom2");
    CHECK(std::memcmp(platform.map(shared), "written by dom2", 15) == 0);  // what dom1 reads

    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    CHECK(table(chain.l1)[1] == 0);
    CHECK(flags(g1, 8) == abi::GTF_permit_access);
    CHECK(frames.info(shared).ref_count == 1);
    CHECK(frames.info(shared).type == PageType::none);
    CHECK(g1.table.pinned == 0);
    CHECK(g2.table.maptrack_in_use == 0);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a read-only mapping sets GTF_reading and maps without write access", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 3, dom2.id, shared, abi::GTF_permit_access | abi::GTF_readonly);
    const Chain chain = address_space(dom2);
    const std::uint32_t user_map = abi::GNTMAP_host_map | abi::GNTMAP_readonly | abi::GNTMAP_application_map |
                                   (5u << abi::GNTMAP_guest_avail0_bit);
    const Mapped mapped = map(as2, dom1.id, 3, page_address(2), user_map);
    REQUIRE(mapped.status == status(GS::okay));
    const std::uint64_t installed = table(chain.l1)[2];
    CHECK(!(installed & pte::writable));
    CHECK(!(installed & pte::guest_kernel));  // reachable from guest user mode
    CHECK(((installed >> 9) & 7) == 5);        // the guest's available bits
    CHECK(flags(g1, 3) == (abi::GTF_permit_access | abi::GTF_readonly | abi::GTF_reading));
    CHECK(frames.info(shared).type == PageType::none);
    require_all_invariants();
    CHECK(unmap(as2, mapped.handle, page_address(2)) == status(GS::okay));
    CHECK(flags(g1, 3) == (abi::GTF_permit_access | abi::GTF_readonly));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: with GNTMAP_contains_pte the mapping goes into the named L1 entry", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 20, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const std::uint32_t by_pte = abi::GNTMAP_host_map | abi::GNTMAP_contains_pte;
    const Mapped mapped = map(as2, dom1.id, 20, pte_address(chain.l1, 7), by_pte);
    REQUIRE(mapped.status == status(GS::okay));
    CHECK(pte::frame(table(chain.l1)[7]) == shared);
    CHECK(g2.maptrack[mapped.handle].pte == pte_address(chain.l1, 7));
    // The unmap names the entry the same way; by virtual address it is another entry.
    CHECK(unmap(as2, mapped.handle, page_address(7)) == status(GS::general_error));
    CHECK(unmap(as2, mapped.handle, pte_address(chain.l1, 7)) == status(GS::okay));
    CHECK(table(chain.l1)[7] == 0);
    require_all_invariants();
}

// XENFEAT_gnttab_map_avail_bits: Linux's gntdev maps with GNTMAP_contains_pte and
// 1 << _GNTMAP_guest_avail0 so that the PTE comes out with _PAGE_SPECIAL (bit 9) set.
TEST_CASE_METHOD(GnttabFixture, "gnttab: flags bits 16-18 become the available bits 9-11 of the grant PTE", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 21, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const std::uint64_t avail = GENERATE(range(0u, 8u));
    const bool by_pte = GENERATE(false, true);
    INFO("available bits " << avail << (by_pte ? ", by PTE address" : ", by virtual address"));
    const unsigned index = 9;
    const std::uint64_t host_addr = by_pte ? pte_address(chain.l1, index) : page_address(index);
    const std::uint32_t map_flags = abi::GNTMAP_host_map | abi::GNTMAP_application_map |
                                    (by_pte ? abi::GNTMAP_contains_pte : 0u) |
                                    static_cast<std::uint32_t>(avail << abi::GNTMAP_guest_avail0_bit);

    const Mapped mapped = map(as2, dom1.id, 21, host_addr, map_flags);
    REQUIRE(mapped.status == status(GS::okay));
    // The whole entry: the grant PTE's fixed bits, the frame, and the guest's three bits.
    CHECK(table(chain.l1)[index] == ((shared.value << 12) | pte::present | pte::writable | pte::user | pte::accessed |
                                     pte::dirty | pte::no_execute | (avail << 9)));
    require_all_invariants();
    // The unmap does not need to name the available bits: it checks the frame and the access.
    CHECK(unmap(as2, mapped.handle, host_addr) == status(GS::okay));
    CHECK(table(chain.l1)[index] == 0);
    CHECK(flags(g1, 21) == abi::GTF_permit_access);
    CHECK(frames.info(shared).ref_count == 1);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: map_grant_ref refusals carry Xen's status and change nothing", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1), table1 = allocate(dom1), others = allocate(dom0);
    REQUIRE(tables.pin(dom1, table1, 1));
    grant(g1, 1, dom2.id, shared);
    grant(g1, 2, dom2.id, shared, abi::GTF_permit_access | abi::GTF_readonly);
    grant(g1, 3, dom2.id, shared, abi::GTF_accept_transfer);
    grant(g1, 4, dom0.id, shared);                                    // for someone else
    grant(g1, 5, dom2.id, shared, abi::GTF_permit_access | abi::GTF_sub_page);
    grant(g1, 6, dom2.id, others);                                    // not dom1's frame
    grant(g1, 7, dom2.id, table1);                                    // a page table of dom1's
    grant(g1, 8, dom2.id, Mfn{0xFFFF'FFFF});                          // no such frame
    grant(g1, 9, dom0.id, shared);
    const Chain chain = address_space(dom2);
    address_space(dom0);
    REQUIRE(map(as0, dom1.id, 9, page_address(1)).status == status(GS::okay));  // dom0 holds grant 9
    const std::uint32_t host = abi::GNTMAP_host_map;
    struct Case {
        const char* what;
        abi::gnttab_map_grant_ref op;
        GS expected;
    };
    const Case cases[] = {
        {"no mapping asked for", map_op(dom1.id, 1, page_address(1), 0), GS::bad_gntref},
        {"a device mapping", map_op(dom1.id, 1, page_address(1), host | abi::GNTMAP_device_map), GS::general_error},
        {"an unknown domain", map_op(DomId{77}, 1, page_address(1)), GS::bad_domain},
        {"DOMID_SELF", map_op(DomId{abi::DOMID_SELF}, 1, page_address(1)), GS::bad_domain},
        {"a ref beyond the table", map_op(dom1.id, 512, page_address(1)), GS::bad_gntref},
        {"an entry granting nothing", map_op(dom1.id, 10, page_address(1)), GS::general_error},
        {"a transfer entry", map_op(dom1.id, 3, page_address(1)), GS::general_error},
        {"an entry for another domain", map_op(dom1.id, 4, page_address(1)), GS::general_error},
        {"writable, of a read-only grant", map_op(dom1.id, 2, page_address(1)), GS::general_error},
        {"a sub-page grant", map_op(dom1.id, 5, page_address(1)), GS::general_error},
        {"another domain's frame", map_op(dom1.id, 6, page_address(1)), GS::bad_page},
        {"a frame that does not exist", map_op(dom1.id, 8, page_address(1)), GS::bad_page},
        {"writable, of a page table", map_op(dom1.id, 7, page_address(1)), GS::general_error},
        {"a grant pinned by another domain", map_op(dom1.id, 9, page_address(1)), GS::general_error},
        {"an address no L1 maps", map_op(dom1.id, 1, 0x40'0000'0000), GS::general_error},
        {"an address in the hypervisor's range", map_op(dom1.id, 1, 0xFFFF'8000'0000'1000), GS::general_error},
        {"a misaligned PTE address", map_op(dom1.id, 1, pte_address(chain.l1, 1) + 4, host | abi::GNTMAP_contains_pte),
         GS::general_error},
        {"a PTE address in a non-L1", map_op(dom1.id, 1, pte_address(chain.l2, 1), host | abi::GNTMAP_contains_pte),
         GS::general_error},
    };
    for (const Case& bad : cases) {
        INFO(bad.what);
        const GrantState before = state();
        REQUIRE(call(as2, abi::GNTTABOP_map_grant_ref, {bad.op}) == 0);
        const auto answer = result<abi::gnttab_map_grant_ref>();
        CHECK(answer.status == status(bad.expected));
        CHECK(answer.handle == 0xEEEE'EEEE);  // untouched
        CHECK(state() == before);
    }
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a page table granted by its owner maps only read-only", "[gnttab]") {
    const Mfn table1 = allocate(dom1);
    REQUIRE(tables.pin(dom1, table1, 1));
    grant(g1, 7, dom2.id, table1);
    address_space(dom2);
    CHECK(map(as2, dom1.id, 7, page_address(1)).status == status(GS::general_error));
    CHECK(flags(g1, 7) == abi::GTF_permit_access);
    const Mapped mapped = map(as2, dom1.id, 7, page_address(1), abi::GNTMAP_host_map | abi::GNTMAP_readonly);
    CHECK(mapped.status == status(GS::okay));
    CHECK(frames.info(table1).type == PageType::l1);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: unmap_grant_ref refusals carry Xen's status and change nothing", "[gnttab][hostile]") {
    const Mfn shared = allocate(dom1), own = allocate(dom2);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    REQUIRE(tables.update_entry(dom2, dom2, chain.l1, 2, entry(own, rw), false));
    struct Case {
        const char* what;
        GrantHandle handle;
        std::uint64_t host_addr, dev_bus_addr;
        GS expected;
    };
    const Case cases[] = {
        {"a handle never given", 1, page_address(1), 0, GS::bad_handle},
        {"a handle far out of range", 0xFFFF'FFFF, page_address(1), 0, GS::bad_handle},
        {"another address, mapping another frame", mapped.handle, page_address(2), 0, GS::general_error},
        {"an address no L1 maps", mapped.handle, 0x40'0000'0000, 0, GS::general_error},
        {"a wrong bus address", mapped.handle, page_address(1), (shared.value + 1) << 12, GS::general_error},
    };
    for (const Case& bad : cases) {
        INFO(bad.what);
        const GrantState before = state();
        CHECK(unmap(as2, bad.handle, bad.host_addr, bad.dev_bus_addr) == status(bad.expected));
        CHECK(state() == before);
    }
    // host_addr 0 asks nothing of the host mapping: okay, and it stays.
    const GrantState before = state();
    CHECK(unmap(as2, mapped.handle, 0, shared.value << 12) == status(GS::okay));
    CHECK(state() == before);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a grant mapped twice stays in use until its last mapping goes", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    address_space(dom2);
    const Mapped reader = map(as2, dom1.id, 1, page_address(1), abi::GNTMAP_host_map | abi::GNTMAP_readonly);
    REQUIRE(reader.status == status(GS::okay));
    CHECK(flags(g1, 1) == (abi::GTF_permit_access | abi::GTF_reading));
    const Mapped writer = map(as2, dom1.id, 1, page_address(2));
    REQUIRE(writer.status == status(GS::okay));
    CHECK(writer.handle != reader.handle);
    CHECK(flags(g1, 1) == (abi::GTF_permit_access | abi::GTF_reading | abi::GTF_writing));
    CHECK(frames.info(shared).ref_count == 3);
    require_all_invariants();
    CHECK(unmap(as2, writer.handle, page_address(2)) == status(GS::okay));
    CHECK(flags(g1, 1) == (abi::GTF_permit_access | abi::GTF_reading));
    require_all_invariants();
    CHECK(unmap(as2, reader.handle, page_address(1)) == status(GS::okay));
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    CHECK(frames.info(shared).ref_count == 1);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: unmap_and_replace moves the entry at new_addr over the mapping", "[gnttab]") {
    const Mfn shared = allocate(dom1), own = allocate(dom2);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    REQUIRE(tables.update_entry(dom2, dom2, chain.l1, 3, entry(own, rw), false));

    // new_addr mapping the same entry, or nothing the L1s reach, is refused.
    for (std::uint64_t new_addr : {page_address(1), std::uint64_t{0x40'0000'0000}}) {
        const GrantState before = state();
        CHECK(call(as2, abi::GNTTABOP_unmap_and_replace,
                   {abi::gnttab_unmap_and_replace{page_address(1), new_addr, mapped.handle, 0x5555}}) == 0);
        CHECK(result<abi::gnttab_unmap_and_replace>().status == status(GS::general_error));
        CHECK(state() == before);
    }
    CHECK(call(as2, abi::GNTTABOP_unmap_and_replace,
               {abi::gnttab_unmap_and_replace{page_address(1), page_address(3), mapped.handle, 0x5555}}) == 0);
    CHECK(result<abi::gnttab_unmap_and_replace>().status == status(GS::okay));
    CHECK(pte::frame(table(chain.l1)[1]) == own);
    CHECK(table(chain.l1)[3] == 0);
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    CHECK(frames.info(own).ref_count == 2);
    CHECK(frames.info(shared).ref_count == 1);
    require_all_invariants();

    // With new_addr 0 it is a plain unmap; a mapping made through its PTE address cannot be replaced.
    const Mapped by_pte = map(as2, dom1.id, 1, pte_address(chain.l1, 4), abi::GNTMAP_host_map | abi::GNTMAP_contains_pte);
    REQUIRE(by_pte.status == status(GS::okay));
    CHECK(call(as2, abi::GNTTABOP_unmap_and_replace,
               {abi::gnttab_unmap_and_replace{pte_address(chain.l1, 4), page_address(1), by_pte.handle, 0}}) == 0);
    CHECK(result<abi::gnttab_unmap_and_replace>().status == status(GS::general_error));
    CHECK(call(as2, abi::GNTTABOP_unmap_and_replace,
               {abi::gnttab_unmap_and_replace{pte_address(chain.l1, 4), 0, by_pte.handle, 0}}) == 0);
    CHECK(result<abi::gnttab_unmap_and_replace>().status == status(GS::okay));
    CHECK(table(chain.l1)[4] == 0);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a mapper out of maptrack entries gets no_device_space", "[gnttab]") {
    DomainMemory dom3{DomId{3}, 20};
    REQUIRE(frames.add_domain(dom3));
    DomainGrants g3{dom3, 1, 2};
    REQUIRE(grants.add(g3.table));
    VcpuMmu vcpu3{.domain = dom3.id};
    MmuCaller as3{dom3, vcpu3, memory, preemption, continuation};
    const Chain chain = build_chain(dom3);
    REQUIRE(tables.pin(dom3, chain.l4, 4));
    REQUIRE(tables.set_kernel_base(dom3, vcpu3, chain.l4));
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom3.id, shared);
    CHECK(map(as3, dom1.id, 1, page_address(1)).status == status(GS::okay));
    CHECK(map(as3, dom1.id, 1, page_address(2)).status == status(GS::okay));
    const GrantState before = state();
    CHECK(map(as3, dom1.id, 1, page_address(3)).status == status(GS::no_device_space));
    CHECK(state() == before);

    // A handle just freed is reused only when nothing else is left.
    CHECK(unmap(as3, 0, page_address(1)) == status(GS::okay));
    const Mapped again = map(as3, dom1.id, 1, page_address(3));
    CHECK(again.status == status(GS::okay));
    CHECK(again.handle == 0);
    CHECK(unmap(as3, 0, page_address(3)) == status(GS::okay));
    CHECK(unmap(as3, 1, page_address(2)) == status(GS::okay));
    CHECK(map(as3, dom1.id, 1, page_address(3)).handle == 0);  // the older of the two free ones
    CHECK(unmap(as3, 0, page_address(3)) == status(GS::okay));

    // Tear dom3 down before its locals go.
    while (!grants.release_mappings(g3.table, 4)) {
    }
    grants.mark_dying(g3.table);
    while (!tables.relinquish(dom3, std::span{&vcpu3, 1}, 8)) {
    }
    REQUIRE(grants.remove(g3.table));
    REQUIRE(frames.remove_domain(dom3));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a long map batch continues where it was preempted", "[gnttab]") {
    const Mfn a = allocate(dom1), b = allocate(dom1), c = allocate(dom1);
    grant(g1, 1, dom2.id, a);
    grant(g1, 2, dom2.id, b);
    grant(g1, 3, dom2.id, c);
    address_space(dom2);
    preemption.allowed = 1;
    CHECK(call(as2, abi::GNTTABOP_map_grant_ref,
               {map_op(dom1.id, 1, page_address(1)), map_op(dom1.id, 2, page_address(2)),
                map_op(dom1.id, 3, page_address(3))}) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.number == abi::HYPERVISOR_grant_table_op);
    CHECK(continuation.registers.args[0] == abi::GNTTABOP_map_grant_ref);
    CHECK(continuation.registers.args[1] == GuestBuffer::base + 2 * sizeof(abi::gnttab_map_grant_ref));
    CHECK(continuation.registers.args[2] == 1);
    CHECK(g2.table.maptrack_in_use == 2);
    CHECK(result<abi::gnttab_map_grant_ref>(2).status == 0);  // not reached: as the guest wrote it
    require_all_invariants();

    continuation = {};
    preemption.allowed = 1 << 30;
    CHECK(hv::gnttab::grant_table_op(grants, as2,
                                     args::grant_table_op{abi::GNTTABOP_map_grant_ref,
                                                          GuestHandle<void>{GuestBuffer::base + 2 * sizeof(abi::gnttab_map_grant_ref)},
                                                          1}) == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(result<abi::gnttab_map_grant_ref>(2).status == status(GS::okay));
    CHECK(g2.table.maptrack_in_use == 3);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: an unmap batch flushes the mapper's TLB before any pin goes", "[gnttab]") {
    const Mfn a = allocate(dom1), b = allocate(dom1);
    grant(g1, 1, dom2.id, a);
    grant(g1, 2, dom2.id, b);
    address_space(dom2);
    const GrantHandle first = map(as2, dom1.id, 1, page_address(1)).handle;
    const GrantHandle second = map(as2, dom1.id, 2, page_address(2)).handle;
    const int flushes = platform.flushes;
    CHECK(call(as2, abi::GNTTABOP_unmap_grant_ref,
               {abi::gnttab_unmap_grant_ref{page_address(1), 0, first, 0}, abi::gnttab_unmap_grant_ref{page_address(2), 0, second, 0},
                abi::gnttab_unmap_grant_ref{page_address(2), 0, second, 0}}) == 0);
    CHECK(platform.flushes == flushes + 1);  // one flush for the chunk
    CHECK(result<abi::gnttab_unmap_grant_ref>(0).status == status(GS::okay));
    CHECK(result<abi::gnttab_unmap_grant_ref>(1).status == status(GS::okay));
    CHECK(result<abi::gnttab_unmap_grant_ref>(2).status == status(GS::bad_handle));  // the same handle again
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    CHECK(flags(g1, 2) == abi::GTF_permit_access);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a batch stops with EFAULT at a structure it cannot read", "[gnttab][hostile]") {
    const Mfn a = allocate(dom1);
    grant(g1, 1, dom2.id, a);
    address_space(dom2);
    // Two structures, the second past the end of the guest's memory.
    const std::uint64_t last = GuestBuffer::base + memory.bytes.size() - sizeof(abi::gnttab_map_grant_ref);
    const auto op = map_op(dom1.id, 1, page_address(1));
    std::memcpy(memory.bytes.data() + (last - GuestBuffer::base), &op, sizeof(op));
    CHECK(hv::gnttab::grant_table_op(grants, as2,
                                     args::grant_table_op{abi::GNTTABOP_map_grant_ref, GuestHandle<void>{last}, 2}) ==
          error(Errc::efault));
    CHECK(g2.table.maptrack_in_use == 1);  // the first was done and reported
    abi::gnttab_map_grant_ref done;
    std::memcpy(&done, memory.bytes.data() + (last - GuestBuffer::base), sizeof(done));
    CHECK(done.status == status(GS::okay));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: an unmap batch settles what it did before it is preempted", "[gnttab]") {
    const Mfn a = allocate(dom1), b = allocate(dom1);
    grant(g1, 1, dom2.id, a);
    grant(g1, 2, dom2.id, b);
    address_space(dom2);
    const GrantHandle first = map(as2, dom1.id, 1, page_address(1)).handle;
    const GrantHandle second = map(as2, dom1.id, 2, page_address(2)).handle;
    preemption.allowed = 0;
    CHECK(call(as2, abi::GNTTABOP_unmap_grant_ref,
               {abi::gnttab_unmap_grant_ref{page_address(1), 0, first, 0},
                abi::gnttab_unmap_grant_ref{page_address(2), 0, second, 0}}) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.args[0] == abi::GNTTABOP_unmap_grant_ref);
    CHECK(continuation.registers.args[1] == GuestBuffer::base + sizeof(abi::gnttab_unmap_grant_ref));
    CHECK(continuation.registers.args[2] == 1);
    CHECK(flags(g1, 1) == abi::GTF_permit_access);  // the first is complete: pin and handle gone
    CHECK(flags(g1, 2) == (abi::GTF_permit_access | abi::GTF_reading | abi::GTF_writing));
    CHECK(g2.table.maptrack_in_use == 1);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a mapping over a present entry replaces it, as on Xen", "[gnttab]") {
    const Mfn shared = allocate(dom1);
    grant(g1, 1, dom2.id, shared);
    const Chain chain = address_space(dom2);
    REQUIRE(tables.update_entry(dom2, dom2, chain.l1, 1, entry(chain.data, rw), false));  // page 1 too
    REQUIRE(frames.info(chain.data).ref_count == 3);
    const Mapped mapped = map(as2, dom1.id, 1, page_address(1));
    REQUIRE(mapped.status == status(GS::okay));
    CHECK(frames.info(chain.data).ref_count == 2);  // the old entry's references went with it
    CHECK(unmap(as2, mapped.handle, page_address(1)) == status(GS::okay));
    CHECK(table(chain.l1)[1] == 0);  // unmapping leaves the entry empty
    require_all_invariants();
}

// setup_table, query_size, set_version, get_version, get_status_frames, swap_grant_ref and the
// command decoding of grant_table_op.
#include "gnttab_fixture.hpp"

using namespace gnttab_test;

namespace {
abi::gnttab_setup_table setup_op(abi::domid_t dom, std::uint32_t nr_frames, std::uint64_t frame_list) {
    abi::gnttab_setup_table op{};
    op.dom = dom;
    op.nr_frames = nr_frames;
    op.status = 0x5555;
    op.frame_list = GuestHandle<abi::xen_pfn_t>{frame_list};
    return op;
}
constexpr std::uint64_t list_offset = 0x1000;
constexpr std::uint64_t frame_list = GuestBuffer::base + list_offset;
}  // namespace

TEST_CASE_METHOD(GnttabFixture, "gnttab: a domain starts with one grant-table frame, shared with it", "[gnttab]") {
    CHECK(g1.table.nr_frames == 1);
    CHECK(g1.table.max_frames == 4);
    const auto& page = frames.info(Mfn{g1.frames[0]});
    CHECK(page.owner == dom1.id);
    CHECK(page.has(PageInfo::shared));
    CHECK(page.has(PageInfo::allocated));
    CHECK(frames.machine_to_phys(Mfn{g1.frames[0]}) == ~std::uint64_t{0});
    // Shared with it: the domain may map it writable, and cannot make it a page table.
    const Chain chain = address_space(dom1);
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(Mfn{g1.frames[0]}, rw), false));
    CHECK_FALSE(tables.pin(dom1, Mfn{g1.frames[0]}, 1));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: registering tables: one per domain, with storage for a frame", "[gnttab]") {
    DomainGrants again{dom1};
    CHECK(grants.add(again.table).error() == Errc::eexist);
    DomainMemory dom3{DomId{3}, 10};
    REQUIRE(frames.add_domain(dom3));
    DomainGrants tiny{dom3, 0};
    CHECK(grants.add(tiny.table).error() == Errc::einval);
    DomainMemory dom4{DomId{4}, 10};
    REQUIRE(frames.add_domain(dom4));
    DomainGrants starved{dom4};
    {
        const HeapHog hog{*this, 0};  // no frame left for a grant table
        CHECK(grants.add(starved.table).error() == Errc::enomem);
    }
    CHECK(grants.find(DomId{4}) == nullptr);
    CHECK(dom4.tot_pages == 0);
    CHECK(grants.remove(starved.table).error() == Errc::einval);  // never registered
    REQUIRE(frames.remove_domain(dom4));
    REQUIRE(frames.remove_domain(dom3));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: setup_table grows the table and lists its frames", "[gnttab]") {
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 3, frame_list)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::okay));
    CHECK(g1.table.nr_frames == 3);
    for (unsigned i = 0; i < 3; ++i) {
        std::uint64_t listed;
        std::memcpy(&listed, memory.bytes.data() + list_offset + i * 8, 8);
        CHECK(listed == g1.frames[i]);
        CHECK(frames.info(Mfn{listed}).owner == dom1.id);
        CHECK(frames.info(Mfn{listed}).has(PageInfo::shared));
    }
    // A smaller request lists the first frames and never shrinks the table; its own id works as
    // DOMID_SELF does.
    std::memset(memory.bytes.data() + list_offset, 0, 24);
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(1, 1, frame_list)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::okay));
    CHECK(g1.table.nr_frames == 3);
    std::uint64_t listed[2];
    std::memcpy(listed, memory.bytes.data() + list_offset, 16);
    CHECK(listed[0] == g1.frames[0]);
    CHECK(listed[1] == 0);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: setup_table refusals carry Xen's status and change nothing", "[gnttab][hostile]") {
    const GrantState before = state();
    struct Case {
        MmuCaller* caller;
        abi::domid_t dom;
        std::uint32_t nr_frames;
        GS expected;
    };
    for (const Case& bad : {Case{&as1, abi::DOMID_SELF, 5, GS::general_error},  // more than its maximum
                            Case{&as1, 77, 1, GS::bad_domain},
                            Case{&as1, 2, 1, GS::permission_denied},            // another's, unprivileged
                            Case{&as0, 77, 1, GS::bad_domain},
                            Case{&as0, 2, 5, GS::general_error}}) {
        CHECK(call(*bad.caller, abi::GNTTABOP_setup_table, {setup_op(bad.dom, bad.nr_frames, frame_list)}) == 0);
        CHECK(result<abi::gnttab_setup_table>().status == status(bad.expected));
        CHECK(state() == before);
    }
    // Hypercall-level refusals: one structure only, readable, and a frame list the guest may name.
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 1, frame_list)}, 2) == error(Errc::einval));
    CHECK(hv::gnttab::grant_table_op(grants, as1,
                                     args::grant_table_op{abi::GNTTABOP_setup_table, GuestHandle<void>{0xdead0000}, 1}) ==
          error(Errc::efault));
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 2, 0x0000'8000'0000'0000)}) ==
          error(Errc::efault));
    CHECK(state() == before);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: setup_table for another domain needs privilege", "[gnttab]") {
    CHECK(call(as0, abi::GNTTABOP_setup_table, {setup_op(2, 2, frame_list)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::okay));
    CHECK(g2.table.nr_frames == 2);
    CHECK(frames.info(Mfn{g2.frames[1]}).owner == dom2.id);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: setup_table that cannot have every frame takes none", "[gnttab]") {
    const HeapHog hog{*this, 1};
    const GrantState before = state();
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 3, frame_list)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::general_error));
    CHECK(frames.free_frames() == 1);
    CHECK(g1.table.nr_frames == 1);
    CHECK(state() == before);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: grant-table frames are not charged to the domain's memory limit", "[gnttab]") {
    dom1.max_pages = dom1.tot_pages;
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 4, frame_list)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::okay));
    CHECK(g1.table.nr_frames == 4);
    CHECK(dom1.tot_pages == 4);  // they count as the domain's frames, as every shared frame does
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: setup_table whose frame list cannot be written still grows", "[gnttab]") {
    // Xen's rule: the frames are allocated, then each one that cannot be listed makes the status
    // bad_virt_addr. The guest may ask again.
    CHECK(call(as1, abi::GNTTABOP_setup_table, {setup_op(abi::DOMID_SELF, 2, 0x4000'0000)}) == 0);
    CHECK(result<abi::gnttab_setup_table>().status == status(GS::bad_virt_addr));
    CHECK(g1.table.nr_frames == 2);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: query_size reports a table's size", "[gnttab]") {
    abi::gnttab_query_size op{};
    op.dom = abi::DOMID_SELF;
    CHECK(call(as2, abi::GNTTABOP_query_size, {op}) == 0);
    auto answer = result<abi::gnttab_query_size>();
    CHECK(answer.status == status(GS::okay));
    CHECK(answer.nr_frames == 1);
    CHECK(answer.max_nr_frames == 4);

    op.dom = 1;
    CHECK(call(as2, abi::GNTTABOP_query_size, {op}) == 0);
    CHECK(result<abi::gnttab_query_size>().status == status(GS::permission_denied));
    CHECK(call(as0, abi::GNTTABOP_query_size, {op}) == 0);
    answer = result<abi::gnttab_query_size>();
    CHECK(answer.status == status(GS::okay));
    CHECK(answer.nr_frames == 1);
    op.dom = 99;
    CHECK(call(as0, abi::GNTTABOP_query_size, {op}) == 0);
    CHECK(result<abi::gnttab_query_size>().status == status(GS::bad_domain));
    CHECK(call(as0, abi::GNTTABOP_query_size, {op}, 0) == error(Errc::einval));
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: set_version keeps version 1 and answers version 2 with ENOSYS", "[gnttab]") {
    // A guest that asks for v2 learns it is unavailable (ENOSYS, as Xen built without v2 answers)
    // and that v1 is in effect.
    CHECK(call(as1, abi::GNTTABOP_set_version, {abi::gnttab_set_version{2}}) == error(Errc::enosys));
    CHECK(result<abi::gnttab_set_version>().version == 1);
    CHECK(call(as1, abi::GNTTABOP_set_version, {abi::gnttab_set_version{3}}) == error(Errc::einval));
    CHECK(result<abi::gnttab_set_version>().version == 1);
    CHECK(call(as1, abi::GNTTABOP_set_version, {abi::gnttab_set_version{1}}) == 0);
    CHECK(result<abi::gnttab_set_version>().version == 1);
    CHECK(hv::gnttab::grant_table_op(grants, as1,
                                     args::grant_table_op{abi::GNTTABOP_set_version, GuestHandle<void>{0xdead0000}, 1}) ==
          error(Errc::efault));
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: get_version and get_status_frames describe a version 1 table", "[gnttab]") {
    CHECK(call(as1, abi::GNTTABOP_get_version, {abi::gnttab_get_version{abi::DOMID_SELF, 0, 0}}) == 0);
    CHECK(result<abi::gnttab_get_version>().version == 1);
    CHECK(call(as1, abi::GNTTABOP_get_version, {abi::gnttab_get_version{2, 0, 0}}) == error(Errc::eperm));
    CHECK(call(as1, abi::GNTTABOP_get_version, {abi::gnttab_get_version{77, 0, 0}}) == error(Errc::esrch));
    CHECK(call(as0, abi::GNTTABOP_get_version, {abi::gnttab_get_version{2, 0, 0}}) == 0);
    CHECK(result<abi::gnttab_get_version>().version == 1);

    abi::gnttab_get_status_frames op{};
    op.dom = abi::DOMID_SELF;
    op.nr_frames = 1;
    op.frame_list = GuestHandle<std::uint64_t>{frame_list};
    CHECK(call(as1, abi::GNTTABOP_get_status_frames, {op}) == 0);
    CHECK(result<abi::gnttab_get_status_frames>().status == status(GS::general_error));  // v1 has none
    op.nr_frames = 0;
    CHECK(call(as1, abi::GNTTABOP_get_status_frames, {op}) == 0);
    CHECK(result<abi::gnttab_get_status_frames>().status == status(GS::okay));
    op.dom = 2;
    CHECK(call(as1, abi::GNTTABOP_get_status_frames, {op}) == 0);
    CHECK(result<abi::gnttab_get_status_frames>().status == status(GS::permission_denied));
    op.dom = 77;
    CHECK(call(as1, abi::GNTTABOP_get_status_frames, {op}) == 0);
    CHECK(result<abi::gnttab_get_status_frames>().status == status(GS::bad_domain));
    CHECK(call(as1, abi::GNTTABOP_get_status_frames, {op}, 2) == error(Errc::einval));
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: swap_grant_ref exchanges two entries not in use", "[gnttab]") {
    const Mfn a = allocate(dom1), b = allocate(dom1);
    grant(g1, 10, dom2.id, a);
    grant(g1, 11, dom2.id, b, abi::GTF_permit_access | abi::GTF_readonly);
    CHECK(call(as1, abi::GNTTABOP_swap_grant_ref,
               {abi::gnttab_swap_grant_ref{10, 11, 0x5555}, abi::gnttab_swap_grant_ref{12, 12, 0x5555},
                abi::gnttab_swap_grant_ref{10, 512, 0x5555}}) == 0);
    CHECK(result<abi::gnttab_swap_grant_ref>(0).status == status(GS::okay));
    CHECK(result<abi::gnttab_swap_grant_ref>(1).status == status(GS::okay));
    CHECK(result<abi::gnttab_swap_grant_ref>(2).status == status(GS::bad_gntref));  // one frame: 512 entries
    CHECK(flags(g1, 10) == (abi::GTF_permit_access | abi::GTF_readonly));
    CHECK(flags(g1, 11) == abi::GTF_permit_access);
    std::uint32_t frame10;
    std::memcpy(&frame10, entry_bytes(g1, 10) + 4, 4);
    CHECK(frame10 == b.value);

    // An entry in use is not swapped: eagain.
    address_space(dom2);
    REQUIRE(map(as2, dom1.id, 11, page_address(1)).status == status(GS::okay));
    const GrantState before = state();
    CHECK(call(as1, abi::GNTTABOP_swap_grant_ref, {abi::gnttab_swap_grant_ref{11, 10, 0x5555}}) == 0);
    CHECK(result<abi::gnttab_swap_grant_ref>().status == status(GS::eagain));
    CHECK(state() == before);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: unprovided sub-ops give ENOSYS, bad counts and commands EINVAL", "[gnttab]") {
    for (unsigned command : {abi::GNTTABOP_dump_table, abi::GNTTABOP_transfer, abi::GNTTABOP_cache_flush, 13u, 0xFFFu})
        CHECK(call<abi::gnttab_set_version>(as1, command, {}, 1) == error(Errc::enosys));
    CHECK(call<abi::gnttab_copy>(as1, abi::GNTTABOP_copy, {}, 0x8000'0000u) == error(Errc::einval));
    CHECK(call<abi::gnttab_copy>(as1, abi::GNTTABOP_copy | (1u << 12), {}, 0) == error(Errc::einval));
    CHECK(call<abi::gnttab_copy>(as1, abi::GNTTABOP_copy, {}, 0) == 0);
    // A batch whose array the guest may not even name faults before anything is done.
    CHECK(hv::gnttab::grant_table_op(grants, as1,
                                     args::grant_table_op{abi::GNTTABOP_copy,
                                                          GuestHandle<void>{hv::hypervisor_range_start}, 1}) ==
          error(Errc::efault));
    // A domain without a grant table has no grant-table operations.
    REQUIRE(grants.remove(g2.table));
    CHECK(call(as2, abi::GNTTABOP_set_version, {abi::gnttab_set_version{1}}) == error(Errc::enosys));
}

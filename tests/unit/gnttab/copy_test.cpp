// GNTTABOP_copy.
#include "gnttab_fixture.hpp"

#include <chrono>

using namespace gnttab_test;

namespace {
constexpr std::uint16_t source_gref = abi::GNTCOPY_source_gref;
constexpr std::uint16_t dest_gref = abi::GNTCOPY_dest_gref;
}  // namespace

TEST_CASE_METHOD(GnttabFixture, "gnttab: copy between a grant and the caller's own frame, both ways", "[gnttab]") {
    const Mfn granted = allocate(dom1), own = allocate(dom2);
    grant(g1, 5, dom2.id, granted);
    std::memcpy(platform.map(granted) + 100, "from dom1", 9);
    CHECK(copy(as2, copy_op(by_ref(dom1.id, 5, 100), by_frame(own, 200), 9, source_gref)) == status(GS::okay));
    CHECK(std::memcmp(platform.map(own) + 200, "from dom1", 9) == 0);
    CHECK(flags(g1, 5) == abi::GTF_permit_access);  // in use only while copying

    std::memcpy(platform.map(own), "from dom2", 9);
    CHECK(copy(as2, copy_op(by_frame(own), by_ref(dom1.id, 5, 4087), 9, dest_gref)) == status(GS::okay));
    CHECK(std::memcmp(platform.map(granted) + 4087, "from dom2", 9) == 0);
    CHECK(flags(g1, 5) == abi::GTF_permit_access);
    CHECK(frames.info(granted).ref_count == 1);
    CHECK(frames.info(granted).type == PageType::none);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: copy between two grants, and of a whole page", "[gnttab]") {
    const Mfn from = allocate(dom1), to = allocate(dom2);
    grant(g1, 1, dom0.id, from, abi::GTF_permit_access | abi::GTF_readonly);
    grant(g2, 1, dom0.id, to);
    for (unsigned i = 0; i < page_size; ++i)
        platform.map(from)[i] = std::byte(i * 7);
    CHECK(copy(as0, copy_op(by_ref(dom1.id, 1), by_ref(dom2.id, 1), page_size, source_gref | dest_gref)) ==
          status(GS::okay));
    CHECK(std::memcmp(platform.map(from), platform.map(to), page_size) == 0);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: each segment of a copy batch has its own status", "[gnttab]") {
    const Mfn granted = allocate(dom1), own = allocate(dom2);
    grant(g1, 5, dom2.id, granted);
    std::memcpy(platform.map(granted), "abcdef", 6);
    CHECK(call(as2, abi::GNTTABOP_copy,
               {copy_op(by_ref(dom1.id, 5), by_frame(own), 2, source_gref),
                copy_op(by_ref(dom1.id, 6), by_frame(own, 2), 2, source_gref),
                copy_op(by_ref(dom1.id, 5, 4), by_frame(own, 4094), 2, source_gref),
                copy_op(by_ref(dom1.id, 5, 4094), by_frame(own, 2), 4, source_gref)}) == 0);
    CHECK(result<abi::gnttab_copy>(0).status == status(GS::okay));
    CHECK(result<abi::gnttab_copy>(1).status == status(GS::general_error));  // ref 6 grants nothing
    CHECK(result<abi::gnttab_copy>(2).status == status(GS::okay));
    CHECK(result<abi::gnttab_copy>(3).status == status(GS::bad_copy_arg));
    CHECK(std::memcmp(platform.map(own), "ab", 2) == 0);
    CHECK(std::memcmp(platform.map(own) + 4094, "ef", 2) == 0);
    CHECK(platform.map(own)[2] == std::byte{0});
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: copy refusals carry Xen's status and change nothing", "[gnttab][hostile]") {
    const Mfn granted = allocate(dom1), readonly = allocate(dom1), own = allocate(dom2), theirs = allocate(dom1);
    const Mfn own_table = allocate(dom2);
    REQUIRE(tables.pin(dom2, own_table, 1));
    grant(g1, 1, dom2.id, granted);
    grant(g1, 2, dom2.id, readonly, abi::GTF_permit_access | abi::GTF_readonly);
    grant(g1, 3, dom0.id, granted);
    grant(g1, 4, dom2.id, Mfn{0xFFFF'FFFF});
    struct Case {
        const char* what;
        abi::gnttab_copy op;
        GS expected;
    };
    const Case cases[] = {
        {"a frame of another domain", copy_op(by_ref(dom1.id, 1), by_frame(theirs, 0, 1), 8, source_gref),
         GS::permission_denied},
        {"its own frame by number rather than DOMID_SELF", copy_op(by_ref(dom1.id, 1), by_frame(own, 0, 2), 8, source_gref),
         GS::permission_denied},
        {"an unknown domain", copy_op(by_ref(DomId{77}, 1), by_frame(own), 8, source_gref), GS::bad_domain},
        {"a source ref beyond the table", copy_op(by_ref(dom1.id, 512), by_frame(own), 8, source_gref), GS::bad_gntref},
        {"a dest ref beyond the table", copy_op(by_frame(own), by_ref(dom1.id, 0xFFFF'FFFF), 8, dest_gref),
         GS::bad_gntref},
        {"a grant for another domain", copy_op(by_ref(dom1.id, 3), by_frame(own), 8, source_gref), GS::general_error},
        {"writing a read-only grant", copy_op(by_frame(own), by_ref(dom1.id, 2), 8, dest_gref), GS::general_error},
        {"a grant of a frame that does not exist", copy_op(by_ref(dom1.id, 4), by_frame(own), 8, source_gref),
         GS::bad_page},
        {"a frame the caller does not own", copy_op(by_ref(dom1.id, 1), by_frame(theirs), 8, source_gref),
         GS::bad_page},
        {"writing the caller's own page table", copy_op(by_ref(dom1.id, 1), by_frame(own_table), 8, source_gref),
         GS::general_error},
        {"a source crossing the page end", copy_op(by_ref(dom1.id, 1, 4000), by_frame(own), 97, source_gref),
         GS::bad_copy_arg},
        {"a dest crossing the page end", copy_op(by_ref(dom1.id, 1), by_frame(own, 4095), 2, source_gref),
         GS::bad_copy_arg},
        {"the longest length", copy_op(by_ref(dom1.id, 1), by_frame(own), 0xFFFF, source_gref), GS::bad_copy_arg},
    };
    for (const Case& bad : cases) {
        INFO(bad.what);
        const GrantState before = state();
        CHECK(copy(as2, bad.op) == status(bad.expected));
        CHECK(state() == before);
    }
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a grant mapped by one domain cannot be copied by another", "[gnttab][hostile]") {
    const Mfn granted = allocate(dom1), own = allocate(dom0);
    grant(g1, 1, dom2.id, granted);
    address_space(dom2);
    REQUIRE(map(as2, dom1.id, 1, page_address(1)).status == status(GS::okay));
    CHECK(copy(as0, copy_op(by_ref(dom1.id, 1), by_frame(own), 8, source_gref)) == status(GS::general_error));
    // Its own mapper may copy it while mapped; the pin stays as it was.
    const Mfn own2 = allocate(dom2);
    CHECK(copy(as2, copy_op(by_frame(own2), by_ref(dom1.id, 1), 8, dest_gref)) == status(GS::okay));
    CHECK(g1.active[1].writers == 1);
    CHECK(g1.active[1].readers == 0);
    CHECK(flags(g1, 1) == (abi::GTF_permit_access | abi::GTF_reading | abi::GTF_writing));
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a copy batch continues where it was preempted", "[gnttab]") {
    const Mfn granted = allocate(dom1), own = allocate(dom2);
    grant(g1, 1, dom2.id, granted);
    std::memcpy(platform.map(granted), "xy", 2);
    preemption.allowed = 0;
    CHECK(call(as2, abi::GNTTABOP_copy,
               {copy_op(by_ref(dom1.id, 1), by_frame(own), 1, source_gref),
                copy_op(by_ref(dom1.id, 1, 1), by_frame(own, 1), 1, source_gref)}) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.args[1] == GuestBuffer::base + sizeof(abi::gnttab_copy));
    CHECK(continuation.registers.args[2] == 1);
    CHECK(platform.map(own)[0] == std::byte{'x'});
    CHECK(platform.map(own)[1] == std::byte{0});
    // What the first copy claimed was released before the batch stopped.
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    CHECK(g1.table.pinned == 0);
    require_all_invariants();
}

TEST_CASE_METHOD(GnttabFixture, "gnttab: a copy batch keeps a claim for the next copy naming the same side", "[gnttab]") {
    const Mfn granted = allocate(dom1), other = allocate(dom1), own = allocate(dom2), table2 = allocate(dom2);
    REQUIRE(tables.pin(dom2, table2, 1));
    grant(g1, 1, dom2.id, granted);
    grant(g1, 2, dom2.id, other);
    std::memcpy(platform.map(granted), "0123456789", 10);
    CHECK(call(as2, abi::GNTTABOP_copy,
               {copy_op(by_ref(dom1.id, 1, 0), by_frame(own, 0), 2, source_gref),   // claims both sides
                copy_op(by_ref(dom1.id, 1, 2), by_frame(own, 2), 2, source_gref),   // keeps both
                copy_op(by_ref(dom1.id, 1, 4), by_frame(table2), 2, source_gref),   // a page table: refused
                copy_op(by_ref(dom1.id, 1, 4), by_frame(own, 4), 2, source_gref),   // claims again
                copy_op(by_frame(own, 0), by_ref(dom1.id, 1, 100), 6, dest_gref),   // the grant, now writable
                copy_op(by_ref(dom1.id, 2), by_ref(dom1.id, 1, 200), 4, source_gref | dest_gref)}) == 0);
    for (std::size_t i : {0u, 1u, 3u, 4u, 5u})
        CHECK(result<abi::gnttab_copy>(i).status == status(GS::okay));
    CHECK(result<abi::gnttab_copy>(2).status == status(GS::general_error));
    CHECK(std::memcmp(platform.map(own), "012345", 6) == 0);
    CHECK(std::memcmp(platform.map(granted) + 100, "012345", 6) == 0);
    // Everything claimed went at the end of the batch.
    CHECK(flags(g1, 1) == abi::GTF_permit_access);
    CHECK(flags(g1, 2) == abi::GTF_permit_access);
    CHECK(g1.table.pinned == 0);
    CHECK(frames.info(own).type == PageType::none);
    CHECK(frames.info(own).ref_count == 1);
    CHECK(frames.info(granted).ref_count == 1);
    require_all_invariants();
}

// A rough figure, not a test: run with `unit_gnttab "[.bench]"` on an optimized build.
TEST_CASE_METHOD(GnttabFixture, "gnttab: a 4 KiB grant copy next to a 4 KiB memcpy", "[gnttab][.bench]") {
    const Mfn granted = allocate(dom1), own = allocate(dom2);
    grant(g1, 1, dom2.id, granted);
    constexpr int rounds = 20000;
    const auto op = copy_op(by_ref(dom1.id, 1), by_frame(own), page_size, source_gref);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i)
        (void)call(as2, abi::GNTTABOP_copy, {op});
    const auto copies = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i) {
        std::memcpy(platform.map(own), platform.map(granted), page_size);
        asm volatile("" ::: "memory");
    }
    const auto end = std::chrono::steady_clock::now();
    const double grant_ns = std::chrono::duration<double, std::nano>(copies - start).count() / rounds;
    const double memcpy_ns = std::chrono::duration<double, std::nano>(end - copies).count() / rounds;
    WARN("grant copy " << grant_ns << " ns, memcpy " << memcpy_ns << " ns, ratio " << grant_ns / memcpy_ns);
    CHECK(result<abi::gnttab_copy>().status == status(GS::okay));
}

#include "mmu_ops_fixture.hpp"

#include <hv/descriptors.hpp>

using namespace mm_test;

namespace {
// A flat 64-bit code segment (type 0xB, S, L, G) at the given privilege level.
constexpr std::uint64_t code_descriptor(unsigned dpl) {
    return 0x00AF'9B00'0000'FFFFull | (std::uint64_t{dpl} << 45);
}
constexpr std::uint64_t dpl_of(std::uint64_t descriptor) { return (descriptor >> 45) & 3; }
constexpr std::uint64_t tss_descriptor = 0x0000'8900'0000'0067ull;  // a present 64-bit TSS: a system descriptor

struct DescriptorFixture : MmuOpsFixture {
    long set_gdt_frames(std::initializer_list<abi::xen_ulong_t> list, std::uint32_t entries) {
        const auto handle = place<abi::xen_ulong_t>(0x300, list);
        return hv::mm::set_gdt(tables, caller, args::set_gdt{handle, entries});
    }
    long write(Mfn frame, unsigned index, std::uint64_t descriptor, unsigned misalign = 0) {
        return update_descriptor(tables, caller,
                                 args::update_descriptor{(frame.value << 12) + index * 8 + misalign, descriptor});
    }
};
}  // namespace

TEST_CASE("mm: descriptors: code and data are raised to DPL 3, system descriptors refused", "[mm][hostile]") {
    CHECK(*check_descriptor(0x1234) == 0x1234);  // not present: anything
    CHECK(dpl_of(*check_descriptor(code_descriptor(0))) == 3);
    CHECK(*check_descriptor(code_descriptor(3)) == code_descriptor(3));
    CHECK(check_descriptor(tss_descriptor).error() == Errc::einval);
}

TEST_CASE_METHOD(DescriptorFixture, "mm: set_gdt turns its frames into descriptor pages", "[mm]") {
    const Mfn first = allocate(dom1), second = allocate(dom1);
    table(first)[1] = code_descriptor(0);
    CHECK(set_gdt_frames({first.value, second.value}, 600) == 0);
    CHECK(frames.info(first).type == PageType::seg_desc);
    CHECK(frames.info(second).type == PageType::seg_desc);
    CHECK(dpl_of(table(first)[1]) == 3);
    CHECK(vcpus[0].gdt_frame_count() == 2);
    require_invariants();
    // A descriptor page can be neither mapped writable nor used as a page table.
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    CHECK(tables.update_entry(dom1, dom1, chain.l1, 1, entry(first, rw), false).error() == Errc::ebusy);
    CHECK(tables.pin(dom1, second, 1).error() == Errc::einval);
    // A new GDT lets the old frames go.
    CHECK(set_gdt_frames({}, 0) == 0);
    CHECK(frames.info(first).type == PageType::none);
    require_invariants();
}

TEST_CASE_METHOD(DescriptorFixture, "mm: set_gdt refuses bad frames, sizes and lists, keeping the old GDT", "[mm][hostile]") {
    const Mfn good = allocate(dom1), bad = allocate(dom1), theirs = allocate(dom2);
    table(bad)[3] = tss_descriptor;
    REQUIRE(set_gdt_frames({good.value}, 16) == 0);
    const Snapshot before = snapshot();
    CHECK(set_gdt_frames({good.value, bad.value}, 1024) == hv::xen_errno(Errc::einval));
    CHECK(set_gdt_frames({theirs.value}, 16) == hv::xen_errno(Errc::einval));
    CHECK(set_gdt_frames({good.value}, abi::FIRST_RESERVED_GDT_ENTRY + 1) == hv::xen_errno(Errc::einval));
    CHECK(hv::mm::set_gdt(tables, caller, args::set_gdt{GuestHandle<abi::xen_ulong_t>{0xbad0000}, 16}) ==
          hv::xen_errno(Errc::efault));
    CHECK(snapshot() == before);
    CHECK(vcpus[0].gdt_frames[0] == good.value);
    require_invariants();
}

TEST_CASE_METHOD(DescriptorFixture, "mm: update_descriptor validates what it writes and where", "[mm][hostile]") {
    const Mfn gdt = allocate(dom1), plain = allocate(dom1), theirs = allocate(dom2);
    REQUIRE(set_gdt_frames({gdt.value}, 512) == 0);
    CHECK(write(gdt, 5, code_descriptor(0)) == 0);
    CHECK(table(gdt)[5] == code_descriptor(3));
    CHECK(write(plain, 5, code_descriptor(3)) == 0);  // an ordinary frame takes a plain write
    const Chain chain = build_chain(dom1);
    REQUIRE(tables.pin(dom1, chain.l4, 4));
    const Snapshot before = snapshot();
    CHECK(write(gdt, 6, tss_descriptor) == hv::xen_errno(Errc::einval));
    CHECK(write(gdt, 6, code_descriptor(3), 4) == hv::xen_errno(Errc::einval));  // misaligned
    CHECK(write(theirs, 0, code_descriptor(3)) == hv::xen_errno(Errc::einval));
    CHECK(write(chain.l1, 9, code_descriptor(3)) == hv::xen_errno(Errc::einval));  // a page table
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(DescriptorFixture, "mm: set_gdt tells the platform of the new GDT once its frames are validated",
                 "[mm]") {
    const Mfn first = allocate(dom1), second = allocate(dom1);
    table(second)[7] = code_descriptor(0);
    REQUIRE(set_gdt_frames({first.value, second.value}, 520) == 0);
    REQUIRE(platform.gdt_changes.size() == 1);
    const auto& change = platform.gdt_changes[0];
    CHECK(change.domain == dom1.id);
    CHECK(change.vcpu == &vcpus[0]);
    CHECK(change.entries == 520);
    CHECK(change.frames == std::vector<std::uint64_t>{first.value, second.value});
    CHECK(dpl_of(table(second)[7]) == 3);  // what the platform copies is already adjusted
    // An empty GDT, and the teardown's, are changes too.
    REQUIRE(set_gdt_frames({}, 0) == 0);
    REQUIRE(platform.gdt_changes.size() == 2);
    CHECK(platform.gdt_changes[1].entries == 0);
    CHECK(platform.gdt_changes[1].frames.empty());
    REQUIRE(set_gdt_frames({first.value}, 16) == 0);
    while (!tables.relinquish(dom1, std::span{vcpus}.first(1), 64)) {
    }
    REQUIRE(platform.gdt_changes.size() == 4);
    CHECK(platform.gdt_changes[3].entries == 0);
    CHECK(platform.descriptor_changes.empty());
}

TEST_CASE_METHOD(DescriptorFixture, "mm: a refused set_gdt tells the platform nothing", "[mm][hostile]") {
    const Mfn good = allocate(dom1), bad = allocate(dom1), theirs = allocate(dom2);
    table(bad)[3] = tss_descriptor;
    REQUIRE(set_gdt_frames({good.value}, 16) == 0);
    platform.gdt_changes.clear();
    CHECK(set_gdt_frames({good.value, bad.value}, 1024) == hv::xen_errno(Errc::einval));
    CHECK(set_gdt_frames({theirs.value}, 16) == hv::xen_errno(Errc::einval));
    CHECK(set_gdt_frames({good.value}, abi::FIRST_RESERVED_GDT_ENTRY + 1) == hv::xen_errno(Errc::einval));
    CHECK(hv::mm::set_gdt(tables, caller, args::set_gdt{GuestHandle<abi::xen_ulong_t>{0xbad0000}, 16}) ==
          hv::xen_errno(Errc::efault));
    CHECK(platform.gdt_changes.empty());
}

TEST_CASE_METHOD(DescriptorFixture, "mm: update_descriptor tells the platform of each write to a descriptor page",
                 "[mm]") {
    const Mfn gdt = allocate(dom1), plain = allocate(dom1);
    REQUIRE(set_gdt_frames({gdt.value}, 512) == 0);
    CHECK(write(gdt, 5, code_descriptor(0)) == 0);
    REQUIRE(platform.descriptor_changes.size() == 1);
    const auto& change = platform.descriptor_changes[0];
    CHECK(change.domain == dom1.id);
    CHECK(change.frame == gdt);
    CHECK(change.index == 5);
    CHECK(change.descriptor == code_descriptor(3));  // as written: DPL raised
    CHECK(table(gdt)[5] == change.descriptor);
    // A frame that is no descriptor page is ordinary memory: nothing to follow.
    CHECK(write(plain, 5, code_descriptor(3)) == 0);
    CHECK(platform.descriptor_changes.size() == 1);
    // Nor is a former GDT frame.
    REQUIRE(set_gdt_frames({}, 0) == 0);
    CHECK(write(gdt, 6, code_descriptor(3)) == 0);
    CHECK(platform.descriptor_changes.size() == 1);
}

TEST_CASE_METHOD(DescriptorFixture, "mm: a refused update_descriptor tells the platform nothing", "[mm][hostile]") {
    const Mfn gdt = allocate(dom1);
    REQUIRE(set_gdt_frames({gdt.value}, 512) == 0);
    CHECK(write(gdt, 6, tss_descriptor) == hv::xen_errno(Errc::einval));
    CHECK(write(gdt, 6, code_descriptor(3), 4) == hv::xen_errno(Errc::einval));
    CHECK(write(Mfn{gdt.value + 200}, 0, code_descriptor(3)) == hv::xen_errno(Errc::einval));
    CHECK(platform.descriptor_changes.empty());
    CHECK(table(gdt)[6] == 0);
}

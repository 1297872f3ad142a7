#include "mmu_ops_fixture.hpp"

#include <hv/writable_page_tables.hpp>

using namespace mm_test;
namespace emulate = hv::emulate;

namespace {
// A domain whose L1 maps itself read-only at guest address 5 * 4096, as kernels map their page
// tables; guest code lives in the caller's buffer at offset 0x1000.
struct WritableFixture : MmuOpsFixture {
    WritableFixture() {
        table(chain.l1)[5] = entry(chain.l1, ro);
        REQUIRE(tables.pin(dom1, chain.l4, 4));
        REQUIRE(tables.set_kernel_base(dom1, vcpus[0], chain.l4));
        dom1.writable_pagetables = true;
        registers.rip = GuestBuffer::base + 0x1000;
    }
    static constexpr std::uint64_t l1_address = 5 * page_size;

    void code(std::initializer_list<std::uint8_t> bytes) { place<std::uint8_t>(0x1000, bytes); }
    hv::Result<void> fault(std::uint64_t address) {
        return emulate_page_table_write(tables, caller, registers, address);
    }

    Chain chain = build_chain(dom1);
    emulate::Registers registers{};
};
}  // namespace

TEST_CASE_METHOD(WritableFixture, "mm: a faulting store to the domain's own L1 is validated and completed", "[mm]") {
    const Mfn page = allocate(dom1);
    code({0x48, 0x89, 0x07});  // mov %rax, (%rdi)
    registers[emulate::Gpr::rdi] = l1_address + 2 * 8;
    registers[emulate::Gpr::rax] = entry(page, rw);
    REQUIRE(fault(l1_address + 2 * 8));
    CHECK(table(chain.l1)[2] == entry(page, rw | pte::user | pte::guest_kernel));
    CHECK(frames.info(page).type == PageType::writable);
    CHECK(registers.rip == GuestBuffer::base + 0x1003);
    require_invariants();
}

TEST_CASE_METHOD(WritableFixture, "mm: a 4-byte store is merged with the rest of the entry", "[mm]") {
    const Mfn page = allocate(dom1);
    REQUIRE(tables.update_entry(dom1, dom1, chain.l1, 2, entry(page, ro) | (1ull << 63), false));
    code({0x89, 0x07});  // mov %eax, (%rdi): the low half, keeping NX in the high half
    registers[emulate::Gpr::rdi] = l1_address + 2 * 8;
    registers[emulate::Gpr::rax] = static_cast<std::uint32_t>(entry(page, rw));
    REQUIRE(fault(l1_address + 2 * 8));
    CHECK(table(chain.l1)[2] == (entry(page, rw | pte::user | pte::guest_kernel) | pte::no_execute));
    require_invariants();
}

TEST_CASE_METHOD(WritableFixture, "mm: lock cmpxchg on an entry compares, then validates", "[mm]") {
    const Mfn page = allocate(dom1);
    code({0xf0, 0x48, 0x0f, 0xb1, 0x17});  // lock cmpxchg %rdx, (%rdi)
    registers[emulate::Gpr::rdi] = l1_address + 3 * 8;
    registers[emulate::Gpr::rax] = 0;  // the entry is empty
    registers[emulate::Gpr::rdx] = entry(page, ro);
    REQUIRE(fault(l1_address + 3 * 8));
    CHECK((registers.rflags & emulate::flag_zf) != 0);
    CHECK((table(chain.l1)[3] & pte::frame_mask) == page.value << 12);
    require_invariants();
}

TEST_CASE_METHOD(WritableFixture, "mm: emulated writes get the same refusals as mmu_update", "[mm][hostile]") {
    code({0x48, 0x89, 0x07});  // mov %rax, (%rdi)
    registers[emulate::Gpr::rdi] = l1_address + 2 * 8;
    const Mfn theirs = allocate(dom2);
    const std::uint64_t hostile[] = {
        entry(chain.l1, rw),                  // the L1 itself, writable
        entry(chain.l4, rw),                  // the root, writable
        entry(theirs, ro),                    // another domain's frame
        entry(chain.data, ro | pte::global),  // a global kernel mapping
    };
    const Snapshot before = snapshot();
    for (const std::uint64_t value : hostile) {
        INFO("value " << std::hex << value);
        registers[emulate::Gpr::rax] = value;
        const emulate::Registers saved = registers;
        CHECK_FALSE(fault(l1_address + 2 * 8));
        CHECK(std::memcmp(&registers, &saved, sizeof(saved)) == 0);
    }
    CHECK(snapshot() == before);
    require_invariants();
}

TEST_CASE_METHOD(WritableFixture, "mm: only faults on the domain's own L1 pages are emulated", "[mm][hostile]") {
    code({0x48, 0x89, 0x07});
    registers[emulate::Gpr::rax] = 0;
    const Snapshot before = snapshot();
    CHECK(fault(0).error() == Errc::einval);                       // address 0 maps the data page
    CHECK(fault(1ull << 39).error() == Errc::einval);              // not mapped at all
    CHECK(fault(0xFFFF'8000'0000'0000).error() == Errc::einval);  // the hypervisor's range
    dom1.writable_pagetables = false;
    CHECK(fault(l1_address).error() == Errc::eperm);
    dom1.writable_pagetables = true;
    code({0xf0, 0x48, 0x0f, 0xc7, 0x0f});  // lock cmpxchg16b (%rdi): spans two entries
    registers[emulate::Gpr::rdi] = l1_address;
    CHECK_FALSE(fault(l1_address));
    CHECK(snapshot() == before);
    CHECK(registers.rip == GuestBuffer::base + 0x1000);
}

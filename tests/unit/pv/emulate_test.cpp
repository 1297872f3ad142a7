#include "../mm/mmu_ops_fixture.hpp"

#include <hv/pv_emulate.hpp>

namespace pv_test {
namespace {

using namespace hv::pv;
using mm_test::GuestBuffer;
using mm_test::entry;
namespace abi = pvkit::abi;

// A host CPU with every feature bit set, so that what is hidden shows.
class AllFeatures final : public CpuidSource {
public:
    CpuidLeaf cpuid(std::uint32_t leaf, std::uint32_t subleaf) override {
        ++calls;
        return {leaf, 0xFFFF'FFFF, 0xFFFF'FFFF ^ subleaf, 0xFFFF'FFFF};
    }
    int calls = 0;
};

constexpr std::uint64_t code = GuestBuffer::base + 0x100;

struct EmulateFixture {
    Emulation run(std::initializer_list<std::uint8_t> bytes, std::uint8_t vector = 13) {
        std::copy(bytes.begin(), bytes.end(), reinterpret_cast<std::uint8_t*>(memory.bytes.data() + (code - GuestBuffer::base)));
        registers.rip = code;
        return emulate_privileged(vcpu, bases, info, registers, memory, host, vector, machine, 4, 17);
    }
    GuestBuffer memory;
    AllFeatures host;
    PvVcpu vcpu;
    SegmentBases bases;
    abi::vcpu_info info{};
    GuestRegisters registers{};
    // The CPU's CR0 (PE, MP, ET, NE, WP, PG and TS) and CR4 (PAE, PGE, OSFXSR, OSXMMEXCPT, SMEP).
    MachineState machine{0x8005'003B, 0x1234'5000, 0x0010'06A0, 0xD01};
};

TEST_CASE("guest CPUID: Xen's leaves, the host's with PV-unusable features hidden", "[pv][emulate][cpuid]") {
    AllFeatures host;
    const CpuidLeaf signature = guest_cpuid(host, 0x4000'0000, 0, 4, 17);
    char text[13] = {};
    std::memcpy(text, &signature.ebx, 4);
    std::memcpy(text + 4, &signature.ecx, 4);
    std::memcpy(text + 8, &signature.edx, 4);
    CHECK(std::string{text} == "XenVMMXenVMM");
    CHECK(signature.eax == 0x4000'0002);
    CHECK(guest_cpuid(host, 0x4000'0001, 0, 4, 17).eax == 0x0004'0011);
    CHECK(guest_cpuid(host, 0x4000'0002, 0, 4, 17) == CpuidLeaf{1, 0x4000'0000, 0, 0});
    CHECK(guest_cpuid(host, 0x4000'0100, 0, 4, 17) == CpuidLeaf{0, 0, 0, 0});
    CHECK(host.calls == 0);

    const CpuidLeaf features = guest_cpuid(host, 1, 0, 4, 17);
    CHECK((features.ecx & (1u << 31)) != 0);  // a hypervisor is present
    CHECK((features.ecx & (1u << 5)) == 0);   // no VMX
    CHECK((features.ecx & (1u << 26)) == 0);  // no XSAVE
    CHECK((features.edx & (1u << 9)) == 0);   // no APIC
    CHECK((features.edx & (1u << 0)) != 0);   // the FPU stays
    CHECK((guest_cpuid(host, 7, 0, 4, 17).ebx & (1u << 7)) == 0);  // no SMEP
    CHECK((features.ecx & (1u << 12)) == 0);  // no FMA (it needs AVX)
    CHECK(guest_cpuid(host, 7, 1, 4, 17) == CpuidLeaf{0, 0, 0, 0});
    CHECK(guest_cpuid(host, 0xD, 1, 4, 17) == CpuidLeaf{0, 0, 0, 0});
    const CpuidLeaf extended = guest_cpuid(host, 0x8000'0001, 0, 4, 17);
    CHECK(extended.edx == ~(1u << 26));  // no 1 GiB pages
    CHECK((extended.ecx & (1u << 2)) == 0);  // no SVM
    CHECK((extended.edx & (1u << 29)) != 0);  // long mode stays
}

TEST_CASE_METHOD(EmulateFixture, "the forced-emulation prefix runs CPUID; a plain ud2 is not emulated", "[pv][emulate][cpuid]") {
    registers.rax = 0x4000'0001;
    const Emulation emulation = run({0x0F, 0x0B, 'x', 'e', 'n', 0x0F, 0xA2}, 6);
    CHECK(emulation.emulated);
    CHECK(registers.rax == 0x0004'0011);
    CHECK(registers.rip == code + 7);
    vcpu.kernel_mode = false;  // user mode may use it too
    registers.rax = 0x4000'0000;
    CHECK(run({0x0F, 0x0B, 'x', 'e', 'n', 0x0F, 0xA2}, 6).emulated);
    CHECK_FALSE(run({0x0F, 0x0B, 'x', 'e', 'm', 0x0F, 0xA2}, 6).emulated);
    CHECK(registers.rip == code);
}

TEST_CASE_METHOD(EmulateFixture, "rdmsr and wrmsr of the segment bases, EFER and PAT; #GP for the rest",
                 "[pv][emulate][msr]") {
    registers.rcx = 0xC000'0100;  // FS_BASE
    registers.rdx = 0x7FFF;
    registers.rax = 0x1234'5678;
    const Emulation written = run({0x0F, 0x30});
    CHECK(written.emulated);
    CHECK(written.segment_bases_changed);
    CHECK(bases.fs == 0x7FFF'1234'5678);
    CHECK(registers.rip == code + 2);

    registers.rcx = 0x277;
    CHECK(run({0x0F, 0x32}).emulated);
    CHECK(((registers.rdx << 32) | registers.rax) == pv_pat);
    registers.rcx = 0xC000'0080;
    CHECK(run({0x0F, 0x32}).emulated);
    CHECK(registers.rax == 0xD01);

    registers.rcx = 0xC000'0102;  // SHADOW_GS_BASE: a non-canonical value is refused
    registers.rdx = 0x8000;
    registers.rax = 0;
    CHECK_FALSE(run({0x0F, 0x30}).emulated);
    CHECK(bases.gs_user == 0);
    registers.rcx = 0x277;  // PAT: only its own value may be written back
    CHECK_FALSE(run({0x0F, 0x30}).emulated);
    registers.rcx = 0x1B;  // APIC_BASE: not a PV guest's
    CHECK_FALSE(run({0x0F, 0x32}).emulated);
    CHECK(registers.rip == code);
}

TEST_CASE_METHOD(EmulateFixture, "mov from control registers and port I/O in guest kernel mode only", "[pv][emulate]") {
    CHECK(run({0x0F, 0x20, 0xD8}).emulated);  // mov %cr3, %rax
    CHECK(registers.rax == 0x1234'5000);
    CHECK(run({0x41, 0x0F, 0x20, 0xDB}).emulated);  // mov %cr3, %r11
    CHECK(registers.r11 == 0x1234'5000);
    CHECK(registers.rip == code + 4);
    CHECK(run({0x0F, 0x20, 0xC0}).emulated);  // mov %cr0, %rax: the CPU's, with the guest's TS (clear)
    CHECK(registers.rax == 0x8005'0033);
    vcpu.fpu_task_switched = true;
    CHECK(run({0x0F, 0x20, 0xC1}).emulated);  // mov %cr0, %rcx
    CHECK(registers.rcx == 0x8005'003B);
    info.arch.cr2 = 0xFFFF'FFFF'8000'5000;
    CHECK(run({0x0F, 0x20, 0xD2}).emulated);  // mov %cr2, %rdx: the last fault delivered
    CHECK(registers.rdx == 0xFFFF'FFFF'8000'5000);
    CHECK(run({0x0F, 0x20, 0xE6}).emulated);  // mov %cr4, %rsi: PAE, OSFXSR, OSXMMEXCPT
    CHECK(registers.rsi == 0x620);
    registers.rdi = 0x0010'06A4 | 0x8;  // TSD and DE, with the rest as read
    CHECK(run({0x0F, 0x22, 0xE7}).emulated);  // mov %rdi, %cr4
    CHECK(run({0x0F, 0x20, 0xE6}).emulated);
    CHECK(registers.rsi == (0x620 | 0xC));
    CHECK_FALSE(run({0x0F, 0x22, 0xC7}).emulated);  // mov %rdi, %cr0
    CHECK_FALSE(run({0x44, 0x0F, 0x20, 0xC0}).emulated);  // mov %cr8, %rax
    CHECK_FALSE(run({0x0F, 0x22, 0xD8}).emulated);  // mov %rax, %cr3

    registers.rax = 0x1111'2222'3333'4444;
    CHECK(run({0xEC}).emulated);  // in %dx, %al
    CHECK(registers.rax == 0x1111'2222'3333'44FF);
    CHECK(run({0x66, 0xE5, 0x60}).emulated);  // in $0x60, %ax
    CHECK(registers.rax == 0x1111'2222'3333'FFFF);
    CHECK(run({0xED}).emulated);  // in %dx, %eax
    CHECK(registers.rax == 0xFFFF'FFFF);
    CHECK(run({0xEE}).emulated);  // out %al, %dx
    CHECK(registers.rip == code + 1);
    CHECK_FALSE(run({0xF4}).emulated);  // hlt

    vcpu.kernel_mode = false;
    CHECK_FALSE(run({0xEC}).emulated);
    CHECK_FALSE(run({0x0F, 0x32}).emulated);
}

TEST_CASE_METHOD(EmulateFixture, "cli and sti set the upcall mask when the virtual IOPL admits ring 1", "[pv][emulate]") {
    CHECK_FALSE(run({0xFA}).emulated);  // IOPL 0: #GP is the guest's
    GuestBuffer& guest = memory;
    std::memcpy(guest.bytes.data() + 0x800, "\x01\0\0\0", 4);
    CHECK(physdev_op(vcpu, memory, {abi::PHYSDEVOP_set_iopl, {GuestBuffer::base + 0x800}}) == 0);
    CHECK(vcpu.iopl == 1);
    info.evtchn_upcall_mask = 0;
    CHECK(run({0xFA}).emulated);  // cli
    CHECK(info.evtchn_upcall_mask == 1);
    CHECK(registers.rip == code + 1);
    CHECK(run({0xFB}).emulated);  // sti
    CHECK(info.evtchn_upcall_mask == 0);
    vcpu.kernel_mode = false;  // user mode is ring 3
    CHECK_FALSE(run({0xFA}).emulated);
    CHECK(info.evtchn_upcall_mask == 0);

    std::memcpy(guest.bytes.data() + 0x800, "\x04\0\0\0", 4);
    CHECK(physdev_op(vcpu, memory, {abi::PHYSDEVOP_set_iopl, {GuestBuffer::base + 0x800}}) == hv::xen_errno(hv::Errc::einval));
    CHECK(vcpu.iopl == 1);
    CHECK(physdev_op(vcpu, memory, {abi::PHYSDEVOP_set_iopl, {0xFFFF'8000'0000'0000}}) == hv::xen_errno(hv::Errc::efault));
    CHECK(physdev_op(vcpu, memory, {abi::PHYSDEVOP_eoi, {GuestBuffer::base + 0x800}}) == hv::xen_errno(hv::Errc::enosys));
}

TEST_CASE_METHOD(EmulateFixture, "an instruction that cannot be fetched is not emulated", "[pv][emulate][hostile]") {
    registers.rip = GuestBuffer::base + memory.bytes.size() - 1;  // the second byte is unmapped
    memory.bytes.back() = std::byte{0x0F};
    CHECK_FALSE(emulate_privileged(vcpu, bases, info, registers, memory, host, 13, machine, 4, 17).emulated);
    registers.rip = 0xFFFF'8000'0000'0000;
    CHECK_FALSE(emulate_privileged(vcpu, bases, info, registers, memory, host, 6, machine, 4, 17).emulated);
}

TEST_CASE("set_segment_base sets FS and both GS bases; a user GS selector gives base 0", "[pv][segments]") {
    SegmentBases bases;
    CHECK(set_segment_base(bases, {abi::SEGBASE_FS, 0x7000'1000}) == 0);
    CHECK(set_segment_base(bases, {abi::SEGBASE_GS_USER, 0x7000'2000}) == 0);
    CHECK(set_segment_base(bases, {abi::SEGBASE_GS_KERNEL, 0xFFFF'FFFF'8000'3000}) == 0);
    CHECK(bases.fs == 0x7000'1000);
    CHECK(bases.gs_user == 0x7000'2000);
    CHECK(bases.gs_kernel == 0xFFFF'FFFF'8000'3000);
    CHECK(set_segment_base(bases, {abi::SEGBASE_FS, 0x0000'8000'0000'0000}) == hv::xen_errno(hv::Errc::einval));
    CHECK(set_segment_base(bases, {4, 0}) == hv::xen_errno(hv::Errc::einval));
    CHECK(bases.fs == 0x7000'1000);
    CHECK(set_segment_base(bases, {abi::SEGBASE_GS_USER_SEL, 0xe02b}) == 0);
    CHECK(bases.gs_user == 0);
    CHECK(bases.gs_kernel == 0xFFFF'FFFF'8000'3000);
}

// A domain whose L1 maps itself read-only at guest address 5 * 4096, as kernels map their page
// tables; guest code at offset 0x1000 of the caller's buffer.
struct PageTableWriteFixture : mm_test::MmuOpsFixture {
    PageTableWriteFixture() {
        table(chain.l1)[5] = entry(chain.l1, mm_test::ro);
        REQUIRE(tables.pin(dom1, chain.l4, 4));
        REQUIRE(tables.set_kernel_base(dom1, vcpus[0], chain.l4));
        dom1.writable_pagetables = true;
        place<std::uint8_t>(0x1000, {0x48, 0x89, 0x3e});  // mov %rdi, (%rsi)
        registers.rip = GuestBuffer::base + 0x1000;
        registers.rsi = l1_address + 2 * 8;
    }
    bool fault(std::uint32_t error_code) {
        return emulate_page_table_write(vcpu, bases, registers, tables, caller, error_code, l1_address + 2 * 8);
    }
    static constexpr std::uint64_t l1_address = 5 * mm_test::page_size;
    Chain chain = build_chain(dom1);
    PvVcpu vcpu;
    SegmentBases bases;
    GuestRegisters registers{};
};

TEST_CASE_METHOD(PageTableWriteFixture, "a kernel write fault on its own L1 is completed as a validated update",
                 "[pv][ptwr]") {
    const hv::Mfn page = allocate(dom1);
    registers.rdi = entry(page, mm_test::rw);
    constexpr std::uint32_t present_write = 3, user = 4, reserved = 8, fetch = 16;
    CHECK_FALSE(fault(2));  // not present: a fault of the guest's own
    CHECK_FALSE(fault(present_write | reserved));
    CHECK_FALSE(fault(present_write | fetch));
    vcpu.kernel_mode = false;
    CHECK_FALSE(fault(present_write | user));  // its user mode's fault is the guest kernel's to handle
    vcpu.kernel_mode = true;
    dom1.writable_pagetables = false;
    CHECK_FALSE(fault(present_write | user));
    CHECK(table(chain.l1)[2] == 0);
    CHECK(registers.rip == GuestBuffer::base + 0x1000);

    dom1.writable_pagetables = true;
    REQUIRE(fault(present_write | user));  // the CPU sets the user bit: the guest kernel runs in ring 3
    CHECK((table(chain.l1)[2] & mm_test::pte::frame_mask) == page.value << 12);
    CHECK(registers.rip == GuestBuffer::base + 0x1003);
    CHECK(registers.rdi == entry(page, mm_test::rw));
    require_invariants();
}

}  // namespace
}  // namespace pv_test

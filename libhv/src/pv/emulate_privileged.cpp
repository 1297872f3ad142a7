// Privileged operations of PV guest kernels (see hv/pv_emulate.hpp).
#include <hv/pv_emulate.hpp>

#include <array>

namespace hv::pv {
namespace {

constexpr std::uint8_t invalid_opcode = 6;
constexpr std::uint8_t general_protection = 13;

constexpr std::uint32_t msr_efer = 0xC000'0080;
constexpr std::uint32_t msr_fs_base = 0xC000'0100;
constexpr std::uint32_t msr_gs_base = 0xC000'0101;
constexpr std::uint32_t msr_shadow_gs_base = 0xC000'0102;
constexpr std::uint32_t msr_pat = 0x277;

constexpr std::uint32_t xen_leaf_base = 0x4000'0000;
constexpr std::uint32_t hypercall_page_msr = 0x4000'0000;

constexpr std::uint32_t bit(unsigned number) { return 1u << number; }

constexpr std::uint64_t cr0_task_switched = bit(3);
// CR4 as Xen shows it to a 64-bit PV kernel: PAE, and the SSE enables it relies on.
constexpr std::uint64_t cr4_guest_visible = bit(5) | bit(9) | bit(10);
// What a PV kernel may set in its CR4 (Linux's prctl(PR_SET_TSC) sets TSD): kept and read back.
constexpr std::uint64_t cr4_guest_controls = bit(2) | bit(3);  // TSD, DE

// CPUID leaf 1 features a PV guest must not see: it cannot use them from ring 3 or the
// hypervisor does not virtualise them (monitor/mwait, VMX, SMX, speed and thermal control, PCID,
// x2APIC, TSC deadline, XSAVE and what needs it: FMA, AVX, F16C; as Xen's PV policy hides them).
constexpr std::uint32_t leaf1_ecx_hidden = bit(3) | bit(5) | bit(6) | bit(7) | bit(8) | bit(12) | bit(17) | bit(21) |
                                           bit(24) | bit(26) | bit(27) | bit(28) | bit(29);
constexpr std::uint32_t leaf1_ecx_hypervisor = bit(31);
// Leaf 1 EDX: VME, DE, PSE, MCE, APIC, MTRR, PGE, MCA, PSE36, DS, ACPI, TM, PBE.
constexpr std::uint32_t leaf1_edx_hidden = bit(1) | bit(2) | bit(3) | bit(7) | bit(9) | bit(12) | bit(13) | bit(14) |
                                           bit(17) | bit(21) | bit(22) | bit(29) | bit(31);
// Leaf 7 EBX: FSGSBASE, AVX2, SMEP, INVPCID, RTM, AVX-512 (16-31 except the cache and SHA bits
// that need no state), SMAP: ring-0 or extended-state features a PV kernel cannot use.
constexpr std::uint32_t leaf7_ebx_hidden = bit(0) | bit(5) | bit(7) | bit(10) | bit(11) | bit(16) | bit(17) |
                                           bit(20) | bit(21) | bit(26) | bit(27) | bit(28) | bit(30) | bit(31);

// Leaf 0x80000001: SVM and 1 GiB pages (a PV guest's page tables may not use them), as Xen.
constexpr std::uint32_t extended_ecx_hidden = bit(2);
constexpr std::uint32_t extended_edx_hidden = bit(26);

std::uint32_t chars(const char (&text)[5]) {
    return static_cast<std::uint32_t>(text[0]) | static_cast<std::uint32_t>(text[1]) << 8 |
           static_cast<std::uint32_t>(text[2]) << 16 | static_cast<std::uint32_t>(text[3]) << 24;
}

// Up to 15 instruction bytes from rip, as far as they can be read.
struct Instruction {
    std::array<std::uint8_t, 15> bytes{};
    unsigned length = 0;
    bool starts_with(std::initializer_list<std::uint8_t> prefix) const {
        if (prefix.size() > length)
            return false;
        unsigned i = 0;
        for (std::uint8_t value : prefix)
            if (bytes[i++] != value)
                return false;
        return true;
    }
};
Instruction fetch(GuestMemory& memory, std::uint64_t rip) {
    Instruction instruction;
    while (instruction.length < instruction.bytes.size()) {
        std::byte value;
        if (!is_guest_range(Vaddr{rip + instruction.length}, 1) ||
            !memory.read(Vaddr{rip + instruction.length}, std::span{&value, 1}))
            break;
        instruction.bytes[instruction.length++] = static_cast<std::uint8_t>(value);
    }
    return instruction;
}

void set_edx_eax(GuestRegisters& registers, std::uint64_t value) {
    registers.rax = static_cast<std::uint32_t>(value);
    registers.rdx = value >> 32;
}

}  // namespace

CpuidLeaf guest_cpuid(CpuidSource& host, std::uint32_t leaf, std::uint32_t subleaf, std::uint16_t xen_major,
                      std::uint16_t xen_minor) {
    switch (leaf) {
    case xen_leaf_base:
        return {xen_leaf_base + 2, chars("XenV"), chars("MMXe"), chars("nVMM")};
    case xen_leaf_base + 1:
        return {static_cast<std::uint32_t>(xen_major) << 16 | xen_minor, 0, 0, 0};
    case xen_leaf_base + 2:
        return {1, hypercall_page_msr, 0, 0};
    default:
        break;
    }
    if (leaf > xen_leaf_base + 2 && leaf < 0x8000'0000)
        return {0, 0, 0, 0};
    CpuidLeaf result = host.cpuid(leaf, subleaf);
    if (leaf == 1) {
        result.ecx = (result.ecx & ~leaf1_ecx_hidden) | leaf1_ecx_hypervisor;
        result.edx &= ~leaf1_edx_hidden;
    } else if (leaf == 7 && subleaf == 0) {
        result.ebx &= ~leaf7_ebx_hidden;
        result.ecx = 0;
        result.edx = 0;
    } else if (leaf == 7) {
        result = {0, 0, 0, 0};  // subleaf 1 and up: AVX and AMX extensions, nothing a PV guest has
    } else if (leaf == 0x8000'0001) {
        result.ecx &= ~extended_ecx_hidden;
        result.edx &= ~extended_edx_hidden;
    } else if (leaf == 0xD) {
        result = {0, 0, 0, 0};  // no XSAVE
    }
    return result;
}

long set_segment_base(SegmentBases& bases, const hypercall_args::set_segment_base& args) {
    std::uint64_t* base = nullptr;
    switch (args.which) {
    case abi::SEGBASE_FS:
        base = &bases.fs;
        break;
    case abi::SEGBASE_GS_USER:
        base = &bases.gs_user;
        break;
    case abi::SEGBASE_GS_KERNEL:
        base = &bases.gs_kernel;
        break;
    case abi::SEGBASE_GS_USER_SEL:
        bases.gs_user = 0;
        return 0;
    default:
        return xen_errno(Errc::einval);
    }
    if (!is_canonical(args.base))
        return xen_errno(Errc::einval);
    *base = args.base;
    return 0;
}

long physdev_op(PvVcpu& vcpu, GuestMemory& memory, const hypercall_args::physdev_op& args) {
    if (args.cmd != abi::PHYSDEVOP_set_iopl)
        return xen_errno(Errc::enosys);
    const auto request = copy_from_guest(memory, GuestHandle<abi::physdev_set_iopl>{args.arg.address});
    if (!request)
        return request.xen_errno();
    if (request->iopl > 3)
        return xen_errno(Errc::einval);
    vcpu.iopl = request->iopl;
    return 0;
}

Emulation emulate_privileged(PvVcpu& vcpu, SegmentBases& bases, abi::vcpu_info& info, GuestRegisters& registers,
                             GuestMemory& memory, CpuidSource& host, std::uint8_t vector, const MachineState& machine,
                             std::uint16_t xen_major, std::uint16_t xen_minor) {
    const Instruction instruction = fetch(memory, registers.rip);
    const auto done = [&](unsigned length, bool bases_changed = false) {
        registers.rip += length;
        return Emulation{true, bases_changed};
    };
    if (vector == invalid_opcode) {
        if (!instruction.starts_with({0x0F, 0x0B, 'x', 'e', 'n', 0x0F, 0xA2}))
            return {false, false};
        const CpuidLeaf leaf = guest_cpuid(host, static_cast<std::uint32_t>(registers.rax),
                                           static_cast<std::uint32_t>(registers.rcx), xen_major, xen_minor);
        registers.rax = leaf.eax;
        registers.rbx = leaf.ebx;
        registers.rcx = leaf.ecx;
        registers.rdx = leaf.edx;
        return done(7);
    }
    if (vector != general_protection || !vcpu.kernel_mode)
        return {false, false};

    // Prefixes: an operand-size override (for in/out) and one REX (for mov from cr3).
    unsigned at = 0;
    bool operand_16 = false;
    if (at < instruction.length && instruction.bytes[at] == 0x66) {
        operand_16 = true;
        ++at;
    }
    std::uint8_t rex = 0;
    if (at < instruction.length && (instruction.bytes[at] & 0xF0) == 0x40)
        rex = instruction.bytes[at++];
    if (at >= instruction.length)
        return {false, false};
    const std::uint8_t opcode = instruction.bytes[at];
    const auto next = [&](unsigned offset) -> int {
        return at + offset < instruction.length ? instruction.bytes[at + offset] : -1;
    };

    if (opcode == 0x0F && next(1) == 0x32 && !operand_16 && rex == 0) {  // rdmsr
        switch (static_cast<std::uint32_t>(registers.rcx)) {
        case msr_fs_base:
            set_edx_eax(registers, bases.fs);
            break;
        case msr_gs_base:
            set_edx_eax(registers, bases.gs_kernel);
            break;
        case msr_shadow_gs_base:
            set_edx_eax(registers, bases.gs_user);
            break;
        case msr_efer:
            set_edx_eax(registers, machine.efer);
            break;
        case msr_pat:
            set_edx_eax(registers, pv_pat);
            break;
        default:
            return {false, false};
        }
        return done(at + 2);
    }
    if (opcode == 0x0F && next(1) == 0x30 && !operand_16 && rex == 0) {  // wrmsr
        const std::uint64_t value = (registers.rdx << 32) | static_cast<std::uint32_t>(registers.rax);
        std::uint64_t* base = nullptr;
        switch (static_cast<std::uint32_t>(registers.rcx)) {
        case msr_fs_base:
            base = &bases.fs;
            break;
        case msr_gs_base:
            base = &bases.gs_kernel;
            break;
        case msr_shadow_gs_base:
            base = &bases.gs_user;
            break;
        case msr_efer:
        case msr_pat:
            // Xen lets a PV guest write back what it reads, and nothing else.
            if (value != (static_cast<std::uint32_t>(registers.rcx) == msr_efer ? machine.efer : pv_pat))
                return {false, false};
            return done(at + 2);
        default:
            return {false, false};
        }
        if (!is_canonical(value))
            return {false, false};
        *base = value;
        return done(at + 2, true);
    }
    if (opcode == 0x0F && next(1) == 0x20 && next(2) >= 0 && !operand_16) {  // mov %cr, %reg
        const auto modrm = static_cast<std::uint8_t>(next(2));
        if ((modrm >> 6) != 3 || (rex & 4) != 0)
            return {false, false};
        std::uint64_t value;
        switch ((modrm >> 3) & 7) {
        case 0:
            value = (machine.cr0 & ~cr0_task_switched) | (vcpu.fpu_task_switched ? cr0_task_switched : 0);
            break;
        case 2:
            value = info.arch.cr2;
            break;
        case 3:
            value = machine.cr3;
            break;
        case 4:
            value = (machine.cr4 & cr4_guest_visible) | vcpu.cr4_guest_controlled;
            break;
        default:
            return {false, false};
        }
        register_by_number(registers, (modrm & 7) | ((rex & 1) << 3)) = value;
        return done(at + 3);
    }
    if (opcode == 0x0F && next(1) == 0x22 && next(2) >= 0 && !operand_16) {  // mov %reg, %cr4
        const auto modrm = static_cast<std::uint8_t>(next(2));
        if ((modrm >> 6) != 3 || (rex & 4) != 0 || ((modrm >> 3) & 7) != 4)
            return {false, false};
        // As Xen: the write is taken; only the bits a guest controls are kept, the rest is Xen's.
        vcpu.cr4_guest_controlled = register_by_number(registers, (modrm & 7) | ((rex & 1) << 3)) & cr4_guest_controls;
        return done(at + 3);
    }
    if ((opcode == 0xFA || opcode == 0xFB) && rex == 0 && !operand_16) {  // cli, sti
        constexpr unsigned guest_kernel_ring = 1;
        if (vcpu.iopl < guest_kernel_ring)
            return {false, false};
        info.evtchn_upcall_mask = opcode == 0xFA ? 1 : 0;
        return done(at + 1);
    }
    if (rex != 0)
        return {false, false};
    // Port I/O: no ports exist for the guest; reads see all ones, writes go nowhere.
    const unsigned size = opcode == 0xEC || opcode == 0xE4 || opcode == 0xEE || opcode == 0xE6 ? 1 : operand_16 ? 2 : 4;
    const auto read_ones = [&](unsigned length) {
        const std::uint64_t ones = size == 1 ? 0xFF : size == 2 ? 0xFFFF : 0xFFFF'FFFF;
        registers.rax = size == 4 ? ones : (registers.rax & ~ones) | ones;
        return done(length);
    };
    switch (opcode) {
    case 0xEC:
    case 0xED:
        return read_ones(at + 1);
    case 0xE4:
    case 0xE5:
        return next(1) >= 0 ? read_ones(at + 2) : Emulation{false, false};
    case 0xEE:
    case 0xEF:
        return done(at + 1);
    case 0xE6:
    case 0xE7:
        return next(1) >= 0 ? done(at + 2) : Emulation{false, false};
    default:
        return {false, false};
    }
}

}  // namespace hv::pv

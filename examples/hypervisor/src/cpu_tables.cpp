// SPDX-License-Identifier: BSD-2-Clause
#include "cpu_tables.hpp"

#include <array>
#include <cstddef>

#include <pvkit/abi.hpp>

#include "cpu.hpp"
#include "guest_frame.hpp"

namespace hypervisor {
namespace {

// 64-bit TSS (Intel SDM vol. 3, 8.7): only rsp0 and IST1 are used.
struct [[gnu::packed]] TaskState {
    std::uint32_t reserved0;
    std::uint64_t rsp[3];
    std::uint64_t reserved1;
    std::uint64_t ist[7];
    std::uint64_t reserved2;
    std::uint16_t reserved3;
    std::uint16_t io_map_base;
};
static_assert(sizeof(TaskState) == 104);

struct IdtGate {
    std::uint16_t offset_low;
    std::uint16_t selector;
    std::uint8_t ist;
    std::uint8_t type;  // present, 64-bit interrupt gate: 0x8E at DPL 0, 0xEE at DPL 3
    std::uint16_t offset_middle;
    std::uint32_t offset_high;
    std::uint32_t reserved;
};
static_assert(sizeof(IdtGate) == 16);

struct [[gnu::packed]] TablePointer {
    std::uint16_t limit;
    std::uint64_t base;
};

// The whole GDT a PV guest can name, 16 pages as Xen's: the descriptors of the guest's own frames
// below entry 7168 (guest_gdt.cpp copies them in) and Xen's reserved entries from there on.
constexpr std::size_t gdt_entries = 8192;
static_assert(gdt_entries * 8 - 1 == 0xFFFF, "every selector is inside the limit");
constexpr std::size_t entry(std::uint16_t selector) { return selector >> 3; }

constexpr std::uint64_t code64(unsigned dpl) { return 0x00AF'9A00'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t data(unsigned dpl) { return 0x00CF'9200'0000'FFFFull | (std::uint64_t{dpl} << 45); }

alignas(4096) std::array<std::uint64_t, gdt_entries> gdt;
TaskState tss;
alignas(16) std::array<IdtGate, 256> idt;
// Exceptions that may strike at any instruction, the two before the syscall entry has switched
// stacks included, run on stacks of their own (IST): never on one a guest chose. #DB is one: a
// guest's data breakpoint on `mov ss` is held back to the next instruction, which may be the
// syscall entry or an exception's, in ring 0 (the MOV SS erratum, Xen's XSA-260).
alignas(16) std::array<std::byte, 4096> debug_stack;
alignas(16) std::array<std::byte, 4096> double_fault_stack;
alignas(16) std::array<std::byte, 4096> nmi_stack;
alignas(16) std::array<std::byte, 4096> machine_check_stack;

constexpr std::uint8_t debug_vector = 1, nmi_vector = 2, double_fault_vector = 8, machine_check_vector = 18;
constexpr unsigned double_fault_ist = 1, nmi_ist = 2, machine_check_ist = 3, debug_ist = 4;

constexpr std::uint8_t ist_for(unsigned vector) {
    return vector == debug_vector        ? debug_ist
           : vector == double_fault_vector ? double_fault_ist
           : vector == nmi_vector        ? nmi_ist
           : vector == machine_check_vector ? machine_check_ist
                                            : 0;
}

template <std::size_t size>
std::uint64_t top_of(std::array<std::byte, size>& stack) {
    return reinterpret_cast<std::uint64_t>(stack.data() + size);
}

constexpr std::uint32_t msr_sysenter_cs = 0x174;
constexpr std::uint32_t msr_star = 0xC000'0081;
constexpr std::uint32_t msr_lstar = 0xC000'0082;
constexpr std::uint32_t msr_cstar = 0xC000'0083;
constexpr std::uint32_t msr_sfmask = 0xC000'0084;

constexpr std::uint64_t cr0_mp = 1 << 1, cr0_em = 1 << 2, cr0_ne = 1 << 5;
constexpr std::uint64_t cr4_osfxsr = 1 << 9, cr4_osxmmexcpt = 1 << 10, cr4_smep = 1 << 20;
// Cleared on syscall: interrupts (until the entry stack is ours), single-step, direction,
// nested task, alignment check.
constexpr std::uint64_t syscall_flag_mask = 0x200 | 0x100 | 0x400 | 0x4000 | 0x40000;

}  // namespace

std::span<std::uint64_t, guest_gdt_entries> guest_gdt() { return std::span{gdt}.first<guest_gdt_entries>(); }

void load_cpu_tables() {
    gdt[entry(hypervisor_cs)] = code64(0);
    gdt[entry(hypervisor_ds)] = data(0);
    gdt[entry(guest_ss)] = data(3);
    gdt[entry(guest_cs64)] = code64(3);
    tss.rsp[0] = hv_entry_stack_top;
    tss.ist[double_fault_ist - 1] = top_of(double_fault_stack);
    tss.ist[nmi_ist - 1] = top_of(nmi_stack);
    tss.ist[machine_check_ist - 1] = top_of(machine_check_stack);
    tss.ist[debug_ist - 1] = top_of(debug_stack);
    tss.io_map_base = sizeof(TaskState);  // no I/O bitmap: every port faults in ring 3
    const auto tss_base = reinterpret_cast<std::uint64_t>(&tss);
    gdt[entry(tss_selector)] = (sizeof(TaskState) - 1) | ((tss_base & 0xFF'FFFF) << 16) | (0x89ull << 40) |
                               (((tss_base >> 24) & 0xFF) << 56);
    gdt[entry(tss_selector) + 1] = tss_base >> 32;

    const TablePointer gdt_pointer{sizeof(gdt) - 1, reinterpret_cast<std::uint64_t>(gdt.data())};
    asm volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movw %w2, %%ss\n\t"
        "movw %w2, %%ds\n\t"
        "movw %w2, %%es\n\t"
        "ltr %w3"
        :
        : "m"(gdt_pointer), "i"(hypervisor_cs), "r"(hypervisor_ds), "r"(tss_selector)
        : "rax", "memory");

    // Ring 3 may raise #BP (int3) and #OF (into) itself, as under Xen; any other `int n` faults
    // with #GP, and the guest's trap table decides (hv::pv::bounce_software_interrupt).
    constexpr std::uint8_t interrupt_gate = 0x8E, user_interrupt_gate = 0xEE;
    constexpr unsigned breakpoint = 3, overflow = 4;
    for (unsigned vector = 0; vector < idt.size(); ++vector) {
        const auto handler = reinterpret_cast<std::uint64_t>(hv_trap_stubs + 16 * vector);
        const bool user_may_raise = vector == breakpoint || vector == overflow;
        idt[vector] = {static_cast<std::uint16_t>(handler), hypervisor_cs,
                       ist_for(vector), user_may_raise ? user_interrupt_gate : interrupt_gate,
                       static_cast<std::uint16_t>(handler >> 16), static_cast<std::uint32_t>(handler >> 32), 0};
    }
    const TablePointer idt_pointer{sizeof(idt) - 1, reinterpret_cast<std::uint64_t>(idt.data())};
    asm volatile("lidt %0" : : "m"(idt_pointer));

    // sysret would load cs = STAR[63:48] + 16 and ss = STAR[63:48] + 8: the guest's flat selectors.
    // There is no 32-bit guest code segment among ours, but a guest may put one in its own GDT and
    // far-jump to it: a syscall from compatibility mode finds CSTAR pointing at the same entry
    // rather than at address 0, and no return to compatibility mode is allowed (ensure_enterable).
    cpu::write_msr(msr_star, (std::uint64_t{guest_cs64 - 16} << 48) | (std::uint64_t{hypervisor_cs} << 32));
    cpu::write_msr(msr_lstar, reinterpret_cast<std::uint64_t>(&hv_syscall_entry));
    cpu::write_msr(msr_cstar, reinterpret_cast<std::uint64_t>(&hv_syscall_entry));
    cpu::write_msr(msr_sfmask, syscall_flag_mask);
    // sysenter from ring 3 faults (#GP) with a null SYSENTER_CS, whatever firmware left there.
    cpu::write_msr(msr_sysenter_cs, 0);

    // SSE for guests (the hypervisor itself uses general registers only); SMEP where the CPU has
    // it, so that ring 0 never runs a guest's (user) page by mistake. Not SMAP: QEMU 7.2's TCG
    // pops the frame of a guest's own iretq (Linux's sync_core) with supervisor accesses even at
    // CPL 3, which SMAP turns into a page fault; the hypervisor reads guest memory only through
    // its direct map anyway.
    std::uint64_t cr0, cr4;
    asm volatile("mov %%cr0, %0; mov %%cr4, %1" : "=r"(cr0), "=r"(cr4));
    cr0 = (cr0 & ~cr0_em) | cr0_mp | cr0_ne;
    cr4 |= cr4_osfxsr | cr4_osxmmexcpt;
    if (cpu::cpuid(0).eax >= 7) {
        const std::uint32_t features = cpu::cpuid(7).ebx;
        if (features & (1u << 7))
            cr4 |= cr4_smep;
    }
    asm volatile("mov %0, %%cr0; mov %1, %%cr4" : : "r"(cr0), "r"(cr4) : "memory");
}

}  // namespace hypervisor

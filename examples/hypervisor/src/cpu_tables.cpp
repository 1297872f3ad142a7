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
    std::uint8_t type;  // present, DPL 0, 64-bit interrupt gate: 0x8E
    std::uint16_t offset_middle;
    std::uint32_t offset_high;
    std::uint32_t reserved;
};
static_assert(sizeof(IdtGate) == 16);

struct [[gnu::packed]] TablePointer {
    std::uint16_t limit;
    std::uint64_t base;
};

// The whole GDT a PV guest can name: its own frames below entry 7168 (none installed yet) and
// Xen's reserved entries above.
constexpr std::size_t gdt_entries = pvkit::abi::FIRST_RESERVED_GDT_ENTRY + 512;
constexpr std::size_t entry(std::uint16_t selector) { return selector >> 3; }

constexpr std::uint64_t code64(unsigned dpl) { return 0x00AF'9A00'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t code32(unsigned dpl) { return 0x00CF'9A00'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t data(unsigned dpl) { return 0x00CF'9200'0000'FFFFull | (std::uint64_t{dpl} << 45); }

alignas(4096) std::array<std::uint64_t, gdt_entries> gdt;
TaskState tss;
alignas(16) std::array<IdtGate, 256> idt;
alignas(16) std::array<std::byte, 4096> double_fault_stack;

constexpr std::uint8_t double_fault_vector = 8;
constexpr unsigned double_fault_ist = 1;

constexpr std::uint32_t msr_star = 0xC000'0081;
constexpr std::uint32_t msr_lstar = 0xC000'0082;
constexpr std::uint32_t msr_sfmask = 0xC000'0084;
// Cleared on syscall: interrupts (until the entry stack is ours), single-step, direction,
// nested task, alignment check.
constexpr std::uint64_t syscall_flag_mask = 0x200 | 0x100 | 0x400 | 0x4000 | 0x40000;

void write_msr(std::uint32_t msr, std::uint64_t value) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<std::uint32_t>(value)), "d"(static_cast<std::uint32_t>(value >> 32)));
}

}  // namespace

void load_cpu_tables() {
    gdt[entry(hypervisor_cs)] = code64(0);
    gdt[entry(hypervisor_ds)] = data(0);
    gdt[entry(guest_cs32)] = code32(3);
    gdt[entry(guest_ss)] = data(3);
    gdt[entry(guest_cs64)] = code64(3);
    tss.rsp[0] = hv_entry_stack_top;
    tss.ist[double_fault_ist - 1] = reinterpret_cast<std::uint64_t>(double_fault_stack.data() + double_fault_stack.size());
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

    for (unsigned vector = 0; vector < idt.size(); ++vector) {
        const auto handler = reinterpret_cast<std::uint64_t>(hv_trap_stubs + 16 * vector);
        idt[vector] = {static_cast<std::uint16_t>(handler), hypervisor_cs,
                       static_cast<std::uint8_t>(vector == double_fault_vector ? double_fault_ist : 0), 0x8E,
                       static_cast<std::uint16_t>(handler >> 16), static_cast<std::uint32_t>(handler >> 32), 0};
    }
    const TablePointer idt_pointer{sizeof(idt) - 1, reinterpret_cast<std::uint64_t>(idt.data())};
    asm volatile("lidt %0" : : "m"(idt_pointer));

    // sysret would load cs = STAR[63:48] + 16 and ss = STAR[63:48] + 8: the guest's flat selectors.
    write_msr(msr_star, (std::uint64_t{guest_cs32} << 48) | (std::uint64_t{hypervisor_cs} << 32));
    write_msr(msr_lstar, reinterpret_cast<std::uint64_t>(&hv_syscall_entry));
    write_msr(msr_sfmask, syscall_flag_mask);

    // The 8259s: every line masked.
    cpu::outb(0x21, 0xFF);
    cpu::outb(0xA1, 0xFF);
}

}  // namespace hypervisor

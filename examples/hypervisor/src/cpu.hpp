// SPDX-License-Identifier: BSD-2-Clause
// The privileged instructions the hypervisor uses, as inline functions: one definition of each.
#pragma once

#include <array>
#include <cstdint>

namespace hypervisor::cpu {

inline std::uint8_t inb(std::uint16_t port) {
    std::uint8_t value;
    asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

inline void outb(std::uint16_t port, std::uint8_t value) {
    asm volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

inline void outl(std::uint16_t port, std::uint32_t value) {
    asm volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

inline void pause() { asm volatile("pause"); }

struct CpuidLeaf {
    std::uint32_t eax, ebx, ecx, edx;
};

inline CpuidLeaf cpuid(std::uint32_t leaf, std::uint32_t subleaf = 0) {
    CpuidLeaf result;
    asm volatile("cpuid" : "=a"(result.eax), "=b"(result.ebx), "=c"(result.ecx), "=d"(result.edx) : "a"(leaf), "c"(subleaf));
    return result;
}

inline std::uint64_t read_msr(std::uint32_t msr) {
    std::uint32_t low, high;
    asm volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
    return (std::uint64_t{high} << 32) | low;
}

inline void write_msr(std::uint32_t msr, std::uint64_t value) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<std::uint32_t>(value)), "d"(static_cast<std::uint32_t>(value >> 32)));
}

inline std::uint64_t read_tsc() {
    std::uint32_t low, high;
    asm volatile("rdtsc" : "=a"(low), "=d"(high));
    return (std::uint64_t{high} << 32) | low;
}

inline std::uint64_t read_cr3() {
    std::uint64_t value;
    asm volatile("mov %%cr3, %0" : "=r"(value));
    return value;
}

inline void write_cr3(std::uint64_t value) { asm volatile("mov %0, %%cr3" : : "r"(value) : "memory"); }

inline std::uint64_t read_cr0() {
    std::uint64_t value;
    asm volatile("mov %%cr0, %0" : "=r"(value));
    return value;
}

inline std::uint64_t read_cr4() {
    std::uint64_t value;
    asm volatile("mov %%cr4, %0" : "=r"(value));
    return value;
}

// CR0.TS: the next FPU or SSE instruction raises #NM while it is set.
inline void set_task_switched(bool set) {
    if (set)
        asm volatile("mov %%cr0, %%rax; or $8, %%rax; mov %%rax, %%cr0" : : : "rax", "memory");
    else
        asm volatile("clts" : : : "memory");
}

// The FPU, x87 and SSE state of a vCPU in the 512-byte FXSAVE format (TS must be clear).
inline void save_fpu(std::byte* area) { asm volatile("fxsave64 (%0)" : : "r"(area) : "memory"); }
// AMD CPUs restore the x87 last instruction and operand pointers only while an exception is
// pending (Xen's XSA-52): a harmless load first replaces the previous owner's pointers.
inline void load_fpu(const std::byte* area) {
    static const std::uint32_t zero = 0;
    asm volatile("fnclex; ffree %%st(7); fildl %1; fxrstor64 (%0)" : : "r"(area), "m"(zero) : "memory");
}

// The debug registers: addresses DR0-DR3, status DR6, control DR7.
inline void write_debug_addresses(const std::array<std::uint64_t, 4>& address) {
    asm volatile("mov %0, %%db0; mov %1, %%db1; mov %2, %%db2; mov %3, %%db3"
                 : : "r"(address[0]), "r"(address[1]), "r"(address[2]), "r"(address[3]));
}
inline void write_debug_control(std::uint64_t value) { asm volatile("mov %0, %%db7" : : "r"(value)); }
inline std::uint64_t read_debug_status() {
    std::uint64_t value;
    asm volatile("mov %%db6, %0" : "=r"(value));
    return value;
}
inline void write_debug_status(std::uint64_t value) { asm volatile("mov %0, %%db6" : : "r"(value)); }

// Interrupts off, then hlt in a loop: an NMI or SMI can still wake hlt.
[[noreturn]] inline void halt_forever() {
    for (;;) {
        asm volatile("cli; hlt");
    }
}

// Leaves QEMU through its isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04),
// which exits with (status << 1) | 1; elsewhere (no such device) halts.
[[noreturn]] inline void exit_qemu(std::uint8_t status) {
    outl(0xf4, status);
    halt_forever();
}

}  // namespace hypervisor::cpu

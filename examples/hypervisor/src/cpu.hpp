// SPDX-License-Identifier: BSD-2-Clause
// The few privileged instructions the boot path needs, as inline functions.
#pragma once

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

// SPDX-License-Identifier: BSD-2-Clause
// A guest vCPU's registers as the entry code saves them on the hypervisor stack: general registers
// pushed by boot/guest_entry.S, then what the CPU pushes on an interrupt from ring 3 (the syscall
// entry pushes the same). guest_entry.S depends on this layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hypervisor {

struct GuestFrame {
    std::uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    std::uint64_t vector;      // the exception or interrupt vector; syscall_vector for a hypercall
    std::uint64_t error_code;  // 0 where the CPU pushes none
    std::uint64_t rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(GuestFrame) == 22 * 8);  // GUEST_FRAME_SIZE in guest_entry.S
static_assert(offsetof(GuestFrame, vector) == 15 * 8);

// Not a CPU vector: the frame of a syscall.
inline constexpr std::uint64_t syscall_vector = 0x100;

// The exceptions for which the CPU pushes an error code (guest_entry.S pushes 0 for the others).
constexpr bool has_error_code(std::uint64_t vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 ||
           vector == 30;
}
inline constexpr std::uint64_t first_external_vector = 32;

}  // namespace hypervisor

// guest_entry.S. Hidden: the static link resolves them directly, with no GOT.
#pragma GCC visibility push(hidden)
extern "C" {
// Loads the frame's registers and returns to the guest with iretq.
[[noreturn]] void hv_enter_guest(hypervisor::GuestFrame* frame);
// The first byte of 256 trap stubs, 16 bytes apart: the IDT points at them.
extern char hv_trap_stubs[];
void hv_syscall_entry();
// The top of the stack that guest entries run on (the TSS's rsp0 and the syscall entry's).
extern std::uint64_t hv_entry_stack_top;
// Calls `function` on the entry stack just below the GuestFrame at its top, leaving the caller's
// stack for good.
[[noreturn]] void hv_run_on_entry_stack(void (*function)());
}
#pragma GCC visibility pop

// Traps of 64-bit PV guests: the trap table a guest kernel registers, exceptions bounced to it on
// the guest's own stack in Xen's frame, the kernel stack for traps from guest user mode, and the
// iret hypercall that returns from them.
//
// A PV guest kernel runs in ring 3 beside its own user mode; the hypervisor keeps which of the two
// is running (kernel_mode) and turns an exception into a jump to the guest's handler, as the CPU
// would for a native kernel. The frame Xen builds below a 16-byte aligned top, from the lowest
// address up:
//   rcx, r11, [error code], rip, cs, rflags, rsp, ss
// with cs's RPL cleared for a trap from guest kernel mode (a guest tells the two modes apart by
// it) and the upcall mask of the moment in bits 32-39 of its slot, rflags.IF standing for
// "events were unmasked", rip and rsp where the trap happened. The
// handler runs with rsp at rcx (Linux's and Mini-OS's entries pop rcx, then r11). The guest
// returns with HYPERVISOR_iret and an iret_context.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include <hv/continuation.hpp>
#include <hv/guest_memory.hpp>

namespace hv::pv {

namespace abi = pvkit::abi;

// A vCPU's registers where it was interrupted, and where it is to resume.
struct GuestRegisters {
    std::uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
    std::uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    std::uint64_t rip, rflags;
    std::uint16_t cs, ss;
};

// A general-purpose register by the number instructions encode it with (rax 0, rcx 1, ... r15 15).
inline std::uint64_t& register_by_number(GuestRegisters& registers, unsigned number) {
    std::uint64_t* const table[16] = {&registers.rax, &registers.rcx, &registers.rdx, &registers.rbx,
                                      &registers.rsp, &registers.rbp, &registers.rsi, &registers.rdi,
                                      &registers.r8,  &registers.r9,  &registers.r10, &registers.r11,
                                      &registers.r12, &registers.r13, &registers.r14, &registers.r15};
    return *table[number & 15];
}

// A vCPU's debug registers as the guest set them (set_debugreg); the platform loads DR0-DR3 and
// DR7 into the CPU while the vCPU runs.
struct DebugRegisters {
    static constexpr std::uint64_t status_default = 0xFFFF'0FF0;  // DR6 with no event recorded
    static constexpr std::uint64_t control_default = 0x400;       // DR7 with nothing enabled
    std::array<std::uint64_t, 4> address{};
    std::uint64_t status = status_default;
    std::uint64_t control = control_default;
};

// What the trap layer keeps of one vCPU.
struct PvVcpu {
    std::array<abi::trap_info, 256> traps{};  // by vector; address 0: no handler
    std::uint64_t kernel_ss = 0;              // stack_switch: recorded; 64-bit Xen enters on FLAT_KERNEL_SS
    std::uint64_t kernel_sp = 0;
    bool kernel_mode = true;                  // the guest kernel is running (not its user mode)
    // The guest's callbacks (set_callbacks, CALLBACKOP_register); 0: none.
    std::uint64_t event_callback = 0;
    std::uint64_t failsafe_callback = 0;
    std::uint64_t syscall_callback = 0;
    std::uint64_t syscall32_callback = 0;
    std::uint64_t sysenter_callback = 0;
    std::uint64_t nmi_callback = 0;
    bool failsafe_masks_events = false;       // CALLBACKF_mask_events
    bool syscall_masks_events = false;
    bool fpu_task_switched = false;           // the guest's CR0.TS (fpu_taskswitch)
    unsigned iopl = 0;                        // the virtual IOPL (PHYSDEVOP_set_iopl)
    std::uint64_t cr4_guest_controlled = 0;   // the CR4 bits the guest set (TSD, DE): kept, not enforced
    DebugRegisters debug;
};

// Xen's flat selectors for a 64-bit guest kernel, as the CPU sees them (RPL 3).
inline constexpr std::uint16_t guest_kernel_cs = abi::FLAT_KERNEL_CS64;
inline constexpr std::uint16_t guest_kernel_ss = abi::FLAT_KERNEL_SS;

// set_trap_table: entries up to the first whose address is 0 replace those of their vectors; a
// null handle clears the table. efault when an entry cannot be read, einval for a non-canonical
// handler (the entries before either stay set).
// Long tables stop when others wait and ask to be issued again for the rest.
long set_trap_table(PvVcpu& vcpu, GuestMemory& memory, Preemption& preemption, Continuation& continuation,
                    const hypercall_args::set_trap_table& args);

// stack_switch(ss, esp): the kernel stack traps from guest user mode land on.
long stack_switch(PvVcpu& vcpu, const hypercall_args::stack_switch& args);

enum class Bounce : std::uint8_t {
    delivered,      // `registers` now enter the guest's handler
    no_handler,     // the guest registered none: Xen crashes the domain
    bad_stack,      // the frame could not be written to the guest's stack: likewise
};
struct BounceResult {
    Bounce outcome;
    bool mode_changed;  // the guest went from user to kernel mode: switch page tables and GS base
};

// Delivers exception `vector` (with `error_code` if the CPU gave one) to the guest's handler:
// builds Xen's frame on the guest kernel stack (the current stack for a trap in kernel mode, the
// stack_switch stack for one in user mode), masks events if the handler asked for it (trap_info
// flags bit 2), and records cr2 in vcpu_info for a page fault, whose error code loses its user
// bit when the guest kernel faulted (it runs in ring 3, but for the guest it was not a user
// access). Nothing changes unless the outcome is `delivered`.
BounceResult bounce_exception(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                              std::uint8_t vector, std::optional<std::uint32_t> error_code, std::uint64_t cr2);

// A syscall from guest user mode (Xen's switch to the guest kernel): enters the kernel's syscall
// callback on the stack_switch stack with a frame like an exception's (no error code; rip, rcx
// past the syscall, rflags = r11 as the instruction left them), events masked if the callback
// was registered with CALLBACKF_mask_events, DF clear. With no callback the guest takes #UD at
// the syscall instruction, as on Xen 4.13 and later.
BounceResult bounce_user_syscall(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers);

// `int n` in guest code faults with #GP naming the IDT entry (the hypervisor's IDT admits ring 3
// only to #BP and #OF). As Xen, the instruction is decoded (`code` is the interrupted mode's view
// of memory, `memory` the guest kernel's, for the frame) and the guest's trap table decides: when
// the entry's DPL (trap_info flags bits 0-1) admits the current mode, the guest kernel counting as
// ring 1 and its user mode as ring 3, vector n is delivered as a software interrupt (rip past the
// 2-byte instruction, no error code); otherwise the guest gets #GP at the instruction with the
// error code (n << 3) | 2, built from the instruction, which QEMU's TCG (7.2) gets wrong. nullopt
// when the fault is not that (no IDT entry named, or no `int n` at rip): the #GP is handled as
// any other.
std::optional<BounceResult> bounce_software_interrupt(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& code,
                                                      GuestMemory& memory, GuestRegisters& registers,
                                                      std::uint32_t gp_error_code);

// fpu_taskswitch(set): the guest's CR0.TS, which the platform keeps in the CPU while the vCPU runs,
// so that the guest's next FPU or SSE instruction raises #NM. Delivering that #NM clears it again
// (bounce_exception), as Xen does: the guest's handler finds the FPU usable.
long fpu_taskswitch(PvVcpu& vcpu, const hypercall_args::fpu_taskswitch& args);

// set_debugreg and get_debugreg, as Xen checks them: DR0-DR3 must name guest addresses (eperm);
// DR6 and DR7 keep their reserved bits as the CPU has them; DR7 may not enable general detect or
// an I/O breakpoint (eperm: a PV guest has no CR4.DE); DR4 and DR5 are DR6 and DR7; another
// register is einval. get_debugreg returns the value.
long set_debugreg(PvVcpu& vcpu, const hypercall_args::set_debugreg& args);
long get_debugreg(const PvVcpu& vcpu, const hypercall_args::get_debugreg& args);
// A #DB in the guest: the CPU's DR6 (`hardware_status`) is what get_debugreg(6) reports next.
void record_debug_exception(PvVcpu& vcpu, std::uint64_t hardware_status);

// set_callbacks(event, failsafe, syscall), and callback_op: CALLBACKOP_register (event, failsafe,
// syscall, syscall32, sysenter, nmi; enosys for other types) and CALLBACKOP_unregister (only the
// NMI callback may go: einval for the others, as Xen), efault for an unreadable argument, einval
// for a non-canonical address.
long set_callbacks(PvVcpu& vcpu, const hypercall_args::set_callbacks& args);
long callback_op(PvVcpu& vcpu, GuestMemory& memory, const hypercall_args::callback_op& args);

// The event upcall: when an event is pending for the vCPU and events are unmasked, enters the
// guest's event callback with a frame like an exception's (no error code) and events masked, as
// Xen does on every return to a guest. nullopt when there is nothing to deliver (or no callback).
std::optional<BounceResult> deliver_event(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory,
                                          GuestRegisters& registers);

// The data segment selectors a vCPU runs with, which the failsafe frame reports.
struct DataSelectors {
    std::uint16_t ds, es, fs, gs;
};

// The failsafe callback: `registers` are what the vCPU was to resume with, and the CPU cannot
// return to them (iretq would fault on cs, ss or rip). As Xen, the guest kernel's failsafe
// callback is entered instead, with the frame (from the lowest address up)
//   rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss
// built like an exception's from those registers and `selectors` (on the kernel stack for a
// return to user mode, on the current stack otherwise), events masked if the callback was
// registered with CALLBACKF_mask_events. no_handler when the guest registered none (Xen crashes
// the domain); nothing changes unless the outcome is `delivered`.
BounceResult bounce_failsafe(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                             const DataSelectors& selectors);

// HYPERVISOR_iret from guest kernel mode: reads the iret_context at the guest's rsp and resumes
// there; to user mode when its cs has RPL 3 (then `mode_changed` is set), else in kernel mode;
// rcx and r11 restored, or with VGCF_in_syscall left as sysret leaves them (rcx = rip,
// r11 = rflags); events masked as its rflags.IF says. The result,
// to be placed in rax, is the context's rax. Refused (nullopt, nothing changed) when the context
// cannot be read, its rip is not canonical, or a return to user mode finds no user page tables
// (`has_user_base` false): Xen crashes the domain then. The selectors are the platform's to
// check before it returns to the guest (cs and ss are only forced to RPL 3 here).
struct IretResult {
    std::uint64_t rax;
    bool mode_changed;
};
std::optional<IretResult> iret(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                               bool has_user_base);

}  // namespace hv::pv

// VCPUOP_initialise's vcpu_guest_context, checked and turned into a VcpuStart (see
// hv/pv_vcpu_op.hpp). Nothing here changes state: vcpu_op applies the result.
#include <algorithm>
#include <cstring>

#include <hv/pv_vcpu_op.hpp>

namespace hv::pv {
namespace {

constexpr std::uint64_t flag_if = 1u << 9, flag_iopl = 3u << 12, flag_vm = 1u << 17;
constexpr std::uint64_t max_ldt_entries = 8192;
constexpr std::size_t mxcsr_offset = 24;
constexpr std::uint32_t mxcsr_defined = 0xFFBF;  // the MXCSR_MASK of CPUs that report none (no DAZ)

GuestRegisters registers_from(const abi::cpu_user_regs& user) {
    GuestRegisters registers{};
    registers.rax = user.rax;
    registers.rbx = user.rbx;
    registers.rcx = user.rcx;
    registers.rdx = user.rdx;
    registers.rsi = user.rsi;
    registers.rdi = user.rdi;
    registers.rbp = user.rbp;
    registers.rsp = user.rsp;
    registers.r8 = user.r8;
    registers.r9 = user.r9;
    registers.r10 = user.r10;
    registers.r11 = user.r11;
    registers.r12 = user.r12;
    registers.r13 = user.r13;
    registers.r14 = user.r14;
    registers.r15 = user.r15;
    registers.rip = user.rip;
    // As iret: the guest runs in ring 3 with interrupts on, whatever the context says.
    registers.rflags = (user.rflags & ~(flag_iopl | flag_vm)) | flag_if | 2;
    registers.cs = static_cast<std::uint16_t>(user.cs | 3);
    registers.ss = static_cast<std::uint16_t>(user.ss | 3);
    return registers;
}

bool addresses_canonical(const abi::vcpu_guest_context& context) {
    const std::uint64_t addresses[] = {context.user_regs.rip,       context.user_regs.rsp,
                                       context.kernel_sp,           context.fs_base,
                                       context.gs_base_kernel,      context.gs_base_user,
                                       context.event_callback_eip,  context.syscall_callback_eip,
                                       context.failsafe_callback_eip};
    for (const std::uint64_t address : addresses)
        if (!is_canonical(address))
            return false;
    for (const abi::trap_info& trap : context.trap_ctxt)
        if (!is_canonical(trap.address))
            return false;
    return context.ldt_ents == 0 || is_canonical(context.ldt_base);
}

// DR0-DR3, DR6 and DR7 through set_debugreg's checks; false when one is refused.
bool take_debug_registers(PvVcpu& vcpu, const abi::vcpu_guest_context& context) {
    constexpr int registers[] = {0, 1, 2, 3, 6, 7};
    for (const int reg : registers)
        if (set_debugreg(vcpu, {reg, context.debugreg[reg]}) != 0)
            return false;
    return true;
}

}  // namespace

std::array<std::byte, 512> initial_fpu() {
    std::array<std::byte, 512> fpu{};
    constexpr std::uint16_t control = 0x037F;  // FCW, at byte 0
    constexpr std::uint32_t mxcsr = 0x1F80;    // MXCSR, at byte 24
    std::memcpy(fpu.data(), &control, sizeof control);
    std::memcpy(fpu.data() + 24, &mxcsr, sizeof mxcsr);
    return fpu;
}

Errc decode_vcpu_start(const abi::vcpu_guest_context& context, VcpuStart& start) {
    const bool in_kernel = (context.flags & abi::VGCF_in_kernel) != 0;
    if (!addresses_canonical(context) || (context.ldt_base & 0xFFF) != 0 || context.ldt_ents > max_ldt_entries ||
        context.gdt_ents > abi::FIRST_RESERVED_GDT_ENTRY || context.debugreg[6] > UINT32_MAX ||
        context.debugreg[7] > UINT32_MAX || (!in_kernel && context.ctrlreg[1] == 0))
        return Errc::einval;
    start = VcpuStart{};
    if (!take_debug_registers(start.pv, context))
        return Errc::einval;
    start.registers = registers_from(context.user_regs);
    start.pv.iopl = static_cast<unsigned>((context.user_regs.rflags & flag_iopl) >> 12);
    if ((context.flags & abi::VGCF_i387_valid) != 0) {
        std::memcpy(start.fpu.data(), context.fpu_ctxt.x, start.fpu.size());
        std::uint32_t mxcsr;  // at byte 24; reserved bits make fxrstor fault
        std::memcpy(&mxcsr, start.fpu.data() + mxcsr_offset, sizeof mxcsr);
        mxcsr &= mxcsr_defined;
        std::memcpy(start.fpu.data() + mxcsr_offset, &mxcsr, sizeof mxcsr);
    } else {
        start.fpu = initial_fpu();
    }
    for (unsigned vector = 0; vector < start.pv.traps.size(); ++vector) {
        start.pv.traps[vector] = context.trap_ctxt[vector];
        start.pv.traps[vector].vector = static_cast<std::uint8_t>(vector);
    }
    start.pv.kernel_ss = context.kernel_ss | 3;
    start.pv.kernel_sp = context.kernel_sp;
    start.pv.kernel_mode = in_kernel;
    start.pv.event_callback = context.event_callback_eip;
    start.pv.failsafe_callback = context.failsafe_callback_eip;
    start.pv.syscall_callback = context.syscall_callback_eip;
    start.pv.failsafe_masks_events = (context.flags & abi::VGCF_failsafe_disables_events) != 0;
    start.pv.syscall_masks_events = (context.flags & abi::VGCF_syscall_disables_events) != 0;
    start.bases = {context.fs_base, context.gs_base_kernel, context.gs_base_user};
    // 64-bit PV guests are not translated: a CR3 holds the L4's machine frame.
    start.kernel_base = Mfn{context.ctrlreg[3] >> 12};
    start.user_base = Mfn{context.ctrlreg[1] >> 12};
    const unsigned frames = (static_cast<unsigned>(context.gdt_ents) + mm::entries_per_table - 1) / mm::entries_per_table;
    std::copy_n(context.gdt_frames, frames, start.gdt_frames.begin());
    start.gdt_entries = static_cast<std::uint32_t>(context.gdt_ents);
    start.ldt_base = context.ldt_base;
    start.ldt_entries = static_cast<std::uint32_t>(context.ldt_ents);
    return Errc{};
}

}  // namespace hv::pv

// Trap tables, exception bounces and iret for 64-bit PV guests (see hv/pv_traps.hpp).
#include <hv/pv_traps.hpp>

namespace hv::pv {
namespace {

constexpr std::uint64_t flag_tf = 1ull << 8, flag_if = 1ull << 9, flag_iopl = 3ull << 12, flag_nt = 1ull << 14,
                        flag_rf = 1ull << 16, flag_vm = 1ull << 17;
constexpr std::uint8_t trap_masks_events = 4;  // trap_info.flags: run the handler with events masked
constexpr std::uint8_t page_fault = 14;
constexpr std::uint32_t page_fault_user = 1u << 2;

}  // namespace

long set_trap_table(PvVcpu& vcpu, GuestMemory& memory, Preemption& preemption, Continuation& continuation,
                    const hypercall_args::set_trap_table& args) {
    if (args.traps.address == 0) {
        vcpu.traps = {};
        return 0;
    }
    for (std::uint64_t index = 0;; ++index) {
        if (index != 0 && preemption.pending()) {
            continuation = {true, {abi::HYPERVISOR_set_trap_table, {args.traps.address + index * sizeof(abi::trap_info)}}};
            return 0;
        }
        const auto entry = copy_from_guest(memory, args.traps, index);
        if (!entry)
            return entry.xen_errno();
        if (entry->address == 0)
            return 0;
        vcpu.traps[entry->vector] = *entry;
    }
}

long stack_switch(PvVcpu& vcpu, const hypercall_args::stack_switch& args) {
    vcpu.kernel_ss = args.ss | 3;  // the guest's stack selectors run at RPL 3, whatever it says
    vcpu.kernel_sp = args.esp;
    return 0;
}

BounceResult bounce_exception(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                              std::uint8_t vector, std::optional<std::uint32_t> error_code, std::uint64_t cr2) {
    const abi::trap_info& handler = vcpu.traps[vector];
    if (handler.address == 0)
        return {Bounce::no_handler, false};
    const bool from_user = !vcpu.kernel_mode;
    if (vector == page_fault && error_code && !from_user)
        *error_code &= ~page_fault_user;

    std::uint64_t saved_flags = registers.rflags & ~flag_if;
    if (info.evtchn_upcall_mask == 0)
        saved_flags |= flag_if;
    const std::uint16_t saved_cs = from_user ? registers.cs | 3 : registers.cs & ~3;
    std::array<std::uint64_t, 8> frame{};  // from the lowest address up
    std::size_t words = 0;
    frame[words++] = registers.rcx;
    frame[words++] = registers.r11;
    if (error_code)
        frame[words++] = *error_code;
    frame[words++] = registers.rip;
    frame[words++] = saved_cs;
    frame[words++] = saved_flags;
    frame[words++] = registers.rsp;
    frame[words++] = registers.ss;

    const std::uint64_t top = (from_user ? vcpu.kernel_sp : registers.rsp) & ~std::uint64_t{15};
    const std::uint64_t bottom = top - words * sizeof(std::uint64_t);
    if (bottom > top || !is_guest_range(Vaddr{bottom}, words * sizeof(std::uint64_t)) ||
        !memory.write(Vaddr{bottom}, std::as_bytes(std::span{frame.data(), words})))
        return {Bounce::bad_stack, false};

    if (vector == page_fault)
        info.arch.cr2 = cr2;
    if (handler.flags & trap_masks_events)
        info.evtchn_upcall_mask = 1;
    vcpu.kernel_mode = true;
    registers.rip = handler.address;
    registers.cs = guest_kernel_cs;
    registers.ss = from_user ? static_cast<std::uint16_t>(vcpu.kernel_ss) : registers.ss;
    registers.rsp = bottom;
    registers.rflags &= ~(flag_tf | flag_vm | flag_rf | flag_nt);
    return {Bounce::delivered, from_user};
}

std::optional<IretResult> iret(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                               bool has_user_base) {
    const auto context = copy_from_guest(memory, GuestHandle<abi::iret_context>{registers.rsp});
    if (!context)
        return std::nullopt;
    const bool to_user = (context->cs & 3) == 3;
    if (to_user && !has_user_base)
        return std::nullopt;
    const bool mode_changed = to_user && vcpu.kernel_mode;
    vcpu.kernel_mode = !to_user;
    registers.rip = context->rip;
    registers.cs = static_cast<std::uint16_t>(context->cs | 3);
    registers.rflags = (context->rflags & ~(flag_iopl | flag_vm)) | flag_if;
    registers.rsp = context->rsp;
    registers.ss = static_cast<std::uint16_t>(context->ss | 3);
    if (!(context->flags & abi::VGCF_in_syscall)) {
        registers.r11 = context->r11;
        registers.rcx = context->rcx;
    }
    info.evtchn_upcall_mask = (context->rflags & flag_if) ? 0 : 1;
    return IretResult{context->rax, mode_changed};
}

}  // namespace hv::pv

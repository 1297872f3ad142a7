// Trap tables, exception bounces and iret for 64-bit PV guests (see hv/pv_traps.hpp).
#include <hv/pv_traps.hpp>

#include <variant>

namespace hv::pv {
namespace {

constexpr std::uint64_t flag_tf = 1ull << 8, flag_if = 1ull << 9, flag_df = 1ull << 10, flag_iopl = 3ull << 12, flag_nt = 1ull << 14,
                        flag_rf = 1ull << 16, flag_vm = 1ull << 17, flag_ac = 1ull << 18;
// Bits 32-39 of the saved cs slot carry the upcall mask at the time of the trap (Xen's
// saved_upcall_mask).
constexpr unsigned saved_mask_shift = 32;
constexpr std::uint8_t trap_masks_events = 4;  // trap_info.flags: run the handler with events masked
constexpr std::uint8_t trap_dpl = 3;           // trap_info.flags: the least privileged ring `int n` may use
constexpr std::uint8_t invalid_opcode = 6;
constexpr std::uint8_t device_not_available = 7;
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
        if (!is_canonical(entry->address))
            return xen_errno(Errc::einval);  // Xen's check: the CPU could never enter it
        vcpu.traps[entry->vector] = *entry;
    }
}

long stack_switch(PvVcpu& vcpu, const hypercall_args::stack_switch& args) {
    vcpu.kernel_ss = args.ss | 3;  // the guest's stack selectors run at RPL 3, whatever it says
    vcpu.kernel_sp = args.esp;
    return 0;
}

namespace {

// What Xen's frame carries between r11 and rip: an exception's error code, the failsafe
// callback's data selectors, or nothing.
using FrameExtra = std::variant<std::monostate, std::uint32_t, DataSelectors>;

// Enters the guest at `handler` with Xen's frame on its kernel stack (see hv/pv_traps.hpp).
BounceResult enter_handler(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                           std::uint64_t handler, const FrameExtra& extra, bool mask_events) {
    const bool from_user = !vcpu.kernel_mode;
    std::uint64_t saved_flags = registers.rflags & ~flag_if;
    if (info.evtchn_upcall_mask == 0)
        saved_flags |= flag_if;
    const std::uint64_t saved_cs = (from_user ? registers.cs | 3 : registers.cs & ~3) |
                                   std::uint64_t{info.evtchn_upcall_mask} << saved_mask_shift;
    std::array<std::uint64_t, 11> frame{};  // from the lowest address up
    std::size_t words = 0;
    frame[words++] = registers.rcx;
    frame[words++] = registers.r11;
    if (const auto* error_code = std::get_if<std::uint32_t>(&extra))
        frame[words++] = *error_code;
    if (const auto* selectors = std::get_if<DataSelectors>(&extra))
        for (std::uint16_t selector : {selectors->ds, selectors->es, selectors->fs, selectors->gs})
            frame[words++] = selector;
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

    if (mask_events)
        info.evtchn_upcall_mask = 1;
    vcpu.kernel_mode = true;
    registers.rip = handler;
    registers.cs = guest_kernel_cs;
    registers.ss = guest_kernel_ss;  // 64-bit Xen enters the guest kernel on its flat stack selector
    registers.rsp = bottom;
    registers.rflags &= ~(flag_tf | flag_vm | flag_rf | flag_nt | flag_ac);
    return {Bounce::delivered, from_user};
}

}  // namespace

BounceResult bounce_exception(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                              std::uint8_t vector, std::optional<std::uint32_t> error_code, std::uint64_t cr2) {
    const abi::trap_info& handler = vcpu.traps[vector];
    if (handler.address == 0)
        return {Bounce::no_handler, false};
    if (vector == page_fault && error_code && vcpu.kernel_mode)
        *error_code &= ~page_fault_user;
    const FrameExtra extra = error_code ? FrameExtra{*error_code} : FrameExtra{};
    const BounceResult result =
        enter_handler(vcpu, info, memory, registers, handler.address, extra, handler.flags & trap_masks_events);
    if (result.outcome == Bounce::delivered && vector == page_fault && error_code)
        info.arch.cr2 = cr2;
    if (result.outcome == Bounce::delivered && vector == device_not_available)
        vcpu.fpu_task_switched = false;
    return result;
}

long fpu_taskswitch(PvVcpu& vcpu, const hypercall_args::fpu_taskswitch& args) {
    vcpu.fpu_task_switched = args.set != 0;
    return 0;
}

namespace {

constexpr std::uint64_t status_reserved_zero = 0xFFFF'FFFF'0000'1000;  // bits 12 and 32-63
constexpr std::uint64_t control_reserved_zero = 0xFFFF'FFFF'0000'D800; // bits 11, 12, 14, 15, 32-63
constexpr std::uint64_t control_general_detect = 1ull << 13;
constexpr unsigned breakpoint_count = 4;
constexpr unsigned io_breakpoint = 2;  // a DR7 R/W field of 10b

bool enables_io_breakpoint(std::uint64_t control) {
    for (unsigned i = 0; i < breakpoint_count; ++i) {
        const bool enabled = ((control >> (2 * i)) & 3) != 0;
        if (enabled && ((control >> (16 + 4 * i)) & 3) == io_breakpoint)
            return true;
    }
    return false;
}

}  // namespace

long set_debugreg(PvVcpu& vcpu, const hypercall_args::set_debugreg& args) {
    DebugRegisters& debug = vcpu.debug;
    switch (args.reg) {
    case 0:
    case 1:
    case 2:
    case 3:
        if (!is_guest_range(Vaddr{args.value}, 1))
            return xen_errno(Errc::eperm);
        debug.address[static_cast<unsigned>(args.reg)] = args.value;
        return 0;
    case 4:
    case 6:
        debug.status = (args.value & ~status_reserved_zero) | DebugRegisters::status_default;
        return 0;
    case 5:
    case 7:
        if ((args.value & control_general_detect) != 0 || enables_io_breakpoint(args.value))
            return xen_errno(Errc::eperm);
        debug.control = (args.value & ~control_reserved_zero) | DebugRegisters::control_default;
        return 0;
    default:
        return xen_errno(Errc::einval);
    }
}

long get_debugreg(const PvVcpu& vcpu, const hypercall_args::get_debugreg& args) {
    const DebugRegisters& debug = vcpu.debug;
    switch (args.reg) {
    case 0:
    case 1:
    case 2:
    case 3:
        return static_cast<long>(debug.address[static_cast<unsigned>(args.reg)]);
    case 4:
    case 6:
        return static_cast<long>(debug.status);
    case 5:
    case 7:
        return static_cast<long>(debug.control);
    default:
        return xen_errno(Errc::einval);
    }
}

void record_debug_exception(PvVcpu& vcpu, std::uint64_t hardware_status) {
    vcpu.debug.status = (hardware_status & ~status_reserved_zero) | DebugRegisters::status_default;
}

BounceResult bounce_user_syscall(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers) {
    if (vcpu.syscall_callback == 0) {
        GuestRegisters at_syscall = registers;
        at_syscall.rip -= 2;
        const BounceResult result = bounce_exception(vcpu, info, memory, at_syscall, invalid_opcode, std::nullopt, 0);
        if (result.outcome == Bounce::delivered)
            registers = at_syscall;
        return result;
    }
    const BounceResult result =
        enter_handler(vcpu, info, memory, registers, vcpu.syscall_callback, {}, vcpu.syscall_masks_events);
    if (result.outcome == Bounce::delivered)
        registers.rflags &= ~flag_df;
    return result;
}

std::optional<BounceResult> bounce_software_interrupt(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& code,
                                                      GuestMemory& memory, GuestRegisters& registers,
                                                      std::uint32_t gp_error_code) {
    constexpr std::uint32_t external = 1, names_idt_entry = 2;
    constexpr std::uint8_t int_n_opcode = 0xCD, general_protection = 13;
    if ((gp_error_code & (external | names_idt_entry)) != names_idt_entry)
        return std::nullopt;
    std::array<std::byte, 2> instruction;
    if (!is_guest_range(Vaddr{registers.rip}, instruction.size()) || !code.read(Vaddr{registers.rip}, instruction) ||
        static_cast<std::uint8_t>(instruction[0]) != int_n_opcode)
        return std::nullopt;
    const auto vector = static_cast<std::uint8_t>(instruction[1]);
    const unsigned caller_ring = vcpu.kernel_mode ? 1 : 3;
    if ((vcpu.traps[vector].flags & trap_dpl) < caller_ring)
        return bounce_exception(vcpu, info, memory, registers, general_protection,
                                std::uint32_t{vector} << 3 | names_idt_entry, 0);
    GuestRegisters after = registers;
    after.rip += instruction.size();
    const BounceResult result = bounce_exception(vcpu, info, memory, after, vector, std::nullopt, 0);
    if (result.outcome == Bounce::delivered)
        registers = after;
    return result;
}

std::optional<BounceResult> deliver_event(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory,
                                          GuestRegisters& registers) {
    if (info.evtchn_upcall_pending == 0 || info.evtchn_upcall_mask != 0 || vcpu.event_callback == 0)
        return std::nullopt;
    return enter_handler(vcpu, info, memory, registers, vcpu.event_callback, {}, true);
}

BounceResult bounce_failsafe(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                             const DataSelectors& selectors) {
    if (vcpu.failsafe_callback == 0)
        return {Bounce::no_handler, false};
    return enter_handler(vcpu, info, memory, registers, vcpu.failsafe_callback, selectors, vcpu.failsafe_masks_events);
}

long set_callbacks(PvVcpu& vcpu, const hypercall_args::set_callbacks& args) {
    if (!is_canonical(args.event_address) || !is_canonical(args.failsafe_address) ||
        !is_canonical(args.syscall_address))
        return xen_errno(Errc::einval);
    vcpu.event_callback = args.event_address;
    vcpu.failsafe_callback = args.failsafe_address;
    vcpu.failsafe_masks_events = false;
    vcpu.syscall_callback = args.syscall_address;
    vcpu.syscall_masks_events = false;
    return 0;
}

long callback_op(PvVcpu& vcpu, GuestMemory& memory, const hypercall_args::callback_op& args) {
    switch (args.cmd) {
    case abi::CALLBACKOP_register: {
        const auto request = copy_from_guest(memory, GuestHandle<abi::callback_register>{args.arg.address});
        if (!request)
            return request.xen_errno();
        if (!is_canonical(request->address))
            return xen_errno(Errc::einval);
        const bool mask_events = request->flags & abi::CALLBACKF_mask_events;
        switch (request->type) {
        case abi::CALLBACKTYPE_event:
            vcpu.event_callback = request->address;
            return 0;
        case abi::CALLBACKTYPE_failsafe:
            vcpu.failsafe_callback = request->address;
            vcpu.failsafe_masks_events = mask_events;
            return 0;
        case abi::CALLBACKTYPE_syscall:
            vcpu.syscall_callback = request->address;
            vcpu.syscall_masks_events = mask_events;
            return 0;
        case abi::CALLBACKTYPE_syscall32:
            vcpu.syscall32_callback = request->address;
            return 0;
        case abi::CALLBACKTYPE_sysenter:
            vcpu.sysenter_callback = request->address;
            return 0;
        case abi::CALLBACKTYPE_nmi:
            vcpu.nmi_callback = request->address;
            return 0;
        default:
            return xen_errno(Errc::enosys);
        }
    }
    case abi::CALLBACKOP_unregister: {
        const auto request = copy_from_guest(memory, GuestHandle<abi::callback_unregister>{args.arg.address});
        if (!request)
            return request.xen_errno();
        switch (request->type) {
        case abi::CALLBACKTYPE_nmi:
            vcpu.nmi_callback = 0;
            return 0;
        case abi::CALLBACKTYPE_event:
        case abi::CALLBACKTYPE_failsafe:
        case abi::CALLBACKTYPE_syscall:
        case abi::CALLBACKTYPE_syscall32:
        case abi::CALLBACKTYPE_sysenter:
            return xen_errno(Errc::einval);
        default:
            return xen_errno(Errc::enosys);
        }
    }
    default:
        return xen_errno(Errc::enosys);
    }
}

std::optional<IretResult> iret(PvVcpu& vcpu, abi::vcpu_info& info, GuestMemory& memory, GuestRegisters& registers,
                               bool has_user_base) {
    const auto context = copy_from_guest(memory, GuestHandle<abi::iret_context>{registers.rsp});
    if (!context)
        return std::nullopt;
    const bool to_user = (context->cs & 3) == 3;
    if ((to_user && !has_user_base) || !is_canonical(context->rip))
        return std::nullopt;
    const bool mode_changed = to_user && vcpu.kernel_mode;
    vcpu.kernel_mode = !to_user;
    registers.rip = context->rip;
    registers.cs = static_cast<std::uint16_t>(context->cs | 3);
    registers.rflags = (context->rflags & ~(flag_iopl | flag_vm)) | flag_if;
    registers.rsp = context->rsp;
    registers.ss = static_cast<std::uint16_t>(context->ss | 3);
    if (context->flags & abi::VGCF_in_syscall) {
        // Xen returns through sysret then, which leaves rcx = rip and r11 = rflags.
        registers.rcx = registers.rip;
        registers.r11 = registers.rflags;
    } else {
        registers.r11 = context->r11;
        registers.rcx = context->rcx;
    }
    info.evtchn_upcall_mask = (context->rflags & flag_if) ? 0 : 1;
    return IretResult{context->rax, mode_changed};
}

}  // namespace hv::pv

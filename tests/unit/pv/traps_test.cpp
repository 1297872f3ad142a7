#include "../mm/mmu_ops_fixture.hpp"

#include <hv/pv_traps.hpp>

namespace pv_test {
namespace {

using namespace hv::pv;
using mm_test::CountdownPreemption;
using mm_test::GuestBuffer;
namespace abi = pvkit::abi;

constexpr std::uint64_t table_address = GuestBuffer::base;             // the guest's trap table
constexpr std::uint64_t kernel_stack_top = GuestBuffer::base + 0x8008;  // not 16-byte aligned on purpose
constexpr std::uint64_t user_stack_kernel_top = GuestBuffer::base + 0xF000;
constexpr std::uint64_t handler = 0xFFFF'FFFF'8000'2000;

struct TrapFixture {
    template <class T>
    void place(std::uint64_t address, const T& value) {
        std::memcpy(memory.bytes.data() + (address - GuestBuffer::base), &value, sizeof value);
    }
    template <class T>
    T at(std::uint64_t address) {
        T value;
        std::memcpy(&value, memory.bytes.data() + (address - GuestBuffer::base), sizeof value);
        return value;
    }
    void set_handler(std::uint8_t vector, std::uint8_t flags = 0) { vcpu.traps[vector] = {vector, flags, 0xe033, handler}; }

    GuestRegisters interrupted() const {
        GuestRegisters r{};
        r.rax = 1;
        r.rcx = 0xC0C0;
        r.r11 = 0x1111;
        r.rip = 0xFFFF'FFFF'8000'1234;
        r.rsp = kernel_stack_top;
        r.rflags = 0x202 | 0x100;  // IF, TF
        r.cs = 0xe033;
        r.ss = 0xe02b;
        return r;
    }

    GuestBuffer memory;
    CountdownPreemption preemption;
    hv::Continuation continuation;
    PvVcpu vcpu;
    abi::vcpu_info info{};
};

TEST_CASE_METHOD(TrapFixture, "set_trap_table fills vectors up to the terminator; a null table clears it", "[pv][traps]") {
    place(table_address, std::array<abi::trap_info, 3>{{{14, 4, 0xe033, handler}, {3, 3, 0xe033, handler + 16}, {}}});
    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{table_address}}) == 0);
    CHECK(vcpu.traps[14].address == handler);
    CHECK(vcpu.traps[14].flags == 4);
    CHECK(vcpu.traps[3].address == handler + 16);
    CHECK(vcpu.traps[13].address == 0);

    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{0}}) == 0);
    CHECK(vcpu.traps[14].address == 0);
    CHECK(vcpu.traps[3].address == 0);
}

TEST_CASE_METHOD(TrapFixture, "set_trap_table: an unreadable entry is efault, a long table continues", "[pv][traps][hostile]") {
    const std::uint64_t last = GuestBuffer::base + memory.bytes.size() - sizeof(abi::trap_info);
    place(last, abi::trap_info{6, 0, 0xe033, handler});
    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{last}}) == hv::xen_errno(hv::Errc::efault));
    CHECK(vcpu.traps[6].address == handler);  // the entries before the fault stay set, as in Xen
    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{0xFFFF'8000'0000'0000}}) ==
          hv::xen_errno(hv::Errc::efault));
    place(table_address, std::array<abi::trap_info, 2>{{{7, 0, 0xe033, 0x0000'8000'0000'0000}, {}}});
    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{table_address}}) == hv::xen_errno(hv::Errc::einval));
    CHECK(vcpu.traps[7].address == 0);

    place(table_address, std::array<abi::trap_info, 3>{{{1, 0, 0xe033, handler}, {2, 0, 0xe033, handler}, {}}});
    preemption.allowed = 0;
    CHECK(set_trap_table(vcpu, memory, preemption, continuation, {{table_address}}) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.number == abi::HYPERVISOR_set_trap_table);
    CHECK(continuation.registers.args[0] == table_address + sizeof(abi::trap_info));
    CHECK(vcpu.traps[1].address == handler);
    CHECK(vcpu.traps[2].address == 0);
}

TEST_CASE_METHOD(TrapFixture, "an exception in guest kernel mode lands on the same stack in Xen's frame", "[pv][traps]") {
    set_handler(13);
    GuestRegisters registers = interrupted();
    const auto result = bounce_exception(vcpu, info, memory, registers, 13, 0x52, 0);
    REQUIRE(result.outcome == Bounce::delivered);
    CHECK_FALSE(result.mode_changed);
    const std::uint64_t top = kernel_stack_top & ~15ull;
    CHECK(registers.rsp == top - 8 * 8);
    CHECK(registers.rip == handler);
    CHECK(registers.cs == 0xe033);
    CHECK(registers.rflags == 0x202);  // TF cleared
    using Frame = std::array<std::uint64_t, 8>;
    CHECK(at<Frame>(registers.rsp) == Frame{0xC0C0, 0x1111, 0x52, 0xFFFF'FFFF'8000'1234, 0xe030, 0x302, kernel_stack_top, 0xe02b});
    CHECK(info.evtchn_upcall_mask == 0);
    // Events masked at the time of the trap: the mask rides in bits 32-39 of the cs slot.
    info.evtchn_upcall_mask = 1;
    registers = interrupted();
    REQUIRE(bounce_exception(vcpu, info, memory, registers, 13, 0x52, 0).outcome == Bounce::delivered);
    CHECK(at<Frame>(registers.rsp)[4] == 0x1'0000'e030);
}

TEST_CASE_METHOD(TrapFixture, "the saved IF says whether events were masked; an interrupt-gate handler masks them",
                 "[pv][traps]") {
    set_handler(3, 4);
    info.evtchn_upcall_mask = 1;
    GuestRegisters registers = interrupted();
    REQUIRE(bounce_exception(vcpu, info, memory, registers, 3, std::nullopt, 0).outcome == Bounce::delivered);
    using Frame = std::array<std::uint64_t, 7>;  // no error code
    CHECK(at<Frame>(registers.rsp)[4] == 0x102);  // IF clear: events were masked
    CHECK(info.evtchn_upcall_mask == 1);

    info.evtchn_upcall_mask = 0;
    registers = interrupted();
    REQUIRE(bounce_exception(vcpu, info, memory, registers, 3, std::nullopt, 0).outcome == Bounce::delivered);
    CHECK(at<Frame>(registers.rsp)[4] == 0x302);
    CHECK(info.evtchn_upcall_mask == 1);  // the handler asked for events masked
}

TEST_CASE_METHOD(TrapFixture, "a page fault records cr2, and the guest kernel's faults lose the user bit",
                 "[pv][traps]") {
    set_handler(14);
    GuestRegisters registers = interrupted();
    REQUIRE(bounce_exception(vcpu, info, memory, registers, 14, 0x7, 0xDEAD'B000).outcome == Bounce::delivered);
    CHECK(info.arch.cr2 == 0xDEAD'B000);
    CHECK(at<std::uint64_t>(registers.rsp + 16) == 0x3);

    vcpu.kernel_mode = false;
    vcpu.kernel_sp = user_stack_kernel_top;
    registers = interrupted();
    REQUIRE(bounce_exception(vcpu, info, memory, registers, 14, 0x6, 0x1000).outcome == Bounce::delivered);
    CHECK(at<std::uint64_t>(registers.rsp + 16) == 0x6);
}

TEST_CASE_METHOD(TrapFixture, "an exception in guest user mode switches to the kernel stack and mode", "[pv][traps]") {
    set_handler(6);
    vcpu.kernel_mode = false;
    REQUIRE(stack_switch(vcpu, {0x18, user_stack_kernel_top}) == 0);  // Linux's __KERNEL_DS
    CHECK(vcpu.kernel_ss == 0x1b);
    GuestRegisters registers = interrupted();
    registers.rsp = 0x7FFF'0000;  // the user's stack: not written
    const auto result = bounce_exception(vcpu, info, memory, registers, 6, std::nullopt, 0);
    REQUIRE(result.outcome == Bounce::delivered);
    CHECK(result.mode_changed);
    CHECK(vcpu.kernel_mode);
    CHECK(registers.rsp == user_stack_kernel_top - 7 * 8);
    CHECK(registers.ss == 0xe02b);
    using Frame = std::array<std::uint64_t, 7>;
    CHECK(at<Frame>(registers.rsp) == Frame{0xC0C0, 0x1111, 0xFFFF'FFFF'8000'1234, 0xe033, 0x302, 0x7FFF'0000, 0xe02b});
}

TEST_CASE_METHOD(TrapFixture, "a syscall from guest user mode enters the syscall callback on the kernel stack",
                 "[pv][traps][syscall]") {
    REQUIRE(stack_switch(vcpu, {0xe02b, user_stack_kernel_top}) == 0);
    place(table_address, abi::callback_register{abi::CALLBACKTYPE_syscall, abi::CALLBACKF_mask_events, handler + 64});
    REQUIRE(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == 0);
    vcpu.kernel_mode = false;
    GuestRegisters registers = interrupted();
    registers.rsp = 0x7FFF'0000;
    registers.rcx = registers.rip;  // as the syscall instruction leaves them
    registers.r11 = 0x602;          // IF, DF
    registers.rflags = 0x602;
    const auto result = bounce_user_syscall(vcpu, info, memory, registers);
    REQUIRE(result.outcome == Bounce::delivered);
    CHECK(result.mode_changed);
    CHECK(vcpu.kernel_mode);
    CHECK(registers.rip == handler + 64);
    CHECK(registers.rsp == user_stack_kernel_top - 7 * 8);
    CHECK((registers.rflags & 0x400) == 0);  // DF clear in the callback
    CHECK(info.evtchn_upcall_mask == 1);     // CALLBACKF_mask_events
    using Frame = std::array<std::uint64_t, 7>;
    CHECK(at<Frame>(registers.rsp) == Frame{0xFFFF'FFFF'8000'1234, 0x602, 0xFFFF'FFFF'8000'1234, 0xe033, 0x602,
                                            0x7FFF'0000, 0xe02b});
}

TEST_CASE_METHOD(TrapFixture, "a user syscall with no callback is #UD at the syscall instruction", "[pv][traps][syscall]") {
    REQUIRE(stack_switch(vcpu, {0xe02b, user_stack_kernel_top}) == 0);
    vcpu.kernel_mode = false;
    GuestRegisters registers = interrupted();
    const GuestRegisters before = registers;
    CHECK(bounce_user_syscall(vcpu, info, memory, registers).outcome == Bounce::no_handler);
    CHECK(registers.rip == before.rip);
    CHECK_FALSE(vcpu.kernel_mode);

    set_handler(6);
    REQUIRE(bounce_user_syscall(vcpu, info, memory, registers).outcome == Bounce::delivered);
    CHECK(registers.rip == handler);
    CHECK(at<std::uint64_t>(registers.rsp + 16) == before.rip - 2);
}

TEST_CASE_METHOD(TrapFixture, "int n: the trap table's DPL decides, the guest kernel counting as ring 1",
                 "[pv][traps][softint]") {
    constexpr std::uint64_t code = GuestBuffer::base + 0x100;
    const auto int_n = [&](std::uint8_t vector) {
        place(code, std::array<std::uint8_t, 2>{0xCD, vector});
        return std::uint32_t{vector} << 4 | 2;  // QEMU 7.2's error code: the instruction decides
    };
    set_handler(0x80, 3);
    set_handler(0x81, 1);
    set_handler(0x82, 0);
    set_handler(13);
    GuestRegisters registers = interrupted();
    registers.rip = code;
    const GuestRegisters before = registers;
    using Frame = std::array<std::uint64_t, 7>;  // a software interrupt's: no error code
    using FaultFrame = std::array<std::uint64_t, 8>;

    auto result = bounce_software_interrupt(vcpu, info, memory, memory, registers, int_n(0x82));
    REQUIRE(result);  // DPL 0: #GP at the instruction, the error code naming the vector
    CHECK(result->outcome == Bounce::delivered);
    CHECK(at<FaultFrame>(registers.rsp)[2] == (0x82 << 3 | 2));
    CHECK(at<FaultFrame>(registers.rsp)[3] == code);

    registers = before;
    CHECK_FALSE(bounce_software_interrupt(vcpu, info, memory, memory, registers, 0x82 << 3 | 3));  // external
    CHECK_FALSE(bounce_software_interrupt(vcpu, info, memory, memory, registers, 0x82 << 3));      // a GDT selector
    place(code, std::array<std::uint8_t, 2>{0x0F, 0x0B});
    CHECK_FALSE(bounce_software_interrupt(vcpu, info, memory, memory, registers, 0x82 << 3 | 2));  // no int n there
    CHECK(registers.rip == before.rip);

    result = bounce_software_interrupt(vcpu, info, memory, memory, registers, int_n(0x81));
    REQUIRE(result);
    CHECK(result->outcome == Bounce::delivered);
    CHECK(registers.rip == handler);
    CHECK(at<Frame>(registers.rsp)[2] == before.rip + 2);
    CHECK(info.arch.cr2 == 0);

    REQUIRE(stack_switch(vcpu, {0xe02b, user_stack_kernel_top}) == 0);
    vcpu.kernel_mode = false;
    registers = before;
    result = bounce_software_interrupt(vcpu, info, memory, memory, registers, int_n(0x81));  // user mode is ring 3
    REQUIRE(result);
    CHECK(at<FaultFrame>(registers.rsp)[2] == (0x81 << 3 | 2));
    vcpu.kernel_mode = false;
    registers = before;
    result = bounce_software_interrupt(vcpu, info, memory, memory, registers, int_n(0x80));
    REQUIRE(result);
    CHECK(result->outcome == Bounce::delivered);
    CHECK(result->mode_changed);
    CHECK(at<Frame>(registers.rsp)[2] == before.rip + 2);
    CHECK((at<Frame>(registers.rsp)[3] & 3) == 3);  // from user mode: the saved cs keeps RPL 3

    vcpu.traps[0x83] = {0x83, 3, 0xe033, 0};  // a DPL but no handler: the domain crashes, as on Xen
    registers = before;
    result = bounce_software_interrupt(vcpu, info, memory, memory, registers, int_n(0x83));
    REQUIRE(result);
    CHECK(result->outcome == Bounce::no_handler);
}

TEST_CASE_METHOD(TrapFixture, "fpu_taskswitch sets the guest's TS; delivering #NM clears it", "[pv][traps][fpu]") {
    CHECK(fpu_taskswitch(vcpu, {1}) == 0);
    CHECK(vcpu.fpu_task_switched);
    GuestRegisters registers = interrupted();
    CHECK(bounce_exception(vcpu, info, memory, registers, 7, std::nullopt, 0).outcome == Bounce::no_handler);
    CHECK(vcpu.fpu_task_switched);  // not delivered: nothing changes
    set_handler(7);
    CHECK(bounce_exception(vcpu, info, memory, registers, 7, std::nullopt, 0).outcome == Bounce::delivered);
    CHECK_FALSE(vcpu.fpu_task_switched);
    CHECK(fpu_taskswitch(vcpu, {1}) == 0);
    CHECK(fpu_taskswitch(vcpu, {0}) == 0);
    CHECK_FALSE(vcpu.fpu_task_switched);
}

TEST_CASE_METHOD(TrapFixture, "debug registers: guest addresses, reserved bits, no general detect or I/O breakpoints",
                 "[pv][traps][debug]") {
    const long eperm = hv::xen_errno(hv::Errc::eperm), einval = hv::xen_errno(hv::Errc::einval);
    CHECK(set_debugreg(vcpu, {0, 0xFFFF'FFFF'8000'1000}) == 0);
    CHECK(set_debugreg(vcpu, {3, 0x7000}) == 0);
    CHECK(get_debugreg(vcpu, {0}) == static_cast<long>(0xFFFF'FFFF'8000'1000));
    CHECK(get_debugreg(vcpu, {3}) == 0x7000);
    CHECK(set_debugreg(vcpu, {1, 0xFFFF'8300'0000'0000}) == eperm);  // the hypervisor's range
    CHECK(set_debugreg(vcpu, {1, 0x0000'8000'0000'0000}) == eperm);  // not canonical
    CHECK(get_debugreg(vcpu, {1}) == 0);

    CHECK(get_debugreg(vcpu, {7}) == 0x400);
    CHECK(set_debugreg(vcpu, {7, 0x000D'0001}) == 0);  // L0, write, 8 bytes
    CHECK(get_debugreg(vcpu, {7}) == 0x000D'0401);
    CHECK(get_debugreg(vcpu, {5}) == 0x000D'0401);    // DR5 is DR7
    CHECK(set_debugreg(vcpu, {7, 0x2000}) == eperm);    // general detect
    CHECK(set_debugreg(vcpu, {7, 0x0002'0001}) == eperm);  // an enabled I/O breakpoint
    CHECK(set_debugreg(vcpu, {7, 0x0002'0000}) == 0);      // a disabled one is only bits
    CHECK(set_debugreg(vcpu, {7, 0xFFFF'FFFF'0000'D800}) == 0);
    CHECK(get_debugreg(vcpu, {7}) == 0x400);           // reserved bits as the CPU keeps them

    CHECK(get_debugreg(vcpu, {6}) == 0xFFFF'0FF0);
    CHECK(set_debugreg(vcpu, {6, 0}) == 0);
    CHECK(get_debugreg(vcpu, {4}) == 0xFFFF'0FF0);
    record_debug_exception(vcpu, 0xFFFF'4FF1);         // BS and B0
    CHECK(get_debugreg(vcpu, {6}) == 0xFFFF'4FF1);
    CHECK(set_debugreg(vcpu, {8, 0}) == einval);
    CHECK(get_debugreg(vcpu, {-1}) == einval);
}

TEST_CASE_METHOD(TrapFixture, "without a handler or a writable stack nothing changes", "[pv][traps][hostile]") {
    const GuestRegisters before = interrupted();
    GuestRegisters registers = before;
    CHECK(bounce_exception(vcpu, info, memory, registers, 13, 0, 0).outcome == Bounce::no_handler);
    set_handler(13);
    for (std::uint64_t stack : std::initializer_list<std::uint64_t>{0x1000, GuestBuffer::base + 16, 0xFFFF'8000'0000'0040}) {
        registers = before;
        registers.rsp = stack;
        CHECK(bounce_exception(vcpu, info, memory, registers, 13, 0, 0).outcome == Bounce::bad_stack);
        CHECK(registers.rip == before.rip);
        CHECK(registers.rsp == stack);
    }
    CHECK(vcpu.kernel_mode);
    CHECK(info.arch.cr2 == 0);
}

TEST_CASE_METHOD(TrapFixture, "iret resumes the context on the guest's stack", "[pv][traps][iret]") {
    const std::uint64_t stack = GuestBuffer::base + 0x4000;
    GuestRegisters registers = interrupted();
    registers.rsp = stack;

    SECTION("to kernel mode, events unmasked, rcx and r11 restored") {
        info.evtchn_upcall_mask = 1;
        place(stack, abi::iret_context{42, 0xAAAA, 0xBBBB, 0, 0xFFFF'FFFF'8000'5000, 0xe030, 0x246, 0xFFFF'FFFF'8001'0000, 0xe02b});
        const auto result = iret(vcpu, info, memory, registers, false);
        REQUIRE(result);
        CHECK(result->rax == 42);
        CHECK_FALSE(result->mode_changed);
        CHECK(registers.rip == 0xFFFF'FFFF'8000'5000);
        CHECK(registers.cs == 0xe033);
        CHECK(registers.rsp == 0xFFFF'FFFF'8001'0000);
        CHECK(registers.r11 == 0xAAAA);
        CHECK(registers.rcx == 0xBBBB);
        CHECK(info.evtchn_upcall_mask == 0);
        CHECK(vcpu.kernel_mode);
    }
    SECTION("to user mode after a syscall: rcx and r11 as sysret leaves them, events masked as IF says, IOPL dropped") {
        place(stack, abi::iret_context{0, 0xAAAA, 0xBBBB, abi::VGCF_in_syscall, 0x40'1000, 0xe033, 0x3002, 0x7FFF'F000, 0xe02b});
        const auto result = iret(vcpu, info, memory, registers, true);
        REQUIRE(result);
        CHECK(result->mode_changed);
        CHECK_FALSE(vcpu.kernel_mode);
        CHECK(registers.rcx == 0x40'1000);
        CHECK(registers.r11 == 0x202);
        CHECK(registers.rflags == 0x202);
        CHECK(info.evtchn_upcall_mask == 1);
    }
    SECTION("refused: no user page tables, a non-canonical rip, or an unreadable context") {
        place(stack, abi::iret_context{0, 0, 0, 0, 0x40'1000, 0xe033, 0x202, 0x7FFF'F000, 0xe02b});
        const GuestRegisters before = registers;
        CHECK_FALSE(iret(vcpu, info, memory, registers, false));
        place(stack, abi::iret_context{0, 0, 0, 0, 0x0000'8000'0000'0000, 0xe030, 0x202, 0x7FFF'F000, 0xe02b});
        CHECK_FALSE(iret(vcpu, info, memory, registers, true));
        registers.rsp = GuestBuffer::base + memory.bytes.size() - 16;
        CHECK_FALSE(iret(vcpu, info, memory, registers, true));
        CHECK(registers.rip == before.rip);
        CHECK(vcpu.kernel_mode);
    }
}

TEST_CASE_METHOD(TrapFixture, "callbacks: set_callbacks and CALLBACKOP_register/unregister as Xen", "[pv][callbacks]") {
    REQUIRE(set_callbacks(vcpu, {handler, handler + 8, handler + 16}) == 0);
    CHECK(vcpu.event_callback == handler);
    CHECK(vcpu.failsafe_callback == handler + 8);
    CHECK(vcpu.syscall_callback == handler + 16);

    place(table_address, abi::callback_register{abi::CALLBACKTYPE_syscall, abi::CALLBACKF_mask_events, handler + 32});
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == 0);
    CHECK(vcpu.syscall_callback == handler + 32);
    CHECK(vcpu.syscall_masks_events);
    place(table_address, abi::callback_register{abi::CALLBACKTYPE_nmi, 0, handler + 48});
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == 0);
    CHECK(vcpu.nmi_callback == handler + 48);
    place(table_address, abi::callback_register{6, 0, handler});  // type 6 is not defined
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == hv::xen_errno(hv::Errc::enosys));

    place(table_address, abi::callback_unregister{abi::CALLBACKTYPE_event, 0});
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_unregister, {table_address}}) == hv::xen_errno(hv::Errc::einval));
    CHECK(vcpu.event_callback == handler);
    place(table_address, abi::callback_unregister{abi::CALLBACKTYPE_nmi, 0});
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_unregister, {table_address}}) == 0);
    CHECK(vcpu.nmi_callback == 0);
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {0x1000}}) == hv::xen_errno(hv::Errc::efault));
    place(table_address, abi::callback_register{abi::CALLBACKTYPE_event, 0, 0x8000'0000'0000'0000});
    CHECK(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == hv::xen_errno(hv::Errc::einval));
    CHECK(set_callbacks(vcpu, {handler, 0x0000'8000'0000'1000, 0}) == hv::xen_errno(hv::Errc::einval));
    CHECK(vcpu.event_callback == handler);
    CHECK(callback_op(vcpu, memory, {7, {table_address}}) == hv::xen_errno(hv::Errc::enosys));
}

TEST_CASE_METHOD(TrapFixture, "an event upcall enters the event callback with events masked, only when due",
                 "[pv][callbacks][events]") {
    GuestRegisters registers = interrupted();
    info.evtchn_upcall_pending = 1;
    info.evtchn_upcall_mask = 0;
    CHECK_FALSE(deliver_event(vcpu, info, memory, registers));  // no callback yet
    vcpu.event_callback = handler;
    info.evtchn_upcall_mask = 1;
    CHECK_FALSE(deliver_event(vcpu, info, memory, registers));  // masked
    info.evtchn_upcall_mask = 0;
    info.evtchn_upcall_pending = 0;
    CHECK_FALSE(deliver_event(vcpu, info, memory, registers));  // nothing pending
    CHECK(registers.rip == interrupted().rip);

    info.evtchn_upcall_pending = 1;
    const auto delivered = deliver_event(vcpu, info, memory, registers);
    REQUIRE(delivered);
    CHECK(delivered->outcome == Bounce::delivered);
    CHECK(registers.rip == handler);
    CHECK(info.evtchn_upcall_mask == 1);
    using Frame = std::array<std::uint64_t, 7>;
    CHECK(at<Frame>(registers.rsp) == Frame{0xC0C0, 0x1111, 0xFFFF'FFFF'8000'1234, 0xe030, 0x302, kernel_stack_top, 0xe02b});
}

TEST_CASE_METHOD(TrapFixture, "a return the CPU cannot make enters the failsafe callback with the data selectors",
                 "[pv][callbacks][failsafe]") {
    const DataSelectors selectors{0x2b, 0x2b, 0, 0x63};
    using Frame = std::array<std::uint64_t, 11>;
    GuestRegisters registers = interrupted();
    registers.cs = 0x3b;  // say, a not-present descriptor of the guest's GDT
    CHECK(bounce_failsafe(vcpu, info, memory, registers, selectors).outcome == Bounce::no_handler);
    CHECK(registers.cs == 0x3b);

    place(table_address, abi::callback_register{abi::CALLBACKTYPE_failsafe, abi::CALLBACKF_mask_events, handler + 96});
    REQUIRE(callback_op(vcpu, memory, {abi::CALLBACKOP_register, {table_address}}) == 0);

    SECTION("returning to kernel mode: on the same stack, cs's RPL cleared") {
        const auto result = bounce_failsafe(vcpu, info, memory, registers, selectors);
        REQUIRE(result.outcome == Bounce::delivered);
        CHECK_FALSE(result.mode_changed);
        CHECK(registers.rip == handler + 96);
        CHECK(registers.cs == 0xe033);
        CHECK(registers.rsp == (kernel_stack_top & ~15ull) - 11 * 8);
        CHECK(at<Frame>(registers.rsp) == Frame{0xC0C0, 0x1111, 0x2b, 0x2b, 0, 0x63, 0xFFFF'FFFF'8000'1234, 0x38,
                                                0x302, kernel_stack_top, 0xe02b});
        CHECK(info.evtchn_upcall_mask == 1);  // CALLBACKF_mask_events
    }
    SECTION("returning to user mode: on the kernel stack, in kernel mode") {
        vcpu.kernel_mode = false;
        REQUIRE(stack_switch(vcpu, {0xe02b, user_stack_kernel_top}) == 0);
        registers.rsp = 0x7FFF'0000;
        const auto result = bounce_failsafe(vcpu, info, memory, registers, selectors);
        REQUIRE(result.outcome == Bounce::delivered);
        CHECK(result.mode_changed);
        CHECK(vcpu.kernel_mode);
        CHECK(registers.rsp == user_stack_kernel_top - 11 * 8);
        CHECK(at<Frame>(registers.rsp)[7] == 0x3b);
        CHECK(at<Frame>(registers.rsp)[9] == 0x7FFF'0000);
    }
    SECTION("a stack that cannot take the frame changes nothing") {
        registers.rsp = 0xFFFF'8000'0000'0040;
        CHECK(bounce_failsafe(vcpu, info, memory, registers, selectors).outcome == Bounce::bad_stack);
        CHECK(registers.cs == 0x3b);
        CHECK(info.evtchn_upcall_mask == 0);
    }
}

}  // namespace
}  // namespace pv_test

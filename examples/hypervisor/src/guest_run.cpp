// SPDX-License-Identifier: BSD-2-Clause
// The running vCPU: its hypercalls (through syscall), its exceptions and interrupts (bounced to
// the guest, emulated, or crashing its domain), and the checks on every way back into it.
#include <algorithm>

#include "clock.hpp"
#include "cpu.hpp"
#include "cpu_tables.hpp"
#include "guest_gdt.hpp"
#include "memory_layout.hpp"
#include "vcpu_context.hpp"

namespace hypervisor {
namespace {

constexpr std::uint64_t present = 1, writable = 2, user = 4;

// A guest address space as its own page tables show it to ring 3: every level present and
// user-accessible, and writable for a write. `root` gives the machine address of the L4.
class GuestAddressSpace final : public hv::GuestMemory {
public:
    explicit GuestAddressSpace(std::uint64_t (*root)()) : root_{root} {}

    bool read(hv::Vaddr address, std::span<std::byte> into) override {
        return each_page(address.value, into.size(), false, [&](std::byte* page, std::size_t done, std::size_t size) {
            for (std::size_t i = 0; i < size; ++i)
                into[done + i] = page[i];
        });
    }
    bool write(hv::Vaddr address, std::span<const std::byte> from) override {
        return each_page(address.value, from.size(), true, [&](std::byte* page, std::size_t done, std::size_t size) {
            for (std::size_t i = 0; i < size; ++i)
                page[i] = from[done + i];
        });
    }

private:
    std::byte* translate(std::uint64_t address, bool write) const {
        std::uint64_t table = root_();
        for (int level = 4; level >= 1; --level) {
            const auto* entries = phys_to_virt<const std::uint64_t>(table, 4096);
            if (entries == nullptr)
                return nullptr;
            const std::uint64_t entry = entries[(address >> (12 + 9 * (level - 1))) & 511];
            if ((entry & (present | user)) != (present | user) || (write && (entry & writable) == 0))
                return nullptr;
            table = entry & frame_mask;
        }
        std::byte* page = phys_to_virt<std::byte>(table, 4096);
        return page == nullptr ? nullptr : page + (address & 0xFFF);
    }
    template <class Copy>
    bool each_page(std::uint64_t address, std::size_t length, bool write, Copy copy) {
        for (std::size_t done = 0; done < length; done += 4096 - ((address + done) & 0xFFF))
            if (translate(address + done, write) == nullptr)
                return false;
        for (std::size_t done = 0; done < length;) {
            const std::size_t size = std::min<std::size_t>(length - done, 4096 - ((address + done) & 0xFFF));
            copy(translate(address + done, write), done, size);
            done += size;
        }
        return true;
    }

    std::uint64_t (*root_)();
};

// This CPU's CPUID, for the guest's emulated one.
class HostCpuid final : public hv::pv::CpuidSource {
public:
    hv::pv::CpuidLeaf cpuid(std::uint32_t leaf, std::uint32_t subleaf) override {
        const cpu::CpuidLeaf result = cpu::cpuid(leaf, subleaf);
        return {result.eax, result.ebx, result.ecx, result.edx};
    }
};

constexpr std::uint32_t msr_efer = 0xC000'0080, msr_fs_base = 0xC000'0100, msr_gs_base = 0xC000'0101,
                        msr_kernel_gs_base = 0xC000'0102;

// One page-table write, emulated: nothing to preempt.
class NeverPreempt final : public hv::Preemption {
public:
    bool pending() override { return false; }
};


}  // namespace

// The page tables of the guest kernel (`kernel`) or of its user mode, if it has set them.
std::optional<std::uint64_t> mode_root(bool kernel) {
    if (running.domain == nullptr)
        return std::nullopt;
    const hv::mm::VcpuMmu& mmu = running.domain->storage.vcpu_memory[running.context->vcpu];
    const auto base = kernel ? mmu.kernel_base : mmu.user_base;
    return base ? std::optional{base->value << 12} : std::nullopt;
}

namespace {

// What the running mode's instructions see (the emulator reads them through it).
GuestAddressSpace current_space{[] { return cpu::read_cr3() & frame_mask; }};
// The guest kernel's view, whichever mode runs: hypercall arguments, and the frames bounced onto
// the kernel stack, which a user mode's page tables need not map.
GuestAddressSpace kernel_space{[] { return mode_root(true).value_or(cpu::read_cr3() & frame_mask); }};

}  // namespace

hv::pv::GuestRegisters registers_of(const GuestFrame& frame) {
    return {frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp, frame.rsp,
            frame.r8, frame.r9, frame.r10, frame.r11, frame.r12, frame.r13, frame.r14, frame.r15,
            frame.rip, frame.rflags, static_cast<std::uint16_t>(frame.cs), static_cast<std::uint16_t>(frame.ss)};
}

void store(const hv::pv::GuestRegisters& registers, GuestFrame& frame) {
    frame.rax = registers.rax;
    frame.rbx = registers.rbx;
    frame.rcx = registers.rcx;
    frame.rdx = registers.rdx;
    frame.rsi = registers.rsi;
    frame.rdi = registers.rdi;
    frame.rbp = registers.rbp;
    frame.rsp = registers.rsp;
    frame.r8 = registers.r8;
    frame.r9 = registers.r9;
    frame.r10 = registers.r10;
    frame.r11 = registers.r11;
    frame.r12 = registers.r12;
    frame.r13 = registers.r13;
    frame.r14 = registers.r14;
    frame.r15 = registers.r15;
    frame.rip = registers.rip;
    frame.rflags = registers.rflags;
    frame.cs = registers.cs;
    frame.ss = registers.ss;
}

namespace {

hv::abi::vcpu_info& vcpu_info() { return *running.domain->events->vcpus[running.context->vcpu].info; }

// The CPU's FS base, and the running mode's GS base, are the vCPU's: the guest changes them
// without the hypervisor when it loads a selector into %fs or %gs (the descriptor's base). Read
// back on every entry, before anything uses or replaces them (Xen reads them back before it
// switches modes).
void save_segment_bases() {
    hv::pv::SegmentBases& bases = running.handlers->bases;
    bases.fs = cpu::read_msr(msr_fs_base);
    (running.handlers->pv.kernel_mode ? bases.gs_kernel : bases.gs_user) = cpu::read_msr(msr_gs_base);
}

// The guest changed mode: its page tables and GS base change with it.
void load_mode_page_tables() {
    load_guest_page_tables();
    load_segment_bases();
}

// The vCPU goes on with `registers` (a bounce, an iret or an emulation made them); when that
// changed its mode, the mode's page tables and GS base are loaded.
void take_registers(const hv::pv::GuestRegisters& registers, GuestFrame& frame, bool mode_changed) {
    store(registers, frame);
    if (mode_changed)
        load_mode_page_tables();
}

// A #DB: the CPU's DR6 becomes the guest's (get_debugreg(6)), and the CPU's is reset.
void latch_debug_status() {
    hv::pv::record_debug_exception(running.handlers->pv, cpu::read_debug_status());
    cpu::write_debug_status(hv::pv::DebugRegisters::status_default);
}

void crash(const char* why) {
    console.write("(");
    console.write(running.domain->name());
    console.write(") crashed: ");
    console.write(why);
    console.write("\n");
    running.domains->crash(*running.domain);
    run_next();
}

// Whether iretq can return to `frame` without faulting in ring 0 on what the guest may have set
// (through iret, its trap table or its callbacks): selectors Xen's flat pair or the guest's own
// GDT's, as libhv judges them from the CPU's copy of its descriptors, rip canonical, no VM flag.
bool enterable(const GuestFrame& frame) {
    const bool selectors = frame.cs <= 0xFFFF && frame.ss <= 0xFFFF &&
                           hv::pv::returnable_selectors(static_cast<std::uint16_t>(frame.cs),
                                                        static_cast<std::uint16_t>(frame.ss), guest_gdt());
    return selectors && hv::is_canonical(frame.rip) && (frame.rflags & (1u << 17)) == 0;
}

// The last check before iretq. Where Xen's iretq faults and it enters the guest's failsafe
// callback instead, the failsafe callback is entered before; without one the domain crashes.
void ensure_enterable(GuestFrame& frame) {
    if (enterable(frame))
        return;
    hv::pv::GuestRegisters registers = registers_of(frame);
    const auto bounced =
        hv::pv::bounce_failsafe(running.handlers->pv, vcpu_info(), kernel_space, registers, data_selectors());
    if (bounced.outcome == hv::pv::Bounce::no_handler)
        crash("its registers cannot be returned to (cs, ss or rip) and it has no failsafe callback");
    if (bounced.outcome != hv::pv::Bounce::delivered)
        crash("its registers cannot be returned to (cs, ss or rip) and its stack cannot take the failsafe frame");
    take_registers(registers, frame, bounced.mode_changed);
}

// The guest's CR0.TS in the CPU (fpu_taskswitch sets it, delivering #NM clears it).
bool task_switched_in_cpu = false;  // the CPU's CR0.TS
void load_task_switched() {
    const bool wanted = running.handlers->pv.fpu_task_switched;
    if (wanted != task_switched_in_cpu)
        cpu::set_task_switched(wanted);
    task_switched_in_cpu = wanted;
}

}  // namespace

// The running mode's segment bases in the CPU: GS is the kernel's in kernel mode and the user's
// in user mode, the other one waiting in KERNEL_GS_BASE.
void load_segment_bases() {
    const hv::pv::SegmentBases& bases = running.handlers->bases;
    const bool kernel = running.handlers->pv.kernel_mode;
    cpu::write_msr(msr_fs_base, bases.fs);
    cpu::write_msr(msr_gs_base, kernel ? bases.gs_kernel : bases.gs_user);
    cpu::write_msr(msr_kernel_gs_base, kernel ? bases.gs_user : bases.gs_kernel);
}

// The guest's data segment selectors: the CPU's, since the hypervisor never loads them.
hv::pv::DataSelectors data_selectors() {
    hv::pv::DataSelectors selectors;
    asm volatile("mov %%ds, %0; mov %%es, %1; mov %%fs, %2; mov %%gs, %3"
                 : "=r"(selectors.ds), "=r"(selectors.es), "=r"(selectors.fs), "=r"(selectors.gs));
    return selectors;
}

void clear_task_switched() {
    cpu::set_task_switched(false);
    task_switched_in_cpu = false;
}

// On every way back to the guest: an event pending and unmasked enters its event callback, the
// guest's TS is in the CPU, and the registers are checked.
void deliver_pending_event(GuestFrame& frame) {
    // Tables whose last use went are devalidated before the guest runs again (PageTables::drain).
    running.domains->page_tables().drain(running.domain->memory, UINT32_MAX);
    ensure_enterable(frame);
    hv::pv::GuestRegisters registers = registers_of(frame);
    const auto delivered = hv::pv::deliver_event(running.handlers->pv, vcpu_info(), kernel_space, registers);
    if (delivered) {
        if (delivered->outcome != hv::pv::Bounce::delivered)
            crash("its stack cannot take an event upcall");
        take_registers(registers, frame, delivered->mode_changed);
    }
    load_task_switched();
}

// The vCPU's runstate changes, and the guest's copy follows.
void set_runstate(std::int32_t state) {
    HypervisorCalls& calls = *running.handlers;
    hv::pv::change_runstate(calls.runstate, state, clock::now_ns());
    hv::pv::publish_runstate(calls.runstate, kernel_space, *running.domain);
}


long HypervisorCalls::set_timer_op(hv::domain::HypercallCaller&, const hv::hypercall_args::set_timer_op& args) {
    const long result = hv::pv::set_timer_op(timers, clock::now_ns(), args);
    arm_timer();
    return result;
}

long HypervisorCalls::set_segment_base(hv::domain::HypercallCaller&,
                                       const hv::hypercall_args::set_segment_base& args) {
    const long result = hv::pv::set_segment_base(bases, args);
    if (result == 0)
        load_segment_bases();
    return result;
}

long HypervisorCalls::vcpu_op(hv::domain::HypercallCaller& caller, const hv::hypercall_args::vcpu_op& args) {
    hv::pv::VcpuOpCaller vcpu{domains(), caller.domain, caller.vcpu, caller.memory, *running.context->run, clock::now_ns()};
    const long result = hv::pv::vcpu_op(vcpu, args);
    arm_timer();
    return result;
}

long HypervisorCalls::set_debugreg(hv::domain::HypercallCaller&, const hv::hypercall_args::set_debugreg& args) {
    const long result = hv::pv::set_debugreg(pv, args);
    if (result == 0) {
        // Its breakpoints are in the CPU while it runs (the hypervisor sets none of its own).
        cpu::write_debug_addresses(pv.debug.address);
        cpu::write_debug_control(pv.debug.control);
    }
    return result;
}

long HypervisorCalls::iret(hv::domain::HypercallCaller& caller, const hv::hypercall_args::iret&) {
    hv::pv::GuestRegisters registers = registers_of(*frame);
    const bool has_user_base = caller.domain.storage.vcpu_memory[caller.vcpu].user_base.has_value();
    const auto resumed = hv::pv::iret(pv, vcpu_info(), caller.memory, registers, has_user_base);
    if (!resumed) {
        running.domains->crash(caller.domain);
        return 0;
    }
    take_registers(registers, *frame, resumed->mode_changed);
    return static_cast<long>(resumed->rax);
}

namespace {

// Xen's order for a fault in guest code: `int n` admitted by the guest's trap table, writable page
// tables, emulation of a privileged instruction, else a bounce to the guest's own handler. False
// when the fault is not handled that way (no handler, or no room for its frame).
bool handle_guest_fault(GuestFrame& frame, std::uint64_t cr2) {
    constexpr std::uint8_t debug = 1, general_protection = 13, page_fault = 14;
    HypervisorCalls& calls = *running.handlers;
    const auto vector = static_cast<std::uint8_t>(frame.vector);
    const auto error_code = static_cast<std::uint32_t>(frame.error_code);
    hv::pv::GuestRegisters registers = registers_of(frame);
    const auto resume = [&](bool mode_changed) {
        take_registers(registers, frame, mode_changed);
        return_to_guest(frame);
        return true;
    };
    if (vector == general_protection) {
        if (const auto interrupt =
                hv::pv::bounce_software_interrupt(calls.pv, vcpu_info(), current_space, kernel_space, registers,
                                                  error_code))
            return interrupt->outcome == hv::pv::Bounce::delivered && resume(interrupt->mode_changed);
    }
    if (vector == debug)
        latch_debug_status();
    if (vector == page_fault) {
        static NeverPreempt preemption;
        hv::Continuation continuation;
        hv::mm::MmuCaller caller{running.domain->memory, running.domain->storage.vcpu_memory[running.context->vcpu], current_space,
                                 preemption, continuation};
        if (hv::pv::emulate_page_table_write(calls.pv, calls.bases, registers, running.domains->page_tables(), caller,
                                             error_code, cr2))
            return resume(false);
    }
    static HostCpuid host_cpuid;
    const hv::pv::MachineState machine{cpu::read_cr0(), cpu::read_cr3() & frame_mask, cpu::read_cr4(),
                                       cpu::read_msr(msr_efer)};
    const auto emulation =
        hv::pv::emulate_privileged(calls.pv, calls.bases, vcpu_info(), registers, current_space, host_cpuid, vector,
                                   machine, calls.version().major, calls.version().minor);
    if (emulation.emulated) {
        if (emulation.segment_bases_changed)
            load_segment_bases();
        return resume(false);
    }
    const std::optional<std::uint32_t> pushed = has_error_code(vector) ? std::optional{error_code} : std::nullopt;
    const auto bounced = hv::pv::bounce_exception(calls.pv, vcpu_info(), kernel_space, registers, vector, pushed, cr2);
    return bounced.outcome == hv::pv::Bounce::delivered && resume(bounced.mode_changed);
}

}  // namespace
}  // namespace hypervisor

using hypervisor::GuestFrame;

// A hypercall: the number in rax, arguments in rdi, rsi, rdx, r10, r8, the result back in rax.
extern "C" void hv_syscall(GuestFrame* frame) {
    using namespace hypervisor;
    static TurnPreemption preemption;
    save_segment_bases();
    if (!running.handlers->pv.kernel_mode) {
        // Not a hypercall: the guest kernel's system call, for its syscall callback.
        hv::pv::GuestRegisters registers = registers_of(*frame);
        const auto bounced = hv::pv::bounce_user_syscall(running.handlers->pv, vcpu_info(), kernel_space, registers);
        if (bounced.outcome != hv::pv::Bounce::delivered)
            crash(bounced.outcome == hv::pv::Bounce::no_handler
                      ? "a syscall from user mode, with no syscall callback and no #UD handler"
                      : "its kernel stack cannot take a syscall from user mode");
        take_registers(registers, *frame, bounced.mode_changed);
        return_to_guest(*frame);
        return;
    }
    running.handlers->frame = frame;
    hv::Continuation continuation;
    hv::domain::HypercallCaller caller{*running.domain, running.context->vcpu, kernel_space, preemption, continuation};
    const long result = hv::domain::hypercall(
        *running.handlers, caller, {frame->rax, {frame->rdi, frame->rsi, frame->rdx, frame->r10, frame->r8}});
    if (continuation.requested) {
        // Back to the syscall instruction, with the registers that carry on from here.
        const hv::HypercallRegisters& again = continuation.registers;
        frame->rax = again.number;
        frame->rdi = again.args[0];
        frame->rsi = again.args[1];
        frame->rdx = again.args[2];
        frame->r10 = again.args[3];
        frame->r8 = again.args[4];
        frame->rip -= 2;
    } else {
        frame->rax = static_cast<std::uint64_t>(result);
    }
    // Blocked (SCHEDOP_block, SCHEDOP_poll) or shut down: another vCPU runs, or the CPU idles.
    return_to_guest(*frame);
}

// An exception or interrupt. From the guest: bounced to the guest kernel's handler, the domain
// crashing when it has none (Xen's rule); from the hypervisor itself: a bug, reported before QEMU
// is left. Device interrupts are all masked: one that arrives anyway is ignored.
extern "C" void hv_trap(GuestFrame* frame) {
    using namespace hypervisor;
    std::uint64_t cr2;
    asm volatile("mov %%cr2, %0" : "=r"(cr2));
    const bool from_guest = (frame->cs & 3) != 0;
    constexpr std::uint64_t debug = 1;
    if (frame->vector == debug && !from_guest) {
        // A guest's data breakpoint held back by mov ss until the first instruction of an entry
        // (on its own IST stack): the guest's event, latched in its DR6 as Xen does; carry on.
        latch_debug_status();
        return;
    }
    if (from_guest)
        save_segment_bases();
    if (frame->vector >= first_external_vector) {
        if (frame->vector == clock::timer_vector)
            on_timer_interrupt();
        else if (frame->vector == clock::serial_input_vector)
            on_serial_input_interrupt();
        if (from_guest)
            return_to_guest(*frame);
        return;
    }
    if (from_guest && handle_guest_fault(*frame, cr2))
        return;
    console.write(from_guest ? "(" : "hypervisor: exception ");

    if (from_guest) {
        console.write(running.domain->name());
        console.write(") crashed: exception ");
    }
    console.write_decimal(frame->vector);
    console.write(", error code ");
    console.write_hex(frame->error_code);
    console.write(", rip ");
    console.write_hex(frame->rip);
    console.write(", cr2 ");
    console.write_hex(cr2);
    console.write("\n");
    if (!from_guest)
        cpu::exit_qemu(255);
    running.domains->crash(*running.domain);
    run_next();
}

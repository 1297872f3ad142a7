// SPDX-License-Identifier: BSD-2-Clause
#include "guest_run.hpp"

#include <hv/domain_hypercalls.hpp>
#include <hv/pv_emulate.hpp>
#include <hv/pv_segments.hpp>
#include <hv/pv_timers.hpp>
#include <hv/pv_vcpu_op.hpp>
#include <hv/pv_traps.hpp>
#include <hv/sched.hpp>

#include <algorithm>
#include <cstring>
#include <new>

#include "clock.hpp"

#include "cpu.hpp"
#include "cpu_tables.hpp"
#include "guest_frame.hpp"
#include "guest_gdt.hpp"
#include "memory_layout.hpp"
#include "serial.hpp"

namespace hypervisor {
namespace {

constexpr Serial console{Serial::com1};
constexpr std::uint64_t frame_mask = 0x000F'FFFF'FFFF'F000;
constexpr std::uint64_t present = 1, writable = 2, user = 4;
constexpr std::uint64_t interrupts_enabled = 0x202;

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

// Interrupts are off while a hypercall runs: a long one (a batch, a big console write) gives the
// CPU back through its continuation once a timer is due or the running vCPU's turn is over
// while another waits (defined with the scheduling below).
class TurnPreemption final : public hv::Preemption {
public:
    bool pending() override;
};

// libhv's hypercalls and the trap layer's, for the running vCPU, whose saved registers are the
// frame being handled.
class HypervisorCalls final : public hv::domain::Hypercalls {
public:
    using Hypercalls::Hypercalls;

    long set_trap_table(hv::domain::HypercallCaller& caller, const hv::hypercall_args::set_trap_table& args) {
        return hv::pv::set_trap_table(pv, caller.memory, caller.preemption, caller.continuation, args);
    }
    long stack_switch(hv::domain::HypercallCaller&, const hv::hypercall_args::stack_switch& args) {
        return hv::pv::stack_switch(pv, args);
    }
    long iret(hv::domain::HypercallCaller& caller, const hv::hypercall_args::iret&);
    long set_callbacks(hv::domain::HypercallCaller&, const hv::hypercall_args::set_callbacks& args) {
        return hv::pv::set_callbacks(pv, args);
    }
    long callback_op(hv::domain::HypercallCaller& caller, const hv::hypercall_args::callback_op& args) {
        return hv::pv::callback_op(pv, caller.memory, args);
    }
    long set_timer_op(hv::domain::HypercallCaller&, const hv::hypercall_args::set_timer_op& args);
    long set_segment_base(hv::domain::HypercallCaller&, const hv::hypercall_args::set_segment_base& args);
    long fpu_taskswitch(hv::domain::HypercallCaller&, const hv::hypercall_args::fpu_taskswitch& args) {
        return hv::pv::fpu_taskswitch(pv, args);  // the CPU's TS follows on the way back
    }
    long set_debugreg(hv::domain::HypercallCaller&, const hv::hypercall_args::set_debugreg& args);
    long vcpu_op(hv::domain::HypercallCaller& caller, const hv::hypercall_args::vcpu_op& args);
    long physdev_op(hv::domain::HypercallCaller& caller, const hv::hypercall_args::physdev_op& args) {
        return hv::pv::physdev_op(pv, caller.memory, args);
    }
    long get_debugreg(hv::domain::HypercallCaller&, const hv::hypercall_args::get_debugreg& args) {
        return hv::pv::get_debugreg(pv, args);
    }

    hv::pv::PvVcpu pv;
    hv::pv::SegmentBases bases;
    hv::pv::VcpuTimers timers;
    hv::pv::Runstate runstate;
    std::optional<std::uint64_t> poll_deadline;
    GuestFrame* frame = nullptr;
};

// One vCPU of a domain: what the trap layer keeps of it, and its registers, FPU state and data
// selectors while another vCPU has the CPU.
struct VcpuContext {
    VcpuContext(hv::domain::Domains& domains, hv::domain::Domain& owner)
        : calls{domains}, domain{&owner}, sched{owner.id(), 0} {}

    HypervisorCalls calls;
    hv::domain::Domain* domain;
    GuestFrame frame{};
    alignas(16) std::array<std::byte, 512> fpu{};  // FXSAVE format
    hv::pv::DataSelectors selectors{};
    hv::sched::SchedVcpu sched;
    bool reaped = false;            // its domain stopped and was destroyed (or preserved)
    bool powered_off = false;       // how it stopped, kept past its destruction
    bool preserved = false;         // kept as it stopped (on_crash = "preserve" ...)
    std::size_t entry = 0;          // its bundle entry, to build it again
    StopActions actions{};
    hv::builder::DomainAction action = hv::builder::DomainAction::destroy;  // the one its stop chose
};

// Every vCPU that runs, in the order domains were built.
std::array<VcpuContext*, hv::builder::max_bundle_domains> contexts{};
std::size_t context_count = 0;
bool every_domain_built = true;
std::uint64_t idle_root = 0;  // the hypervisor's own page tables, for the CPU between vCPUs
std::uint64_t heap_before_domains = 0;  // free frames before any domain was built
RebuildDomain rebuild_domain = nullptr;
std::uint16_t next_domain_id = 0;       // for restarted domains: after every id in use

// Which vCPU runs: libhv's scheduler (round robin by 10 ms slice, a vCPU woken by an event
// boosted). Built in place at the first vCPU and never destroyed (its destructor is out of line
// in the library, which a static object would register for exit through the GOT).
alignas(hv::sched::Scheduler) std::byte scheduler_storage[sizeof(hv::sched::Scheduler)];
hv::sched::Scheduler& scheduler() { return *std::launder(reinterpret_cast<hv::sched::Scheduler*>(scheduler_storage)); }
// When the running vCPU's turn ends, as the scheduler last said.
std::uint64_t turn_end = hv::sched::no_deadline;

// The vCPU on the CPU, its domain and its handlers.
struct Running {
    hv::domain::Domains* domains = nullptr;
    hv::domain::Domain* domain = nullptr;
    HypervisorCalls* handlers = nullptr;
    VcpuContext* context = nullptr;
};
Running running;

// The page tables of the guest kernel (`kernel`) or of its user mode, if it has set them.
std::optional<std::uint64_t> mode_root(bool kernel) {
    if (running.domain == nullptr)
        return std::nullopt;
    const hv::mm::VcpuMmu& mmu = running.domain->storage.vcpu_memory[0];
    const auto base = kernel ? mmu.kernel_base : mmu.user_base;
    return base ? std::optional{base->value << 12} : std::nullopt;
}

// What the running mode's instructions see (the emulator reads them through it).
GuestAddressSpace current_space{[] { return cpu::read_cr3() & frame_mask; }};
// The guest kernel's view, whichever mode runs: hypercall arguments, and the frames bounced onto
// the kernel stack, which a user mode's page tables need not map.
GuestAddressSpace kernel_space{[] { return mode_root(true).value_or(cpu::read_cr3() & frame_mask); }};

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

hv::abi::vcpu_info& vcpu_info() { return *running.domain->events->vcpus[0].info; }

// The running mode's segment bases in the CPU: GS is the kernel's in kernel mode and the user's
// in user mode, the other one waiting in KERNEL_GS_BASE.
void load_segment_bases() {
    const hv::pv::SegmentBases& bases = running.handlers->bases;
    const bool kernel = running.handlers->pv.kernel_mode;
    cpu::write_msr(msr_fs_base, bases.fs);
    cpu::write_msr(msr_gs_base, kernel ? bases.gs_kernel : bases.gs_user);
    cpu::write_msr(msr_kernel_gs_base, kernel ? bases.gs_user : bases.gs_kernel);
}

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

[[noreturn]] void run_next();
void return_to_guest(GuestFrame& frame);

void crash(const char* why) {
    console.write("(");
    console.write(running.domain->name());
    console.write(") crashed: ");
    console.write(why);
    console.write("\n");
    running.domains->crash(*running.domain);
    run_next();
}

// The guest's data segment selectors: the CPU's, since the hypervisor never loads them.
hv::pv::DataSelectors data_selectors() {
    hv::pv::DataSelectors selectors;
    asm volatile("mov %%ds, %0; mov %%es, %1; mov %%fs, %2; mov %%gs, %3"
                 : "=r"(selectors.ds), "=r"(selectors.es), "=r"(selectors.fs), "=r"(selectors.gs));
    return selectors;
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

bool live(const VcpuContext& context) { return context.domain->state == hv::domain::DomainState::running; }

// The scheduler learns whether the vCPU can run now (both calls are no-ops when nothing changed).
void update_scheduler(VcpuContext& context) {
    const std::uint64_t now = clock::now_ns();
    if (live(context) && context.domain->runnable(0))
        scheduler().wake(context.sched, now);
    else
        scheduler().block(context.sched, now);
}

VcpuContext& context_of(const hv::sched::SchedVcpu& sched) {
    std::size_t at = 0;
    while (&contexts[at]->sched != &sched)
        ++at;
    return *contexts[at];
}

// The scheduler decides who runs now; the end of its turn goes to the PIT with the timers.
hv::sched::SchedVcpu* schedule() {
    const hv::sched::Decision decision = scheduler().schedule(clock::now_ns());
    turn_end = decision.slice_end_ns;
    return decision.next;
}

// The earliest of every live vCPU's timers and poll timeouts.
std::optional<std::uint64_t> next_timer() {
    std::optional<std::uint64_t> deadline;
    const auto consider = [&](std::optional<std::uint64_t> candidate) {
        if (candidate && (!deadline || *candidate < *deadline))
            deadline = candidate;
    };
    for (std::size_t i = 0; i < context_count; ++i) {
        if (!live(*contexts[i]))
            continue;
        consider(contexts[i]->calls.timers.next_deadline());
        consider(contexts[i]->calls.poll_deadline);
    }
    return deadline;
}

// The PIT is armed for the next timer, and for the end of the running vCPU's turn.
void arm_timer() {
    std::optional<std::uint64_t> deadline = next_timer();
    if (turn_end != hv::sched::no_deadline && (!deadline || turn_end < *deadline))
        deadline = turn_end;
    if (deadline)
        clock::arm(*deadline);
}

bool TurnPreemption::pending() {
    const std::uint64_t now = clock::now_ns();
    const std::optional<std::uint64_t> timer = next_timer();
    return (timer && *timer <= now) || (now >= turn_end && scheduler().runnable_count() > 1);
}

// Serial input goes to one domain's console ring, as `xl console` would attach to it: the first
// domain still running (Xen's console focus starts at the first domain too). Bytes the ring cannot
// take yet wait here, and in the UART; the timer's interrupts pick them up too, since the PIC's
// edge-triggered line does not rise again for bytes left in the UART.
hv::console::ConsoleInput serial_input;

// The domain with the input, moved on from one that stopped; nullptr when none runs.
hv::domain::Domain* input_focus() {
    hv::domain::Domain* focus = nullptr;
    for (std::size_t i = 0; i < context_count; ++i) {
        hv::domain::Domain& domain = *contexts[i]->domain;
        const bool chosen = focus == nullptr && live(*contexts[i]);
        domain.console_input = chosen ? &serial_input : nullptr;
        if (chosen)
            focus = &domain;
    }
    return focus;
}

void take_serial_input() {
    while (!serial_input.full()) {
        const auto byte = console.read_byte();
        if (!byte)
            break;
        (void)serial_input.push(*byte);
    }
    if (serial_input.empty())
        return;
    if (hv::domain::Domain* focus = input_focus())
        running.domains->service_console(*focus);
}

void on_serial_input_interrupt() {
    clock::acknowledge();
    take_serial_input();
}

void on_timer_interrupt() {
    clock::timer_interrupt_arrived();
    take_serial_input();
    const std::uint64_t now = clock::now_ns();
    for (std::size_t i = 0; i < context_count; ++i) {
        VcpuContext& context = *contexts[i];
        if (!live(context))
            continue;
        HypervisorCalls& calls = context.calls;
        if (calls.timers.expire(now))
            (void)running.domains->event_channels().send_virq(*context.domain->events, 0, pvkit::abi::VIRQ_TIMER);
        if (calls.poll_deadline && *calls.poll_deadline <= now) {
            calls.poll_deadline.reset();
            running.domains->poll_timed_out(context.domain->id(), 0);
        }
    }
    arm_timer();
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
    hv::pv::VcpuOpCaller vcpu{domains(), caller.domain, caller.vcpu, caller.memory, timers, runstate, clock::now_ns()};
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
    const bool has_user_base = caller.domain.storage.vcpu_memory[0].user_base.has_value();
    const auto resumed = hv::pv::iret(pv, vcpu_info(), caller.memory, registers, has_user_base);
    if (!resumed) {
        running.domains->crash(caller.domain);
        return 0;
    }
    take_registers(registers, *frame, resumed->mode_changed);
    return static_cast<long>(resumed->rax);
}

[[noreturn]] void finish() {
    bool all_powered_off = every_domain_built;
    console.write("all domains have stopped: ");
    for (std::size_t i = 0; i < context_count; ++i) {
        const bool powered_off = contexts[i]->powered_off;
        all_powered_off = all_powered_off && powered_off;
        console.write(i == 0 ? "" : ", ");
        console.write(contexts[i]->domain->name());
        console.write(powered_off ? " powered off" : " did not power off");
    }
    console.write("\n");
    const std::uint64_t free_now = running.domains->frames().free_frames();
    const bool any_preserved = std::any_of(contexts.begin(), contexts.begin() + context_count,
                                           [](const VcpuContext* context) { return context->preserved; });
    if (any_preserved) {
        console.write("memory: preserved domains keep theirs\n");
    } else if (free_now == heap_before_domains) {
        console.write("memory: every domain's frames are back in the heap\n");
    } else {
        console.write("memory: ");
        console.write_decimal(heap_before_domains - free_now);
        console.write(" frames not given back\n");
        all_powered_off = false;
    }
    cpu::exit_qemu(all_powered_off ? 0 : 1);
}

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
        hv::mm::MmuCaller caller{running.domain->memory, running.domain->storage.vcpu_memory[0], current_space,
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

// ---- The CPU passes from vCPU to vCPU ------------------------------------------------------

GuestFrame& entry_frame() { return *reinterpret_cast<GuestFrame*>(hv_entry_stack_top - sizeof(GuestFrame)); }

// Whether `selector` loads into a data segment register from ring 0 without faulting: null, or a
// present data or readable code segment. A guest's selector may name a descriptor it changed (or
// a GDT it replaced) after loading it; such a selector comes back null.
bool loadable(std::uint16_t selector) {
    constexpr std::uint32_t present = 1u << 15, code_or_data = 1u << 12, code = 1u << 11, readable = 1u << 9;
    if ((selector & ~3u) == 0)
        return true;
    std::uint32_t rights = 0;
    bool valid = false;
    asm volatile("lar %2, %0; setz %1" : "=r"(rights), "=q"(valid) : "r"(std::uint32_t{selector}) : "cc");
    return valid && (rights & present) != 0 && (rights & code_or_data) != 0 &&
           ((rights & code) == 0 || (rights & readable) != 0);
}

void load_data_selectors(const hv::pv::DataSelectors& selectors) {
    const auto checked = [](std::uint16_t selector) -> std::uint32_t { return loadable(selector) ? selector : 0; };
    asm volatile("mov %0, %%ds; mov %1, %%es; mov %2, %%fs; mov %3, %%gs"
                 :
                 : "r"(checked(selectors.ds)), "r"(checked(selectors.es)), "r"(checked(selectors.fs)),
                   "r"(checked(selectors.gs)));
}

// The running vCPU's state leaves the CPU: its registers from the entry frame, its data
// selectors and its FPU state (its segment bases were read back on entry).
void save_running(const GuestFrame& entry) {
    VcpuContext& context = *running.context;
    context.frame = entry;
    context.selectors = data_selectors();
    cpu::set_task_switched(false);
    task_switched_in_cpu = false;
    cpu::save_fpu(context.fpu.data());
    if (live(context))
        set_runstate(context.domain->runnable(0) ? pvkit::abi::RUNSTATE_runnable : pvkit::abi::RUNSTATE_blocked);
}

// `next` takes the CPU: its GDT, then the selectors that may name it, its segment bases, page
// tables, breakpoints and FPU state, and its registers into the entry frame.
void load_running(VcpuContext& next, GuestFrame& entry) {
    running.context = &next;
    running.domain = next.domain;
    running.handlers = &next.calls;
    load_guest_gdt(next.domain->storage.vcpu_memory[0]);
    load_data_selectors(next.selectors);
    load_segment_bases();
    load_guest_page_tables();
    cpu::write_debug_addresses(next.calls.pv.debug.address);
    cpu::write_debug_control(next.calls.pv.debug.control);
    cpu::set_task_switched(false);
    task_switched_in_cpu = false;
    cpu::load_fpu(next.fpu.data());
    entry = next.frame;
    set_runstate(pvkit::abi::RUNSTATE_running);
    arm_timer();
}

hv::builder::DomainAction action_for(const VcpuContext& context) {
    switch (context.domain->shutdown_reason) {
    case pvkit::abi::SHUTDOWN_poweroff:
        return context.actions.poweroff;
    case pvkit::abi::SHUTDOWN_reboot:
        return context.actions.reboot;
    case pvkit::abi::SHUTDOWN_crash:
        return context.actions.crash;
    default:
        return hv::builder::DomainAction::destroy;
    }
}

void init_context(VcpuContext& context, const hv::builder::InitialRegisters& registers);

// The destroyed domain of `context` is built again as a new domain, which runs in its place.
void restart(VcpuContext& context) {
    const hv::DomId id{next_domain_id++};
    console.write("(");
    console.write(context.domain->name());
    console.write(") restarting as domain ");
    console.write_decimal(id.value);
    console.write("\n");
    hv::builder::InitialRegisters registers{};
    hv::domain::Domain* domain = rebuild_domain(context.entry, id, registers);
    if (domain == nullptr)
        return;  // it stays destroyed, as it stopped
    const std::size_t entry = context.entry;
    const StopActions actions = context.actions;
    context.~VcpuContext();
    auto* fresh = new (&context) VcpuContext{*running.domains, *domain};
    fresh->entry = entry;
    fresh->actions = actions;
    init_context(*fresh, registers);
    scheduler().add(fresh->sched);
    (void)running.domains->unpause(*domain);
}

// Domains that stopped give back their memory, ports, grants and store connection, a bounded
// amount of work per call (one that others' mappings of its grants hold waits for them), while
// the others go on. Never the page tables in the CPU: the caller loaded others.
void reap() {
    constexpr unsigned budget = 256;
    for (std::size_t i = 0; i < context_count; ++i) {
        VcpuContext& context = *contexts[i];
        hv::domain::Domain& domain = *context.domain;
        if (context.reaped || domain.state == hv::domain::DomainState::running)
            continue;
        if (domain.state == hv::domain::DomainState::shutdown) {  // first seen stopped: how, and what now
            context.powered_off = domain.shutdown_reason == pvkit::abi::SHUTDOWN_poweroff;
            context.action = action_for(context);
        }
        const hv::builder::DomainAction action = context.action;
        scheduler().remove(context.sched);
        if (action == hv::builder::DomainAction::preserve) {
            context.reaped = context.preserved = true;
            continue;
        }
        context.reaped = running.domains->destroy(domain, budget);
        if (context.reaped && action == hv::builder::DomainAction::restart)
            restart(context);
    }
}

bool teardown_unfinished() {
    for (std::size_t i = 0; i < context_count; ++i)
        if (!contexts[i]->reaped && !live(*contexts[i]))
            return true;
    return false;
}

bool any_live() {
    for (std::size_t i = 0; i < context_count; ++i)
        if (live(*contexts[i]))
            return true;
    return false;
}

// Enters the next runnable vCPU; while none is, the CPU idles until an interrupt (a timer, an
// event) makes one runnable; when no domain is left running, the run ends. It runs on a fresh
// entry stack (run_next), so that a vCPU that crashes as it is entered starts this again without
// nesting, and never on an IST stack.
[[noreturn]] void schedule_on_entry_stack() {
    GuestFrame& entry = entry_frame();
    for (;;) {
        if (running.context == nullptr || !live(*running.context))
            cpu::write_cr3(idle_root);  // not a stopped domain's tables, which its teardown frees
        if (running.context != nullptr)
            update_scheduler(*running.context);
        if (teardown_unfinished())
            reap();
        if (hv::sched::SchedVcpu* next = schedule()) {
            load_running(context_of(*next), entry);
            deliver_pending_event(entry);
            hv_enter_guest(&entry);
        }
        if (!any_live()) {
            // With every domain stopped, each teardown finishes (no live mapper holds a grant),
            // in a bounded number of passes; finish() reports frames a broken one kept.
            constexpr unsigned max_passes = 1 << 16;
            const auto all_reaped = [] {
                return std::all_of(contexts.begin(), contexts.begin() + context_count,
                                   [](const VcpuContext* context) { return context->reaped; });
            };
            for (unsigned pass = 0; pass < max_passes && !all_reaped(); ++pass)
                reap();
            if (!any_live())
                finish();
            continue;  // one was restarted
        }
        if (teardown_unfinished())
            continue;  // more of it before the CPU idles
        arm_timer();
        asm volatile("sti; hlt; cli" ::: "memory");
    }
}

[[noreturn]] void run_next() { hv_run_on_entry_stack(&schedule_on_entry_stack); }

// The way back to the guest after any entry: the running vCPU goes on unless it can no longer
// run (blocked, shut down, paused) or the scheduler gives the CPU to another.
void return_to_guest(GuestFrame& frame) {
    VcpuContext& context = *running.context;
    if (teardown_unfinished() && live(context))
        reap();  // a stopped domain's teardown goes on while this one runs (its CR3 stays)
    update_scheduler(context);
    if (schedule() != &context.sched) {
        save_running(frame);
        run_next();
    }
    deliver_pending_event(frame);
}

// A new vCPU's registers, FPU state and timers: from `registers`, the FPU as FNINIT leaves it
// with SSE exceptions masked, the periodic timer running.
void init_context(VcpuContext& context, const hv::builder::InitialRegisters& registers) {
    context.frame.rip = registers.rip;
    context.frame.rsp = registers.rsp;
    context.frame.rsi = registers.rsi;
    context.frame.cs = guest_cs64;
    context.frame.ss = guest_ss;
    context.frame.rflags = interrupts_enabled;
    constexpr std::uint16_t initial_control = 0x037F;  // FCW, at byte 0
    constexpr std::uint32_t initial_mxcsr = 0x1F80;    // MXCSR, at byte 24
    std::memcpy(context.fpu.data(), &initial_control, sizeof initial_control);
    std::memcpy(context.fpu.data() + 24, &initial_mxcsr, sizeof initial_mxcsr);
    context.calls.timers.next_period = clock::now_ns() + context.calls.timers.period;
}

}  // namespace

void load_guest_page_tables() {
    if (running.context == nullptr || !live(*running.context)) {
        // Before any guest runs, the boot page tables; a stopped domain's tables are on their way
        // back to the heap (a flush its teardown asks for lands here): the hypervisor's own are
        // in use meanwhile.
        cpu::write_cr3(idle_root != 0 ? idle_root : cpu::read_cr3() & frame_mask);
        return;
    }
    cpu::write_cr3(mode_root(running.handlers->pv.kernel_mode).value_or(cpu::read_cr3() & frame_mask));
}

void set_poll_deadline(std::uint64_t deadline_ns) {
    running.handlers->poll_deadline = deadline_ns;
    arm_timer();
}

void vcpu_woken(const hv::domain::Domain& domain) {
    for (std::size_t i = 0; i < context_count; ++i)
        if (contexts[i]->domain == &domain)
            update_scheduler(*contexts[i]);
}

void vcpu_yielded(const hv::domain::Domain& domain) {
    for (std::size_t i = 0; i < context_count; ++i)
        if (contexts[i]->domain == &domain)
            scheduler().yield(contexts[i]->sched, clock::now_ns());
}

std::size_t guest_vcpu_size() { return (sizeof(VcpuContext) + 63) / 64 * 64; }

void add_guest_vcpu(hv::domain::Domains& domains, hv::domain::Domain& domain,
                    const hv::builder::InitialRegisters& registers, std::byte* storage, std::size_t entry,
                    const StopActions& actions) {
    if (context_count == 0)
        new (scheduler_storage) hv::sched::Scheduler{};
    auto* context = new (storage) VcpuContext{domains, domain};
    context->entry = entry;
    context->actions = actions;
    init_context(*context, registers);
    contexts[context_count++] = context;
    next_domain_id = std::max<std::uint16_t>(next_domain_id, domain.id().value + 1);
    scheduler().add(context->sched);
    (void)domains.unpause(domain);  // the platform's kick puts it in the run queue
}

void run_domains(hv::domain::Domains& domains, bool all_built, std::uint64_t free_frames_before,
                 RebuildDomain rebuild) {
    running.domains = &domains;
    rebuild_domain = rebuild;
    every_domain_built = all_built;
    heap_before_domains = free_frames_before;
    idle_root = cpu::read_cr3() & frame_mask;
    (void)input_focus();
    console.enable_input_interrupt();
    run_next();
}

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
    hv::domain::HypercallCaller caller{*running.domain, 0, kernel_space, preemption, continuation};
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

// SPDX-License-Identifier: BSD-2-Clause
// Which vCPU has the CPU: libhv's scheduler over every vCPU's context, the timers that arm the
// PIT, the context switch, serial input, and domains that stop (destroyed, restarted or preserved)
// until none is left.
#include <algorithm>
#include <cstring>
#include <new>

#include "clock.hpp"
#include "cpu.hpp"
#include "cpu_tables.hpp"
#include "guest_gdt.hpp"
#include "vcpu_context.hpp"

namespace hypervisor {

Running running;

namespace {

constexpr std::uint64_t interrupts_enabled = 0x202;

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
    clear_task_switched();
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
    clear_task_switched();
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

bool live(const VcpuContext& context) { return context.domain->state == hv::domain::DomainState::running; }

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

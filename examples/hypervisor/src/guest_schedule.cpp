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
hv::console::ConsoleInput serial_input;

namespace {

constexpr std::uint64_t interrupts_enabled = 0x202;

// Every domain that runs, in the order they were built.
std::array<DomainRun, hv::builder::max_bundle_domains> runs{};
std::size_t run_count = 0;
std::span<DomainRun> domain_runs() { return {runs.data(), run_count}; }

bool live(const DomainRun& run) { return run.domain->state == hv::domain::DomainState::running; }
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
    if (live(context) && context.domain->runnable(context.vcpu))
        scheduler().wake(context.sched, now);
    else
        scheduler().block(context.sched, now);
}

VcpuContext& context_of(const hv::sched::SchedVcpu& sched) {
    DomainRun* run = runs.data();
    while (run->domain->id() != sched.domain)
        ++run;
    return run->vcpus[sched.vcpu];
}

// The scheduler decides who runs now; the end of its turn goes to the PIT with the timers.
hv::sched::SchedVcpu* schedule() {
    const hv::sched::Decision decision = scheduler().schedule(clock::now_ns());
    turn_end = decision.slice_end_ns;
    return decision.next;
}

// Whether a vCPU's timers run: an offline vCPU's do not (as on Xen, where they stop with it), so
// a vCPU taken down wakes nobody and gets no VIRQ_TIMER.
bool timers_run(const VcpuContext& context) { return context.domain->vcpus[context.vcpu].online; }

// The earliest of every live, online vCPU's timers and poll timeouts.
std::optional<std::uint64_t> next_timer() {
    std::optional<std::uint64_t> deadline;
    const auto consider = [&](std::optional<std::uint64_t> candidate) {
        if (candidate && (!deadline || *candidate < *deadline))
            deadline = candidate;
    };
    for (const DomainRun& run : domain_runs()) {
        if (!live(run))
            continue;
        for (const VcpuContext& context : run.vcpus) {
            if (!timers_run(context))
                continue;
            consider(context.calls.timers.next_deadline());
            consider(context.calls.poll_deadline);
        }
    }
    return deadline;
}

// Serial input goes to one domain, as `xl console` would attach to it: the first domain still
// running (Xen's console focus starts at the first domain too). Bytes it has not taken yet wait in
// serial_input, and in the UART; the timer's interrupts pick them up too, since the PIC's
// edge-triggered line does not rise again for bytes left in the UART.

// The domain with the input, moved on from one that stopped; nullptr when none runs.
hv::domain::Domain* input_focus() {
    hv::domain::Domain* focus = nullptr;
    for (DomainRun& run : domain_runs()) {
        hv::domain::Domain& domain = *run.domain;
        const bool chosen = focus == nullptr && live(run);
        domain.console_input = chosen ? &serial_input : nullptr;
        if (chosen)
            focus = &domain;
    }
    return focus;
}

void take_serial_input() {
    bool arrived = false;
    while (!serial_input.full()) {
        const auto byte = console.read_byte();
        if (!byte)
            break;
        arrived = serial_input.push(*byte) || arrived;
    }
    if (serial_input.empty())
        return;
    hv::domain::Domain* focus = input_focus();
    if (focus == nullptr)
        return;
    if (focus->console_ring)
        running.domains->service_console(*focus);
    else if (arrived)  // the initial domain reads it with CONSOLEIO_read when VIRQ_CONSOLE says so
        (void)running.domains->event_channels().send_virq(*focus->events, 0, pvkit::abi::VIRQ_CONSOLE);
}

std::string_view how_stopped(std::uint32_t reason) {
    switch (reason) {
    case pvkit::abi::SHUTDOWN_poweroff:
        return "powered off";
    case pvkit::abi::SHUTDOWN_reboot:
        return "rebooted";
    case pvkit::abi::SHUTDOWN_suspend:
        return "suspended";
    case pvkit::abi::SHUTDOWN_crash:
        return "crashed";
    default:
        return "shut down";
    }
}

// One line per domain: how it stopped, what became of it, and the CPU time its vCPUs' runstates
// counted.
void summarize(const DomainRun& run) {
    std::uint64_t running_ns = 0;
    for (const VcpuContext& context : run.vcpus)
        running_ns += context.calls.runstate.info.time[pvkit::abi::RUNSTATE_running];
    console.write("summary: ");
    console.write(run.domain->name());
    console.write(" (domain ");
    console.write_decimal(run.domain->id().value);
    console.write(", ");
    console.write_decimal(run.vcpus.size());
    console.write(run.vcpus.size() == 1 ? " vCPU): " : " vCPUs): ");
    console.write(how_stopped(run.shutdown_reason));
    console.write(run.preserved ? ", preserved, " : ", destroyed, ");
    console.write_decimal(running_ns / 1'000'000);
    console.write(" ms of CPU\n");
}

[[noreturn]] void finish() {
    bool all_powered_off = every_domain_built;
    for (const DomainRun& run : domain_runs())
        summarize(run);
    console.write("all domains have stopped: ");
    for (const DomainRun& run : domain_runs()) {
        const bool powered_off = run.powered_off;
        all_powered_off = all_powered_off && powered_off;
        console.write(&run == runs.data() ? "" : ", ");
        console.write(run.domain->name());
        console.write(powered_off ? " powered off" : " did not power off");
    }
    console.write("\n");
    const std::uint64_t free_now = running.domains->frames().free_frames();
    const bool any_preserved =
        std::any_of(runs.begin(), runs.begin() + run_count, [](const DomainRun& run) { return run.preserved; });
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
        set_runstate(!context.domain->vcpus[context.vcpu].online ? pvkit::abi::RUNSTATE_offline
                     : context.domain->runnable(context.vcpu)      ? pvkit::abi::RUNSTATE_runnable
                                                                   : pvkit::abi::RUNSTATE_blocked);
}

// `next` takes the CPU: its GDT, then the selectors that may name it, its segment bases, page
// tables, breakpoints and FPU state, and its registers into the entry frame.
void load_running(VcpuContext& next, GuestFrame& entry) {
    running.context = &next;
    running.domain = next.domain;
    running.handlers = &next.calls;
    load_guest_gdt(next.domain->storage.vcpu_memory[next.vcpu]);
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

hv::builder::DomainAction action_for(const DomainRun& run) {
    switch (run.domain->shutdown_reason) {
    case pvkit::abi::SHUTDOWN_poweroff:
        return run.actions.poweroff;
    case pvkit::abi::SHUTDOWN_reboot:
        return run.actions.reboot;
    case pvkit::abi::SHUTDOWN_crash:
        return run.actions.crash;
    default:
        return hv::builder::DomainAction::destroy;
    }
}

void start_vcpus(DomainRun& run, hv::domain::Domain& domain, const hv::builder::InitialRegisters& registers);

// The destroyed domain of `run` is built again as a new domain, which runs in its place.
void restart(DomainRun& run) {
    const hv::DomId id{next_domain_id++};
    console.write("(");
    console.write(run.domain->name());
    console.write(") restarting as domain ");
    console.write_decimal(id.value);
    console.write("\n");
    hv::builder::InitialRegisters registers{};
    hv::domain::Domain* domain = rebuild_domain(run.entry, id, registers);
    if (domain == nullptr)
        return;  // it stays destroyed, as it stopped
    for (VcpuContext& context : run.vcpus)
        context.~VcpuContext();
    run.reaped = run.powered_off = false;
    start_vcpus(run, *domain, registers);
}

// Domains that stopped give back their memory, ports, grants and store connection, a bounded
// amount of work per call (one that others' mappings of its grants hold waits for them), while
// the others go on. Never the page tables in the CPU: the caller loaded others.
void reap() {
    constexpr unsigned budget = 256;
    for (DomainRun& run : domain_runs()) {
        hv::domain::Domain& domain = *run.domain;
        if (run.reaped || domain.state == hv::domain::DomainState::running)
            continue;
        if (domain.state == hv::domain::DomainState::shutdown) {  // first seen stopped: how, and what now
            run.shutdown_reason = domain.shutdown_reason;
            for (VcpuContext& context : run.vcpus)  // its last turn counts (a crash ends one abruptly)
                hv::pv::change_runstate(context.calls.runstate, pvkit::abi::RUNSTATE_offline, clock::now_ns());
            run.powered_off = domain.shutdown_reason == pvkit::abi::SHUTDOWN_poweroff;
            run.action = action_for(run);
        }
        const hv::builder::DomainAction action = run.action;
        for (VcpuContext& context : run.vcpus)
            scheduler().remove(context.sched);
        if (action == hv::builder::DomainAction::preserve) {
            run.reaped = run.preserved = true;
            continue;
        }
        run.reaped = running.domains->destroy(domain, budget);
        if (run.reaped && action == hv::builder::DomainAction::restart)
            restart(run);
    }
}

bool teardown_unfinished() {
    return std::any_of(runs.begin(), runs.begin() + run_count,
                       [](const DomainRun& run) { return !run.reaped && !live(run); });
}

bool any_live() {
    return std::any_of(runs.begin(), runs.begin() + run_count, [](const DomainRun& run) { return live(run); });
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
                return std::all_of(runs.begin(), runs.begin() + run_count,
                                   [](const DomainRun& run) { return run.reaped; });
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

// A new vCPU's FPU state and timers: the FPU as a new vCPU has it, the periodic timer running.
void init_context(VcpuContext& context) {
    context.fpu = hv::pv::initial_fpu();
    context.calls.timers.next_period = clock::now_ns() + context.calls.timers.period;
}

// The contexts of `domain`'s vCPUs, in `run`'s storage: vCPU 0 runs from `registers`, the others
// are offline until VCPUOP_initialise and VCPUOP_up.
void start_vcpus(DomainRun& run, hv::domain::Domain& domain, const hv::builder::InitialRegisters& registers) {
    run.domain = &domain;
    for (std::uint32_t vcpu = 0; vcpu < run.vcpus.size(); ++vcpu) {
        VcpuContext& context = *new (&run.vcpus[vcpu]) VcpuContext{*running.domains, run, domain, vcpu};
        init_context(context);
        const std::int32_t state = vcpu == 0 ? pvkit::abi::RUNSTATE_runnable : pvkit::abi::RUNSTATE_offline;
        context.calls.runstate.info = {state, clock::now_ns(), {}};  // its times count from here
        scheduler().add(context.sched);
    }
    GuestFrame& frame = run.vcpus[0].frame;
    frame.rip = registers.rip;
    frame.rsp = registers.rsp;
    frame.rsi = registers.rsi;
    frame.cs = guest_cs64;
    frame.ss = guest_ss;
    frame.rflags = interrupts_enabled;
    (void)running.domains->unpause(domain);  // the platform's kick puts vCPU 0 in the run queue
}

// The run of `domain`; nullptr while it is being built (an event may reach it then).
DomainRun* run_of(const hv::domain::Domain& domain) {
    const auto found = std::find_if(runs.begin(), runs.begin() + run_count,
                                    [&](const DomainRun& run) { return run.domain == &domain; });
    return found == runs.begin() + run_count ? nullptr : &*found;
}

}  // namespace

bool live(const VcpuContext& context) { return live(*context.run); }

void DomainRun::start(std::uint32_t vcpu, const hv::pv::VcpuStart& start) {
    VcpuContext& context = vcpus[vcpu];
    store(start.registers, context.frame);
    context.fpu = start.fpu;
    context.calls.pv = start.pv;
    context.calls.bases = start.bases;
    context.selectors = {};
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

void on_serial_input_interrupt() {
    clock::acknowledge();
    take_serial_input();
}

void on_timer_interrupt() {
    clock::timer_interrupt_arrived();
    take_serial_input();
    const std::uint64_t now = clock::now_ns();
    for (DomainRun& run : domain_runs()) {
        if (!live(run))
            continue;
        for (VcpuContext& context : run.vcpus) {
            if (!timers_run(context))
                continue;
            HypervisorCalls& calls = context.calls;
            if (calls.timers.expire(now))
                (void)running.domains->event_channels().send_virq(*run.domain->events, context.vcpu,
                                                                  pvkit::abi::VIRQ_TIMER);
            if (calls.poll_deadline && *calls.poll_deadline <= now) {
                calls.poll_deadline.reset();
                running.domains->poll_timed_out(run.domain->id(), context.vcpu);
            }
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
    // A mode without page tables (libhv refuses to start one) gets the hypervisor's own, which map
    // nothing for ring 3: never the tables of whoever ran before.
    cpu::write_cr3(mode_root(running.handlers->pv.kernel_mode).value_or(idle_root));
}

void set_poll_deadline(std::uint64_t deadline_ns) {
    running.handlers->poll_deadline = deadline_ns;
    arm_timer();
}

void vcpu_woken(const hv::domain::Domain& domain, std::uint32_t vcpu) {
    if (DomainRun* run = run_of(domain))
        update_scheduler(run->vcpus[vcpu]);
}

void vcpu_yielded(const hv::domain::Domain& domain, std::uint32_t vcpu) {
    if (DomainRun* run = run_of(domain))
        scheduler().yield(run->vcpus[vcpu].sched, clock::now_ns());
}

void guest_gdt_changed(const hv::mm::VcpuMmu& vcpu) {
    if (running.context != nullptr && &running.domain->storage.vcpu_memory[running.context->vcpu] == &vcpu)
        load_guest_gdt(vcpu);
}

std::size_t guest_vcpu_size() { return sizeof(VcpuContext); }

void add_guest_domain(hv::domain::Domains& domains, hv::domain::Domain& domain,
                      const hv::builder::InitialRegisters& registers, std::byte* storage, std::size_t entry,
                      const StopActions& actions) {
    if (run_count == 0)
        new (scheduler_storage) hv::sched::Scheduler{};
    running.domains = &domains;
    DomainRun& run = runs[run_count++];
    run.vcpus = {reinterpret_cast<VcpuContext*>(storage), domain.vcpu_count()};
    run.entry = entry;
    run.actions = actions;
    next_domain_id = std::max<std::uint16_t>(next_domain_id, domain.id().value + 1);
    start_vcpus(run, domain, registers);
}

void run_domains(bool all_built, std::uint64_t free_frames_before,
                 RebuildDomain rebuild) {
    rebuild_domain = rebuild;
    every_domain_built = all_built;
    heap_before_domains = free_frames_before;
    idle_root = cpu::read_cr3() & frame_mask;
    (void)input_focus();
    console.enable_input_interrupt();
    run_next();
}

}  // namespace hypervisor

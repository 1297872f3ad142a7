// SPDX-License-Identifier: BSD-2-Clause
// What guest_run.cpp (the running vCPU: its hypercalls, traps and way back) and guest_schedule.cpp
// (which vCPU runs, the context switch, stopped domains) share inside the reference hypervisor.
#pragma once

#include <hv/domain_hypercalls.hpp>
#include <hv/pv_emulate.hpp>
#include <hv/pv_segments.hpp>
#include <hv/pv_timers.hpp>
#include <hv/pv_traps.hpp>
#include <hv/pv_vcpu_op.hpp>
#include <hv/sched.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "guest_frame.hpp"
#include "guest_run.hpp"
#include "serial.hpp"

namespace hypervisor {

inline constexpr Serial console{Serial::com1};
inline constexpr std::uint64_t frame_mask = 0x000F'FFFF'FFFF'F000;

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

struct DomainRun;

// Serial input not yet taken by the domain it goes to: its console ring's, or what the initial
// domain reads with CONSOLEIO_read.
extern hv::console::ConsoleInput serial_input;

// One vCPU of a domain: what the trap layer keeps of it, and its registers, FPU state and data
// selectors while another vCPU has the CPU. Cache-line aligned, so that a domain's contexts lie
// in an array.
struct alignas(64) VcpuContext {
    VcpuContext(hv::domain::Domains& domains, DomainRun& owner, hv::domain::Domain& domain, std::uint32_t id)
        : calls{domains, {}, &serial_input}, run{&owner}, domain{&domain}, vcpu{id}, sched{domain.id(), id} {}

    HypervisorCalls calls;
    DomainRun* run;
    hv::domain::Domain* domain;
    std::uint32_t vcpu;
    GuestFrame frame{};
    alignas(16) std::array<std::byte, 512> fpu{};  // FXSAVE format
    hv::pv::DataSelectors selectors{};
    hv::sched::SchedVcpu sched;
};

// A domain that runs here: its vCPUs' contexts, which vcpu_op reaches (VcpuStates), and what
// became of it once it stopped.
struct DomainRun final : hv::pv::VcpuStates {
    hv::pv::VcpuTimers& timers(std::uint32_t vcpu) override { return vcpus[vcpu].calls.timers; }
    hv::pv::Runstate& runstate(std::uint32_t vcpu) override { return vcpus[vcpu].calls.runstate; }
    void start(std::uint32_t vcpu, const hv::pv::VcpuStart& start) override;

    hv::domain::Domain* domain = nullptr;
    std::span<VcpuContext> vcpus;
    bool reaped = false;       // it stopped and was destroyed (or preserved)
    std::uint32_t shutdown_reason = 0;  // how it stopped (SHUTDOWN_*), kept past its destruction
    bool powered_off = false;
    bool preserved = false;    // kept as it stopped (on_crash = "preserve" ...)
    std::size_t entry = 0;     // its bundle entry, to build it again
    StopActions actions{};
    hv::builder::DomainAction action = hv::builder::DomainAction::destroy;  // the one its stop chose
};

// The vCPU on the CPU, its domain and its handlers.
struct Running {
    hv::domain::Domains* domains = nullptr;
    hv::domain::Domain* domain = nullptr;
    HypervisorCalls* handlers = nullptr;
    VcpuContext* context = nullptr;
};
extern Running running;
// ---- guest_run.cpp: the running vCPU ----
// The page tables of the running guest kernel (`kernel`) or of its user mode, if it has set them.
std::optional<std::uint64_t> mode_root(bool kernel);
// A frame's registers, for libhv's trap layer, and back.
hv::pv::GuestRegisters registers_of(const GuestFrame& frame);
void store(const hv::pv::GuestRegisters& registers, GuestFrame& frame);
// The running vCPU's segment bases into the CPU.
void load_segment_bases();
// The guest's data segment selectors, as the CPU holds them.
hv::pv::DataSelectors data_selectors();
// The CPU's CR0.TS is clear (the FPU state is saved or loaded).
void clear_task_switched();
// The running vCPU's runstate changes, and the guest's copy follows.
void set_runstate(std::int32_t state);
// On every way back to the guest: a pending event, the guest's TS, the registers checked.
void deliver_pending_event(GuestFrame& frame);

// ---- guest_schedule.cpp: which vCPU runs ----
bool live(const VcpuContext& context);
// The PIT is armed for the next timer, and for the end of the running vCPU's turn.
void arm_timer();
void on_timer_interrupt();
void on_serial_input_interrupt();
// The way back to the guest after any entry: the running vCPU goes on, or another takes the CPU.
void return_to_guest(GuestFrame& frame);
// Another vCPU runs (the running one stopped, or the CPU idles until one can).
[[noreturn]] void run_next();

}  // namespace hypervisor

// vcpu_op for 64-bit PV vCPUs: the single-shot and periodic timers, the runstate (time spent
// running, runnable, blocked and offline) and the area the guest reads it from, vcpu_info
// placement, and is_up. Bringing vCPUs up and down (initialise, up, down) comes with scheduling.
#pragma once

#include <cstdint>
#include <optional>

#include <hv/domain.hpp>
#include <hv/guest_memory.hpp>
#include <hv/pv_timers.hpp>

namespace hv::pv {

// A vCPU's runstate as Xen keeps it: the current state since `state_entry_time` and the total
// time spent in each state before, in system time.
struct Runstate {
    abi::vcpu_runstate_info info{abi::RUNSTATE_running, 0, {}};
    std::optional<std::uint64_t> area;  // VCPUOP_register_runstate_memory_area: a guest address
};

// The vCPU enters `state` at `now`: the time since its last change goes to the old state.
void change_runstate(Runstate& runstate, std::int32_t state, std::uint64_t now);
// Writes the runstate to the guest's area, if it registered one, through `memory` (the guest
// kernel's view). With `domain`'s VMASST_TYPE_runstate_update_flag on, XEN_RUNSTATE_UPDATE is set
// in the area's state_entry_time while the rest changes, so that a reader can tell a torn copy.
void publish_runstate(const Runstate& runstate, GuestMemory& memory, const domain::Domain& domain);

// What vcpu_op acts on: the calling vCPU of `domain`, its timers and runstate.
struct VcpuOpCaller {
    domain::Domains& domains;
    domain::Domain& domain;
    std::uint32_t vcpu;
    GuestMemory& memory;  // the guest kernel's view
    VcpuTimers& timers;
    Runstate& runstate;
    std::uint64_t now;    // system time
};

// vcpu_op(cmd, vcpuid, arg), as Xen:
// - is_up: 1 or 0; enoent for a vCPU the domain does not have.
// - set_periodic_timer (einval under 1 ms), stop_periodic_timer.
// - set_singleshot_timer (etime for a past deadline with VCPU_SSHOTTMR_future), stop_singleshot_timer:
//   the calling vCPU's own only (einval otherwise).
// - register_runstate_memory_area (efault for an address the guest may not name; the runstate is
//   written there at once), get_runstate_info.
// - register_vcpu_info (Domains::register_vcpu_info).
// Timers and the runstate area are kept for the calling vCPU only: vcpuid must name it for them
// (einval), until the domain has more than one vCPU running. Other commands: enosys.
long vcpu_op(VcpuOpCaller& caller, const hypercall_args::vcpu_op& args);

}  // namespace hv::pv

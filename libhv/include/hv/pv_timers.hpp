// The timers of a PV vCPU, in system time (nanoseconds since the hypervisor booted): the
// single-shot timer of set_timer_op and VCPUOP_set_singleshot_timer, and the periodic timer a PV
// vCPU starts with (10 ms, as Xen). Both raise VIRQ_TIMER when they expire; the platform programs
// its hardware timer for next_deadline() and calls expire() when it fires.
#pragma once

#include <cstdint>
#include <optional>

#include <hv/hypercall_dispatch.hpp>

namespace hv::pv {

inline constexpr std::uint64_t default_periodic_ns = 10'000'000;

struct VcpuTimers {
    std::optional<std::uint64_t> singleshot;                 // its deadline, if armed
    std::uint64_t period = default_periodic_ns;              // 0: the periodic timer is stopped
    std::uint64_t next_period = default_periodic_ns;         // the periodic timer's next deadline

    // The earliest deadline of an armed timer.
    std::optional<std::uint64_t> next_deadline() const;
    // Whether a timer expired by `now` (then VIRQ_TIMER is due): a single-shot timer disarms, the
    // periodic one moves to its next period after `now`.
    bool expire(std::uint64_t now);
};

// set_timer_op(timeout): 0 cancels the single-shot timer; otherwise it is armed for `timeout`
// (system time). A deadline already past (or negative) expires at the next check, and one more
// than 2^50 ns (about 13 days) away is taken as a guest's miscomputation and set 100 ms ahead,
// as Xen does.
long set_timer_op(VcpuTimers& timers, std::uint64_t now, const hypercall_args::set_timer_op& args);

}  // namespace hv::pv

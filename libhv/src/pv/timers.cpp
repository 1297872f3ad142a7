// vCPU timers (see hv/pv_timers.hpp).
#include <hv/pv_timers.hpp>

namespace hv::pv {

std::optional<std::uint64_t> VcpuTimers::next_deadline() const {
    std::optional<std::uint64_t> earliest = singleshot;
    if (period != 0 && (!earliest || next_period < *earliest))
        earliest = next_period;
    return earliest;
}

bool VcpuTimers::expire(std::uint64_t now) {
    bool fired = false;
    if (singleshot && *singleshot <= now) {
        singleshot.reset();
        fired = true;
    }
    if (period != 0 && next_period <= now) {
        // Periods missed while nothing ran are not made up for: one event, then the next period.
        next_period += ((now - next_period) / period + 1) * period;
        fired = true;
    }
    return fired;
}

long set_timer_op(VcpuTimers& timers, std::uint64_t now, const hypercall_args::set_timer_op& args) {
    if (args.timeout == 0) {
        timers.singleshot.reset();
        return 0;
    }
    // Xen's workaround for guests whose deadlines wrapped: one more than 2^50 ns ahead fires in
    // 100 ms; one in the past (a negative timeout included) at once.
    constexpr std::uint64_t too_far = std::uint64_t{1} << 50;
    constexpr std::uint64_t instead = 100'000'000;
    if (args.timeout < 0 || static_cast<std::uint64_t>(args.timeout) <= now)
        timers.singleshot = now;
    else if (static_cast<std::uint64_t>(args.timeout) - now > too_far)
        timers.singleshot = now + instead;
    else
        timers.singleshot = static_cast<std::uint64_t>(args.timeout);
    return 0;
}

}  // namespace hv::pv

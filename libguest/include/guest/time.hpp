// Time: the pvclock, the wall clock, sleeping and one-shot timers.
//
// System time is nanoseconds since the domain's vCPU clock started, read from the vcpu_time_info
// the hypervisor keeps in vcpu_info: system_time at tsc_timestamp, advancing with the TSC by
// ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul / 2^32 (a negative shift shifts right).
// The hypervisor updates the record by making `version` odd, writing, then making it even again, so
// a reader copies the fields between two reads of `version` and retries while it was odd or changed.
// The wall clock is shared_info's wc_sec/wc_nsec (versioned the same way, wc_version): the wall time
// at system time 0, so now = wall clock + system time.
//
// Sleeping programs the one-shot timer (set_timer_op) and blocks (SCHEDOP_block, which unmasks
// events atomically): VIRQ_TIMER wakes the vCPU. Timers are a queue of caller-owned records, run
// from the VIRQ_TIMER handler (in the upcall, so they must be short); sleeping and timers share the
// one hardware timer, always programmed to the earliest of both.
#pragma once

#include <pvkit/abi.hpp>

#include <cstdint>

namespace pvkit::guest {

// Nanoseconds `tsc_delta` ticks take at this scale (the multiplication is 64x32 -> 96 bits).
constexpr std::uint64_t pvclock_scale(std::uint64_t tsc_delta, std::uint32_t mul, std::int8_t shift) {
    if (shift >= 0)
        tsc_delta <<= shift;
    else
        tsc_delta >>= -shift;
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(tsc_delta) * mul) >> 32);
}

// A consistent copy of a vcpu_time_info that the hypervisor may be rewriting meanwhile.
abi::vcpu_time_info read_time_info(const volatile abi::vcpu_time_info& shared);
// System time at TSC value `tsc` from a consistent copy. A TSC before the record's timestamp (a
// vCPU moved to a CPU a little behind) counts as the timestamp: time never goes before it.
std::uint64_t system_time_at(const abi::vcpu_time_info& info, std::uint64_t tsc);

struct WallClock {
    std::uint64_t seconds;
    std::uint32_t nanoseconds;
};
// The wall clock at system time `system_ns`, from shared_info's versioned wc_* fields.
WallClock wall_clock_at(const volatile abi::shared_info& shared, std::uint64_t system_ns);

// A one-shot timer: caller-owned, linked into the queue while armed.
struct Timer {
    using Callback = void (*)(Timer* timer, void* context);  // a pointer: C's pvk_timer shares the layout
    std::uint64_t deadline_ns = 0;
    Callback callback = nullptr;
    void* context = nullptr;
    Timer* next = nullptr;
    bool armed = false;
};

// Armed timers in deadline order (a sorted singly-linked list: few timers, no allocation).
class TimerQueue {
public:
    // Arms (or re-arms, moving it) `timer` for `deadline_ns`.
    void arm(Timer& timer, std::uint64_t deadline_ns, Timer::Callback callback, void* context);
    // Takes `timer` out of the queue; whether it was armed.
    bool cancel(Timer& timer);
    // Runs, in deadline order, every timer due at `now_ns` (each taken out before its callback,
    // which may re-arm it); how many ran.
    unsigned run_expired(std::uint64_t now_ns);
    // The earliest deadline, or 0 when no timer is armed.
    std::uint64_t next_deadline() const { return head_ != nullptr ? head_->deadline_ns : 0; }

private:
    Timer* head_ = nullptr;
};

// Runtime (images only): the pvclock of vCPU 0's vcpu_info in the mapped shared_info.
std::uint64_t monotonic_ns();
WallClock wall_clock();
// Blocks until system time `deadline_ns` has passed (it blocks again after a wake-up that came
// early); timers due meanwhile run. Sets up events (evtchn.hpp) on first use.
void block_until(std::uint64_t deadline_ns);
void sleep_ns(std::uint64_t duration_ns);
// One-shot timers on the runtime's queue, run from the VIRQ_TIMER handler. timer_start: false
// when VIRQ_TIMER cannot be bound (a kernel that bound it itself: see set_tick_handler).
[[nodiscard]] bool timer_start(Timer& timer, std::uint64_t deadline_ns, Timer::Callback callback, void* context);
bool timer_stop(Timer& timer);

// A kernel's own tick on VIRQ_TIMER, which can be bound once per vCPU: the runtime binds it (for
// sleeping and timers too) and calls `handler(context)` from the upcall on every VIRQ_TIMER event
// (the periodic timer's and the one-shot timer's), before the timers due run. A null handler
// stops the calls. Returns VIRQ_TIMER's port, or the negative Xen errno of binding it.
using TickHandler = void (*)(void* context);
long set_tick_handler(TickHandler handler, void* context);

}  // namespace pvkit::guest

// Time at run time (guest/time.hpp): the pvclock of vCPU 0, the wall clock, sleeping through
// set_timer_op and SCHEDOP_block, one-shot timers run from VIRQ_TIMER; the C API of pvkit/time.h.
#include <guest/evtchn.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

#include <cstddef>

namespace pvkit::guest {

namespace {
TimerQueue timers;
long timer_port = -1;  // VIRQ_TIMER's port once bound
TickHandler tick_handler = nullptr;  // the kernel's, called on every VIRQ_TIMER
void* tick_context = nullptr;

std::uint64_t read_tsc() {
    std::uint32_t low = 0, high = 0;
    __asm__ volatile("rdtsc" : "=a"(low), "=d"(high));
    return (static_cast<std::uint64_t>(high) << 32) | low;
}

// The one-shot timer at the earliest of `deadline_ns` (0: none) and the queue's first timer.
void program_timer(std::uint64_t deadline_ns) {
    const std::uint64_t queued = timers.next_deadline();
    if (queued != 0 && (deadline_ns == 0 || queued < deadline_ns))
        deadline_ns = queued;
    (void)hypercall::set_timer_op(static_cast<std::int64_t>(deadline_ns));
}

void on_timer_virq(EventPort, void*) {
    if (tick_handler != nullptr)
        tick_handler(tick_context);
    timers.run_expired(monotonic_ns());
    program_timer(0);  // a sleeper reprograms its own deadline before it blocks again
}

// VIRQ_TIMER bound to the runtime's handler: its port, or the negative Xen errno of binding it
// (-EEXIST when the kernel bound VIRQ_TIMER itself: set_tick_handler is the way to share it).
long timer_virq() {
    if (timer_port >= 0)
        return timer_port;
    const long port = bind_virq(abi::VIRQ_TIMER);
    if (port < 0)
        return port;
    if (set_handler(static_cast<EventPort>(port), on_timer_virq, nullptr) != EventError::none) {
        (void)close_port(static_cast<EventPort>(port));
        return -static_cast<long>(abi::Errc::einval);
    }
    timer_port = port;
    return port;
}
bool timer_virq_ready() { return timer_virq() >= 0; }
}  // namespace

std::uint64_t monotonic_ns() {
    const abi::vcpu_time_info info = read_time_info(shared_info().vcpu_info[0].time);
    return system_time_at(info, read_tsc());
}

WallClock wall_clock() { return wall_clock_at(shared_info(), monotonic_ns()); }

void block_until(std::uint64_t deadline_ns) {
    if (!timer_virq_ready()) {  // no events: give the CPU away until the clock says so
        while (monotonic_ns() < deadline_ns)
            (void)hypercall::schedop_yield();
        return;
    }
    for (;;) {
        const bool were_masked = events_disable();
        if (monotonic_ns() >= deadline_ns) {
            events_restore(were_masked);
            return;
        }
        program_timer(deadline_ns);
        // Unmasks events atomically and returns once one is pending; its upcall runs on the way out.
        (void)hypercall::schedop_block();
        events_restore(were_masked);
    }
}

void sleep_ns(std::uint64_t duration_ns) { block_until(monotonic_ns() + duration_ns); }

bool timer_start(Timer& timer, std::uint64_t deadline_ns, Timer::Callback callback, void* context) {
    if (!timer_virq_ready())
        return false;
    const bool were_masked = events_disable();  // the VIRQ handler walks the same queue
    timers.arm(timer, deadline_ns, callback, context);
    program_timer(0);
    events_restore(were_masked);
    return true;
}

long set_tick_handler(TickHandler handler, void* context) {
    if (const long port = timer_virq(); port < 0)
        return port;
    const bool were_masked = events_disable();  // not half set when the upcall comes
    tick_handler = handler;
    tick_context = context;
    events_restore(were_masked);
    return timer_port;
}

bool timer_stop(Timer& timer) {
    const bool were_masked = events_disable();
    const bool was_armed = timers.cancel(timer);
    events_restore(were_masked);
    return was_armed;
}

}  // namespace pvkit::guest

using namespace pvkit::guest;

extern "C" {
uint64_t pvk_monotonic_ns(void) { return monotonic_ns(); }
void pvk_wall_clock(uint64_t* seconds, uint32_t* nanoseconds) {
    const WallClock now = wall_clock();
    *seconds = now.seconds;
    *nanoseconds = now.nanoseconds;
}
void pvk_block_until(uint64_t deadline_ns) { block_until(deadline_ns); }
void pvk_sleep_ns(uint64_t duration_ns) { sleep_ns(duration_ns); }

static_assert(sizeof(pvk_timer) == sizeof(Timer) && offsetof(pvk_timer, deadline_ns) == offsetof(Timer, deadline_ns) &&
              offsetof(pvk_timer, callback) == offsetof(Timer, callback) &&
              offsetof(pvk_timer, context) == offsetof(Timer, context) && offsetof(pvk_timer, next) == offsetof(Timer, next) &&
              offsetof(pvk_timer, armed) == offsetof(Timer, armed));
int pvk_timer_start(struct pvk_timer* timer, uint64_t deadline_ns, pvk_timer_callback callback, void* context) {
    return timer_start(*reinterpret_cast<Timer*>(timer), deadline_ns, reinterpret_cast<Timer::Callback>(callback),
                       context)
               ? 0
               : -1;
}
long pvk_timer_set_tick(pvk_tick_handler handler, void* context) { return set_tick_handler(handler, context); }
int pvk_timer_stop(struct pvk_timer* timer) { return timer_stop(*reinterpret_cast<Timer*>(timer)) ? 1 : 0; }
}

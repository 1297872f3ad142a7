// The pvclock and wall-clock arithmetic and the timer queue of guest/time.hpp: no hypercalls, so
// the host tests run them over records they write.
#include <guest/time.hpp>

namespace pvkit::guest {

namespace {
// Keeps the compiler from moving the field reads across the version reads.
inline void compiler_barrier() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
}  // namespace

abi::vcpu_time_info read_time_info(const volatile abi::vcpu_time_info& shared) {
    abi::vcpu_time_info copy{};
    std::uint32_t version = 0;
    do {
        version = shared.version;
        compiler_barrier();
        copy.tsc_timestamp = shared.tsc_timestamp;
        copy.system_time = shared.system_time;
        copy.tsc_to_system_mul = shared.tsc_to_system_mul;
        copy.tsc_shift = shared.tsc_shift;
        copy.flags = shared.flags;
        compiler_barrier();
    } while ((version & 1) != 0 || version != shared.version);
    copy.version = version;
    return copy;
}

std::uint64_t system_time_at(const abi::vcpu_time_info& info, std::uint64_t tsc) {
    const std::uint64_t delta = tsc > info.tsc_timestamp ? tsc - info.tsc_timestamp : 0;
    return info.system_time + pvclock_scale(delta, info.tsc_to_system_mul, info.tsc_shift);
}

WallClock wall_clock_at(const volatile abi::shared_info& shared, std::uint64_t system_ns) {
    std::uint32_t version = 0;
    std::uint64_t seconds = 0;
    std::uint32_t nanoseconds = 0;
    do {
        version = shared.wc_version;
        compiler_barrier();
        seconds = (static_cast<std::uint64_t>(shared.wc_sec_hi) << 32) | shared.wc_sec;
        nanoseconds = shared.wc_nsec;
        compiler_barrier();
    } while ((version & 1) != 0 || version != shared.wc_version);
    const std::uint64_t total_ns = nanoseconds + system_ns % 1000000000u;
    return {seconds + system_ns / 1000000000u + total_ns / 1000000000u,
            static_cast<std::uint32_t>(total_ns % 1000000000u)};
}

void TimerQueue::arm(Timer& timer, std::uint64_t deadline_ns, Timer::Callback callback, void* context) {
    cancel(timer);
    timer.deadline_ns = deadline_ns;
    timer.callback = callback;
    timer.context = context;
    Timer** link = &head_;
    while (*link != nullptr && (*link)->deadline_ns <= deadline_ns)  // equal deadlines: first armed runs first
        link = &(*link)->next;
    timer.next = *link;
    *link = &timer;
    timer.armed = true;
}

bool TimerQueue::cancel(Timer& timer) {
    if (!timer.armed)
        return false;
    for (Timer** link = &head_; *link != nullptr; link = &(*link)->next) {
        if (*link == &timer) {
            *link = timer.next;
            break;
        }
    }
    timer.next = nullptr;
    timer.armed = false;
    return true;
}

unsigned TimerQueue::run_expired(std::uint64_t now_ns) {
    unsigned ran = 0;
    while (head_ != nullptr && head_->deadline_ns <= now_ns) {
        Timer& timer = *head_;
        head_ = timer.next;
        timer.next = nullptr;
        timer.armed = false;
        if (timer.callback != nullptr)
            timer.callback(&timer, timer.context);
        ++ran;
    }
    return ran;
}

}  // namespace pvkit::guest

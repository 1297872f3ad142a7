// The scheduler of one physical CPU: which of the vCPUs given to it runs, and until when.
//
// It knows a vCPU only as a SchedVcpu the platform embeds in its own per-vCPU context (a domain id
// and a vCPU number, for reports); the platform does the context switch, owns the timer and says
// what time it is. Round robin by slice, with Xen credit's boost for vCPUs woken from blocking so
// that event-channel round trips do not wait out whole slices. The policy, its invariants and its
// answers to misuse are written at the top of libhv/src/sched/scheduler.cpp and in docs/sched.md;
// check_invariants() checks them.
//
// Time is system time in nanoseconds, the same clock for every call. All operations are O(1) and
// serialized by the caller (one CPU's lock, or interrupts off).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include <boost/intrusive/list.hpp>

#include <hv/core.hpp>

namespace hv::sched {

inline constexpr std::uint64_t default_slice_ns = 10'000'000;   // as Xen credit's tslice
inline constexpr std::uint64_t default_min_run_ns = 1'000'000;  // as Xen's sched_ratelimit_us
inline constexpr std::uint64_t no_deadline = std::numeric_limits<std::uint64_t>::max();

enum class VcpuState : std::uint8_t {
    offline,   // in no scheduler: never added, or removed
    blocked,   // added but not runnable: new, SCHEDOP_block/poll, paused, shut down
    runnable,  // waiting in a run queue
    running,   // the scheduler's current vCPU
};

using RunLink = boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;

// One vCPU as the scheduler sees it. The platform sets `domain` and `vcpu` and reads the rest
// through the accessors; everything else belongs to the Scheduler it is added to. remove() it
// before its storage goes or is reused. Not copyable: a copy would be a second vCPU sharing the
// first one's queue position.
struct SchedVcpu {
    SchedVcpu() = default;
    SchedVcpu(DomId domain_id, std::uint32_t vcpu_id) : domain{domain_id}, vcpu{vcpu_id} {}
    SchedVcpu(const SchedVcpu&) = delete;
    SchedVcpu& operator=(const SchedVcpu&) = delete;

    DomId domain{0};
    std::uint32_t vcpu = 0;

    VcpuState state() const { return state_; }
    // Nanoseconds it held the CPU, for runstate and reports. Kept after remove().
    std::uint64_t runtime_ns() const { return runtime_ns_; }
    // Whether it was woken from blocking and has not yet used up the slice it was woken with.
    bool boosted() const { return boosted_; }
    // What is left of its slice. It grows only at the tail of the normal queue (a new slice) and
    // by the sleep credit of a wake (wake()).
    std::uint64_t slice_left_ns() const { return slice_left_ns_; }

private:
    friend class Scheduler;
    friend class InvariantChecker;

    RunLink run_link_;     // in boosted_ or normal_ while runnable
    RunLink member_link_;  // in members_ while added
    const class Scheduler* owner_ = nullptr;
    VcpuState state_ = VcpuState::offline;
    bool boosted_ = false;
    std::uint64_t slice_left_ns_ = 0;
    std::uint64_t runtime_ns_ = 0;
    std::uint64_t blocked_at_ns_ = never_blocked;  // when it last blocked, for the sleep credit

    static constexpr std::uint64_t never_blocked = std::numeric_limits<std::uint64_t>::max();
};

// Who runs now, and the time by which schedule() must be called again (program the timer for it).
struct Decision {
    SchedVcpu* next;             // nullptr: idle until an interrupt wakes someone
    std::uint64_t slice_end_ns;  // no_deadline when idle
};

// The first broken invariant check_invariants() found.
struct InvariantViolation {
    const char* what;
    DomId domain;        // of the vCPU concerned, 0 when none
    std::uint32_t vcpu;  // of the vCPU concerned, 0 when none
};

class Scheduler {
public:
    // A slice of 0 is taken as 1 ns; a min_run longer than the slice as the slice.
    explicit Scheduler(std::uint64_t slice_ns = default_slice_ns, std::uint64_t min_run_ns = default_min_run_ns);
    // Removes every vCPU still in it, so that none is left pointing at a scheduler that is gone.
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Takes the vCPU in, blocked (wake() makes it runnable), with its runtime reset and no slice
    // yet: its first wake queues it at the normal tail with a slice, not boosted. No-op for a vCPU
    // already in this or another scheduler.
    void add(SchedVcpu& vcpu);
    // Takes the vCPU out from any state (its domain is destroyed); it ends offline. If it was the
    // current vCPU, there is none until the next schedule(), and it is charged up to the latest
    // time the scheduler was given (block() it first to charge it up to now). No-op for a vCPU
    // not in this scheduler.
    void remove(SchedVcpu& vcpu);
    // blocked -> runnable. It earns its share of the time it slept (the sleep divided by the
    // vCPUs that want the CPU, itself included) up to a whole slice; then it is queued boosted if
    // it has some slice left, else (also when new) at the tail of the normal queue with a new
    // one. No-op when runnable or running, or not in this scheduler. Call schedule() before
    // returning to a guest: a waiting boosted vCPU may preempt the current.
    void wake(SchedVcpu& vcpu, std::uint64_t now);
    // runnable/running -> blocked (SCHEDOP_block, poll, pause, shutdown). The current vCPU is
    // charged up to `now` and there is no current until schedule(). It keeps what is left of its
    // slice. No-op when blocked, or not in this scheduler.
    void block(SchedVcpu& vcpu, std::uint64_t now);
    // SCHEDOP_yield by the current vCPU: charged up to `now`, it loses its boost and goes to the
    // tail of the normal queue, behind every runnable vCPU; no current until schedule(). No-op for
    // a vCPU that is not the current one (only a running vCPU can make the hypercall).
    void yield(SchedVcpu& vcpu, std::uint64_t now);

    // A scheduling point (timer interrupt; return to a guest after anything that may have woken,
    // blocked or yielded a vCPU). Charges the current vCPU for the time since it was last
    // charged, and returns who runs now and until when. The current keeps the CPU until its slice
    // is used up, unless it is not boosted, a boosted vCPU waits and it has run min_run since it
    // was picked: then it is preempted and waits at the head of the normal queue with the rest of
    // its slice. Otherwise the head of the boosted queue runs, else the head of the normal queue.
    Decision schedule(std::uint64_t now);

    SchedVcpu* current() const { return current_; }
    // Whether the vCPU wants the CPU: queued or running in this scheduler.
    bool runnable(const SchedVcpu& vcpu) const;
    // How many vCPUs want the CPU: the queued ones and the current one.
    std::size_t runnable_count() const { return boosted_.size() + normal_.size() + (current_ ? 1 : 0); }
    std::size_t vcpu_count() const { return members_.size(); }
    bool contains(const SchedVcpu& vcpu) const { return vcpu.owner_ == this; }

    std::uint64_t slice_ns() const { return slice_ns_; }
    std::uint64_t min_run_ns() const { return min_run_ns_; }
    // The latest time it was given (earlier times are clamped to it).
    std::uint64_t now() const { return now_; }
    // Nanoseconds with no current vCPU, from the first call that gave a time.
    std::uint64_t idle_ns() const { return idle_ns_; }

    // The invariant checker (invariants.cpp): the first broken invariant, if any.
    std::optional<InvariantViolation> check_invariants() const;

private:
    friend class InvariantChecker;
    using RunQueue = boost::intrusive::list<
        SchedVcpu, boost::intrusive::member_hook<SchedVcpu, RunLink, &SchedVcpu::run_link_>,
        boost::intrusive::constant_time_size<true>>;
    using Members = boost::intrusive::list<
        SchedVcpu, boost::intrusive::member_hook<SchedVcpu, RunLink, &SchedVcpu::member_link_>,
        boost::intrusive::constant_time_size<true>>;

    std::uint64_t advance(std::uint64_t now);
    void charge_current(std::uint64_t now);
    void detach_current();
    // Takes `vcpu` off the CPU (charged up to `now`) or out of its run queue; false when it was
    // in neither (blocked).
    bool take_off(SchedVcpu& vcpu, std::uint64_t now);
    void queue_normal_tail(SchedVcpu& vcpu);
    void queue_normal_head(SchedVcpu& vcpu);
    std::uint64_t deadline() const;

    std::uint64_t slice_ns_;
    std::uint64_t min_run_ns_;
    RunQueue boosted_;  // woken from blocking, FIFO
    RunQueue normal_;   // everyone else, round robin
    Members members_;   // every vCPU added
    SchedVcpu* current_ = nullptr;
    std::uint64_t picked_at_ = 0;   // when current_ was picked: min_run counts from here
    std::uint64_t charged_at_ = 0;  // current_'s runtime is charged up to here
    std::uint64_t now_ = 0;
    bool clock_started_ = false;
    std::uint64_t idle_ns_ = 0;
};

}  // namespace hv::sched

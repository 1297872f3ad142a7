// The scheduler of one CPU (see hv/sched.hpp).
//
// Policy. Every vCPU has a slice budget, `slice_left_ns`. The normal queue is a round robin: a
// vCPU that uses up its budget goes to the tail with a new one. A vCPU woken from blocking with
// budget left is *boosted*: it waits in the boosted queue, which runs before the normal one, and a
// boosted vCPU preempts a non-boosted current that has run at least min_run since it was picked
// (so that an event-channel round trip costs microseconds, not slices, while context switches stay
// at most one per min_run). The boost spends the vCPU's budget, nothing more: it ends when the
// budget is used up, and a new budget is given only at the tail of the normal queue (also to a
// vCPU woken with none left, and to a new vCPU, which is added with none).
//
// Sleep credit. Waking, a vCPU earns back its share of the time it slept: the sleep divided by the
// number of vCPUs that want the CPU, itself included, up to a full budget. Without it a vCPU that
// needs a little CPU often (10% in 50 us bursts) would drain its budget, lose the boost and wait a
// round behind the CPU-bound ones every 10 ms of its CPU; with it, it keeps the boost as long as
// it uses less than its share. A vCPU that uses more (blocks for 0.1 ms after each 9.9 ms) earns
// next to nothing and waits its turn like a CPU-bound one.
//
// Fairness. A vCPU that stays runnable, from the moment it joins the normal tail until its budget
// is used up, lets every other vCPU use at most one budget plus what it earned sleeping meanwhile,
// which is its share of that time: CPU-bound vCPUs share the CPU equally to within a slice, and
// one that blocks often gains latency but no more than its share. A preempted vCPU waits at the
// head of the normal queue with the rest of its budget, so preemption costs it neither its place
// nor its share. A yield gives up the boost and goes to the tail of the normal queue (keeping what
// is left of the budget), behind every vCPU runnable at that time. The shares are per vCPU (as
// Xen credit's are per active vCPU): two vCPUs ping-ponging events, one of them always runnable,
// are owed two thirds beside one CPU-bound vCPU, not a half.
//
// Invariants (check_invariants() in invariants.cpp checks every one):
// 1. A vCPU is in this scheduler (owner_ == this) iff it is in members_; its state is then
//    blocked, runnable or running, and offline otherwise.
// 2. running iff it is current_; current_ is in no run queue.
// 3. runnable iff it is in exactly one run queue: boosted_ iff boosted_ is set. A vCPU has one
//    run hook, so it cannot be in two queues at once; the checker walks both queues (no further
//    than members_.size() steps) and matches every entry against its state and flag.
// 4. blocked: in no run queue and not current_; offline: no hook linked.
// 5. Every queued vCPU has budget left (0 < slice_left_ns <= slice_ns): an exhausted one gets a
//    new budget as it joins the normal tail. The current's budget is at most slice_ns and may be
//    0 between its last charge and the schedule() that requeues it.
// 6. runnable_count() is the number of runnable and running vCPUs; idle_ns grows only while there
//    is no current_. charged_at_ and picked_at_ are at most now_, picked_at_ <= charged_at_.
//
// Misuse. The platform's mistakes change nothing and corrupt nothing; no guest action reaches an
// assertion. Each one is a no-op: add of a vCPU already in a scheduler (this or another); remove,
// wake, block or yield of one not in this scheduler; wake of a runnable or running vCPU; block of a
// blocked one; yield of one that is not current. A time earlier than the latest given is taken as
// the latest (time never goes backwards here, so no charge is negative); late scheduling points
// charge the current for all the time it held the CPU, which is not paid back to the others.
#include <hv/sched.hpp>

namespace hv::sched {

Scheduler::Scheduler(std::uint64_t slice_ns, std::uint64_t min_run_ns)
    : slice_ns_{slice_ns == 0 ? 1 : slice_ns}, min_run_ns_{min_run_ns < slice_ns_ ? min_run_ns : slice_ns_} {}

Scheduler::~Scheduler() {
    while (!members_.empty())
        remove(members_.front());
}

std::uint64_t Scheduler::advance(std::uint64_t now) {
    if (!clock_started_) {
        clock_started_ = true;
        now_ = now;
    }
    if (now < now_)
        now = now_;
    if (current_ == nullptr)
        idle_ns_ += now - now_;
    now_ = now;
    return now;
}

void Scheduler::charge_current(std::uint64_t now) {
    const std::uint64_t ran = now - charged_at_;
    current_->runtime_ns_ += ran;
    current_->slice_left_ns_ -= ran < current_->slice_left_ns_ ? ran : current_->slice_left_ns_;
    charged_at_ = now;
}

void Scheduler::detach_current() {
    current_ = nullptr;
    picked_at_ = charged_at_ = now_;
}

void Scheduler::queue_normal_tail(SchedVcpu& vcpu) {
    if (vcpu.slice_left_ns_ == 0)
        vcpu.slice_left_ns_ = slice_ns_;
    vcpu.boosted_ = false;
    vcpu.state_ = VcpuState::runnable;
    normal_.push_back(vcpu);
}

void Scheduler::queue_normal_head(SchedVcpu& vcpu) {
    vcpu.boosted_ = false;
    vcpu.state_ = VcpuState::runnable;
    normal_.push_front(vcpu);
}

void Scheduler::add(SchedVcpu& vcpu) {
    if (vcpu.owner_ != nullptr)
        return;
    vcpu.owner_ = this;
    vcpu.state_ = VcpuState::blocked;
    vcpu.boosted_ = false;
    vcpu.slice_left_ns_ = 0;  // its first slice comes at the normal tail: a new vCPU is not boosted
    vcpu.runtime_ns_ = 0;
    vcpu.blocked_at_ns_ = SchedVcpu::never_blocked;
    members_.push_back(vcpu);
}

bool Scheduler::take_off(SchedVcpu& vcpu, std::uint64_t now) {
    if (current_ == &vcpu) {
        charge_current(now);
        detach_current();
        return true;
    }
    if (vcpu.state_ != VcpuState::runnable)
        return false;
    (vcpu.boosted_ ? boosted_ : normal_).erase(RunQueue::s_iterator_to(vcpu));
    return true;
}

void Scheduler::remove(SchedVcpu& vcpu) {
    if (vcpu.owner_ != this)
        return;
    (void)take_off(vcpu, now_);
    members_.erase(Members::s_iterator_to(vcpu));
    vcpu.owner_ = nullptr;
    vcpu.state_ = VcpuState::offline;
    vcpu.boosted_ = false;
}

void Scheduler::wake(SchedVcpu& vcpu, std::uint64_t now) {
    now = advance(now);
    if (vcpu.owner_ != this || vcpu.state_ != VcpuState::blocked)
        return;
    if (vcpu.blocked_at_ns_ != SchedVcpu::never_blocked) {
        // Sleep credit: its share of the time it slept, among those that want the CPU now.
        const std::uint64_t earned = (now - vcpu.blocked_at_ns_) / (runnable_count() + 1);
        const std::uint64_t room = slice_ns_ - vcpu.slice_left_ns_;
        vcpu.slice_left_ns_ += earned < room ? earned : room;
    }
    if (vcpu.slice_left_ns_ == 0) {
        queue_normal_tail(vcpu);
        return;
    }
    vcpu.boosted_ = true;
    vcpu.state_ = VcpuState::runnable;
    boosted_.push_back(vcpu);
}

void Scheduler::block(SchedVcpu& vcpu, std::uint64_t now) {
    now = advance(now);
    if (vcpu.owner_ != this || !take_off(vcpu, now))
        return;  // a stranger, or already blocked
    vcpu.state_ = VcpuState::blocked;
    vcpu.boosted_ = false;
    vcpu.blocked_at_ns_ = now;
}

void Scheduler::yield(SchedVcpu& vcpu, std::uint64_t now) {
    now = advance(now);
    if (vcpu.owner_ != this || current_ != &vcpu)
        return;
    charge_current(now);
    detach_current();
    queue_normal_tail(vcpu);
}

std::uint64_t Scheduler::deadline() const {
    // The budget runs out at charged_at_ + slice_left (charged_at_ == now_ here).
    const std::uint64_t left = current_->slice_left_ns_;
    std::uint64_t end = now_ <= no_deadline - left ? now_ + left : no_deadline;
    if (!current_->boosted_ && !boosted_.empty()) {
        // A boosted vCPU waits: it preempts once the current has run min_run.
        const std::uint64_t preempt_at = picked_at_ + min_run_ns_;
        if (preempt_at < end)
            end = preempt_at;
    }
    return end;
}

Decision Scheduler::schedule(std::uint64_t now) {
    now = advance(now);
    if (current_ != nullptr) {
        charge_current(now);
        SchedVcpu& running = *current_;
        if (running.slice_left_ns_ == 0) {
            detach_current();
            queue_normal_tail(running);  // a whole slice used: a new one, behind the others
        } else if (!running.boosted_ && !boosted_.empty() && now - picked_at_ >= min_run_ns_) {
            detach_current();
            queue_normal_head(running);  // preempted by a woken vCPU: first in line again
        } else {
            return Decision{&running, deadline()};
        }
    }
    RunQueue& queue = boosted_.empty() ? normal_ : boosted_;
    if (queue.empty())
        return Decision{nullptr, no_deadline};
    SchedVcpu& next = queue.front();
    queue.pop_front();
    next.state_ = VcpuState::running;
    current_ = &next;
    picked_at_ = charged_at_ = now;
    return Decision{&next, deadline()};
}

bool Scheduler::runnable(const SchedVcpu& vcpu) const {
    return vcpu.owner_ == this && (vcpu.state_ == VcpuState::runnable || vcpu.state_ == VcpuState::running);
}

}  // namespace hv::sched

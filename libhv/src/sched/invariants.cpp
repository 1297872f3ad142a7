// The invariant checker: what scheduler.cpp promises, recomputed from the queues and the members.
// It walks no list further than members_.size() steps, so a corrupted (cyclic) queue is reported,
// not looped over. Hooks are normal_link (no is_linked()), so queue membership is shown by
// counting: every entry of a queue is a runnable member of that queue's class, and each queue has
// exactly as many entries as there are such members; a blocked or running vCPU, or one of the other
// class, found in a queue is reported by the walk.
#include <hv/sched.hpp>

namespace hv::sched {

class InvariantChecker {
public:
    explicit InvariantChecker(const Scheduler& scheduler) : s_{scheduler} {}

    std::optional<InvariantViolation> run() {
        check_members();
        check_queue(s_.boosted_, true);
        check_queue(s_.normal_, false);
        check_current();
        check_counts();
        return violation_;
    }

private:
    void expect(bool holds, const char* what, const SchedVcpu* vcpu = nullptr) {
        if (!holds && !violation_)
            violation_ = InvariantViolation{what, vcpu ? vcpu->domain : DomId{0}, vcpu ? vcpu->vcpu : 0};
    }

    void check_members() {
        std::size_t steps = 0;
        for (const SchedVcpu& vcpu : s_.members_) {
            if (++steps > s_.members_.size()) {
                expect(false, "the member list is longer than its size");
                return;
            }
            expect(vcpu.owner_ == &s_, "a member belongs to another scheduler", &vcpu);
            expect(vcpu.state_ != VcpuState::offline, "a member is offline", &vcpu);
            expect(vcpu.slice_left_ns_ <= s_.slice_ns_, "a budget exceeds the slice", &vcpu);
            switch (vcpu.state_) {
            case VcpuState::running:
                ++running_;
                expect(s_.current_ == &vcpu, "a running vCPU is not the current one", &vcpu);
                break;
            case VcpuState::runnable:
                ++runnable_;
                (vcpu.boosted_ ? boosted_members_ : normal_members_)++;
                expect(vcpu.slice_left_ns_ > 0, "a queued vCPU has no budget", &vcpu);
                break;
            case VcpuState::blocked:
                expect(!vcpu.boosted_, "a blocked vCPU is boosted", &vcpu);
                expect(s_.current_ != &vcpu, "a blocked vCPU is the current one", &vcpu);
                break;
            case VcpuState::offline:
                break;
            }
        }
    }

    void check_queue(const Scheduler::RunQueue& queue, bool boosted) {
        std::size_t steps = 0;
        for (const SchedVcpu& vcpu : queue) {
            if (++steps > s_.members_.size()) {
                expect(false, "a run queue holds more vCPUs than there are members");
                return;
            }
            expect(vcpu.owner_ == &s_, "a queued vCPU is not a member", &vcpu);
            expect(vcpu.state_ == VcpuState::runnable, "a queued vCPU is not runnable", &vcpu);
            expect(vcpu.boosted_ == boosted, "a vCPU is in the run queue of the other class", &vcpu);
            expect(&vcpu != s_.current_, "the current vCPU is queued", &vcpu);
        }
        expect(steps == queue.size(), "a run queue's size does not count its entries");
        expect(steps == (boosted ? boosted_members_ : normal_members_),
               "a run queue does not hold exactly the runnable vCPUs of its class");
    }

    void check_current() {
        const SchedVcpu* current = s_.current_;
        expect(s_.picked_at_ <= s_.charged_at_ && s_.charged_at_ <= s_.now_,
               "the current vCPU is picked or charged in the future");
        if (current == nullptr)
            return;
        expect(current->owner_ == &s_, "the current vCPU is not a member", current);
        expect(current->state_ == VcpuState::running, "the current vCPU is not running", current);
    }

    void check_counts() {
        expect(running_ == (s_.current_ ? 1u : 0u), "the running vCPUs are not exactly the current one");
        expect(runnable_ == s_.boosted_.size() + s_.normal_.size(), "the queues do not hold exactly the runnable vCPUs");
        expect(s_.runnable_count() == runnable_ + running_, "runnable_count() miscounts");
    }

    const Scheduler& s_;
    std::optional<InvariantViolation> violation_;
    std::size_t running_ = 0;
    std::size_t runnable_ = 0;
    std::size_t boosted_members_ = 0;
    std::size_t normal_members_ = 0;
};

std::optional<InvariantViolation> Scheduler::check_invariants() const {
    return InvariantChecker{*this}.run();
}

}  // namespace hv::sched

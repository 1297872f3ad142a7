// Long hypercalls: when to stop early, and how to be issued again for the rest.
#pragma once

#include <hv/hypercall_dispatch.hpp>

namespace hv {

// Whether a long operation should stop now and let others run (Xen's hypercall_preempt_check).
class Preemption {
public:
    virtual bool pending() = 0;

protected:
    ~Preemption() = default;
};

// A hypercall that stopped early asks to be issued again with these registers: the platform returns
// to the guest at its hypercall instruction, as Xen's hypercall continuations do.
struct Continuation {
    bool requested = false;
    HypercallRegisters registers{};
};

}  // namespace hv

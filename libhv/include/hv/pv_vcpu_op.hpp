// vcpu_op for 64-bit PV vCPUs: bringing vCPUs up and down (initialise from a vcpu_guest_context,
// up, down, is_up), the single-shot and periodic timers, the runstate (time spent running,
// runnable, blocked and offline) and the area the guest reads it from, and vcpu_info placement.
#pragma once

#include <cstdint>
#include <optional>

#include <hv/domain.hpp>
#include <hv/guest_memory.hpp>
#include <hv/pv_emulate.hpp>
#include <hv/pv_timers.hpp>
#include <hv/pv_traps.hpp>

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

// The FPU state (FXSAVE format) of a new vCPU: as FNINIT leaves it, SSE exceptions masked.
std::array<std::byte, 512> initial_fpu();

// A vCPU's start as VCPUOP_initialise gives it (a vcpu_guest_context), checked by
// decode_vcpu_start: registers, FPU state, the trap layer's state and segment bases. Its page
// tables, GDT and LDT go to the memory component (VcpuMmu) when the vCPU is initialised.
struct VcpuStart {
    GuestRegisters registers{};               // user_regs; cs and ss at RPL 3, IF set, no IOPL or VM
    std::array<std::byte, 512> fpu{};         // fpu_ctxt with VGCF_i387_valid, else initial_fpu()
    PvVcpu pv;                                // trap table, callbacks, kernel stack, mode, breakpoints
    SegmentBases bases;
    Mfn kernel_base{0};                       // ctrlreg[3]
    Mfn user_base{0};                         // ctrlreg[1]; 0: none
    std::array<std::uint64_t, mm::max_gdt_frames> gdt_frames{};
    std::uint32_t gdt_entries = 0;
    std::uint64_t ldt_base = 0;
    std::uint32_t ldt_entries = 0;
};

// Xen's checks of a 64-bit PV vcpu_guest_context (arch_set_info_guest), einval for: a
// non-canonical rip, rsp, kernel_sp, fs/gs base, callback or trap handler (or LDT base, with
// entries), an LDT not page-aligned or over 8192 entries, more GDT entries than
// FIRST_RESERVED_GDT_ENTRY, a breakpoint on a hypervisor address, DR6/DR7 above 32 bits, or a
// start in user mode without user page tables (ctrlreg[1]). MXCSR's reserved bits are cleared
// (fxrstor would fault on them in the hypervisor), and rflags' IOPL becomes the virtual IOPL.
// Fills `start` (about 5 KiB: the caller keeps it off small stacks); on failure it is unspecified.
Errc decode_vcpu_start(const abi::vcpu_guest_context& context, VcpuStart& start);

// The vCPUs of the calling domain as the embedder keeps them: what vcpu_op reaches of a vCPU
// beyond the domain's own state (Domain::vcpus, its VcpuMmu).
class VcpuStates {
public:
    virtual VcpuTimers& timers(std::uint32_t vcpu) = 0;
    virtual Runstate& runstate(std::uint32_t vcpu) = 0;
    // VCPUOP_initialise took `start` for vCPU `vcpu` (down): it runs from there once up.
    virtual void start(std::uint32_t vcpu, const VcpuStart& start) = 0;

protected:
    ~VcpuStates() = default;
};

// What vcpu_op acts on: the calling vCPU of `domain`, and every vCPU's timers and runstate.
struct VcpuOpCaller {
    domain::Domains& domains;
    domain::Domain& domain;
    std::uint32_t vcpu;
    GuestMemory& memory;  // the guest kernel's view
    VcpuStates& vcpus;
    std::uint64_t now;    // system time
};

// vcpu_op(cmd, vcpuid, arg), as Xen; enoent for a vCPU the domain does not have:
// - initialise: from a vcpu_guest_context (decode_vcpu_start); eexist once initialised; einval
//   for a context Xen refuses, a ctrlreg[3]/ctrlreg[1] that cannot be an L4 base or GDT frames
//   that cannot be descriptor pages (and then nothing changed); the vCPU stays down.
// - up: einval unless initialised; down: the vCPU stops running; the last one going down powers
//   the domain off. is_up: 1 or 0.
// - set_periodic_timer (einval under 1 ms), stop_periodic_timer; set_singleshot_timer (etime for
//   a past deadline with VCPU_SSHOTTMR_future), stop_singleshot_timer: the calling vCPU's own
//   only (einval otherwise), as Xen.
// - register_runstate_memory_area (efault for an address the guest may not name; the runstate is
//   written there at once), get_runstate_info.
// - register_vcpu_info (Domains::register_vcpu_info).
// Other commands: enosys.
long vcpu_op(VcpuOpCaller& caller, const hypercall_args::vcpu_op& args);

}  // namespace hv::pv

// vcpu_op for 64-bit PV vCPUs (see hv/pv_vcpu_op.hpp).
#include <hv/pv_vcpu_op.hpp>

namespace hv::pv {
namespace {

constexpr std::uint64_t min_period_ns = 1'000'000;  // Xen refuses periodic timers under 1 ms

template <class T>
std::optional<T> argument(VcpuOpCaller& caller, const hypercall_args::vcpu_op& args, long& error) {
    const auto value = copy_from_guest(caller.memory, GuestHandle<T>{args.arg.address});
    if (!value) {
        error = value.xen_errno();
        return std::nullopt;
    }
    return *value;
}

}  // namespace

void change_runstate(Runstate& runstate, std::int32_t state, std::uint64_t now) {
    abi::vcpu_runstate_info& info = runstate.info;
    if (now > info.state_entry_time)
        info.time[info.state] += now - info.state_entry_time;
    info.state = state;
    info.state_entry_time = now;
}

void publish_runstate(const Runstate& runstate, GuestMemory& memory, const domain::Domain& domain) {
    if (!runstate.area)
        return;
    const bool update_flag = (domain.vm_assist >> abi::VMASST_TYPE_runstate_update_flag) & 1;
    const GuestHandle<abi::vcpu_runstate_info> area{*runstate.area};
    const GuestHandle<std::uint64_t> entry_time{*runstate.area + offsetof(abi::vcpu_runstate_info, state_entry_time)};
    // An area that cannot be written loses its copy, as on Xen; nothing else is harmed.
    if (!update_flag) {
        (void)copy_to_guest(memory, area, runstate.info);
        return;
    }
    abi::vcpu_runstate_info updating = runstate.info;
    updating.state_entry_time |= abi::XEN_RUNSTATE_UPDATE;
    (void)copy_to_guest(memory, entry_time, updating.state_entry_time);
    (void)copy_to_guest(memory, area, updating);
    (void)copy_to_guest(memory, entry_time, runstate.info.state_entry_time);
}

long vcpu_op(VcpuOpCaller& caller, const hypercall_args::vcpu_op& args) {
    if (args.vcpuid >= caller.domain.vcpu_count())
        return xen_errno(Errc::enoent);
    if (args.cmd == abi::VCPUOP_is_up)
        return caller.domain.vcpus[args.vcpuid].online ? 1 : 0;
    if (args.cmd == abi::VCPUOP_register_vcpu_info) {
        // Another vCPU's only while it is down, as Xen: a running one may be using its vcpu_info.
        if (args.vcpuid != caller.vcpu && caller.domain.vcpus[args.vcpuid].online)
            return xen_errno(Errc::einval);
        long error = 0;
        const auto request = argument<abi::vcpu_register_vcpu_info>(caller, args, error);
        if (!request)
            return error;
        const auto registered =
            caller.domains.register_vcpu_info(caller.domain, args.vcpuid, Mfn{request->mfn}, request->offset);
        return registered ? 0 : xen_errno(registered.error());
    }
    if (args.vcpuid != caller.vcpu)
        return xen_errno(Errc::einval);
    long error = 0;
    switch (args.cmd) {
    case abi::VCPUOP_set_periodic_timer: {
        const auto request = argument<abi::vcpu_set_periodic_timer>(caller, args, error);
        if (!request)
            return error;
        if (request->period_ns < min_period_ns || request->period_ns > INT64_MAX)
            return xen_errno(Errc::einval);
        caller.timers.period = request->period_ns;
        caller.timers.next_period = caller.now + request->period_ns;
        return 0;
    }
    case abi::VCPUOP_stop_periodic_timer:
        caller.timers.period = 0;
        return 0;
    case abi::VCPUOP_set_singleshot_timer: {
        const auto request = argument<abi::vcpu_set_singleshot_timer>(caller, args, error);
        if (!request)
            return error;
        if ((request->flags & abi::VCPU_SSHOTTMR_future) != 0 && request->timeout_abs_ns < caller.now)
            return xen_errno(Errc::etime);
        caller.timers.singleshot = request->timeout_abs_ns;
        return 0;
    }
    case abi::VCPUOP_stop_singleshot_timer:
        caller.timers.singleshot.reset();
        return 0;
    case abi::VCPUOP_register_runstate_memory_area: {
        const auto request = argument<abi::vcpu_register_runstate_memory_area>(caller, args, error);
        if (!request)
            return error;
        if (!is_guest_range(Vaddr{request->addr.p}, sizeof(abi::vcpu_runstate_info)))
            return xen_errno(Errc::efault);
        caller.runstate.area = request->addr.p;
        change_runstate(caller.runstate, caller.runstate.info.state, caller.now);
        publish_runstate(caller.runstate, caller.memory, caller.domain);
        return 0;
    }
    case abi::VCPUOP_get_runstate_info: {
        change_runstate(caller.runstate, caller.runstate.info.state, caller.now);
        const auto written = copy_to_guest(caller.memory, GuestHandle<abi::vcpu_runstate_info>{args.arg.address},
                                           caller.runstate.info);
        return written ? 0 : xen_errno(written.error());
    }
    default:
        return xen_errno(Errc::enosys);
    }
}

}  // namespace hv::pv

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

namespace {

// VCPUOP_initialise: the vCPU's page tables and GDT are taken (each undone when a later one is
// refused), then the embedder gets the rest. The context and its decoding (5 KiB each) are kept in
// static storage, off a hypervisor's small stack: calls are serialized, as every Domains call is.
long initialise(VcpuOpCaller& caller, std::uint32_t vcpu, GuestHandle<abi::vcpu_guest_context> argument) {
    static abi::vcpu_guest_context context;
    static VcpuStart decoded;
    domain::Domain& domain = caller.domain;
    if (domain.vcpus[vcpu].initialised)
        return xen_errno(Errc::eexist);
    if (const auto copied = copy_array_from_guest(caller.memory, argument, 0, std::span{&context, 1}); !copied)
        return xen_errno(copied.error());
    if (const Errc refused = decode_vcpu_start(context, decoded); refused != Errc{})
        return xen_errno(refused);
    const VcpuStart* const start = &decoded;
    mm::PageTables& tables = caller.domains.page_tables();
    mm::DomainMemory& memory = domain.memory;
    mm::VcpuMmu& mmu = domain.storage.vcpu_memory[vcpu];
    if (!tables.set_kernel_base(memory, mmu, start->kernel_base))
        return xen_errno(Errc::einval);
    if (!tables.set_user_base(memory, mmu, start->user_base)) {
        tables.drop_bases(memory, mmu);
        return xen_errno(Errc::einval);
    }
    if (!tables.set_gdt(memory, mmu, start->gdt_frames, start->gdt_entries)) {
        tables.drop_bases(memory, mmu);
        return xen_errno(Errc::einval);
    }
    mmu.ldt_base = start->ldt_base;
    mmu.ldt_entries = start->ldt_entries;
    caller.vcpus.start(vcpu, *start);
    domain.vcpus[vcpu].initialised = true;
    return 0;
}

// VCPUOP_down, as Xen: the last vCPU of the domain going down powers it off.
long down(VcpuOpCaller& caller, std::uint32_t vcpu) {
    domain::Domain& domain = caller.domain;
    bool another_up = false;
    for (std::uint32_t other = 0; other < domain.vcpu_count(); ++other)
        another_up = another_up || (other != vcpu && domain.vcpus[other].online);
    if (!another_up) {
        caller.domains.shutdown(domain, abi::SHUTDOWN_poweroff);
        return 0;
    }
    if (domain.vcpus[vcpu].online) {
        domain.vcpus[vcpu].online = false;
        change_runstate(caller.vcpus.runstate(vcpu), abi::RUNSTATE_offline, caller.now);
        caller.domains.platform().kick_vcpu(domain, vcpu);  // it leaves the CPU or its run queue
    }
    return 0;
}

long up(VcpuOpCaller& caller, std::uint32_t vcpu) {
    domain::Domain& domain = caller.domain;
    if (!domain.vcpus[vcpu].initialised)
        return xen_errno(Errc::einval);
    if (!domain.vcpus[vcpu].online) {
        domain.vcpus[vcpu].online = true;
        // A vCPU taken down while blocked comes back blocked: only an event makes it runnable.
        change_runstate(caller.vcpus.runstate(vcpu),
                        domain.vcpus[vcpu].blocked ? abi::RUNSTATE_blocked : abi::RUNSTATE_runnable, caller.now);
        caller.domains.platform().kick_vcpu(domain, vcpu);
    }
    return 0;
}

}  // namespace

long vcpu_op(VcpuOpCaller& caller, const hypercall_args::vcpu_op& args) {
    if (args.vcpuid >= caller.domain.vcpu_count())
        return xen_errno(Errc::enoent);
    const std::uint32_t vcpu = args.vcpuid;
    long error = 0;
    switch (args.cmd) {
    case abi::VCPUOP_initialise:
        return initialise(caller, vcpu, GuestHandle<abi::vcpu_guest_context>{args.arg.address});
    case abi::VCPUOP_up:
        return up(caller, vcpu);
    case abi::VCPUOP_down:
        return down(caller, vcpu);
    case abi::VCPUOP_is_up:
        return caller.domain.vcpus[vcpu].online ? 1 : 0;
    case abi::VCPUOP_register_vcpu_info: {
        // Another vCPU's only while it is down, as Xen: a running one may be using its vcpu_info.
        if (vcpu != caller.vcpu && caller.domain.vcpus[vcpu].online)
            return xen_errno(Errc::einval);
        const auto request = argument<abi::vcpu_register_vcpu_info>(caller, args, error);
        if (!request)
            return error;
        const auto registered =
            caller.domains.register_vcpu_info(caller.domain, vcpu, Mfn{request->mfn}, request->offset);
        return registered ? 0 : xen_errno(registered.error());
    }
    case abi::VCPUOP_set_periodic_timer: {
        const auto request = argument<abi::vcpu_set_periodic_timer>(caller, args, error);
        if (!request)
            return error;
        if (request->period_ns < min_period_ns || request->period_ns > INT64_MAX)
            return xen_errno(Errc::einval);
        VcpuTimers& timers = caller.vcpus.timers(vcpu);
        timers.period = request->period_ns;
        timers.next_period = caller.now + request->period_ns;
        return 0;
    }
    case abi::VCPUOP_stop_periodic_timer:
        caller.vcpus.timers(vcpu).period = 0;
        return 0;
    case abi::VCPUOP_set_singleshot_timer: {
        if (vcpu != caller.vcpu)
            return xen_errno(Errc::einval);
        const auto request = argument<abi::vcpu_set_singleshot_timer>(caller, args, error);
        if (!request)
            return error;
        if ((request->flags & abi::VCPU_SSHOTTMR_future) != 0 && request->timeout_abs_ns < caller.now)
            return xen_errno(Errc::etime);
        caller.vcpus.timers(vcpu).singleshot = request->timeout_abs_ns;
        return 0;
    }
    case abi::VCPUOP_stop_singleshot_timer:
        if (vcpu != caller.vcpu)
            return xen_errno(Errc::einval);
        caller.vcpus.timers(vcpu).singleshot.reset();
        return 0;
    case abi::VCPUOP_register_runstate_memory_area: {
        const auto request = argument<abi::vcpu_register_runstate_memory_area>(caller, args, error);
        if (!request)
            return error;
        if (!is_guest_range(Vaddr{request->addr.p}, sizeof(abi::vcpu_runstate_info)))
            return xen_errno(Errc::efault);
        Runstate& runstate = caller.vcpus.runstate(vcpu);
        runstate.area = request->addr.p;
        change_runstate(runstate, runstate.info.state, caller.now);
        publish_runstate(runstate, caller.memory, caller.domain);
        return 0;
    }
    case abi::VCPUOP_get_runstate_info: {
        Runstate& runstate = caller.vcpus.runstate(vcpu);
        change_runstate(runstate, runstate.info.state, caller.now);
        const auto written = copy_to_guest(caller.memory, GuestHandle<abi::vcpu_runstate_info>{args.arg.address},
                                           runstate.info);
        return written ? 0 : xen_errno(written.error());
    }
    default:
        return xen_errno(Errc::enosys);
    }
}

}  // namespace hv::pv

// The hypercall handlers: the components' own, and sched_op, xen_version and vm_assist.
#include <hv/descriptors.hpp>
#include <hv/domain_hypercalls.hpp>
#include <hv/memory_op.hpp>

#include <algorithm>
#include <array>
#include <atomic>

namespace hv::domain {

namespace {

// Fixed-size string buffers of xen_version: xen_commandline_t and xen_domain_handle_t.
constexpr std::size_t command_line_length = 1024;
constexpr std::size_t guest_handle_length = 16;
// SCHEDOP_poll takes at most this many ports, as Xen.
constexpr std::uint32_t max_poll_ports = 128;

constexpr std::uint64_t bit(unsigned number) { return std::uint64_t{1} << number; }

// The assists a 64-bit PV guest may turn on: of Xen's, those we implement (writable page tables;
// the runstate update flag, which hv_pv's publish_runstate honours) and those that mean nothing in
// 64-bit mode (segment limits, PAE cr3). The others (architectural_iopl, m2p_strict) change what
// the guest sees, so they are refused and the guest falls back, rather than accepted and not
// honoured.
constexpr std::uint64_t valid_assists =
    bit(abi::VMASST_TYPE_4gb_segments) | bit(abi::VMASST_TYPE_4gb_segments_notify) |
    bit(abi::VMASST_TYPE_writable_pagetables) | bit(abi::VMASST_TYPE_pae_extended_cr3) |
    bit(abi::VMASST_TYPE_runstate_update_flag);

// A NUL-terminated string in a guest buffer of `length` bytes, truncated to fit.
template <std::size_t length>
long copy_string_to_guest(GuestMemory& memory, GuestHandle<void> handle, std::string_view text) {
    std::array<char, length> buffer{};
    std::copy_n(text.begin(), std::min(text.size(), length - 1), buffer.begin());
    return copy_to_guest(memory, GuestHandle<std::array<char, length>>{handle.address}, buffer).xen_errno();
}

template <class T>
GuestHandle<T> as(GuestHandle<void> handle) {
    return GuestHandle<T>{handle.address};
}

}  // namespace

mm::MmuCaller Hypercalls::mmu_caller(HypercallCaller& caller) {
    Domain& domain = caller.domain;
    return {domain.memory, domain.storage.vcpu_memory[caller.vcpu], caller.memory, caller.preemption,
            caller.continuation};
}

template <auto operation, class Args>
long Hypercalls::memory_call(HypercallCaller& caller, const Args& args) {
    auto mmu = mmu_caller(caller);
    return operation(domains_.page_tables(), mmu, args);
}

long Hypercalls::mmu_update(HypercallCaller& caller, const hypercall_args::mmu_update& args) {
    return memory_call<mm::mmu_update>(caller, args);
}

long Hypercalls::set_gdt(HypercallCaller& caller, const hypercall_args::set_gdt& args) {
    return memory_call<mm::set_gdt>(caller, args);
}

long Hypercalls::update_descriptor(HypercallCaller& caller, const hypercall_args::update_descriptor& args) {
    return memory_call<mm::update_descriptor>(caller, args);
}

long Hypercalls::memory_op(HypercallCaller& caller, const hypercall_args::memory_op& args) {
    return memory_call<mm::memory_op>(caller, args);
}

long Hypercalls::update_va_mapping(HypercallCaller& caller, const hypercall_args::update_va_mapping& args) {
    return memory_call<mm::update_va_mapping>(caller, args);
}

long Hypercalls::update_va_mapping_otherdomain(HypercallCaller& caller,
                                               const hypercall_args::update_va_mapping_otherdomain& args) {
    return memory_call<mm::update_va_mapping_otherdomain>(caller, args);
}

long Hypercalls::mmuext_op(HypercallCaller& caller, const hypercall_args::mmuext_op& args) {
    return memory_call<mm::mmuext_op>(caller, args);
}

long Hypercalls::grant_table_op(HypercallCaller& caller, const hypercall_args::grant_table_op& args) {
    auto mmu = mmu_caller(caller);
    return gnttab::grant_table_op(domains_.grant_tables(), mmu, args);
}

long Hypercalls::event_channel_op(HypercallCaller& caller, const hypercall_args::event_channel_op& args) {
    evtchn::EvtchnCaller events{*caller.domain.events, caller.memory};
    return evtchn::event_channel_op(domains_.event_channels(), events, args);
}

long Hypercalls::console_io(HypercallCaller& caller, const hypercall_args::console_io& args) {
    Domain& domain = caller.domain;
    console::ConsoleIoCaller console{domain.console,
                                     caller.memory,
                                     domain.console_write,
                                     domain.memory.privileged ? input_ : nullptr,
                                     caller.preemption,
                                     caller.continuation};
    return console::console_io(console, args);
}

long Hypercalls::vm_assist(HypercallCaller& caller, const hypercall_args::vm_assist& args) {
    if (args.type >= 64 || (valid_assists & bit(args.type)) == 0)
        return xen_errno(Errc::einval);
    Domain& domain = caller.domain;
    switch (args.cmd) {
    case abi::VMASST_CMD_enable:
        domain.vm_assist |= bit(args.type);
        break;
    case abi::VMASST_CMD_disable:
        domain.vm_assist &= ~bit(args.type);
        break;
    default:
        return xen_errno(Errc::enosys);
    }
    domain.memory.writable_pagetables = (domain.vm_assist & bit(abi::VMASST_TYPE_writable_pagetables)) != 0;
    return 0;
}

long Hypercalls::xen_version(HypercallCaller& caller, const hypercall_args::xen_version& args) {
    GuestMemory& memory = caller.memory;
    const bool privileged = caller.domain.memory.privileged;
    switch (args.cmd) {
    case abi::XENVER_version:
        return (long{version_.major} << 16) | version_.minor;
    case abi::XENVER_extraversion:
        return copy_string_to_guest<abi::XEN_EXTRAVERSION_LEN>(memory, args.arg, version_.extraversion);
    case abi::XENVER_compile_info: {
        abi::xen_compile_info info{};
        std::string_view compiler = "gcc " __VERSION__;
        std::copy_n(compiler.begin(), std::min(compiler.size(), sizeof info.compiler - 1), info.compiler);
        std::string_view by = "pvkit";
        std::copy_n(by.begin(), by.size(), info.compile_by);
        return copy_to_guest(memory, as<abi::xen_compile_info>(args.arg), info).xen_errno();
    }
    case abi::XENVER_capabilities:
        return copy_string_to_guest<abi::XEN_CAPABILITIES_INFO_LEN>(memory, args.arg, "xen-3.0-x86_64 ");
    case abi::XENVER_changeset:
        return copy_string_to_guest<abi::XEN_CHANGESET_INFO_LEN>(memory, args.arg, version_.changeset);
    case abi::XENVER_platform_parameters:
        return copy_to_guest(memory, as<abi::xen_platform_parameters>(args.arg),
                             abi::xen_platform_parameters{abi::HYPERVISOR_VIRT_START})
            .xen_errno();
    case abi::XENVER_get_features: {
        const auto handle = as<abi::xen_feature_info>(args.arg);
        auto info = copy_from_guest(memory, handle);
        if (!info)
            return info.xen_errno();
        if (info->submap_idx != 0)
            return xen_errno(Errc::einval);
        // What a PV guest of ours can rely on; the rest of the bitmap describes HVM and ARM guests.
        // Linux panics in a PV guest without preserve_ad and gnttab_map_avail_bits (map_grant_ref
        // puts GNTMAP_guest_avail0.. into the grant PTE's available bits: gnttab's grant_pte).
        abi::xen_feature_info reply = *info;
        reply.submap = (1u << abi::XENFEAT_mmu_pt_update_preserve_ad) | (1u << abi::XENFEAT_gnttab_map_avail_bits) |
                       (privileged ? 1u << abi::XENFEAT_dom0 : 0u);
        return copy_to_guest(memory, handle, reply).xen_errno();
    }
    case abi::XENVER_pagesize:
        return args.arg.address != 0 ? xen_errno(Errc::einval) : static_cast<long>(mm::page_size);
    case abi::XENVER_guest_handle:
        // The toolstack's handle (a UUID) of the domain: none was given.
        return copy_to_guest(memory, as<std::array<std::uint8_t, guest_handle_length>>(args.arg), {}).xen_errno();
    case abi::XENVER_commandline:
        // Xen answers others with a placeholder rather than an error.
        return copy_string_to_guest<command_line_length>(memory, args.arg,
                                                         privileged ? version_.command_line : "<denied>");
    case abi::XENVER_build_id:
        return xen_errno(privileged ? Errc::enodata : Errc::eperm);
    default:
        return xen_errno(Errc::enosys);
    }
}

long Hypercalls::sched_op(HypercallCaller& caller, const hypercall_args::sched_op& args) {
    Domain& domain = caller.domain;
    switch (args.cmd) {
    case abi::SCHEDOP_yield:
        domains_.platform().yield(domain, caller.vcpu);
        return 0;
    case abi::SCHEDOP_block: {
        // Enable event delivery and block, unless an event is already waiting: in this order, so
        // that an event raised meanwhile finds the vCPU blocked and wakes it.
        abi::vcpu_info& info = *domain.events->vcpus[caller.vcpu].info;
        std::atomic_ref{info.evtchn_upcall_mask}.store(0);
        domain.vcpus[caller.vcpu].blocked = true;
        if (std::atomic_ref{info.evtchn_upcall_pending}.load() != 0)
            domain.vcpus[caller.vcpu].blocked = false;
        return 0;
    }
    case abi::SCHEDOP_shutdown: {
        const auto request = copy_from_guest(caller.memory, as<abi::sched_shutdown>(args.arg));
        if (!request)
            return request.xen_errno();
        domains_.shutdown(domain, static_cast<std::uint8_t>(request->reason));  // Xen keeps 8 bits
        return 0;
    }
    case abi::SCHEDOP_shutdown_code: {
        const auto request = copy_from_guest(caller.memory, as<abi::sched_shutdown>(args.arg));
        if (!request)
            return request.xen_errno();
        if (!domain.shutdown_code)
            domain.shutdown_code = static_cast<std::uint8_t>(request->reason);  // Xen keeps 8 bits
        return 0;
    }
    case abi::SCHEDOP_remote_shutdown: {
        const auto request = copy_from_guest(caller.memory, as<abi::sched_remote_shutdown>(args.arg));
        if (!request)
            return request.xen_errno();
        Domain* target = domains_.find(DomId{request->domain_id});
        if (target == nullptr)
            return xen_errno(Errc::esrch);
        if (!domain.memory.privileged)
            return xen_errno(Errc::eperm);
        domains_.shutdown(*target, static_cast<std::uint8_t>(request->reason));
        return 0;
    }
    case abi::SCHEDOP_poll: {
        const auto request = copy_from_guest(caller.memory, as<abi::sched_poll>(args.arg));
        if (!request)
            return request.xen_errno();
        return sched_poll(caller, *request);
    }
    default:
        return xen_errno(Errc::enosys);
    }
}

// Blocks the vCPU until one of the ports is pending (any port of the domain when polling
// several), an unmasked event is raised, or the timeout passes; returns at once if one is pending.
long Hypercalls::sched_poll(HypercallCaller& caller, const abi::sched_poll& poll) {
    if (poll.nr_ports > max_poll_ports)
        return xen_errno(Errc::einval);
    if (!is_guest_range(Vaddr{poll.ports.address}, std::uint64_t{poll.nr_ports} * sizeof(abi::evtchn_port_t)))
        return xen_errno(Errc::efault);
    Domain& domain = caller.domain;
    evtchn::EvtchnDomain& events = *domain.events;
    Vcpu& vcpu = domain.vcpus[caller.vcpu];
    vcpu.blocked = true;
    vcpu.polling = true;
    const auto stay_awake = [&](long result) {
        vcpu.blocked = false;
        vcpu.polling = false;
        return result;
    };
    abi::vcpu_info& info = *events.vcpus[caller.vcpu].info;
    if (std::atomic_ref{info.evtchn_upcall_pending}.load() != 0 && std::atomic_ref{info.evtchn_upcall_mask}.load() == 0)
        return stay_awake(0);
    abi::evtchn_port_t port = 0;
    for (std::uint32_t i = 0; i < poll.nr_ports; ++i) {
        const auto read = copy_from_guest(caller.memory, poll.ports, i);
        if (!read)
            return stay_awake(read.xen_errno());
        port = *read;
        if (port >= events.ports.size())
            return stay_awake(xen_errno(Errc::einval));
        if (domains_.event_channels().is_pending(events, Port{port}))
            return stay_awake(0);
    }
    vcpu.poll_port = poll.nr_ports == 1 ? port : 0;
    if (poll.timeout != 0)
        domains_.platform().set_poll_timeout(domain, caller.vcpu, poll.timeout);
    return 0;
}

}  // namespace hv::domain

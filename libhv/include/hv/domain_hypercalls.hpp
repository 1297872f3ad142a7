// The hypercalls libhv implements, wired to the dispatcher generated from hypercall-spec.
//
// Hypercalls holds one handler per hypercall libhv provides: the memory component's, the grant
// tables', the event channels', console_io, sched_op, xen_version and vm_assist. An embedder
// issues every hypercall through hypercall(): it runs multicall itself and hands every other
// number to dispatch_hypercall, so a number without a handler gives -ENOSYS. An embedder with
// handlers of its own (the architecture's: set_trap_table, iret, ...) derives from Hypercalls and
// passes the derived object: the calls in a multicall reach the same handlers as direct ones.
#pragma once

#include <cstddef>
#include <string_view>

#include <hv/continuation.hpp>
#include <hv/domain.hpp>
#include <hv/hypercall_dispatch.hpp>

namespace hv::domain {

// The calling vCPU and what this one call may use.
struct HypercallCaller {
    Domain& domain;
    std::uint32_t vcpu;
    GuestMemory& memory;
    Preemption& preemption;
    Continuation& continuation;
};

// What xen_version reports. We implement a subset of this version's ABI.
struct VersionInfo {
    std::uint16_t major = 4;
    std::uint16_t minor = 17;
    std::string_view extraversion = ".0-pvkit";
    std::string_view changeset = "pvkit";
    std::string_view command_line = {};  // the hypervisor's, for privileged domains
};

class Hypercalls {
public:
    // `input`, if given, is what privileged domains read with CONSOLEIO_read.
    explicit Hypercalls(Domains& domains, VersionInfo version = {}, console::ConsoleInput* input = nullptr)
        : domains_{domains}, version_{version}, input_{input != nullptr ? input : &no_input_} {}

    Domains& domains() { return domains_; }
    const VersionInfo& version() const { return version_; }

    long mmu_update(HypercallCaller& caller, const hypercall_args::mmu_update& args);
    long set_gdt(HypercallCaller& caller, const hypercall_args::set_gdt& args);
    long update_descriptor(HypercallCaller& caller, const hypercall_args::update_descriptor& args);
    long memory_op(HypercallCaller& caller, const hypercall_args::memory_op& args);
    long update_va_mapping(HypercallCaller& caller, const hypercall_args::update_va_mapping& args);
    long xen_version(HypercallCaller& caller, const hypercall_args::xen_version& args);
    long console_io(HypercallCaller& caller, const hypercall_args::console_io& args);
    long grant_table_op(HypercallCaller& caller, const hypercall_args::grant_table_op& args);
    long vm_assist(HypercallCaller& caller, const hypercall_args::vm_assist& args);
    long update_va_mapping_otherdomain(HypercallCaller& caller,
                                       const hypercall_args::update_va_mapping_otherdomain& args);
    long mmuext_op(HypercallCaller& caller, const hypercall_args::mmuext_op& args);
    long sched_op(HypercallCaller& caller, const hypercall_args::sched_op& args);
    long event_channel_op(HypercallCaller& caller, const hypercall_args::event_channel_op& args);

private:
    mm::MmuCaller mmu_caller(HypercallCaller& caller);
    // One of the memory component's hypercalls, for the caller.
    template <auto operation, class Args>
    long memory_call(HypercallCaller& caller, const Args& args);
    long sched_poll(HypercallCaller& caller, const abi::sched_poll& poll);

    Domains& domains_;
    VersionInfo version_;
    console::ConsoleInput no_input_;  // what privileged domains read when the platform has no input
    console::ConsoleInput* input_;
};

// multicall(call_list, nr_calls), with Xen's rules: a list the guest may not name gives -EFAULT
// before any call runs; each entry's result is written back as it completes; the batch stops at
// -EFAULT when an entry cannot be read or its result written; a multicall inside a multicall gives
// -EINVAL in its entry; an iret ends the batch (the vCPU has left the hypervisor), and so does a
// call after which the vCPU may not run: a shutdown ends it for good, a block or a pause leaves the
// rest for when it runs again. Between entries the batch yields when others wait, and a call that
// asks for a continuation has its registers written into its own entry: either way the rest runs
// when the guest reissues multicall, as the continuation says.
template <class Handlers>
long multicall(Handlers& handlers, HypercallCaller& caller, const hypercall_args::multicall& args) {
    auto list = args.call_list;
    if (!is_guest_range(Vaddr{list.address}, std::uint64_t{args.nr_calls} * sizeof(abi::multicall_entry)))
        return xen_errno(Errc::efault);
    for (std::uint32_t done = 0; done < args.nr_calls; ++done) {
        const auto remaining = args.nr_calls - done;
        if (done != 0 && caller.domain.state != DomainState::running)
            return 0;
        if (done != 0 && (!caller.domain.runnable(caller.vcpu) || caller.preemption.pending())) {
            caller.continuation = {true, {abi::HYPERVISOR_multicall, {list.address, remaining}}};
            return 0;
        }
        auto entry = copy_from_guest(caller.memory, list);
        if (!entry)
            return entry.xen_errno();
        long result;
        if (entry->op == abi::HYPERVISOR_multicall) {
            result = xen_errno(Errc::einval);
        } else {
            const HypercallRegisters registers{
                entry->op, {entry->args[0], entry->args[1], entry->args[2], entry->args[3], entry->args[4]}};
            result = dispatch_hypercall(handlers, caller, registers);
        }
        Result<void> written = {};
        if (caller.continuation.requested) {
            // The call goes on where it stopped, as the first of the rest of the batch.
            abi::multicall_entry resumed = *entry;
            resumed.result = static_cast<abi::xen_ulong_t>(result);
            resumed.op = caller.continuation.registers.number;
            for (unsigned i = 0; i < 5; ++i)
                resumed.args[i] = caller.continuation.registers.args[i];
            caller.continuation = {true, {abi::HYPERVISOR_multicall, {list.address, remaining}}};
            written = copy_to_guest(caller.memory, list, resumed);
        } else {
            const GuestHandle<abi::xen_ulong_t> result_field{list.address + offsetof(abi::multicall_entry, result)};
            written = copy_to_guest(caller.memory, result_field, static_cast<abi::xen_ulong_t>(result));
        }
        if (!written) {
            caller.continuation = {};
            return xen_errno(Errc::efault);
        }
        if (caller.continuation.requested)
            return 0;
        if (entry->op == abi::HYPERVISOR_iret)
            return result;
        list.address += sizeof(abi::multicall_entry);
    }
    return 0;
}

template <class Handlers>
long hypercall(Handlers& handlers, HypercallCaller& caller, const HypercallRegisters& registers) {
    if (registers.number == abi::HYPERVISOR_multicall)
        return multicall(handlers, caller,
                         hypercall_args::multicall{{registers.args[0]}, static_cast<std::uint32_t>(registers.args[1])});
    return dispatch_hypercall(handlers, caller, registers);
}

}  // namespace hv::domain

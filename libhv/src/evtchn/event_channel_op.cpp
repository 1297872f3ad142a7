// event_channel_op: copy the guest's argument in, perform the command, copy the result back.
#include <hv/evtchn.hpp>

namespace hv::evtchn {
namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

template <class Arg>
GuestHandle<Arg> typed(GuestHandle<void> arg) {
    return GuestHandle<Arg>{arg.address};
}

// A command that binds a port and reports it in field `out` of its argument. Before anything
// changes, the argument is written back unchanged, so that one the guest can read but not write
// is refused with efault having changed nothing. If the final write still fails (another vCPU of
// the guest unmapped the page meanwhile), the new port is closed again: the guest could never
// learn its number.
template <class Arg, class Bind>
long bind_command(EventChannels& channels, EvtchnCaller& caller, GuestHandle<void> arg, abi::evtchn_port_t Arg::*out,
                  Bind bind) {
    const GuestHandle<Arg> handle = typed<Arg>(arg);
    const auto request = copy_from_guest(caller.memory, handle);
    if (!request)
        return request.xen_errno();
    if (!copy_to_guest(caller.memory, handle, *request))
        return failure(Errc::efault);
    EvtchnDomain* owner = &caller.domain;
    const Result<Port> port = bind(*request, owner);
    if (!port)
        return port.xen_errno();
    Arg result = *request;
    result.*out = port->value;
    if (!copy_to_guest(caller.memory, handle, result)) {
        channels.release_port(*owner, *port);
        return failure(Errc::efault);
    }
    return 0;
}

// A command that only reads its argument.
template <class Arg, class Perform>
long plain_command(EvtchnCaller& caller, GuestHandle<void> arg, Perform perform) {
    const auto request = copy_from_guest(caller.memory, typed<Arg>(arg));
    if (!request)
        return request.xen_errno();
    return perform(*request).xen_errno();
}

}  // namespace

long event_channel_op(EventChannels& channels, EvtchnCaller& caller, const hypercall_args::event_channel_op& args) {
    EvtchnDomain& self = caller.domain;
    switch (args.cmd) {
    case abi::EVTCHNOP_alloc_unbound:
        return bind_command<abi::evtchn_alloc_unbound>(
            channels, caller, args.arg, &abi::evtchn_alloc_unbound::port,
            [&](const abi::evtchn_alloc_unbound& request, EvtchnDomain*& owner) {
                const Result<Port> port = channels.alloc_unbound(self, request.dom, request.remote_dom);
                if (port && request.dom != abi::DOMID_SELF)
                    owner = channels.domain(DomId{request.dom});
                return port;
            });
    case abi::EVTCHNOP_bind_interdomain:
        return bind_command<abi::evtchn_bind_interdomain>(
            channels, caller, args.arg, &abi::evtchn_bind_interdomain::local_port,
            [&](const abi::evtchn_bind_interdomain& request, EvtchnDomain*&) {
                return channels.bind_interdomain(self, request.remote_dom, Port{request.remote_port});
            });
    case abi::EVTCHNOP_bind_virq:
        return bind_command<abi::evtchn_bind_virq>(
            channels, caller, args.arg, &abi::evtchn_bind_virq::port,
            [&](const abi::evtchn_bind_virq& request, EvtchnDomain*&) {
                return channels.bind_virq(self, request.virq, request.vcpu);
            });
    case abi::EVTCHNOP_bind_ipi:
        return bind_command<abi::evtchn_bind_ipi>(
            channels, caller, args.arg, &abi::evtchn_bind_ipi::port,
            [&](const abi::evtchn_bind_ipi& request, EvtchnDomain*&) { return channels.bind_ipi(self, request.vcpu); });
    case abi::EVTCHNOP_close:
        return plain_command<abi::evtchn_close>(
            caller, args.arg, [&](const abi::evtchn_close& request) { return channels.close(self, Port{request.port}); });
    case abi::EVTCHNOP_send:
        return plain_command<abi::evtchn_send>(
            caller, args.arg, [&](const abi::evtchn_send& request) { return channels.send(self, Port{request.port}); });
    case abi::EVTCHNOP_bind_vcpu:
        return plain_command<abi::evtchn_bind_vcpu>(caller, args.arg, [&](const abi::evtchn_bind_vcpu& request) {
            return channels.bind_vcpu(self, Port{request.port}, request.vcpu);
        });
    case abi::EVTCHNOP_unmask:
        return plain_command<abi::evtchn_unmask>(
            caller, args.arg, [&](const abi::evtchn_unmask& request) { return channels.unmask(self, Port{request.port}); });
    case abi::EVTCHNOP_reset:
        return plain_command<abi::evtchn_reset>(
            caller, args.arg, [&](const abi::evtchn_reset& request) { return channels.reset(self, request.dom); });
    case abi::EVTCHNOP_status: {
        const GuestHandle<abi::evtchn_status> handle = typed<abi::evtchn_status>(args.arg);
        const auto request = copy_from_guest(caller.memory, handle);
        if (!request)
            return request.xen_errno();
        const auto answer = channels.status(self, request->dom, Port{request->port});
        if (!answer)
            return answer.xen_errno();
        return copy_to_guest(caller.memory, handle, *answer).xen_errno();
    }
    case abi::EVTCHNOP_bind_pirq:       // no physical IRQs to bind (Xen without PIRQ support)
    case abi::EVTCHNOP_init_control:    // the FIFO ABI, not yet: guests fall back to 2-level
    case abi::EVTCHNOP_expand_array:
    case abi::EVTCHNOP_set_priority:
    default:
        return failure(Errc::enosys);
    }
}

}  // namespace hv::evtchn

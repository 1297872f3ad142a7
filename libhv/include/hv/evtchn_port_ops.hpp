// How a pending event reaches a guest: the per-ABI half of the event-channel component.
//
// Ports, their states and the EVTCHNOPs (evtchn.hpp) are the same whatever ABI a guest uses to see
// its events. What differs is where "pending" and "masked" live and how a vCPU learns about them:
// the 2-level ABI keeps two bitmaps in shared_info and a selector word per vCPU; the FIFO ABI keeps
// an event word per port in guest pages and per-vCPU queues. PortOps is that difference, as Xen's
// evtchn_port_ops: a domain holds one PortOps, and the rest of the component calls only these.
#pragma once

#include <cstdint>

#include <hv/core.hpp>

namespace hv::evtchn {

struct EvtchnDomain;

// What raising or unmasking a port did, so that the caller can tell the machine.
enum class Signal : std::uint8_t {
    none,     // nothing new: already pending, or still masked and not pending before
    pending,  // the port became pending (vCPUs polling it must wake) but the vCPU needs no upcall
    upcall,   // ...and the vCPU's evtchn_upcall_pending went from 0 to 1: it must be kicked
};

// The per-ABI operations on one port of one domain. Every port number given is a valid port of
// the domain (below ports.size()); the implementation need not check it again. Implementations are
// stateless: the state is in the domain and in the memory it shares with its guest.
class PortOps {
public:
    // The most ports the ABI can name (EVTCHN_2L_NR_CHANNELS for the 2-level ABI).
    virtual std::uint32_t max_ports() const = 0;
    // Marks `port` pending and, unless it is masked, tells its notify vCPU.
    virtual Signal set_pending(EvtchnDomain& domain, Port port) const = 0;
    virtual void clear_pending(EvtchnDomain& domain, Port port) const = 0;
    // Clears the mask; a port that was pending while masked is delivered now.
    virtual Signal unmask(EvtchnDomain& domain, Port port) const = 0;
    virtual bool is_pending(const EvtchnDomain& domain, Port port) const = 0;
    virtual bool is_masked(const EvtchnDomain& domain, Port port) const = 0;

protected:
    ~PortOps() = default;
};

// The classic 2-level ABI over shared_info (two_level.cpp).
const PortOps& two_level_port_ops();

}  // namespace hv::evtchn

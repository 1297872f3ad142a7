// The event channels' test machine: a privileged control domain dom0 and two guests dom1 and dom2,
// each with 64 ports, two vCPUs and a shared_info object, a fake platform that records what it is
// asked to do, and the calling domain's guest memory for hypercall arguments.
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include <hv/evtchn.hpp>

namespace evtchn_test {
namespace abi = pvkit::abi;
namespace args = hv::hypercall_args;
using hv::DomId;
using hv::Errc;
using hv::GuestHandle;
using hv::Port;
using hv::Vaddr;
using namespace hv::evtchn;

constexpr long error(Errc code) { return hv::xen_errno(code); }

class FakePlatform final : public EvtchnPlatform {
public:
    using Event = std::pair<abi::domid_t, std::uint32_t>;  // domain, vCPU or port

    void kick_vcpu(const EvtchnDomain& domain, std::uint32_t vcpu) override { kicks.emplace_back(domain.id.value, vcpu); }
    void wake_pollers(const EvtchnDomain& domain, Port port) override { wakes.emplace_back(domain.id.value, port.value); }
    void hypervisor_channel_signalled(const EvtchnDomain& domain, Port port) override {
        backend.emplace_back(domain.id.value, port.value);
    }
    bool paused_by_controller(const EvtchnDomain& domain) override { return paused.count(domain.id.value) != 0; }

    std::vector<Event> kicks, wakes, backend;
    std::set<abi::domid_t> paused;
};

// The calling domain's memory: 64 KiB at guest address 0x10000, the upper half mapped read-only.
class GuestBuffer final : public hv::GuestMemory {
public:
    static constexpr std::uint64_t base = 0x10000;
    static constexpr std::uint64_t read_only_offset = 0x8000;

    bool read(Vaddr address, std::span<std::byte> into) override {
        if (!inside(address, into.size()))
            return false;
        std::memcpy(into.data(), bytes.data() + (address.value - base), into.size());
        return true;
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        if (!inside(address, from.size()) || address.value - base + from.size() > read_only_offset)
            return false;
        if (writes_allowed == 0)
            return false;  // another vCPU of the guest unmapped the page meanwhile
        if (writes_allowed > 0)
            --writes_allowed;
        std::memcpy(bytes.data() + (address.value - base), from.data(), from.size());
        return true;
    }

    std::vector<std::byte> bytes = std::vector<std::byte>(0x10000);
    int writes_allowed = -1;  // >= 0: writes fail after that many more

private:
    bool inside(Vaddr address, std::size_t size) const {
        return address.value >= base && address.value - base + size <= bytes.size();
    }
};

// A domain and the storage its embedder gives it.
struct TestDomain {
    TestDomain(DomId id, std::size_t port_count, std::size_t vcpu_count, bool privileged)
        : ports(port_count), vcpus(vcpu_count), domain{id, *shared, ports, vcpus, privileged} {}

    std::unique_ptr<abi::shared_info> shared = std::make_unique<abi::shared_info>();
    std::vector<PortEntry> ports;
    std::vector<EvtchnVcpu> vcpus;
    EvtchnDomain domain;
};

// Everything a test may assert did not change (the hypercall arguments in guest memory aside).
struct Snapshot {
    std::vector<std::vector<PortEntry>> ports;
    std::vector<std::vector<std::array<abi::evtchn_port_t, abi::NR_VIRQS>>> virqs;
    std::vector<std::vector<std::byte>> shared;
    std::vector<std::uint32_t> in_use;
    std::size_t kicks, wakes, backend;
    bool operator==(const Snapshot&) const = default;
};

struct EvtchnFixture {
    EvtchnFixture() {
        for (TestDomain* d : all())
            REQUIRE(channels.add_domain(d->domain));
        REQUIRE(channels.set_control_domain(&dom0.domain));
    }

    std::vector<TestDomain*> all() { return {&dom0, &dom1, &dom2}; }

    // event_channel_op from domain `d` with `arg` placed at `offset` in its memory; `arg` is read
    // back afterwards.
    template <class Arg>
    long call(TestDomain& d, unsigned command, Arg& arg, std::uint64_t offset = 0) {
        std::memcpy(memory.bytes.data() + offset, &arg, sizeof(arg));
        EvtchnCaller caller{d.domain, memory};
        const long result = event_channel_op(
            channels, caller, args::event_channel_op{static_cast<std::int32_t>(command), {GuestBuffer::base + offset}});
        std::memcpy(&arg, memory.bytes.data() + offset, sizeof(arg));
        return result;
    }

    // The commands, each as a guest issues it. The binds REQUIRE success and return the port.
    Port alloc_unbound(TestDomain& d, abi::domid_t remote, abi::domid_t dom = abi::DOMID_SELF) {
        abi::evtchn_alloc_unbound arg{dom, remote, 0};
        REQUIRE(call(d, abi::EVTCHNOP_alloc_unbound, arg) == 0);
        return Port{arg.port};
    }
    long try_bind_interdomain(TestDomain& d, abi::domid_t remote, abi::evtchn_port_t remote_port) {
        abi::evtchn_bind_interdomain arg{remote, remote_port, 0};
        return call(d, abi::EVTCHNOP_bind_interdomain, arg);
    }
    Port bind_interdomain(TestDomain& d, abi::domid_t remote, Port remote_port) {
        abi::evtchn_bind_interdomain arg{remote, remote_port.value, 0};
        REQUIRE(call(d, abi::EVTCHNOP_bind_interdomain, arg) == 0);
        return Port{arg.local_port};
    }
    long try_bind_virq(TestDomain& d, std::uint32_t virq, std::uint32_t vcpu) {
        abi::evtchn_bind_virq arg{virq, vcpu, 0};
        return call(d, abi::EVTCHNOP_bind_virq, arg);
    }
    Port bind_virq(TestDomain& d, std::uint32_t virq, std::uint32_t vcpu) {
        abi::evtchn_bind_virq arg{virq, vcpu, 0};
        REQUIRE(call(d, abi::EVTCHNOP_bind_virq, arg) == 0);
        return Port{arg.port};
    }
    long try_bind_ipi(TestDomain& d, std::uint32_t vcpu) {
        abi::evtchn_bind_ipi arg{vcpu, 0};
        return call(d, abi::EVTCHNOP_bind_ipi, arg);
    }
    Port bind_ipi(TestDomain& d, std::uint32_t vcpu) {
        abi::evtchn_bind_ipi arg{vcpu, 0};
        REQUIRE(call(d, abi::EVTCHNOP_bind_ipi, arg) == 0);
        return Port{arg.port};
    }
    long close(TestDomain& d, std::uint32_t port) {
        abi::evtchn_close arg{port};
        return call(d, abi::EVTCHNOP_close, arg);
    }
    long send(TestDomain& d, std::uint32_t port) {
        abi::evtchn_send arg{port};
        return call(d, abi::EVTCHNOP_send, arg);
    }
    long unmask(TestDomain& d, std::uint32_t port) {
        abi::evtchn_unmask arg{port};
        return call(d, abi::EVTCHNOP_unmask, arg);
    }
    long bind_vcpu(TestDomain& d, std::uint32_t port, std::uint32_t vcpu) {
        abi::evtchn_bind_vcpu arg{port, vcpu};
        return call(d, abi::EVTCHNOP_bind_vcpu, arg);
    }
    long reset(TestDomain& d, abi::domid_t dom) {
        abi::evtchn_reset arg{dom};
        return call(d, abi::EVTCHNOP_reset, arg);
    }
    long status(TestDomain& d, abi::domid_t dom, std::uint32_t port, abi::evtchn_status& out) {
        out = abi::evtchn_status{};
        out.dom = dom;
        out.port = port;
        return call(d, abi::EVTCHNOP_status, out);
    }
    abi::evtchn_status status(TestDomain& d, std::uint32_t port) {
        abi::evtchn_status out;
        REQUIRE(status(d, abi::DOMID_SELF, port, out) == 0);
        return out;
    }

    // The 2-level bits as the guest sees them.
    static bool pending(const TestDomain& d, Port port) {
        return (d.shared->evtchn_pending[port.value / 64] >> (port.value % 64)) & 1;
    }
    static void mask(TestDomain& d, Port port) { d.shared->evtchn_mask[port.value / 64] |= std::uint64_t{1} << (port.value % 64); }
    static std::uint64_t selector(const TestDomain& d, std::uint32_t vcpu) { return d.vcpus[vcpu].info->evtchn_pending_sel; }
    static bool upcall(const TestDomain& d, std::uint32_t vcpu) { return d.vcpus[vcpu].info->evtchn_upcall_pending != 0; }

    // What a guest's upcall handler does on `vcpu`: clear the flag, take the selector, and handle
    // (clear) every pending, unmasked port in the words it names. Returns the ports handled.
    static std::vector<std::uint32_t> consume(TestDomain& d, std::uint32_t vcpu) {
        std::vector<std::uint32_t> handled;
        abi::vcpu_info& info = *d.vcpus[vcpu].info;
        info.evtchn_upcall_pending = 0;
        const std::uint64_t words = std::exchange(info.evtchn_pending_sel, 0);
        for (unsigned word = 0; word < 64; ++word) {
            if (!((words >> word) & 1))
                continue;
            std::uint64_t ready = d.shared->evtchn_pending[word] & ~d.shared->evtchn_mask[word];
            d.shared->evtchn_pending[word] &= ~ready;
            for (unsigned bit = 0; bit < 64; ++bit) {
                if ((ready >> bit) & 1)
                    handled.push_back(word * 64 + bit);
            }
        }
        return handled;
    }

    Snapshot snapshot() {
        Snapshot snap;
        for (TestDomain* d : all()) {
            snap.ports.push_back(d->ports);
            std::vector<std::array<abi::evtchn_port_t, abi::NR_VIRQS>> virqs;
            for (const EvtchnVcpu& vcpu : d->vcpus)
                virqs.push_back(vcpu.virq_ports);
            snap.virqs.push_back(virqs);
            const auto* raw = reinterpret_cast<const std::byte*>(d->shared.get());
            snap.shared.emplace_back(raw, raw + sizeof(abi::shared_info));
            snap.in_use.push_back(d->domain.ports_in_use);
        }
        snap.kicks = platform.kicks.size();
        snap.wakes = platform.wakes.size();
        snap.backend = platform.backend.size();
        return snap;
    }

    void require_invariants() {
        const auto violation = check_invariants(channels);
        if (violation)
            FAIL("invariant broken: " << violation->what << " (domain " << violation->domain.value << ", port "
                                      << violation->port.value << ")");
    }

    FakePlatform platform;
    EventChannels channels{platform};
    TestDomain dom0{DomId{0}, 64, 2, true};
    TestDomain dom1{DomId{1}, 64, 2, false};
    TestDomain dom2{DomId{2}, 64, 2, false};
    GuestBuffer memory;
};

}  // namespace evtchn_test

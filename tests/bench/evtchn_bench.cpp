// The event channels' hot path: one send on an interdomain channel and the receiving guest's
// upcall handler consuming it under the 2-level ABI, beside a baseline measured in the same
// process: `baseline_ns` is the same 2-level protocol done inline (the sender's three locked
// operations on the pending bit, the selector and the upcall flag, then the same consume), i.e.
// what the bits alone cost without port lookup, the PortOps call and the platform's hooks.
// `ratio` is the benchmark's time per iteration over that baseline.
#include <benchmark/benchmark.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <hv/evtchn.hpp>

namespace {

using namespace hv;
using namespace hv::evtchn;
namespace abi = pvkit::abi;

constexpr unsigned bits_per_word = 64;

// Counts what it is asked, in plain integers: nothing here may cost more than an add.
class CountingPlatform final : public EvtchnPlatform {
public:
    void kick_vcpu(const EvtchnDomain&, std::uint32_t) override { ++kicks; }
    void wake_pollers(const EvtchnDomain&, Port) override { ++wakes; }
    void hypervisor_channel_signalled(const EvtchnDomain&, Port) override {}
    bool paused_by_controller(const EvtchnDomain&) override { return false; }

    std::uint64_t kicks = 0;
    std::uint64_t wakes = 0;
};

// A domain and the storage its embedder gives it: its own shared_info, 64 ports, one vCPU.
struct BenchDomain {
    explicit BenchDomain(DomId id) : domain{id, *shared, ports, vcpus} {}

    std::unique_ptr<abi::shared_info> shared = std::make_unique<abi::shared_info>();
    std::vector<PortEntry> ports = std::vector<PortEntry>(64);
    std::vector<EvtchnVcpu> vcpus = std::vector<EvtchnVcpu>(1);
    EvtchnDomain domain;
};

// What a PV guest's upcall handler does under the 2-level ABI (as Linux's
// __xen_evtchn_do_upcall): clear the upcall flag (a plain store in Linux; the exchange that
// follows is the barrier), take the selector with an exchange, and for each word it names clear
// (lock btr, here fetch_and) each pending, unmasked port's bit as it handles it. Returns the
// number of ports handled.
unsigned consume(abi::shared_info& shared, abi::vcpu_info& info) {
    std::atomic_ref<std::uint8_t>{info.evtchn_upcall_pending}.store(0, std::memory_order_relaxed);
    std::uint64_t words = std::atomic_ref<std::uint64_t>{info.evtchn_pending_sel}.exchange(0);
    unsigned handled = 0;
    while (words != 0) {
        const unsigned word = static_cast<unsigned>(std::countr_zero(words));
        words &= words - 1;
        std::atomic_ref<std::uint64_t> pending{shared.evtchn_pending[word]};
        std::uint64_t ports = pending.load(std::memory_order_relaxed) &
                              ~std::atomic_ref<std::uint64_t>{shared.evtchn_mask[word]}.load(std::memory_order_relaxed);
        while (ports != 0) {
            const std::uint64_t bit = ports & -ports;
            ports &= ports - 1;
            pending.fetch_and(~bit);
            ++handled;
        }
    }
    return handled;
}

// The baseline: `rounds` of the bare 2-level protocol on one port, in nanoseconds per round. The
// sender's half is what two_level.cpp does (pending bit, mask test, selector bit, upcall flag,
// each sequentially consistent); the receiver's is consume() above.
double two_level_protocol_ns(std::uint32_t port) {
    auto shared = std::make_unique<abi::shared_info>();
    abi::vcpu_info& info = shared->vcpu_info[0];
    const unsigned word = port / bits_per_word;
    const std::uint64_t bit = std::uint64_t{1} << (port % bits_per_word);
    std::uint64_t kicks = 0;
    constexpr int rounds = 200'000;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < rounds; ++round) {
        if ((std::atomic_ref<std::uint64_t>{shared->evtchn_pending[word]}.fetch_or(bit) & bit) == 0 &&
            (std::atomic_ref<std::uint64_t>{shared->evtchn_mask[word]}.load() & bit) == 0 &&
            (std::atomic_ref<std::uint64_t>{info.evtchn_pending_sel}.fetch_or(std::uint64_t{1} << word) &
             (std::uint64_t{1} << word)) == 0 &&
            std::atomic_ref<std::uint8_t>{info.evtchn_upcall_pending}.exchange(1) == 0)
            ++kicks;
        kicks += consume(*shared, info);
        benchmark::DoNotOptimize(kicks);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    return std::chrono::duration<double, std::nano>(elapsed).count() / rounds;
}

// dom1 sends on its end of an interdomain channel to dom2; dom2's vCPU 0 consumes the event.
// Every iteration really delivers: the state is back to "nothing pending" after each.
void send_and_consume_interdomain(benchmark::State& state) {
    CountingPlatform platform;
    EventChannels channels{platform};
    BenchDomain sender{DomId{1}}, receiver{DomId{2}};
    if (!channels.add_domain(sender.domain) || !channels.add_domain(receiver.domain)) {
        state.SkipWithError("add_domain failed");
        return;
    }
    const auto sender_port = channels.alloc_unbound(sender.domain, abi::DOMID_SELF, 2);
    if (!sender_port) {
        state.SkipWithError("alloc_unbound failed");
        return;
    }
    const auto receiver_port = channels.bind_interdomain(receiver.domain, 1, *sender_port);
    if (!receiver_port) {
        state.SkipWithError("bind_interdomain failed");
        return;
    }
    abi::shared_info& shared = *receiver.shared;
    abi::vcpu_info& info = *receiver.domain.vcpus[0].info;
    (void)consume(shared, info);  // the bind leaves the new end pending, as Xen's does
    const std::uint64_t kicks_before = platform.kicks;
    const double baseline_ns = two_level_protocol_ns(receiver_port->value);

    std::uint64_t handled = 0;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (!channels.send(sender.domain, *sender_port))
            state.SkipWithError("send failed");
        handled += consume(shared, info);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;

    const auto iterations = static_cast<std::uint64_t>(state.iterations());
    if (handled != iterations || platform.kicks - kicks_before != iterations)
        state.SkipWithError("an event was not delivered and consumed exactly once per iteration");
    const double ns = std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(iterations);
    state.counters["baseline_ns"] = baseline_ns;
    state.counters["ratio"] = ns / baseline_ns;
}
BENCHMARK(send_and_consume_interdomain);

}  // namespace

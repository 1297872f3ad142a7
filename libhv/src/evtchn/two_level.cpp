// The 2-level event ABI: port p is bit p of shared_info's evtchn_pending and evtchn_mask bitmaps
// (word p / 64, bit p % 64), and bit p / 64 of a vCPU's evtchn_pending_sel says "look at that
// word". A guest's upcall handler reads and clears the selector, then scans the words it names for
// pending and unmasked ports, clearing each pending bit as it handles it.
//
// Raising a port sets, in this order and each only if the one before was newly set and the port is
// not masked: its pending bit, the selector bit of its notify vCPU, that vCPU's upcall flag; a
// newly set upcall flag is what needs a kick. The guest clears them in the opposite order, so
// whatever it is doing, a port it has not yet handled always has a path of set bits leading to it.
// A port pending while masked is left there: unmask re-walks the path if the guest asks (or the
// guest re-checks pending ports itself after clearing mask bits, as Linux does).
#include <hv/evtchn.hpp>

#include "shared_bits.hpp"

namespace hv::evtchn {
namespace {

using shared_bits::bits_per_word;

class TwoLevelPortOps final : public PortOps {
public:
    constexpr TwoLevelPortOps() = default;

    std::uint32_t max_ports() const override { return abi::EVTCHN_2L_NR_CHANNELS; }

    Signal set_pending(EvtchnDomain& domain, Port port) const override {
        const unsigned word = port.value / bits_per_word, bit = port.value % bits_per_word;
        if (shared_bits::test_and_set(domain.shared.evtchn_pending[word], bit))
            return Signal::none;
        if (shared_bits::test(domain.shared.evtchn_mask[word], bit))
            return Signal::pending;
        return select(domain, domain.ports[port.value].notify_vcpu, word);
    }

    void clear_pending(EvtchnDomain& domain, Port port) const override {
        shared_bits::clear(domain.shared.evtchn_pending[port.value / bits_per_word], port.value % bits_per_word);
    }

    Signal unmask(EvtchnDomain& domain, Port port) const override {
        const unsigned word = port.value / bits_per_word, bit = port.value % bits_per_word;
        if (!shared_bits::test_and_clear(domain.shared.evtchn_mask[word], bit) ||
            !shared_bits::test(domain.shared.evtchn_pending[word], bit))
            return Signal::none;
        // Re-delivery: pollers were woken when the port became pending; only the upcall is owed.
        return select(domain, domain.ports[port.value].notify_vcpu, word) == Signal::upcall ? Signal::upcall
                                                                                              : Signal::none;
    }

    bool is_pending(const EvtchnDomain& domain, Port port) const override {
        return shared_bits::test(domain.shared.evtchn_pending[port.value / bits_per_word], port.value % bits_per_word);
    }

    bool is_masked(const EvtchnDomain& domain, Port port) const override {
        return shared_bits::test(domain.shared.evtchn_mask[port.value / bits_per_word], port.value % bits_per_word);
    }

private:
    // Sets the selector bit for `word` on `vcpu` and, if that is new, its upcall flag.
    static Signal select(EvtchnDomain& domain, std::uint32_t vcpu, unsigned word) {
        abi::vcpu_info& info = *domain.vcpus[vcpu].info;
        if (shared_bits::test_and_set(info.evtchn_pending_sel, word))
            return Signal::pending;
        return shared_bits::mark_upcall_pending(info) ? Signal::upcall : Signal::pending;
    }
};

static_assert(abi::EVTCHN_2L_NR_CHANNELS == bits_per_word * bits_per_word,
              "a selector word must cover every word of the pending bitmap");
static_assert(sizeof(abi::shared_info::evtchn_pending) * 8 == abi::EVTCHN_2L_NR_CHANNELS);

constinit const TwoLevelPortOps two_level_instance;

}  // namespace

const PortOps& two_level_port_ops() { return two_level_instance; }

}  // namespace hv::evtchn

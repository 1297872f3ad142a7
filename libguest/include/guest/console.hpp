// Console: console_io for the first words, then the PV console ring (io/console.h's
// xencons_interface: in[1024] that the back end fills, out[2048] that the guest fills, and four
// free-running 32-bit indexes, each slot chosen by index & (size - 1)).
//
// ConsoleRing is the guest's end of the page, with no hypercalls: it copies what fits and says
// whether to notify. The guest writes out_prod and in_cons, the back end out_cons and in_prod.
// Ordering as Xen's frontends: read the other side's index, then (acquire) touch the slots; write
// the slots, then (release) publish our index. The back end is not trusted: an index of its that
// claims more than the ring holds (out_prod - out_cons > 2048 or in_prod - in_cons > 1024) makes
// the ring broken, and a broken ring moves nothing again.
//
// The runtime (images only) writes through console_io until console_init() takes over the ring
// named in start_info; a full ring then waits for the back end (polling the console's event
// channel) instead of dropping output. pvk_printf formats onto whichever is active.
#pragma once

#include <pvkit/abi.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pvkit::guest {

class ConsoleRing {
public:
    static constexpr std::uint32_t out_size = sizeof(abi::xencons_interface::out);
    static constexpr std::uint32_t in_size = sizeof(abi::xencons_interface::in);

    explicit ConsoleRing(abi::xencons_interface& page) : page_(&page) {}

    // Copies as much of `bytes` as fits into out[] and publishes it; how many bytes it took (0 when
    // full or broken).
    std::size_t write(std::span<const char> bytes);
    // Copies up to `buffer.size()` bytes of input and frees their slots; how many.
    std::size_t read(std::span<char> buffer);
    // Room left in out[] and input waiting in in[] (0 when broken).
    std::uint32_t out_space();
    std::uint32_t in_available();
    // Whether everything written was consumed by the back end.
    bool drained() { return out_space() == out_size; }
    bool broken() const { return broken_; }

private:
    static std::uint32_t load_acquire(const std::uint32_t& index) { return __atomic_load_n(&index, __ATOMIC_ACQUIRE); }
    static void store_release(std::uint32_t& index, std::uint32_t value) { __atomic_store_n(&index, value, __ATOMIC_RELEASE); }

    abi::xencons_interface* page_;
    bool broken_ = false;
};

// Runtime (images only).
// Writes through console_io, or through the ring once console_init() ran; waits while the ring is
// full. Whether all of it was written (false: console_io refused, or the ring is broken).
bool console_write(std::span<const char> bytes);
// Takes the PV console ring of start_info (console.domU.mfn/evtchn) into use: maps its page over a
// page of the image and masks its port (waited for, not upcalled). False for the initial domain,
// which has no ring, and when mapping fails.
bool console_init();
// Waits until every byte written was consumed by the back end, at most until `deadline_ns` (0: no
// limit). Whether it was.
bool console_flush(std::uint64_t deadline_ns);
// Bytes of input, waiting for at least one until `deadline_ns` (0: no limit; now: none). How many.
std::size_t console_read(std::span<char> buffer, std::uint64_t deadline_ns);

}  // namespace pvkit::guest

// Atomic bit operations on memory a guest shares with the hypervisor.
//
// The guest changes its event bitmaps and vcpu_info flags while the hypervisor does (from any of
// its vCPUs, with plain or locked instructions), so the hypervisor never rewrites a whole word it
// read earlier: every change is one locked read-modify-write of the bits it means, and every
// read is one load. On x86 the locked operations are full barriers, which gives the ordering the
// 2-level ABI relies on (pending before selector before upcall flag). Nothing read from here is
// trusted: it only decides whether to notify.
#pragma once

#include <cstdint>

#include <pvkit/abi.hpp>

namespace hv::evtchn::shared_bits {

using Word = pvkit::abi::xen_ulong_t;
inline constexpr unsigned bits_per_word = 64;

inline bool test_and_set(Word& word, unsigned bit) {
    const Word mask = Word{1} << bit;
    return (__atomic_fetch_or(&word, mask, __ATOMIC_SEQ_CST) & mask) != 0;
}

inline bool test_and_clear(Word& word, unsigned bit) {
    const Word mask = Word{1} << bit;
    return (__atomic_fetch_and(&word, ~mask, __ATOMIC_SEQ_CST) & mask) != 0;
}

inline void clear(Word& word, unsigned bit) { __atomic_fetch_and(&word, ~(Word{1} << bit), __ATOMIC_SEQ_CST); }

inline bool test(const Word& word, unsigned bit) { return ((__atomic_load_n(&word, __ATOMIC_SEQ_CST) >> bit) & 1) != 0; }

// Sets the vCPU's evtchn_upcall_pending; true when it was clear, so the vCPU must be kicked.
inline bool mark_upcall_pending(pvkit::abi::vcpu_info& info) {
    return __atomic_exchange_n(&info.evtchn_upcall_pending, std::uint8_t{1}, __ATOMIC_SEQ_CST) == 0;
}

}  // namespace hv::evtchn::shared_bits

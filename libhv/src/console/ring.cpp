// The PV console ring, served from inside the hypervisor.
//
// The page (io/console.h's xencons_interface) holds two byte rings: out[] (guest to backend) and
// in[] (backend to guest), each with a producer and a consumer index. The indexes run freely and
// wrap at 2^32; a byte's slot is its index modulo the ring size, a power of two that divides 2^32,
// so the wrap needs no care. prod - cons (modulo 2^32) is the number of bytes in a ring.
//
// Who owns what
// -------------
// The guest writes out_prod and in_cons; the backend writes out_cons and in_prod. The guest can
// write anything anywhere in the page at any time, so the backend never reads back the indexes it
// owns: it keeps them in out_cons_ and in_prod_, taken from the page once at construction (the
// domain builder zeroes the page, and a guest attaching to a ring it used before keeps its
// indexes), and stores them into the page only as a report to the guest. The guest's two indexes
// are each read exactly once per pass into a local, and only the locals are used, so a guest that
// changes them during the pass cannot make one check see one value and the copy another.
//
// What a pass keeps
// -----------------
// The guest's indexes are checked before anything moves: out_prod - out_cons_ must be at most
// sizeof(out) and in_prod_ - in_cons at most sizeof(in). Any larger value cannot come from a
// guest that follows the protocol (it would have overwritten bytes not yet consumed, or consumed
// bytes not yet produced). Such a ring is declared broken, for good: the pass does nothing, no
// later pass reads or writes the page, and the guest is not notified. Clamping instead would
// print bytes the guest never produced (stale or half-written slots) and keep a confused or
// hostile guest's console busy; declaring it broken costs only that guest's console. So every
// byte read lies in out[] and every byte written in in[], whatever the guest did.
//
// Ordering
// --------
// out: out_prod is loaded with acquire before the slots are read (the guest stores its bytes,
// then a write barrier, then out_prod); out_cons is stored with release after the slots were
// read, so the guest cannot reuse a slot before its byte was taken. in: in_cons is loaded with
// acquire before slots are written (the guest has read them before moving in_cons); in_prod is
// stored with release after the bytes, so the guest sees them when it sees the index. Every
// access to the page is a single atomic load or store, as for the other guest-shared memory.
//
// Work per pass is bounded by the two ring sizes: at most 2048 bytes out and 1024 bytes in.
#include <algorithm>

#include <hv/console.hpp>

namespace hv::console {
namespace {

using Index = abi::XENCONS_RING_IDX;

constexpr std::uint32_t out_size = sizeof(abi::xencons_interface::out);
constexpr std::uint32_t in_size = sizeof(abi::xencons_interface::in);
static_assert((out_size & (out_size - 1)) == 0 && (in_size & (in_size - 1)) == 0,
              "ring slots are indexes modulo a power of two");

Index load_acquire(const Index& index) { return __atomic_load_n(&index, __ATOMIC_ACQUIRE); }
void store_release(Index& index, Index value) { __atomic_store_n(&index, value, __ATOMIC_RELEASE); }

}  // namespace

ConsoleRing::ConsoleRing(abi::xencons_interface& page, DomainConsole& console)
    : page_{page},
      console_{console},
      out_cons_{__atomic_load_n(&page.out_cons, __ATOMIC_RELAXED)},
      in_prod_{__atomic_load_n(&page.in_prod, __ATOMIC_RELAXED)} {}

ServiceResult ConsoleRing::service(ConsoleInput* input) {
    ServiceResult result;
    if (broken_) {
        result.broken = true;
        return result;
    }
    // Decode: the guest's indexes, once each, and whether they are possible at all.
    const Index out_prod = load_acquire(page_.out_prod);
    const Index in_cons = load_acquire(page_.in_cons);
    const std::uint32_t out_pending = out_prod - out_cons_;
    const std::uint32_t in_used = in_prod_ - in_cons;
    if (out_pending > out_size || in_used > in_size) {
        broken_ = true;
        result.broken = true;
        return result;
    }
    // Invoke: every byte read or written below is inside its ring.
    if (out_pending != 0) {
        take_output(out_pending);
        store_release(page_.out_cons, out_cons_);
        result.consumed = out_pending;
    }
    if (input != nullptr && in_used < in_size && !input->empty()) {
        result.produced = give_input(*input, in_size - in_used);
        store_release(page_.in_prod, in_prod_);
    }
    result.notify = result.consumed != 0 || result.produced != 0;
    return result;
}

void ConsoleRing::take_output(std::uint32_t count) {
    // Copied out of the page a piece at a time, each byte loaded once; the console sees only the
    // copy.
    std::array<char, 256> piece;
    while (count != 0) {
        const std::uint32_t length = std::min<std::uint32_t>(count, piece.size());
        for (std::uint32_t i = 0; i < length; ++i)
            piece[i] = __atomic_load_n(&page_.out[(out_cons_ + i) % out_size], __ATOMIC_RELAXED);
        console_.write(std::span{piece}.first(length));
        out_cons_ += length;
        count -= length;
    }
}

std::uint32_t ConsoleRing::give_input(ConsoleInput& input, std::uint32_t space) {
    std::uint32_t given = 0;
    while (given < space && !input.empty()) {
        const std::span<const char> run = input.front();
        const std::uint32_t length = std::min<std::uint32_t>(space - given, static_cast<std::uint32_t>(run.size()));
        for (std::uint32_t i = 0; i < length; ++i)
            __atomic_store_n(&page_.in[(in_prod_ + i) % in_size], run[i], __ATOMIC_RELAXED);
        input.discard(length);
        in_prod_ += length;
        given += length;
    }
    return given;
}

}  // namespace hv::console

// The guest's end of the PV console ring (guest/console.hpp): ring arithmetic only.
#include <guest/console.hpp>

namespace pvkit::guest {

namespace {
// Slots are shared with the back end: one atomic byte access each, no torn or repeated reads.
void store_byte(char& slot, char value) { __atomic_store_n(&slot, value, __ATOMIC_RELAXED); }
char load_byte(const char& slot) { return __atomic_load_n(&slot, __ATOMIC_RELAXED); }
}  // namespace

std::uint32_t ConsoleRing::out_space() {
    if (broken_)
        return 0;
    const std::uint32_t used = page_->out_prod - load_acquire(page_->out_cons);
    if (used > out_size) {
        broken_ = true;
        return 0;
    }
    return out_size - used;
}

std::uint32_t ConsoleRing::in_available() {
    if (broken_)
        return 0;
    const std::uint32_t waiting = load_acquire(page_->in_prod) - page_->in_cons;
    if (waiting > in_size) {
        broken_ = true;
        return 0;
    }
    return waiting;
}

std::size_t ConsoleRing::write(std::span<const char> bytes) {
    const std::uint32_t space = out_space();
    const std::uint32_t count = bytes.size() < space ? static_cast<std::uint32_t>(bytes.size()) : space;
    std::uint32_t producer = page_->out_prod;
    for (std::uint32_t i = 0; i < count; ++i, ++producer)
        store_byte(page_->out[producer & (out_size - 1)], bytes[i]);
    if (count != 0)
        store_release(page_->out_prod, producer);
    return count;
}

std::size_t ConsoleRing::read(std::span<char> buffer) {
    const std::uint32_t waiting = in_available();
    const std::uint32_t count = buffer.size() < waiting ? static_cast<std::uint32_t>(buffer.size()) : waiting;
    std::uint32_t consumer = page_->in_cons;
    for (std::uint32_t i = 0; i < count; ++i, ++consumer)
        buffer[i] = load_byte(page_->in[consumer & (in_size - 1)]);
    if (count != 0)
        store_release(page_->in_cons, consumer);
    return count;
}

}  // namespace pvkit::guest

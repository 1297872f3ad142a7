// Console input: a FIFO of input_capacity bytes between the platform's serial port and the domain
// that reads it.
//
// head_ and tail_ run freely (they wrap at 2^32, which is a multiple of the capacity, so the
// slot of an index is the same before and after the wrap). Always 0 <= tail_ - head_ <=
// input_capacity: push() refuses a byte when the FIFO is full, and pop() and discard() never take
// more than size().
#include <algorithm>

#include <hv/console.hpp>

namespace hv::console {
namespace {

constexpr std::size_t slot(std::uint32_t index) { return index % ConsoleInput::input_capacity; }

}  // namespace

bool ConsoleInput::push(char c) {
    if (full())
        return false;
    bytes_[slot(tail_++)] = c;
    return true;
}

std::span<const char> ConsoleInput::front() const {
    const std::size_t run = std::min(size(), input_capacity - slot(head_));
    return {bytes_.data() + slot(head_), run};
}

void ConsoleInput::discard(std::size_t count) { head_ += static_cast<std::uint32_t>(std::min(count, size())); }

std::size_t ConsoleInput::pop(std::span<char> into) {
    std::size_t moved = 0;
    while (moved < into.size() && !empty()) {
        const std::span<const char> run = front();
        const std::size_t count = std::min(run.size(), into.size() - moved);
        std::copy_n(run.data(), count, into.data() + moved);
        discard(count);
        moved += count;
    }
    return moved;
}

}  // namespace hv::console

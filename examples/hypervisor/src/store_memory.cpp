// SPDX-License-Identifier: BSD-2-Clause
#include "store_memory.hpp"

#include <bit>

namespace hypervisor {

unsigned StoreArena::shift_for(std::size_t bytes) {
    const unsigned shift = std::bit_width(bytes <= 1 ? std::size_t{1} : bytes - 1);
    return shift < smallest_shift ? smallest_shift : shift;
}

void* StoreArena::allocate(std::size_t bytes) {
    const unsigned shift = shift_for(bytes);
    if (shift > largest_shift)
        return nullptr;
    if (FreeBlock* block = free_[shift]) {
        free_[shift] = block->next;
        return block;
    }
    // Every block is a multiple of 16 bytes and the region starts on a page: all stay 16-aligned.
    const std::size_t size = std::size_t{1} << shift;
    if (static_cast<std::size_t>(end_ - next_) < size)
        return nullptr;
    std::byte* const block = next_;
    next_ += size;
    return block;
}

void StoreArena::release(void* block, std::size_t bytes) {
    if (block == nullptr)
        return;
    const unsigned shift = shift_for(bytes);
    auto* freed = static_cast<FreeBlock*>(block);
    freed->next = free_[shift];
    free_[shift] = freed;
}

}  // namespace hypervisor

// SPDX-License-Identifier: BSD-2-Clause
// The xenstore's memory on this machine: one region carved at boot, handed out in power-of-two
// blocks from 16 bytes to 8 KiB, each size with its own free list. The store's blocks are small
// (nodes, names, values of at most a page), so a freed block is reused for the next of its size
// and the region never fragments beyond one block per size.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <hv/xenstore.hpp>

namespace hypervisor {

class StoreArena final : public hv::xenstore::StoreMemory {
public:
    StoreArena(std::byte* base, std::size_t size) : next_{base}, end_{base + size} {}

    void* allocate(std::size_t bytes) override;
    void release(void* block, std::size_t bytes) override;

private:
    static constexpr unsigned smallest_shift = 4, largest_shift = 13;  // 16 bytes .. 8 KiB
    struct FreeBlock {
        FreeBlock* next;
    };
    // The size class of a block of `bytes`: the shift of the smallest power of two that holds it.
    static unsigned shift_for(std::size_t bytes);

    std::byte* next_;
    std::byte* end_;
    std::array<FreeBlock*, largest_shift + 1> free_{};
};

}  // namespace hypervisor

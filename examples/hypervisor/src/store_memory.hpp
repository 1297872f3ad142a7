// SPDX-License-Identifier: BSD-2-Clause
// The xenstore's memory on this machine: one region carved at boot, handed out in power-of-two
// blocks from 16 bytes to 8 KiB, each size with its own free list; blocks are never split or
// merged, so a block carved for one size serves only that size, ever.
//
// Why fragmentation cannot starve a domain of its quota: the store charges every block to a
// domain at its size here (block_size), and an unprivileged domain's charge stays within
// Limits::bytes_per_domain. What a size class has carved is its high-water mark, the most bytes
// of that size live at one time, which is at most everything live at that time: every domain's
// quota plus the toolstack's own blocks. main.cpp's store_arena_size() gives the arena that
// total once per size class (size_classes times), so every class can reach its worst high-water
// mark: a request within a domain's quota finds a free block of its size or room to carve one,
// whatever sizes the other domains (or a domain that died) left on the free lists. Splitting or
// merging would not help against a hostile mix of sizes (Robson: any allocator that does not
// move blocks can need about log2(8 KiB / 16 B) / 2 + 1 times the live bytes), so the classes
// stay simple and the arena pays for them. Privileged domains are not limited: they can use it up.
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
    std::size_t block_size(std::size_t bytes) const override { return std::size_t{1} << shift_for(bytes); }

private:
    static constexpr unsigned smallest_shift = 4, largest_shift = 13;  // 16 bytes .. 8 KiB

public:
    static constexpr std::size_t size_classes = largest_shift - smallest_shift + 1;

private:
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

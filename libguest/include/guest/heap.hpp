// A small heap on top of the page allocator: malloc-like blocks for C (pvkit/heap.h) and the
// storage behind operator new/delete in freestanding C++.
//
// Blocks up to largest_small bytes come from size classes of 32..2048-byte slots (a 16-byte header
// and the payload), carved from whole pages taken from the PageAllocator and kept by the heap; a
// free list per class links the free slots through their headers. Larger blocks take whole pages
// (header at the start of the first page) and give them back to the PageAllocator when freed.
// Every payload is 16-byte aligned. Invariants:
//   - every slot of a class page is either on its class's free list (tag free_small) or handed out
//     (tag used_small); blocks_in_use() counts the handed-out small and large blocks, and
//     bytes_in_use() sums their usable_size();
//   - a large block's header names its own first pfn, and that pfn is allocated in the allocator.
// free() checks the header before changing anything: a block already free is reported as
// double_free, a pointer without a heap header as not_heap_block, and nothing changes. (A stray
// pointer into memory that happens to hold a valid header cannot be told apart: the tags make it
// unlikely, not impossible.)
#pragma once

#include <guest/pages.hpp>

#include <cstddef>
#include <cstdint>

namespace pvkit::guest {

enum class HeapError : std::uint8_t {
    none,
    not_heap_block,  // misaligned, no heap header, or a large block whose header lies
    double_free,
};

class Heap {
public:
    static constexpr std::size_t alignment = 16;
    static constexpr std::size_t header_bytes = 16;
    static constexpr std::size_t smallest_slot = 32;
    static constexpr std::size_t largest_slot = 2048;
    static constexpr std::size_t largest_small = largest_slot - header_bytes;
    static constexpr unsigned class_count = 7;  // 32, 64, ..., 2048
    static constexpr std::size_t page_bytes = 4096;

    // Where the page with this pfn is mapped (writable) in the heap's address space.
    using MapPage = void* (*)(Pfn pfn, void* context);

    Heap(PageAllocator& pages, MapPage map, void* context) : pages_(&pages), map_(map), map_context_(context) {}
    Heap(const Heap&) = delete;
    Heap& operator=(const Heap&) = delete;

    // A block of at least `bytes` (0 counts as 1), or null when memory is exhausted.
    [[nodiscard]] void* allocate(std::size_t bytes);
    // Gives a block back; null is accepted and does nothing.
    [[nodiscard]] HeapError free(void* block);
    // The bytes the block may use (at least what was asked for); 0 for what is not a used block.
    std::size_t usable_size(const void* block) const;
    std::size_t blocks_in_use() const { return blocks_in_use_; }
    std::size_t bytes_in_use() const { return bytes_in_use_; }

private:
    struct Header;
    void* allocate_small(unsigned size_class);
    void* allocate_large(std::size_t bytes);
    bool refill(unsigned size_class);

    PageAllocator* pages_;
    MapPage map_;
    void* map_context_;
    Header* free_lists_[class_count] = {};
    std::size_t blocks_in_use_ = 0;
    std::size_t bytes_in_use_ = 0;
};

// The heap behind pvk_malloc/pvk_free and, in images, operator new/delete. Null until set.
void set_global_heap(Heap* heap);
Heap* global_heap();

}  // namespace pvkit::guest

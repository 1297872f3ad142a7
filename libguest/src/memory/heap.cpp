// The heap over the page allocator: size classes, large blocks and the checks on free(), as
// described in guest/heap.hpp; and the C functions of pvkit/heap.h over the global heap.
#include <guest/heap.hpp>
#include <pvkit/heap.h>

namespace pvkit::guest {

// Tags chosen to be unlikely in ordinary data; each says what the block is and whether it is in use.
enum class BlockTag : std::uint32_t {
    used_small = 0x5A11B10Cu,
    free_small = 0xF4EE5A11u,
    used_large = 0x1A46EB1Cu,
};

struct Heap::Header {
    BlockTag tag;
    std::uint32_t size;  // small: the slot size; large: the page count
    union {
        Header* next_free;    // a free small slot: the next one on its class's list
        std::uint64_t first;  // a large block: its first pfn
    };
};

namespace {
unsigned class_for(std::size_t bytes) {
    unsigned size_class = 0;
    for (std::size_t slot = Heap::smallest_slot; slot - Heap::header_bytes < bytes; slot *= 2)
        ++size_class;
    return size_class;
}
std::size_t slot_bytes(unsigned size_class) { return Heap::smallest_slot << size_class; }
}  // namespace

bool Heap::refill(unsigned size_class) {
    static_assert(sizeof(Header) == header_bytes);
    const PageRun page = pages_->allocate();
    if (!page)
        return false;
    auto* bytes = static_cast<unsigned char*>(map_(page.first, map_context_));
    const std::size_t slot = slot_bytes(size_class);
    for (std::size_t offset = page_bytes; offset >= slot; offset -= slot) {  // list in address order
        auto* header = reinterpret_cast<Header*>(bytes + offset - slot);
        header->tag = BlockTag::free_small;
        header->size = static_cast<std::uint32_t>(slot);
        header->next_free = free_lists_[size_class];
        free_lists_[size_class] = header;
    }
    return true;
}

void* Heap::allocate_small(unsigned size_class) {
    if (free_lists_[size_class] == nullptr && !refill(size_class))
        return nullptr;
    Header* header = free_lists_[size_class];
    free_lists_[size_class] = header->next_free;
    header->tag = BlockTag::used_small;
    header->next_free = nullptr;
    void* block = reinterpret_cast<unsigned char*>(header) + header_bytes;
    ++blocks_in_use_;
    bytes_in_use_ += usable_size(block);
    return block;
}

void* Heap::allocate_large(std::size_t bytes) {
    if (bytes > static_cast<std::size_t>(UINT32_MAX - 1) * page_bytes)
        return nullptr;
    const std::size_t count = (bytes + header_bytes + page_bytes - 1) / page_bytes;
    const PageRun run = pages_->allocate(count);
    if (!run)
        return nullptr;
    // Pages of one run are contiguous pfns; the mapping must make them contiguous addresses too.
    auto* header = static_cast<Header*>(map_(run.first, map_context_));
    header->tag = BlockTag::used_large;
    header->size = static_cast<std::uint32_t>(count);
    header->first = run.first.value;
    void* block = reinterpret_cast<unsigned char*>(header) + header_bytes;
    ++blocks_in_use_;
    bytes_in_use_ += usable_size(block);
    return block;
}

void* Heap::allocate(std::size_t bytes) {
    if (bytes <= largest_small)
        return allocate_small(class_for(bytes == 0 ? 1 : bytes));
    return allocate_large(bytes);
}

HeapError Heap::free(void* block) {
    if (block == nullptr)
        return HeapError::none;
    if (reinterpret_cast<std::uintptr_t>(block) % alignment != 0)
        return HeapError::not_heap_block;
    auto* header = reinterpret_cast<Header*>(static_cast<unsigned char*>(block) - header_bytes);
    switch (header->tag) {
    case BlockTag::free_small:
        return HeapError::double_free;
    case BlockTag::used_small: {
        const unsigned size_class = class_for(header->size - header_bytes);
        // Slots sit at multiples of their size within page-aligned pages.
        if (size_class >= class_count || slot_bytes(size_class) != header->size ||
            reinterpret_cast<std::uintptr_t>(header) % header->size != 0)
            return HeapError::not_heap_block;
        --blocks_in_use_;
        bytes_in_use_ -= usable_size(block);  // while the tag still says used
        header->tag = BlockTag::free_small;
        header->next_free = free_lists_[size_class];
        free_lists_[size_class] = header;
        return HeapError::none;
    }
    case BlockTag::used_large: {
        const Pfn first{header->first};
        // The header must name the page it sits in, and that run must be allocated: a lying
        // header cannot free someone else's pages.
        if (map_(first, map_context_) != header || header->size == 0)
            return HeapError::not_heap_block;
        for (std::uint64_t i = 0; i < header->size; ++i)
            if (!pages_->allocated(Pfn{first.value + i}))
                return HeapError::not_heap_block;
        --blocks_in_use_;
        bytes_in_use_ -= usable_size(block);  // while the tag still says used
        header->tag = BlockTag{0};  // the pages go back: a second free finds no tag
        (void)pages_->free(first, header->size);  // cannot fail: checked just above
        return HeapError::none;
    }
    }
    return HeapError::not_heap_block;
}

std::size_t Heap::usable_size(const void* block) const {
    if (block == nullptr || reinterpret_cast<std::uintptr_t>(block) % alignment != 0)
        return 0;
    const auto* header = reinterpret_cast<const Header*>(static_cast<const unsigned char*>(block) - header_bytes);
    if (header->tag == BlockTag::used_small)
        return header->size - header_bytes;
    if (header->tag == BlockTag::used_large)
        return header->size * page_bytes - header_bytes;
    return 0;
}

namespace {
Heap* the_global_heap = nullptr;
}
void set_global_heap(Heap* heap) { the_global_heap = heap; }
Heap* global_heap() { return the_global_heap; }

}  // namespace pvkit::guest

using pvkit::guest::global_heap;
using pvkit::guest::HeapError;

extern "C" void* pvk_malloc(size_t bytes) {
    return global_heap() != nullptr ? global_heap()->allocate(bytes) : nullptr;
}

extern "C" void* pvk_calloc(size_t count, size_t size) {
    size_t bytes = 0;
    if (__builtin_mul_overflow(count, size, &bytes))
        return nullptr;
    auto* block = static_cast<unsigned char*>(pvk_malloc(bytes));
    for (size_t i = 0; block != nullptr && i < bytes; ++i)
        block[i] = 0;
    return block;
}

extern "C" pvk_heap_usage pvk_heap_get_usage(void) {
    if (global_heap() == nullptr)
        return {0, 0};
    return {global_heap()->blocks_in_use(), global_heap()->bytes_in_use()};
}

extern "C" pvk_heap_status pvk_free(void* block) {
    if (block == nullptr)
        return PVK_HEAP_OK;
    if (global_heap() == nullptr)
        return PVK_HEAP_NOT_A_BLOCK;
    switch (global_heap()->free(block)) {
    case HeapError::none: return PVK_HEAP_OK;
    case HeapError::double_free: return PVK_HEAP_DOUBLE_FREE;
    case HeapError::not_heap_block: break;
    }
    return PVK_HEAP_NOT_A_BLOCK;
}

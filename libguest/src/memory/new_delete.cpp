// operator new and delete for freestanding guests, over the global heap. Images only: on the host
// the C++ runtime provides its own. Without exceptions, a new that cannot be satisfied and a delete
// of something that is not a live block crash the domain at once rather than corrupt memory.
#include <guest/heap.hpp>

#include <cstddef>
#include <new>

namespace {
void* allocate_or_crash(std::size_t bytes) {
    pvkit::guest::Heap* heap = pvkit::guest::global_heap();
    void* block = heap != nullptr ? heap->allocate(bytes) : nullptr;
    if (block == nullptr)
        __builtin_trap();
    return block;
}
void free_or_crash(void* block) {
    pvkit::guest::Heap* heap = pvkit::guest::global_heap();
    if (block != nullptr && (heap == nullptr || heap->free(block) != pvkit::guest::HeapError::none))
        __builtin_trap();
}
}  // namespace

void* operator new(std::size_t bytes) { return allocate_or_crash(bytes); }
void* operator new[](std::size_t bytes) { return allocate_or_crash(bytes); }
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
    pvkit::guest::Heap* heap = pvkit::guest::global_heap();
    return heap != nullptr ? heap->allocate(bytes) : nullptr;
}
void* operator new[](std::size_t bytes, const std::nothrow_t& tag) noexcept { return operator new(bytes, tag); }
void operator delete(void* block) noexcept { free_or_crash(block); }
void operator delete[](void* block) noexcept { free_or_crash(block); }
void operator delete(void* block, std::size_t) noexcept { free_or_crash(block); }
void operator delete[](void* block, std::size_t) noexcept { free_or_crash(block); }

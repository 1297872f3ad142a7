// guest/heap.hpp and pvkit/heap.h: the heap over pages of an array standing in for guest memory.
#include <guest/heap.hpp>
#include <pvkit/heap.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

namespace {
using namespace pvkit::guest;

struct HeapFixture {
    static constexpr std::uint64_t first_pfn = 0x400;
    static constexpr std::size_t page_count = 32;
    alignas(4096) static inline unsigned char memory[page_count * 4096];
    std::uint64_t bitmap[1] = {};
    PageAllocator pages;
    Heap heap{pages, map_page, nullptr};

    static void* map_page(Pfn pfn, void*) {
        REQUIRE(pfn.value >= first_pfn);
        REQUIRE(pfn.value < first_pfn + page_count);
        return memory + (pfn.value - first_pfn) * 4096;
    }
    HeapFixture() {
        std::memset(memory, 0xEE, sizeof memory);
        REQUIRE(pages.init(Pfn{first_pfn}, page_count, bitmap) == PageError::none);
    }
};
}  // namespace

TEST_CASE_METHOD(HeapFixture, "libguest: heap blocks are aligned, disjoint and as large as asked", "[unit][heap]") {
    struct Block {
        unsigned char* data;
        std::size_t bytes;
    };
    std::vector<Block> blocks;
    for (std::size_t bytes : {0ul, 1ul, 15ul, 16ul, 17ul, 100ul, 1000ul, 2032ul, 2033ul, 4080ul, 4081ul, 9000ul}) {
        auto* data = static_cast<unsigned char*>(heap.allocate(bytes));
        REQUIRE(data != nullptr);
        CHECK(reinterpret_cast<std::uintptr_t>(data) % Heap::alignment == 0);
        CHECK(heap.usable_size(data) >= bytes);
        CHECK(data >= memory);
        CHECK(data + bytes <= memory + sizeof memory);
        blocks.push_back({data, bytes});
    }
    CHECK(heap.usable_size(blocks[9].data) == 4080);  // 4080 bytes fill one page with its header
    CHECK(heap.usable_size(blocks[10].data) == 2 * 4096 - 16);
    // Fill each with its own byte, then check none overwrote another.
    for (std::size_t i = 0; i < blocks.size(); ++i)
        std::memset(blocks[i].data, int(i + 1), blocks[i].bytes);
    for (std::size_t i = 0; i < blocks.size(); ++i)
        for (std::size_t j = 0; j < blocks[i].bytes; ++j)
            REQUIRE(blocks[i].data[j] == i + 1);
    CHECK(heap.blocks_in_use() == blocks.size());
    std::size_t usable = 0;
    for (const Block& block : blocks)
        usable += heap.usable_size(block.data);
    CHECK(heap.bytes_in_use() == usable);
    for (const Block& block : blocks) {
        const std::size_t before = heap.bytes_in_use();
        const std::size_t size = heap.usable_size(block.data);
        REQUIRE(heap.free(block.data) == HeapError::none);
        CHECK(heap.bytes_in_use() == before - size);
    }
    CHECK(heap.blocks_in_use() == 0);
    CHECK(heap.bytes_in_use() == 0);
    CHECK(heap.free(nullptr) == HeapError::none);
}

TEST_CASE_METHOD(HeapFixture, "libguest: freed small blocks are reused and large ones give their pages back",
                 "[unit][heap]") {
    void* small = heap.allocate(40);
    REQUIRE(small != nullptr);
    REQUIRE(heap.free(small) == HeapError::none);
    CHECK(heap.allocate(48) == small);  // same class (64-byte slots): the slot just freed
    CHECK(heap.usable_size(heap.allocate(49)) == 128 - 16);  // the next class

    const std::size_t free_before = pages.free_pages();
    void* large = heap.allocate(3 * 4096);
    REQUIRE(large != nullptr);
    CHECK(pages.free_pages() == free_before - 4);  // three pages and the header's share of a fourth
    REQUIRE(heap.free(large) == HeapError::none);
    CHECK(pages.free_pages() == free_before);
    CHECK(pages.check_invariants());
}

TEST_CASE_METHOD(HeapFixture, "libguest: an exhausted heap returns null and stays usable", "[unit][heap]") {
    std::vector<void*> blocks;
    while (void* block = heap.allocate(4000))  // one page each
        blocks.push_back(block);
    CHECK(blocks.size() == page_count);
    CHECK(pages.free_pages() == 0);
    CHECK(heap.allocate(1) == nullptr);  // no page left to carve a class from
    CHECK(heap.allocate(SIZE_MAX) == nullptr);
    CHECK(heap.allocate(SIZE_MAX - 8) == nullptr);
    REQUIRE(heap.free(blocks.back()) == HeapError::none);
    CHECK(heap.allocate(1) != nullptr);
}

TEST_CASE_METHOD(HeapFixture, "libguest: a double free is reported and changes nothing", "[unit][heap][hostile]") {
    void* a = heap.allocate(24);
    void* b = heap.allocate(24);
    REQUIRE(heap.free(a) == HeapError::none);
    std::vector<unsigned char> before(memory, memory + sizeof memory);
    const std::uint64_t bitmap_before = bitmap[0];
    CHECK(heap.free(a) == HeapError::double_free);
    CHECK(std::memcmp(before.data(), memory, sizeof memory) == 0);
    CHECK(bitmap[0] == bitmap_before);
    CHECK(heap.blocks_in_use() == 1);
    // The free list is intact: the next two allocations are a, then a fresh slot, never a twice.
    void* first = heap.allocate(24);
    void* second = heap.allocate(24);
    CHECK(first == a);
    CHECK(second != a);
    CHECK(second != b);

    void* large = heap.allocate(5000);
    REQUIRE(heap.free(large) == HeapError::none);
    const std::uint64_t bitmap_after_large = bitmap[0];
    const std::size_t bytes_before = heap.bytes_in_use();
    CHECK(heap.free(large) == HeapError::not_heap_block);  // its pages went back: no header left
    CHECK(bitmap[0] == bitmap_after_large);
    CHECK(heap.bytes_in_use() == bytes_before);
}

TEST_CASE_METHOD(HeapFixture, "libguest: pointers that are not heap blocks are refused and change nothing",
                 "[unit][heap][hostile]") {
    auto* block = static_cast<unsigned char*>(heap.allocate(100));
    auto* large = static_cast<unsigned char*>(heap.allocate(5000));
    REQUIRE(block != nullptr);
    REQUIRE(large != nullptr);
    std::vector<unsigned char> before(memory, memory + sizeof memory);
    const std::uint64_t bitmap_before = bitmap[0];
    alignas(16) static unsigned char elsewhere[64] = {};
    CHECK(heap.free(block + 1) == HeapError::not_heap_block);   // misaligned
    CHECK(heap.free(block + 16) == HeapError::not_heap_block);  // inside the block: no header
    CHECK(heap.free(large + 4096) == HeapError::not_heap_block);
    CHECK(heap.free(elsewhere + 16) == HeapError::not_heap_block);
    CHECK(std::memcmp(before.data(), memory, sizeof memory) == 0);
    CHECK(bitmap[0] == bitmap_before);

    // A large header that lies about its first page cannot free pages it does not sit on.
    std::uint64_t* header = reinterpret_cast<std::uint64_t*>(large - 16);
    const std::uint64_t real_first = header[1];
    header[1] = real_first + 8;
    CHECK(heap.free(large) == HeapError::not_heap_block);
    CHECK(bitmap[0] == bitmap_before);
    header[1] = real_first;
    CHECK(heap.free(large) == HeapError::none);
    CHECK(heap.blocks_in_use() == 1);
}

TEST_CASE_METHOD(HeapFixture, "libguest: pvk_malloc, pvk_calloc and pvk_free use the global heap", "[unit][heap]") {
    set_global_heap(nullptr);
    CHECK(pvk_malloc(8) == nullptr);
    CHECK(pvk_heap_get_usage().blocks == 0);
    set_global_heap(&heap);
    auto* bytes = static_cast<unsigned char*>(pvk_calloc(10, 30));
    REQUIRE(bytes != nullptr);
    for (std::size_t i = 0; i < 300; ++i)
        REQUIRE(bytes[i] == 0);  // the arena was 0xEE before
    CHECK(pvk_calloc(SIZE_MAX / 2, 3) == nullptr);  // the product overflows
    void* other = pvk_malloc(3);
    const pvk_heap_usage usage = pvk_heap_get_usage();
    CHECK(usage.blocks == 2);
    CHECK(usage.bytes == (512 - 16) + (32 - 16));  // 300 bytes in a 512-byte slot, 3 in a 32-byte one
    CHECK(pvk_free(bytes) == PVK_HEAP_OK);
    CHECK(pvk_free(bytes) == PVK_HEAP_DOUBLE_FREE);
    CHECK(pvk_free(static_cast<unsigned char*>(other) + 8) == PVK_HEAP_NOT_A_BLOCK);
    CHECK(pvk_free(other) == PVK_HEAP_OK);
    CHECK(pvk_free(nullptr) == PVK_HEAP_OK);
    CHECK(pvk_heap_get_usage().blocks == 0);
    CHECK(pvk_heap_get_usage().bytes == 0);
    set_global_heap(nullptr);
}

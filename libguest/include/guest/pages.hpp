// The page allocator over the guest's pseudo-physical frames.
//
// It hands out pfns from one range [first, first + count): the frames the start of day leaves free
// (after the kernel, the p2m list, start_info, the store and console pages and the bootstrap page
// tables, up to nr_pages). One bit per frame in a bitmap the caller provides (bitmap_words(count)
// 64-bit words; nothing is allocated behind the caller's back): 1 = allocated or reserved, 0 = free.
// Invariants, which check_invariants() recomputes:
//   - free_pages() equals the number of clear bits among the first `count`;
//   - the bits past `count` in the last word stay set, so no search can hand them out.
// Requests are validated before anything changes: freeing a page that is already free, or a range
// reaching outside the allocator, fails with an error and leaves the bitmap as it was. Single pages
// are found next-fit from where the last search ended; runs first-fit from the start, with an
// optional power-of-two alignment of the pfn. Every search is bounded by the bitmap's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pvkit::guest {

struct Pfn {
    std::uint64_t value;
    friend constexpr bool operator==(Pfn, Pfn) = default;
};

enum class PageError : std::uint8_t {
    none,
    invalid_argument,   // a count of 0, an alignment that is not a power of two
    bitmap_too_small,   // init() given fewer than bitmap_words(count) words
    out_of_range,       // some page of the range is not the allocator's
    out_of_memory,      // no free run of that length (and alignment)
    already_allocated,  // reserve() of a page in use
    not_allocated,      // free() of a page that is free: a double free, or a stray pfn
};

struct PageRun {
    Pfn first;
    PageError error;
    explicit operator bool() const { return error == PageError::none; }
};

class PageAllocator {
public:
    static constexpr std::size_t bitmap_words(std::size_t pages) { return (pages + 63) / 64; }

    // Takes over [first, first + count) with every page free.
    [[nodiscard]] PageError init(Pfn first, std::size_t count, std::span<std::uint64_t> bitmap);

    [[nodiscard]] PageRun allocate(std::size_t count = 1, std::size_t align_pages = 1);
    [[nodiscard]] PageError free(Pfn first, std::size_t count = 1);
    // Marks pages in use that the allocator must never hand out (its own bitmap, for example).
    [[nodiscard]] PageError reserve(Pfn first, std::size_t count = 1);

    bool allocated(Pfn pfn) const;
    Pfn first() const { return first_; }
    std::size_t total_pages() const { return count_; }
    std::size_t free_pages() const { return free_; }
    // Recounts the bitmap against free_pages() and the padding bits; whether they agree.
    bool check_invariants() const;

private:
    bool bit(std::size_t index) const { return (bitmap_[index / 64] >> (index % 64)) & 1; }
    void set_bits(std::size_t index, std::size_t count, bool value);
    bool all_equal(std::size_t index, std::size_t count, bool value) const;
    [[nodiscard]] PageError move_range(Pfn first, std::size_t count, bool to_allocated);
    bool in_range(Pfn first, std::size_t count) const;
    PageError check_range(Pfn first, std::size_t count) const;  // invalid_argument, out_of_range or none

    Pfn first_{0};
    std::size_t count_ = 0;
    std::size_t free_ = 0;
    std::size_t next_fit_ = 0;
    std::span<std::uint64_t> bitmap_;
};

}  // namespace pvkit::guest

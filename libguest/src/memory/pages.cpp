// The page allocator; its bitmap and invariants are described in guest/pages.hpp.
#include <guest/pages.hpp>

namespace pvkit::guest {

PageError PageAllocator::init(Pfn first, std::size_t count, std::span<std::uint64_t> bitmap) {
    if (count == 0 || first.value + count < first.value)
        return PageError::invalid_argument;
    if (bitmap.size() < bitmap_words(count))
        return PageError::bitmap_too_small;
    first_ = first;
    count_ = count;
    free_ = count;
    next_fit_ = 0;
    bitmap_ = bitmap.first(bitmap_words(count));
    for (auto& word : bitmap_)
        word = 0;
    if (count % 64 != 0)  // the padding past the last page: never free
        bitmap_.back() = ~std::uint64_t{0} << (count % 64);
    return PageError::none;
}

void PageAllocator::set_bits(std::size_t index, std::size_t count, bool value) {
    for (std::size_t i = index; i < index + count; ++i) {
        const std::uint64_t mask = std::uint64_t{1} << (i % 64);
        bitmap_[i / 64] = value ? bitmap_[i / 64] | mask : bitmap_[i / 64] & ~mask;
    }
}

bool PageAllocator::all_equal(std::size_t index, std::size_t count, bool value) const {
    for (std::size_t i = index; i < index + count; ++i)
        if (bit(i) != value)
            return false;
    return true;
}

bool PageAllocator::in_range(Pfn first, std::size_t count) const {
    return first.value >= first_.value && first.value - first_.value <= count_ &&
           count <= count_ - (first.value - first_.value);
}

bool PageAllocator::allocated(Pfn pfn) const {
    return in_range(pfn, 1) && bit(pfn.value - first_.value);
}

PageRun PageAllocator::allocate(std::size_t count, std::size_t align_pages) {
    if (count == 0 || align_pages == 0 || (align_pages & (align_pages - 1)) != 0)
        return {{0}, PageError::invalid_argument};
    if (count > free_)
        return {{0}, PageError::out_of_memory};
    if (count == 1 && align_pages == 1) {
        // Next fit, a word at a time: free_ > 0 guarantees a clear bit within one sweep.
        const std::size_t words = bitmap_.size();
        for (std::size_t step = 0; step <= words; ++step) {
            const std::size_t w = (next_fit_ / 64 + step) % words;
            if (bitmap_[w] == ~std::uint64_t{0})
                continue;
            const std::size_t index = w * 64 + static_cast<std::size_t>(__builtin_ctzll(~bitmap_[w]));
            set_bits(index, 1, true);
            --free_;
            next_fit_ = index + 1 < count_ ? index + 1 : 0;
            return {{first_.value + index}, PageError::none};
        }
        return {{0}, PageError::out_of_memory};  // unreachable while the invariants hold
    }
    // First fit: candidate starts are pfns that are multiples of the alignment.
    auto aligned_index = [&](std::size_t from) {
        const std::uint64_t pfn = first_.value + from;
        return static_cast<std::size_t>(((pfn + align_pages - 1) & ~std::uint64_t{align_pages - 1}) - first_.value);
    };
    std::size_t index = aligned_index(0);
    while (index < count_ && count <= count_ - index) {
        std::size_t busy = index + count;
        for (std::size_t i = index + count; i-- > index;)  // from the end: skip past the last busy page
            if (bit(i)) {
                busy = i;
                break;
            }
        if (busy == index + count) {
            set_bits(index, count, true);
            free_ -= count;
            return {{first_.value + index}, PageError::none};
        }
        index = aligned_index(busy + 1);
    }
    return {{0}, PageError::out_of_memory};
}

PageError PageAllocator::check_range(Pfn first, std::size_t count) const {
    if (count == 0)
        return PageError::invalid_argument;
    return in_range(first, count) ? PageError::none : PageError::out_of_range;
}

// Moves a whole range from free to allocated or back; refused as a whole if any page is not in
// the state the move starts from.
PageError PageAllocator::move_range(Pfn first, std::size_t count, bool to_allocated) {
    if (const PageError error = check_range(first, count); error != PageError::none)
        return error;
    const std::size_t index = first.value - first_.value;
    if (!all_equal(index, count, !to_allocated))
        return to_allocated ? PageError::already_allocated : PageError::not_allocated;
    set_bits(index, count, to_allocated);
    free_ = to_allocated ? free_ - count : free_ + count;
    return PageError::none;
}

PageError PageAllocator::free(Pfn first, std::size_t count) { return move_range(first, count, false); }
PageError PageAllocator::reserve(Pfn first, std::size_t count) { return move_range(first, count, true); }

bool PageAllocator::check_invariants() const {
    std::size_t clear = 0;
    for (std::size_t i = 0; i < count_; ++i)
        clear += bit(i) ? 0 : 1;
    for (std::size_t i = count_; i < bitmap_.size() * 64; ++i)
        if (!bit(i))
            return false;
    return clear == free_;
}

}  // namespace pvkit::guest

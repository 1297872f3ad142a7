// SPDX-License-Identifier: BSD-2-Clause
// Physical memory at boot: the RAM the PVH memory map reports, minus what is already in use (low
// memory, this image, the loader's modules), from which the frame table's own storage is carved
// before every remaining page goes to the heap.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace hypervisor {

class BootMemory {
public:
    static constexpr std::size_t max_ranges = 64;
    static constexpr std::uint64_t page = 4096;

    // [start, end) is RAM; shrunk inward to whole pages. False when the table is full.
    bool add_ram(std::uint64_t start, std::uint64_t end);
    // [start, end) is in use; widened outward to whole pages. False when the table is full.
    bool reserve(std::uint64_t start, std::uint64_t end);

    // One past the highest RAM address.
    std::uint64_t top() const { return top_; }
    // A free, page-aligned run of at least `size` bytes, now reserved; nullopt if there is none.
    std::optional<std::uint64_t> carve(std::uint64_t size);

    // Calls visit(start, end) for every free run (RAM and not reserved), in address order.
    template <class Visit>
    void for_each_free(Visit visit) const {
        for (std::size_t r = 0; r < ram_count_; ++r) {
            std::uint64_t cursor = ram_[r].start;
            for (std::size_t i = 0; i < reserved_count_ && cursor < ram_[r].end; ++i) {
                const Range& used = reserved_[i];  // sorted by start
                if (used.end <= cursor || used.start >= ram_[r].end)
                    continue;
                if (used.start > cursor)
                    visit(cursor, used.start);
                cursor = used.end > cursor ? used.end : cursor;
            }
            if (cursor < ram_[r].end)
                visit(cursor, ram_[r].end);
        }
    }

private:
    struct Range {
        std::uint64_t start, end;
    };
    static bool insert_sorted(std::array<Range, max_ranges>& ranges, std::size_t& count, Range range);

    std::array<Range, max_ranges> ram_{};
    std::size_t ram_count_ = 0;
    std::array<Range, max_ranges> reserved_{};
    std::size_t reserved_count_ = 0;
    std::uint64_t top_ = 0;
};

}  // namespace hypervisor

// SPDX-License-Identifier: BSD-2-Clause
#include "boot_memory.hpp"

namespace hypervisor {

bool BootMemory::insert_sorted(std::array<Range, max_ranges>& ranges, std::size_t& count, Range range) {
    if (count == max_ranges)
        return false;
    std::size_t at = count;
    while (at > 0 && ranges[at - 1].start > range.start) {
        ranges[at] = ranges[at - 1];
        --at;
    }
    ranges[at] = range;
    ++count;
    return true;
}

bool BootMemory::add_ram(std::uint64_t start, std::uint64_t end) {
    start = (start + page - 1) / page * page;
    end = end / page * page;
    if (start >= end)
        return true;
    if (end > top_)
        top_ = end;
    return insert_sorted(ram_, ram_count_, {start, end});
}

bool BootMemory::reserve(std::uint64_t start, std::uint64_t end) {
    start = start / page * page;
    end = (end + page - 1) / page * page;
    if (start >= end)
        return true;
    return insert_sorted(reserved_, reserved_count_, {start, end});
}

std::optional<std::uint64_t> BootMemory::carve(std::uint64_t size) {
    size = (size + page - 1) / page * page;
    std::optional<std::uint64_t> found;
    for_each_free([&](std::uint64_t start, std::uint64_t end) {
        if (!found && end - start >= size)
            found = start;
    });
    if (found && !reserve(*found, *found + size))
        return std::nullopt;
    return found;
}

}  // namespace hypervisor

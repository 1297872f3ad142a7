// What a blkif request asks of a RAM disk, and what a `params` names (ram_disk.hpp). Nothing here
// touches memory or makes a hypercall: the host's unit tests build it too.
#include "ram_disk.hpp"

#include <charconv>

namespace blkback {

namespace abi = pvkit::abi;

namespace {
RequestPlan answer(std::int16_t status) {
    RequestPlan plan;
    plan.status = status;
    return plan;
}

constexpr std::uint32_t sectors_per_page = page_bytes / sector_bytes;

// The copies of a READ or WRITE (or a flush carrying data), every segment checked first.
RequestPlan plan_transfer(const RamDisk& disk, abi::domid_t frontend, const abi::blkif_request& request,
                          bool to_frontend) {
    if (request.nr_segments == 0 || request.nr_segments > abi::BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return answer(abi::BLKIF_RSP_ERROR);
    RequestPlan plan;
    std::size_t count = 0;
    std::uint64_t sector = request.sector_number;
    for (std::size_t i = 0; i < request.nr_segments; ++i) {
        const abi::blkif_request_segment& segment = request.seg[i];
        if (segment.first_sect > segment.last_sect || segment.last_sect >= sectors_per_page)
            return answer(abi::BLKIF_RSP_ERROR);  // nothing of the segments before either
        const std::uint64_t sectors = segment.last_sect - segment.first_sect + 1u;
        if (sector > disk.sectors || sectors > disk.sectors - sector)
            return answer(abi::BLKIF_RSP_ERROR);
        std::uint64_t disk_offset = sector * sector_bytes;
        auto grant_offset = static_cast<std::uint16_t>(segment.first_sect * sector_bytes);
        std::uint64_t left = sectors * sector_bytes;
        while (left > 0) {
            const std::uint64_t room = page_bytes - disk_offset % page_bytes;
            const auto length = static_cast<std::uint16_t>(left < room ? left : room);
            plan.copies[count++] = {frontend, segment.gref, grant_offset, disk.bytes + disk_offset, length, to_frontend};
            disk_offset += length;
            grant_offset = static_cast<std::uint16_t>(grant_offset + length);
            left -= length;
        }
        sector += sectors;
    }
    plan.count = count;
    return plan;
}
}  // namespace

std::uint64_t ram_disk_bytes(std::string_view params) {
    constexpr std::string_view prefix = "ram:";
    // (substr() could throw, which a freestanding guest cannot: views are cut by hand.)
    if (params.size() <= prefix.size() || std::string_view{params.data(), prefix.size()} != prefix)
        return 0;
    const char* first = params.data() + prefix.size();
    const char* last = params.data() + params.size();
    std::uint64_t number = 0;
    const auto parsed = std::from_chars(first, last, number);
    if (parsed.ec != std::errc{} || parsed.ptr == first)
        return 0;
    unsigned shift = 0;
    if (parsed.ptr != last) {
        if (parsed.ptr + 1 != last)
            return 0;
        switch (*parsed.ptr) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: return 0;
        }
    }
    if (number > (~std::uint64_t{0} >> shift))
        return 0;
    const std::uint64_t bytes = number << shift;
    return bytes % sector_bytes == 0 ? bytes : 0;  // (0 for "ram:0" too)
}

RequestPlan plan_request(const RamDisk& disk, abi::domid_t frontend, const abi::blkif_request& request) {
    switch (request.operation) {
    case abi::BLKIF_OP_READ:
        return plan_transfer(disk, frontend, request, true);
    case abi::BLKIF_OP_WRITE:
        return disk.read_only ? answer(abi::BLKIF_RSP_ERROR) : plan_transfer(disk, frontend, request, false);
    case abi::BLKIF_OP_FLUSH_DISKCACHE:
        // RAM keeps no cache to flush. Linux sends its FUA writes as flushes with segments: the
        // data is written like a WRITE's.
        if (request.nr_segments == 0)
            return answer(abi::BLKIF_RSP_OKAY);
        return disk.read_only ? answer(abi::BLKIF_RSP_ERROR) : plan_transfer(disk, frontend, request, false);
    default:
        return answer(abi::BLKIF_RSP_EOPNOTSUPP);
    }
}

}  // namespace blkback

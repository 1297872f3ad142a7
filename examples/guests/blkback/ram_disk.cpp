// RAM disks and blkif requests on them (ram_disk.hpp).
#include "ram_disk.hpp"

#include <guest/grants.hpp>
#include <guest/start.hpp>

#include <charconv>

namespace blkback {

namespace abi = pvkit::abi;
namespace guest = pvkit::guest;

namespace {
constexpr std::uint64_t page_bytes = 4096;
constexpr std::uint32_t sectors_per_page = page_bytes / sector_bytes;

std::size_t pages_of(std::uint64_t bytes) { return static_cast<std::size_t>((bytes + page_bytes - 1) / page_bytes); }

enum class Direction : bool { to_frontend, from_frontend };

// Copies the sectors of a READ or WRITE (or a flush carrying data) between the disk and the
// frontend's granted pages, after checking every segment.
std::int16_t transfer(const RamDisk& disk, abi::domid_t frontend, const abi::blkif_request& request,
                      Direction direction) {
    if (request.nr_segments == 0 || request.nr_segments > abi::BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return abi::BLKIF_RSP_ERROR;
    // A segment is at most a page; sectors being 512-byte aligned, its bytes lie on at most two
    // pages of the disk, one copy each.
    guest::GrantCopy pieces[2 * abi::BLKIF_MAX_SEGMENTS_PER_REQUEST];
    std::size_t count = 0;
    std::uint64_t sector = request.sector_number;
    for (std::size_t i = 0; i < request.nr_segments; ++i) {
        const abi::blkif_request_segment& segment = request.seg[i];
        if (segment.first_sect > segment.last_sect || segment.last_sect >= sectors_per_page)
            return abi::BLKIF_RSP_ERROR;
        const std::uint64_t sectors = segment.last_sect - segment.first_sect + 1u;
        if (sector > disk.sectors || sectors > disk.sectors - sector)
            return abi::BLKIF_RSP_ERROR;
        std::uint64_t disk_offset = sector * sector_bytes;
        auto grant_offset = static_cast<std::uint16_t>(segment.first_sect * sector_bytes);
        std::uint64_t left = sectors * sector_bytes;
        while (left > 0) {
            const std::uint64_t room = page_bytes - disk_offset % page_bytes;
            const auto length = static_cast<std::uint16_t>(left < room ? left : room);
            pieces[count++] = {frontend, segment.gref, grant_offset, disk.bytes + disk_offset, length,
                               direction == Direction::to_frontend};
            disk_offset += length;
            grant_offset = static_cast<std::uint16_t>(grant_offset + length);
            left -= length;
        }
        sector += sectors;
    }
    static_assert(2 * abi::BLKIF_MAX_SEGMENTS_PER_REQUEST <= guest::grant_copy_batch, "one hypercall per request");
    return guest::copy_grants({pieces, count}) == abi::GNTST_okay ? abi::BLKIF_RSP_OKAY : abi::BLKIF_RSP_ERROR;
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
    if (number == 0 || number > (~std::uint64_t{0} >> shift))
        return 0;
    const std::uint64_t bytes = number << shift;
    return bytes % sector_bytes == 0 ? bytes : 0;
}

bool allocate_ram_disk(RamDisk& disk, std::uint64_t bytes, bool read_only) {
    guest::PageAllocator* pages = guest::page_allocator();
    if (pages == nullptr)
        return false;
    const guest::PageRun run = pages->allocate(pages_of(bytes));
    if (!run)
        return false;
    disk.bytes = static_cast<unsigned char*>(guest::pfn_to_virt(run.first));
    disk.sectors = bytes / sector_bytes;
    disk.read_only = read_only;
    __builtin_memset(disk.bytes, 0, pages_of(bytes) * page_bytes);  // a new disk reads as zeros
    return true;
}

void release_ram_disk(RamDisk& disk) {
    guest::PageAllocator* pages = guest::page_allocator();
    if (disk.bytes != nullptr && pages != nullptr)
        (void)pages->free(guest::virt_to_pfn(disk.bytes), pages_of(disk.sectors * sector_bytes));
    disk = {};
}

std::int16_t serve_request(const RamDisk& disk, abi::domid_t frontend, const abi::blkif_request& request) {
    switch (request.operation) {
    case abi::BLKIF_OP_READ:
        return transfer(disk, frontend, request, Direction::to_frontend);
    case abi::BLKIF_OP_WRITE:
        return disk.read_only ? abi::BLKIF_RSP_ERROR : transfer(disk, frontend, request, Direction::from_frontend);
    case abi::BLKIF_OP_FLUSH_DISKCACHE:
        // RAM keeps no cache to flush. Linux sends its FUA writes as flushes with segments: the
        // data is written like a WRITE's.
        if (request.nr_segments == 0)
            return abi::BLKIF_RSP_OKAY;
        return disk.read_only ? abi::BLKIF_RSP_ERROR : transfer(disk, frontend, request, Direction::from_frontend);
    default:
        return abi::BLKIF_RSP_EOPNOTSUPP;
    }
}

}  // namespace blkback

// A RAM disk served over blkif (io/blkif.h): its pages, and what one request does to them.
//
// Everything in a request comes from the frontend and is hostile. A request is checked whole
// before any byte moves: its operation, 1..11 segments (none only for a flush), each segment's
// first_sect <= last_sect < 8 inside its granted page, every sector inside the disk, no write to a
// read-only disk. The data then moves in one GNTTABOP_copy batch between the disk's pages and the
// granted pages (the backend maps nothing, so the frontend's grants cost no maptrack entries); a
// copy the hypervisor refuses (a bad ref, a read-only grant for a read) is BLKIF_RSP_ERROR.
#pragma once

#include <guest/grants.hpp>
#include <pvkit/abi.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace blkback {

inline constexpr std::uint32_t sector_bytes = 512;
inline constexpr std::uint64_t page_bytes = 4096;

struct RamDisk {
    unsigned char* bytes = nullptr;  // sectors * 512 bytes, a run of the page allocator's pages
    std::uint64_t sectors = 0;
    bool read_only = false;
};

// The size in bytes that a `params` of "ram:<size>" names: a number with a K, M or G suffix
// (powers of 1024), or none for bytes. 0 when it is not that, or not a whole number of sectors.
std::uint64_t ram_disk_bytes(std::string_view params);

// What one request asks of the disk, decided before any byte moves: the answer when it is
// refused or needs no data (a flush without segments), else the grant copies that carry its data
// (a segment is at most a page and sectors are 512-byte aligned, so it lies on at most two pages of
// the disk: two copies). Pure: requests.cpp, unit-tested on the host.
struct RequestPlan {
    std::int16_t status = pvkit::abi::BLKIF_RSP_OKAY;  // BLKIF_RSP_*
    std::array<pvkit::guest::GrantCopy, 2 * pvkit::abi::BLKIF_MAX_SEGMENTS_PER_REQUEST> copies{};
    std::size_t count = 0;
};
RequestPlan plan_request(const RamDisk& disk, pvkit::abi::domid_t frontend, const pvkit::abi::blkif_request& request);

// Takes zeroed pages for a disk of `bytes`; false when there are not enough.
bool allocate_ram_disk(RamDisk& disk, std::uint64_t bytes, bool read_only);
void release_ram_disk(RamDisk& disk);

// Performs one request of domain `frontend` on the disk (plan_request, then one GNTTABOP_copy
// batch); the BLKIF_RSP_* status to answer.
std::int16_t serve_request(const RamDisk& disk, pvkit::abi::domid_t frontend, const pvkit::abi::blkif_request& request);

}  // namespace blkback

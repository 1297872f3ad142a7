// RAM disks: their pages, and requests carried out on them (ram_disk.hpp).
#include "ram_disk.hpp"

#include <guest/grants.hpp>
#include <guest/start.hpp>

namespace blkback {

namespace abi = pvkit::abi;
namespace guest = pvkit::guest;

namespace {
std::size_t pages_of(std::uint64_t bytes) { return static_cast<std::size_t>((bytes + page_bytes - 1) / page_bytes); }
}  // namespace

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
    const RequestPlan plan = plan_request(disk, frontend, request);
    if (plan.status != abi::BLKIF_RSP_OKAY || plan.count == 0)
        return plan.status;
    static_assert(std::tuple_size_v<decltype(plan.copies)> <= guest::grant_copy_batch, "one hypercall per request");
    return guest::copy_grants({plan.copies.data(), plan.count}) == abi::GNTST_okay ? abi::BLKIF_RSP_OKAY
                                                                                     : abi::BLKIF_RSP_ERROR;
}

}  // namespace blkback

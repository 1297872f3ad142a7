// examples/guests/blkback/requests.cpp: what a blkif request from a hostile frontend gets from
// the RAM-disk backend, decided before any byte moves, and what a `params` names.
#include "ram_disk.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

namespace {
namespace abi = pvkit::abi;
using blkback::plan_request;
using blkback::RamDisk;
using blkback::RequestPlan;

constexpr std::int16_t okay = abi::BLKIF_RSP_OKAY;
constexpr std::int16_t error = abi::BLKIF_RSP_ERROR;
constexpr std::int16_t unsupported = abi::BLKIF_RSP_EOPNOTSUPP;
constexpr abi::domid_t frontend = 7;

// A 64 KiB disk (128 sectors, 16 pages) over memory of the test's.
struct DiskFixture {
    std::vector<unsigned char> bytes = std::vector<unsigned char>(64 * 1024);
    RamDisk disk{bytes.data(), 128, false};
};

abi::blkif_request request_of(unsigned operation, std::uint64_t sector, unsigned segments,
                              std::uint8_t first_sect = 0, std::uint8_t last_sect = 7) {
    abi::blkif_request request{};
    request.operation = static_cast<std::uint8_t>(operation);
    request.nr_segments = static_cast<std::uint8_t>(segments);
    request.sector_number = sector;
    for (unsigned i = 0; i < abi::BLKIF_MAX_SEGMENTS_PER_REQUEST; ++i)
        request.seg[i] = {static_cast<abi::grant_ref_t>(100 + i), first_sect, last_sect};
    return request;
}

std::uint64_t bytes_copied(const RequestPlan& plan) {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < plan.count; ++i)
        total += plan.copies[i].length;
    return total;
}
}  // namespace

TEST_CASE("blkback: ram:<size> names a size in bytes, K, M or G, of whole sectors", "[examples][blkback]") {
    CHECK(blkback::ram_disk_bytes("ram:4M") == 4u << 20);
    CHECK(blkback::ram_disk_bytes("ram:1K") == 1024);
    CHECK(blkback::ram_disk_bytes("ram:2G") == 2ull << 30);
    CHECK(blkback::ram_disk_bytes("ram:512") == 512);
    CHECK(blkback::ram_disk_bytes("ram:17179869183G") == 17179869183ull << 30);  // the most that fits
    for (const char* refused : {"ram:", "ram:0", "ram:0K", "ram:100", "ram:4m", "ram:4MB", "ram:4T", "ram: 4M",
                                "ram:-1", "ram:4M ", "disk:4M", "ram4M", "", "ram:17179869184G",
                                "ram:99999999999999999999"})
        CHECK(blkback::ram_disk_bytes(refused) == 0);
}

TEST_CASE_METHOD(DiskFixture, "blkback: a read of whole pages is a copy per segment, to the frontend's grants",
                 "[examples][blkback]") {
    const RequestPlan plan = plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 8, 11));
    REQUIRE(plan.status == okay);
    REQUIRE(plan.count == 11);
    for (std::size_t i = 0; i < plan.count; ++i) {
        const pvkit::guest::GrantCopy& copy = plan.copies[i];
        CHECK(copy.domid == frontend);
        CHECK(copy.ref == 100 + i);
        CHECK(copy.offset == 0);
        CHECK(copy.length == 4096);
        CHECK(copy.local == bytes.data() + (1 + i) * 4096);
        CHECK(copy.to_grant);
    }
}

TEST_CASE_METHOD(DiskFixture, "blkback: a segment on two pages of the disk is two copies, in order",
                 "[examples][blkback]") {
    // Sector 3 is not page-aligned: sectors 2..7 of the granted page (6 sectors) land on disk
    // sectors 3..8, across the disk's first page boundary; the second segment follows on, inside one page.
    const RequestPlan plan = plan_request(disk, frontend, request_of(abi::BLKIF_OP_WRITE, 3, 2, 2, 7));
    REQUIRE(plan.status == okay);
    REQUIRE(plan.count == 3);
    CHECK(plan.copies[0].offset == 1024);
    CHECK(plan.copies[0].length == 2560);  // disk sectors 3..7
    CHECK(plan.copies[0].local == bytes.data() + 3 * 512);
    CHECK(plan.copies[1].offset == 3584);
    CHECK(plan.copies[1].length == 512);  // disk sector 8, the next page
    CHECK(plan.copies[1].local == bytes.data() + 8 * 512);
    CHECK(plan.copies[2].ref == 101);
    CHECK(plan.copies[2].local == bytes.data() + 9 * 512);
    CHECK(plan.copies[2].length == 3072);  // disk sectors 9..14, inside the second page
    CHECK(bytes_copied(plan) == 12 * 512);
    for (std::size_t i = 0; i < plan.count; ++i)
        CHECK_FALSE(plan.copies[i].to_grant);  // a write copies from the frontend
}

TEST_CASE_METHOD(DiskFixture, "blkback: a request reaching the disk's last sector is served, one past it refused",
                 "[examples][blkback]") {
    const RequestPlan last = plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 127, 1, 0, 0));
    CHECK(last.status == okay);
    CHECK(last.count == 1);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 127, 1, 0, 1)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 128, 1, 0, 0)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 120, 2)).status == error);
    // Sector numbers so large that sector * 512 would wrap.
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, ~0ull, 1)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_WRITE, 1ull << 55, 1)).status == error);
}

TEST_CASE_METHOD(DiskFixture, "blkback: malformed segments refuse the whole request, nothing to copy",
                 "[examples][blkback]") {
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 0)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 12)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_WRITE, 0, 255)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 1, 5, 4)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 1, 0, 8)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 1, 255, 255)).status == error);
    // Ten good segments, then a bad one: nothing of the first ten is planned.
    abi::blkif_request request = request_of(abi::BLKIF_OP_WRITE, 0, 11);
    request.seg[10].last_sect = 9;
    const RequestPlan plan = plan_request(disk, frontend, request);
    CHECK(plan.status == error);
    CHECK(plan.count == 0);
    for (const pvkit::guest::GrantCopy& copy : plan.copies)
        CHECK((copy.local == nullptr && copy.length == 0));
}

TEST_CASE_METHOD(DiskFixture, "blkback: a read-only disk is read, never written, flushes with data included",
                 "[examples][blkback]") {
    disk.read_only = true;
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_READ, 0, 1)).status == okay);
    const RequestPlan write = plan_request(disk, frontend, request_of(abi::BLKIF_OP_WRITE, 0, 1));
    CHECK(write.status == error);
    CHECK(write.count == 0);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_FLUSH_DISKCACHE, 0, 1)).status == error);
    CHECK(plan_request(disk, frontend, request_of(abi::BLKIF_OP_FLUSH_DISKCACHE, 0, 0)).status == okay);
}

TEST_CASE_METHOD(DiskFixture, "blkback: a flush without segments needs no copy, one with data writes it",
                 "[examples][blkback]") {
    const RequestPlan bare = plan_request(disk, frontend, request_of(abi::BLKIF_OP_FLUSH_DISKCACHE, 0, 0));
    CHECK(bare.status == okay);
    CHECK(bare.count == 0);
    const RequestPlan with_data = plan_request(disk, frontend, request_of(abi::BLKIF_OP_FLUSH_DISKCACHE, 16, 3));
    CHECK(with_data.status == okay);
    REQUIRE(with_data.count == 3);
    CHECK_FALSE(with_data.copies[0].to_grant);
    CHECK(with_data.copies[0].local == bytes.data() + 16 * 512);
}

TEST_CASE_METHOD(DiskFixture, "blkback: other operations are not supported", "[examples][blkback]") {
    for (unsigned operation : {abi::BLKIF_OP_DISCARD, 2u, 4u, 6u, 255u}) {
        const RequestPlan plan = plan_request(disk, frontend, request_of(operation, 0, 1));
        CHECK(plan.status == unsupported);
        CHECK(plan.count == 0);
    }
}

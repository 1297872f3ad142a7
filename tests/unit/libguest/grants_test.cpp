// guest/grants.hpp: the granting side of a v1 grant table over a fake table, with the test as
// the hypervisor setting GTF_reading/GTF_writing.
#include <guest/grants.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <set>

namespace {
using namespace pvkit::guest;
namespace abi = pvkit::abi;

struct GrantFixture {
    std::array<abi::grant_entry_v1, 16> entries{};
    std::array<std::uint64_t, 1> bitmap{};
    GrantTable table;
    GrantFixture() { REQUIRE(table.init(entries, bitmap) == GrantError::none); }
};
}  // namespace

TEST_CASE_METHOD(GrantFixture, "libguest: a grant fills domid and frame, then the flags", "[libguest][grants]") {
    CHECK(table.free_entries() == 8);  // 16 entries, 8 reserved
    const GrantResult granted = table.grant_access(7, 0x12345, false);
    REQUIRE(granted);
    CHECK(granted.ref == 8);
    CHECK(entries[8].domid == 7);
    CHECK(entries[8].frame == 0x12345u);
    CHECK(entries[8].flags == abi::GTF_permit_access);
    const GrantResult readonly = table.grant_access(7, 0x777, true);
    REQUIRE(readonly);
    CHECK(entries[readonly.ref].flags == (abi::GTF_permit_access | abi::GTF_readonly));
    for (unsigned ref = 0; ref < abi::GNTTAB_NR_RESERVED_ENTRIES; ++ref)
        CHECK(entries[ref].flags == 0);  // the toolstack's entries are never touched
}

TEST_CASE_METHOD(GrantFixture, "libguest: grants run out, and ended ones are reused", "[libguest][grants]") {
    std::set<GrantRef> refs;
    for (int i = 0; i < 8; ++i) {
        const GrantResult granted = table.grant_access(1, 100 + i, false);
        REQUIRE(granted);
        refs.insert(granted.ref);
    }
    CHECK(refs.size() == 8);
    CHECK(*refs.begin() == 8);
    CHECK(*refs.rbegin() == 15);
    CHECK(table.grant_access(1, 200, false).error == GrantError::no_free_entry);
    CHECK(table.end_access(11) == GrantError::none);
    CHECK(entries[11].flags == 0);
    const GrantResult again = table.grant_access(2, 300, false);
    REQUIRE(again);
    CHECK(again.ref == 11);
    CHECK(table.grant_access(1, 1ull << 32, false).error != GrantError::none);  // no room in a v1 frame
}

TEST_CASE_METHOD(GrantFixture, "libguest: end_access is refused while the grantee maps the page", "[libguest][grants]") {
    const GrantResult granted = table.grant_access(3, 42, false);
    REQUIRE(granted);
    entries[granted.ref].flags |= abi::GTF_reading | abi::GTF_writing;  // the hypervisor pinned it
    CHECK(table.in_use(granted.ref));
    CHECK(table.end_access(granted.ref) == GrantError::in_use);
    CHECK((entries[granted.ref].flags & abi::GTF_permit_access) != 0);  // the grant stands
    CHECK(table.free_entries() == 7);
    entries[granted.ref].flags &= ~abi::GTF_writing;  // still read-mapped
    CHECK(table.end_access(granted.ref) == GrantError::in_use);
    entries[granted.ref].flags &= ~abi::GTF_reading;  // unmapped
    CHECK(table.end_access(granted.ref) == GrantError::none);
    CHECK(entries[granted.ref].flags == 0);
    CHECK(table.free_entries() == 8);
}

TEST_CASE_METHOD(GrantFixture, "libguest: end_access of refs never handed out is refused", "[libguest][grants][hostile]") {
    CHECK(table.end_access(3) == GrantError::bad_ref);   // reserved
    CHECK(table.end_access(9) == GrantError::bad_ref);   // free
    CHECK(table.end_access(16) == GrantError::bad_ref);  // beyond the table
    const GrantResult granted = table.grant_access(3, 42, false);
    REQUIRE(table.end_access(granted.ref) == GrantError::none);
    CHECK(table.end_access(granted.ref) == GrantError::bad_ref);  // twice
    CHECK(table.free_entries() == 8);
}

TEST_CASE("libguest: a grant table needs a bitmap for all its entries", "[libguest][grants]") {
    std::array<abi::grant_entry_v1, 512> entries{};
    std::array<std::uint64_t, 7> bitmap{};
    GrantTable table;
    CHECK(table.init(entries, bitmap) == GrantError::bitmap_too_small);
}

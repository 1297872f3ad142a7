#include <catch2/catch.hpp>

#include <vector>

#include <hv/pv_segments.hpp>

namespace {

using hv::pv::returnable_selectors;
namespace abi = pvkit::abi;

// Flat descriptors (base 0, limit 4 GiB), present, at the given privilege level.
constexpr std::uint64_t code64(unsigned dpl) { return 0x00AF'9B00'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t code32(unsigned dpl) { return 0x00CF'9B00'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t data(unsigned dpl) { return 0x00CF'9300'0000'FFFFull | (std::uint64_t{dpl} << 45); }
constexpr std::uint64_t not_present = 1ull << 47;
constexpr std::uint64_t read_only = 1ull << 41;  // the data descriptor's W bit
constexpr std::uint64_t long_and_default = 1ull << 54;  // D with L: reserved

constexpr std::uint16_t user_ds = 5 << 3 | 3, user_cs = 6 << 3 | 3;  // Linux's 0x2b and 0x33
constexpr std::uint16_t flat_cs = abi::FLAT_RING3_CS64, flat_ss = abi::FLAT_RING3_SS64;

// A guest GDT as Linux's: user data at 5, 64-bit user code at 6, the rest below null.
struct GuestGdt {
    GuestGdt() {
        entries[5] = data(3);
        entries[6] = code64(3);
    }
    std::vector<std::uint64_t> entries = std::vector<std::uint64_t>(512);
};

}  // namespace

TEST_CASE("pv: selectors: Xen's flat ones are returnable with or without a guest GDT", "[pv]") {
    CHECK(returnable_selectors(flat_cs, flat_ss, {}));
    GuestGdt gdt;
    CHECK(returnable_selectors(flat_cs, flat_ss, gdt.entries));
    CHECK(returnable_selectors(user_cs, flat_ss, gdt.entries));
    CHECK(returnable_selectors(flat_cs, user_ds, gdt.entries));
}

TEST_CASE("pv: selectors: the guest's own 64-bit code and writable data of DPL 3 are returnable", "[pv]") {
    GuestGdt gdt;
    CHECK(returnable_selectors(user_cs, user_ds, gdt.entries));
    // Accessed and conforming code, accessed data: still loadable.
    gdt.entries[6] |= 1ull << 40 | 1ull << 42;
    gdt.entries[5] |= 1ull << 40;
    CHECK(returnable_selectors(user_cs, user_ds, gdt.entries));
    // Anywhere below the reserved entries.
    std::vector<std::uint64_t> large(abi::FIRST_RESERVED_GDT_ENTRY);
    large.back() = code64(3);
    large[large.size() - 2] = data(3);
    const auto last = static_cast<std::uint16_t>((large.size() - 1) << 3 | 3);
    CHECK(returnable_selectors(last, static_cast<std::uint16_t>(last - 8), large));
}

TEST_CASE("pv: selectors: what iretq could not load is refused", "[pv][hostile]") {
    GuestGdt gdt;
    gdt.entries[1] = code64(3) & ~not_present;
    gdt.entries[2] = data(3) & ~not_present;
    gdt.entries[3] = code64(0);
    gdt.entries[4] = data(0);
    gdt.entries[7] = code32(3);
    gdt.entries[8] = code64(3) | long_and_default;
    gdt.entries[9] = data(3) & ~read_only;
    gdt.entries[10] = code64(3) & ~(1ull << 44);  // a system descriptor (validation never lets one in)
    const auto selector = [](unsigned index) { return static_cast<std::uint16_t>(index << 3 | 3); };

    CHECK_FALSE(returnable_selectors(selector(1), user_ds, gdt.entries));  // not present
    CHECK_FALSE(returnable_selectors(user_cs, selector(2), gdt.entries));
    CHECK_FALSE(returnable_selectors(selector(3), user_ds, gdt.entries));  // DPL 0
    CHECK_FALSE(returnable_selectors(user_cs, selector(4), gdt.entries));
    CHECK_FALSE(returnable_selectors(selector(7), user_ds, gdt.entries));  // compatibility mode
    CHECK_FALSE(returnable_selectors(selector(8), user_ds, gdt.entries));  // L and D
    CHECK_FALSE(returnable_selectors(user_cs, selector(9), gdt.entries));  // read-only stack
    CHECK_FALSE(returnable_selectors(selector(10), user_ds, gdt.entries));
    CHECK_FALSE(returnable_selectors(user_ds, user_ds, gdt.entries));      // data as code
    CHECK_FALSE(returnable_selectors(user_cs, user_cs, gdt.entries));      // code as stack
    CHECK_FALSE(returnable_selectors(3, user_ds, gdt.entries));            // null
    CHECK_FALSE(returnable_selectors(user_cs, 3, gdt.entries));
    CHECK_FALSE(returnable_selectors(user_cs | 4, user_ds, gdt.entries));  // the LDT's
    CHECK_FALSE(returnable_selectors(user_cs, user_ds | 4, gdt.entries));
    CHECK_FALSE(returnable_selectors(user_cs & ~3, user_ds, gdt.entries));  // RPL 0
    CHECK_FALSE(returnable_selectors(user_cs, user_ds & ~1, gdt.entries));  // RPL 2
    CHECK_FALSE(returnable_selectors(selector(600), user_ds, gdt.entries));  // past the guest's frames
    CHECK_FALSE(returnable_selectors(user_cs, user_ds, {}));                // no guest GDT
}

TEST_CASE("pv: selectors: of the reserved ones only Xen's flat 64-bit pair is returnable", "[pv][hostile]") {
    // The GDT handed in may be the CPU's whole table: the reserved entries are still not the guest's.
    std::vector<std::uint64_t> whole(8192);
    for (unsigned index = abi::FIRST_RESERVED_GDT_ENTRY; index < whole.size(); ++index)
        whole[index] = index % 2 ? code64(3) : data(3);
    for (unsigned index = abi::FIRST_RESERVED_GDT_ENTRY; index < whole.size(); ++index) {
        const auto selector = static_cast<std::uint16_t>(index << 3 | 3);
        if (selector != flat_cs)
            CHECK_FALSE(returnable_selectors(selector, flat_ss, whole));
        if (selector != flat_ss)
            CHECK_FALSE(returnable_selectors(flat_cs, selector, whole));
    }
    CHECK_FALSE(returnable_selectors(0xe008 | 3, flat_ss, whole));  // the hypervisor's code
    CHECK_FALSE(returnable_selectors(abi::FLAT_RING3_CS32, flat_ss, whole));
    CHECK(returnable_selectors(flat_cs, flat_ss, whole));
}

#include <catch2/catch.hpp>

#include <array>
#include <cstring>

#include <hv/guest_memory.hpp>

using hv::Errc;
using hv::Vaddr;

namespace {
// Guest memory over one array, mapped at `base`; every access is recorded.
class ArrayMemory final : public hv::GuestMemory {
public:
    static constexpr std::uint64_t base = 0x10000;
    std::array<std::byte, 256> bytes{};
    int accesses = 0;

    bool read(Vaddr address, std::span<std::byte> into) override {
        ++accesses;
        if (!inside(address, into.size()))
            return false;
        std::memcpy(into.data(), bytes.data() + (address.value - base), into.size());
        return true;
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        ++accesses;
        if (!inside(address, from.size()))
            return false;
        std::memcpy(bytes.data() + (address.value - base), from.data(), from.size());
        return true;
    }

private:
    bool inside(Vaddr address, std::size_t size) const {
        return address.value >= base && address.value - base + size <= bytes.size();
    }
};

template <class T>
hv::GuestHandle<T> handle_at(std::uint64_t address) {
    return hv::GuestHandle<T>{address};
}
}  // namespace

TEST_CASE("core: copy_to_guest then copy_from_guest round-trips array elements", "[core]") {
    ArrayMemory memory;
    const auto array = handle_at<std::uint32_t>(ArrayMemory::base);
    REQUIRE(hv::copy_to_guest(memory, array, std::uint32_t{0xdeadbeef}, 3));
    const auto back = hv::copy_from_guest(memory, array, 3);
    REQUIRE(back);
    CHECK(*back == 0xdeadbeef);
    CHECK(memory.bytes[12] == std::byte{0xef});
}

TEST_CASE("core: an address the platform does not map is efault", "[core][hostile]") {
    ArrayMemory memory;
    const auto result = hv::copy_from_guest(memory, handle_at<std::uint64_t>(ArrayMemory::base + 252));
    REQUIRE_FALSE(result);
    CHECK(result.error() == Errc::efault);
}

TEST_CASE("core: addresses a guest may never name are refused before the platform is asked", "[core][hostile]") {
    ArrayMemory memory;
    const std::uint64_t hostile[] = {
        0x0000'8000'0000'0000,  // first non-canonical address
        0xFFFF'8000'0000'0000,  // hypervisor range, start
        0xFFFF'87FF'FFFF'FFF8,  // hypervisor range, last word
        0xFFFF'7FFF'FFFF'FFFC,  // non-canonical, 4 bytes below the upper half
        0x0000'7FFF'FFFF'FFFC,  // runs off the top of the lower half
        0xFFFF'FFFF'FFFF'FFFC,  // wraps around zero
    };
    for (const auto address : hostile) {
        INFO("address " << std::hex << address);
        const auto result = hv::copy_from_guest(memory, handle_at<std::uint64_t>(address));
        REQUIRE_FALSE(result);
        CHECK(result.error() == Errc::efault);
        CHECK_FALSE(hv::copy_to_guest(memory, handle_at<std::uint64_t>(address), std::uint64_t{1}));
    }
    CHECK(memory.accesses == 0);
    CHECK(memory.bytes == std::array<std::byte, 256>{});
}

TEST_CASE("core: an index that overflows the address computation is efault", "[core][hostile]") {
    ArrayMemory memory;
    const auto array = handle_at<std::uint64_t>(ArrayMemory::base);
    CHECK(hv::copy_from_guest(memory, array, UINT64_MAX / 8 + 1).error() == Errc::efault);
    CHECK(hv::copy_from_guest(memory, array, UINT64_MAX).error() == Errc::efault);
    CHECK(memory.accesses == 0);
}

TEST_CASE("core: guest ranges: both halves usable, hypervisor slots and the hole not", "[core]") {
    CHECK(hv::is_guest_range(Vaddr{0}, 4096));
    CHECK(hv::is_guest_range(Vaddr{0x0000'7FFF'FFFF'F000}, 4096));
    CHECK(hv::is_guest_range(Vaddr{0xFFFF'8800'0000'0000}, 8));  // first address after Xen's slots
    CHECK(hv::is_guest_range(Vaddr{0xFFFF'FFFF'8000'0000}, 4096));  // where Linux links its kernel
    CHECK_FALSE(hv::is_guest_range(Vaddr{0xFFFF'87FF'FFFF'FFF0}, 0x20));
    CHECK_FALSE(hv::is_guest_range(Vaddr{0x0000'7FFF'FFFF'F000}, 4097));
}

// Reading and writing guest memory through typed guest handles.
//
// A guest pointer is never dereferenced by the hypervisor. Every access goes through copy_from_guest
// or copy_to_guest, which first refuse any range the guest may not name at all (non-canonical,
// wrapping, or inside the hypervisor's reserved slots), and then ask the platform's GuestMemory,
// which walks the calling domain's page tables and refuses what those do not map for the guest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <hv/core.hpp>

namespace hv {

template <class T>
using GuestHandle = pvkit::abi::guest_handle<T>;

// The hypervisor owns L4 slots 256-271 in every guest address space (xen.h).
inline constexpr std::uint64_t hypervisor_range_start = 0xFFFF'8000'0000'0000;
inline constexpr std::uint64_t hypervisor_range_end = 0xFFFF'8800'0000'0000;

constexpr bool is_canonical(std::uint64_t address) {
    const std::uint64_t upper = address >> 47;
    return upper == 0 || upper == 0x1FFFF;
}

// True when [start, start + length) is a range a guest may name: canonical at both ends, not
// wrapping, not crossing the non-canonical hole, and clear of the hypervisor's range.
constexpr bool is_guest_range(Vaddr start, std::uint64_t length) {
    if (length == 0)
        return is_canonical(start.value);
    const std::uint64_t last = start.value + (length - 1);
    if (last < start.value || !is_canonical(start.value) || !is_canonical(last))
        return false;
    if ((start.value >> 63) != (last >> 63))
        return false;
    return last < hypervisor_range_start || start.value >= hypervisor_range_end;
}

// A domain's virtual address space as the platform sees it (page-table walk, direct map, mmap'ed
// guest RAM...). Each call either copies every byte or returns false and copies nothing that the
// caller may rely on. The access rights are the guest's own, checked page by page for a range that
// crosses pages: read needs every page present and user-accessible at every level of the calling
// domain's current page tables; write needs them writable as well. So a guest can never make the
// hypervisor write through one of its read-only mappings (its page tables, the M2P).
class GuestMemory {
public:
    virtual bool read(Vaddr address, std::span<std::byte> into) = 0;
    virtual bool write(Vaddr address, std::span<const std::byte> from) = 0;

protected:
    ~GuestMemory() = default;
};

namespace detail {
// The address of element `index` of the array at `handle`, if the whole element is nameable.
template <class T>
constexpr Result<Vaddr> element_address(GuestHandle<T> handle, std::uint64_t index) {
    constexpr std::uint64_t size = sizeof(T);
    if (index > (UINT64_MAX - handle.address) / size)
        return Errc::efault;
    const Vaddr address{handle.address + index * size};
    if (!is_guest_range(address, size))
        return Errc::efault;
    return address;
}
}  // namespace detail

// Element `index` of the guest array at `handle`, or efault.
template <class T>
Result<T> copy_from_guest(GuestMemory& memory, GuestHandle<T> handle, std::uint64_t index = 0) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto address = detail::element_address(handle, index);
    if (!address)
        return address.error();
    T value;
    if (!memory.read(*address, std::as_writable_bytes(std::span{&value, 1})))
        return Errc::efault;
    return value;
}

// Elements [index, index + into.size()) of the guest array at `handle`, or efault.
template <class T>
Result<void> copy_array_from_guest(GuestMemory& memory, GuestHandle<T> handle, std::uint64_t index, std::span<T> into) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (into.empty())
        return {};
    const auto first = detail::element_address(handle, index);
    const auto last = detail::element_address(handle, index + (into.size() - 1));
    if (!first || !last || index + (into.size() - 1) < index)
        return Errc::efault;
    if (!memory.read(*first, std::as_writable_bytes(into)))
        return Errc::efault;
    return {};
}

// Writes `value` to element `index` of the guest array at `handle`, or returns efault.
template <class T>
Result<void> copy_to_guest(GuestMemory& memory, GuestHandle<T> handle, const T& value,
                           std::uint64_t index = 0) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto address = detail::element_address(handle, index);
    if (!address)
        return address.error();
    if (!memory.write(*address, std::as_bytes(std::span{&value, 1})))
        return Errc::efault;
    return {};
}

}  // namespace hv

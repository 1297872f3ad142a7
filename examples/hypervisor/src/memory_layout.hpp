// SPDX-License-Identifier: BSD-2-Clause
// Where the hypervisor image lives, shared by C++ code and (by value) boot/entry.S
// and hypervisor.ld. Keep the three in step.
#pragma once

#include <cstdint>

namespace pvkit::hv {

// Virtual minus physical for the image and for the boot window onto low RAM.
// It sits in Xen's reserved PML4 slots, so guests never see it.
inline constexpr std::uint64_t kVirtOffset = 0xFFFF82D080000000ULL;
// Physical load address of the image (2 MiB, like Xen).
inline constexpr std::uint64_t kPhysLoadBase = 0x200000ULL;
// The boot page tables map physical [0, kBootMappedLimit) at kVirtOffset.
inline constexpr std::uint64_t kBootMappedLimit = 1ULL << 30;

// Pointer to physical memory through the boot window, or nullptr if
// [paddr, paddr + size) is not covered by it.
template <typename T>
inline T* phys_to_virt(std::uint64_t paddr, std::uint64_t size = sizeof(T)) {
    if (paddr >= kBootMappedLimit || size > kBootMappedLimit - paddr) {
        return nullptr;
    }
    return reinterpret_cast<T*>(paddr + kVirtOffset);
}

}  // namespace pvkit::hv

// SPDX-License-Identifier: BSD-2-Clause
// Where the hypervisor image lives. boot/entry.S includes this file too and exports
// HV_VIRT_OFFSET as hv_virt_offset, which hypervisor.ld links with: this is the one definition.
#pragma once

// Virtual minus physical for the image and for the boot window onto low RAM.
#define HV_VIRT_OFFSET 0xFFFF82D080000000
// The local APIC's registers, mapped by the boot page tables at HV_VIRT_OFFSET + this.
#define LOCAL_APIC_PHYS 0xFEE00000
#define LOCAL_APIC_L2_INDEX ((LOCAL_APIC_PHYS >> 21) & 511)

#ifndef __ASSEMBLER__
#include <cstdint>

#include <pvkit/abi.hpp>

namespace hypervisor {

inline constexpr std::uint64_t virt_offset = HV_VIRT_OFFSET;
// In Xen's reserved range, so no PV guest can map anything there.
static_assert(virt_offset >= pvkit::abi::HYPERVISOR_VIRT_START &&
              virt_offset < pvkit::abi::HYPERVISOR_VIRT_END);

// The boot page tables (one L2 table in boot/entry.S) map physical [0, 1 GiB) at virt_offset,
// and the local APIC's page.
inline constexpr std::uint64_t boot_mapped_limit = 1ULL << 30;
inline constexpr std::uint64_t local_apic = virt_offset + LOCAL_APIC_PHYS;

// Pointer to physical memory through the boot window, or nullptr if
// [paddr, paddr + size) is not covered by it.
template <typename T>
inline T* phys_to_virt(std::uint64_t paddr, std::uint64_t size = sizeof(T)) {
    if (paddr >= boot_mapped_limit || size > boot_mapped_limit - paddr) {
        return nullptr;
    }
    return reinterpret_cast<T*>(paddr + virt_offset);
}

}  // namespace hypervisor
#endif  // __ASSEMBLER__

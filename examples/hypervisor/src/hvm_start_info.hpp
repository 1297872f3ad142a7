// SPDX-License-Identifier: BSD-2-Clause
// The PVH boot information block ("hvm_start_info") that a PVH loader (QEMU's
// -kernel, Xen's toolstack) places in guest memory and passes in EBX to the
// XEN_ELFNOTE_PHYS32_ENTRY entry point. Layout per the public PVH boot
// description; all addresses are guest-physical, all fields little-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pvkit::hv::pvh {

inline constexpr std::uint32_t kStartInfoMagic = 0x336ec578;  // "xEn3" with bit 7 of 'E' set

struct HvmStartInfo {
    std::uint32_t magic;           // kStartInfoMagic
    std::uint32_t version;         // 0: fields up to rsdp_paddr; 1: adds the memory map
    std::uint32_t flags;
    std::uint32_t nr_modules;      // entries in the module list
    std::uint64_t modlist_paddr;   // HvmModlistEntry[nr_modules]
    std::uint64_t cmdline_paddr;   // NUL-terminated ASCII, 0 if none
    std::uint64_t rsdp_paddr;      // ACPI RSDP, 0 if none
    // Present from version 1 on.
    std::uint64_t memmap_paddr;    // HvmMemmapEntry[memmap_entries]
    std::uint32_t memmap_entries;
    std::uint32_t reserved;        // must be zero
};

struct HvmModlistEntry {
    std::uint64_t paddr;
    std::uint64_t size;
    std::uint64_t cmdline_paddr;
    std::uint64_t reserved;
};

// E820-style memory map entry.
struct HvmMemmapEntry {
    std::uint64_t addr;
    std::uint64_t size;
    std::uint32_t type;  // MemmapType
    std::uint32_t reserved;
};

enum class MemmapType : std::uint32_t {
    kRam = 1,
    kReserved = 2,
    kAcpiReclaimable = 3,
    kAcpiNvs = 4,
    kUnusable = 5,
    kDisabled = 6,
    kPersistentMemory = 7,
};

// Version 0 ends after rsdp_paddr.
inline constexpr std::size_t kStartInfoV0Size = offsetof(HvmStartInfo, memmap_paddr);

static_assert(offsetof(HvmStartInfo, modlist_paddr) == 16);
static_assert(offsetof(HvmStartInfo, cmdline_paddr) == 24);
static_assert(offsetof(HvmStartInfo, rsdp_paddr) == 32);
static_assert(offsetof(HvmStartInfo, memmap_paddr) == 40);
static_assert(offsetof(HvmStartInfo, memmap_entries) == 48);
static_assert(kStartInfoV0Size == 40);
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(sizeof(HvmModlistEntry) == 32);
static_assert(sizeof(HvmMemmapEntry) == 24);

}  // namespace pvkit::hv::pvh

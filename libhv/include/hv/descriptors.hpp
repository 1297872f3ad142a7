// Segment descriptors a PV guest installs in its GDT and LDT pages (update_descriptor).
#pragma once

#include <cstdint>
#include <span>

#include <hv/mmu_ops.hpp>

namespace hv::mm {

// Bits of a segment descriptor (Intel SDM vol. 3, 3.4.5).
namespace descriptor {
inline constexpr std::uint64_t accessed = 1ull << 40;
inline constexpr std::uint64_t writable = 1ull << 41;      // data: writable; code: readable
inline constexpr std::uint64_t code = 1ull << 43;          // with code_or_data: code, else data
inline constexpr std::uint64_t code_or_data = 1ull << 44;  // the S bit: clear for system descriptors
inline constexpr std::uint64_t dpl = 3ull << 45;
inline constexpr std::uint64_t present = 1ull << 47;
inline constexpr std::uint64_t long_mode = 1ull << 53;     // code: 64-bit
inline constexpr std::uint64_t default_size = 1ull << 54;  // code: 32-bit operands (with long_mode: reserved)

constexpr unsigned dpl_of(std::uint64_t value) { return static_cast<unsigned>((value & dpl) >> 45); }
}  // namespace descriptor

// The descriptor as it may be installed (code and data get DPL 3), or einval (system descriptors).
Result<std::uint64_t> check_descriptor(std::uint64_t descriptor);

// Checks every descriptor of a frame becoming a descriptor page, adjusting them only if all pass.
Result<void> validate_descriptor_page(std::span<std::uint64_t, entries_per_table> descriptors);

// One validated descriptor write at machine address `machine_address`. A write to a descriptor
// page is reported to the platform (MemoryPlatform::descriptor_changed).
Result<void> write_descriptor(PageTables& tables, DomainMemory& domain, std::uint64_t machine_address,
                              std::uint64_t descriptor);

// The hypercalls: update_descriptor(ma, desc) and set_gdt(frame_list, entries).
long update_descriptor(PageTables& tables, MmuCaller& caller, const hypercall_args::update_descriptor& args);
long set_gdt(PageTables& tables, MmuCaller& caller, const hypercall_args::set_gdt& args);

}  // namespace hv::mm

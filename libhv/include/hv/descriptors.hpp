// Segment descriptors a PV guest installs in its GDT and LDT pages (update_descriptor).
#pragma once

#include <cstdint>
#include <span>

#include <hv/mmu_ops.hpp>

namespace hv::mm {

// The descriptor as it may be installed (code and data get DPL 3), or einval (system descriptors).
Result<std::uint64_t> check_descriptor(std::uint64_t descriptor);

// Checks every descriptor of a frame becoming a descriptor page, adjusting them only if all pass.
Result<void> validate_descriptor_page(std::span<std::uint64_t, entries_per_table> descriptors);

// One validated descriptor write at machine address `machine_address`.
Result<void> write_descriptor(PageTables& tables, DomainMemory& domain, std::uint64_t machine_address,
                              std::uint64_t descriptor);

// The hypercalls: update_descriptor(ma, desc) and set_gdt(frame_list, entries).
long update_descriptor(PageTables& tables, MmuCaller& caller, const hypercall_args::update_descriptor& args);
long set_gdt(PageTables& tables, MmuCaller& caller, const hypercall_args::set_gdt& args);

}  // namespace hv::mm

// memory_op for PV guests: reservations (balloon up and down), the sizes a guest asks about, and
// where the M2P is mapped.
#pragma once

#include <hv/mmu_ops.hpp>

namespace hv::mm {

// memory_op's command keeps the sub-op in its low 6 bits; the bits above carry the extent a
// continuation resumes from (Xen's MEMOP_EXTENT_SHIFT).
inline constexpr unsigned memop_extent_shift = 6;
inline constexpr std::uint64_t memop_command_mask = (1u << memop_extent_shift) - 1;

// XENMEM_increase_reservation, decrease_reservation, populate_physmap, maximum_ram_page,
// current_reservation, maximum_reservation, machphys_mapping (Xen's fixed M2P window: MACH2PHYS_VIRT_START
// to MACH2PHYS_VIRT_END, max_mfn MACH2PHYS_NR_ENTRIES - 1); other sub-ops give enosys. Reservation sub-ops return
// the number of extents done; only extents of one page (order 0) are supported, so a larger order
// does none. XENMEM_memory_map gives enosys: a domain without a memory map set by its builder has
// one RAM range of its pages, which guests assume when they see enosys.
long memory_op(PageTables& tables, MmuCaller& caller, const hypercall_args::memory_op& args);

}  // namespace hv::mm

// The memory hypercalls of a PV guest: mmu_update, mmuext_op, update_va_mapping(_otherdomain).
//
// Each decodes what the guest passed through its guest handles and applies it entry by entry with
// PageTables, with Xen's batch semantics: the first failure stops the batch, the count of entries
// done is written back, and the failing entry changes nothing. A long batch stops when the platform
// says others are waiting, and asks to be issued again for the rest (a continuation).
#pragma once

#include <hv/continuation.hpp>
#include <hv/guest_memory.hpp>
#include <hv/page_tables.hpp>

namespace hv::mm {

// The calling vCPU, as the memory hypercalls see it.
struct MmuCaller {
    DomainMemory& domain;
    VcpuMmu& vcpu;
    GuestMemory& memory;
    Preemption& preemption;
    Continuation& continuation;
};

// Set in a batch's count by a continuation (Xen's MMU_UPDATE_PREEMPTED): the entries done so far
// are then read back from the guest's success_count.
inline constexpr std::uint32_t batch_continued = 0x8000'0000;
// The most LDT entries MMUEXT_SET_LDT accepts (a 64 KiB descriptor table).
inline constexpr std::uint32_t max_ldt_entries = 8192;

long mmu_update(PageTables& tables, MmuCaller& caller, const hypercall_args::mmu_update& args);
long mmuext_op(PageTables& tables, MmuCaller& caller, const hypercall_args::mmuext_op& args);
long update_va_mapping(PageTables& tables, MmuCaller& caller, const hypercall_args::update_va_mapping& args);
long update_va_mapping_otherdomain(PageTables& tables, MmuCaller& caller,
                                   const hypercall_args::update_va_mapping_otherdomain& args);

}  // namespace hv::mm

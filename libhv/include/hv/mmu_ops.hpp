// The memory hypercalls of a PV guest: mmu_update, mmuext_op, update_va_mapping(_otherdomain).
//
// Each decodes what the guest passed through its guest handles and applies it entry by entry with
// PageTables, with Xen's batch semantics: the first failure stops the batch, the count of entries
// done is written back, and the failing entry changes nothing. A long batch stops when the platform
// says others are waiting, and asks to be issued again for the rest (a continuation).
//
// Devalidation is finished within the hypercall, as Xen does: a table whose last use an entry drops
// (UNPIN_TABLE, a base switch, an mmu_update replacing a link) is queued by PageTables, and the
// batch devalidates the queue before its next entry runs and before it returns, so that the next
// entry, or the next call of a multicall, sees the hierarchy gone (Linux's xen_pgd_unpin makes the
// tables writable right after the unpin, in the same multicall). When others wait, it stops between
// two tables and asks to be continued; the continuation finishes the queue before anything else.
#pragma once

#include <initializer_list>

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

// Devalidates the tables queued on `domains` (PageTables::drain), one at a time, until none is left
// (true) or, after at least one, the caller's preemption says others wait (false). The memory
// hypercalls call it before they return; false makes them ask for a continuation.
[[nodiscard]] bool finish_devalidation(PageTables& tables, Preemption& preemption,
                                       std::initializer_list<DomainMemory*> domains);

long mmu_update(PageTables& tables, MmuCaller& caller, const hypercall_args::mmu_update& args);
long mmuext_op(PageTables& tables, MmuCaller& caller, const hypercall_args::mmuext_op& args);
long update_va_mapping(PageTables& tables, MmuCaller& caller, const hypercall_args::update_va_mapping& args);
long update_va_mapping_otherdomain(PageTables& tables, MmuCaller& caller,
                                   const hypercall_args::update_va_mapping_otherdomain& args);

}  // namespace hv::mm

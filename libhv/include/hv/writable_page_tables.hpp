// Writable page tables (VMASST_TYPE_writable_pagetables): a PV guest kernel writes its L1 entries
// with ordinary instructions; the write faults, since the L1 is mapped read-only, and is completed
// here as a validated update of that entry.
#pragma once

#include <hv/emulate.hpp>
#include <hv/mmu_ops.hpp>

namespace hv::mm {

// The caller checks that the fault came from guest kernel mode (a guest user's write fault is the
// guest kernel's to handle) and that the write is to a read-only present mapping.
//
// Handles a write fault at `fault_address` by the caller's guest kernel: if the address lies in one
// of the caller's own L1 tables (through its current page tables) and the assist is on, decodes the
// instruction at rip, performs its write as a validated update of the entry (1-, 2- and 4-byte
// writes are merged with the rest of the entry), and advances rip. On any failure nothing changes
// and the caller bounces the fault to the guest: eperm when the assist is off, einval when the
// address is not in an L1 of the domain, or the error of the decode, the validation or the access.
Result<void> emulate_page_table_write(PageTables& tables, MmuCaller& caller, emulate::Registers& registers,
                                      std::uint64_t fault_address);

}  // namespace hv::mm

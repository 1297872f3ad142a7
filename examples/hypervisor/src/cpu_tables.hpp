// SPDX-License-Identifier: BSD-2-Clause
// The CPU's tables for running PV guests: a GDT with Xen's reserved selectors, a TSS whose rsp0 is
// the entry stack, an IDT whose every vector goes to guest_entry.S, and syscall configured to
// enter the hypervisor at hv_syscall_entry.
#pragma once

#include <cstdint>
#include <span>

#include <pvkit/abi.hpp>

namespace hypervisor {

// Xen's selectors in the reserved GDT entries (FIRST_RESERVED_GDT_ENTRY = 7168, i.e. 0xe000):
// the hypervisor's own, and the flat ring-3 segments every 64-bit PV guest is given (Xen's 32-bit
// code segment 0xe023 is not installed: 32-bit guest code is not supported).
inline constexpr std::uint16_t hypervisor_cs = 0xe008;
inline constexpr std::uint16_t hypervisor_ds = 0xe010;
inline constexpr std::uint16_t guest_ss = 0xe02b;
inline constexpr std::uint16_t guest_cs64 = 0xe033;
inline constexpr std::uint16_t tss_selector = 0xe040;

// The guest's part of the CPU's GDT: entries below FIRST_RESERVED_GDT_ENTRY (selectors below
// 0xe000), which hold the running vCPU's descriptor frames (guest_gdt.cpp) and are zero past them.
inline constexpr std::size_t guest_gdt_entries = pvkit::abi::FIRST_RESERVED_GDT_ENTRY;
std::span<std::uint64_t, guest_gdt_entries> guest_gdt();

// Loads the tables, the syscall MSRs and the control-register features (SSE, SMEP, SMAP). The
// interrupt controllers are clock::init's.
void load_cpu_tables();

}  // namespace hypervisor

// SPDX-License-Identifier: BSD-2-Clause
// The guest's GDT in the CPU: the descriptors of the running vCPU's GDT frames (set_gdt), copied
// into the low part of the CPU's GDT and kept in step with update_descriptor, through libhv's
// MemoryPlatform hooks (DirectMap). One vCPU on one CPU: the last GDT installed is the CPU's.
#pragma once

#include <hv/page_tables.hpp>

namespace hypervisor {

// vCPU `vcpu` has a new GDT (MemoryPlatform::gdt_changed): its frames' descriptors replace the
// guest's part of the CPU's GDT, whose entries past them become zero (not present).
void load_guest_gdt(const hv::mm::VcpuMmu& vcpu);

// Descriptor `index` of descriptor page `frame` is now `descriptor`
// (MemoryPlatform::descriptor_changed): every copy of the frame in the CPU's GDT follows.
void update_guest_gdt(hv::Mfn frame, unsigned index, std::uint64_t descriptor);

}  // namespace hypervisor

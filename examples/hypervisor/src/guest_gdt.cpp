// SPDX-License-Identifier: BSD-2-Clause
//
// Xen maps a vCPU's GDT frames into the hypervisor's per-vCPU GDT area, so that the CPU reads the
// guest's descriptors where the guest keeps them. Here they are copied instead, into the low 14
// pages of the CPU's 16-page GDT (cpu_tables.cpp): the boot page tables map the image with 2 MiB
// pages, and mapping frames 4 KiB at a time would need page tables of our own for that range,
// kept in every guest's L4 slot for the hypervisor. The copy is sound because the memory
// component keeps it exact:
//   - a frame is a descriptor page (type seg_desc) for as long as it is in a GDT, and while it is
//     one no writable mapping of it exists: the guest cannot write it behind our back;
//   - its only writer is update_descriptor, which tells us of each write (descriptor_changed),
//     and a new GDT is told too (gdt_changed), once its frames are validated;
//   - every present descriptor in it is code or data of DPL 3 (hv/descriptors.hpp).
// Whole frames are copied, as Xen maps whole frames: descriptors of the last frame past set_gdt's
// `entries` are in the CPU too (validated all the same). The CPU may set accessed bits in the
// copy; the guest does not see them in its frames, which nothing in the ABI promises anyway.
#include "guest_gdt.hpp"

#include <array>
#include <cstring>

#include "cpu.hpp"
#include "cpu_tables.hpp"
#include "memory_layout.hpp"

namespace hypervisor {
namespace {

constexpr unsigned descriptors_per_frame = hv::mm::entries_per_table;

// The frames whose descriptors are in the CPU's GDT, in order.
std::array<std::uint64_t, hv::mm::max_gdt_frames> loaded_frames{};
unsigned loaded_count = 0;

}  // namespace

void load_guest_gdt(const hv::mm::VcpuMmu& vcpu) {
    const auto gdt = guest_gdt();
    const unsigned count = vcpu.gdt_frame_count();
    for (unsigned i = 0; i < count; ++i) {
        const auto* descriptors = phys_to_virt<const std::uint64_t>(vcpu.gdt_frames[i] << 12, hv::mm::page_size);
        if (descriptors == nullptr)
            cpu::exit_qemu(255);  // every frame the heap hands out is in the boot window: a bug
        std::memcpy(&gdt[i * descriptors_per_frame], descriptors, hv::mm::page_size);
        loaded_frames[i] = vcpu.gdt_frames[i];
    }
    if (loaded_count > count)
        std::memset(&gdt[count * descriptors_per_frame], 0, (loaded_count - count) * hv::mm::page_size);
    loaded_count = count;
}

void update_guest_gdt(hv::Mfn frame, unsigned index, std::uint64_t descriptor) {
    for (unsigned i = 0; i < loaded_count; ++i) {
        if (loaded_frames[i] == frame.value)
            guest_gdt()[i * descriptors_per_frame + index] = descriptor;
    }
}

}  // namespace hypervisor

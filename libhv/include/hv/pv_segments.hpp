// The segment selectors a 64-bit PV guest runs with.
//
// A PV guest may name, besides Xen's flat selectors in the hypervisor's reserved GDT entries
// (FLAT_RING3_CS64, FLAT_RING3_DS64 ...), the descriptors of its own GDT (set_gdt), which the
// platform puts in the low part of the CPU's GDT. The memory component keeps every present
// descriptor there a code or data segment of DPL 3 (hv/descriptors.hpp); what it cannot know is
// whether a selector the guest hands the hypervisor (iret's cs and ss) names one that iretq can
// load. That is decided here, from the descriptors as the CPU has them.
#pragma once

#include <cstdint>
#include <span>

#include <pvkit/abi.hpp>

namespace hv::pv {

// Whether iretq to ring 3 loads `cs` and `ss` without faulting, which a platform must know before
// it returns to a guest: a fault in iretq would be the hypervisor's (Xen recovers and enters the
// guest's failsafe callback; a platform without one crashes the domain). Accepted, with RPL 3:
//   - cs: Xen's FLAT_RING3_CS64, or a selector of the guest's GDT naming a present DPL-3 64-bit
//     code segment;
//   - ss: Xen's FLAT_RING3_SS64, or a selector of the guest's GDT naming a present DPL-3 writable
//     data segment.
// `gdt` is the guest's part of the CPU's GDT (entries below FIRST_RESERVED_GDT_ENTRY; those past
// its end count as not present). Null selectors, LDT selectors and every other reserved selector
// are refused, and so is compatibility mode (a 32-bit code segment).
bool returnable_selectors(std::uint16_t cs, std::uint16_t ss, std::span<const std::uint64_t> gdt);

}  // namespace hv::pv

// SPDX-License-Identifier: BSD-2-Clause
#include "machine.hpp"

#include "cpu.hpp"
#include "guest_gdt.hpp"
#include "guest_run.hpp"
#include "memory_layout.hpp"

namespace hypervisor {

std::byte* DirectMap::map(hv::Mfn frame) { return phys_to_virt<std::byte>(frame.value << 12, 4096); }

std::uint64_t DirectMap::hypervisor_l4_entry(const hv::mm::DomainMemory&, unsigned slot) {
    return phys_to_virt<const std::uint64_t>(cpu::read_cr3() & ~std::uint64_t{0xFFF}, 4096)[slot];
}

void DirectMap::flush_tlb(const hv::mm::DomainMemory&) { load_guest_page_tables(); }

void DirectMap::flush_caches() { asm volatile("wbinvd" : : : "memory"); }

void DirectMap::gdt_changed(const hv::mm::DomainMemory&, const hv::mm::VcpuMmu& vcpu) { guest_gdt_changed(vcpu); }

void DirectMap::descriptor_changed(const hv::mm::DomainMemory&, hv::Mfn frame, unsigned index,
                                   std::uint64_t descriptor) {
    update_guest_gdt(frame, index, descriptor);
}

void Host::kick_vcpu(hv::domain::Domain& domain, std::uint32_t vcpu) { vcpu_woken(domain, vcpu); }

void Host::yield(hv::domain::Domain& domain, std::uint32_t vcpu) { vcpu_yielded(domain, vcpu); }

void Host::set_poll_timeout(hv::domain::Domain&, std::uint32_t, std::uint64_t deadline_ns) {
    set_poll_deadline(deadline_ns);
}

void Host::domain_shut_down(hv::domain::Domain& domain) {
    serial_.write("(");
    serial_.write(domain.name());
    serial_.write(") shut down, reason ");
    serial_.write_decimal(domain.shutdown_reason);
    serial_.write("\n");
}

void Host::domain_destroyed(hv::DomId id) {
    serial_.write("domain ");
    serial_.write_decimal(id.value);
    serial_.write(" destroyed\n");
    destroyed_(id);
}

}  // namespace hypervisor

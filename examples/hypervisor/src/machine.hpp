// SPDX-License-Identifier: BSD-2-Clause
// This machine as libhv's components see it: memory through the boot window, the serial console,
// and (for now) one CPU on which nothing else is scheduled.
#pragma once

#include <hv/domain.hpp>

#include "serial.hpp"

namespace hypervisor {

// Machine frames through the boot window (all RAM lies inside it).
class DirectMap final : public hv::mm::MemoryPlatform {
public:
    std::byte* map(hv::Mfn frame) override;
    // The hypervisor's own entry for the slot, which no guest can reach: none is a user mapping.
    std::uint64_t hypervisor_l4_entry(const hv::mm::DomainMemory& domain, unsigned slot) override;
    void flush_tlb(const hv::mm::DomainMemory& domain) override;
    void flush_caches() override;
    // The guest's descriptors are copied into the CPU's GDT (guest_gdt.cpp), and follow these.
    void gdt_changed(const hv::mm::DomainMemory& domain, const hv::mm::VcpuMmu& vcpu) override;
    void descriptor_changed(const hv::mm::DomainMemory& domain, hv::Mfn frame, unsigned index,
                            std::uint64_t descriptor) override;
};

class SerialSink final : public hv::console::ConsoleSink {
public:
    explicit SerialSink(const Serial& serial) : serial_{serial} {}
    void write(std::string_view text) override { serial_.write(text); }

private:
    const Serial& serial_;
};

// Reports what happens to domains, and tells the vCPUs apart for the scheduling in guest_run.cpp.
class Host final : public hv::domain::DomainPlatform {
public:
    // `destroyed` is told of every domain destroyed, after the report (the toolstack's cleanup).
    Host(const Serial& serial, void (*destroyed)(hv::DomId)) : serial_{serial}, destroyed_{destroyed} {}
    void kick_vcpu(hv::domain::Domain& domain, std::uint32_t vcpu) override;
    void yield(hv::domain::Domain& domain, std::uint32_t vcpu) override;
    void set_poll_timeout(hv::domain::Domain& domain, std::uint32_t vcpu, std::uint64_t deadline_ns) override;
    void domain_shut_down(hv::domain::Domain& domain) override;
    void domain_destroyed(hv::DomId id) override;

private:
    const Serial& serial_;
    void (*destroyed_)(hv::DomId);
};

}  // namespace hypervisor

// SPDX-License-Identifier: BSD-2-Clause
// Running built domains on this CPU: into ring 3 at their entry points, hypercalls through syscall,
// faults bounced or emulated, every vCPU of every domain taking turns on the CPU as libhv's
// scheduler says.
#pragma once

#include <cstddef>

#include <hv/boot_bundle.hpp>
#include <hv/builder.hpp>

namespace hypervisor {

// The bytes one vCPU's context needs (a multiple of 64, the alignment its storage needs): its
// registers while it does not run, its FPU state and what libhv's trap layer keeps of it.
std::size_t guest_vcpu_size();

// What happens to a domain that stops, by the reason it gives (xl's on_poweroff, on_reboot and
// on_crash; other reasons destroy it).
struct StopActions {
    hv::builder::DomainAction poweroff, reboot, crash;
};

// Builds bundle entry `entry` again, as domain `id`, in the storage its last incarnation (now
// destroyed) used; nullptr, with the reason printed, when it cannot be.
using RebuildDomain = hv::domain::Domain* (*)(std::size_t entry, hv::DomId id, hv::builder::InitialRegisters& registers);

// `domain` (built from bundle entry `entry`, paused once) will run: vCPU 0 from `registers`, the
// others once the guest brings them up (VCPUOP_initialise, VCPUOP_up). Their contexts go to
// `storage`, guest_vcpu_size() bytes per vCPU.
void add_guest_domain(hv::domain::Domains& domains, hv::domain::Domain& domain,
                      const hv::builder::InitialRegisters& registers, std::byte* storage, std::size_t entry,
                      const StopActions& actions);

// Runs the domains added until every one has stopped, then reports how each ended and whether
// the heap has its `free_frames_before` (the count before any domain was built) again, and leaves
// QEMU: status 0 when all powered off, `all_built` and no frame is missing, 1 otherwise. A domain
// that stops is destroyed, or restarted as a new domain through `rebuild`, or preserved (kept
// stopped, its memory held), as its StopActions say.
[[noreturn]] void run_domains(bool all_built, std::uint64_t free_frames_before,
                              RebuildDomain rebuild);

// Loads CR3 with the running vCPU's base for its current mode (before any guest runs: reloads the
// current CR3). The memory component's TLB flushes come here, so that a new base is in use, and
// an old one no longer, from the hypercall that changed it on.
void load_guest_page_tables();

// vCPU `vcpu` of `domain` was woken, has an event pending, or came up or went down
// (DomainPlatform::kick_vcpu): the scheduler follows, a woken vCPU boosted.
void vcpu_woken(const hv::domain::Domain& domain, std::uint32_t vcpu);
// SCHEDOP_yield of vCPU `vcpu` of `domain` (DomainPlatform::yield): the others run first.
void vcpu_yielded(const hv::domain::Domain& domain, std::uint32_t vcpu);

// `vcpu` has a new GDT (MemoryPlatform::gdt_changed): the CPU's copy follows if it is the running
// vCPU's (another's is loaded when it runs; a dying domain's never).
void guest_gdt_changed(const hv::mm::VcpuMmu& vcpu);

// A SCHEDOP_poll timeout of the running vCPU (DomainPlatform::set_poll_timeout).
void set_poll_deadline(std::uint64_t deadline_ns);

}  // namespace hypervisor

// SPDX-License-Identifier: BSD-2-Clause
// Running a built domain on this CPU: into ring 3 at its entry point, hypercalls through syscall,
// faults it cannot handle yet crashing it. One domain, one vCPU, for now.
#pragma once

#include <hv/builder.hpp>

namespace hypervisor {

// Runs `domain` until it stops running, then reports how it ended and leaves QEMU: status 0 when
// it powered off, 1 otherwise.
// Loads CR3 with the running vCPU's base for its current mode (before any guest runs: reloads the
// current CR3). The memory component's TLB flushes come here, so that a new base is in use, and
// an old one no longer, from the hypercall that changed it on.
void load_guest_page_tables();

// A SCHEDOP_poll timeout of the running vCPU (DomainPlatform::set_poll_timeout).
void set_poll_deadline(std::uint64_t deadline_ns);

[[noreturn]] void run_domain(hv::domain::Domains& domains, hv::domain::Domain& domain,
                             const hv::builder::InitialRegisters& registers);

}  // namespace hypervisor

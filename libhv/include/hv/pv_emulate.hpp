// The privileged operations a 64-bit PV guest kernel performs that fault in ring 3, emulated as
// Xen does: CPUID behind the forced-emulation prefix (ud2; .ascii "xen"; cpuid), rdmsr/wrmsr of
// the MSRs a PV kernel may touch, reads of control registers, cli/sti under a virtual IOPL, and
// port I/O, which a domain without I/O ports sees as absent (reads return all ones). Everything else is not emulated: the platform bounces
// the original fault to the guest, so "#GP for the rest" comes for free.
#pragma once

#include <cstdint>

#include <hv/mmu_ops.hpp>
#include <hv/pv_traps.hpp>

namespace hv::pv {

struct CpuidLeaf {
    std::uint32_t eax, ebx, ecx, edx;
    bool operator==(const CpuidLeaf&) const = default;
};

// The real CPU's CPUID, from the platform.
class CpuidSource {
public:
    virtual CpuidLeaf cpuid(std::uint32_t leaf, std::uint32_t subleaf) = 0;

protected:
    ~CpuidSource() = default;
};

// What the guest reads with CPUID: the host's leaves with what a PV guest cannot use hidden and
// the hypervisor bit set, and Xen's leaves 0x40000000-0x40000002 (signature "XenVMMXenVMM",
// version, one hypercall page through MSR 0x40000000).
CpuidLeaf guest_cpuid(CpuidSource& host, std::uint32_t leaf, std::uint32_t subleaf, std::uint16_t xen_major,
                      std::uint16_t xen_minor);

// Xen's PAT for PV guests, what rdmsr(IA32_PAT) returns.
inline constexpr std::uint64_t pv_pat = 0x0005'0100'0704'06ull;

// The segment bases of one vCPU (wrmsr to FS_BASE, GS_BASE, SHADOW_GS_BASE). While the guest
// kernel runs, GS_BASE is the kernel's and SHADOW_GS_BASE the user's.
struct SegmentBases {
    std::uint64_t fs = 0;
    std::uint64_t gs_kernel = 0;
    std::uint64_t gs_user = 0;
};

// set_segment_base: SEGBASE_FS, SEGBASE_GS_USER and SEGBASE_GS_KERNEL set that base (einval for a
// non-canonical one); SEGBASE_GS_USER_SEL stands for loading a selector into the user's GS, whose
// base becomes the descriptor's: here always 0, right for the null and flat selectors 64-bit
// Linux loads, not for a selector of the guest's GDT with a base of its own (not done yet).
// einval for any other `which`. The platform loads the bases into the CPU after a success.
long set_segment_base(SegmentBases& bases, const hypercall_args::set_segment_base& args);

// physdev_op: PHYSDEVOP_set_iopl sets the vCPU's virtual IOPL (einval above 3), which decides
// whether its cli and sti are emulated; efault for an unreadable argument; the other sub-ops are
// enosys (no physical devices are given to domains).
long physdev_op(PvVcpu& vcpu, GuestMemory& memory, const hypercall_args::physdev_op& args);

// The CPU state a guest's view of its control registers and EFER is made from.
struct MachineState {
    std::uint64_t cr0;   // the CPU's; the guest sees its own TS (fpu_taskswitch) in it
    std::uint64_t cr3;   // the machine address of the current base, as the guest reads it
    std::uint64_t cr4;   // the CPU's; the guest sees PAE, OSFXSR and OSXMMEXCPT only
    std::uint64_t efer;  // the EFER the guest reads
};

struct Emulation {
    bool emulated;              // false: bounce the original fault
    bool segment_bases_changed; // the platform must load the bases into the CPU
};

// Emulates the instruction at rip that raised `vector` (#UD: the forced CPUID; #GP: rdmsr,
// wrmsr, mov from cr0, cr2 (the last page fault's address, vcpu_info's arch.cr2), cr3 or cr4,
// mov to cr4 (TSD and DE kept and read back, not enforced; the other bits are Xen's),
// in, out; cli and sti, which set and clear the upcall mask, when the virtual IOPL admits the
// guest kernel as ring 1), in guest kernel mode only except for the forced CPUID. On success the
// registers hold the results and rip is past the instruction; after sti the platform delivers any
// pending event, as on every return.
Emulation emulate_privileged(PvVcpu& vcpu, SegmentBases& bases, abi::vcpu_info& info, GuestRegisters& registers,
                             GuestMemory& memory, CpuidSource& host, std::uint8_t vector, const MachineState& machine,
                             std::uint16_t xen_major, std::uint16_t xen_minor);

// Writable page tables (VMASST_TYPE_writable_pagetables, Xen's ptwr): a write fault of the guest
// kernel on a present page (error code: present and write, neither reserved bit nor instruction
// fetch) is tried as a write to one of its own L1 tables, completed as a validated update of the
// entry. True when it was (rip is then past the instruction); false: the #PF is the guest's.
bool emulate_page_table_write(const PvVcpu& vcpu, const SegmentBases& bases, GuestRegisters& registers,
                              mm::PageTables& tables, mm::MmuCaller& caller, std::uint32_t error_code,
                              std::uint64_t fault_address);

}  // namespace hv::pv

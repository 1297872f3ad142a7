// Writable page tables for PV guest kernels (see hv/pv_emulate.hpp).
#include <hv/pv_emulate.hpp>
#include <hv/writable_page_tables.hpp>

namespace hv::pv {
namespace {

constexpr std::uint32_t fault_present = 1u << 0, fault_write = 1u << 1, fault_reserved = 1u << 3,
                        fault_fetch = 1u << 4;

}  // namespace

bool emulate_page_table_write(const PvVcpu& vcpu, const SegmentBases& bases, GuestRegisters& registers,
                              mm::PageTables& tables, mm::MmuCaller& caller, std::uint32_t error_code,
                              std::uint64_t fault_address) {
    constexpr std::uint32_t relevant = fault_present | fault_write | fault_reserved | fault_fetch;
    if (!vcpu.kernel_mode || (error_code & relevant) != (fault_present | fault_write))
        return false;
    // The decoder's register file, numbered as instructions encode registers; kernel mode's GS.
    emulate::Registers view{{}, registers.rip, registers.rflags, bases.fs, bases.gs_kernel};
    for (unsigned number = 0; number < 16; ++number)
        view.gpr[number] = register_by_number(registers, number);
    if (!mm::emulate_page_table_write(tables, caller, view, fault_address))
        return false;
    for (unsigned number = 0; number < 16; ++number)
        register_by_number(registers, number) = view.gpr[number];
    registers.rip = view.rip;
    registers.rflags = view.rflags;
    return true;
}

}  // namespace hv::pv

// The selectors a PV guest may return to with iret: see hv/pv_segments.hpp.
//
// iretq to ring 3 faults in ring 0 unless cs names a present code segment of DPL 3 (at RPL 3) and
// ss a present writable data segment of DPL 3; with no compatibility mode for guests, cs must be
// a 64-bit one (L set, D clear: L and D together are reserved). LDT selectors are refused because
// no guest LDT is in the CPU; null selectors because iretq to ring 3 faults on either.
#include <optional>

#include <hv/descriptors.hpp>
#include <hv/pv_segments.hpp>

namespace hv::pv {
namespace {

namespace abi = pvkit::abi;
namespace descriptor = mm::descriptor;

constexpr std::uint16_t rpl_mask = 3, table_indicator = 1 << 2;

// The descriptor `selector` names in the guest's GDT; nullopt for a selector that names none there.
std::optional<std::uint64_t> guest_descriptor(std::uint16_t selector, std::span<const std::uint64_t> gdt) {
    const unsigned index = selector >> 3;
    if ((selector & table_indicator) != 0 || index == 0 || index >= abi::FIRST_RESERVED_GDT_ENTRY ||
        index >= gdt.size())
        return std::nullopt;
    return gdt[index];
}

bool user_segment(std::uint64_t value) {
    return (value & descriptor::present) != 0 && (value & descriptor::code_or_data) != 0 &&
           descriptor::dpl_of(value) == 3;
}

bool returnable_cs(std::uint16_t cs, std::span<const std::uint64_t> gdt) {
    if (cs == abi::FLAT_RING3_CS64)
        return true;
    const auto value = guest_descriptor(cs, gdt);
    return value && user_segment(*value) && (*value & descriptor::code) != 0 &&
           (*value & (descriptor::long_mode | descriptor::default_size)) == descriptor::long_mode;
}

bool returnable_ss(std::uint16_t ss, std::span<const std::uint64_t> gdt) {
    if (ss == abi::FLAT_RING3_SS64)
        return true;
    const auto value = guest_descriptor(ss, gdt);
    return value && user_segment(*value) && (*value & descriptor::code) == 0 && (*value & descriptor::writable) != 0;
}

}  // namespace

bool returnable_selectors(std::uint16_t cs, std::uint16_t ss, std::span<const std::uint64_t> gdt) {
    return (cs & rpl_mask) == 3 && (ss & rpl_mask) == 3 && returnable_cs(cs, gdt) && returnable_ss(ss, gdt);
}

}  // namespace hv::pv

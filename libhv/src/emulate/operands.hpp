// Operand helpers shared by decode and execute: sizes, sign extension, sized register access.
#pragma once

#include <cstdint>

#include <hv/emulate.hpp>

namespace hv::emulate::detail {

// The bits of a 1, 2, 4 or 8 byte operand.
constexpr std::uint64_t operand_mask(unsigned size) {
    return size >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * size)) - 1;
}

constexpr std::uint64_t sign_bit(unsigned size) { return std::uint64_t{1} << (8 * size - 1); }

// The low `size` bytes of `value` read as a two's complement number.
constexpr std::int64_t sign_extend(std::uint64_t value, unsigned size) {
    value &= operand_mask(size);
    if (value & sign_bit(size))
        value |= ~operand_mask(size);
    return static_cast<std::int64_t>(value);
}

// A register operand of `size` bytes, as the CPU reads it.
inline std::uint64_t read_register(const Registers& regs, RegisterOperand reg, unsigned size) {
    const std::uint64_t full = regs[reg.gpr];
    if (reg.high_byte)
        return (full >> 8) & 0xFF;
    return full & operand_mask(size);
}

// Writes a register operand of `size` bytes as the CPU does in 64-bit mode: a 4-byte result
// zero-extends into the whole register, 1- and 2-byte results keep the bits above them.
inline void write_register(Registers& regs, RegisterOperand reg, unsigned size, std::uint64_t value) {
    std::uint64_t& full = regs[reg.gpr];
    if (reg.high_byte)
        full = (full & ~std::uint64_t{0xFF00}) | ((value & 0xFF) << 8);
    else if (size == 4)
        full = value & operand_mask(4);
    else
        full = (full & ~operand_mask(size)) | (value & operand_mask(size));
}

}  // namespace hv::emulate::detail

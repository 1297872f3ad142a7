// decode(): from instruction bytes to a Decoded, for 64-bit mode only.
//
// The layout of an instruction: legacy prefixes, an optional REX byte, the opcode (one byte, or
// 0F and one byte), ModRM, an optional SIB byte, a displacement of 0, 1 or 4 bytes, an immediate of
// 0, 1, 2 or 4 bytes; 15 bytes at most. Decoding refuses as soon as it can tell, without reading
// past the byte that decided it: an unsupported opcode at the end of a page is eopnotsupp, not a
// fault on the next page.
#include <hv/emulate.hpp>

#include "operands.hpp"

namespace hv::emulate {
namespace {
using detail::read_register;
using detail::sign_extend;

constexpr std::uint64_t page_size = 4096;

// The instruction's bytes, fetched when first needed in pieces that stay within one page, so that
// an instruction that ends before a page boundary never asks for the next page.
class InstructionBytes {
public:
    InstructionBytes(Memory& memory, std::uint64_t rip) : memory_{memory}, rip_{rip} {}

    Result<std::uint8_t> next_byte() {
        if (used_ == max_instruction_length)
            return Errc::einval;  // the CPU raises #GP rather than fetch a 16th byte
        if (used_ == fetched_) {
            const std::uint64_t address = rip_ + fetched_;
            const std::uint64_t to_page_end = page_size - (address & (page_size - 1));
            std::uint64_t count = max_instruction_length - fetched_;
            if (count > to_page_end)
                count = to_page_end;
            const auto fetched = memory_.fetch(Vaddr{address}, std::span{bytes_ + fetched_, count});
            if (!fetched)
                return fetched.error();
            fetched_ += static_cast<unsigned>(count);
        }
        return std::to_integer<std::uint8_t>(bytes_[used_++]);
    }

    // A little-endian field of 1, 2 or 4 bytes, zero-extended.
    Result<std::uint64_t> next_field(unsigned count) {
        std::uint64_t value = 0;
        for (unsigned i = 0; i < count; ++i) {
            const auto byte = next_byte();
            if (!byte)
                return byte.error();
            value |= std::uint64_t{*byte} << (8 * i);
        }
        return value;
    }

    unsigned length() const { return used_; }

private:
    Memory& memory_;
    std::uint64_t rip_;
    std::byte bytes_[max_instruction_length]{};
    unsigned fetched_ = 0;
    unsigned used_ = 0;
};

struct Prefixes {
    bool lock = false;
    bool operand_size = false;
    std::uint8_t rex = 0;  // 0x40-0x4F, or 0 when absent
    Segment segment = Segment::none;

    bool rex_w() const { return (rex & 8) != 0; }
    unsigned rex_r() const { return (rex & 4) ? 8 : 0; }
    unsigned rex_x() const { return (rex & 2) ? 8 : 0; }
    unsigned rex_b() const { return (rex & 1) ? 8 : 0; }
};

// Reads the prefixes and returns the first byte that is not one: the opcode or the 0F escape.
// A REX byte counts only when it comes last: the CPU ignores one followed by a legacy prefix.
// In 64-bit mode the CS, DS, ES and SS overrides do nothing, not even cancel an FS or GS override
// before them; of FS and GS, the last one wins.
Result<std::uint8_t> decode_prefixes(InstructionBytes& bytes, Prefixes& prefixes) {
    for (;;) {
        const auto byte = bytes.next_byte();
        if (!byte)
            return byte;
        if ((*byte & 0xF0) == 0x40) {
            prefixes.rex = *byte;
            continue;
        }
        switch (*byte) {
        case 0xF0: prefixes.lock = true; break;
        case 0x66: prefixes.operand_size = true; break;
        case 0x64: prefixes.segment = Segment::fs; break;
        case 0x65: prefixes.segment = Segment::gs; break;
        case 0x26: case 0x2E: case 0x36: case 0x3E: break;
        case 0x67:  // 32-bit addressing: no guest kernel writes its page tables with it
        case 0xF2:  // repne, or xacquire with lock
        case 0xF3:  // rep, or xrelease with lock
            return Errc::eopnotsupp;
        default:
            return byte;
        }
        prefixes.rex = 0;
    }
}

enum class Width : std::uint8_t { byte, operand, pair };
enum class Immediate : std::uint8_t { none, imm8, imm8_sign_extended, imm16_or_32 };

// What an opcode (with its ModRM reg field) performs, before prefixes set the size.
struct Form {
    Operation operation;
    Width width;
    SourceKind source;
    Immediate immediate;
    bool lockable;
};

// The opcodes this emulator may perform; for some, the ModRM reg field then decides.
bool known_opcode(bool two_byte, std::uint8_t opcode) {
    if (two_byte)
        return opcode == 0xB0 || opcode == 0xB1 || opcode == 0xAB || opcode == 0xB3 || opcode == 0xBB ||
               opcode == 0xBA || opcode == 0xC7;
    if (opcode < 0x40 && (opcode & 7) <= 1)
        return true;  // 00-3F r/m, reg forms of the eight ALU operations
    return opcode == 0x80 || opcode == 0x81 || opcode == 0x83 || opcode == 0x86 || opcode == 0x87 ||
           opcode == 0x88 || opcode == 0x89 || opcode == 0xC6 || opcode == 0xC7;
}

// The ALU operation numbered as in opcode bits 3-5 and in the reg field of 80-83. adc and sbb are
// lockable writes too, but no guest writes page-table entries with them; cmp does not write.
Result<Operation> alu_operation(unsigned number) {
    switch (number) {
    case 0: return Operation::add;
    case 1: return Operation::bitwise_or;
    case 4: return Operation::bitwise_and;
    case 5: return Operation::sub;
    case 6: return Operation::bitwise_xor;
    default: return Errc::eopnotsupp;
    }
}

Result<Form> alu_form(unsigned number, Width width, SourceKind source, Immediate immediate) {
    const auto operation = alu_operation(number);
    if (!operation)
        return operation.error();
    return Form{*operation, width, source, immediate, true};
}

Result<Form> form_of(bool two_byte, std::uint8_t opcode, unsigned reg) {
    constexpr auto by_reg = SourceKind::reg;
    constexpr auto by_imm = SourceKind::immediate;
    if (!two_byte) {
        if (opcode < 0x40 && (opcode & 7) <= 1)
            return alu_form(opcode >> 3, (opcode & 1) ? Width::operand : Width::byte, by_reg, Immediate::none);
        switch (opcode) {
        case 0x80: return alu_form(reg, Width::byte, by_imm, Immediate::imm8);
        case 0x81: return alu_form(reg, Width::operand, by_imm, Immediate::imm16_or_32);
        case 0x83: return alu_form(reg, Width::operand, by_imm, Immediate::imm8_sign_extended);
        case 0x86: return Form{Operation::xchg, Width::byte, by_reg, Immediate::none, true};
        case 0x87: return Form{Operation::xchg, Width::operand, by_reg, Immediate::none, true};
        case 0x88: return Form{Operation::mov, Width::byte, by_reg, Immediate::none, false};
        case 0x89: return Form{Operation::mov, Width::operand, by_reg, Immediate::none, false};
        case 0xC6:
            if (reg == 0)
                return Form{Operation::mov, Width::byte, by_imm, Immediate::imm8, false};
            return Errc::eopnotsupp;
        case 0xC7:
            if (reg == 0)
                return Form{Operation::mov, Width::operand, by_imm, Immediate::imm16_or_32, false};
            return Errc::eopnotsupp;
        default: return Errc::eopnotsupp;
        }
    }
    switch (opcode) {
    case 0xB0: return Form{Operation::cmpxchg, Width::byte, by_reg, Immediate::none, true};
    case 0xB1: return Form{Operation::cmpxchg, Width::operand, by_reg, Immediate::none, true};
    case 0xAB: return Form{Operation::bts, Width::operand, by_reg, Immediate::none, true};
    case 0xB3: return Form{Operation::btr, Width::operand, by_reg, Immediate::none, true};
    case 0xBB: return Form{Operation::btc, Width::operand, by_reg, Immediate::none, true};
    case 0xBA:  // /4 is bt, which only reads
        if (reg == 5)
            return Form{Operation::bts, Width::operand, by_imm, Immediate::imm8, true};
        if (reg == 6)
            return Form{Operation::btr, Width::operand, by_imm, Immediate::imm8, true};
        if (reg == 7)
            return Form{Operation::btc, Width::operand, by_imm, Immediate::imm8, true};
        return Errc::eopnotsupp;
    case 0xC7:
        if (reg == 1)
            return Form{Operation::cmpxchg8b, Width::pair, SourceKind::none, Immediate::none, true};
        return Errc::eopnotsupp;
    default: return Errc::eopnotsupp;
    }
}

// The operand size in bytes: REX.W over 66 over the default of 4.
Result<std::uint8_t> operand_size(const Form& form, const Prefixes& prefixes) {
    switch (form.width) {
    case Width::byte: return std::uint8_t{1};
    case Width::operand: return std::uint8_t(prefixes.rex_w() ? 8 : prefixes.operand_size ? 2 : 4);
    case Width::pair:
        if (prefixes.operand_size)
            return Errc::eopnotsupp;  // no kernel writes one, and CPUs disagree on what it means
        return std::uint8_t(prefixes.rex_w() ? 16 : 8);
    }
    return Errc::eopnotsupp;
}

struct MemoryOperand {
    std::uint64_t address;  // base + index * scale + displacement, before rip and segment
    bool rip_relative;
};

// The memory operand of a ModRM byte whose mod is not 3, with its SIB byte and displacement.
// In 64-bit mode rm=101 with mod=00 means rip + disp32 (also with REX.B, so r13 needs a
// displacement), rm=100 means a SIB byte follows (also with REX.B, so r12 needs one), and in the
// SIB byte, index=100 without REX.X means no index, base=x101 with mod=00 means disp32 and no base.
Result<MemoryOperand> decode_memory_operand(InstructionBytes& bytes, const Registers& regs, std::uint8_t modrm,
                                            const Prefixes& prefixes) {
    const unsigned mod = modrm >> 6;
    const unsigned rm = modrm & 7;
    MemoryOperand operand{0, false};
    bool disp32 = mod == 2;
    if (rm == 4) {
        const auto sib = bytes.next_byte();
        if (!sib)
            return sib.error();
        const unsigned index = ((*sib >> 3) & 7) | prefixes.rex_x();
        if (index != 4)
            operand.address += regs.gpr[index] << (*sib >> 6);
        if (mod == 0 && (*sib & 7) == 5)
            disp32 = true;
        else
            operand.address += regs.gpr[(*sib & 7) | prefixes.rex_b()];
    } else if (mod == 0 && rm == 5) {
        operand.rip_relative = true;
        disp32 = true;
    } else {
        operand.address += regs.gpr[rm | prefixes.rex_b()];
    }
    if (mod == 1 || disp32) {
        const unsigned count = disp32 ? 4 : 1;
        const auto displacement = bytes.next_field(count);
        if (!displacement)
            return displacement.error();
        operand.address += static_cast<std::uint64_t>(sign_extend(*displacement, count));
    }
    return operand;
}

Result<std::uint64_t> decode_immediate(InstructionBytes& bytes, Immediate kind, unsigned size) {
    unsigned count = 0;
    switch (kind) {
    case Immediate::none: return std::uint64_t{0};
    case Immediate::imm8: return bytes.next_field(1);
    case Immediate::imm8_sign_extended: count = 1; break;
    case Immediate::imm16_or_32: count = size == 2 ? 2 : 4; break;
    }
    const auto field = bytes.next_field(count);
    if (!field)
        return field.error();
    return static_cast<std::uint64_t>(sign_extend(*field, count));
}

}  // namespace

Result<Decoded> decode(const Registers& regs, Memory& memory) {
    InstructionBytes bytes{memory, regs.rip};
    Prefixes prefixes;
    auto opcode = decode_prefixes(bytes, prefixes);
    if (!opcode)
        return opcode.error();
    const bool two_byte = *opcode == 0x0F;
    if (two_byte) {
        opcode = bytes.next_byte();
        if (!opcode)
            return opcode.error();
    }
    if (!known_opcode(two_byte, *opcode))
        return Errc::eopnotsupp;

    const auto modrm = bytes.next_byte();
    if (!modrm)
        return modrm.error();
    const unsigned reg = (*modrm >> 3) & 7;
    const auto form = form_of(two_byte, *opcode, reg);
    if (!form)
        return form.error();
    // #UD: a lock prefix on an instruction that cannot be locked, or on a register destination.
    if (prefixes.lock && (!form->lockable || (*modrm >> 6) == 3))
        return Errc::einval;
    if ((*modrm >> 6) == 3)  // a register destination never faults on a write; cmpxchg8b's is #UD
        return form->operation == Operation::cmpxchg8b ? Errc::einval : Errc::eopnotsupp;
    const auto size = operand_size(*form, prefixes);
    if (!size)
        return size.error();

    Decoded decoded;
    decoded.operation = form->operation;
    if (decoded.operation == Operation::cmpxchg8b && *size == 16)
        decoded.operation = Operation::cmpxchg16b;
    decoded.size = *size;
    decoded.lock_prefix = prefixes.lock;
    decoded.segment = prefixes.segment;
    decoded.source.kind = form->source;
    if (form->source == SourceKind::reg) {
        // Without REX, byte registers 4-7 are AH, CH, DH, BH; with any REX, SPL, BPL, SIL, DIL.
        const bool high_byte = *size == 1 && prefixes.rex == 0 && reg >= 4;
        decoded.source.reg = {static_cast<Gpr>(high_byte ? reg - 4 : reg | prefixes.rex_r()), high_byte};
    }

    const auto operand = decode_memory_operand(bytes, regs, *modrm, prefixes);
    if (!operand)
        return operand.error();
    const auto immediate = decode_immediate(bytes, form->immediate, *size);
    if (!immediate)
        return immediate.error();
    decoded.source.immediate = *immediate;
    decoded.length = static_cast<std::uint8_t>(bytes.length());

    std::uint64_t address = operand->address;
    if (operand->rip_relative)
        address += regs.rip + decoded.length;  // relative to the next instruction
    if (prefixes.segment == Segment::fs)
        address += regs.fs_base;
    else if (prefixes.segment == Segment::gs)
        address += regs.gs_base;

    const bool bit_test = decoded.operation == Operation::bts || decoded.operation == Operation::btr ||
                          decoded.operation == Operation::btc;
    if (bit_test) {
        const unsigned bits = 8u * *size;
        std::uint64_t offset = *immediate;
        if (form->source == SourceKind::reg) {
            // The register's offset is signed and addresses a bit string that starts at the operand:
            // move to the operand that holds the bit (arithmetic shift: negative offsets go down).
            const std::int64_t signed_offset = sign_extend(read_register(regs, decoded.source.reg, *size), *size);
            const unsigned shift = *size == 2 ? 4 : *size == 4 ? 5 : 6;
            address += static_cast<std::uint64_t>(signed_offset >> shift) * *size;
            offset = static_cast<std::uint64_t>(signed_offset);
        }
        decoded.bit = static_cast<std::uint8_t>(offset & (bits - 1));
    }
    if (decoded.operation == Operation::cmpxchg16b && (address & 15) != 0)
        return Errc::einval;  // #GP
    decoded.address = Vaddr{address};
    return decoded;
}

}  // namespace hv::emulate

// execute(): performing a Decoded on a register file and a Memory, all or nothing.
//
// Every operation works on a copy of the registers and makes at most one call that changes memory
// (write or compare_exchange), as its last fallible step. The copy replaces the caller's registers
// only once that call has succeeded, so a refusal anywhere leaves registers, flags, rip and memory
// as they were.
//
// Which memory calls each operation makes:
//   mov                          write
//   or/and/xor/add/sub, bt*      read, then write; with lock: read, then compare_exchange
//   xchg                         read, then compare_exchange (always locked)
//   cmpxchg, cmpxchg8b/16b       compare_exchange alone. Without lock the CPU is allowed to be
//                                non-atomic; being atomic anyway is one of the things it may do.
// A compare_exchange that finds the memory changed since the read fails the operation with eagain.
#include <hv/emulate.hpp>

#include "operands.hpp"

namespace hv::emulate {
namespace {
using detail::operand_mask;
using detail::read_register;
using detail::sign_bit;
using detail::write_register;

std::uint64_t load_little_endian(const std::byte* bytes, unsigned size) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size; ++i)
        value |= std::uint64_t{std::to_integer<std::uint8_t>(bytes[i])} << (8 * i);
    return value;
}

void store_little_endian(std::uint64_t value, std::byte* bytes, unsigned size) {
    for (unsigned i = 0; i < size; ++i)
        bytes[i] = static_cast<std::byte>(value >> (8 * i));
}

bool is_bit_test(Operation operation) {
    return operation == Operation::bts || operation == Operation::btr || operation == Operation::btc;
}

bool is_alu(Operation operation) {
    return operation == Operation::add || operation == Operation::bitwise_or || operation == Operation::bitwise_and ||
           operation == Operation::sub || operation == Operation::bitwise_xor;
}

// Whether `d` is something decode() could have produced; execute() trusts nothing else about it.
bool is_consistent(const Decoded& d) {
    if (d.length == 0 || d.length > max_instruction_length)
        return false;
    const bool scalar_size = d.size == 1 || d.size == 2 || d.size == 4 || d.size == 8;
    const bool register_source = d.source.kind == SourceKind::reg;
    const bool value_source = register_source || d.source.kind == SourceKind::immediate;
    if (register_source && (static_cast<unsigned>(d.source.reg.gpr) > 15 || (d.source.reg.high_byte && d.size != 1)))
        return false;
    switch (d.operation) {
    case Operation::mov: return scalar_size && value_source && !d.lock_prefix;
    case Operation::xchg:
    case Operation::cmpxchg: return scalar_size && register_source;
    case Operation::cmpxchg8b: return d.size == 8 && d.source.kind == SourceKind::none;
    case Operation::cmpxchg16b:
        return d.size == 16 && d.source.kind == SourceKind::none && (d.address.value & 15) == 0;
    case Operation::bts:
    case Operation::btr:
    case Operation::btc: return d.size >= 2 && scalar_size && value_source && d.bit < 8u * d.size;
    default: return is_alu(d.operation) && scalar_size && value_source;
    }
}

std::uint64_t source_value(const Decoded& d, const Registers& regs) {
    if (d.source.kind == SourceKind::reg)
        return read_register(regs, d.source.reg, d.size);
    return d.source.immediate & operand_mask(d.size);
}

void set_flags(Registers& regs, std::uint64_t changed, std::uint64_t values) {
    regs.rflags = (regs.rflags & ~changed) | (values & changed);
}

// A result and the flags the instruction sets from it: `changed` says which, `values` to what.
struct Computed {
    std::uint64_t value;
    std::uint64_t changed;
    std::uint64_t values;
};

// ZF, SF and PF, which every arithmetic and logic result sets the same way.
std::uint64_t result_flags(std::uint64_t result, unsigned size) {
    std::uint64_t flags = 0;
    if (result == 0)
        flags |= flag_zf;
    if (result & sign_bit(size))
        flags |= flag_sf;
    std::uint8_t parity = static_cast<std::uint8_t>(result);
    parity ^= parity >> 4;
    parity ^= parity >> 2;
    parity ^= parity >> 1;
    if ((parity & 1) == 0)
        flags |= flag_pf;  // set for an even number of ones in the low byte
    return flags;
}

// `a op b` on `size`-byte operands (both already masked to the size).
Computed alu(Operation operation, std::uint64_t a, std::uint64_t b, unsigned size) {
    const std::uint64_t mask = operand_mask(size);
    std::uint64_t result = 0;
    std::uint64_t flags = 0;
    switch (operation) {
    case Operation::add:
        result = (a + b) & mask;
        if (result < a)
            flags |= flag_cf;
        if ((a ^ result) & (b ^ result) & sign_bit(size))
            flags |= flag_of;  // both inputs have the sign the result lacks
        flags |= (a ^ b ^ result) & flag_af;
        break;
    case Operation::sub:
        result = (a - b) & mask;
        if (a < b)
            flags |= flag_cf;
        if ((a ^ b) & (a ^ result) & sign_bit(size))
            flags |= flag_of;  // inputs of different signs, and the result lost a's
        flags |= (a ^ b ^ result) & flag_af;
        break;
    // CF and OF cleared. AF is undefined: cleared, as the AMD and Intel processors we know do.
    case Operation::bitwise_or: result = a | b; break;
    case Operation::bitwise_and: result = a & b; break;
    default: result = a ^ b; break;
    }
    return {result, arithmetic_flags, flags | result_flags(result, size)};
}

// bts, btr, btc: CF receives the bit's old value; ZF is kept; OF, SF, AF, PF are undefined and kept.
Computed bit_test(Operation operation, std::uint64_t value, unsigned bit) {
    const std::uint64_t mask = std::uint64_t{1} << bit;
    const std::uint64_t carry = (value & mask) ? flag_cf : 0;
    if (operation == Operation::bts)
        value |= mask;
    else if (operation == Operation::btr)
        value &= ~mask;
    else
        value ^= mask;
    return {value, flag_cf, carry};
}

// Stores the new value where the old one was read: atomically if the instruction is locked.
Result<void> commit(const Decoded& d, Memory& memory, std::uint64_t old_value, std::uint64_t new_value) {
    std::byte desired[8];
    store_little_endian(new_value, desired, d.size);
    if (!d.atomic())
        return memory.write(d.address, std::span<const std::byte>{desired, d.size});
    std::byte expected[8];
    store_little_endian(old_value, expected, d.size);
    const auto swapped =
        memory.compare_exchange(d.address, std::span{expected, d.size}, std::span<const std::byte>{desired, d.size});
    if (!swapped)
        return swapped.error();
    if (!*swapped)
        return Errc::eagain;
    return {};
}

Result<std::uint64_t> read_operand(const Decoded& d, Memory& memory) {
    std::byte bytes[8];
    const auto read = memory.read(d.address, std::span{bytes, d.size});
    if (!read)
        return read.error();
    return load_little_endian(bytes, d.size);
}

Result<void> store(const Decoded& d, Memory& memory, std::uint64_t source) {
    std::byte bytes[8];
    store_little_endian(source, bytes, d.size);
    return memory.write(d.address, std::span<const std::byte>{bytes, d.size});
}

// or/and/xor/add/sub and the bit tests: read, compute, write back, set the flags.
Result<void> read_modify_write(const Decoded& d, Registers& regs, Memory& memory, std::uint64_t source) {
    const auto old_value = read_operand(d, memory);
    if (!old_value)
        return old_value.error();
    const Computed computed =
        is_bit_test(d.operation) ? bit_test(d.operation, *old_value, d.bit) : alu(d.operation, *old_value, source, d.size);
    const auto committed = commit(d, memory, *old_value, computed.value);
    if (!committed)
        return committed;
    set_flags(regs, computed.changed, computed.values);
    return {};
}

// xchg: the register receives the memory's old value; no flags change.
Result<void> exchange(const Decoded& d, Registers& regs, Memory& memory, std::uint64_t source) {
    const auto old_value = read_operand(d, memory);
    if (!old_value)
        return old_value.error();
    const auto committed = commit(d, memory, *old_value, source);
    if (!committed)
        return committed;
    write_register(regs, d.source.reg, d.size, *old_value);
    return {};
}

// cmpxchg: flags as `cmp accumulator, memory`. The accumulator is written only when the compare
// fails (so a 4-byte cmpxchg that succeeds keeps rax's upper half, as the CPU does).
Result<void> compare_exchange(const Decoded& d, Registers& regs, Memory& memory, std::uint64_t source) {
    const RegisterOperand accumulator{Gpr::rax, false};
    const std::uint64_t expected_value = read_register(regs, accumulator, d.size);
    std::byte expected[8];
    std::byte desired[8];
    store_little_endian(expected_value, expected, d.size);
    store_little_endian(source, desired, d.size);
    const auto swapped =
        memory.compare_exchange(d.address, std::span{expected, d.size}, std::span<const std::byte>{desired, d.size});
    if (!swapped)
        return swapped.error();
    const std::uint64_t found = *swapped ? expected_value : load_little_endian(expected, d.size);
    const Computed comparison = alu(Operation::sub, expected_value, found, d.size);
    set_flags(regs, comparison.changed, comparison.values);
    if (!*swapped)
        write_register(regs, accumulator, d.size, found);
    return {};
}

// cmpxchg8b/16b: compare rdx:rax (edx:eax) with memory, store rcx:rbx (ecx:ebx) if equal, else load
// memory into rdx:rax. Only ZF changes.
Result<void> compare_exchange_pair(const Decoded& d, Registers& regs, Memory& memory) {
    const unsigned half = d.size / 2u;
    std::byte expected[16];
    std::byte desired[16];
    store_little_endian(regs[Gpr::rax], expected, half);
    store_little_endian(regs[Gpr::rdx], expected + half, half);
    store_little_endian(regs[Gpr::rbx], desired, half);
    store_little_endian(regs[Gpr::rcx], desired + half, half);
    const auto swapped =
        memory.compare_exchange(d.address, std::span{expected, d.size}, std::span<const std::byte>{desired, d.size});
    if (!swapped)
        return swapped.error();
    set_flags(regs, flag_zf, *swapped ? flag_zf : 0);
    if (!*swapped) {
        write_register(regs, {Gpr::rax, false}, half, load_little_endian(expected, half));
        write_register(regs, {Gpr::rdx, false}, half, load_little_endian(expected + half, half));
    }
    return {};
}

Result<void> perform(const Decoded& d, Registers& regs, Memory& memory) {
    const std::uint64_t source = d.size <= 8 ? source_value(d, regs) : 0;
    switch (d.operation) {
    case Operation::mov: return store(d, memory, source);
    case Operation::xchg: return exchange(d, regs, memory, source);
    case Operation::cmpxchg: return compare_exchange(d, regs, memory, source);
    case Operation::cmpxchg8b:
    case Operation::cmpxchg16b: return compare_exchange_pair(d, regs, memory);
    default: return read_modify_write(d, regs, memory, source);
    }
}

}  // namespace

Result<void> execute(const Decoded& instruction, Registers& regs, Memory& memory) {
    if (!is_consistent(instruction))
        return Errc::einval;
    Registers next = regs;
    const auto performed = perform(instruction, next, memory);
    if (!performed)
        return performed;
    next.rip += instruction.length;
    next.rflags &= ~flag_rf;
    regs = next;
    return {};
}

Result<Decoded> emulate_instruction(Registers& regs, Memory& memory) {
    const auto decoded = decode(regs, memory);
    if (!decoded)
        return decoded;
    const auto executed = execute(*decoded, regs, memory);
    if (!executed)
        return executed.error();
    return decoded;
}

}  // namespace hv::emulate

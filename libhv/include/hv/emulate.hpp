// A small x86-64 instruction emulator for the writes a guest kernel makes to its page tables.
//
// With Xen's writable page tables (VMASST_TYPE_writable_pagetables) a PV guest kernel, running in
// ring 3 in 64-bit mode, writes its L1 entries with ordinary instructions although those pages are
// mapped read-only. The write faults; the hypervisor decodes the faulting instruction with decode(),
// performs it with execute() through a Memory whose writes it validates like an mmu_update of that
// entry, and resumes the guest after the instruction. This component only decodes and executes:
// which addresses may be read or written, and what may be written there, is the Memory's to decide.
//
// Only the memory-writing instructions that Linux, NetBSD and Mini-OS use on page-table entries are
// performed: mov, xchg, cmpxchg, cmpxchg8b/16b, or/and/xor/add/sub and bts/btr/btc, each with a
// memory destination. Everything else is refused, so the caller bounces the fault to the guest.
//
// Errors (beyond those a Memory returns, which are passed on unchanged):
//   eopnotsupp  an instruction this emulator does not perform, valid or not on the CPU: other
//               opcodes, a register destination, the 67 (address size) or F2/F3 prefixes.
//   einval      an instruction the CPU itself would refuse (#UD or #GP): a lock prefix on mov or
//               on a register operand, more than 15 bytes, cmpxchg8b with a register operand,
//               cmpxchg16b on an address not 16-aligned; also a Decoded that decode() could not
//               have produced. (An unsupported opcode is eopnotsupp, with or without lock.)
//   eagain      an atomic read-modify-write lost a race: the memory changed between its read and
//               its compare-exchange. Nothing changed; run the instruction again (resume the guest
//               at the same rip, as Xen's X86EMUL_RETRY does, or call execute() again).
// Every failure leaves registers and memory exactly as they were.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <hv/core.hpp>

namespace hv::emulate {

// The CPU raises #GP for a longer instruction, however many of its bytes are redundant prefixes.
inline constexpr unsigned max_instruction_length = 15;

// The general-purpose registers, in the order x86 encodes them in ModRM, SIB and REX.
enum class Gpr : std::uint8_t { rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15 };

// RFLAGS bits this emulator reads or changes.
inline constexpr std::uint64_t flag_cf = 1u << 0;   // carry
inline constexpr std::uint64_t flag_pf = 1u << 2;   // parity of the result's low byte
inline constexpr std::uint64_t flag_af = 1u << 4;   // carry out of bit 3
inline constexpr std::uint64_t flag_zf = 1u << 6;   // zero
inline constexpr std::uint64_t flag_sf = 1u << 7;   // sign
inline constexpr std::uint64_t flag_of = 1u << 11;  // signed overflow
inline constexpr std::uint64_t flag_rf = 1u << 16;  // resume: cleared when an instruction completes
inline constexpr std::uint64_t arithmetic_flags = flag_cf | flag_pf | flag_af | flag_zf | flag_sf | flag_of;

// The guest vCPU state an instruction can read or change, in 64-bit mode.
struct Registers {
    std::uint64_t gpr[16];
    std::uint64_t rip;
    std::uint64_t rflags;
    std::uint64_t fs_base;  // added to the address by a 64 (FS) prefix
    std::uint64_t gs_base;  // added to the address by a 65 (GS) prefix

    std::uint64_t& operator[](Gpr reg) { return gpr[static_cast<unsigned>(reg) & 15]; }
    std::uint64_t operator[](Gpr reg) const { return gpr[static_cast<unsigned>(reg) & 15]; }
};

// The guest's address space as the instruction sees it, given by the caller. Each call does all of
// the access or none of it; a refused call returns the error that the emulation then returns.
// Addresses are virtual and unchecked: canonical form, mappings, access rights and the values
// written are for the implementation to check (for a page-table page: validate the new entry as
// mmu_update would, and refuse what mmu_update would refuse).
class Memory {
public:
    // Instruction bytes. Asked first for up to 15 bytes from rip to the end of its 4 KiB page,
    // then, only if the instruction continues past that page, for the rest from the next one:
    // never for a range that crosses a page, nor for a page the instruction does not reach.
    virtual Result<void> fetch(Vaddr address, std::span<std::byte> into) = 0;
    // The operand of a read-modify-write, 1, 2, 4 or 8 bytes.
    virtual Result<void> read(Vaddr address, std::span<std::byte> into) = 0;
    // A store, 1, 2, 4 or 8 bytes.
    virtual Result<void> write(Vaddr address, std::span<const std::byte> from) = 0;
    // Atomically: if the memory at `address` equals `expected`, store `desired` and return true;
    // otherwise copy the memory's current value into `expected` and return false. Both spans have
    // the operand's size, 1, 2, 4, 8 or 16 bytes. May refuse the access whether or not it would
    // have stored.
    virtual Result<bool> compare_exchange(Vaddr address, std::span<std::byte> expected,
                                          std::span<const std::byte> desired) = 0;

protected:
    ~Memory() = default;
};

enum class Operation : std::uint8_t {
    mov,          // 88, 89, C6 /0, C7 /0: store the source
    xchg,         // 86, 87: swap memory and register, atomically (locked with or without F0)
    cmpxchg,      // 0F B0, 0F B1: compare with the accumulator, store the source if equal
    cmpxchg8b,    // 0F C7 /1: compare with edx:eax, store ecx:ebx if equal
    cmpxchg16b,   // REX.W 0F C7 /1: compare with rdx:rax, store rcx:rbx if equal
    add,          // 00, 01, 80-83 /0
    bitwise_or,   // 08, 09, 80-83 /1
    bitwise_and,  // 20, 21, 80-83 /4
    sub,          // 28, 29, 80-83 /5
    bitwise_xor,  // 30, 31, 80-83 /6
    bts,          // 0F AB, 0F BA /5: set a bit, old value in CF
    btr,          // 0F B3, 0F BA /6: clear a bit, old value in CF
    btc,          // 0F BB, 0F BA /7: flip a bit, old value in CF
};

// A register operand: a general-purpose register, or for byte operands without a REX prefix,
// encodings 4-7 name AH, CH, DH, BH, the second byte of rax, rcx, rdx, rbx.
struct RegisterOperand {
    Gpr gpr = Gpr::rax;
    bool high_byte = false;
};

enum class SourceKind : std::uint8_t {
    none,       // cmpxchg8b/16b: the operands are implied (rdx:rax, rcx:rbx)
    reg,        // the ModRM reg field
    immediate,  // an immediate (for bts/btr/btc the raw imm8; `bit` has it reduced)
};

struct Source {
    SourceKind kind = SourceKind::none;
    RegisterOperand reg;
    std::uint64_t immediate = 0;  // sign-extended to 64 bits as the instruction extends it
};

enum class Segment : std::uint8_t { none, fs, gs };

// One decoded instruction with its memory operand resolved.
struct Decoded {
    Operation operation = Operation::mov;
    std::uint8_t size = 0;       // bytes of the memory operand: 1, 2, 4, 8, or 16 (cmpxchg16b)
    std::uint8_t length = 0;     // bytes of the instruction, prefixes included; rip advances by this
    bool lock_prefix = false;    // F0 was present
    Segment segment = Segment::none;
    Vaddr address{0};            // the bytes accessed: [address, address + size), segment base added
    Source source;
    std::uint8_t bit = 0;        // bts/btr/btc: the bit within the operand at `address`

    // Whether the memory must change atomically: lock prefix, or xchg, which the CPU always locks.
    bool atomic() const { return lock_prefix || operation == Operation::xchg; }
};

// Decodes the instruction at regs.rip, fetching at most 15 bytes. Reads registers to compute the
// address; changes nothing.
//
// Bit tests with a register offset (0F AB/B3/BB) follow the CPU: the offset is signed and may
// reach outside the operand; decode moves `address` by whole operands (offset >> log2(bits), in
// units of `size`) and leaves the bit within the operand in `bit`. The Memory sees the operand the
// CPU would have written, at its own address, and decides whether to allow it.
Result<Decoded> decode(const Registers& regs, Memory& memory);

// Performs a decoded instruction: the memory access (read-modify-write where the instruction has
// one), then the register results and the flags, then rip += length and RF cleared. xchg, locked
// read-modify-writes and every cmpxchg store through Memory::compare_exchange; the others use read
// and write. At most one call changes memory, and nothing changes unless everything succeeds.
// Flags the CPU leaves undefined: AF after or/and/xor is cleared (as AMD and Intel processors do);
// OF, SF, AF and PF after bts/btr/btc are kept. Single-step (TF) and data breakpoints are the
// caller's to deliver.
Result<void> execute(const Decoded& instruction, Registers& regs, Memory& memory);

// decode() then execute(); returns what was performed.
Result<Decoded> emulate_instruction(Registers& regs, Memory& memory);

}  // namespace hv::emulate

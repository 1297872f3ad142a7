// The emulator against the processor running the tests: the same instruction on the same values
// must leave the same memory and the same defined flags. Only on an x86-64 host with GCC or Clang.
#include "emulate_fixture.hpp"

#if defined(__x86_64__) && defined(__GNUC__)

#include <vector>

using namespace emulate_test;

namespace {

// Runs `insn %src, mem` on this processor from `flags_in`; returns RFLAGS afterwards. The stack
// pointer steps over the red zone first, where the compiler may keep locals, and `mem` is static,
// so never addressed through rsp.
#define PVKIT_RUN_ON_HOST(insn, mem)                                                            \
    asm volatile("add $-128, %%rsp\n\t"                                                         \
                 "push %[in]\n\t"                                                               \
                 "popfq\n\t" insn " %[src], %[dst]\n\t"                                         \
                 "pushfq\n\t"                                                                   \
                 "pop %[out]\n\t"                                                               \
                 "sub $-128, %%rsp"                                                             \
                 : [dst] "+m"(mem), [out] "=&r"(flags_out)                                      \
                 : [src] "r"(source), [in] "r"(flags_in)                                        \
                 : "cc", "memory")

template <class T>
std::uint64_t host_alu(Operation operation, std::uint64_t& value, std::uint64_t source_bits, std::uint64_t flags_in) {
    static T cell;
    cell = static_cast<T>(value);
    const T source = static_cast<T>(source_bits);
    std::uint64_t flags_out = 0;
    switch (operation) {
    case Operation::add: PVKIT_RUN_ON_HOST("add", cell); break;
    case Operation::bitwise_or: PVKIT_RUN_ON_HOST("or", cell); break;
    case Operation::bitwise_and: PVKIT_RUN_ON_HOST("and", cell); break;
    case Operation::sub: PVKIT_RUN_ON_HOST("sub", cell); break;
    default: PVKIT_RUN_ON_HOST("xor", cell); break;
    }
    value = cell;
    return flags_out;
}

// A bit test with a register offset on a 64-byte area, the operand at its middle.
template <class T>
std::uint64_t host_bit_test(Operation operation, std::array<std::uint64_t, 8>& area, std::uint64_t offset,
                            std::uint64_t flags_in) {
    static std::array<std::uint64_t, 8> cells;
    cells = area;
    const T source = static_cast<T>(offset);
    std::uint64_t flags_out = 0;
    switch (operation) {
    case Operation::bts: PVKIT_RUN_ON_HOST("bts", cells[4]); break;
    case Operation::btr: PVKIT_RUN_ON_HOST("btr", cells[4]); break;
    default: PVKIT_RUN_ON_HOST("btc", cells[4]); break;
    }
    area = cells;
    return flags_out;
}

#undef PVKIT_RUN_ON_HOST

constexpr std::uint64_t boundary_values[] = {
    0,
    1,
    2,
    0x0F,
    0x10,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFF'FFFF,
    0x8000'0000,
    0xFFFF'FFFF,
    0x8000'0000'1234'5067,  // a present, writable, accessed, dirty, no-execute PTE
    0x7FFF'FFFF'FFFF'FFFF,
    0x8000'0000'0000'0000,
    0xFFFF'FFFF'FFFF'FFFF,
    0x5555'AAAA'F0F0'0F0F,
};

// The instruction `op %cl/%cx/%ecx/%rcx,(%rdi)` for an operation and an operand size.
std::vector<std::uint8_t> encode_alu(Operation operation, unsigned size) {
    std::uint8_t opcode = 0;
    switch (operation) {
    case Operation::add: opcode = 0x00; break;
    case Operation::bitwise_or: opcode = 0x08; break;
    case Operation::bitwise_and: opcode = 0x20; break;
    case Operation::sub: opcode = 0x28; break;
    default: opcode = 0x30; break;
    }
    std::vector<std::uint8_t> bytes;
    if (size == 2)
        bytes.push_back(0x66);
    if (size == 8)
        bytes.push_back(0x48);
    bytes.push_back(size == 1 ? opcode : opcode + 1);
    bytes.push_back(0x0F);  // ModRM: reg rcx, rm (%rdi)
    return bytes;
}

// The instruction `bt* %cx/%ecx/%rcx,(%rdi)`.
std::vector<std::uint8_t> encode_bit_test(Operation operation, unsigned size) {
    std::vector<std::uint8_t> bytes;
    if (size == 2)
        bytes.push_back(0x66);
    if (size == 8)
        bytes.push_back(0x48);
    bytes.push_back(0x0F);
    bytes.push_back(operation == Operation::bts ? 0xAB : operation == Operation::btr ? 0xB3 : 0xBB);
    bytes.push_back(0x0F);
    return bytes;
}

// Runs `bytes` in the emulator with rdi at `data_base + rdi_offset` and rcx = `rcx`.
Vcpu run_emulated(const std::vector<std::uint8_t>& bytes, std::uint64_t rdi_offset, std::uint64_t rcx,
             std::uint64_t flags_in, const std::array<std::uint64_t, 8>& area) {
    Vcpu cpu;
    for (std::size_t i = 0; i < bytes.size(); ++i)
        cpu.memory.code[i] = static_cast<std::byte>(bytes[i]);
    for (std::size_t i = 0; i < area.size(); ++i)
        cpu.memory.store(8 * i, area[i]);
    cpu.regs[Gpr::rdi] = FakeMemory::data_base + rdi_offset;
    cpu.regs[Gpr::rcx] = rcx;
    cpu.regs.rflags = flags_in;
    cpu.run_ok();
    return cpu;
}

}  // namespace

TEST_CASE("emulate: or/and/xor/add/sub leave the memory and flags this processor leaves", "[emulate]") {
    const Operation operations[] = {Operation::add, Operation::bitwise_or, Operation::bitwise_and, Operation::sub,
                                    Operation::bitwise_xor};
    for (const auto operation : operations) {
        // AF is undefined after the logic operations: compare it only where it is defined.
        const bool arithmetic = operation == Operation::add || operation == Operation::sub;
        const std::uint64_t compared = arithmetic ? arithmetic_flags : arithmetic_flags & ~flag_af;
        for (const unsigned size : {1u, 2u, 4u, 8u}) {
            const auto bytes = encode_alu(operation, size);
            for (const auto a : boundary_values) {
                for (const auto b : boundary_values) {
                    for (const std::uint64_t flags_in : {std::uint64_t{0x202}, 0x202 | arithmetic_flags}) {
                        std::uint64_t host_value = a;
                        std::uint64_t host_flags = 0;
                        switch (size) {
                        case 1: host_flags = host_alu<std::uint8_t>(operation, host_value, b, flags_in); break;
                        case 2: host_flags = host_alu<std::uint16_t>(operation, host_value, b, flags_in); break;
                        case 4: host_flags = host_alu<std::uint32_t>(operation, host_value, b, flags_in); break;
                        default: host_flags = host_alu<std::uint64_t>(operation, host_value, b, flags_in); break;
                        }
                        const Vcpu cpu = run_emulated(bytes, 0, b, flags_in, {a});
                        const std::uint64_t mask = size == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * size)) - 1;
                        if (cpu.memory.load(0, size) != (host_value & mask) ||
                            (cpu.regs.rflags & compared) != (host_flags & compared)) {
                            FAIL_CHECK("operation " << int(operation) << " size " << size << std::hex << " a " << a
                                                    << " b " << b << " flags in " << flags_in << ": host value "
                                                    << host_value << " flags " << host_flags << ", emulated value "
                                                    << cpu.memory.load(0, size) << " flags " << cpu.regs.rflags);
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("emulate: bit tests with register offsets reach the bit this processor reaches", "[emulate]") {
    const std::array<std::uint64_t, 8> pattern = {0x0123'4567'89AB'CDEF, 0xFEDC'BA98'7654'3210, 0x8000'0000'1234'5067,
                                                  0x5555'AAAA'F0F0'0F0F, 0, ~std::uint64_t{0},
                                                  0x0F0F'0F0F'0F0F'0F0F, 0x8000'0000'0000'0001};
    const std::int64_t offsets[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 200, 255,
                                    -1, -2, -16, -17, -32, -33, -64, -65, -200, -256};
    for (const auto operation : {Operation::bts, Operation::btr, Operation::btc}) {
        for (const unsigned size : {2u, 4u, 8u}) {
            const auto bytes = encode_bit_test(operation, size);
            for (const auto offset : offsets) {
                // the register's bits above the operand size must not matter
                const std::uint64_t rcx = static_cast<std::uint64_t>(offset) ^ (size == 8 ? 0 : 0xA5A5'0000'0000'0000);
                const std::uint64_t flags_in = 0x202 | arithmetic_flags;
                auto host_area = pattern;
                std::uint64_t host_flags = 0;
                switch (size) {
                case 2: host_flags = host_bit_test<std::uint16_t>(operation, host_area, rcx, flags_in); break;
                case 4: host_flags = host_bit_test<std::uint32_t>(operation, host_area, rcx, flags_in); break;
                default: host_flags = host_bit_test<std::uint64_t>(operation, host_area, rcx, flags_in); break;
                }
                const Vcpu cpu = run_emulated(bytes, 32, rcx, flags_in, pattern);
                INFO("operation " << int(operation) << " size " << size << " offset " << offset);
                for (std::size_t i = 0; i < 8; ++i)
                    CHECK(cpu.memory.data_u64(8 * i) == host_area[i]);
                CHECK((cpu.regs.rflags & flag_cf) == (host_flags & flag_cf));
            }
        }
    }
}

#endif

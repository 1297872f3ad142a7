// execute(): or/and/xor/add/sub and bts/btr/btc on memory, their flags and their memory calls.
#include "emulate_fixture.hpp"

using namespace emulate_test;

namespace {

struct Case {
    const char* assembly;
    std::initializer_list<std::uint8_t> bytes;
    std::uint64_t memory_before;  // the 8 bytes at rdi
    std::uint64_t source;         // rsi, or rcx for byte forms (an immediate is in the bytes)
    std::uint64_t memory_after;
    std::size_t size;             // bytes read and written
    std::uint64_t flags;          // the arithmetic flags afterwards
};

// Runs each case twice, from all arithmetic flags clear and from all set: the result must not
// depend on them, and the flags outside the arithmetic ones must not move.
void run_cases(std::initializer_list<Case> cases, bool locked) {
    for (const auto& c : cases) {
        for (const std::uint64_t flags_before : {std::uint64_t{0}, arithmetic_flags}) {
            INFO(c.assembly << ", flags before " << std::hex << flags_before);
            Vcpu cpu;
            cpu.memory.store(0, c.memory_before);
            cpu.memory.store(8, 0xEEEE'EEEE'EEEE'EEEE);
            cpu.regs[Gpr::rsi] = c.source;
            cpu.regs[Gpr::rcx] = c.source;
            cpu.regs.rflags = 0x202 | flags_before;
            cpu.code(c.bytes);
            const Registers before = cpu.regs;
            const Decoded decoded = cpu.run_ok();
            CHECK(decoded.lock_prefix == locked);
            CHECK(cpu.memory.data_u64(0) == c.memory_after);
            CHECK(cpu.memory.data_u64(8) == 0xEEEE'EEEE'EEEE'EEEE);
            CHECK((cpu.regs.rflags & arithmetic_flags) == c.flags);
            CHECK((cpu.regs.rflags & ~arithmetic_flags) == 0x202);
            for (unsigned i = 0; i < 16; ++i)
                CHECK(cpu.regs.gpr[i] == before.gpr[i]);
            CHECK(cpu.regs.rip == code + c.bytes.size());
            const Kind store = locked ? Kind::compare_exchange : Kind::write;
            CHECK(cpu.memory.accesses ==
                  std::vector<Access>{{Kind::fetch, code, 15}, {Kind::read, data, c.size}, {store, data, c.size}});
        }
    }
}

}  // namespace

TEST_CASE("emulate: or/and/xor/add/sub with a register source", "[emulate]") {
    run_cases({
        {"lock or %rsi,(%rdi)", {0xF0, 0x48, 0x09, 0x37}, 0x8000'0000'0000'0001, 0x66, 0x8000'0000'0000'0067, 8,
         flag_sf},
        {"lock and %rsi,(%rdi)", {0xF0, 0x48, 0x21, 0x37}, 0x0000'0000'DEAD'BEEF, 0xFFFF'FFFF'0000'0000, 0, 8,
         flag_zf | flag_pf},
    }, true);
    run_cases({
        {"xor %rsi,(%rdi)", {0x48, 0x31, 0x37}, 0x1234'5678'9ABC'DEF0, 0x1234'5678'9ABC'DEF0, 0, 8, flag_zf | flag_pf},
        {"add %rsi,(%rdi): carry", {0x48, 0x01, 0x37}, ~std::uint64_t{0}, 1, 0, 8, flag_cf | flag_zf | flag_pf | flag_af},
        {"add %rsi,(%rdi): overflow", {0x48, 0x01, 0x37}, 0x7FFF'FFFF'FFFF'FFFF, 1, 0x8000'0000'0000'0000, 8,
         flag_of | flag_sf | flag_pf | flag_af},
        {"sub %rsi,(%rdi): borrow", {0x48, 0x29, 0x37}, 0, 1, ~std::uint64_t{0}, 8, flag_cf | flag_sf | flag_pf | flag_af},
        {"sub %rsi,(%rdi): overflow", {0x48, 0x29, 0x37}, 0x8000'0000'0000'0000, 1, 0x7FFF'FFFF'FFFF'FFFF, 8,
         flag_of | flag_pf | flag_af},
        // byte and dword forms: flags of the operand's width, bytes above it untouched
        {"or %cl,(%rdi)", {0x08, 0x0F}, 0xEEEE'EEEE'EEEE'EE80, 0x01, 0xEEEE'EEEE'EEEE'EE81, 1, flag_sf | flag_pf},
        {"add %ecx,(%rdi)", {0x01, 0x0F}, 0xEEEE'EEEE'FFFF'FFFF, 1, 0xEEEE'EEEE'0000'0000, 4,
         flag_cf | flag_zf | flag_pf | flag_af},
    }, false);
}

TEST_CASE("emulate: or/and/xor/add/sub with an immediate source", "[emulate]") {
    run_cases({
        {"lock orq $0x40,(%rdi)", {0xF0, 0x48, 0x83, 0x0F, 0x40}, 0x8000'0000'1234'5025, 0, 0x8000'0000'1234'5065, 8,
         flag_sf | flag_pf},
        // Linux's clear_bit(_PAGE_BIT_RW) with a constant bit number
        {"lock andb $0xfd,(%rdi)", {0xF0, 0x80, 0x27, 0xFD}, 0x8000'0000'1234'5067, 0, 0x8000'0000'1234'5065, 1,
         flag_pf},
    }, true);
    run_cases({
        {"andq $-0x1001,(%rdi)", {0x48, 0x81, 0x27, 0xFF, 0xEF, 0xFF, 0xFF}, 0x8000'0000'1234'5067, 0,
         0x8000'0000'1234'4067, 8, flag_sf},
        {"orl $0x12345678,(%rdi)", {0x81, 0x0F, 0x78, 0x56, 0x34, 0x12}, 0xEEEE'EEEE'0000'0001, 0,
         0xEEEE'EEEE'1234'5679, 4, 0},
        {"xorw $0x1234,(%rdi)", {0x66, 0x81, 0x37, 0x34, 0x12}, 0xEEEE'EEEE'EEEE'1234, 0, 0xEEEE'EEEE'EEEE'0000, 2,
         flag_zf | flag_pf},
        {"addq $0x7fffffff,(%rdi)", {0x48, 0x81, 0x07, 0xFF, 0xFF, 0xFF, 0x7F}, 0x8000'0001, 0, 0x1'0000'0000, 8,
         flag_pf | flag_af},
        {"subb $0x1,(%rdi)", {0x80, 0x2F, 0x01}, 0xEEEE'EEEE'EEEE'EE00, 0, 0xEEEE'EEEE'EEEE'EEFF, 1,
         flag_cf | flag_sf | flag_pf | flag_af},
        {"addl $-1,(%rdi)", {0x83, 0x07, 0xFF}, 0xEEEE'EEEE'0000'0001, 0, 0xEEEE'EEEE'0000'0000, 4,
         flag_cf | flag_zf | flag_pf | flag_af},
    }, false);
}

TEST_CASE("emulate: bts/btr/btc put the old bit in CF and change no other flag", "[emulate]") {
    // Each case starts from all arithmetic flags clear and from all set; only CF may differ.
    struct BitCase {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        std::uint64_t rsi;
        std::size_t offset;  // of the operand accessed, from the data region's start (rdi is at 16)
        std::size_t size;
        std::uint64_t before;
        std::uint64_t after;
        bool carry;
        bool locked;
    };
    const BitCase cases[] = {
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, 5, 16, 8, 0x1, 0x21, false, true},
        {"lock btr %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xB3, 0x37}, 0, 16, 8, 0x21, 0x20, true, true},
        {"lock bts %rsi,(%rdi), offset 64+63", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, 127, 24, 8, 0, 0x8000'0000'0000'0000,
         false, true},
        {"lock btr %rsi,(%rdi), offset -1", {0xF0, 0x48, 0x0F, 0xB3, 0x37}, std::uint64_t(-1), 8, 8,
         0x8000'0000'0000'0001, 0x1, true, true},
        {"btc %esi,(%rdi), offset 33", {0x0F, 0xBB, 0x37}, 0xFFFF'FFFF'0000'0021, 20, 4, 0x67, 0x65, true, false},
        {"bts %si,(%rdi), offset -1", {0x66, 0x0F, 0xAB, 0x37}, 0xFFFF, 14, 2, 0x0067, 0x8067, false, false},
        // Linux's ptep_test_and_clear_young: test_and_clear_bit(_PAGE_BIT_ACCESSED)
        {"lock btrq $0x5,(%rdi)", {0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05}, 0, 16, 8, 0x8000'0000'1234'5067,
         0x8000'0000'1234'5047, true, true},
        {"btsq $0x3f,(%rdi)", {0x48, 0x0F, 0xBA, 0x2F, 0x3F}, 0, 16, 8, 0x1234'5067, 0x8000'0000'1234'5067, false,
         false},
        {"btcl $0x21,(%rdi)", {0x0F, 0xBA, 0x3F, 0x21}, 0, 16, 4, 0x67, 0x65, true, false},
        {"btsw $0x11,(%rdi)", {0x66, 0x0F, 0xBA, 0x2F, 0x11}, 0, 16, 2, 0x67, 0x67, true, false},
    };
    for (const auto& c : cases) {
        for (const std::uint64_t flags_before : {std::uint64_t{0}, arithmetic_flags}) {
            INFO(c.assembly << ", flags before " << std::hex << flags_before);
            Vcpu cpu;
            cpu.regs[Gpr::rdi] = data + 16;
            cpu.regs[Gpr::rsi] = c.rsi;
            cpu.regs.rflags = 0x202 | flags_before;
            cpu.memory.store(c.offset, c.before, c.size);
            cpu.code(c.bytes);
            const Registers before = cpu.regs;
            cpu.run_ok();
            CHECK(cpu.memory.load(c.offset, c.size) == c.after);
            const std::uint64_t expected_flags = (flags_before & ~flag_cf) | (c.carry ? flag_cf : 0);
            CHECK(cpu.regs.rflags == (0x202 | expected_flags));
            for (unsigned i = 0; i < 16; ++i)
                CHECK(cpu.regs.gpr[i] == before.gpr[i]);
            CHECK(cpu.regs.rip == code + c.bytes.size());
            const Kind store = c.locked ? Kind::compare_exchange : Kind::write;
            CHECK(cpu.memory.accesses == std::vector<Access>{{Kind::fetch, code, 15},
                                                             {Kind::read, data + c.offset, c.size},
                                                             {store, data + c.offset, c.size}});
            // the rest of the data region is untouched
            for (std::size_t i = 0; i < cpu.memory.data.size(); ++i) {
                if (i < c.offset || i >= c.offset + c.size)
                    CHECK(cpu.memory.data[i] == std::byte{0});
            }
        }
    }
}

// execute(): mov, xchg, cmpxchg, cmpxchg8b and cmpxchg16b, with the exact memory calls each makes.
#include "emulate_fixture.hpp"

using namespace emulate_test;

namespace {

// Every general-purpose register not named is as it was.
void check_registers_kept(const Registers& before, const Registers& after, std::initializer_list<Gpr> changed = {}) {
    for (unsigned i = 0; i < 16; ++i) {
        bool named = false;
        for (const auto reg : changed)
            named = named || static_cast<unsigned>(reg) == i;
        INFO("register " << i);
        if (!named)
            CHECK(after.gpr[i] == before.gpr[i]);
    }
}

// Fills the data region with 0xEE so that a store that is too wide shows.
void fill(Vcpu& cpu) {
    for (auto& byte : cpu.memory.data)
        byte = std::byte{0xEE};
}

}  // namespace

TEST_CASE("emulate: mov stores a register of each size and nothing else", "[emulate]") {
    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        std::size_t offset;
        std::size_t size;
        std::uint64_t stored;
    };
    const Case cases[] = {
        {"mov %rsi,(%rdi)", {0x48, 0x89, 0x37}, 0, 8, 0x7777'7777'7777'7777},
        {"mov %esi,(%rdi)", {0x89, 0x37}, 0, 4, 0x7777'7777},
        {"mov %si,(%rdi)", {0x66, 0x89, 0x37}, 0, 2, 0x7777},
        {"mov %cl,(%rdi)", {0x88, 0x0F}, 0, 1, 0x22},
        {"mov %ah,(%rdi)", {0x88, 0x27}, 0, 1, 0xAB},
        {"mov %spl,(%rdi)", {0x40, 0x88, 0x27}, 0, 1, 0x55},
        {"mov %r9,0x8(%rdi)", {0x4C, 0x89, 0x4F, 0x08}, 8, 8, 0xAAAA'AAAA'AAAA'AAAA},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        Vcpu cpu;
        fill(cpu);
        cpu.regs[Gpr::rax] = 0x1111'1111'1111'ABCD;
        cpu.code(c.bytes);
        const Registers before = cpu.regs;
        const Decoded decoded = cpu.run_ok();
        CHECK(decoded.operation == Operation::mov);
        CHECK(cpu.memory.load(c.offset, c.size) == c.stored);
        if (c.offset + c.size < 16)
            CHECK(cpu.memory.data[c.offset + c.size] == std::byte{0xEE});
        if (c.offset > 0)
            CHECK(cpu.memory.data[c.offset - 1] == std::byte{0xEE});
        check_registers_kept(before, cpu.regs);
        CHECK(cpu.regs.rip == code + c.bytes.size());
        CHECK(cpu.regs.rflags == before.rflags);
        CHECK(cpu.memory.data_accesses() == 1);
        CHECK(cpu.memory.accesses.back() == Access{Kind::write, data + c.offset, c.size});
    }
}

TEST_CASE("emulate: mov stores an immediate, sign-extended to the operand", "[emulate]") {
    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        std::size_t offset;
        std::size_t size;
        std::uint64_t stored;
    };
    const Case cases[] = {
        {"movb $0xab,(%rdi)", {0xC6, 0x07, 0xAB}, 0, 1, 0xAB},
        {"movw $0xbeef,(%rdi)", {0x66, 0xC7, 0x07, 0xEF, 0xBE}, 0, 2, 0xBEEF},
        {"movl $0x80000001,(%rdi)", {0xC7, 0x07, 0x01, 0x00, 0x00, 0x80}, 0, 4, 0x8000'0001},
        {"movq $-2,(%rdi)", {0x48, 0xC7, 0x07, 0xFE, 0xFF, 0xFF, 0xFF}, 0, 8, 0xFFFF'FFFF'FFFF'FFFE},
        {"movq $0x0,0x10(%rdi)", {0x48, 0xC7, 0x47, 0x10, 0x00, 0x00, 0x00, 0x00}, 0x10, 8, 0},  // pte_clear
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        Vcpu cpu;
        fill(cpu);
        cpu.code(c.bytes);
        const Registers before = cpu.regs;
        cpu.run_ok();
        CHECK(cpu.memory.load(c.offset, c.size) == c.stored);
        CHECK(cpu.memory.data[c.offset + c.size] == std::byte{0xEE});
        check_registers_kept(before, cpu.regs);
        CHECK(cpu.regs.rip == code + c.bytes.size());
        CHECK(cpu.regs.rflags == before.rflags);
        CHECK(cpu.memory.accesses.back() == Access{Kind::write, data + c.offset, c.size});
    }
}

TEST_CASE("emulate: a completed instruction clears RF and keeps the other non-arithmetic flags", "[emulate]") {
    Vcpu cpu;
    cpu.regs.rflags = 0x202 | flag_rf | 0x100 /* TF */ | flag_cf | flag_zf;
    cpu.code({0x48, 0x89, 0x37});  // mov %rsi,(%rdi)
    cpu.run_ok();
    CHECK(cpu.regs.rflags == (0x202 | 0x100 | flag_cf | flag_zf));
}

TEST_CASE("emulate: xchg swaps memory and register through a compare-exchange", "[emulate]") {
    SECTION("xchg %rax,(%rdi)") {
        Vcpu cpu;
        cpu.memory.store(0, 0x8000'0000'1234'5067);
        cpu.code({0x48, 0x87, 0x07});
        const Registers before = cpu.regs;
        const Decoded decoded = cpu.run_ok();
        CHECK(decoded.operation == Operation::xchg);
        CHECK(cpu.memory.data_u64(0) == 0x1111'1111'1111'1111);
        CHECK(cpu.regs[Gpr::rax] == 0x8000'0000'1234'5067);
        check_registers_kept(before, cpu.regs, {Gpr::rax});
        CHECK(cpu.regs.rflags == before.rflags);
        CHECK(cpu.regs.rip == code + 3);
        CHECK(cpu.memory.accesses == std::vector<Access>{{Kind::fetch, code, 15},
                                                         {Kind::read, data, 8},
                                                         {Kind::compare_exchange, data, 8}});
    }
    SECTION("xchg %eax,(%rdi): the 32-bit result zero-extends rax") {
        Vcpu cpu;
        cpu.memory.store(0, 0xEEEE'EEEE'8765'4321);
        cpu.code({0x87, 0x07});
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(0) == 0xEEEE'EEEE'1111'1111);
        CHECK(cpu.regs[Gpr::rax] == 0x8765'4321);
    }
    SECTION("xchg %ah,(%rdi)") {
        Vcpu cpu;
        cpu.memory.store(0, 0x5A, 1);
        cpu.regs[Gpr::rax] = 0x1111'1111'1111'A5C3;
        cpu.code({0x86, 0x27});
        cpu.run_ok();
        CHECK(cpu.memory.load(0, 1) == 0xA5);
        CHECK(cpu.regs[Gpr::rax] == 0x1111'1111'1111'5AC3);
    }
    SECTION("xchg %r10w,0x8(%rdi): the 16-bit result keeps the rest of r10") {
        Vcpu cpu;
        cpu.memory.store(8, 0xEEEE'EEEE'EEEE'1234);
        cpu.code({0x66, 0x44, 0x87, 0x57, 0x08});
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(8) == 0xEEEE'EEEE'EEEE'BBBB);
        CHECK(cpu.regs[Gpr::r10] == 0xBBBB'BBBB'BBBB'1234);
        CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data + 8, 2});
    }
}

TEST_CASE("emulate: cmpxchg that matches stores the source, sets ZF and keeps the accumulator", "[emulate]") {
    Vcpu cpu;
    const std::uint64_t old_pte = 0x8000'0000'1234'5067;
    cpu.memory.store(0, old_pte);
    cpu.regs[Gpr::rax] = old_pte;
    cpu.regs[Gpr::rsi] = 0x8000'0000'1234'5065;
    cpu.regs.rflags = 0x202 | flag_cf | flag_sf | flag_of | flag_af;
    cpu.code({0xF0, 0x48, 0x0F, 0xB1, 0x37});  // lock cmpxchg %rsi,(%rdi)
    const Registers before = cpu.regs;
    const Decoded decoded = cpu.run_ok();
    CHECK(decoded.operation == Operation::cmpxchg);
    CHECK(cpu.memory.data_u64(0) == 0x8000'0000'1234'5065);
    check_registers_kept(before, cpu.regs);
    CHECK(cpu.regs.rflags == (0x202 | flag_zf | flag_pf));  // cmp of equal values
    CHECK(cpu.regs.rip == code + 5);
    CHECK(cpu.memory.data_accesses() == 1);
    CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data, 8});
}

TEST_CASE("emulate: cmpxchg that differs loads the accumulator and sets the flags of cmp", "[emulate]") {
    Vcpu cpu;
    cpu.memory.store(0, 2);
    cpu.regs[Gpr::rax] = 1;
    cpu.code({0x48, 0x0F, 0xB1, 0x37});  // cmpxchg %rsi,(%rdi), without lock: also one compare-exchange
    const Registers before = cpu.regs;
    cpu.run_ok();
    CHECK(cpu.memory.data_u64(0) == 2);
    CHECK(cpu.regs[Gpr::rax] == 2);
    check_registers_kept(before, cpu.regs, {Gpr::rax});
    // 1 - 2 = 0xFF..FF: borrow, negative, even parity, borrow from bit 4
    CHECK(cpu.regs.rflags == (0x202 | flag_cf | flag_sf | flag_pf | flag_af));
    CHECK(cpu.regs.rip == code + 4);
    CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data, 8});
}

TEST_CASE("emulate: 32-bit cmpxchg writes eax only when the compare fails", "[emulate]") {
    SECTION("match: rax keeps its upper half") {
        Vcpu cpu;
        cpu.memory.store(0, 0xEEEE'EEEE'0000'0067);
        cpu.regs[Gpr::rax] = 0xFFFF'FFFF'0000'0067;
        cpu.code({0xF0, 0x0F, 0xB1, 0x37});  // lock cmpxchg %esi,(%rdi)
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(0) == 0xEEEE'EEEE'7777'7777);
        CHECK(cpu.regs[Gpr::rax] == 0xFFFF'FFFF'0000'0067);
        CHECK((cpu.regs.rflags & flag_zf) != 0);
    }
    SECTION("mismatch: eax is loaded and zero-extends") {
        Vcpu cpu;
        cpu.memory.store(0, 0xEEEE'EEEE'8000'0067);
        cpu.regs[Gpr::rax] = 0xFFFF'FFFF'0000'0067;
        cpu.code({0xF0, 0x0F, 0xB1, 0x37});
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(0) == 0xEEEE'EEEE'8000'0067);
        CHECK(cpu.regs[Gpr::rax] == 0x8000'0067);
        // 0x67 - 0x80000067 = 0x80000000: borrow, negative, signed overflow, even parity
        CHECK(cpu.regs.rflags == (0x202 | flag_cf | flag_sf | flag_of | flag_pf));
    }
    SECTION("byte: lock cmpxchg %sil,(%rdi) compares al") {
        Vcpu cpu;
        cpu.memory.store(0, 0x67, 1);
        cpu.regs[Gpr::rax] = 0x1111'1111'1111'1167;
        cpu.code({0xF0, 0x40, 0x0F, 0xB0, 0x37});
        cpu.run_ok();
        CHECK(cpu.memory.load(0, 2) == 0x0077);
        CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data, 1});
    }
}

TEST_CASE("emulate: cmpxchg8b compares edx:eax and stores ecx:ebx", "[emulate]") {
    SECTION("match") {
        Vcpu cpu;
        cpu.memory.store(0, 0x8000'0000'1234'5067);
        cpu.regs[Gpr::rdx] = 0xAAAA'AAAA'8000'0000;  // upper halves are not compared
        cpu.regs[Gpr::rax] = 0xBBBB'BBBB'1234'5067;
        cpu.regs[Gpr::rcx] = 0x0000'0000'0000'0000;
        cpu.regs[Gpr::rbx] = 0xCCCC'CCCC'0000'0000;
        cpu.regs.rflags = 0x202 | flag_cf;
        cpu.code({0xF0, 0x0F, 0xC7, 0x0F});  // lock cmpxchg8b (%rdi)
        const Registers before = cpu.regs;
        const Decoded decoded = cpu.run_ok();
        CHECK(decoded.operation == Operation::cmpxchg8b);
        CHECK(cpu.memory.data_u64(0) == 0);
        check_registers_kept(before, cpu.regs);
        CHECK(cpu.regs.rflags == (0x202 | flag_cf | flag_zf));  // only ZF changes
        CHECK(cpu.regs.rip == code + 4);
        CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data, 8});
    }
    SECTION("mismatch: edx:eax loaded, zero-extended") {
        Vcpu cpu;
        cpu.memory.store(0, 0x8000'0000'1234'5067);
        cpu.regs.rflags = 0x202 | flag_zf;
        cpu.code({0xF0, 0x0F, 0xC7, 0x0F});
        const Registers before = cpu.regs;
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(0) == 0x8000'0000'1234'5067);
        CHECK(cpu.regs[Gpr::rax] == 0x1234'5067);
        CHECK(cpu.regs[Gpr::rdx] == 0x8000'0000);
        check_registers_kept(before, cpu.regs, {Gpr::rax, Gpr::rdx});
        CHECK(cpu.regs.rflags == 0x202);
    }
}

TEST_CASE("emulate: cmpxchg16b compares rdx:rax and stores rcx:rbx", "[emulate]") {
    SECTION("match, lock cmpxchg16b (%rdi)") {
        Vcpu cpu;
        cpu.memory.store(0, 0x1111'1111'1111'1111);
        cpu.memory.store(8, 0x3333'3333'3333'3333);
        cpu.code({0xF0, 0x48, 0x0F, 0xC7, 0x0F});
        const Registers before = cpu.regs;
        const Decoded decoded = cpu.run_ok();
        CHECK(decoded.operation == Operation::cmpxchg16b);
        CHECK(decoded.size == 16);
        CHECK(cpu.memory.data_u64(0) == 0x4444'4444'4444'4444);
        CHECK(cpu.memory.data_u64(8) == 0x2222'2222'2222'2222);
        check_registers_kept(before, cpu.regs);
        CHECK(cpu.regs.rflags == (0x202 | flag_zf));
        CHECK(cpu.memory.accesses.back() == Access{Kind::compare_exchange, data, 16});
    }
    SECTION("mismatch, cmpxchg16b 0x10(%rdi)") {
        Vcpu cpu;
        cpu.memory.store(0x10, 0x1111'1111'1111'1111);
        cpu.memory.store(0x18, 0x0123'4567'89AB'CDEF);
        cpu.regs.rflags = 0x202 | flag_zf;
        cpu.code({0x48, 0x0F, 0xC7, 0x4F, 0x10});
        cpu.run_ok();
        CHECK(cpu.memory.data_u64(0x10) == 0x1111'1111'1111'1111);
        CHECK(cpu.memory.data_u64(0x18) == 0x0123'4567'89AB'CDEF);
        CHECK(cpu.regs[Gpr::rax] == 0x1111'1111'1111'1111);
        CHECK(cpu.regs[Gpr::rdx] == 0x0123'4567'89AB'CDEF);
        CHECK(cpu.regs.rflags == 0x202);
        CHECK(cpu.regs.rip == code + 5);
    }
}

TEST_CASE("emulate: emulate_instruction reports what it performed", "[emulate]") {
    Vcpu cpu;
    cpu.regs[Gpr::rdi] = data + 0x20;
    cpu.code({0x48, 0x89, 0x37});  // mov %rsi,(%rdi)
    const auto done = cpu.run();
    REQUIRE(done);
    CHECK(done->operation == Operation::mov);
    CHECK(done->address == Vaddr{data + 0x20});
    CHECK(done->size == 8);
    CHECK(done->length == 3);
}

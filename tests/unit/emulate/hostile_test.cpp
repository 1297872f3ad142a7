// What a guest can throw at the emulator: cut-off, overlong, unsupported or invalid instructions,
// register destinations, refused and racing memory. Every refusal must change nothing.
#include "emulate_fixture.hpp"

using namespace emulate_test;
using hv::emulate::SourceKind;

namespace {

// Runs the instruction at rip and requires the exact error, with registers and data untouched.
void check_refused(Vcpu& cpu, Errc expected) {
    const Registers before = cpu.regs;
    const auto data_before = cpu.memory.data;
    const auto result = cpu.run();
    REQUIRE_FALSE(result);
    CHECK(result.error() == expected);
    CHECK(same_registers(cpu.regs, before));
    CHECK(cpu.memory.data == data_before);
}

struct Named {
    const char* assembly;
    std::initializer_list<std::uint8_t> bytes;
};

}  // namespace

TEST_CASE("emulate: an instruction cut off by an unmapped page is refused at every cut", "[emulate][hostile]") {
    // movq $0x5,%fs:0x10(%rdi,%rcx,8), with a 4-byte displacement: every field of the layout
    const std::initializer_list<std::uint8_t> bytes = {0x64, 0x48, 0xC7, 0x84, 0xCF, 0x10, 0x00,
                                                       0x00, 0x00, 0x05, 0x00, 0x00, 0x00};
    const std::uint64_t page_end = code + 0x1000;
    for (std::size_t mapped = 0; mapped <= bytes.size(); ++mapped) {
        INFO(mapped << " bytes before the unmapped page");
        Vcpu cpu;
        cpu.regs[Gpr::rcx] = 0;
        cpu.regs.fs_base = 0;
        cpu.regs.rip = page_end - mapped;
        cpu.code(bytes);
        cpu.memory.fetchable_end = page_end;
        cpu.memory.refusal = Errc::eacces;  // whatever the Memory says is what the caller gets
        if (mapped < bytes.size()) {
            check_refused(cpu, Errc::eacces);
            CHECK(cpu.memory.data_accesses() == 0);
        } else {
            // The whole instruction is before the boundary: the next page is never asked for.
            cpu.run_ok();
            CHECK(cpu.memory.data_u64(0x10) == 5);
            CHECK(cpu.memory.count(Kind::fetch) == 1);
            CHECK(cpu.memory.accesses.front() == Access{Kind::fetch, page_end - mapped, mapped});
        }
    }
}

TEST_CASE("emulate: an instruction across a page boundary is fetched in two pieces", "[emulate]") {
    Vcpu cpu;
    cpu.regs.rip = code + 0x1000 - 2;
    cpu.code({0x48, 0x89, 0x37});  // mov %rsi,(%rdi)
    cpu.run_ok();
    CHECK(cpu.memory.data_u64(0) == 0x7777'7777'7777'7777);
    CHECK(cpu.memory.accesses == std::vector<Access>{{Kind::fetch, code + 0x1000 - 2, 2},
                                                     {Kind::fetch, code + 0x1000, 13},
                                                     {Kind::write, data, 8}});
}

TEST_CASE("emulate: more than 15 bytes is refused without fetching a 16th", "[emulate][hostile]") {
    for (const std::size_t prefixes : {13, 14, 20}) {
        INFO(prefixes << " ds prefixes before mov %rsi,(%rdi)");
        Vcpu cpu;
        for (std::size_t i = 0; i < prefixes; ++i)
            cpu.memory.code[i] = std::byte{0x3E};
        cpu.regs.rip = code + prefixes;
        cpu.code({0x48, 0x89, 0x37});
        cpu.regs.rip = code;
        check_refused(cpu, Errc::einval);
        CHECK(cpu.memory.accesses == std::vector<Access>{{Kind::fetch, code, 15}});
    }
    SECTION("lock prefixes repeated until the limit") {
        Vcpu cpu;
        for (std::size_t i = 0; i < 40; ++i)
            cpu.memory.code[i] = std::byte{0xF0};
        check_refused(cpu, Errc::einval);
        CHECK(cpu.memory.data_accesses() == 0);
    }
}

TEST_CASE("emulate: instructions other than the page-table writes are refused", "[emulate][hostile]") {
    const Named cases[] = {
        {"mov (%rdi),%rax", {0x48, 0x8B, 0x07}},
        {"cmp %rsi,(%rdi)", {0x48, 0x39, 0x37}},
        {"adc %rsi,(%rdi)", {0x48, 0x11, 0x37}},
        {"sbb %rsi,(%rdi)", {0x48, 0x19, 0x37}},
        {"cmpq $0x1,(%rdi)", {0x48, 0x83, 0x3F, 0x01}},
        {"incq (%rdi)", {0x48, 0xFF, 0x07}},
        {"ud2", {0x0F, 0x0B}},
        {"bt %rsi,(%rdi)", {0x48, 0x0F, 0xA3, 0x37}},
        {"btq $0x5,(%rdi)", {0x48, 0x0F, 0xBA, 0x27, 0x05}},
        {"rep movsq", {0xF3, 0x48, 0xA5}},
        {"mov %rsi,(%edi)", {0x67, 0x48, 0x89, 0x37}},
        {"xacquire lock or %rsi,(%rdi)", {0xF2, 0xF0, 0x48, 0x09, 0x37}},
        {"movnti %rsi,(%rdi)", {0x48, 0x0F, 0xC3, 0x37}},
        {"mov %rax,%cr3", {0x0F, 0x22, 0xD8}},
        {"vmovdqa %xmm0,(%rdi)", {0xC5, 0xF9, 0x7F, 0x07}},
        {"xadd %rsi,(%rdi)", {0x48, 0x0F, 0xC1, 0x37}},
        {"mov %es,(%rdi)", {0x8C, 0x07}},
        {"push (%rdi)", {0xFF, 0x37}},
        {"sete (%rdi)", {0x0F, 0x94, 0x07}},
        {"rdrand %eax", {0x0F, 0xC7, 0xF0}},
        {"vmptrld (%rdi)", {0x0F, 0xC7, 0x37}},
        {"data16 cmpxchg8b (%rdi)", {0x66, 0x0F, 0xC7, 0x0F}},
        {"(bad) c7 /1", {0xC7, 0x0F, 0x00, 0x00, 0x00, 0x00}},
        {"(bad) 82 /0, invalid in 64-bit mode", {0x82, 0x07, 0x01}},
        {"lock (bad) 0f 38", {0xF0, 0x0F, 0x38, 0x00, 0x07}},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        Vcpu cpu;
        cpu.code(c.bytes);
        check_refused(cpu, Errc::eopnotsupp);
        CHECK(cpu.memory.data_accesses() == 0);
    }
}

TEST_CASE("emulate: register destinations are refused: a write fault is always to memory", "[emulate][hostile]") {
    const Named unsupported[] = {
        {"mov %rax,%rdi", {0x48, 0x89, 0xC7}},
        {"xchg %rsi,%rdi", {0x48, 0x87, 0xF7}},
        {"cmpxchg %rsi,%rdi", {0x48, 0x0F, 0xB1, 0xF7}},
        {"or $0x1,%rax", {0x48, 0x83, 0xC8, 0x01}},
        {"bts %rsi,%rax", {0x48, 0x0F, 0xAB, 0xF0}},
        {"movb $0x1,%al", {0xC6, 0xC0, 0x01}},
    };
    for (const auto& c : unsupported) {
        INFO(c.assembly);
        Vcpu cpu;
        cpu.code(c.bytes);
        check_refused(cpu, Errc::eopnotsupp);
        CHECK(cpu.memory.data_accesses() == 0);
    }
    // The CPU's #UD: lock on a register operand; cmpxchg8b of a register.
    const Named invalid[] = {
        {"lock or %rsi,%rdi", {0xF0, 0x48, 0x09, 0xF7}},
        {"lock xchg %rsi,%rdi", {0xF0, 0x48, 0x87, 0xF7}},
        {"cmpxchg8b %eax", {0x0F, 0xC7, 0xC8}},
    };
    for (const auto& c : invalid) {
        INFO(c.assembly);
        Vcpu cpu;
        cpu.code(c.bytes);
        check_refused(cpu, Errc::einval);
        CHECK(cpu.memory.data_accesses() == 0);
    }
}

TEST_CASE("emulate: lock on an instruction that cannot be locked is refused (#UD)", "[emulate][hostile]") {
    const Named cases[] = {
        {"lock mov %rsi,(%rdi)", {0xF0, 0x48, 0x89, 0x37}},
        {"lock movq $0x0,(%rdi)", {0xF0, 0x48, 0xC7, 0x07, 0x00, 0x00, 0x00, 0x00}},
        {"lock mov %ah,(%rdi)", {0xF0, 0x88, 0x27}},
        {"rex.W lock mov %esi,(%rdi)", {0x48, 0xF0, 0x89, 0x37}},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        Vcpu cpu;
        cpu.code(c.bytes);
        check_refused(cpu, Errc::einval);
        CHECK(cpu.memory.data_accesses() == 0);
    }
}

TEST_CASE("emulate: a refused access changes no memory, register, flag or rip", "[emulate][hostile]") {
    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        bool reads;  // reads before it stores
    };
    const Case cases[] = {
        {"mov %rsi,(%rdi)", {0x48, 0x89, 0x37}, false},
        {"movq $0x0,(%rdi)", {0x48, 0xC7, 0x07, 0x00, 0x00, 0x00, 0x00}, false},
        {"xchg %rax,(%rdi)", {0x48, 0x87, 0x07}, true},
        {"lock cmpxchg %rsi,(%rdi), would match", {0xF0, 0x48, 0x0F, 0xB1, 0x37}, false},
        {"lock cmpxchg8b (%rdi)", {0xF0, 0x0F, 0xC7, 0x0F}, false},
        {"lock cmpxchg16b (%rdi)", {0xF0, 0x48, 0x0F, 0xC7, 0x0F}, false},
        {"lock or %rsi,(%rdi)", {0xF0, 0x48, 0x09, 0x37}, true},
        {"sub %rsi,(%rdi)", {0x48, 0x29, 0x37}, true},
        {"lock andb $0xfd,(%rdi)", {0xF0, 0x80, 0x27, 0xFD}, true},
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, true},
        {"lock btrq $0x5,(%rdi)", {0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05}, true},
    };
    for (const bool refuse_reads : {false, true}) {
        for (const auto& c : cases) {
            if (refuse_reads && !c.reads)
                continue;
            INFO(c.assembly << (refuse_reads ? ", read refused" : ", store refused"));
            Vcpu cpu;
            cpu.memory.store(0, 0x1111'1111'1111'1111);  // equal to rax: a compare would match
            cpu.memory.store(8, 0x3333'3333'3333'3333);  // and rdx, for the 16-byte compare
            cpu.regs[Gpr::rsi] = 5;                       // a bit offset inside the operand
            cpu.regs.rflags = 0x202 | hv::emulate::flag_rf;
            cpu.memory.refuse_reads = refuse_reads;
            cpu.memory.refuse_stores = !refuse_reads;
            cpu.memory.refusal = Errc::eperm;  // as mmu_update refuses an entry
            cpu.code(c.bytes);
            check_refused(cpu, Errc::eperm);
            CHECK((cpu.memory.accesses.back().kind == Kind::read) == refuse_reads);  // the refused call was last
            CHECK(cpu.memory.count(Kind::write) + cpu.memory.count(Kind::compare_exchange) == (refuse_reads ? 0 : 1));
        }
    }
}

TEST_CASE("emulate: a cmpxchg that loses a race completes as a failed compare", "[emulate][hostile]") {
    Vcpu cpu;
    cpu.memory.store(0, 0x8000'0000'1234'5067);
    cpu.regs[Gpr::rax] = 0x8000'0000'1234'5067;
    cpu.memory.before_compare_exchange = [](FakeMemory& memory) { memory.store(0, 0x8000'0000'1234'5027); };
    cpu.code({0xF0, 0x48, 0x0F, 0xB1, 0x37});  // lock cmpxchg %rsi,(%rdi)
    cpu.run_ok();
    CHECK(cpu.memory.data_u64(0) == 0x8000'0000'1234'5027);
    CHECK(cpu.regs[Gpr::rax] == 0x8000'0000'1234'5027);
    CHECK((cpu.regs.rflags & hv::emulate::flag_zf) == 0);
    CHECK(cpu.regs.rip == code + 5);
}

TEST_CASE("emulate: a locked read-modify-write that loses a race is eagain and changes nothing",
          "[emulate][hostile]") {
    const Named cases[] = {
        {"lock orq $0x40,(%rdi)", {0xF0, 0x48, 0x83, 0x0F, 0x40}},
        {"xchg %rax,(%rdi)", {0x48, 0x87, 0x07}},
        {"lock btrq $0x5,(%rdi)", {0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05}},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        Vcpu cpu;
        cpu.memory.store(0, 0x8000'0000'1234'5067);
        // another vCPU clears the accessed bit between our read and our store
        cpu.memory.before_compare_exchange = [](FakeMemory& memory) { memory.store(0, 0x8000'0000'1234'5047); };
        cpu.code(c.bytes);
        const Registers before = cpu.regs;
        const auto result = cpu.run();
        REQUIRE_FALSE(result);
        CHECK(result.error() == Errc::eagain);
        CHECK(same_registers(cpu.regs, before));
        CHECK(cpu.memory.data_u64(0) == 0x8000'0000'1234'5047);  // the other store, not ours

        // Run again, as the guest would on resuming at the same rip: now it completes.
        cpu.memory.before_compare_exchange = nullptr;
        cpu.run_ok();
        CHECK(cpu.regs.rip == code + c.bytes.size());
    }
}

TEST_CASE("emulate: cmpxchg16b on an address that is not 16-aligned is refused (#GP)", "[emulate][hostile]") {
    Vcpu cpu;
    cpu.regs[Gpr::rdi] = data + 8;
    cpu.code({0xF0, 0x48, 0x0F, 0xC7, 0x0F});  // lock cmpxchg16b (%rdi)
    check_refused(cpu, Errc::einval);
    CHECK(cpu.memory.data_accesses() == 0);
    // cmpxchg8b has no such rule
    cpu.code({0xF0, 0x0F, 0xC7, 0x0F});  // lock cmpxchg8b (%rdi)
    cpu.run_ok();
}

TEST_CASE("emulate: address arithmetic wraps as the CPU's does, and the Memory decides", "[emulate][hostile]") {
    Vcpu cpu;
    cpu.regs[Gpr::rdi] = 0xFFFF'FFFF'FFFF'FFF8;
    cpu.code({0x48, 0x89, 0x77, 0x10});  // mov %rsi,0x10(%rdi)
    check_refused(cpu, Errc::efault);
    CHECK(cpu.memory.accesses.back() == Access{Kind::write, 0x8, 8});
    // a GS base that wraps the address around into the data region is the Memory's to judge too
    cpu.regs[Gpr::rdi] = data;
    cpu.regs.gs_base = 0 - std::uint64_t{0x10};
    cpu.code({0x65, 0x48, 0x89, 0x77, 0x10});  // mov %rsi,%gs:0x10(%rdi)
    cpu.run_ok();
    CHECK(cpu.memory.data_u64(0) == 0x7777'7777'7777'7777);
}

TEST_CASE("emulate: execute refuses a Decoded that decode could not have produced", "[emulate][hostile]") {
    Vcpu cpu;
    cpu.code({0x48, 0x89, 0x37});  // mov %rsi,(%rdi)
    const auto good = cpu.decode();
    REQUIRE(good);
    auto bad = [&](auto change) {
        Decoded d = *good;
        change(d);
        return d;
    };
    const Decoded cases[] = {
        bad([](Decoded& d) { d.size = 3; }),
        bad([](Decoded& d) { d.size = 16; }),
        bad([](Decoded& d) { d.length = 0; }),
        bad([](Decoded& d) { d.length = 16; }),
        bad([](Decoded& d) { d.lock_prefix = true; }),
        bad([](Decoded& d) { d.source.reg.high_byte = true; }),
        bad([](Decoded& d) { d.source.reg.gpr = static_cast<Gpr>(16); }),
        bad([](Decoded& d) { d.source.kind = SourceKind::none; }),
        bad([](Decoded& d) { d.operation = Operation::cmpxchg8b; }),
        bad([](Decoded& d) { d.operation = Operation::xchg;
            d.source.kind = SourceKind::immediate; }),
        bad([](Decoded& d) { d.operation = Operation::bts;
            d.bit = 64; }),
        bad([](Decoded& d) { d.operation = Operation::btr;
            d.size = 1; }),
        bad([](Decoded& d) { d.operation = Operation::cmpxchg16b;
            d.size = 16;
            d.source.kind = SourceKind::none;
            d.address = Vaddr{data + 8}; }),
        bad([](Decoded& d) { d.operation = static_cast<Operation>(200); }),
    };
    for (std::size_t i = 0; i < std::size(cases); ++i) {
        INFO("case " << i);
        const Registers before = cpu.regs;
        const auto result = hv::emulate::execute(cases[i], cpu.regs, cpu.memory);
        REQUIRE_FALSE(result);
        CHECK(result.error() == Errc::einval);
        CHECK(same_registers(cpu.regs, before));
        CHECK(cpu.memory.data_accesses() == 0);
    }
}

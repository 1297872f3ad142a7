// decode(): addressing modes, prefixes, operand sizes, sources and lengths.
#include "emulate_fixture.hpp"

using namespace emulate_test;
using hv::emulate::Segment;
using hv::emulate::SourceKind;

namespace {

// Decodes `bytes` at rip and requires success; decode itself touches nothing but code.
Decoded decode_ok(Vcpu& cpu, std::initializer_list<std::uint8_t> bytes) {
    cpu.code(bytes);
    const Registers before = cpu.regs;
    const auto decoded = cpu.decode();
    INFO("errno " << (decoded ? 0 : decoded.xen_errno()));
    REQUIRE(decoded);
    CHECK(same_registers(cpu.regs, before));
    CHECK(cpu.memory.data_accesses() == 0);
    CHECK(decoded->length == bytes.size());
    return *decoded;
}

}  // namespace

TEST_CASE("emulate: decode resolves every ModRM and SIB addressing form", "[emulate]") {
    Vcpu cpu;
    cpu.regs[Gpr::rcx] = 0x30;
    cpu.regs[Gpr::rsp] = 0x7000;
    cpu.regs[Gpr::rbp] = 0x6000;
    cpu.regs[Gpr::r8] = 0x18;
    cpu.regs[Gpr::r12] = 0x5000;
    cpu.regs[Gpr::r13] = 0x4000;
    cpu.regs[Gpr::r15] = 0x3000;
    const std::uint64_t rdi = FakeMemory::data_base;
    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        std::uint64_t address;
    };
    const Case cases[] = {
        {"mov %rax,(%rsp)", {0x48, 0x89, 0x04, 0x24}, 0x7000},                       // rm=100: SIB, base rsp
        {"mov %rax,(%r12)", {0x49, 0x89, 0x04, 0x24}, 0x5000},                       // REX.B base r12 also needs SIB
        {"mov %rax,0x0(%r13)", {0x49, 0x89, 0x45, 0x00}, 0x4000},                    // r13 needs a disp8
        {"mov %rax,0x0(%rbp)", {0x48, 0x89, 0x45, 0x00}, 0x6000},                    // so does rbp
        {"mov %rax,0x10(%rdi,%rcx,8)", {0x48, 0x89, 0x44, 0xCF, 0x10}, rdi + 0x30 * 8 + 0x10},
        {"mov %rax,0x0(,%rcx,4)", {0x48, 0x89, 0x04, 0x8D, 0x00, 0x00, 0x00, 0x00}, 0x30 * 4},  // no base
        {"mov %rax,0x1000", {0x48, 0x89, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00}, 0x1000},  // no base, no index
        {"mov %rax,(%rdi,%r12,2)", {0x4A, 0x89, 0x04, 0x67}, rdi + 0x5000 * 2},       // REX.X: index r12 exists
        {"mov %rax,(%rsp,%r8,1)", {0x4A, 0x89, 0x04, 0x04}, 0x7000 + 0x18},
        {"mov %rax,-0x8(%rdi)", {0x48, 0x89, 0x47, 0xF8}, rdi - 8},                   // disp8 is signed
        {"mov %rax,-0x100(%rdi)", {0x48, 0x89, 0x87, 0x00, 0xFF, 0xFF, 0xFF}, rdi - 0x100},  // so is disp32
        {"mov %r15,(%r15)", {0x4D, 0x89, 0x3F}, 0x3000},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        const Decoded decoded = decode_ok(cpu, c.bytes);
        CHECK(decoded.operation == Operation::mov);
        CHECK(decoded.size == 8);
        CHECK(decoded.address == Vaddr{c.address});
    }
}

TEST_CASE("emulate: rip-relative addresses count from the end of the instruction, immediate included",
          "[emulate]") {
    Vcpu cpu;
    // mov %rax,0x10(%rip)
    CHECK(decode_ok(cpu, {0x48, 0x89, 0x05, 0x10, 0x00, 0x00, 0x00}).address == Vaddr{FakeMemory::code_base + 7 + 0x10});
    // movq $0x5,0x10(%rip): the 4-byte immediate comes after the displacement
    const Decoded decoded = decode_ok(cpu, {0x48, 0xC7, 0x05, 0x10, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00});
    CHECK(decoded.address == Vaddr{FakeMemory::code_base + 11 + 0x10});
    CHECK(decoded.source.kind == SourceKind::immediate);
    CHECK(decoded.source.immediate == 5);
    // mov %rax,0x10(%rip) with REX.B: rm=101 and mod=00 means rip even then, never r13
    CHECK(decode_ok(cpu, {0x49, 0x89, 0x05, 0x10, 0x00, 0x00, 0x00}).address == Vaddr{FakeMemory::code_base + 7 + 0x10});
}

TEST_CASE("emulate: FS and GS overrides add their base, CS, DS, ES and SS overrides nothing", "[emulate]") {
    Vcpu cpu;
    cpu.regs.fs_base = 0x10'0000;
    cpu.regs.gs_base = 0x20'0000;
    const std::uint64_t rdi = FakeMemory::data_base;
    // mov %rax,%fs:(%rdi)
    Decoded decoded = decode_ok(cpu, {0x64, 0x48, 0x89, 0x07});
    CHECK(decoded.address == Vaddr{rdi + 0x10'0000});
    CHECK(decoded.segment == Segment::fs);
    // mov %rax,%gs:0x8(%rdi)
    decoded = decode_ok(cpu, {0x65, 0x48, 0x89, 0x47, 0x08});
    CHECK(decoded.address == Vaddr{rdi + 0x20'0008});
    CHECK(decoded.segment == Segment::gs);
    // gs, then fs: the last one wins
    CHECK(decode_ok(cpu, {0x65, 0x64, 0x48, 0x89, 0x07}).address == Vaddr{rdi + 0x10'0000});
    // cs ds es ss: mov %rax,(%rdi) at its plain address
    decoded = decode_ok(cpu, {0x2E, 0x3E, 0x26, 0x36, 0x48, 0x89, 0x07});
    CHECK(decoded.address == Vaddr{rdi});
    CHECK(decoded.segment == Segment::none);
    // gs, then ds: the ds override does not cancel gs (as measured on an AMD EPYC)
    CHECK(decode_ok(cpu, {0x65, 0x3E, 0x48, 0x89, 0x07}).address == Vaddr{rdi + 0x20'0000});
    // rip-relative with fs: mov %rax,%fs:0x10(%rip)
    CHECK(decode_ok(cpu, {0x64, 0x48, 0x89, 0x05, 0x10, 0, 0, 0}).address ==
          Vaddr{FakeMemory::code_base + 8 + 0x10 + 0x10'0000});
}

TEST_CASE("emulate: operand size: REX.W over 66 over 4 bytes, and byte opcodes always one byte", "[emulate]") {
    Vcpu cpu;
    CHECK(decode_ok(cpu, {0x89, 0x37}).size == 4);                    // mov %esi,(%rdi)
    CHECK(decode_ok(cpu, {0x66, 0x89, 0x37}).size == 2);              // mov %si,(%rdi)
    CHECK(decode_ok(cpu, {0x48, 0x89, 0x37}).size == 8);              // mov %rsi,(%rdi)
    CHECK(decode_ok(cpu, {0x66, 0x48, 0x89, 0x37}).size == 8);        // data16 mov %rsi,(%rdi)
    CHECK(decode_ok(cpu, {0x66, 0x48, 0x88, 0x37}).size == 1);        // data16 mov %sil,(%rdi)
    CHECK(decode_ok(cpu, {0x0F, 0xC7, 0x0F}).size == 8);              // cmpxchg8b (%rdi)
    CHECK(decode_ok(cpu, {0x48, 0x0F, 0xC7, 0x0F}).size == 16);       // cmpxchg16b (%rdi)
    CHECK(decode_ok(cpu, {0x48, 0x0F, 0xC7, 0x0F}).operation == Operation::cmpxchg16b);
}

TEST_CASE("emulate: a REX prefix counts only right before the opcode", "[emulate]") {
    Vcpu cpu;
    // rex.W data16 mov %si,(%rdi): the CPU ignores a REX that a legacy prefix follows
    Decoded decoded = decode_ok(cpu, {0x48, 0x66, 0x89, 0x37});
    CHECK(decoded.size == 2);
    // rex.WB ds mov %eax,(%rdi): neither W nor B applies
    cpu.regs[Gpr::r15] = 0xBAD;
    decoded = decode_ok(cpu, {0x49, 0x3E, 0x89, 0x07});
    CHECK(decoded.size == 4);
    CHECK(decoded.address == Vaddr{FakeMemory::data_base});
    // rex rex.W mov %rsi,(%rdi): of two REX bytes, the last one counts
    CHECK(decode_ok(cpu, {0x40, 0x48, 0x89, 0x37}).size == 8);
    // rex.W rex mov %esi,(%rdi)
    CHECK(decode_ok(cpu, {0x48, 0x40, 0x89, 0x37}).size == 4);
}

TEST_CASE("emulate: byte registers 4-7 are AH-BH without REX and SPL-DIL with it", "[emulate]") {
    Vcpu cpu;
    // mov %ah,(%rdi)
    Decoded decoded = decode_ok(cpu, {0x88, 0x27});
    CHECK(decoded.source.reg.gpr == Gpr::rax);
    CHECK(decoded.source.reg.high_byte);
    // mov %spl,(%rdi)
    decoded = decode_ok(cpu, {0x40, 0x88, 0x27});
    CHECK(decoded.source.reg.gpr == Gpr::rsp);
    CHECK_FALSE(decoded.source.reg.high_byte);
    // mov %r9,0x8(%rdi)
    decoded = decode_ok(cpu, {0x4C, 0x89, 0x4F, 0x08});
    CHECK(decoded.source.reg.gpr == Gpr::r9);
    // mov %esp,(%rdi): register 4 at full size is esp, never ah
    decoded = decode_ok(cpu, {0x89, 0x27});
    CHECK(decoded.source.reg.gpr == Gpr::rsp);
    CHECK_FALSE(decoded.source.reg.high_byte);
}

TEST_CASE("emulate: immediates are sign-extended as each opcode extends them", "[emulate]") {
    Vcpu cpu;
    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        Operation operation;
        unsigned size;
        std::uint64_t immediate;
    };
    const Case cases[] = {
        {"movb $0xab,(%rdi)", {0xC6, 0x07, 0xAB}, Operation::mov, 1, 0xAB},
        {"movw $0xbeef,(%rdi)", {0x66, 0xC7, 0x07, 0xEF, 0xBE}, Operation::mov, 2, 0xFFFF'FFFF'FFFF'BEEF},
        {"movl $0x80000001,(%rdi)", {0xC7, 0x07, 0x01, 0x00, 0x00, 0x80}, Operation::mov, 4, 0xFFFF'FFFF'8000'0001},
        {"movq $-2,(%rdi)", {0x48, 0xC7, 0x07, 0xFE, 0xFF, 0xFF, 0xFF}, Operation::mov, 8, 0xFFFF'FFFF'FFFF'FFFE},
        {"lock orq $0x40,(%rdi)", {0xF0, 0x48, 0x83, 0x0F, 0x40}, Operation::bitwise_or, 8, 0x40},
        {"lock andb $0xfd,(%rdi)", {0xF0, 0x80, 0x27, 0xFD}, Operation::bitwise_and, 1, 0xFD},
        {"andq $-0x1001,(%rdi)", {0x48, 0x81, 0x27, 0xFF, 0xEF, 0xFF, 0xFF}, Operation::bitwise_and, 8,
         0xFFFF'FFFF'FFFF'EFFF},
        {"xorw $0x1234,(%rdi)", {0x66, 0x81, 0x37, 0x34, 0x12}, Operation::bitwise_xor, 2, 0x1234},
        {"subb $0x1,(%rdi)", {0x80, 0x2F, 0x01}, Operation::sub, 1, 1},
        {"addl $-1,(%rdi)", {0x83, 0x07, 0xFF}, Operation::add, 4, 0xFFFF'FFFF'FFFF'FFFF},
    };
    for (const auto& c : cases) {
        INFO(c.assembly);
        const Decoded decoded = decode_ok(cpu, c.bytes);
        CHECK(decoded.operation == c.operation);
        CHECK(decoded.size == c.size);
        CHECK(decoded.source.kind == SourceKind::immediate);
        CHECK(decoded.source.immediate == c.immediate);
    }
}

TEST_CASE("emulate: lock is recorded, and xchg is atomic without it", "[emulate]") {
    Vcpu cpu;
    // lock cmpxchg %rsi,(%rdi)
    Decoded decoded = decode_ok(cpu, {0xF0, 0x48, 0x0F, 0xB1, 0x37});
    CHECK(decoded.lock_prefix);
    CHECK(decoded.atomic());
    // cmpxchg %rsi,(%rdi)
    decoded = decode_ok(cpu, {0x48, 0x0F, 0xB1, 0x37});
    CHECK_FALSE(decoded.lock_prefix);
    // xchg %rax,(%rdi)
    decoded = decode_ok(cpu, {0x48, 0x87, 0x07});
    CHECK_FALSE(decoded.lock_prefix);
    CHECK(decoded.atomic());
    // mov %rsi,(%rdi)
    CHECK_FALSE(decode_ok(cpu, {0x48, 0x89, 0x37}).atomic());
}

TEST_CASE("emulate: bit offsets: immediates stay in the operand, registers address a bit string", "[emulate]") {
    Vcpu cpu;
    const std::uint64_t rdi = FakeMemory::data_base + 16;
    cpu.regs[Gpr::rdi] = rdi;
    // btcl $0x21,(%rdi): bit 33 of a 32-bit operand is bit 1
    Decoded decoded = decode_ok(cpu, {0x0F, 0xBA, 0x3F, 0x21});
    CHECK(decoded.operation == Operation::btc);
    CHECK(decoded.bit == 1);
    CHECK(decoded.address == Vaddr{rdi});
    // btsw $0x11,(%rdi)
    decoded = decode_ok(cpu, {0x66, 0x0F, 0xBA, 0x2F, 0x11});
    CHECK(decoded.bit == 1);
    CHECK(decoded.size == 2);

    struct Case {
        const char* assembly;
        std::initializer_list<std::uint8_t> bytes;
        std::uint64_t rsi;
        std::uint64_t address;
        unsigned bit;
    };
    const Case cases[] = {
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, 5, rdi, 5},
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, 64 + 3, rdi + 8, 3},
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, std::uint64_t(-1), rdi - 8, 63},
        {"lock bts %rsi,(%rdi)", {0xF0, 0x48, 0x0F, 0xAB, 0x37}, std::uint64_t(-65), rdi - 16, 63},
        // 32-bit: the offset is esi, signed; rsi's upper half is ignored
        {"btc %esi,(%rdi)", {0x0F, 0xBB, 0x37}, 0xFFFF'FFFF'0000'0021, rdi + 4, 1},
        {"btc %esi,(%rdi)", {0x0F, 0xBB, 0x37}, 0x0000'0000'FFFF'FFE0, rdi - 4, 0},
        // 16-bit: si, signed
        {"bts %si,(%rdi)", {0x66, 0x0F, 0xAB, 0x37}, 0x1'0011, rdi + 2, 1},
        {"bts %si,(%rdi)", {0x66, 0x0F, 0xAB, 0x37}, 0xFFFF, rdi - 2, 15},
    };
    for (const auto& c : cases) {
        INFO(c.assembly << " with rsi " << std::hex << c.rsi);
        cpu.regs[Gpr::rsi] = c.rsi;
        decoded = decode_ok(cpu, c.bytes);
        CHECK(decoded.address == Vaddr{c.address});
        CHECK(decoded.bit == c.bit);
        CHECK(decoded.source.kind == SourceKind::reg);
    }
}

TEST_CASE("emulate: an instruction of exactly 15 bytes decodes", "[emulate]") {
    Vcpu cpu;
    // seven ds prefixes, then movq $0x0,0x10(%rdi) (8 bytes)
    const Decoded decoded = decode_ok(cpu, {0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x48, 0xC7, 0x47, 0x10, 0x00,
                                            0x00, 0x00, 0x00});
    CHECK(decoded.length == 15);
    CHECK(decoded.address == Vaddr{FakeMemory::data_base + 0x10});
}

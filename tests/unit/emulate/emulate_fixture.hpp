// A fake guest address space for the emulator tests, and a vCPU that runs one instruction on it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <vector>

#include <catch2/catch.hpp>

#include <hv/emulate.hpp>

namespace emulate_test {

using hv::Errc;
using hv::Result;
using hv::Vaddr;
using hv::emulate::Decoded;
using hv::emulate::Gpr;
using hv::emulate::Operation;
using hv::emulate::Registers;

struct Access {
    enum class Kind { fetch, read, write, compare_exchange };
    Kind kind;
    std::uint64_t address;
    std::size_t size;

    bool operator==(const Access&) const = default;
};

// Two regions: code (two pages, the second one unmapped when a test says so) and 64 bytes of data
// (eight page-table entries). Every call is recorded, refused ones included.
class FakeMemory final : public hv::emulate::Memory {
public:
    static constexpr std::uint64_t code_base = 0x40'0000;
    static constexpr std::uint64_t code_size = 0x2000;
    static constexpr std::uint64_t data_base = 0x80'0000;

    std::vector<std::byte> code = std::vector<std::byte>(code_size);
    std::array<std::byte, 64> data{};
    std::vector<Access> accesses;

    std::uint64_t fetchable_end = code_base + code_size;  // a fetch reaching past this is refused
    bool refuse_reads = false;
    bool refuse_stores = false;  // write and compare_exchange
    Errc refusal = Errc::efault;
    std::function<void(FakeMemory&)> before_compare_exchange;  // another vCPU's store, in a race

    Result<void> fetch(Vaddr address, std::span<std::byte> into) override {
        accesses.push_back({Access::Kind::fetch, address.value, into.size()});
        CHECK(((address.value ^ (address.value + into.size() - 1)) >> 12) == 0);  // never crosses a page
        if (address.value < code_base || address.value + into.size() > fetchable_end)
            return refusal;
        std::memcpy(into.data(), code.data() + (address.value - code_base), into.size());
        return {};
    }

    Result<void> read(Vaddr address, std::span<std::byte> into) override {
        accesses.push_back({Access::Kind::read, address.value, into.size()});
        if (refuse_reads || !in_data(address, into.size()))
            return refusal;
        std::memcpy(into.data(), data.data() + (address.value - data_base), into.size());
        return {};
    }

    Result<void> write(Vaddr address, std::span<const std::byte> from) override {
        accesses.push_back({Access::Kind::write, address.value, from.size()});
        if (refuse_stores || !in_data(address, from.size()))
            return refusal;
        std::memcpy(data.data() + (address.value - data_base), from.data(), from.size());
        return {};
    }

    Result<bool> compare_exchange(Vaddr address, std::span<std::byte> expected,
                                  std::span<const std::byte> desired) override {
        accesses.push_back({Access::Kind::compare_exchange, address.value, expected.size()});
        REQUIRE(expected.size() == desired.size());
        if (refuse_stores || !in_data(address, expected.size()))
            return refusal;
        if (before_compare_exchange)
            before_compare_exchange(*this);
        std::byte* at = data.data() + (address.value - data_base);
        if (std::memcmp(at, expected.data(), expected.size()) != 0) {
            std::memcpy(expected.data(), at, expected.size());
            return false;
        }
        std::memcpy(at, desired.data(), desired.size());
        return true;
    }

    // Little-endian integers in the data region, by offset.
    std::uint64_t data_u64(std::size_t offset) const { return load(offset, 8); }
    std::uint64_t load(std::size_t offset, std::size_t size) const {
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < size; ++i)
            value |= std::uint64_t{std::to_integer<std::uint8_t>(data.at(offset + i))} << (8 * i);
        return value;
    }
    void store(std::size_t offset, std::uint64_t value, std::size_t size = 8) {
        for (std::size_t i = 0; i < size; ++i)
            data.at(offset + i) = static_cast<std::byte>(value >> (8 * i));
    }

    std::size_t count(Access::Kind kind) const {
        std::size_t n = 0;
        for (const auto& access : accesses)
            n += access.kind == kind;
        return n;
    }
    std::size_t data_accesses() const { return accesses.size() - count(Access::Kind::fetch); }

private:
    bool in_data(Vaddr address, std::size_t size) const {
        return address.value >= data_base && address.value - data_base + size <= data.size();
    }
};

// The fake memory's regions and the flags, as every test names them.
constexpr std::uint64_t data = FakeMemory::data_base;
constexpr std::uint64_t code = FakeMemory::code_base;
using Kind = Access::Kind;
using hv::emulate::arithmetic_flags;
using hv::emulate::flag_af;
using hv::emulate::flag_cf;
using hv::emulate::flag_of;
using hv::emulate::flag_pf;
using hv::emulate::flag_rf;
using hv::emulate::flag_sf;
using hv::emulate::flag_zf;

inline bool same_registers(const Registers& a, const Registers& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// One vCPU about to run one instruction: rip at the start of the code region, rdi at the data,
// IF and the reserved bit 1 set in rflags, the other registers with recognisable values.
struct Vcpu {
    FakeMemory memory;
    Registers regs{};

    Vcpu() {
        for (unsigned i = 0; i < 16; ++i)
            regs.gpr[i] = std::uint64_t{0x1111'1111'1111'1111} * (i + 1);
        regs[Gpr::rdi] = FakeMemory::data_base;
        regs.rip = FakeMemory::code_base;
        regs.rflags = 0x202;
    }

    // Places the instruction at rip.
    void code(std::initializer_list<std::uint8_t> bytes) {
        std::size_t offset = regs.rip - FakeMemory::code_base;
        for (const auto byte : bytes)
            memory.code.at(offset++) = static_cast<std::byte>(byte);
    }

    Result<Decoded> decode() { return hv::emulate::decode(regs, memory); }
    Result<Decoded> run() { return hv::emulate::emulate_instruction(regs, memory); }

    // Runs the instruction and requires it to succeed; returns what was performed.
    Decoded run_ok() {
        const auto result = run();
        INFO("errno " << (result ? 0 : result.xen_errno()));
        REQUIRE(result);
        return *result;
    }
};

}  // namespace emulate_test

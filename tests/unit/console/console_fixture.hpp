// The console's test machine: a sink that records every call, a domain console named "guest",
// the serial input FIFO, the calling domain's guest memory with pages that can be unmapped or
// made read-only, and the preemption and continuation of console_io.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <hv/console.hpp>

namespace console_test {
namespace abi = pvkit::abi;
namespace args = hv::hypercall_args;
using hv::Errc;
using hv::Vaddr;
using namespace hv::console;

constexpr long error(Errc code) { return hv::xen_errno(code); }

// Records each write as it came: one element per call.
class RecordingSink final : public ConsoleSink {
public:
    void write(std::string_view text) override { calls.emplace_back(text); }
    std::string all() const {
        std::string joined;
        for (const std::string& call : calls)
            joined += call;
        return joined;
    }
    std::vector<std::string> calls;
};

// The calling domain's memory: 16 pages of 4 KiB at guest address 0x10000. A page in `unmapped`
// can be neither read nor written; one in `read_only` can only be read. A range is accessed whole
// or not at all, as GuestMemory requires.
class GuestBuffer final : public hv::GuestMemory {
public:
    static constexpr std::uint64_t base = 0x10000;
    static constexpr std::uint64_t page = 0x1000;
    static constexpr std::uint64_t size = 16 * page;

    bool read(Vaddr address, std::span<std::byte> into) override {
        ++reads;
        if (!accessible(address, into.size(), false))
            return false;
        std::memcpy(into.data(), bytes.data() + (address.value - base), into.size());
        return true;
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        if (!accessible(address, from.size(), true))
            return false;
        std::memcpy(bytes.data() + (address.value - base), from.data(), from.size());
        return true;
    }

    void place(std::uint64_t offset, std::string_view text) {
        REQUIRE(offset + text.size() <= size);
        std::memcpy(bytes.data() + offset, text.data(), text.size());
    }
    std::string text(std::uint64_t offset, std::size_t length) const {
        return std::string(reinterpret_cast<const char*>(bytes.data()) + offset, length);
    }

    std::vector<std::byte> bytes = std::vector<std::byte>(size);
    std::set<std::uint64_t> unmapped, read_only;  // page numbers, 0 to 15
    int reads = 0;

private:
    bool accessible(Vaddr address, std::size_t length, bool writing) const {
        if (address.value < base || address.value - base + length > size)
            return false;
        if (length == 0)
            return true;
        const std::uint64_t first = (address.value - base) / page;
        const std::uint64_t last = (address.value - base + length - 1) / page;
        for (std::uint64_t p = first; p <= last; ++p) {
            if (unmapped.count(p) != 0 || (writing && read_only.count(p) != 0))
                return false;
        }
        return true;
    }
};

// Asks for preemption after `allowed` more checks.
class CountdownPreemption final : public hv::Preemption {
public:
    bool pending() override {
        ++checks;
        return allowed-- <= 0;
    }
    int allowed = 1 << 30;
    int checks = 0;
};

// console_io wired to the generated dispatcher, as a hypervisor would.
struct ConsoleHandlers {
    long console_io(ConsoleIoCaller& caller, const args::console_io& a) { return hv::console::console_io(caller, a); }
};

// `count` bytes of text that shows where each byte came from: lines of 40 bytes, numbered.
inline std::string numbered_text(std::size_t count) {
    std::string text;
    for (std::size_t line = 0; text.size() < count; ++line) {
        std::string row = "line " + std::to_string(line) + " ";
        row.resize(39, '.');
        text += row + "\n";
    }
    text.resize(count);
    return text;
}

struct ConsoleFixture {
    ConsoleIoCaller caller(bool may_write = true, ConsoleInput* from = nullptr) {
        return ConsoleIoCaller{console, memory, may_write, from, preemption, continuation};
    }
    // console_io from the console domain (may write, holds the input) unless told otherwise.
    long call(std::uint32_t command, std::uint32_t count, std::uint64_t address, bool may_write = true,
              bool holds_input = true) {
        ConsoleIoCaller c = caller(may_write, holds_input ? &input : nullptr);
        return console_io(c, args::console_io{command, count, {address}});
    }
    // Issues the hypercall in `registers` through the dispatcher, then every continuation it asks
    // for, as the platform would; returns the last result and counts the issues.
    long run_to_completion(hv::HypercallRegisters registers, int& issues) {
        ConsoleHandlers handlers;
        ConsoleIoCaller c = caller(true, &input);
        issues = 0;
        for (;;) {
            continuation = {};
            const long result = hv::dispatch_hypercall(handlers, c, registers);
            ++issues;
            if (!continuation.requested)
                return result;
            REQUIRE(result == 0);
            registers = continuation.registers;
            REQUIRE(issues < 10000);
        }
    }

    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    ConsoleInput input;
    GuestBuffer memory;
    CountdownPreemption preemption;
    hv::Continuation continuation;
};

}  // namespace console_test

// console_io as guests issue it: writes, reads, permissions, faults, unknown commands, and
// continuations of long writes.
#include "console_fixture.hpp"

#include <climits>

using namespace console_test;

namespace {

constexpr std::uint64_t base = GuestBuffer::base;
constexpr std::uint64_t page = GuestBuffer::page;

}  // namespace

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_write writes the guest's bytes to its console", "[console]") {
    memory.place(0, "booting\nhalf a li");
    CHECK(call(abi::CONSOLEIO_write, 17, base) == 0);
    CHECK(sink.calls == std::vector<std::string>{"(guest) booting\n"});
    CHECK(console.pending() == "half a li");
    CHECK_FALSE(continuation.requested);
}

TEST_CASE_METHOD(ConsoleFixture, "console: console_io is reached through the generated dispatcher", "[console]") {
    memory.place(0x100, "via dispatch\n");
    int issues = 0;
    CHECK(run_to_completion({abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, 13, base + 0x100, 0, 0}}, issues) == 0);
    CHECK(issues == 1);
    CHECK(sink.calls == std::vector<std::string>{"(guest) via dispatch\n"});
}

TEST_CASE_METHOD(ConsoleFixture, "console: a count of 0 succeeds without reading, whatever the buffer", "[console]") {
    for (const std::uint64_t address : {std::uint64_t{0}, base, ~std::uint64_t{0}, std::uint64_t{0xFFFF'8000'0000'0000}}) {
        CHECK(call(abi::CONSOLEIO_write, 0, address) == 0);
        CHECK(call(abi::CONSOLEIO_read, 0, address) == 0);
    }
    CHECK(memory.reads == 0);
    CHECK(sink.calls.empty());
    CHECK(console.pending().empty());
}

TEST_CASE_METHOD(ConsoleFixture, "console: a domain that may not write gets eperm and writes nothing", "[console][hostile]") {
    memory.place(0, "forbidden\n");
    input.push('k');
    // Neither write nor input: Xen's release-build domU.
    CHECK(call(abi::CONSOLEIO_write, 10, base, false, false) == error(Errc::eperm));
    CHECK(call(abi::CONSOLEIO_read, 10, base, false, false) == error(Errc::eperm));
    CHECK(call(2, 10, base, false, false) == error(Errc::eperm));
    // Write only: Xen's debug-build domU. It may not read, and unknown commands are refused too.
    CHECK(call(abi::CONSOLEIO_read, 10, base, true, false) == error(Errc::eperm));
    CHECK(call(2, 10, base, true, false) == error(Errc::eperm));
    CHECK(call(UINT32_MAX, 10, base, true, false) == error(Errc::eperm));
    // Input but no write permission.
    CHECK(call(abi::CONSOLEIO_write, 10, base, false, true) == error(Errc::eperm));
    CHECK(memory.reads == 0);
    CHECK(sink.calls.empty());
    CHECK(console.pending().empty());
    CHECK(input.size() == 1);
    CHECK(memory.text(0, 10) == "forbidden\n");
}

TEST_CASE_METHOD(ConsoleFixture, "console: a write-only domain may write", "[console]") {
    memory.place(0, "debug build\n");
    CHECK(call(abi::CONSOLEIO_write, 12, base, true, false) == 0);
    CHECK(sink.calls == std::vector<std::string>{"(guest) debug build\n"});
}

TEST_CASE_METHOD(ConsoleFixture, "console: unknown commands give the console domain enosys", "[console][hostile]") {
    input.push('k');
    for (const std::uint32_t command : {2u, 3u, 100u, 0x8000'0000u, UINT32_MAX})
        CHECK(call(command, 10, base) == error(Errc::enosys));
    CHECK(memory.reads == 0);
    CHECK(sink.calls.empty());
    CHECK(input.size() == 1);
}

TEST_CASE_METHOD(ConsoleFixture, "console: a write from a buffer the guest cannot show gives efault and writes nothing",
                 "[console][hostile]") {
    memory.unmapped.insert(3);
    const std::uint64_t addresses[] = {0,
                                       0xdead'0000,
                                       base + 3 * page,                // unmapped page
                                       base + 3 * page - 1,            // ends in it
                                       base + GuestBuffer::size - 5,   // runs off the end
                                       0x0000'8000'0000'0000,          // non-canonical
                                       0xFFFF'8000'0000'1000,          // the hypervisor's
                                       ~std::uint64_t{0}};             // wraps
    for (const std::uint64_t address : addresses) {
        INFO("address " << std::hex << address);
        CHECK(call(abi::CONSOLEIO_write, 10, address) == error(Errc::efault));
    }
    CHECK(sink.calls.empty());
    CHECK(console.pending().empty());
    CHECK_FALSE(continuation.requested);
}

TEST_CASE_METHOD(ConsoleFixture, "console: a write that runs into an unmapped page keeps the chunks before it",
                 "[console][hostile]") {
    // 300 bytes starting 200 bytes before page 2, which is unmapped: chunk 1 (bytes 0-127) can be
    // read, chunk 2 (128-255) crosses into page 2.
    const std::string text = numbered_text(300);
    const std::uint64_t offset = 2 * page - 200;
    memory.place(offset, text);
    memory.unmapped.insert(2);
    CHECK(call(abi::CONSOLEIO_write, 300, base + offset) == error(Errc::efault));
    console.flush();
    RecordingSink expected_sink;
    DomainConsole expected{expected_sink, "guest"};
    expected.write(std::span{text.data(), console_io_chunk});
    expected.flush();
    CHECK(sink.calls == expected_sink.calls);
    CHECK(sink.all().find("line 3 ") != std::string::npos);   // byte 120 onwards
    CHECK(sink.all().find("line 4 ") == std::string::npos);   // byte 160 onwards
}

TEST_CASE_METHOD(ConsoleFixture, "console: a long write is preempted between chunks and asks to be continued",
                 "[console]") {
    const std::string text = numbered_text(1000);
    memory.place(0x40, text);
    preemption.allowed = 2;  // three chunks, then preemption
    CHECK(call(abi::CONSOLEIO_write, 1000, base + 0x40) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.number == abi::HYPERVISOR_console_io);
    CHECK(continuation.registers.args[0] == abi::CONSOLEIO_write);
    CHECK(continuation.registers.args[1] == 1000 - 3 * console_io_chunk);
    CHECK(continuation.registers.args[2] == base + 0x40 + 3 * console_io_chunk);
    // Exactly the first three chunks were written: 384 bytes are 9 lines and 24 bytes.
    CHECK(sink.calls.size() == 9);
    CHECK(console.pending() == text.substr(360, 24));
}

TEST_CASE_METHOD(ConsoleFixture, "console: a preempted write and its continuations print what one uninterrupted write does",
                 "[console]") {
    const std::size_t count = GENERATE(1, 127, 128, 129, 1000, 5000);
    const int allowed = GENERATE(0, 1, 3);
    const std::string text = numbered_text(count);
    memory.place(0x123, text);
    // Uninterrupted.
    int issues = 0;
    CHECK(run_to_completion({abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, count, base + 0x123, 0, 0}}, issues) == 0);
    CHECK(issues == 1);
    console.flush();
    const std::vector<std::string> uninterrupted = sink.calls;
    sink.calls.clear();
    // Preempted after `allowed` checks, every time it is issued.
    struct Refilling final : hv::Preemption {
        int allowed, left;
        bool pending() override { return left-- <= 0 ? (left = allowed, true) : false; }
    } refilling{};
    refilling.allowed = refilling.left = allowed;
    ConsoleHandlers handlers;
    ConsoleIoCaller c{console, memory, true, &input, refilling, continuation};
    hv::HypercallRegisters registers{abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, count, base + 0x123, 0, 0}};
    issues = 0;
    for (;;) {
        continuation = {};
        REQUIRE(hv::dispatch_hypercall(handlers, c, registers) == 0);
        ++issues;
        if (!continuation.requested)
            break;
        registers = continuation.registers;
        REQUIRE(issues < 1000);
    }
    console.flush();
    CHECK(sink.calls == uninterrupted);
    const std::size_t chunks = (count + console_io_chunk - 1) / console_io_chunk;
    CHECK(issues == static_cast<int>((chunks + allowed) / (allowed + 1)));
}

TEST_CASE_METHOD(ConsoleFixture, "console: preemption is not checked before the first chunk, so each issue progresses",
                 "[console]") {
    const std::string text = numbered_text(700);
    memory.place(0, text);
    preemption.allowed = 0;  // always pending
    std::uint64_t address = base;
    std::uint32_t count = 700;
    int issues = 0;
    for (;;) {
        continuation = {};
        REQUIRE(call(abi::CONSOLEIO_write, count, address) == 0);
        ++issues;
        if (!continuation.requested)
            break;
        CHECK(continuation.registers.args[1] == count - console_io_chunk);
        count = static_cast<std::uint32_t>(continuation.registers.args[1]);
        address = continuation.registers.args[2];
        REQUIRE(issues < 100);
    }
    CHECK(issues == 6);
    console.flush();
    CHECK(sink.all().find(text.substr(640, 39)) != std::string::npos);
}

TEST_CASE_METHOD(ConsoleFixture, "console: a continued write that then faults gives efault, keeping what was written",
                 "[console][hostile]") {
    const std::string text = numbered_text(600);
    memory.place(0, text);
    preemption.allowed = 0;
    CHECK(call(abi::CONSOLEIO_write, 600, base) == 0);
    REQUIRE(continuation.requested);
    // Another vCPU of the guest unmaps the page before the continuation runs.
    memory.unmapped.insert(0);
    continuation = {};
    CHECK(call(abi::CONSOLEIO_write, static_cast<std::uint32_t>(472), base + 128) == error(Errc::efault));
    CHECK_FALSE(continuation.requested);
    console.flush();
    CHECK(sink.all().find(text.substr(80, 39)) != std::string::npos);   // from the first chunk
    CHECK(sink.all().find(text.substr(160, 39)) == std::string::npos);  // never read
}

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_read copies the pending input and returns its length", "[console]") {
    for (const char c : std::string("ls -l\r"))
        REQUIRE(input.push(c));
    CHECK(call(abi::CONSOLEIO_read, 64, base + 0x200) == 6);
    CHECK(memory.text(0x200, 7) == std::string("ls -l\r\0", 7));
    CHECK(input.empty());
    CHECK(call(abi::CONSOLEIO_read, 64, base + 0x200) == 0);
}

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_read takes at most count bytes and leaves the rest", "[console]") {
    for (const char c : std::string("abcdefghij"))
        REQUIRE(input.push(c));
    CHECK(call(abi::CONSOLEIO_read, 4, base) == 4);
    CHECK(memory.text(0, 5) == std::string("abcd\0", 5));
    CHECK(input.size() == 6);
    CHECK(call(abi::CONSOLEIO_read, 100, base + 0x10) == 6);
    CHECK(memory.text(0x10, 6) == "efghij");
}

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_read delivers input that wrapped around the FIFO", "[console]") {
    std::array<char, 100> scratch;
    for (int i = 0; i < 100; ++i)
        REQUIRE(input.push('-'));
    REQUIRE(input.pop(scratch) == 100);
    std::string expected;
    for (std::size_t i = 0; i < ConsoleInput::input_capacity; ++i) {
        expected += static_cast<char>('a' + i % 26);
        REQUIRE(input.push(expected.back()));
    }
    CHECK(call(abi::CONSOLEIO_read, 1000, base) == static_cast<long>(ConsoleInput::input_capacity));
    CHECK(memory.text(0, expected.size()) == expected);
    CHECK(input.empty());
}

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_read with a count above INT32_MAX gives e2big and takes nothing",
                 "[console][hostile]") {
    input.push('x');
    CHECK(call(abi::CONSOLEIO_read, 0x8000'0000u, base) == error(Errc::e2big));
    CHECK(call(abi::CONSOLEIO_read, UINT32_MAX, base) == error(Errc::e2big));
    CHECK(input.size() == 1);
    CHECK(memory.bytes[0] == std::byte{0});
    CHECK(call(abi::CONSOLEIO_read, 0x7FFF'FFFFu, base) == 1);
}

TEST_CASE_METHOD(ConsoleFixture, "console: CONSOLEIO_read into a buffer the guest cannot write gives efault",
                 "[console][hostile]") {
    for (const char c : std::string("secret"))
        REQUIRE(input.push(c));
    memory.read_only.insert(1);
    memory.unmapped.insert(2);
    for (const std::uint64_t address : {std::uint64_t{0}, base + page, base + 2 * page, std::uint64_t{0xFFFF'8000'0000'0000}}) {
        INFO("address " << std::hex << address);
        CHECK(call(abi::CONSOLEIO_read, 6, address) == error(Errc::efault));
    }
    CHECK(input.size() == 6);
    // Running into the read-only page after 2 bytes: those 2 are delivered and gone, 4 stay.
    CHECK(call(abi::CONSOLEIO_read, 6, base + page - 2) == error(Errc::efault));
    CHECK(memory.text(page - 2, 2) == "se");
    CHECK(input.size() == 4);
    CHECK(call(abi::CONSOLEIO_read, 6, base) == 4);
    CHECK(memory.text(0, 4) == "cret");
}

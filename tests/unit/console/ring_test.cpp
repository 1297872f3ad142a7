// The PV console ring backend: output, input, wrap-around, full rings, hostile indexes, notify.
#include "console_fixture.hpp"

#include <memory>
#include <optional>

using namespace console_test;

namespace {

constexpr std::uint32_t out_size = sizeof(abi::xencons_interface::out);
constexpr std::uint32_t in_size = sizeof(abi::xencons_interface::in);

struct RingFixture {
    // The guest's side, as a frontend driver works the page.
    void guest_write(std::string_view text) {
        for (const char c : text)
            page->out[page->out_prod++ % out_size] = c;
    }
    std::string guest_read() {
        std::string text;
        while (page->in_cons != page->in_prod)
            text += page->in[page->in_cons++ % in_size];
        return text;
    }
    void push(std::string_view text) {
        for (const char c : text)
            REQUIRE(input.push(c));
    }
    std::vector<std::byte> page_bytes() const {
        const auto* raw = reinterpret_cast<const std::byte*>(page.get());
        return {raw, raw + sizeof(abi::xencons_interface)};
    }
    ConsoleRing& attach() { return ring.emplace(*page, console); }

    std::unique_ptr<abi::xencons_interface> page = std::make_unique<abi::xencons_interface>();
    RecordingSink sink;
    DomainConsole console{sink, "ring"};
    ConsoleInput input;
    std::optional<ConsoleRing> ring;
};

}  // namespace

TEST_CASE_METHOD(RingFixture, "console: the ring backend takes the guest's output into its console", "[console]") {
    ConsoleRing& backend = attach();
    guest_write("hello from the ring\npartial");
    const ServiceResult result = backend.service();
    CHECK(result.consumed == 27);
    CHECK(result.produced == 0);
    CHECK(result.notify);
    CHECK_FALSE(result.broken);
    CHECK(page->out_cons == 27);
    CHECK(sink.calls == std::vector<std::string>{"(ring) hello from the ring\n"});
    CHECK(console.pending() == "partial");
}

TEST_CASE_METHOD(RingFixture, "console: a pass with nothing to move changes nothing and asks for no notification",
                 "[console]") {
    ConsoleRing& backend = attach();
    guest_write("x");
    (void)backend.service();
    const std::vector<std::byte> before = page_bytes();
    const ServiceResult result = backend.service(&input);
    CHECK_FALSE(result.notify);
    CHECK(result.consumed == 0);
    CHECK(result.produced == 0);
    CHECK(page_bytes() == before);
}

TEST_CASE_METHOD(RingFixture, "console: the backend starts from the indexes it finds in the page", "[console]") {
    page->out_cons = page->out_prod = 1000;
    page->in_cons = page->in_prod = 500;
    ConsoleRing& backend = attach();
    guest_write("resumed\n");
    push("in");
    const ServiceResult result = backend.service(&input);
    CHECK(result.consumed == 8);
    CHECK(result.produced == 2);
    CHECK(page->out_cons == 1008);
    CHECK(page->in_prod == 502);
    CHECK(guest_read() == "in");
    CHECK(sink.calls == std::vector<std::string>{"(ring) resumed\n"});
}

TEST_CASE_METHOD(RingFixture, "console: output wraps around the end of out[]", "[console]") {
    ConsoleRing& backend = attach();
    const std::string text = numbered_text(3000);
    guest_write(text.substr(0, 2000));
    CHECK(backend.service().consumed == 2000);
    guest_write(text.substr(2000));  // slots 2000-2047, then 0-951
    CHECK(backend.service().consumed == 1000);
    console.flush();
    CHECK(sink.all().size() == 3000 + 75 * 7);  // 75 lines of 40, each with "(ring) "
    CHECK(sink.calls.back() == "(ring) " + text.substr(2960));
    CHECK(sink.calls[50] == "(ring) " + text.substr(2000, 40));
}

TEST_CASE_METHOD(RingFixture, "console: the 32-bit indexes wrap without a hitch", "[console]") {
    page->out_cons = page->out_prod = 0xFFFF'FF00u;
    page->in_cons = page->in_prod = 0xFFFF'FFF0u;
    ConsoleRing& backend = attach();
    const std::string text = numbered_text(0x300);
    guest_write(text);
    CHECK(page->out_prod == 0x200u);
    push("0123456789abcdefghijklmnopqrstuvwxyz");
    const ServiceResult result = backend.service(&input);
    CHECK(result.consumed == 0x300);
    CHECK(result.produced == 36);
    CHECK(page->out_cons == 0x200u);
    CHECK(page->in_prod == 20u);
    // The input lies in the last 16 slots of in[] and the first 20.
    CHECK(std::string(page->in + in_size - 16, 16) == "0123456789abcdef");
    CHECK(std::string(page->in, 20) == "ghijklmnopqrstuvwxyz");
    CHECK(guest_read() == "0123456789abcdefghijklmnopqrstuvwxyz");
    console.flush();
    std::string shown;
    for (const std::string& line : sink.calls)
        shown += line.substr(7);
    CHECK(shown == text + "\n");  // 0x300 bytes end mid-line: the flush ends it
}

TEST_CASE_METHOD(RingFixture, "console: a full out ring is taken whole, and only out[] is read", "[console][hostile]") {
    const std::uint32_t start = GENERATE(0u, 1u, 1023u, 2047u, 0xFFFF'FFFFu);
    std::memset(page->in, 'I', in_size);
    std::memset(page->out, '#', out_size);
    page->out_cons = page->out_prod = start;
    page->in_cons = page->in_prod = 7;
    ConsoleRing& backend = attach();
    guest_write(std::string(out_size, 'O'));
    CHECK(page->out_prod - page->out_cons == out_size);
    const ServiceResult result = backend.service();
    CHECK(result.consumed == out_size);
    CHECK_FALSE(result.broken);
    CHECK(page->out_cons == page->out_prod);
    console.flush();
    REQUIRE(sink.calls.size() == out_size / line_capacity);
    for (const std::string& line : sink.calls)
        CHECK(line == "(ring) " + std::string(line_capacity, 'O') + "\n");
}

TEST_CASE_METHOD(RingFixture, "console: out_prod more than a ring ahead of out_cons breaks the ring for good",
                 "[console][hostile]") {
    const std::uint32_t ahead = GENERATE(out_size + 1, 2 * out_size, 0x8000'0000u, 0xFFFF'FFFFu);
    page->out_cons = page->out_prod = 40;
    ConsoleRing& backend = attach();
    guest_write("would be shown\n");
    page->out_prod = 40 + ahead;
    push("kept");
    const std::vector<std::byte> before = page_bytes();
    ServiceResult result = backend.service(&input);
    CHECK(result.broken);
    CHECK_FALSE(result.notify);
    CHECK(result.consumed == 0);
    CHECK(result.produced == 0);
    CHECK(backend.broken());
    CHECK(page_bytes() == before);
    CHECK(sink.calls.empty());
    CHECK(console.pending().empty());
    CHECK(input.size() == 4);
    // Putting the index right does not bring the ring back: it stays untouched.
    page->out_prod = 40 + 15;
    const std::vector<std::byte> repaired = page_bytes();
    result = backend.service(&input);
    CHECK(result.broken);
    CHECK_FALSE(result.notify);
    CHECK(page_bytes() == repaired);
    CHECK(sink.calls.empty());
    CHECK(input.size() == 4);
}

TEST_CASE_METHOD(RingFixture, "console: in_cons ahead of in_prod or more than a ring behind breaks the ring",
                 "[console][hostile]") {
    const std::uint32_t offset = GENERATE(1u, 100u, 0u - (in_size + 1), 0x8000'0000u);
    page->in_cons = page->in_prod = 3000;
    ConsoleRing& backend = attach();
    page->in_cons = 3000 + offset;  // claims to have read bytes never written, or lost a ring's worth
    guest_write("output too\n");
    push("abc");
    const std::vector<std::byte> before = page_bytes();
    const ServiceResult result = backend.service(&input);
    CHECK(result.broken);
    CHECK_FALSE(result.notify);
    CHECK(page_bytes() == before);
    CHECK(sink.calls.empty());
    CHECK(input.size() == 3);
}

TEST_CASE_METHOD(RingFixture, "console: a guest rewriting the backend's indexes changes nothing the backend does",
                 "[console][hostile]") {
    ConsoleRing& backend = attach();
    guest_write("abc\n");
    page->out_cons = 0xDEAD'BEEF;  // would claim 4 bytes were taken, or that a ring's worth is waiting
    page->in_prod = 0x1234'5678;   // would claim input that was never given
    push("k");
    const ServiceResult result = backend.service(&input);
    CHECK_FALSE(result.broken);
    CHECK(result.consumed == 4);
    CHECK(result.produced == 1);
    CHECK(page->out_cons == 4);
    CHECK(page->in_prod == 1);
    CHECK(page->in[0] == 'k');
    CHECK(sink.calls == std::vector<std::string>{"(ring) abc\n"});
}

TEST_CASE_METHOD(RingFixture, "console: input goes into in[] and in_prod moves after it", "[console]") {
    ConsoleRing& backend = attach();
    push("ls\n");
    const ServiceResult result = backend.service(&input);
    CHECK(result.produced == 3);
    CHECK(result.consumed == 0);
    CHECK(result.notify);
    CHECK(page->in_prod == 3);
    CHECK(std::string(page->in, 3) == "ls\n");
    CHECK(input.empty());
    CHECK(guest_read() == "ls\n");
    CHECK(page->in_cons == 3);
}

TEST_CASE_METHOD(RingFixture, "console: without an input, none is delivered", "[console]") {
    ConsoleRing& backend = attach();
    push("x");
    const ServiceResult result = backend.service();
    CHECK(result.produced == 0);
    CHECK_FALSE(result.notify);
    CHECK(page->in_prod == 0);
    CHECK(input.size() == 1);
}

TEST_CASE_METHOD(RingFixture, "console: input beyond the space in in[] waits until the guest reads", "[console]") {
    page->in_cons = 0;
    page->in_prod = in_size - 24;  // the guest has 1000 bytes it has not read yet
    ConsoleRing& backend = attach();
    std::string typed;
    for (int i = 0; i < 100; ++i)
        typed += static_cast<char>('a' + i % 26);
    push(typed);
    ServiceResult result = backend.service(&input);
    CHECK(result.produced == 24);
    CHECK(result.notify);
    CHECK(page->in_prod - page->in_cons == in_size);
    CHECK(input.size() == 76);
    // A full in ring with nothing else to do: no movement, no notification.
    const std::vector<std::byte> before = page_bytes();
    result = backend.service(&input);
    CHECK(result.produced == 0);
    CHECK_FALSE(result.notify);
    CHECK(page_bytes() == before);
    CHECK(input.size() == 76);
    // The guest reads everything; the rest follows.
    CHECK(guest_read().substr(in_size - 24) == typed.substr(0, 24));
    result = backend.service(&input);
    CHECK(result.produced == 76);
    CHECK(result.notify);
    CHECK(guest_read() == typed.substr(24));
}

TEST_CASE_METHOD(RingFixture, "console: output and input in one pass are reported together", "[console]") {
    ConsoleRing& backend = attach();
    guest_write("login: ");
    push("root\n");
    const ServiceResult result = backend.service(&input);
    CHECK(result.consumed == 7);
    CHECK(result.produced == 5);
    CHECK(result.notify);
    CHECK(console.pending() == "login: ");
    CHECK(guest_read() == "root\n");
}

TEST_CASE_METHOD(RingFixture, "console: hostile bytes from the ring are escaped like any others", "[console][hostile]") {
    ConsoleRing& backend = attach();
    guest_write("\x1b[2J\x1b[H\xe2\x80\xae\r\n");
    CHECK(backend.service().consumed == 12);
    CHECK(sink.calls == std::vector<std::string>{"(ring) ?[2J?[H???\n"});
}

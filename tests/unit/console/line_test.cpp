// A domain's console output: line assembly, prefixes, long lines, escaping, flush; and the input
// FIFO.
#include "console_fixture.hpp"

using namespace console_test;

namespace {

void write(DomainConsole& console, std::string_view text) { console.write(std::span{text.data(), text.size()}); }

}  // namespace

TEST_CASE("console: each newline ends one line, prefixed with the domain's name", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "web1"};
    CHECK(console.name() == "web1");
    write(console, "hello\nworld\n");
    CHECK(sink.calls == std::vector<std::string>{"(web1) hello\n", "(web1) world\n"});
    CHECK(console.pending().empty());
}

TEST_CASE("console: a line written in pieces goes out once, whole, at its newline", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    write(console, "hel");
    write(console, "lo, ");
    write(console, "");
    CHECK(sink.calls.empty());
    CHECK(console.pending() == "hello, ");
    write(console, "world\nnext");
    CHECK(sink.calls == std::vector<std::string>{"(guest) hello, world\n"});
    CHECK(console.pending() == "next");
}

TEST_CASE("console: an empty line is shown as the prefix alone", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    write(console, "\n\na\n");
    CHECK(sink.calls == std::vector<std::string>{"(guest) \n", "(guest) \n", "(guest) a\n"});
}

TEST_CASE("console: a line of exactly line_capacity bytes and its newline are one line", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    const std::string text(line_capacity, 'x');
    write(console, text);
    CHECK(sink.calls.empty());
    CHECK(console.pending().size() == line_capacity);
    write(console, "\n");
    CHECK(sink.calls == std::vector<std::string>{"(guest) " + text + "\n"});
}

TEST_CASE("console: a longer line is split into lines of line_capacity bytes, each prefixed", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    std::string text;
    for (int i = 0; i < 300; ++i)
        text += static_cast<char>('a' + i % 26);
    write(console, text + "\n");
    REQUIRE(sink.calls.size() == 3);
    CHECK(sink.calls[0] == "(guest) " + text.substr(0, 128) + "\n");
    CHECK(sink.calls[1] == "(guest) " + text.substr(128, 128) + "\n");
    CHECK(sink.calls[2] == "(guest) " + text.substr(256) + "\n");
}

TEST_CASE("console: a line of line_capacity + 1 bytes is split at the byte that did not fit", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    write(console, std::string(line_capacity, 'x'));
    write(console, "y");
    CHECK(sink.calls == std::vector<std::string>{"(guest) " + std::string(line_capacity, 'x') + "\n"});
    CHECK(console.pending() == "y");
}

TEST_CASE("console: escape sequences reach the sink only as placeholders", "[console][hostile]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    // Clear screen, set the window title, an 8-bit CSI, a bell, a backspace over the prefix.
    write(console, "\x1b[2J\x1b]0;owned\x07 \x9b" "31m\b\b\b\b\bok\n");
    CHECK(sink.calls == std::vector<std::string>{"(guest) ?[2J?]0;owned? ?31m?????ok\n"});
    // No byte that reached the sink can start a control sequence.
    for (const char c : sink.all()) {
        const auto byte = static_cast<unsigned char>(c);
        CHECK(((byte >= 0x20 && byte <= 0x7e) || byte == '\n'));
    }
}

TEST_CASE("console: every byte value is shown as documented", "[console][hostile]") {
    for (int value = 0; value < 256; ++value) {
        RecordingSink sink;
        DomainConsole console{sink, "g"};
        const char c = static_cast<char>(value);
        const char text[] = {'<', c, '>', '\n'};
        console.write(text);
        INFO("byte " << value);
        REQUIRE(sink.calls.size() == (value == '\n' ? 2u : 1u));
        std::string expected;
        if (value == '\n')
            expected = "(g) <\n(g) >\n";
        else if (value == '\r')
            expected = "(g) <>\n";
        else if (value == '\t' || (value >= 0x20 && value <= 0x7e))
            expected = std::string("(g) <") + c + ">\n";
        else
            expected = "(g) <?>\n";
        CHECK(sink.all() == expected);
        const bool text_byte = value == '\t' || (value >= 0x20 && value <= 0x7e);
        CHECK(classify(c) == (value == '\n'   ? ByteClass::newline
                              : value == '\r' ? ByteClass::dropped
                              : text_byte     ? ByteClass::text
                                              : ByteClass::replaced));
    }
}

TEST_CASE("console: carriage returns are dropped, not counted and not shown", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    write(console, "one\r\ntw\ro\r\r\n");
    CHECK(sink.calls == std::vector<std::string>{"(guest) one\n", "(guest) two\n"});
    // Carriage returns do not fill the line buffer.
    write(console, std::string(line_capacity, 'z') + std::string(50, '\r') + "\n");
    CHECK(sink.calls.size() == 3);
}

TEST_CASE("console: replaced bytes count one for one in the line length", "[console][hostile]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    write(console, std::string(line_capacity, '\x1b') + "\n");
    CHECK(sink.calls == std::vector<std::string>{"(guest) " + std::string(line_capacity, '?') + "\n"});
}

TEST_CASE("console: flush emits the partial line, and nothing when there is none", "[console]") {
    RecordingSink sink;
    DomainConsole console{sink, "guest"};
    console.flush();
    CHECK(sink.calls.empty());
    write(console, "last words");
    console.flush();
    CHECK(sink.calls == std::vector<std::string>{"(guest) last words\n"});
    CHECK(console.pending().empty());
    console.flush();
    CHECK(sink.calls.size() == 1);
    write(console, "after\n");
    CHECK(sink.calls.back() == "(guest) after\n");
}

TEST_CASE("console: a long name is cut to max_name_length bytes", "[console]") {
    RecordingSink sink;
    const std::string name(max_name_length + 10, 'n');
    DomainConsole console{sink, name};
    CHECK(console.name() == name.substr(0, max_name_length));
    write(console, "x\n");
    CHECK(sink.calls == std::vector<std::string>{"(" + name.substr(0, max_name_length) + ") x\n"});
}

TEST_CASE("console: control bytes in a name are replaced, so the prefix is one plain word", "[console][hostile]") {
    RecordingSink sink;
    DomainConsole console{sink, std::string_view{"a\x1b[31m\tb\nc\xff\0", 12}};
    CHECK(console.name() == "a?[31m?b?c??");
    DomainConsole unnamed{sink, ""};
    write(unnamed, "x\n");
    CHECK(sink.calls == std::vector<std::string>{"() x\n"});
}

TEST_CASE("console: two domains on one sink interleave whole lines only", "[console]") {
    RecordingSink sink;
    DomainConsole one{sink, "d1"};
    DomainConsole two{sink, "d2"};
    write(one, "first ha");
    write(two, "second ha");
    write(one, "lf\nthird");
    write(two, "lf\n");
    one.flush();
    CHECK(sink.calls == std::vector<std::string>{"(d1) first half\n", "(d2) second half\n", "(d1) third\n"});
}

TEST_CASE("console: the input FIFO keeps order and refuses bytes beyond its capacity", "[console]") {
    ConsoleInput input;
    CHECK(input.empty());
    for (std::size_t i = 0; i < ConsoleInput::input_capacity; ++i)
        REQUIRE(input.push(static_cast<char>('A' + i % 26)));
    CHECK(input.full());
    CHECK_FALSE(input.push('!'));
    CHECK(input.size() == ConsoleInput::input_capacity);
    std::array<char, 3> three;
    CHECK(input.pop(three) == 3);
    CHECK(std::string(three.data(), 3) == "ABC");
    CHECK(input.size() == ConsoleInput::input_capacity - 3);
    std::vector<char> rest(500);
    CHECK(input.pop(rest) == ConsoleInput::input_capacity - 3);
    CHECK(rest[0] == 'D');
    CHECK(rest[ConsoleInput::input_capacity - 4] == static_cast<char>('A' + (ConsoleInput::input_capacity - 1) % 26));
    CHECK(input.empty());
    CHECK(input.pop(rest) == 0);
}

TEST_CASE("console: the input FIFO wraps around its storage", "[console]") {
    ConsoleInput input;
    std::string expected;
    std::string got;
    // Push and pop in uneven steps so that runs straddle the end of the storage many times.
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 37; ++i) {
            const char c = static_cast<char>('a' + (expected.size() % 26));
            REQUIRE(input.push(c));
            expected += c;
        }
        std::array<char, 29> out;
        const std::size_t n = input.pop(out);
        got.append(out.data(), n);
        REQUIRE(input.size() == expected.size() - got.size());
        if (input.size() > 90) {
            std::vector<char> drain(input.size());
            got.append(drain.data(), input.pop(drain));
        }
    }
    std::vector<char> drain(input.size());
    got.append(drain.data(), input.pop(drain));
    CHECK(got == expected);
    // front() never runs past the end of the storage, and discard() never past the last byte.
    for (int i = 0; i < 100; ++i)
        REQUIRE(input.push('x'));
    CHECK(input.front().size() <= ConsoleInput::input_capacity);
    input.discard(1000);
    CHECK(input.empty());
    CHECK(input.front().empty());
}

// A domain's console output: its bytes become lines on the operator's console.
//
// What a guest writes reaches a terminal (a serial console, a log someone will `cat`), so nothing
// it writes may reach that terminal as anything but text: every byte outside printable ASCII,
// '\t' and '\n' is shown as the placeholder (see classify() in console.hpp), and every line starts
// with the domain's prefix, so a guest can neither move the cursor, recolour, retitle or query the
// terminal, nor print a line that looks like another domain's or the hypervisor's.
//
// The line buffer
// ---------------
// `line_` holds the escaped text of the current line, `line_length_` bytes, never more than
// line_capacity. A line leaves it, prefixed and ended by '\n', in one call to the sink:
//   - at '\n' (an empty line too: the guest wrote one);
//   - when a byte arrives and the buffer is already full: the full line goes out first, so a
//     line of exactly line_capacity bytes followed by '\n' is one line, not a line and an empty
//     one;
//   - at flush(), when the buffer holds anything.
// After emit_line() the buffer is empty. Escaping is one byte for one byte ('\r' aside, which is
// dropped), so the line limit counts what the guest wrote.
#include <hv/console.hpp>

namespace hv::console {
namespace {

constexpr bool is_plain(unsigned char byte) { return byte >= 0x20 && byte <= 0x7e; }

}  // namespace

DomainConsole::DomainConsole(ConsoleSink& sink, std::string_view name) : sink_{sink} {
    for (const char c : name) {
        if (name_length_ == max_name_length)
            break;
        name_[name_length_++] = is_plain(static_cast<unsigned char>(c)) ? c : placeholder;
    }
}

void DomainConsole::write(std::span<const char> bytes) {
    for (const char c : bytes) {
        switch (classify(c)) {
        case ByteClass::newline:
            emit_line();
            break;
        case ByteClass::dropped:
            break;
        case ByteClass::text:
        case ByteClass::replaced:
            if (line_length_ == line_capacity)
                emit_line();
            line_[line_length_++] = classify(c) == ByteClass::text ? c : placeholder;
            break;
        }
    }
}

void DomainConsole::flush() {
    if (line_length_ != 0)
        emit_line();
}

void DomainConsole::emit_line() {
    // "(" name ") " text "\n"
    std::array<char, 1 + max_name_length + 2 + line_capacity + 1> text;
    std::size_t length = 0;
    auto append = [&](const char* from, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i)
            text[length++] = from[i];
    };
    append("(", 1);
    append(name_.data(), name_length_);
    append(") ", 2);
    append(line_.data(), line_length_);
    append("\n", 1);
    line_length_ = 0;
    sink_.write(std::string_view{text.data(), length});
}

}  // namespace hv::console

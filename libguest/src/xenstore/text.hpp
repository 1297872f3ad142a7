// Text the xenstore protocol carries: error names, decimal numbers, and paths built in fixed
// buffers. Shared by the client, xenbus and the C API; no libc.
#pragma once

#include <guest/xenstore.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pvkit::guest {

// The errno an XS_ERROR name stands for (xs_wire.h's xsd_errors); EIO for a name not there.
XsErrc error_from_name(std::string_view name);

// Whether `payload` is exactly one string and its NUL; the string without it goes to `text`.
bool one_string(std::string_view payload, std::string_view& text);

// The longest decimal text of a 64-bit number.
inline constexpr std::size_t decimal_digits_max = 20;

// Writes `value` in decimal at `out` (room for decimal_digits_max bytes); returns the digits'
// count. No NUL.
std::size_t format_decimal(std::uint64_t value, char* out);

// The number `text` spells in decimal (digits only, no sign, no leading zeros but "0"), if it is
// at most `max`; else false.
bool parse_decimal(std::string_view text, std::uint64_t max, std::uint64_t& value);

// Appends pieces into a fixed buffer and keeps a NUL after them; overflowing() once a piece did
// not fit (the text is then unusable).
class TextBuilder {
public:
    explicit TextBuilder(std::span<char> buffer) : buffer_{buffer} { terminate(); }
    TextBuilder& add(std::string_view piece);
    TextBuilder& add_decimal(std::uint64_t value);
    bool overflowing() const { return overflow_; }
    std::string_view text() const { return {buffer_.data(), length_}; }

private:
    void terminate() {
        if (length_ < buffer_.size())
            buffer_[length_] = '\0';
    }

    std::span<char> buffer_;
    std::size_t length_ = 0;
    bool overflow_ = false;
};

}  // namespace pvkit::guest

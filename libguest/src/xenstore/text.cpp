#include "text.hpp"

namespace pvkit::guest {
namespace {

struct ErrorName {
    std::string_view name;
    XsErrc error;
};

// The names xs_wire.h's xsd_errors[] lists, each with its errno.
constexpr ErrorName error_names[] = {
    {"EINVAL", XsErrc::einval}, {"EACCES", XsErrc::eacces},       {"EEXIST", XsErrc::eexist},
    {"EISDIR", XsErrc::eisdir}, {"ENOENT", XsErrc::enoent},       {"ENOMEM", XsErrc::enomem},
    {"ENOSPC", XsErrc::enospc}, {"EIO", XsErrc::eio},             {"ENOTEMPTY", XsErrc::enotempty},
    {"ENOSYS", XsErrc::enosys}, {"EROFS", XsErrc::erofs},         {"EBUSY", XsErrc::ebusy},
    {"EAGAIN", XsErrc::eagain}, {"EISCONN", XsErrc::eisconn},     {"E2BIG", XsErrc::e2big},
    {"EPERM", XsErrc::eperm},
};

}  // namespace

XsErrc error_from_name(std::string_view name) {
    for (const ErrorName& known : error_names)
        if (known.name == name)
            return known.error;
    return XsErrc::eio;
}

bool one_string(std::string_view payload, std::string_view& text) {
    if (payload.empty() || find_nul(payload) != payload.size() - 1)
        return false;
    text = {payload.data(), payload.size() - 1};
    return true;
}

std::size_t format_decimal(std::uint64_t value, char* out) {
    // Count the digits first, then write them from the last one back.
    std::size_t digits = 1;
    for (std::uint64_t rest = value / 10; rest != 0; rest /= 10)
        ++digits;
    for (std::size_t position = digits; position-- > 0; value /= 10)
        out[position] = static_cast<char>('0' + value % 10);
    return digits;
}

bool parse_decimal(std::string_view text, std::uint64_t max, std::uint64_t& value) {
    if (text.empty() || text.size() > decimal_digits_max || (text.size() > 1 && text[0] == '0'))
        return false;
    std::uint64_t result = 0;
    for (char digit : text) {
        if (digit < '0' || digit > '9')
            return false;
        const std::uint64_t next = static_cast<std::uint64_t>(digit - '0');
        if (next > max || result > (max - next) / 10)
            return false;
        result = result * 10 + next;
    }
    value = result;
    return true;
}

TextBuilder& TextBuilder::add(std::string_view piece) {
    // One byte stays for the NUL.
    if (overflow_ || piece.size() >= buffer_.size() - length_) {
        overflow_ = true;
        return *this;
    }
    for (char byte : piece)
        buffer_[length_++] = byte;
    terminate();
    return *this;
}

TextBuilder& TextBuilder::add_decimal(std::uint64_t value) {
    char digits[decimal_digits_max];
    return add({digits, format_decimal(value, digits)});
}

}  // namespace pvkit::guest

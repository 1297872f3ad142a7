// Paths and the small texts of the protocol: decimal numbers and permission strings.
//
// A valid absolute path is "/" or "/" followed by components joined by single '/', each made of
// ASCII letters, digits and "-_@", with no '/' at the end; at most XENSTORE_ABS_PATH_MAX bytes.
// Paths deeper than max_path_depth are refused too, which bounds every walk of the tree.
#include "internal.hpp"

namespace hv::xenstore::detail {
namespace {

constexpr bool path_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '@';
}

}  // namespace

bool valid_absolute_path(std::string_view path) {
    if (path.empty() || path.size() > abi::XENSTORE_ABS_PATH_MAX || path[0] != '/')
        return false;
    if (path.size() == 1)
        return true;
    if (path.back() == '/')
        return false;
    std::size_t depth = 0;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '/') {
            if (i + 1 < path.size() && path[i + 1] == '/')
                return false;
            ++depth;
        } else if (!path_character(path[i])) {
            return false;
        }
    }
    return depth <= max_path_depth;
}

std::size_t path_depth(std::string_view path) {
    std::size_t depth = 0;
    if (path.size() <= 1)
        return 0;
    for (const char c : path)
        depth += c == '/';
    return depth;
}

std::string_view next_component(std::string_view path, std::size_t& position) {
    const std::size_t start = position + 1;
    const std::size_t end = find_byte(path, '/', start);
    position = end;
    return slice(path, start, end - start);
}

bool strictly_below(std::string_view path, std::string_view ancestor) {
    if (ancestor == "/")
        return path.size() > 1 && path[0] == '/';
    return path.size() > ancestor.size() && path.starts_with(ancestor) && path[ancestor.size()] == '/';
}

std::size_t format_decimal(std::uint64_t value, char* into) {
    char digits[20];
    std::size_t count = 0;
    do {
        digits[count++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (std::size_t i = 0; i < count; ++i)
        into[i] = digits[count - 1 - i];
    return count;
}

std::size_t domain_path(DomId domain, char* into) {
    constexpr std::string_view prefix = "/local/domain/";
    std::memcpy(into, prefix.data(), prefix.size());
    return prefix.size() + format_decimal(domain.value, into + prefix.size());
}

bool parse_decimal(std::string_view text, std::uint64_t max, std::uint64_t& value) {
    if (text.empty() || text.size() > 20)
        return false;
    std::uint64_t result = 0;
    for (const char c : text) {
        if (c < '0' || c > '9')
            return false;
        const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
        if (result > (max - digit) / 10)
            return false;
        result = result * 10 + digit;
    }
    value = result;
    return true;
}

bool parse_permission(std::string_view text, Permission& perm) {
    if (text.empty())
        return false;
    Access access;
    switch (text[0]) {
    case 'n': access = Access::none; break;
    case 'r': access = Access::read; break;
    case 'w': access = Access::write; break;
    case 'b': access = Access::both; break;
    default: return false;
    }
    std::uint64_t domain = 0;
    if (!parse_decimal(slice(text, 1), 0xffff, domain))
        return false;
    perm = Permission{DomId{static_cast<abi::domid_t>(domain)}, access};
    return true;
}

char access_letter(Access access) {
    switch (access) {
    case Access::read: return 'r';
    case Access::write: return 'w';
    case Access::both: return 'b';
    case Access::none: break;
    }
    return 'n';
}

}  // namespace hv::xenstore::detail

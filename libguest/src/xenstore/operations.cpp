// The xenstore operations: each one message and the checks of its reply's payload
// (docs/xenstore.md lists the formats). Arguments are checked before anything is sent.
#include <guest/xenstore.hpp>

#include "text.hpp"

namespace pvkit::guest {
namespace {

constexpr std::string_view nul{"\0", 1};

bool has_nul(std::string_view text) { return find_nul(text) != text.size(); }

constexpr char access_letters[] = {'n', 'r', 'w', 'b'};

// "r0\0n5\0...": one entry per NUL-ended string.
XsResult<std::size_t> parse_perms(std::string_view text, std::span<XsPermission> perms) {
    if (text.empty() || text.back() != '\0')
        return XsErrc::ebadmsg;
    std::size_t count = 0;
    for (std::size_t start = 0; start < text.size(); ++count) {
        const std::size_t end = find_nul(text, start);
        const std::string_view entry{text.data() + start, end - start};
        start = end + 1;
        XsPermission parsed;
        std::uint64_t domain = 0;
        if (entry.empty() || !parse_decimal({entry.data() + 1, entry.size() - 1}, 0xffff, domain))
            return XsErrc::ebadmsg;
        std::size_t letter = 0;
        while (letter < sizeof access_letters && access_letters[letter] != entry[0])
            ++letter;
        if (letter == sizeof access_letters)
            return XsErrc::ebadmsg;
        parsed.domain = static_cast<DomainId>(domain);
        parsed.access = static_cast<XsAccess>(letter);
        if (count < perms.size())
            perms[count] = parsed;
    }
    if (count > perms.size())
        return XsErrc::erange;
    return count;
}

}  // namespace

XsResult<void> XenstoreClient::expect_ok(std::uint32_t type, XsTransaction tx,
                                         std::span<const std::string_view> parts) {
    char reply[4];
    XsResult<std::size_t> answered = request(type, tx, parts, reply);
    if (!answered)
        return answered.error() == XsErrc::erange ? XsErrc::ebadmsg : answered.error();
    if (std::string_view{reply, *answered} != std::string_view{"OK\0", 3})
        return XsErrc::ebadmsg;
    return {};
}

XsResult<std::size_t> XenstoreClient::read(std::string_view path, std::span<char> value, XsTransaction tx) {
    if (value.empty())
        return XsErrc::erange;
    XsResult<std::size_t> length = path_request(abi::XS_READ, path, tx, value.first(value.size() - 1));
    if (length)
        value[*length] = '\0';
    return length;
}

XsResult<void> XenstoreClient::write(std::string_view path, std::string_view value, XsTransaction tx) {
    // A value may hold any bytes, NULs too: only the path is checked.
    if (has_nul(path))
        return XsErrc::einval;
    const std::string_view parts[] = {path, nul, value};
    return expect_ok(abi::XS_WRITE, tx, parts);
}

XsResult<std::size_t> XenstoreClient::path_request(std::uint32_t type, std::string_view path, XsTransaction tx,
                                                   std::span<char> reply) {
    if (has_nul(path))
        return XsErrc::einval;
    const std::string_view parts[] = {path, nul};
    return request(type, tx, parts, reply);
}

XsResult<void> XenstoreClient::path_ok_request(std::uint32_t type, std::string_view path, XsTransaction tx) {
    if (has_nul(path))
        return XsErrc::einval;
    const std::string_view parts[] = {path, nul};
    return expect_ok(type, tx, parts);
}

XsResult<void> XenstoreClient::mkdir(std::string_view path, XsTransaction tx) {
    return path_ok_request(abi::XS_MKDIR, path, tx);
}

XsResult<void> XenstoreClient::rm(std::string_view path, XsTransaction tx) {
    return path_ok_request(abi::XS_RM, path, tx);
}

XsResult<XsNames> XenstoreClient::directory(std::string_view path, std::span<char> names, XsTransaction tx) {
    XsResult<std::size_t> length = path_request(abi::XS_DIRECTORY, path, tx, names);
    if (!length)
        return length.error();
    const std::string_view bytes{names.data(), *length};
    if (!bytes.empty() && bytes.back() != '\0')
        return XsErrc::ebadmsg;
    XsNames listed{bytes, 0};
    for (char byte : bytes)
        listed.count += byte == '\0' ? 1 : 0;
    return listed;
}

XsResult<std::size_t> XenstoreClient::get_perms(std::string_view path, std::span<XsPermission> perms,
                                                XsTransaction tx) {
    XsResult<std::size_t> length = path_request(abi::XS_GET_PERMS, path, tx, scratch_);
    if (!length)
        return length.error();
    return parse_perms({scratch_, *length}, perms);
}

XsResult<void> XenstoreClient::set_perms(std::string_view path, std::span<const XsPermission> perms,
                                         XsTransaction tx) {
    if (has_nul(path) || perms.empty())
        return XsErrc::einval;
    // The list is built in scratch_; the reply goes elsewhere, so a store answering early cannot
    // change the bytes being sent.
    TextBuilder list{scratch_};
    std::size_t length = 0;
    for (const XsPermission& perm : perms) {
        if (static_cast<std::size_t>(perm.access) >= sizeof access_letters)
            return XsErrc::einval;
        list.add({&access_letters[static_cast<std::size_t>(perm.access)], 1}).add_decimal(perm.domain);
        length = list.text().size() + 1;
        list.add(nul);
    }
    if (list.overflowing())
        return XsErrc::e2big;
    const std::string_view parts[] = {path, nul, {scratch_, length}};
    return expect_ok(abi::XS_SET_PERMS, tx, parts);
}

XsResult<void> XenstoreClient::watch(std::string_view path, std::string_view token) {
    if (has_nul(path) || has_nul(token))
        return XsErrc::einval;
    const std::string_view parts[] = {path, nul, token, nul};
    return expect_ok(abi::XS_WATCH, {}, parts);
}

XsResult<void> XenstoreClient::unwatch(std::string_view path, std::string_view token) {
    if (has_nul(path) || has_nul(token))
        return XsErrc::einval;
    const std::string_view parts[] = {path, nul, token, nul};
    return expect_ok(abi::XS_UNWATCH, {}, parts);
}

XsResult<XsTransaction> XenstoreClient::transaction_start() {
    char reply[decimal_digits_max + 1];
    const std::string_view parts[] = {nul};
    XsResult<std::size_t> length = request(abi::XS_TRANSACTION_START, {}, parts, reply);
    if (!length)
        return length.error() == XsErrc::erange ? XsErrc::ebadmsg : length.error();
    std::uint64_t id = 0;
    std::string_view text;
    if (!one_string({reply, *length}, text) || !parse_decimal(text, 0xffffffff, id) || id == 0)
        return XsErrc::ebadmsg;
    return XsTransaction{static_cast<std::uint32_t>(id)};
}

XsResult<void> XenstoreClient::transaction_end(XsTransaction tx, bool commit) {
    if (tx.id == 0)
        return XsErrc::einval;
    const std::string_view parts[] = {commit ? std::string_view{"T\0", 2} : std::string_view{"F\0", 2}};
    return expect_ok(abi::XS_TRANSACTION_END, tx, parts);
}

XsResult<std::string_view> XenstoreClient::get_domain_path(DomainId domain, std::span<char> path) {
    char digits[decimal_digits_max];
    const std::string_view parts[] = {{digits, format_decimal(domain, digits)}, nul};
    XsResult<std::size_t> length = request(abi::XS_GET_DOMAIN_PATH, {}, parts, path);
    if (!length)
        return length.error();
    std::string_view text;
    if (!one_string({path.data(), *length}, text))
        return XsErrc::ebadmsg;
    return text;
}

}  // namespace pvkit::guest

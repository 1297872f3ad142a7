// Reading a boot bundle: a cpio "newc" archive, the xl.cfg-style configuration of each domain,
// and the files those configurations name.
//
// Nothing in the archive is trusted. A range [offset, offset + length) is used only once
// `offset <= size && length <= size - offset` holds, which cannot overflow; header fields are at
// most 32 bits, so positions computed from them in 64 bits cannot wrap. The archive is read a
// byte at a time (no alignment is assumed of it) and the configuration a character at a time.
// The code avoids std::string_view's find/substr, which pull memchr and throwing checks into a
// freestanding image.
//
// The archive format (the "newc" format of cpio and of Linux's initramfs): each entry is a
// 110-byte ASCII header, "070701" then 13 fields of 8 hexadecimal digits (ino, mode, uid, gid,
// nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check); then the
// name with its NUL (namesize counts it), padded so that header and name end on a multiple of 4;
// then the data, padded to a multiple of 4. An entry named "TRAILER!!!" ends the archive.
#include <hv/boot_bundle.hpp>

namespace hv::builder {
using namespace std::string_view_literals;  // sized literals: no strlen in freestanding code
namespace {

bool fits(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
    return offset <= size && length <= size - offset;
}
constexpr std::uint64_t align4(std::uint64_t value) { return (value + 3) & ~std::uint64_t{3}; }

bool has_prefix(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && std::string_view{text.data(), prefix.size()} == prefix;
}

// ---- cpio newc ----------------------------------------------------------------------------------

constexpr std::size_t header_size = 110;
constexpr std::string_view newc_magic = "070701"sv;
constexpr std::string_view trailer_name = "TRAILER!!!"sv;
enum Field : std::size_t { ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
                           namesize, check, field_count };
static_assert(newc_magic.size() + field_count * 8 == header_size);

std::optional<unsigned> hex_digit(std::byte byte) {
    const auto c = std::to_integer<unsigned char>(byte);
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return std::nullopt;
}

// The header's 13 fields, from bytes the caller has checked hold a whole header.
ArchiveError read_header(std::span<const std::byte> header, std::array<std::uint32_t, field_count>& fields) {
    for (std::size_t i = 0; i < newc_magic.size(); ++i)
        if (std::to_integer<char>(header[i]) != newc_magic[i])
            return ArchiveError::bad_magic;
    for (std::size_t field = 0; field < field_count; ++field) {
        std::uint32_t value = 0;
        for (std::size_t i = 0; i < 8; ++i) {
            const auto digit = hex_digit(header[newc_magic.size() + field * 8 + i]);
            if (!digit)
                return ArchiveError::bad_header_field;
            value = (value << 4) | *digit;
        }
        fields[field] = value;
    }
    return ArchiveError::none;
}

}  // namespace

std::optional<ArchiveEntry> ArchiveReader::next() {
    if (finished_ || error_ != ArchiveError::none)
        return std::nullopt;
    const std::uint64_t size = archive_.size();
    const auto fail = [this](ArchiveError error) -> std::optional<ArchiveEntry> {
        error_ = error;
        return std::nullopt;
    };
    if (position_ >= size)  // an archive that ends between entries has lost its trailer
        return fail(ArchiveError::missing_trailer);
    if (!fits(position_, header_size, size))
        return fail(ArchiveError::truncated_header);
    std::array<std::uint32_t, field_count> fields{};
    if (const auto error = read_header(archive_.subspan(position_, header_size), fields); error != ArchiveError::none)
        return fail(error);

    const std::uint64_t name_offset = position_ + header_size;
    const std::uint64_t name_size = fields[namesize];
    if (name_size == 0)
        return fail(ArchiveError::bad_name);
    if (!fits(name_offset, name_size, size))
        return fail(ArchiveError::truncated_entry);
    const auto* name_chars = reinterpret_cast<const char*>(archive_.data() + name_offset);
    for (std::uint64_t i = 0; i + 1 < name_size; ++i)
        if (name_chars[i] == '\0')
            return fail(ArchiveError::bad_name);
    if (name_chars[name_size - 1] != '\0')
        return fail(ArchiveError::bad_name);
    const std::string_view name{name_chars, static_cast<std::size_t>(name_size - 1)};
    if (name == trailer_name) {
        finished_ = true;
        return std::nullopt;
    }

    const std::uint64_t data_offset = align4(name_offset + name_size);
    const std::uint64_t data_size = fields[filesize];
    // An empty file may lack its padding at the very end: do not form a span past the archive.
    if (data_size != 0 && !fits(data_offset, data_size, size))
        return fail(ArchiveError::truncated_entry);
    ArchiveEntry entry{
        .name = name,
        .mode = fields[mode],
        .data = data_size == 0 ? std::span<const std::byte>{} : archive_.subspan(data_offset, data_size),
        .offset = position_,
    };
    position_ = align4(data_offset + data_size);
    return entry;
}

std::string_view bundle_path(std::string_view name) {
    for (;;) {
        if (has_prefix(name, "./"sv))
            name.remove_prefix(2);
        else if (has_prefix(name, "/"sv))
            name.remove_prefix(1);
        else
            return name;
    }
}

std::string_view describe(ArchiveError error) {
    switch (error) {
    case ArchiveError::none: return "no error"sv;
    case ArchiveError::truncated_header: return "the archive ends inside an entry's header"sv;
    case ArchiveError::bad_magic:
        return "not a cpio \"newc\" (070701) archive entry (another cpio format, or a compressed archive?)"sv;
    case ArchiveError::bad_header_field: return "a cpio header field is not 8 hexadecimal digits"sv;
    case ArchiveError::bad_name: return "an entry name is empty, lacks its NUL, or holds a NUL"sv;
    case ArchiveError::truncated_entry: return "an entry's name or data runs past the end of the archive"sv;
    case ArchiveError::missing_trailer: return "the archive ends without its TRAILER!!! entry"sv;
    }
    return "unknown archive error"sv;
}

// ---- configuration strings --------------------------------------------------------------------

namespace {

// What `\c` stands for in a quoted string, as xl's dequoting decodes it; nullopt for any other c.
// xl's numeric escapes (\xHH, octal) are not taken: xl's own code refuses \x, and drops or
// refuses octal.
std::optional<char> escaped_char(char c) {
    switch (c) {
    case '"': case '\'': case '\\': return c;
    case 'a': return '\a';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'v': return '\v';
    default: return std::nullopt;
    }
}

// Calls take(c) for each decoded character of text the parser has checked.
template <class Take>
void for_each_decoded(std::string_view written, Take take) {
    for (std::size_t i = 0; i < written.size(); ++i) {
        if (written[i] == '\\' && i + 1 < written.size()) {
            take(escaped_char(written[i + 1]).value_or(written[i + 1]));
            ++i;
        } else {
            take(written[i]);
        }
    }
}

}  // namespace

std::size_t ConfigString::size() const {
    std::size_t count = 0;
    for_each_decoded(written_, [&](char) { ++count; });
    return count;
}

std::size_t ConfigString::decode(std::span<char> out) const {
    std::size_t count = 0;
    for_each_decoded(written_, [&](char c) {
        if (count < out.size())
            out[count] = c;
        ++count;
    });
    return count;
}

bool ConfigString::operator==(std::string_view decoded) const {
    std::size_t count = 0;
    bool same = true;
    for_each_decoded(written_, [&](char c) {
        same = same && count < decoded.size() && decoded[count] == c;
        ++count;
    });
    return same && count == decoded.size();
}

std::string_view describe(DomainAction action) {
    switch (action) {
    case DomainAction::destroy: return "destroy"sv;
    case DomainAction::restart: return "restart"sv;
    case DomainAction::preserve: return "preserve"sv;
    }
    return "unknown"sv;
}

// ---- one domain's configuration -----------------------------------------------------------------
//
// A file is lines ending at '\n'. A line holds settings `key = value` separated by ';' (a ';'
// may also end the line), then optionally a comment from '#' to the end of the line. Spaces, tabs
// and '\r' (CRLF files) separate tokens. A value is a string in double or single quotes, on one
// line, or a number: decimal without leading zeros, or 0x and hexadecimal digits.

namespace {

enum class Key : std::uint8_t { name, kernel, ramdisk, cmdline, memory, vcpus, on_poweroff, on_reboot, on_crash,
                                type, privileged, disk, count };
constexpr std::string_view key_names[] = {"name"sv, "kernel"sv, "ramdisk"sv, "cmdline"sv, "memory"sv, "vcpus"sv,
                                          "on_poweroff"sv, "on_reboot"sv, "on_crash"sv, "type"sv, "privileged"sv,
                                          "disk"sv};
static_assert(std::size(key_names) == static_cast<std::size_t>(Key::count));

constexpr bool takes_number(Key key) { return key == Key::memory || key == Key::vcpus || key == Key::privileged; }
constexpr bool takes_list(Key key) { return key == Key::disk; }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_word(c) || c == '-' || c == '.'; }
bool is_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
}

struct Value {
    enum class Kind : std::uint8_t { string, number, list, other } kind;
    std::string_view text;  // a string's text between its quotes; a number's or other token's text
    std::array<std::string_view, max_domain_disks> items{};  // a list's strings, as `text`s
    std::array<std::uint32_t, max_domain_disks> item_lines{};  // the line each is on
    std::size_t item_count = 0;
};

// A number token: "0", decimal without leading zeros, or 0x and hex digits, below 2^64. A leading
// zero is refused rather than read as octal, as xl's strtol would read it.
ConfigErrc number_value(std::string_view text, std::uint64_t& value) {
    unsigned base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    } else if (text.size() > 1 && text[0] == '0') {
        return ConfigErrc::expected_number;
    }
    value = 0;
    for (const char c : text) {
        const auto digit = hex_digit(static_cast<std::byte>(c));
        if (!digit || *digit >= base)
            return ConfigErrc::expected_number;
        if (value > (~std::uint64_t{0} - *digit) / base)
            return ConfigErrc::out_of_range;
        value = value * base + *digit;
    }
    return ConfigErrc::none;
}

// Walks the whole text: a line ends at '\n', but a list `[ ... ]` may span lines (as xl's do),
// with comments and blank lines among its items.
class ConfigParser {
public:
    ConfigError parse(std::string_view text, BundleDomain& out) {
        text_ = text;
        while (pos_ < text_.size()) {
            if (const ConfigErrc error = parse_line(); error != ConfigErrc::none)
                return {error, line_, detail_};
            if (pos_ < text_.size()) {  // the '\n'
                ++pos_;
                ++line_;
            }
        }
        if (!seen(Key::name))
            return {ConfigErrc::missing_name, 0};
        if (!seen(Key::kernel))
            return {ConfigErrc::missing_kernel, 0};
        out = domain_;
        return {};
    }

private:
    bool seen(Key key) const { return (seen_ >> static_cast<unsigned>(key)) & 1; }
    bool at_line_end() const { return pos_ == text_.size() || text_[pos_] == '\n'; }
    char here() const { return text_[pos_]; }
    void skip_spaces() {
        while (pos_ < text_.size() && is_space(here()))
            ++pos_;
    }
    void skip_comment() {
        while (!at_line_end())
            ++pos_;
    }

    // One line's settings, up to its '\n' (or, after a list, the '\n' of the list's last line).
    ConfigErrc parse_line() {
        for (;;) {
            skip_spaces();
            if (at_line_end() || here() == '#') {
                skip_comment();
                return ConfigErrc::none;
            }
            // key
            const std::size_t key_start = pos_;
            if (!is_lower(here()))
                return ConfigErrc::syntax;
            while (pos_ < text_.size() && (is_lower(here()) || is_digit(here()) || here() == '_'))
                ++pos_;
            const std::string_view key_text{text_.data() + key_start, pos_ - key_start};
            skip_spaces();
            if (at_line_end() || here() != '=')
                return ConfigErrc::syntax;
            ++pos_;
            skip_spaces();
            std::size_t key_index = 0;
            while (key_index < std::size(key_names) && key_names[key_index] != key_text)
                ++key_index;
            if (key_index == std::size(key_names))
                return ConfigErrc::unknown_key;
            const auto key = static_cast<Key>(key_index);
            if (seen(key))
                return ConfigErrc::duplicate_key;
            // value
            Value value{};
            if (const ConfigErrc error = lex_value(key, value); error != ConfigErrc::none)
                return error;
            if (const ConfigErrc error = apply(key, value); error != ConfigErrc::none)
                return error;
            seen_ |= 1u << key_index;
            // what may follow: ';' and another setting, a comment, the end of the line
            skip_spaces();
            if (!at_line_end() && here() == ';')
                ++pos_;
            else if (!at_line_end() && here() != '#')
                return ConfigErrc::syntax;
        }
    }

    // A quoted string on one line, from its opening quote at pos_; pos_ ends after the closing one.
    ConfigErrc lex_string(std::string_view& text) {
        const char quote = here();
        const std::size_t start = ++pos_;
        for (;;) {
            if (at_line_end())
                return ConfigErrc::unterminated_string;
            const char c = here();
            if (c == quote)
                break;
            if (c == '\\') {
                ++pos_;
                if (at_line_end())
                    return ConfigErrc::unterminated_string;
                if (!escaped_char(here()))
                    return ConfigErrc::bad_escape;
                ++pos_;
                continue;
            }
            if (is_control(c))
                return ConfigErrc::syntax;
            ++pos_;
        }
        text = {text_.data() + start, pos_ - start};
        ++pos_;  // the closing quote
        return ConfigErrc::none;
    }

    // Spaces, line ends and comments between a list's items.
    void skip_list_blanks() {
        for (;;) {
            skip_spaces();
            if (pos_ < text_.size() && here() == '#')
                skip_comment();
            if (pos_ == text_.size() || here() != '\n')
                return;
            ++pos_;
            ++line_;
        }
    }

    // `[ 'a', "b", ]`: quoted strings separated by commas, a trailing comma allowed.
    ConfigErrc lex_list(Value& value) {
        value.kind = Value::Kind::list;
        ++pos_;  // '['
        for (;;) {
            skip_list_blanks();
            if (pos_ == text_.size())
                return ConfigErrc::expected_list;
            if (here() == ']')
                break;
            if (here() != '"' && here() != '\'')
                return ConfigErrc::expected_list;
            if (value.item_count == value.items.size())
                return ConfigErrc::expected_list;
            value.item_lines[value.item_count] = line_;
            if (const ConfigErrc error = lex_string(value.items[value.item_count]); error != ConfigErrc::none)
                return error;
            ++value.item_count;
            skip_list_blanks();
            if (pos_ < text_.size() && here() == ',')
                ++pos_;
            else if (pos_ == text_.size() || here() != ']')
                return ConfigErrc::expected_list;
        }
        ++pos_;  // ']'
        return ConfigErrc::none;
    }

    ConfigErrc lex_value(Key key, Value& value) {
        if (at_line_end() || here() == '#' || here() == ';')
            return ConfigErrc::syntax;  // no value
        const char first = here();
        if (first == '"' || first == '\'') {
            value.kind = Value::Kind::string;
            return lex_string(value.text);
        }
        if (first == '[' && takes_list(key))
            return lex_list(value);
        // A number, or a word or list this parser does not take as this key's value: its text is
        // read to the next separator so that the error is about the key's type.
        const std::size_t start = pos_;
        while (!at_line_end() && !is_space(here()) && here() != ';' && here() != '#') {
            if (is_control(here()))
                return ConfigErrc::syntax;
            ++pos_;
        }
        value.kind = is_digit(first) ? Value::Kind::number : Value::Kind::other;
        value.text = {text_.data() + start, pos_ - start};
        return ConfigErrc::none;
    }

    ConfigErrc apply(Key key, const Value& value) {
        if (takes_list(key))
            return value.kind == Value::Kind::list ? apply_disks(value) : ConfigErrc::expected_list;
        if (takes_number(key)) {
            if (value.kind != Value::Kind::number)
                return ConfigErrc::expected_number;
            std::uint64_t number = 0;
            if (const ConfigErrc error = number_value(value.text, number); error != ConfigErrc::none)
                return error;
            return apply_number(key, number);
        }
        if (value.kind != Value::Kind::string)
            return ConfigErrc::expected_string;
        return apply_string(key, value.text);
    }

    ConfigErrc apply_number(Key key, std::uint64_t number) {
        switch (key) {
        case Key::memory:
            if (number == 0 || number > max_memory_mib)
                return ConfigErrc::out_of_range;
            domain_.memory_mib = number;
            return ConfigErrc::none;
        case Key::vcpus:
            if (number == 0 || number > max_domain_vcpus)
                return ConfigErrc::out_of_range;
            domain_.vcpus = static_cast<std::uint32_t>(number);
            return ConfigErrc::none;
        case Key::privileged:
            if (number > 1)
                return ConfigErrc::out_of_range;
            domain_.privileged = number == 1;
            return ConfigErrc::none;
        default: return ConfigErrc::expected_string;
        }
    }

    ConfigErrc apply_string(Key key, std::string_view written) {
        const ConfigString string{written};
        const auto action = [&](DomainAction& into) {
            if (string == "destroy"sv)
                into = DomainAction::destroy;
            else if (string == "restart"sv)
                into = DomainAction::restart;
            else if (string == "preserve"sv)
                into = DomainAction::preserve;
            else
                return ConfigErrc::bad_value;
            return ConfigErrc::none;
        };
        // Names and paths are taken as written: no name needs an escape, and refusing them keeps
        // these plain string_views into the file.
        const auto path = [&](std::string_view& into) {
            for (const char c : written)
                if (c == '\\')
                    return ConfigErrc::bad_path;
            if (written.empty())
                return ConfigErrc::bad_path;
            into = written;
            return ConfigErrc::none;
        };
        switch (key) {
        case Key::name:
            if (written.empty() || written.size() > max_domain_name)
                return ConfigErrc::bad_name;
            for (const char c : written)
                if (!is_name_char(c))
                    return ConfigErrc::bad_name;
            domain_.name = written;
            return ConfigErrc::none;
        case Key::kernel: return path(domain_.kernel);
        case Key::ramdisk: return path(domain_.ramdisk);
        case Key::cmdline: domain_.cmdline = string; return ConfigErrc::none;
        case Key::on_poweroff: return action(domain_.on_poweroff);
        case Key::on_reboot: return action(domain_.on_reboot);
        case Key::on_crash: return action(domain_.on_crash);
        case Key::type: return string == "pv"sv ? ConfigErrc::none : ConfigErrc::bad_value;
        default: return ConfigErrc::expected_number;
        }
    }

    ConfigErrc apply_disks(const Value& value) {
        for (std::size_t index = 0; index < value.item_count; ++index) {
            line_ = value.item_lines[index];  // an error is the item's, whatever line the list ends on
            BundleDisk& disk = domain_.disks[index];
            for (const char c : value.items[index])
                if (c == '\\') {
                    detail_ = "a disk spec holds no escape"sv;
                    return ConfigErrc::bad_disk;
                }
            if (const std::string_view why = parse_disk_spec(value.items[index], disk); !why.empty()) {
                detail_ = why;
                return ConfigErrc::bad_disk;
            }
            if (disk.backend.empty()) {
                detail_ = "no backend= (the domain of the bundle that serves it)"sv;
                return ConfigErrc::bad_disk;
            }
            for (std::size_t earlier = 0; earlier < index; ++earlier)
                if (domain_.disks[earlier].device_id == disk.device_id) {
                    detail_ = "two disks with one vdev"sv;
                    return ConfigErrc::bad_disk;
                }
        }
        domain_.disk_count = value.item_count;
        return ConfigErrc::none;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    std::uint32_t line_ = 1;
    std::string_view detail_;
    BundleDomain domain_{};
    std::uint32_t seen_ = 0;  // bit per Key
};

}  // namespace

ConfigError parse_domain_config(std::string_view text, BundleDomain& domain) {
    ConfigParser parser;
    return parser.parse(text, domain);
}

std::string_view describe(ConfigErrc error) {
    switch (error) {
    case ConfigErrc::none: return "no error"sv;
    case ConfigErrc::syntax: return "syntax error: expected `key = value`, then `;`, a `#` comment or the end of the line"sv;
    case ConfigErrc::unknown_key:
        return "unknown key (known: name, kernel, ramdisk, cmdline, memory, vcpus, on_poweroff, on_reboot, "
               "on_crash, type, privileged, disk)"sv;
    case ConfigErrc::duplicate_key: return "key given twice"sv;
    case ConfigErrc::unterminated_string: return "string without its closing quote on the same line"sv;
    case ConfigErrc::bad_escape:
        return "unsupported escape in a string (known: \\\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v)"sv;
    case ConfigErrc::expected_string: return "this key takes a quoted string"sv;
    case ConfigErrc::expected_number: return "this key takes a number (decimal, or hexadecimal with 0x)"sv;
    case ConfigErrc::expected_list: return "this key takes a list of at most 8 quoted strings: [ 'a', 'b' ]"sv;
    case ConfigErrc::out_of_range: return "number out of range (memory: 1 to 1048576 MiB, vcpus: 1 to 32, privileged: 0 or 1)"sv;
    case ConfigErrc::bad_value:
        return "value not taken by this key (on_poweroff, on_reboot, on_crash: \"destroy\", \"restart\", "
               "\"preserve\"; type: \"pv\")"sv;
    case ConfigErrc::bad_name: return "name must be 1 to 64 characters of A-Z a-z 0-9 _ - ."sv;
    case ConfigErrc::bad_path: return "a file path must be non-empty and without escapes"sv;
    case ConfigErrc::missing_name: return "no `name`"sv;
    case ConfigErrc::missing_kernel: return "no `kernel`"sv;
    case ConfigErrc::bad_disk: return "disk refused"sv;
    }
    return "unknown configuration error"sv;
}

// ---- the bundle -----------------------------------------------------------------------------------

namespace {

constexpr std::string_view domains_dir = "domains/"sv;

// The n of "<n>.cfg", n decimal without leading zeros; nullopt for any other name. A number too
// large for a domain gives max_bundle_domains.
std::optional<std::size_t> domain_number(std::string_view file) {
    constexpr std::string_view suffix = ".cfg"sv;
    if (file.size() <= suffix.size() ||
        std::string_view{file.data() + file.size() - suffix.size(), suffix.size()} != suffix)
        return std::nullopt;
    file.remove_suffix(suffix.size());
    if (file.size() > 1 && file[0] == '0')
        return std::nullopt;
    std::size_t n = 0;
    for (const char c : file) {
        if (!is_digit(c))
            return std::nullopt;
        n = n < max_bundle_domains ? n * 10 + static_cast<std::size_t>(c - '0') : max_bundle_domains;
    }
    return n < max_bundle_domains ? n : max_bundle_domains;
}

// The one regular file whose bundle_path is `path`, in an archive already walked without error.
BundleErrc find_file(std::span<const std::byte> archive, std::string_view path, std::span<const std::byte>& data) {
    path = bundle_path(path);
    ArchiveReader reader{archive};
    bool found = false;
    while (const auto entry = reader.next()) {
        if (!entry->is_regular_file() || bundle_path(entry->name) != path)
            continue;
        if (found)
            return BundleErrc::duplicate_file;
        found = true;
        data = entry->data;
    }
    return found ? BundleErrc::none : BundleErrc::missing_file;
}

// Walks the whole archive once: checks it is well formed, and finds domains/<n>.cfg.
BundleError find_configs(std::span<const std::byte> archive, Bundle& bundle,
                         std::array<std::span<const std::byte>, max_bundle_domains>& configs, std::size_t& count) {
    std::array<bool, max_bundle_domains> present{};
    ArchiveReader reader{archive};
    while (const auto entry = reader.next()) {
        const std::string_view path = bundle_path(entry->name);
        if (!entry->is_regular_file() || !has_prefix(path, domains_dir))
            continue;
        const auto n = domain_number({path.data() + domains_dir.size(), path.size() - domains_dir.size()});
        if (!n)
            return {.code = BundleErrc::stray_domain_file, .file = entry->name};
        if (*n == max_bundle_domains)
            return {.code = BundleErrc::too_many_domains, .file = entry->name};
        if (present[*n])
            return {.code = BundleErrc::duplicate_file, .domain = *n, .file = entry->name};
        present[*n] = true;
        configs[*n] = entry->data;
        bundle.domains[*n].config_path = entry->name;
    }
    if (reader.error() != ArchiveError::none)
        return {.code = BundleErrc::bad_archive, .archive = reader.error(), .archive_offset = reader.offset()};
    count = 0;
    while (count < max_bundle_domains && present[count])
        ++count;
    if (count == 0)
        return {.code = BundleErrc::no_domains};
    for (std::size_t n = count; n < max_bundle_domains; ++n)
        if (present[n])
            return {.code = BundleErrc::missing_domain, .domain = count};
    return {};
}

BundleError read_domain(std::span<const std::byte> archive, std::span<const std::byte> config_text, std::size_t n,
                        Bundle& bundle) {
    BundledDomain& domain = bundle.domains[n];
    const std::string_view text{reinterpret_cast<const char*>(config_text.data()), config_text.size()};
    if (const ConfigError error = parse_domain_config(text, domain.config); error.code != ConfigErrc::none)
        return {.code = BundleErrc::bad_config, .domain = n, .file = domain.config_path, .config = error};
    for (std::size_t earlier = 0; earlier < n; ++earlier)
        if (bundle.domains[earlier].config.name == domain.config.name)
            return {.code = BundleErrc::duplicate_name, .domain = n, .file = domain.config_path};
    if (const BundleErrc error = find_file(archive, domain.config.kernel, domain.kernel); error != BundleErrc::none)
        return {.code = error, .domain = n, .file = domain.config.kernel};
    domain.ramdisk = {};
    if (!domain.config.ramdisk.empty())
        if (const BundleErrc error = find_file(archive, domain.config.ramdisk, domain.ramdisk); error != BundleErrc::none)
            return {.code = error, .domain = n, .file = domain.config.ramdisk};
    return {};
}

// Each disk's backend_domain: the other domain its `backend` names.
BundleError find_disk_backends(std::span<BundledDomain> domains) {
    for (std::size_t n = 0; n < domains.size(); ++n) {
        for (std::size_t index = 0; index < domains[n].config.disk_count; ++index) {
            BundleDisk& disk = domains[n].config.disks[index];
            std::size_t backend = 0;
            while (backend < domains.size() && domains[backend].config.name != disk.backend)
                ++backend;
            if (backend == domains.size() || backend == n)
                return {.code = BundleErrc::bad_disk_backend, .domain = n, .file = domains[n].config_path};
            disk.backend_domain = backend;
        }
    }
    return {};
}

}  // namespace

BundleError read_bundle(std::span<const std::byte> archive, Bundle& bundle) {
    bundle.domain_count = 0;
    std::array<std::span<const std::byte>, max_bundle_domains> configs{};
    std::size_t count = 0;
    if (const BundleError error = find_configs(archive, bundle, configs, count); error.code != BundleErrc::none)
        return error;
    for (std::size_t n = 0; n < count; ++n)
        if (const BundleError error = read_domain(archive, configs[n], n, bundle); error.code != BundleErrc::none)
            return error;
    if (const BundleError error = find_disk_backends({bundle.domains.data(), count}); error.code != BundleErrc::none)
        return error;
    bundle.domain_count = count;
    return {};
}

std::string_view describe(BundleErrc error) {
    switch (error) {
    case BundleErrc::none: return "no error"sv;
    case BundleErrc::bad_archive: return "malformed archive"sv;
    case BundleErrc::no_domains: return "no domains/0.cfg: the bundle holds no domain"sv;
    case BundleErrc::stray_domain_file: return "a file under domains/ is not named <n>.cfg"sv;
    case BundleErrc::too_many_domains: return "more domains than a bundle holds (64: domains/0.cfg to domains/63.cfg)"sv;
    case BundleErrc::missing_domain: return "a domain's configuration is missing while a later one exists"sv;
    case BundleErrc::duplicate_file: return "two files of the same name in the archive"sv;
    case BundleErrc::bad_config: return "configuration refused"sv;
    case BundleErrc::missing_file: return "no regular file of that name in the archive"sv;
    case BundleErrc::duplicate_name: return "a domain has the name of an earlier one"sv;
    case BundleErrc::bad_disk_backend:
        return "a disk's backend= names no other domain of the bundle"sv;
    }
    return "unknown bundle error"sv;
}

}  // namespace hv::builder

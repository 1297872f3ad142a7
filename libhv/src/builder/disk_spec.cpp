// xl's diskspec (xl-disk-configuration(5)), the part of it a bundle takes. Views into the spec
// are kept, so nothing is copied; the spec is read a character at a time (no string_view find,
// which a freestanding image lacks).
#include <hv/boot_bundle.hpp>

namespace hv::builder {
using namespace std::string_view_literals;
namespace {

enum Parameter : std::size_t { target, format, vdev, access, devtype, backend, backendtype, parameter_count };
constexpr std::string_view parameter_names[] = {"target"sv, "format"sv, "vdev"sv, "access"sv,
                                                "devtype"sv, "backend"sv, "backendtype"sv};
static_assert(std::size(parameter_names) == parameter_count);
constexpr std::size_t positional_count = access + 1;  // target, format, vdev, access

// xl's flags: bare words that are no positional parameter.
constexpr std::string_view xl_flags[] = {"cdrom"sv, "discard"sv, "no-discard"sv, "direct-io-safe"sv,
                                         "trusted"sv, "untrusted"sv, "colo"sv};

// Views cut by hand: string_view's substr may throw, which a freestanding image cannot.
std::string_view head(std::string_view text, std::size_t count) { return {text.data(), count}; }
std::string_view tail(std::string_view text, std::size_t from) { return {text.data() + from, text.size() - from}; }
bool starts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && head(text, prefix.size()) == prefix;
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

// The index of the first `c` in text, or text.size().
std::size_t index_of(std::string_view text, char c) {
    std::size_t at = 0;
    while (at < text.size() && text[at] != c)
        ++at;
    return at;
}

// Xen's virtual-device number for "xvd<letter>[<partition>]" (docs/misc/vbd-interface): disks a
// to p in the 202 major, 16 minors each; later disks in the extended form, 256 minors each.
std::optional<std::uint32_t> xvd_device_id(std::string_view name) {
    constexpr std::string_view prefix = "xvd"sv;
    if (name.size() < prefix.size() + 1 || !starts_with(name, prefix))
        return std::nullopt;
    const char letter = name[prefix.size()];
    if (letter < 'a' || letter > 'z')
        return std::nullopt;
    const auto disk = static_cast<std::uint32_t>(letter - 'a');
    std::uint32_t partition = 0;
    const std::string_view digits = tail(name, prefix.size() + 1);
    if (digits.size() > 2 || (!digits.empty() && digits[0] == '0'))
        return std::nullopt;
    for (const char c : digits) {
        if (c < '0' || c > '9')
            return std::nullopt;
        partition = partition * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (partition > 15)
        return std::nullopt;
    return disk < 16 ? (202u << 8) | (disk << 4) | partition : (1u << 28) | (disk << 8) | partition;
}

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

}  // namespace

std::string_view parse_disk_spec(std::string_view spec, BundleDisk& disk) {
    std::array<std::optional<std::string_view>, parameter_count> given{};
    std::size_t next_positional = 0;
    while (!spec.empty()) {
        const std::string_view rest = spec;
        const std::size_t comma = index_of(spec, ',');
        const std::string_view part = trimmed(head(spec, comma));
        spec = comma < spec.size() ? tail(spec, comma + 1) : std::string_view{};
        const std::size_t equals = index_of(part, '=');
        if (equals == part.size()) {
            for (const std::string_view flag : xl_flags)
                if (part == flag)
                    return "xl's flags (cdrom, discard, direct-io-safe...) are not taken"sv;
            while (next_positional < positional_count && given[next_positional])
                ++next_positional;
            if (next_positional == positional_count)
                return "more positional parameters than target, format, vdev and access"sv;
            given[next_positional++] = part;
            continue;
        }
        const std::string_view key = trimmed(head(part, equals));
        std::size_t parameter = 0;
        while (parameter < parameter_count && parameter_names[parameter] != key)
            ++parameter;
        if (parameter == parameter_count)
            return "unknown key (taken: target, format, vdev, access, devtype, backend, backendtype)"sv;
        if (given[parameter])
            return "a parameter given twice"sv;
        if (parameter == target) {  // the rest of the spec, commas and all: the first '=' is this one
            given[target] = trimmed(tail(rest, index_of(rest, '=') + 1));
            break;
        }
        given[parameter] = trimmed(tail(part, equals + 1));
    }

    BundleDisk parsed;
    const auto value = [&](Parameter parameter) { return given[parameter].value_or(std::string_view{}); };
    if (value(vdev).empty())
        return "no vdev"sv;
    const auto id = xvd_device_id(value(vdev));
    if (!id)
        return "vdev must be xvd, a letter a-z and an optional partition 1-15 (xvda, xvdb1)"sv;
    parsed.vdev = value(vdev);
    parsed.device_id = *id;
    if (value(target).empty())
        return "no target (what the backend serves)"sv;
    for (const char c : value(target))
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\')
            return "a target holds no control character or escape"sv;
    for (const std::string_view prefix : {"phy:"sv, "file:"sv, "raw:"sv, "tap:"sv, "tap2:"sv, "aio:"sv, "qcow:"sv,
                                          "qcow2:"sv, "vhd:"sv})
        if (starts_with(value(target), prefix))
            return "xl's deprecated `prefix:` targets are not taken: give format= and backendtype="sv;
    parsed.target = value(target);
    if (!value(format).empty() && value(format) != "raw"sv)
        return "format must be raw"sv;
    if (value(access).empty() || value(access) == "rw"sv || value(access) == "w"sv)
        parsed.writable = true;
    else if (value(access) == "r"sv || value(access) == "ro"sv)
        parsed.writable = false;
    else
        return "access must be rw, w, ro or r"sv;
    if (!value(devtype).empty() && value(devtype) != "disk"sv)
        return "devtype must be disk"sv;
    if (!value(backendtype).empty() && value(backendtype) != "phy"sv)
        return "backendtype must be phy"sv;
    if (given[backend] && (value(backend).empty() || value(backend).size() > max_domain_name))
        return "backend must name a domain"sv;
    for (const char c : value(backend))
        if (!is_name_char(c))
            return "backend must name a domain"sv;
    parsed.backend = value(backend);
    disk = parsed;
    return {};
}

}  // namespace hv::builder

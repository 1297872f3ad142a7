// Reading configuration files given on the command line, and writing what goes into a bundle:
// each domain's configuration (regenerated, naming files by archive path) and the cpio archive.
#include <cstdio>
#include <cstring>

#include "bundle_tool.hpp"

namespace pvkit_bundle {
namespace {

namespace builder = hv::builder;

// A string in double quotes, with the escapes xl and parse_domain_config decode.
std::string quoted(const std::string& text, const std::string& what) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\a': out += "\\a"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\v': out += "\\v"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                throw Refusal(what + ": holds a control character a configuration string cannot hold");
            out += c;
        }
    }
    return out + "\"";
}

std::filesystem::path relative_to(const std::filesystem::path& config, std::string_view path) {
    const std::filesystem::path written{std::string(path)};
    return written.is_absolute() ? written : config.parent_path() / written;
}

}  // namespace

DomainSpec read_config(const std::filesystem::path& path) {
    const Bytes bytes = read_file(path);
    const std::string_view text{reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    builder::BundleDomain parsed;
    if (const auto error = builder::parse_domain_config(text, parsed); error.code != builder::ConfigErrc::none) {
        const std::string where = path.string() + (error.line != 0 ? ":" + std::to_string(error.line) : "");
        throw Refusal(where + ": " + std::string(builder::describe(error.code)) +
                      (error.detail.empty() ? "" : ": " + std::string(error.detail)));
    }
    DomainSpec domain;
    domain.name = parsed.name;
    domain.kernel = relative_to(path, parsed.kernel);
    if (!parsed.ramdisk.empty())
        domain.ramdisk = relative_to(path, parsed.ramdisk);
    domain.cmdline.resize(parsed.cmdline.size());
    parsed.cmdline.decode(domain.cmdline);
    domain.memory_mib = parsed.memory_mib;
    domain.vcpus = parsed.vcpus;
    domain.on_poweroff = parsed.on_poweroff;
    domain.on_reboot = parsed.on_reboot;
    domain.on_crash = parsed.on_crash;
    domain.privileged = parsed.privileged;
    for (const builder::BundleDisk& disk : parsed.disk_list())
        domain.disks.push_back(canonical_disk_spec(disk));
    return domain;
}

std::string canonical_disk_spec(const builder::BundleDisk& disk) {
    std::string spec = "vdev=" + std::string(disk.vdev) + ", access=" + (disk.writable ? "rw" : "ro");
    if (!disk.backend.empty())
        spec += ", backend=" + std::string(disk.backend);
    return spec + ", target=" + std::string(disk.target);  // last: a named target takes the rest
}

std::string config_text(const DomainSpec& domain, const std::string& kernel_path, const std::string& ramdisk_path) {
    const auto action = [](builder::DomainAction a) { return "\"" + std::string(builder::describe(a)) + "\""; };
    std::string text = "# written by pvkit-bundle\n";
    text += "name = " + quoted(domain.name, "name") + "\n";
    text += "kernel = " + quoted(kernel_path, kernel_path) + "\n";
    if (!ramdisk_path.empty())
        text += "ramdisk = " + quoted(ramdisk_path, ramdisk_path) + "\n";
    if (!domain.cmdline.empty())
        text += "cmdline = " + quoted(domain.cmdline, domain.kernel.string() + ": the command line") + "\n";
    text += "memory = " + std::to_string(domain.memory_mib) + "\n";
    text += "vcpus = " + std::to_string(domain.vcpus) + "\n";
    text += "on_poweroff = " + action(domain.on_poweroff) + "\n";
    text += "on_reboot = " + action(domain.on_reboot) + "\n";
    text += "on_crash = " + action(domain.on_crash) + "\n";
    if (domain.privileged)
        text += "privileged = 1\n";
    if (!domain.disks.empty()) {
        text += "disk = [";
        for (const std::string& spec : domain.disks) {
            // A disk spec takes no escape: quoted with whichever quote it does not hold.
            const char quote = spec.find('"') == std::string::npos ? '"' : '\'';
            if (spec.find(quote) != std::string::npos)
                throw Refusal(domain.kernel.string() + ": disk '" + spec + "' holds both quotes, which a disk spec cannot");
            text += std::string(&spec == &domain.disks.front() ? " " : ", ") + quote + spec + quote;
        }
        text += " ]\n";
    }
    return text;
}

void CpioWriter::add(const std::string& name, std::uint32_t mode, std::uint32_t links, const Bytes& data) {
    char header[111];  // 110 and snprintf's NUL
    std::snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                  mode == 0 ? 0u : next_ino_++, mode, 0u, 0u, links, 0u, static_cast<unsigned>(data.size()), 0u, 0u,
                  0u, 0u, static_cast<unsigned>(name.size() + 1), 0u);
    const auto append = [&](const void* from, std::size_t size) {
        const auto* bytes = static_cast<const std::byte*>(from);
        bytes_.insert(bytes_.end(), bytes, bytes + size);
    };
    const auto pad = [&](std::size_t alignment) { bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment); };
    append(header, 110);
    append(name.c_str(), name.size() + 1);
    pad(4);
    append(data.data(), data.size());
    pad(4);
}

void CpioWriter::add_directory(const std::string& name) { add(name, 040755, 2, {}); }

void CpioWriter::add_file(const std::string& name, const Bytes& data) {
    if (data.size() > 0xffffffffu)
        throw Refusal(name + ": larger than a cpio newc entry holds (4 GiB)");
    add(name, 0100644, 1, data);
}

Bytes CpioWriter::finish() {
    add("TRAILER!!!", 0, 1, {});
    bytes_.resize((bytes_.size() + 511) / 512 * 512);
    return std::move(bytes_);
}

}  // namespace pvkit_bundle

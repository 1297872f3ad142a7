// pvkit-bundle's command line: `check` one kernel, `create` a boot bundle. See usage below.
// Exit status: 0 done, 1 refused (one line on stderr, starting with the file concerned), 2 a
// command line this tool does not understand.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "bundle_tool.hpp"

namespace pvkit_bundle {
namespace {

namespace builder = hv::builder;

constexpr const char* usage = R"(usage:
  pvkit-bundle check KERNEL [--mem MIB] [--ramdisk FILE] [--cmdline TEXT] [--privileged]
  pvkit-bundle create OUT.cpio DOMAIN...
  pvkit-bundle --help

check: reads KERNEL as the hypervisor will (its Xen ELF notes), plans a domain of MIB MiB
  (default 16) with that ramdisk and command line, and prints the notes, the entry and the
  start-of-day layout. A refusal is one line on stderr starting with the file name: a missing or
  unreadable file, not an ELF file, no Xen notes, a feature the domain would lack, too little
  memory (with the least that would do). A KERNEL may be an ELF image or a Linux bzImage,
  whose vmlinux ELF (compressed with gzip, xz, lzma or zstd) is unwrapped and used instead.

create: checks every domain as `check` does, then writes OUT.cpio, a boot bundle with
  domains/<n>.cfg for each DOMAIN in the order given (n = 0, 1, ...), the kernels (as ELF
  images) and ramdisks under images/. Nothing is written if any domain is refused. A DOMAIN is either
    --config FILE.cfg
        an xl.cfg-style file (name, kernel, ramdisk, cmdline, memory, vcpus, on_poweroff,
        on_reboot, on_crash, type, privileged, disk); its kernel and ramdisk paths are taken relative to
        the file's directory. The bundle holds the configuration regenerated: comments dropped,
        paths replaced by archive paths.
  or
    KERNEL [--name NAME] [--mem MIB] [--vcpus N] [--ramdisk FILE] [--cmdline TEXT] [--privileged]
           [--disk SPEC]...
        a kernel and the options that follow it, up to the next KERNEL or --config. NAME defaults
        to the kernel's file name without its extension; names must differ. Each --disk is one
        entry of xl's `disk` list (xl-disk-configuration(5)), e.g.
        'vdev=xvda, backend=NAME, access=rw, target=ram:4M': a block device served by domain NAME
        of the bundle (backend= is required).

Options take their value as the next argument. Exit status: 0 done, 1 refused, 2 usage error.
)";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::uint64_t parse_number(const std::string& option, const std::string& text) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used, 10);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || text[0] == '-' || value == 0)
        throw UsageError(option + " takes a positive decimal number, not '" + text + "'");
    return value;
}

// The options a kernel takes (check takes all but --name and --vcpus).
struct KernelOptions {
    std::optional<std::string> name;
    DomainSpec spec;
    std::set<std::string> given;
};

bool is_kernel_option(const std::string& option) {
    static const std::set<std::string> options = {"--name",    "--mem",        "--vcpus", "--ramdisk",
                                                  "--cmdline", "--privileged", "--disk"};
    return options.count(option) != 0;
}

// Applies args[i] (an option of a kernel) and its value; returns false if args[i] is no such option.
bool take_kernel_option(const std::vector<std::string>& args, std::size_t& i, KernelOptions& kernel, bool with_name) {
    const std::string& option = args[i];
    if (!is_kernel_option(option) || (!with_name && (option == "--name" || option == "--vcpus" || option == "--disk")))
        return false;
    if (!kernel.given.insert(option).second && option != "--disk")
        throw UsageError(option + " given twice for " + kernel.spec.kernel.string());
    if (option == "--privileged") {
        kernel.spec.privileged = true;
        return true;
    }
    if (i + 1 == args.size())
        throw UsageError(option + " needs a value");
    const std::string& value = args[++i];
    if (option == "--name")
        kernel.name = value;
    else if (option == "--mem")
        kernel.spec.memory_mib = parse_number(option, value);
    else if (option == "--vcpus")
        kernel.spec.vcpus = static_cast<std::uint32_t>(std::min<std::uint64_t>(parse_number(option, value), ~0u));
    else if (option == "--ramdisk")
        kernel.spec.ramdisk = value;
    else if (option == "--disk") {
        hv::builder::BundleDisk disk;
        if (const std::string_view why = hv::builder::parse_disk_spec(value, disk); !why.empty())
            throw UsageError("--disk '" + value + "': " + std::string(why));
        kernel.spec.disks.push_back(canonical_disk_spec(disk));
    }
    else
        kernel.spec.cmdline = value;
    return true;
}

int check_command(const std::vector<std::string>& args) {
    KernelOptions options;
    bool have_kernel = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (take_kernel_option(args, i, options, false))
            continue;
        if (args[i].starts_with("-"))
            throw UsageError("check: unknown option " + args[i]);
        if (have_kernel)
            throw UsageError("check takes one KERNEL");
        options.spec.kernel = args[i];
        have_kernel = true;
    }
    if (!have_kernel)
        throw UsageError("check needs a KERNEL");
    const CheckedDomain checked = check_domain(options.spec);
    std::cout << describe_checked(options.spec, checked);
    return 0;
}

// The bundle's files: each host file under images/<file name>, made unique with a number when
// two different files share a name. A file is stored with the bytes that were checked (for a
// bzImage kernel, the ELF unwrapped from it), and the same bytes from the same file once.
class BundleImages {
public:
    std::string name_for(const std::filesystem::path& file, const Bytes& contents) {
        std::error_code ec;
        const std::filesystem::path key = std::filesystem::weakly_canonical(file, ec);
        const std::string id = ec ? file.string() : key.string();
        for (const Image& image : images_)
            if (image.id == id && image.contents == contents)
                return image.name;
        std::string name = "images/" + file.filename().string();
        for (unsigned n = 1; taken_.count(name) != 0; ++n)
            name = "images/" + std::to_string(n) + "-" + file.filename().string();
        taken_.insert(name);
        images_.push_back({id, name, contents});
        return name;
    }
    void add_to(CpioWriter& archive) const {
        for (const Image& image : images_)
            archive.add_file(image.name, image.contents);
    }

private:
    struct Image {
        std::string id;  // the file's canonical path
        std::string name;
        Bytes contents;
    };
    std::vector<Image> images_;
    std::set<std::string> taken_;
};

// Parses the configuration just generated, as the hypervisor will: a name that breaks the
// configuration's rules is refused here, in the configuration's words.
void check_generated(const std::string& text, const DomainSpec& domain) {
    builder::BundleDomain parsed;
    if (const auto error = builder::parse_domain_config(text, parsed); error.code != builder::ConfigErrc::none)
        throw Refusal(domain.kernel.string() + ": " + std::string(builder::describe(error.code)) +
                      (error.detail.empty() ? "" : ": " + std::string(error.detail)) +
                      (error.code == builder::ConfigErrc::bad_name ? " (name '" + domain.name + "'; give --name)" : ""));
}

int create_command(const std::vector<std::string>& args) {
    if (args.empty())
        throw UsageError("create needs OUT.cpio and at least one DOMAIN");
    const std::filesystem::path out = args[0];
    std::vector<DomainSpec> domains;
    std::optional<KernelOptions> current;  // the kernel whose options are being read
    const auto finish_kernel = [&] {
        if (!current)
            return;
        current->spec.name = current->name.value_or(current->spec.kernel.stem().string());
        domains.push_back(current->spec);
        current.reset();
    };
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (current && take_kernel_option(args, i, *current, true))
            continue;
        if (args[i] == "--config") {
            finish_kernel();
            if (i + 1 == args.size())
                throw UsageError("--config needs a FILE");
            domains.push_back(read_config(args[++i]));
            continue;
        }
        if (args[i].starts_with("-"))
            throw UsageError(!current && is_kernel_option(args[i])
                                 ? args[i] + " applies to the KERNEL before it, and there is none"
                                 : "create: unknown option " + args[i]);
        finish_kernel();
        current.emplace();
        current->spec.kernel = args[i];
    }
    finish_kernel();
    if (domains.empty())
        throw UsageError("create needs at least one DOMAIN");
    if (domains.size() > builder::max_bundle_domains)
        throw Refusal(out.string() + ": more than " + std::to_string(builder::max_bundle_domains) + " domains");

    BundleImages images;
    CpioWriter archive;
    archive.add_directory("domains");
    std::vector<std::pair<std::string, std::string>> configs;  // archive path, text
    std::map<std::string, std::size_t> names;
    std::string report;  // printed once the bundle is written
    for (std::size_t n = 0; n < domains.size(); ++n) {
        const DomainSpec& domain = domains[n];
        const CheckedDomain checked = check_domain(domain);
        const std::string kernel_path = images.name_for(domain.kernel, checked.kernel_bytes);
        const std::string ramdisk_path =
            domain.ramdisk.empty() ? "" : images.name_for(domain.ramdisk, checked.ramdisk_bytes);
        const std::string text = config_text(domain, kernel_path, ramdisk_path);
        check_generated(text, domain);
        if (const auto [earlier, fresh] = names.emplace(domain.name, n); !fresh)
            throw Refusal(domain.kernel.string() + ": domains " + std::to_string(earlier->second) + " and " +
                          std::to_string(n) + " are both named '" + domain.name + "' (give --name)");
        configs.push_back({"domains/" + std::to_string(n) + ".cfg", text});
        // The entry's file in the bundle, not a domain id: the hypervisor numbers domains from 1.
        report += "domains/" + std::to_string(n) + ".cfg: " + domain.name + ", " + std::to_string(domain.memory_mib) +
                  " MiB, kernel " + domain.kernel.string() + " as " + kernel_path +
                  (ramdisk_path.empty() ? "" : ", ramdisk " + domain.ramdisk.string() + " as " + ramdisk_path) + "\n";
    }
    for (const auto& [path, text] : configs)
        archive.add_file(path, Bytes(reinterpret_cast<const std::byte*>(text.data()),
                                     reinterpret_cast<const std::byte*>(text.data() + text.size())));
    archive.add_directory("images");
    images.add_to(archive);
    const Bytes bytes = archive.finish();

    // What the hypervisor will read: a bundle this reader refuses is a bug here, not a user's error,
    // but for a disk whose backend is not in the bundle, which only the whole bundle shows.
    static builder::Bundle readback;
    if (const auto error = builder::read_bundle(bytes, readback); error.code == builder::BundleErrc::bad_disk_backend)
        throw Refusal(domains[error.domain].name + ": " + std::string(builder::describe(error.code)));
    else if (error.code != builder::BundleErrc::none)
        throw std::logic_error("the bundle written does not read back: " + std::string(builder::describe(error.code)));

    const std::filesystem::path temporary = out.string() + ".tmp";
    {
        std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
        file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!file.flush())
            throw Refusal(out.string() + ": cannot write: " + std::strerror(errno));
    }
    std::error_code ec;
    std::filesystem::rename(temporary, out, ec);
    if (ec)
        throw Refusal(out.string() + ": cannot write: " + ec.message());
    std::cout << report << "wrote " << out.string() << ": " << domains.size() << " domain" << (domains.size() == 1 ? "" : "s")
              << ", " << bytes.size() << " bytes\n";
    return 0;
}

}  // namespace
}  // namespace pvkit_bundle

int main(int argc, char** argv) {
    using namespace pvkit_bundle;
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
            std::cout << usage;
            return args.empty() ? 2 : 0;
        }
        const std::vector<std::string> rest(args.begin() + 1, args.end());
        if (args[0] == "check")
            return check_command(rest);
        if (args[0] == "create")
            return create_command(rest);
        throw UsageError("unknown command '" + args[0] + "'");
    } catch (const Refusal& refusal) {
        std::cerr << refusal.what() << "\n";
        return 1;
    } catch (const UsageError& error) {
        std::cerr << "pvkit-bundle: " << error.what() << " (try: pvkit-bundle --help)\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "pvkit-bundle: internal error: " << error.what() << "\n";
        return 3;
    }
}

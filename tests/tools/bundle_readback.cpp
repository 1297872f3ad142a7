// Reads a boot bundle with hv::builder::read_bundle, the hypervisor's reader compiled for the host,
// and prints what it found, one line per domain, for test_bundle_tool.py to compare with what
// pvkit-bundle was asked to write. File data is given as its offset and size in the archive.
// Exit status 1, with the error on stderr, if the bundle is refused.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <hv/boot_bundle.hpp>

int main(int argc, char** argv) {
    using namespace hv::builder;
    if (argc != 2) {
        std::cerr << "usage: bundle_readback BUNDLE.cpio\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    const std::vector<char> chars{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const std::span<const std::byte> archive{reinterpret_cast<const std::byte*>(chars.data()), chars.size()};
    static Bundle bundle;
    if (const BundleError error = read_bundle(archive, bundle); error.code != BundleErrc::none) {
        std::cerr << argv[1] << ": " << describe(error.code) << " (domain " << error.domain << ", file '" << error.file
                  << "', archive: " << describe(error.archive) << " at " << error.archive_offset
                  << ", config: " << describe(error.config.code) << " on line " << error.config.line << ")\n";
        return 1;
    }
    const auto where = [&](std::span<const std::byte> data) {
        return std::to_string(data.empty() ? 0 : data.data() - archive.data()) + "+" + std::to_string(data.size());
    };
    for (const BundledDomain& domain : bundle.list()) {
        const BundleDomain& config = domain.config;
        std::string cmdline(config.cmdline.size(), '\0');
        config.cmdline.decode(cmdline);
        std::string disks = "-";  // vdev:id:access:backend-index:target,...
        for (const BundleDisk& disk : config.disk_list())
            disks = (disks == "-" ? "" : disks + ",") + std::string(disk.vdev) + ":" + std::to_string(disk.device_id) +
                    ":" + (disk.writable ? "rw" : "ro") + ":" + std::to_string(disk.backend_domain) + ":" +
                    std::string(disk.target);
        std::cout << "config=" << domain.config_path << " name=" << config.name << " kernel=" << config.kernel << "@"
                  << where(domain.kernel) << " ramdisk=" << config.ramdisk << "@" << where(domain.ramdisk)
                  << " memory=" << config.memory_mib << " vcpus=" << config.vcpus
                  << " on_poweroff=" << describe(config.on_poweroff) << " on_reboot=" << describe(config.on_reboot)
                  << " on_crash=" << describe(config.on_crash) << " privileged=" << config.privileged << " disks=" << disks
                  << " cmdline=" << cmdline << "\n";
    }
    return 0;
}

// pvkit-bundle: checks Xen PV kernels with the hypervisor's own image parser and domain planner
// (libhv's builder, compiled for the host), and writes boot bundles (docs/builder.md, "Boot
// bundle"). The parts: a domain as the host sees it (DomainSpec), its check (check.cpp), the
// unwrapping of bzImages (bzimage.cpp), the cpio and configuration writers (write.cpp), and the
// command line (main.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <hv/boot_bundle.hpp>
#include <hv/builder.hpp>
#include <hv/elf_image.hpp>

namespace pvkit_bundle {

using Bytes = std::vector<std::byte>;

// A refusal: one line for stderr that starts with the file concerned. Exit status 1.
struct Refusal : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads a whole file, or refuses with "PATH: cannot read: REASON".
Bytes read_file(const std::filesystem::path& path);

// A Linux bzImage's payload compressions, as Linux's build names them.
enum class Compression { gzip, xz, lzma, zstd, bzip2, lz4, lzo };
std::string_view compression_name(Compression compression);

// How the ELF given to parse_image was packed, when the file was a bzImage.
struct BzImagePayload {
    Compression compression;
    std::size_t compressed_bytes;
};

// The most a bzImage's payload may decompress to: a Linux vmlinux is tens of MiB.
constexpr std::size_t max_unwrapped_kernel_bytes = std::size_t{256} << 20;

// If `kernel` holds a bzImage (x86 boot protocol), replaces it by the vmlinux ELF its payload
// decompresses to and says how that was compressed; leaves any other file alone and returns
// nullopt. Refuses with "PATH: a bzImage ..." one it cannot unwrap: boot protocol before 2.08, a
// payload outside the file, a compression other than gzip, xz, lzma and zstd, a truncated or
// corrupt stream, more than max_unwrapped_kernel_bytes, or a payload that is not an ELF file.
std::optional<BzImagePayload> unwrap_bzimage(const std::filesystem::path& path, Bytes& kernel);

// One domain as given on the command line or by a configuration file, its paths on the host.
struct DomainSpec {
    std::string name;
    std::filesystem::path kernel;
    std::filesystem::path ramdisk;  // empty: none
    std::string cmdline;            // decoded
    std::uint64_t memory_mib = hv::builder::default_memory_mib;
    std::uint32_t vcpus = 1;
    hv::builder::DomainAction on_poweroff = hv::builder::DomainAction::destroy;
    hv::builder::DomainAction on_reboot = hv::builder::DomainAction::restart;
    hv::builder::DomainAction on_crash = hv::builder::DomainAction::destroy;
    bool privileged = false;
    std::vector<std::string> disks;  // xl diskspecs, each as canonical_disk_spec writes it
};

// A disk as a diskspec in keyword form: "vdev=xvda, access=rw, backend=NAME, target=TARGET".
std::string canonical_disk_spec(const hv::builder::BundleDisk& disk);

// A kernel that passed parse_image and plan(); `image` points into `kernel_bytes`, which is the
// file's contents or, for a bzImage, the ELF unwrapped from it: what the bundle stores.
struct CheckedDomain {
    Bytes kernel_bytes;
    std::optional<BzImagePayload> bzimage;
    Bytes ramdisk_bytes;
    hv::builder::ElfImage image;
    hv::builder::StartOfDay layout;
};

// Reads the kernel (and ramdisk), unwraps a bzImage, parses the image and plans the domain as the
// hypervisor will; refuses with "KERNEL: ..." (or "RAMDISK: cannot read: ...").
CheckedDomain check_domain(const DomainSpec& domain);
// What check prints: how a bzImage was unwrapped, the notes, the entry and the start-of-day layout.
std::string describe_checked(const DomainSpec& domain, const CheckedDomain& checked);

// Reads a configuration file into a DomainSpec; kernel and ramdisk paths are taken relative to
// the file's directory. Refuses with "FILE:LINE: ..." or "FILE: ...".
DomainSpec read_config(const std::filesystem::path& path);

// The configuration stored in the bundle for `domain`, naming its files by archive path.
// Refuses a command line with a character a configuration string cannot hold.
std::string config_text(const DomainSpec& domain, const std::string& kernel_path, const std::string& ramdisk_path);

// A cpio "newc" archive, as `cpio -o -H newc` writes one: entries in the order added, then the
// trailer, padded to a 512-byte block. Times and owners are 0, so equal inputs give equal bytes.
class CpioWriter {
public:
    void add_directory(const std::string& name);
    void add_file(const std::string& name, const Bytes& data);
    Bytes finish();

private:
    void add(const std::string& name, std::uint32_t mode, std::uint32_t links, const Bytes& data);
    Bytes bytes_;
    std::uint32_t next_ino_ = 1;
};

}  // namespace pvkit_bundle

// The boot bundle: the guest domains a hypervisor starts with, as one cpio archive (the QEMU
// initrd). It holds one xl.cfg-style configuration per domain, `domains/<n>.cfg` for n = 0, 1, ...
// in boot order, and the kernel and ramdisk files those configurations name by archive path.
//
// Three layers, each usable alone, none allocating or throwing, so the same code runs in the
// hypervisor and, compiled for the host, in `pvkit-bundle` (which writes bundles):
//   - ArchiveReader walks a cpio "newc" (070701) archive: entries, their names and data, every
//     size checked against the archive; a malformed archive gives an ArchiveError, never a crash.
//   - parse_domain_config reads one domain's configuration into a BundleDomain; an error gives a
//     ConfigError with the line it is on.
//   - read_bundle finds every domain's configuration, kernel and ramdisk in an archive.
// Everything returned points into the bytes given (names, strings, file data): nothing is copied.
// docs/builder.md, "Boot bundle", describes the layout and the configuration grammar.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hv::builder {

// ---- cpio "newc" archives ---------------------------------------------------------------------

enum class ArchiveError : std::uint8_t {
    none,
    truncated_header,  // the archive ends inside an entry's 110-byte header
    bad_magic,         // an entry does not start with "070701" (another cpio format, a compressed
                       // archive, or not an archive at all)
    bad_header_field,  // a header field is not 8 hexadecimal digits
    bad_name,          // a name size of 0, or a name that does not end with its NUL or holds another
    truncated_entry,   // an entry's name or data runs past the end of the archive
    missing_trailer,   // the archive ends without its "TRAILER!!!" entry
};
std::string_view describe(ArchiveError error);

struct ArchiveEntry {
    std::string_view name;             // as stored, without its NUL ("./a", "/a" and "a" differ here)
    std::uint32_t mode = 0;            // c_mode: the file type (S_IFMT bits) and permissions
    std::span<const std::byte> data;   // c_filesize bytes, 4-aligned from the archive's start
    std::uint64_t offset = 0;          // where the entry's header starts in the archive

    bool is_regular_file() const { return (mode & 0170000) == 0100000; }
};

// Reads the entries of a newc archive in order, up to the "TRAILER!!!" entry; bytes after the
// trailer (the padding cpio writes to a 512-byte block) are not looked at. Work is linear in the
// archive's size: every entry takes at least 112 bytes.
//
//     ArchiveReader reader{archive};
//     while (const auto entry = reader.next()) { ... }
//     if (reader.error() != ArchiveError::none) { ... reader.offset() ... }
class ArchiveReader {
public:
    explicit ArchiveReader(std::span<const std::byte> archive) : archive_{archive} {}

    // The next entry; nullopt at the trailer, or when the archive is malformed (then error() says
    // how and offset() where). Once it has returned nullopt it always does.
    [[nodiscard]] std::optional<ArchiveEntry> next();
    ArchiveError error() const { return error_; }
    // The offset of the entry next() reads next, or of the malformed one.
    std::uint64_t offset() const { return position_; }

private:
    std::span<const std::byte> archive_;
    std::uint64_t position_ = 0;
    ArchiveError error_ = ArchiveError::none;
    bool finished_ = false;
};

// A name as the bundle compares names: without leading "./" and "/" ("./domains/0.cfg" and
// "/domains/0.cfg" are "domains/0.cfg"). Nothing else is rewritten: "a//b" and "a/../b" stay.
std::string_view bundle_path(std::string_view name);

// ---- one domain's configuration ---------------------------------------------------------------

// What to do when the domain stops for a reason (xl's on_poweroff, on_reboot, on_crash), with
// the names xl uses. xl's other actions (rename-restart, coredump-*, soft-reset) are refused.
enum class DomainAction : std::uint8_t { destroy, restart, preserve };
std::string_view describe(DomainAction action);  // "destroy", "restart", "preserve"

// A quoted string as written between its quotes, escapes not yet decoded. The parser has checked
// the escapes, so decoding cannot fail: \" \' \\ \a \b \f \n \r \t \v, as xl decodes them.
class ConfigString {
public:
    constexpr ConfigString() = default;
    constexpr explicit ConfigString(std::string_view written) : written_{written} {}

    std::string_view written() const { return written_; }
    bool empty() const { return written_.empty(); }
    std::size_t size() const;  // decoded, in bytes
    // Writes the decoded bytes to `out`, as many as fit; returns size().
    std::size_t decode(std::span<char> out) const;
    bool operator==(std::string_view decoded) const;

private:
    std::string_view written_;
};

inline constexpr std::uint64_t default_memory_mib = 16;   // xl's default is 128; see docs
inline constexpr std::uint64_t max_memory_mib = 1 << 20;  // the parser's bound; the builder's is lower
inline constexpr std::uint32_t max_domain_vcpus = 32;     // XEN_LEGACY_MAX_VCPUS: shared_info's slots
inline constexpr std::size_t max_domain_name = 64;        // bytes
inline constexpr std::size_t max_domain_disks = 8;        // entries of `disk`

// One entry of `disk`: a virtual block device of the domain, served by a backend domain of the
// bundle over Xen's blkif protocol. The toolstack (the hypervisor) writes its frontend and backend
// directories in the xenstore as libxl does; docs/builder.md lists the keys.
struct BundleDisk {
    std::string_view vdev;          // "xvda", "xvdb3": the device as the guest names it
    std::uint32_t device_id = 0;    // Xen's number for vdev (virtual-device): 202 << 8 | disk << 4 | part
    std::string_view target;        // what the backend serves, handed to it as `params` (pvkit's
                                    // blkback: "ram:<size>")
    std::string_view backend;       // the backend domain's name (xl's default, domain 0, is no
                                    // backend here: the initial domain has no xenstore connection)
    bool writable = true;           // access: rw or w (the default), r or ro
    std::size_t backend_domain = 0; // the backend's index in the bundle, set by read_bundle
};

// Reads one xl diskspec (xl-disk-configuration(5)): comma-separated positional parameters
// (target, format, vdev, access, in that order, each skipped once given by name) and `key=value`
// pairs (target, format, vdev, access, devtype, backend, backendtype; a named target takes the rest
// of the spec, commas included). Taken: format raw, devtype disk, backendtype phy, vdev
// xvd<a-z>[<partition 1-15>]; xl's flags (cdrom, discard...) and the deprecated `prefix:` targets
// are refused. Empty on success, else why the spec is refused; on error `disk` is unchanged.
[[nodiscard]] std::string_view parse_disk_spec(std::string_view spec, BundleDisk& disk);

// One domain, as its configuration file describes it. Strings point into the file's text.
struct BundleDomain {
    std::string_view name;      // required: 1 to max_domain_name of [A-Za-z0-9_.-]
    std::string_view kernel;    // required: the kernel's archive path, as written (no escapes)
    std::string_view ramdisk;   // the ramdisk's archive path; empty when there is none
    ConfigString cmdline;       // the kernel command line; the builder takes at most 1023 bytes
    std::uint64_t memory_mib = default_memory_mib;  // `memory`, in MiB as xl counts it
    std::uint32_t vcpus = 1;
    DomainAction on_poweroff = DomainAction::destroy;  // xl's defaults
    DomainAction on_reboot = DomainAction::restart;
    DomainAction on_crash = DomainAction::destroy;
    bool privileged = false;    // not xl: built with control-domain rights (SIF_PRIVILEGED, dom0)
    std::array<BundleDisk, max_domain_disks> disks{};  // `disk`, in the order given
    std::size_t disk_count = 0;

    std::uint64_t memory_pages() const { return memory_mib * 256; }  // 4 KiB pages
    std::span<const BundleDisk> disk_list() const { return {disks.data(), disk_count}; }
};

enum class ConfigErrc : std::uint8_t {
    none,
    syntax,               // not `key = value`, a key not in xl's form [a-z][a-z0-9_]*, something
                          // after the value, a control character or NUL outside a string
    unknown_key,          // a key this parser does not take (xl warns and ignores; see docs)
    duplicate_key,        // a key given twice (xl takes the last one)
    unterminated_string,  // no closing quote before the end of the line
    bad_escape,           // a backslash before another character than those ConfigString decodes
    expected_string,      // a number where the key takes a quoted string
    expected_number,      // a string where the key takes a number, or a malformed number
    expected_list,        // not a list `[ 'item', ... ]` where the key takes one (disk), or a
                          // malformed list, or one with more items than the key takes
    out_of_range,         // memory not in 1..max_memory_mib, vcpus not in 1..32, privileged not 0 or 1
    bad_value,            // not one of the strings the key takes (on_*: destroy, restart,
                          // preserve; type: pv)
    bad_name,             // name empty, longer than max_domain_name, or not of [A-Za-z0-9_.-]
    bad_path,             // an empty kernel or ramdisk path, or one with an escape
    missing_name,         // no `name` (line 0: the whole file)
    missing_kernel,       // no `kernel` (line 0)
    bad_disk,             // a `disk` entry parse_disk_spec refuses (ConfigError::detail says why),
                          // one without backend=, or two entries with one vdev
};
std::string_view describe(ConfigErrc error);

struct ConfigError {
    ConfigErrc code = ConfigErrc::none;
    std::uint32_t line = 0;  // 1-based; 0 when the error concerns the whole file
    std::string_view detail = {};  // bad_disk: why (a static string)

    bool operator==(const ConfigError&) const = default;
};

// Reads one domain's configuration. On error `domain` is left unchanged.
[[nodiscard]] ConfigError parse_domain_config(std::string_view text, BundleDomain& domain);

// ---- the whole bundle -------------------------------------------------------------------------

inline constexpr std::size_t max_bundle_domains = 64;

enum class BundleErrc : std::uint8_t {
    none,
    bad_archive,        // the archive is malformed (`archive`, at `archive_offset`)
    no_domains,         // no domains/0.cfg
    stray_domain_file,  // a file under domains/ not named <n>.cfg, n decimal without leading zeros
    too_many_domains,   // domains/<n>.cfg with n >= max_bundle_domains
    missing_domain,     // domains/<domain>.cfg is missing while a later one exists
    duplicate_file,     // two regular files with the same bundle_path (`file`)
    bad_config,         // a configuration file is refused (`config`)
    missing_file,       // a kernel or ramdisk `file` named by a configuration is no regular file here
    duplicate_name,     // domain `domain` has the name of an earlier one
    bad_disk_backend,   // a disk of domain `domain` names no other domain of the bundle as its backend
};
std::string_view describe(BundleErrc error);

struct BundleError {
    BundleErrc code = BundleErrc::none;
    std::size_t domain = 0;           // the domain concerned (its n in domains/<n>.cfg)
    std::string_view file = {};       // the path concerned, pointing into the archive
    ArchiveError archive = ArchiveError::none;
    std::uint64_t archive_offset = 0;
    ConfigError config = {};
};

struct BundledDomain {
    BundleDomain config;
    std::string_view config_path;       // "domains/<n>.cfg", as stored in the archive
    std::span<const std::byte> kernel;  // the kernel file's bytes (not yet checked as an image)
    std::span<const std::byte> ramdisk; // empty when the domain has none
};

struct Bundle {
    std::array<BundledDomain, max_bundle_domains> domains{};
    std::size_t domain_count = 0;

    std::span<const BundledDomain> list() const { return {domains.data(), domain_count}; }
};

// Reads every domain of a bundle, in boot order. The kernels are not parsed here: that is
// parse_image's work when each domain is built. On error `bundle.domain_count` is 0 (the struct is
// large, so it is filled in place rather than copied out).
[[nodiscard]] BundleError read_bundle(std::span<const std::byte> archive, Bundle& bundle);

}  // namespace hv::builder

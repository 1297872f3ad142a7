// The boot bundle: cpio newc archives (good ones, every truncation, every malformed header), the
// xl.cfg-style domain configuration (every key, every error with its line), and whole bundles.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <hv/boot_bundle.hpp>

namespace {
using namespace std::string_view_literals;

using namespace hv::builder;
using Bytes = std::vector<std::byte>;

// ---- a newc archive writer, as cpio -H newc writes one --------------------------------------------

constexpr std::uint32_t regular = 0100644, directory = 040755, symlink = 0120777;

struct Entry {
    std::string name;
    std::string data;
    std::uint32_t mode = regular;
};

void append(Bytes& out, std::string_view text) {
    for (const char c : text)
        out.push_back(static_cast<std::byte>(c));
}
void pad4(Bytes& out) {
    while (out.size() % 4 != 0)
        out.push_back(std::byte{0});
}

void append_entry(Bytes& out, const Entry& entry, std::uint32_t ino) {
    char header[111];
    std::snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino,
                  entry.mode, 0u, 0u, 1u, 0u, static_cast<unsigned>(entry.data.size()), 0u, 0u, 0u, 0u,
                  static_cast<unsigned>(entry.name.size() + 1), 0u);
    append(out, {header, 110});
    append(out, entry.name);
    out.push_back(std::byte{0});
    pad4(out);
    append(out, entry.data);
    pad4(out);
}

Bytes archive_of(const std::vector<Entry>& entries, bool trailer = true) {
    Bytes out;
    std::uint32_t ino = 1;
    for (const Entry& entry : entries)
        append_entry(out, entry, ino++);
    if (trailer)
        append_entry(out, {"TRAILER!!!", "", 0}, 0);
    return out;
}

std::string text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Every entry up to the trailer, and the error that stopped the walk.
struct Walk {
    std::vector<ArchiveEntry> entries;
    ArchiveError error = ArchiveError::none;
    std::uint64_t offset = 0;
};
Walk walk(std::span<const std::byte> archive) {
    Walk result;
    ArchiveReader reader{archive};
    while (const auto entry = reader.next())
        result.entries.push_back(*entry);
    result.error = reader.error();
    result.offset = reader.offset();
    CHECK_FALSE(reader.next());  // it stays finished
    return result;
}

const std::vector<Entry> sample = {
    {"domains", "", directory},
    {"./domains/0.cfg", "name = \"a\"\n"},
    {"empty", ""},
    {"one", "1"},
    {"three", "333"},
    {"four", "4444"},
    {"link", "one", symlink},
};

TEST_CASE("builder: a newc archive's entries are read in order, with their names, modes and data", "[builder][bundle]") {
    const Bytes archive = archive_of(sample);
    const Walk result = walk(archive);
    REQUIRE(result.error == ArchiveError::none);
    REQUIRE(result.entries.size() == sample.size());
    for (std::size_t i = 0; i < sample.size(); ++i) {
        const ArchiveEntry& entry = result.entries[i];
        CHECK(entry.name == sample[i].name);
        CHECK(entry.mode == sample[i].mode);
        CHECK(text_of(entry.data) == sample[i].data);
        CHECK(entry.is_regular_file() == (sample[i].mode == regular));
        if (!entry.data.empty()) {
            // Inside the archive, 4-aligned from its start: what the hypervisor may rely on.
            CHECK(entry.data.data() >= archive.data());
            CHECK(entry.data.data() + entry.data.size() <= archive.data() + archive.size());
            CHECK((entry.data.data() - archive.data()) % 4 == 0);
        }
    }
    CHECK(result.entries[0].offset == 0);
    CHECK(result.entries[1].offset == 120);  // 110 + "domains\0" = 118, padded to 120
}

TEST_CASE("builder: lowercase hex digits are read, and bytes after the trailer are not looked at", "[builder][bundle]") {
    Bytes archive = archive_of({{"a", "xyz"}});
    for (std::size_t i = 6; i < 110; ++i)  // the size field is "00000003", the mode "000081A4"
        if (archive[i] == std::byte{'A'})
            archive[i] = std::byte{'a'};
    append(archive, "garbage after the trailer, as cpio's block padding would be");
    const Walk result = walk(archive);
    CHECK(result.error == ArchiveError::none);
    REQUIRE(result.entries.size() == 1);
    CHECK(result.entries[0].mode == regular);
    CHECK(text_of(result.entries[0].data) == "xyz");
}

TEST_CASE("builder: an archive with only its trailer is empty; one without is refused", "[builder][bundle][hostile]") {
    CHECK(walk(archive_of({})).entries.empty());
    CHECK(walk(archive_of({})).error == ArchiveError::none);
    CHECK(walk(Bytes{}).error == ArchiveError::missing_trailer);
    const Walk result = walk(archive_of({{"a", "data"}}, false));
    CHECK(result.entries.size() == 1);
    CHECK(result.error == ArchiveError::missing_trailer);
}

TEST_CASE("builder: every truncation of an archive is refused, saying where, but for the trailer's padding", "[builder][bundle][hostile]") {
    const Bytes full = archive_of(sample);
    // The offset of each entry's header.
    std::vector<std::uint64_t> headers;
    for (const ArchiveEntry& entry : walk(full).entries)
        headers.push_back(entry.offset);
    for (std::size_t size = 0; size < full.size(); ++size) {
        const Walk result = walk(std::span{full}.first(size));
        INFO("archive cut to " << size << " bytes");
        if (size >= full.size() - 3)  // only the trailer's padding is missing: nothing is lost
            CHECK(result.error == ArchiveError::none);
        else if (result.offset >= size)  // cut between entries, or in the padding after an entry
            CHECK(result.error == ArchiveError::missing_trailer);
        else if (result.offset + 110 > size)
            CHECK(result.error == ArchiveError::truncated_header);
        else
            CHECK(result.error == ArchiveError::truncated_entry);
        // Everything before the cut was read.
        CHECK(std::count_if(headers.begin(), headers.end(), [&](std::uint64_t h) { return h < result.offset; }) ==
              static_cast<long>(result.entries.size()));
    }
}

TEST_CASE("builder: a malformed header is refused, whichever entry has it", "[builder][bundle][hostile]") {
    Bytes archive = archive_of({{"first", "1"}, {"second", "22"}});
    REQUIRE(walk(archive).entries.at(1).offset == 120);  // 110 + "first\0" + "1", padded
    const std::size_t at = GENERATE(std::size_t{0}, std::size_t{120});
    INFO("entry at " << at);
    SECTION("other magics: old binary, odc, newc with CRC, gzip") {
        const char* magic = GENERATE("\xc7\x71\x00\x00\x00\x00", "070707", "070702", "\x1f\x8b\x08\x00\x00\x00");
        std::memcpy(archive.data() + at, magic, 6);
        const Walk result = walk(archive);
        CHECK(result.error == ArchiveError::bad_magic);
        CHECK(result.offset == at);
    }
    SECTION("a field that is not hexadecimal") {
        const std::size_t field = GENERATE(range(0, 13));
        const std::size_t digit = GENERATE(0, 7);
        const char bad = GENERATE('g', ' ', 'x', '\0');
        archive[at + 6 + field * 8 + digit] = static_cast<std::byte>(bad);
        CHECK(walk(archive).error == ArchiveError::bad_header_field);
    }
}

// Writes an 8-digit field of the header at `entry`.
void poke_field(Bytes& archive, std::size_t entry, std::size_t field, std::uint32_t value) {
    char digits[9];
    std::snprintf(digits, sizeof digits, "%08X", value);
    std::memcpy(archive.data() + entry + 6 + field * 8, digits, 8);
}
constexpr std::size_t filesize_field = 6, namesize_field = 11;

TEST_CASE("builder: names must hold exactly one NUL, at their end", "[builder][bundle][hostile]") {
    Bytes archive = archive_of({{"name", "data"}});
    SECTION("a name size of 0") { poke_field(archive, 0, namesize_field, 0); }
    SECTION("a name size that leaves out the NUL") { poke_field(archive, 0, namesize_field, 4); }
    SECTION("a NUL inside the name") { archive[112] = std::byte{0}; }
    CHECK(walk(archive).error == ArchiveError::bad_name);
}

TEST_CASE("builder: a name or data past the archive's end is refused, whatever the sizes", "[builder][bundle][hostile]") {
    Bytes archive = archive_of({{"name", "data"}});
    SECTION("name size past the end") { poke_field(archive, 0, namesize_field, static_cast<std::uint32_t>(archive.size())); }
    SECTION("name size of 2^32 - 1") { poke_field(archive, 0, namesize_field, 0xffffffff); }
    SECTION("file size past the end") { poke_field(archive, 0, filesize_field, static_cast<std::uint32_t>(archive.size())); }
    SECTION("file size of 2^32 - 1") { poke_field(archive, 0, filesize_field, 0xffffffff); }
    CHECK(walk(archive).error == ArchiveError::truncated_entry);
}

TEST_CASE("builder: bundle paths drop leading ./ and /, nothing else", "[builder][bundle]") {
    CHECK(bundle_path("a/b") == "a/b");
    CHECK(bundle_path("./a/b") == "a/b");
    CHECK(bundle_path("/a/b") == "a/b");
    CHECK(bundle_path(".//./a") == "a");
    CHECK(bundle_path("a/./b") == "a/./b");
    CHECK(bundle_path(".") == ".");
    CHECK(bundle_path("./") == "");
    CHECK(bundle_path("../a") == "../a");
}

// ---- configuration ------------------------------------------------------------------------------

BundleDomain parsed(std::string_view text) {
    BundleDomain domain;
    const ConfigError error = parse_domain_config(text, domain);
    INFO(std::string(describe(error.code)) << " on line " << error.line);
    REQUIRE(error.code == ConfigErrc::none);
    return domain;
}

// Parses a configuration that must be refused; the output must be left as it was.
ConfigError refusal(std::string_view text) {
    BundleDomain domain;
    domain.name = "untouched";
    domain.memory_mib = 7;
    const ConfigError error = parse_domain_config(text, domain);
    CHECK(domain.name == "untouched");
    CHECK(domain.memory_mib == 7);
    CHECK(domain.kernel.empty());
    return error;
}

std::string decoded(const ConfigString& string) {
    std::string out(string.size(), '?');
    CHECK(string.decode(out) == out.size());
    return out;
}

TEST_CASE("builder: a domain configuration with every key parses", "[builder][bundle][config]") {
    const BundleDomain domain = parsed(
        "# a guest\n"
        "\n"
        "name = \"hello-1.x_y\"\n"
        "kernel = 'images/hello.elf'   # the kernel\n"
        "ramdisk=\"images/initrd\"\r\n"
        "cmdline = \"console=hvc0 quiet\"\n"
        "  memory = 0x20 ; vcpus = 4;\n"
        "on_poweroff = \"preserve\"\n"
        "on_reboot = \"destroy\"\n"
        "on_crash = \"restart\"\n"
        "type = \"pv\"\n"
        "privileged = 1\n");
    CHECK(domain.name == "hello-1.x_y");
    CHECK(domain.kernel == "images/hello.elf");
    CHECK(domain.ramdisk == "images/initrd");
    CHECK(domain.cmdline == "console=hvc0 quiet");
    CHECK(domain.memory_mib == 32);
    CHECK(domain.memory_pages() == 32 * 256);
    CHECK(domain.vcpus == 4);
    CHECK(domain.on_poweroff == DomainAction::preserve);
    CHECK(domain.on_reboot == DomainAction::destroy);
    CHECK(domain.on_crash == DomainAction::restart);
    CHECK(domain.privileged);
}

TEST_CASE("builder: a minimal configuration takes the defaults", "[builder][bundle][config]") {
    const BundleDomain domain = parsed("name=\"a\"\nkernel=\"k\"");  // no final newline
    CHECK(domain.name == "a");
    CHECK(domain.kernel == "k");
    CHECK(domain.ramdisk.empty());
    CHECK(domain.cmdline.empty());
    CHECK(domain.memory_mib == default_memory_mib);
    CHECK(domain.vcpus == 1);
    CHECK(domain.on_poweroff == DomainAction::destroy);
    CHECK(domain.on_reboot == DomainAction::restart);
    CHECK(domain.on_crash == DomainAction::destroy);
    CHECK_FALSE(domain.privileged);
    CHECK(describe(DomainAction::preserve) == "preserve");
}

TEST_CASE("builder: strings decode xl's escapes, in either quotes", "[builder][bundle][config]") {
    const BundleDomain domain = parsed(R"(name = "a"; kernel = "k"
cmdline = "q=\"x y\" s=\'z\' b=\\ #not-a-comment \a\b\f\n\r\t\v end")");
    CHECK(decoded(domain.cmdline) == "q=\"x y\" s='z' b=\\ #not-a-comment \a\b\f\n\r\t\v end");
    CHECK(domain.cmdline == "q=\"x y\" s='z' b=\\ #not-a-comment \a\b\f\n\r\t\v end");
    CHECK_FALSE(domain.cmdline == "q=\"x y\"");
    CHECK(domain.cmdline.written().starts_with(R"(q=\"x y\")"));
    CHECK(parsed("name='a'\nkernel='k'\ncmdline='say \"hi\" it\\'s'").cmdline == "say \"hi\" it's");
    // decode() writes what fits and says how much there is.
    char small[4];
    CHECK(domain.cmdline.decode(small) == domain.cmdline.size());
    CHECK(std::string_view(small, 4) == "q=\"x");
}

TEST_CASE("builder: every configuration error names its line", "[builder][bundle][config][hostile]") {
    const std::string head = "# comment\nname = \"a\"\nkernel = \"k\"\n";  // the error is on line 4
    struct Case {
        std::string line;
        ConfigErrc error;
    };
    const Case cases[] = {
        {"memory 32", ConfigErrc::syntax},
        {"memory == 32", ConfigErrc::expected_number},
        {"= 32", ConfigErrc::syntax},
        {"Memory = 32", ConfigErrc::syntax},
        {"memory = ", ConfigErrc::syntax},
        {"memory = # none", ConfigErrc::syntax},
        {"memory = 32 vcpus = 1", ConfigErrc::syntax},
        {"cmdline = \"a\" \"b\"", ConfigErrc::syntax},
        {"cmdline = \"a\x01\"", ConfigErrc::syntax},
        {std::string("cmdline = \"a\0b\"", 15), ConfigErrc::syntax},
        {"\x01", ConfigErrc::syntax},
        {"memory += 32", ConfigErrc::syntax},
        {"extra = \"quiet\"", ConfigErrc::unknown_key},
        {"maxmem = 64", ConfigErrc::unknown_key},
        {"disk = [ 'phy:/dev/x,xvda,w' ]", ConfigErrc::bad_disk},
        {"disk = 'ram:1M,,xvda'", ConfigErrc::expected_list},
        {"disk = [ 'ram:1M,,xvda' 'ram:1M,,xvdb' ]", ConfigErrc::expected_list},
        {"disk = [ ram ]", ConfigErrc::expected_list},
        {"disk = [ 'a,,xvda', 'b,,xvdb', 'c,,xvdc', 'd,,xvdd', 'e,,xvde', 'f,,xvdf', 'g,,xvdg', 'h,,xvdh', 'i,,xvdi' ]",
         ConfigErrc::expected_list},
        {"disk = [ 'a,,xvda,backend=s', 'b,,xvda,backend=s' ]", ConfigErrc::bad_disk},
        {"disk = [ 'ram:1M,,xvda' ]", ConfigErrc::bad_disk},
        {"disk = [ 'a\\t,,xvda' ]", ConfigErrc::bad_disk},
        {"disk = [ 'open ]", ConfigErrc::unterminated_string},
        {"name = \"b\"", ConfigErrc::duplicate_key},
        {"cmdline = \"open", ConfigErrc::unterminated_string},
        {"cmdline = 'open\"", ConfigErrc::unterminated_string},
        {"cmdline = \"ends in a backslash\\", ConfigErrc::unterminated_string},
        {"cmdline = \"\\x41\"", ConfigErrc::bad_escape},
        {"cmdline = \"\\101\"", ConfigErrc::bad_escape},
        {"cmdline = \"\\q\"", ConfigErrc::bad_escape},
        {"cmdline = 5", ConfigErrc::expected_string},
        {"cmdline = quiet", ConfigErrc::expected_string},
        {"on_crash = destroy", ConfigErrc::expected_string},
        {"memory = \"32\"", ConfigErrc::expected_number},
        {"memory = 032", ConfigErrc::expected_number},
        {"memory = 32M", ConfigErrc::expected_number},
        {"memory = 0x", ConfigErrc::expected_number},
        {"memory = 0xg", ConfigErrc::expected_number},
        {"memory = -1", ConfigErrc::expected_number},
        {"memory = [ 1 ]", ConfigErrc::expected_number},
        {"memory = 0", ConfigErrc::out_of_range},
        {"memory = 1048577", ConfigErrc::out_of_range},
        {"memory = 99999999999999999999", ConfigErrc::out_of_range},
        {"memory = 0xffffffffffffffffff", ConfigErrc::out_of_range},
        {"vcpus = 0", ConfigErrc::out_of_range},
        {"vcpus = 33", ConfigErrc::out_of_range},
        {"privileged = 2", ConfigErrc::out_of_range},
        {"on_crash = \"coredump-destroy\"", ConfigErrc::bad_value},
        {"on_poweroff = \"Destroy\"", ConfigErrc::bad_value},
        {"on_reboot = \"rename-restart\"", ConfigErrc::bad_value},
        {"type = \"hvm\"", ConfigErrc::bad_value},
    };
    for (const Case& c : cases) {
        INFO("line 4: " << c.line);
        const ConfigError error = refusal(head + c.line + "\nvcpus = 1\n");
        CHECK(error.code == c.error);
        CHECK(error.line == 4);
        CHECK(error.detail.empty() == (c.error != ConfigErrc::bad_disk));
    }
}

TEST_CASE("builder: names and paths are checked", "[builder][bundle][config][hostile]") {
    const auto name_error = [](std::string name) { return refusal("kernel = \"k\"\nname = \"" + name + "\"\n"); };
    CHECK(name_error("") == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(name_error(std::string(65, 'n')) == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(parsed("kernel = \"k\"\nname = \"" + std::string(64, 'n') + "\"\n").name.size() == 64);
    CHECK(name_error("two words") == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(name_error("a/b") == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(name_error("tab\\t") == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(name_error("caf\xc3\xa9") == ConfigError{ConfigErrc::bad_name, 2});
    CHECK(refusal("name = \"a\"\nkernel = \"\"\n") == ConfigError{ConfigErrc::bad_path, 2});
    CHECK(refusal("name = \"a\"\nkernel = \"k\\\\x\"\n") == ConfigError{ConfigErrc::bad_path, 2});
    CHECK(refusal("name = \"a\"\nkernel = \"k\"\nramdisk = ''\n") == ConfigError{ConfigErrc::bad_path, 3});
}

TEST_CASE("builder: a configuration without a name or kernel is refused as a whole", "[builder][bundle][config][hostile]") {
    CHECK(refusal("kernel = \"k\"\n") == ConfigError{ConfigErrc::missing_name, 0});
    CHECK(refusal("name = \"a\"\n") == ConfigError{ConfigErrc::missing_kernel, 0});
    CHECK(refusal("") == ConfigError{ConfigErrc::missing_name, 0});
    CHECK(refusal("# only a comment\n\n") == ConfigError{ConfigErrc::missing_name, 0});
    // A key that failed does not count as given.
    CHECK(refusal("name = \"a\"\nkernel = 5\n") == ConfigError{ConfigErrc::expected_string, 2});
}

// ---- disks --------------------------------------------------------------------------------------

BundleDisk disk_of(std::string_view spec) {
    BundleDisk disk;
    const std::string_view why = parse_disk_spec(spec, disk);
    INFO(spec << ": " << why);
    CHECK(why.empty());
    return disk;
}

TEST_CASE("builder: xl's equivalent diskspec forms give the same disk", "[builder][bundle][disk]") {
    for (const std::string_view spec :
         {"ram:4M,,xvda"sv, "ram:4M,raw,xvda,rw"sv, "format=raw, vdev=xvda, access=rw, target=ram:4M"sv,
          " vdev = xvda ,ram:4M"sv, "ram:4M,vdev=xvda,access=w"sv}) {
        INFO(spec);
        const BundleDisk disk = disk_of(spec);
        CHECK(disk.vdev == "xvda");
        CHECK(disk.device_id == 51712);  // 202 << 8, as libxl numbers xvda
        CHECK(disk.target == "ram:4M");
        CHECK(disk.writable);
        CHECK(disk.backend.empty());
    }
    // A named target takes the rest of the spec, commas and all.
    const BundleDisk named = disk_of("vdev=xvdb3, backend=store-1, access=ro, target=ram:4M,with,commas");
    CHECK(named.target == "ram:4M,with,commas");
    CHECK(named.device_id == ((202u << 8) | (1u << 4) | 3u));
    CHECK(named.backend == "store-1");
    CHECK_FALSE(named.writable);
    CHECK_FALSE(disk_of("t,,xvdc,r").writable);
    // Disks after xvdp take the extended numbering.
    CHECK(disk_of("t,,xvdq").device_id == ((1u << 28) | (16u << 8)));
    CHECK(disk_of("t,,xvdz15").device_id == ((1u << 28) | (25u << 8) | 15u));
}

TEST_CASE("builder: a diskspec this parser cannot honour is refused, saying why", "[builder][bundle][disk][hostile]") {
    for (const std::string_view spec :
         {""sv, "ram:4M"sv, "ram:4M,,"sv, ",,xvda"sv, "ram:4M,,hda"sv, "ram:4M,,sda"sv, "ram:4M,,xvd"sv,
          "ram:4M,,xvdA"sv, "ram:4M,,xvda0"sv, "ram:4M,,xvda16"sv, "ram:4M,,xvda100"sv, "ram:4M,,xvda1x"sv,
          "ram:4M,qcow2,xvda"sv, "ram:4M,,xvda,rwx"sv, "ram:4M,,xvda,cdrom"sv, "ram:4M,,xvda,rw,extra"sv,
          "vdev=xvda,vdev=xvdb,target=t"sv, "t,,xvda,rw,vdev=xvdb"sv, "vdev=xvda,size=4,target=t"sv,
          "vdev=xvda,devtype=cdrom,target=t"sv, "vdev=xvda,backendtype=qdisk,target=t"sv,
          "vdev=xvda,backend=,target=t"sv, "vdev=xvda,backend=a/b,target=t"sv, "vdev=xvda,discard,target=t"sv,
          "phy:/dev/vg/x,xvda,w"sv, "file:/x.img,xvda,w"sv, "vdev=xvda,target=a\\x"sv, "vdev=xvda,target=a\x01"sv}) {
        INFO(spec);
        BundleDisk disk;
        disk.vdev = "unchanged";
        CHECK_FALSE(parse_disk_spec(spec, disk).empty());
        CHECK(disk.vdev == "unchanged");
    }
}

TEST_CASE("builder: a configuration's disk list may span lines, with comments", "[builder][bundle][disk][config]") {
    const BundleDomain domain = parsed(
        "name = \"a\"\n"
        "disk = [ 'ram:1M,,xvda,backend=store',   # the first\n"
        "\n"
        "         \"vdev=xvdb, access=ro, backend=store, target=ram:2M\",\n"
        "       ]; kernel = \"k\"\n"
        "memory = 8\n");
    REQUIRE(domain.disk_list().size() == 2);
    CHECK(domain.disks[0].target == "ram:1M");
    CHECK(domain.disks[1].vdev == "xvdb");
    CHECK(domain.disks[1].backend == "store");
    CHECK_FALSE(domain.disks[1].writable);
    CHECK(domain.memory_mib == 8);
    CHECK(parsed("name='a'\nkernel='k'\ndisk=[]").disk_list().empty());
    // The error is on the line where the list goes wrong.
    const ConfigError error = refusal("name='a'\nkernel='k'\ndisk = [ 'ram:1M,,xvda,backend=b',\n  'ram:1M,,hda,backend=b' ]\n");
    CHECK(error.code == ConfigErrc::bad_disk);
    CHECK(error.line == 4);
    CHECK(error.detail.starts_with("vdev must be xvd"));
    CHECK(refusal("name='a'\nkernel='k'\ndisk = [ 'ram:1M,,xvda',\n").code == ConfigErrc::expected_list);
    // The item's own line, even when the list ends further down.
    const ConfigError spread = refusal("name='a'\nkernel='k'\ndisk = [\n 'ram:1M,,hda,backend=b'\n ]\nmemory = 8\n");
    CHECK(spread.code == ConfigErrc::bad_disk);
    CHECK(spread.line == 4);
}

TEST_CASE("builder: every error has a description", "[builder][bundle]") {
    for (int e = 0; e <= static_cast<int>(ConfigErrc::bad_disk); ++e)
        CHECK_FALSE(describe(static_cast<ConfigErrc>(e)).starts_with("unknown configuration"));
    for (int e = 0; e <= static_cast<int>(ArchiveError::missing_trailer); ++e)
        CHECK_FALSE(describe(static_cast<ArchiveError>(e)).starts_with("unknown archive"));
    for (int e = 0; e <= static_cast<int>(BundleErrc::bad_disk_backend); ++e)
        CHECK_FALSE(describe(static_cast<BundleErrc>(e)).starts_with("unknown bundle"));
}

// ---- whole bundles ------------------------------------------------------------------------------

// Reads a bundle that must be refused; the domain count must be 0 afterwards. The archive is kept
// until the next call, for the error's `file` points into it.
BundleError bundle_refusal(Bytes archive) {
    static Bytes kept;
    static Bundle bundle;  // large: not on the stack
    kept = std::move(archive);
    bundle.domain_count = 5;
    const BundleError error = read_bundle(kept, bundle);
    CHECK(bundle.domain_count == 0);
    CHECK(error.code != BundleErrc::none);
    return error;
}

const std::string kernel_bytes = "\x7f" "ELF pretend kernel";
const std::string two_configs[] = {
    "name = \"first\"\nkernel = \"images/hello.elf\"\nramdisk = \"./images/initrd\"\nmemory = 8\n",
    "name = \"second\"\nkernel = \"/images/hello.elf\"\ncmdline = \"x\"\non_crash = \"preserve\"\n",
};

TEST_CASE("builder: a two-domain bundle gives each domain its configuration, kernel and ramdisk", "[builder][bundle]") {
    // Archive order is not boot order; names carry the prefixes find(1) and cpio give them.
    const Bytes archive = archive_of({
        {".", "", directory},
        {"./domains", "", directory},
        {"./domains/1.cfg", two_configs[1]},
        {"./images", "", directory},
        {"./images/hello.elf", kernel_bytes},
        {"./images/initrd", "ramdisk"},
        {"./domains/0.cfg", two_configs[0]},
        {"./notes.txt", "files no configuration names are ignored"},
    });
    static Bundle bundle;
    const BundleError error = read_bundle(archive, bundle);
    INFO(std::string(describe(error.code)) << ": " << std::string(error.file));
    REQUIRE(error.code == BundleErrc::none);
    REQUIRE(bundle.list().size() == 2);
    const BundledDomain& first = bundle.list()[0];
    CHECK(first.config.name == "first");
    CHECK(first.config_path == "./domains/0.cfg");
    CHECK(first.config.memory_mib == 8);
    CHECK(text_of(first.kernel) == kernel_bytes);
    CHECK(text_of(first.ramdisk) == "ramdisk");
    const BundledDomain& second = bundle.list()[1];
    CHECK(second.config.name == "second");
    CHECK(second.config.cmdline == "x");
    CHECK(second.config.on_crash == DomainAction::preserve);
    CHECK(second.kernel.data() == first.kernel.data());  // one file, two domains
    CHECK(second.ramdisk.empty());
    // Everything points into the archive.
    CHECK(first.config.name.data() > reinterpret_cast<const char*>(archive.data()));
    CHECK(first.config.name.data() < reinterpret_cast<const char*>(archive.data() + archive.size()));
}

TEST_CASE("builder: a bundle of max_bundle_domains domains is read", "[builder][bundle]") {
    std::vector<Entry> entries = {{"k", kernel_bytes}};
    for (std::size_t n = 0; n < max_bundle_domains; ++n)
        entries.push_back({"domains/" + std::to_string(n) + ".cfg", "name = \"d" + std::to_string(n) + "\"\nkernel = \"k\"\n"});
    static Bundle bundle;
    const Bytes archive = archive_of(entries);  // the bundle points into it
    REQUIRE(read_bundle(archive, bundle).code == BundleErrc::none);
    CHECK(bundle.domain_count == max_bundle_domains);
    CHECK(bundle.list().back().config.name == "d63");
    entries.push_back({"domains/64.cfg", "name = \"d64\"\nkernel = \"k\"\n"});
    const BundleError error = bundle_refusal(archive_of(entries));
    CHECK(error.code == BundleErrc::too_many_domains);
    CHECK(error.file == "domains/64.cfg");
}

TEST_CASE("builder: a bundle whose domains are not numbered 0, 1, ... is refused", "[builder][bundle][hostile]") {
    const Entry kernel{"images/hello.elf", kernel_bytes};
    const Entry config0{"domains/0.cfg", two_configs[0]}, config1{"domains/1.cfg", two_configs[1]};
    const Entry initrd{"images/initrd", "r"};
    CHECK(bundle_refusal(archive_of({kernel})).code == BundleErrc::no_domains);
    CHECK(bundle_refusal(archive_of({kernel, initrd, config1})).code == BundleErrc::no_domains);
    CHECK(bundle_refusal(archive_of({{"domains", "", directory}, {"domains/0.cfg", "", directory}})).code ==
          BundleErrc::no_domains);

    const BundleError gap = bundle_refusal(archive_of({kernel, initrd, config0, {"domains/2.cfg", two_configs[1]}}));
    CHECK(gap.code == BundleErrc::missing_domain);
    CHECK(gap.domain == 1);

    const std::string stray = GENERATE("domains/a.cfg", "domains/01.cfg", "domains/0.cfg.bak", "domains/.cfg",
                                       "domains/0.CFG", "domains/sub/0.cfg", "domains/-1.cfg");
    const BundleError error = bundle_refusal(archive_of({kernel, initrd, config0, {stray, "name = \"x\""}}));
    CHECK(error.code == BundleErrc::stray_domain_file);
    CHECK(error.file == stray);
    CHECK(bundle_refusal(archive_of({kernel, {"domains/99999999999999999999.cfg", ""}})).code ==
          BundleErrc::too_many_domains);
}

TEST_CASE("builder: a bundle naming a file it lacks, or holding one twice, is refused", "[builder][bundle][hostile]") {
    const Entry config0{"domains/0.cfg", two_configs[0]};
    const Entry kernel{"images/hello.elf", kernel_bytes}, initrd{"images/initrd", "r"};
    SECTION("no kernel") {
        const BundleError error = bundle_refusal(archive_of({config0, initrd}));
        CHECK(error.code == BundleErrc::missing_file);
        CHECK(error.file == "images/hello.elf");
        CHECK(error.domain == 0);
    }
    SECTION("no ramdisk") {
        const BundleError error = bundle_refusal(archive_of({config0, kernel}));
        CHECK(error.code == BundleErrc::missing_file);
        CHECK(error.file == "./images/initrd");
    }
    SECTION("a kernel that is a directory or a symbolic link") {
        const std::uint32_t mode = GENERATE(directory, symlink);
        const BundleError error = bundle_refusal(archive_of({config0, initrd, {"images/hello.elf", "x", mode}}));
        CHECK(error.code == BundleErrc::missing_file);
    }
    SECTION("a kernel stored twice under one bundle path") {
        const BundleError error = bundle_refusal(archive_of({config0, initrd, kernel, {"./images/hello.elf", "other"}}));
        CHECK(error.code == BundleErrc::duplicate_file);
        CHECK(error.file == "images/hello.elf");
    }
    SECTION("a configuration stored twice") {
        const BundleError error = bundle_refusal(archive_of({config0, initrd, kernel, {"/domains/0.cfg", two_configs[1]}}));
        CHECK(error.code == BundleErrc::duplicate_file);
        CHECK(error.file == "/domains/0.cfg");
    }
}

TEST_CASE("builder: a bundle with a bad configuration says which file and line", "[builder][bundle][hostile]") {
    const Bytes archive = archive_of({{"k", kernel_bytes},
                                      {"domains/0.cfg", "name = \"a\"\nkernel = \"k\"\n"},
                                      {"domains/1.cfg", "name = \"b\"\nkernel = \"k\"\n\nvcpus = 0\n"}});
    const BundleError error = bundle_refusal(archive);
    CHECK(error.code == BundleErrc::bad_config);
    CHECK(error.domain == 1);
    CHECK(error.file == "domains/1.cfg");
    CHECK(error.config == ConfigError{ConfigErrc::out_of_range, 4});
}

TEST_CASE("builder: two domains of one name are refused", "[builder][bundle][hostile]") {
    const Bytes archive = archive_of({{"k", kernel_bytes},
                                      {"domains/0.cfg", "name = \"same\"\nkernel = \"k\"\n"},
                                      {"domains/1.cfg", "name = \"other\"\nkernel = \"k\"\n"},
                                      {"domains/2.cfg", "kernel = \"k\"\nname = \"same\"\n"}});
    const BundleError error = bundle_refusal(archive);
    CHECK(error.code == BundleErrc::duplicate_name);
    CHECK(error.domain == 2);
}

TEST_CASE("builder: a disk's backend is another domain of the bundle, named", "[builder][bundle][disk]") {
    static Bundle bundle;
    const Bytes archive = archive_of({{"k", kernel_bytes},
                                      {"domains/0.cfg", "name = \"app\"\nkernel = \"k\"\ndisk = [ 't,,xvda,backend=control', 'vdev=xvdb,backend=store,target=t' ]\n"},
                                      {"domains/1.cfg", "name = \"control\"\nkernel = \"k\"\nprivileged = 1\n"},
                                      {"domains/2.cfg", "name = \"store\"\nkernel = \"k\"\n"}});
    REQUIRE(read_bundle(archive, bundle).code == BundleErrc::none);
    CHECK(bundle.domains[0].config.disks[0].backend_domain == 1);
    CHECK(bundle.domains[0].config.disks[1].backend_domain == 2);

    const auto refused = [](std::string disks) {
        return bundle_refusal(archive_of({{"k", kernel_bytes},
                                          {"domains/0.cfg", "name = \"store\"\nkernel = \"k\"\n"},
                                          {"domains/1.cfg", "name = \"app\"\nkernel = \"k\"\ndisk = [ " + disks + " ]\n"}}));
    };
    for (const std::string disks : {"'vdev=xvda,backend=Store,target=t'", "'vdev=xvda,backend=nobody,target=t'", "'vdev=xvda,backend=app,target=t'"}) {
        INFO(disks);
        const BundleError error = refused(disks);
        CHECK(error.code == BundleErrc::bad_disk_backend);
        CHECK(error.domain == 1);
        CHECK(error.file == "domains/1.cfg");
    }
}

TEST_CASE("builder: a malformed archive is refused before any configuration is read", "[builder][bundle][hostile]") {
    Bytes archive = archive_of({{"domains/0.cfg", "name = \"a\"\nkernel = \"k\"\n"}, {"k", kernel_bytes}});
    archive.erase(archive.end() - 124, archive.end());  // the trailer
    BundleError error = bundle_refusal(archive);
    CHECK(error.code == BundleErrc::bad_archive);
    CHECK(error.archive == ArchiveError::missing_trailer);
    CHECK(error.archive_offset == archive.size());
    archive[0] = std::byte{'1'};
    error = bundle_refusal(archive);
    CHECK(error.archive == ArchiveError::bad_magic);
    CHECK(error.archive_offset == 0);
}

}  // namespace

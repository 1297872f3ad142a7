// Reading a Xen PV kernel image: the ELF64 headers, the loadable segments and the "Xen" notes.
//
// Nothing in the image is trusted. Headers are copied out with memcpy into local structures (the
// image may sit at any alignment), and every offset, size and count is checked before it is used:
// a range [offset, offset + length) is accepted only when `offset <= size && length <= size -
// offset`, which cannot overflow. Counts are bounded before anything is walked (program headers
// by max_program_headers, section headers by the 16-bit e_shnum, notes by max_notes), so the
// work is linear in the image size whatever the image says.
//
// The order of the checks is the order of the errors a reader would want: is it an x86-64 ELF
// executable; are its header tables inside the file; are its loadable segments sane; which Xen
// notes does it carry; is it a kernel Xen would load (elf_xen_note_check); and does the layout
// derived from the notes hold together (elf_xen_addr_calc_check, plus the domain builders' checks
// of the hypercall page and the kernel's alignment). The result is built in a local ElfImage and
// copied out only on success, so a refused image leaves the caller's ElfImage as it was.
//
// What follows libelf, and where this parser is stricter, is listed in docs/builder.md
// ("Images and ELF notes").
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include <hv/elf_image.hpp>
#include <pvkit/abi.hpp>

namespace hv::builder {
using namespace std::string_view_literals;  // sized literals: no strlen in freestanding code
namespace {

namespace abi = pvkit::abi;

static_assert(std::endian::native == std::endian::little,
              "ELF headers are copied as they are: the host must be little-endian, like x86-64");

constexpr std::uint64_t page_size = 4096;

// The ELF64 structures, laid out as the ELF specification has them; filled by memcpy only.
struct FileHeader {
    std::uint8_t ident[16];
    std::uint16_t type;
    std::uint16_t machine;
    std::uint32_t version;
    std::uint64_t entry;
    std::uint64_t phoff;
    std::uint64_t shoff;
    std::uint32_t flags;
    std::uint16_t ehsize;
    std::uint16_t phentsize;
    std::uint16_t phnum;
    std::uint16_t shentsize;
    std::uint16_t shnum;
    std::uint16_t shstrndx;
};
struct ProgramHeader {
    std::uint32_t type;
    std::uint32_t flags;
    std::uint64_t offset;
    std::uint64_t vaddr;
    std::uint64_t paddr;
    std::uint64_t filesz;
    std::uint64_t memsz;
    std::uint64_t align;
};
struct SectionHeader {
    std::uint32_t name;
    std::uint32_t type;
    std::uint64_t flags;
    std::uint64_t addr;
    std::uint64_t offset;
    std::uint64_t size;
    std::uint32_t link;
    std::uint32_t info;
    std::uint64_t addralign;
    std::uint64_t entsize;
};
struct NoteHeader {
    std::uint32_t namesz;
    std::uint32_t descsz;
    std::uint32_t type;
};
static_assert(sizeof(FileHeader) == 64 && sizeof(ProgramHeader) == 56 && sizeof(SectionHeader) == 64 &&
              sizeof(NoteHeader) == 12);

constexpr std::uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};
constexpr std::uint8_t elfclass32 = 1, elfclass64 = 2;
constexpr std::uint8_t elfdata2lsb = 1, elfdata2msb = 2;
constexpr std::uint16_t et_exec = 2;
constexpr std::uint16_t em_x86_64 = 62;
constexpr std::uint32_t pt_load = 1, pt_note = 4;
constexpr std::uint32_t sht_note = 7;
constexpr std::uint32_t pf_x = 1, pf_w = 2, pf_r = 4;
constexpr std::uint16_t shn_loreserve = 0xff00;  // e_shnum at or above this is not a count

bool fits(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
    return offset <= size && length <= size - offset;
}

// Copies a T from bytes[offset, offset + sizeof(T)); the caller has checked the range.
template <class T>
T copy_out(std::span<const std::byte> bytes, std::uint64_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

constexpr std::uint64_t align4(std::uint64_t value) { return (value + 3) & ~std::uint64_t{3}; }

// ---- Xen notes --------------------------------------------------------------------------------

// A numeric note: 1, 2, 4 or 8 bytes, little-endian (elf_note_numeric's sizes; other sizes are
// refused here where libelf would read 0).
std::optional<std::uint64_t> numeric_value(std::span<const std::byte> desc) {
    if (desc.size() != 1 && desc.size() != 2 && desc.size() != 4 && desc.size() != 8)
        return std::nullopt;
    std::uint64_t value = 0;
    for (std::size_t i = desc.size(); i-- > 0;)
        value = (value << 8) | std::to_integer<std::uint64_t>(desc[i]);
    return value;
}

// A string note: its bytes up to the first NUL, or all of them when the descriptor has none, as
// Linux's FEATURES note (its NUL falls in the padding; libelf reads on to it). Empty: refused.
std::optional<std::string_view> string_value(std::span<const std::byte> desc) {
    if (desc.empty())
        return std::nullopt;
    const auto nul = std::find(desc.begin(), desc.end(), std::byte{0});
    return std::string_view{reinterpret_cast<const char*>(desc.data()),
                            static_cast<std::size_t>(nul - desc.begin())};
}

// The feature names libelf knows (elf_xen_feature_names); any other name is unknown.
struct FeatureName {
    std::string_view name;
    unsigned bit;
};
constexpr FeatureName known_features[] = {
    {"writable_page_tables", abi::XENFEAT_writable_page_tables},
    {"writable_descriptor_tables", abi::XENFEAT_writable_descriptor_tables},
    {"auto_translated_physmap", abi::XENFEAT_auto_translated_physmap},
    {"supervisor_mode_kernel", abi::XENFEAT_supervisor_mode_kernel},
    {"pae_pgdir_above_4gb", abi::XENFEAT_pae_pgdir_above_4gb},
    {"hvm_callback_vector", abi::XENFEAT_hvm_callback_vector},
    {"dom0", abi::XENFEAT_dom0},
};

// FEATURES: names separated by '|'; a leading '!' marks a feature the kernel requires, which also
// counts as supported. An unknown name is ignored, unless it is required: then the image is
// refused (elf_xen_parse_features). Empty names (from "a||b" or a trailing '|') are unknown.
ImageError parse_features(std::string_view list, XenNotes& notes) {
    while (!list.empty()) {
        const auto bar = std::find(list.begin(), list.end(), '|');
        std::string_view name{list.begin(), bar};
        list = bar == list.end() ? std::string_view{} : std::string_view{bar + 1, list.end()};
        const bool required = !name.empty() && name.front() == '!';
        if (required)
            name.remove_prefix(1);
        const auto known = std::find_if(std::begin(known_features), std::end(known_features),
                                        [name](const FeatureName& f) { return f.name == name; });
        if (known == std::end(known_features)) {
            if (required)
                return ImageError::bad_features;
            continue;
        }
        notes.supported_features |= std::uint32_t{1} << known->bit;
        if (required)
            notes.required_features |= std::uint32_t{1} << known->bit;
    }
    return ImageError::none;
}

// One note named "Xen". Types this parser does not keep (BSD_SYMTAB, HV_START_LOW, L1_MFN_VALID,
// SUSPEND_CANCEL, PHYS32_ENTRY, unknown numbers) are skipped without looking at their contents.
ImageError take_xen_note(std::uint32_t type, std::span<const std::byte> desc, XenNotes& notes) {
    const auto number = [&](std::optional<std::uint64_t>& into) {
        into = numeric_value(desc);
        return into ? ImageError::none : ImageError::bad_note;
    };
    const auto text = [&](std::string_view& into) {
        const auto value = string_value(desc);
        if (!value)
            return ImageError::bad_note;
        into = *value;
        return ImageError::none;
    };
    switch (type) {
    case abi::XEN_ELFNOTE_ENTRY: return number(notes.entry);
    case abi::XEN_ELFNOTE_HYPERCALL_PAGE: return number(notes.hypercall_page);
    case abi::XEN_ELFNOTE_VIRT_BASE: return number(notes.virt_base);
    case abi::XEN_ELFNOTE_PADDR_OFFSET: return number(notes.paddr_offset);
    case abi::XEN_ELFNOTE_INIT_P2M: return number(notes.init_p2m);
    case abi::XEN_ELFNOTE_MOD_START_PFN: {
        std::optional<std::uint64_t> value;
        if (number(value) != ImageError::none)
            return ImageError::bad_note;
        notes.mod_start_pfn = *value != 0;
        return ImageError::none;
    }
    case abi::XEN_ELFNOTE_GUEST_OS: return text(notes.guest_os);
    case abi::XEN_ELFNOTE_GUEST_VERSION: return text(notes.guest_version);
    case abi::XEN_ELFNOTE_XEN_VERSION: return text(notes.xen_version);
    case abi::XEN_ELFNOTE_LOADER: return text(notes.loader);
    case abi::XEN_ELFNOTE_PAE_MODE: return text(notes.pae_mode);
    case abi::XEN_ELFNOTE_FEATURES: {
        const auto value = string_value(desc);
        return value ? parse_features(*value, notes) : ImageError::bad_note;
    }
    case abi::XEN_ELFNOTE_SUPPORTED_FEATURES: {
        // An array of 32-bit submaps; Xen defines only submap 0 (XENFEAT_NR_SUBMAPS).
        if (desc.size() < 4 || desc.size() % 4 != 0)
            return ImageError::bad_note;
        std::uint32_t submap0 = 0;
        for (std::size_t i = 4; i-- > 0;)
            submap0 = (submap0 << 8) | std::to_integer<std::uint32_t>(desc[i]);
        notes.supported_features |= submap0;
        return ImageError::none;
    }
    default: return ImageError::none;
    }
}

// What the note walk has found so far, over all the regions it was given.
struct NoteCount {
    std::size_t total = 0;  // notes of any name, against max_notes
    std::size_t xen = 0;    // notes named "Xen"
};

// Walks the notes in `region` (a PT_NOTE segment's or SHT_NOTE section's bytes). Each note is a
// 12-byte header (namesz, descsz, type), the name, padded to 4 bytes, then the descriptor, padded
// to 4 bytes: the alignment libelf uses for ELF64 as for ELF32. Header, name and descriptor must
// lie inside the region; only the padding after the last descriptor may run past its end.
ImageError walk_notes(std::span<const std::byte> region, XenNotes& notes, NoteCount& count) {
    constexpr char xen_name[4] = {'X', 'e', 'n', '\0'};
    std::uint64_t position = 0;
    while (position < region.size()) {
        if (!fits(position, sizeof(NoteHeader), region.size()))
            return ImageError::bad_note;
        if (++count.total > max_notes)
            return ImageError::bad_note;
        const auto header = copy_out<NoteHeader>(region, position);
        const std::uint64_t name_offset = position + sizeof(NoteHeader);
        const std::uint64_t desc_offset = name_offset + align4(header.namesz);
        if (!fits(name_offset, header.namesz, region.size()))
            return ImageError::bad_note;
        if (header.descsz != 0 && !fits(desc_offset, header.descsz, region.size()))
            return ImageError::bad_note;
        // The name is a NUL-terminated string and libelf compares it as one: "Xen" and its NUL
        // count, whatever follows them in a longer namesz.
        if (header.namesz >= sizeof(xen_name) &&
            std::memcmp(region.data() + name_offset, xen_name, sizeof(xen_name)) == 0) {
            ++count.xen;
            // An empty descriptor may begin past the region's end: do not form a span there.
            const auto desc = header.descsz == 0 ? std::span<const std::byte>{}
                                                 : region.subspan(desc_offset, header.descsz);
            const auto error = take_xen_note(header.type, desc, notes);
            if (error != ImageError::none)
                return error;
        }
        position = desc_offset + align4(header.descsz);  // 32-bit sizes: no 64-bit overflow
    }
    return ImageError::none;
}

// ---- headers and segments ---------------------------------------------------------------------

ImageError check_file_header(std::span<const std::byte> bytes, FileHeader& header) {
    // e_ident first, so that a short 32-bit or big-endian image is reported as what it is.
    constexpr std::size_t ident_size = sizeof(FileHeader::ident);
    if (bytes.size() < ident_size || std::memcmp(bytes.data(), elf_magic, sizeof(elf_magic)) != 0)
        return ImageError::not_elf;
    const auto elf_class = std::to_integer<std::uint8_t>(bytes[4]);
    const auto elf_data = std::to_integer<std::uint8_t>(bytes[5]);
    if (elf_class == elfclass32)
        return ImageError::not_elf64;
    if (elf_class != elfclass64)
        return ImageError::not_elf;
    if (elf_data == elfdata2msb)
        return ImageError::not_little_endian;
    if (elf_data != elfdata2lsb)
        return ImageError::not_elf;
    if (bytes.size() < sizeof(FileHeader))
        return ImageError::not_elf;
    header = copy_out<FileHeader>(bytes, 0);
    if (header.machine != em_x86_64)
        return ImageError::not_x86_64;
    if (header.type != et_exec)
        return ImageError::not_executable;
    return ImageError::none;
}

ImageError check_header_tables(std::span<const std::byte> bytes, const FileHeader& header) {
    if (header.phnum > max_program_headers)
        return ImageError::bad_program_headers;
    if (header.phnum != 0 &&
        (header.phentsize != sizeof(ProgramHeader) ||
         !fits(header.phoff, std::uint64_t{header.phnum} * sizeof(ProgramHeader), bytes.size())))
        return ImageError::bad_program_headers;
    if (header.shnum >= shn_loreserve)
        return ImageError::bad_section_headers;
    if (header.shnum != 0 &&
        (header.shentsize != sizeof(SectionHeader) ||
         !fits(header.shoff, std::uint64_t{header.shnum} * sizeof(SectionHeader), bytes.size())))
        return ImageError::bad_section_headers;
    return ImageError::none;
}

ProgramHeader program_header(std::span<const std::byte> bytes, const FileHeader& header, std::size_t index) {
    return copy_out<ProgramHeader>(bytes, header.phoff + index * sizeof(ProgramHeader));
}

// The PT_LOADs with any of R, W, X (elf_phdr_is_loadable), in program-header order.
ImageError take_segments(std::span<const std::byte> bytes, const FileHeader& header, ElfImage& image) {
    for (std::size_t i = 0; i < header.phnum; ++i) {
        const ProgramHeader phdr = program_header(bytes, header, i);
        if (phdr.type != pt_load || (phdr.flags & (pf_r | pf_w | pf_x)) == 0)
            continue;
        constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
        if (!fits(phdr.offset, phdr.filesz, bytes.size()) || phdr.filesz > phdr.memsz ||
            phdr.memsz > top - phdr.vaddr || phdr.memsz > top - phdr.paddr)
            return ImageError::bad_segment;
        if (image.segment_count == max_segments)
            return ImageError::too_many_segments;
        image.segments[image.segment_count++] = Segment{
            .file_offset = phdr.offset,
            .file_size = phdr.filesz,
            .virtual_address = phdr.vaddr,
            .physical_address = phdr.paddr,
            .memory_size = phdr.memsz,
            .flags = phdr.flags,
        };
    }
    return image.segment_count == 0 ? ImageError::no_loadable_segment : ImageError::none;
}

// Notes from the PT_NOTE segments; when they hold no Xen note, from the SHT_NOTE sections
// (section 0 is never looked at). A PT_NOTE with p_offset 0 is skipped: some binutils wrote
// such segments, and libelf skips them too.
ImageError take_notes(std::span<const std::byte> bytes, const FileHeader& header, XenNotes& notes) {
    NoteCount count;
    for (std::size_t i = 0; i < header.phnum; ++i) {
        const ProgramHeader phdr = program_header(bytes, header, i);
        if (phdr.type != pt_note || phdr.offset == 0)
            continue;
        if (!fits(phdr.offset, phdr.filesz, bytes.size()))
            return ImageError::bad_segment;
        const auto error = walk_notes(bytes.subspan(phdr.offset, phdr.filesz), notes, count);
        if (error != ImageError::none)
            return error;
    }
    if (count.xen != 0)
        return ImageError::none;
    for (std::size_t i = 1; i < header.shnum; ++i) {
        const auto shdr = copy_out<SectionHeader>(bytes, header.shoff + i * sizeof(SectionHeader));
        if (shdr.type != sht_note)
            continue;
        if (!fits(shdr.offset, shdr.size, bytes.size()))
            return ImageError::bad_section_headers;
        const auto error = walk_notes(bytes.subspan(shdr.offset, shdr.size), notes, count);
        if (error != ImageError::none)
            return error;
    }
    return count.xen != 0 ? ImageError::none : ImageError::no_xen_notes;
}

bool has_prefix(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), text.begin());
}

// elf_xen_note_check: Xen loads only kernels built for Xen 3.0's interface, and for the generic
// loader or Linux's. The comparisons are of prefixes, as libelf's strncmp.
ImageError check_guest(const XenNotes& notes) {
    const bool loader_ok = has_prefix(notes.loader, "generic"sv) || has_prefix(notes.guest_os, "linux"sv);
    if (!loader_ok || !has_prefix(notes.xen_version, "xen-3.0"sv))
        return ImageError::unsupported_guest;
    return ImageError::none;
}

// elf_xen_addr_calc_check, and the builders' checks of the hypercall page and the kernel's start.
ImageError place_image(ElfImage& image) {
    const XenNotes& notes = image.notes;
    if (notes.paddr_offset && !notes.virt_base)
        return ImageError::bad_layout;
    image.virt_base = notes.virt_base.value_or(0);
    image.paddr_offset = notes.paddr_offset.value_or(0);
    image.entry = notes.entry.value_or(image.elf_entry);

    std::uint64_t physical_start = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t physical_end = 0;  // each segment's end was checked not to wrap
    for (const Segment& segment : image.loadable()) {
        physical_start = std::min(physical_start, segment.physical_address);
        physical_end = std::max(physical_end, segment.physical_address + segment.memory_size);
    }
    const std::uint64_t length = physical_end - physical_start;
    // The offset is modular (PADDR_OFFSET may exceed VIRT_BASE); the placed range must not wrap.
    image.virtual_start = physical_start + (image.virt_base - image.paddr_offset);
    if (image.virtual_start > std::numeric_limits<std::uint64_t>::max() - length)
        return ImageError::bad_layout;
    image.virtual_end = image.virtual_start + length;

    const auto inside = [&](std::uint64_t address) {
        return address >= image.virtual_start && address < image.virtual_end;
    };
    if (image.virtual_start < image.virt_base || image.virtual_start % page_size != 0)
        return ImageError::bad_layout;
    if (!inside(image.entry))
        return ImageError::bad_layout;
    if (notes.hypercall_page && (*notes.hypercall_page % page_size != 0 || !inside(*notes.hypercall_page)))
        return ImageError::bad_layout;
    if (notes.init_p2m && inside(*notes.init_p2m))
        return ImageError::bad_layout;
    return ImageError::none;
}

}  // namespace

std::string_view describe(ImageError error) {
    switch (error) {
    case ImageError::none: return "no error"sv;
    case ImageError::not_elf: return "not an ELF file, or shorter than an ELF header"sv;
    case ImageError::not_elf64: return "a 32-bit ELF file: only 64-bit kernels are supported"sv;
    case ImageError::not_little_endian: return "a big-endian ELF file: x86-64 kernels are little-endian"sv;
    case ImageError::not_x86_64: return "not an x86-64 ELF file"sv;
    case ImageError::not_executable: return "not an executable ELF file (ET_EXEC)"sv;
    case ImageError::bad_program_headers: return "program header table outside the file, or malformed"sv;
    case ImageError::bad_section_headers: return "section header table outside the file, or malformed"sv;
    case ImageError::bad_segment: return "a segment lies outside the file, is larger on file than in memory, or wraps"sv;
    case ImageError::no_loadable_segment: return "no loadable segment"sv;
    case ImageError::too_many_segments: return "too many loadable segments"sv;
    case ImageError::bad_note: return "malformed ELF note"sv;
    case ImageError::no_xen_notes: return "no Xen ELF notes: not a Xen PV kernel"sv;
    case ImageError::bad_features: return "the kernel requires a feature this loader does not know"sv;
    case ImageError::bad_layout: return "entry point, hypercall page or VIRT_BASE inconsistent with the loaded image"sv;
    case ImageError::unsupported_guest: return "not built for Xen 3.0's interface and the generic or Linux loader"sv;
    }
    return "unknown image error"sv;
}

ImageError parse_image(std::span<const std::byte> bytes, ElfImage& image) {
    FileHeader header;
    if (const auto error = check_file_header(bytes, header); error != ImageError::none)
        return error;
    if (const auto error = check_header_tables(bytes, header); error != ImageError::none)
        return error;

    ElfImage parsed;
    parsed.bytes = bytes;
    parsed.elf_entry = header.entry;
    if (const auto error = take_segments(bytes, header, parsed); error != ImageError::none)
        return error;
    if (const auto error = take_notes(bytes, header, parsed.notes); error != ImageError::none)
        return error;
    if (const auto error = check_guest(parsed.notes); error != ImageError::none)
        return error;
    if (const auto error = place_image(parsed); error != ImageError::none)
        return error;
    image = parsed;
    return ImageError::none;
}

}  // namespace hv::builder

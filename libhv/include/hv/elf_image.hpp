// A Xen PV kernel image, as a domain builder reads it: an x86-64 ELF executable, its loadable
// segments, and its "Xen" ELF notes.
//
// Parsing reads only the bytes given and trusts none of them: every offset, size and count is
// checked against the image before it is used, and a malformed image gives an ImageError that
// says what is wrong, never a crash. The same code runs in the hypervisor and, compiled for the
// host, in `./pvkit run`'s checks before boot. What is accepted follows Xen's libelf
// (elf_xen_parse and its helpers); docs/builder.md, "Images and ELF notes", lists each rule and
// where this parser is stricter.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hv::builder {

enum class ImageError : std::uint8_t {
    none,
    not_elf,              // no ELF magic, or too short for an ELF header
    not_elf64,            // ELFCLASS32: a 32-bit kernel
    not_little_endian,
    not_x86_64,           // e_machine is not EM_X86_64
    not_executable,       // e_type is not ET_EXEC
    bad_program_headers,  // outside the file, wrong entry size, more than max_program_headers
    bad_section_headers,  // likewise (checked even when the notes come from PT_NOTE, as libelf's
                          // elf_init does), or an SHT_NOTE section whose bytes lie outside the file
    bad_segment,          // a PT_LOAD or PT_NOTE whose file bytes lie outside the file; a PT_LOAD
                          // with filesz > memsz, or whose p_vaddr or p_paddr range wraps
    no_loadable_segment,
    too_many_segments,    // more than max_segments PT_LOADs
    bad_note,             // a note whose sizes run past its segment or section, more than
                          // max_notes notes, or a Xen note of the wrong size or an empty string
    no_xen_notes,         // not a Xen PV kernel (or one with only the legacy __xen_guest section)
    bad_features,         // an unknown feature name marked required ('!') in XEN_ELFNOTE_FEATURES
                          // (an unknown name without '!' is ignored, as libelf does)
    bad_layout,           // entry or hypercall page outside the loaded image, VIRT_BASE above the
                          // image, INIT_P2M inside it, PADDR_OFFSET without VIRT_BASE...
    unsupported_guest,    // XEN_VERSION is not "xen-3.0...", or neither LOADER is "generic..." nor
                          // GUEST_OS "linux..." (libelf's elf_xen_note_check)
};

// A short English description of the error, for messages ("no Xen ELF notes: not a Xen PV kernel").
std::string_view describe(ImageError error);

struct Segment {
    std::uint64_t file_offset;
    std::uint64_t file_size;
    std::uint64_t virtual_address;  // p_vaddr
    std::uint64_t physical_address; // p_paddr: where Xen's libelf places the segment (see ElfImage)
    std::uint64_t memory_size;      // p_memsz: the rest after file_size is zeroed
    std::uint32_t flags;            // PF_R | PF_W | PF_X
};

// Feature bits are XENFEAT_* numbers (XENVER_get_features' submap 0). A note that appears twice
// counts as its last copy, except that feature bits from every FEATURES and SUPPORTED_FEATURES
// note are OR'ed together.
struct XenNotes {
    std::optional<std::uint64_t> entry;           // XEN_ELFNOTE_ENTRY
    std::optional<std::uint64_t> hypercall_page;  // XEN_ELFNOTE_HYPERCALL_PAGE
    std::optional<std::uint64_t> virt_base;       // XEN_ELFNOTE_VIRT_BASE
    std::optional<std::uint64_t> paddr_offset;    // XEN_ELFNOTE_PADDR_OFFSET
    std::optional<std::uint64_t> init_p2m;        // XEN_ELFNOTE_INIT_P2M
    bool mod_start_pfn = false;                   // XEN_ELFNOTE_MOD_START_PFN with a non-zero value
    std::string_view guest_os;                    // strings point into the image, NULs dropped
    std::string_view guest_version;
    std::string_view xen_version;
    std::string_view loader;
    std::string_view pae_mode;                    // 32-bit kernels only; kept to report it
    std::uint32_t supported_features = 0;         // every name in FEATURES (required ones too, as
                                                  // libelf does), and SUPPORTED_FEATURES
    std::uint32_t required_features = 0;          // FEATURES with a leading '!'
};

inline constexpr std::size_t max_segments = 16;          // PT_LOADs
inline constexpr std::size_t max_program_headers = 64;   // e_phnum, every type counted
inline constexpr std::size_t max_notes = 65536;          // notes of any name, all regions (libelf's limit)

struct ElfImage {
    std::span<const std::byte> bytes;
    std::uint64_t elf_entry = 0;  // e_entry
    std::array<Segment, max_segments> segments{};
    std::size_t segment_count = 0;
    XenNotes notes;
    // Derived as Xen's libelf does. VIRT_BASE is 0 when absent; PADDR_OFFSET is 0 when absent
    // (the modern notes interface). Each segment is loaded at virtual address
    // p_paddr + (virt_base - paddr_offset), so the kernel occupies [virtual_start, virtual_end):
    // the lowest and one past the highest such address of the loadable segments. `entry` is ENTRY,
    // else e_entry. parse_image refuses (bad_layout) an image whose virtual_start is below
    // virt_base or not page-aligned, whose virtual_end does not fit in 64 bits, whose entry or
    // hypercall page (page-aligned) lies outside [virtual_start, virtual_end), or whose INIT_P2M
    // lies inside it.
    std::uint64_t virtual_start = 0;
    std::uint64_t virtual_end = 0;
    std::uint64_t entry = 0;
    std::uint64_t virt_base = 0;
    std::uint64_t paddr_offset = 0;

    std::span<const Segment> loadable() const { return {segments.data(), segment_count}; }
    // The virtual address the segment is loaded at (modulo 2^64, as libelf computes it).
    std::uint64_t load_address(const Segment& segment) const {
        return segment.physical_address + (virt_base - paddr_offset);
    }
};

// Parses `bytes` into `image` (which then refers into `bytes`). Notes are taken from PT_NOTE
// segments, and from SHT_NOTE sections when no PT_NOTE has any; only notes named "Xen" count.
// Loadable segments are the PT_LOADs with at least one of PF_R, PF_W, PF_X (libelf's rule).
// On error `image` is left unchanged.
[[nodiscard]] ImageError parse_image(std::span<const std::byte> bytes, ElfImage& image);

}  // namespace hv::builder

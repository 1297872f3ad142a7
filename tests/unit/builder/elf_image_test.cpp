// The kernel image parser: good images (notes in a PT_NOTE segment or only in a section, every
// numeric note in both sizes, features, defaults, placement) and one malformed image per error.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>

#include <hv/elf_image.hpp>

#include "elf_builder.hpp"

using namespace elf_test;
using hv::builder::ElfImage;
using hv::builder::ImageError;
using hv::builder::parse_image;
namespace abi = pvkit::abi;

namespace {

constexpr std::uint32_t bit(unsigned feature) { return std::uint32_t{1} << feature; }

// Parses an image that must be refused, and checks that the refusal left the output untouched.
ImageError refusal(const Bytes& bytes) {
    ElfImage image;
    image.entry = 0x5eed;
    image.segment_count = 3;
    image.notes.guest_os = "untouched";
    const ImageError error = parse_image(bytes, image);
    CHECK(image.entry == 0x5eed);
    CHECK(image.segment_count == 3);
    CHECK(image.notes.guest_os == "untouched");
    CHECK(image.bytes.empty());
    return error;
}

ElfImage parsed(const Bytes& bytes) {
    ElfImage image;
    const ImageError error = parse_image(bytes, image);
    INFO("error: " << std::string(hv::builder::describe(error)));
    REQUIRE(error == ImageError::none);
    return image;
}

// kernel_notes() with one note replaced (same type) or added.
std::vector<Note> notes_with(Note note) {
    std::vector<Note> notes = kernel_notes();
    for (Note& existing : notes)
        if (existing.type == note.type) {
            existing = note;
            return notes;
        }
    notes.push_back(note);
    return notes;
}
std::vector<Note> notes_without(std::uint32_t type) {
    std::vector<Note> notes = kernel_notes();
    std::erase_if(notes, [type](const Note& note) { return note.type == type; });
    return notes;
}

void check_kernel(const ElfImage& image, const Bytes& bytes) {
    CHECK(image.bytes.data() == bytes.data());
    CHECK(image.bytes.size() == bytes.size());
    REQUIRE(image.loadable().size() == 2);
    const auto& text = image.loadable()[0];
    CHECK(text.virtual_address == kernel_base);
    CHECK(text.physical_address == 0);
    CHECK(text.file_size == 0x1800);
    CHECK(text.memory_size == 0x1800);
    CHECK(text.flags == (pf_r | pf_x));
    CHECK(std::to_integer<int>(bytes[text.file_offset]) == 0x90);
    const auto& data = image.loadable()[1];
    CHECK(data.physical_address == 0x2000);
    CHECK(data.file_size == 0x40);
    CHECK(data.memory_size == 0x3000);
    CHECK(data.flags == (pf_r | pf_w));
    CHECK(std::to_integer<int>(bytes[data.file_offset]) == 0x91);
    CHECK(image.load_address(data) == kernel_base + 0x2000);

    CHECK(image.notes.guest_os == "pvkit");
    CHECK(image.notes.guest_version == "0.1");
    CHECK(image.notes.xen_version == "xen-3.0");
    CHECK(image.notes.loader == "generic");
    CHECK(image.notes.pae_mode.empty());
    CHECK(image.notes.virt_base == kernel_base);
    CHECK(image.notes.paddr_offset == 0u);
    CHECK(image.notes.entry == kernel_base + 0x1010);
    CHECK(image.notes.hypercall_page == kernel_base);
    CHECK_FALSE(image.notes.init_p2m);
    CHECK_FALSE(image.notes.mod_start_pfn);
    CHECK(image.notes.supported_features == 0);
    CHECK(image.notes.required_features == 0);

    CHECK(image.elf_entry == kernel_base + 0x1000);
    CHECK(image.entry == kernel_base + 0x1010);
    CHECK(image.virt_base == kernel_base);
    CHECK(image.paddr_offset == 0);
    CHECK(image.virtual_start == kernel_base);
    CHECK(image.virtual_end == kernel_base + 0x5000);
}

}  // namespace

// ---- good images ------------------------------------------------------------------------------

TEST_CASE("builder: a kernel with its Xen notes in a PT_NOTE segment parses", "[builder]") {
    const Bytes bytes = kernel().build();
    check_kernel(parsed(bytes), bytes);
}

TEST_CASE("builder: a kernel with its Xen notes only in an SHT_NOTE section parses", "[builder]") {
    ElfBuilder builder = kernel_without_notes();
    builder.sections.push_back(note_section(encode_notes(kernel_notes())));
    const Bytes bytes = builder.build();
    check_kernel(parsed(bytes), bytes);
}

TEST_CASE("builder: sections are read only when the PT_NOTE segments hold no Xen note", "[builder]") {
    SECTION("a PT_NOTE with only a GNU note: the section's notes count") {
        ElfBuilder builder = kernel_without_notes();
        builder.note_segments.push_back(encode_notes({{"GNU", 3, little_endian(0x1234, 8), {}, {}}}));
        builder.sections.push_back(note_section(encode_notes(kernel_notes())));
        const Bytes bytes = builder.build();
        check_kernel(parsed(bytes), bytes);
    }
    SECTION("Xen notes in a PT_NOTE: a section with other notes, even one outside the file, is ignored") {
        ElfBuilder builder = kernel();
        builder.sections.push_back(note_section(encode_notes(notes_with(xen_string(abi::XEN_ELFNOTE_GUEST_OS, "linux")))));
        Bytes bytes = builder.build();
        CHECK(parsed(bytes).notes.guest_os == "pvkit");
        poke(bytes, section_header_offset(bytes, 1) + shdr::offset, std::uint64_t{1} << 40);
        CHECK(parsed(bytes).notes.guest_os == "pvkit");
    }
    SECTION("a PT_NOTE whose p_offset is 0 is skipped, as libelf does") {
        ElfBuilder builder = kernel();
        builder.sections.push_back(note_section(encode_notes(notes_with(xen_string(abi::XEN_ELFNOTE_GUEST_OS, "other")))));
        Bytes bytes = builder.build();
        poke(bytes, program_header_offset(bytes, 2) + phdr::offset, std::uint64_t{0});
        CHECK(parsed(bytes).notes.guest_os == "other");
    }
}

TEST_CASE("builder: only notes named \"Xen\" count", "[builder]") {
    std::vector<Note> notes = kernel_notes();
    notes.push_back({"xen", abi::XEN_ELFNOTE_GUEST_OS, {std::byte{'a'}, std::byte{0}}, {}, {}});
    notes.push_back({"Xen2", abi::XEN_ELFNOTE_GUEST_VERSION, {std::byte{'b'}, std::byte{0}}, {}, {}});
    notes.push_back({"GNU", abi::XEN_ELFNOTE_ENTRY, little_endian(0, 3), {}, {}});  // would be bad_note
    notes.push_back({"", abi::XEN_ELFNOTE_LOADER, {}, {}, {}});
    // "Xen" then NULs in a longer name still reads as "Xen", as libelf's strcmp sees it.
    notes.push_back({std::string("Xen\0\0\0\0", 7), abi::XEN_ELFNOTE_PAE_MODE, {std::byte{'n'}, std::byte{'o'}, std::byte{0}}, {}, {}});
    const Bytes bytes = kernel(notes).build();
    const ElfImage image = parsed(bytes);
    CHECK(image.notes.guest_os == "pvkit");
    CHECK(image.notes.guest_version == "0.1");
    CHECK(image.notes.loader == "generic");
    CHECK(image.notes.pae_mode == "no");
}

TEST_CASE("builder: every numeric note reads in its 4- and 8-byte forms", "[builder]") {
    const std::size_t size = GENERATE(4, 8);
    // A kernel linked at 2 GiB with p_paddr 16 MiB, so that every value fits in 32 bits.
    ElfBuilder builder = kernel_without_notes();
    builder.loads[0].paddr = 0x1000000;
    builder.loads[1].paddr = 0x1002000;
    builder.note_segments.push_back(encode_notes({
        xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
        xen_string(abi::XEN_ELFNOTE_LOADER, "generic"),
        xen_number(abi::XEN_ELFNOTE_VIRT_BASE, 0x80000000, size),
        xen_number(abi::XEN_ELFNOTE_PADDR_OFFSET, 0x1000000, size),
        xen_number(abi::XEN_ELFNOTE_ENTRY, 0x80001234, size),
        xen_number(abi::XEN_ELFNOTE_HYPERCALL_PAGE, 0x80001000, size),
        xen_number(abi::XEN_ELFNOTE_INIT_P2M, 0xc0000000, size),
        xen_number(abi::XEN_ELFNOTE_MOD_START_PFN, 1, size),
    }));
    const Bytes bytes = builder.build();
    const ElfImage image = parsed(bytes);
    CHECK(image.notes.virt_base == 0x80000000u);
    CHECK(image.notes.paddr_offset == 0x1000000u);
    CHECK(image.notes.entry == 0x80001234u);
    CHECK(image.notes.hypercall_page == 0x80001000u);
    CHECK(image.notes.init_p2m == 0xc0000000u);
    CHECK(image.notes.mod_start_pfn);
    CHECK(image.virtual_start == 0x80000000);
    CHECK(image.virtual_end == 0x80005000);
    CHECK(image.entry == 0x80001234);
    CHECK(image.load_address(image.loadable()[1]) == 0x80002000);
}

TEST_CASE("builder: numeric notes of 1 and 2 bytes read as libelf reads them", "[builder]") {
    CHECK(parsed(kernel(notes_with(xen_number(abi::XEN_ELFNOTE_MOD_START_PFN, 1, 1))).build()).notes.mod_start_pfn);
    CHECK_FALSE(parsed(kernel(notes_with(xen_number(abi::XEN_ELFNOTE_MOD_START_PFN, 0, 2))).build()).notes.mod_start_pfn);
    CHECK(parsed(kernel(notes_with(xen_number(abi::XEN_ELFNOTE_MOD_START_PFN, 0x100, 2))).build()).notes.mod_start_pfn);
}

TEST_CASE("builder: numeric notes of other sizes are refused", "[builder][hostile]") {
    const std::size_t size = GENERATE(0, 3, 5, 16);
    CHECK(refusal(kernel(notes_with(xen_number(abi::XEN_ELFNOTE_ENTRY, kernel_base + 0x1000, size))).build()) ==
          ImageError::bad_note);
}

TEST_CASE("builder: FEATURES sets supported features, and required ones for names marked '!'", "[builder]") {
    const ElfImage image = parsed(kernel(notes_with(xen_string(abi::XEN_ELFNOTE_FEATURES,
        "writable_page_tables|writable_descriptor_tables|!auto_translated_physmap|supervisor_mode_kernel|"
        "!pae_pgdir_above_4gb|hvm_callback_vector|!dom0"))).build());
    CHECK(image.notes.supported_features ==
          (bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_writable_descriptor_tables) |
           bit(abi::XENFEAT_auto_translated_physmap) | bit(abi::XENFEAT_supervisor_mode_kernel) |
           bit(abi::XENFEAT_pae_pgdir_above_4gb) | bit(abi::XENFEAT_hvm_callback_vector) | bit(abi::XENFEAT_dom0)));
    CHECK(image.notes.required_features ==
          (bit(abi::XENFEAT_auto_translated_physmap) | bit(abi::XENFEAT_pae_pgdir_above_4gb) | bit(abi::XENFEAT_dom0)));
}

TEST_CASE("builder: a string note without a NUL is its whole descriptor, as Linux's FEATURES note", "[builder]") {
    const std::string_view linux_features = "!writable_page_tables|pae_pgdir_above_4gb";
    Bytes desc(linux_features.size());  // descsz 41: the NUL is left to the padding
    std::memcpy(desc.data(), linux_features.data(), desc.size());
    const ElfImage image = parsed(kernel(notes_with({"Xen", abi::XEN_ELFNOTE_FEATURES, desc, {}, {}})).build());
    CHECK(image.notes.required_features == bit(abi::XENFEAT_writable_page_tables));
    CHECK(image.notes.supported_features ==
          (bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_pae_pgdir_above_4gb)));
}

TEST_CASE("builder: unknown optional feature names and empty names are ignored, as libelf does", "[builder]") {
    std::vector<Note> notes = kernel_notes();
    // gnttab_map_avail_bits is a XENFEAT_ that libelf's name table does not have.
    notes.push_back(xen_string(abi::XEN_ELFNOTE_FEATURES, "|gnttab_map_avail_bits||no_such_feature|writable_page_tables|"));
    notes.push_back(xen_string(abi::XEN_ELFNOTE_FEATURES, "!writable_descriptor_tables"));  // a second note adds to the first
    const Bytes bytes = kernel(notes).build();
    const ElfImage image = parsed(bytes);
    CHECK(image.notes.supported_features ==
          (bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_writable_descriptor_tables)));
    CHECK(image.notes.required_features == bit(abi::XENFEAT_writable_descriptor_tables));
}

TEST_CASE("builder: an unknown feature marked required is refused", "[builder][hostile]") {
    const std::string list = GENERATE(as<std::string>{}, "!no_such_feature", "writable_page_tables|!gnttab_map_avail_bits",
                                      "!", "!dom0|!Dom0", "!writable_page_tables ");
    CAPTURE(list);
    CHECK(refusal(kernel(notes_with(xen_string(abi::XEN_ELFNOTE_FEATURES, list))).build()) == ImageError::bad_features);
}

TEST_CASE("builder: SUPPORTED_FEATURES is a 32-bit bitmap OR'ed into the supported features", "[builder]") {
    std::vector<Note> notes = kernel_notes();
    notes.push_back(xen_string(abi::XEN_ELFNOTE_FEATURES, "!writable_page_tables"));
    SECTION("4 bytes") {
        notes.push_back(xen_number(abi::XEN_ELFNOTE_SUPPORTED_FEATURES, bit(abi::XENFEAT_dom0) | bit(31), 4));
        const Bytes bytes = kernel(notes).build();
    const ElfImage image = parsed(bytes);
        CHECK(image.notes.supported_features == (bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_dom0) | bit(31)));
        CHECK(image.notes.required_features == bit(abi::XENFEAT_writable_page_tables));
    }
    SECTION("8 bytes: only submap 0, the first word, exists") {
        notes.push_back(xen_number(abi::XEN_ELFNOTE_SUPPORTED_FEATURES, 0xffff'0000'0000'0004, 8));
        CHECK(parsed(kernel(notes).build()).notes.supported_features ==
              (bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_auto_translated_physmap)));
    }
    SECTION("a size that is not a whole number of words is refused") {
        const std::size_t size = GENERATE(0, 2, 6);
        notes.push_back(xen_number(abi::XEN_ELFNOTE_SUPPORTED_FEATURES, 1, size));
        CHECK(refusal(kernel(notes).build()) == ImageError::bad_note);
    }
}

TEST_CASE("builder: missing notes take libelf's defaults, and p_paddr places the kernel", "[builder]") {
    ElfBuilder builder = kernel_without_notes();
    builder.loads[0].paddr = 0x200000;
    builder.loads[1].paddr = 0x202000;
    builder.entry = 0x201000;  // e_entry is used as it is: a virtual address
    builder.note_segments.push_back(encode_notes({xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                                                  xen_string(abi::XEN_ELFNOTE_LOADER, "generic")}));
    const Bytes bytes = builder.build();
    const ElfImage image = parsed(bytes);
    CHECK_FALSE(image.notes.virt_base);
    CHECK_FALSE(image.notes.paddr_offset);
    CHECK_FALSE(image.notes.entry);
    CHECK_FALSE(image.notes.hypercall_page);
    CHECK(image.notes.guest_os.empty());
    CHECK(image.virt_base == 0);
    CHECK(image.paddr_offset == 0);
    CHECK(image.entry == 0x201000);
    CHECK(image.virtual_start == 0x200000);  // p_paddr, not p_vaddr
    CHECK(image.virtual_end == 0x205000);
    CHECK(image.load_address(image.loadable()[0]) == 0x200000);
}

TEST_CASE("builder: PADDR_OFFSET moves the kernel; the offset from it to VIRT_BASE is modular", "[builder]") {
    ElfBuilder builder = kernel_without_notes();
    builder.loads[0].paddr = 0x100000;
    builder.loads[1].paddr = 0x102000;
    builder.entry = 0x1000;
    builder.note_segments.push_back(encode_notes({xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                                                  xen_string(abi::XEN_ELFNOTE_LOADER, "generic"),
                                                  xen_number(abi::XEN_ELFNOTE_VIRT_BASE, 0),
                                                  xen_number(abi::XEN_ELFNOTE_PADDR_OFFSET, 0x100000)}));
    const Bytes bytes = builder.build();
    const ElfImage image = parsed(bytes);
    CHECK(image.virtual_start == 0);
    CHECK(image.virtual_end == 0x5000);
    CHECK(image.load_address(image.loadable()[1]) == 0x2000);
}

TEST_CASE("builder: a note given twice counts as its last copy", "[builder]") {
    std::vector<Note> notes = kernel_notes();
    notes.push_back(xen_string(abi::XEN_ELFNOTE_GUEST_OS, "second"));
    notes.push_back(xen_number(abi::XEN_ELFNOTE_ENTRY, kernel_base + 0x20));
    const Bytes bytes = kernel(notes).build();
    const ElfImage image = parsed(bytes);
    CHECK(image.notes.guest_os == "second");
    CHECK(image.entry == kernel_base + 0x20);
}

TEST_CASE("builder: Xen checks the loader and interface names, by prefix", "[builder]") {
    CHECK(parsed(kernel(notes_with(xen_string(abi::XEN_ELFNOTE_LOADER, "generic-plus"))).build()).notes.loader == "generic-plus");
    std::vector<Note> linux_notes = notes_without(abi::XEN_ELFNOTE_LOADER);
    linux_notes.push_back(xen_string(abi::XEN_ELFNOTE_GUEST_OS, "linux"));
    CHECK(parsed(kernel(linux_notes).build()).notes.loader.empty());

    std::vector<Note> other_loader = notes_with(xen_string(abi::XEN_ELFNOTE_LOADER, "special"));
    CHECK(refusal(kernel(other_loader).build()) == ImageError::unsupported_guest);
    CHECK(refusal(kernel(notes_without(abi::XEN_ELFNOTE_LOADER)).build()) == ImageError::unsupported_guest);
    CHECK(refusal(kernel(notes_with(xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-2.0"))).build()) ==
          ImageError::unsupported_guest);
    CHECK(refusal(kernel(notes_without(abi::XEN_ELFNOTE_XEN_VERSION)).build()) == ImageError::unsupported_guest);
}

// ---- malformed images: one per error ----------------------------------------------------------

TEST_CASE("builder: what is not an ELF file, or is cut short in its header, is refused as not_elf", "[builder][hostile]") {
    const Bytes good = kernel().build();
    CHECK(refusal({}) == ImageError::not_elf);
    CHECK(refusal(Bytes(good.begin(), good.begin() + 3)) == ImageError::not_elf);
    CHECK(refusal(Bytes(good.begin(), good.begin() + 63)) == ImageError::not_elf);  // truncated header
    Bytes no_magic = good;
    no_magic[1] = std::byte{'e'};
    CHECK(refusal(no_magic) == ImageError::not_elf);
    Bytes bad_class = good;
    bad_class[ehdr::elf_class] = std::byte{3};
    CHECK(refusal(bad_class) == ImageError::not_elf);
    Bytes bad_data = good;
    bad_data[ehdr::data] = std::byte{0};
    CHECK(refusal(bad_data) == ImageError::not_elf);
}

TEST_CASE("builder: a 32-bit, big-endian, non-x86-64 or non-executable ELF file is refused", "[builder][hostile]") {
    ElfBuilder builder = kernel();
    SECTION("ELFCLASS32, even as short as a 32-bit header") {
        builder.elf_class = 1;
        const Bytes bytes = builder.build();
        CHECK(refusal(bytes) == ImageError::not_elf64);
        CHECK(refusal(Bytes(bytes.begin(), bytes.begin() + 52)) == ImageError::not_elf64);
    }
    SECTION("ELFDATA2MSB") {
        builder.data = 2;
        CHECK(refusal(builder.build()) == ImageError::not_little_endian);
    }
    SECTION("EM_386 or EM_AARCH64") {
        builder.machine = GENERATE(3, 183);
        CHECK(refusal(builder.build()) == ImageError::not_x86_64);
    }
    SECTION("ET_DYN or ET_REL") {
        builder.type = GENERATE(3, 1);
        CHECK(refusal(builder.build()) == ImageError::not_executable);
    }
}

TEST_CASE("builder: program headers outside the file, of the wrong size or too many are refused", "[builder][hostile]") {
    Bytes bytes = kernel().build();
    SECTION("e_phoff past the end") { poke(bytes, ehdr::phoff, std::uint64_t{bytes.size()}); }
    SECTION("the last entry one byte past the end") { poke(bytes, ehdr::phoff, std::uint64_t{bytes.size() - 3 * 56 + 1}); }
    SECTION("e_phoff + table size wraps") { poke(bytes, ehdr::phoff, std::uint64_t{0} - 56); }
    SECTION("e_phentsize is not 56") { poke(bytes, ehdr::phentsize, std::uint16_t(GENERATE(32, 55, 57, 64))); }
    SECTION("more than max_program_headers") {
        poke(bytes, ehdr::phnum, static_cast<std::uint16_t>(hv::builder::max_program_headers + 1));
        bytes.resize(bytes.size() + 64 * 56);  // the table would fit: the count alone is refused
    }
    SECTION("PN_XNUM") { poke(bytes, ehdr::phnum, std::uint16_t{0xffff}); }
    CHECK(refusal(bytes) == ImageError::bad_program_headers);
}

TEST_CASE("builder: section headers outside the file or of the wrong size are refused, even unused", "[builder][hostile]") {
    ElfBuilder builder = kernel();  // notes in a PT_NOTE: the sections are not searched
    builder.sections.push_back({".comment", sht_progbits, Bytes(8)});
    Bytes bytes = builder.build();
    SECTION("e_shoff past the end") { poke(bytes, ehdr::shoff, std::uint64_t{bytes.size() - 64}); }
    SECTION("e_shoff + table size wraps") { poke(bytes, ehdr::shoff, std::uint64_t{0} - 64); }
    SECTION("e_shentsize is not 64") { poke(bytes, ehdr::shentsize, std::uint16_t{40}); }
    SECTION("e_shnum in the reserved range, even with the table inside the file") {
        poke(bytes, ehdr::shnum, std::uint16_t{0xff00});
        bytes.resize(peek<std::uint64_t>(bytes, ehdr::shoff) + 0xff00 * section_header_size);
    }
    CHECK(refusal(bytes) == ImageError::bad_section_headers);
}

TEST_CASE("builder: a note section whose bytes lie outside the file is refused when searched", "[builder][hostile]") {
    ElfBuilder builder = kernel_without_notes();
    builder.sections.push_back(note_section(encode_notes(kernel_notes())));
    Bytes bytes = builder.build();
    const std::size_t at = section_header_offset(bytes, 1);
    SECTION("offset past the end") { poke(bytes, at + shdr::offset, std::uint64_t{bytes.size() + 1}); }
    SECTION("size past the end") { poke(bytes, at + shdr::size, std::uint64_t{bytes.size()}); }
    SECTION("offset + size wraps") { poke(bytes, at + shdr::size, std::uint64_t{0} - 8); }
    CHECK(refusal(bytes) == ImageError::bad_section_headers);
}

TEST_CASE("builder: a segment outside the file, larger on file than in memory, or wrapping is refused", "[builder][hostile]") {
    Bytes bytes = kernel().build();
    const std::size_t text = program_header_offset(bytes, 0);
    const std::size_t data = program_header_offset(bytes, 1);
    const auto file_offset = peek<std::uint64_t>(bytes, data + phdr::offset);
    SECTION("file bytes past the end of the file") { poke(bytes, data + phdr::filesz, std::uint64_t{bytes.size() - file_offset + 1}); }
    SECTION("p_offset past the end of the file") { poke(bytes, data + phdr::offset, std::uint64_t{bytes.size() + 0x1000}); }
    SECTION("p_offset + p_filesz wraps") {
        poke(bytes, data + phdr::filesz, std::uint64_t{0} - 8);
        poke(bytes, data + phdr::memsz, std::uint64_t{0} - 8);
    }
    SECTION("filesz > memsz") { poke(bytes, text + phdr::memsz, std::uint64_t{0x17ff}); }
    SECTION("p_vaddr + p_memsz wraps") { poke(bytes, data + phdr::vaddr, std::uint64_t{0} - 0x1000); }
    SECTION("p_paddr + p_memsz wraps") { poke(bytes, data + phdr::paddr, std::uint64_t{0} - 0x1000); }
    SECTION("a PT_NOTE past the end of the file") {
        poke(bytes, program_header_offset(bytes, 2) + phdr::filesz, std::uint64_t{bytes.size()});
    }
    CHECK(refusal(bytes) == ImageError::bad_segment);
}

TEST_CASE("builder: an image without a loadable segment, or with too many, is refused", "[builder][hostile]") {
    ElfBuilder builder = kernel();
    SECTION("no PT_LOAD") {
        builder.loads.clear();
        CHECK(refusal(builder.build()) == ImageError::no_loadable_segment);
    }
    SECTION("PT_LOADs without R, W or X are not loadable (libelf's rule)") {
        for (Load& load : builder.loads)
            load.flags = 0;
        CHECK(refusal(builder.build()) == ImageError::no_loadable_segment);
    }
    SECTION("max_segments PT_LOADs parse; one more is refused") {
        builder.loads.clear();
        for (std::uint64_t i = 0; i < hv::builder::max_segments; ++i)
            builder.loads.push_back({kernel_base + i * 0x1000, i * 0x1000, 0x10, 0x1000, pf_r | pf_x});
        builder.entry = kernel_base;
        CHECK(parsed(builder.build()).loadable().size() == hv::builder::max_segments);
        builder.loads.push_back({kernel_base + 0x10000, 0x10000, 0x10, 0x1000, pf_r});
        CHECK(refusal(builder.build()) == ImageError::too_many_segments);
    }
}

TEST_CASE("builder: a note running past its segment or section, or a malformed Xen note, is refused", "[builder][hostile]") {
    const bool in_section = GENERATE(false, true);
    std::vector<Note> notes = kernel_notes();
    SECTION("descsz past the end") { notes.back().descsz = 12; }
    SECTION("namesz past the end") { notes.back().namesz = 40; }
    SECTION("descsz of 2^32 - 1") { notes.front().descsz = 0xffffffff; }
    SECTION("an empty string note") { notes.push_back({"Xen", abi::XEN_ELFNOTE_FEATURES, {}, {}, {}}); }
    SECTION("a GNU note that runs past the end counts too") { notes.push_back({"GNU", 1, Bytes(4), {}, 8}); }
    ElfBuilder builder = kernel_without_notes();
    Bytes encoded = encode_notes(notes);
    SECTION("a truncated note header") { encoded.resize(encoded.size() + 8); }
    if (in_section)
        builder.sections.push_back(note_section(encoded));
    else
        builder.note_segments.push_back(encoded);
    CHECK(refusal(builder.build()) == ImageError::bad_note);
}

TEST_CASE("builder: more than max_notes notes are refused", "[builder][hostile]") {
    ElfBuilder builder = kernel();  // 8 notes in the PT_NOTE segment
    builder.note_segments.push_back(Bytes((hv::builder::max_notes - 8) * 12));  // empty-named notes
    CHECK(parsed(builder.build()).notes.guest_os == "pvkit");
    builder.note_segments.back().resize(builder.note_segments.back().size() + 12);
    CHECK(refusal(builder.build()) == ImageError::bad_note);
}

TEST_CASE("builder: an image without Xen notes is not a Xen PV kernel", "[builder][hostile]") {
    ElfBuilder builder = kernel_without_notes();
    SECTION("no notes at all") {}
    SECTION("only notes of other names") {
        builder.note_segments.push_back(encode_notes({{"GNU", 3, Bytes(20), {}, {}}}));
        builder.sections.push_back(note_section(encode_notes({{"Linux", 6, Bytes(4), {}, {}}})));
    }
    SECTION("only a legacy __xen_guest section") {
        const std::string text = "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,LOADER=generic";
        Bytes contents(text.size() + 1);
        std::memcpy(contents.data(), text.data(), text.size());
        builder.sections.push_back({"__xen_guest", sht_progbits, contents});
    }
    CHECK(refusal(builder.build()) == ImageError::no_xen_notes);
}

TEST_CASE("builder: an entry point, hypercall page or p2m address that does not fit the image is refused", "[builder][hostile]") {
    std::vector<Note> notes = kernel_notes();
    SECTION("ENTRY below the image") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_ENTRY, kernel_base - 1)); }
    SECTION("ENTRY at its end") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_ENTRY, kernel_base + 0x5000)); }
    SECTION("e_entry outside, without ENTRY") {
        ElfBuilder builder = kernel(notes_without(abi::XEN_ELFNOTE_ENTRY));
        builder.entry = 0x1000;
        CHECK(refusal(builder.build()) == ImageError::bad_layout);
        return;
    }
    SECTION("HYPERCALL_PAGE past the image") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_HYPERCALL_PAGE, kernel_base + 0x5000)); }
    SECTION("HYPERCALL_PAGE below it") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_HYPERCALL_PAGE, kernel_base - 0x1000)); }
    SECTION("HYPERCALL_PAGE unaligned") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_HYPERCALL_PAGE, kernel_base + 0x800)); }
    SECTION("INIT_P2M inside the image") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_INIT_P2M, kernel_base + 0x4000)); }
    SECTION("VIRT_BASE above the image") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_PADDR_OFFSET, 0x1000)); }
    SECTION("a kernel start that is not page-aligned") { notes = notes_with(xen_number(abi::XEN_ELFNOTE_VIRT_BASE, kernel_base - 0x800)); }
    SECTION("a placement that wraps past 2^64") {
        // Entry and hypercall page would lie inside were it not for the wrap.
        for (Note& note : notes)
            if (note.type == abi::XEN_ELFNOTE_VIRT_BASE || note.type == abi::XEN_ELFNOTE_ENTRY ||
                note.type == abi::XEN_ELFNOTE_HYPERCALL_PAGE)
                note = xen_number(note.type, std::uint64_t{0} - 0x4000);
    }
    CHECK(refusal(kernel(notes).build()) == ImageError::bad_layout);
}

TEST_CASE("builder: PADDR_OFFSET without VIRT_BASE is refused, as libelf does", "[builder][hostile]") {
    ElfBuilder builder = kernel_without_notes();
    builder.loads[0].paddr = 0x200000;
    builder.loads[1].paddr = 0x202000;
    builder.entry = 0x201000;
    std::vector<Note> notes = {xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                               xen_string(abi::XEN_ELFNOTE_LOADER, "generic")};
    builder.note_segments = {encode_notes(notes)};
    CHECK(parsed(builder.build()).virtual_start == 0x200000);  // the same image without PADDR_OFFSET
    notes.push_back(xen_number(abi::XEN_ELFNOTE_PADDR_OFFSET, 0));
    builder.note_segments = {encode_notes(notes)};
    CHECK(refusal(builder.build()) == ImageError::bad_layout);
}

TEST_CASE("builder: INIT_P2M outside the image is kept for the builder", "[builder]") {
    const Bytes bytes = kernel(notes_with(xen_number(abi::XEN_ELFNOTE_INIT_P2M, kernel_base + 0x5000))).build();
    const ElfImage image = parsed(bytes);
    CHECK(image.notes.init_p2m == kernel_base + 0x5000);
}

// ---- every prefix and every header byte -------------------------------------------------------

TEST_CASE("builder: every truncation of a good image is refused", "[builder][hostile]") {
    ElfBuilder builder = kernel();
    builder.sections.push_back(note_section(encode_notes(kernel_notes())));
    const Bytes bytes = builder.build();
    ElfImage whole;
    REQUIRE(parse_image(bytes, whole) == ImageError::none);
    for (std::size_t size = 0; size < bytes.size(); ++size) {
        const Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
        ElfImage image;
        INFO("size " << size);
        REQUIRE(parse_image(prefix, image) != ImageError::none);
    }
}

TEST_CASE("builder: an image with any header byte changed parses into an image that fits its bytes, or is refused", "[builder][hostile]") {
    ElfBuilder builder = kernel();
    builder.sections.push_back(note_section(encode_notes(kernel_notes())));
    const Bytes good = builder.build();
    const std::size_t headers_end = file_header_size + 3 * program_header_size;
    const std::size_t shoff = static_cast<std::size_t>(peek<std::uint64_t>(good, ehdr::shoff));
    const std::uint8_t values[] = {0x00, 0x01, 0x07, 0x38, 0x40, 0x7f, 0x80, 0xff};
    std::set<ImageError> seen;
    for (std::size_t offset = 0; offset < good.size(); ++offset) {
        if (offset >= headers_end && offset < shoff)
            continue;  // segment and note contents: covered by the tests above
        for (const std::uint8_t value : values) {
            Bytes bytes = good;
            bytes[offset] = std::byte{value};
            ElfImage image;
            const ImageError error = parse_image(bytes, image);
            seen.insert(error);
            if (error != ImageError::none)
                continue;
            INFO("offset " << offset << " value " << int(value));
            for (const auto& segment : image.loadable()) {
                REQUIRE(segment.file_offset + segment.file_size <= bytes.size());
                REQUIRE(segment.file_size <= segment.memory_size);
            }
            REQUIRE(image.entry >= image.virtual_start);
            REQUIRE(image.entry < image.virtual_end);
            REQUIRE(image.virtual_start >= image.virt_base);
        }
    }
    CHECK(seen.size() > 6);  // the sweep does reach the different checks
}

TEST_CASE("builder: every image error has its own description", "[builder]") {
    std::set<std::string_view> descriptions;
    for (int value = 0; value <= static_cast<int>(ImageError::unsupported_guest); ++value) {
        const auto description = hv::builder::describe(static_cast<ImageError>(value));
        CAPTURE(value);
        CHECK_FALSE(description.empty());
        CHECK(description != "unknown image error");
        descriptions.insert(description);
    }
    CHECK(descriptions.size() == static_cast<std::size_t>(ImageError::unsupported_guest) + 1);
    CHECK(hv::builder::describe(ImageError::no_xen_notes) == "no Xen ELF notes: not a Xen PV kernel");
}

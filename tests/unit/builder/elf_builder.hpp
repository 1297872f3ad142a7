// Assembles small ELF64 x86-64 images in memory for the builder's tests: a file header, PT_LOAD
// segments, PT_NOTE segments and SHT_NOTE sections holding notes. Every field a test may want to
// break is a plain member; what a member cannot express, a test pokes into the built bytes at the
// offsets given below.
//
// Layout of a built image: the file header at 0; the program headers at 64 (PT_LOADs first, in
// order, then the PT_NOTEs); then each note segment's bytes, each load segment's bytes and each
// section's bytes, 8-byte aligned, in that order; then ".shstrtab" and the section headers (the
// null section, the sections in order, .shstrtab). With no section there is no section header
// table at all (e_shoff = e_shnum = 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pvkit/abi.hpp>

namespace elf_test {

using Bytes = std::vector<std::byte>;

inline constexpr std::uint32_t pt_load = 1, pt_note = 4;
inline constexpr std::uint32_t pf_x = 1, pf_w = 2, pf_r = 4;
inline constexpr std::size_t file_header_size = 64, program_header_size = 56, section_header_size = 64;

// Field offsets, for poking.
namespace ehdr {
inline constexpr std::size_t elf_class = 4, data = 5, type = 16, machine = 18, entry = 24, phoff = 32,
                             shoff = 40, phentsize = 54, phnum = 56, shentsize = 58, shnum = 60;
}
namespace phdr {
inline constexpr std::size_t type = 0, flags = 4, offset = 8, vaddr = 16, paddr = 24, filesz = 32, memsz = 40;
}
namespace shdr {
inline constexpr std::size_t type = 4, offset = 24, size = 32;
}

template <class T>
void poke(Bytes& bytes, std::size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}
template <class T>
T peek(const Bytes& bytes, std::size_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}
inline std::size_t program_header_offset(const Bytes& image, std::size_t index) {
    return static_cast<std::size_t>(peek<std::uint64_t>(image, ehdr::phoff)) + index * program_header_size;
}
inline std::size_t section_header_offset(const Bytes& image, std::size_t index) {
    return static_cast<std::size_t>(peek<std::uint64_t>(image, ehdr::shoff)) + index * section_header_size;
}

// One note. namesz and descsz are the encoded name's and descriptor's sizes unless overridden.
struct Note {
    std::string name;  // written with its NUL; an empty name is written as namesz 0
    std::uint32_t type = 0;
    Bytes desc;
    std::optional<std::uint32_t> namesz;
    std::optional<std::uint32_t> descsz;
};

inline Bytes little_endian(std::uint64_t value, std::size_t size) {
    Bytes bytes(size);
    for (std::size_t i = 0; i < size; ++i)
        bytes[i] = std::byte(i < 8 ? value >> (8 * i) : 0);
    return bytes;
}
inline Note xen_number(std::uint32_t type, std::uint64_t value, std::size_t size = 8) {
    return {"Xen", type, little_endian(value, size), {}, {}};
}
inline Note xen_string(std::uint32_t type, std::string_view text) {
    Bytes desc(text.size() + 1);
    std::memcpy(desc.data(), text.data(), text.size());
    return {"Xen", type, desc, {}, {}};
}

// Encodes notes back to back, name and descriptor each padded to 4 bytes.
inline Bytes encode_notes(const std::vector<Note>& notes) {
    Bytes out;
    const auto append = [&out](const void* data, std::size_t size) {
        const auto* raw = static_cast<const std::byte*>(data);
        out.insert(out.end(), raw, raw + size);
    };
    const auto pad = [&out] {
        while (out.size() % 4 != 0)
            out.push_back(std::byte{0});
    };
    for (const Note& note : notes) {
        const std::uint32_t encoded_name = note.name.empty() ? 0 : static_cast<std::uint32_t>(note.name.size() + 1);
        const std::uint32_t header[3] = {note.namesz.value_or(encoded_name),
                                         note.descsz.value_or(static_cast<std::uint32_t>(note.desc.size())),
                                         note.type};
        append(header, sizeof(header));
        append(note.name.c_str(), encoded_name);
        pad();
        append(note.desc.data(), note.desc.size());
        pad();
    }
    return out;
}

struct Load {
    std::uint64_t vaddr;
    std::uint64_t paddr;
    std::size_t file_size;  // filled with a pattern
    std::uint64_t memory_size;
    std::uint32_t flags = pf_r | pf_x;
};

inline constexpr std::uint32_t sht_progbits = 1, sht_strtab = 3, sht_note = 7;

struct Section {
    std::string name;
    std::uint32_t type = sht_note;
    Bytes contents;
};
inline Section note_section(Bytes contents) { return {".note.Xen", sht_note, std::move(contents)}; }

struct ElfBuilder {
    std::uint8_t elf_class = 2;   // ELFCLASS64
    std::uint8_t data = 1;        // ELFDATA2LSB
    std::uint16_t type = 2;       // ET_EXEC
    std::uint16_t machine = 62;   // EM_X86_64
    std::uint64_t entry = 0;
    std::vector<Load> loads;
    std::vector<Bytes> note_segments;  // encoded notes (encode_notes), or any bytes
    std::vector<Section> sections;  // after the null section; .shstrtab is added last

    Bytes build() const {
        const std::size_t phnum = loads.size() + note_segments.size();
        Bytes image(file_header_size + phnum * program_header_size);
        const auto place = [&image](const Bytes& contents) {
            while (image.size() % 8 != 0)
                image.push_back(std::byte{0});
            const std::size_t offset = image.size();
            image.insert(image.end(), contents.begin(), contents.end());
            return offset;
        };
        const auto write_phdr = [&image](std::size_t index, std::uint32_t p_type, std::uint32_t flags,
                                         std::uint64_t offset, std::uint64_t vaddr, std::uint64_t paddr,
                                         std::uint64_t filesz, std::uint64_t memsz) {
            const std::size_t at = file_header_size + index * program_header_size;
            poke(image, at + phdr::type, p_type);
            poke(image, at + phdr::flags, flags);
            poke(image, at + phdr::offset, offset);
            poke(image, at + phdr::vaddr, vaddr);
            poke(image, at + phdr::paddr, paddr);
            poke(image, at + phdr::filesz, filesz);
            poke(image, at + phdr::memsz, memsz);
            poke(image, at + 48, std::uint64_t{p_type == pt_load ? 0x1000u : 4u});
        };
        for (std::size_t i = 0; i < note_segments.size(); ++i) {
            const std::size_t offset = place(note_segments[i]);
            const std::uint64_t size = note_segments[i].size();
            write_phdr(loads.size() + i, pt_note, pf_r, offset, 0, 0, size, size);
        }
        for (std::size_t i = 0; i < loads.size(); ++i) {
            const Load& load = loads[i];
            Bytes contents(load.file_size);
            for (std::size_t b = 0; b < contents.size(); ++b)
                contents[b] = std::byte(0x90 + i);
            const std::size_t offset = place(contents);
            write_phdr(i, pt_load, load.flags, offset, load.vaddr, load.paddr, load.file_size, load.memory_size);
        }
        std::vector<std::size_t> section_offsets;
        for (const Section& section : sections)
            section_offsets.push_back(place(section.contents));

        std::uint64_t shoff = 0;
        std::uint16_t shnum = 0;
        std::uint16_t shstrndx = 0;
        if (!sections.empty()) {
            Bytes names{std::byte{0}};
            std::vector<std::uint32_t> name_offsets;
            const auto add_name = [&names, &name_offsets](std::string_view name) {
                name_offsets.push_back(static_cast<std::uint32_t>(names.size()));
                for (const char c : name)
                    names.push_back(std::byte(c));
                names.push_back(std::byte{0});
            };
            for (const Section& section : sections)
                add_name(section.name);
            add_name(".shstrtab");
            const std::size_t names_offset = place(names);
            shoff = place({});
            shnum = static_cast<std::uint16_t>(sections.size() + 2);
            shstrndx = static_cast<std::uint16_t>(shnum - 1);
            image.resize(shoff + shnum * section_header_size);
            const auto write_shdr = [&](std::size_t index, std::uint32_t sh_type, std::uint64_t offset,
                                        std::uint64_t size) {
                const std::size_t at = shoff + index * section_header_size;
                poke(image, at + 0, name_offsets[index - 1]);
                poke(image, at + shdr::type, sh_type);
                poke(image, at + shdr::offset, offset);
                poke(image, at + shdr::size, size);
                poke(image, at + 48, std::uint64_t{sh_type == sht_note ? 4u : 1u});  // sh_addralign
            };
            for (std::size_t i = 0; i < sections.size(); ++i)
                write_shdr(1 + i, sections[i].type, section_offsets[i], sections[i].contents.size());
            write_shdr(shstrndx, sht_strtab, names_offset, names.size());
        }

        const unsigned char ident[16] = {0x7f, 'E', 'L', 'F', elf_class, data, 1 /* EV_CURRENT */};
        std::memcpy(image.data(), ident, sizeof(ident));
        poke(image, ehdr::type, type);
        poke(image, ehdr::machine, machine);
        poke(image, 20, std::uint32_t{1});  // e_version
        poke(image, ehdr::entry, entry);
        poke(image, ehdr::phoff, std::uint64_t{phnum ? file_header_size : 0});
        poke(image, ehdr::shoff, shoff);
        poke(image, 52, std::uint16_t{file_header_size});  // e_ehsize
        poke(image, ehdr::phentsize, std::uint16_t{program_header_size});
        poke(image, ehdr::phnum, static_cast<std::uint16_t>(phnum));
        poke(image, ehdr::shentsize, std::uint16_t{section_header_size});
        poke(image, ehdr::shnum, shnum);
        poke(image, 62, shstrndx);
        return image;
    }
};

// A small kernel as libguest links one: text at 0xffffffff80000000 (p_paddr 0), data and bss at
// +0x2000, the hypercall page at the start of the text, the usual notes in a PT_NOTE segment.
inline constexpr std::uint64_t kernel_base = 0xffffffff80000000;

inline std::vector<Note> kernel_notes() {
    namespace abi = pvkit::abi;
    return {
        xen_string(abi::XEN_ELFNOTE_GUEST_OS, "pvkit"),
        xen_string(abi::XEN_ELFNOTE_GUEST_VERSION, "0.1"),
        xen_string(abi::XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
        xen_string(abi::XEN_ELFNOTE_LOADER, "generic"),
        xen_number(abi::XEN_ELFNOTE_VIRT_BASE, kernel_base),
        xen_number(abi::XEN_ELFNOTE_PADDR_OFFSET, 0),
        xen_number(abi::XEN_ELFNOTE_ENTRY, kernel_base + 0x1010),
        xen_number(abi::XEN_ELFNOTE_HYPERCALL_PAGE, kernel_base),
    };
}

inline ElfBuilder kernel_without_notes() {
    ElfBuilder builder;
    builder.entry = kernel_base + 0x1000;
    builder.loads = {
        {kernel_base, 0, 0x1800, 0x1800, pf_r | pf_x},
        {kernel_base + 0x2000, 0x2000, 0x40, 0x3000, pf_r | pf_w},
    };
    return builder;
}

inline ElfBuilder kernel(std::vector<Note> notes = kernel_notes()) {
    ElfBuilder builder = kernel_without_notes();
    builder.note_segments.push_back(encode_notes(notes));
    return builder;
}

}  // namespace elf_test

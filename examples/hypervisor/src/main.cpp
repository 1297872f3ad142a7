// SPDX-License-Identifier: BSD-2-Clause
// First C++ code after boot/entry.S: report what the PVH loader handed us, then
// leave QEMU through isa-debug-exit with the status asked for on the command line.
#include <cstdint>
#include <optional>
#include <string_view>

#include <pvkit/abi.hpp>

#include "cpu.hpp"
#include "memory_layout.hpp"
#include "serial.hpp"

namespace hypervisor {
namespace {

namespace abi = pvkit::abi;

// QEMU's isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04):
// writing v makes QEMU exit with status (v << 1) | 1.
constexpr std::uint16_t debug_exit_port = 0xf4;

// Bound on how far we read a command line, so a missing NUL cannot run us off.
constexpr std::uint64_t max_cmdline = 4096;

constexpr Serial console{Serial::com1};

std::string_view read_cmdline(const abi::hvm_start_info& info) {
    if (info.cmdline_paddr == 0) {
        return {};
    }
    const char* text = phys_to_virt<const char>(info.cmdline_paddr, max_cmdline);
    if (text == nullptr) {
        return {};
    }
    std::uint64_t length = 0;
    while (length < max_cmdline && text[length] != '\0') {
        ++length;
    }
    return {text, length};
}

// Value of the first "exit=N" word, N decimal in 0..255; nullopt if absent or malformed.
// Indexes by hand: string_view::find/substr would pull in memchr and throwing checks.
std::optional<std::uint8_t> parse_exit_status(std::string_view cmdline) {
    constexpr std::string_view key = "exit=";
    std::size_t pos = 0;
    while (pos < cmdline.size()) {
        std::size_t end = pos;
        while (end < cmdline.size() && cmdline[end] != ' ') {
            ++end;
        }
        const std::string_view word{cmdline.data() + pos, end - pos};
        pos = end + 1;
        if (word.size() < key.size() ||
            std::string_view{word.data(), key.size()} != key) {
            continue;
        }
        const std::size_t digits = word.size() - key.size();
        if (digits == 0 || digits > 3) {
            return std::nullopt;
        }
        unsigned value = 0;
        for (std::size_t i = key.size(); i < word.size(); ++i) {
            const char c = word[i];
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            value = value * 10 + static_cast<unsigned>(c - '0');
        }
        if (value > 255) {
            return std::nullopt;
        }
        return static_cast<std::uint8_t>(value);
    }
    return std::nullopt;
}

void report_memory(const abi::hvm_start_info& info) {
    if (info.version < 1 || info.memmap_paddr == 0) {
        console.write("memory: no PVH memory map (start info version ");
        console.write_decimal(info.version);
        console.write(")\n");
        return;
    }
    const auto* map = phys_to_virt<const abi::hvm_memmap_table_entry>(
        info.memmap_paddr, std::uint64_t{info.memmap_entries} * sizeof(abi::hvm_memmap_table_entry));
    if (map == nullptr) {
        console.write("memory: map outside the boot window\n");
        return;
    }
    std::uint64_t usable_bytes = 0;
    for (std::uint32_t i = 0; i < info.memmap_entries; ++i) {
        if (map[i].type == abi::XEN_HVM_MEMMAP_TYPE_RAM) {
            usable_bytes += map[i].size;
        }
    }
    console.write("memory: ");
    console.write_decimal(info.memmap_entries);
    console.write(" map entries, ");
    console.write_decimal(usable_bytes >> 20);
    console.write(" MiB usable\n");
}

}  // namespace
}  // namespace hypervisor

extern "C" void hv_main(std::uint64_t hvm_start_info_paddr) {
    using namespace hypervisor;
    console.init();
    console.write("pvkit hypervisor 0.1 (Xen x86-64 PV ABI subset)\n");

    // entry.S already checked the magic; the pointer is still the loader's word.
    const auto* info = phys_to_virt<const abi::hvm_start_info>(hvm_start_info_paddr);
    if (info == nullptr) {
        console.write("hvm_start_info outside the boot window; halting\n");
        cpu::halt_forever();
    }
    report_memory(*info);

    const std::string_view cmdline = read_cmdline(*info);
    console.write("cmdline: ");
    console.write(cmdline);
    console.write("\n");

    const std::uint8_t status = parse_exit_status(cmdline).value_or(0);
    console.write("exiting with status ");
    console.write_decimal(status);
    console.write("\n");
    cpu::outl(debug_exit_port, status);

    // Still here: there is no debug-exit device (real hardware, other VMMs).
    cpu::halt_forever();
}

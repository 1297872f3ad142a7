// SPDX-License-Identifier: BSD-2-Clause
// First C++ code after boot/entry.S: report what the PVH loader handed us, then
// leave QEMU through isa-debug-exit with the status asked for on the command line.
#include <cstdint>
#include <optional>
#include <string_view>

#include "cpu.hpp"
#include "hvm_start_info.hpp"
#include "memory_layout.hpp"
#include "serial.hpp"

namespace pvkit::hv {
namespace {

// QEMU's isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04):
// writing v makes QEMU exit with status (v << 1) | 1.
constexpr std::uint16_t kDebugExitPort = 0xf4;

// Bound on how far we read a command line, so a missing NUL cannot run us off.
constexpr std::uint64_t kMaxCmdline = 4096;

constexpr Serial kConsole{Serial::kCom1};

std::string_view read_cmdline(const pvh::HvmStartInfo& info) {
    if (info.cmdline_paddr == 0) {
        return {};
    }
    const char* text = phys_to_virt<const char>(info.cmdline_paddr, kMaxCmdline);
    if (text == nullptr) {
        return {};
    }
    std::uint64_t length = 0;
    while (length < kMaxCmdline && text[length] != '\0') {
        ++length;
    }
    return {text, length};
}

// Value of the first "exit=N" word, N decimal in 0..255; nullopt if absent or malformed.
// Indexes by hand: string_view::find/substr would pull in memchr and throwing checks.
std::optional<std::uint8_t> parse_exit_status(std::string_view cmdline) {
    constexpr std::string_view kKey = "exit=";
    std::size_t pos = 0;
    while (pos < cmdline.size()) {
        std::size_t end = pos;
        while (end < cmdline.size() && cmdline[end] != ' ') {
            ++end;
        }
        const std::string_view word{cmdline.data() + pos, end - pos};
        pos = end + 1;
        if (word.size() < kKey.size() ||
            std::string_view{word.data(), kKey.size()} != kKey) {
            continue;
        }
        const std::size_t digits = word.size() - kKey.size();
        if (digits == 0 || digits > 3) {
            return std::nullopt;
        }
        unsigned value = 0;
        for (std::size_t i = kKey.size(); i < word.size(); ++i) {
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

void report_memory(const pvh::HvmStartInfo& info) {
    if (info.version < 1 || info.memmap_paddr == 0) {
        kConsole.write("memory: no PVH memory map (start info version ");
        kConsole.write_decimal(info.version);
        kConsole.write(")\n");
        return;
    }
    const auto* map = phys_to_virt<const pvh::HvmMemmapEntry>(
        info.memmap_paddr, std::uint64_t{info.memmap_entries} * sizeof(pvh::HvmMemmapEntry));
    if (map == nullptr) {
        kConsole.write("memory: map outside the boot window\n");
        return;
    }
    std::uint64_t usable_bytes = 0;
    for (std::uint32_t i = 0; i < info.memmap_entries; ++i) {
        if (map[i].type == static_cast<std::uint32_t>(pvh::MemmapType::kRam)) {
            usable_bytes += map[i].size;
        }
    }
    kConsole.write("memory: ");
    kConsole.write_decimal(info.memmap_entries);
    kConsole.write(" map entries, ");
    kConsole.write_decimal(usable_bytes >> 20);
    kConsole.write(" MiB usable\n");
}

}  // namespace
}  // namespace pvkit::hv

extern "C" void hv_main(std::uint64_t hvm_start_info_paddr) {
    using namespace pvkit::hv;
    kConsole.init();
    kConsole.write("pvkit hypervisor 0.1 (Xen x86-64 PV ABI subset)\n");

    // entry.S already checked the magic; the pointer is still the loader's word.
    const auto* info = phys_to_virt<const pvh::HvmStartInfo>(hvm_start_info_paddr);
    if (info == nullptr) {
        kConsole.write("hvm_start_info outside the boot window; halting\n");
        cpu::halt_forever();
    }
    report_memory(*info);

    const std::string_view cmdline = read_cmdline(*info);
    kConsole.write("cmdline: ");
    kConsole.write(cmdline);
    kConsole.write("\n");

    const std::uint8_t status = parse_exit_status(cmdline).value_or(0);
    kConsole.write("exiting with status ");
    kConsole.write_decimal(status);
    kConsole.write("\n");
    cpu::outl(kDebugExitPort, status);

    // Still here: there is no debug-exit device (real hardware, other VMMs).
    cpu::halt_forever();
}

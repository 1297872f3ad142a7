// SPDX-License-Identifier: BSD-2-Clause
#include "clock.hpp"

#include "cpu.hpp"
#include "memory_layout.hpp"

namespace hypervisor::clock {
namespace {

constexpr std::uint64_t pit_hz = 1'193'182;
constexpr std::uint16_t pit_channel0 = 0x40, pit_command = 0x43;
constexpr std::uint16_t pic1_command = 0x20, pic1_data = 0x21, pic2_command = 0xA0, pic2_data = 0xA1;
// The PIT counts this many ticks (about 5 ms) while the TSC is calibrated against it.
constexpr std::uint16_t calibration_ticks = 6000;

std::uint64_t frequency;
Scale tsc_scale;
std::uint64_t start;

std::uint16_t read_channel0() {
    cpu::outb(pit_command, 0x00);  // latch channel 0
    const std::uint8_t low = cpu::inb(pit_channel0);
    return static_cast<std::uint16_t>(low | cpu::inb(pit_channel0) << 8);
}

void start_channel0(std::uint16_t count) {
    cpu::outb(pit_command, 0x30);  // channel 0, low then high byte, mode 0 (one-shot)
    cpu::outb(pit_channel0, static_cast<std::uint8_t>(count));
    cpu::outb(pit_channel0, static_cast<std::uint8_t>(count >> 8));
}

std::uint64_t calibrate() {
    if (cpu::cpuid(0).eax >= 0x15) {
        // Leaf 0x15: TSC / crystal = ebx / eax, crystal frequency in ecx.
        const cpu::CpuidLeaf tsc = cpu::cpuid(0x15);
        if (tsc.eax != 0 && tsc.ebx != 0 && tsc.ecx != 0)
            return std::uint64_t{tsc.ecx} * tsc.ebx / tsc.eax;
    }
    start_channel0(0xFFFF);
    const std::uint16_t first = read_channel0();
    const std::uint64_t tsc_first = cpu::read_tsc();
    // The TSC is read beside each count, in the loop: read after it, under QEMU's TCG, it waits for
    // the code after the loop to be translated, which added 1-3% to the frequency.
    std::uint16_t now;
    std::uint64_t tsc_last;
    do {
        now = read_channel0();
        tsc_last = cpu::read_tsc();
    } while (static_cast<std::uint16_t>(first - now) < calibration_ticks);
    return (tsc_last - tsc_first) * pit_hz / static_cast<std::uint16_t>(first - now);
}

// Xen's scale: mul / 2^32 nanoseconds per (TSC tick shifted by shift).
Scale scale_for(std::uint64_t hz) {
    std::int8_t shift = 0;
    while (hz > 2'000'000'000ull) {
        hz >>= 1;
        --shift;
    }
    while (hz <= 1'000'000'000ull) {
        hz <<= 1;
        ++shift;
    }
    return {static_cast<std::uint32_t>((1'000'000'000ull << 32) / hz), shift};
}

}  // namespace

void init() {
    // The 8259 reaches the CPU through the local APIC's LINT0 in ExtINT mode ("virtual wire"),
    // which PVH boot leaves to us: the firmware that would set it up did not run.
    auto* const apic = reinterpret_cast<volatile std::uint32_t*>(local_apic);
    constexpr std::size_t spurious_vector = 0xF0 / 4, lvt_lint0 = 0x350 / 4;
    apic[spurious_vector] = apic[spurious_vector] | 0x100;  // software enable
    apic[lvt_lint0] = 0x700;                                 // ExtINT, unmasked

    // The PICs at vectors 32-47, every line masked but the PIT's once armed.
    cpu::outb(pic1_command, 0x11);
    cpu::outb(pic2_command, 0x11);
    cpu::outb(pic1_data, timer_vector);
    cpu::outb(pic2_data, timer_vector + 8);
    cpu::outb(pic1_data, 4);
    cpu::outb(pic2_data, 2);
    cpu::outb(pic1_data, 1);
    cpu::outb(pic2_data, 1);
    cpu::outb(pic1_data, 0xFF);
    cpu::outb(pic2_data, 0xFF);

    frequency = calibrate();
    tsc_scale = scale_for(frequency);
    start = cpu::read_tsc();
    cpu::outb(pic1_data, 0xFE);  // IRQ0 only
}

std::uint64_t tsc_hz() { return frequency; }
Scale scale() { return tsc_scale; }
std::uint64_t boot_tsc() { return start; }

std::uint64_t now_ns() {
    std::uint64_t delta = cpu::read_tsc() - start;
    delta = tsc_scale.shift >= 0 ? delta << tsc_scale.shift : delta >> -tsc_scale.shift;
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(delta) * tsc_scale.mul) >> 32);
}

void arm(std::uint64_t deadline_ns) {
    const std::uint64_t now = now_ns();
    const std::uint64_t wait = deadline_ns > now ? deadline_ns - now : 0;
    const std::uint64_t ticks = wait * pit_hz / 1'000'000'000ull;
    start_channel0(static_cast<std::uint16_t>(ticks < 1 ? 1 : ticks > 0xFFFF ? 0xFFFF : ticks));
}

void acknowledge() { cpu::outb(pic1_command, 0x20); }

}  // namespace hypervisor::clock

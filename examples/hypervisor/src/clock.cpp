// SPDX-License-Identifier: BSD-2-Clause
#include "clock.hpp"

#include <algorithm>
#include <optional>

#include "cpu.hpp"
#include "memory_layout.hpp"
#include "rtc.hpp"

namespace hypervisor::clock {
namespace {

constexpr std::uint64_t pit_hz = 1'193'182;
constexpr std::uint16_t pit_channel0 = 0x40, pit_command = 0x43;
constexpr std::uint16_t pic1_command = 0x20, pic1_data = 0x21, pic2_command = 0xA0, pic2_data = 0xA1;
// The PIT counts at least this many ticks (about 5 ms) while the TSC is calibrated against it.
constexpr std::uint16_t calibration_ticks = 6000;

std::uint64_t frequency;
Scale tsc_scale;
std::uint64_t start;

// Where the calibration started: channel 0's count and the TSC, read in that order (as at its
// end, so the time between the two reads cancels out).
struct CalibrationStart {
    std::uint16_t count;
    std::uint64_t tsc;
};
CalibrationStart calibration;

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

// Leaf 0x15: TSC / crystal = ebx / eax, crystal frequency in ecx; 0 where the CPU does not say.
std::uint64_t frequency_from_cpuid() {
    if (cpu::cpuid(0).eax < 0x15)
        return 0;
    const cpu::CpuidLeaf tsc = cpu::cpuid(0x15);
    if (tsc.eax == 0 || tsc.ebx == 0 || tsc.ecx == 0)
        return 0;
    return std::uint64_t{tsc.ecx} * tsc.ebx / tsc.eax;
}

void start_calibration() {
    start_channel0(0xFFFF);
    const std::uint16_t count = read_channel0();
    calibration = {count, cpu::read_tsc()};
}

// A one-shot (mode 0) count raises channel 0's OUT when it reaches zero and keeps counting down
// from 0xFFFF: OUT still low means the count has not wrapped.
bool channel0_reached_zero() {
    cpu::outb(pit_command, 0xE2);  // read-back: latch channel 0's status (not its count)
    return (cpu::inb(pit_channel0) & 0x80) != 0;
}

// The calibration has run since start_calibration, for as long as the boot took meanwhile: wait
// out what is left of calibration_ticks. After 0xFFFF ticks (55 ms) the count has wrapped and
// says nothing: start again and wait the whole interval. The TSC is read beside each count, in
// the loop: read after it, under QEMU's TCG, it waits for the code after the loop to be
// translated, which added 1-3% to the frequency.
std::uint64_t finish_calibration() {
    for (;;) {
        std::uint16_t now, elapsed;
        std::uint64_t tsc_now;
        do {
            now = read_channel0();
            tsc_now = cpu::read_tsc();
            elapsed = static_cast<std::uint16_t>(calibration.count - now);
        } while (elapsed < calibration_ticks);
        if (!channel0_reached_zero())
            return (tsc_now - calibration.tsc) * pit_hz / elapsed;
        start_calibration();
    }
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

    // The PICs at vectors 32-47, every line masked until the calibration ends (then the PIT's and
    // COM1's).
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

    frequency = frequency_from_cpuid();
    if (frequency == 0)
        start_calibration();
}

void wait_for_calibration() {
    if (frequency == 0)
        frequency = finish_calibration();
    tsc_scale = scale_for(frequency);
    start = cpu::read_tsc();
    cpu::outb(pic1_data, 0xEE);  // IRQ 0 (the PIT) and IRQ 4 (COM1's input)
}

std::uint64_t tsc_hz() { return frequency; }
Scale scale() { return tsc_scale; }
std::uint64_t boot_tsc() { return start; }

std::uint64_t now_ns() {
    std::uint64_t delta = cpu::read_tsc() - start;
    delta = tsc_scale.shift >= 0 ? delta << tsc_scale.shift : delta >> -tsc_scale.shift;
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(delta) * tsc_scale.mul) >> 32);
}

// QEMU's PIT interrupts late under TCG, by about 0.3 ms (measured with tests/boot's
// timer_accuracy guest), which a guest sleeping on a timer would see. The PIT is armed earlier by
// the lateness seen lately, and the interrupt waits out what is left before the deadline, so that
// timers fire neither early nor, mostly, late; where the PIT is punctual the lead shrinks to
// nothing.
namespace {
std::uint64_t armed_deadline = 0;  // what the PIT was last armed for
std::uint64_t programmed = 0;      // when it was told to interrupt
bool counting = false;             // armed, and its interrupt not taken yet
std::uint64_t lead_ns = 0;
// The most the lead grows to, and so the longest the interrupt waits: lateness beyond it is not
// the PIT's (interrupts were off, in a hypercall) and is not learnt.
constexpr std::uint64_t max_lead_ns = 500'000;
constexpr std::uint64_t pit_reach_ns = 0xFFFF * 1'000'000'000ull / pit_hz;
}  // namespace

void arm(std::uint64_t deadline_ns) {
    // Programming the PIT is three port writes, each slow under TCG: not again for the deadline
    // it already counts towards.
    if (deadline_ns == armed_deadline && counting)
        return;
    counting = true;
    const std::uint64_t now = now_ns();
    armed_deadline = deadline_ns;
    programmed = deadline_ns > now + lead_ns ? deadline_ns - lead_ns : now;
    const std::uint64_t wait = std::min(programmed - now, pit_reach_ns);
    const std::uint64_t ticks = wait * pit_hz / 1'000'000'000ull;
    start_channel0(static_cast<std::uint16_t>(ticks < 1 ? 1 : ticks));
}

void timer_interrupt_arrived() {
    acknowledge();
    counting = false;
    const std::uint64_t now = now_ns();
    if (now > programmed && now - programmed <= max_lead_ns)
        lead_ns = (3 * lead_ns + (now - programmed)) / 4;
    // Only what the lead took off: an interrupt for a deadline beyond the PIT's reach (55 ms)
    // comes early on purpose, and the caller arms the PIT again.
    if (armed_deadline > now && armed_deadline - now <= max_lead_ns)
        while (now_ns() < armed_deadline)
            cpu::pause();
}

void acknowledge() { cpu::outb(pic1_command, 0x20); }

namespace {

std::uint8_t cmos(std::uint8_t index) {
    cpu::outb(0x70, index);  // bit 7 clear: NMIs stay enabled
    return cpu::inb(0x71);
}

// The fields between two updates; nullopt when no RTC answers (a machine without one reads 0xff
// from every port) or an update never ends.
std::optional<rtc::Fields> read_rtc_fields() {
    constexpr int tries = 100000;  // an update takes under 2 ms; a read of port 0x71 at least 1 us
    for (int attempt = 0; attempt < tries; ++attempt) {
        const std::uint8_t status_a = cmos(0x0a);
        if (status_a == 0xff)
            return std::nullopt;
        if (!(status_a & 0x80))  // no update in progress: the fields hold still for 244 us at least
            return rtc::Fields{cmos(0x00), cmos(0x02), cmos(0x04), cmos(0x07), cmos(0x08), cmos(0x09)};
    }
    return std::nullopt;
}

// Seconds since the epoch the RTC says, or 0 for fields out of range.
std::uint64_t read_rtc_seconds() {
    std::optional<rtc::Fields> fields = read_rtc_fields();
    for (int reads = 0; fields && reads < 4; ++reads) {  // until two reads agree: no update between
        const std::optional<rtc::Fields> again = read_rtc_fields();
        if (again == fields)
            break;
        fields = again;
    }
    return fields ? rtc::seconds_since_epoch(*fields, cmos(0x0b)) : 0;
}

}  // namespace

WallClock wall_clock_at_boot() {
    static const WallClock at_boot = [] {
        const std::uint64_t rtc_seconds = read_rtc_seconds();
        const std::uint64_t since_boot = now_ns();
        constexpr std::uint64_t second = 1'000'000'000;
        if (rtc_seconds == 0 || rtc_seconds * second < since_boot)
            return WallClock{};
        const std::uint64_t boot_ns = rtc_seconds * second - since_boot;
        return WallClock{boot_ns / second, static_cast<std::uint32_t>(boot_ns % second)};
    }();
    return at_boot;
}

}  // namespace hypervisor::clock

// SPDX-License-Identifier: BSD-2-Clause
// Time on this machine: system time from the TSC (calibrated once against the PIT, or read from
// CPUID leaf 0x15 where the CPU says its frequency), in the scale Xen's pvclock uses, and one-shot
// timer interrupts from PIT channel 0 through the legacy PIC, as vector timer_vector.
#pragma once

#include <cstdint>

namespace hypervisor::clock {

inline constexpr std::uint8_t timer_vector = 32;
// The legacy PIC's lines are vectors timer_vector + line; COM1's input is line 4.
inline constexpr std::uint8_t serial_input_vector = timer_vector + 4;

struct Scale {
    std::uint32_t mul;  // ns = ((tsc_delta << shift, or >> -shift) * mul) >> 32
    std::int8_t shift;
};

// Routes the PIT's interrupt to timer_vector (masked until armed) and starts calibrating the TSC
// against the PIT, which goes on while the boot does other work (about 5 ms are needed).
void init();
// Ends the calibration, waiting out what is left of it. Every function below needs it done.
void wait_for_calibration();
std::uint64_t tsc_hz();
Scale scale();
std::uint64_t boot_tsc();
// Nanoseconds since wait_for_calibration().
std::uint64_t now_ns();
// One interrupt at about system time `deadline_ns` (at once if it has passed); the PIT reaches at
// most ~55 ms ahead, so a later deadline gets an early interrupt and is armed again.
void arm(std::uint64_t deadline_ns);
// The timer's interrupt was taken: acknowledged at the PIC, and the deadline the PIT was armed
// for waited out if the interrupt came early (the PIT is armed ahead by its recent lateness).
void timer_interrupt_arrived();
// Another interrupt (serial input) was taken: acknowledge it at the PIC.
void acknowledge();

// The wall time at system time 0 (what shared_info's wc_sec/wc_nsec say), from the CMOS real-time
// clock (UTC on QEMU, as on most hypervisor hosts), read once and kept; 0 when it reads as
// nonsense. Needs wait_for_calibration().
struct WallClock {
    std::uint64_t sec = 0;
    std::uint32_t nsec = 0;
};
WallClock wall_clock_at_boot();

}  // namespace hypervisor::clock

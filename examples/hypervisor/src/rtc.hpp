// SPDX-License-Identifier: BSD-2-Clause
// The CMOS real-time clock's date registers, decoded: BCD or binary as status register B says,
// 12- or 24-hour, two-digit years taken as 20xx (the century register is not standard). Pure, so
// the host's unit tests build it (rtc.cpp); clock.cpp reads the registers.
#pragma once

#include <cstdint>

namespace hypervisor::rtc {

struct Fields {
    std::uint8_t second, minute, hour, day, month, year;  // CMOS registers 0x00, 0x02, 0x04, 0x07, 0x08, 0x09
    bool operator==(const Fields&) const = default;
};

inline constexpr std::uint8_t status_b_24_hour = 0x02;
inline constexpr std::uint8_t status_b_binary = 0x04;

// Days from 1970-01-01 to a civil date of the proleptic Gregorian calendar (negative before).
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day);

// Seconds since 1970-01-01 00:00 that the fields say, or 0 when a field is out of range.
std::uint64_t seconds_since_epoch(const Fields& fields, std::uint8_t status_b);

}  // namespace hypervisor::rtc

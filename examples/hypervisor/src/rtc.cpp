// SPDX-License-Identifier: BSD-2-Clause
#include "rtc.hpp"

namespace hypervisor::rtc {

std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
    // Counted in 400-year eras of 146097 days from 0000-03-01, so that February is a year's end.
    year -= month <= 2;
    const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
    const auto year_of_era = static_cast<unsigned>(year - era * 400);
    const unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

namespace {
unsigned days_in_month(unsigned year, unsigned month) {
    constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return days[month - 1] + (month == 2 && leap);
}
}  // namespace

std::uint64_t seconds_since_epoch(const Fields& fields, std::uint8_t status_b) {
    const bool binary = status_b & status_b_binary, hours_24 = status_b & status_b_24_hour;
    const auto value = [&](std::uint8_t field) -> unsigned {
        if (binary)
            return field;
        if ((field & 0x0f) > 9 || (field >> 4) > 9)
            return 0xff;  // not BCD: out of every range below
        return (field >> 4) * 10u + (field & 0x0fu);
    };
    const bool pm = !hours_24 && (fields.hour & 0x80);
    unsigned hour = value(hours_24 ? fields.hour : static_cast<std::uint8_t>(fields.hour & 0x7f));
    if (!hours_24) {
        if (hour < 1 || hour > 12)
            return 0;
        hour = hour % 12 + (pm ? 12 : 0);
    }
    const unsigned second = value(fields.second), minute = value(fields.minute), day = value(fields.day),
                   month = value(fields.month), year = value(fields.year);
    if (second > 59 || minute > 59 || hour > 23 || month < 1 || month > 12 || year > 99 || day < 1 ||
        day > days_in_month(2000 + year, month))
        return 0;
    return static_cast<std::uint64_t>(days_from_civil(2000 + year, month, day)) * 86400 + hour * 3600 + minute * 60 +
           second;
}

}  // namespace hypervisor::rtc

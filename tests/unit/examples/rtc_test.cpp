// examples/hypervisor/src/rtc.cpp: the CMOS clock's registers as seconds since 1970, in each of
// the register formats status B can select, and nonsense refused.
#include "rtc.hpp"

#include <catch2/catch.hpp>

#include <cstdint>

namespace {
using hypervisor::rtc::Fields;
using hypervisor::rtc::seconds_since_epoch;
constexpr std::uint8_t bcd_24_hour = hypervisor::rtc::status_b_24_hour;
constexpr std::uint8_t binary_24_hour = hypervisor::rtc::status_b_24_hour | hypervisor::rtc::status_b_binary;
constexpr std::uint8_t bcd_12_hour = 0;
constexpr std::uint8_t pm = 0x80;
}  // namespace

TEST_CASE("rtc: days_from_civil agrees with counting the days one by one", "[examples][rtc]") {
    constexpr unsigned month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    std::int64_t days = 0;
    for (unsigned year = 1970; year <= 2100; ++year) {
        const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        for (unsigned month = 1; month <= 12; ++month) {
            const unsigned length = month_days[month - 1] + (month == 2 && leap);
            for (unsigned day = 1; day <= length; ++day, ++days)
                REQUIRE(hypervisor::rtc::days_from_civil(year, month, day) == days);
        }
    }
    CHECK(hypervisor::rtc::days_from_civil(1969, 12, 31) == -1);
}

// Expected values from Python's calendar.timegm.
TEST_CASE("rtc: BCD and binary registers, 24-hour", "[examples][rtc]") {
    CHECK(seconds_since_epoch({0x37, 0x55, 0x09, 0x28, 0x11, 0x26}, bcd_24_hour) == 1795859737);  // 2026-11-28 09:55:37
    CHECK(seconds_since_epoch({37, 55, 9, 28, 11, 26}, binary_24_hour) == 1795859737);
    CHECK(seconds_since_epoch({0x00, 0x00, 0x00, 0x01, 0x01, 0x00}, bcd_24_hour) == 946684800);   // 2000-01-01
    CHECK(seconds_since_epoch({0x59, 0x59, 0x23, 0x29, 0x02, 0x24}, bcd_24_hour) == 1709251199);  // 2024-02-29 23:59:59
    CHECK(seconds_since_epoch({0x00, 0x00, 0x12, 0x31, 0x12, 0x99}, bcd_24_hour) == 4102401600);  // 2099-12-31 12:00
}

TEST_CASE("rtc: 12-hour registers: 12 AM is midnight, 12 PM noon, bit 7 is PM", "[examples][rtc]") {
    const std::uint64_t midnight = 951868800;  // 2000-03-01 00:00
    CHECK(seconds_since_epoch({0, 0, 0x12, 0x01, 0x03, 0x00}, bcd_12_hour) == midnight);
    CHECK(seconds_since_epoch({0, 0, 0x01, 0x01, 0x03, 0x00}, bcd_12_hour) == midnight + 3600);
    CHECK(seconds_since_epoch({0, 0, 0x12 | pm, 0x01, 0x03, 0x00}, bcd_12_hour) == midnight + 12 * 3600);
    CHECK(seconds_since_epoch({0, 0, 0x11 | pm, 0x01, 0x03, 0x00}, bcd_12_hour) == midnight + 23 * 3600);
    CHECK(seconds_since_epoch({0, 0, 11 | pm, 1, 3, 0}, hypervisor::rtc::status_b_binary) == midnight + 23 * 3600);
    CHECK(seconds_since_epoch({0, 0, 0x00, 0x01, 0x03, 0x00}, bcd_12_hour) == 0);  // no hour 0 on a 12-hour clock
    CHECK(seconds_since_epoch({0, 0, 0x13, 0x01, 0x03, 0x00}, bcd_12_hour) == 0);
}

TEST_CASE("rtc: fields out of range, or not BCD, are refused", "[examples][rtc]") {
    const Fields good{0x37, 0x55, 0x09, 0x28, 0x11, 0x26};
    REQUIRE(seconds_since_epoch(good, bcd_24_hour) != 0);
    Fields bad = good;
    bad.second = 0x60;
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.minute = 0x5a;  // not BCD
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.hour = 0x24;
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.month = 0x13;
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad.month = 0x00;
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.day = 0x00;
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.day = 0x31;  // November has 30
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = {0, 0, 0, 0x29, 0x02, 0x26};  // 2026 is not a leap year
    CHECK(seconds_since_epoch(bad, bcd_24_hour) == 0);
    bad = good;
    bad.year = 100;
    CHECK(seconds_since_epoch(bad, binary_24_hour) == 0);
    // What a machine without an RTC reads: 0xff everywhere.
    CHECK(seconds_since_epoch({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xff) == 0);
}

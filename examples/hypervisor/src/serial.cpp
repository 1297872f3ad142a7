// SPDX-License-Identifier: BSD-2-Clause
#include "serial.hpp"

#include "cpu.hpp"

namespace pvkit::hv {
namespace {

// Register offsets from the I/O base (the DLAB bit in LCR selects the divisor latch).
constexpr std::uint16_t kData = 0;          // THR on write; DLL when DLAB=1
constexpr std::uint16_t kIntEnable = 1;     // IER; DLM when DLAB=1
constexpr std::uint16_t kFifoControl = 2;   // FCR
constexpr std::uint16_t kLineControl = 3;   // LCR
constexpr std::uint16_t kModemControl = 4;  // MCR
constexpr std::uint16_t kLineStatus = 5;    // LSR

constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kLcr8N1 = 0x03;
constexpr std::uint8_t kFcrEnableAndClear = 0x07;  // enable, clear RX and TX FIFOs
constexpr std::uint8_t kMcrDtrRts = 0x03;
constexpr std::uint8_t kLsrThrEmpty = 0x20;

// The UART clock is 1.8432 MHz / 16 = 115200, so divisor 1 gives 115200 baud.
constexpr std::uint16_t kDivisor115200 = 1;

}  // namespace

void Serial::init() const {
    cpu::outb(base_ + kIntEnable, 0x00);
    cpu::outb(base_ + kLineControl, kLcrDlab);
    cpu::outb(base_ + kData, kDivisor115200 & 0xff);
    cpu::outb(base_ + kIntEnable, kDivisor115200 >> 8);
    cpu::outb(base_ + kLineControl, kLcr8N1);
    cpu::outb(base_ + kFifoControl, kFcrEnableAndClear);
    cpu::outb(base_ + kModemControl, kMcrDtrRts);
}

void Serial::put_byte(char c) const {
    while ((cpu::inb(base_ + kLineStatus) & kLsrThrEmpty) == 0) {
        cpu::pause();
    }
    cpu::outb(base_ + kData, static_cast<std::uint8_t>(c));
}

void Serial::write(std::string_view text) const {
    for (char c : text) {
        if (c == '\n') {
            put_byte('\r');
        }
        put_byte(c);
    }
}

void Serial::write_decimal(std::uint64_t value) const {
    char digits[20];  // 2^64 - 1 has 20 decimal digits
    int count = 0;
    do {
        digits[count++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) {
        put_byte(digits[--count]);
    }
}

}  // namespace pvkit::hv

// SPDX-License-Identifier: BSD-2-Clause
#include "serial.hpp"

#include "cpu.hpp"

namespace hypervisor {
namespace {

// Register offsets from the I/O base (the DLAB bit in LCR selects the divisor latch).
constexpr std::uint16_t reg_data = 0;           // THR on write; DLL when DLAB=1
constexpr std::uint16_t reg_int_enable = 1;     // IER; DLM when DLAB=1
constexpr std::uint16_t reg_fifo_control = 2;   // FCR
constexpr std::uint16_t reg_line_control = 3;   // LCR
constexpr std::uint16_t reg_modem_control = 4;  // MCR
constexpr std::uint16_t reg_line_status = 5;    // LSR

constexpr std::uint8_t lcr_dlab = 0x80;
constexpr std::uint8_t lcr_8n1 = 0x03;
constexpr std::uint8_t fcr_enable_and_clear = 0x07;  // enable, clear RX and TX FIFOs
constexpr std::uint8_t mcr_dtr_rts = 0x03;
constexpr std::uint8_t mcr_out2 = 0x08;  // gates the UART's interrupt line on PC hardware
constexpr std::uint8_t ier_received_data = 0x01;
constexpr std::uint8_t lsr_data_ready = 0x01;
constexpr std::uint8_t lsr_thr_empty = 0x20;

// The UART clock is 1.8432 MHz / 16 = 115200, so divisor 1 gives 115200 baud.
constexpr std::uint16_t divisor_115200 = 1;

}  // namespace

void Serial::init() const {
    cpu::outb(base_ + reg_int_enable, 0x00);
    cpu::outb(base_ + reg_line_control, lcr_dlab);
    cpu::outb(base_ + reg_data, divisor_115200 & 0xff);
    cpu::outb(base_ + reg_int_enable, divisor_115200 >> 8);
    cpu::outb(base_ + reg_line_control, lcr_8n1);
    cpu::outb(base_ + reg_fifo_control, fcr_enable_and_clear);
    cpu::outb(base_ + reg_modem_control, mcr_dtr_rts);
}

void Serial::put_byte(char c) const {
    while ((cpu::inb(base_ + reg_line_status) & lsr_thr_empty) == 0) {
        cpu::pause();
    }
    cpu::outb(base_ + reg_data, static_cast<std::uint8_t>(c));
}

void Serial::enable_input_interrupt() const {
    cpu::outb(base_ + reg_modem_control, mcr_dtr_rts | mcr_out2);
    cpu::outb(base_ + reg_int_enable, ier_received_data);
}

std::optional<char> Serial::read_byte() const {
    if ((cpu::inb(base_ + reg_line_status) & lsr_data_ready) == 0)
        return std::nullopt;
    return static_cast<char>(cpu::inb(base_ + reg_data));
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

void Serial::write_hex(std::uint64_t value) const {
    write("0x");
    for (int shift = 60; shift >= 0; shift -= 4) {
        put_byte("0123456789abcdef"[(value >> shift) & 0xF]);
    }
}

}  // namespace hypervisor

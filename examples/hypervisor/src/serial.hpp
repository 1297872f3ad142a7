// SPDX-License-Identifier: BSD-2-Clause
// 16550 UART driver: output polled, enough for boot messages and the test harness, which reads
// COM1 through QEMU's -serial stdio; input by the received-data interrupt (IRQ 4 for COM1).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hypervisor {

class Serial {
public:
    static constexpr std::uint16_t com1 = 0x3f8;

    explicit constexpr Serial(std::uint16_t io_base) : base_(io_base) {}

    // 115200 baud, 8 data bits, no parity, 1 stop bit, FIFOs on, interrupts off.
    void init() const;
    // Writes one byte as-is once the transmit holding register is empty.
    void put_byte(char c) const;
    // Writes text, turning "\n" into "\r\n" so raw terminals show lines.
    void write(std::string_view text) const;
    void write_decimal(std::uint64_t value) const;
    // 0x and 16 hex digits.
    void write_hex(std::uint64_t value) const;

    // Raises the UART's interrupt while received bytes wait (read them with read_byte).
    void enable_input_interrupt() const;
    // The next received byte, if there is one.
    std::optional<char> read_byte() const;

private:
    std::uint16_t base_;
};

}  // namespace hypervisor

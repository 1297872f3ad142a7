/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The bare-metal baseline for `./pvkit run hello` (tests/bench/boot_time.py): the same visible work
 * with no hypervisor underneath. Print a greeting on COM1, read the TSC and print it, leave QEMU
 * through isa-debug-exit with status 0, as the hypervisor does.
 */
#include <stdint.h>

#define COM1 0x3f8
#define LSR_THR_EMPTY 0x20
#define DEBUG_EXIT_PORT 0xf4
#define HVM_START_MAGIC 0x336ec578

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static void put_byte(char c)
{
    while ((inb(COM1 + 5) & LSR_THR_EMPTY) == 0)
        __asm__ volatile("pause");
    outb(COM1, (uint8_t)c);
}

static void write_text(const char *text)
{
    for (; *text != '\0'; ++text) {
        if (*text == '\n')
            put_byte('\r');
        put_byte(*text);
    }
}

static void write_decimal(uint64_t value)
{
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0)
        put_byte(digits[--count]);
}

/* The UART as the hypervisor's Serial::init leaves it: 115200 8N1, FIFOs on, no interrupts. */
static void init_serial(void)
{
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 1);
    outb(COM1 + 1, 0);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0x07);
    outb(COM1 + 4, 0x03);
}

_Noreturn static void exit_qemu(uint8_t status)
{
    __asm__ volatile("outl %0, %1" : : "a"((uint32_t)status), "Nd"((uint16_t)DEBUG_EXIT_PORT));
    for (;;)
        __asm__ volatile("cli; hlt");
}

_Noreturn void baremetal_main(uint32_t hvm_start_info_paddr)
{
    init_serial();
    /* Proof that QEMU entered through the PVH note: EBX points at the start info. */
    if (*(const volatile uint32_t *)(uintptr_t)hvm_start_info_paddr != HVM_START_MAGIC) {
        write_text("bad hvm_start_info magic\n");
        exit_qemu(1);
    }
    write_text("hello from a bare-metal kernel\n");
    uint32_t low, high;
    __asm__ volatile("rdtsc" : "=a"(low), "=d"(high));
    write_text("tsc: ");
    write_decimal((uint64_t)high << 32 | low);
    write_text("\n");
    exit_qemu(0);
}

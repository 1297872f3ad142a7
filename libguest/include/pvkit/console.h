/*
 * Console, C API (guest/console.hpp): console_io until pvk_console_init takes the PV console ring
 * over; on the ring, a full ring waits for the back end instead of dropping output.
 */
#ifndef PVKIT_CONSOLE_H
#define PVKIT_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Uses the ring of start_info from now on; 0, or -1 (no ring: the initial domain). */
int pvk_console_init(void);
/* 0 when all was written, -1 when console_io refused or the ring is broken. */
int pvk_console_write(const char *text, size_t length);
/* Waits until the back end has consumed everything written (0), or the deadline passed (-1); the
 * deadline is pvk_monotonic_ns time, 0 meaning no limit. */
int pvk_console_flush(uint64_t deadline_ns);
/* Input from the ring: waits for at least one byte until `deadline_ns` (0: no limit; a deadline
 * already past: no waiting); how many bytes were copied. */
size_t pvk_console_read(char *buffer, size_t capacity, uint64_t deadline_ns);
/* printf onto the console (pvkit/format.h's conversions); the length, or -1 if writing failed. */
int pvk_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
int pvk_vprintf(const char *format, va_list arguments) __attribute__((format(printf, 1, 0)));

#ifdef __cplusplus
}
#endif
#endif

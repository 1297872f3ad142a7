/*
 * printf-style formatting without libc, for C and C++ guests.
 *
 * Conversions: %d %i %u %x %X %p %s %c %%; length modifiers l, ll, z; flags '0' and '-'; a field
 * width and a precision, each a number or '*' (precision: the most characters of a string, the
 * fewest digits of an integer, as C's printf). %p prints 0x and lower-case hex ("(nil)" for
 * NULL), %s of NULL prints "(null)", both as glibc does. An unknown conversion is printed as
 * written, from its '%'. Nothing here allocates, and nothing is written past a buffer's size.
 *
 * Each function returns the number of characters the whole output has (not counting the
 * terminating NUL), whether or not it fit: snprintf's contract.
 */
#ifndef PVKIT_FORMAT_H
#define PVKIT_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receives the output in pieces, in order. */
typedef void (*pvk_format_sink)(void *context, const char *text, size_t length);

/* Formats into `buffer`, writing at most `size` bytes including a NUL (none if size is 0). */
int pvk_snprintf(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
int pvk_vsnprintf(char *buffer, size_t size, const char *format, va_list arguments)
    __attribute__((format(printf, 3, 0)));

/* Formats into a sink. */
int pvk_format(pvk_format_sink sink, void *context, const char *format, ...) __attribute__((format(printf, 3, 4)));
int pvk_vformat(pvk_format_sink sink, void *context, const char *format, va_list arguments)
    __attribute__((format(printf, 3, 0)));

#ifdef __cplusplus
}
#endif
#endif

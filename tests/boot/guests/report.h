/* What conformance guests print with: lines through console_io, and checks that say PASS or FAIL. */
#ifndef REPORT_H
#define REPORT_H

#include <stdint.h>

#include <pvkit/guest.h>

void report_text(const char *text);
void report_hex(uint64_t value);
/* "PASS what" or "FAIL what"; returns whether it held, and counts the failures. */
int report_check(int holds, const char *what);
/* Whether `text` (NUL-terminated, in memory another party may change) reads `expected`. */
int report_text_is(const volatile char *text, const char *expected);
/* The failures counted so far: pvk_main returns it, so that any failure crashes the domain. */
int report_failures(void);

#endif

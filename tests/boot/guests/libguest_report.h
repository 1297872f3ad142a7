/* PASS/FAIL lines for the libguest boot guests, printed with pvk_printf (through the console ring
 * once the guest took it over), unlike report.c, which stays on console_io. */
#ifndef LIBGUEST_REPORT_H
#define LIBGUEST_REPORT_H
#include <pvkit/guest.h>

static int checks, failures;

/* "PASS what" or "FAIL what"; returns whether it held. */
static int check(int holds, const char *what)
{
    ++checks;
    failures += !holds;
    pvk_printf("%s %s\n", holds ? "PASS" : "FAIL", what);
    return holds;
}

/* Whether `text` (NUL-terminated, in memory another domain may change) reads `expected`. */
static inline int text_is(const volatile char *text, const char *expected)
{
    for (; *expected != '\0'; ++text, ++expected)
        if (*text != *expected)
            return 0;
    return *text == '\0';
}

/* The RESULT line, the ring drained, and the failures for pvk_main to return. */
static int report_result(void)
{
    pvk_printf("RESULT: %d/%d\n", checks - failures, checks);
    pvk_console_flush(pvk_monotonic_ns() + 1000000000ull);
    return failures;
}
#endif

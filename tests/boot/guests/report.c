#include "report.h"

static int failures;

void report_text(const char *text)
{
    unsigned length = 0;
    while (text[length] != '\0')
        ++length;
    pvk_consoleio_write(length, (char *)text); /* console_io only reads the buffer */
}

void report_hex(uint64_t value)
{
    char digits[19] = "0x";
    for (int i = 0; i < 16; ++i)
        digits[2 + i] = "0123456789abcdef"[(value >> (60 - 4 * i)) & 0xF];
    digits[18] = '\0';
    report_text(digits);
}

int report_check(int holds, const char *what)
{
    report_text(holds ? "PASS " : "FAIL ");
    report_text(what);
    report_text("\n");
    if (!holds)
        ++failures;
    return holds;
}

int report_text_is(const volatile char *text, const char *expected)
{
    for (; *expected != '\0'; ++text, ++expected)
        if (*text != *expected)
            return 0;
    return *text == '\0';
}

int report_failures(void)
{
    return failures;
}

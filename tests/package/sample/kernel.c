/* A kernel of its own, outside pvkit's tree: libguest's start of day calls pvk_main, which formats
 * a line with pvk_snprintf and prints it through console_io. */
#include <pvkit/format.h>
#include <pvkit/guest.h>

int pvk_main(const struct pvk_start_info *start_info)
{
    char line[96];
    const int length = pvk_snprintf(line, sizeof line, "out-of-tree kernel: %lu pages, magic %.14s\n",
                                    (unsigned long)start_info->nr_pages, start_info->magic);
    return length <= 0 || pvk_consoleio_write((unsigned)length, line) < 0;
}

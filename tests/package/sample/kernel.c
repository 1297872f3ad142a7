/* A kernel of its own, outside pvkit's tree, on an installed libguest's C API: the start of day,
 * the PV console ring, the clock and a sleep. */
#include <pvkit/guest.h>

int pvk_main(const struct pvk_start_info *start_info)
{
    if (pvk_setup() != 0 || pvk_console_init() != 0)
        return 1;
    const uint64_t before = pvk_monotonic_ns();
    pvk_sleep_ns(5000000);
    const uint64_t slept = pvk_monotonic_ns() - before;
    pvk_printf("out-of-tree kernel: %lu pages, magic %.14s, slept %s\n", (unsigned long)start_info->nr_pages,
               start_info->magic, slept >= 5000000 ? "at least 5 ms" : "too little");
    return pvk_console_flush(pvk_monotonic_ns() + 1000000000ull) != 0;
}

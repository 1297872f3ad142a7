/* Conformance: a guest kernel runs in ring 3, so hlt faults; with no trap table the domain must
 * crash, never the hypervisor. */
#include "report.h"

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    report_text("executing hlt with no trap handler\n");
    __asm__ volatile("hlt");
    report_check(0, "hlt did not return");
    return report_failures();
}

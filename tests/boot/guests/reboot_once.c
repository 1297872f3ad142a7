/* A domain that reboots once: the first time it runs (as domain 1, which its xenstore home says)
 * it shuts down with SHUTDOWN_reboot, which the default on_reboot = "restart" answers by building
 * it again as a new domain; that one powers off. */
#include "report.h"
#include "xs.h"

int pvk_main(const struct pvk_start_info *info)
{
    xs_init(info);
    char domid[16];
    report_check(xs_read(0, "domid", domid, sizeof domid) == 0, "domid read from the xenstore");
    report_text("reboot_once: running as domain ");
    report_text(domid);
    report_text("\n");
    if (xs_parse_decimal(domid) == 1) {
        struct pvk_sched_shutdown reboot = {.reason = PVK_SHUTDOWN_reboot};
        pvk_schedop_shutdown(&reboot);
        report_check(0, "the domain stopped at its reboot");
    }
    return report_failures();
}

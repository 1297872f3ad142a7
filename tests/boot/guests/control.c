/* The control domain (a privileged domain of the bundle, built first): it finds SIF_PRIVILEGED in
 * start_info, binds VIRQ_DOM_EXC, which only the control domain may, and waits for it: another
 * domain of the bundle powers off meanwhile, and Xen's toolstacks learn it just so. */
#include "events.h"
#include "report.h"

int pvk_main(const struct pvk_start_info *info)
{
    report_check(events_map_shared_info(info), "shared_info mapped");
    report_check((info->flags & PVK_SIF_PRIVILEGED) != 0, "start_info says the domain is privileged");
    struct pvk_evtchn_bind_virq bind = {.virq = PVK_VIRQ_DOM_EXC, .vcpu = 0};
    report_check(pvk_evtchnop_bind_virq(&bind) == 0, "VIRQ_DOM_EXC bound");
    report_text("control: waiting for another domain to stop\n");
    const uint64_t deadline = pvclock_ns(&events_shared.vcpu_info[0].time) + 5000000000ull;
    report_check(events_wait(bind.port, deadline), "VIRQ_DOM_EXC came when the other domain stopped");
    return report_failures();
}

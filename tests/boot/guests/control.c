/* The control domain (a privileged domain of the bundle, built first): it finds SIF_PRIVILEGED and
 * SIF_INITDOMAIN in start_info and no console or store page, as Xen's dom0; it reads a line typed
 * on the serial console with CONSOLEIO_read as VIRQ_CONSOLE announces it; it binds VIRQ_DOM_EXC,
 * which only the control domain may, and waits for it: another domain of the bundle powers off
 * meanwhile, and Xen's toolstacks learn it just so. */
#include "events.h"
#include "report.h"

#define SECOND 1000000000ull

/* A line typed on the console, up to its carriage return or newline, within `deadline`. */
static int read_typed_line(uint32_t console_port, char *line, unsigned size, uint64_t deadline)
{
    unsigned length = 0;
    while (events_wait(console_port, deadline)) {
        char chunk[16];
        const long count = pvk_consoleio_read(sizeof chunk, chunk);
        for (long i = 0; i < count; ++i) {
            if (chunk[i] == '\r' || chunk[i] == '\n') {
                line[length] = 0;
                return 1;
            }
            if (length + 1 < size)
                line[length++] = chunk[i];
        }
        if (count < 0)
            return 0;
    }
    return 0;
}

int pvk_main(const struct pvk_start_info *info)
{
    report_check(events_map_shared_info(info), "shared_info mapped");
    report_check((info->flags & PVK_SIF_PRIVILEGED) != 0, "start_info says the domain is privileged");
    report_check((info->flags & PVK_SIF_INITDOMAIN) != 0 && info->store_mfn == 0 && info->console.domU.mfn == 0,
                 "start_info: the initial domain, with no store or console page");
    struct pvk_evtchn_bind_virq bind = {.virq = PVK_VIRQ_DOM_EXC, .vcpu = 0};
    report_check(pvk_evtchnop_bind_virq(&bind) == 0, "VIRQ_DOM_EXC bound");
    struct pvk_evtchn_bind_virq console = {.virq = PVK_VIRQ_CONSOLE, .vcpu = 0};
    report_check(pvk_evtchnop_bind_virq(&console) == 0, "VIRQ_CONSOLE bound");
    report_text("control: type a line\n");
    char line[32];
    const int typed = read_typed_line(console.port, line, sizeof line,
                                      pvclock_ns(&events_shared.vcpu_info[0].time) + 10 * SECOND);
    report_check(typed && report_text_is(line, "hello dom0"), "the typed line came through CONSOLEIO_read");
    report_text("control: waiting for another domain to stop\n");
    const uint64_t deadline = pvclock_ns(&events_shared.vcpu_info[0].time) + 5 * SECOND;
    report_check(events_wait(bind.port, deadline), "VIRQ_DOM_EXC came when the other domain stopped");
    return report_failures();
}

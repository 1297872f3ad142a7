/* A CPU-bound domain: it spins for 1.5 s of system time without a hypercall, events masked, so
 * only the timer interrupt's preemption lets other domains run meanwhile; then it says how long
 * it spun and powers off. */
#include "events.h"
#include "pvclock.h"
#include "report.h"

int pvk_main(const struct pvk_start_info *info)
{
    report_check(events_map_shared_info(info), "shared_info mapped");
    const volatile struct pvk_vcpu_time_info *time = &events_shared.vcpu_info[0].time;
    const uint64_t start = pvclock_ns(time);
    uint64_t spins = 0;
    while (pvclock_ns(time) - start < 1500000000ull)
        ++spins;
    report_check(spins > 0, "spun 1.5 s without a hypercall");
    return report_failures();
}

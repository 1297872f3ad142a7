/* A CPU-bound domain: it spins for 300 ms of system time without a hypercall, events masked, so
 * only the timer interrupt's preemption lets other domains run meanwhile; then it says how long
 * it spun and powers off. */
#include "pvclock.h"
#include "report.h"

static volatile struct pvk_shared_info shared __attribute__((aligned(4096)));

int pvk_main(const struct pvk_start_info *info)
{
    report_check(pvk_hypercall_update_va_mapping((uint64_t)&shared, info->shared_info | 0x23, PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped");
    const volatile struct pvk_vcpu_time_info *time = &shared.vcpu_info[0].time;
    const uint64_t start = pvclock_ns(time);
    uint64_t spins = 0;
    while (pvclock_ns(time) - start < 300000000ull)
        ++spins;
    report_check(spins > 0, "spun 300 ms without a hypercall");
    return report_failures();
}

/* System time for conformance guests: the pvclock in a vcpu_info, read as xen.h's
 * vcpu_time_info describes (retried while the hypervisor updates it: version odd or changed). */
#ifndef PVCLOCK_H
#define PVCLOCK_H
#include <stdint.h>
#include <pvkit/guest.h>

static inline uint64_t pvclock_ns(const volatile struct pvk_vcpu_time_info *time)
{
    uint32_t version;
    uint64_t ns;
    do {
        version = time->version;
        __asm__ volatile("" ::: "memory");
        uint32_t low, high;
        __asm__ volatile("rdtsc" : "=a"(low), "=d"(high));
        uint64_t delta = (((uint64_t)high << 32) | low) - time->tsc_timestamp;
        delta = time->tsc_shift >= 0 ? delta << time->tsc_shift : delta >> -time->tsc_shift;
        ns = time->system_time + (uint64_t)(((unsigned __int128)delta * time->tsc_to_system_mul) >> 32);
        __asm__ volatile("" ::: "memory");
    } while ((version & 1) != 0 || version != time->version);
    return ns;
}
#endif

/* Event channels without upcalls, for the conformance guests that talk to each other: a port
 * waited for with SCHEDOP_poll and its pending bit cleared in shared_info, which the guest maps
 * over a page of its own. */
#ifndef EVENTS_H
#define EVENTS_H
#include <stdint.h>
#include <pvkit/guest.h>

#include "pvclock.h"

/* A whole page: shared_info is smaller, and the rest of the page must not hold other variables. */
static union {
    volatile struct pvk_shared_info info;
    char page[4096];
} events_page __attribute__((aligned(4096)));
#define events_shared (events_page.info)

static inline int events_map_shared_info(const struct pvk_start_info *info)
{
    return pvk_hypercall_update_va_mapping((uint64_t)&events_page, info->shared_info | 0x63, PVK_UVMF_INVLPG) == 0;
}

/* Clears `port`'s pending bit: bind_interdomain sets it on the new port, as Xen does, for a
 * notification the unbound port may have missed. */
static inline void events_clear(uint32_t port)
{
    __atomic_fetch_and(&events_shared.evtchn_pending[port / 64], ~(1ull << (port % 64)), __ATOMIC_SEQ_CST);
}

/* Waits until `port` is pending (at most until system time `deadline_ns`; 0: no limit), then
 * clears it. Whether it was pending. A poll may return early (Xen allows spurious wake-ups). */
static inline int events_wait(uint32_t port, uint64_t deadline_ns)
{
    volatile uint64_t *word = &events_shared.evtchn_pending[port / 64];
    const uint64_t bit = 1ull << (port % 64);
    while ((*word & bit) == 0 && (deadline_ns == 0 || pvclock_ns(&events_shared.vcpu_info[0].time) < deadline_ns)) {
        struct pvk_sched_poll poll = {.ports = {.p = &port}, .nr_ports = 1, .timeout = deadline_ns};
        if (pvk_schedop_poll(&poll) != 0)
            break;
    }
    const int pending = (*word & bit) != 0;
    events_clear(port);
    return pending;
}

static inline int events_send(uint32_t port)
{
    struct pvk_evtchn_send send = {.port = port};
    return pvk_evtchnop_send(&send) == 0;
}
#endif

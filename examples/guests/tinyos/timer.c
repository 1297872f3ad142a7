/*
 * The tick: VIRQ_TIMER bound to an event channel whose handler counts ticks, driven by the vCPU's
 * periodic timer (set to TICK_HZ here; Xen starts PV vCPUs with 10 ms anyway). Between ticks the
 * kernel idles in SCHEDOP_block, which gives the CPU back until an event comes.
 *
 * libguest's pvk_sleep_ns, pvk_block_until and pvk_timer_start bind VIRQ_TIMER themselves on first
 * use, and a VIRQ can be bound only once: tinyos owns VIRQ_TIMER, so it never calls them.
 */
#include "kernel.h"

static volatile uint64_t ticks;
static uint32_t port;
static uint64_t started_ns; /* when the tick started */

/* Runs in the event upcall, with events masked: short, no blocking, no console output. */
static void on_timer_event(uint32_t event_port, void *context)
{
    (void)event_port;
    (void)context;
    ticks = ticks + 1;
}

int timer_init(void)
{
    const long bound = pvk_evtchn_bind_virq(PVK_VIRQ_TIMER);
    if (bound < 0) {
        pvk_printf("tinyos: binding VIRQ_TIMER failed: error %ld\n", bound);
        return -1;
    }
    port = (uint32_t)bound;
    struct pvk_vcpu_set_periodic_timer period = {.period_ns = TICK_NS};
    started_ns = pvk_monotonic_ns(); /* the period starts when it is set */
    const long set = pvk_vcpuop_set_periodic_timer(0, &period);
    if (set != 0) {
        pvk_printf("tinyos: VCPUOP_set_periodic_timer failed: error %ld\n", set);
        return -1;
    }
    /* Binding left the port masked; the handler unmasks it. */
    if (pvk_evtchn_set_handler(port, on_timer_event, NULL) != 0) {
        pvk_printf("tinyos: no handler for port %u\n", (unsigned)port);
        return -1;
    }
    pvk_events_enable();
    return 0;
}

uint64_t timer_ticks(void)
{
    return ticks;
}

uint32_t timer_port(void)
{
    return port;
}

uint64_t timer_started_ns(void)
{
    return started_ns;
}

/* Returns once the tick count differs from `seen` (at once if it does already). With events
 * masked, the check and SCHEDOP_block cannot miss a tick between them: the block unmasks events
 * atomically and returns at once if one is pending; its upcall runs on the way back. */
void timer_wait_for_tick(uint64_t seen)
{
    const int were_masked = pvk_events_disable();
    if (ticks == seen)
        (void)pvk_schedop_block();
    pvk_events_restore(were_masked);
}

/*
 * The tick: the vCPU's periodic timer (set to TICK_HZ here; Xen starts PV vCPUs with 10 ms anyway)
 * raises VIRQ_TIMER, and a handler counts ticks. Between ticks the kernel idles in SCHEDOP_block,
 * which gives the CPU back until an event comes.
 *
 * VIRQ_TIMER can be bound only once per vCPU, and libguest's pvk_sleep_ns, pvk_block_until and
 * pvk_timer_start need it too: tinyos takes its tick through pvk_timer_set_tick, which binds
 * VIRQ_TIMER in the library and calls the handler on every VIRQ_TIMER event, so both work.
 */
#include "kernel.h"

static volatile uint64_t ticks;
static uint32_t port;
static uint64_t started_ns; /* when the tick started */

/* Runs in the event upcall, with events masked: short, no blocking, no console output. */
static void on_tick(void *context)
{
    (void)context;
    ticks = ticks + 1;
}

int timer_init(void)
{
    struct pvk_vcpu_set_periodic_timer period = {.period_ns = TICK_NS};
    started_ns = pvk_monotonic_ns(); /* the period starts when it is set */
    const long set = pvk_vcpuop_set_periodic_timer(0, &period);
    if (set != 0) {
        pvk_printf("tinyos: VCPUOP_set_periodic_timer failed: error %ld\n", set);
        return -1;
    }
    const long bound = pvk_timer_set_tick(on_tick, NULL);
    if (bound < 0) {
        pvk_printf("tinyos: no tick on VIRQ_TIMER: error %ld\n", bound);
        return -1;
    }
    port = (uint32_t)bound;
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

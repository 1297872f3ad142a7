/*
 * Time, C API (guest/time.hpp): system time from the pvclock, the wall clock, sleeping, and
 * one-shot timers whose callbacks run from the VIRQ_TIMER upcall (short, no blocking).
 */
#ifndef PVKIT_TIME_H
#define PVKIT_TIME_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Nanoseconds of system time (vCPU 0's pvclock). */
uint64_t pvk_monotonic_ns(void);
/* The wall clock now: seconds and nanoseconds since the epoch, as the hypervisor says. */
void pvk_wall_clock(uint64_t *seconds, uint32_t *nanoseconds);
/* Blocks until system time `deadline_ns` has passed. */
void pvk_block_until(uint64_t deadline_ns);
void pvk_sleep_ns(uint64_t duration_ns);

struct pvk_timer;
typedef void (*pvk_timer_callback)(struct pvk_timer *timer, void *context);
/* Caller-owned; zero it before first use. The fields are the library's. */
struct pvk_timer {
    uint64_t deadline_ns;
    pvk_timer_callback callback;
    void *context;
    struct pvk_timer *next;
    bool armed;
};
/* Arms (or moves) the timer: `callback` runs once system time reaches `deadline_ns`. 0, or -1 when
 * VIRQ_TIMER cannot be bound (the kernel bound it itself: share it with pvk_timer_set_tick). */
int pvk_timer_start(struct pvk_timer *timer, uint64_t deadline_ns, pvk_timer_callback callback, void *context);
/* 1 if it was armed. */
int pvk_timer_stop(struct pvk_timer *timer);

/* A kernel's own tick: VIRQ_TIMER can be bound once per vCPU, so the library binds it (sleeping and
 * timers need it too) and calls `handler(context)` from the upcall on every VIRQ_TIMER event, the
 * periodic timer's (VCPUOP_set_periodic_timer) and the one-shot timer's, before the timers due
 * run. NULL stops the calls. Returns VIRQ_TIMER's port, or a negative Xen errno. */
typedef void (*pvk_tick_handler)(void *context);
long pvk_timer_set_tick(pvk_tick_handler handler, void *context);

#ifdef __cplusplus
}
#endif
#endif

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
/* Arms (or moves) the timer: `callback` runs once system time reaches `deadline_ns`. */
void pvk_timer_start(struct pvk_timer *timer, uint64_t deadline_ns, pvk_timer_callback callback, void *context);
/* 1 if it was armed. */
int pvk_timer_stop(struct pvk_timer *timer);

#ifdef __cplusplus
}
#endif
#endif

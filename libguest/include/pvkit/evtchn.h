/*
 * Event channels, C API (guest/evtchn.hpp). Binding functions return the new port, masked and
 * without a handler, or a negative Xen errno. A port is either handled (pvk_evtchn_set_handler:
 * called from the upcall with events masked) or waited for (pvk_evtchn_wait: the port stays
 * masked). Deadlines are system time in ns (pvk_monotonic_ns), 0 meaning no limit.
 */
#ifndef PVKIT_EVTCHN_H
#define PVKIT_EVTCHN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*pvk_evtchn_handler)(uint32_t port, void *context);

/* Maps shared_info, registers the upcall, unmasks events; 0, or -1 on failure. Idempotent. */
int pvk_events_setup(void);
long pvk_evtchn_bind_virq(uint32_t virq);
long pvk_evtchn_bind_interdomain(uint16_t remote_domain, uint32_t remote_port);
long pvk_evtchn_alloc_unbound(uint16_t remote_domain);
long pvk_evtchn_bind_ipi(uint32_t vcpu);
long pvk_evtchn_close(uint32_t port);
/* EVTCHNOP_send: 0 or a negative Xen errno. */
long pvk_evtchn_notify(uint32_t port);
/* Calls `handler(port, context)` from the upcall for each event on the port, and unmasks the port
 * (and events, through pvk_events_setup, if not yet). 0, or an error of the handler table (1 port
 * out of range, 2 no handler, 3 already bound, 4 not bound: guest/events.hpp's EventError). */
int pvk_evtchn_set_handler(uint32_t port, pvk_evtchn_handler handler, void *context);
int pvk_evtchn_clear_handler(uint32_t port);
/* 1 when the port was pending (now cleared), 0 when the deadline passed first. */
int pvk_evtchn_wait(uint32_t port, uint64_t deadline_ns);
/* Waits for any of `count` ports (at most 128) in one SCHEDOP_poll, taking the pending bit of each
 * that fired: 1 when any had, 0 when the deadline passed first, -1 for more than 128 ports. */
int pvk_evtchn_wait_any(const uint32_t *ports, size_t count, uint64_t deadline_ns);
/* Masks events on this vCPU; 1 if they were masked already. */
int pvk_events_disable(void);
void pvk_events_enable(void);
void pvk_events_restore(int were_masked);

#ifdef __cplusplus
}
#endif
#endif

/* Conformance, two domains (with pong.c): the ping side. It offers pong (domain 2) an event
 * channel and a page through a grant, and publishes both in the xenstore, readable by pong only;
 * then it sends ROUND_TRIPS events, each answered by pong, and reports the mean round trip; at the
 * end it finds pong's answer written in the shared page, and times the same exchange with itself
 * (no domain switch) as a baseline. */
#include "events.h"
#include "pages.h"
#include "pvclock.h"
#include "report.h"
#include "xs.h"

#define PONG_DOMAIN 2
#define ROUND_TRIPS 1000
#define SHARED_GREF 8

static volatile char shared_page[4096] __attribute__((aligned(4096)));
static volatile struct pvk_grant_entry_v1 grant_table[512] __attribute__((aligned(4096)));

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    xs_init(info);
    report_check(events_map_shared_info(info), "shared_info mapped");

    struct pvk_evtchn_alloc_unbound unbound = {.dom = PVK_DOMID_SELF, .remote_dom = PONG_DOMAIN};
    report_check(pvk_evtchnop_alloc_unbound(&unbound) == 0, "a port offered to domain 2");

    pvk_xen_pfn_t frames[1];
    struct pvk_gnttab_setup_table setup = {.dom = PVK_DOMID_SELF, .nr_frames = 1, .frame_list = {.p = frames}};
    report_check(pvk_gnttabop_setup_table(&setup, 1) == 0 && setup.status == 0 &&
                     pvk_hypercall_update_va_mapping((uint64_t)grant_table, frames[0] * PAGE | 0x63, PVK_UVMF_INVLPG) == 0,
                 "the grant table set up and mapped");
    const char message[] = "hello from ping";
    for (unsigned i = 0; i < sizeof message; ++i)
        shared_page[i] = message[i];
    grant_table[SHARED_GREF].domid = PONG_DOMAIN;
    grant_table[SHARED_GREF].frame = (uint32_t)mfn_of((const void *)shared_page);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    grant_table[SHARED_GREF].flags = PVK_GTF_permit_access;

    /* data/ is ping's, readable by domain 2 (and by nobody else): its children inherit that. */
    char port_text[24], gref_text[24];
    xs_decimal(unbound.port, port_text);
    xs_decimal(SHARED_GREF, gref_text);
    const char perms[] = "n1\0r2";
    report_check(xs_write(0, "data", "") == 0 && xs_set_perms("data", perms, sizeof perms) == 0 &&
                     xs_write(0, "data/port", port_text) == 0 && xs_write(0, "data/gref", gref_text) == 0 &&
                     xs_write(0, "data/ready", "1") == 0,
                 "port and grant published in the xenstore, for domain 2 only");

    const volatile struct pvk_vcpu_time_info *time = &events_shared.vcpu_info[0].time;
    report_check(events_wait(unbound.port, pvclock_ns(time) + 5000000000ull), "pong bound the port and said so");
    const uint64_t start = pvclock_ns(time);
    int answered = 0;
    for (int trip = 0; trip < ROUND_TRIPS; ++trip)
        answered += events_send(unbound.port) && events_wait(unbound.port, pvclock_ns(time) + 1000000000ull);
    const uint64_t elapsed = pvclock_ns(time) - start;
    report_check(answered == ROUND_TRIPS, "1000 events sent, each answered");
    char mean[24];
    xs_decimal(elapsed / ROUND_TRIPS, mean);
    report_text("ping: mean round trip ");
    report_text(mean);
    report_text(" ns\n");
    report_check(report_text_is(shared_page, "hello from pong"), "pong's answer is in the granted page");

    /* The same exchange with itself (an IPI port: send, then poll finds it pending): the round
     * trip without the two domain switches, for the note's switch cost. */
    struct pvk_evtchn_bind_ipi ipi = {.vcpu = 0};
    report_check(pvk_evtchnop_bind_ipi(&ipi) == 0, "an IPI port for the baseline");
    const uint64_t self_start = pvclock_ns(time);
    int looped = 0;
    for (int trip = 0; trip < ROUND_TRIPS; ++trip)
        looped += events_send(ipi.port) && events_wait(ipi.port, 0);
    const uint64_t self_elapsed = pvclock_ns(time) - self_start;
    report_check(looped == ROUND_TRIPS, "1000 events sent to itself, each found pending");
    xs_decimal(self_elapsed / ROUND_TRIPS, mean);
    report_text("ping: mean send and poll to itself ");
    report_text(mean);
    report_text(" ns\n");
    return report_failures();
}

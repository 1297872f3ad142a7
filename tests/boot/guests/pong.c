/* Conformance, two domains (with ping.c): the pong side. It watches ping's (domain 1) data/ready
 * in the xenstore, reads the port and grant published there, binds the port, maps the page and
 * finds ping's message, writes its answer, and answers every event; a transaction of its own
 * shows isolation until commit. */
#include "events.h"
#include "pages.h"
#include "pvclock.h"
#include "report.h"
#include "xs.h"

#define PING_DOMAIN 1
#define ROUND_TRIPS 1000

static volatile char mapped_page[4096] __attribute__((aligned(4096)));

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    xs_init(info);
    report_check(events_map_shared_info(info), "shared_info mapped");

    char value[64];
    report_check(xs_watch("/local/domain/1/data/ready", "ping") == 0, "watching ping's data/ready");
    while (xs_read(0, "/local/domain/1/data/ready", value, sizeof value) != 0)
        xs_wait_watch_event();
    report_check(xs_watch_events >= 1, "the watch fired");
    char port_text[24], gref_text[24];
    report_check(xs_read(0, "/local/domain/1/data/port", port_text, sizeof port_text) == 0 &&
                     xs_read(0, "/local/domain/1/data/gref", gref_text, sizeof gref_text) == 0,
                 "ping's port and grant read from the xenstore");
    report_check(xs_write(0, "/local/domain/1/data/port", "0") != 0 && xs_error[0] == 'E',
                 "ping's keys are not writable by pong");

    struct pvk_evtchn_bind_interdomain bind = {.remote_dom = PING_DOMAIN,
                                               .remote_port = (uint32_t)xs_parse_decimal(port_text)};
    report_check(pvk_evtchnop_bind_interdomain(&bind) == 0, "ping's port bound");
    events_clear(bind.local_port); /* set by the binding; ping has sent nothing yet */
    struct pvk_gnttab_map_grant_ref map = {.host_addr = (uint64_t)mapped_page,
                                           .flags = PVK_GNTMAP_host_map,
                                           .ref = (uint32_t)xs_parse_decimal(gref_text),
                                           .dom = PING_DOMAIN};
    report_check(pvk_gnttabop_map_grant_ref(&map, 1) == 0 && map.status == 0, "ping's grant mapped");
    report_check(report_text_is(mapped_page, "hello from ping"), "the granted page shows ping's message");
    const char answer[] = "hello from pong";
    for (unsigned i = 0; i < sizeof answer; ++i)
        mapped_page[i] = answer[i];

    const volatile struct pvk_vcpu_time_info *time = &events_shared.vcpu_info[0].time;
    events_send(bind.local_port);
    int answered = 0;
    for (int trip = 0; trip < ROUND_TRIPS; ++trip)
        answered += events_wait(bind.local_port, pvclock_ns(time) + 1000000000ull) && events_send(bind.local_port);
    report_check(answered == ROUND_TRIPS, "1000 events answered");
    struct pvk_gnttab_unmap_grant_ref unmap = {.host_addr = (uint64_t)mapped_page, .handle = map.handle};
    report_check(pvk_gnttabop_unmap_grant_ref(&unmap, 1) == 0 && unmap.status == 0, "the grant unmapped");

    uint32_t transaction = 0;
    report_check(xs_transaction_start(&transaction) == 0 && xs_write(transaction, "seen", "ping") == 0 &&
                     xs_read(0, "seen", value, sizeof value) != 0 && xs_transaction_end(transaction, 1) == 0 &&
                     xs_read(0, "seen", value, sizeof value) == 0 && report_text_is(value, "ping"),
                 "a transaction's write is seen outside only once committed");
    return report_failures();
}

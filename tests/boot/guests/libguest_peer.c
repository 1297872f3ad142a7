/* The second domain of the libguest_runtime boot test: it finds the grant and port domain 1
 * published in the xenstore, binds the port, maps the granted page, reads it again through a
 * grant copy, writes its answer and says so; unmaps when asked. All through libguest's C API. */
#include <pvkit/guest.h>

#include "libguest_report.h"
#include "xs.h"

#define RUNTIME_DOMAIN 1
#define MS 1000000ull

int pvk_main(const struct pvk_start_info *info)
{
    xs_init(info);
    check(pvk_setup() == 0 && pvk_console_init() == 0, "peer: set up, console on the ring");

    char ready[8], port_text[24], ref_text[24];
    check(xs_watch("/local/domain/1/data/ready", "runtime") == 0, "peer: watching domain 1's data/ready");
    while (xs_read(0, "/local/domain/1/data/ready", ready, sizeof ready) != 0)
        xs_wait_watch_event();
    check(xs_read(0, "/local/domain/1/data/port", port_text, sizeof port_text) == 0 &&
              xs_read(0, "/local/domain/1/data/gref", ref_text, sizeof ref_text) == 0,
          "peer: port and grant read from the xenstore");

    const long port = pvk_evtchn_bind_interdomain(RUNTIME_DOMAIN, (uint32_t)xs_parse_decimal(port_text));
    check(port > 0, "peer: domain 1's port bound");
    pvk_evtchn_wait((uint32_t)port, 1); /* the binding set it pending; domain 1 sent nothing yet */
    const uint32_t ref = (uint32_t)xs_parse_decimal(ref_text);
    struct pvk_grant_mapping mapping;
    const int status = pvk_gnttab_map(RUNTIME_DOMAIN, ref, 0, &mapping);
    if (!check(status == 0 && text_is(mapping.address, "hello from libguest_runtime"), "peer: the granted page mapped"))
        return failures;

    char copied[32] = {0};
    check(pvk_gnttab_copy_from(RUNTIME_DOMAIN, ref, 0, copied, 28) == 0 && text_is(copied, "hello from libguest_runtime"),
          "peer: the same bytes through a grant copy");

    const char answer[] = "hello from libguest_peer";
    for (unsigned i = 0; i < sizeof answer; ++i)
        ((volatile char *)mapping.address)[i] = answer[i];
    pvk_evtchn_notify((uint32_t)port);
    check(pvk_evtchn_wait((uint32_t)port, pvk_monotonic_ns() + 5000 * MS) == 1 && pvk_gnttab_unmap(&mapping) == 0,
          "peer: asked to, it unmapped the page");
    pvk_evtchn_notify((uint32_t)port);
    return report_result();
}

/* Hostile: garbage on the xenstore ring. A message of an unknown type, one whose payload claims
 * more than XENSTORE_PAYLOAD_MAX (followed by that many junk bytes), and one without the NUL its
 * path needs each get an error reply, and the connection still answers a good request after
 * them; then indexes that claim more than the ring holds break the connection for good, which
 * answers nothing more, and the domain (and the others) go on. */
#include "report.h"
#include "xs.h"

int pvk_main(const struct pvk_start_info *info)
{
    xs_init(info);
    char value[64];
    report_check(xs_read(0, "name", value, sizeof value) == 0, "the store answers a read of its name");

    const struct pvk_xsd_sockmsg unknown = {.type = 9999, .req_id = 77, .len = 3};
    xs_send_raw(&unknown, sizeof unknown);
    xs_send_raw("abc", 3);
    char junk[512];
    for (unsigned i = 0; i < sizeof junk; ++i)
        junk[i] = (char)(i * 37);
    const struct pvk_xsd_sockmsg oversized = {.type = PVK_XS_WRITE, .req_id = 78, .len = 5000};
    xs_send_raw(&oversized, sizeof oversized);
    for (unsigned sent = 0; sent < 5000; sent += sizeof junk)
        xs_send_raw(junk, 5000 - sent < sizeof junk ? 5000 - sent : sizeof junk);
    report_check(xs_request(PVK_XS_READ, 0, "name", 4, value, sizeof value) == PVK_XS_ERROR,
                 "a path without its NUL is an error");
    report_check(xs_read(0, "name", value, sizeof value) == 0, "after the garbage, the store still answers");

    volatile struct pvk_xenstore_domain_interface *ring = xs_ring();
    const uint32_t answered = ring->rsp_prod;
    ring->req_prod = ring->req_cons + 5000;
    const struct pvk_evtchn_send send = {.port = info->store_evtchn};
    pvk_evtchnop_send((struct pvk_evtchn_send *)&send);
    report_check(ring->rsp_prod == answered, "indexes past the ring's size get no answer");
    report_text("hostile_store: done\n");
    return report_failures();
}

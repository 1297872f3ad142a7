/* libguest's run-time parts through their C API, in the first of two domains (the peer is
 * libguest_peer.c): the console ring with flow control and input, the heap, the clock and
 * sleeping, a VIRQ_TIMER upcall through the handler table, IPIs handled and waited for, window
 * mappings, and a page granted to the peer, which maps it and copies from it. */
#include <pvkit/guest.h>
#include <pvkit/format.h>
#include <pvkit/heap.h>

#include "libguest_report.h"
#include "xs.h"

#define PEER_DOMAIN 2
#define MS 1000000ull

static void console_checks(void)
{
    check(pvk_console_init() == 0, "console: the PV console ring taken over");
    check(pvk_printf("console: pvk_printf %d %s %x\n", -42, "through the ring", 255u) > 0,
          "console: pvk_printf through the ring");
    /* 40 lines of 64 bytes in one write: more than out[]'s 2048 bytes, so the writer must wait. */
    static char burst[40 * 64];
    for (int line = 0; line < 40; ++line) {
        char text[65]; /* 64 bytes and snprintf's NUL, which stays out of the burst */
        pvk_snprintf(text, sizeof text, "flow %02d %051d end\n", line, 0);
        for (int i = 0; i < 64; ++i)
            burst[line * 64 + i] = text[i];
    }
    check(pvk_console_write(burst, sizeof burst) == 0 && pvk_console_flush(pvk_monotonic_ns() + 2000 * MS) == 0,
          "console: 2560 bytes through the 2048-byte ring, none dropped");

    pvk_printf("console: type a line\n");
    char line[32];
    size_t length = 0;
    const uint64_t deadline = pvk_monotonic_ns() + 10000 * MS;
    while (length < sizeof line - 1 && (length == 0 || (line[length - 1] != '\r' && line[length - 1] != '\n'))) {
        const size_t got = pvk_console_read(line + length, sizeof line - 1 - length, deadline);
        if (got == 0)
            break;
        length += got;
    }
    line[length > 0 ? length - 1 : 0] = '\0';
    check(text_is(line, "pvkit"), "console: a typed line read from the ring");
}

static void heap_checks(void)
{
    const struct pvk_page_usage pages_before = pvk_page_get_usage();
    const struct pvk_heap_usage heap_before = pvk_heap_get_usage();
    char *small = pvk_malloc(100);
    char *large = pvk_malloc(3 * 4096);
    int ok = small != NULL && large != NULL;
    if (ok) {
        small[99] = 'a';
        large[3 * 4096 - 1] = 'b';
        ok = small[99] == 'a' && large[3 * 4096 - 1] == 'b';
    }
    /* The large block takes 4 pages (3 and its header's share of a fourth); the small one a slot
     * of 128 bytes, 112 usable, and a page for its class unless one was there already. */
    const struct pvk_page_usage pages_held = pvk_page_get_usage();
    const struct pvk_heap_usage heap_held = pvk_heap_get_usage();
    check(pages_before.pages > 0 && pages_held.pages == pages_before.pages &&
              (pages_before.free - pages_held.free == 4 || pages_before.free - pages_held.free == 5) &&
              heap_held.blocks == heap_before.blocks + 2 && heap_held.bytes == heap_before.bytes + 112 + 4 * 4096 - 16,
          "heap: pvk_page_get_usage and pvk_heap_get_usage count what two blocks took");
    check(ok && pvk_free(small) == PVK_HEAP_OK && pvk_free(large) == PVK_HEAP_OK && pvk_free(small) != PVK_HEAP_OK,
          "heap: pvk_malloc over the free pfns, pvk_free, a double free refused");
    check(pvk_heap_get_usage().blocks == heap_before.blocks && pvk_heap_get_usage().bytes == heap_before.bytes &&
              pvk_page_get_usage().free + 1 >= pages_before.free,
          "heap: freed blocks are counted out again, the large block's pages back");
}

static volatile int timer_fired, mask_in_timer;
static void count_tick(void *context)
{
    ++*(volatile unsigned *)context;
}

static void on_timer(struct pvk_timer *timer, void *context)
{
    (void)timer;
    (void)context;
    ++timer_fired;
    mask_in_timer = pvk_shared_info()->vcpu_info[0].evtchn_upcall_mask;
}

static void time_checks(void)
{
    uint64_t wall_before_s, wall_after_s;
    uint32_t wall_before_ns, wall_after_ns;
    pvk_wall_clock(&wall_before_s, &wall_before_ns);
    const uint64_t start = pvk_monotonic_ns();
    pvk_sleep_ns(10 * MS);
    const uint64_t slept = pvk_monotonic_ns() - start;
    pvk_wall_clock(&wall_after_s, &wall_after_ns);
    pvk_printf("time: slept %lu ns\n", (unsigned long)slept);
    check(slept >= 10 * MS && slept < 60 * MS, "time: a 10 ms sleep took 10 to 60 ms of pvclock time");
    const uint64_t wall_elapsed = (wall_after_s - wall_before_s) * 1000000000ull + wall_after_ns - wall_before_ns;
    check(wall_elapsed >= 10 * MS && wall_elapsed < 60 * MS, "time: the wall clock moved with it");

    static struct pvk_timer timer;
    static volatile unsigned ticks;
    const long tick_port = pvk_timer_set_tick(count_tick, (void *)&ticks);
    const uint64_t now = pvk_monotonic_ns();
    check(pvk_timer_start(&timer, now + 5 * MS, on_timer, NULL) == 0 && tick_port > 0,
          "time: a timer armed beside a kernel's tick on VIRQ_TIMER");
    pvk_block_until(now + 20 * MS);
    check(timer_fired == 1 && !timer.armed, "time: a 5 ms timer ran once, from the VIRQ_TIMER upcall");
    pvk_timer_set_tick(NULL, NULL);
    const unsigned ticks_seen = ticks;
    pvk_sleep_ns(15 * MS);
    check(ticks_seen >= 1 && ticks == ticks_seen, "time: the tick handler ran on VIRQ_TIMER until it was taken off");
    check(mask_in_timer == 1, "events: the handler ran with events masked");
    check(pvk_shared_info()->vcpu_info[0].evtchn_upcall_mask == 0, "events: the upcall's iret unmasked them again");
}

static volatile int ipi_calls;
static void on_ipi(uint32_t port, void *context)
{
    (void)port;
    ++*(volatile int *)context;
}

static void event_checks(void)
{
    const long handled = pvk_evtchn_bind_ipi(0);
    check(handled > 0 && pvk_evtchn_set_handler((uint32_t)handled, on_ipi, (void *)&ipi_calls) == 0,
          "events: an IPI port bound, its handler set");
    pvk_evtchn_notify((uint32_t)handled);
    check(ipi_calls == 1, "events: a notify upcalled the handler at once");
    const int were_masked = pvk_events_disable();
    pvk_evtchn_notify((uint32_t)handled);
    const int while_masked = ipi_calls;
    pvk_events_restore(were_masked);
    check(while_masked == 1 && ipi_calls == 2, "events: masked, the event waits; unmasked, it is handled");

    const long waited = pvk_evtchn_bind_ipi(0);
    pvk_evtchn_notify((uint32_t)waited);
    check(waited > 0 && pvk_evtchn_wait((uint32_t)waited, pvk_monotonic_ns() + 100 * MS) == 1,
          "events: a masked port waited for");
    const uint64_t start = pvk_monotonic_ns();
    check(pvk_evtchn_wait((uint32_t)waited, start + 5 * MS) == 0 && pvk_monotonic_ns() - start >= 5 * MS,
          "events: waiting times out at the deadline");
    const long other = pvk_evtchn_bind_ipi(0);
    const uint32_t both[2] = {(uint32_t)waited, (uint32_t)other};
    pvk_evtchn_notify((uint32_t)other);
    check(other > 0 && pvk_evtchn_wait_any(both, 2, pvk_monotonic_ns() + 100 * MS) == 1 &&
              pvk_evtchn_wait_any(both, 2, pvk_monotonic_ns() + 5 * MS) == 0,
          "events: one of two ports waited for, its pending bit taken");
    check(pvk_evtchn_close((uint32_t)handled) == 0 && pvk_evtchn_close((uint32_t)waited) == 0 &&
              pvk_evtchn_close((uint32_t)other) == 0,
          "events: ports closed");
}

static void memory_checks(void)
{
    struct pvk_page window, target;
    if (!check(pvk_page_alloc(&window) == 0 && pvk_page_alloc(&target) == 0 && window.mfn != target.mfn,
               "memory: two pages with their mfns"))
        return;
    volatile char *through_window = window.address;
    ((volatile char *)target.address)[7] = 'T';
    const long mapped = pvk_map_frame(window.address, target.mfn, 1);
    through_window[8] = 'W';
    check(mapped == 0 && through_window[7] == 'T' && ((volatile char *)target.address)[8] == 'W',
          "memory: a frame mapped at a window page");
    check(pvk_restore_page(window.address) == 0 && pvk_virt_to_mfn(window.address) == window.mfn &&
              pvk_page_free(&window) == 0 && pvk_page_free(&target) == 0 && pvk_page_free(&target) != 0,
          "memory: the window restored, pages freed, a double free refused");
}

static void grant_checks(void)
{
    struct pvk_page page;
    if (!check(pvk_page_alloc(&page) == 0, "grants: a page to share"))
        return;
    const char message[] = "hello from libguest_runtime";
    for (unsigned i = 0; i < sizeof message; ++i)
        ((volatile char *)page.address)[i] = message[i];
    const long ref = pvk_grant_access(PEER_DOMAIN, page.mfn, 0);
    const long port = pvk_evtchn_alloc_unbound(PEER_DOMAIN);
    check(ref >= 8 && port > 0, "grants: the page granted to domain 2, a port offered to it");

    char port_text[24], ref_text[24];
    xs_decimal((uint64_t)port, port_text);
    xs_decimal((uint64_t)ref, ref_text);
    const char perms[] = "n1\0r2";
    check(xs_write(0, "data", "") == 0 && xs_set_perms("data", perms, sizeof perms) == 0 &&
              xs_write(0, "data/port", port_text) == 0 && xs_write(0, "data/gref", ref_text) == 0 &&
              xs_write(0, "data/ready", "1") == 0,
          "grants: ref and port published in the xenstore");

    check(pvk_evtchn_wait((uint32_t)port, pvk_monotonic_ns() + 5000 * MS) == 1 &&
              text_is(page.address, "hello from libguest_peer"),
          "grants: the peer mapped the page and wrote its answer");
    check(pvk_grant_in_use((uint32_t)ref) && pvk_end_access((uint32_t)ref) == -3,
          "grants: end_access refused while the peer maps the page");
    pvk_evtchn_notify((uint32_t)port); /* the peer unmaps now */
    check(pvk_evtchn_wait((uint32_t)port, pvk_monotonic_ns() + 5000 * MS) == 1 && pvk_end_access((uint32_t)ref) == 0,
          "grants: end_access once the peer unmapped it");
}

int pvk_main(const struct pvk_start_info *info)
{
    xs_init(info);
    check(pvk_setup() == 0, "setup: shared_info mapped, allocator and heap over the free pfns");
    check(pvk_events_setup() == 0, "events: upcall registered, events unmasked");
    console_checks();
    heap_checks();
    time_checks();
    event_checks();
    memory_checks();
    grant_checks();
    return report_result();
}

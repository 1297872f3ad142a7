/*
 * tinyos's start of day. libguest's entry (pvk_entry) has switched to its 16 KiB boot stack and
 * kept start_info; events are masked, only console_io prints, and nothing is set up yet. pvk_main
 * brings the kernel up part by part, then hands over to the shell; returning 0 powers the domain
 * off (libguest makes the SCHEDOP_shutdown call), anything else crashes it.
 */
#include "kernel.h"

/* What the domain builder and `pvkit-bundle check` call this kernel (its Xen ELF notes). */
PVK_GUEST_NOTES("tinyos", TINYOS_VERSION);

static uint64_t booted_ns;

uint64_t boot_time_ns(void)
{
    return booted_ns;
}

/* Before pvk_console_init, pvk_printf goes through console_io: fine for early messages. */
static int fail(const char *what)
{
    pvk_printf("tinyos: %s failed, giving up\n", what);
    return 1;
}

int pvk_main(const struct pvk_start_info *start_info)
{
    booted_ns = pvk_monotonic_ns();
    pvk_printf("tinyos: early console (console_io), %lu pages, command line '%.64s'\n",
               (unsigned long)start_info->nr_pages, (const char *)start_info->cmd_line);

    if (pvk_setup() != 0) /* shared_info mapped; page allocator and heap over the free pfns */
        return fail("pvk_setup");
    if (pvk_console_init() != 0) /* from now on, output goes through the PV console ring */
        return fail("pvk_console_init (no console ring: the initial domain has none)");
    if (memory_init() != 0)
        return fail("memory_init");
    if (timer_init() != 0)
        return fail("timer_init");
    if (tasks_init() != 0)
        return fail("tasks_init");
    if (shell_init() != 0)
        return fail("shell_init");
    char name[64];
    if (store_init(start_info) != 0 || store_read("name", name, sizeof name) != 0)
        pvk_printf("tinyos: no xenstore, going on without it\n");
    else
        pvk_printf("tinyos: xenstore says this domain is '%s'\n", name);

    const struct memory_usage memory = memory_usage();
    pvk_printf("tinyos %s: %lu pages free, %u Hz tick on port %u, type 'help'\n", TINYOS_VERSION,
               (unsigned long)memory.pages_free_at_boot, TICK_HZ, (unsigned)timer_port());
    shell_run();

    pvk_printf("tinyos: halted after %lu ticks\n", (unsigned long)timer_ticks());
    /* What is still in the ring would be lost with the domain: wait up to a second for it. */
    return pvk_console_flush(pvk_monotonic_ns() + 1000 * NS_PER_MS) == 0 ? 0 : 1;
}

/* Conformance: the start_info page and the start-of-day layout, as xen.h describes them. */
#include "report.h"

#define PAGE 4096ull

static int starts_with(const char *text, const char *prefix)
{
    while (*prefix != '\0')
        if (*text++ != *prefix++)
            return 0;
    return 1;
}

int pvk_main(const struct pvk_start_info *info)
{
    const uint64_t here = (uint64_t)info;
    report_check(starts_with(info->magic, "xen-3.0-x86_64"), "magic is xen-3.0-x86_64");
    report_check(info->nr_pages == 16ull * 1024 * 1024 / PAGE, "nr_pages is the default 16 MiB of a bare kernel");
    report_check((here & (PAGE - 1)) == 0, "start_info is page-aligned");
    report_check(info->shared_info != 0 && (info->shared_info & (PAGE - 1)) == 0,
                 "shared_info is a page's machine address");
    report_check((info->flags & (PVK_SIF_PRIVILEGED | PVK_SIF_INITDOMAIN)) == 0, "an unprivileged domU");
    report_check(info->mfn_list < here && (info->mfn_list & (PAGE - 1)) == 0, "the p2m list comes before start_info");
    report_check(info->pt_base > here && info->nr_pt_frames >= 4, "the page tables come after start_info");
    report_check(info->store_mfn != 0 && info->console.domU.mfn != 0 && info->console.domU.evtchn != 0,
                 "a store page, a console page and its event channel");
    report_check(info->mod_start == 0 && info->mod_len == 0 && info->cmd_line[0] == '\0',
                 "no module and an empty command line");
    /* The p2m list is mapped and names a machine frame for every page. */
    const uint64_t *p2m = (const uint64_t *)info->mfn_list;
    int mapped = 1;
    for (uint64_t pfn = 0; pfn < info->nr_pages; ++pfn)
        mapped = mapped && p2m[pfn] != 0;
    report_check(mapped, "every p2m entry names a frame");
    /* A page table is mapped, read-only: reading it works. */
    const uint64_t *l4 = (const uint64_t *)info->pt_base;
    report_check((l4[511] & 1) != 0, "the L4 maps the kernel's slot");
    report_text("start_info: done\n");
    return report_failures();
}

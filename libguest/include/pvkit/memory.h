/*
 * Memory, C API (guest/frames.hpp): pages with their machine frames, and machine frames mapped at
 * the address of such a page (a window: only addresses of the initial mapping have an L1 entry
 * that update_va_mapping can rewrite).
 */
#ifndef PVKIT_MEMORY_H
#define PVKIT_MEMORY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pvk_page {
    void *address;
    uint64_t pfn;
    uint64_t mfn;
};

/* The pages the allocator manages (every page of the domain past the builder's start-of-day
 * layout: kernel, p2m, start_info, store, console, page tables, stack) and how many are free now.
 * Like pvk_page_alloc, it sets the allocator and heap up on first use if pvk_setup has not; zeros
 * when that fails. Its own bitmap, the page tables it added and the heap's pages count as
 * allocated. */
struct pvk_page_usage {
    uint64_t pages;
    uint64_t free;
};
struct pvk_page_usage pvk_page_get_usage(void);
/* A page from the allocator (not zeroed); 0, or -1 when none is left. */
int pvk_page_alloc(struct pvk_page *page);
/* 0, or -1 when the page was not allocated (a double free changes nothing). */
int pvk_page_free(const struct pvk_page *page);
/* The machine frame behind an address of the initial mapping. */
uint64_t pvk_virt_to_mfn(const void *address);
/* Where the initial mapping maps this domain's machine frame `mfn` (the store or console page of
 * start_info, for example), found through the M2P; NULL when it is not there. */
void *pvk_mfn_to_virt(uint64_t mfn);
/* Maps machine frame `mfn` at `address` (a page from pvk_page_alloc); 0 or a negative Xen errno. */
long pvk_map_frame(void *address, uint64_t mfn, int writable);
/* Maps the page's own frame back at `address`; do this before pvk_page_free. */
long pvk_restore_page(void *address);

#ifdef __cplusplus
}
#endif
#endif

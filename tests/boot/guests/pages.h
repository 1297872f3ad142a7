/* Page-table plumbing shared by the conformance guests that build their own mappings: machine
 * frames of the image's pages (through the p2m list the builder gave), remapping one of them. */
#ifndef PAGES_H
#define PAGES_H

#include <stdint.h>

#include <pvkit/guest.h>

#define PAGE 4096ull
#define PTE_PRESENT 0x1ull
#define PTE_WRITABLE 0x2ull
#define PTE_USER 0x4ull
#define PTE_ACCESSED 0x20ull
#define PTE_DIRTY 0x40ull

/* Remembers start_info's p2m list; call before the others. */
void pages_init(const struct pvk_start_info *info);
/* The machine frame behind a page of the image or of the start-of-day area (both are mapped
 * from pseudo-physical frame 0 at the link address). */
uint64_t mfn_of(const void *page);
/* Maps `page` again over its own frame, read-only or writable; returns the hypercall's result. */
long remap(const void *page, int writable);
/* User page tables: `user_l4` (a page of the image) gets the kernel's L4 entries except slot
 * `left_out` (-1: none), is made read-only, pinned and installed with MMUEXT_NEW_USER_BASEPTR.
 * Whether all of that succeeded. */
int install_user_page_tables(const struct pvk_start_info *info, uint64_t *user_l4, int left_out);

#endif

/*
 * Start of day, C API (guest/start.hpp): the start_info page, and the opt-in setup that maps
 * shared_info and runs the page allocator and heap over the pfns the domain builder left free.
 * Each part also sets up what it needs on first use.
 */
#ifndef PVKIT_START_H
#define PVKIT_START_H

#include <pvkit/xen-abi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The start_info page pvk_main was given. */
const struct pvk_start_info *pvk_start_info_page(void);
/* Maps shared_info and sets up the page allocator and heap (pvk_malloc); 0, or -1 on failure. */
int pvk_setup(void);
/* shared_info, mapped on first call over a page of the image. */
volatile struct pvk_shared_info *pvk_shared_info(void);

#ifdef __cplusplus
}
#endif
#endif

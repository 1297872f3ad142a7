/*
 * The C API of libguest: the hypercall stubs and ABI types (pvkit/xen-abi.h), pvk_main, and the
 * headers of each part. Declaring a part's functions costs nothing: a guest links only the parts
 * (CMake targets) whose functions it calls.
 */
#ifndef PVKIT_GUEST_H
#define PVKIT_GUEST_H

#include <pvkit/xen-abi.h>

#include <pvkit/console.h>
#include <pvkit/evtchn.h>
#include <pvkit/format.h>
#include <pvkit/gnttab.h>
#include <pvkit/heap.h>
#include <pvkit/memory.h>
#include <pvkit/start.h>
#include <pvkit/time.h>
#include <pvkit/traps.h>
#include <pvkit/xenstore.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The guest's main function, called once the start of day is done, with the start_info page the
 * domain builder filled. Returning 0 powers the domain off; any other value crashes it, so that
 * whoever watches the domain sees the failure.
 */
int pvk_main(const struct pvk_start_info *start_info);

#ifdef __cplusplus
}
#endif
#endif

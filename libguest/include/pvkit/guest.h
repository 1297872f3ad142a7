/* The C API of libguest. */
#ifndef PVKIT_GUEST_H
#define PVKIT_GUEST_H

#include <pvkit/xen-abi.h>

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

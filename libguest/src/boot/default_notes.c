/* The GUEST_OS and GUEST_VERSION notes of an image that gives none (pvkit/start.h,
 * PVK_GUEST_NOTES). In its own object file, so that the linker takes it from the archive only
 * then. */
#include <pvkit/start.h>

PVK_GUEST_NOTES("pvkit", "0.1");

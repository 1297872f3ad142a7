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

/*
 * PVK_GUEST_NOTES("myos", "1.2"); at file scope in one of the image's own sources (not in a static
 * library of yours, whose member the linker might leave out) names the guest in its Xen ELF notes
 * GUEST_OS and GUEST_VERSION (what the domain builder and `pvkit-bundle check` show). Both are
 * string literals. An image without it says "pvkit" and "0.1" (libguest's own default_notes.c,
 * which the linker takes from the archive only then); two of them are a link error (pvk_guest_notes
 * defined twice), not a silent choice.
 */
#define PVK_NOTE_TEXT_(x) #x
#define PVK_NOTE_TEXT(x) PVK_NOTE_TEXT_(x)
#define PVK_XEN_STRING_NOTE(type, text)                                                                          \
    ".pushsection .note.Xen, \"a\", @note\n.balign 4\n.long 4\n.long 2f - 1f\n.long " PVK_NOTE_TEXT(type)     \
    "\n.asciz \"Xen\"\n.balign 4\n1: .asciz \"" text "\"\n2: .balign 4\n.popsection\n"
#define PVK_GUEST_NOTES(os, version)                                                                             \
    __asm__(".pushsection .note.Xen, \"a\", @note\n.balign 4\n.globl pvk_guest_notes\npvk_guest_notes:\n"         \
            ".popsection\n" PVK_XEN_STRING_NOTE(PVK_XEN_ELFNOTE_GUEST_OS, os)                                     \
                PVK_XEN_STRING_NOTE(PVK_XEN_ELFNOTE_GUEST_VERSION, version))
#endif

/* The first instructions of a PV guest, its Xen ELF notes and its hypercall page. */
#include <pvkit/xen-abi.h>

/* One "Xen" ELF note; the domain builder reads these before it builds the domain. */
.macro xen_note type, directive, value:vararg
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f           /* name size */
    .long 4f - 3f           /* descriptor size */
    .long \type
1:  .asciz "Xen"
2:  .balign 4
3:  \directive \value
4:  .balign 4
    .popsection
.endm

/* GUEST_OS and GUEST_VERSION are the image's: PVK_GUEST_NOTES (pvkit/start.h) defines
 * pvk_guest_notes with them, or the archive's default_notes.c does, pulled in by this reference. */
    .globl pvk_guest_notes
/* Strings go through .byte with an explicit NUL: gas strips the quotes of a macro argument. */
xen_note PVK_XEN_ELFNOTE_XEN_VERSION, .byte, 'x','e','n','-','3','.','0',0
xen_note PVK_XEN_ELFNOTE_LOADER, .byte, 'g','e','n','e','r','i','c',0
xen_note PVK_XEN_ELFNOTE_VIRT_BASE, .quad, __pvk_virt_base
xen_note PVK_XEN_ELFNOTE_PADDR_OFFSET, .quad, 0
xen_note PVK_XEN_ELFNOTE_ENTRY, .quad, pvk_entry
xen_note PVK_XEN_ELFNOTE_HYPERCALL_PAGE, .quad, pvk_hypercall_page

    .text
/* The builder starts the vCPU here with rsi = the start_info page and events masked. */
    .globl pvk_entry
    .type pvk_entry, @function
pvk_entry:
    lea pvk_boot_stack_top(%rip), %rsp
    mov %rsi, %rdi
    call pvk_start
    ud2                     /* pvk_start never returns */
    .size pvk_entry, . - pvk_entry

/* Filled by the domain builder: one 32-byte stub per hypercall number. */
    .section .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl pvk_hypercall_page
pvk_hypercall_page:
    .fill 4096, 1, 0xcc
    .size pvk_hypercall_page, 4096

    .bss
    .balign 16
pvk_boot_stack:
    .skip 16384
pvk_boot_stack_top:

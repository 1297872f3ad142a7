/* The event callback. The hypervisor enters it with events masked, on the current stack, in
 * Xen's frame (XEN-PV-ABI.md): rcx, r11, then the iret frame rip, cs, rflags, rsp, ss. It saves
 * the registers the C++ ABI lets a call clobber, calls pvk_event_upcall (the demux), and returns
 * with HYPERVISOR_iret, which restores the event mask from the saved rflags.IF. Images are built
 * -mgeneral-regs-only, so no FPU or SSE state needs saving. */
#include <pvkit/xen-abi.h>

    .text
    .globl pvk_event_callback
    .type pvk_event_callback, @function
pvk_event_callback:
    pop %rcx                /* the interrupted code's rcx and r11, as it had them */
    pop %r11
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbp
    mov %rsp, %rbp          /* the frame's alignment is not the ABI's: align for the call */
    and $-16, %rsp
    cld
    call pvk_event_upcall
    mov %rbp, %rsp
    pop %rbp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    /* iret_context: the stub pushes rcx, r11, rax above this flags word (0: not in a syscall). */
    push $0
    jmp pvk_hypercall_page + PVK_HYPERVISOR_iret * 32
    .size pvk_event_callback, . - pvk_event_callback

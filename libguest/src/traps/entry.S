/* Exception entries. The hypervisor enters one in Xen's frame (XEN-PV-ABI.md): rcx, r11, the
 * error code for the vectors that have one, then the iret frame rip, cs, rflags, rsp, ss. Each
 * entry makes the frame uniform (error code 0 where there is none, the vector), the common part
 * pushes every register into a struct pvk_trap_frame, calls pvk_trap_dispatch with it and returns
 * from it with HYPERVISOR_iret, which restores the event mask from the saved rflags.IF. Images
 * are built -mgeneral-regs-only, so no FPU or SSE state needs saving. */
#include <pvkit/xen-abi.h>

    .text
.macro trap_entry vector, has_error_code
    .globl pvk_trap_entry_\vector
    .type pvk_trap_entry_\vector, @function
pvk_trap_entry_\vector:
    pop %rcx                /* the interrupted code's rcx and r11, as it had them */
    pop %r11
    .if \has_error_code == 0
    push $0
    .endif
    push $\vector
    jmp pvk_trap_common
    .size pvk_trap_entry_\vector, . - pvk_trap_entry_\vector
.endm

/* The vectors pvk_trap_set_handler takes, and whether the CPU pushes an error code for them. */
.irp vector, 0, 1, 3, 4, 5, 6, 7, 9, 15, 16, 19, 20, 22, 23, 24, 25, 26, 27, 28, 31
    trap_entry \vector, 0
.endr
.irp vector, 10, 11, 12, 13, 14, 17, 21, 29, 30
    trap_entry \vector, 1
.endr

pvk_trap_common:
    push $0                 /* fault_address, which pvk_trap_dispatch fills */
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi          /* the struct pvk_trap_frame */
    mov %rsp, %rbx          /* kept by the call (callee-saved); the frame's rbx is restored below */
    and $-16, %rsp          /* the frame's alignment is not the ABI's: align for the call */
    cld
    call pvk_trap_dispatch
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $24, %rsp           /* fault_address, vector, error code */
    /* iret_context: the stub pushes rcx, r11, rax above this flags word (0: not in a syscall). */
    push $0
    jmp pvk_hypercall_page + PVK_HYPERVISOR_iret * 32
    .size pvk_trap_common, . - pvk_trap_common

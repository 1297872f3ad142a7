/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ways in and out of a guest: the syscall entry (hypercalls), 256 trap stubs for the IDT, and the
 * return through iretq. Every entry leaves a GuestFrame (src/guest_frame.hpp) on the entry stack
 * and calls C++ with its address; the C++ side returns to the frame it was given, or to another.
 * One CPU for now: the guest's rsp is parked in a global on the way in.
 */
#define GUEST_CS64 0xe033
#define GUEST_SS 0xe02b
#define SYSCALL_VECTOR 0x100
#define GUEST_FRAME_SIZE (22 * 8)  /* sizeof(GuestFrame) */

.macro push_general_registers
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
.endm

        .text
        .globl hv_syscall_entry
        .type hv_syscall_entry, @function
hv_syscall_entry:
        /* SFMASK cleared IF: nothing interrupts us before the stack is ours. */
        movq %rsp, guest_rsp(%rip)
        movq hv_entry_stack_top(%rip), %rsp
        pushq $GUEST_SS
        pushq guest_rsp(%rip)
        pushq %r11              /* rflags */
        pushq $GUEST_CS64
        pushq %rcx              /* rip */
        pushq $0                /* error code */
        pushq $SYSCALL_VECTOR
        push_general_registers
        movq %rsp, %rdi
        cld
        callq hv_syscall
        jmp resume
        .size hv_syscall_entry, . - hv_syscall_entry

trap_common:
        push_general_registers
        movq %rsp, %rdi
        cld
        callq hv_trap
        /* fall through */
resume:
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp          /* vector and error code */
        iretq

        .globl hv_enter_guest
        .type hv_enter_guest, @function
hv_enter_guest:
        movq %rdi, %rsp
        jmp resume
        .size hv_enter_guest, . - hv_enter_guest

/* hv_run_on_entry_stack(fn): calls fn, which never returns, on the entry stack just below the
 * GuestFrame at its top, whatever stack the caller runs on (an IST stack after a #DB, or the
 * entry stack deep in a call chain): scheduling anew never nests. */
        .globl hv_run_on_entry_stack
        .type hv_run_on_entry_stack, @function
hv_run_on_entry_stack:
        movq hv_entry_stack_top(%rip), %rsp
        subq $GUEST_FRAME_SIZE, %rsp
        andq $-16, %rsp
        callq *%rdi
        ud2
        .size hv_run_on_entry_stack, . - hv_run_on_entry_stack

/* Vector v's stub is at hv_trap_stubs + 16 * v. The CPU pushes an error code for 8, 10-14, 17,
 * 21, 29 and 30; the others push 0 in its place. */
        .p2align 4
        .globl hv_trap_stubs
hv_trap_stubs:
        .set vector, 0
        .rept 256
        .p2align 4
        .if !(vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30)
        pushq $0
        .endif
        pushq $vector
        jmp trap_common
        .set vector, vector + 1
        .endr

        .data
        .p2align 3
        .globl hv_entry_stack_top
hv_entry_stack_top:
        .quad entry_stack + 16384
guest_rsp:
        .quad 0

        .section .bss.entry_stack, "aw", @nobits
        .p2align 12
entry_stack:
        .skip 16384

        .section .note.GNU-stack, "", @progbits

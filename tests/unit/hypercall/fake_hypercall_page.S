/* A hypercall page for host tests: every 32-byte entry records its number and the five argument
 * registers in `recorded_hypercall`, and returns 0x1000 + the number. Like Xen's page, it keeps
 * rcx and r11. */
    .text
    .balign 4096
    .globl pvk_hypercall_page
pvk_hypercall_page:
    .set number, 0
    .rept 64
    .balign 32
    mov $number, %eax
    jmp record_hypercall
    .set number, number + 1
    .endr
    .balign 4096, 0xcc

record_hypercall:
    push %r11
    lea recorded_hypercall(%rip), %r11
    mov %rax, 0(%r11)
    mov %rdi, 8(%r11)
    mov %rsi, 16(%r11)
    mov %rdx, 24(%r11)
    mov %r10, 32(%r11)
    mov %r8, 40(%r11)
    add $0x1000, %rax
    pop %r11
    ret

    .section .note.GNU-stack, "", @progbits

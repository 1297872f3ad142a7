/* Conformance: exceptions bounced to the guest's trap table in Xen's frame, and HYPERVISOR_iret
 * back. The handlers are written against the frame xen.h describes for x86-64:
 * { rcx, r11, [error code], rip, cs, rflags, rsp, ss } from the stack pointer up. */
#include "report.h"

volatile uint64_t ud_count, ud_seen_cs, ud_seen_flags;
volatile uint64_t pf_count, pf_error;

/* Each handler restores rcx and r11 from the frame, keeps rax, and returns through the hypercall
 * page's iret stub with flags 0 pushed, as Linux and Mini-OS do. */
__asm__(".text\n"
        "ud_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movq 16(%rsp), %rax\n"
        "    movq %rax, ud_seen_cs(%rip)\n"
        "    movq 24(%rsp), %rax\n"
        "    movq %rax, ud_seen_flags(%rip)\n"
        "    addq $2, 8(%rsp)\n" /* past the ud2 */
        "    incq ud_count(%rip)\n"
        "    popq %rax\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "pf_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movq 8(%rsp), %rax\n"
        "    movq %rax, pf_error(%rip)\n"
        "    leaq pf_resume(%rip), %rax\n"
        "    movq %rax, 16(%rsp)\n"
        "    incq pf_count(%rip)\n"
        "    popq %rax\n"
        "    addq $8, %rsp\n" /* the error code */
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char ud_handler[], pf_handler[];

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    static struct pvk_trap_info traps[3];
    traps[0] = (struct pvk_trap_info){.vector = 6, .cs = 0xe033, .address = (uint64_t)ud_handler};
    traps[1] = (struct pvk_trap_info){.vector = 14, .cs = 0xe033, .address = (uint64_t)pf_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");

    __asm__ volatile("ud2" ::: "memory");
    report_check(ud_count == 1, "#UD reached the handler once and iret resumed after ud2");
    report_check((ud_seen_cs & 0xffff) == 0xe030, "the saved cs of a kernel-mode trap has RPL 0");
    report_check(((ud_seen_cs >> 32) & 0xff) == 1, "bits 32-39 of the cs slot hold the upcall mask (1)");
    report_check((ud_seen_flags & 0x200) == 0, "the saved IF is clear: events are masked at start");

    __asm__ volatile("movq 0x1000, %%rax\n"
                     "pf_resume:\n" ::: "rax", "memory");
    report_check(pf_count == 1, "#PF reached the handler once");
    report_check(pf_error == 0, "the error code of a kernel-mode read of an unmapped page is 0 (no user bit)");
    /* A guest kernel's own iretq to its own ring, as Linux's sync_core does. */
    uint64_t after_iretq;
    __asm__ volatile("movq %%ss, %%rax\n"
                     "pushq %%rax\n"
                     "leaq 8(%%rsp), %%rax\n"
                     "pushq %%rax\n"
                     "pushfq\n"
                     "movq %%cs, %%rax\n"
                     "pushq %%rax\n"
                     "leaq 1f(%%rip), %%rax\n"
                     "pushq %%rax\n"
                     "iretq\n"
                     "1: leaq 1b(%%rip), %0\n"
                     : "=r"(after_iretq) : : "rax", "memory");
    report_check(after_iretq != 0 && pf_count == 1, "a native iretq to the kernel's own ring returns in place");
    report_text("trap_bounce: done\n");
    return report_failures();
}

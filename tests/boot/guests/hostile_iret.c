/* Hostile: HYPERVISOR_iret to the hypervisor's own code selector (0xe008). The CPU's iretq would
 * fault in ring 0; the hypervisor must crash this domain instead, and go on. */
#include "report.h"

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    report_text("iret to the hypervisor's code selector\n");
    __asm__ volatile("movq %%rsp, %%rax\n"
                     "pushq $0xe02b\n"   /* ss */
                     "pushq %%rax\n"     /* rsp */
                     "pushq $0x202\n"    /* rflags */
                     "pushq $0xe008\n"   /* cs: the hypervisor's */
                     "leaq 1f(%%rip), %%rax\n"
                     "pushq %%rax\n"     /* rip */
                     "pushq $0\n"        /* flags */
                     "jmp pvk_hypercall_page + 23 * 32\n"
                     "1:\n" ::: "rax", "memory");
    report_check(0, "the iret was refused");
    return report_failures();
}

/* Hostile: HYPERVISOR_iret to a selector of the guest's own GDT whose descriptor is not present.
 * The CPU's iretq would fault in ring 0; with no failsafe callback registered (failsafe.c has
 * one), the hypervisor must crash this domain instead. The same
 * iret to a present 64-bit code descriptor of the same GDT goes through first, so that it is the
 * descriptor that is refused, not the guest's GDT. */
#include "pages.h"
#include "report.h"

#define CODE64_DPL3 0x00affb000000ffffull /* flat 64-bit code, present, DPL 3 */
#define DATA_DPL3 0x00cff3000000ffffull   /* flat data, read-write, present, DPL 3 */
#define PRESENT (1ull << 47)

static uint64_t gdt[512] __attribute__((aligned(4096)));

/* HYPERVISOR_iret to kernel mode (RPL 0) with `cs` and ss 0x2b, on to the next instruction. */
static void iret_with(uint64_t cs)
{
    __asm__ volatile("movq %%rsp, %%rax\n\t"
                     "pushq $0x2b\n\t"  /* ss */
                     "pushq %%rax\n\t"  /* rsp */
                     "pushq $0x2\n\t"   /* rflags */
                     "pushq %0\n\t"     /* cs */
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"  /* rip */
                     "pushq $0\n\t"     /* flags */
                     "jmp pvk_hypercall_page + 23 * 32\n"
                     "1:"
                     :
                     : "r"(cs)
                     : "rax", "memory");
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    gdt[5] = DATA_DPL3;              /* 0x2b */
    gdt[6] = CODE64_DPL3;            /* 0x33 */
    gdt[7] = CODE64_DPL3 & ~PRESENT; /* 0x3b */
    pvk_xen_ulong_t frames[1] = {mfn_of(gdt)};
    report_check(remap(gdt, 0) == 0 && pvk_hypercall_set_gdt(frames, 16) == 0, "a GDT installed");
    iret_with(0x30);
    uint32_t cs;
    __asm__ volatile("movl %%cs, %0" : "=r"(cs));
    report_check(cs == 0x33, "iret to the present code descriptor 0x33");
    report_text("iret to the not-present code descriptor 0x3b\n");
    iret_with(0x38);
    report_check(0, "the iret was refused");
    return report_failures();
}

/* Conformance: what a PV kernel does with instructions that fault in ring 3 — Xen's CPUID leaves
 * through the forced-emulation prefix, the MSRs a PV kernel may use, control-register reads, cli
 * and sti under the virtual IOPL, port reads that see no device, and #GP delivered for an MSR it
 * may not touch. */
#include "report.h"

static volatile uint8_t shared_page[4096] __attribute__((aligned(4096)));

volatile uint64_t gp_count, gp_error;

/* #GP handler: records the error code and skips the 2-byte rdmsr/wrmsr that faulted. */
__asm__(".text\n"
        "gp_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movq 8(%rsp), %rax\n"
        "    movq %rax, gp_error(%rip)\n"
        "    addq $2, 16(%rsp)\n"
        "    incq gp_count(%rip)\n"
        "    popq %rax\n"
        "    addq $8, %rsp\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char gp_handler[];

static void xen_cpuid(uint32_t leaf, uint32_t *eax, uint32_t *ebx, uint32_t *ecx, uint32_t *edx)
{
    __asm__ volatile("ud2a; .ascii \"xen\"; cpuid"
                     : "=a"(*eax), "=b"(*ebx), "=c"(*ecx), "=d"(*edx)
                     : "a"(leaf), "c"(0));
}

static uint64_t rdmsr(uint32_t msr)
{
    uint32_t low, high;
    __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
    return ((uint64_t)high << 32) | low;
}

static void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

int pvk_main(const struct pvk_start_info *info)
{
    uint32_t eax, ebx, ecx, edx;
    xen_cpuid(0x40000000, &eax, &ebx, &ecx, &edx);
    report_check(ebx == 0x566e6558 && ecx == 0x65584d4d && edx == 0x4d4d566e, "CPUID 0x40000000 says XenVMMXenVMM");
    report_check(eax >= 0x40000002, "Xen's leaves go up to 0x40000002 at least");
    xen_cpuid(1, &eax, &ebx, &ecx, &edx);
    report_check((ecx & (1u << 31)) != 0 && (ecx & (1u << 5)) == 0, "leaf 1: a hypervisor, no VMX");

    report_check(rdmsr(0x277) == 0x050100070406ull, "PAT reads as Xen's 0x050100070406");
    static char tls[64];
    wrmsr(0xC0000100, (uint64_t)tls);
    report_check(rdmsr(0xC0000100) == (uint64_t)tls, "FS_BASE written and read back");
    tls[8] = 42;
    unsigned char through_fs;
    __asm__ volatile("movb %%fs:8, %0" : "=q"(through_fs));
    report_check(through_fs == 42, "the CPU uses the FS base written");

    uint64_t cr0, cr4;
    __asm__ volatile("movq %%cr0, %0; movq %%cr4, %1" : "=r"(cr0), "=r"(cr4));
    report_check((cr0 & 0x80000001) == 0x80000001 && (cr0 & 8) == 0, "CR0 reads with PG and PE, TS clear");
    report_check((cr4 & 0x20) != 0, "CR4 reads with PAE");

    report_check(pvk_hypercall_update_va_mapping((uint64_t)shared_page, info->shared_info | 0x23, PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped");
    struct pvk_physdev_set_iopl iopl = {.iopl = 1};
    report_check(pvk_physdevop_set_iopl(&iopl) == 0, "PHYSDEVOP_set_iopl 1");
    shared_page[1] = 0;
    __asm__ volatile("cli" ::: "memory");
    report_check(shared_page[1] == 1, "cli masks events");
    __asm__ volatile("sti" ::: "memory");
    report_check(shared_page[1] == 0, "sti unmasks them");

    unsigned char port;
    __asm__ volatile("inb $0x71, %0" : "=a"(port));
    report_check(port == 0xff, "a port read sees no device");

    static struct pvk_trap_info traps[2];
    traps[0] = (struct pvk_trap_info){.vector = 13, .cs = 0xe033, .address = (uint64_t)gp_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");
    (void)rdmsr(0x1b);
    report_check(gp_count == 1 && gp_error == 0, "rdmsr of APIC_BASE raises #GP(0) in the guest");
    report_text("privileged_ops: done\n");
    return report_failures();
}

/* Hostile: far return to Xen's 32-bit code selector 0xe023 to run syscall in compatibility mode,
 * whose entry point (CSTAR) would be address 0 if nobody set it: ring-0 code at a guest's page.
 * The hypervisor gives guests no 32-bit code segment and points CSTAR at its own entry, so
 * whatever the CPU does with the far return (QEMU's TCG is not exact here) ends in a crash of
 * this domain only. */
#include "report.h"

__asm__(".text\n"
        ".code32\n"
        "compat_code:\n"
        "    syscall\n"
        "1:  jmp 1b\n"
        ".code64\n");
extern char compat_code[];

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    report_text("far return to 0xe023\n");
    __asm__ volatile("pushq $0xe023\n"
                     "pushq %0\n"
                     "lretq\n" ::"r"((uint64_t)compat_code)
                     : "memory");
    report_check(0, "compatibility mode was refused");
    return report_failures();
}

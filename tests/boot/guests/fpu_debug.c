/* Conformance: fpu_taskswitch (an SSE instruction after it raises #NM once: delivering #NM clears
 * the guest's TS) and the debug registers (a data breakpoint set with set_debugreg raises #DB
 * after the store, and DR6 read with get_debugreg says which; Xen's refusals). */
#include "report.h"

volatile uint64_t device_not_available_traps, debug_traps, debug_trap_rip;
volatile uint64_t watched;

/* #NM: return to the instruction, which now runs (Xen cleared TS as it delivered the trap).
 * #DB: a data breakpoint is a trap: rip is already past the store. */
__asm__(".text\n"
        "device_not_available_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    incq device_not_available_traps(%rip)\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "debug_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movq 8(%rsp), %rax\n"
        "    movq %rax, debug_trap_rip(%rip)\n"
        "    incq debug_traps(%rip)\n"
        "    popq %rax\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char device_not_available_handler[], debug_handler[];

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    static struct pvk_trap_info traps[3];
    traps[0] = (struct pvk_trap_info){.vector = 1, .cs = 0xe033, .address = (uint64_t)debug_handler};
    traps[1] = (struct pvk_trap_info){.vector = 7, .cs = 0xe033, .address = (uint64_t)device_not_available_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");

    __asm__ volatile("xorps %xmm0, %xmm0"); /* xmm0 is nobody's: the guest is built without SSE */
    report_check(device_not_available_traps == 0, "SSE runs without a trap at start");
    report_check(pvk_hypercall_fpu_taskswitch(1) == 0, "fpu_taskswitch(1)");
    __asm__ volatile("xorps %xmm0, %xmm0"); /* xmm0 is nobody's: the guest is built without SSE */
    report_check(device_not_available_traps == 1, "the next SSE instruction raised #NM once");
    __asm__ volatile("xorps %xmm0, %xmm0"); /* xmm0 is nobody's: the guest is built without SSE */
    report_check(device_not_available_traps == 1, "delivering #NM cleared TS");
    report_check(pvk_hypercall_fpu_taskswitch(1) == 0 && pvk_hypercall_fpu_taskswitch(0) == 0, "fpu_taskswitch(0)");
    __asm__ volatile("xorps %xmm0, %xmm0"); /* xmm0 is nobody's: the guest is built without SSE */
    report_check(device_not_available_traps == 1, "after fpu_taskswitch(0) no #NM");

    const long eperm = -1, einval = -22;
    report_check(pvk_hypercall_set_debugreg(0, 0xffff830000000000ull) == eperm,
                 "a breakpoint on the hypervisor's addresses is refused (-EPERM)");
    report_check(pvk_hypercall_set_debugreg(7, 1ull << 13) == eperm, "general detect is refused (-EPERM)");
    report_check(pvk_hypercall_set_debugreg(7, 0x20001) == eperm, "an I/O breakpoint is refused (-EPERM)");
    report_check(pvk_hypercall_set_debugreg(8, 0) == einval && pvk_hypercall_get_debugreg(9) == einval,
                 "DR8 and DR9 do not exist (-EINVAL)");

    report_check(pvk_hypercall_set_debugreg(0, (uint64_t)&watched) == 0 &&
                     pvk_hypercall_get_debugreg(0) == (long)(uint64_t)&watched,
                 "DR0 set to a guest address and read back");
    report_check(pvk_hypercall_set_debugreg(7, 0xd0001) == 0 && pvk_hypercall_get_debugreg(7) == 0xd0401,
                 "DR7: a local 8-byte write breakpoint on DR0");
    uint64_t after_store;
    __asm__ volatile("movq $1, watched(%%rip)\n"
                     "1: leaq 1b(%%rip), %0\n"
                     : "=r"(after_store) : : "memory");
    report_check(debug_traps == 1 && debug_trap_rip == after_store, "the store raised #DB, rip past it");
    report_check((pvk_hypercall_get_debugreg(6) & 0xf) == 1, "DR6 says breakpoint 0");
    report_check(pvk_hypercall_set_debugreg(7, 0) == 0, "DR7 cleared");
    watched = 2;
    report_check(debug_traps == 1, "no breakpoint once DR7 is clear");
    report_text("fpu_debug: done\n");
    return report_failures();
}

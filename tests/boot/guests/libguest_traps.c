/*
 * libguest's exception handlers through the C API (pvkit/traps.h): handlers entered with events
 * masked, the interrupted registers in a frame they may change, the code going on from it;
 * faults that report an address and an error code; a trap inside a handler; vectors refused; and
 * at the end a handler taken away, so that the same fault crashes the domain.
 */
#include <pvkit/guest.h>
#include "libguest_report.h"

static volatile int masked_in_handler, breakpoints;
static volatile uint64_t recovery; /* where a fault handler sends the code on */
static volatile uint64_t seen_vector = 99, seen_error = 99, seen_address, seen_rip, seen_rflags;

static int events_masked(void)
{
    return pvk_shared_info()->vcpu_info[0].evtchn_upcall_mask != 0;
}

static void remember(const struct pvk_trap_frame *frame)
{
    masked_in_handler = events_masked();
    seen_vector = frame->vector;
    seen_error = frame->error_code;
    seen_address = frame->fault_address;
    seen_rip = frame->rip;
    seen_rflags = frame->rflags;
}

/* #UD on ud2: skipped, and two registers changed for the code to see. */
static void on_invalid_opcode(struct pvk_trap_frame *frame)
{
    remember(frame);
    const unsigned char *code = (const unsigned char *)frame->rip;
    if (code[0] == 0x0f && code[1] == 0x0b)
        frame->rip += 2;
    frame->rax = 0x5eed;
    frame->r12 += 1;
}

static void on_fault(struct pvk_trap_frame *frame)
{
    remember(frame);
    frame->rip = recovery;
}

static void on_breakpoint(struct pvk_trap_frame *frame)
{
    (void)frame;
    ++breakpoints;
}

/* #DE, with a breakpoint inside the handler: a trap while a trap is handled. */
static void on_divide_error(struct pvk_trap_frame *frame)
{
    remember(frame);
    __asm__ volatile("int3");
    frame->rip = recovery;
}

static void registers_checks(void)
{
    uint64_t rax, rbx, rcx, r11, r12, r15;
    __asm__ volatile("mov $0x1111, %%rbx\n\t"
                     "mov $0x2222, %%r12\n\t"
                     "mov $0x3333, %%rax\n\t"
                     "mov $0x4444, %%rcx\n\t"
                     "mov $0x5555, %%r11\n\t"
                     "mov $0x6666, %%r15\n\t"
                     "ud2\n\t"
                     "mov %%rax, %0\n\t"
                     "mov %%rbx, %1\n\t"
                     "mov %%rcx, %2\n\t"
                     "mov %%r11, %3\n\t"
                     "mov %%r12, %4\n\t"
                     "mov %%r15, %5"
                     : "=m"(rax), "=m"(rbx), "=m"(rcx), "=m"(r11), "=m"(r12), "=m"(r15)
                     :
                     : "rax", "rbx", "rcx", "r11", "r12", "r15", "memory");
    check(seen_vector == 6 && masked_in_handler && (seen_rflags & 0x200) != 0,
          "traps: ud2 reached the #UD handler with events masked (IF set in the saved rflags)");
    check(rax == 0x5eed && r12 == 0x2223, "traps: the handler's changes to rax and r12 reached the code");
    check(rbx == 0x1111 && rcx == 0x4444 && r11 == 0x5555 && r15 == 0x6666,
          "traps: rbx, rcx, r11 and r15 came back as they were");
    check(!events_masked(), "traps: events unmasked again after the handler");
}

/* Runs `instruction` on the address in rdx; a fault handler sends the code on past it. */
#define FAULTING(instruction, address)                                                                \
    __asm__ volatile("lea 1f(%%rip), %%rax\n\t"                                                      \
                     "mov %%rax, %0\n\t" instruction "\n"                                             \
                     "1:"                                                                            \
                     : "=m"(recovery)                                                                \
                     : "d"(address)                                                                  \
                     : "rax", "memory")

static void page_fault_checks(void)
{
    FAULTING("mov (%%rdx), %%rax", 0x10ul);
    check(seen_vector == 14 && seen_address == 0x10 && (seen_error & 3) == 0,
          "traps: a read of 0x10 is a page fault at 0x10, not present, a read");
    FAULTING("movq $1, (%%rdx)", 0x2000ul);
    check(seen_vector == 14 && seen_address == 0x2000 && (seen_error & 3) == 2,
          "traps: a write to 0x2000 is a page fault at 0x2000, a write");
    const uint64_t m2p = 0xffff800000000000ul; /* the hypervisor's M2P: readable, never writable */
    FAULTING("movb $1, (%%rdx)", m2p);
    check(seen_vector == 14 && seen_address == m2p && (seen_error & 3) == 3,
          "traps: a write to the read-only M2P is a protection fault there");
}

static void nested_checks(void)
{
    uint64_t scratch;
    const int before = breakpoints;
    __asm__ volatile("int3");
    check(breakpoints == before + 1, "traps: int3 reached the #BP handler and went on after it");
    __asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
                     "mov %%rcx, %1\n\t"
                     "xor %%edx, %%edx\n\t"
                     "mov $1, %%eax\n\t"
                     "xor %%ecx, %%ecx\n\t"
                     "div %%ecx\n"
                     "1:"
                     : "=&a"(scratch), "=m"(recovery)
                     :
                     : "rcx", "rdx", "memory");
    check(seen_vector == 0 && breakpoints == before + 2,
          "traps: a divide error, and a breakpoint inside its handler");
}

int pvk_main(const struct pvk_start_info *info)
{
    (void)info;
    check(pvk_setup() == 0 && pvk_console_init() == 0 && pvk_events_setup() == 0, "setup: console and events");
    int refused = 1;
    const unsigned bad_vectors[] = {2, 8, 18, 32, 255, 100000};
    for (unsigned i = 0; i < sizeof bad_vectors / sizeof bad_vectors[0]; ++i)
        refused = refused && pvk_trap_set_handler(bad_vectors[i], on_fault) == -PVK_XEN_EINVAL;
    check(refused, "traps: NMI, double fault, machine check and vectors past 31 refused");
    check(pvk_trap_set_handler(6, on_invalid_opcode) == 0 && pvk_trap_set_handler(14, on_fault) == 0 &&
              pvk_trap_set_handler(3, on_breakpoint) == 0 && pvk_trap_set_handler(0, on_divide_error) == 0,
          "traps: handlers for #UD, #PF, #BP and #DE");
    registers_checks();
    page_fault_checks();
    nested_checks();
    check(pvk_trap_set_handler(14, NULL) == 0 && pvk_trap_set_handler(0, NULL) == 0,
          "traps: the #PF and #DE handlers taken away");
    const int failures = report_result();
    if (failures != 0)
        return failures;
    /* The #UD handler taken away too: the same ud2 now crashes the domain. */
    pvk_printf("traps: ud2 with no handler\n");
    pvk_console_flush(pvk_monotonic_ns() + 1000000000ull);
    if (pvk_trap_set_handler(6, NULL) != 0)
        return 1;
    __asm__ volatile("ud2");
    return 1;
}

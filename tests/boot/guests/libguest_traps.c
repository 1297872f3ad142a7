/*
 * libguest's exception handlers through the C API (pvkit/traps.h): handlers entered with events
 * masked, the interrupted registers in a frame they may change, the code going on from it;
 * faults that report an address and an error code; a trap inside a handler; vectors refused; a
 * kernel's own trap table entry left alone; and at the end a handler taken away, so that the same
 * fault crashes the domain.
 */
#include <pvkit/guest.h>
#include "libguest_report.h"

static volatile int masked_in_handler, breakpoints;
static volatile uint64_t recovery; /* where a fault handler sends the code on */
static volatile uint64_t seen_vector = 99, seen_error = 99, seen_address, seen_rip, seen_rflags;

/* A kernel's own gate, set with set_trap_table before libguest's handlers: int $0x80 counts, and
 * returns with HYPERVISOR_iret (the stub pushes rcx, r11 and rax above the flags word). */
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)
volatile uint64_t own_gate_calls;
void own_gate(void);
__asm__(".text\n"
        "own_gate:\n\t"
        "pop %rcx\n\t"
        "pop %r11\n\t"
        "incq own_gate_calls(%rip)\n\t"
        "push $0\n\t"
        "jmp pvk_hypercall_page + " TEXT(PVK_HYPERVISOR_iret) " * 32\n");

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

/* Every register's value after the ud2, in push order of struct pvk_trap_frame's names: rax, rbx,
 * rcx, rdx, rsi, rdi, rbp, r8-r15. Global, so that the assembly reaches it by name. */
uint64_t registers_after[15];

static void registers_checks(void)
{
    __asm__ volatile("push %%rbp\n\t"
                     "mov $0x1001, %%rax\n\t"
                     "mov $0x1002, %%rbx\n\t"
                     "mov $0x1003, %%rcx\n\t"
                     "mov $0x1004, %%rdx\n\t"
                     "mov $0x1005, %%rsi\n\t"
                     "mov $0x1006, %%rdi\n\t"
                     "mov $0x1007, %%rbp\n\t"
                     "mov $0x1008, %%r8\n\t"
                     "mov $0x1009, %%r9\n\t"
                     "mov $0x100a, %%r10\n\t"
                     "mov $0x100b, %%r11\n\t"
                     "mov $0x100c, %%r12\n\t"
                     "mov $0x100d, %%r13\n\t"
                     "mov $0x100e, %%r14\n\t"
                     "mov $0x100f, %%r15\n\t"
                     "ud2\n\t"
                     "mov %%rax, registers_after+0(%%rip)\n\t"
                     "mov %%rbx, registers_after+8(%%rip)\n\t"
                     "mov %%rcx, registers_after+16(%%rip)\n\t"
                     "mov %%rdx, registers_after+24(%%rip)\n\t"
                     "mov %%rsi, registers_after+32(%%rip)\n\t"
                     "mov %%rdi, registers_after+40(%%rip)\n\t"
                     "mov %%rbp, registers_after+48(%%rip)\n\t"
                     "mov %%r8, registers_after+56(%%rip)\n\t"
                     "mov %%r9, registers_after+64(%%rip)\n\t"
                     "mov %%r10, registers_after+72(%%rip)\n\t"
                     "mov %%r11, registers_after+80(%%rip)\n\t"
                     "mov %%r12, registers_after+88(%%rip)\n\t"
                     "mov %%r13, registers_after+96(%%rip)\n\t"
                     "mov %%r14, registers_after+104(%%rip)\n\t"
                     "mov %%r15, registers_after+112(%%rip)\n\t"
                     "pop %%rbp"
                     :
                     :
                     : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                       "memory");
    check(seen_vector == 6 && seen_error == 0 && masked_in_handler && (seen_rflags & 0x200) != 0,
          "traps: ud2 reached the #UD handler with events masked (IF set in the saved rflags), error code 0");
    check(registers_after[0] == 0x5eed && registers_after[11] == 0x100d,
          "traps: the handler's changes to rax and r12 reached the code");
    int kept = 1;
    for (unsigned i = 1; i < 15; ++i)
        kept = kept && (i == 11 || registers_after[i] == 0x1001 + i);
    check(kept, "traps: the 13 other registers came back as they were");
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
    static struct pvk_trap_info own[2] = {
        {.vector = 0x80, .flags = 3, .cs = PVK_FLAT_KERNEL_CS, .address = (uint64_t)own_gate}};
    check(pvk_hypercall_set_trap_table(own) == 0, "traps: the kernel's own int $0x80 gate");
    check(pvk_trap_set_handler(6, on_invalid_opcode) == 0 && pvk_trap_set_handler(14, on_fault) == 0 &&
              pvk_trap_set_handler(3, on_breakpoint) == 0 && pvk_trap_set_handler(0, on_divide_error) == 0,
          "traps: handlers for #UD, #PF, #BP and #DE");
    __asm__ volatile("int $0x80" ::: "memory");
    check(own_gate_calls == 1, "traps: the kernel's own gate still there beside libguest's handlers");
    registers_checks();
    page_fault_checks();
    nested_checks();
    check(pvk_trap_set_handler(14, NULL) == 0 && pvk_trap_set_handler(0, NULL) == 0,
          "traps: the #PF and #DE handlers taken away");
    const int failures = report_result();
    if (failures != 0)
        return failures;
    /* The #UD handler taken away too: the same ud2 now crashes the domain, from the dispatcher. */
    pvk_printf("traps: ud2 with no handler\n");
    pvk_console_flush(pvk_monotonic_ns() + 1000000000ull);
    if (pvk_trap_set_handler(6, NULL) != 0)
        return 1;
    __asm__ volatile("ud2");
    return 1;
}

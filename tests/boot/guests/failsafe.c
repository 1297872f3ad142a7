/* Conformance: the failsafe callback. A return the CPU cannot make (here HYPERVISOR_iret to a
 * not-present code descriptor of the guest's own GDT) enters the callback registered with
 * CALLBACKTYPE_failsafe, with the frame xen.h describes for it, from the stack pointer up:
 *   { rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss }
 * where rip..ss are the registers the return was to go to. From kernel mode the frame is on the
 * current stack and cs loses its RPL; from user mode it is on the stack_switch stack and the
 * vCPU is back in kernel mode. CALLBACKF_mask_events masks events on entry. */
#include "pages.h"
#include "report.h"

#define USER_DS 0x2b       /* entry 5: flat data, DPL 3 */
#define KERNEL_CS 0x30     /* entry 6: 64-bit code; RPL 0 returns to kernel mode */
#define ABSENT_CS 0x38     /* entry 7: 64-bit code, not present */
#define FRAME_WORDS 11
#define SAVED_RCX 0xc0c0
#define SAVED_R11 0x1111
#define RFLAGS_IF 0x202

#define CODE64_DPL3 0x00affb000000ffffull
#define DATA_DPL3 0x00cff3000000ffffull
#define PRESENT (1ull << 47)

static uint64_t gdt[512] __attribute__((aligned(4096)));
static uint64_t user_l4[512] __attribute__((aligned(4096)));
static uint8_t trap_stack[4096] __attribute__((aligned(4096)));
static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static uint8_t landing_stack[256] __attribute__((aligned(16))); /* the stack kernel-mode returns go to */
static volatile uint8_t shared_page[4096] __attribute__((aligned(4096)));

uint64_t saved_context;
volatile uint64_t failsafe_frame[FRAME_WORDS], failsafe_rsp, failsafe_cs, failsafe_cr3, failsafe_count;

/* try_iret(cs, rip, rsp, rflags) returns through HYPERVISOR_iret to those registers (ss is
 * USER_DS, rcx and r11 are SAVED_RCX and SAVED_R11): 1 when that lands at `landed` in kernel
 * mode, 0 when the failsafe callback was entered instead, which keeps its frame. */
__asm__(".text\n"
        "try_iret:\n"
        "    pushq %rbx; pushq %rbp; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
        "    movq %rsp, saved_context(%rip)\n"
        "    pushq $0x2b\n" /* ss */
        "    pushq %rdx\n"  /* rsp */
        "    pushq %rcx\n"  /* rflags */
        "    pushq %rdi\n"  /* cs */
        "    pushq %rsi\n"  /* rip */
        "    pushq $0\n"    /* flags */
        "    movq $0xc0c0, %rcx\n"
        "    movq $0x1111, %r11\n"
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "landed:\n"
        "    movq saved_context(%rip), %rsp\n"
        "    movl $1, %eax\n"
        "    jmp 1f\n"
        "failsafe_callback:\n"
        "    cld\n"
        "    movq %rsp, failsafe_rsp(%rip)\n"
        "    movq %rsp, %rsi\n"
        "    leaq failsafe_frame(%rip), %rdi\n"
        "    movl $11, %ecx\n"
        "    rep movsq\n"
        "    movq %cs, %rax\n"
        "    movq %rax, failsafe_cs(%rip)\n"
        "    movq %cr3, %rax\n" /* emulated in kernel mode only */
        "    movq %rax, failsafe_cr3(%rip)\n"
        "    incq failsafe_count(%rip)\n"
        "    movq saved_context(%rip), %rsp\n"
        "    xorl %eax, %eax\n"
        "1:  popq %r15; popq %r14; popq %r13; popq %r12; popq %rbp; popq %rbx\n"
        "    ret\n");
extern char landed[], failsafe_callback[];
int try_iret(uint64_t cs, const void *rip, const void *rsp, uint64_t rflags);

static uint16_t selector(int which)
{
    uint16_t value = 0;
    switch (which) {
    case 0: __asm__ volatile("movw %%ds, %0" : "=r"(value)); break;
    case 1: __asm__ volatile("movw %%es, %0" : "=r"(value)); break;
    case 2: __asm__ volatile("movw %%fs, %0" : "=r"(value)); break;
    default: __asm__ volatile("movw %%gs, %0" : "=r"(value)); break;
    }
    return value;
}

static int frame_is(const void *rip, uint64_t cs, const void *rsp)
{
    int same = failsafe_frame[0] == SAVED_RCX && failsafe_frame[1] == SAVED_R11;
    for (int which = 0; which < 4; ++which)
        same = same && failsafe_frame[2 + which] == selector(which);
    return same && failsafe_frame[6] == (uint64_t)rip && (failsafe_frame[7] & 0xffff) == cs &&
           (failsafe_frame[8] & RFLAGS_IF) != 0 && failsafe_frame[9] == (uint64_t)rsp && failsafe_frame[10] == USER_DS;
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    uint64_t kernel_cr3;
    __asm__ volatile("movq %%cr3, %0" : "=r"(kernel_cr3));
    gdt[USER_DS >> 3] = DATA_DPL3;
    gdt[KERNEL_CS >> 3] = CODE64_DPL3;
    gdt[ABSENT_CS >> 3] = CODE64_DPL3 & ~PRESENT;
    pvk_xen_ulong_t frames[1] = {mfn_of(gdt)};
    report_check(remap(gdt, 0) == 0 && pvk_hypercall_set_gdt(frames, 16) == 0, "a GDT installed");
    report_check(pvk_hypercall_update_va_mapping((uint64_t)shared_page, info->shared_info | 0x23, PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped");
    __asm__ volatile("movw %w0, %%ds; movw %w0, %%es" : : "r"(USER_DS));

    uint8_t *const stack = landing_stack + sizeof landing_stack - 8; /* not 16-byte aligned on purpose */
    report_check(try_iret(KERNEL_CS, landed, stack, RFLAGS_IF) == 1 && failsafe_count == 0,
                 "iret to the present code descriptor lands");

    struct pvk_callback_register failsafe = {
        .type = PVK_CALLBACKTYPE_failsafe, .flags = PVK_CALLBACKF_mask_events, .address = (uint64_t)failsafe_callback};
    report_check(pvk_callbackop_register(&failsafe) == 0, "the failsafe callback registered, events masked");

    /* From kernel mode. */
    report_check(try_iret(ABSENT_CS, landed, stack, RFLAGS_IF) == 0 && failsafe_count == 1,
                 "iret to the not-present code descriptor enters the failsafe callback");
    report_check(frame_is(landed, ABSENT_CS, stack),
                 "its frame: rcx, r11, ds, es, fs, gs, then the rip, cs (RPL 0), rflags, rsp and ss returned to");
    report_check(failsafe_rsp == ((uint64_t)stack & ~15ull) - FRAME_WORDS * 8, "the frame is on the stack returned to, 16-byte aligned");
    report_check(((failsafe_frame[7] >> 32) & 0xff) == 0, "the cs slot saves the upcall mask of the moment (0)");
    report_check(failsafe_cs == 0xe033, "the callback runs on FLAT_KERNEL_CS");
    report_check(shared_page[1] == 1, "events are masked on entry (CALLBACKF_mask_events)");

    /* From user mode. */
    report_check(install_user_page_tables(info, user_l4, -1), "user page tables pinned and installed");
    uint8_t *const kernel_top = trap_stack + sizeof trap_stack - 64;
    report_check(pvk_hypercall_stack_switch(0xe02b, (uint64_t)kernel_top) == 0, "stack_switch");
    report_check(try_iret(ABSENT_CS | 3, landed, user_stack + sizeof user_stack, RFLAGS_IF) == 0 && failsafe_count == 2,
                 "iret to user mode on the not-present descriptor enters the failsafe callback");
    report_check(frame_is(landed, ABSENT_CS | 3, user_stack + sizeof user_stack),
                 "its frame keeps cs with RPL 3 and the user stack");
    report_check(failsafe_rsp == (uint64_t)kernel_top - FRAME_WORDS * 8, "the frame is on the stack_switch stack");
    report_check(failsafe_cs == 0xe033 && failsafe_cr3 == kernel_cr3, "the callback runs in kernel mode, on its page tables");
    report_text("failsafe: done\n");
    return report_failures();
}

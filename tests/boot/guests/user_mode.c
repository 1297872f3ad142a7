/* Conformance: guest user mode. The kernel gives itself user page tables (MMUEXT_NEW_USER_BASEPTR)
 * and a kernel stack for traps from user mode (stack_switch) that only its own page tables map,
 * then enters user code with HYPERVISOR_iret and a cs of RPL 3. From there: syscalls reach the
 * syscall callback (never the hypervisor) and return with iret and VGCF_in_syscall; `int n` is
 * checked against the trap table's DPL; int3, page faults and privileged instructions are
 * bounced in Xen's frame with the user's cs; the GS base and the page tables follow the mode. */
#include "pages.h"
#include "report.h"

#define USER_TLS_MAGIC 0x55534552544c53ull   /* what user mode finds at %gs:0 */
#define KERNEL_TLS_MAGIC 0x4b45524e454cull   /* what the kernel finds there */
#define RETURNED_BY_IRET 0x5ca11ull

/* The kernel stack for traps from user mode lives in L4 slot 510, which the user page tables
 * leave out: a frame written through them instead of the kernel's would fault. */
#define TRAP_STACK 0xffffff0000000000ull
/* Its top leaves room above a frame for the handlers, which copy nine words whatever its size. */
#define TRAP_STACK_TOP (TRAP_STACK + 4096 - 64)

static uint8_t trap_l3[4096] __attribute__((aligned(4096)));
static uint8_t trap_l2[4096] __attribute__((aligned(4096)));
static uint8_t trap_l1[4096] __attribute__((aligned(4096)));
static uint8_t trap_stack_page[4096] __attribute__((aligned(4096)));
static uint64_t user_l4[512] __attribute__((aligned(4096)));
static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static volatile uint8_t shared_page[4096] __attribute__((aligned(4096)));
static const uint64_t user_tls = USER_TLS_MAGIC;
static const uint64_t kernel_tls = KERNEL_TLS_MAGIC;
const uint32_t poweroff = PVK_SHUTDOWN_poweroff; /* the reason the user-mode sched_op names */

/* What the last trap from user mode left: its vector (0x100 for a syscall), some registers, and
 * the first words of its frame on the kernel stack. */
volatile uint64_t trap_vector, trap_rax, trap_rdi, trap_rbx, trap_rsp, trap_frame[9];
volatile uint64_t first_syscall_rax, syscalls, kernel_int81s;
uint64_t kernel_context;

/* enter_user(rip, rsp) saves the kernel's callee-saved registers and irets to user mode; a trap
 * handler records the trap and comes back here through leave_user, as if enter_user returned. */
__asm__(".text\n"
        "enter_user:\n"
        "    pushq %rbx; pushq %rbp; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
        "    movq %rsp, kernel_context(%rip)\n"
        "    pushq $0xe02b\n" /* ss */
        "    pushq %rsi\n"    /* rsp */
        "    pushq $0x2\n"    /* rflags: events stay masked in user mode */
        "    pushq $0xe033\n" /* cs: RPL 3, user mode */
        "    pushq %rdi\n"    /* rip */
        "    pushq $0\n"      /* flags */
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "leave_user:\n"
        "    movq kernel_context(%rip), %rsp\n"
        "    popq %r15; popq %r14; popq %r13; popq %r12; popq %rbp; popq %rbx\n"
        "    ret\n"
        ".macro record_trap name, vector\n"
        "\\name:\n"
        "    movq %rax, trap_rax(%rip)\n"
        "    movq %rdi, trap_rdi(%rip)\n"
        "    movq %rbx, trap_rbx(%rip)\n"
        "    movq $\\vector, trap_vector(%rip)\n"
        "    movq %rsp, trap_rsp(%rip)\n"
        "    .irp word, 0, 1, 2, 3, 4, 5, 6, 7, 8\n"
        "    movq \\word * 8(%rsp), %rax\n"
        "    movq %rax, trap_frame + \\word * 8(%rip)\n"
        "    .endr\n"
        "    jmp leave_user\n"
        ".endm\n"
        "record_trap breakpoint_handler, 3\n"
        "record_trap invalid_opcode_handler, 6\n"
        "record_trap general_protection_handler, 13\n"
        "record_trap page_fault_handler, 14\n"
        "record_trap int80_handler, 0x80\n"
        "record_trap int81_from_user, 0x81\n"
        /* int $0x81 from the kernel (its DPL 1 admits ring 1) returns; from user mode it is a bug. */
        "int81_handler:\n"
        "    testb $3, 24(%rsp)\n" /* the saved cs */
        "    jnz int81_from_user\n"
        "    incq kernel_int81s(%rip)\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "record_trap second_syscall, 0x100\n"
        /* The first syscall returns to user mode with iret and VGCF_in_syscall, rax given back. */
        "syscall_callback:\n"
        "    incq syscalls(%rip)\n"
        "    cmpq $1, syscalls(%rip)\n"
        "    jne second_syscall\n"
        "    movq %rax, first_syscall_rax(%rip)\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    movq $0x5ca11, %rax\n"
        "    pushq $256\n" /* VGCF_in_syscall */
        "    jmp pvk_hypercall_page + 23 * 32\n"
        /* User code: each entry ends in a trap. */
        "user_syscalls:\n"
        "    movq %gs:0, %rbx\n"
        "    movq $29, %rax\n" /* __HYPERVISOR_sched_op, SCHEDOP_shutdown, poweroff: no hypercall from here */
        "    movq $2, %rdi\n"
        "    leaq poweroff(%rip), %rsi\n"
        "    syscall\n"
        "    movq %rax, %rdi\n"
        "    movq $0x5678, %rax\n"
        "    syscall\n"
        "user_after_syscall:\n"
        "    ud2\n"
        "user_int80:\n"
        "    int $0x80\n"
        "user_after_int80:\n"
        "    ud2\n"
        "user_int81:\n"
        "    int $0x81\n"
        "    ud2\n"
        "user_int3:\n"
        "    int3\n"
        "user_after_int3:\n"
        "    ud2\n"
        "user_page_fault:\n"
        "    movq 0x1000, %rax\n"
        "    ud2\n"
        "user_rdmsr:\n"
        "    movl $0xc0000100, %ecx\n"
        "user_rdmsr_instruction:\n"
        "    rdmsr\n"
        "    ud2\n");
void enter_user(const char *rip, const void *rsp);
extern char breakpoint_handler[], invalid_opcode_handler[], general_protection_handler[], page_fault_handler[],
    int80_handler[], int81_handler[], syscall_callback[];
extern char user_syscalls[], user_after_syscall[], user_int80[], user_after_int80[], user_int81[], user_int3[],
    user_after_int3[], user_page_fault[], user_rdmsr[], user_rdmsr_instruction[];

static uint64_t read_gs0(void)
{
    uint64_t value;
    __asm__ volatile("movq %%gs:0, %0" : "=r"(value));
    return value;
}

static uint64_t read_cr3(void)
{
    uint64_t value;
    __asm__ volatile("movq %%cr3, %0" : "=r"(value));
    return value;
}

/* The frame of the last trap: rcx, r11, [error code], rip, cs, rflags, rsp, ss. */
static uint64_t frame_word(int with_error_code, int index)
{
    return trap_frame[index < 2 || with_error_code ? index : index - 1];
}
enum { RCX, R11, ERROR_CODE, RIP, CS, RFLAGS, RSP, SS };

static int user_trap(int vector, int with_error_code, const char *rip)
{
    return trap_vector == (uint64_t)vector && frame_word(with_error_code, RIP) == (uint64_t)rip &&
           (frame_word(with_error_code, CS) & 0xffff) == 0xe033 && frame_word(with_error_code, SS) == 0xe02b &&
           frame_word(with_error_code, RSP) == (uint64_t)(user_stack + sizeof user_stack);
}

/* Maps TRAP_STACK in the kernel's page tables only: L3, L2 and L1 filled while still writable,
 * made read-only, then hooked into the kernel's L4 with mmu_update, which validates them. */
static int map_trap_stack(const struct pvk_start_info *info)
{
    const uint64_t table = PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED;
    ((uint64_t *)trap_l1)[0] = mfn_of(trap_stack_page) * PAGE | table | PTE_DIRTY;
    ((uint64_t *)trap_l2)[0] = mfn_of(trap_l1) * PAGE | table;
    ((uint64_t *)trap_l3)[0] = mfn_of(trap_l2) * PAGE | table;
    if (remap(trap_l1, 0) != 0 || remap(trap_l2, 0) != 0 || remap(trap_l3, 0) != 0)
        return 0;
    struct pvk_mmu_update hook = {mfn_of((void *)info->pt_base) * PAGE + 510 * 8, mfn_of(trap_l3) * PAGE | table};
    uint32_t done = 0;
    return pvk_hypercall_mmu_update(&hook, 1, &done, PVK_DOMID_SELF) == 0 && done == 1;
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    const uint64_t present_writable_accessed = 0x23;
    report_check(pvk_hypercall_update_va_mapping((uint64_t)shared_page, info->shared_info | present_writable_accessed,
                                                 PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped");
    report_check(map_trap_stack(info), "a kernel-only stack mapped in L4 slot 510");
    *(volatile uint64_t *)(TRAP_STACK + 8) = 42;
    report_check(*(volatile uint64_t *)(TRAP_STACK + 8) == 42 && ((volatile uint64_t *)trap_stack_page)[1] == 42,
                 "the kernel reaches it");
    report_check(install_user_page_tables(info, user_l4, 510),  /* the trap stack's slot left out */
                 "user page tables pinned and installed (NEW_USER_BASEPTR)");
    report_check(pvk_hypercall_stack_switch(0xe02b, TRAP_STACK_TOP) == 0, "stack_switch");

    static struct pvk_trap_info traps[8];
    traps[0] = (struct pvk_trap_info){.vector = 3, .flags = 0, .cs = 0xe033, .address = (uint64_t)breakpoint_handler};
    traps[1] = (struct pvk_trap_info){.vector = 6, .cs = 0xe033, .address = (uint64_t)invalid_opcode_handler};
    traps[2] = (struct pvk_trap_info){.vector = 13, .cs = 0xe033, .address = (uint64_t)general_protection_handler};
    traps[3] = (struct pvk_trap_info){.vector = 14, .cs = 0xe033, .address = (uint64_t)page_fault_handler};
    traps[4] = (struct pvk_trap_info){.vector = 0x80, .flags = 3, .cs = 0xe033, .address = (uint64_t)int80_handler};
    traps[5] = (struct pvk_trap_info){.vector = 0x81, .flags = 1, .cs = 0xe033, .address = (uint64_t)int81_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");
    struct pvk_callback_register syscall = {.type = PVK_CALLBACKTYPE_syscall, .address = (uint64_t)syscall_callback};
    report_check(pvk_callbackop_register(&syscall) == 0, "the syscall callback registered");
    report_check(pvk_hypercall_set_segment_base(PVK_SEGBASE_GS_KERNEL, (uint64_t)&kernel_tls) == 0 &&
                     pvk_hypercall_set_segment_base(PVK_SEGBASE_GS_USER, (uint64_t)&user_tls) == 0,
                 "set_segment_base for the kernel's and the user's GS");
    report_check(read_gs0() == KERNEL_TLS_MAGIC, "the kernel's GS base is loaded");
    const uint64_t kernel_cr3 = read_cr3();

    enter_user(user_syscalls, user_stack + sizeof user_stack);
    report_check(syscalls == 2 && first_syscall_rax == 29,
                 "user syscalls reach the syscall callback, not the hypervisor (sched_op poweroff ignored)");
    report_check(trap_rdi == RETURNED_BY_IRET && trap_rax == 0x5678,
                 "iret with VGCF_in_syscall resumed user mode with the context's rax");
    report_check(trap_rbx == USER_TLS_MAGIC, "user mode found its own GS base");
    report_check(user_trap(0x100, 0, user_after_syscall) && frame_word(0, RCX) == (uint64_t)user_after_syscall,
                 "the syscall frame: rcx and rip past the syscall, the user's cs, rsp and ss");
    report_check(trap_rsp == TRAP_STACK_TOP - 7 * 8, "the frame is on the stack_switch stack");
    report_check(read_gs0() == KERNEL_TLS_MAGIC, "back in the kernel, its GS base is back");
    report_check(read_cr3() == kernel_cr3 && kernel_cr3 == mfn_of((void *)info->pt_base) * PAGE,
                 "back in the kernel, its page tables are back");

    enter_user(user_int80, user_stack + sizeof user_stack);
    report_check(user_trap(0x80, 0, user_after_int80), "int $0x80 with DPL 3 reaches its handler, rip past it");
    enter_user(user_int81, user_stack + sizeof user_stack);
    report_check(user_trap(13, 1, user_int81) && frame_word(1, ERROR_CODE) == (0x81 << 3 | 2),
                 "int $0x81 with DPL 1 is #GP from user mode, error code naming the IDT entry");
    __asm__ volatile("int $0x81" ::: "memory");
    report_check(kernel_int81s == 1, "int $0x81 with DPL 1 from the kernel (ring 1 for Xen) reaches its handler");
    enter_user(user_int3, user_stack + sizeof user_stack);
    report_check(user_trap(3, 0, user_after_int3), "int3 is #BP, whatever the trap table's DPL, rip past it");
    enter_user(user_page_fault, user_stack + sizeof user_stack);
    report_check(user_trap(14, 1, user_page_fault) && frame_word(1, ERROR_CODE) == PTE_USER,
                 "a user page fault: error code with the user bit");
    report_check(*(volatile uint64_t *)(shared_page + 16) == 0x1000, "cr2 in vcpu_info");
    enter_user(user_rdmsr, user_stack + sizeof user_stack);
    report_check(user_trap(13, 1, user_rdmsr_instruction) && frame_word(1, ERROR_CODE) == 0,
                 "rdmsr in user mode is not emulated: #GP at the instruction");
    report_text("user_mode: done\n");
    return report_failures();
}

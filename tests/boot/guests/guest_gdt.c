/* Conformance: the guest's own GDT in the CPU. The kernel builds a one-page GDT with Linux's user
 * selectors (data 0x2b, 64-bit code 0x33) and a few of its own, makes the page read-only and
 * installs it with set_gdt. Then: its data selectors load into %ds, %es and %fs, whose base is
 * the descriptor's; update_descriptor changes what the CPU sees (lsl, lar, a load that faulted
 * before); a DPL-0 descriptor is installed with DPL 3; a not-present one is the guest's #NP; and
 * iret returns to kernel mode with the GDT's code selector, and to user mode with cs 0x33 and
 * ss 0x2b, where %fs keeps its base across both mode switches. */
#include "pages.h"
#include "report.h"

#define KERNEL_CS 0x30   /* entry 6 with RPL 0: iret returns to kernel mode */
#define USER_DS 0x2b     /* entry 5 */
#define USER_CS 0x33     /* entry 6 */
#define BASED_DS 0x3b    /* entry 7: data whose base is FS_BASE */
#define LIMITED_DS 0x43  /* entry 8: data with a byte-granular limit, which update_descriptor changes */
#define ABSENT_DS 0x4b   /* entry 9: not present until update_descriptor writes it */
#define DPL0_DS 0x53     /* entry 10: written with DPL 0 */
#define GDT_ENTRIES 16

#define FS_BASE 0x00abc000u
#define FS_MAGIC 0x6673206261736521ull

/* Access bytes: present, DPL 3 (or 0), code or data; data read-write, code execute-read. */
#define DATA_DPL3 0xf3
#define DATA_DPL0 0x93
#define CODE_DPL3 0xfb
#define NOT_PRESENT 0x80 /* the P bit, to take away */
#define PRESENT_RIGHT 0x8000 /* the P bit in what lar reads */
/* Flags: 4 KiB granularity, 32-bit default size, 64-bit code. */
#define GRANULAR 0x8
#define BIG 0x4
#define LONG 0x2

#define NP_VECTOR 11
#define GP_VECTOR 13

static uint64_t gdt[512] __attribute__((aligned(4096)));
static uint64_t user_l4[512] __attribute__((aligned(4096)));
static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static uint8_t trap_stack[4096] __attribute__((aligned(4096)));
static volatile uint64_t fs_target = FS_MAGIC;

/* What the last segment fault left (load_es), and what user mode saw (user_code). */
volatile uint64_t probe_rsp, fault_vector, fault_error, faults;
volatile uint64_t user_fs_value, user_cs, user_ss, user_fs;
uint64_t kernel_context;

/* load_es(selector) loads %es and returns 1, or returns 0 from the #NP or #GP handler that the
 * load raised. enter_user(rip, rsp, fs_offset) irets to user mode with the GDT's selectors; its
 * syscall comes back through leave_user, as if enter_user returned. */
__asm__(".text\n"
        "load_es:\n"
        "    movq %rsp, probe_rsp(%rip)\n"
        "    movw %di, %es\n"
        "    movl $1, %eax\n"
        "    ret\n"
        ".macro segment_fault name, vector\n"
        "\\name:\n" /* Xen's frame: rcx, r11, error code, rip, cs, rflags, rsp, ss */
        "    movq $\\vector, fault_vector(%rip)\n"
        "    movq 16(%rsp), %rax\n"
        "    movq %rax, fault_error(%rip)\n"
        "    incq faults(%rip)\n"
        "    movq probe_rsp(%rip), %rsp\n"
        "    xorl %eax, %eax\n"
        "    ret\n"
        ".endm\n"
        "segment_fault not_present_handler, 11\n"
        "segment_fault general_protection_handler, 13\n"
        "enter_user:\n"
        "    pushq %rbx; pushq %rbp; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
        "    movq %rsp, kernel_context(%rip)\n"
        "    pushq $0x2b\n" /* ss: the GDT's user data */
        "    pushq %rsi\n"  /* rsp */
        "    pushq $0x2\n"  /* rflags: events stay masked in user mode */
        "    pushq $0x33\n" /* cs: the GDT's 64-bit code, RPL 3: user mode */
        "    pushq %rdi\n"  /* rip */
        "    pushq $0\n"    /* flags */
        "    jmp pvk_hypercall_page + 23 * 32\n"
        "user_code:\n" /* rdx: the offset of fs_target from the %fs base */
        "    movq %fs:(%rdx), %rdi\n"
        "    movl %cs, %ebx\n"
        "    movl %ss, %esi\n"
        "    movl %fs, %ebp\n"
        "    syscall\n"
        "    ud2\n"
        "syscall_callback:\n"
        "    movq %rdi, user_fs_value(%rip)\n"
        "    movq %rbx, user_cs(%rip)\n"
        "    movq %rsi, user_ss(%rip)\n"
        "    movq %rbp, user_fs(%rip)\n"
        "    movq kernel_context(%rip), %rsp\n"
        "    popq %r15; popq %r14; popq %r13; popq %r12; popq %rbp; popq %rbx\n"
        "    ret\n");
int load_es(uint64_t selector);
void enter_user(const char *rip, const void *rsp, uint64_t fs_offset);
extern char not_present_handler[], general_protection_handler[], user_code[], syscall_callback[];

static uint64_t segment(uint32_t base, uint32_t limit, unsigned access, unsigned flags)
{
    return (limit & 0xffffull) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)access << 40 |
           (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)flags << 52 | (uint64_t)(base >> 24) << 56;
}

static uint64_t entry_address(uint16_t selector)
{
    return mfn_of(gdt) * PAGE + (selector & ~7u);
}

/* lsl and lar: the limit and the access rights of a selector as the CPU's GDT has them (present
 * or not), or ~0 when the CPU refuses them (ZF clear). */
static uint64_t segment_limit(uint16_t selector)
{
    uint64_t limit = ~0ull;
    uint8_t valid;
    __asm__ volatile("lsl %k2, %k0\n\tsetz %1" : "+r"(limit), "=q"(valid) : "r"((uint32_t)selector) : "cc");
    return valid ? limit : ~0ull;
}

static uint64_t access_rights(uint16_t selector)
{
    uint64_t rights = ~0ull;
    uint8_t valid;
    __asm__ volatile("lar %k2, %k0\n\tsetz %1" : "+r"(rights), "=q"(valid) : "r"((uint32_t)selector) : "cc");
    return valid ? rights : ~0ull;
}

static uint64_t read_fs(uint64_t offset)
{
    uint64_t value;
    __asm__ volatile("movq %%fs:(%1), %0" : "=r"(value) : "r"(offset) : "memory");
    return value;
}

#define READ_SELECTOR(reg)                                                                                        \
    ({                                                                                                            \
        uint32_t value_;                                                                                          \
        __asm__ volatile("movl %%" #reg ", %0" : "=r"(value_));                                                   \
        value_;                                                                                                   \
    })

/* HYPERVISOR_iret to kernel mode (cs with RPL 0) on the GDT's selectors; what %cs and %ss then
 * hold, as cs << 16 | ss. */
static uint64_t iret_to_kernel(void)
{
    uint32_t cs, ss;
    __asm__ volatile("movq %%rsp, %%rax\n\t"
                     "pushq $0x2b\n\t"  /* ss */
                     "pushq %%rax\n\t"  /* rsp */
                     "pushq $0x2\n\t"   /* rflags: events stay masked */
                     "pushq $0x30\n\t"  /* cs: RPL 0, kernel mode */
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"  /* rip */
                     "pushq $0\n\t"     /* flags */
                     "jmp pvk_hypercall_page + 23 * 32\n"
                     "1:\n\t"
                     "movl %%cs, %0\n\t"
                     "movl %%ss, %1"
                     : "=r"(cs), "=r"(ss)
                     :
                     : "rax", "memory");
    return (uint64_t)cs << 16 | ss;
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    static struct pvk_trap_info traps[3];
    traps[0] = (struct pvk_trap_info){.vector = NP_VECTOR, .cs = 0xe033, .address = (uint64_t)not_present_handler};
    traps[1] = (struct pvk_trap_info){.vector = GP_VECTOR, .cs = 0xe033,
                                      .address = (uint64_t)general_protection_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");

    gdt[USER_DS >> 3] = segment(0, 0xfffff, DATA_DPL3, GRANULAR | BIG);
    gdt[USER_CS >> 3] = segment(0, 0xfffff, CODE_DPL3, GRANULAR | LONG);
    gdt[BASED_DS >> 3] = segment(FS_BASE, 0xfffff, DATA_DPL3, GRANULAR | BIG);
    gdt[LIMITED_DS >> 3] = segment(0, 0x1234, DATA_DPL3, BIG);
    gdt[ABSENT_DS >> 3] = segment(0, 0xfffff, DATA_DPL3 & ~NOT_PRESENT, GRANULAR | BIG);
    pvk_xen_ulong_t frames[1] = {mfn_of(gdt)};
    report_check(pvk_hypercall_set_gdt(frames, GDT_ENTRIES) == -PVK_XEN_EINVAL,
                 "set_gdt of a page still mapped writable is refused (-EINVAL)");
    report_check(remap(gdt, 0) == 0, "the GDT page remapped read-only");
    report_check(pvk_hypercall_set_gdt(frames, GDT_ENTRIES) == 0, "set_gdt installs it");
    report_check(remap(gdt, 1) != 0, "the installed GDT page cannot be mapped writable again");

    /* Its selectors in the CPU. */
    __asm__ volatile("movw %w0, %%ds\n\tmovw %w0, %%es" : : "r"((uint32_t)USER_DS) : "memory");
    report_check(READ_SELECTOR(ds) == USER_DS && READ_SELECTOR(es) == USER_DS && faults == 0,
                 "0x2b loads into %ds and %es");
    __asm__ volatile("movw %w0, %%fs" : : "r"((uint32_t)BASED_DS) : "memory");
    const uint64_t fs_offset = (uint64_t)&fs_target - FS_BASE;
    report_check(READ_SELECTOR(fs) == BASED_DS && read_fs(fs_offset) == FS_MAGIC,
                 "0x3b loads into %fs, whose base is its descriptor's (0xabc000)");

    /* update_descriptor reaches the CPU. */
    report_check(segment_limit(LIMITED_DS) == 0x1234, "lsl reads the installed limit (0x1234)");
    const uint64_t wider = segment(0, 0x5678, DATA_DPL3, BIG);
    report_check(pvk_hypercall_update_descriptor(entry_address(LIMITED_DS), wider) == 0 &&
                     gdt[LIMITED_DS >> 3] == wider,
                 "update_descriptor writes the GDT page");
    report_check(segment_limit(LIMITED_DS) == 0x5678, "lsl reads the new limit (0x5678)");

    report_check((access_rights(ABSENT_DS) & PRESENT_RIGHT) == 0, "lar reads the descriptor as not present");
    report_check(load_es(ABSENT_DS) == 0 && faults == 1 && fault_vector == NP_VECTOR &&
                     fault_error == (ABSENT_DS & ~3u),
                 "loading it into %es is #NP in the guest, error code the selector");
    report_check(pvk_hypercall_update_descriptor(entry_address(ABSENT_DS),
                                                 segment(0, 0xfffff, DATA_DPL3, GRANULAR | BIG)) == 0 &&
                     (access_rights(ABSENT_DS) & PRESENT_RIGHT) != 0 && load_es(ABSENT_DS) == 1 &&
                     READ_SELECTOR(es) == ABSENT_DS && faults == 1,
                 "made present by update_descriptor, it loads");

    report_check(pvk_hypercall_update_descriptor(entry_address(DPL0_DS),
                                                 segment(0, 0xfffff, DATA_DPL0, GRANULAR | BIG)) == 0 &&
                     ((gdt[DPL0_DS >> 3] >> 45) & 3) == 3,
                 "a DPL-0 descriptor is written with DPL 3");
    report_check(((access_rights(DPL0_DS) >> 13) & 3) == 3 && load_es(DPL0_DS) == 1 && faults == 1,
                 "the CPU has it with DPL 3: lar, and a load at CPL 3");

    report_check(pvk_hypercall_update_descriptor(entry_address(0x70), segment(0, 0x67, 0x89, 0)) == -PVK_XEN_EINVAL,
                 "a TSS descriptor is refused (-EINVAL)");

    /* iret on the GDT's selectors. */
    report_check(iret_to_kernel() == ((uint64_t)USER_CS << 16 | USER_DS),
                 "iret to kernel mode with cs 0x30 runs on cs 0x33, ss 0x2b");

    report_check(install_user_page_tables(info, user_l4, -1), "user page tables pinned and installed");
    report_check(pvk_hypercall_stack_switch(0xe02b, (uint64_t)(trap_stack + sizeof trap_stack - 64)) == 0,
                 "stack_switch");
    struct pvk_callback_register syscall = {.type = PVK_CALLBACKTYPE_syscall, .address = (uint64_t)syscall_callback};
    report_check(pvk_callbackop_register(&syscall) == 0, "the syscall callback registered");
    enter_user(user_code, user_stack + sizeof user_stack, fs_offset);
    report_check(user_cs == USER_CS && user_ss == USER_DS, "iret to user mode with cs 0x33, ss 0x2b");
    report_check(user_fs == BASED_DS && user_fs_value == FS_MAGIC, "user mode finds %fs and its base as loaded");
    report_check(READ_SELECTOR(fs) == BASED_DS && read_fs(fs_offset) == FS_MAGIC,
                 "back in the kernel, %fs keeps its base");
    report_text("guest_gdt: done\n");
    return report_failures();
}

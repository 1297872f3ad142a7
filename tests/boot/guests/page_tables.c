/* Conformance: the M2P is readable and not writable at the address XENMEM_machphys_mapping gives;
 * page-table frames are mapped read-only, so a store to one faults, until writable page tables
 * (VMASST_TYPE_writable_pagetables) turn a store to an L1 entry into a validated update, which
 * still refuses what mmu_update would. */
#include "pages.h"
#include "report.h"

extern char __pvk_virt_base[];

static uint8_t target[4096] __attribute__((aligned(4096)));
static const uint64_t *m2p;

/* The #PF handler notes the error code and resumes at `resume_at`. */
volatile uint64_t page_faults, fault_error;
uint64_t resume_at;
__asm__(".text\n"
        "page_fault_handler:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movq 8(%rsp), %rax\n"
        "    movq %rax, fault_error(%rip)\n"
        "    movq resume_at(%rip), %rax\n"
        "    movq %rax, 16(%rsp)\n"
        "    incq page_faults(%rip)\n"
        "    popq %rax\n"
        "    addq $8, %rsp\n" /* the error code */
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char page_fault_handler[];

/* Stores `value` at `address`; whether that faulted (the store is then skipped). */
static int store_faults(volatile uint64_t *address, uint64_t value)
{
    const uint64_t before = page_faults;
    __asm__ volatile("leaq 1f(%%rip), %%rax\n"
                     "movq %%rax, resume_at(%%rip)\n"
                     "movq %1, (%0)\n"
                     "1:\n"
                     : : "r"(address), "r"(value) : "rax", "memory");
    return page_faults != before;
}

static void *virtual_of(uint64_t mfn)
{
    return __pvk_virt_base + m2p[mfn] * PAGE;
}

/* The L1 entry that maps `page` in the current page tables, found through the M2P. */
static volatile uint64_t *l1_entry_of(const struct pvk_start_info *info, const void *page)
{
    const uint64_t address = (uint64_t)page;
    const uint64_t *table = (const uint64_t *)info->pt_base;
    for (int level = 4; level > 1; --level) {
        const uint64_t entry = table[(address >> (12 + 9 * (level - 1))) & 511];
        table = virtual_of((entry & 0x000ffffffffff000ull) / PAGE);
    }
    return (volatile uint64_t *)&table[(address >> 12) & 511];
}

static long invalidate(const void *page)
{
    struct pvk_mmuext_op op = {.cmd = PVK_MMUEXT_INVLPG_LOCAL};
    op.arg1.linear_addr = (uint64_t)page;
    uint32_t done = 0;
    return pvk_hypercall_mmuext_op(&op, 1, &done, PVK_DOMID_SELF);
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    static struct pvk_trap_info traps[2];
    traps[0] = (struct pvk_trap_info){.vector = 14, .cs = 0xe033, .address = (uint64_t)page_fault_handler};
    report_check(pvk_hypercall_set_trap_table(traps) == 0, "set_trap_table");

    struct pvk_xen_machphys_mapping mapping;
    report_check(pvk_hypercall_memory_op(PVK_XENMEM_machphys_mapping, &mapping) == 0 &&
                     mapping.v_start == 0xffff800000000000ull && mapping.v_end == 0xffff804000000000ull,
                 "XENMEM_machphys_mapping: the M2P at 0xffff800000000000");
    m2p = (const uint64_t *)mapping.v_start;
    const uint64_t target_pfn = ((uint64_t)target - (uint64_t)__pvk_virt_base) / PAGE;
    const uint64_t start_info_pfn = ((uint64_t)info - (uint64_t)__pvk_virt_base) / PAGE;
    report_check(m2p[mfn_of(target)] == target_pfn && m2p[mfn_of(info)] == start_info_pfn &&
                     m2p[mfn_of((void *)info->pt_base)] == ((uint64_t)info->pt_base - (uint64_t)__pvk_virt_base) / PAGE,
                 "the M2P names the pseudo-physical frame of the domain's pages");
    const uint64_t m2p_entry_before = m2p[mfn_of(target)];
    report_check(store_faults((volatile uint64_t *)&m2p[mfn_of(target)], 7) && fault_error == 3 &&
                     m2p[mfn_of(target)] == m2p_entry_before,
                 "a store to the M2P faults (present, write) and changes nothing");

    volatile uint64_t *l4 = (volatile uint64_t *)info->pt_base;
    const uint64_t l4_slot_0 = l4[0];
    report_check(store_faults(&l4[0], 0x1234) && fault_error == 3 && l4[0] == l4_slot_0,
                 "the L4 is mapped read-only: a store faults");
    volatile uint64_t *entry = l1_entry_of(info, target);
    const uint64_t mapping_of_target = *entry;
    report_check((mapping_of_target & ~0xfffull & 0x000fffffffffffffull) == mfn_of(target) * PAGE,
                 "the L1 entry of a page, found through the M2P, maps it");
    report_check(store_faults(entry, mapping_of_target & ~PTE_WRITABLE) && *entry == mapping_of_target,
                 "without writable page tables a store to an L1 entry faults");

    report_check(pvk_hypercall_vm_assist(PVK_VMASST_CMD_enable, PVK_VMASST_TYPE_writable_pagetables) == 0,
                 "VMASST_TYPE_writable_pagetables enabled");
    report_check(!store_faults(entry, mapping_of_target & ~PTE_WRITABLE) && invalidate(target) == 0 &&
                     (*entry & PTE_WRITABLE) == 0,
                 "with writable page tables the store to the L1 entry is done");
    report_check(store_faults((volatile uint64_t *)target, 1) && fault_error == 3,
                 "the page is read-only now: a store to it faults");
    report_check(!store_faults(entry, mapping_of_target) && invalidate(target) == 0 &&
                     !store_faults((volatile uint64_t *)target, 1) && target[0] == 1,
                 "a second store makes it writable again");
    const uint64_t page_table_writable = mfn_of((void *)info->pt_base) * PAGE | PTE_PRESENT | PTE_WRITABLE;
    const uint64_t entry_before = *entry;  /* the CPU has set its dirty bit since */
    report_check(store_faults(entry, page_table_writable) && *entry == entry_before,
                 "a store mapping a page table writable is refused: the fault is the guest's");
    report_text("page_tables: done\n");
    return report_failures();
}

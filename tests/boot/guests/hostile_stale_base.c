/* Hostile: switch to a new L4 (MMUEXT_NEW_BASEPTR), unpin the old one and map it writable, then
 * use it to map all of physical memory. The hypervisor must have stopped using the old L4 the
 * moment the base changed: the forged entry then maps nothing, and the access faults. */
#include "report.h"

#define VIRT_BASE 0xFFFFFFFF80000000ull

static uint64_t new_l4[512] __attribute__((aligned(4096)));
static uint64_t forged_l3[512] __attribute__((aligned(4096)));
static const uint64_t *p2m;

static uint64_t mfn_of(const void *address)
{
    return p2m[((uint64_t)address - VIRT_BASE) >> 12];
}

int pvk_main(const struct pvk_start_info *info)
{
    p2m = (const uint64_t *)info->mfn_list;
    uint64_t *old_l4 = (uint64_t *)info->pt_base;
    const uint64_t old_mfn = mfn_of(old_l4), new_mfn = mfn_of(new_l4);
    for (int i = 0; i < 512; ++i)
        new_l4[i] = old_l4[i];
    report_check(pvk_hypercall_update_va_mapping((uint64_t)new_l4, (new_mfn << 12) | 0x21, PVK_UVMF_INVLPG) == 0,
                 "the new L4 mapped read-only");
    struct pvk_mmuext_op switch_base[2] = {{.cmd = PVK_MMUEXT_PIN_L4_TABLE, .arg1.mfn = new_mfn},
                                           {.cmd = PVK_MMUEXT_NEW_BASEPTR, .arg1.mfn = new_mfn}};
    uint32_t done;
    report_check(pvk_hypercall_mmuext_op(switch_base, 2, &done, PVK_DOMID_SELF) == 0, "pinned and installed the new L4");
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    report_check(cr3 == new_mfn << 12, "cr3 reads the new base");
    struct pvk_mmuext_op unpin = {.cmd = PVK_MMUEXT_UNPIN_TABLE, .arg1.mfn = old_mfn};
    report_check(pvk_hypercall_mmuext_op(&unpin, 1, &done, PVK_DOMID_SELF) == 0, "unpinned the old L4");
    report_check(pvk_hypercall_update_va_mapping((uint64_t)old_l4, (old_mfn << 12) | 0x23, PVK_UVMF_INVLPG) == 0,
                 "the old L4 mapped writable");
    forged_l3[0] = 0x87;                              /* 1 GiB page at physical 0: P|RW|U|PS */
    old_l4[1] = (mfn_of(forged_l3) << 12) | 0x67;     /* L4 slot 1 -> the forged L3 */
    report_text("reading physical memory through the old L4\n");
    const volatile char *physical = (const volatile char *)(1ull << 39);
    (void)physical[0x200000];
    report_check(0, "the old L4 was still in use");
    return report_failures();
}

#include "pages.h"

extern char __pvk_virt_base[];

static const uint64_t *p2m;

void pages_init(const struct pvk_start_info *info)
{
    p2m = (const uint64_t *)info->mfn_list;
}

uint64_t mfn_of(const void *page)
{
    return p2m[((uint64_t)page - (uint64_t)__pvk_virt_base) / PAGE];
}

int install_user_page_tables(const struct pvk_start_info *info, uint64_t *user_l4, int left_out)
{
    const uint64_t *kernel_l4 = (const uint64_t *)info->pt_base;
    for (int slot = 0; slot < 512; ++slot)
        user_l4[slot] = slot == left_out ? 0 : kernel_l4[slot];
    if (remap(user_l4, 0) != 0)
        return 0;
    struct pvk_mmuext_op ops[2] = {{.cmd = PVK_MMUEXT_PIN_L4_TABLE}, {.cmd = PVK_MMUEXT_NEW_USER_BASEPTR}};
    ops[0].arg1.mfn = ops[1].arg1.mfn = mfn_of(user_l4);
    uint32_t done = 0;
    return pvk_hypercall_mmuext_op(ops, 2, &done, PVK_DOMID_SELF) == 0 && done == 2;
}

long remap(const void *page, int writable)
{
    const uint64_t flags = PTE_PRESENT | PTE_ACCESSED | (writable ? PTE_WRITABLE | PTE_DIRTY : 0);
    return pvk_hypercall_update_va_mapping((uint64_t)page, mfn_of(page) * PAGE | flags, PVK_UVMF_INVLPG);
}

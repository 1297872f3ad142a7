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

long remap(const void *page, int writable)
{
    const uint64_t flags = PTE_PRESENT | PTE_ACCESSED | (writable ? PTE_WRITABLE | PTE_DIRTY : 0);
    return pvk_hypercall_update_va_mapping((uint64_t)page, mfn_of(page) * PAGE | flags, PVK_UVMF_INVLPG);
}

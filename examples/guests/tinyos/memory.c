/*
 * Memory: libguest's page allocator and heap (set up by pvk_setup), with tinyos's own accounting
 * of what it took on top: libguest's counts (pvk_page_get_usage, pvk_heap_get_usage) say what the
 * whole guest uses, tinyos's what the kernel asked for.
 */
#include "kernel.h"

/* Each kmalloc block starts with its size, padded to keep pvk_malloc's 16-byte alignment. */
struct block_header {
    size_t bytes;
    size_t padding;
};

static struct memory_usage usage;

int memory_init(void)
{
    usage.pages_free_at_boot = pvk_page_get_usage().free;
    return usage.pages_free_at_boot > 0 ? 0 : -1;
}

void *page_get(void)
{
    struct pvk_page page;
    if (pvk_page_alloc(&page) != 0)
        return NULL;
    ++usage.pages_held;
    return page.address;
}

void *kmalloc(size_t bytes)
{
    struct block_header *header = pvk_malloc(sizeof *header + bytes);
    if (header == NULL)
        return NULL;
    header->bytes = bytes;
    ++usage.heap_blocks;
    usage.heap_bytes += bytes;
    return header + 1;
}

void kfree(void *block)
{
    if (block == NULL)
        return;
    struct block_header *header = (struct block_header *)block - 1;
    const size_t bytes = header->bytes;
    if (pvk_free(header) != PVK_HEAP_OK) {
        pvk_printf("tinyos: kfree of %p refused by the heap\n", block);
        return;
    }
    --usage.heap_blocks;
    usage.heap_bytes -= bytes;
}

struct memory_usage memory_usage(void)
{
    return usage;
}

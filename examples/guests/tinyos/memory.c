/*
 * Memory: libguest's page allocator and heap (set up by pvk_setup) with tinyos's own accounting
 * on top. libguest has no call that says how many pages are free, so memory_init counts them once
 * by taking every page and giving them all back.
 */
#include "kernel.h"

/* Each kmalloc block starts with its size, padded to keep pvk_malloc's 16-byte alignment. */
struct block_header {
    size_t bytes;
    size_t padding;
};

static struct memory_usage usage;

/* A page taken while counting: it remembers itself and the page taken before it. */
struct taken_page {
    struct taken_page *previous;
    struct pvk_page page;
};

/* Takes every free page, then frees them all: the count is what the allocator had. */
static uint64_t count_free_pages(void)
{
    struct taken_page *last = NULL;
    struct pvk_page page;
    uint64_t count = 0;
    while (pvk_page_alloc(&page) == 0) {
        struct taken_page *taken = page.address;
        taken->previous = last;
        taken->page = page;
        last = taken;
        ++count;
    }
    while (last != NULL) {
        page = last->page;
        last = last->previous; /* read before the page goes back */
        (void)pvk_page_free(&page);
    }
    return count;
}

int memory_init(void)
{
    usage.pages_free_at_boot = count_free_pages();
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

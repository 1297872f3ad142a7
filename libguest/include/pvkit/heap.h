/*
 * malloc-like blocks for C code in a pvkit guest, from the global heap (guest/heap.hpp), which the
 * guest sets up before the first call. Blocks are 16-byte aligned.
 */
#ifndef PVKIT_HEAP_H
#define PVKIT_HEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What pvk_free reports; nothing changes unless it returns PVK_HEAP_OK. */
enum pvk_heap_status {
    PVK_HEAP_OK = 0,
    PVK_HEAP_NOT_A_BLOCK = 1, /* not a block of this heap (or no heap set up) */
    PVK_HEAP_DOUBLE_FREE = 2, /* the block was freed already */
};

/* At least `bytes`, or NULL when memory is exhausted or no heap is set up yet (pvk_setup sets it
 * up, as does the first pvk_page_alloc or pvk_page_get_usage). */
void *pvk_malloc(size_t bytes);
/* count * size zeroed bytes; NULL also when the product overflows. */
void *pvk_calloc(size_t count, size_t size);
/* Frees a block from pvk_malloc/pvk_calloc; NULL is fine. */
enum pvk_heap_status pvk_free(void *block);
/* What the heap has handed out and not taken back (C++'s new included): blocks, and the bytes
 * they may use (at least what was asked for each). Zeros when no heap is set up. */
struct pvk_heap_usage {
    size_t blocks;
    size_t bytes;
};
struct pvk_heap_usage pvk_heap_get_usage(void);

#ifdef __cplusplus
}
#endif
#endif

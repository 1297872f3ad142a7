/*
 * tinyos: a small kernel in plain C, ported to a Xen PV guest on libguest's C API. This header is
 * what its parts tell each other; each .c file is one part of the kernel:
 *
 *   main.c    start of day: the boot and init sequence, pvk_main
 *   memory.c  pages from libguest's allocator, kmalloc/kfree over pvk_malloc with accounting
 *   timer.c   the tick: VIRQ_TIMER bound to a handler, the periodic timer, idling until a tick
 *   tasks.c   a cooperative scheduler: periodic tasks run from the idle loop
 *   store.c   xenstore: libguest's client over the store page and event channel
 *   shell.c   the interactive shell on the PV console
 */
#ifndef TINYOS_KERNEL_H
#define TINYOS_KERNEL_H

#include <pvkit/guest.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TINYOS_VERSION "0.1"
#define NS_PER_MS 1000000ull

/* memory.c */
int memory_init(void);
void *kmalloc(size_t bytes);
void kfree(void *block);
void *page_get(void);
struct memory_usage {
    uint64_t pages_free_at_boot; /* what libguest's allocator had before tinyos took any */
    uint64_t pages_held;         /* pages tinyos took with page_get */
    uint64_t heap_blocks;        /* kmalloc blocks not yet freed */
    uint64_t heap_bytes;         /* and the bytes asked for in them */
};
struct memory_usage memory_usage(void);

/* timer.c */
#define TICK_HZ 100
#define TICK_NS (1000000000ull / TICK_HZ)
int timer_init(void);
uint64_t timer_ticks(void);
uint32_t timer_port(void);
uint64_t timer_started_ns(void);
void timer_wait_for_tick(uint64_t seen);

/* tasks.c */
typedef void (*task_function)(void *context);
int task_spawn(const char *name, uint32_t period_ticks, task_function run, void *context);
void tasks_run_due(void);
void tasks_print(void);
int tasks_init(void);
uint64_t tasks_lost_ticks(void);
uint64_t tasks_heartbeats(void);

/* store.c */
int store_init(const struct pvk_start_info *start_info);
int store_read(const char *path, char *value, size_t capacity);

/* shell.c */
int shell_init(void);
void shell_run(void);

/* main.c */
uint64_t boot_time_ns(void);

#endif

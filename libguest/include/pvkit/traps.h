/*
 * Exceptions, C API (C and C++ kernels alike): a C function per exception vector, entered on the
 * kernel stack with events masked, with every register of the interrupted code in a frame it may
 * change; when it returns, the code goes on from the frame (through HYPERVISOR_iret, which also
 * restores the event mask). A vector without a handler crashes the domain, as before any is set.
 * Handlers are vCPU 0's, where libguest runs (Xen keeps a trap table per vCPU, and fault_address
 * is vCPU 0's cr2). Only the vectors given handlers here are touched in the table: entries a
 * kernel set itself with set_trap_table (an int $0x80 gate) stay.
 */
#ifndef PVKIT_TRAPS_H
#define PVKIT_TRAPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The interrupted code's registers, lowest address first: what the entry pushed, then Xen's
 * exception frame. */
struct pvk_trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t fault_address; /* a page fault's address (vcpu_info's cr2); 0 for other vectors */
    uint64_t vector;
    uint64_t error_code; /* 0 for vectors without one */
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*pvk_trap_handler)(struct pvk_trap_frame *frame);

/* Sends exception `vector` to `handler`. NULL: no handler again, and the exception crashes the
 * domain after a line on console_io (vector, error code, rip, fault address), its entry left in
 * the table. The vectors are 0-31 but NMI (2), double fault (8) and machine check (18), which a PV
 * guest is not given this way; #BP (3) and #OF (4) may be raised from user mode too (int3, into).
 * 0, or -PVK_XEN_EINVAL for another vector, or the hypervisor's error (nothing changed then). */
int pvk_trap_set_handler(unsigned vector, pvk_trap_handler handler);

#ifdef __cplusplus
}
#endif
#endif

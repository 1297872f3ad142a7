/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PVH entry: QEMU's -kernel (and Xen's toolstack) start us through the
 * XEN_ELFNOTE_PHYS32_ENTRY note in 32-bit protected mode, paging off, flat
 * segments, interrupts off, EBX = physical address of struct hvm_start_info.
 * We switch to long mode on static boot page tables, move to the high link
 * address, and call hv_main(hvm_start_info_paddr).
 *
 * The image is linked at virtual = physical + HV_VIRT_OFFSET, so until paging
 * is on every address below is PHYS(symbol).
 */
#include <pvkit/xen-abi.h>
#include "../src/memory_layout.hpp"

#define PHYS(sym) ((sym) - HV_VIRT_OFFSET)

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20

#define CR0_PE (1 << 0)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_SCE (1 << 0)
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)
#define CPUID_EXT_MAX_LEAF 0x80000000
#define CPUID_EXT_LEAF 0x80000001
#define CPUID_EXT_EDX_NX (1 << 20)
#define CPUID_EXT_EDX_LM (1 << 29)

#define PTE_P 0x001
#define PTE_RW 0x002
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080 /* 2 MiB page at L2 */
#define PTE_TABLE (PTE_P + PTE_RW)
#define PTE_LARGE (PTE_P + PTE_RW + PTE_PS)
#define L4_INDEX(va) (((va) >> 39) & 511)
#define L3_INDEX(va) (((va) >> 30) & 511)

#define GDT_CODE64 0x08
#define GDT_DATA 0x10

/* hypervisor.ld links the image with this value: memory_layout.hpp stays the
 * one definition. */
        .globl hv_virt_offset
        .set hv_virt_offset, HV_VIRT_OFFSET

/* ------------------------------------------------------------------------ */
/* The PVH note: tells the loader the physical address of pvh_entry32. ELF64
 * images carry an 8-byte descriptor, which is what QEMU reads. */
        .section .note.Xen, "a", @note
        .p2align 2
        .long .Lnote_name_end - .Lnote_name
        .long .Lnote_desc_end - .Lnote_desc
        .long PVK_XEN_ELFNOTE_PHYS32_ENTRY
.Lnote_name:
        .asciz "Xen"
.Lnote_name_end:
        .p2align 2
.Lnote_desc:
        .quad PHYS(pvh_entry32)
.Lnote_desc_end:
        .p2align 2

/* ------------------------------------------------------------------------ */
        .section .text.entry, "ax", @progbits
        .code32
        .globl pvh_entry32
        .type pvh_entry32, @function
pvh_entry32:
        cli
        cld
        cmpl $PVK_XEN_HVM_START_MAGIC_VALUE, (%ebx)
        jne .Lbad_magic
        /* EDI holds the start info from here on: CPUID clobbers EBX. */
        movl %ebx, %edi
        movl $PHYS(boot_stack_top), %esp

        /* Leaf 0x80000001 is only meaningful if the maximum leaf covers it. */
        movl $CPUID_EXT_MAX_LEAF, %eax
        cpuid
        cmpl $CPUID_EXT_LEAF, %eax
        jb .Lno_long_mode
        movl $CPUID_EXT_LEAF, %eax
        cpuid
        testl $CPUID_EXT_EDX_LM, %edx
        jz .Lno_long_mode
        /* NXE only where NX exists: setting it otherwise faults. */
        movl $(EFER_LME + EFER_SCE), %esi
        testl $CPUID_EXT_EDX_NX, %edx
        jz 1f
        orl $EFER_NXE, %esi
1:
        lgdt PHYS(boot_gdt_ptr32)

        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4

        movl $PHYS(boot_l4), %eax
        movl %eax, %cr3

        movl $MSR_EFER, %ecx
        rdmsr
        orl %esi, %eax
        wrmsr

        /* Paging on activates long mode; we run in compatibility mode until
         * the far jump loads the 64-bit code segment. */
        movl %cr0, %eax
        orl $(CR0_PE + CR0_WP + CR0_PG), %eax
        movl %eax, %cr0
        ljmp $GDT_CODE64, $PHYS(.Lentry64_low)

.Lbad_magic:
        movl $PHYS(.Lmsg_bad_magic), %esi
        jmp .Lfail32
.Lno_long_mode:
        movl $PHYS(.Lmsg_no_long_mode), %esi
        /* fall through */

/* Print the NUL-terminated string at ESI (physical) on COM1 and stop. The
 * UART is used as the reset state leaves it; QEMU needs no setup. */
.Lfail32:
        lodsb
        testb %al, %al
        jz .Lhalt32
        movb %al, %ah
        movw $COM1_LSR, %dx
2:      inb %dx, %al
        testb $LSR_THR_EMPTY, %al
        jz 2b
        movw $COM1, %dx
        movb %ah, %al
        outb %al, %dx
        jmp .Lfail32
.Lhalt32:
        cli
        hlt
        jmp .Lhalt32
        .size pvh_entry32, . - pvh_entry32

/* ------------------------------------------------------------------------ */
        .code64
        /* Running at the identity-mapped physical address: go high. */
.Lentry64_low:
        movabsq $.Lentry64_high, %rax
        jmpq *%rax

.Lentry64_high:
        /* Reload the GDT through its high address: the identity map is
         * temporary. */
        lgdt boot_gdt_ptr64(%rip)
        movw $GDT_DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorl %eax, %eax
        movw %ax, %fs
        movw %ax, %gs
        leaq boot_stack_top(%rip), %rsp
        /* Upper halves of registers are undefined after the mode switch:
         * a 32-bit move zero-extends. R15 survives the calls below. */
        movl %edi, %r15d

        /* The loader zero-fills memsz past filesz, but other loaders may not.
         * Safe although the stack lives in .bss: nothing is on it yet. */
        leaq __bss_start(%rip), %rdi
        leaq __bss_end(%rip), %rcx
        subq %rdi, %rcx
        xorl %eax, %eax
        rep stosb

        /* Global constructors. */
        leaq __init_array_start(%rip), %rbx
        leaq __init_array_end(%rip), %r12
3:      cmpq %r12, %rbx
        jae 4f
        callq *(%rbx)
        addq $8, %rbx
        jmp 3b
4:
        movq %r15, %rdi
        callq hv_main
.Lhalt64:
        cli
        hlt
        jmp .Lhalt64

/* ------------------------------------------------------------------------ */
        .section .rodata.boot, "a", @progbits
.Lmsg_bad_magic:
        .asciz "pvkit: PVH boot failed: bad hvm_start_info magic\r\n"
.Lmsg_no_long_mode:
        .asciz "pvkit: PVH boot failed: CPU has no long mode\r\n"

/* ------------------------------------------------------------------------ */
/* Boot GDT. Accessed bits are preset so loading a selector never writes. */
        .section .data.boot, "aw", @progbits
        .p2align 3
boot_gdt:
        .quad 0                        /* null */
        .quad 0x00af9b000000ffff       /* 0x08: ring-0 64-bit code (L=1) */
        .quad 0x00cf93000000ffff       /* 0x10: ring-0 flat data */
.Lboot_gdt_end:

/* Each pointer is a 2-byte limit then the base; the padding puts the base on
 * an 8-byte boundary. */
        .p2align 3
        .skip 6
boot_gdt_ptr32:                        /* lgdt in 32-bit mode reads 6 bytes */
        .word .Lboot_gdt_end - boot_gdt - 1
        .long PHYS(boot_gdt)

        .p2align 3
        .skip 6
boot_gdt_ptr64:
        .word .Lboot_gdt_end - boot_gdt - 1
        .quad boot_gdt

/* ------------------------------------------------------------------------ */
/* Boot page tables, filled in at assembly/link time.
 *   L4[0]    -> L3 identity: [0] -> L2 below, so VA [0, 1 GiB) = PA.
 *   L4[261]  -> L3 high:     [322] -> the same L2, so
 *               VA HV_VIRT_OFFSET + [0, 1 GiB) = PA [0, 1 GiB).
 * HV_VIRT_OFFSET is 1 GiB aligned, so its L2 index is 0 and one L2 table of
 * 512 2 MiB pages serves both windows. The image (PA 0x200000) sits at L2[1]. */
        .if (HV_VIRT_OFFSET & 0x3fffffff) != 0
        .error "HV_VIRT_OFFSET must be 1 GiB aligned for the shared boot L2"
        .endif

        .section .data.page_tables, "aw", @progbits
        .p2align 12
boot_l4:
        .quad PHYS(boot_l3_ident) + PTE_TABLE
        .fill L4_INDEX(HV_VIRT_OFFSET) - 1, 8, 0
        .quad PHYS(boot_l3_high) + PTE_TABLE
        .fill 511 - L4_INDEX(HV_VIRT_OFFSET), 8, 0

boot_l3_ident:
        .quad PHYS(boot_l2_low_1g) + PTE_TABLE
        .fill 511, 8, 0

boot_l3_high:
        .fill L3_INDEX(HV_VIRT_OFFSET), 8, 0
        .quad PHYS(boot_l2_low_1g) + PTE_TABLE
        .fill 2, 8, 0
        .quad PHYS(boot_l2_local_apic) + PTE_TABLE
        .fill 508 - L3_INDEX(HV_VIRT_OFFSET), 8, 0

boot_l2_low_1g:
        .set .Lpage, 0
        .rept 512
        .quad (.Lpage << 21) + PTE_LARGE
        .set .Lpage, .Lpage + 1
        .endr

/* The fourth GiB at HV_VIRT_OFFSET + 3 GiB: only the 2 MiB page holding the local APIC's
 * registers (PA 0xfee00000), uncached. */
boot_l2_local_apic:
        .fill LOCAL_APIC_L2_INDEX, 8, 0
        .quad LOCAL_APIC_PHYS + PTE_LARGE + PTE_PCD + PTE_PWT
        .fill 511 - LOCAL_APIC_L2_INDEX, 8, 0

/* ------------------------------------------------------------------------ */
        .section .bss.boot_stack, "aw", @nobits
        .p2align 12
        .skip 16384
boot_stack_top:

        .section .note.GNU-stack, "", @progbits

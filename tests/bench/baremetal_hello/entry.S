/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The bare-metal baseline's start: QEMU enters it exactly as it enters the
 * hypervisor, through the XEN_ELFNOTE_PHYS32_ENTRY note in 32-bit protected
 * mode with paging off and EBX = physical address of struct hvm_start_info.
 * We turn on long mode over one identity-mapped 2 MiB page (the whole image
 * lies in it) and call baremetal_main(hvm_start_info_paddr). The image is
 * linked where it is loaded, so every address is physical.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define CR0_PE (1 << 0)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define PTE_TABLE 0x003 /* present, writable */
#define PTE_LARGE 0x083 /* present, writable, 2 MiB page */

#define GDT_CODE64 0x08
#define GDT_DATA 0x10

/* An ELF64 image carries an 8-byte descriptor: QEMU reads it so. */
        .section .note.Xen, "a", @note
        .p2align 2
        .long 4                        /* name size: "Xen\0" */
        .long 8                        /* descriptor size */
        .long XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .quad pvh_entry32

        .section .text.entry, "ax", @progbits
        .code32
        .globl pvh_entry32
        .type pvh_entry32, @function
pvh_entry32:
        cli
        cld
        movl $stack_top, %esp
        movl %ebx, %edi                /* the start info, kept for baremetal_main */

        lgdt gdt_pointer
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $page_l4, %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $(CR0_PE + CR0_PG), %eax
        movl %eax, %cr0
        ljmp $GDT_CODE64, $entry64
        .size pvh_entry32, . - pvh_entry32

        .code64
entry64:
        movw $GDT_DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl %edi, %edi                /* upper halves are undefined after the switch */
        call baremetal_main
1:      cli
        hlt
        jmp 1b

        .section .data, "aw", @progbits
        .p2align 3
gdt:
        .quad 0                        /* null */
        .quad 0x00af9b000000ffff       /* 0x08: 64-bit code */
        .quad 0x00cf93000000ffff       /* 0x10: flat data */
gdt_pointer:                           /* lgdt in 32-bit mode reads 6 bytes */
        .word gdt_pointer - gdt - 1
        .long gdt

/* VA [0, 2 MiB) = PA [0, 2 MiB): the linker script checks the image fits. */
        .section .data.page_tables, "aw", @progbits
        .p2align 12
page_l4:
        .quad page_l3 + PTE_TABLE
        .fill 511, 8, 0
page_l3:
        .quad page_l2 + PTE_TABLE
        .fill 511, 8, 0
page_l2:
        .quad 0 + PTE_LARGE
        .fill 511, 8, 0

        .section .bss, "aw", @nobits
        .p2align 4
        .skip 4096
stack_top:

        .section .note.GNU-stack, "", @progbits

//! PVH entry: the Xen ELF note, the 32-bit entry code and the switch to long mode.
//!
//! The monitor enters `pvh_start32` in 32-bit protected mode, paging off, with `ebx` = physical
//! address of `hvm_start_info`. The code below zeroes .bss, loads the static page tables that
//! identity-map the low 4 GiB with 2 MiB pages (the top GiB, PCI MMIO window + LAPIC, uncached:
//! PCD|PWT), enables PAE, SSE
//! (OSFXSR, OSXMMEXCPT), EFER.LME and paging, loads a GDT with a 64-bit code segment, far-jumps
//! to 64-bit code and calls `kmain(start_info_phys)` on the boot stack.

/// Boot stack size.
pub const STACK_SIZE: usize = 128 * 1024;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start32

    .section .text.boot32, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi

    /* zero .bss, 4 bytes per iteration (every instruction, and every iteration of a string
       instruction, runs in KVM's instruction emulator here: see docs/platform.md). The page
       tables are static data and the stack lives outside .bss, so this range is small. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    /* CR4: PAE | OSFXSR | OSXMMEXCPT */
    movl %cr4, %eax
    orl $0x620, %eax
    movl %eax, %cr4

    movl $boot_pml4, %eax
    movl %eax, %cr3

    /* EFER.LME */
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr

    /* CR0: PG | WP | NE | MP | PE, EM and TS clear */
    movl %cr0, %eax
    andl $0xFFFFFFF3, %eax
    orl $0x80010023, %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_entry

    .code64
long_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %esi, %edi
    call kmain
4:
    cli
    hlt
    jmp 4b

    .section .data.boot_gdt, "aw"
    .balign 16
    .global boot_gdt
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0
    .quad 0
boot_gdt_end:
    .global boot_gdt_ptr
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    /* The boot page tables are built by the assembler, not at run time: PML4[0] -> PDPT,
       PDPT[0..4] -> four page directories, 2048 x 2 MiB pages identity-mapping 4 GiB
       (present|writable|large = 0x83); the top GiB (PCI MMIO window + LAPIC) also uncached
       (PCD|PWT = 0x18). Building them at run time cost about 18,000 emulated instructions. */
    .section .data.boot_pt, "aw"
    .balign 4096
boot_pml4:
    .quad boot_pdpt + 3
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + 3
    .quad boot_pd + 0x1000 + 3
    .quad boot_pd + 0x2000 + 3
    .quad boot_pd + 0x3000 + 3
    .fill 508, 8, 0
boot_pd:
    .set boot_pd_page, 0
    .rept 1536
    .quad (boot_pd_page << 21) | 0x83
    .set boot_pd_page, boot_pd_page + 1
    .endr
    .rept 512
    .quad (boot_pd_page << 21) | 0x9B
    .set boot_pd_page, boot_pd_page + 1
    .endr

    /* The stack is not zeroed (nothing reads it before writing it): its own section, outside
       the .bss range that the entry code clears. */
    .section .boot_stack, "aw", @nobits
    .balign 16
    .global boot_stack
boot_stack:
    .skip {stack}
    .global boot_stack_top
boot_stack_top:
    "#,
    stack = const STACK_SIZE,
    options(att_syntax)
);

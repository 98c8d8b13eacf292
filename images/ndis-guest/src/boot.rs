//! PVH entry: the Xen ELF note, the 32-bit entry code and the switch to long mode.
//!
//! The monitor enters `pvh_start32` in 32-bit protected mode, paging off, with `ebx` = physical
//! address of `hvm_start_info`. The code below zeroes .bss, identity-maps the low 4 GiB with
//! 2 MiB pages (the top GiB, PCI MMIO window + LAPIC, uncached: PCD|PWT), enables PAE, SSE
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

    /* zero .bss (page tables and stack live there) */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    /* PML4[0] -> PDPT */
    movl $boot_pdpt, %eax
    orl $3, %eax
    movl %eax, boot_pml4

    /* PDPT[0..4] -> 4 page directories */
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jb 1b

    /* 2048 x 2 MiB pages, present|writable|large; >= 3 GiB also PCD|PWT */
    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    cmpl $1536, %ecx
    jb 3f
    orl $0x18, %eax
3:
    movl %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

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

    .section .bss.boot_pt, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 16384

    .section .bss.boot_stack, "aw", @nobits
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

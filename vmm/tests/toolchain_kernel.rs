//! A PVH kernel produced by a real assembler and linker (GNU as/ld): several
//! segments, the PVH note in its own PT_NOTE, a .bss. Checks that the monitor
//! boots what a toolchain emits, not only the in-memory fixtures. Needs /dev/kvm
//! and binutils (installed with gcc).

mod common;

use std::process::Command;

use common::*;

const SOURCE: &str = r#"
    .code32
    .section .text
    .globl _start
_start:
    cmpl $0x336ec578, (%ebx)
    jne 2f
    movl $0x5a5a5a5a, bss_word
    cmpl $0x5a5a5a5a, bss_word
    jne 2f
    mov $0x3f8, %dx
    mov $msg, %esi
1:  lodsb
    test %al, %al
    jz 3f
    out %al, %dx
    jmp 1b
3:  mov $0xf4, %dx
    mov $42, %eax
    out %eax, %dx
    hlt
2:  mov $0xf4, %dx
    mov $1, %eax
    out %eax, %dx
    hlt

    .section .rodata
msg: .asciz "from ld\n"

    .section .bss
    .align 4
bss_word: .long 0

    .section .note.pvh, "a", @note
    .align 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long _start
"#;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn boots_a_kernel_built_by_as_and_ld() {
    if !have("as") || !have("ld") {
        // binutils come with gcc on every machine that builds this workspace; a
        // machine without them cannot run this one check.
        eprintln!("boots_a_kernel_built_by_as_and_ld: SKIPPED: GNU as/ld not installed");
        return;
    }
    if !kvm_available("boots_a_kernel_built_by_as_and_ld") {
        return;
    }
    let s = Scratch::new("ld");
    let src = s.file("k.S", SOURCE.as_bytes());
    let obj = s.0.join("k.o");
    let elf = s.0.join("k.elf");
    let st = Command::new("as")
        .args(["--64", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "as failed");
    let st = Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-Ttext=0x200000",
            "-z",
            "noexecstack",
            "-o",
        ])
        .arg(&elf)
        .arg(&obj)
        .status()
        .unwrap();
    assert!(st.success(), "ld failed");
    let o = vmm(&["--kernel", path_str(&elf), "--no-rnic"]);
    assert_eq!(
        o.status.code(),
        Some(42),
        "stdout: {} stderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(stdout(&o), "from ld\n");
}

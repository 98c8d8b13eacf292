//! `DbgPrint` (ntoskrnl.exe): a C-variadic function in the Microsoft x64 convention.
//!
//! The entry stub stores RCX, RDX, R8 and R9 into the caller's 32-byte home area, which makes
//! all arguments one contiguous array of 8-byte slots (home area, then the stack arguments), and
//! calls `dbgprint_va(format, &slot[1])`. The text goes to the serial port as-is.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use guest_core::fmt::{format, ArgSource};

use crate::serial::SERIAL;

core::arch::global_asm!(
    r#"
    .section .text.dbgprint, "ax"
    .global guest_DbgPrint
guest_DbgPrint:
    movq %rcx, 8(%rsp)
    movq %rdx, 16(%rsp)
    movq %r8, 24(%rsp)
    movq %r9, 32(%rsp)
    subq $40, %rsp
    leaq 56(%rsp), %rdx
    call dbgprint_va
    addq $40, %rsp
    ret
    "#,
    options(att_syntax)
);

extern "C" {
    /// The entry stub above (its real ABI is win64 variadic; only its address is used).
    pub fn guest_DbgPrint();
}

/// Strings are read only from RAM below the PCI MMIO window.
const READABLE_LIMIT: u64 = 0xC000_0000;
const NOP_TEXT: &[u8] = b"NOP completed";
static NOP_MATCH: AtomicUsize = AtomicUsize::new(0);
static NOP_SEEN: AtomicBool = AtomicBool::new(false);

/// True once the driver printed "NOP completed" through DbgPrint.
pub fn nop_completed_seen() -> bool {
    NOP_SEEN.load(Ordering::Relaxed)
}

fn watch(b: u8) {
    let mut i = NOP_MATCH.load(Ordering::Relaxed);
    if b == NOP_TEXT[i] {
        i += 1;
        if i == NOP_TEXT.len() {
            NOP_SEEN.store(true, Ordering::Relaxed);
            i = 0;
        }
    } else {
        i = (b == NOP_TEXT[0]) as usize;
    }
    NOP_MATCH.store(i, Ordering::Relaxed);
}

struct StackArgs {
    next: *const u64,
}

impl ArgSource for StackArgs {
    fn next_arg(&mut self) -> u64 {
        // SAFETY: win64 varargs: the caller provides one 8-byte slot per argument it passed;
        // a format asking for more arguments than passed reads the caller's stack (as on
        // Windows), which is mapped memory.
        let v = unsafe { self.next.read() };
        self.next = self.next.wrapping_add(1);
        v
    }

    fn emit_str(&mut self, ptr: u64, max: usize, out: &mut dyn FnMut(u8)) {
        if ptr == 0 {
            b"(null)".iter().for_each(|&b| out(b));
            return;
        }
        for i in 0..max as u64 {
            let a = ptr + i;
            if a >= READABLE_LIMIT {
                b"<bad pointer>".iter().for_each(|&b| out(b));
                return;
            }
            // SAFETY: `a` is below the MMIO window, inside the identity-mapped RAM.
            let b = unsafe { (a as *const u8).read_volatile() };
            if b == 0 {
                return;
            }
            out(b);
        }
    }
}

#[no_mangle]
extern "win64" fn dbgprint_va(fmt: *const u8, args: *const u64) -> u32 {
    if fmt.is_null() || fmt as u64 >= READABLE_LIMIT {
        return 0xC000_000D; // STATUS_INVALID_PARAMETER
    }
    // SAFETY: a NUL-terminated format string in driver memory; bounded to 4 KiB.
    let len = (0..4096)
        .take_while(|&i| unsafe { fmt.add(i).read() } != 0)
        .count();
    // SAFETY: `len` bytes were just read.
    let text = unsafe { core::slice::from_raw_parts(fmt, len) };
    let mut a = StackArgs { next: args };
    let mut serial = SERIAL.lock();
    format(text, &mut a, &mut |b| {
        watch(b);
        serial.write_bytes(&[b]);
    });
    0
}

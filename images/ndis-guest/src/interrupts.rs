//! IDT, TSS, exception reporting, the interrupt entry path, the local APIC and the tick timer.
//!
//! Every vector has a 16-byte stub. Exceptions (0..31) end in `exception_handler`, which prints
//! the exception and exits with status 4. Vectors 32..255 go through `irq_common`, which saves
//! all general registers and the full FPU/SSE state (`fxsave64`), loads the default x87/MXCSR
//! control words, calls `irq_dispatch(vector)` and restores everything: interrupted code (the
//! driver's SSE code included) never sees a difference.
//!
//! The timer vector has its own entry (`timer_entry`): a tick only counts and sends the EOI, in
//! seven instructions, without saving registers or FPU state. Every instruction runs in KVM's
//! instruction emulator here (about 1.5 us each) and the full path costs about 75 instructions, at
//! 1,000 ticks per second. Every [`TICKS_PER_FULL_PATH`]th tick takes the full path instead, so
//! the exit hook (the NDIS layer runs pending DPCs there) still runs on a quiet system.
//!
//! This module knows nothing of NDIS: the vector plan and the routing decisions live in
//! `guest_core::irq`; the NDIS layer receives message vectors through the hooks it installs with
//! [`install_hooks`].

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_core::irq::{HookError, HookTable, InterruptHooks, Route, SPURIOUS_VECTOR, TIMER_VECTOR};

use crate::cpu;
use crate::sync::IrqLock;
const DOUBLE_FAULT: usize = 8;
const NMI: usize = 2;
const MACHINE_CHECK: usize = 18;

pub const LAPIC_BASE: u64 = 0xFEE0_0000;
const LAPIC_ID: usize = 0x20;
const LAPIC_TPR: usize = 0x80;
const LAPIC_EOI: usize = 0xB0;
const LAPIC_SVR: usize = 0xF0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_TIMER_INIT: usize = 0x380;
const LAPIC_TIMER_CUR: usize = 0x390;
const LAPIC_TIMER_DIV: usize = 0x3E0;
/// KVM and QEMU both run the LAPIC timer from a 1 GHz bus clock; divide by 16.
const LAPIC_TIMER_HZ: u64 = 1_000_000_000 / 16;
const TICK_HZ: u64 = 1000;

global_asm!(
    r#"
    /* The 15 general registers, pushed so that the last one (r15) is at the lowest
       address: the layout of `ExceptionFrame` up to `vector`. */
    .macro save_gprs
    .irp reg, rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15
    pushq %\reg
    .endr
    .endm

    .macro restore_gprs
    .irp reg, r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax
    popq %\reg
    .endr
    .endm

    .section .text.isr, "ax"
    /* The 256 stubs fill exactly one 4 KiB page: the static IDT below relies on it (the low 16
       bits of every stub's address are the page's plus 16 * vector, never carrying). */
    .balign 4096
    .global exc_stubs
exc_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp exc_common
    .set vec, vec + 1
    .endr

    .balign 16
    .global irq_stubs
irq_stubs:
    .set vec, 32
    .rept 224
    .balign 16
    pushq $vec
    jmp irq_common
    .set vec, vec + 1
    .endr

exc_common:
    save_gprs
    cld
    movq %rsp, %rdi
    andq $-16, %rsp
    call exception_handler
5:
    cli
    hlt
    jmp 5b

irq_common:
    save_gprs
    cld
    movq %rsp, %rbp
    andq $-16, %rsp
    subq $512, %rsp
    fxsave64 (%rsp)
    fxrstor64 DEFAULT_FX_AREA(%rip)
    movq 120(%rbp), %rdi
    call irq_dispatch
    fxrstor64 (%rsp)
    movq %rbp, %rsp
    restore_gprs
    addq $8, %rsp
    iretq

    /* The IDT, built by the assembler and the linker (linker.ld splits the stub page's and
       timer_entry's addresses into the gate fields): building it at run time cost about 3,300
       emulated instructions per boot. Gates: present, DPL 0, 64-bit interrupt gate (0x8E),
       selector 0x08; IST 1 for NMI (2), #DF (8) and #MC (18). Vector 0x20 (the tick) goes to
       timer_entry, the others to their stubs. */
    .section .data.idt, "aw"
    .balign 16
    .global idt_table
idt_table:
    .set vec, 0
    .rept 256
    .if vec == 0x20
    .word timer_entry_lo16
    .word 0x08
    .byte 0
    .byte 0x8E
    .word timer_entry_mid16
    .long timer_entry_hi32
    .else
    .word isr_page_lo16 + 16 * vec
    .word 0x08
    .if (vec == 2) || (vec == 8) || (vec == 18)
    .byte 1
    .else
    .byte 0
    .endif
    .byte 0x8E
    .word isr_page_mid16
    .long isr_page_hi32
    .endif
    .long 0
    .set vec, vec + 1
    .endr
    "#,
    options(att_syntax)
);

/// Every this many ticks, the timer interrupt takes the full path (`irq_common`, the exit hook).
const TICKS_PER_FULL_PATH: u32 = 8;

/// Ticks left until the next full-path tick (counted down by `timer_entry`).
static TICKS_TO_FULL_PATH: AtomicU32 = AtomicU32::new(TICKS_PER_FULL_PATH);

global_asm!(
    r#"
    .section .text.isr, "ax"
    .balign 16
    .global timer_entry
timer_entry:
    subl $1, {countdown}(%rip)
    jz 1f
    lock incq {ticks}(%rip)
    pushq %rax
    movabsq ${eoi}, %rax
    movl $0, (%rax)
    popq %rax
    iretq
1:
    movl ${every}, {countdown}(%rip)
    pushq ${timer}
    jmp irq_common
    "#,
    countdown = sym TICKS_TO_FULL_PATH,
    ticks = sym TICKS,
    eoi = const LAPIC_BASE + LAPIC_EOI as u64,
    every = const TICKS_PER_FULL_PATH,
    timer = const TIMER_VECTOR as u32,
    options(att_syntax)
);

extern "C" {
    static timer_entry: u8;
    /// The IDT (256 gates of 16 bytes), static data built by the assembler.
    static idt_table: [IdtEntry; 256];
    static exc_stubs: [u8; 32 * 16];
    static irq_stubs: [u8; 224 * 16];
    static mut boot_gdt: [u64; 5];
}

#[repr(C, align(16))]
#[derive(Clone, Copy, PartialEq, Eq)]
struct IdtEntry {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    zero: u32,
}

impl IdtEntry {
    fn gate(handler: u64, ist: u8) -> IdtEntry {
        IdtEntry {
            offset_lo: handler as u16,
            selector: 0x08,
            ist,
            attr: 0x8E,
            offset_mid: (handler >> 16) as u16,
            offset_hi: (handler >> 32) as u32,
            zero: 0,
        }
    }
}

#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct IstStack([u8; 16384]);

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: 104,
};
/// Outside `.bss` (linker.ld's `.noinit`): the boot code does not zero it, as nothing reads a
/// stack before writing it and zeroing costs emulated instructions.
#[link_section = ".noinit.ist1_stack"]
static mut IST1_STACK: IstStack = IstStack([0; 16384]);

/// Installs the TSS (IST1 for #DF, NMI, #MC) and the IDT. Fails when the static IDT does not
/// hold the gates it should (a broken link: `linker.ld` computes its address fields).
pub fn init_idt() -> Result<(), &'static str> {
    // SAFETY: single-threaded boot, interrupts masked; the statics are only touched here and
    // read by the CPU afterwards.
    unsafe {
        let ist_top = (&raw mut IST1_STACK) as u64 + 16384;
        let tss = &raw mut TSS;
        (*tss).ist[0] = ist_top;
        let base = tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut boot_gdt;
        (*gdt)[3] = (limit & 0xFFFF)
            | ((base & 0xFF_FFFF) << 16)
            | (0x89u64 << 40)
            | (((limit >> 16) & 0xF) << 48)
            | (((base >> 24) & 0xFF) << 56);
        (*gdt)[4] = base >> 32;
        asm!("ltr {0:x}", in(reg) 0x18u16, options(nostack));

        let idt = &raw const idt_table;
        #[repr(C, packed)]
        struct Ptr {
            limit: u16,
            base: u64,
        }
        let p = Ptr {
            limit: (256 * 16 - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &p, options(nostack));
    }
    // A few gates of every kind, against the addresses the code sees (a handful of emulated
    // instructions, where building the table cost thousands).
    // SAFETY: the table and the stubs are static; only their addresses and contents are read.
    let (table, exc, irq, timer) = unsafe {
        (
            &idt_table,
            (&raw const exc_stubs) as u64,
            (&raw const irq_stubs) as u64,
            (&raw const timer_entry) as u64,
        )
    };
    let expected = [
        (0, IdtEntry::gate(exc, 0)),
        (NMI, IdtEntry::gate(exc + 16 * NMI as u64, 1)),
        (
            DOUBLE_FAULT,
            IdtEntry::gate(exc + 16 * DOUBLE_FAULT as u64, 1),
        ),
        (
            MACHINE_CHECK,
            IdtEntry::gate(exc + 16 * MACHINE_CHECK as u64, 1),
        ),
        (TIMER_VECTOR as usize, IdtEntry::gate(timer, 0)),
        (0x21, IdtEntry::gate(irq + 16, 0)),
        (255, IdtEntry::gate(irq + 16 * 223, 0)),
    ];
    if irq != exc + 32 * 16 || expected.iter().any(|&(v, gate)| table[v] != gate) {
        return Err("the static IDT does not match the interrupt stubs (see linker.ld)");
    }
    Ok(())
}

/// Register image pushed by `exc_common`.
#[repr(C)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

/// Vector of the page fault.
const PAGE_FAULT: u64 = 14;

/// A layer that recognises page faults it provoked on purpose: given CR2 and the faulting
/// RIP, it returns the rule the access broke (printed as a contract violation, and the guest
/// exits with the violation status instead of the exception status), or None.
pub type PageFaultNamer = fn(cr2: u64, rip: u64) -> Option<&'static str>;

/// The installed [`PageFaultNamer`] (0: none), as a function address.
static PAGE_FAULT_NAMER: AtomicU64 = AtomicU64::new(0);

/// Installs the page-fault namer (the NDK verifier's: an access to an MDL's virtual address).
pub fn set_page_fault_namer(namer: PageFaultNamer) {
    PAGE_FAULT_NAMER.store(namer as usize as u64, Ordering::Relaxed);
}

#[no_mangle]
extern "C" fn exception_handler(f: &ExceptionFrame) -> ! {
    use core::fmt::Write;
    let mut w = crate::serial::RawSerial;
    let name = EXCEPTION_NAMES
        .get(f.vector as usize)
        .copied()
        .unwrap_or("?");
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let namer = PAGE_FAULT_NAMER.load(Ordering::Relaxed);
    if f.vector == PAGE_FAULT && namer != 0 {
        // SAFETY: the only value stored besides 0 is a `PageFaultNamer` (set_page_fault_namer).
        let namer: PageFaultNamer = unsafe { core::mem::transmute(namer as usize) };
        if let Some(rule) = namer(cr2, f.rip) {
            let _ = writeln!(
                w,
                "\nndk: contract violation: {rule} (page fault at {cr2:#x}, rip {:#x}{})",
                f.rip,
                crate::loader::describe_address(f.rip)
            );
            let _ = writeln!(w, "verdict: FAIL ({rule})");
            cpu::exit(crate::STATUS_VIOLATION);
        }
    }
    let _ = writeln!(
        w,
        "\nexception: {name} (vector {}) error {:#x} at rip {:#x}{} cr2 {:#x}",
        f.vector,
        f.error,
        f.rip,
        crate::loader::describe_address(f.rip),
        cr2
    );
    let _ = writeln!(
        w,
        "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x}",
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi
    );
    let _ = writeln!(
        w,
        "  rbp {:#x} rsp {:#x} r8 {:#x} r9 {:#x} r10 {:#x} r11 {:#x}",
        f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11
    );
    let _ = writeln!(
        w,
        "  r12 {:#x} r13 {:#x} r14 {:#x} r15 {:#x} cs {:#x} ss {:#x} rflags {:#x}",
        f.r12, f.r13, f.r14, f.r15, f.cs, f.ss, f.rflags
    );
    let _ = writeln!(
        w,
        "verdict: FAIL (cpu exception: {name} at rip {:#x})",
        f.rip
    );
    cpu::exit(crate::STATUS_EXCEPTION);
}

fn lapic_read(off: usize) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped uncached; aligned 32-bit MMIO read.
    unsafe { core::ptr::read_volatile((LAPIC_BASE as usize + off) as *const u32) }
}

fn lapic_write(off: usize, v: u32) {
    // SAFETY: as for `lapic_read`.
    unsafe { core::ptr::write_volatile((LAPIC_BASE as usize + off) as *mut u32, v) }
}

pub fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

pub fn apic_id() -> u32 {
    lapic_read(LAPIC_ID) >> 24
}

static TICKS: AtomicU64 = AtomicU64::new(0);
static SPURIOUS: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the timer started.
pub fn now_ms() -> u64 {
    TICKS.load(Ordering::Relaxed) * 1000 / TICK_HZ
}

/// Enables the xAPIC and a periodic 1 kHz timer; checks the timer really counts.
pub fn init_apic() -> Result<(), &'static str> {
    if cpu::cpuid(1, 0)[3] & (1 << 9) == 0 {
        return Err("CPU has no local APIC");
    }
    let base = cpu::rdmsr(0x1B);
    if base & (1 << 10) != 0 {
        return Err("local APIC is in x2APIC mode; the guest drives the xAPIC at 0xFEE00000");
    }
    if base & 0xF_FFFF_F000 != LAPIC_BASE {
        return Err("local APIC is not at 0xFEE00000");
    }
    // Mask the legacy PICs: everything arrives through the LAPIC.
    cpu::outb(0x21, 0xFF);
    cpu::outb(0xA1, 0xFF);
    lapic_write(LAPIC_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_TIMER_DIV, 0x3);
    lapic_write(LAPIC_LVT_TIMER, (1 << 17) | TIMER_VECTOR as u32);
    lapic_write(LAPIC_TIMER_INIT, (LAPIC_TIMER_HZ / TICK_HZ) as u32);
    let first = lapic_read(LAPIC_TIMER_CUR);
    let mut moved = false;
    for _ in 0..1_000_000 {
        if lapic_read(LAPIC_TIMER_CUR) != first {
            moved = true;
            break;
        }
        core::hint::spin_loop();
    }
    if !moved {
        return Err("LAPIC timer does not count");
    }
    Ok(())
}

/// Counters for the final report: (ticks, spurious, unexpected vectors).
pub fn counters() -> (u64, u64, u64) {
    (
        TICKS.load(Ordering::Relaxed),
        SPURIOUS.load(Ordering::Relaxed),
        UNEXPECTED.load(Ordering::Relaxed),
    )
}

/// The hooks of the layer that handles device interrupts (the NDIS personality).
static HOOKS: IrqLock<HookTable> = IrqLock::new(HookTable::new());

/// Routes message vectors to `hooks` and calls their exit hook after every external interrupt.
pub fn install_hooks(hooks: InterruptHooks) -> Result<(), HookError> {
    HOOKS.lock().install(hooks)
}

#[no_mangle]
extern "C" fn irq_dispatch(vector: u64) {
    // A snapshot: the hooks run without the lock (the exit hook may enable interrupts).
    let table = *HOOKS.lock();
    let v = vector as u8;
    match table.route(v) {
        Route::Tick => {
            TICKS.fetch_add(1, Ordering::Relaxed);
            eoi();
        }
        Route::Spurious => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
        }
        Route::Message { vector, message } => {
            if let Some(on_message) = table.message_hook() {
                on_message(vector, message);
            }
        }
        Route::Unexpected(v) => {
            if UNEXPECTED.fetch_add(1, Ordering::Relaxed) == 0 {
                crate::println!("irq: unexpected interrupt on vector {v:#x}");
            }
            eoi();
        }
    }
    if let Some(on_irq_exit) = table.irq_exit() {
        on_irq_exit();
    }
}

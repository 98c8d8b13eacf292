//! Thin wrappers around privileged x86 instructions: port I/O, MSRs, CPUID, interrupt flag,
//! the exit port, and FPU/SSE set-up.

use core::arch::asm;

/// The monitor's exit port: a 32-bit write of V ends the VM with status `V & 0xFF`.
pub const EXIT_PORT: u16 = 0xF4;

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O has no memory effects; the kernel runs at CPL 0.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// `outl` for a device that reads guest memory the value points to (rnic-vmm's line console):
/// unlike [`outl`] the compiler must finish every store before it.
pub fn outl_after_stores(port: u16, v: u32) {
    // SAFETY: port I/O at CPL 0; the device only reads guest memory.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) }
}

pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only architectural MSRs known to exist are read by callers.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

pub fn interrupts_enabled() -> bool {
    let f: u64;
    // SAFETY: reads RFLAGS through the stack.
    unsafe { asm!("pushfq; pop {}", out(reg) f, options(nomem, preserves_flags)) };
    f & (1 << 9) != 0
}

pub fn cli() {
    // SAFETY: masking interrupts is always allowed at CPL 0.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

pub fn sti() {
    // SAFETY: the IDT is set up before any caller enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Enables interrupts and halts until the next one, atomically (the `sti` shadow covers `hlt`),
/// then masks them again.
pub fn wait_for_interrupt() {
    // SAFETY: see `sti`; a periodic timer bounds the wait.
    unsafe { asm!("sti; hlt; cli", options(nomem, nostack)) }
}

/// Ends the VM with `status` through the exit port; never returns.
pub fn exit(status: u32) -> ! {
    crate::serial::flush_before_exit();
    outl(EXIT_PORT, status);
    // A monitor without an exit port: stop here.
    loop {
        cli();
        // SAFETY: halting with interrupts masked parks the CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

/// 512-byte, 16-aligned FXSAVE area.
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    pub const fn new() -> Self {
        FxArea([0; 512])
    }

    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes and 16-aligned; SSE is enabled at boot.
        unsafe {
            asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags))
        }
    }

    pub fn restore(&self) {
        // SAFETY: the area holds a state written by `save`.
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags))
        }
    }
}

/// The FPU/SSE state Windows code expects on entry: x87 control word 0x27F, MXCSR 0x1F80 (all
/// exceptions masked), empty x87 stack, zero XMM registers. Loaded with `fxrstor64` only: this
/// KVM fails to emulate some x87 control instructions (`fldcw` was seen to stop the VM).
#[no_mangle]
pub static DEFAULT_FX_AREA: FxArea = {
    let mut a = [0u8; 512];
    a[0] = 0x7F;
    a[1] = 0x02;
    a[24] = 0x80;
    a[25] = 0x1F;
    FxArea(a)
};

/// Checks the CPU has what the driver needs (FXSR, SSE, SSE2) and loads the default FPU/SSE
/// state.
pub fn init_fpu() -> Result<(), &'static str> {
    let edx = cpuid(1, 0)[3];
    for (bit, name) in [(24, "FXSR"), (25, "SSE"), (26, "SSE2")] {
        if edx & (1 << bit) == 0 {
            return Err(name);
        }
    }
    DEFAULT_FX_AREA.restore();
    Ok(())
}

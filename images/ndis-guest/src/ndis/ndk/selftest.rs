//! `guest.selftest=ndk-*`: each provokes one rule of the NDK contract verifier with a
//! misbehaving provider the guest plays itself, before the real driver loads, and checks the
//! verifier names the rule.
//!
//! `ndk-mdl-va` builds a consumer buffer and its MDL chain exactly as the suite does and reads
//! through the MDL's virtual address, as a provider that dereferences it would: the access
//! page-faults and the fault handler names the MDL rule; the boot ends there (status 1).

use super::memory::{Buffer, MdlChain};

/// `ndk-mdl-va`: never returns (the read faults); Err if the MDL could not be built or the
/// read did not fault.
pub fn mdl_va() -> Result<(), &'static str> {
    let mut buf = Buffer::new(2 * 4096 + 100, 0x123).ok_or("out of memory")?;
    buf.fill(7);
    let chain = MdlChain::new(&buf, 0, buf.len, u64::MAX).ok_or("out of memory")?;
    let va = chain.virtual_address();
    // The MDL describes the buffer through its PFN array: the first byte it names physically
    // is the buffer's first byte (what a correct provider reads).
    let head = chain.head();
    // SAFETY: the chain's first MDL, built with its PFN array right after the header.
    let (pfn0, offset) = unsafe { (head.add(1).cast::<u64>().read(), (*head).ByteOffset) };
    let physical = pfn0 * 4096 + offset as u64;
    // SAFETY: identity-mapped RAM inside the buffer (the PFN array names its pages).
    let through_pfn = unsafe { core::ptr::read_volatile(physical as *const u8) };
    if physical != buf.addr() || through_pfn != buf.bytes()[0] {
        return Err("the MDL's PFN array does not describe the buffer");
    }
    crate::println!(
        "guest: selftest ndk-mdl-va: {} MDL(s) for {} bytes at {:#x}, MDL virtual address {va:#x}; reading it as a careless provider would",
        chain.len(),
        buf.len,
        buf.addr()
    );
    // SAFETY: deliberately not safe: the alias address is unmapped, so this read page-faults
    // and the exception handler ends the boot naming the MDL rule (it never returns here).
    let v = unsafe { core::ptr::read_volatile(va as *const u8) };
    crate::println!("guest: selftest ndk-mdl-va: read {v:#x} through the MDL address");
    Err("reading through the MDL's virtual address did not fault")
}

//! Hardware access (netvmini's hardware layer): BAR0 register reads and writes, the
//! device's MAC and link state, DEV_STATUS polling, shared-memory rings, and admin command
//! submission with a synchronous wait for PASSIVE_LEVEL callers.

use core::ffi::c_void;
use core::ptr::{addr_of_mut, null_mut, read_volatile, write_bytes, write_volatile};
use core::sync::atomic::{fence, Ordering};

use ndis_abi::*;
use rnic_contract::bar0;

use crate::adapter::*;
use crate::ffi::{self, log};
use crate::logic::{self, reg};

/// How long InitializeEx waits for the NOP completion.
pub(crate) const ADMIN_TIMEOUT_MS: u32 = 2000;
/// Bound on DEV_STATUS polls (each one is an MMIO exit, roughly 10 µs here).
pub(crate) const POLL_LIMIT: u32 = 100_000;
pub(crate) const WAIT_PENDING: u32 = 0;
pub(crate) const WAIT_DONE: u32 = 1;

/// Volatile 32-bit BAR0 read (a plain `mov`).
///
/// # Safety
/// `(*a).regs` must be the live BAR0 mapping and `off` a register offset below 64 KiB.
pub(crate) unsafe fn rd(a: *const Adapter, off: usize) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { read_volatile((*a).regs.add(off).cast::<u32>()) }
}

/// Volatile 32-bit BAR0 write (a plain `mov`).
///
/// # Safety
/// As for [`rd`].
pub(crate) unsafe fn wr(a: *const Adapter, off: usize, value: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { write_volatile((*a).regs.add(off).cast::<u32>(), value) }
}

/// `DEV_STATUS.LINK_UP`; false for a fatal device (whose registers read all ones, §13.3).
///
/// # Safety
/// BAR0 is mapped.
pub(crate) unsafe fn link_up(a: *const Adapter) -> bool {
    // SAFETY: guaranteed by the caller.
    let status = unsafe { rd(a, reg::DEV_STATUS) };
    !logic::health::is_fatal(status) && status & reg::DEV_STATUS_LINK_UP != 0
}

/// The device's current MAC address from `MAC_LO` (bytes 0..3, byte 0 in bits 7:0) and
/// `MAC_HI` (bytes 4..5 in bits 15:0).
///
/// # Safety
/// BAR0 is mapped.
pub(crate) unsafe fn read_mac(a: *const Adapter) -> [u8; 6] {
    // SAFETY: BAR0 mapped per the contract; both offsets are registers below 64 KiB.
    let (lo, hi) = unsafe { (rd(a, bar0::MAC_LO as usize), rd(a, bar0::MAC_HI as usize)) };
    let [b0, b1, b2, b3] = lo.to_le_bytes();
    let [b4, b5, _, _] = hi.to_le_bytes();
    [b0, b1, b2, b3, b4, b5]
}

/// Polls DEV_STATUS until `done` holds, at most `POLL_LIMIT` times.
///
/// # Safety
/// BAR0 must be mapped.
pub(crate) unsafe fn poll(a: *const Adapter, mut done: impl FnMut(u32) -> bool) -> bool {
    for _ in 0..POLL_LIMIT {
        // SAFETY: guaranteed by the caller.
        if done(unsafe { rd(a, reg::DEV_STATUS) }) {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// Allocates and zeroes one ring of shared memory, checking the alignment the device needs.
/// On an alignment failure the memory is freed again.
///
/// # Safety
/// `a` is valid and its SG DMA is registered.
pub(crate) unsafe fn alloc_ring(a: *mut Adapter, len: u32, align: i64) -> Option<(*mut u8, i64)> {
    // SAFETY: FFI calls with valid out-pointers; the memory is used only after the checks.
    unsafe {
        let mut va: *mut c_void = null_mut();
        let mut pa: NDIS_PHYSICAL_ADDRESS = 0;
        ffi::NdisMAllocateSharedMemory((*a).miniport, len, FALSE, &mut va, &mut pa);
        if va.is_null() {
            log!("NdisMAllocateSharedMemory(%u) failed\n", len);
            return None;
        }
        if pa % align != 0 {
            log!(
                "shared memory at %llx is not %u-byte aligned\n",
                pa as u64,
                align as u32
            );
            ffi::NdisMFreeSharedMemory((*a).miniport, len, FALSE, va, pa);
            return None;
        }
        write_bytes(va.cast::<u8>(), 0, len as usize);
        Some((va.cast::<u8>(), pa))
    }
}

/// Most admin commands the driver lets wait in the 16-entry ASQ at once: the NDK provider
/// backs off above this, so the bring-up and OID paths always find a free slot.
pub(crate) const ASQ_NDK_LIMIT: u32 = logic::ASQ_ENTRIES - 4;

/// Writes one 64-byte command at the ASQ tail and rings the ASQ_TAIL doorbell, under
/// `asq_lock` (submitters run at PASSIVE_LEVEL or DISPATCH_LEVEL; the DPC never submits, so
/// the lock is never wanted by code that interrupted its holder). Counts the command in
/// `asq_in_flight` until the DPC consumes its completion.
///
/// # Safety
/// Rings live, BAR0 mapped.
pub(crate) unsafe fn submit(a: *mut Adapter, command: &[u32; 16]) {
    // SAFETY: the slot lies inside the ASQ allocation (tail < ASQ_ENTRIES); `asq_tail` is only
    // touched under `asq_lock`.
    unsafe {
        if crate::reset::device_failed(a) {
            // A fatal device answers nothing: complete the command now, not after a timeout.
            crate::reset::fail_command(a, command_id_of(command));
            return;
        }
        while (*a).asq_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let tail = (*a).asq_tail;
        let slot = (*a)
            .asq_va
            .add((tail * logic::ASQ_ENTRY_BYTES) as usize)
            .cast::<u32>();
        for (i, word) in command.iter().enumerate() {
            write_volatile(slot.add(i), *word);
        }
        // The entry must be globally visible before the doorbell write.
        fence(Ordering::Release);
        let next = logic::ring_next(tail, logic::ASQ_ENTRIES);
        (*a).asq_tail = next;
        (*a).asq_in_flight.fetch_add(1, Ordering::AcqRel);
        wr(a, reg::ASQ_TAIL, next);
        (*a).asq_lock.store(false, Ordering::Release);
    }
}

/// The command id of an encoded command (bytes 2..4 of its first dword).
fn command_id_of(command: &[u32; 16]) -> u16 {
    (command[0] >> 16) as u16
}

/// [`submit`] unless [`ASQ_NDK_LIMIT`] commands already wait for their completion; false
/// then (nothing written). While the device is fatal or being reset the command completes at
/// once with the device's `DEVICE_ERROR` status (true: it was handled).
///
/// # Safety
/// As for [`submit`].
pub(crate) unsafe fn try_submit(a: *mut Adapter, command: &[u32; 16]) -> bool {
    // SAFETY: `a` is live per the contract.
    unsafe {
        if crate::reset::unavailable(a) {
            crate::reset::fail_command(a, command_id_of(command));
            return true;
        }
        if (*a).asq_in_flight.load(Ordering::Acquire) >= ASQ_NDK_LIMIT {
            return false;
        }
        submit(a, command);
    }
    true
}

/// Submits one admin command and waits (PASSIVE_LEVEL, interrupt-driven) for its completion.
/// Returns its status and result 0, or None (logged) after [`ADMIN_TIMEOUT_MS`].
///
/// # Safety
/// `a` is a live context with its admin rings live; the caller is the only submitter and
/// runs at PASSIVE_LEVEL.
pub(crate) unsafe fn admin_wait(
    a: *mut Adapter,
    opcode: u8,
    command_id: u16,
    operands: &[u32; 14],
) -> Option<(u16, u32)> {
    // SAFETY: the context, its event and its rings are live per the contract.
    unsafe {
        ffi::NdisResetEvent(addr_of_mut!((*a).wait_event));
        (*a).wait_state.store(WAIT_PENDING, Ordering::Relaxed);
        (*a).wait_id.store(u32::from(command_id), Ordering::Release);
        submit(a, &logic::encode_command(opcode, command_id, operands));
        if ffi::NdisWaitEvent(addr_of_mut!((*a).wait_event), ADMIN_TIMEOUT_MS) == FALSE
            || (*a).wait_state.load(Ordering::Acquire) != WAIT_DONE
        {
            // A device that went fatal while we waited: fail everything else fast from now on.
            crate::reset::check_device(a, false);
            log!(
                "admin command %x timed out after %u ms (ASQ_HEAD %u ACQ_TAIL %u DEV_STATUS %x)\n",
                opcode as u32,
                ADMIN_TIMEOUT_MS,
                rd(a, reg::ASQ_HEAD),
                rd(a, reg::ACQ_TAIL),
                rd(a, reg::DEV_STATUS)
            );
            return None;
        }
        Some((
            (*a).wait_status.load(Ordering::Relaxed) as u16,
            (*a).wait_result0.load(Ordering::Relaxed),
        ))
    }
}

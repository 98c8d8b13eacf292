//! Fatal errors, hang detection and reset (docs/device-spec.md §2.3, §13): the driver notices a
//! fatal device (the `FATAL` event, `DEV_STATUS.FATAL`, or registers reading all ones) in its
//! DPC, its admin paths and MiniportCheckForHangEx; from then on every admin submission fails at
//! once instead of waiting for a timeout, and everything the device still held completes
//! exactly once with an error. MiniportCheckForHangEx asks NDIS for a reset; MiniportResetEx
//! pends and an NDIS I/O work item resets the device and brings it up again (admin queue,
//! event ring, Ethernet queues, receive buffers, packet filter and multicast list), then calls
//! NdisMResetComplete exactly once.
//!
//! Statuses: admin commands that cannot reach the device complete with the device's
//! `DEVICE_ERROR` status (NDK calls then fail with what `ndk_logic::admin_status` maps it to,
//! `STATUS_UNSUCCESSFUL`); OID sets fail with `NDIS_STATUS_HARD_ERRORS` (fatal) or
//! `NDIS_STATUS_RESET_IN_PROGRESS` (during a reset); sends complete with the same two
//! statuses. A reset that finds the device still fatal returns `NDIS_STATUS_HARD_ERRORS` and
//! leaves the adapter failing everything fast, which keeps it haltable.
//!
//! NDK after a reset: the device destroyed every verbs object (§13.1). NDK objects created
//! before the reset keep their driver memory but name device handles that no longer exist:
//! their admin commands fail (`INVALID_HANDLE` from the device), work posted on them never
//! completes, and the only useful call left is their close. The reset logs how many were live.

use core::ffi::c_void;
use core::ptr::{null_mut, write_bytes};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::eth;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw::{self, rd, wr, WAIT_PENDING};
use crate::logic::{self, health, reg, AdminCompletion, CqCursor};

/// The device status an admin command gets when the driver completes it itself because the
/// device can no longer answer (the contract's `DEVICE_ERROR`).
pub(crate) const ADMIN_STATUS_DEVICE_ERROR: u16 = 0x15;

/// Health of one adapter: fatal state, reset in progress, halt begun, and the progress
/// counters MiniportCheckForHangEx watches.
pub(crate) struct Health {
    /// The device is fatal (or gone): every admin submission fails at once. Set by the DPC,
    /// the admin paths and CheckForHangEx; cleared by a reset that brought the device back.
    pub fatal: AtomicBool,
    /// MiniportResetEx pended and its work item has not called NdisMResetComplete yet.
    pub resetting: AtomicBool,
    /// MiniportHaltEx began: no more status indications.
    pub halting: AtomicBool,
    /// Admin completions consumed (the admin queue's progress counter; wraps).
    pub admin_completions: AtomicU32,
    /// The last link state indicated: 0 down, 1 up (`health::LINK_UNKNOWN` before the first).
    pub link_reported: AtomicU32,
    /// CheckForHangEx's view of the admin queue (NDIS serializes CheckForHangEx calls).
    pub admin_watch: health::ProgressWatch,
    /// CheckForHangEx's view of the TX ring.
    pub tx_watch: health::ProgressWatch,
    /// The NDIS I/O work item the reset runs in (allocated at InitializeEx).
    pub work_item: NDIS_HANDLE,
}

/// Allocates the reset work item and records the link state the general attributes reported.
///
/// # Safety
/// `a` is a live context in InitializeEx (PASSIVE_LEVEL), BAR0 mapped.
pub(crate) unsafe fn initialize(a: *mut Adapter) -> NDIS_STATUS {
    // SAFETY: `a` is live; the work item handle is recorded at once so teardown frees it.
    unsafe {
        let item = ffi::NdisAllocateIoWorkItem((*a).miniport);
        if item.is_null() {
            log!("reset work item allocation failed\n");
            return NDIS_STATUS_RESOURCES;
        }
        (*a).health.work_item = item;
        (*a).health
            .link_reported
            .store(u32::from(hw::link_up(a)), Ordering::Release);
    }
    NDIS_STATUS_SUCCESS
}

/// Frees the reset work item (teardown; no reset can be running: NDIS does not halt an
/// adapter with a reset pending).
///
/// # Safety
/// `a` is a live context being torn down.
pub(crate) unsafe fn teardown(a: *mut Adapter) {
    // SAFETY: freed once; the handle is cleared.
    unsafe {
        let item = core::mem::replace(&mut (*a).health.work_item, null_mut());
        if !item.is_null() {
            ffi::NdisFreeIoWorkItem(item);
        }
    }
}

/// True once the driver has seen the device fatal (no MMIO: a flag).
///
/// # Safety
/// `a` is a live context.
pub(crate) unsafe fn device_failed(a: *const Adapter) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe { (*a).health.fatal.load(Ordering::Acquire) }
}

/// True while the device cannot take new work from the NDK provider, the OID path or senders:
/// fatal, or a reset in progress.
///
/// # Safety
/// `a` is a live context.
pub(crate) unsafe fn unavailable(a: *const Adapter) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe { device_failed(a) || (*a).health.resetting.load(Ordering::Acquire) }
}

/// The status requests get while the device is [`unavailable`]: `NDIS_STATUS_HARD_ERRORS`
/// for a fatal device, `NDIS_STATUS_RESET_IN_PROGRESS` during a reset.
///
/// # Safety
/// `a` is a live context.
pub(crate) unsafe fn unavailable_status(a: *const Adapter) -> NDIS_STATUS {
    // SAFETY: guaranteed by the caller.
    if unsafe { device_failed(a) } {
        NDIS_STATUS_HARD_ERRORS
    } else {
        NDIS_STATUS_RESET_IN_PROGRESS
    }
}

/// Reads `DEV_STATUS` and, if it says fatal, records it ([`note_fatal`]). Returns the value
/// read. Any IRQL up to DISPATCH_LEVEL (`at_dispatch` says which).
///
/// # Safety
/// `a` is a live context with BAR0 mapped.
pub(crate) unsafe fn check_device(a: *mut Adapter, at_dispatch: bool) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let status = rd(a, reg::DEV_STATUS);
        if health::is_fatal(status) {
            note_fatal(a, status, at_dispatch);
        }
        status
    }
}

/// The device is fatal: from now on admin submissions fail at once; the first caller also
/// fails every admin command still waiting and every frame on the TX ring (each exactly once,
/// `NDIS_STATUS_HARD_ERRORS`). IRQL <= DISPATCH_LEVEL (`at_dispatch` says which).
///
/// # Safety
/// `a` is a live context.
pub(crate) unsafe fn note_fatal(a: *mut Adapter, dev_status: u32, at_dispatch: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*a).health.fatal.swap(true, Ordering::AcqRel) {
            return;
        }
        log!(
            "device fatal (DEV_STATUS %x): failing outstanding work, waiting for a reset\n",
            dev_status
        );
        fail_outstanding(a, NDIS_STATUS_HARD_ERRORS, at_dispatch);
        // A fatal device carries no traffic and posts no LINK_DOWN of its own (§13.3).
        crate::link::event(a, false);
    }
}

/// Completes an admin command the device will never answer, as the DPC would with the
/// device's `DEVICE_ERROR` status (its waiter wakes, its OID or NDK request completes once).
///
/// # Safety
/// `a` is a live context; no ASQ lock is held by the caller.
pub(crate) unsafe fn fail_command(a: *mut Adapter, command_id: u16) {
    let c = AdminCompletion {
        result0: 0,
        result1: 0,
        command_id,
        sq_head: 0,
        status: ADMIN_STATUS_DEVICE_ERROR,
        phase: 0,
    };
    // SAFETY: guaranteed by the caller; the completion's handlers each complete their request
    // at most once (they take it out of its slot first).
    unsafe { crate::interrupt::handle_completion(a, &c) };
}

/// Fails everything the device held: each admin command still waiting (the synchronous
/// waiter, the pending OID set, every NDK request) and each frame on the TX ring (`status`,
/// completed with the flag of the caller's IRQL, `at_dispatch`).
///
/// # Safety
/// `a` is a live context; the device no longer writes completions (fatal or reset).
unsafe fn fail_outstanding(a: *mut Adapter, status: NDIS_STATUS, at_dispatch: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*a).wait_state.load(Ordering::Acquire) == WAIT_PENDING {
            fail_command(a, (*a).wait_id.load(Ordering::Acquire) as u16);
        }
        if !(*a).pending_oid.load(Ordering::Acquire).is_null() {
            fail_command(a, logic::OID_COMMAND_ID);
        }
        for (i, slot) in (*a).ndk.pending.iter().enumerate() {
            if !slot.load(Ordering::Acquire).is_null() {
                fail_command(a, crate::ndk::PENDING_ID_BASE + i as u16);
            }
        }
        (*a).asq_in_flight.store(0, Ordering::Release);
        crate::send::abort_tx(a, status, at_dispatch);
    }
}

/// MiniportCheckForHangEx. IRQL: DISPATCH_LEVEL (NDIS's timer, every
/// `health::CHECK_FOR_HANG_SECONDS`). TRUE asks NDIS to call MiniportResetEx: the device is
/// fatal or gone, its admin queue stopped, an admin command or a frame on the TX ring has
/// waited two checks without progress. Never during a reset (FALSE).
///
/// # Safety
/// Called by NDIS with the adapter context.
pub unsafe extern "win64" fn MiniportCheckForHangEx(context: NDIS_HANDLE) -> BOOLEAN {
    let a = context.cast::<Adapter>();
    // SAFETY: `a` is our live adapter; the watches are only touched here (NDIS serializes
    // CheckForHangEx) and the counters are atomics or driver-side ring positions.
    unsafe {
        if (*a).health.resetting.load(Ordering::Acquire) {
            return FALSE;
        }
        let status = check_device(a, true);
        let admin_out = (*a).asq_in_flight.load(Ordering::Acquire) != 0;
        let admin_progress = (*a).health.admin_completions.load(Ordering::Acquire);
        let admin_stalled = (*a).health.admin_watch.check(admin_out, admin_progress);
        let tx = (*a).eth.tx_ring;
        let tx_stalled = (*a).health.tx_watch.check(tx.in_flight() != 0, tx.head);
        match health::hang_cause(status, admin_stalled, tx_stalled) {
            Some(cause) => {
                log!(
                    "CheckForHangEx: hang: %s (DEV_STATUS %x)\n",
                    cause.name().as_ptr(),
                    status
                );
                TRUE
            }
            None => FALSE,
        }
    }
}

/// MiniportResetEx. IRQL: <= DISPATCH_LEVEL. Pends: the reset needs PASSIVE_LEVEL (admin
/// commands wait for their completions), so it runs in the adapter's NDIS I/O work item,
/// which calls NdisMResetComplete exactly once. `AddressingReset` is FALSE: the driver
/// re-applies the packet filter and multicast list itself. A second reset while one runs
/// returns `NDIS_STATUS_RESET_IN_PROGRESS`.
///
/// # Safety
/// Called by NDIS with the adapter context and a valid out-pointer.
pub unsafe extern "win64" fn MiniportResetEx(
    context: NDIS_HANDLE,
    addressing_reset: *mut BOOLEAN,
) -> NDIS_STATUS {
    let a = context.cast::<Adapter>();
    log!("ResetEx\n");
    // SAFETY: `a` is our live adapter; the out-pointer comes from NDIS.
    unsafe {
        if !addressing_reset.is_null() {
            *addressing_reset = FALSE;
        }
        if (*a).health.work_item.is_null() {
            return NDIS_STATUS_RESOURCES;
        }
        if (*a).health.resetting.swap(true, Ordering::AcqRel) {
            return NDIS_STATUS_RESET_IN_PROGRESS;
        }
        ffi::NdisQueueIoWorkItem((*a).health.work_item, reset_worker, a.cast());
    }
    NDIS_STATUS_PENDING
}

/// The reset's work item (PASSIVE_LEVEL): resets the device, brings it up again and completes
/// the pended MiniportResetEx.
unsafe extern "win64" fn reset_worker(context: *mut c_void, _item: NDIS_HANDLE) {
    let a = context.cast::<Adapter>();
    // SAFETY: the context is the adapter that queued this item; NDIS does not halt it while
    // the reset pends.
    unsafe {
        let status = reinitialize(a);
        if status == NDIS_STATUS_SUCCESS {
            log!("reset: device back up\n");
        } else {
            log!("reset failed: %x (the adapter stays failed)\n", status);
        }
        (*a).health.resetting.store(false, Ordering::Release);
        ffi::NdisMResetComplete((*a).miniport, status, FALSE);
    }
}

/// Resets the device (§13.1) and brings it up as InitializeEx did, reusing every allocation.
///
/// # Safety
/// `a` is live, BAR0 mapped, PASSIVE_LEVEL, `resetting` set (other submitters fail fast).
unsafe fn reinitialize(a: *mut Adapter) -> NDIS_STATUS {
    // SAFETY: the rings are the context's own allocations, rewritten while the device is reset
    // (it uses none of them) and before it is enabled again.
    unsafe {
        // 1. Stop the DPC's ring work and the device; everything it held is gone.
        (*a).rings_live.store(false, Ordering::Release);
        wr(a, reg::DEV_CTRL, reg::DEV_CTRL_RESET);
        let after = rd(a, reg::DEV_STATUS);
        fail_outstanding(a, NDIS_STATUS_RESET_IN_PROGRESS, false);
        let rx_posted = take_posted_rx(a);
        if !health::reset_took(after) {
            log!("reset: the device is still fatal (DEV_STATUS %x)\n", after);
            (*a).health.fatal.store(true, Ordering::Release);
            return NDIS_STATUS_HARD_ERRORS;
        }
        (*a).health.fatal.store(false, Ordering::Release);
        let lost = (*a).ndk.live_objects.load(Ordering::Acquire);
        if lost != 0 {
            log!(
                "reset: %u NDK objects lost their device state (they can only be closed)\n",
                lost
            );
        }

        // 2. Empty rings, cursors back to the start.
        write_bytes((*a).asq_va, 0, logic::ASQ_BYTES as usize);
        write_bytes((*a).acq_va, 0, logic::ACQ_BYTES as usize);
        write_bytes((*a).eq_va, 0, logic::EQ_BYTES as usize);
        (*a).asq_tail = 0;
        (*a).cq = CqCursor::new(logic::ACQ_ENTRIES);
        (*a).eq = CqCursor::new(logic::EQ_ENTRIES);
        (*a).asq_in_flight.store(0, Ordering::Release);
        crate::ethernet::forget_queues(a);

        // 3. Program the rings, enable, wait for READY, one NOP.
        let (lo, hi) = logic::split_phys((*a).asq_pa);
        wr(a, reg::ASQ_BASE_LO, lo);
        wr(a, reg::ASQ_BASE_HI, hi);
        wr(a, reg::ASQ_SIZE, logic::ASQ_ENTRIES);
        let (lo, hi) = logic::split_phys((*a).acq_pa);
        wr(a, reg::ACQ_BASE_LO, lo);
        wr(a, reg::ACQ_BASE_HI, hi);
        wr(a, reg::ACQ_SIZE, logic::ACQ_ENTRIES);
        let (lo, hi) = logic::split_phys((*a).eq_pa);
        wr(a, reg::EQ_BASE_LO, lo);
        wr(a, reg::EQ_BASE_HI, hi);
        wr(a, reg::EQ_SIZE, logic::EQ_ENTRIES);
        (*a).rings_live.store(true, Ordering::Release);
        wr(a, reg::DEV_CTRL, reg::DEV_CTRL_ENABLE);
        let mut status_reg = 0;
        let ready = hw::poll(a, |s| {
            status_reg = s;
            s & (reg::DEV_STATUS_READY | reg::DEV_STATUS_ADMIN_ERR | reg::DEV_STATUS_FATAL) != 0
        });
        if !ready || status_reg & reg::DEV_STATUS_READY == 0 {
            log!(
                "reset: device not ready after enable: DEV_STATUS %x\n",
                status_reg
            );
            check_device(a, false);
            return NDIS_STATUS_HARD_ERRORS;
        }
        match hw::admin_wait(a, logic::OPCODE_NOP, logic::NOP_COMMAND_ID, &[0; 14]) {
            Some((logic::ADMIN_STATUS_SUCCESS, logic::NOP_RESULT0)) => {}
            _ => {
                log!("reset: NOP failed\n");
                check_device(a, false);
                return NDIS_STATUS_HARD_ERRORS;
            }
        }

        // 4. The Ethernet queues again, with every receive buffer that was posted.
        let status = crate::ethernet::recreate_queues(a, &rx_posted);
        if status != NDIS_STATUS_SUCCESS {
            check_device(a, false);
            return NDIS_STATUS_HARD_ERRORS;
        }

        // 5. What NDIS set: the packet filter and the multicast list (the device's MAC is
        // the host-configured one the driver reports, so there is none to restore).
        if !reapply_filters(a) {
            check_device(a, false);
            return NDIS_STATUS_HARD_ERRORS;
        }
        NDIS_STATUS_SUCCESS
    }
}

/// The receive buffers the RX ring held (they are free again once the device was reset), as
/// a bit set over buffer indices; the ring's positions are left for `forget_queues`.
///
/// # Safety
/// `a` is live; the device does not use the RX ring (reset).
unsafe fn take_posted_rx(a: *mut Adapter) -> u64 {
    // SAFETY: `rx_lock` makes this the only RX producer; slots stay < RING_ENTRIES.
    unsafe {
        while (*a).rx_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let mut set = 0u64;
        let mut ring = (*a).eth.rx_ring;
        while ring.in_flight() != 0 {
            let slot = ring.consume() as usize;
            set |= 1 << ((*a).eth.rx_slot_buffer[slot] % 64);
        }
        (*a).eth.rx_ring = ring;
        (*a).rx_lock.store(false, Ordering::Release);
        set
    }
}

/// Sends the packet filter and the multicast list the device acknowledged before the reset
/// (each only if it differs from the device's reset value). False if the device refused one.
///
/// # Safety
/// `a` is live, admin queue live, PASSIVE_LEVEL.
unsafe fn reapply_filters(a: *mut Adapter) -> bool {
    // SAFETY: the multicast buffer holds MAX_MULTICAST entries; `multicast_list` is bounded by
    // it.
    unsafe {
        let reset_filter = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST;
        if (*a).packet_filter != reset_filter {
            let ops = crate::oid::packet_filter_operands((*a).packet_filter);
            if !admin_ok(a, opcode::SET_RX_FILTER, &ops) {
                return false;
            }
        }
        let count = (*a).multicast_count.min(eth::MAX_MULTICAST);
        if count != 0 {
            let list = (*a).mc_cache;
            let ops = crate::oid::write_multicast(a, list[..count].iter().map(|m| &m[..]));
            if !admin_ok(a, opcode::SET_MULTICAST, &ops) {
                return false;
            }
        }
        true
    }
}

/// One admin command through [`hw::admin_wait`]; true if the device accepted it.
///
/// # Safety
/// As for [`hw::admin_wait`].
unsafe fn admin_ok(a: *mut Adapter, op: u8, ops: &[u32; 14]) -> bool {
    // SAFETY: guaranteed by the caller.
    match unsafe { hw::admin_wait(a, op, logic::NOP_COMMAND_ID, ops) } {
        Some((logic::ADMIN_STATUS_SUCCESS, _)) => true,
        other => {
            log!(
                "reset: admin command %x failed (status %u)\n",
                op as u32,
                other.map_or(u32::MAX, |(s, _)| u32::from(s))
            );
            false
        }
    }
}

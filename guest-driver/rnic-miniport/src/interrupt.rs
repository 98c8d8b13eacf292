//! Interrupt handling: the message-signalled ISR and DPC (MSI-X message 0 serves the admin
//! completion queue and both Ethernet queues), the line-based handlers NDIS requires, and the
//! admin completion consumer, and the event ring (link events to `link`, the fatal event to
//! `reset`, connection events to the NDK provider). ISRs run at DIRQL, DPCs at DISPATCH_LEVEL.

use core::ffi::c_void;
use core::ptr::{addr_of_mut, read_volatile};
use core::sync::atomic::{fence, Ordering};

use ndis_abi::*;

use crate::adapter::*;
use crate::ffi::{self, log};
use crate::hw::*;
use crate::logic::{self, reg, AdminCompletion};
use rnic_contract::event::code as event_code;

/// True if the ACQ slot at the consumer position holds a new entry.
///
/// # Safety
/// Rings live.
pub(crate) unsafe fn completion_pending(a: *const Adapter) -> bool {
    // SAFETY: head < ACQ_ENTRIES, so the read is inside the ACQ allocation.
    unsafe {
        let cq = (*a).cq;
        let entry = (*a)
            .acq_va
            .add((cq.head * logic::ACQ_ENTRY_BYTES) as usize)
            .cast::<u32>();
        cq.is_new(((read_volatile(entry.add(3)) >> 16) & 1) as u8)
    }
}

/// Consumes every new ACQ entry (phase-tag protocol), then publishes ACQ_HEAD.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn process_admin_completions(a: *mut Adapter) {
    // SAFETY: the context outlives its interrupt registration (halt deregisters the interrupt,
    // which waits for running DPCs, before freeing anything); ring accesses stay in bounds.
    unsafe {
        if !(*a).rings_live.load(Ordering::Acquire) {
            return;
        }
        loop {
            // One consumer at a time, even if DPCs for message 0 overlap on two CPUs.
            if (*a).dpc_busy.swap(true, Ordering::Acquire) {
                return;
            }
            let mut consumed = 0u32;
            while completion_pending(a) {
                // Read the rest of the entry only after its phase tag said it is complete.
                fence(Ordering::Acquire);
                let entry = (*a)
                    .acq_va
                    .add(((*a).cq.head * logic::ACQ_ENTRY_BYTES) as usize)
                    .cast::<u32>();
                let c = AdminCompletion::decode([
                    read_volatile(entry),
                    read_volatile(entry.add(1)),
                    read_volatile(entry.add(2)),
                    read_volatile(entry.add(3)),
                ]);
                (*a).cq.advance();
                consumed += 1;
                (*a).health.admin_completions.fetch_add(1, Ordering::AcqRel);
                // One ASQ slot fewer waits (saturating: a completion of a command submitted
                // before the counter existed must not wrap it).
                let _ = (*a)
                    .asq_in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                handle_completion(a, &c);
            }
            if consumed != 0 {
                wr(a, reg::ACQ_HEAD, (*a).cq.head);
            }
            (*a).dpc_busy.store(false, Ordering::Release);
            // An entry may have landed after the last check but before the flag was released,
            // while another DPC was turned away: look once more.
            if !completion_pending(a) {
                return;
            }
        }
    }
}

/// Consumes every new event-ring entry (phase-tag protocol, the tag in the same place as an
/// admin completion's), hands connection-manager events to the NDK provider, then publishes
/// `EQ_HEAD`. Message-0 DPC only (DISPATCH_LEVEL).
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn process_events(a: *mut Adapter) {
    // SAFETY: the ring is live while `rings_live`; reads stay inside it (head < entries);
    // `event_busy` makes this the only consumer.
    unsafe {
        if !(*a).rings_live.load(Ordering::Acquire) || (*a).eq_va.is_null() {
            return;
        }
        if (*a).event_busy.swap(true, Ordering::Acquire) {
            return;
        }
        let mut consumed = 0u32;
        loop {
            let entry = (*a)
                .eq_va
                .add(((*a).eq.head as usize) * rnic_contract::event::ENTRY_SIZE)
                .cast::<u32>();
            if !(*a)
                .eq
                .is_new(((read_volatile(entry.add(3)) >> 16) & 1) as u8)
            {
                break;
            }
            fence(Ordering::Acquire);
            let code = (read_volatile(entry) & 0xFF) as u8;
            let handle = read_volatile(entry.add(1));
            let detail = read_volatile(entry.add(2));
            (*a).eq.advance();
            consumed += 1;
            match code {
                event_code::LINK_UP => crate::link::event(a, true),
                event_code::LINK_DOWN => crate::link::event(a, false),
                // The device's last event before it stops (§13.3).
                event_code::FATAL => crate::reset::note_fatal(a, logic::health::ALL_ONES, true),
                _ => crate::ndk::cm::event(a, code, handle, detail),
            }
        }
        if consumed != 0 {
            wr(a, reg::EQ_HEAD, (*a).eq.head);
        }
        (*a).event_busy.store(false, Ordering::Release);
    }
}

/// Acts on one admin completion: an OID set's goes to the control path, the one
/// [`admin_wait`] waits for wakes it.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn handle_completion(a: *mut Adapter, c: &AdminCompletion) {
    // SAFETY: atomics and the event live in the context, valid per the contract.
    unsafe {
        if c.command_id == logic::OID_COMMAND_ID {
            crate::oid::admin_completed(a, c);
            return;
        }
        if crate::ndk::admin_completed(a, c) {
            return;
        }
        if u32::from(c.command_id) != (*a).wait_id.load(Ordering::Acquire)
            || (*a).wait_state.load(Ordering::Relaxed) != WAIT_PENDING
        {
            log!(
                "unexpected admin completion: id %u status %u result0 %x\n",
                c.command_id as u32,
                c.status as u32,
                c.result0
            );
            return;
        }
        (*a).wait_status.store(c.status as u32, Ordering::Relaxed);
        (*a).wait_result0.store(c.result0, Ordering::Relaxed);
        (*a).wait_state.store(WAIT_DONE, Ordering::Release);
        ffi::NdisSetEvent(addr_of_mut!((*a).wait_event));
    }
}

/// MiniportMessageInterrupt. IRQL: DIRQL. Every granted message is ours (0: admin and
/// Ethernet queues; the others: NDK CQs); defers to the DPC.
pub(crate) unsafe extern "win64" fn message_isr(
    context: NDIS_HANDLE,
    message_id: u32,
    queue_default_dpc: *mut BOOLEAN,
    _target_processors: *mut u32,
) -> BOOLEAN {
    // SAFETY: the interrupt context is our adapter, live while the interrupt is registered.
    let granted = unsafe { (*context.cast::<Adapter>()).msix_messages.max(1) };
    let ours = message_id < granted;
    if !queue_default_dpc.is_null() {
        // SAFETY: NDIS passes a valid out-pointer.
        unsafe { *queue_default_dpc = ours as BOOLEAN };
    }
    ours as BOOLEAN
}

/// MiniportMessageInterruptDpc. IRQL: DISPATCH_LEVEL. Message 0: drains admin completions,
/// retires sent frames and indicates received ones; every message: notifies the armed NDK
/// CQs that signal it.
pub(crate) unsafe extern "win64" fn message_dpc(
    context: NDIS_HANDLE,
    message_id: u32,
    _dpc_context: *mut c_void,
    _receive_throttle: *mut c_void,
    _reserved: *mut c_void,
) {
    if message_id == 0 {
        let a = context.cast::<Adapter>();
        // SAFETY: the interrupt context is our adapter, live while the interrupt is registered.
        unsafe {
            // While a reset rewrites the rings the DPC leaves them alone.
            if !(*a).rings_live.load(Ordering::Acquire) {
                return;
            }
            process_admin_completions(a);
            process_events(a);
            // Completions written before a fatal error were consumed above; a fatal device
            // (all-ones registers) fails what is left at once.
            if !crate::reset::device_failed(a) {
                crate::reset::check_device(a, true);
            }
            crate::send::reap_tx(a);
            crate::receive::reap_rx(a);
        }
    }
    // SAFETY: as above.
    unsafe { crate::ndk::cq::notify_vector(context.cast::<Adapter>(), message_id) };
}

/// MiniportInterrupt (line-based). IRQL: DIRQL. The device has no INTx pin, so a line interrupt is never
/// ours. Registered only because NDIS requires the line-based handlers.
pub(crate) unsafe extern "win64" fn line_isr(
    _context: NDIS_HANDLE,
    queue_default_dpc: *mut BOOLEAN,
    _target_processors: *mut u32,
) -> BOOLEAN {
    if !queue_default_dpc.is_null() {
        // SAFETY: NDIS passes a valid out-pointer.
        unsafe { *queue_default_dpc = FALSE };
    }
    FALSE
}

/// MiniportInterruptDpc (line-based). IRQL: DISPATCH_LEVEL. Drains the admin queue like the message DPC would.
pub(crate) unsafe extern "win64" fn line_dpc(
    context: NDIS_HANDLE,
    _dpc_context: *mut c_void,
    _receive_throttle: *mut c_void,
    _reserved: *mut c_void,
) {
    // SAFETY: as in `message_dpc`.
    unsafe { process_admin_completions(context.cast::<Adapter>()) };
}

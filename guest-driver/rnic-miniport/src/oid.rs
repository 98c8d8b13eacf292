//! The control path: MiniportOidRequest and its cancel handler (netvmini's ctrlpath.c).
//!
//! Queries are answered at once from device registers and the adapter's state
//! (`logic::oids::query`). Sets of the packet filter and the multicast list go to the device as
//! `SET_RX_FILTER` / `SET_MULTICAST` admin commands: the request pends and is completed with
//! NdisMOidRequestComplete from the admin-queue DPC when the device answers (or by
//! MiniportCancelOidRequest, whichever comes first: exactly one of them takes the request).
//! The lookahead is driver state only (the device has no such setting).

#![allow(non_upper_case_globals)] // Windows enum constant names (NdisRequest*) used as match patterns

use core::ffi::c_void;
use core::ptr::{null_mut, read_volatile, write_volatile};
use core::slice;
use core::sync::atomic::Ordering;

use ndis_abi::*;
use rnic_contract::admin::{opcode, operands};
use rnic_contract::eth;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::logic::{self, oids, AdminCompletion};

/// What a pending set changes once the device acknowledges it.
#[derive(Clone, Copy)]
pub enum StagedSet {
    /// Nothing is pending.
    None,
    /// The `NDIS_PACKET_TYPE_*` filter sent with `SET_RX_FILTER`.
    PacketFilter(u32),
    /// The first `count` entries of the multicast DMA buffer, sent with `SET_MULTICAST`.
    Multicast(usize),
}

/// MiniportOidRequest. IRQL: <= DISPATCH_LEVEL (NDIS serializes these per adapter).
///
/// # Safety
/// Called by NDIS with the adapter context registered in InitializeEx and a valid request.
pub unsafe extern "win64" fn MiniportOidRequest(
    context: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    let a = context.cast::<Adapter>();
    if request.is_null() {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    // SAFETY: NDIS owns `request` for the duration of the call and until it completes.
    unsafe {
        if let Some(status) = ndk_request(a, request) {
            return status;
        }
        let info = &mut (*request).Information;
        info.BytesWritten = 0;
        info.BytesNeeded = 0;
        let buffer = info.InformationBuffer.cast::<u8>();
        let len = if buffer.is_null() {
            0
        } else {
            info.InformationBufferLength as usize
        };
        match (*request).RequestType {
            NdisRequestQueryInformation | NdisRequestQueryStatistics => {
                let out: &mut [u8] = if len == 0 {
                    &mut []
                } else {
                    slice::from_raw_parts_mut(buffer, len)
                };
                let multicast = (*a).multicast_list();
                let counters = (*a).counters();
                let view = oids::AdapterView {
                    mac: hw::read_mac(a),
                    mtu: (*a).mtu,
                    link_up: crate::link::reported_up(a),
                    packet_filter: (*a).packet_filter,
                    lookahead: (*a).lookahead,
                    multicast,
                    counters,
                    ndk_enabled: (*a).ndk.enabled.load(Ordering::Acquire),
                };
                match oids::query(&view, info.Oid, out) {
                    Ok(written) => {
                        info.BytesWritten = written;
                        NDIS_STATUS_SUCCESS
                    }
                    Err(e) => {
                        info.BytesNeeded = e.bytes_needed();
                        e.status(false)
                    }
                }
            }
            NdisRequestSetInformation => {
                let data: &[u8] = if len == 0 {
                    &[]
                } else {
                    slice::from_raw_parts(buffer, len)
                };
                match oids::parse_set(info.Oid, data, (*a).mtu) {
                    Ok(action) => set(a, request, action, data),
                    Err(e) => {
                        info.BytesNeeded = e.bytes_needed();
                        e.status(true)
                    }
                }
            }
            _ => NDIS_STATUS_NOT_SUPPORTED,
        }
    }
}

/// The NDK requests the provider answers itself (IRQL <= DISPATCH_LEVEL, never pended):
/// the `OID_NDK_SET_STATE` set, one BOOLEAN, TRUE enables NDK (the change is announced from
/// a work item, `crate::ndk::set_state`), and the queries of `OID_NDK_LOCAL_ENDPOINTS` /
/// `OID_NDK_CONNECTIONS` ([`ndk_list`]). None for any other request (the other NDK queries
/// are answered by `oids::query`).
///
/// # Safety
/// As for [`MiniportOidRequest`].
unsafe fn ndk_request(a: *mut Adapter, request: *mut NDIS_OID_REQUEST) -> Option<NDIS_STATUS> {
    // SAFETY: `request` and its buffer are valid per the contract.
    unsafe {
        let info = &mut (*request).Information;
        let query = matches!(
            (*request).RequestType,
            NdisRequestQueryInformation | NdisRequestQueryStatistics
        );
        if query && (info.Oid == OID_NDK_LOCAL_ENDPOINTS || info.Oid == OID_NDK_CONNECTIONS) {
            return Some(ndk_list(a, request));
        }
        if info.Oid != OID_NDK_SET_STATE || (*request).RequestType != NdisRequestSetInformation {
            return None;
        }
        info.BytesWritten = 0;
        info.BytesNeeded = 0;
        let buffer = info.InformationBuffer.cast::<u8>();
        if buffer.is_null() || info.InformationBufferLength < 1 {
            info.BytesNeeded = 1;
            return Some(NDIS_STATUS_INVALID_LENGTH);
        }
        let status = crate::ndk::set_state(a, read_volatile(buffer) != 0);
        if status == NDIS_STATUS_SUCCESS {
            info.BytesWritten = 1;
        }
        Some(status)
    }
}

/// A query of `OID_NDK_LOCAL_ENDPOINTS` or `OID_NDK_CONNECTIONS`: the NDK provider's live
/// listeners or connections, both address families (`crate::ndk::cm::query_oid`).
///
/// # Safety
/// As for [`MiniportOidRequest`].
unsafe fn ndk_list(a: *mut Adapter, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    // SAFETY: `request` and its buffer of `InformationBufferLength` bytes are valid per the
    // contract.
    unsafe {
        let info = &mut (*request).Information;
        let buffer = info.InformationBuffer.cast::<u8>();
        let out: &mut [u8] = if buffer.is_null() {
            &mut []
        } else {
            slice::from_raw_parts_mut(buffer, info.InformationBufferLength as usize)
        };
        match crate::ndk::cm::query_oid(a, info.Oid, out) {
            Ok(written) => {
                info.BytesWritten = written;
                info.BytesNeeded = 0;
                NDIS_STATUS_SUCCESS
            }
            Err(needed) => {
                info.BytesWritten = 0;
                info.BytesNeeded = needed;
                NDIS_STATUS_BUFFER_TOO_SHORT
            }
        }
    }
}

/// Carries out a validated set: the lookahead at once, the others through the admin queue
/// (the request pends).
///
/// # Safety
/// As for [`MiniportOidRequest`]; `data` is the request's input buffer.
unsafe fn set(
    a: *mut Adapter,
    request: *mut NDIS_OID_REQUEST,
    action: oids::SetAction,
    data: &[u8],
) -> NDIS_STATUS {
    // SAFETY: `a` and `request` are valid per the contract; the multicast buffer holds
    // MAX_MULTICAST entries and `count` <= MAX_MULTICAST (checked by parse_set).
    unsafe {
        let (command, staged) = match action {
            oids::SetAction::Lookahead(bytes) => {
                (*a).lookahead = bytes;
                (*request).Information.BytesWritten = 4;
                return NDIS_STATUS_SUCCESS;
            }
            oids::SetAction::PacketFilter { ndis, device } => (
                logic::encode_command(
                    opcode::SET_RX_FILTER,
                    logic::OID_COMMAND_ID,
                    &device_filter_operands(device),
                ),
                StagedSet::PacketFilter(ndis),
            ),
            oids::SetAction::Multicast { count } => {
                let macs = data.chunks_exact(oids::MAC_LEN);
                (
                    logic::encode_command(
                        opcode::SET_MULTICAST,
                        logic::OID_COMMAND_ID,
                        &write_multicast(a, macs),
                    ),
                    StagedSet::Multicast(count),
                )
            }
        };
        if crate::reset::unavailable(a) {
            // The device cannot answer: fail now instead of pending until a timeout.
            return crate::reset::unavailable_status(a);
        }
        if !(*a).pending_oid.load(Ordering::Acquire).is_null() {
            // NDIS serializes requests; a second one while one pends is a caller bug.
            log!("OID set while another is pending\n");
            return NDIS_STATUS_RESOURCES;
        }
        (*a).staged = staged;
        (*request).Information.BytesWritten = data.len() as u32;
        (*a).pending_oid.store(request, Ordering::Release);
        hw::submit(a, &command);
        NDIS_STATUS_PENDING
    }
}

/// `SET_RX_FILTER` operands for a device filter value.
fn device_filter_operands(device: u32) -> [u32; 14] {
    let mut ops = [0u32; 14];
    ops[operands::set_rx_filter::FILTER.start / 4] = device;
    ops
}

/// `SET_RX_FILTER` operands for an `NDIS_PACKET_TYPE_*` filter (the reset re-applies the one
/// the device acknowledged).
pub(crate) fn packet_filter_operands(ndis: u32) -> [u32; 14] {
    device_filter_operands(oids::device_filter(ndis))
}

/// Writes the addresses of `macs` into the multicast DMA buffer in the device's format and
/// returns the `SET_MULTICAST` operands for them.
///
/// # Safety
/// `a` is live with its multicast buffer allocated; at most `MAX_MULTICAST` addresses.
pub(crate) unsafe fn write_multicast<'m>(
    a: *mut Adapter,
    macs: impl Iterator<Item = &'m [u8]>,
) -> [u32; 14] {
    // SAFETY: each entry written lies inside the MAX_MULTICAST-entry buffer (the caller bounds
    // the count).
    unsafe {
        let entries = (*a).mc_va;
        let mut count = 0u32;
        for (i, mac) in macs.take(eth::MAX_MULTICAST).enumerate() {
            let mut entry = [0u8; operands::set_multicast::ENTRY_SIZE];
            entry[..oids::MAC_LEN].copy_from_slice(&mac[..oids::MAC_LEN]);
            for (j, b) in entry.iter().enumerate() {
                write_volatile(entries.add(i * operands::set_multicast::ENTRY_SIZE + j), *b);
            }
            count += 1;
        }
        let mut ops = [0u32; 14];
        let (lo, hi) = logic::split_phys((*a).mc_pa);
        ops[operands::set_multicast::COUNT.start / 4] = count;
        ops[operands::set_multicast::LIST.start / 4] = lo;
        ops[operands::set_multicast::LIST.start / 4 + 1] = hi;
        ops
    }
}

/// The device answered the OID's admin command (from the admin-queue DPC, DISPATCH_LEVEL):
/// records what it acknowledged and completes the pending request, unless it was cancelled.
///
/// # Safety
/// `a` is a live adapter context; called only by the single admin-completion consumer.
pub unsafe fn admin_completed(a: *mut Adapter, c: &AdminCompletion) {
    // SAFETY: `a` is live; the request pointer was handed to us by NDIS and is completed at
    // most once (the swap makes the DPC and the cancel handler exclusive).
    unsafe {
        let ok = c.status == logic::ADMIN_STATUS_SUCCESS;
        if ok {
            match (*a).staged {
                StagedSet::PacketFilter(ndis) => (*a).packet_filter = ndis,
                StagedSet::Multicast(count) => {
                    for i in 0..count.min(eth::MAX_MULTICAST) {
                        let entry = (*a).mc_va.add(i * operands::set_multicast::ENTRY_SIZE);
                        for j in 0..oids::MAC_LEN {
                            (*a).mc_cache[i][j] = read_volatile(entry.add(j));
                        }
                    }
                    (*a).multicast_count = count;
                }
                StagedSet::None => {}
            }
        } else {
            log!("OID admin command failed: status %u\n", c.status as u32);
        }
        (*a).staged = StagedSet::None;
        let request = (*a).pending_oid.swap(null_mut(), Ordering::AcqRel);
        if request.is_null() {
            return;
        }
        let status = if ok {
            NDIS_STATUS_SUCCESS
        } else {
            (*request).Information.BytesWritten = 0;
            if crate::reset::unavailable(a) {
                crate::reset::unavailable_status(a)
            } else {
                NDIS_STATUS_INVALID_DATA
            }
        };
        ffi::NdisMOidRequestComplete((*a).miniport, request, status);
    }
}

/// MiniportCancelOidRequest. IRQL: <= DISPATCH_LEVEL. Completes the pending set with
/// `NDIS_STATUS_REQUEST_ABORTED` if its `RequestId` matches; the device's later answer still
/// updates the driver's view of the device.
///
/// # Safety
/// Called by NDIS with the adapter context.
pub unsafe extern "win64" fn MiniportCancelOidRequest(
    context: NDIS_HANDLE,
    request_id: *mut c_void,
) {
    let a = context.cast::<Adapter>();
    // SAFETY: `a` is live; a non-null pending request is still owned by the driver.
    unsafe {
        let pending = (*a).pending_oid.load(Ordering::Acquire);
        if pending.is_null() || (*pending).RequestId != request_id {
            return;
        }
        if (*a)
            .pending_oid
            .compare_exchange(pending, null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            (*pending).Information.BytesWritten = 0;
            ffi::NdisMOidRequestComplete((*a).miniport, pending, NDIS_STATUS_REQUEST_ABORTED);
        }
    }
}

/// MiniportDirectOidRequest. IRQL: <= DISPATCH_LEVEL. The driver offers no direct OIDs.
pub unsafe extern "win64" fn MiniportDirectOidRequest(
    _context: NDIS_HANDLE,
    _request: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    NDIS_STATUS_NOT_SUPPORTED
}

/// MiniportCancelDirectOidRequest. IRQL: <= DISPATCH_LEVEL. No direct OID ever pends.
pub unsafe extern "win64" fn MiniportCancelDirectOidRequest(
    _context: NDIS_HANDLE,
    _request_id: *mut c_void,
) {
}

/// Bytes of the multicast DMA buffer (`MAX_MULTICAST` entries of `ENTRY_SIZE`).
pub const MULTICAST_BUFFER_BYTES: u32 =
    (eth::MAX_MULTICAST * operands::set_multicast::ENTRY_SIZE) as u32;

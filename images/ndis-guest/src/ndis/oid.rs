//! OID requests as NDIS issues them, and the OID matrix the guest runs against the driver:
//! a query of every OID the driver claims (values checked against the device and the general
//! attributes), short buffers, an OID it does not claim, and sets of the packet filter, the
//! multicast list and the lookahead (read back afterwards). The request rules (one outstanding
//! request, pended requests complete exactly once through NdisMOidRequestComplete, within
//! 12 s) are `guest_core::oid`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use guest_core::attributes::GeneralAttributes;
use guest_core::oid::{OidTracker, OID_COMPLETE_TIMEOUT_MS};
use ndis_abi::*;

use super::{interrupt, status_name, violation};
use crate::sync::IrqLock;

/// Requests the driver pended that later completed through NdisMOidRequestComplete.
static PENDED_AND_COMPLETED: AtomicU32 = AtomicU32::new(0);

/// True while the driver's MiniportOidRequest runs (calls that must happen outside the OID
/// handler, such as the NDK state's NdisMNetPnPEvent, check it).
pub static IN_OID_HANDLER: AtomicBool = AtomicBool::new(false);

/// The guest's record of the OID request outstanding at the miniport.
pub static TRACKER: IrqLock<OidTracker> = IrqLock::new(OidTracker::new());

/// An OID the driver does not claim (`OID_GEN_VENDOR_ID`): must be refused with NOT_SUPPORTED.
const UNCLAIMED_OID: NDIS_OID = 0x0001_010C;
/// The packet filter the guest sets: directed, broadcast and multicast frames.
const FILTER: u32 =
    NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST | NDIS_PACKET_TYPE_MULTICAST;
/// The multicast list the guest sets (an IPv4 and an IPv6 all-nodes group address).
const MULTICAST: [[u8; 6]; 2] = [
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
    [0x33, 0x33, 0x00, 0x00, 0x00, 0x01],
];
/// The lookahead the guest sets, in bytes.
const LOOKAHEAD: u32 = 256;

/// Final status and `BytesWritten`/`BytesNeeded` of one request.
pub struct Answer {
    /// The final status.
    pub status: NDIS_STATUS,
    /// `BytesWritten` (or `BytesRead` of a set).
    pub written: u32,
    /// `BytesNeeded`.
    pub needed: u32,
    /// The handler returned `NDIS_STATUS_PENDING` (the status came through
    /// NdisMOidRequestComplete).
    pub pended: bool,
}

/// Issues one request (query or set of `oid` over `buffer`) the way NDIS does and waits for
/// its final status. None if the driver broke a request rule (already reported).
pub fn request(
    handler: MiniportOidRequestFn,
    ctx: NDIS_HANDLE,
    request_type: u32,
    oid: NDIS_OID,
    buffer: &mut [u8],
) -> Option<Answer> {
    // SAFETY: NDIS_OID_REQUEST is plain data (integers and raw pointers): all-zero is valid.
    let mut req: Box<NDIS_OID_REQUEST> = Box::new(unsafe { core::mem::zeroed() });
    req.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_OID_REQUEST,
        NDIS_OID_REQUEST_REVISION_1,
        NDIS_SIZEOF_OID_REQUEST_REVISION_1,
    );
    req.RequestType = request_type;
    let raw: *mut NDIS_OID_REQUEST = &mut *req;
    req.RequestId = raw.cast::<c_void>();
    req.Information.Oid = oid;
    req.Information.InformationBuffer = if buffer.is_empty() {
        core::ptr::null_mut()
    } else {
        buffer.as_mut_ptr().cast()
    };
    req.Information.InformationBufferLength = buffer.len() as u32;
    if let Err(v) = TRACKER.lock().issue(raw as u64) {
        violation(format!("{v}"));
        return None;
    }
    IN_OID_HANDLER.store(true, Ordering::Relaxed);
    // SAFETY: the driver's handler with its own context; the request and its buffer stay
    // alive until the request is finished (this function waits for that).
    let returned = unsafe { handler(ctx, raw) };
    IN_OID_HANDLER.store(false, Ordering::Relaxed);
    // Record the return before any DPC runs: a completion from the admin-queue DPC then
    // finds the request pended, as it would on Windows.
    let outcome = TRACKER.lock().returned(returned);
    let status = match outcome {
        Err(v) => {
            violation(format!("{v}"));
            return None;
        }
        Ok(Some(status)) => status,
        Ok(None) => {
            let mut done = None;
            let completed = interrupt::wait_until(OID_COMPLETE_TIMEOUT_MS, || {
                // wait_until may ask more than once per round: keep what was taken.
                if done.is_none() {
                    done = TRACKER.lock().take_completion();
                }
                done.is_some()
            });
            match done {
                Some(status) if completed => status,
                _ => {
                    if let Some(v) = TRACKER.lock().time_out() {
                        violation(format!("{v}"));
                    }
                    // The driver may still write to the request: keep it alive for good.
                    Box::leak(req);
                    return None;
                }
            }
        }
    };
    if returned == NDIS_STATUS_PENDING {
        PENDED_AND_COMPLETED.fetch_add(1, Ordering::Relaxed);
    }
    Some(Answer {
        status,
        written: req.Information.BytesWritten,
        needed: req.Information.BytesNeeded,
        pended: returned == NDIS_STATUS_PENDING,
    })
}

/// A statistics counter (ULONG64) by query; None (reported) if the query fails.
pub fn query_counter(
    handler: MiniportOidRequestFn,
    ctx: NDIS_HANDLE,
    oid: NDIS_OID,
) -> Option<u64> {
    let mut buf = [0u8; 8];
    let a = request(handler, ctx, NdisRequestQueryInformation, oid, &mut buf)?;
    if !check(a.status == NDIS_STATUS_SUCCESS && a.written == 8, || {
        format!(
            "counter OID {oid:#010x}: {} with {} bytes",
            status_name(a.status),
            a.written
        )
    }) {
        return None;
    }
    Some(u64::from_le_bytes(buf))
}

/// Reports a failed check of the matrix.
fn check(ok: bool, what: impl FnOnce() -> String) -> bool {
    if !ok {
        super::lowres::outcome_failed(what());
    }
    ok
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The value a claimed OID must report, where the general attributes, the link state last
/// indicated (`connect_state`: `MediaConnectState*`, the general attributes' until the first
/// indication) or the guest's own sets fix it; None where any value is acceptable (counters,
/// limits).
fn expected(oid: NDIS_OID, general: &GeneralAttributes, connect_state: u32) -> Option<Vec<u8>> {
    let connected = connect_state == MediaConnectStateConnected;
    let word = |v: u32| Some(v.to_le_bytes().to_vec());
    match oid {
        OID_GEN_SUPPORTED_LIST => Some(
            general
                .supported_oids
                .iter()
                .flat_map(|o| o.to_le_bytes())
                .collect(),
        ),
        OID_802_3_CURRENT_ADDRESS | OID_802_3_PERMANENT_ADDRESS => Some(general.mac.to_vec()),
        OID_GEN_MAXIMUM_FRAME_SIZE => word(general.mtu),
        OID_GEN_MEDIA_IN_USE | OID_GEN_MEDIA_SUPPORTED => word(NdisMedium802_3),
        OID_GEN_MEDIA_CONNECT_STATUS => word(if connected {
            NdisMediaStateConnected
        } else {
            NdisMediaStateDisconnected
        }),
        OID_GEN_LINK_SPEED if connected => word((general.max_xmit_link_speed / 100) as u32),
        OID_GEN_LINK_SPEED => word(0),
        OID_802_3_MAXIMUM_LIST_SIZE => word(rnic_contract::eth::MAX_MULTICAST as u32),
        _ => None,
    }
}

/// Runs the OID matrix against the Running adapter. Every mismatch is a contract violation.
pub fn run_matrix(
    handler: MiniportOidRequestFn,
    ctx: NDIS_HANDLE,
    general: &GeneralAttributes,
    adapter: usize,
) {
    let query = |oid, buf: &mut [u8]| request(handler, ctx, NdisRequestQueryInformation, oid, buf);
    let set = |oid, buf: &mut [u8]| request(handler, ctx, NdisRequestSetInformation, oid, buf);

    // 1. Every claimed OID answers, with the values the device and the attributes fix.
    let mut answered = 0;
    let mut written_by_oid = Vec::new();
    for &oid in &general.supported_oids {
        let mut buf = vec![0u8; 1024];
        // The link may change (and be indicated) while the query runs: either state is right.
        let link_before = super::reset::connect_state(adapter, general.connect_state);
        let Some(a) = query(oid, &mut buf) else {
            continue;
        };
        let link_after = super::reset::connect_state(adapter, general.connect_state);
        let ok = check(a.status == NDIS_STATUS_SUCCESS, || {
            format!(
                "OID {oid:#010x}: the driver claims it but the query returned {}",
                status_name(a.status)
            )
        }) && check(
            a.written as usize <= buf.len() && (a.written > 0 || oid == OID_802_3_MULTICAST_LIST),
            || {
                format!(
                    "OID {oid:#010x}: BytesWritten {} for a {}-byte buffer",
                    a.written,
                    buf.len()
                )
            },
        );
        if !ok {
            continue;
        }
        let got = &buf[..a.written as usize];
        if let Some(want) = expected(oid, general, link_before) {
            let also = expected(oid, general, link_after);
            if !check(
                got == want.as_slice() || also.as_deref() == Some(got),
                || format!("OID {oid:#010x}: reported {got:02x?}, expected {want:02x?}"),
            ) {
                continue;
            }
        }
        written_by_oid.push((oid, a.written));
        answered += 1;
    }
    crate::println!(
        "ndis: OID queries: {answered} of {} claimed OIDs answered with the expected values",
        general.supported_oids.len()
    );

    // 2. Short buffers: the documented status and BytesNeeded.
    let mut short_ok = 0;
    for &(oid, written) in written_by_oid.iter().filter(|(_, w)| *w > 0) {
        let len = (written - 1).min(3) as usize;
        let mut buf = vec![0u8; len];
        let Some(a) = query(oid, &mut buf) else {
            continue;
        };
        if check(
            (a.status == NDIS_STATUS_BUFFER_TOO_SHORT || a.status == NDIS_STATUS_INVALID_LENGTH)
                && a.needed as usize > len
                && a.written == 0,
            || {
                format!("OID {oid:#010x} with a {len}-byte buffer: {} (BytesNeeded {}, BytesWritten {}), expected BUFFER_TOO_SHORT or INVALID_LENGTH with BytesNeeded > {len}", status_name(a.status), a.needed, a.written)
            },
        ) {
            short_ok += 1;
        }
    }
    crate::println!(
        "ndis: OID short buffers: {short_ok} of {} refused with BytesNeeded",
        written_by_oid.iter().filter(|(_, w)| *w > 0).count()
    );

    // 3. An OID the driver does not claim.
    let mut buf = vec![0u8; 64];
    if let Some(a) = query(UNCLAIMED_OID, &mut buf) {
        if check(a.status == NDIS_STATUS_NOT_SUPPORTED, || {
            format!(
                "unclaimed OID {UNCLAIMED_OID:#010x} returned {}",
                status_name(a.status)
            )
        }) {
            crate::println!("ndis: OID unclaimed {UNCLAIMED_OID:#010x}: NDIS_STATUS_NOT_SUPPORTED");
        }
    }

    // 4. Sets, each read back.
    let mut sets_ok = 0;
    let mut set_and_read = |oid: NDIS_OID, value: Vec<u8>| {
        let mut input = value.clone();
        let Some(a) = set(oid, &mut input) else {
            return;
        };
        if !check(a.status == NDIS_STATUS_SUCCESS, || {
            format!("set of OID {oid:#010x} returned {}", status_name(a.status))
        }) {
            return;
        }
        let mut out = vec![0u8; 512];
        let Some(q) = query(oid, &mut out) else {
            return;
        };
        let got = &out[..(q.written as usize).min(out.len())];
        if check(
            q.status == NDIS_STATUS_SUCCESS && got == value.as_slice(),
            || {
                format!(
                    "OID {oid:#010x} reads back {got:02x?} ({}) after setting {value:02x?}",
                    status_name(q.status)
                )
            },
        ) {
            crate::println!("ndis: OID set {oid:#010x}: NDIS_STATUS_SUCCESS, read back");
            sets_ok += 1;
        }
    };
    set_and_read(OID_GEN_CURRENT_PACKET_FILTER, FILTER.to_le_bytes().to_vec());
    set_and_read(OID_802_3_MULTICAST_LIST, MULTICAST.concat());
    set_and_read(OID_GEN_CURRENT_LOOKAHEAD, LOOKAHEAD.to_le_bytes().to_vec());

    // 5. Bad sets: a short packet filter, a unicast address in the multicast list.
    let mut bad_ok = 0;
    let mut short = [0u8; 2];
    if let Some(a) = set(OID_GEN_CURRENT_PACKET_FILTER, &mut short) {
        if check(
            a.status == NDIS_STATUS_INVALID_LENGTH && a.needed == 4,
            || {
                format!("a 2-byte packet-filter set returned {} with BytesNeeded {}, expected INVALID_LENGTH with 4", status_name(a.status), a.needed)
            },
        ) {
            bad_ok += 1;
        }
    }
    let mut unicast = [0x02u8, 0, 0x5e, 0, 0, 1];
    if let Some(a) = set(OID_802_3_MULTICAST_LIST, &mut unicast) {
        if check(
            a.status != NDIS_STATUS_SUCCESS && a.status != NDIS_STATUS_PENDING,
            || String::from("a multicast list holding a unicast address was accepted"),
        ) {
            bad_ok += 1;
        }
    }
    crate::println!(
        "ndis: OID sets: {sets_ok} of 3 applied and read back, {bad_ok} of 2 bad sets refused; {} requests pended and completed through NdisMOidRequestComplete",
        PENDED_AND_COMPLETED.load(Ordering::Relaxed)
    );
    let mut out = vec![0u8; 4];
    if let Some(q) = query(OID_GEN_CURRENT_PACKET_FILTER, &mut out) {
        check(
            q.status == NDIS_STATUS_SUCCESS && u32_at(&out) == FILTER,
            || String::from("the packet filter changed after refused sets"),
        );
    }
}

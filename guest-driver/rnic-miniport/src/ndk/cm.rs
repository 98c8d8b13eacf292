//! NDK connectors, listeners and shared endpoints over the device's connection manager
//! (docs/device-spec.md §3.14 `CM_*` commands, §4.2 `CM_*` events), in IPv4 and IPv6. Every
//! entry of `NDK_CONNECTOR_DISPATCH`, `NDK_LISTENER_DISPATCH` and
//! `NDK_SHARED_ENDPOINT_DISPATCH` is implemented except the QueryExtension entries
//! (`STATUS_NOT_SUPPORTED`: no extensions). A shared endpoint is a driver-side reservation
//! of a local address and port that connectors connect from; the device keys connections by
//! their communication ids, so one local port carries connections to several peers.
//!
//! * Commands run in work items ([`ndk::defer`]); the requests complete from the work item or
//!   from the event that ends them: NdkConnect on `CM_CONNECT_REPLY` (success),
//!   `CM_REJECTED` (`STATUS_CONNECTION_REFUSED`) or `CM_CONNECT_FAILED`
//!   (`STATUS_HOST_UNREACHABLE` / `STATUS_IO_TIMEOUT`); NdkAccept on `CM_ESTABLISHED`;
//!   NdkDisconnect on `CM_DISCONNECTED`; NdkCompleteConnect and NdkListen when their command
//!   completes. The peer's private data, read limits and addresses come from `CM_QUERY`,
//!   fetched in a work item before the event is passed on (so NdkGetConnectionData and the
//!   address getters answer at once, at any IRQL <= DISPATCH_LEVEL).
//! * A connect request on a listener becomes a new connector handed to the listener's connect
//!   event callback (held while the listener's connect events are paused). The peer's
//!   disconnect is reported once through the disconnect event callback given to
//!   NdkCompleteConnect or NdkAccept.
//! * NdkReject returns at once (`STATUS_SUCCESS`); its `CM_REJECT` runs in a work item.

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::cm::{self as contract_cm, record};
use rnic_contract::event::{cm_failure, code};
use rnic_contract::field;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::ndk::adapter::NdkAdapter;
use crate::ndk::qp::Qp;
use crate::ndk::{self};
use crate::ndk_logic::{self, CmAddress};

/// Connection slots the device has (ids' low 16 bits are 1..=256).
pub(crate) const CONN_SLOTS: usize = contract_cm::MAX_CONNECTIONS as usize + 1;
/// Listener ids are 1..=64.
pub(crate) const LISTENER_SLOTS: usize = contract_cm::MAX_LISTENERS as usize + 1;
/// Bytes of a `CM_QUERY` record with the largest private data.
const RECORD_BYTES: usize = record::MAX_LEN;
/// Bytes of the shared buffer a connector uses for private data out and the record in.
const DMA_BYTES: u32 = 512;
/// Connect requests a paused listener holds.
const HELD: usize = 16;

/// What a connector's pending request is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    None,
    Connect,
    CompleteConnect,
    Accept,
    Disconnect,
}

/// One NDK connector (`NDK_CONNECTOR` first).
#[repr(C)]
pub(crate) struct Connector {
    /// The NDK object the consumer sees.
    pub ndk: NDK_CONNECTOR,
    /// The adapter it belongs to.
    pub owner: *mut NdkAdapter,
    /// Its miniport adapter.
    pub a: *mut Adapter,
    /// The device's connection id (0: none).
    pub conn: AtomicU32,
    /// The QP it connects.
    pub qp: *mut Qp,
    /// Local and remote endpoints (from the consumer, then from `CM_QUERY`).
    pub local: CmAddress,
    /// Remote endpoint.
    pub remote: CmAddress,
    /// Read limits asked for (connect / accept).
    pub limits: (u32, u32),
    /// Private data to send and its length.
    pub out_data: [u8; 196],
    /// Length of `out_data` in use.
    pub out_len: u8,
    /// The last `CM_QUERY` record (header and the peer's private data).
    pub record: [u8; RECORD_BYTES],
    /// Valid bytes of `record`.
    pub record_len: usize,
    /// Shared memory for private data and records (allocated by the first command's work
    /// item).
    pub dma_va: *mut u8,
    /// Its bus address.
    pub dma_pa: NDIS_PHYSICAL_ADDRESS,
    /// The pending request.
    request: Request,
    /// Its callback and context.
    pub completion: Option<NDK_FN_REQUEST_COMPLETION>,
    /// Context of `completion`.
    pub context: *mut c_void,
    /// The disconnect event callback (once).
    pub disconnect_event: Option<NDK_FN_DISCONNECT_EVENT_CALLBACK>,
    /// Its context.
    pub disconnect_context: *mut c_void,
    /// The pending close's callback and context.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of `close_completion`.
    pub close_context: *mut c_void,
    /// The event the deferred event handler acts on (code, detail).
    pending_event: (u8, u32),
    /// The listener a passive connector came from.
    pub listener: *mut Listener,
}

/// One NDK listener (`NDK_LISTENER` first).
#[repr(C)]
pub(crate) struct Listener {
    /// The NDK object the consumer sees.
    pub ndk: NDK_LISTENER,
    /// The adapter it belongs to.
    pub owner: *mut NdkAdapter,
    /// Its miniport adapter.
    pub a: *mut Adapter,
    /// The connect event callback and its context.
    pub connect_event: Option<NDK_FN_CONNECT_EVENT_CALLBACK>,
    /// Context of `connect_event`.
    pub connect_context: *mut c_void,
    /// The device's listener id (0: not listening).
    pub id: u32,
    /// The endpoint it listens on.
    pub local: CmAddress,
    /// Connect events are held while set.
    pub paused: AtomicBool,
    /// Connectors held while paused.
    pub held: [AtomicPtr<Connector>; HELD],
    /// Pending listen's or close's callback and context.
    pub completion: Option<NDK_FN_REQUEST_COMPLETION>,
    /// Pending close's callback.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of the pending callback.
    pub context: *mut c_void,
}

/// Shared endpoints an adapter holds at once.
pub(crate) const SHARED_SLOTS: usize = 64;

/// One NDK shared endpoint (`NDK_SHARED_ENDPOINT` first): a local address and port that
/// several connectors connect from (NdkConnectWithSharedEndpoint), each connection to its
/// own peer. The device's connection manager tells connections apart by their
/// communication ids, never by ports, so one local port serves any number of them; the
/// driver keeps the port from listeners and other shared endpoints.
#[repr(C)]
pub(crate) struct SharedEndpoint {
    /// The NDK object the consumer sees.
    pub ndk: NDK_SHARED_ENDPOINT,
    /// The adapter it belongs to.
    pub owner: *mut NdkAdapter,
    /// The endpoint (the port's address, never the wildcard, and a port, never 0).
    pub local: CmAddress,
}

/// Connectors by connection slot and listeners by id (event routing), and the shared
/// endpoints (port reservations).
#[repr(C)]
pub(crate) struct CmTables {
    /// Connectors by `conn & 0xFFFF`.
    pub conns: [AtomicPtr<Connector>; CONN_SLOTS],
    /// Listeners by id.
    pub listeners: [AtomicPtr<Listener>; LISTENER_SLOTS],
    /// Live shared endpoints, in any free slot.
    pub shared: [AtomicPtr<SharedEndpoint>; SHARED_SLOTS],
    /// Events waiting for their connector.
    pub parked: Parked,
}

static CONNECTOR_DISPATCH: NDK_CONNECTOR_DISPATCH = NDK_CONNECTOR_DISPATCH {
    NdkCloseConnector: Some(close_connector),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkConnect: Some(connect),
    NdkConnectWithSharedEndpoint: Some(connect_with_shared_endpoint),
    NdkCompleteConnect: Some(complete_connect),
    NdkAccept: Some(accept),
    NdkReject: Some(reject),
    NdkGetConnectionData: Some(get_connection_data),
    NdkGetLocalAddress: Some(get_local_address),
    NdkGetPeerAddress: Some(get_peer_address),
    NdkDisconnect: Some(disconnect),
};

static SHARED_ENDPOINT_DISPATCH: NDK_SHARED_ENDPOINT_DISPATCH = NDK_SHARED_ENDPOINT_DISPATCH {
    NdkCloseSharedEndpoint: Some(close_shared_endpoint),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkGetLocalAddress: Some(shared_endpoint_local_address),
};

static LISTENER_DISPATCH: NDK_LISTENER_DISPATCH = NDK_LISTENER_DISPATCH {
    NdkCloseListener: Some(close_listener),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkListen: Some(listen),
    NdkGetLocalAddress: Some(listener_local_address),
    NdkControlConnectEvents: Some(control_connect_events),
};

/// Slot of a connection id.
fn slot(conn: u32) -> usize {
    (conn & 0xFFFF) as usize % CONN_SLOTS
}

/// Counts a connector, listener or shared endpoint of `owner` in (`created`) or out (freed):
/// the adapter's children (its close waits for none) and the live objects (the halt check).
///
/// # Safety
/// `owner` is a live NDK adapter.
unsafe fn count_child(owner: *mut NdkAdapter, created: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let a = ndk::device_of(owner);
        if created {
            (*owner).children.fetch_add(1, Ordering::AcqRel);
            (*a).ndk.live_objects.fetch_add(1, Ordering::AcqRel);
        } else {
            (*owner).children.fetch_sub(1, Ordering::AcqRel);
            (*a).ndk.live_objects.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A new connector of `owner` (IRQL <= DISPATCH_LEVEL); null when out of memory.
///
/// # Safety
/// `owner` is a live NDK adapter.
unsafe fn new_connector(owner: *mut NdkAdapter) -> *mut Connector {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let a = ndk::device_of(owner);
        let c = ndk::alloc_object::<Connector>(a);
        if c.is_null() {
            return c;
        }
        (*c).ndk = NDK_CONNECTOR {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeConnector),
            Dispatch: &CONNECTOR_DISPATCH,
        };
        (*c).owner = owner;
        (*c).a = a;
        count_child(owner, true);
        c
    }
}

/// NdkCreateConnector. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`).
pub(crate) unsafe extern "win64" fn create_connector(
    adapter: *mut NDK_ADAPTER,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    out: *mut *mut NDK_CONNECTOR,
) -> NTSTATUS {
    if adapter.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter and an out-pointer.
    unsafe {
        let c = new_connector(adapter.cast());
        if c.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        *out = c.cast();
    }
    STATUS_SUCCESS
}

/// NdkCreateListener. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`).
pub(crate) unsafe extern "win64" fn create_listener(
    adapter: *mut NDK_ADAPTER,
    event: Option<NDK_FN_CONNECT_EVENT_CALLBACK>,
    event_context: *mut c_void,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    out: *mut *mut NDK_LISTENER,
) -> NTSTATUS {
    let owner = adapter.cast::<NdkAdapter>();
    if owner.is_null() || out.is_null() || event.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter and an out-pointer.
    unsafe {
        let a = ndk::device_of(owner);
        let l = ndk::alloc_object::<Listener>(a);
        if l.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*l).ndk = NDK_LISTENER {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeListener),
            Dispatch: &LISTENER_DISPATCH,
        };
        (*l).owner = owner;
        (*l).a = a;
        (*l).connect_event = event;
        (*l).connect_context = event_context;
        count_child(owner, true);
        *out = l.cast();
    }
    STATUS_SUCCESS
}

/// Reads a consumer's socket address.
///
/// # Safety
/// `p` points to `len` readable bytes (or is null).
unsafe fn read_address(p: *const SOCKADDR, len: u32) -> Option<CmAddress> {
    if p.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller; at most 28 bytes are read.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), (len as usize).min(28)) };
    ndk_logic::parse_sockaddr(bytes)
}

/// Writes an endpoint as a socket address into the consumer's buffer
/// (`STATUS_BUFFER_TOO_SMALL` with the needed size when it does not fit).
///
/// # Safety
/// `out` points to `*len` writable bytes; `len` is valid.
unsafe fn write_address(a: &CmAddress, out: *mut SOCKADDR, len: *mut u32) -> NTSTATUS {
    if len.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let (bytes, n) = ndk_logic::sockaddr_bytes(a);
    // SAFETY: guaranteed by the caller.
    unsafe {
        if out.is_null() || (*len as usize) < n {
            *len = n as u32;
            return STATUS_BUFFER_TOO_SMALL;
        }
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), n);
        *len = n as u32;
    }
    STATUS_SUCCESS
}

/// Makes sure the connector has its shared buffer (PASSIVE_LEVEL).
///
/// # Safety
/// `c` is live.
unsafe fn dma(a: *mut Adapter, c: *mut Connector) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*c).dma_va.is_null() {
            let Some((va, pa)) = hw::alloc_ring(a, DMA_BYTES, 8) else {
                return false;
            };
            (*c).dma_va = va;
            (*c).dma_pa = pa;
        }
        true
    }
}

/// Copies the connector's outgoing private data into its shared buffer.
///
/// # Safety
/// `c` is live with its shared buffer.
unsafe fn stage_out_data(c: *mut Connector) {
    // SAFETY: the buffer holds DMA_BYTES >= 196 bytes.
    unsafe {
        for i in 0..(*c).out_len as usize {
            (*c).dma_va.add(i).write_volatile((*c).out_data[i]);
        }
    }
}

/// Fetches the connection's `CM_QUERY` record into the connector (PASSIVE_LEVEL).
///
/// # Safety
/// `c` is live with a connection id.
unsafe fn query(a: *mut Adapter, c: *mut Connector) -> bool {
    // SAFETY: the record lands in the connector's shared buffer and is copied out.
    unsafe {
        if !dma(a, c) {
            return false;
        }
        let ops = ndk_logic::cm_query_operands(
            (*c).conn.load(Ordering::Acquire),
            RECORD_BYTES as u32,
            (*c).dma_pa as u64,
        );
        let (status, written, _) = ndk::admin_exec(a, opcode::CM_QUERY, &ops);
        if status != 0 {
            return false;
        }
        let n = (written as usize).min(RECORD_BYTES);
        for i in 0..n {
            (*c).record[i] = (*c).dma_va.add(i).read_volatile();
        }
        (*c).record_len = n;
        if let Some((local, remote)) = ndk_logic::record_endpoints(&(&(*c).record)[..n]) {
            (*c).local = local;
            (*c).remote = remote;
        }
        true
    }
}

/// Registers the connector for events of its connection id.
///
/// # Safety
/// `c` is live.
unsafe fn bind(a: *mut Adapter, c: *mut Connector, conn: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*c).conn.store(conn, Ordering::Release);
        (*a).ndk.cm.conns[slot(conn)].store(c, Ordering::Release);
    }
}

/// Ends the connector's pending request with `status` (once).
///
/// # Safety
/// `c` is live.
unsafe fn finish(c: *mut Connector, expected: Request, status: NTSTATUS) {
    // SAFETY: guaranteed by the caller; the callback is taken so it runs once.
    unsafe {
        if (*c).request != expected {
            return;
        }
        (*c).request = Request::None;
        let f = (*c).completion.take();
        if let Some(f) = f {
            f((*c).context, status);
        }
    }
}

/// Starts a request: false (nothing changed) while another one pends.
///
/// # Safety
/// `c` is live.
unsafe fn start(
    c: *mut Connector,
    r: Request,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*c).request != Request::None {
            return false;
        }
        (*c).request = r;
        (*c).completion = completion;
        (*c).context = context;
    }
    true
}

/// [`start`] on a connector that has a device connection: `STATUS_CONNECTION_INVALID`
/// without one, `STATUS_DEVICE_BUSY` while another request runs, else `STATUS_SUCCESS`.
///
/// # Safety
/// As for [`start`].
unsafe fn start_connected(
    c: *mut Connector,
    r: Request,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*c).conn.load(Ordering::Acquire) == 0 {
            STATUS_CONNECTION_INVALID
        } else if !start(c, r, completion, context) {
            STATUS_DEVICE_BUSY
        } else {
            STATUS_SUCCESS
        }
    }
}

/// Keeps the consumer's private data for the command (the limits were checked).
///
/// # Safety
/// `c` is live; `pdata` holds `len` <= 196 bytes (or is null).
unsafe fn take_private_data(c: *mut Connector, pdata: *const c_void, len: u32) {
    // SAFETY: guaranteed by the caller (`out_data` holds 196 bytes).
    unsafe {
        (*c).out_len = len as u8;
        if len != 0 && !pdata.is_null() {
            core::ptr::copy_nonoverlapping(
                pdata.cast::<u8>(),
                (*c).out_data.as_mut_ptr(),
                len as usize,
            );
        }
    }
}

/// Defers the started request's work item: `STATUS_PENDING`, or
/// `STATUS_INSUFFICIENT_RESOURCES` with the request dropped.
///
/// # Safety
/// `c` is live with a request just started.
unsafe fn launch(c: *mut Connector, worker: ndk::JobFn) -> NTSTATUS {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if !ndk::defer((*c).a, worker, c.cast()) {
            (*c).request = Request::None;
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// NdkConnect. IRQL: <= DISPATCH_LEVEL. Private data up to 56 bytes (else
/// `STATUS_INVALID_PARAMETER`), an IPv4 (`SOCKADDR_IN`) or IPv6 (`SOCKADDR_IN6`) destination
/// and an optional source of the same family that is the port's address or the wildcard
/// (else `STATUS_INVALID_ADDRESS`, returned at once; so is an IPv6 connect on a port with no
/// IPv6 address; no source: the port's address and a port the device picks); pends until
/// the peer accepts (`STATUS_SUCCESS`, then call NdkCompleteConnect), rejects
/// (`STATUS_CONNECTION_REFUSED`) or cannot be reached.
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn connect(
    connector: *mut NDK_CONNECTOR,
    qp: *mut NDK_QP,
    src: *const SOCKADDR,
    src_len: u32,
    dst: *const SOCKADDR,
    dst_len: u32,
    inbound: u32,
    outbound: u32,
    pdata: *const c_void,
    pdata_len: u32,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the consumer passes `src_len` source address bytes (or none).
    let local = unsafe {
        if src.is_null() || src_len == 0 {
            None
        } else {
            match read_address(src, src_len) {
                Some(local) => Some(local),
                None => return STATUS_INVALID_ADDRESS,
            }
        }
    };
    let request = ConnectRequest {
        dst,
        dst_len,
        limits: (inbound, outbound),
        pdata,
        pdata_len,
        completion,
        context,
    };
    // SAFETY: the consumer passes live objects and buffers of the given lengths.
    unsafe { begin_connect(connector.cast(), qp, local, &request) }
}

/// What NdkConnect and NdkConnectWithSharedEndpoint share: the destination, the read limits,
/// the private data and the completion.
struct ConnectRequest {
    /// The destination socket address and its length.
    dst: *const SOCKADDR,
    /// Bytes at `dst`.
    dst_len: u32,
    /// Inbound and outbound read limits.
    limits: (u32, u32),
    /// The private data and its length.
    pdata: *const c_void,
    /// Bytes at `pdata`.
    pdata_len: u32,
    /// The request completion and its context.
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    /// Context of `completion`.
    context: *mut c_void,
}

/// Checks a connect from `local` (None: the port's address of the destination's family, a
/// port the device picks) and starts it (see [`connect`] for the statuses).
///
/// # Safety
/// `c` is null or a live connector, `qp` null or a live QP; the request's buffers hold the
/// bytes they claim.
unsafe fn begin_connect(
    c: *mut Connector,
    qp: *mut NDK_QP,
    local: Option<CmAddress>,
    r: &ConnectRequest,
) -> NTSTATUS {
    if c.is_null()
        || qp.is_null()
        || r.completion.is_none()
        || r.pdata_len > ndk_logic::MAX_CALLER_DATA
    {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        let Some(remote) = read_address(r.dst, r.dst_len) else {
            return STATUS_INVALID_ADDRESS;
        };
        let local = local.unwrap_or(CmAddress {
            family: remote.family,
            ..CmAddress::default()
        });
        if local.family != remote.family || remote.port == 0 || !(*(*c).a).ndk.port.accepts(&local)
        {
            return STATUS_INVALID_ADDRESS;
        }
        if (*c).conn.load(Ordering::Acquire) != 0 {
            return STATUS_CONNECTION_ACTIVE;
        }
        if !start(c, Request::Connect, r.completion, r.context) {
            return STATUS_DEVICE_BUSY;
        }
        (*c).qp = qp.cast();
        (*c).local = local;
        (*c).remote = remote;
        (*c).limits = r.limits;
        take_private_data(c, r.pdata, r.pdata_len);
        launch(c, connect_worker)
    }
}

/// Work item of [`connect`] (PASSIVE_LEVEL).
unsafe fn connect_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live with a pending connect.
    unsafe {
        if !dma(a, c) {
            finish(c, Request::Connect, STATUS_INSUFFICIENT_RESOURCES);
            return;
        }
        stage_out_data(c);
        // The local address operand: the port's own (zero asks for it).
        let mut local = (*c).local;
        local.addr = [0; 16];
        let ops = ndk_logic::cm_connect_operands(
            (*(*c).qp).qpn,
            &local,
            &(*c).remote,
            (*c).limits.0,
            (*c).limits.1,
            (*c).dma_pa as u64,
            (*c).out_len,
        );
        let (status, conn, _) = ndk::admin_exec(a, opcode::CM_CONNECT, &ops);
        if status != 0 {
            log!("CM_CONNECT failed: status %x\n", status as u32);
            finish(c, Request::Connect, ndk_logic::admin_status(status));
            return;
        }
        bind(a, c, conn);
        replay_parked(a, conn);
    }
}

/// NdkConnectWithSharedEndpoint. IRQL: <= DISPATCH_LEVEL. NdkConnect from the shared
/// endpoint's address and port (the destination must be of its family); the same statuses.
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn connect_with_shared_endpoint(
    connector: *mut NDK_CONNECTOR,
    qp: *mut NDK_QP,
    endpoint: *mut NDK_SHARED_ENDPOINT,
    dst: *const SOCKADDR,
    dst_len: u32,
    inbound: u32,
    outbound: u32,
    pdata: *const c_void,
    pdata_len: u32,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let e = endpoint.cast::<SharedEndpoint>();
    if e.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let request = ConnectRequest {
        dst,
        dst_len,
        limits: (inbound, outbound),
        pdata,
        pdata_len,
        completion,
        context,
    };
    // SAFETY: the consumer passes its live shared endpoint and connector, and buffers of the
    // given lengths.
    unsafe { begin_connect(connector.cast(), qp, Some((*e).local), &request) }
}

/// NdkCompleteConnect. IRQL: <= DISPATCH_LEVEL. After a successful NdkConnect: sends RTU
/// (the QP goes to RTS); pends until the command completes.
unsafe extern "win64" fn complete_connect(
    connector: *mut NDK_CONNECTOR,
    disconnect_event: Option<NDK_FN_DISCONNECT_EVENT_CALLBACK>,
    disconnect_context: *mut c_void,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let c = connector.cast::<Connector>();
    if c.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live connector.
    unsafe {
        let status = start_connected(c, Request::CompleteConnect, completion, context);
        if status != STATUS_SUCCESS {
            return status;
        }
        (*c).disconnect_event = disconnect_event;
        (*c).disconnect_context = disconnect_context;
        if !ndk::defer((*c).a, complete_connect_worker, c.cast()) {
            (*c).request = Request::None;
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`complete_connect`] (PASSIVE_LEVEL).
unsafe fn complete_connect_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live with a pending request.
    unsafe {
        let ops = ndk_logic::handle_operands((*c).conn.load(Ordering::Acquire));
        let (status, _, _) = ndk::admin_exec(a, opcode::CM_COMPLETE_CONNECT, &ops);
        if status == 0 {
            // RTS: the connection manager set its own retry attributes on the way.
            limit_rnr(a, c);
        }
        finish(c, Request::CompleteConnect, ndk_logic::admin_status(status));
    }
}

/// NdkAccept. IRQL: <= DISPATCH_LEVEL. For a connector from a listener's connect event:
/// private data up to 148 bytes (else `STATUS_INVALID_PARAMETER`); sends REP and pends until
/// the peer's RTU establishes the connection.
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn accept(
    connector: *mut NDK_CONNECTOR,
    qp: *mut NDK_QP,
    inbound: u32,
    outbound: u32,
    pdata: *const c_void,
    pdata_len: u32,
    disconnect_event: Option<NDK_FN_DISCONNECT_EVENT_CALLBACK>,
    disconnect_context: *mut c_void,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let c = connector.cast::<Connector>();
    if c.is_null() || qp.is_null() || completion.is_none() || pdata_len > ndk_logic::MAX_CALLEE_DATA
    {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes live objects and a buffer of `pdata_len` bytes.
    unsafe {
        if (*c).listener.is_null() {
            return STATUS_CONNECTION_INVALID;
        }
        let status = start_connected(c, Request::Accept, completion, context);
        if status != STATUS_SUCCESS {
            return status;
        }
        (*c).qp = qp.cast();
        (*c).limits = (inbound, outbound);
        (*c).disconnect_event = disconnect_event;
        (*c).disconnect_context = disconnect_context;
        take_private_data(c, pdata, pdata_len);
        launch(c, accept_worker)
    }
}

/// Gives a connected QP (RTR or RTS) a finite RNR retry count and a longer RNR timer
/// (`ndk_logic::modify_qp_rnr_operands`) (PASSIVE_LEVEL).
///
/// # Safety
/// `c` is live with its QP.
unsafe fn limit_rnr(a: *mut Adapter, c: *mut Connector) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let qpn = (*(*c).qp).qpn;
        let (status, _, _) = ndk::admin_exec(
            a,
            opcode::MODIFY_QP,
            &ndk_logic::modify_qp_rnr_operands(qpn),
        );
        if status != 0 {
            log!("QP %u RNR limits refused: status %x\n", qpn, status as u32);
        }
    }
}

/// Work item of [`accept`] (PASSIVE_LEVEL); the request completes on `CM_ESTABLISHED`.
unsafe fn accept_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live with a pending accept.
    unsafe {
        if !dma(a, c) {
            finish(c, Request::Accept, STATUS_INSUFFICIENT_RESOURCES);
            return;
        }
        stage_out_data(c);
        let ops = ndk_logic::cm_accept_operands(
            (*c).conn.load(Ordering::Acquire),
            (*(*c).qp).qpn,
            (*c).dma_pa as u64,
            (*c).out_len,
            (*c).limits.0,
            (*c).limits.1,
        );
        let (status, _, _) = ndk::admin_exec(a, opcode::CM_ACCEPT, &ops);
        if status != 0 {
            log!("CM_ACCEPT failed: status %x\n", status as u32);
            finish(c, Request::Accept, ndk_logic::admin_status(status));
            return;
        }
        // The QP is in RTR now.
        limit_rnr(a, c);
    }
}

/// NdkReject. IRQL: <= DISPATCH_LEVEL. Private data up to 148 bytes (else
/// `STATUS_INVALID_PARAMETER`); returns `STATUS_SUCCESS` and sends REJ from a work item.
unsafe extern "win64" fn reject(
    connector: *mut NDK_CONNECTOR,
    pdata: *const c_void,
    pdata_len: u32,
) -> NTSTATUS {
    let c = connector.cast::<Connector>();
    if c.is_null() || pdata_len > ndk_logic::MAX_CALLEE_DATA {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live connector and `pdata_len` bytes.
    unsafe {
        if (*c).conn.load(Ordering::Acquire) == 0 {
            return STATUS_CONNECTION_INVALID;
        }
        take_private_data(c, pdata, pdata_len);
        if !ndk::defer((*c).a, reject_worker, c.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_SUCCESS
}

/// Work item of [`reject`] (PASSIVE_LEVEL).
unsafe fn reject_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live (a close queued after the reject runs after it).
    unsafe {
        if !dma(a, c) {
            return;
        }
        stage_out_data(c);
        let ops = ndk_logic::cm_reject_operands(
            (*c).conn.load(Ordering::Acquire),
            (*c).dma_pa as u64,
            (*c).out_len,
        );
        let (status, _, _) = ndk::admin_exec(a, opcode::CM_REJECT, &ops);
        if status != 0 {
            log!("CM_REJECT failed: status %x\n", status as u32);
        }
        // An active side rejecting the REP abandons its connect.
        finish(c, Request::Connect, STATUS_CONNECTION_ABORTED);
    }
}

/// NdkGetConnectionData. IRQL: <= DISPATCH_LEVEL. The read limits the peer offered and its
/// private data (`STATUS_BUFFER_TOO_SMALL` with the needed length when the buffer is short);
/// `STATUS_CONNECTION_INVALID` before the peer's REQ, REP or REJ arrived.
unsafe extern "win64" fn get_connection_data(
    connector: *mut NDK_CONNECTOR,
    inbound: *mut u32,
    outbound: *mut u32,
    pdata: *mut c_void,
    pdata_len: *mut u32,
) -> NTSTATUS {
    let c = connector.cast::<Connector>();
    if c.is_null() || pdata_len.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live connector and valid out-pointers.
    unsafe {
        let r = &(&(*c).record)[..(*c).record_len];
        if r.len() < record::HEADER_LEN {
            return STATUS_CONNECTION_INVALID;
        }
        if !inbound.is_null() {
            *inbound = u32::from(r[record::RESPONDER_RESOURCES]);
        }
        if !outbound.is_null() {
            *outbound = u32::from(r[record::INITIATOR_DEPTH]);
        }
        let have = (field::get_u16(r, record::PRIVATE_DATA_LEN) as usize)
            .min(r.len() - record::PRIVATE_DATA);
        if pdata.is_null() || (*pdata_len as usize) < have {
            *pdata_len = have as u32;
            return if have == 0 {
                STATUS_SUCCESS
            } else {
                STATUS_BUFFER_TOO_SMALL
            };
        }
        core::ptr::copy_nonoverlapping(
            r[record::PRIVATE_DATA..].as_ptr(),
            pdata.cast::<u8>(),
            have,
        );
        *pdata_len = have as u32;
    }
    STATUS_SUCCESS
}

/// The connector's local (`peer` false) or remote endpoint as a socket address;
/// `STATUS_CONNECTION_INVALID` before it is known.
///
/// # Safety
/// `c` is null or a live connector; `out`/`len` as for [`write_address`].
unsafe fn endpoint(c: *mut Connector, peer: bool, out: *mut SOCKADDR, len: *mut u32) -> NTSTATUS {
    if c.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        let e = if peer { (*c).remote } else { (*c).local };
        if e.family == 0 {
            return STATUS_CONNECTION_INVALID;
        }
        write_address(&e, out, len)
    }
}

/// NdkGetLocalAddress (connector). IRQL: <= DISPATCH_LEVEL.
unsafe extern "win64" fn get_local_address(
    connector: *mut NDK_CONNECTOR,
    out: *mut SOCKADDR,
    len: *mut u32,
) -> NTSTATUS {
    // SAFETY: the consumer passes its live connector and a buffer of `*len` bytes.
    unsafe { endpoint(connector.cast(), false, out, len) }
}

/// NdkGetPeerAddress. IRQL: <= DISPATCH_LEVEL.
unsafe extern "win64" fn get_peer_address(
    connector: *mut NDK_CONNECTOR,
    out: *mut SOCKADDR,
    len: *mut u32,
) -> NTSTATUS {
    // SAFETY: as in `get_local_address`.
    unsafe { endpoint(connector.cast(), true, out, len) }
}

/// NdkDisconnect. IRQL: <= DISPATCH_LEVEL. Pends until the disconnect finished (DREP, or the
/// peer had disconnected first).
unsafe extern "win64" fn disconnect(
    connector: *mut NDK_CONNECTOR,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let c = connector.cast::<Connector>();
    if c.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live connector.
    unsafe {
        let status = start_connected(c, Request::Disconnect, completion, context);
        if status != STATUS_SUCCESS {
            return status;
        }
        if !ndk::defer((*c).a, disconnect_worker, c.cast()) {
            (*c).request = Request::None;
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`disconnect`] (PASSIVE_LEVEL); completes on `CM_DISCONNECTED`.
unsafe fn disconnect_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live with a pending disconnect.
    unsafe {
        let ops = ndk_logic::handle_operands((*c).conn.load(Ordering::Acquire));
        let (status, _, _) = ndk::admin_exec(a, opcode::CM_DISCONNECT, &ops);
        if status != 0 {
            finish(c, Request::Disconnect, ndk_logic::admin_status(status));
        }
    }
}

/// NdkCloseConnector. IRQL: <= DISPATCH_LEVEL. Pends; a work item releases the device
/// connection, frees the connector and calls `completion`. No callback of the connector
/// follows the close: a pending request is dropped.
unsafe extern "win64" fn close_connector(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let c = object.cast::<Connector>();
    if c.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live connector.
    unsafe {
        let conn = (*c).conn.load(Ordering::Acquire);
        if conn != 0 {
            let _ = (*(*c).a).ndk.cm.conns[slot(conn)].compare_exchange(
                c,
                null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        (*c).request = Request::None;
        (*c).completion = None;
        (*c).disconnect_event = None;
        (*c).close_completion = completion;
        (*c).close_context = context;
        if !ndk::defer_close((*c).a, close_connector_worker, c.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close_connector`] (PASSIVE_LEVEL).
unsafe fn close_connector_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live until freed here.
    unsafe {
        let conn = (*c).conn.swap(0, Ordering::AcqRel);
        if conn != 0 {
            let (status, _, _) =
                ndk::admin_exec(a, opcode::CM_RELEASE, &ndk_logic::handle_operands(conn));
            if status != 0 {
                log!("CM_RELEASE %x failed: status %x\n", conn, status as u32);
            }
        }
        if !(*c).dma_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                DMA_BYTES,
                FALSE,
                (*c).dma_va.cast(),
                (*c).dma_pa,
            );
        }
        let (f, ctx) = ((*c).close_completion, (*c).close_context);
        count_child((*c).owner, false);
        ndk::free(c);
        if let Some(f) = f {
            f(ctx);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listener entries

/// NdkListen. IRQL: <= DISPATCH_LEVEL. Pends; `CM_LISTEN` runs in a work item
/// (`STATUS_ADDRESS_ALREADY_EXISTS` when another listener holds the address and port).
/// `STATUS_INVALID_ADDRESS` at once for an address that is neither the port's address of
/// its family nor the wildcard, or an IPv6 address on a port with no IPv6 address.
unsafe extern "win64" fn listen(
    listener: *mut NDK_LISTENER,
    address: *const SOCKADDR,
    len: u32,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let l = listener.cast::<Listener>();
    if l.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live listener and `len` address bytes.
    unsafe {
        let Some(local) = read_address(address, len) else {
            return STATUS_INVALID_ADDRESS;
        };
        if !(*(*l).a).ndk.port.accepts(&local) {
            return STATUS_INVALID_ADDRESS;
        }
        if local.port != 0 && shared_holds((*l).a, &(*(*l).a).ndk.port.resolve(&local)) {
            return STATUS_ADDRESS_ALREADY_EXISTS;
        }
        if (*l).id != 0 || (*l).completion.is_some() {
            return STATUS_INVALID_DEVICE_STATE;
        }
        (*l).local = local;
        (*l).completion = completion;
        (*l).context = context;
        if !ndk::defer((*l).a, listen_worker, l.cast()) {
            (*l).completion = None;
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`listen`] (PASSIVE_LEVEL).
unsafe fn listen_worker(a: *mut Adapter, object: *mut c_void) {
    let l = object.cast::<Listener>();
    // SAFETY: `l` is live with a pending listen.
    unsafe {
        let (status, id, port) = ndk::admin_exec(
            a,
            opcode::CM_LISTEN,
            &ndk_logic::cm_listen_operands(&(*l).local),
        );
        let nt = match status {
            0 => {
                (*l).id = id;
                (*l).local.port = port as u16;
                // A wildcard listener reports the port's address of its family (the one
                // peers use).
                (*l).local = (*a).ndk.port.resolve(&(*l).local);
                (*a).ndk.cm.listeners[id as usize % LISTENER_SLOTS].store(l, Ordering::Release);
                STATUS_SUCCESS
            }
            s if s == rnic_contract::admin::AdminStatus::InvalidParam.code() => {
                STATUS_INVALID_ADDRESS
            }
            s => ndk_logic::admin_status(s),
        };
        let f = (*l).completion.take();
        if let Some(f) = f {
            f((*l).context, nt);
        }
    }
}

/// NdkGetLocalAddress (listener). IRQL: <= DISPATCH_LEVEL. The endpoint listened on (with
/// the port the device picked for port 0).
unsafe extern "win64" fn listener_local_address(
    listener: *mut NDK_LISTENER,
    out: *mut SOCKADDR,
    len: *mut u32,
) -> NTSTATUS {
    let l = listener.cast::<Listener>();
    if l.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live listener and a buffer of `*len` bytes.
    unsafe {
        if (*l).id == 0 {
            return STATUS_INVALID_DEVICE_STATE;
        }
        write_address(&(*l).local, out, len)
    }
}

/// NdkControlConnectEvents. IRQL: <= DISPATCH_LEVEL. Pausing holds incoming connect
/// requests (up to 16; more are rejected by the device's timeout); resuming delivers them.
unsafe extern "win64" fn control_connect_events(listener: *mut NDK_LISTENER, pause: BOOLEAN) {
    let l = listener.cast::<Listener>();
    if l.is_null() {
        return;
    }
    // SAFETY: the consumer passes its live listener.
    unsafe {
        (*l).paused.store(pause != FALSE, Ordering::Release);
        if pause == FALSE {
            for h in (*l).held.iter() {
                let c = h.swap(null_mut(), Ordering::AcqRel);
                if !c.is_null() {
                    deliver(l, c);
                }
            }
        }
    }
}

/// NdkCloseListener. IRQL: <= DISPATCH_LEVEL. Pends; a work item stops listening
/// (`CM_UNLISTEN`: unanswered requests are rejected), closes held connectors, frees the
/// listener and calls `completion`.
unsafe extern "win64" fn close_listener(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let l = object.cast::<Listener>();
    if l.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live listener.
    unsafe {
        if (*l).id != 0 {
            (*(*l).a).ndk.cm.listeners[(*l).id as usize % LISTENER_SLOTS]
                .store(null_mut(), Ordering::Release);
        }
        (*l).close_completion = completion;
        (*l).context = context;
        if !ndk::defer_close((*l).a, close_listener_worker, l.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close_listener`] (PASSIVE_LEVEL).
unsafe fn close_listener_worker(a: *mut Adapter, object: *mut c_void) {
    let l = object.cast::<Listener>();
    // SAFETY: `l` is live until freed here; held connectors were never handed out.
    unsafe {
        if (*l).id != 0 {
            let _ = ndk::admin_exec(a, opcode::CM_UNLISTEN, &ndk_logic::handle_operands((*l).id));
        }
        for h in (*l).held.iter() {
            let c = h.swap(null_mut(), Ordering::AcqRel);
            if !c.is_null() {
                (*c).close_completion = None;
                (*a).ndk.cm.conns[slot((*c).conn.load(Ordering::Acquire))]
                    .store(null_mut(), Ordering::Release);
                close_connector_worker(a, c.cast());
            }
        }
        let (f, ctx) = ((*l).close_completion, (*l).context);
        count_child((*l).owner, false);
        ndk::free(l);
        if let Some(f) = f {
            f(ctx);
        }
    }
}

/// Hands a new passive connector to its listener's connect event (or holds it while paused).
///
/// # Safety
/// `l` and `c` are live.
unsafe fn deliver(l: *mut Listener, c: *mut Connector) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*l).paused.load(Ordering::Acquire) {
            for h in (*l).held.iter() {
                if h.compare_exchange(null_mut(), c, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
            }
        }
        if let Some(f) = (*l).connect_event {
            f((*l).connect_context, c.cast());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared endpoints

/// Whether a shared endpoint of `a` holds the resolved endpoint `local`.
///
/// # Safety
/// `a` is a live adapter context.
unsafe fn shared_holds(a: *mut Adapter, local: &CmAddress) -> bool {
    // SAFETY: table entries are live objects (cleared before they are freed).
    unsafe {
        (*a).ndk.cm.shared.iter().any(|e| {
            let e = e.load(Ordering::Acquire);
            !e.is_null() && ndk_logic::endpoints_clash(&(*e).local, local)
        })
    }
}

/// Whether a listening listener of `a` holds the resolved endpoint `local`.
///
/// # Safety
/// `a` is a live adapter context.
unsafe fn listener_holds(a: *mut Adapter, local: &CmAddress) -> bool {
    // SAFETY: table entries are live objects (cleared before they are freed).
    unsafe {
        (*a).ndk.cm.listeners.iter().any(|l| {
            let l = l.load(Ordering::Acquire);
            !l.is_null() && (*l).id != 0 && ndk_logic::endpoints_clash(&(*l).local, local)
        })
    }
}

/// NdkCreateSharedEndpoint. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`).
/// The address is the port's IPv4 or IPv6 address or the wildcard (else
/// `STATUS_INVALID_ADDRESS`, as is an IPv6 address on a port with none); port 0 picks a free
/// one from 45056..=49151; a port a listener or another shared endpoint holds on that
/// address is `STATUS_ADDRESS_ALREADY_EXISTS`; more than 64 shared endpoints,
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub(crate) unsafe extern "win64" fn create_shared_endpoint(
    adapter: *mut NDK_ADAPTER,
    address: *const SOCKADDR,
    len: u32,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    out: *mut *mut NDK_SHARED_ENDPOINT,
) -> NTSTATUS {
    let owner = adapter.cast::<NdkAdapter>();
    if owner.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter, `len` address bytes and an out-pointer.
    unsafe {
        let a = ndk::device_of(owner);
        let Some(asked) = read_address(address, len) else {
            return STATUS_INVALID_ADDRESS;
        };
        if !(*a).ndk.port.accepts(&asked) {
            return STATUS_INVALID_ADDRESS;
        }
        let mut local = (*a).ndk.port.resolve(&asked);
        if local.port == 0 {
            let taken = |port| {
                let candidate = CmAddress { port, ..local };
                shared_holds(a, &candidate) || listener_holds(a, &candidate)
            };
            match ndk_logic::pick_shared_port(taken) {
                Some(port) => local.port = port,
                None => return STATUS_INSUFFICIENT_RESOURCES,
            }
        } else if shared_holds(a, &local) || listener_holds(a, &local) {
            return STATUS_ADDRESS_ALREADY_EXISTS;
        }
        let e = ndk::alloc_zeroed::<SharedEndpoint>(a);
        if e.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*e).ndk = NDK_SHARED_ENDPOINT {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeSharedEndpoint),
            Dispatch: &SHARED_ENDPOINT_DISPATCH,
        };
        (*e).owner = owner;
        (*e).local = local;
        let slot = (*a).ndk.cm.shared.iter().find(|slot| {
            slot.compare_exchange(null_mut(), e, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if slot.is_none() {
            ndk::free(e);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        count_child(owner, true);
        *out = e.cast();
    }
    STATUS_SUCCESS
}

/// NdkGetLocalAddress (shared endpoint). IRQL: <= DISPATCH_LEVEL. The endpoint's address
/// (the port's, for a wildcard) and port (the one picked, for port 0).
unsafe extern "win64" fn shared_endpoint_local_address(
    endpoint: *mut NDK_SHARED_ENDPOINT,
    out: *mut SOCKADDR,
    len: *mut u32,
) -> NTSTATUS {
    let e = endpoint.cast::<SharedEndpoint>();
    if e.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live shared endpoint and a buffer of `*len` bytes.
    unsafe { write_address(&(*e).local, out, len) }
}

/// NdkCloseSharedEndpoint. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`, no
/// callback): the port is free again; connections made from it go on (they hold their own
/// endpoints).
unsafe extern "win64" fn close_shared_endpoint(
    object: *mut NDK_OBJECT_HEADER,
    _completion: Option<NDK_FN_CLOSE_COMPLETION>,
    _context: *mut c_void,
) -> NTSTATUS {
    let e = object.cast::<SharedEndpoint>();
    if e.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live shared endpoint; it leaves the table before it is
    // freed.
    unsafe {
        let owner = (*e).owner;
        let a = ndk::device_of(owner);
        for slot in (*a).ndk.cm.shared.iter() {
            let _ = slot.compare_exchange(e, null_mut(), Ordering::AcqRel, Ordering::Acquire);
        }
        count_child(owner, false);
        ndk::free(e);
    }
    STATUS_SUCCESS
}

// ---------------------------------------------------------------------------------------------
// OID_NDK_LOCAL_ENDPOINTS and OID_NDK_CONNECTIONS

/// Answers a query of `OID_NDK_LOCAL_ENDPOINTS` (every listening listener and every shared
/// endpoint, IPv4 and IPv6)
/// or `OID_NDK_CONNECTIONS` (every connector whose endpoints the device reported) into
/// `out`: bytes written, or Err(bytes needed). IRQL: <= DISPATCH_LEVEL (the OID handler);
/// reads the routing tables only.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn query_oid(a: *mut Adapter, oid: NDIS_OID, out: &mut [u8]) -> Result<u32, u32> {
    // SAFETY: table entries are live objects (cleared before they are freed).
    unsafe {
        let cm = &(*a).ndk.cm;
        if oid == OID_NDK_LOCAL_ENDPOINTS {
            let listeners = cm.listeners.iter().filter_map(|l| {
                let l = l.load(Ordering::Acquire);
                (!l.is_null() && (*l).id != 0).then(|| ((*l).local, true))
            });
            let shared = cm.shared.iter().filter_map(|e| {
                let e = e.load(Ordering::Acquire);
                (!e.is_null()).then(|| ((*e).local, false))
            });
            return ndk_logic::encode_local_endpoints(listeners.chain(shared), out);
        }
        let connections = cm.conns.iter().filter_map(|c| {
            let c = c.load(Ordering::Acquire);
            (!c.is_null() && (*c).conn.load(Ordering::Acquire) != 0 && (*c).remote.family != 0)
                .then(|| ((*c).local, (*c).remote))
        });
        ndk_logic::encode_connections(connections, out)
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// Events that arrived for a connection id no connector is bound to yet (the `CM_CONNECT`
/// completion and its first event can cross): replayed by [`replay_parked`].
const PARKED: usize = 8;

/// Parked events: (connection id, code, detail); id 0 = free.
#[repr(C)]
pub(crate) struct Parked {
    /// The entries.
    pub entries: [(AtomicU32, AtomicU32, AtomicU32); PARKED],
}

/// A connection-manager event from the event ring (message-0 DPC, DISPATCH_LEVEL).
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn event(a: *mut Adapter, ev: u8, handle: u32, detail: u32) {
    // SAFETY: table entries are live objects (cleared before they are freed).
    unsafe {
        if ev == code::CM_CONNECT_REQUEST {
            let l = (*a).ndk.cm.listeners[detail as usize % LISTENER_SLOTS].load(Ordering::Acquire);
            if l.is_null() {
                log!("CM request %x for no listener %u\n", handle, detail);
                return;
            }
            let c = new_connector((*l).owner);
            if c.is_null() {
                return;
            }
            (*c).listener = l;
            (*c).pending_event = (ev, detail);
            bind(a, c, handle);
            if !ndk::defer(a, event_worker, c.cast()) {
                log!("CM request %x dropped: out of memory\n", handle);
                // Nobody will see this connector: close it as a consumer would (its close runs
                // on the job its create reserved, so it cannot fail), which releases the
                // connection and frees it.
                close_connector(c.cast(), None, null_mut());
            }
            return;
        }
        if !(code::CM_CONNECT_REQUEST..=code::CM_CONNECT_FAILED).contains(&ev) {
            return;
        }
        let c = (*a).ndk.cm.conns[slot(handle)].load(Ordering::Acquire);
        if c.is_null() || (*c).conn.load(Ordering::Acquire) != handle {
            for (id, e, d) in (*a).ndk.cm.parked.entries.iter() {
                if id
                    .compare_exchange(0, handle, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    e.store(u32::from(ev), Ordering::Release);
                    d.store(detail, Ordering::Release);
                    return;
                }
            }
            log!(
                "CM event %x for unknown connection %x\n",
                u32::from(ev),
                handle
            );
            return;
        }
        connection_event(a, c, ev, detail);
    }
}

/// Re-dispatches parked events of `conn` (its connector was just bound).
///
/// # Safety
/// `a` is live.
unsafe fn replay_parked(a: *mut Adapter, conn: u32) {
    // SAFETY: entries are atomics of the live context.
    unsafe {
        for (id, e, d) in (*a).ndk.cm.parked.entries.iter() {
            if id.load(Ordering::Acquire) == conn {
                let (ev, detail) = (e.load(Ordering::Acquire) as u8, d.load(Ordering::Acquire));
                id.store(0, Ordering::Release);
                event(a, ev, conn, detail);
            }
        }
    }
}

/// An event for a bound connector (DISPATCH_LEVEL, or PASSIVE_LEVEL when replayed).
///
/// # Safety
/// `c` is live.
unsafe fn connection_event(a: *mut Adapter, c: *mut Connector, ev: u8, detail: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match ev {
            code::CM_CONNECT_REPLY | code::CM_REJECTED => {
                (*c).pending_event = (ev, detail);
                if !ndk::defer(a, event_worker, c.cast()) {
                    finish(c, Request::Connect, STATUS_INSUFFICIENT_RESOURCES);
                }
            }
            code::CM_ESTABLISHED => {
                (*c).pending_event = (ev, detail);
                if (*c).request != Request::Accept || !ndk::defer(a, event_worker, c.cast()) {
                    finish(c, Request::Accept, STATUS_SUCCESS);
                }
            }
            code::CM_CONNECT_FAILED => {
                let status = if detail == cm_failure::UNREACHABLE {
                    STATUS_HOST_UNREACHABLE
                } else {
                    STATUS_IO_TIMEOUT
                };
                finish(c, Request::Connect, status);
                finish(c, Request::Accept, status);
            }
            code::CM_DISCONNECT_RECEIVED => {
                let f = (*c).disconnect_event.take();
                if let Some(f) = f {
                    f((*c).disconnect_context);
                }
            }
            code::CM_DISCONNECTED => finish(c, Request::Disconnect, STATUS_SUCCESS),
            _ => {}
        }
    }
}

/// Work item for the events that need a command first: a connect request (`CM_QUERY`, then
/// the new connector goes to its listener), a reply (`CM_QUERY` and the RNR limits, then
/// NdkConnect succeeds), an established passive connection (the RNR limits, then NdkAccept
/// succeeds) and a reject (`CM_QUERY`, then NdkConnect or NdkAccept fails with
/// `STATUS_CONNECTION_REFUSED`).
unsafe fn event_worker(a: *mut Adapter, object: *mut c_void) {
    let c = object.cast::<Connector>();
    // SAFETY: `c` is live (bound, or a new passive connector nobody else knows yet).
    unsafe {
        let (ev, _) = (*c).pending_event;
        let queried = ev == code::CM_ESTABLISHED || query(a, c);
        match ev {
            code::CM_CONNECT_REQUEST => {
                let l = (*c).listener;
                if queried && !l.is_null() {
                    deliver(l, c);
                }
            }
            code::CM_ESTABLISHED => {
                // RTS (the passive side's RTU arrived): the retry attributes again.
                if !(*c).qp.is_null() {
                    limit_rnr(a, c);
                }
                finish(c, Request::Accept, STATUS_SUCCESS)
            }
            code::CM_CONNECT_REPLY => {
                // The QP is in RTR with the peer's attributes.
                if !(*c).qp.is_null() {
                    limit_rnr(a, c);
                }
                finish(c, Request::Connect, STATUS_SUCCESS)
            }
            _ => {
                finish(c, Request::Connect, STATUS_CONNECTION_REFUSED);
                finish(c, Request::Accept, STATUS_CONNECTION_REFUSED);
            }
        }
    }
}

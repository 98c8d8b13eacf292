//! The suite's connection and data tests: a listener and a connector on the NDK adapter
//! connect two RC QPs (the device moves QPs to RTS during its connection exchange, so data
//! needs a connection even on one adapter), with private data both ways; then SEND/RECEIVE
//! from 1 byte to the adapter's maximum transfer with the payload checked, RDMA WRITE and
//! READ with the remote token, a disconnect the peer sees exactly once; and the connection
//! rules: connect without a listener, a second listener on the same address, reject with
//! private data.
//!
//! Every SGE carries the registered MDL's virtual address (an alias the provider must never
//! dereference, see `memory`), the way NDK consumers address registered memory.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use guest_core::ndk::{ObjectKind, Outcome};
use ndis_abi::*;

use super::memory::{Buffer, MdlChain};
use super::suite::{buffer, chain, expect_success, fail, refused, skip, Suite, TestResult};
use super::verifier::{self, Watch};
use crate::ndis::{interrupt, DISPATCH_LEVEL};

/// The first TCP-style port of the IPv4 connection tests (each test its own, at an offset).
const BASE_PORT_IPV4: u16 = 5000;
/// The first port of the IPv6 connection tests.
const BASE_PORT_IPV6: u16 = 6000;
/// The port offset of the one-adapter loopback connection test.
pub const LOOPBACK_PORT: u16 = 30;
/// How long the suite waits for a connect event or a completion in a CQ.
const EVENT_WAIT_MS: u64 = 5_000;
/// How long a send with no receive posted at the peer is watched before a receive is posted.
const RNR_WAIT_MS: u64 = 300;
/// How long an expected CQ notification is waited for after its completion was polled.
const NOTIFY_WAIT_MS: u64 = 2_000;
/// How long the suite watches for a notification that must not come (or a duplicate).
const NO_NOTIFY_WAIT_MS: u64 = 100;
/// The read limits the suite asks for.
const READ_LIMIT: u32 = 1;

/// The address family the connection tests run in (Microsoft's NDK logo tests take an IPv4
/// and an IPv6 address; the suite runs its connection tests in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET`: `SOCKADDR_IN`, 16 bytes.
    Ipv4,
    /// `AF_INET6`: `SOCKADDR_IN6`, 28 bytes.
    Ipv6,
}

impl Family {
    /// "ipv4" or "ipv6": the suffix of the test names of this family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The Windows `ADDRESS_FAMILY` value.
    fn af(self) -> ADDRESS_FAMILY {
        match self {
            Family::Ipv4 => AF_INET,
            Family::Ipv6 => AF_INET6,
        }
    }

    /// Bytes of the family's socket address.
    fn sockaddr_len(self) -> u32 {
        match self {
            Family::Ipv4 => core::mem::size_of::<SOCKADDR_IN>() as u32,
            Family::Ipv6 => core::mem::size_of::<SOCKADDR_IN6>() as u32,
        }
    }

    /// Where the address bytes sit in the socket address, and how many there are.
    fn ip_range(self) -> core::ops::Range<usize> {
        match self {
            Family::Ipv4 => 4..8,
            Family::Ipv6 => 8..24,
        }
    }

    /// The first port of this family's connection tests.
    pub(super) fn base_port(self) -> u16 {
        match self {
            Family::Ipv4 => BASE_PORT_IPV4,
            Family::Ipv6 => BASE_PORT_IPV6,
        }
    }
}

/// A socket address of either family in a `SOCKADDR_INET`-sized buffer (the bytes of a
/// `SOCKADDR_IN` or `SOCKADDR_IN6`, exactly as the provider reads and writes them).
#[repr(C, align(4))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    bytes: [u8; 28],
}

impl Addr {
    /// The wildcard address of `family` with `port`.
    fn any(family: Family, port: u16) -> Addr {
        let mut a = Addr { bytes: [0; 28] };
        a.bytes[..2].copy_from_slice(&family.af().to_le_bytes());
        a.with_port(port)
    }

    /// The address in the first 28 bytes of `b` (a `SOCKADDR_INET`).
    fn from_inet(b: &[u8]) -> Addr {
        let mut a = Addr::empty();
        a.bytes.copy_from_slice(&b[..28]);
        a
    }

    /// An empty buffer for the provider to write an address into.
    fn empty() -> Addr {
        Addr { bytes: [0; 28] }
    }

    /// The same address with another port.
    fn with_port(mut self, port: u16) -> Addr {
        self.bytes[2..4].copy_from_slice(&port.to_be_bytes());
        self
    }

    /// Its family, None for a family the suite does not know.
    fn family(&self) -> Option<Family> {
        match u16::from_le_bytes([self.bytes[0], self.bytes[1]]) {
            AF_INET => Some(Family::Ipv4),
            AF_INET6 => Some(Family::Ipv6),
            _ => None,
        }
    }

    /// Its port.
    fn port(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    /// Its address bytes (4 or 16; none for an unknown family).
    fn ip(&self) -> &[u8] {
        self.family().map_or(&[], |f| &self.bytes[f.ip_range()])
    }

    /// Bytes of the socket address (16 or 28).
    fn len(&self) -> u32 {
        self.family().map_or(28, Family::sockaddr_len)
    }

    /// The `PSOCKADDR` the provider takes.
    fn sa(&self) -> *const SOCKADDR {
        self.bytes.as_ptr().cast()
    }

    /// The `PSOCKADDR` a provider getter writes.
    fn sa_mut(&mut self) -> *mut SOCKADDR {
        self.bytes.as_mut_ptr().cast()
    }

    /// The same port on another host of the family (the address's last byte changed): an
    /// address that is not the port's.
    fn other_host(mut self) -> Addr {
        if let Some(f) = self.family() {
            self.bytes[f.ip_range().end - 1] ^= 0x40;
        }
        self
    }

    /// Whether the two name the same host and port.
    fn same_endpoint(&self, other: &Addr) -> bool {
        self.family() == other.family() && self.ip() == other.ip() && self.port() == other.port()
    }
}

impl core::fmt::Display for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.family() {
            Some(Family::Ipv4) => {
                let ip = self.ip();
                write!(f, "{}.{}.{}.{}:{}", ip[0], ip[1], ip[2], ip[3], self.port())
            }
            Some(Family::Ipv6) => {
                f.write_str("[")?;
                for (i, pair) in self.ip().chunks_exact(2).enumerate() {
                    let sep = if i == 0 { "" } else { ":" };
                    write!(f, "{sep}{:x}", u16::from_be_bytes([pair[0], pair[1]]))?;
                }
                write!(f, "]:{}", self.port())
            }
            None => write!(
                f,
                "(family {:#x})",
                u16::from_le_bytes([self.bytes[0], self.bytes[1]])
            ),
        }
    }
}

/// Where the passive end of a connection lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Passive {
    /// On the second RNIC's adapter when there is one (across the wire), else on this one.
    Peer,
    /// On this adapter (the device's loopback).
    Local,
}

/// One end of a connection.
pub struct End {
    /// Its CQ (both queues of the QP complete here).
    pub cq: *mut NDK_CQ,
    /// Its QP.
    pub qp: *mut NDK_QP,
    /// Its connector.
    pub conn: *mut NDK_CONNECTOR,
    /// Its disconnect event.
    pub disconnects: &'static Watch,
}

/// Two connected QPs on one PD (`a` the active side, `b` the passive side; the listener that
/// accepted is in the test's [`Cleanup`]).
pub struct Connection {
    /// The active side's PD (its QP and memory).
    pub pd_a: *mut NDK_PD,
    /// The passive side's PD (the same as `pd_a` on one adapter).
    pub pd_b: *mut NDK_PD,
    /// Active side.
    pub a: End,
    /// Passive side.
    pub b: End,
}

fn connector_dispatch(c: *mut NDK_CONNECTOR) -> NDK_CONNECTOR_DISPATCH {
    // SAFETY: a connector the provider returned.
    unsafe { core::ptr::read_volatile((*c).Dispatch) }
}

fn listener_dispatch(l: *mut NDK_LISTENER) -> NDK_LISTENER_DISPATCH {
    // SAFETY: a listener the provider returned.
    unsafe { core::ptr::read_volatile((*l).Dispatch) }
}

fn qp_dispatch(q: *mut NDK_QP) -> NDK_QP_DISPATCH {
    // SAFETY: a QP the provider returned.
    unsafe { core::ptr::read_volatile((*q).Dispatch) }
}

fn cq_dispatch(c: *mut NDK_CQ) -> NDK_CQ_DISPATCH {
    // SAFETY: a CQ the provider returned.
    unsafe { core::ptr::read_volatile((*c).Dispatch) }
}

/// A registered buffer: the memory, its tokens, and the MDL address SGEs and remote addresses
/// are relative to (the MR is deregistered and closed by the test's [`Cleanup`]).
pub struct Registered {
    /// The memory.
    pub buf: Buffer,
    /// The local token.
    pub local: u32,
    /// The remote token.
    pub remote: u32,
    /// The MDL's virtual address (an unmapped alias, see `memory`).
    pub va: u64,
    /// The MDL chain, alive while the MR is registered.
    _chain: MdlChain,
}

/// The objects a test created, closed children first when it ends (whatever its outcome).
#[derive(Default)]
pub struct Cleanup {
    objects: Vec<(*mut c_void, ObjectKind)>,
    registered: Vec<*mut NDK_MR>,
}

impl Cleanup {
    /// Remembers `o` for closing (later additions close first).
    pub fn add<T>(&mut self, o: *mut T, kind: ObjectKind) -> *mut T {
        self.objects.push((o.cast(), kind));
        o
    }

    /// Closes everything, newest first, after deregistering the MRs still registered; the
    /// first failure.
    pub fn close(self, s: &Suite) -> TestResult {
        for &mr in &self.registered {
            s.deregister(mr);
        }
        let mut objects = self.objects;
        objects.reverse();
        s.close_all(&objects)
    }
}

impl Suite {
    /// The port at `offset` of the current family's connection tests (each test its own).
    pub(super) fn port(&self, offset: u16) -> u16 {
        self.family().base_port() + offset
    }

    /// An address a provider getter writes (`get(out, len)` with a 28-byte buffer): it must
    /// succeed and be of the current family, with the family's length.
    fn address_of(
        &self,
        what: &str,
        get: impl FnOnce(*mut SOCKADDR, *mut u32) -> NTSTATUS,
    ) -> Result<Addr, Outcome> {
        let mut addr = Addr::empty();
        let mut len = 28u32;
        expect_success(what, get(addr.sa_mut(), &mut len))?;
        let family = self.family();
        if addr.family() != Some(family) || len != family.sockaddr_len() {
            return fail(format!(
                "{what} wrote {addr} in {len} bytes; an {} address of {} bytes expected",
                family.name(),
                family.sockaddr_len()
            ));
        }
        Ok(addr)
    }

    /// NdkGetLocalAddress and NdkGetPeerAddress of a connected connector: both of the
    /// current family; the peer is `peer` when given, and the local endpoint `local` when
    /// given. Returns (local, peer).
    fn check_endpoints(
        &self,
        conn: *mut NDK_CONNECTOR,
        side: &str,
        local: Option<&Addr>,
        peer: Option<&Addr>,
    ) -> Result<(Addr, Addr), Outcome> {
        let d = connector_dispatch(conn);
        let (Some(get_local), Some(get_peer)) = (d.NdkGetLocalAddress, d.NdkGetPeerAddress) else {
            return fail(
                "the connector dispatch table lacks NdkGetLocalAddress or NdkGetPeerAddress",
            );
        };
        let mine = self.address_of("NdkGetLocalAddress (connector)", |out, len| {
            // SAFETY: the provider's getter with its connector and live out-parameters.
            verifier::sync(DISPATCH_LEVEL, || unsafe { get_local(conn, out, len) })
        })?;
        let theirs = self.address_of("NdkGetPeerAddress", |out, len| {
            // SAFETY: as above.
            verifier::sync(DISPATCH_LEVEL, || unsafe { get_peer(conn, out, len) })
        })?;
        for (what, got, want) in [("local", &mine, local), ("peer", &theirs, peer)] {
            if let Some(want) = want {
                if !got.same_endpoint(want) {
                    return fail(format!(
                        "{side}: the connector's {what} address is {got}; {want} expected"
                    ));
                }
            }
        }
        Ok((mine, theirs))
    }

    fn create_connector(&self, c: &mut Cleanup) -> Result<*mut NDK_CONNECTOR, Outcome> {
        let (a, d) = self.side(false);
        let f = match d.NdkCreateConnector {
            Some(f) => f,
            None => return fail("the dispatch table has no NdkCreateConnector"),
        };
        let conn = verifier::create(
            "NdkCreateConnector",
            ObjectKind::Connector,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its adapter and the verifier's arguments.
            |done, ctx, out| unsafe { f(a, done, ctx, out) },
        )
        .or_else(|s| no_connectors("NdkCreateConnector", s))?;
        Ok(c.add(conn, ObjectKind::Connector))
    }

    /// A new listener (not listening yet) on the passive side's adapter (`passive`) or the
    /// active one, with its connect-event watch.
    fn new_listener(&self, passive: bool) -> Result<(*mut NDK_LISTENER, &'static Watch), Outcome> {
        let (a, d) = self.side(passive);
        let Some(f) = d.NdkCreateListener else {
            return fail("the dispatch table has no NdkCreateListener");
        };
        let watch = verifier::new_watch("connect event");
        let l = verifier::create(
            "NdkCreateListener",
            ObjectKind::Listener,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its adapter and the verifier's arguments.
            |done, ctx, out| unsafe {
                f(
                    a,
                    Some(verifier::on_connect_event),
                    watch.context(),
                    done,
                    ctx,
                    out,
                )
            },
        )
        .or_else(|s| no_connectors("NdkCreateListener", s))?;
        Ok((l, watch))
    }

    /// A listener on 0.0.0.0:`port` on the passive side's adapter, with its connect-event
    /// watch; the address it reports.
    fn listen(
        &self,
        port: u16,
        c: &mut Cleanup,
    ) -> Result<(*mut NDK_LISTENER, &'static Watch, Addr), Outcome> {
        self.listen_on(true, port, c)
    }

    /// A listener on 0.0.0.0:`port` on the passive side's adapter (`passive`) or the active
    /// one, with its connect-event watch; the address it reports.
    fn listen_on(
        &self,
        passive: bool,
        port: u16,
        c: &mut Cleanup,
    ) -> Result<(*mut NDK_LISTENER, &'static Watch, Addr), Outcome> {
        let (l, watch) = self.new_listener(passive)?;
        c.add(l, ObjectKind::Listener);
        watch.object.store(l as u64, Ordering::Relaxed);
        let d = listener_dispatch(l);
        let (Some(listen), Some(local)) = (d.NdkListen, d.NdkGetLocalAddress) else {
            return fail("the listener dispatch table lacks NdkListen or NdkGetLocalAddress");
        };
        let family = self.family();
        let any = Addr::any(family, port);
        let st = verifier::call("NdkListen", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its listener and a live address.
            unsafe { listen(l, any.sa(), any.len(), Some(verifier::on_request), ctx) }
        })
        .status;
        if st == STATUS_INVALID_ADDRESS && family == Family::Ipv6 {
            return skip(
                "NdkListen on [::] returned STATUS_INVALID_ADDRESS: the RNIC's port has no IPv6 address (give the RNIC `ipv6=` in rnic-vmm's --rnic)",
            );
        }
        if st != STATUS_SUCCESS {
            return no_connectors("NdkListen", st);
        }
        let addr = self.address_of("the listener's NdkGetLocalAddress", |out, len| {
            // SAFETY: the provider's getter with live out-parameters.
            verifier::sync(DISPATCH_LEVEL, || unsafe { local(l, out, len) })
        })?;
        if addr.ip().iter().all(|&b| b == 0) || addr.port() == 0 {
            return fail(format!(
                "the listener's NdkGetLocalAddress reports {addr}: the suite cannot address it"
            ));
        }
        Ok((l, watch, addr))
    }

    /// A CQ and a QP on `pd` for one end of a connection (`passive`: on the passive side's
    /// adapter, where `pd` lives).
    fn end_qp(
        &self,
        pd: *mut NDK_PD,
        passive: bool,
        c: &mut Cleanup,
    ) -> Result<(*mut NDK_CQ, *mut NDK_QP), Outcome> {
        let cq = self.cq_on(passive, 128)?;
        c.add(cq.cq, ObjectKind::Cq);
        let qp = self
            .create_qp(pd, cq.cq, 64, 64, 2, 2, 0)
            .or_else(|st| refused("NdkCreateQp", st))?;
        c.add(qp, ObjectKind::Qp);
        Ok((cq.cq, qp))
    }

    /// Starts NdkConnect of `conn` (with `qp`) to `dest`, carrying `private`, from the active
    /// adapter's address (learnt from a listener on port 0 there, closed with the test), as
    /// NDK consumers give the source address.
    fn start_connect(
        &self,
        conn: *mut NDK_CONNECTOR,
        qp: *mut NDK_QP,
        dest: &Addr,
        private: &'static [u8],
        c: &mut Cleanup,
    ) -> Result<verifier::Started, Outcome> {
        self.start_connect_from(conn, qp, dest, private, None, c)
    }

    /// [`Self::start_connect`], or NdkConnectWithSharedEndpoint from `endpoint` when given.
    fn start_connect_from(
        &self,
        conn: *mut NDK_CONNECTOR,
        qp: *mut NDK_QP,
        dest: &Addr,
        private: &'static [u8],
        endpoint: Option<*mut NDK_SHARED_ENDPOINT>,
        c: &mut Cleanup,
    ) -> Result<verifier::Started, Outcome> {
        let d = connector_dispatch(conn);
        let dest = *dest;
        if let Some(endpoint) = endpoint {
            let Some(connect) = d.NdkConnectWithSharedEndpoint else {
                return fail("the connector dispatch table lacks NdkConnectWithSharedEndpoint");
            };
            return Ok(verifier::start(
                "NdkConnectWithSharedEndpoint",
                DISPATCH_LEVEL,
                |ctx| {
                    // SAFETY: the provider's function with its connector, QP and shared
                    // endpoint, a live address and private data it copies before completing.
                    unsafe {
                        connect(
                            conn,
                            qp,
                            endpoint,
                            dest.sa(),
                            dest.len(),
                            READ_LIMIT,
                            READ_LIMIT,
                            private.as_ptr().cast(),
                            private.len() as u32,
                            Some(verifier::on_request),
                            ctx,
                        )
                    }
                },
            ));
        }
        let Some(connect) = d.NdkConnect else {
            return fail("the connector dispatch table lacks NdkConnect");
        };
        let (_, _, local) = self.listen_on(false, 0, c)?;
        let src = local.with_port(0);
        Ok(verifier::start("NdkConnect", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its connector and QP, live addresses and
            // private data the provider copies before the call completes.
            unsafe {
                connect(
                    conn,
                    qp,
                    src.sa(),
                    src.len(),
                    dest.sa(),
                    dest.len(),
                    READ_LIMIT,
                    READ_LIMIT,
                    private.as_ptr().cast(),
                    private.len() as u32,
                    Some(verifier::on_request),
                    ctx,
                )
            }
        }))
    }

    /// Connects two QPs through a listener on `port`, with private data `to_b` (in the
    /// connect) and `to_a` (in the accept), each checked where it arrives.
    pub fn connect(
        &self,
        port: u16,
        to_b: &'static [u8],
        to_a: &[u8],
        c: &mut Cleanup,
    ) -> Result<Connection, Outcome> {
        self.connect_to(Passive::Peer, port, (to_b, to_a), None, c)
    }

    /// [`Self::connect`] with the listener and the passive end on `passive`'s adapter, from
    /// the shared `endpoint` when given.
    fn connect_to(
        &self,
        passive: Passive,
        port: u16,
        (to_b, to_a): (&'static [u8], &[u8]),
        endpoint: Option<*mut NDK_SHARED_ENDPOINT>,
        c: &mut Cleanup,
    ) -> Result<Connection, Outcome> {
        let on_peer = passive == Passive::Peer;
        let pd_a = c.add(self.create_pd_on(false)?, ObjectKind::Pd);
        let pd_b = if self.has_peer() && on_peer {
            c.add(self.create_pd_on(true)?, ObjectKind::Pd)
        } else {
            pd_a
        };
        let (cq_a, qp_a) = self.end_qp(pd_a, false, c)?;
        let (cq_b, qp_b) = self.end_qp(pd_b, on_peer, c)?;
        let (_listener, events, addr) = self.listen_on(on_peer, port, c)?;
        let conn_a = self.create_connector(c)?;
        let da = connector_dispatch(conn_a);
        let Some(complete) = da.NdkCompleteConnect else {
            return fail("the connector dispatch table lacks NdkCompleteConnect");
        };
        let connecting = self.start_connect_from(conn_a, qp_a, &addr, to_b, endpoint, c)?;
        if !interrupt::wait_until(EVENT_WAIT_MS, || {
            events.fired.load(Ordering::Acquire) > 0 || connecting.is_done()
        }) || events.fired.load(Ordering::Acquire) == 0
        {
            let o = connecting.wait();
            return fail(format!(
                "no connect event at the listener within {EVENT_WAIT_MS} ms (NdkConnect: {:#010x})",
                o.status
            ));
        }
        let conn_b = events.last.load(Ordering::Relaxed) as *mut NDK_CONNECTOR;
        verifier::adopt(
            conn_b as *const c_void,
            ObjectKind::Connector,
            Some(self.side(on_peer).0 as *const c_void),
        );
        c.add(conn_b, ObjectKind::Connector);
        self.check_connection_data(conn_b, to_b, "the passive side")?;
        let disc_b = verifier::new_watch("disconnect event");
        disc_b.object.store(conn_b as u64, Ordering::Relaxed);
        let db = connector_dispatch(conn_b);
        let Some(accept) = db.NdkAccept else {
            return fail("the connector dispatch table lacks NdkAccept");
        };
        let accepting = verifier::start("NdkAccept", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its connector and QP and live data.
            unsafe {
                accept(
                    conn_b,
                    qp_b,
                    READ_LIMIT,
                    READ_LIMIT,
                    to_a.as_ptr().cast(),
                    to_a.len() as u32,
                    Some(verifier::on_disconnect_event),
                    disc_b.context(),
                    Some(verifier::on_request),
                    ctx,
                )
            }
        });
        let connected = connecting.wait();
        if connected.status != STATUS_SUCCESS {
            let _ = accepting.wait();
            return fail(format!(
                "NdkConnect completed with {:#010x}",
                connected.status
            ));
        }
        self.check_connection_data(conn_a, to_a, "the active side")?;
        let disc_a = verifier::new_watch("disconnect event");
        disc_a.object.store(conn_a as u64, Ordering::Relaxed);
        let st = verifier::call("NdkCompleteConnect", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its connector.
            unsafe {
                complete(
                    conn_a,
                    Some(verifier::on_disconnect_event),
                    disc_a.context(),
                    Some(verifier::on_request),
                    ctx,
                )
            }
        })
        .status;
        expect_success("NdkCompleteConnect", st)?;
        expect_success("NdkAccept", accepting.wait().status)?;
        // Both ends name each other in the connection's family: the active side's peer is
        // the listener's endpoint, the passive side's local endpoint too, and each side's
        // peer is the other's local endpoint.
        let (a_local, _) = self.check_endpoints(conn_a, "the active side", None, Some(&addr))?;
        self.check_endpoints(conn_b, "the passive side", Some(&addr), Some(&a_local))?;
        Ok(Connection {
            pd_a,
            pd_b,
            a: End {
                cq: cq_a,
                qp: qp_a,
                conn: conn_a,
                disconnects: disc_a,
            },
            b: End {
                cq: cq_b,
                qp: qp_b,
                conn: conn_b,
                disconnects: disc_b,
            },
        })
    }

    /// NdkGetConnectionData on `conn` must return `want` as private data (the provider may pad
    /// it; the first bytes must match) and the read limits asked for.
    fn check_connection_data(
        &self,
        conn: *mut NDK_CONNECTOR,
        want: &[u8],
        side: &str,
    ) -> TestResult {
        let Some(f) = connector_dispatch(conn).NdkGetConnectionData else {
            return fail("the connector dispatch table lacks NdkGetConnectionData");
        };
        let mut data = vec![0u8; 256];
        let (mut ird, mut ord, mut len) = (0u32, 0u32, data.len() as u32);
        // SAFETY: the provider's getter with live out-parameters of the given sizes.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
            f(conn, &mut ird, &mut ord, data.as_mut_ptr().cast(), &mut len)
        });
        expect_success("NdkGetConnectionData", st)?;
        if (len as usize) < want.len() || &data[..want.len()] != want {
            return fail(format!(
                "{side} received private data {:02x?} ({len} bytes); {want:02x?} expected",
                &data[..(len as usize).min(data.len()).min(16)]
            ));
        }
        Ok(())
    }

    /// Disconnects the active side; the passive side's disconnect event must fire exactly
    /// once.
    pub fn disconnect(&self, conn: &Connection) -> TestResult {
        let Some(f) = connector_dispatch(conn.a.conn).NdkDisconnect else {
            return fail("the connector dispatch table lacks NdkDisconnect");
        };
        let st = verifier::call("NdkDisconnect", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its connector.
            unsafe { f(conn.a.conn, Some(verifier::on_request), ctx) }
        })
        .status;
        expect_success("NdkDisconnect", st)?;
        let w = conn.b.disconnects;
        interrupt::wait_until(EVENT_WAIT_MS, || w.fired.load(Ordering::Acquire) > 0);
        // Give a duplicate event time to show up.
        interrupt::idle(20);
        let n = w.fired.load(Ordering::Acquire);
        if n != 1 {
            return fail(format!(
                "the peer saw {n} disconnect events; exactly 1 expected"
            ));
        }
        Ok(())
    }

    /// Takes results from `cq` until `n` arrived or [`EVENT_WAIT_MS`] passed.
    pub(super) fn results(&self, cq: *mut NDK_CQ, n: usize) -> Result<Vec<NDK_RESULT>, Outcome> {
        self.results_within(cq, n, EVENT_WAIT_MS)
    }

    /// Takes results from `cq` until `n` arrived or `ms` passed.
    fn results_within(
        &self,
        cq: *mut NDK_CQ,
        n: usize,
        ms: u64,
    ) -> Result<Vec<NDK_RESULT>, Outcome> {
        let out = self.take(cq, n, ms)?;
        if out.len() < n {
            return fail(format!(
                "{} of {n} completions arrived within {ms} ms",
                out.len()
            ));
        }
        Ok(out)
    }

    /// Takes what results arrive in `cq` until `n` did or `ms` passed (possibly fewer).
    fn take(&self, cq: *mut NDK_CQ, n: usize, ms: u64) -> Result<Vec<NDK_RESULT>, Outcome> {
        let Some(get) = cq_dispatch(cq).NdkGetCqResults else {
            return fail("the CQ dispatch table lacks NdkGetCqResults");
        };
        let mut out = Vec::new();
        interrupt::wait_until(ms, || {
            // SAFETY: all-zero is a valid NDK_RESULT (integers and raw pointers).
            let mut batch: [NDK_RESULT; 8] = unsafe { core::mem::zeroed() };
            // SAFETY: the provider's function with a live array of 8 results.
            let got = verifier::sync(DISPATCH_LEVEL, || unsafe {
                get(cq, batch.as_mut_ptr(), batch.len() as u32)
            });
            out.extend_from_slice(&batch[..(got as usize).min(batch.len())]);
            out.len() >= n
        });
        Ok(out)
    }

    /// A fresh buffer of `len` bytes at `offset` into its first page, registered on `pd` with
    /// `flags` (the MR closes with the test's [`Cleanup`]).
    pub(super) fn registered(
        &self,
        pd: *mut NDK_PD,
        (len, offset): (usize, usize),
        flags: u32,
        c: &mut Cleanup,
    ) -> Result<Registered, Outcome> {
        let buf = buffer(len, offset)?;
        let mr = self.create_mr(pd, false)?;
        c.add(mr, ObjectKind::Mr);
        let chain = chain(&buf, u32::MAX)?;
        expect_success("NdkRegisterMr", self.register(mr, &chain, buf.len, flags))?;
        c.registered.push(mr);
        let d = Self::mr_dispatch(mr);
        let (Some(local), Some(remote)) = (d.NdkGetLocalTokenFromMr, d.NdkGetRemoteTokenFromMr)
        else {
            return fail("the MR dispatch table lacks a token getter");
        };
        // SAFETY: the provider's getters with its registered MR.
        let (l, r) = verifier::sync(DISPATCH_LEVEL, || unsafe { (local(mr), remote(mr)) });
        Ok(Registered {
            va: chain.virtual_address(),
            buf,
            local: l,
            remote: r,
            _chain: chain,
        })
    }

    /// An SGE of `len` bytes at offset `at` of `r` (its MDL address plus `at`, its local token).
    pub(super) fn at(r: &Registered, at: u64, len: usize) -> NDK_SGE {
        Self::sge(r.va + at, len as u32, r.local)
    }

    pub(super) fn sge(va: u64, len: u32, token: u32) -> NDK_SGE {
        NDK_SGE {
            Address: NDK_SGE_ADDRESS {
                VirtualAddress: va as *mut c_void,
            },
            Length: len,
            MemoryRegionToken: token,
        }
    }

    /// Runs `f` on a fresh connection on `port`, then disconnects, deregisters nothing (the
    /// test does) and closes everything.
    fn with_connection(
        &self,
        port: u16,
        f: impl FnOnce(&Suite, &Connection, &mut Cleanup) -> TestResult,
    ) -> TestResult {
        let mut c = Cleanup::default();
        let r = self
            .connect(port, b"req", b"rep", &mut c)
            .and_then(|conn| f(self, &conn, &mut c).and_then(|()| self.disconnect(&conn)));
        let closed = c.close(self);
        r.and(closed)
    }

    /// SEND/RECEIVE of 1 byte, 64 bytes, 4 KiB and the adapter's maximum transfer (capped at
    /// 1 MiB), each payload checked byte for byte.
    pub fn send_receive_sizes(&mut self) -> TestResult {
        let max = self.info()?.MaxTransferLength.min(1 << 20) as usize;
        self.send_receive_up_to(max)
    }

    /// SEND/RECEIVE of 1 byte, 64 bytes, 4 KiB and 64 KiB (a message of many packets at any
    /// MTU), each payload checked byte for byte: the data test of the second address family.
    /// The largest transfer is not a property of the family and takes most of a minute under
    /// the instruction emulator, so it runs once, in IPv4.
    pub fn send_receive_to_64_kib(&mut self) -> TestResult {
        self.send_receive_up_to(64 << 10)
    }

    /// SEND/RECEIVE of 1 byte, 64 bytes, 4 KiB and `max` bytes over a fresh connection.
    fn send_receive_up_to(&mut self, max: usize) -> TestResult {
        self.with_connection(self.port(0), |s, conn, c| {
            let mut a = s.registered(conn.pd_a, (max, 0x40), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let b = s.registered(conn.pd_b, (max, 0x80), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            for (i, size) in [1usize, 64, 4096, max].into_iter().enumerate() {
                a.buf.fill(i as u8 + 1);
                s.post_recv(conn.b.qp, &Self::at(&b, 0, size), 0x100)?;
                s.post_send(conn.a.qp, &Self::at(&a, 0, size), 0, 0x200)?;
                let (rb, ra) = (s.one(conn.b.cq)?, s.one(conn.a.cq)?);
                let intact = b.buf.bytes()[..size] == a.buf.bytes()[..size];
                if rb.Status != STATUS_SUCCESS
                    || rb.BytesTransferred as usize != size
                    || ra.Status != STATUS_SUCCESS
                    || !intact
                {
                    return fail(format!(
                        "{size}-byte SEND: receive status {:#010x} bytes {}, send status {:#010x}, payload intact {intact}",
                        rb.Status, rb.BytesTransferred, ra.Status
                    ));
                }
            }
            Ok(())
        })
    }

    /// RDMA WRITE into the peer's buffer with its remote token, then RDMA READ it back.
    pub fn rdma_write_read(&mut self) -> TestResult {
        self.with_connection(self.port(1), |s, conn, c| {
            let size = 8192usize;
            let local = NDK_MR_FLAG_ALLOW_LOCAL_WRITE | NDK_MR_FLAG_RDMA_READ_SINK;
            let remote = NDK_MR_FLAG_ALLOW_REMOTE_WRITE | NDK_MR_FLAG_ALLOW_REMOTE_READ;
            let mut src = s.registered(conn.pd_a, (size, 0x10), local, c)?;
            let back = s.registered(conn.pd_a, (size, 0x20), local, c)?;
            let dst = s.registered(conn.pd_b, (size, 0x30), remote, c)?;
            src.buf.fill(0x5A);
            for (read, local, what) in [(false, &src, "WRITE"), (true, &back, "READ")] {
                s.post_rdma(
                    conn.a.qp,
                    read,
                    &Self::at(local, 0, size),
                    dst.va,
                    dst.remote,
                )?;
                let r = s.one(conn.a.cq)?;
                let intact = local.buf.bytes() == dst.buf.bytes();
                if r.Status != STATUS_SUCCESS || !intact {
                    return fail(format!(
                        "RDMA {what}: status {:#010x}, payload intact {intact}",
                        r.Status
                    ));
                }
            }
            Ok(())
        })
    }

    /// Connect and accept with private data both ways, then a disconnect the peer sees once.
    pub fn connect_accept_disconnect(&mut self) -> TestResult {
        self.connect_accept_disconnect_on(self.port(2))
    }

    /// The connect/accept/disconnect exchange through a listener on `port`.
    pub fn connect_accept_disconnect_on(&mut self, port: u16) -> TestResult {
        self.with_connection(port, |_, _, _| Ok(()))
    }

    /// A connect to a port nobody listens on is refused (STATUS_CONNECTION_REFUSED: the peer's
    /// REJ for an unknown service) and completes exactly once.
    pub fn connect_without_listener(&mut self) -> TestResult {
        let mut c = Cleanup::default();
        let r = (|| {
            // The listener only learns the passive adapter's address; it listens on another
            // port.
            let (_, _, addr) = self.listen(self.port(3), &mut c)?;
            let pd = c.add(self.create_pd()?, ObjectKind::Pd);
            let (_, qp) = self.end_qp(pd, false, &mut c)?;
            let conn = self.create_connector(&mut c)?;
            let nobody = addr.with_port(self.port(4));
            let o = self.start_connect(conn, qp, &nobody, b"", &mut c)?.wait();
            if o.status != STATUS_CONNECTION_REFUSED {
                return fail(format!(
                    "NdkConnect to a port without a listener completed with {:#010x}; STATUS_CONNECTION_REFUSED expected",
                    o.status
                ));
            }
            Ok(())
        })();
        let closed = c.close(self);
        r.and(closed)
    }

    /// invalidip: local addresses that are not the port's are refused at once with
    /// STATUS_INVALID_ADDRESS, never pending: NdkListen on another host's address of the
    /// family, NdkConnect from another host's address, and NdkConnect from a source of the
    /// other family than the destination.
    pub fn invalid_addresses(&mut self) -> TestResult {
        let mut c = Cleanup::default();
        let r = (|| {
            let (_, _, peer) = self.listen(self.port(27), &mut c)?;
            let (_, _, own) = self.listen_on(false, self.port(28), &mut c)?;
            let (l, _) = self.new_listener(false)?;
            c.add(l, ObjectKind::Listener);
            let Some(listen) = listener_dispatch(l).NdkListen else {
                return fail("the listener dispatch table lacks NdkListen");
            };
            let stranger = own.other_host();
            let o = verifier::call("NdkListen", DISPATCH_LEVEL, |ctx| {
                // SAFETY: the provider's function with its listener and a live address.
                unsafe {
                    listen(
                        l,
                        stranger.sa(),
                        stranger.len(),
                        Some(verifier::on_request),
                        ctx,
                    )
                }
            });
            expect_refused_address(&format!("NdkListen on {stranger}"), &o)?;
            let pd = c.add(self.create_pd()?, ObjectKind::Pd);
            let (_, qp) = self.end_qp(pd, false, &mut c)?;
            let other_family = match self.family() {
                Family::Ipv4 => Family::Ipv6,
                Family::Ipv6 => Family::Ipv4,
            };
            for src in [stranger.with_port(0), Addr::any(other_family, 0)] {
                let conn = self.create_connector(&mut c)?;
                let Some(connect) = connector_dispatch(conn).NdkConnect else {
                    return fail("the connector dispatch table lacks NdkConnect");
                };
                let o = verifier::call("NdkConnect", DISPATCH_LEVEL, |ctx| {
                    // SAFETY: the provider's function with its connector and QP and live
                    // addresses.
                    unsafe {
                        connect(
                            conn,
                            qp,
                            src.sa(),
                            src.len(),
                            peer.sa(),
                            peer.len(),
                            READ_LIMIT,
                            READ_LIMIT,
                            core::ptr::null(),
                            0,
                            Some(verifier::on_request),
                            ctx,
                        )
                    }
                });
                expect_refused_address(&format!("NdkConnect from {src} to {peer}"), &o)?;
            }
            Ok(())
        })();
        let closed = c.close(self);
        r.and(closed)
    }

    /// A second listener on the address and port of the first is refused.
    pub fn dual_listen(&mut self) -> TestResult {
        let mut c = Cleanup::default();
        let r = (|| {
            self.listen(self.port(5), &mut c)?;
            match self.listen(self.port(5), &mut c) {
                Ok(_) => fail("a second listener on the same port was accepted"),
                Err(Outcome::Fail(why)) if why.contains("NdkListen returned") => Ok(()),
                Err(other) => Err(other),
            }
        })();
        let closed = c.close(self);
        r.and(closed)
    }
}

/// Shared endpoints: one local address and port, several connections.
impl Suite {
    /// A shared endpoint on the active adapter (wildcard address, port 0):
    /// NdkGetLocalAddress names the port's address and a port; a second shared endpoint on
    /// that address and port is refused with STATUS_ADDRESS_ALREADY_EXISTS; two connectors
    /// connect from it (NdkConnectWithSharedEndpoint) to two different peers, a listener on
    /// the passive side's adapter and one on the active adapter itself, and every end names
    /// the shared endpoint: the active connectors as their local address, the passive ones
    /// as their peer.
    pub fn shared_endpoint_two_peers(&mut self) -> TestResult {
        let mut c = Cleanup::default();
        let r = (|| {
            let (adapter, d) = self.side(false);
            let Some(create) = d.NdkCreateSharedEndpoint else {
                return fail("the dispatch table has no NdkCreateSharedEndpoint");
            };
            let make = |addr: &Addr| {
                verifier::create(
                    "NdkCreateSharedEndpoint",
                    ObjectKind::SharedEndpoint,
                    Some(adapter as *const c_void),
                    DISPATCH_LEVEL,
                    // SAFETY: the provider's function with its adapter and a live address.
                    |done, ctx, out| unsafe {
                        create(adapter, addr.sa(), addr.len(), done, ctx, out)
                    },
                )
            };
            let endpoint = match make(&Addr::any(self.family(), 0)) {
                Ok(e) => c.add(e, ObjectKind::SharedEndpoint),
                Err(STATUS_INVALID_ADDRESS) if self.family() == Family::Ipv6 => {
                    return skip("NdkCreateSharedEndpoint on [::] returned STATUS_INVALID_ADDRESS: the RNIC's port has no IPv6 address");
                }
                Err(st) => return refused("NdkCreateSharedEndpoint", st),
            };
            // SAFETY: a shared endpoint the provider returned.
            let ed = unsafe { core::ptr::read_volatile((*endpoint).Dispatch) };
            let Some(get) = ed.NdkGetLocalAddress else {
                return fail("the shared endpoint dispatch table lacks NdkGetLocalAddress");
            };
            let mine = self.address_of("NdkGetLocalAddress (shared endpoint)", |out, len| {
                // SAFETY: the provider's getter with its shared endpoint and live out-parameters.
                verifier::sync(DISPATCH_LEVEL, || unsafe { get(endpoint, out, len) })
            })?;
            if mine.port() == 0 || mine.ip().iter().all(|&b| b == 0) {
                return fail(format!(
                    "the shared endpoint's NdkGetLocalAddress reports {mine}: neither the port's address nor a port"
                ));
            }
            match make(&mine) {
                Err(STATUS_ADDRESS_ALREADY_EXISTS) => {}
                Ok(second) => {
                    c.add(second, ObjectKind::SharedEndpoint);
                    return fail(format!("a second shared endpoint on {mine} was created"));
                }
                Err(st) => {
                    return fail(format!(
                        "a second shared endpoint on {mine} returned {st:#010x}; STATUS_ADDRESS_ALREADY_EXISTS expected"
                    ))
                }
            }
            let first = self.connect_to(
                Passive::Peer,
                self.port(25),
                (b"one", b"1"),
                Some(endpoint),
                &mut c,
            )?;
            let second = self.connect_to(
                Passive::Local,
                self.port(26),
                (b"two", b"2"),
                Some(endpoint),
                &mut c,
            )?;
            let mut pairs = Vec::new();
            for (conn, which) in [
                (&first, "the first connection"),
                (&second, "the second connection"),
            ] {
                pairs.push(self.check_endpoints(conn.a.conn, which, Some(&mine), None)?);
                self.check_endpoints(conn.b.conn, which, None, Some(&mine))?;
            }
            self.check_ndk_list_oids(&mine, &pairs)?;
            self.disconnect(&first)?;
            self.disconnect(&second)
        })();
        let closed = c.close(self);
        r.and(closed)
    }
}

/// The NDK list OIDs.
impl Suite {
    /// `OID_NDK_LOCAL_ENDPOINTS` and `OID_NDK_CONNECTIONS` on this adapter: an 8-byte buffer
    /// is `NDIS_STATUS_BUFFER_TOO_SHORT` with `BytesNeeded`; the full answer (header 0x80,
    /// revision 1, `Count` entries of 0x24 / 0x40 bytes) lists `shared` as a kernel shared
    /// endpoint (`Listener` FALSE) and every (local, remote) pair of `connections`, in the
    /// current family.
    fn check_ndk_list_oids(&self, shared: &Addr, connections: &[(Addr, Addr)]) -> TestResult {
        let lists = [
            (
                OID_NDK_LOCAL_ENDPOINTS,
                "OID_NDK_LOCAL_ENDPOINTS",
                0x24usize,
            ),
            (OID_NDK_CONNECTIONS, "OID_NDK_CONNECTIONS", 0x40),
        ];
        for (oid, name, entry) in lists {
            let mut short = [0u8; 8];
            let Some(a) = self.query_oid(oid, &mut short) else {
                return fail(format!("{name} could not be queried"));
            };
            if a.status != NDIS_STATUS_BUFFER_TOO_SHORT || (a.needed as usize) < 0x10 + entry {
                return fail(format!(
                    "{name} into 8 bytes returned {:#010x} needing {}; NDIS_STATUS_BUFFER_TOO_SHORT with the size of the entries expected",
                    a.status, a.needed
                ));
            }
            let mut buf = vec![0u8; a.needed as usize];
            let Some(a) = self.query_oid(oid, &mut buf) else {
                return fail(format!("{name} could not be queried"));
            };
            let count = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
            let size = 0x10 + count * entry;
            if a.status != NDIS_STATUS_SUCCESS
                || a.written as usize != size
                || buf[..4] != [0x80, 1, size as u8, (size >> 8) as u8]
            {
                return fail(format!(
                    "{name} returned {:#010x}, {} bytes, header {:02x?}, count {count}",
                    a.status,
                    a.written,
                    &buf[..4]
                ));
            }
            let entries: Vec<&[u8]> = buf[0x10..size].chunks_exact(entry).collect();
            let listed = |want: &dyn Fn(&[u8]) -> bool| entries.iter().any(|e| want(e));
            if oid == OID_NDK_LOCAL_ENDPOINTS {
                if !listed(&|e| Addr::from_inet(e).same_endpoint(shared) && e[29] == 0) {
                    return fail(format!("{name} does not list the shared endpoint {shared}"));
                }
                continue;
            }
            for (local, remote) in connections {
                let found = listed(&|e| {
                    Addr::from_inet(e).same_endpoint(local)
                        && Addr::from_inet(&e[28..]).same_endpoint(remote)
                });
                if !found {
                    return fail(format!(
                        "{name} does not list the connection {local} -> {remote}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `what` must have returned STATUS_INVALID_ADDRESS at once (an address is checked before
/// anything pends).
fn expect_refused_address(what: &str, o: &verifier::Outcome) -> TestResult {
    if o.status != STATUS_INVALID_ADDRESS || o.pended {
        return fail(format!(
            "{what} returned {:#010x}{}; STATUS_INVALID_ADDRESS at once expected",
            o.status,
            if o.pended { " after pending" } else { "" }
        ));
    }
    Ok(())
}

/// A connector call that failed: STATUS_NOT_SUPPORTED means the provider has no connectors/// A connector call that failed: STATUS_NOT_SUPPORTED means the provider has no connectors
/// yet (every connection test is then a skip with that reason), anything else fails.
fn no_connectors<T>(what: &str, status: NTSTATUS) -> Result<T, Outcome> {
    if status == STATUS_NOT_SUPPORTED {
        return skip(format!(
            "needs connectors: {what} returned STATUS_NOT_SUPPORTED (the provider has no connection manager yet)"
        ));
    }
    fail(format!("{what} returned {status:#010x}"))
}

/// Remote-access violations and the flush they cause, queue errors and CQ behaviour: the
/// NetworkDirect unit tests' invalidreadwrite, overreadwrite, writeviolation, sendnoreceive,
/// receiveflushqp, and the NDK logo tests' CQ checks.
impl Suite {
    fn one(&self, cq: *mut NDK_CQ) -> Result<NDK_RESULT, Outcome> {
        Ok(self.results(cq, 1)?[0])
    }

    fn post_recv(&self, qp: *mut NDK_QP, sge: &NDK_SGE, ctx: usize) -> TestResult {
        let Some(f) = qp_dispatch(qp).NdkReceive else {
            return fail("the QP dispatch table lacks NdkReceive");
        };
        // SAFETY: the provider's post function with a live SGE naming registered memory.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
            f(qp, ctx as *mut c_void, sge, 1)
        });
        expect_success("NdkReceive", st)
    }

    fn post_send(&self, qp: *mut NDK_QP, sge: &NDK_SGE, flags: u32, ctx: usize) -> TestResult {
        let Some(f) = qp_dispatch(qp).NdkSend else {
            return fail("the QP dispatch table lacks NdkSend");
        };
        // SAFETY: as for `post_recv`.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
            f(qp, ctx as *mut c_void, sge, 1, flags)
        });
        expect_success("NdkSend", st)
    }

    /// Posts an RDMA WRITE (`read` false) or READ from `sge` to the peer's `remote`/`token`.
    fn post_rdma(
        &self,
        qp: *mut NDK_QP,
        read: bool,
        sge: &NDK_SGE,
        remote: u64,
        token: u32,
    ) -> TestResult {
        let d = qp_dispatch(qp);
        let Some(f) = (if read { d.NdkRead } else { d.NdkWrite }) else {
            return fail("the QP dispatch table lacks NdkRead or NdkWrite");
        };
        // SAFETY: as for `post_recv`.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
            f(qp, 0x500 as *mut c_void, sge, 1, remote, token, 0)
        });
        expect_success(if read { "NdkRead" } else { "NdkWrite" }, st)
    }

    /// After an error the QP is flushed: a receive posted now completes with STATUS_CANCELLED.
    fn expect_flushed(&self, end: &End, sge: &NDK_SGE) -> TestResult {
        self.post_recv(end.qp, sge, 0x600)?;
        let r = self.one(end.cq)?;
        if r.Status != STATUS_CANCELLED {
            return fail(format!(
                "a receive posted after the error completed with {:#010x}; STATUS_CANCELLED (flushed) expected",
                r.Status
            ));
        }
        Ok(())
    }

    /// One remote-access violation on a fresh connection: an RDMA READ (`read`) or WRITE of
    /// 4 KiB plus `overrun` bytes into an MR granting `grant`, with its token XORed with
    /// `token_xor`.
    fn access_violation(
        &self,
        port: u16,
        read: bool,
        grant: u32,
        overrun: usize,
        token_xor: u32,
    ) -> TestResult {
        self.with_connection(port, |s, conn, c| {
            let size = 4096usize;
            let sink = NDK_MR_FLAG_ALLOW_LOCAL_WRITE | NDK_MR_FLAG_RDMA_READ_SINK;
            let local = s.registered(conn.pd_a, (2 * size, 0), sink, c)?;
            let target = s.registered(conn.pd_b, (size, 0), grant, c)?;
            let sge = Self::at(&local, 0, size + overrun);
            s.post_rdma(conn.a.qp, read, &sge, target.va, target.remote ^ token_xor)?;
            let r = s.one(conn.a.cq)?;
            if r.Status != STATUS_ACCESS_VIOLATION {
                return fail(format!(
                    "the violating RDMA {} completed with {:#010x}; STATUS_ACCESS_VIOLATION expected",
                    if read { "READ" } else { "WRITE" },
                    r.Status
                ));
            }
            s.expect_flushed(&conn.a, &Self::at(&local, 0, 64))
        })
    }

    /// invalidreadwrite / overreadwrite / writeviolation: over-write, over-read, a write to an
    /// MR without remote-write access, a wrong token.
    pub fn rdma_access_errors(&mut self) -> TestResult {
        let rw = NDK_MR_FLAG_ALLOW_REMOTE_WRITE | NDK_MR_FLAG_ALLOW_REMOTE_READ;
        self.access_violation(self.port(10), false, rw, 1, 0)
            .map_err(|e| label(e, "over-write"))?;
        self.access_violation(self.port(11), true, rw, 1, 0)
            .map_err(|e| label(e, "over-read"))?;
        self.access_violation(self.port(12), false, NDK_MR_FLAG_ALLOW_REMOTE_READ, 0, 0)
            .map_err(|e| label(e, "write without remote-write access"))?;
        self.access_violation(self.port(13), false, rw, 0, 0x5A00)
            .map_err(|e| label(e, "wrong token"))
    }

    /// A send larger than the posted receive: the receiver's completion reports the overflow.
    pub fn send_larger_than_receive(&mut self) -> TestResult {
        self.with_connection(self.port(14), |s, conn, c| {
            let a = s.registered(conn.pd_a, (128, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let b = s.registered(conn.pd_b, (64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            s.post_recv(conn.b.qp, &Self::at(&b, 0, 64), 0x700)?;
            s.post_send(conn.a.qp, &Self::at(&a, 0, 128), 0, 0x701)?;
            let r = s.one(conn.b.cq)?;
            if r.Status != STATUS_BUFFER_OVERFLOW {
                return fail(format!(
                    "a 128-byte SEND into a 64-byte receive completed the receive with {:#010x}; STATUS_BUFFER_OVERFLOW expected",
                    r.Status
                ));
            }
            Ok(())
        })
    }

    /// sendnoreceive: a send with no receive posted at the peer does not succeed: the peer
    /// answers receiver-not-ready, so the send either fails once its RNR retries run out or,
    /// with infinite RNR retry (what the device's connections use), waits; then a receive
    /// posted late takes it, intact.
    pub fn send_without_receive(&mut self) -> TestResult {
        self.with_connection(self.port(15), |s, conn, c| {
            let mut a = s.registered(conn.pd_a, (64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let b = s.registered(conn.pd_b, (64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            a.buf.fill(0x77);
            s.post_send(conn.a.qp, &Self::at(&a, 0, 64), 0, 0x800)?;
            if let Some(r) = s.take(conn.a.cq, 1, RNR_WAIT_MS)?.first() {
                if r.Status == STATUS_SUCCESS {
                    return fail(
                        "a SEND with no receive posted at the peer completed successfully",
                    );
                }
                return Ok(());
            }
            s.post_recv(conn.b.qp, &Self::at(&b, 0, 64), 0x801)?;
            let (rb, ra) = (s.one(conn.b.cq)?, s.one(conn.a.cq)?);
            if rb.Status != STATUS_SUCCESS || ra.Status != STATUS_SUCCESS || b.buf.bytes() != a.buf.bytes() {
                return fail(format!(
                    "the SEND waiting for a receive: receive {:#010x}, send {:#010x}, payload intact {} once the receive was posted",
                    rb.Status,
                    ra.Status,
                    b.buf.bytes() == a.buf.bytes()
                ));
            }
            Ok(())
        })
    }

    /// receiveflushqp: NdkFlush cancels every outstanding receive.
    pub fn flush_cancels_receives(&mut self) -> TestResult {
        self.with_connection(self.port(16), |s, conn, c| {
            let n = s.post_receives_and_flush(conn, 3, c)?;
            let rs = s.results(conn.b.cq, n)?;
            if let Some(r) = rs.iter().find(|r| r.Status != STATUS_CANCELLED) {
                return fail(format!(
                    "a flushed receive completed with {:#010x}; STATUS_CANCELLED expected",
                    r.Status
                ));
            }
            Ok(())
        })
    }

    /// Posts `n` 64-byte receives on the passive side and flushes its QP; returns `n`.
    fn post_receives_and_flush(
        &self,
        conn: &Connection,
        n: usize,
        c: &mut Cleanup,
    ) -> Result<usize, Outcome> {
        let b = self.registered(conn.pd_b, (n * 64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
        for i in 0..n {
            self.post_recv(conn.b.qp, &Self::at(&b, 64 * i as u64, 64), 0x900 + i)?;
        }
        let Some(flush) = qp_dispatch(conn.b.qp).NdkFlush else {
            return fail("the QP dispatch table lacks NdkFlush");
        };
        // SAFETY: the provider's function with its QP.
        verifier::sync(DISPATCH_LEVEL, || unsafe { flush(conn.b.qp) });
        Ok(n)
    }

    /// SendAndInvalidate of a fast-registered MR's token: the receiver's GetCqResultsEx
    /// reports the invalidated token.
    pub fn send_and_invalidate(&mut self) -> TestResult {
        self.needs_fast_register()?;
        self.with_connection(self.port(17), |s, conn, c| {
            let a = s.registered(conn.pd_a, (64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let b = s.registered(conn.pd_b, (64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            // Remote invalidation applies to fast-registered MRs (as in InfiniBand).
            let (_, rt, _, _target) = s.fast_registered(conn, c)?;
            s.post_recv(conn.b.qp, &Self::at(&b, 0, 64), 0xA00)?;
            let Some(f) = qp_dispatch(conn.a.qp).NdkSendAndInvalidate else {
                return fail("the QP dispatch table lacks NdkSendAndInvalidate");
            };
            let sge = Self::at(&a, 0, 64);
            // SAFETY: the provider's post function with a live SGE.
            let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
                f(conn.a.qp, 0xA01 as *mut c_void, &sge, 1, 0, rt)
            });
            expect_success("NdkSendAndInvalidate", st)?;
            let Some(get) = cq_dispatch(conn.b.cq).NdkGetCqResultsEx else {
                return fail("the CQ dispatch table lacks NdkGetCqResultsEx");
            };
            // SAFETY: all-zero is a valid NDK_RESULT_EX.
            let mut r: NDK_RESULT_EX = unsafe { core::mem::zeroed() };
            let got = interrupt::wait_until(EVENT_WAIT_MS, || {
                // SAFETY: the provider's function with one live result.
                verifier::sync(DISPATCH_LEVEL, || unsafe { get(conn.b.cq, &mut r, 1) }) == 1
            });
            if !got {
                // What the sender saw tells a lost send from a lost receive completion.
                let Some(get_a) = cq_dispatch(conn.a.cq).NdkGetCqResultsEx else {
                    return fail("no receive completion within the wait");
                };
                // SAFETY: all-zero is a valid NDK_RESULT_EX.
                let mut sent: NDK_RESULT_EX = unsafe { core::mem::zeroed() };
                // SAFETY: the provider's function with one live result.
                let n = verifier::sync(DISPATCH_LEVEL, || unsafe { get_a(conn.a.cq, &mut sent, 1) });
                return fail(if n == 1 {
                    format!(
                        "no receive completion within the wait; the sender's completion: status {:#010x} type {:#x}",
                        sent.Status, sent.Type
                    )
                } else {
                    alloc::string::String::from(
                        "no receive completion within the wait, and no send completion either",
                    )
                });
            }
            if r.Status != STATUS_SUCCESS
                || r.Type != NdkOperationTypeReceiveAndInvalidate
                || r.TypeSpecificCompletionOutput != rt as usize
            {
                return fail(format!(
                    "GetCqResultsEx: status {:#010x} type {:#x} output {:#x}; success, NdkOperationTypeReceiveAndInvalidate and the token {rt:#x} expected",
                    r.Status, r.Type, r.TypeSpecificCompletionOutput
                ));
            }
            Ok(())
        })
    }

    /// ArmCq(ANY) notifies once per arm; ArmCq(SOLICITED) ignores an unsolicited send and
    /// notifies for a solicited one.
    pub fn cq_arm(&mut self) -> TestResult {
        self.with_connection(self.port(18), |s, conn, c| {
            let a = s.registered(conn.pd_a, (4 * 64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let b = s.registered(conn.pd_b, (4 * 64, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            let Some(arm) = cq_dispatch(conn.b.cq).NdkArmCq else {
                return fail("the CQ dispatch table lacks NdkArmCq");
            };
            let watch = s.cq_watch(conn.b.cq);
            let fired = || watch.map_or(0, |w| w.fired.load(Ordering::Acquire));
            let exchange = |i: u64, flags: u32| -> TestResult {
                s.post_recv(conn.b.qp, &Self::at(&b, 64 * i, 64), 0xB00)?;
                s.post_send(conn.a.qp, &Self::at(&a, 64 * i, 8), flags, 0xB01)?;
                s.one(conn.a.cq)?;
                s.one(conn.b.cq).map(|_| ())
            };
            // A notification may trail the completion the suite polled (the MSI-X message
            // crosses the monitor), most on a loaded machine: an expected one is waited for
            // up to NOTIFY_WAIT_MS, then a duplicate or an unexpected one gets
            // NO_NOTIFY_WAIT_MS to show up.
            // SAFETY: the provider's function with its CQ.
            verifier::sync(DISPATCH_LEVEL, || unsafe { arm(conn.b.cq, NDK_CQ_NOTIFY_ANY) });
            exchange(0, 0)?;
            exchange(1, 0)?;
            interrupt::wait_until(NOTIFY_WAIT_MS, || fired() > 0);
            interrupt::idle(NO_NOTIFY_WAIT_MS);
            let any = fired();
            // SAFETY: as above.
            verifier::sync(DISPATCH_LEVEL, || unsafe { arm(conn.b.cq, NDK_CQ_NOTIFY_SOLICITED) });
            exchange(2, 0)?;
            interrupt::idle(NO_NOTIFY_WAIT_MS);
            let unsolicited = fired() - any;
            exchange(3, NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT)?;
            interrupt::wait_until(NOTIFY_WAIT_MS, || fired() > any + unsolicited);
            interrupt::idle(NO_NOTIFY_WAIT_MS);
            let solicited = fired() - any - unsolicited;
            if (any, unsolicited, solicited) != (1, 0, 1) {
                return fail(format!(
                    "notifications: {any} for two completions after one ANY arm (1 expected), {unsolicited} for an unsolicited send after a SOLICITED arm (0 expected), {solicited} for a solicited one (1 expected)"
                ));
            }
            Ok(())
        })
    }

    /// The CQ's notification watch (the suite's CQs are created with one).
    fn cq_watch(&self, cq: *mut NDK_CQ) -> Option<&'static Watch> {
        verifier::watch_of(cq as *const c_void)
    }

    /// ControlCqInterruptModeration succeeds when the adapter claims moderation support and
    /// returns STATUS_NOT_SUPPORTED otherwise.
    pub fn cq_moderation(&mut self) -> TestResult {
        let flags = self.info()?.AdapterFlags;
        let cq = self.cq(16)?;
        let Some(f) = cq_dispatch(cq.cq).NdkControlCqInterruptModeration else {
            self.close_all(&[(cq.cq.cast(), ObjectKind::Cq)])?;
            return fail("the CQ dispatch table lacks NdkControlCqInterruptModeration");
        };
        // SAFETY: the provider's function with its CQ.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe { f(cq.cq, 100, 4) });
        self.close_all(&[(cq.cq.cast(), ObjectKind::Cq)])?;
        let claimed = flags & NDK_ADAPTER_FLAG_CQ_INTERRUPT_MODERATION_SUPPORTED != 0;
        match (claimed, st) {
            (true, STATUS_SUCCESS) | (false, STATUS_NOT_SUPPORTED) => Ok(()),
            _ => fail(format!(
                "moderation claimed {claimed} in AdapterFlags, NdkControlCqInterruptModeration(100 us, 4) returned {st:#010x}"
            )),
        }
    }

    /// ResizeCq below the completions the CQ holds fails; above succeeds (when the adapter
    /// claims resize support).
    pub fn cq_resize_below_held(&mut self) -> TestResult {
        if self.info()?.AdapterFlags & NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED == 0 {
            return skip("the adapter does not claim NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED");
        }
        self.with_connection(self.port(19), |s, conn, c| {
            let held = s.post_receives_and_flush(conn, 8, c)?;
            interrupt::idle(50);
            let Some(resize) = cq_dispatch(conn.b.cq).NdkResizeCq else {
                return fail("the CQ dispatch table lacks NdkResizeCq");
            };
            let cq = conn.b.cq;
            let below = verifier::call("NdkResizeCq", DISPATCH_LEVEL, |ctx| {
                // SAFETY: the provider's function with its CQ.
                unsafe { resize(cq, 4, Some(verifier::on_request), ctx) }
            })
            .status;
            let above = verifier::call("NdkResizeCq", DISPATCH_LEVEL, |ctx| {
                // SAFETY: as above.
                unsafe { resize(cq, 256, Some(verifier::on_request), ctx) }
            })
            .status;
            s.results(cq, held)?;
            if below == STATUS_SUCCESS {
                return fail("ResizeCq to 4 entries succeeded while the CQ held 8 completions");
            }
            expect_success("NdkResizeCq to 256 entries", above)
        })
    }

    /// connrejectclose: the passive side rejects with private data; the active side's connect
    /// fails with STATUS_CONNECTION_REFUSED and reads the reject's private data.
    pub fn connect_reject(&mut self) -> TestResult {
        let mut c = Cleanup::default();
        let r = (|| {
            let (_, events, addr) = self.listen(self.port(20), &mut c)?;
            let pd = c.add(self.create_pd()?, ObjectKind::Pd);
            let (_, qp) = self.end_qp(pd, false, &mut c)?;
            let conn = self.create_connector(&mut c)?;
            let connecting = self.start_connect(conn, qp, &addr, b"knock", &mut c)?;
            interrupt::wait_until(EVENT_WAIT_MS, || events.fired.load(Ordering::Acquire) > 0);
            if events.fired.load(Ordering::Acquire) == 0 {
                let _ = connecting.wait();
                return fail("no connect event at the listener");
            }
            let incoming = events.last.load(Ordering::Relaxed) as *mut NDK_CONNECTOR;
            verifier::adopt(
                incoming as *const c_void,
                ObjectKind::Connector,
                Some(self.side(true).0 as *const c_void),
            );
            c.add(incoming, ObjectKind::Connector);
            let Some(reject) = connector_dispatch(incoming).NdkReject else {
                return fail("the connector dispatch table lacks NdkReject");
            };
            // SAFETY: the provider's function with its connector and live private data.
            let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
                reject(incoming, b"go away".as_ptr().cast(), 7)
            });
            expect_success("NdkReject", st)?;
            let o = connecting.wait();
            if o.status != STATUS_CONNECTION_REFUSED {
                return fail(format!(
                    "the rejected NdkConnect completed with {:#010x}; STATUS_CONNECTION_REFUSED expected",
                    o.status
                ));
            }
            self.check_connection_data(conn, b"go away", "the rejected side")
        })();
        let closed = c.close(self);
        r.and(closed)
    }

    /// dualconnection: a connector already connected cannot connect again.
    pub fn dual_connect(&mut self) -> TestResult {
        self.with_connection(self.port(21), |s, conn, c| {
            let (_, _, addr) = s.listen(s.port(22), c)?;
            let o = s
                .start_connect(conn.a.conn, conn.a.qp, &addr, b"", c)?
                .wait();
            if o.status == STATUS_SUCCESS {
                return fail("a second NdkConnect on a connected connector succeeded");
            }
            Ok(())
        })
    }
}

/// Fast registration through the QP, then access through the fast-registered token, then
/// invalidation.
impl Suite {
    /// mrinvalidbuffer-style: fast-register 4 pages on the passive side's QP, RDMA WRITE into
    /// them from the active side with the new remote token, invalidate the MR, and a second
    /// WRITE fails with STATUS_ACCESS_VIOLATION.
    pub fn fast_register_write_invalidate(&mut self) -> TestResult {
        self.needs_fast_register()?;
        self.with_connection(self.port(23), |s, conn, c| {
            let mut src = s.registered(conn.pd_a, (4096, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            src.buf.fill(0x3C);
            let (mr, token, base, target) = s.fast_registered(conn, c)?;
            let Some(invalidate) = qp_dispatch(conn.b.qp).NdkInvalidate else {
                return fail("the QP dispatch table lacks NdkInvalidate");
            };
            let sge = Self::at(&src, 0, 4096);
            s.post_rdma(conn.a.qp, false, &sge, base + 4096, token)?;
            let w = s.one(conn.a.cq)?;
            if w.Status != STATUS_SUCCESS || target.bytes()[4096..8192] != src.buf.bytes()[..] {
                return fail(format!(
                    "the WRITE through the fast-registered token completed with {:#010x}, payload intact {}",
                    w.Status,
                    target.bytes()[4096..8192] == src.buf.bytes()[..]
                ));
            }
            // SAFETY: the provider's post function with its QP and MR.
            let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
                invalidate(conn.b.qp, 0xD01 as *mut c_void, mr.cast(), 0)
            });
            expect_success("NdkInvalidate", st)?;
            let r = s.one(conn.b.cq)?;
            if r.Status != STATUS_SUCCESS {
                return fail(format!("the invalidate completed with {:#010x}", r.Status));
            }
            s.post_rdma(conn.a.qp, false, &sge, base, token)?;
            let w = s.one(conn.a.cq)?;
            if w.Status != STATUS_ACCESS_VIOLATION {
                return fail(format!(
                    "a WRITE through the invalidated token completed with {:#010x}; STATUS_ACCESS_VIOLATION expected",
                    w.Status
                ));
            }
            Ok(())
        })
    }
}

/// Fast registration on the passive side.
impl Suite {
    /// Skips unless the adapter fast-registers at least 4 pages.
    fn needs_fast_register(&self) -> TestResult {
        let pages = self.info()?.FRMRPageCount;
        if pages < 4 {
            return skip(format!("the adapter reports FRMRPageCount {pages} (< 4)"));
        }
        Ok(())
    }

    /// A fast-register MR on the passive side, initialized for 4 pages and fast-registered
    /// through the passive QP over a fresh 16 KiB buffer with remote-write access; returns the
    /// MR, its remote token, the base address peers write to, and the buffer.
    fn fast_registered(
        &self,
        conn: &Connection,
        c: &mut Cleanup,
    ) -> Result<(*mut NDK_MR, u32, u64, Buffer), Outcome> {
        let size = 4 * 4096usize;
        let target = buffer(size, 0)?;
        // Identity-mapped guest memory: the adapter's logical address is the physical one.
        let page_array: Vec<NDK_LOGICAL_ADDRESS> = (0..4u64)
            .map(|i| (target.addr() + i * 4096) as NDK_LOGICAL_ADDRESS)
            .collect();
        let base = super::memory::alias_of(target.addr());
        let (mr, token) = self.fast_register_pages(conn, c, &page_array, 0, size, base)?;
        Ok((mr, token, base, target))
    }

    /// A fast-register MR on the passive side, initialized for 4 pages and fast-registered
    /// through the passive QP over `pages` (adapter logical addresses), the region starting
    /// `fbo` bytes into the first and `length` bytes long, named `base`, with remote-write
    /// access; returns the MR and its remote token.
    fn fast_register_pages(
        &self,
        conn: &Connection,
        c: &mut Cleanup,
        pages: &[NDK_LOGICAL_ADDRESS],
        fbo: u32,
        length: usize,
        base: u64,
    ) -> Result<(*mut NDK_MR, u32), Outcome> {
        let mr = c.add(self.create_mr(conn.pd_b, true)?, ObjectKind::Mr);
        let d = Self::mr_dispatch(mr);
        let (Some(init), Some(remote)) = (d.NdkInitializeFastRegisterMr, d.NdkGetRemoteTokenFromMr)
        else {
            return fail(
                "the MR dispatch table lacks NdkInitializeFastRegisterMr or NdkGetRemoteTokenFromMr",
            );
        };
        let st = verifier::call("NdkInitializeFastRegisterMr", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its fast-register MR.
            unsafe { init(mr, 4, 1, Some(verifier::on_request), ctx) }
        })
        .status;
        expect_success("NdkInitializeFastRegisterMr", st)?;
        let Some(fast) = qp_dispatch(conn.b.qp).NdkFastRegister else {
            return fail("the QP dispatch table lacks NdkFastRegister");
        };
        let flags = NDK_OP_FLAG_ALLOW_REMOTE_WRITE | NDK_OP_FLAG_ALLOW_LOCAL_WRITE;
        // SAFETY: the provider's post function with its QP and MR and a live page array.
        let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
            fast(
                conn.b.qp,
                0xD00 as *mut c_void,
                mr,
                pages.len() as u32,
                pages.as_ptr(),
                fbo,
                length,
                base as *mut c_void,
                flags,
            )
        });
        expect_success("NdkFastRegister", st)?;
        let r = self.one(conn.b.cq)?;
        if r.Status != STATUS_SUCCESS {
            return fail(format!(
                "the fast-register completed with {:#010x}",
                r.Status
            ));
        }
        // SAFETY: the provider's getter with its registered MR.
        let token = verifier::sync(DISPATCH_LEVEL, || unsafe { remote(mr) });
        Ok((mr, token))
    }
}

/// Logical address mappings (NdkBuildLAM / NdkReleaseLAM) used for a fast registration.
impl Suite {
    /// NdkBuildLAM on the passive adapter over a 3-page region 0x200 bytes into its first page,
    /// described by chained one-page MDLs: a too-small LAM buffer gives
    /// STATUS_BUFFER_TOO_SMALL with the needed size (0x10 + 4 pages × 8); then the LAM holds
    /// the region's 4 pages (logical = guest-physical on this device) and FBO 0x200. Its
    /// pages fast-register an MR on the passive QP, an RDMA WRITE from the active side lands
    /// in the region through that MR, and NdkReleaseLAM takes the LAM back.
    pub fn build_lam_fast_register_write(&mut self) -> TestResult {
        self.needs_fast_register()?;
        let (adapter, d) = self.side(true);
        let (Some(build), Some(release)) = (d.NdkBuildLAM, d.NdkReleaseLAM) else {
            return fail("the adapter dispatch table lacks NdkBuildLAM or NdkReleaseLAM");
        };
        self.with_connection(self.port(24), |s, conn, c| {
            let (len, offset) = (3 * 4096usize, 0x200usize);
            let target = buffer(len, offset)?;
            let mdls = chain(&target, 1)?;
            // The LAM buffer: header (AdapterContext, AdapterPageCount) and 4 pages.
            let mut lam = [0u64; 2 + 4];
            let lam_ptr = lam.as_mut_ptr().cast::<NDK_LOGICAL_ADDRESS_MAPPING>();
            let build_into = |size: u32| {
                let (mut size, mut fbo) = (size, 0u32);
                let o = verifier::call("NdkBuildLAM", DISPATCH_LEVEL, |ctx| {
                    // SAFETY: the provider's function with its adapter, a live MDL chain and a
                    // LAM buffer of at least `size` bytes.
                    unsafe {
                        build(
                            adapter,
                            mdls.head(),
                            len,
                            Some(verifier::on_request),
                            ctx,
                            lam_ptr,
                            &mut size,
                            &mut fbo,
                        )
                    }
                });
                (o.status, size, fbo)
            };
            let needed = 0x10 + 4 * 8;
            let (st, size, _) = build_into(0x10);
            if st == STATUS_NOT_SUPPORTED {
                return skip("NdkBuildLAM returned STATUS_NOT_SUPPORTED");
            }
            if st != STATUS_BUFFER_TOO_SMALL || size != needed {
                return fail(format!(
                    "NdkBuildLAM into 0x10 bytes returned {st:#010x} with size {size:#x}; STATUS_BUFFER_TOO_SMALL with {needed:#x} expected"
                ));
            }
            let (st, size, fbo) = build_into(needed);
            expect_success("NdkBuildLAM", st)?;
            let count = lam[1] as u32;
            let first_page = target.addr() & !0xFFF;
            let want: Vec<u64> = (0..4).map(|i| first_page + i * 4096).collect();
            if size != needed || fbo != offset as u32 || count != 4 || lam[2..] != want[..] {
                return fail(format!(
                    "the LAM: size {size:#x}, FBO {fbo:#x}, {count} pages {:x?}; {needed:#x}, {offset:#x}, 4 pages {want:x?} expected",
                    &lam[2..]
                ));
            }
            let pages: Vec<NDK_LOGICAL_ADDRESS> =
                lam[2..].iter().map(|&p| p as NDK_LOGICAL_ADDRESS).collect();
            let base = mdls.virtual_address();
            let (_, token) = s.fast_register_pages(conn, c, &pages, fbo, len, base)?;
            let mut src = s.registered(conn.pd_a, (len, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, c)?;
            src.buf.fill(0x6B);
            s.post_rdma(conn.a.qp, false, &Self::at(&src, 0, len), base, token)?;
            let w = s.one(conn.a.cq)?;
            let intact = target.bytes() == src.buf.bytes();
            if w.Status != STATUS_SUCCESS || !intact {
                return fail(format!(
                    "the WRITE through the LAM's fast-registered MR completed with {:#010x}, payload intact {intact}",
                    w.Status
                ));
            }
            // SAFETY: the provider's function with its adapter and the LAM it built.
            verifier::sync(DISPATCH_LEVEL, || unsafe { release(adapter, lam_ptr) });
            Ok(())
        })
    }
}

/// Prefixes a failure's reason with the sub-case that produced it.
fn label(o: Outcome, case: &str) -> Outcome {
    match o {
        Outcome::Fail(why) => Outcome::Fail(format!("{case}: {why}")),
        other => other,
    }
}

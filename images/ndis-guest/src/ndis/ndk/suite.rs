//! The NDK consumer suite (`guest.ndk=suite`), modelled on Microsoft's NDK logo tests and
//! NetworkDirect's unit tests: one result line per test (`ndk: <name> ... ok|FAIL <why>|skip
//! <why>`), then the summary line `ndk: suite: N tests, P ok, F failed, S skipped`. Every call
//! goes through the contract verifier ([`super::verifier`]); a test that needs something the
//! provider does not offer yet is a labelled skip with the reason, never a pass.
//!
//! Order (each group needs only what the driver offers at that stage): adapter open and
//! QueryAdapterInfo; PD, CQ, MR, QP create and close; memory registration (multi-page with an
//! offset, chained MDLs, zero and oversized lengths); token getters; queue depth and SGE
//! limits at and past the maximum; unsupported objects (MW, SRQ) consistent with the
//! capabilities; then the connection tests over IPv4, the data tests, which need a connected
//! QP pair (connectors), and the connection tests again over IPv6 (named `-ipv4` / `-ipv6`;
//! the IPv6 ones are labelled skips when the RNIC's port has no IPv6 address).

use alloc::format;
use alloc::string::String;
use core::ffi::c_void;
use core::ptr::null_mut;

use guest_core::ndk::{Capabilities, ObjectKind, Outcome, SuiteReport};
use ndis_abi::*;

use super::data::Family;
use super::memory::{Buffer, MdlChain};
use super::verifier::{self, Watch};
use crate::ndis::{DISPATCH_LEVEL, PASSIVE_LEVEL};

/// A test's verdict other than a pass.
pub(super) type TestResult = Result<(), Outcome>;

/// One test of the suite.
type SuiteTest = fn(&mut Suite) -> TestResult;

pub(super) fn fail<T>(why: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Fail(why.into()))
}

pub(super) fn skip<T>(why: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Skip(why.into()))
}

/// The dispatch entry `$field` of `$table`, or the test fails naming it.
macro_rules! entry {
    ($table:expr, $field:ident) => {
        match $table.$field {
            Some(f) => f,
            None => return fail(concat!("the dispatch table has no ", stringify!($field))),
        }
    };
}

/// A consumer buffer of `len` bytes at `offset` into its first page (the test fails when the
/// guest is out of memory).
pub(super) fn buffer(len: usize, offset: usize) -> Result<Buffer, Outcome> {
    Buffer::new(len, offset).ok_or(Outcome::Fail("the guest is out of memory".into()))
}

/// The MDL chain over all of `buf`, `pages` pages per MDL (`u32::MAX`: one MDL).
pub(super) fn chain(buf: &Buffer, pages: u32) -> Result<MdlChain, Outcome> {
    MdlChain::new(buf, 0, buf.len, pages).ok_or(Outcome::Fail("the guest is out of memory".into()))
}

/// `what` returned `status`; the test fails unless it is `STATUS_SUCCESS`, except that
/// `STATUS_NOT_SUPPORTED` (a dispatch entry the provider does not implement yet) makes it a
/// labelled skip.
pub(super) fn expect_success(what: &str, status: NTSTATUS) -> TestResult {
    if status != STATUS_SUCCESS {
        return refused(what, status);
    }
    Ok(())
}

/// The outcome of a call that had to succeed and returned `status`: a labelled skip for
/// `STATUS_NOT_SUPPORTED` (not implemented by the provider yet), a failure otherwise.
pub(super) fn refused<T>(what: &str, status: NTSTATUS) -> Result<T, Outcome> {
    if status == STATUS_NOT_SUPPORTED {
        return skip(format!(
            "not implemented by the provider yet: {what} returned STATUS_NOT_SUPPORTED"
        ));
    }
    fail(format!("{what} returned {status:#010x}"))
}

/// `what` must fail (any error status); success is a failure of the test.
fn expect_refusal(what: &str, status: NTSTATUS) -> TestResult {
    if status == STATUS_SUCCESS || status == STATUS_PENDING {
        return fail(format!(
            "{what} was accepted ({status:#010x}); it must be refused"
        ));
    }
    Ok(())
}

/// What the suite runs against: one open NDK adapter.
pub struct Suite {
    adapter: *mut NDK_ADAPTER,
    pub(super) dispatch: NDK_ADAPTER_DISPATCH,
    /// The NDK adapter of a second RNIC wired to this one, when the VM has one: the passive
    /// side of the connection tests lives there, so they cross the wire.
    peer: Option<(*mut NDK_ADAPTER, NDK_ADAPTER_DISPATCH)>,
    /// The address family the connection tests use now.
    family: Family,
    caps: Capabilities,
    /// The `NDK_ADAPTER_INFO` the capabilities pointed to when the driver set them.
    caps_info: NDK_ADAPTER_INFO,
    info: Option<NDK_ADAPTER_INFO>,
    open: OPEN_NDK_ADAPTER_HANDLER,
    close: CLOSE_NDK_ADAPTER_HANDLER,
    ctx: NDIS_HANDLE,
    /// The miniport's OID request handler (the NDK list OIDs are checked through it).
    oid_handler: Option<MiniportOidRequestFn>,
    report: SuiteReport,
}

/// A CQ with its notification watch.
pub(super) struct Cq {
    /// The CQ.
    pub(super) cq: *mut NDK_CQ,
    /// Its notification.
    pub(super) watch: &'static Watch,
}

impl Suite {
    /// A suite on the open `adapter` (opened through `open` on `ctx`; `close` is used for the
    /// extra adapters some tests open), whose driver declared `caps` with `caps_info`.
    pub fn new(
        adapter: *mut NDK_ADAPTER,
        (caps, caps_info): (Capabilities, NDK_ADAPTER_INFO),
        (open, close): (OPEN_NDK_ADAPTER_HANDLER, CLOSE_NDK_ADAPTER_HANDLER),
        ctx: NDIS_HANDLE,
    ) -> Suite {
        // SAFETY: the adapter the provider returned from open (checked non-NULL, with a
        // dispatch table, by the caller).
        let dispatch = unsafe { core::ptr::read_volatile((*adapter).Dispatch) };
        Suite {
            adapter,
            dispatch,
            peer: None,
            family: Family::Ipv4,
            caps,
            caps_info,
            info: None,
            open,
            close,
            ctx,
            oid_handler: None,
            report: SuiteReport::new(),
        }
    }

    /// Lets the suite query the miniport's NDK OIDs (`OID_NDK_LOCAL_ENDPOINTS`,
    /// `OID_NDK_CONNECTIONS`) through `handler` on this adapter's context.
    pub fn with_oid_handler(mut self, handler: MiniportOidRequestFn) -> Suite {
        self.oid_handler = Some(handler);
        self
    }

    /// Queries `oid` on this adapter into `buffer` the way NDIS does; None when the driver
    /// broke a request rule (reported) or the suite has no handler.
    pub(super) fn query_oid(
        &self,
        oid: NDIS_OID,
        buffer: &mut [u8],
    ) -> Option<crate::ndis::oid::Answer> {
        crate::ndis::oid::request(
            self.oid_handler?,
            self.ctx,
            NdisRequestQueryInformation,
            oid,
            buffer,
        )
    }

    /// Puts the passive side of the connection tests on `peer` (an open NDK adapter of a
    /// second RNIC) instead of this adapter.
    pub fn with_peer(mut self, peer: *mut NDK_ADAPTER) -> Suite {
        // SAFETY: an adapter the provider returned from open (checked by the caller).
        let dispatch = unsafe { core::ptr::read_volatile((*peer).Dispatch) };
        self.peer = Some((peer, dispatch));
        self
    }

    /// The adapter objects of one side go on: the peer's for the passive side (`passive`)
    /// when there is a peer, this adapter's otherwise.
    pub(super) fn side(&self, passive: bool) -> (*mut NDK_ADAPTER, NDK_ADAPTER_DISPATCH) {
        match self.peer {
            Some(p) if passive => p,
            _ => (self.adapter, self.dispatch),
        }
    }

    /// With a second adapter, the connection tests cross the wire; this one connects two QPs
    /// of this adapter to each other (the device's loopback), with private data and a
    /// disconnect, as on a VM with one RNIC.
    fn loopback_on_one_adapter(&mut self) -> TestResult {
        let Some(peer) = self.peer.take() else {
            return skip(
                "one RNIC: every connection test of this run is already a loopback on one adapter",
            );
        };
        let r = self.connect_accept_disconnect_on(self.port(super::data::LOOPBACK_PORT));
        self.peer = Some(peer);
        r
    }

    /// The address family the connection tests use now.
    pub(super) fn family(&self) -> Family {
        self.family
    }

    /// Whether the connection tests cross the wire to a second adapter.
    pub(super) fn has_peer(&self) -> bool {
        self.peer.is_some()
    }

    fn test(&mut self, name: &str, f: impl FnOnce(&mut Suite) -> TestResult) {
        let outcome = match f(self) {
            Ok(()) => Outcome::Ok,
            Err(o) => o,
        };
        let line = self.report.record(name, &outcome);
        crate::println!("{line}");
    }

    /// Runs every test; returns the report (the caller prints the summary and fails the
    /// verdict on failures).
    pub fn run(mut self) -> SuiteReport {
        self.test("open-bad-major-version", Suite::open_bad_major_version);
        self.test("query-adapter-info-too-small", Suite::query_info_too_small);
        self.test("query-adapter-info", Suite::query_info);
        self.test("pd-create-close", Suite::pd_create_close);
        self.test("cq-create-close", Suite::cq_create_close);
        self.test("mr-create-close", Suite::mr_create_close);
        self.test("mr-register-multipage-offset", Suite::mr_register_multipage);
        self.test("mr-register-chained-mdls", Suite::mr_register_chained);
        self.test("mr-register-zero-length", Suite::mr_register_zero);
        self.test("mr-register-past-the-mdl", Suite::mr_register_oversized);
        self.test("mr-tokens", Suite::mr_tokens);
        self.test(
            "fast-register-mr-initialize",
            Suite::fast_register_initialize,
        );
        self.test("qp-create-close", Suite::qp_create_close);
        self.test("cq-depth-at-and-past-max", Suite::cq_depth_limits);
        self.test("qp-depths-and-sges-at-and-past-max", Suite::qp_limits);
        self.test("unsupported-objects-consistent", Suite::unsupported_objects);
        self.connection_tests(Family::Ipv4);
        self.test("rdma-access-errors-flush-the-qp", Suite::rdma_access_errors);
        self.test("send-larger-than-receive", Suite::send_larger_than_receive);
        self.test("send-without-receive", Suite::send_without_receive);
        self.test("flush-cancels-receives", Suite::flush_cancels_receives);
        self.test(
            "send-and-invalidate-in-results-ex",
            Suite::send_and_invalidate,
        );
        self.test(
            "fast-register-write-invalidate",
            Suite::fast_register_write_invalidate,
        );
        self.test(
            "build-lam-fast-register-write-release",
            Suite::build_lam_fast_register_write,
        );
        self.test("cq-arm-any-and-solicited", Suite::cq_arm);
        self.test("cq-moderation", Suite::cq_moderation);
        self.test("cq-resize-below-held", Suite::cq_resize_below_held);
        self.connection_tests(Family::Ipv6);
        self.family = Family::Ipv4;
        self.report
    }

    /// The connection tests in `family` (connect/accept with private data and disconnect,
    /// loopback on one adapter, connect without a listener, dual listen, local addresses
    /// that are not the port's refused, SEND/RECEIVE (up to the maximum transfer in IPv4, to
    /// 64 KiB in IPv6) and
    /// RDMA WRITE/READ over the connection, reject with private data, dual connect, a shared
    /// endpoint connecting to two peers), each
    /// named with the family ("-ipv4" / "-ipv6"): NDK providers serve both families, as
    /// Microsoft's NDK logo tests require.
    fn connection_tests(&mut self, family: Family) {
        self.family = family;
        let tests: [(&str, SuiteTest); 10] = [
            (
                "connect-accept-private-data-disconnect",
                Suite::connect_accept_disconnect,
            ),
            (
                "connect-accept-loopback-on-one-adapter",
                Suite::loopback_on_one_adapter,
            ),
            ("connect-without-listener", Suite::connect_without_listener),
            ("dual-listen", Suite::dual_listen),
            ("invalid-local-addresses-refused", Suite::invalid_addresses),
            match family {
                Family::Ipv4 => (
                    "send-receive-1-byte-to-max-transfer",
                    Suite::send_receive_sizes as SuiteTest,
                ),
                Family::Ipv6 => (
                    "send-receive-1-byte-to-64-kib",
                    Suite::send_receive_to_64_kib,
                ),
            },
            ("rdma-write-read-remote-token", Suite::rdma_write_read),
            ("connect-reject-private-data", Suite::connect_reject),
            ("dual-connect", Suite::dual_connect),
            (
                "shared-endpoint-connects-to-two-peers",
                Suite::shared_endpoint_two_peers,
            ),
        ];
        for (name, f) in tests {
            self.test(&format!("{name}-{}", family.name()), f);
        }
    }

    pub(super) fn a(&self) -> *mut NDK_ADAPTER {
        self.adapter
    }

    pub(super) fn info(&self) -> Result<NDK_ADAPTER_INFO, Outcome> {
        match self.info {
            Some(i) => Ok(i),
            None => skip("needs NDK_ADAPTER_INFO (query-adapter-info failed)"),
        }
    }

    // ------------------------------------------------------------ adapter

    fn open_bad_major_version(&mut self) -> TestResult {
        let (status, adapter) =
            super::open_adapter(self.open, self.ctx, NDK_VERSION { Major: 2, Minor: 0 });
        if !adapter.is_null() {
            super::close_adapter(
                self.close,
                super::OpenAdapter {
                    adapter,
                    ctx: self.ctx,
                },
            );
        }
        if status != NDIS_STATUS_BAD_VERSION {
            return fail(format!(
                "OpenNDKAdapterHandler(version 2.0) returned {status:#010x}; NDIS_STATUS_BAD_VERSION expected"
            ));
        }
        Ok(())
    }

    fn query_info_too_small(&mut self) -> TestResult {
        let f = entry!(self.dispatch, NdkQueryAdapterInfo);
        let a = self.a();
        // SAFETY: all-zero is a valid NDK_ADAPTER_INFO (plain integers).
        let mut info: NDK_ADAPTER_INFO = unsafe { core::mem::zeroed() };
        let mut size: u32 = 4;
        // SAFETY: the provider's function with its adapter and live out-parameters.
        let status = verifier::sync(PASSIVE_LEVEL, || unsafe { f(a, &mut info, &mut size) });
        let want = core::mem::size_of::<NDK_ADAPTER_INFO>() as u32;
        if status != STATUS_BUFFER_TOO_SMALL || size != want {
            return fail(format!(
                "a 4-byte buffer gave {status:#010x} with size {size}; STATUS_BUFFER_TOO_SMALL and {want} expected"
            ));
        }
        Ok(())
    }

    fn query_info(&mut self) -> TestResult {
        let f = entry!(self.dispatch, NdkQueryAdapterInfo);
        let a = self.a();
        // SAFETY: all-zero is a valid NDK_ADAPTER_INFO (plain integers).
        let mut info: NDK_ADAPTER_INFO = unsafe { core::mem::zeroed() };
        let mut size = core::mem::size_of::<NDK_ADAPTER_INFO>() as u32;
        // SAFETY: as above.
        let status = verifier::sync(PASSIVE_LEVEL, || unsafe { f(a, &mut info, &mut size) });
        expect_success("NdkQueryAdapterInfo", status)?;
        // Kept even if a check below fails: the other tests need the limits.
        self.info = Some(info);
        let c = &self.caps;
        let checks: [(&str, bool); 10] = [
            (
                "the same NDK_ADAPTER_INFO as NDIS_NDK_CAPABILITIES.NdkInfo",
                info == self.caps_info,
            ),
            ("Version.Major is 1", info.Version.Major == 1),
            (
                "VendorId/DeviceId are the RNIC's",
                info.VendorId == rnic_contract::pci::VENDOR_ID as u32
                    && info.DeviceId == rnic_contract::pci::DEVICE_ID as u32,
            ),
            ("MaxRegistrationSize > 0", info.MaxRegistrationSize > 0),
            ("MaxTransferLength > 0", info.MaxTransferLength > 0),
            (
                "queue depths > 0",
                info.MaxReceiveQueueDepth > 0 && info.MaxInitiatorQueueDepth > 0,
            ),
            ("MaxCqDepth > 0", info.MaxCqDepth > 0),
            (
                "SGE limits > 0",
                info.MaxInitiatorRequestSge > 0 && info.MaxReceiveRequestSge > 0,
            ),
            (
                "read limits match NDIS_NDK_CAPABILITIES",
                info.MaxInboundReadLimit == c.max_inbound_read
                    && info.MaxOutboundReadLimit == c.max_outbound_read,
            ),
            (
                "RdmaTechnology is NdkRoCEv2",
                info.RdmaTechnology == NdkRoCEv2,
            ),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            return fail(format!("NDK_ADAPTER_INFO: expected {what}; got {info:?}"));
        }
        crate::println!(
            "ndk: adapter info: version {}.{}, max transfer {} B, registration {} B, QP depth rq {} sq {}, CQ depth {}, SGE send {} recv {} read {}, inline {}, reads in/out {}/{}, FRMR pages {}, private data {}/{}, flags {:#x}",
            info.Version.Major, info.Version.Minor, info.MaxTransferLength, info.MaxRegistrationSize,
            info.MaxReceiveQueueDepth, info.MaxInitiatorQueueDepth, info.MaxCqDepth,
            info.MaxInitiatorRequestSge, info.MaxReceiveRequestSge, info.MaxReadRequestSge,
            info.MaxInlineDataSize, info.MaxInboundReadLimit, info.MaxOutboundReadLimit,
            info.FRMRPageCount, info.MaxCallerData, info.MaxCalleeData, info.AdapterFlags
        );
        Ok(())
    }

    // ------------------------------------------------------------ objects

    pub(super) fn create_pd(&self) -> Result<*mut NDK_PD, Outcome> {
        self.create_pd_on(false)
    }

    /// A PD on the passive side's adapter (`passive`) or this one.
    pub(super) fn create_pd_on(&self, passive: bool) -> Result<*mut NDK_PD, Outcome> {
        let (a, d) = self.side(passive);
        let f = entry!(d, NdkCreatePd);
        verifier::create(
            "NdkCreatePd",
            ObjectKind::Pd,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its adapter and the verifier's arguments.
            |done, ctx, out| unsafe { f(a, done, ctx, out) },
        )
        .or_else(|s| refused("NdkCreatePd", s))
    }

    fn create_cq(&self, depth: u32) -> Result<Cq, NTSTATUS> {
        self.create_cq_on(false, depth)
    }

    fn create_cq_on(&self, passive: bool, depth: u32) -> Result<Cq, NTSTATUS> {
        let (a, d) = self.side(passive);
        let Some(f) = d.NdkCreateCq else {
            return Err(STATUS_NOT_SUPPORTED);
        };
        let watch = verifier::new_watch("CQ notification");
        let cq = verifier::create(
            "NdkCreateCq",
            ObjectKind::Cq,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its adapter and the verifier's arguments.
            |done, ctx, out| unsafe {
                f(
                    a,
                    depth,
                    Some(verifier::on_cq_notification),
                    watch.context(),
                    null_mut(),
                    done,
                    ctx,
                    out,
                )
            },
        )?;
        watch
            .object
            .store(cq as u64, core::sync::atomic::Ordering::Relaxed);
        Ok(Cq { cq, watch })
    }

    pub(super) fn cq(&self, depth: u32) -> Result<Cq, Outcome> {
        self.cq_on(false, depth)
    }

    /// A CQ of `depth` on the passive side's adapter (`passive`) or this one.
    pub(super) fn cq_on(&self, passive: bool, depth: u32) -> Result<Cq, Outcome> {
        self.create_cq_on(passive, depth)
            .or_else(|s| refused(&format!("NdkCreateCq(depth {depth})"), s))
    }

    pub(super) fn create_mr(&self, pd: *mut NDK_PD, fast: bool) -> Result<*mut NDK_MR, Outcome> {
        // SAFETY: a PD the provider returned (its dispatch table follows the header).
        let d = unsafe { core::ptr::read_volatile((*pd).Dispatch) };
        let f = entry!(d, NdkCreateMr);
        verifier::create(
            "NdkCreateMr",
            ObjectKind::Mr,
            Some(pd as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its PD and the verifier's arguments.
            |done, ctx, out| unsafe { f(pd, fast as BOOLEAN, done, ctx, out) },
        )
        .or_else(|s| refused(&format!("NdkCreateMr(fast {fast})"), s))
    }

    pub(super) fn mr_dispatch(mr: *mut NDK_MR) -> NDK_MR_DISPATCH {
        // SAFETY: an MR the provider returned.
        unsafe { core::ptr::read_volatile((*mr).Dispatch) }
    }

    /// Registers `len` bytes described by `chain` with `flags`; the final status.
    pub(super) fn register(
        &self,
        mr: *mut NDK_MR,
        chain: &MdlChain,
        len: usize,
        flags: u32,
    ) -> NTSTATUS {
        let Some(f) = Self::mr_dispatch(mr).NdkRegisterMr else {
            return STATUS_NOT_SUPPORTED;
        };
        let head = chain.head();
        verifier::call("NdkRegisterMr", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its MR, the consumer's MDL chain (alive
            // until deregistration) and the verifier's completion.
            unsafe { f(mr, head, len, flags, Some(verifier::on_request), ctx) }
        })
        .status
    }

    pub(super) fn deregister(&self, mr: *mut NDK_MR) -> NTSTATUS {
        let Some(f) = Self::mr_dispatch(mr).NdkDeregisterMr else {
            return STATUS_NOT_SUPPORTED;
        };
        verifier::call("NdkDeregisterMr", DISPATCH_LEVEL, |ctx| {
            // SAFETY: the provider's function with its MR and the verifier's completion.
            unsafe { f(mr, Some(verifier::on_request), ctx) }
        })
        .status
    }

    /// Closes objects children first; the first failure wins.
    pub(super) fn close_all(&self, objects: &[(*mut c_void, ObjectKind)]) -> TestResult {
        let mut first = Ok(());
        for &(o, kind) in objects {
            if o.is_null() {
                continue;
            }
            let status = verifier::close(o, kind);
            if status != STATUS_SUCCESS && first.is_ok() {
                first = fail(format!("closing the {kind} returned {status:#010x}"));
            }
        }
        first
    }

    fn pd_create_close(&mut self) -> TestResult {
        let pd = self.create_pd()?;
        self.close_all(&[(pd.cast(), ObjectKind::Pd)])
    }

    fn cq_create_close(&mut self) -> TestResult {
        let cq = self.cq(64)?;
        self.close_all(&[(cq.cq.cast(), ObjectKind::Cq)])?;
        let fired = cq.watch.fired.load(core::sync::atomic::Ordering::Relaxed);
        if fired != 0 {
            return fail(format!("an unarmed CQ notified {fired} time(s)"));
        }
        Ok(())
    }

    fn mr_create_close(&mut self) -> TestResult {
        let pd = self.create_pd()?;
        let plain = self.create_mr(pd, false);
        let fast = self.create_mr(pd, true);
        let close = |o: &Result<*mut NDK_MR, Outcome>| {
            (
                o.as_ref().map_or(null_mut(), |m| m.cast::<c_void>()),
                ObjectKind::Mr,
            )
        };
        let closed = self.close_all(&[close(&plain), close(&fast), (pd.cast(), ObjectKind::Pd)]);
        plain?;
        fast?;
        closed
    }

    /// Creates a PD and an MR, runs `f` with them, closes both (MR first).
    fn with_mr(
        &self,
        f: impl FnOnce(&Suite, *mut NDK_PD, *mut NDK_MR) -> TestResult,
    ) -> TestResult {
        let pd = self.create_pd()?;
        let mr = match self.create_mr(pd, false) {
            Ok(mr) => mr,
            Err(e) => {
                self.close_all(&[(pd.cast(), ObjectKind::Pd)])?;
                return Err(e);
            }
        };
        let r = f(self, pd, mr);
        let closed = self.close_all(&[(mr.cast(), ObjectKind::Mr), (pd.cast(), ObjectKind::Pd)]);
        r.and(closed)
    }

    /// Registers `chain` (all of `buf`), checks the tokens, deregisters.
    fn register_round_trip(&self, mr: *mut NDK_MR, chain: &MdlChain, len: usize) -> TestResult {
        let flags = NDK_MR_FLAG_ALLOW_LOCAL_WRITE
            | NDK_MR_FLAG_ALLOW_REMOTE_READ
            | NDK_MR_FLAG_ALLOW_REMOTE_WRITE;
        expect_success("NdkRegisterMr", self.register(mr, chain, len, flags))?;
        let d = Self::mr_dispatch(mr);
        let local = entry!(d, NdkGetLocalTokenFromMr);
        // SAFETY: the provider's getter with its registered MR.
        let token = verifier::sync(DISPATCH_LEVEL, || unsafe { local(mr) });
        let dereg = self.deregister(mr);
        if token == 0 {
            return fail("NdkGetLocalTokenFromMr returned 0 for a registered MR");
        }
        expect_success("NdkDeregisterMr", dereg)
    }

    fn mr_register_multipage(&mut self) -> TestResult {
        self.with_mr(|s, _pd, mr| {
            let buf = buffer(3 * 4096, 0x123)?;
            let chain = chain(&buf, u32::MAX)?;
            s.register_round_trip(mr, &chain, buf.len)
        })
    }

    fn mr_register_chained(&mut self) -> TestResult {
        self.with_mr(|s, _pd, mr| {
            let buf = buffer(20 * 1024, 0x800)?;
            let chain = chain(&buf, 2)?;
            if chain.len() < 3 {
                return fail(format!(
                    "the chain has {} MDLs; 3 or more expected",
                    chain.len()
                ));
            }
            s.register_round_trip(mr, &chain, buf.len)
        })
    }

    fn mr_register_zero(&mut self) -> TestResult {
        self.with_mr(|s, _pd, mr| {
            let buf = buffer(4096, 0)?;
            let chain = chain(&buf, u32::MAX)?;
            let status = s.register(mr, &chain, 0, NDK_MR_FLAG_ALLOW_LOCAL_WRITE);
            if status == STATUS_SUCCESS {
                s.deregister(mr);
            }
            expect_refusal("NdkRegisterMr with length 0", status)
        })
    }

    fn mr_register_oversized(&mut self) -> TestResult {
        self.with_mr(|s, _pd, mr| {
            let buf = buffer(2 * 4096, 0x10)?;
            let chain = chain(&buf, u32::MAX)?;
            let status = s.register(mr, &chain, buf.len + 1, NDK_MR_FLAG_ALLOW_LOCAL_WRITE);
            if status == STATUS_SUCCESS {
                s.deregister(mr);
            }
            expect_refusal(
                "NdkRegisterMr with a length one byte past the MDL chain",
                status,
            )
        })
    }

    fn mr_tokens(&mut self) -> TestResult {
        let pd = self.create_pd()?;
        let bufs = (Buffer::new(4096, 0), Buffer::new(4096, 0));
        let (Some(b1), Some(b2)) = bufs else {
            return fail("out of memory");
        };
        let chains = (
            MdlChain::new(&b1, 0, b1.len, u32::MAX),
            MdlChain::new(&b2, 0, b2.len, u32::MAX),
        );
        let (Some(c1), Some(c2)) = chains else {
            return fail("out of memory");
        };
        let flags = NDK_MR_FLAG_ALLOW_LOCAL_WRITE | NDK_MR_FLAG_ALLOW_REMOTE_WRITE;
        let mut tokens = [(0u32, 0u32); 2];
        let mut result = Ok(());
        let mut mrs = [null_mut::<NDK_MR>(); 2];
        for (i, chain) in [&c1, &c2].into_iter().enumerate() {
            let mr = match self.create_mr(pd, false) {
                Ok(mr) => mr,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            mrs[i] = mr;
            let status = self.register(mr, chain, 4096, flags);
            if let Err(e) = expect_success("NdkRegisterMr", status) {
                result = Err(e);
                break;
            }
            let d = Self::mr_dispatch(mr);
            let (Some(local), Some(remote)) = (d.NdkGetLocalTokenFromMr, d.NdkGetRemoteTokenFromMr)
            else {
                result = fail("the MR dispatch table lacks a token getter");
                break;
            };
            // SAFETY: the provider's getters with its registered MR.
            tokens[i] = verifier::sync(DISPATCH_LEVEL, || unsafe { (local(mr), remote(mr)) });
        }
        for &mr in mrs.iter().filter(|m| !m.is_null()) {
            self.deregister(mr);
        }
        let closed = self.close_all(&[
            (mrs[0].cast(), ObjectKind::Mr),
            (mrs[1].cast(), ObjectKind::Mr),
            (pd.cast(), ObjectKind::Pd),
        ]);
        result?;
        closed?;
        if tokens.iter().any(|&(l, r)| l == 0 || r == 0) || tokens[0] == tokens[1] {
            return fail(format!(
                "tokens (local, remote) {tokens:x?}: every token non-zero and the two MRs' tokens distinct expected"
            ));
        }
        Ok(())
    }

    fn fast_register_initialize(&mut self) -> TestResult {
        let pages = self.info()?.FRMRPageCount;
        if pages == 0 {
            return skip("the adapter reports FRMRPageCount 0 (no fast registration)");
        }
        let pd = self.create_pd()?;
        let r = (|| {
            let mr = self.create_mr(pd, true)?;
            let d = Self::mr_dispatch(mr);
            let f = match d.NdkInitializeFastRegisterMr {
                Some(f) => f,
                None => {
                    self.close_all(&[(mr.cast(), ObjectKind::Mr)])?;
                    return fail("the dispatch table has no NdkInitializeFastRegisterMr");
                }
            };
            let status = verifier::call("NdkInitializeFastRegisterMr", DISPATCH_LEVEL, |ctx| {
                // SAFETY: the provider's function with its fast-register MR.
                unsafe { f(mr, pages.min(16), 1, Some(verifier::on_request), ctx) }
            })
            .status;
            let too_many = verifier::call("NdkInitializeFastRegisterMr", DISPATCH_LEVEL, |ctx| {
                // SAFETY: as above.
                unsafe { f(mr, pages + 1, 1, Some(verifier::on_request), ctx) }
            })
            .status;
            let closed = self.close_all(&[(mr.cast(), ObjectKind::Mr)]);
            expect_success("NdkInitializeFastRegisterMr", status)?;
            expect_refusal(
                "NdkInitializeFastRegisterMr with FRMRPageCount + 1 pages",
                too_many,
            )?;
            closed
        })();
        let closed = self.close_all(&[(pd.cast(), ObjectKind::Pd)]);
        r.and(closed)
    }

    /// Creates a QP on `pd` with both CQs `cq` and the given limits; the final status and
    /// the QP.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_qp(
        &self,
        pd: *mut NDK_PD,
        cq: *mut NDK_CQ,
        rq_depth: u32,
        sq_depth: u32,
        rq_sge: u32,
        sq_sge: u32,
        inline: u32,
    ) -> Result<*mut NDK_QP, NTSTATUS> {
        // SAFETY: a PD the provider returned.
        let d = unsafe { core::ptr::read_volatile((*pd).Dispatch) };
        let Some(f) = d.NdkCreateQp else {
            return Err(STATUS_NOT_SUPPORTED);
        };
        verifier::create(
            "NdkCreateQp",
            ObjectKind::Qp,
            Some(pd as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the provider's function with its PD and CQ and the verifier's arguments.
            |done, ctx, out| unsafe {
                f(
                    pd,
                    cq,
                    cq,
                    null_mut(),
                    rq_depth,
                    sq_depth,
                    rq_sge,
                    sq_sge,
                    inline,
                    done,
                    ctx,
                    out,
                )
            },
        )
    }

    /// Creates a PD and a CQ, runs `f`, closes them.
    fn with_pd_cq(
        &self,
        depth: u32,
        f: impl FnOnce(&Suite, *mut NDK_PD, *mut NDK_CQ) -> TestResult,
    ) -> TestResult {
        let pd = self.create_pd()?;
        let cq = match self.cq(depth) {
            Ok(cq) => cq,
            Err(e) => {
                self.close_all(&[(pd.cast(), ObjectKind::Pd)])?;
                return Err(e);
            }
        };
        let r = f(self, pd, cq.cq);
        let closed = self.close_all(&[(cq.cq.cast(), ObjectKind::Cq), (pd.cast(), ObjectKind::Pd)]);
        r.and(closed)
    }

    fn qp_create_close(&mut self) -> TestResult {
        self.with_pd_cq(64, |s, pd, cq| {
            let qp = s
                .create_qp(pd, cq, 16, 16, 1, 1, 0)
                .or_else(|st| refused("NdkCreateQp", st))?;
            s.close_all(&[(qp.cast(), ObjectKind::Qp)])
        })
    }

    fn cq_depth_limits(&mut self) -> TestResult {
        let max = self.info()?.MaxCqDepth;
        let at = self.cq(max)?;
        self.close_all(&[(at.cq.cast(), ObjectKind::Cq)])?;
        match self.create_cq(max.saturating_add(1)) {
            Ok(cq) => {
                self.close_all(&[(cq.cq.cast(), ObjectKind::Cq)])?;
                fail(format!(
                    "a CQ of depth MaxCqDepth + 1 ({}) was created",
                    max + 1
                ))
            }
            Err(_) => Ok(()),
        }
    }

    fn qp_limits(&mut self) -> TestResult {
        let i = self.info()?;
        let cq_depth = i.MaxCqDepth;
        self.with_pd_cq(cq_depth, |s, pd, cq| {
            let (rq, sq, rsge, ssge) = (
                i.MaxReceiveQueueDepth,
                i.MaxInitiatorQueueDepth,
                i.MaxReceiveRequestSge,
                i.MaxInitiatorRequestSge,
            );
            let inline = i.MaxInlineDataSize;
            let at = s
                .create_qp(pd, cq, rq, sq, rsge, ssge, inline)
                .or_else(|st| {
                    refused(
                        &format!(
                            "NdkCreateQp at every maximum (rq {rq} sq {sq} sge {rsge}/{ssge} inline {inline})"
                        ),
                        st,
                    )
                })?;
            s.close_all(&[(at.cast(), ObjectKind::Qp)])?;
            let past: [(&str, [u32; 5]); 5] = [
                ("receive depth", [rq + 1, sq, rsge, ssge, 0]),
                ("initiator depth", [rq, sq + 1, rsge, ssge, 0]),
                ("receive SGEs", [rq, sq, rsge + 1, ssge, 0]),
                ("initiator SGEs", [rq, sq, rsge, ssge + 1, 0]),
                ("inline data", [rq, sq, rsge, ssge, inline + 1]),
            ];
            for (what, [a, b, c, d, e]) in past {
                if let Ok(qp) = s.create_qp(pd, cq, a, b, c, d, e) {
                    s.close_all(&[(qp.cast(), ObjectKind::Qp)])?;
                    return fail(format!("a QP one past the maximum {what} was created"));
                }
            }
            Ok(())
        })
    }

    fn unsupported_objects(&mut self) -> TestResult {
        let caps = self.caps;
        let pd = self.create_pd()?;
        // SAFETY: a PD the provider returned.
        let d = unsafe { core::ptr::read_volatile((*pd).Dispatch) };
        let mut problems = String::new();
        if caps.max_mw == 0 {
            if let Some(f) = d.NdkCreateMw {
                let r = verifier::create(
                    "NdkCreateMw",
                    ObjectKind::Mw,
                    Some(pd as *const c_void),
                    DISPATCH_LEVEL,
                    // SAFETY: the provider's function with its PD.
                    |done, ctx, out| unsafe { f(pd, done, ctx, out) },
                );
                match r {
                    Err(STATUS_NOT_SUPPORTED) => {}
                    Err(s) => problems += &format!("NdkCreateMw returned {s:#010x}; "),
                    Ok(mw) => {
                        verifier::close(mw.cast(), ObjectKind::Mw);
                        problems += "NdkCreateMw succeeded though MaxMwCount is 0; ";
                    }
                }
            }
        }
        if caps.max_srq == 0 {
            if let Some(f) = d.NdkCreateSrq {
                let r = verifier::create(
                    "NdkCreateSrq",
                    ObjectKind::Srq,
                    Some(pd as *const c_void),
                    DISPATCH_LEVEL,
                    // SAFETY: the provider's function with its PD.
                    |done, ctx, out| unsafe {
                        f(pd, 16, 1, 0, None, null_mut(), null_mut(), done, ctx, out)
                    },
                );
                match r {
                    Err(STATUS_NOT_SUPPORTED) => {}
                    Err(s) => problems += &format!("NdkCreateSrq returned {s:#010x}; "),
                    Ok(srq) => {
                        verifier::close(srq.cast(), ObjectKind::Srq);
                        problems += "NdkCreateSrq succeeded though MaxSrqCount is 0; ";
                    }
                }
            }
        }
        self.close_all(&[(pd.cast(), ObjectKind::Pd)])?;
        if caps.max_mw != 0 && caps.max_srq != 0 {
            return skip(
                "the capabilities claim MW and SRQ support; no unsupported object to check",
            );
        }
        if !problems.is_empty() {
            return fail(format!(
                "{problems}unsupported objects must return STATUS_NOT_SUPPORTED"
            ));
        }
        Ok(())
    }
}

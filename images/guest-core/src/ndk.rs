//! Host-testable logic of the guest's NDK hosting and its NDK contract verifier: the checks
//! NDIS makes of a provider's registration structures, the MDL chains the consumer builds
//! (the way `IoAllocateMdl` + `MmBuildMdlForNonPagedPool` describe a buffer), the request
//! rule (a call that returns `STATUS_PENDING` completes exactly once, any other return
//! never), the object rules (no callback after a close completes, a parent's close does not
//! complete while children live, every object closed by halt) and the consumer suite's
//! result lines.
//!
//! Structure facts (x64, checked against a copy of the WDK headers and a type dump of
//! ndis.sys; see `/work/shared/design/BRIEF.md` section 6): `NDIS_NDK_PROVIDER_CHARACTERISTICS`
//! is type 0xB2, revision 1, size 0x18; `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` type 0xB3,
//! revision 1, size 0x10; `NDIS_NDK_CAPABILITIES` type `NDIS_OBJECT_TYPE_DEFAULT` (0x80),
//! revision 1, size 0x38.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// `NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS`.
pub const PROVIDER_CHARACTERISTICS_TYPE: u8 = 0xB2;
/// `NDIS_NDK_PROVIDER_CHARACTERISTICS_REVISION_1`.
pub const PROVIDER_CHARACTERISTICS_REVISION: u8 = 1;
/// `NDIS_SIZEOF_NDK_PROVIDER_CHARACTERISTICS_REVISION_1` (x64).
pub const PROVIDER_CHARACTERISTICS_SIZE: u16 = 0x18;
/// `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES`.
pub const NDK_ATTRIBUTES_TYPE: u8 = 0xB3;
/// `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1`.
pub const NDK_ATTRIBUTES_REVISION: u8 = 1;
/// `NDIS_SIZEOF_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1` (x64).
pub const NDK_ATTRIBUTES_SIZE: u16 = 0x10;
/// `NDIS_OBJECT_TYPE_DEFAULT`: the type of `NDIS_NDK_CAPABILITIES`.
pub const CAPABILITIES_TYPE: u8 = 0x80;
/// `NDIS_NDK_CAPABILITIES_REVISION_1`.
pub const CAPABILITIES_REVISION: u8 = 1;
/// `NDIS_SIZEOF_NDK_CAPABILITIES_REVISION_1` (x64; older documentation pages omit `Flags`
/// and give a smaller size, which is wrong).
pub const CAPABILITIES_SIZE: u16 = 0x38;

/// What NDIS reads of `NDIS_NDK_PROVIDER_CHARACTERISTICS` to accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderCharacteristics {
    /// Header type.
    pub ty: u8,
    /// Header revision.
    pub revision: u8,
    /// Header size in bytes.
    pub size: u16,
    /// `Flags` (must be 0).
    pub flags: u32,
    /// `OpenNDKAdapterHandler` is non-NULL.
    pub open: bool,
    /// `CloseNDKAdapterHandler` is non-NULL.
    pub close: bool,
}

/// Why NDIS refuses a provider's NDK structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdkRegistrationError {
    /// The object header is not the one the structure's revision 1 declares.
    #[error("{what} header type {ty:#x} revision {revision} size {size:#x}; NDIS requires type {want_ty:#x}, revision {want_revision}, size {want_size:#x}")]
    Header {
        /// The structure.
        what: &'static str,
        /// Type found.
        ty: u8,
        /// Revision found.
        revision: u8,
        /// Size found.
        size: u16,
        /// Type required.
        want_ty: u8,
        /// Revision required.
        want_revision: u8,
        /// Size required.
        want_size: u16,
    },
    /// `Flags` of the provider characteristics is not 0.
    #[error("NDIS_NDK_PROVIDER_CHARACTERISTICS.Flags is {0:#x}; it is reserved and must be 0")]
    Flags(u32),
    /// A required handler is NULL.
    #[error("NDIS_NDK_PROVIDER_CHARACTERISTICS.{0} is NULL; both adapter handlers are required")]
    MissingHandler(&'static str),
    /// A capability count NDK needs is zero.
    #[error("NDIS_NDK_CAPABILITIES.{0} is 0: an NDK adapter supports at least one of each")]
    ZeroLimit(&'static str),
    /// `NdkInfo` is NULL.
    #[error(
        "NDIS_NDK_CAPABILITIES.NdkInfo is NULL; it must point to the adapter's NDK_ADAPTER_INFO"
    )]
    NoAdapterInfo,
    /// The capabilities pointer of the NDK attributes is NULL.
    #[error("NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES.Capabilities is NULL")]
    NoCapabilities,
}

fn check_header(
    what: &'static str,
    (ty, revision, size): (u8, u8, u16),
    (want_ty, want_revision, want_size): (u8, u8, u16),
) -> Result<(), NdkRegistrationError> {
    if ty != want_ty || revision != want_revision || size != want_size {
        return Err(NdkRegistrationError::Header {
            what,
            ty,
            revision,
            size,
            want_ty,
            want_revision,
            want_size,
        });
    }
    Ok(())
}

/// Checks `NDIS_NDK_PROVIDER_CHARACTERISTICS` as NdisSetOptionalHandlers does: type 0xB2,
/// revision 1, size 0x18 exactly, `Flags` 0, both handlers present.
pub fn check_provider_characteristics(
    c: &ProviderCharacteristics,
) -> Result<(), NdkRegistrationError> {
    check_header(
        "NDIS_NDK_PROVIDER_CHARACTERISTICS",
        (c.ty, c.revision, c.size),
        (
            PROVIDER_CHARACTERISTICS_TYPE,
            PROVIDER_CHARACTERISTICS_REVISION,
            PROVIDER_CHARACTERISTICS_SIZE,
        ),
    )?;
    if c.flags != 0 {
        return Err(NdkRegistrationError::Flags(c.flags));
    }
    if !c.open {
        return Err(NdkRegistrationError::MissingHandler(
            "OpenNDKAdapterHandler",
        ));
    }
    if !c.close {
        return Err(NdkRegistrationError::MissingHandler(
            "CloseNDKAdapterHandler",
        ));
    }
    Ok(())
}

/// Checks the header of `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` (type 0xB3, revision 1, size
/// 0x10) and that it points to capabilities.
pub fn check_ndk_attributes(
    header: (u8, u8, u16),
    capabilities_present: bool,
) -> Result<(), NdkRegistrationError> {
    check_header(
        "NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES",
        header,
        (
            NDK_ATTRIBUTES_TYPE,
            NDK_ATTRIBUTES_REVISION,
            NDK_ATTRIBUTES_SIZE,
        ),
    )?;
    if !capabilities_present {
        return Err(NdkRegistrationError::NoCapabilities);
    }
    Ok(())
}

/// The fields of `NDIS_NDK_CAPABILITIES` the guest checks and keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Header (type, revision, size).
    pub header: (u8, u8, u16),
    /// `Flags`.
    pub flags: u32,
    /// `MaxQpCount`.
    pub max_qp: u32,
    /// `MaxCqCount`.
    pub max_cq: u32,
    /// `MaxMrCount`.
    pub max_mr: u32,
    /// `MaxPdCount`.
    pub max_pd: u32,
    /// `MaxInboundReadLimit`.
    pub max_inbound_read: u32,
    /// `MaxOutboundReadLimit`.
    pub max_outbound_read: u32,
    /// `MaxMwCount` (0: memory windows unsupported).
    pub max_mw: u32,
    /// `MaxSrqCount` (0: shared receive queues unsupported).
    pub max_srq: u32,
    /// `MissingCounterMask`.
    pub missing_counter_mask: u64,
    /// `NdkInfo` is non-NULL.
    pub has_info: bool,
}

/// Checks `NDIS_NDK_CAPABILITIES`: header, the object counts NDK cannot work without (QP, CQ,
/// MR, PD) non-zero, and `NdkInfo` present.
pub fn check_capabilities(c: &Capabilities) -> Result<(), NdkRegistrationError> {
    check_header(
        "NDIS_NDK_CAPABILITIES",
        c.header,
        (CAPABILITIES_TYPE, CAPABILITIES_REVISION, CAPABILITIES_SIZE),
    )?;
    for (name, v) in [
        ("MaxQpCount", c.max_qp),
        ("MaxCqCount", c.max_cq),
        ("MaxMrCount", c.max_mr),
        ("MaxPdCount", c.max_pd),
    ] {
        if v == 0 {
            return Err(NdkRegistrationError::ZeroLimit(name));
        }
    }
    if !c.has_info {
        return Err(NdkRegistrationError::NoAdapterInfo);
    }
    Ok(())
}

/// Size of a page as an MDL counts it.
pub const PAGE_SIZE: u64 = 4096;

/// One MDL of a chain, as `IoAllocateMdl(va, len)` + `MmBuildMdlForNonPagedPool` build it:
/// `StartVa` is `va` rounded down to a page, `ByteOffset` is `va`'s offset in that page,
/// `ByteCount` is `len`, and the PFN array holds one frame per page the range touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdlPlan {
    /// `StartVa` (page-aligned virtual address).
    pub start_va: u64,
    /// `ByteOffset` (0..4095).
    pub byte_offset: u32,
    /// `ByteCount`.
    pub byte_count: u32,
    /// Physical frame numbers, one per page of `start_va + byte_offset .. + byte_count`.
    pub pfns: Vec<u64>,
}

impl MdlPlan {
    /// The MDL's virtual address (`StartVa + ByteOffset`, what `MmGetMdlVirtualAddress`
    /// returns).
    pub fn virtual_address(&self) -> u64 {
        self.start_va + self.byte_offset as u64
    }
}

/// Pages the range `va .. va + len` touches.
pub fn pages_spanned(va: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    (va % PAGE_SIZE + len).div_ceil(PAGE_SIZE)
}

/// Describes a buffer that is physically contiguous at `phys` and seen by the consumer at the
/// virtual address `va` (same offset within the page), `len` bytes long, as a chain of MDLs
/// each spanning at most `pages_per_mdl` pages (at least 1), every boundary between two MDLs
/// on a page boundary (as a chain built from page-aligned pieces of one buffer is). Returns
/// an empty chain for `len == 0`. `va` and `phys` must agree modulo the page size (they do for
/// any mapping).
pub fn plan_mdl_chain(va: u64, phys: u64, len: u64, pages_per_mdl: u32) -> Vec<MdlPlan> {
    debug_assert_eq!(va % PAGE_SIZE, phys % PAGE_SIZE);
    let mut chain = Vec::new();
    let span = (pages_per_mdl.max(1) as u64).saturating_mul(PAGE_SIZE);
    let mut done = 0u64;
    while done < len {
        let (v, p) = (va + done, phys + done);
        // Up to the end of the piece's last page, at most the bytes left (and what a ULONG
        // ByteCount holds).
        let room = span - v % PAGE_SIZE;
        let part = (len - done).min(room).min(u32::MAX as u64);
        let first_pfn = p / PAGE_SIZE;
        chain.push(MdlPlan {
            start_va: v - v % PAGE_SIZE,
            byte_offset: (v % PAGE_SIZE) as u32,
            byte_count: part as u32,
            pfns: (0..pages_spanned(v, part)).map(|i| first_pfn + i).collect(),
        });
        done += part;
    }
    chain
}

/// An NDK call's identity for the request rule: the completion context the consumer passed.
pub type RequestId = u64;

/// Where a tracked NDK request is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestState {
    /// The call has not returned yet (completions seen so far are counted).
    InCall { completions: u32 },
    /// Returned `STATUS_PENDING`; waiting for its one completion.
    Pending,
    /// Finished (returned a final status, or pended and completed once).
    Done,
}

/// A broken NDK request rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestViolation {
    /// A call that returned a final status also called its completion.
    #[error("NDK request rule: {call} returned {returned:#010x} (not STATUS_PENDING) yet called its completion; only a pended call completes")]
    CompletedWithoutPending {
        /// The call.
        call: String,
        /// What it returned.
        returned: u32,
    },
    /// A pended call completed more than once.
    #[error("NDK request rule: {call} completed twice; a pended call completes exactly once")]
    DoubleCompletion {
        /// The call.
        call: String,
    },
    /// A completion arrived for a context no outstanding call used.
    #[error("NDK request rule: a completion arrived with context {0:#x}, which no outstanding NDK call passed")]
    Unknown(RequestId),
    /// A pended call never completed within the wait the consumer grants.
    #[error("NDK request rule: {call} returned STATUS_PENDING and did not complete within {waited_ms} ms")]
    NeverCompleted {
        /// The call.
        call: String,
        /// How long the consumer waited.
        waited_ms: u64,
    },
}

/// `STATUS_PENDING`.
pub const STATUS_PENDING: u32 = 0x0000_0103;

/// The request rule's bookkeeping: every NDK call that takes a completion callback is
/// [`begin`](Self::begin)-registered under its completion context, its return value is
/// recorded with [`returned`](Self::returned) and each completion with
/// [`completed`](Self::completed).
#[derive(Debug, Default)]
pub struct RequestTracker {
    requests: BTreeMap<RequestId, (String, RequestState)>,
}

impl RequestTracker {
    /// An empty tracker.
    pub const fn new() -> Self {
        RequestTracker {
            requests: BTreeMap::new(),
        }
    }

    /// A call named `call` is about to be made with completion context `id`. A context reused
    /// after its request finished starts afresh.
    pub fn begin(&mut self, id: RequestId, call: &str) {
        self.requests.insert(
            id,
            (String::from(call), RequestState::InCall { completions: 0 }),
        );
    }

    /// The call with context `id` returned `status`. A completion that arrived during the
    /// call counts for a pended call (providers may complete before they return).
    pub fn returned(&mut self, id: RequestId, status: u32) -> Result<(), RequestViolation> {
        let Some((call, state)) = self.requests.get_mut(&id) else {
            return Ok(());
        };
        let RequestState::InCall { completions } = *state else {
            return Ok(());
        };
        match (status == STATUS_PENDING, completions) {
            (true, 0) => *state = RequestState::Pending,
            (true, 1) => *state = RequestState::Done,
            (true, _) => {
                *state = RequestState::Done;
                return Err(RequestViolation::DoubleCompletion { call: call.clone() });
            }
            (false, 0) => *state = RequestState::Done,
            (false, _) => {
                *state = RequestState::Done;
                return Err(RequestViolation::CompletedWithoutPending {
                    call: call.clone(),
                    returned: status,
                });
            }
        }
        Ok(())
    }

    /// The completion callback ran with context `id`.
    pub fn completed(&mut self, id: RequestId) -> Result<(), RequestViolation> {
        let Some((call, state)) = self.requests.get_mut(&id) else {
            return Err(RequestViolation::Unknown(id));
        };
        match state {
            RequestState::InCall { completions } => {
                *completions += 1;
                Ok(())
            }
            RequestState::Pending => {
                *state = RequestState::Done;
                Ok(())
            }
            RequestState::Done => Err(RequestViolation::DoubleCompletion { call: call.clone() }),
        }
    }

    /// Whether the request with context `id` has finished (returned a final status, or pended
    /// and completed).
    pub fn is_done(&self, id: RequestId) -> bool {
        matches!(self.requests.get(&id), Some((_, RequestState::Done)))
    }

    /// The consumer gave up waiting for the pended call `id` after `waited_ms`.
    pub fn timed_out(&mut self, id: RequestId, waited_ms: u64) -> Option<RequestViolation> {
        let (call, state) = self.requests.get_mut(&id)?;
        if *state != RequestState::Pending {
            return None;
        }
        *state = RequestState::Done;
        Some(RequestViolation::NeverCompleted {
            call: call.clone(),
            waited_ms,
        })
    }

    /// Forgets finished requests (their contexts may be reused); a late completion for one
    /// is then reported as [`RequestViolation::Unknown`].
    pub fn forget_finished(&mut self) {
        self.requests.retain(|_, (_, s)| *s != RequestState::Done);
    }

    /// Calls still pended (name of each).
    pub fn outstanding(&self) -> Vec<String> {
        self.requests
            .values()
            .filter(|(_, s)| *s != RequestState::Done)
            .map(|(c, _)| c.clone())
            .collect()
    }
}

/// NDK object types (`NDK_OBJECT_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    /// `NdkObjectTypeAdapter` (1).
    Adapter,
    /// `NdkObjectTypeQp` (2).
    Qp,
    /// `NdkObjectTypeCq` (3).
    Cq,
    /// `NdkObjectTypeMr` (4).
    Mr,
    /// `NdkObjectTypeMw` (5).
    Mw,
    /// `NdkObjectTypePd` (6).
    Pd,
    /// `NdkObjectTypeSharedEndpoint` (7).
    SharedEndpoint,
    /// `NdkObjectTypeConnector` (8).
    Connector,
    /// `NdkObjectTypeListener` (9).
    Listener,
    /// `NdkObjectTypeSrq` (10).
    Srq,
}

impl ObjectKind {
    /// The `NDK_OBJECT_TYPE` value.
    pub fn value(self) -> u32 {
        match self {
            ObjectKind::Adapter => 1,
            ObjectKind::Qp => 2,
            ObjectKind::Cq => 3,
            ObjectKind::Mr => 4,
            ObjectKind::Mw => 5,
            ObjectKind::Pd => 6,
            ObjectKind::SharedEndpoint => 7,
            ObjectKind::Connector => 8,
            ObjectKind::Listener => 9,
            ObjectKind::Srq => 10,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Adapter => "adapter",
            ObjectKind::Qp => "QP",
            ObjectKind::Cq => "CQ",
            ObjectKind::Mr => "MR",
            ObjectKind::Mw => "MW",
            ObjectKind::Pd => "PD",
            ObjectKind::SharedEndpoint => "shared endpoint",
            ObjectKind::Connector => "connector",
            ObjectKind::Listener => "listener",
            ObjectKind::Srq => "SRQ",
        })
    }
}

/// A broken NDK object rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectViolation {
    /// A callback named an object whose close had completed.
    #[error("NDK close rule: {what} callback for {kind} {object:#x} after its close completed; no callback may follow a completed close")]
    CallbackAfterClose {
        /// The callback (for example "CQ notification").
        what: String,
        /// The object's kind.
        kind: ObjectKind,
        /// The object.
        object: u64,
    },
    /// A parent's close completed while children were still open.
    #[error("NDK close rule: {kind} {object:#x} finished closing while {children} child object(s) were still open; a parent's close pends until its children close")]
    ParentClosedWithChildren {
        /// The parent's kind.
        kind: ObjectKind,
        /// The parent.
        object: u64,
        /// Open children.
        children: usize,
    },
    /// An object was still open when the adapter was halted.
    #[error("NDK leak: {kind} {object:#x} was never closed")]
    NeverClosed {
        /// Kind.
        kind: ObjectKind,
        /// Object.
        object: u64,
    },
    /// A provider returned the same object twice while it was open.
    #[error(
        "NDK objects: the provider returned {kind} {object:#x}, which is already an open object"
    )]
    Duplicate {
        /// Kind.
        kind: ObjectKind,
        /// Object.
        object: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ObjectEntry {
    kind: ObjectKind,
    parent: Option<u64>,
}

/// The NDK objects the consumer holds, their parents, and the ones whose close completed.
#[derive(Debug, Default)]
pub struct ObjectTable {
    open: BTreeMap<u64, ObjectEntry>,
    closed: BTreeMap<u64, ObjectKind>,
}

impl ObjectTable {
    /// An empty table.
    pub const fn new() -> Self {
        ObjectTable {
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }

    /// The provider created `object` of `kind` under `parent`.
    pub fn created(
        &mut self,
        object: u64,
        kind: ObjectKind,
        parent: Option<u64>,
    ) -> Result<(), ObjectViolation> {
        self.closed.remove(&object);
        if self
            .open
            .insert(object, ObjectEntry { kind, parent })
            .is_some()
        {
            return Err(ObjectViolation::Duplicate { kind, object });
        }
        Ok(())
    }

    /// Open children of `object`.
    pub fn children(&self, object: u64) -> usize {
        self.open
            .values()
            .filter(|e| e.parent == Some(object))
            .count()
    }

    /// The close of `object` completed (synchronously or through its completion).
    pub fn close_completed(&mut self, object: u64) -> Result<(), ObjectViolation> {
        let Some(entry) = self.open.remove(&object) else {
            return Ok(());
        };
        self.closed.insert(object, entry.kind);
        let children = self.children(object);
        if children > 0 {
            return Err(ObjectViolation::ParentClosedWithChildren {
                kind: entry.kind,
                object,
                children,
            });
        }
        Ok(())
    }

    /// A callback named `what` arrived for `object`.
    pub fn callback(&self, object: u64, what: &str) -> Result<(), ObjectViolation> {
        match self.closed.get(&object) {
            Some(&kind) if !self.open.contains_key(&object) => {
                Err(ObjectViolation::CallbackAfterClose {
                    what: String::from(what),
                    kind,
                    object,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether `object` is open.
    pub fn is_open(&self, object: u64) -> bool {
        self.open.contains_key(&object)
    }

    /// Objects still open (each a leak when the adapter halts).
    pub fn leaks(&self) -> Vec<ObjectViolation> {
        self.open
            .iter()
            .map(|(&object, e)| ObjectViolation::NeverClosed {
                kind: e.kind,
                object,
            })
            .collect()
    }
}

/// The outcome of one consumer-suite test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Failed, with the reason.
    Fail(String),
    /// Not run, with the reason (never counted as a pass).
    Skip(String),
}

/// Tallies the suite's tests and writes their result lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SuiteReport {
    /// Tests that passed.
    pub ok: u32,
    /// Tests that failed.
    pub failed: u32,
    /// Tests skipped (with a reason).
    pub skipped: u32,
}

impl SuiteReport {
    /// An empty report.
    pub const fn new() -> Self {
        SuiteReport {
            ok: 0,
            failed: 0,
            skipped: 0,
        }
    }

    /// Records `outcome` of test `name`; returns its result line
    /// (`ndk: <name> ... ok|FAIL <why>|skip <why>`).
    pub fn record(&mut self, name: &str, outcome: &Outcome) -> String {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                format!("ndk: {name} ... ok")
            }
            Outcome::Fail(why) => {
                self.failed += 1;
                format!("ndk: {name} ... FAIL {why}")
            }
            Outcome::Skip(why) => {
                self.skipped += 1;
                format!("ndk: {name} ... skip {why}")
            }
        }
    }

    /// The summary line the boot test checks:
    /// `ndk: suite: N tests, P ok, F failed, S skipped`.
    pub fn summary(&self) -> String {
        format!(
            "ndk: suite: {} tests, {} ok, {} failed, {} skipped",
            self.ok + self.failed + self.skipped,
            self.ok,
            self.failed,
            self.skipped
        )
    }

    /// Parses a summary line back into a report (for the boot tests and tools that read the
    /// serial log); None if `line` is not one.
    pub fn parse_summary(line: &str) -> Option<SuiteReport> {
        let rest = line.trim().strip_prefix("ndk: suite: ")?;
        let mut nums = rest.split(", ").map(|part| {
            part.split_once(' ')
                .and_then(|(n, _)| n.parse::<u32>().ok())
        });
        let (total, ok, failed, skipped) =
            (nums.next()??, nums.next()??, nums.next()??, nums.next()??);
        (total == ok + failed + skipped).then_some(SuiteReport {
            ok,
            failed,
            skipped,
        })
    }
}

/// Summary of latency samples (any unit): the value at or below which `p` percent of the
/// samples fall, nearest-rank, for p50 and p99, plus the extremes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Smallest sample.
    pub min: u64,
    /// Median (nearest rank).
    pub p50: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

/// Summarises `samples` (sorted in place); None when there are none.
pub fn latency(samples: &mut [u64]) -> Option<Latency> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = |p: usize| samples[(samples.len() * p).div_ceil(100).max(1) - 1];
    Some(Latency {
        count: samples.len(),
        min: samples[0],
        p50: rank(50),
        p99: rank(99),
        max: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn good_chars() -> ProviderCharacteristics {
        ProviderCharacteristics {
            ty: 0xB2,
            revision: 1,
            size: 0x18,
            flags: 0,
            open: true,
            close: true,
        }
    }

    #[test]
    fn provider_characteristics_are_checked_field_by_field() {
        assert_eq!(check_provider_characteristics(&good_chars()), Ok(()));
        for bad in [
            ProviderCharacteristics {
                ty: 0xB3,
                ..good_chars()
            },
            ProviderCharacteristics {
                revision: 2,
                ..good_chars()
            },
            ProviderCharacteristics {
                size: 0x10,
                ..good_chars()
            },
        ] {
            let e = check_provider_characteristics(&bad).unwrap_err();
            assert!(matches!(e, NdkRegistrationError::Header { .. }), "{e}");
            assert!(e.to_string().contains("type 0xb2, revision 1, size 0x18"));
        }
        assert_eq!(
            check_provider_characteristics(&ProviderCharacteristics {
                flags: 1,
                ..good_chars()
            }),
            Err(NdkRegistrationError::Flags(1))
        );
        assert_eq!(
            check_provider_characteristics(&ProviderCharacteristics {
                close: false,
                ..good_chars()
            }),
            Err(NdkRegistrationError::MissingHandler(
                "CloseNDKAdapterHandler"
            ))
        );
        assert_eq!(
            check_provider_characteristics(&ProviderCharacteristics {
                open: false,
                ..good_chars()
            }),
            Err(NdkRegistrationError::MissingHandler(
                "OpenNDKAdapterHandler"
            ))
        );
    }

    fn good_caps() -> Capabilities {
        Capabilities {
            header: (0x80, 1, 0x38),
            max_qp: 64,
            max_cq: 64,
            max_mr: 256,
            max_pd: 16,
            has_info: true,
            ..Capabilities::default()
        }
    }

    #[test]
    fn capabilities_need_the_revision_1_header_nonzero_limits_and_adapter_info() {
        assert_eq!(check_capabilities(&good_caps()), Ok(()));
        // The size older doc pages give (no Flags field) is refused.
        let e = check_capabilities(&Capabilities {
            header: (0x80, 1, 0x34),
            ..good_caps()
        })
        .unwrap_err();
        assert!(e.to_string().contains("size 0x38"), "{e}");
        assert_eq!(
            check_capabilities(&Capabilities {
                max_pd: 0,
                ..good_caps()
            }),
            Err(NdkRegistrationError::ZeroLimit("MaxPdCount"))
        );
        assert_eq!(
            check_capabilities(&Capabilities {
                has_info: false,
                ..good_caps()
            }),
            Err(NdkRegistrationError::NoAdapterInfo)
        );
        // Memory windows and SRQs may be unsupported (0).
        assert_eq!(
            check_capabilities(&Capabilities {
                max_mw: 0,
                max_srq: 0,
                ..good_caps()
            }),
            Ok(())
        );
    }

    #[test]
    fn ndk_attributes_header_and_pointer() {
        assert_eq!(check_ndk_attributes((0xB3, 1, 0x10), true), Ok(()));
        assert!(check_ndk_attributes((0xB3, 1, 0x08), true).is_err());
        assert_eq!(
            check_ndk_attributes((0xB3, 1, 0x10), false),
            Err(NdkRegistrationError::NoCapabilities)
        );
    }

    #[test]
    fn an_mdl_for_a_multi_page_buffer_with_an_offset() {
        // 3 pages' worth starting 0x123 into a page touches 4 pages.
        let chain = plan_mdl_chain(0x80_0010_5123, 0x10_5123, 3 * 4096, u32::MAX);
        assert_eq!(
            chain,
            vec![MdlPlan {
                start_va: 0x80_0010_5000,
                byte_offset: 0x123,
                byte_count: 3 * 4096,
                pfns: vec![0x105, 0x106, 0x107, 0x108],
            }]
        );
        assert_eq!(chain[0].virtual_address(), 0x80_0010_5123);
    }

    #[test]
    fn a_chain_splits_the_buffer_on_page_boundaries() {
        // 0x2000 bytes from 0x800 into page 2 (pfn 9), two pages per MDL.
        let chain = plan_mdl_chain(0x2000 + 0x800, 0x9000 + 0x800, 0x2000, 2);
        let counts: Vec<u32> = chain.iter().map(|m| m.byte_count).collect();
        // First MDL: the rest of page 2 and all of page 3; then the 0x800 bytes left.
        assert_eq!(counts, [0x1800, 0x800]);
        assert_eq!((chain[0].start_va, chain[0].byte_offset), (0x2000, 0x800));
        assert_eq!(chain[0].pfns, [9, 10]);
        assert_eq!((chain[1].start_va, chain[1].byte_offset), (0x4000, 0));
        assert_eq!(chain[1].pfns, [11]);
        // One page per MDL over 5 pages' worth at offset 0x10: 6 MDLs, inner ones whole pages.
        let chain = plan_mdl_chain(0x10, 0x10, 5 * 4096, 1);
        assert_eq!(chain.len(), 6);
        assert!(chain[1..5]
            .iter()
            .all(|m| m.byte_offset == 0 && m.byte_count == 4096));
        assert_eq!(chain[5].byte_count, 0x10);
        let total: u64 = chain.iter().map(|m| m.byte_count as u64).sum();
        assert_eq!(total, 5 * 4096);
        assert!(plan_mdl_chain(0, 0, 0, 4).is_empty());
        // 0 pages per MDL is taken as 1.
        assert_eq!(plan_mdl_chain(0, 0, 8192, 0).len(), 2);
    }

    #[test]
    fn pages_spanned_counts_partial_pages() {
        assert_eq!(pages_spanned(0, 0), 0);
        assert_eq!(pages_spanned(0xFFF, 1), 1);
        assert_eq!(pages_spanned(0xFFF, 2), 2);
        assert_eq!(pages_spanned(0, 4096), 1);
        assert_eq!(pages_spanned(1, 4096), 2);
    }

    #[test]
    fn a_pended_call_completes_exactly_once() {
        let mut t = RequestTracker::new();
        t.begin(1, "NdkRegisterMr");
        assert_eq!(t.returned(1, STATUS_PENDING), Ok(()));
        assert!(!t.is_done(1));
        assert_eq!(t.outstanding(), ["NdkRegisterMr"]);
        assert_eq!(t.completed(1), Ok(()));
        assert!(t.is_done(1));
        assert_eq!(
            t.completed(1),
            Err(RequestViolation::DoubleCompletion {
                call: "NdkRegisterMr".to_string()
            })
        );
    }

    #[test]
    fn a_completion_before_the_pending_return_counts() {
        let mut t = RequestTracker::new();
        t.begin(7, "NdkCreateCq");
        assert_eq!(t.completed(7), Ok(()));
        assert_eq!(t.returned(7, STATUS_PENDING), Ok(()));
        assert!(t.is_done(7));
        t.begin(8, "NdkCreateCq");
        t.completed(8).unwrap();
        t.completed(8).unwrap();
        assert!(matches!(
            t.returned(8, STATUS_PENDING),
            Err(RequestViolation::DoubleCompletion { .. })
        ));
    }

    #[test]
    fn a_final_return_never_completes() {
        let mut t = RequestTracker::new();
        t.begin(2, "NdkCreatePd");
        t.completed(2).unwrap();
        let e = t.returned(2, 0).unwrap_err();
        assert!(e.to_string().contains("not STATUS_PENDING"), "{e}");
        t.begin(3, "NdkCreatePd");
        assert_eq!(t.returned(3, 0xC000_0001), Ok(()));
        assert!(t.completed(3).is_err());
        assert_eq!(t.completed(99), Err(RequestViolation::Unknown(99)));
    }

    #[test]
    fn a_pended_call_that_never_completes_times_out_once() {
        let mut t = RequestTracker::new();
        t.begin(4, "NdkDeregisterMr");
        t.returned(4, STATUS_PENDING).unwrap();
        assert!(matches!(
            t.timed_out(4, 5000),
            Some(RequestViolation::NeverCompleted {
                waited_ms: 5000,
                ..
            })
        ));
        assert_eq!(t.timed_out(4, 5000), None);
        t.forget_finished();
        assert!(t.outstanding().is_empty());
        assert_eq!(t.completed(4), Err(RequestViolation::Unknown(4)));
    }

    #[test]
    fn callbacks_after_a_completed_close_are_violations() {
        let mut o = ObjectTable::new();
        o.created(0x100, ObjectKind::Cq, Some(0x1)).unwrap();
        assert_eq!(o.callback(0x100, "CQ notification"), Ok(()));
        o.close_completed(0x100).unwrap();
        let e = o.callback(0x100, "CQ notification").unwrap_err();
        assert!(e.to_string().contains("after its close completed"), "{e}");
        // A new object at the same address is a different object.
        o.created(0x100, ObjectKind::Cq, Some(0x1)).unwrap();
        assert_eq!(o.callback(0x100, "CQ notification"), Ok(()));
    }

    #[test]
    fn a_parent_close_may_not_complete_before_its_children() {
        let mut o = ObjectTable::new();
        o.created(0x10, ObjectKind::Pd, Some(0x1)).unwrap();
        o.created(0x20, ObjectKind::Mr, Some(0x10)).unwrap();
        assert_eq!(o.children(0x10), 1);
        assert_eq!(
            o.close_completed(0x10),
            Err(ObjectViolation::ParentClosedWithChildren {
                kind: ObjectKind::Pd,
                object: 0x10,
                children: 1
            })
        );
        let mut o = ObjectTable::new();
        o.created(0x10, ObjectKind::Pd, None).unwrap();
        o.created(0x20, ObjectKind::Mr, Some(0x10)).unwrap();
        o.close_completed(0x20).unwrap();
        assert_eq!(o.close_completed(0x10), Ok(()));
        assert!(o.leaks().is_empty());
    }

    #[test]
    fn open_objects_at_halt_are_leaks_and_duplicates_are_caught() {
        let mut o = ObjectTable::new();
        o.created(0x30, ObjectKind::Qp, None).unwrap();
        assert!(matches!(
            o.created(0x30, ObjectKind::Qp, None),
            Err(ObjectViolation::Duplicate { .. })
        ));
        let leaks = o.leaks();
        assert_eq!(leaks.len(), 1);
        assert!(leaks[0].to_string().contains("QP 0x30 was never closed"));
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let l = latency(&mut v).unwrap();
        assert_eq!((l.count, l.min, l.p50, l.p99, l.max), (100, 1, 50, 99, 100));
        let mut one = [7u64];
        assert_eq!(latency(&mut one).unwrap().p99, 7);
        let mut ten: Vec<u64> = (0..10).map(|i| i * 10).collect();
        let l = latency(&mut ten).unwrap();
        assert_eq!((l.p50, l.p99), (40, 90));
        assert_eq!(latency(&mut []), None);
    }

    #[test]
    fn suite_lines_and_summary_round_trip() {
        let mut r = SuiteReport::new();
        assert_eq!(
            r.record("pd-create-close", &Outcome::Ok),
            "ndk: pd-create-close ... ok"
        );
        assert_eq!(
            r.record("mr-zero-length", &Outcome::Fail("accepted".into())),
            "ndk: mr-zero-length ... FAIL accepted"
        );
        assert_eq!(
            r.record("mw", &Outcome::Skip("no MW".into())),
            "ndk: mw ... skip no MW"
        );
        let s = r.summary();
        assert_eq!(s, "ndk: suite: 3 tests, 1 ok, 1 failed, 1 skipped");
        assert_eq!(SuiteReport::parse_summary(&s), Some(r));
        assert_eq!(
            SuiteReport::parse_summary("ndk: suite: 3 tests, 1 ok"),
            None
        );
        assert_eq!(
            SuiteReport::parse_summary("ndk: suite: 4 tests, 1 ok, 1 failed, 1 skipped"),
            None
        );
    }
}

//! Pure logic of the NDK provider: the device limits of `QUERY_CAPS` turned into
//! `NDK_ADAPTER_INFO` and `NDIS_NDK_CAPABILITIES`, MDL chains turned into the device's page
//! list, NDK flag values turned into device access and WQE flags, CQEs turned into
//! `NDK_RESULT_EX`, admin statuses into NTSTATUS, and the operand records of the verbs admin
//! commands.
//!
//! Every device number and layout comes from `rnic-contract`; every NDK number from
//! `ndis-abi`. No FFI and no MMIO: the `artifact-check` crate includes this file (`#[path]`)
//! and runs the tests below on the host.

use ndis_abi::*;
use rnic_contract::admin::{self as contract, operands, query_caps, AdminStatus};
use rnic_contract::cqe::{self, CqeRepr, WcStatus};
use rnic_contract::field;
use rnic_contract::verbs::access;
use rnic_contract::wqe;

/// Page shift of every page list the driver hands the device (Windows pages are 4 KiB).
pub const PAGE_SHIFT: u8 = 12;
/// Bytes per page.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// PCI vendor id the adapter info reports (the device's, docs/device-spec.md §1.1).
pub const VENDOR_ID: u32 = rnic_contract::pci::VENDOR_ID as u32;
/// PCI device id the adapter info reports.
pub const DEVICE_ID: u32 = rnic_contract::pci::DEVICE_ID as u32;
/// Private-data bytes of a connect request (the REQ's consumer part after the IP header,
/// docs/device-spec.md §3.14).
pub const MAX_CALLER_DATA: u32 = rnic_contract::cm::private_data::REQ as u32;
/// Private-data bytes of an accept or reject (the smaller of REP's 196 and REJ's 148).
pub const MAX_CALLEE_DATA: u32 = rnic_contract::cm::private_data::REJ as u32;
/// Requests at least this large are better done by RDMA than by copying (a hint to
/// consumers; 16 KiB).
pub const LARGE_REQUEST_THRESHOLD: u32 = 16 << 10;
/// Incoming and outgoing RDMA reads a QP may have outstanding (the device's read engine
/// has no limit of its own below its send window; NDK wants a number).
pub const READ_LIMIT: u32 = 16;
/// Counters of `NDIS_NDK_PERFORMANCE_COUNTERS` the driver does not maintain: CQError (25)
/// and the RDMA octet/frame counters (26..=29), which need the device statistics block.
pub const MISSING_COUNTERS: u64 = (1 << 25) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29);

/// The verbs limits of the `QUERY_CAPS` record (docs/device-spec.md §3.9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Max QPs.
    pub max_qp: u32,
    /// Max CQs.
    pub max_cq: u32,
    /// Max PDs.
    pub max_pd: u32,
    /// Max MRs.
    pub max_mr: u32,
    /// Max SQ / RQ entries (power of two).
    pub max_qp_wr: u32,
    /// Max CQ entries (power of two).
    pub max_cqe: u32,
    /// Max send SGEs per WQE.
    pub max_send_sge: u8,
    /// Max receive SGEs per WQE.
    pub max_recv_sge: u8,
    /// Max inline bytes per WQE.
    pub max_inline: u16,
    /// Max message size in bytes.
    pub max_msg: u32,
    /// Max pages of a registered MR.
    pub max_mr_pages: u32,
    /// MSI-X vectors a CQ may name (vector < this).
    pub cq_vectors: u8,
    /// Max pages of a fast-register MR.
    pub max_fr_pages: u32,
}

impl Caps {
    /// Reads the 64-byte `QUERY_CAPS` record.
    pub fn parse(record: &[u8; contract::QUERY_RECORD_SIZE]) -> Self {
        let r = &record[..];
        Self {
            max_qp: field::get_u32(r, query_caps::MAX_QP),
            max_cq: field::get_u32(r, query_caps::MAX_CQ),
            max_pd: field::get_u32(r, query_caps::MAX_PD),
            max_mr: field::get_u32(r, query_caps::MAX_MR),
            max_qp_wr: field::get_u32(r, query_caps::MAX_QP_WR),
            max_cqe: field::get_u32(r, query_caps::MAX_CQE),
            max_send_sge: field::get_u8(r, query_caps::MAX_SEND_SGE),
            max_recv_sge: field::get_u8(r, query_caps::MAX_RECV_SGE),
            max_inline: field::get_u16(r, query_caps::MAX_INLINE),
            max_msg: field::get_u32(r, query_caps::MAX_MSG_SIZE),
            max_mr_pages: field::get_u32(r, query_caps::MAX_MR_PAGES),
            cq_vectors: field::get_u8(r, query_caps::CQ_VECTORS),
            max_fr_pages: field::get_u32(r, query_caps::MAX_FR_PAGES),
        }
    }
}

/// Adapter flags the provider reports: CQ moderation (`MODIFY_CQ`) and resize
/// (`RESIZE_CQ`). Not reported: in-order DMA (not promised by the spec), read sinks without
/// the flag (the device wants `LOCAL_WRITE` or `RDMA_READ_SINK` on a read destination),
/// read-local-invalidate and multiple engines (the device has neither). Loopback connections
/// are supported: the device's connection manager connects two endpoints of one port
/// internally (spec §3.14).
pub const ADAPTER_FLAGS: u32 = NDK_ADAPTER_FLAG_CQ_INTERRUPT_MODERATION_SUPPORTED
    | NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED
    | NDK_ADAPTER_FLAG_LOOPBACK_CONNECTIONS_SUPPORTED;

/// The `NDK_ADAPTER_INFO` of a device with these limits. Memory windows and SRQs are not
/// supported: `MaxWindowSize` and `MaxSrqDepth` are 0, as `MaxMwCount`/`MaxSrqCount` of
/// [`capabilities`] are.
pub fn adapter_info(caps: &Caps) -> NDK_ADAPTER_INFO {
    NDK_ADAPTER_INFO {
        Version: NDK_VERSION_1_2,
        VendorId: VENDOR_ID,
        DeviceId: DEVICE_ID,
        MaxRegistrationSize: (caps.max_mr_pages as usize) << PAGE_SHIFT,
        MaxWindowSize: 0,
        FRMRPageCount: caps.max_fr_pages,
        MaxInitiatorRequestSge: u32::from(caps.max_send_sge),
        MaxReceiveRequestSge: u32::from(caps.max_recv_sge),
        MaxReadRequestSge: u32::from(caps.max_send_sge),
        MaxTransferLength: caps.max_msg,
        MaxInlineDataSize: u32::from(caps.max_inline),
        MaxInboundReadLimit: READ_LIMIT,
        MaxOutboundReadLimit: READ_LIMIT,
        MaxReceiveQueueDepth: caps.max_qp_wr,
        MaxInitiatorQueueDepth: caps.max_qp_wr,
        MaxSrqDepth: 0,
        MaxCqDepth: caps.max_cqe,
        LargeRequestThreshold: LARGE_REQUEST_THRESHOLD,
        MaxCallerData: MAX_CALLER_DATA,
        MaxCalleeData: MAX_CALLEE_DATA,
        AdapterFlags: ADAPTER_FLAGS,
        RdmaTechnology: NdkRoCEv2,
    }
}

/// The `NDIS_NDK_CAPABILITIES` of a device with these limits; `info` is where the adapter
/// info lives (NDIS copies both during `NdisMSetMiniportAttributes`).
pub fn capabilities(caps: &Caps, info: *mut NDK_ADAPTER_INFO) -> NDIS_NDK_CAPABILITIES {
    NDIS_NDK_CAPABILITIES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NDIS_NDK_CAPABILITIES_REVISION_1,
            NDIS_SIZEOF_NDK_CAPABILITIES_REVISION_1,
        ),
        Flags: 0,
        MaxQpCount: caps.max_qp,
        MaxCqCount: caps.max_cq,
        MaxMrCount: caps.max_mr,
        MaxPdCount: caps.max_pd,
        // Stated adapter-wide as the per-QP limit of the adapter info (a conservative bound
        // consumers can check against NDK_ADAPTER_INFO).
        MaxInboundReadLimit: READ_LIMIT,
        MaxOutboundReadLimit: READ_LIMIT,
        MaxMwCount: 0,
        MaxSrqCount: 0,
        MissingCounterMask: MISSING_COUNTERS,
        NdkInfo: info,
    }
}

/// Whether a consumer asking for `version` can use this provider: the major version must be
/// 1 (anything else is `NDIS_STATUS_BAD_VERSION`); any minor version is served with the 1.2
/// objects, which are a superset of 1.1's.
pub fn version_supported(version: NDK_VERSION) -> bool {
    version.Major == NDK_VERSION_MAJOR
}

/// `NdkQueryAdapterInfo`'s answer before anything is written: `Err((status, needed size))`
/// for a too-small buffer (`STATUS_BUFFER_TOO_SMALL`) or a major version other than 1
/// (`NDIS_STATUS_BAD_VERSION`), `Ok(size to write)` otherwise.
pub fn query_adapter_info_check(
    buffer_size: u32,
    version: NDK_VERSION,
) -> Result<u32, (NTSTATUS, u32)> {
    let needed = core::mem::size_of::<NDK_ADAPTER_INFO>() as u32;
    if buffer_size < needed {
        return Err((STATUS_BUFFER_TOO_SMALL, needed));
    }
    if version.Major != 0 && !version_supported(version) {
        return Err((NDIS_STATUS_BAD_VERSION, needed));
    }
    Ok(needed)
}

// ---------------------------------------------------------------------------------------------
// Memory regions

/// One MDL of a chain as the page-list walk sees it: the byte offset in its first page, its
/// byte count and its PFN array (the MDL's virtual address is never needed, nor read).
#[derive(Clone, Copy, Debug)]
pub struct MdlSegment<'a> {
    /// `ByteOffset`: offset of the first byte in the first page (< 4096).
    pub byte_offset: u32,
    /// `ByteCount`: bytes the MDL describes.
    pub byte_count: u32,
    /// The PFNs that follow the MDL header (at least the pages the bytes span).
    pub pfns: &'a [u64],
}

/// Pages an MDL with this offset and byte count spans (`ADDRESS_AND_SIZE_TO_SPAN_PAGES`).
pub fn span_pages(byte_offset: u32, byte_count: u32) -> u64 {
    (u64::from(byte_offset) + u64::from(byte_count)).div_ceil(PAGE_SIZE)
}

/// Why an MDL chain cannot become a page list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MrError {
    /// Length 0: NDK refuses empty registrations.
    ZeroLength,
    /// The length runs past the bytes the MDL chain describes.
    LengthPastMdl,
    /// A later MDL does not continue the previous one (it starts inside a page, or the
    /// previous one ends inside one): the region is not virtually contiguous.
    NotContiguous,
    /// An MDL's byte offset is not inside its first page.
    BadOffset,
    /// The region needs more pages than the page list or the device allows.
    TooManyPages,
}

impl MrError {
    /// The NTSTATUS `NdkRegisterMr` returns for it.
    pub fn status(self) -> NTSTATUS {
        match self {
            MrError::TooManyPages => STATUS_INSUFFICIENT_RESOURCES,
            _ => STATUS_INVALID_PARAMETER,
        }
    }
}

/// A page list the walk produced: the first byte's offset in the first page and the number
/// of pages written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageList {
    /// First byte offset in the first page.
    pub fbo: u32,
    /// Pages written to the output.
    pub page_count: u32,
}

/// Walks an MDL chain describing `length` bytes of virtually contiguous memory and writes
/// the bus address of every page they touch (`PFN << 12`) to `out`, in order. The first MDL
/// may start anywhere in its page; every later one must start at a page boundary and follow
/// an MDL that ended at one. `length` may end inside the chain (only the pages it needs are
/// written) but not after it.
pub fn mdl_pages<'a>(
    chain: impl IntoIterator<Item = MdlSegment<'a>>,
    length: u64,
    out: &mut [u64],
) -> Result<PageList, MrError> {
    if length == 0 {
        return Err(MrError::ZeroLength);
    }
    // (first byte offset, pages the region needs) once the first MDL is seen.
    let mut shape: Option<(u32, u64)> = None;
    let mut written = 0u64;
    let mut covered = 0u64;
    let mut previous_ends_page = true;
    for (i, seg) in chain.into_iter().enumerate() {
        if u64::from(seg.byte_offset) >= PAGE_SIZE {
            return Err(MrError::BadOffset);
        }
        if i > 0 && (seg.byte_offset != 0 || !previous_ends_page) {
            return Err(MrError::NotContiguous);
        }
        let (_, needed) = *shape.get_or_insert_with(|| {
            let needed = (u64::from(seg.byte_offset) + length).div_ceil(PAGE_SIZE);
            (seg.byte_offset, needed)
        });
        if needed > out.len() as u64 {
            return Err(MrError::TooManyPages);
        }
        let pages = span_pages(seg.byte_offset, seg.byte_count);
        if (seg.pfns.len() as u64) < pages {
            return Err(MrError::LengthPastMdl);
        }
        for pfn in &seg.pfns[..pages as usize] {
            if written == needed {
                break;
            }
            out[written as usize] = pfn << PAGE_SHIFT;
            written += 1;
        }
        covered += u64::from(seg.byte_count);
        if covered >= length {
            break;
        }
        previous_ends_page =
            (u64::from(seg.byte_offset) + u64::from(seg.byte_count)) % PAGE_SIZE == 0;
    }
    match shape {
        Some((fbo, needed)) if covered >= length && written == needed => Ok(PageList {
            fbo,
            page_count: written as u32,
        }),
        _ => Err(MrError::LengthPastMdl),
    }
}

/// Bytes of the `NDK_LOGICAL_ADDRESS_MAPPING` NdkBuildLAM needs for `length` bytes whose
/// first byte sits `first_byte_offset` into its page (one 4 KiB adapter page per page
/// touched); None for a zero length, an offset outside the page or a size past `u32`.
pub fn lam_size(first_byte_offset: u32, length: u64) -> Option<u32> {
    if length == 0 || u64::from(first_byte_offset) >= PAGE_SIZE {
        return None;
    }
    let pages = (u64::from(first_byte_offset) + length).div_ceil(PAGE_SIZE);
    ndk_lam_size(u32::try_from(pages).ok()?)
}

/// Bytes an MDL chain describes in total (the sum of its byte counts).
pub fn chain_bytes<'a>(chain: impl IntoIterator<Item = MdlSegment<'a>>) -> u64 {
    chain.into_iter().map(|s| u64::from(s.byte_count)).sum()
}

/// The device access flags for `NdkRegisterMr` flags (`NDK_MR_FLAG_*`). The values are the
/// device's own (docs/device-spec.md §6.2: remote write 0x5 includes local write), so they
/// pass through once checked: an unknown bit, or remote write without local write, is
/// refused.
pub fn mr_access(ndk_mr_flags: u32) -> Option<u32> {
    let known = NDK_MR_FLAG_ALLOW_LOCAL_WRITE
        | NDK_MR_FLAG_ALLOW_REMOTE_READ
        | NDK_MR_FLAG_ALLOW_REMOTE_WRITE
        | NDK_MR_FLAG_RDMA_READ_SINK;
    if ndk_mr_flags & !known != 0 {
        return None;
    }
    if ndk_mr_flags & access::REMOTE_WRITE != 0 && ndk_mr_flags & access::LOCAL_WRITE == 0 {
        return None;
    }
    Some(ndk_mr_flags & access::ALL)
}

/// The device access flags of a fast registration, from `NdkFastRegister`'s `NDK_OP_FLAG_*`
/// (remote read 0x8, local write 0x10, remote write 0x30, read sink 0x80): not the
/// `NDK_MR_FLAG_*` values. Other operation flags (silent success, fence, ...) are not access.
pub fn fast_register_access(ndk_op_flags: u32) -> u32 {
    let mut device = 0;
    if ndk_op_flags & NDK_OP_FLAG_ALLOW_LOCAL_WRITE != 0 {
        device |= access::LOCAL_WRITE;
    }
    if ndk_op_flags & NDK_OP_FLAG_ALLOW_REMOTE_READ != 0 {
        device |= access::REMOTE_READ;
    }
    // 0x30 = remote write (0x20) | local write (0x10): the 0x20 bit alone names remote write.
    if ndk_op_flags & (NDK_OP_FLAG_ALLOW_REMOTE_WRITE & !NDK_OP_FLAG_ALLOW_LOCAL_WRITE) != 0 {
        device |= access::REMOTE_WRITE | access::LOCAL_WRITE;
    }
    if ndk_op_flags & NDK_OP_FLAG_RDMA_READ_SINK != 0 {
        device |= access::RDMA_READ_SINK;
    }
    device
}

/// Send-WQE flags (`wqe::flags`) for a request's `NDK_OP_FLAG_*`: signaled unless silent
/// success, solicited, inline, fenced.
pub fn send_wqe_flags(ndk_op_flags: u32) -> u8 {
    let mut f = 0;
    if ndk_op_flags & NDK_OP_FLAG_SILENT_SUCCESS == 0 {
        f |= wqe::flags::SIGNALED;
    }
    if ndk_op_flags & NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT != 0 {
        f |= wqe::flags::SOLICITED;
    }
    if ndk_op_flags & NDK_OP_FLAG_INLINE != 0 {
        f |= wqe::flags::INLINE;
    }
    if ndk_op_flags & NDK_OP_FLAG_READ_FENCE != 0 {
        f |= wqe::flags::FENCE;
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Completions

/// The NTSTATUS of a CQE's completion status (docs/device-spec.md §9.2) as NDK consumers
/// expect it: flushed requests are `STATUS_CANCELLED`; protection and remote-access failures
/// `STATUS_ACCESS_VIOLATION`; an incoming SEND larger than the receive buffer
/// `STATUS_BUFFER_OVERFLOW` on the receive side (`STATUS_INVALID_BUFFER_SIZE` for a send
/// above the message limit); exhausted retries `STATUS_IO_TIMEOUT` (an RNR timeout is a
/// send with no receive posted); the peer's operational errors `STATUS_CONNECTION_ABORTED`;
/// everything else `STATUS_DATA_ERROR`.
pub fn completion_status(status: u8, cqe_opcode: u8) -> NTSTATUS {
    let receive = cqe_opcode & 0x80 != 0;
    match status {
        s if s == WcStatus::Success.code() => STATUS_SUCCESS,
        s if s == WcStatus::LocalLengthError.code() => {
            if receive {
                STATUS_BUFFER_OVERFLOW
            } else {
                STATUS_INVALID_BUFFER_SIZE
            }
        }
        s if s == WcStatus::LocalQpOperationError.code() => STATUS_INVALID_DEVICE_REQUEST,
        s if s == WcStatus::LocalProtectionError.code() => STATUS_ACCESS_VIOLATION,
        s if s == WcStatus::Flushed.code() => STATUS_CANCELLED,
        s if s == WcStatus::RemoteInvalidRequest.code() => STATUS_INVALID_DEVICE_REQUEST,
        s if s == WcStatus::RemoteAccessError.code() => STATUS_ACCESS_VIOLATION,
        s if s == WcStatus::RemoteOperationError.code() => STATUS_CONNECTION_ABORTED,
        s if s == WcStatus::RetryExceeded.code() => STATUS_IO_TIMEOUT,
        s if s == WcStatus::RnrRetryExceeded.code() => STATUS_IO_TIMEOUT,
        s if s == WcStatus::MemoryManagementError.code() => STATUS_ACCESS_VIOLATION,
        _ => STATUS_DATA_ERROR,
    }
}

/// The NDK operation type of a CQE: the send-side opcode, or a receive (with invalidate when
/// the CQE carries an invalidated key).
pub fn operation_type(cqe_opcode: u8, cqe_flags: u8) -> NDK_OPERATION_TYPE {
    match cqe_opcode {
        cqe::opcode::SEND => NdkOperationTypeSend,
        cqe::opcode::RDMA_WRITE => NdkOperationTypeWrite,
        cqe::opcode::RDMA_READ => NdkOperationTypeRead,
        cqe::opcode::FAST_REG => NdkOperationTypeFastRegister,
        cqe::opcode::LOCAL_INV => NdkOperationTypeInvalidate,
        _ if cqe_flags & cqe::flags::INV != 0 => NdkOperationTypeReceiveAndInvalidate,
        _ => NdkOperationTypeReceive,
    }
}

/// The `NDK_RESULT_EX` of a CQE: `wr_id` is the consumer's request context, `qp_context` the
/// context of the QP the CQE names.
pub fn result_ex(c: &CqeRepr, qp_context: *mut core::ffi::c_void) -> NDK_RESULT_EX {
    let status = completion_status(c.status, c.opcode);
    let ty = operation_type(c.opcode, c.flags);
    NDK_RESULT_EX {
        Status: status,
        BytesTransferred: if status == STATUS_SUCCESS {
            c.byte_len
        } else {
            0
        },
        QPContext: qp_context,
        RequestContext: c.wr_id as usize as *mut core::ffi::c_void,
        Type: ty,
        ProviderErrorCode: if status == STATUS_SUCCESS {
            0
        } else {
            c.vendor_err.max(u32::from(c.status))
        },
        TypeSpecificCompletionOutput: if ty == NdkOperationTypeReceiveAndInvalidate {
            c.imm_inv as usize
        } else {
            0
        },
    }
}

/// The plain `NDK_RESULT` part of an `NDK_RESULT_EX`.
pub fn result(x: &NDK_RESULT_EX) -> NDK_RESULT {
    NDK_RESULT {
        Status: x.Status,
        BytesTransferred: x.BytesTransferred,
        QPContext: x.QPContext,
        RequestContext: x.RequestContext,
    }
}

/// The phase tag a new CQE carries in the slot of free-running count `n` of a ring of
/// `entries` (power of two): 1 on the first pass, inverted on every wrap.
pub fn cqe_phase(n: u32, entries: u32) -> bool {
    (n / entries) & 1 == 0
}

/// The NTSTATUS of a failed verbs admin command.
pub fn admin_status(status: u16) -> NTSTATUS {
    match AdminStatus::from_code(status) {
        _ if status == contract::STATUS_SUCCESS => STATUS_SUCCESS,
        Some(AdminStatus::InvalidParam) => STATUS_INVALID_PARAMETER,
        Some(AdminStatus::NoResources) => STATUS_INSUFFICIENT_RESOURCES,
        Some(AdminStatus::InvalidHandle) => STATUS_INVALID_HANDLE,
        Some(AdminStatus::Busy) | Some(AdminStatus::InvalidState) => STATUS_INVALID_DEVICE_STATE,
        Some(AdminStatus::NotSupported) => STATUS_NOT_SUPPORTED,
        Some(AdminStatus::AddressInUse) => STATUS_ADDRESS_ALREADY_EXISTS,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// Ring entries for a requested depth: the next power of two of at least 2, or `None` past
/// `max` (a power of two).
pub fn ring_entries(depth: u32, max: u32) -> Option<u32> {
    let n = depth.max(2).checked_next_power_of_two()?;
    (n <= max).then_some(n)
}

// ---------------------------------------------------------------------------------------------
// Operand records of the verbs admin commands (docs/device-spec.md §3.9-§3.13)

/// Operand bytes as the 14 dwords `logic::encode_command` takes.
fn dwords(b: &[u8; contract::OPERANDS_LEN]) -> [u32; 14] {
    core::array::from_fn(|i| {
        u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// `QUERY_CAPS`: the output buffer's bus address.
pub fn query_caps_operands(buffer: u64) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u64(&mut b, operands::query_caps::ADDR, buffer);
    dwords(&b)
}

/// `QUERY_DEVICE`: a 96-byte output buffer, so the device writes the extended record with the
/// port's IPv6 address (docs/device-spec.md §3.7.1).
pub fn query_device_operands(buffer: u64) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u64(&mut b, operands::buffer::ADDR, buffer);
    field::set_u32(
        &mut b,
        operands::buffer::LEN,
        contract::QUERY_DEVICE_EXT_SIZE as u32,
    );
    dwords(&b)
}

/// The verbs port's own addresses, as `QUERY_DEVICE` reports them: what a wildcard listener
/// or an unbound connector stands for, and what a consumer's source address must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortAddresses {
    /// IPv4 address, network-order bytes.
    pub ipv4: [u8; 4],
    /// IPv6 address, network-order bytes; None when the port has none (then every IPv6
    /// connect and listen fails with `STATUS_INVALID_ADDRESS`).
    pub ipv6: Option<[u8; 16]>,
}

impl PortAddresses {
    /// The addresses in an extended `QUERY_DEVICE` record (`written` bytes of it valid: a
    /// 64-byte record, from a device that predates the extension, has no IPv6 address).
    pub fn from_query_device(
        record: &[u8; contract::QUERY_DEVICE_EXT_SIZE],
        written: usize,
    ) -> Self {
        let ipv6: [u8; 16] = field::get_array(&record[..], contract::query_device::PORT_IPV6);
        Self {
            ipv4: field::get_array(&record[..], contract::query_device::PORT_IPV4),
            ipv6: (written >= contract::QUERY_DEVICE_EXT_SIZE && ipv6 != [0; 16]).then_some(ipv6),
        }
    }

    /// The port's address of `family` as the connection manager writes it (16 bytes; IPv4 in
    /// the first 4); None for an IPv6 port without an address or an unknown family.
    pub fn own(&self, family: u8) -> Option<[u8; 16]> {
        match family {
            rnic_contract::cm::family::IPV4 => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&self.ipv4);
                Some(a)
            }
            rnic_contract::cm::family::IPV6 => self.ipv6,
            _ => None,
        }
    }

    /// Whether a consumer may use `local` as its own endpoint: the port has an address of
    /// that family and `local` names it or is the wildcard (all zero).
    pub fn accepts(&self, local: &CmAddress) -> bool {
        self.own(local.family)
            .is_some_and(|own| local.addr == [0; 16] || local.addr == own)
    }

    /// `local` with a wildcard address replaced by the port's address of its family (what
    /// NdkGetLocalAddress reports: the address peers reach).
    pub fn resolve(&self, local: &CmAddress) -> CmAddress {
        match self.own(local.family) {
            Some(own) if local.addr == [0; 16] => CmAddress {
                addr: own,
                ..*local
            },
            _ => *local,
        }
    }
}

/// Commands whose only operand is a handle (`DESTROY_PD`, `DESTROY_CQ`, `DESTROY_QP`,
/// `DEREG_MR`).
pub fn handle_operands(handle: u32) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, operands::handle::HANDLE, handle);
    dwords(&b)
}

/// `CREATE_CQ`.
pub fn create_cq_operands(
    base: u64,
    entries: u32,
    vector: u16,
    mod_count: u16,
    mod_time_us: u32,
) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u64(&mut b, operands::create_cq::BASE, base);
    field::set_u32(&mut b, operands::create_cq::ENTRIES, entries);
    field::set_u16(&mut b, operands::create_cq::VECTOR, vector);
    field::set_u16(&mut b, operands::create_cq::MOD_COUNT, mod_count);
    field::set_u32(&mut b, operands::create_cq::MOD_TIME_US, mod_time_us);
    dwords(&b)
}

/// `RESIZE_CQ`.
pub fn resize_cq_operands(cqn: u32, base: u64, entries: u32) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, operands::resize_cq::CQN, cqn);
    field::set_u64(&mut b, operands::resize_cq::BASE, base);
    field::set_u32(&mut b, operands::resize_cq::ENTRIES, entries);
    dwords(&b)
}

/// `MODIFY_CQ`: NDK's moderation count is clamped to the device's 16 bits.
pub fn modify_cq_operands(cqn: u32, count: u32, time_us: u32) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, operands::modify_cq::CQN, cqn);
    field::set_u16(
        &mut b,
        operands::modify_cq::MOD_COUNT,
        count.min(u32::from(u16::MAX)) as u16,
    );
    field::set_u32(&mut b, operands::modify_cq::MOD_TIME_US, time_us);
    dwords(&b)
}

/// `REG_MR` with 4 KiB pages.
#[allow(clippy::too_many_arguments)]
pub fn reg_mr_operands(
    pdn: u32,
    access_flags: u32,
    iova: u64,
    length: u64,
    page_list: u64,
    pages: PageList,
    key_byte: u8,
) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, operands::reg_mr::PDN, pdn);
    field::set_u32(&mut b, operands::reg_mr::ACCESS, access_flags);
    field::set_u64(&mut b, operands::reg_mr::IOVA, iova);
    field::set_u64(&mut b, operands::reg_mr::LENGTH, length);
    field::set_u64(&mut b, operands::reg_mr::PAGE_LIST, page_list);
    field::set_u32(&mut b, operands::reg_mr::PAGE_COUNT, pages.page_count);
    field::set_u32(&mut b, operands::reg_mr::FBO, pages.fbo);
    field::set_u8(&mut b, operands::reg_mr::PAGE_SHIFT, PAGE_SHIFT);
    field::set_u8(&mut b, operands::reg_mr::KEY_BYTE, key_byte);
    dwords(&b)
}

/// `ALLOC_FR_MR`.
pub fn alloc_fr_mr_operands(pdn: u32, max_pages: u32, key_byte: u8) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, operands::alloc_fr_mr::PDN, pdn);
    field::set_u32(&mut b, operands::alloc_fr_mr::MAX_PAGES, max_pages);
    field::set_u8(&mut b, operands::alloc_fr_mr::KEY_BYTE, key_byte);
    dwords(&b)
}

// ---------------------------------------------------------------------------------------------
// Queue pairs: operands and work queue entries (docs/device-spec.md §3.12, §8)

/// The QP parameters `NdkCreateQp` asks for, checked against the device limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpShape {
    /// SQ ring entries (power of two).
    pub sq_entries: u32,
    /// RQ ring entries (power of two).
    pub rq_entries: u32,
    /// Max send SGEs.
    pub send_sge: u8,
    /// Max receive SGEs.
    pub recv_sge: u8,
    /// Max inline bytes.
    pub inline: u16,
}

/// The ring shape of a QP for NDK's depths, SGE counts and inline size, or `None` when one
/// is 0 where at least 1 is needed or past the device's maximum (`STATUS_INVALID_PARAMETER`).
pub fn qp_shape(
    caps: &Caps,
    receive_depth: u32,
    initiator_depth: u32,
    receive_sge: u32,
    initiator_sge: u32,
    inline: u32,
) -> Option<QpShape> {
    if receive_depth == 0 || initiator_depth == 0 {
        return None;
    }
    if receive_sge > u32::from(caps.max_recv_sge)
        || initiator_sge > u32::from(caps.max_send_sge)
        || inline > u32::from(caps.max_inline)
    {
        return None;
    }
    Some(QpShape {
        sq_entries: ring_entries(initiator_depth, caps.max_qp_wr)?,
        rq_entries: ring_entries(receive_depth, caps.max_qp_wr)?,
        send_sge: initiator_sge as u8,
        recv_sge: receive_sge as u8,
        inline: inline as u16,
    })
}

/// `CREATE_QP` for an RC QP with both rings.
pub fn create_qp_operands(
    pdn: u32,
    send_cqn: u32,
    recv_cqn: u32,
    shape: &QpShape,
    sq_base: u64,
    rq_base: u64,
) -> [u32; 14] {
    use operands::create_qp as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::PDN, pdn);
    field::set_u32(&mut b, f::SEND_CQN, send_cqn);
    field::set_u32(&mut b, f::RECV_CQN, recv_cqn);
    field::set_u32(&mut b, f::SQ_ENTRIES, shape.sq_entries);
    field::set_u32(&mut b, f::RQ_ENTRIES, shape.rq_entries);
    field::set_u64(&mut b, f::SQ_BASE, sq_base);
    field::set_u64(&mut b, f::RQ_BASE, rq_base);
    field::set_u8(&mut b, f::MAX_SEND_SGE, shape.send_sge);
    field::set_u8(&mut b, f::MAX_RECV_SGE, shape.recv_sge);
    field::set_u16(&mut b, f::MAX_INLINE, shape.inline);
    field::set_u8(&mut b, f::QP_TYPE, f::QP_TYPE_RC);
    dwords(&b)
}

/// `MODIFY_QP` moving QP `qpn` to `state`, with the responder access bits when `access` is
/// given (RESET -> INIT takes them; other transitions here take nothing else).
pub fn modify_qp_state_operands(
    qpn: u32,
    state: rnic_contract::verbs::QpState,
    access: Option<u8>,
) -> [u32; 14] {
    use operands::modify_qp as f;
    use rnic_contract::verbs::qp_attr;
    let mut b = [0u8; contract::OPERANDS_LEN];
    let mut mask = qp_attr::STATE;
    field::set_u32(&mut b, f::QPN, qpn);
    field::set_u8(&mut b, f::STATE, state.code());
    if let Some(bits) = access {
        mask |= qp_attr::ACCESS;
        field::set_u8(&mut b, f::ACCESS, bits);
    }
    field::set_u32(&mut b, f::MASK, mask);
    dwords(&b)
}

/// RNR retries of a connected QP: finite, so a send that finds no receive posted fails with
/// `STATUS_IO_TIMEOUT` as NDK consumers expect (the connection manager's default, 7, retries
/// forever).
pub const RNR_RETRY: u8 = 6;
/// Minimum RNR NAK timer code a connected QP's responder advertises: 22, 20.48 ms (spec
/// §10.6), so the peer's 6 retries give a late receive about 120 ms.
pub const MIN_RNR_TIMER: u8 = 22;

/// `MODIFY_QP` without a state change (RTR -> RTR or RTS -> RTS) setting the RNR retry count
/// and the minimum RNR timer ([`RNR_RETRY`], [`MIN_RNR_TIMER`]).
pub fn modify_qp_rnr_operands(qpn: u32) -> [u32; 14] {
    use operands::modify_qp as f;
    use rnic_contract::verbs::qp_attr;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::QPN, qpn);
    field::set_u32(&mut b, f::MASK, qp_attr::RNR_RETRY | qp_attr::MIN_RNR_TIMER);
    field::set_u8(&mut b, f::RNR_RETRY, RNR_RETRY);
    field::set_u8(&mut b, f::MIN_RNR_TIMER, MIN_RNR_TIMER);
    dwords(&b)
}

/// A send WQE over SGEs (`opcode` one of `wqe::opcode`, `flags` from [`send_wqe_flags`]
/// without `INLINE`); `None` for more SGEs than a WQE holds.
pub fn send_wqe(
    wr_id: u64,
    opcode: u8,
    flags: u8,
    sges: &[wqe::SgeRepr],
    imm_inv: u32,
    remote_addr: u64,
    rkey: u32,
) -> Option<[u8; wqe::WQE_SIZE]> {
    let mut b = [0u8; wqe::WQE_SIZE];
    let mut w = wqe::SendWqe::new_unchecked(&mut b[..]);
    w.set_wr_id(wr_id);
    w.set_opcode(opcode);
    w.set_flags(flags & !wqe::flags::INLINE);
    w.set_num_sge(u8::try_from(sges.len()).ok()?);
    w.set_imm_inv(imm_inv);
    w.set_remote_addr(remote_addr);
    w.set_rkey(rkey);
    for (i, s) in sges.iter().enumerate() {
        if !w.set_sge(i, s) {
            return None;
        }
    }
    Some(b)
}

/// A send WQE carrying `data` inline; `None` above the WQE's 96 inline bytes.
pub fn inline_wqe(
    wr_id: u64,
    opcode: u8,
    flags: u8,
    data: &[u8],
    imm_inv: u32,
    remote_addr: u64,
    rkey: u32,
) -> Option<[u8; wqe::WQE_SIZE]> {
    if data.len() > wqe::MAX_INLINE as usize {
        return None;
    }
    let mut b = [0u8; wqe::WQE_SIZE];
    let mut w = wqe::SendWqe::new_unchecked(&mut b[..]);
    w.set_wr_id(wr_id);
    w.set_opcode(opcode);
    w.set_flags(flags | wqe::flags::INLINE);
    w.set_imm_inv(imm_inv);
    w.set_remote_addr(remote_addr);
    w.set_rkey(rkey);
    w.set_inline_len(data.len() as u32);
    w.payload_mut()[..data.len()].copy_from_slice(data);
    Some(b)
}

/// A receive WQE; `None` for more SGEs than a WQE holds.
pub fn recv_wqe(wr_id: u64, sges: &[wqe::SgeRepr]) -> Option<[u8; wqe::WQE_SIZE]> {
    let mut b = [0u8; wqe::WQE_SIZE];
    let mut w = wqe::RecvWqe::new_unchecked(&mut b[..]);
    w.set_wr_id(wr_id);
    w.set_num_sge(u8::try_from(sges.len()).ok()?);
    for (i, s) in sges.iter().enumerate() {
        if !w.set_sge(i, s) {
            return None;
        }
    }
    Some(b)
}

/// A `FAST_REG` WQE with 4 KiB pages.
#[allow(clippy::too_many_arguments)]
pub fn fast_reg_wqe(
    wr_id: u64,
    flags: u8,
    iova: u64,
    key: u32,
    access_flags: u32,
    length: u64,
    page_list: u64,
    page_count: u32,
    fbo: u32,
) -> [u8; wqe::WQE_SIZE] {
    use wqe::fast_reg_field as f;
    let mut b = [0u8; wqe::WQE_SIZE];
    {
        let mut w = wqe::SendWqe::new_unchecked(&mut b[..]);
        w.set_wr_id(wr_id);
        w.set_opcode(wqe::opcode::FAST_REG);
        w.set_flags(flags & !wqe::flags::INLINE);
    }
    field::set_u64(&mut b, f::IOVA, iova);
    field::set_u32(&mut b, f::KEY, key);
    field::set_u32(&mut b, f::ACCESS, access_flags);
    field::set_u64(&mut b, f::LENGTH, length);
    field::set_u64(&mut b, f::PAGE_LIST, page_list);
    field::set_u32(&mut b, f::PAGE_COUNT, page_count);
    field::set_u32(&mut b, f::FBO, fbo);
    field::set_u8(&mut b, f::PAGE_SHIFT, PAGE_SHIFT);
    b
}

/// The key a fast registration gives an MR that now has `key`: same index, next key byte
/// (so a token handed out before stops matching).
pub fn next_key(key: u32) -> u32 {
    (key & !0xFF) | ((key as u8).wrapping_add(1) as u32)
}

// ---------------------------------------------------------------------------------------------
// Connection manager (docs/device-spec.md §3.14)

/// An endpoint as the connection manager names it: family 4 or 6, port (host order) and the
/// 16-byte address (IPv4 `a.b.c.d` as bytes a, b, c, d then 12 zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmAddress {
    /// `cm::family::IPV4` or `IPV6`.
    pub family: u8,
    /// Port, host order.
    pub port: u16,
    /// Address bytes.
    pub addr: [u8; 16],
}

/// Reads a `SOCKADDR_IN` (16 bytes) or `SOCKADDR_IN6` (28 bytes) of `len` bytes; None for
/// another family or a short buffer.
pub fn parse_sockaddr(b: &[u8]) -> Option<CmAddress> {
    let family = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    let mut addr = [0u8; 16];
    match family {
        AF_INET if b.len() >= 16 => {
            addr[..4].copy_from_slice(&b[4..8]);
            Some(CmAddress {
                family: rnic_contract::cm::family::IPV4,
                port,
                addr,
            })
        }
        AF_INET6 if b.len() >= 28 => {
            addr.copy_from_slice(&b[8..24]);
            Some(CmAddress {
                family: rnic_contract::cm::family::IPV6,
                port,
                addr,
            })
        }
        _ => None,
    }
}

/// The `SOCKADDR_IN` / `SOCKADDR_IN6` bytes of an endpoint and how many of the 28 are used.
pub fn sockaddr_bytes(a: &CmAddress) -> ([u8; 28], usize) {
    let mut b = [0u8; 28];
    b[2..4].copy_from_slice(&a.port.to_be_bytes());
    if a.family == rnic_contract::cm::family::IPV6 {
        b[..2].copy_from_slice(&AF_INET6.to_le_bytes());
        b[8..24].copy_from_slice(&a.addr);
        (b, 28)
    } else {
        b[..2].copy_from_slice(&AF_INET.to_le_bytes());
        b[4..8].copy_from_slice(&a.addr[..4]);
        (b, 16)
    }
}

/// Bytes of an `NDIS_NDK_LOCAL_ENDPOINT_ENTRY` (a `SOCKADDR_INET`, then `UserModeOwner`,
/// `Listener` and `OwnerPid`).
const LOCAL_ENDPOINT_ENTRY: usize = core::mem::size_of::<NDIS_NDK_LOCAL_ENDPOINT_ENTRY>();
/// Bytes of an `NDIS_NDK_CONNECTION_ENTRY` (two `SOCKADDR_INET`s, `UserModeOwner`,
/// `OwnerPid`).
const CONNECTION_ENTRY: usize = core::mem::size_of::<NDIS_NDK_CONNECTION_ENTRY>();

/// Writes an NDK list answer (`NDIS_NDK_LOCAL_ENDPOINTS` / `NDIS_NDK_CONNECTIONS`: the
/// 0x10-byte header with `Count`, `Mapped...` FALSE, then one `entry`-byte entry per item of
/// `items`, filled by `fill`): the bytes written, or Err(bytes needed) when `out` is too
/// short. `items` is walked twice (count, then fill); should it yield fewer the second time
/// (a listener closed in between), `Count` and the size say what was written.
fn encode_ndk_list<T>(
    out: &mut [u8],
    entry: usize,
    items: impl Iterator<Item = T> + Clone,
    fill: impl Fn(&T, &mut [u8]),
) -> Result<u32, u32> {
    let needed = 0x10 + entry * items.clone().count();
    if out.len() < needed {
        return Err(needed as u32);
    }
    out[..needed].fill(0);
    let mut count = 0usize;
    for (item, e) in items.zip(out[0x10..needed].chunks_exact_mut(entry)) {
        fill(&item, e);
        count += 1;
    }
    let written = 0x10 + entry * count;
    out[0] = NDIS_OBJECT_TYPE_DEFAULT;
    out[1] = NDIS_NDK_LOCAL_ENDPOINTS_REVISION_1;
    out[2..4].copy_from_slice(&(written.min(0xFFFF) as u16).to_le_bytes());
    out[8..12].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(written as u32)
}

/// The answer to `OID_NDK_LOCAL_ENDPOINTS`: one kernel-owned entry per (endpoint, whether it
/// is a listener; else a shared endpoint), IPv4 as `SOCKADDR_IN`, IPv6 as `SOCKADDR_IN6`, in
/// the 28-byte `SOCKADDR_INET`; bytes written, or Err(bytes needed).
pub fn encode_local_endpoints(
    endpoints: impl Iterator<Item = (CmAddress, bool)> + Clone,
    out: &mut [u8],
) -> Result<u32, u32> {
    encode_ndk_list(
        out,
        LOCAL_ENDPOINT_ENTRY,
        endpoints,
        |(local, listener), e| {
            e[..28].copy_from_slice(&sockaddr_bytes(local).0);
            // UserModeOwner FALSE at 28, Listener at 29, OwnerPid 0 at 32.
            e[29] = BOOLEAN::from(*listener);
        },
    )
}

/// First port NdkCreateSharedEndpoint picks for port 0: below the device's ephemeral range
/// (49152.., where it picks listener and connect ports), so the device never hands a shared
/// endpoint's port to anyone else.
pub const SHARED_PORT_FIRST: u16 = 45056;
/// Last port NdkCreateSharedEndpoint picks.
pub const SHARED_PORT_LAST: u16 = rnic_contract::cm::EPHEMERAL_PORT_FIRST - 1;

/// The first port of the shared-endpoint range that `taken` does not claim; None when all
/// are taken.
pub fn pick_shared_port(taken: impl Fn(u16) -> bool) -> Option<u16> {
    (SHARED_PORT_FIRST..=SHARED_PORT_LAST).find(|&p| !taken(p))
}

/// Whether two resolved local endpoints (wildcards replaced by the port's address) claim the
/// same address and port: a shared endpoint and a listener, or two shared endpoints, cannot.
pub fn endpoints_clash(a: &CmAddress, b: &CmAddress) -> bool {
    a.family == b.family && a.port == b.port && a.addr == b.addr
}

/// The answer to `OID_NDK_CONNECTIONS`: one kernel-owned entry per (local, remote)
/// connection; bytes written, or Err(bytes needed).
pub fn encode_connections(
    connections: impl Iterator<Item = (CmAddress, CmAddress)> + Clone,
    out: &mut [u8],
) -> Result<u32, u32> {
    encode_ndk_list(out, CONNECTION_ENTRY, connections, |(local, remote), e| {
        e[..28].copy_from_slice(&sockaddr_bytes(local).0);
        e[28..56].copy_from_slice(&sockaddr_bytes(remote).0);
    })
}

/// The local and remote endpoints of a `CM_QUERY` record.
pub fn record_endpoints(r: &[u8]) -> Option<(CmAddress, CmAddress)> {
    use rnic_contract::cm::record as f;
    if r.len() < f::HEADER_LEN {
        return None;
    }
    let family = r[f::FAMILY];
    Some((
        CmAddress {
            family,
            port: field::get_u16(r, f::LOCAL_PORT),
            addr: field::get_array(r, f::LOCAL_ADDR),
        },
        CmAddress {
            family,
            port: field::get_u16(r, f::REMOTE_PORT),
            addr: field::get_array(r, f::REMOTE_ADDR),
        },
    ))
}

/// `CM_LISTEN` on an endpoint (port 0: the device picks one).
pub fn cm_listen_operands(local: &CmAddress) -> [u32; 14] {
    use operands::cm_listen as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u8(&mut b, f::FAMILY, local.family);
    field::set_u16(&mut b, f::PORT, local.port);
    field::set_bytes(&mut b, f::ADDR, &local.addr);
    dwords(&b)
}

/// Read limits as the connection manager takes them (≤ 16).
fn rd_atomic(n: u32) -> u8 {
    n.min(u32::from(rnic_contract::cm::MAX_RD_ATOMIC)) as u8
}

/// `CM_CONNECT`.
pub fn cm_connect_operands(
    qpn: u32,
    local: &CmAddress,
    remote: &CmAddress,
    inbound: u32,
    outbound: u32,
    pdata: u64,
    pdata_len: u8,
) -> [u32; 14] {
    use operands::cm_connect as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::QPN, qpn);
    field::set_u8(&mut b, f::FAMILY, remote.family);
    field::set_u8(&mut b, f::RESPONDER_RESOURCES, rd_atomic(inbound));
    field::set_u8(&mut b, f::INITIATOR_DEPTH, rd_atomic(outbound));
    field::set_u8(&mut b, f::PRIVATE_DATA_LEN, pdata_len);
    field::set_u64(&mut b, f::PRIVATE_DATA, pdata);
    field::set_bytes(&mut b, f::LOCAL_ADDR, &local.addr);
    field::set_bytes(&mut b, f::REMOTE_ADDR, &remote.addr);
    field::set_u16(&mut b, f::REMOTE_PORT, remote.port);
    field::set_u16(&mut b, f::LOCAL_PORT, local.port);
    dwords(&b)
}

/// `CM_ACCEPT`.
pub fn cm_accept_operands(
    conn: u32,
    qpn: u32,
    pdata: u64,
    pdata_len: u8,
    inbound: u32,
    outbound: u32,
) -> [u32; 14] {
    use operands::cm_accept as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::CONN, conn);
    field::set_u32(&mut b, f::QPN, qpn);
    field::set_u64(&mut b, f::PRIVATE_DATA, pdata);
    field::set_u8(&mut b, f::PRIVATE_DATA_LEN, pdata_len);
    field::set_u8(&mut b, f::RESPONDER_RESOURCES, rd_atomic(inbound));
    field::set_u8(&mut b, f::INITIATOR_DEPTH, rd_atomic(outbound));
    dwords(&b)
}

/// `CM_REJECT`.
pub fn cm_reject_operands(conn: u32, pdata: u64, pdata_len: u8) -> [u32; 14] {
    use operands::cm_reject as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::CONN, conn);
    field::set_u64(&mut b, f::PRIVATE_DATA, pdata);
    field::set_u8(&mut b, f::PRIVATE_DATA_LEN, pdata_len);
    dwords(&b)
}

/// `CM_QUERY` into a buffer of `len` bytes.
pub fn cm_query_operands(conn: u32, len: u32, buffer: u64) -> [u32; 14] {
    use operands::cm_query as f;
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u32(&mut b, f::CONN, conn);
    field::set_u32(&mut b, f::LEN, len);
    field::set_u64(&mut b, f::ADDR, buffer);
    dwords(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnic_contract::admin::opcode;

    fn caps_record() -> [u8; 64] {
        // The defaults of docs/device-spec.md §3.9, written independently of the contract.
        let mut r = [0u8; 64];
        r[0..4].copy_from_slice(&1024u32.to_le_bytes());
        r[4..8].copy_from_slice(&1024u32.to_le_bytes());
        r[8..12].copy_from_slice(&1024u32.to_le_bytes());
        r[12..16].copy_from_slice(&8192u32.to_le_bytes());
        r[16..20].copy_from_slice(&16384u32.to_le_bytes());
        r[20..24].copy_from_slice(&65536u32.to_le_bytes());
        r[24] = 6;
        r[25] = 6;
        r[26..28].copy_from_slice(&96u16.to_le_bytes());
        r[28..32].copy_from_slice(&(16u32 << 20).to_le_bytes());
        r[32..36].copy_from_slice(&262144u32.to_le_bytes());
        r[36] = 12;
        r[37] = 30;
        r[38] = 5;
        r[39] = 16;
        r[40..44].copy_from_slice(&262144u32.to_le_bytes());
        r
    }

    #[test]
    fn caps_become_adapter_info_and_capabilities() {
        let caps = Caps::parse(&caps_record());
        assert_eq!(caps.max_qp, 1024);
        assert_eq!(caps.max_cqe, 65536);
        assert_eq!(caps.cq_vectors, 16);
        let info = adapter_info(&caps);
        assert_eq!(info.Version, NDK_VERSION { Major: 1, Minor: 2 });
        assert_eq!(info.MaxInitiatorRequestSge, 6);
        assert_eq!(info.MaxReceiveRequestSge, 6);
        assert_eq!(info.MaxInlineDataSize, 96);
        assert_eq!(info.MaxTransferLength, 16 << 20);
        assert_eq!(info.MaxRegistrationSize, 262144 * 4096);
        assert_eq!(info.FRMRPageCount, 262144);
        assert_eq!(info.MaxReceiveQueueDepth, 16384);
        assert_eq!(info.MaxCqDepth, 65536);
        assert_eq!(info.MaxSrqDepth, 0);
        assert_eq!(info.MaxWindowSize, 0);
        assert_eq!(info.RdmaTechnology, 4);
        assert_eq!(info.AdapterFlags, 0x4 | 0x100 | 0x10000);
        assert_eq!((info.MaxCallerData, info.MaxCalleeData), (56, 148));
        let mut info = info;
        let c = capabilities(&caps, &mut info);
        assert_eq!(c.Header.Size, 0x38);
        assert_eq!(c.Header.Type, 0x80);
        assert_eq!(
            (c.MaxQpCount, c.MaxCqCount, c.MaxPdCount, c.MaxMrCount),
            (1024, 1024, 1024, 8192)
        );
        assert_eq!((c.MaxMwCount, c.MaxSrqCount), (0, 0));
        assert_eq!((c.MaxInboundReadLimit, c.MaxOutboundReadLimit), (16, 16));
        assert_eq!(
            (info.MaxInboundReadLimit, info.MaxOutboundReadLimit),
            (c.MaxInboundReadLimit, c.MaxOutboundReadLimit)
        );
        assert_eq!(c.MissingCounterMask, 0x3E00_0000);
    }

    #[test]
    fn query_adapter_info_buffer_and_version() {
        let v12 = NDK_VERSION { Major: 1, Minor: 2 };
        assert_eq!(query_adapter_info_check(0x68, v12), Ok(0x68));
        assert_eq!(
            query_adapter_info_check(0x67, v12),
            Err((0xC000_0023, 0x68))
        );
        assert_eq!(
            query_adapter_info_check(0, v12),
            Err((STATUS_BUFFER_TOO_SMALL, 0x68))
        );
        assert_eq!(
            query_adapter_info_check(0x68, NDK_VERSION { Major: 2, Minor: 0 }),
            Err((0xC001_0004, 0x68))
        );
        assert!(version_supported(NDK_VERSION { Major: 1, Minor: 1 }));
        assert!(!version_supported(NDK_VERSION { Major: 0, Minor: 9 }));
    }

    #[test]
    fn lam_sizes_count_every_page_touched() {
        // NDK_LOGICAL_ADDRESS_MAPPING: AdapterContext 0, AdapterPageCount 8, pages from 0x10,
        // 8 bytes each (ndkpi.h); one 4 KiB adapter page per page the bytes touch.
        assert_eq!(lam_size(0, 4096), Some(0x18));
        assert_eq!(lam_size(0, 4097), Some(0x20));
        assert_eq!(lam_size(0x200, 3 * 4096), Some(0x10 + 4 * 8));
        assert_eq!(lam_size(0xFFF, 2), Some(0x20));
        assert_eq!(lam_size(0, 0), None, "an empty mapping is refused");
        assert_eq!(lam_size(4096, 1), None, "an offset outside the first page");
        assert_eq!(
            lam_size(0, u64::MAX / 2),
            None,
            "more pages than a ULONG size holds"
        );
        // The pages themselves are the MDL chain's page list (logical = physical here), in
        // a buffer of exactly the size asked for.
        let pfns = [0x100, 0x2A0, 0x7, 0x31];
        let seg = MdlSegment {
            byte_offset: 0x200,
            byte_count: 3 * 4096,
            pfns: &pfns,
        };
        let pages = (lam_size(0x200, 3 * 4096).unwrap() as usize - 0x10) / 8;
        let mut out = [0u64; 4];
        let list = mdl_pages([seg], 3 * 4096, &mut out[..pages]).unwrap();
        assert_eq!(
            list,
            PageList {
                fbo: 0x200,
                page_count: 4
            }
        );
        assert_eq!(out, [0x10_0000, 0x2A_0000, 0x7000, 0x3_1000]);
    }

    #[test]
    fn one_mdl_multi_page_with_offset() {
        let pfns = [0x100, 0x2A0, 0x7];
        let seg = MdlSegment {
            byte_offset: 0x800,
            byte_count: 2 * 4096 + 0x10,
            pfns: &pfns,
        };
        assert_eq!(span_pages(0x800, 2 * 4096 + 0x10), 3);
        let mut out = [0u64; 8];
        let pl = mdl_pages([seg], 2 * 4096 + 0x10, &mut out).unwrap();
        assert_eq!(
            pl,
            PageList {
                fbo: 0x800,
                page_count: 3
            }
        );
        assert_eq!(&out[..3], &[0x10_0000, 0x2A_0000, 0x7000]);
        // A shorter length stops at the pages it needs.
        let mut out = [0u64; 8];
        let pl = mdl_pages([seg], 0x800, &mut out).unwrap();
        assert_eq!(
            pl,
            PageList {
                fbo: 0x800,
                page_count: 1
            }
        );
        let pl = mdl_pages([seg], 0x801, &mut out).unwrap();
        assert_eq!(pl.page_count, 2);
    }

    #[test]
    fn chained_mdls_continue_at_page_boundaries() {
        let a = [0x10, 0x11];
        let b = [0x40];
        let first = MdlSegment {
            byte_offset: 0x200,
            byte_count: 2 * 4096 - 0x200,
            pfns: &a,
        };
        let second = MdlSegment {
            byte_offset: 0,
            byte_count: 100,
            pfns: &b,
        };
        let mut out = [0u64; 4];
        let total = chain_bytes([first, second]);
        assert_eq!(total, 2 * 4096 - 0x200 + 100);
        let pl = mdl_pages([first, second], total, &mut out).unwrap();
        assert_eq!(
            pl,
            PageList {
                fbo: 0x200,
                page_count: 3
            }
        );
        assert_eq!(&out[..3], &[0x1_0000, 0x1_1000, 0x4_0000]);
        // The second MDL starting inside a page breaks contiguity.
        let bad = MdlSegment {
            byte_offset: 8,
            byte_count: 100,
            pfns: &b,
        };
        assert_eq!(
            mdl_pages([first, bad], total, &mut out),
            Err(MrError::NotContiguous)
        );
        // So does a first MDL ending inside a page.
        let short = MdlSegment {
            byte_offset: 0x200,
            byte_count: 100,
            pfns: &a,
        };
        assert_eq!(
            mdl_pages([short, second], 200, &mut out),
            Err(MrError::NotContiguous)
        );
    }

    #[test]
    fn zero_and_oversized_lengths_are_refused() {
        let p = [1u64];
        let seg = MdlSegment {
            byte_offset: 0,
            byte_count: 4096,
            pfns: &p,
        };
        let mut out = [0u64; 4];
        assert_eq!(mdl_pages([seg], 0, &mut out), Err(MrError::ZeroLength));
        assert_eq!(
            mdl_pages([seg], 4097, &mut out),
            Err(MrError::LengthPastMdl)
        );
        assert_eq!(mdl_pages([], 1, &mut out), Err(MrError::LengthPastMdl));
        let mut tiny = [0u64; 1];
        let p2 = [1u64, 2];
        let two = MdlSegment {
            byte_offset: 0,
            byte_count: 8192,
            pfns: &p2,
        };
        assert_eq!(
            mdl_pages([two], 8192, &mut tiny),
            Err(MrError::TooManyPages)
        );
        let odd = MdlSegment {
            byte_offset: 4096,
            byte_count: 1,
            pfns: &p,
        };
        assert_eq!(mdl_pages([odd], 1, &mut out), Err(MrError::BadOffset));
        // An MDL whose PFN array is shorter than its bytes span.
        let lying = MdlSegment {
            byte_offset: 0,
            byte_count: 8192,
            pfns: &p,
        };
        assert_eq!(
            mdl_pages([lying], 8192, &mut out),
            Err(MrError::LengthPastMdl)
        );
        assert_eq!(MrError::ZeroLength.status(), STATUS_INVALID_PARAMETER);
        assert_eq!(
            MrError::TooManyPages.status(),
            STATUS_INSUFFICIENT_RESOURCES
        );
    }

    #[test]
    fn mr_flags_map_to_device_access() {
        assert_eq!(mr_access(0), Some(0));
        assert_eq!(mr_access(NDK_MR_FLAG_ALLOW_LOCAL_WRITE), Some(1));
        assert_eq!(mr_access(NDK_MR_FLAG_ALLOW_REMOTE_READ), Some(2));
        assert_eq!(mr_access(NDK_MR_FLAG_ALLOW_REMOTE_WRITE), Some(5));
        assert_eq!(
            mr_access(NDK_MR_FLAG_RDMA_READ_SINK | NDK_MR_FLAG_ALLOW_REMOTE_READ),
            Some(0xA)
        );
        assert_eq!(mr_access(0x4), None, "remote write without local write");
        assert_eq!(mr_access(0x10), None, "unknown bit");
    }

    #[test]
    fn op_flags_map_to_fast_register_access_and_wqe_flags() {
        assert_eq!(fast_register_access(NDK_OP_FLAG_ALLOW_REMOTE_READ), 2);
        assert_eq!(fast_register_access(NDK_OP_FLAG_ALLOW_LOCAL_WRITE), 1);
        assert_eq!(fast_register_access(NDK_OP_FLAG_ALLOW_REMOTE_WRITE), 5);
        assert_eq!(fast_register_access(NDK_OP_FLAG_RDMA_READ_SINK), 8);
        assert_eq!(
            fast_register_access(NDK_OP_FLAG_SILENT_SUCCESS | NDK_OP_FLAG_INLINE),
            0
        );
        // NDK_MR_FLAG values read as operation flags mean something else entirely.
        assert_eq!(fast_register_access(NDK_MR_FLAG_ALLOW_REMOTE_WRITE), 0);
        assert_eq!(send_wqe_flags(0), wqe::flags::SIGNALED);
        assert_eq!(send_wqe_flags(NDK_OP_FLAG_SILENT_SUCCESS), 0);
        assert_eq!(
            send_wqe_flags(
                NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT | NDK_OP_FLAG_INLINE | NDK_OP_FLAG_READ_FENCE
            ),
            wqe::flags::SIGNALED | wqe::flags::SOLICITED | wqe::flags::INLINE | wqe::flags::FENCE
        );
    }

    #[test]
    fn cqes_become_ndk_results() {
        let mut c = CqeRepr {
            wr_id: 0x1234_5678,
            byte_len: 64,
            imm_inv: 0x0000_0A07,
            qpn: 2,
            opcode: cqe::opcode::RECV,
            status: 0,
            flags: cqe::flags::INV,
            vendor_err: 0,
        };
        let qpc = 0x99usize as *mut core::ffi::c_void;
        let x = result_ex(&c, qpc);
        assert_eq!(x.Status, STATUS_SUCCESS);
        assert_eq!(x.BytesTransferred, 64);
        assert_eq!(x.Type, NdkOperationTypeReceiveAndInvalidate);
        assert_eq!(x.TypeSpecificCompletionOutput, 0xA07);
        assert_eq!(x.RequestContext as usize, 0x1234_5678);
        assert_eq!(x.QPContext, qpc);
        let r = result(&x);
        assert_eq!((r.Status, r.BytesTransferred), (0, 64));
        c.status = WcStatus::Flushed.code();
        c.flags = 0;
        let x = result_ex(&c, qpc);
        assert_eq!(x.Status, STATUS_CANCELLED);
        assert_eq!(x.BytesTransferred, 0);
        assert_eq!(x.Type, NdkOperationTypeReceive);
        assert_eq!(
            completion_status(WcStatus::LocalLengthError.code(), cqe::opcode::RECV),
            STATUS_BUFFER_OVERFLOW
        );
        assert_eq!(
            completion_status(WcStatus::LocalLengthError.code(), cqe::opcode::SEND),
            STATUS_INVALID_BUFFER_SIZE
        );
        assert_eq!(
            completion_status(WcStatus::RemoteAccessError.code(), cqe::opcode::RDMA_WRITE),
            STATUS_ACCESS_VIOLATION
        );
        assert_eq!(
            completion_status(WcStatus::LocalProtectionError.code(), cqe::opcode::SEND),
            STATUS_ACCESS_VIOLATION
        );
        assert_eq!(
            completion_status(WcStatus::RnrRetryExceeded.code(), cqe::opcode::SEND),
            STATUS_IO_TIMEOUT
        );
        assert_eq!(
            completion_status(0xEE, cqe::opcode::SEND),
            STATUS_DATA_ERROR
        );
        assert_eq!(
            operation_type(cqe::opcode::RDMA_READ, 0),
            NdkOperationTypeRead
        );
        assert_eq!(
            operation_type(cqe::opcode::RDMA_WRITE, 0),
            NdkOperationTypeWrite
        );
        assert_eq!(
            operation_type(cqe::opcode::FAST_REG, 0),
            NdkOperationTypeFastRegister
        );
        assert_eq!(
            operation_type(cqe::opcode::LOCAL_INV, 0),
            NdkOperationTypeInvalidate
        );
        assert_eq!(
            operation_type(cqe::opcode::SEND, cqe::flags::INV),
            NdkOperationTypeSend
        );
    }

    #[test]
    fn phases_ring_sizes_and_admin_statuses() {
        assert!(cqe_phase(0, 4));
        assert!(cqe_phase(3, 4));
        assert!(!cqe_phase(4, 4));
        assert!(cqe_phase(8, 4));
        assert_eq!(ring_entries(0, 65536), Some(2));
        assert_eq!(ring_entries(3, 65536), Some(4));
        assert_eq!(ring_entries(65536, 65536), Some(65536));
        assert_eq!(ring_entries(65537, 65536), None);
        assert_eq!(ring_entries(u32::MAX, 65536), None);
        assert_eq!(admin_status(0), STATUS_SUCCESS);
        assert_eq!(admin_status(0x02), STATUS_INVALID_PARAMETER);
        assert_eq!(admin_status(0x10), STATUS_INSUFFICIENT_RESOURCES);
        assert_eq!(admin_status(0x11), STATUS_INVALID_HANDLE);
        assert_eq!(admin_status(0x12), STATUS_INVALID_DEVICE_STATE);
        assert_eq!(admin_status(0x7777), STATUS_UNSUCCESSFUL);
    }

    #[test]
    fn operand_records_follow_the_spec() {
        // Byte positions copied independently from docs/device-spec.md §3.11 and §3.13.
        let d = create_cq_operands(0x1_2345_6780, 64, 3, 7, 50);
        assert_eq!(
            (d[0], d[1], d[2], d[3], d[4]),
            (0x2345_6780, 1, 64, 3 | 7 << 16, 50)
        );
        let d = reg_mr_operands(
            5,
            5,
            0x7000_0800,
            0x2010,
            0x9000,
            PageList {
                fbo: 0x800,
                page_count: 3,
            },
            0x42,
        );
        assert_eq!(
            (d[0], d[1], d[2], d[3], d[4], d[5]),
            (5, 5, 0x7000_0800, 0, 0x2010, 0)
        );
        assert_eq!((d[6], d[7], d[8], d[9]), (0x9000, 0, 3, 0x800));
        assert_eq!(d[10], 12 | 0x42 << 8);
        let d = alloc_fr_mr_operands(9, 16, 0x11);
        assert_eq!((d[0], d[1], d[2]), (9, 16, 0x11));
        let d = modify_cq_operands(4, 100_000, 9);
        assert_eq!((d[0], d[1], d[2]), (4, 0xFFFF, 9));
        let d = resize_cq_operands(4, 0x8000, 128);
        assert_eq!((d[0], d[2], d[3], d[4]), (4, 0x8000, 0, 128));
        assert_eq!(handle_operands(77)[0], 77);
        assert_eq!(query_caps_operands(0xABC0)[0], 0xABC0);
        let d = query_device_operands(0x1234_0000);
        // A 96-byte buffer: the extended record with the port's IPv6 address (§3.7.1).
        assert_eq!((d[0], d[2]), (0x1234_0000, 96));
        let _ = opcode::QUERY_CAPS;
    }

    /// The IPv6 address of `fd00:4d::N` as bytes.
    fn v6(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0xfd, 0x00, 0x00, 0x4d]);
        a[15] = last;
        a
    }

    #[test]
    fn port_addresses_from_the_extended_query_device_record() {
        // Offsets copied independently from docs/device-spec.md §3.7.1: IPv4 at 60, IPv6 at
        // 64..80 (extended record only; all zero = none).
        let mut rec = [0u8; 96];
        rec[60..64].copy_from_slice(&[10, 77, 0, 1]);
        let none = PortAddresses::from_query_device(&rec, 96);
        assert_eq!(
            none,
            PortAddresses {
                ipv4: [10, 77, 0, 1],
                ipv6: None
            }
        );
        rec[64..80].copy_from_slice(&v6(1));
        let both = PortAddresses::from_query_device(&rec, 96);
        assert_eq!(both.ipv6, Some(v6(1)));
        // A device that wrote only the 64-byte record has no IPv6 address, whatever the
        // buffer held.
        assert_eq!(PortAddresses::from_query_device(&rec, 64).ipv6, None);

        let mut own4 = [0u8; 16];
        own4[..4].copy_from_slice(&[10, 77, 0, 1]);
        assert_eq!(both.own(4), Some(own4));
        assert_eq!(both.own(6), Some(v6(1)));
        assert_eq!(none.own(6), None);
        assert_eq!(both.own(5), None);

        let wild6 = CmAddress {
            family: 6,
            port: 7,
            addr: [0; 16],
        };
        let mine6 = CmAddress {
            addr: v6(1),
            ..wild6
        };
        let other6 = CmAddress {
            addr: v6(2),
            ..wild6
        };
        assert!(both.accepts(&wild6) && both.accepts(&mine6));
        assert!(
            !both.accepts(&other6),
            "another host's IPv6 address is not the port's"
        );
        assert!(!none.accepts(&wild6), "IPv6 on a port with no IPv6 address");
        let wild4 = CmAddress {
            family: 4,
            port: 7,
            addr: [0; 16],
        };
        assert!(none.accepts(&wild4));
        assert!(!none.accepts(&CmAddress {
            addr: [10, 77, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..wild4
        }));
        assert_eq!(both.resolve(&wild6), mine6);
        assert_eq!(both.resolve(&wild4).addr, own4);
        assert_eq!(both.resolve(&other6), other6);
        assert_eq!(none.resolve(&wild6), wild6);
    }

    #[test]
    fn ipv6_sockaddrs_and_cm_operands() {
        // SOCKADDR_IN6 (ws2ipdef.h): family 23 at 0, port (big-endian) at 2, flow info at 4,
        // address at 8..24, scope id at 24; 28 bytes.
        let mut sin6 = [0u8; 28];
        sin6[..2].copy_from_slice(&23u16.to_le_bytes());
        sin6[2..4].copy_from_slice(&5002u16.to_be_bytes());
        sin6[4..8].copy_from_slice(&[0, 0, 0, 9]);
        sin6[8..24].copy_from_slice(&v6(2));
        sin6[24..28].copy_from_slice(&3u32.to_le_bytes());
        let remote = parse_sockaddr(&sin6).unwrap();
        assert_eq!(
            remote,
            CmAddress {
                family: 6,
                port: 5002,
                addr: v6(2)
            }
        );
        // Written back: flow info and scope id 0 (the device keeps neither), 28 bytes.
        let (bytes, n) = sockaddr_bytes(&remote);
        assert_eq!(n, 28);
        assert_eq!(bytes[..4], sin6[..4]);
        assert_eq!(bytes[4..8], [0; 4]);
        assert_eq!(bytes[8..24], v6(2));
        assert_eq!(bytes[24..], [0; 4]);
        // An AF_INET6 family in a SOCKADDR_IN-sized buffer is refused.
        assert_eq!(parse_sockaddr(&sin6[..16]), None);
        // Byte positions of docs/device-spec.md §3.14, copied independently: family 6, the
        // 16 address bytes as they are.
        let d = cm_listen_operands(&remote);
        assert_eq!(
            (d[0], d[4], d[7]),
            (6 | 5002 << 16, 0x4d00_00fd, 0x0200_0000)
        );
        let d = cm_connect_operands(
            9,
            &CmAddress {
                family: 6,
                ..CmAddress::default()
            },
            &remote,
            1,
            1,
            0,
            0,
        );
        assert_eq!(d[1] & 0xFF, 6);
        assert_eq!((d[4], d[7]), (0, 0), "local address 0: the port's own");
        assert_eq!((d[8], d[11], d[12]), (0x4d00_00fd, 0x0200_0000, 5002));
        let mut rec = [0u8; 64];
        rec[1] = 6;
        rec[2..4].copy_from_slice(&5002u16.to_le_bytes());
        rec[4..6].copy_from_slice(&49153u16.to_le_bytes());
        rec[16..32].copy_from_slice(&v6(2));
        rec[32..48].copy_from_slice(&v6(1));
        let (l, r) = record_endpoints(&rec).unwrap();
        assert_eq!(
            l,
            CmAddress {
                family: 6,
                port: 5002,
                addr: v6(2)
            }
        );
        assert_eq!(
            r,
            CmAddress {
                family: 6,
                port: 49153,
                addr: v6(1)
            }
        );
    }

    #[test]
    fn shared_endpoint_ports_and_clashes() {
        // The range sits just below the device's ephemeral ports (docs/device-spec.md §3.14:
        // the device picks from 49152).
        assert_eq!((SHARED_PORT_FIRST, SHARED_PORT_LAST), (45056, 49151));
        assert_eq!(pick_shared_port(|_| false), Some(45056));
        assert_eq!(pick_shared_port(|p| p < 45060), Some(45060));
        assert_eq!(pick_shared_port(|_| true), None);
        let a = CmAddress {
            family: 6,
            port: 7000,
            addr: v6(1),
        };
        assert!(endpoints_clash(&a, &a));
        assert!(!endpoints_clash(&a, &CmAddress { port: 7001, ..a }));
        assert!(!endpoints_clash(&a, &CmAddress { family: 4, ..a }));
        assert!(!endpoints_clash(&a, &CmAddress { addr: v6(2), ..a }));
    }

    #[test]
    fn ndk_oid_lists_carry_both_families() {
        // Layout copied independently from ndis.h (NDIS_NDK_LOCAL_ENDPOINTS /
        // NDIS_NDK_CONNECTIONS, revision 1): header 0x80/1/size, Flags at 4, Count at 8,
        // the mapped-to-TCP BOOLEAN at 12, entries from 0x10 (0x24 and 0x40 bytes).
        let l4 = CmAddress {
            family: 4,
            port: 5000,
            addr: [10, 77, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let l6 = CmAddress {
            family: 6,
            port: 5001,
            addr: v6(2),
        };
        let mut out = [0xAAu8; 0x10 + 2 * 0x24];
        assert_eq!(
            encode_local_endpoints([(l4, true), (l6, false)].into_iter(), &mut out[..0x20]),
            Err(0x58)
        );
        assert_eq!(
            encode_local_endpoints([(l4, true), (l6, false)].into_iter(), &mut out),
            Ok(0x58)
        );
        assert_eq!(out[..4], [0x80, 1, 0x58, 0]);
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 2);
        assert_eq!(out[12], 0);
        let e0 = &out[0x10..0x34];
        assert_eq!(e0[..8], [2, 0, 0x13, 0x88, 10, 77, 0, 2]);
        assert_eq!((e0[28], e0[29]), (0, 1), "kernel owner, a listener");
        let e1 = &out[0x34..0x58];
        assert_eq!(e1[..4], [23, 0, 0x13, 0x89]);
        assert_eq!(e1[4..8], [0; 4], "flow info");
        assert_eq!(e1[8..24], v6(2));
        assert_eq!(e1[24..28], [0; 4], "scope id");
        assert_eq!(e1[29], 0, "a shared endpoint");

        let r6 = CmAddress {
            family: 6,
            port: 49152,
            addr: v6(1),
        };
        let mut out = [0xAAu8; 0x50];
        assert_eq!(
            encode_connections([(l6, r6)].into_iter(), &mut out[..0x4F]),
            Err(0x50)
        );
        assert_eq!(
            encode_connections([(l6, r6)].into_iter(), &mut out),
            Ok(0x50)
        );
        assert_eq!(out[..4], [0x80, 1, 0x50, 0]);
        assert_eq!(out[8], 1);
        assert_eq!(out[0x10..0x14], [23, 0, 0x13, 0x89]);
        assert_eq!(out[0x18..0x28], v6(2));
        assert_eq!(out[0x2C..0x30], [23, 0, 0xC0, 0x00]);
        assert_eq!(out[0x34..0x44], v6(1));
        assert_eq!(out[0x48..0x50], [0; 8], "kernel owner, pid 0");
        // No entries: the bare header.
        assert_eq!(encode_connections(core::iter::empty(), &mut out), Ok(0x10));
        assert_eq!(out[..4], [0x80, 1, 0x10, 0]);
    }

    #[test]
    fn sockaddrs_and_cm_operands() {
        let mut sin = [0u8; 16];
        sin[..2].copy_from_slice(&2u16.to_le_bytes());
        sin[2..4].copy_from_slice(&5001u16.to_be_bytes());
        sin[4..8].copy_from_slice(&[10, 77, 0, 1]);
        let a = parse_sockaddr(&sin).unwrap();
        assert_eq!((a.family, a.port), (4, 5001));
        assert_eq!(&a.addr[..5], &[10, 77, 0, 1, 0]);
        assert_eq!(
            sockaddr_bytes(&a),
            (
                {
                    let mut b = [0u8; 28];
                    b[..16].copy_from_slice(&sin);
                    b
                },
                16
            )
        );
        let mut sin6 = [0u8; 28];
        sin6[..2].copy_from_slice(&23u16.to_le_bytes());
        sin6[2..4].copy_from_slice(&80u16.to_be_bytes());
        sin6[8] = 0xfd;
        sin6[23] = 1;
        let b6 = parse_sockaddr(&sin6).unwrap();
        assert_eq!(
            (b6.family, b6.port, b6.addr[0], b6.addr[15]),
            (6, 80, 0xfd, 1)
        );
        assert_eq!(sockaddr_bytes(&b6).1, 28);
        assert_eq!(parse_sockaddr(&sin6[..20]), None);
        assert_eq!(parse_sockaddr(&[1, 0, 0, 0]), None);
        // Byte positions of docs/device-spec.md §3.14, copied independently.
        let d = cm_listen_operands(&a);
        assert_eq!((d[0], d[4]), (4 | 5001 << 16, 0x0100_4D0A));
        let d = cm_connect_operands(7, &CmAddress::default(), &a, 20, 3, 0x5000, 56);
        assert_eq!(
            (d[0], d[1], d[2], d[3]),
            (7, 4 | 16 << 8 | 3 << 16 | 56 << 24, 0x5000, 0)
        );
        assert_eq!((d[8], d[12]), (0x0100_4D0A, 5001));
        let d = cm_accept_operands(0x10001, 7, 0x6000, 196, 1, 2);
        assert_eq!(
            (d[0], d[1], d[2], d[4]),
            (0x10001, 7, 0x6000, 196 | 1 << 8 | 2 << 16)
        );
        let d = cm_reject_operands(3, 0x7000, 148);
        assert_eq!((d[0], d[2], d[4]), (3, 0x7000, 148));
        let d = cm_query_operands(3, 260, 0x8000);
        assert_eq!((d[0], d[1], d[2]), (3, 260, 0x8000));
        let mut rec = [0u8; 64];
        rec[1] = 4;
        rec[2..4].copy_from_slice(&5001u16.to_le_bytes());
        rec[4..6].copy_from_slice(&49152u16.to_le_bytes());
        rec[16..20].copy_from_slice(&[10, 77, 0, 1]);
        rec[32..36].copy_from_slice(&[10, 77, 0, 2]);
        let (l, r) = record_endpoints(&rec).unwrap();
        assert_eq!((l.port, r.port, l.addr[3], r.addr[3]), (5001, 49152, 1, 2));
        assert_eq!(admin_status(0x17), STATUS_ADDRESS_ALREADY_EXISTS);
    }

    #[test]
    fn qp_shapes_follow_the_limits() {
        let caps = Caps::parse(&caps_record());
        let s = qp_shape(&caps, 3, 16384, 6, 6, 96).unwrap();
        assert_eq!(
            (s.sq_entries, s.rq_entries, s.send_sge, s.recv_sge, s.inline),
            (16384, 4, 6, 6, 96)
        );
        assert_eq!(
            qp_shape(&caps, 16385, 1, 1, 1, 0),
            None,
            "depth past the maximum"
        );
        assert_eq!(
            qp_shape(&caps, 1, 1, 7, 1, 0),
            None,
            "receive SGEs past the maximum"
        );
        assert_eq!(
            qp_shape(&caps, 1, 1, 1, 7, 0),
            None,
            "send SGEs past the maximum"
        );
        assert_eq!(
            qp_shape(&caps, 1, 1, 1, 1, 97),
            None,
            "inline past the maximum"
        );
        assert_eq!(qp_shape(&caps, 0, 1, 1, 1, 0), None, "zero depth");
        // Byte positions of docs/device-spec.md §3.12, copied independently.
        let d = create_qp_operands(1, 2, 3, &s, 0x1000, 0x2000);
        assert_eq!((d[0], d[1], d[2], d[3], d[4]), (1, 2, 3, 16384, 4));
        assert_eq!((d[5], d[6], d[7], d[8]), (0x1000, 0, 0x2000, 0));
        assert_eq!(d[9], 6 | 6 << 8 | 96 << 16);
        assert_eq!(d[10], 0);
        let d = modify_qp_state_operands(9, rnic_contract::verbs::QpState::Init, Some(6));
        assert_eq!((d[0], d[1], d[2], d[3]), (9, 1 | 1 << 5, 1, 6 << 8));
        let d = modify_qp_rnr_operands(9);
        assert_eq!(
            (d[0], d[1], d[2], d[3]),
            (9, 1 << 3 | 1 << 10, 6 << 24, 22 << 16)
        );
        let d = modify_qp_state_operands(9, rnic_contract::verbs::QpState::Err, None);
        assert_eq!((d[1], d[2] & 0xFF), (1, 6));
    }

    #[test]
    fn work_queue_entries_follow_the_spec() {
        let sge = wqe::SgeRepr {
            addr: 0x7000_0010,
            len: 64,
            lkey: 0x105,
        };
        let w = send_wqe(
            0xAB,
            wqe::opcode::RDMA_WRITE,
            wqe::flags::SIGNALED,
            &[sge, sge],
            0,
            0x9000,
            0x207,
        )
        .unwrap();
        assert_eq!(u64::from_le_bytes(w[0..8].try_into().unwrap()), 0xAB);
        assert_eq!((w[8], w[9], w[10]), (3, 1, 2));
        assert_eq!(u64::from_le_bytes(w[16..24].try_into().unwrap()), 0x9000);
        assert_eq!(u32::from_le_bytes(w[24..28].try_into().unwrap()), 0x207);
        assert_eq!(
            u64::from_le_bytes(w[32..40].try_into().unwrap()),
            0x7000_0010
        );
        assert_eq!(u32::from_le_bytes(w[40..44].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(w[44..48].try_into().unwrap()), 0x105);
        assert_eq!(send_wqe(0, 0, 0, &[sge; 7], 0, 0, 0), None);
        let w = inline_wqe(
            1,
            wqe::opcode::SEND,
            wqe::flags::SIGNALED,
            b"hello",
            0,
            0,
            0,
        )
        .unwrap();
        assert_eq!(w[9], 1 | 4);
        assert_eq!(u32::from_le_bytes(w[28..32].try_into().unwrap()), 5);
        assert_eq!(&w[32..37], b"hello");
        assert_eq!(inline_wqe(1, 0, 0, &[0; 97], 0, 0, 0), None);
        let r = recv_wqe(5, &[sge]).unwrap();
        assert_eq!(
            (r[8], u32::from_le_bytes(r[40..44].try_into().unwrap())),
            (1, 64)
        );
        let f = fast_reg_wqe(2, 1, 0x4000_0000, 0x301, 5, 8192, 0x8800, 2, 0x10);
        assert_eq!((f[8], f[9]), (6, 1));
        assert_eq!(
            u64::from_le_bytes(f[16..24].try_into().unwrap()),
            0x4000_0000
        );
        assert_eq!(u32::from_le_bytes(f[24..28].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_le_bytes(f[28..32].try_into().unwrap()), 5);
        assert_eq!(u64::from_le_bytes(f[32..40].try_into().unwrap()), 8192);
        assert_eq!(u64::from_le_bytes(f[40..48].try_into().unwrap()), 0x8800);
        assert_eq!(u32::from_le_bytes(f[48..52].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(f[52..56].try_into().unwrap()), 0x10);
        assert_eq!(f[56], 12);
        assert_eq!(next_key(0x1FF), 0x100);
        assert_eq!(next_key(0x2A7), 0x2A8);
    }
}

//! The NDK adapter object: `OpenNDKAdapterHandler` / `CloseNDKAdapterHandler` and the nine
//! entries of `NDK_ADAPTER_DISPATCH`.
//!
//! | entry | state |
//! | --- | --- |
//! | NdkQueryExtension | `STATUS_NOT_SUPPORTED` (no extension interfaces) |
//! | NdkQueryAdapterInfo | implemented (PASSIVE_LEVEL) |
//! | NdkCreateCq | implemented (`cq`) |
//! | NdkCreatePd | implemented (`pd`) |
//! | NdkCreateSharedEndpoint | implemented (`cm`): a reserved local address and port several connectors connect from |
//! | NdkCreateConnector | implemented (`cm`) |
//! | NdkCreateListener | implemented (`cm`) |
//! | NdkBuildLAM | implemented, completes at once: logical address = guest-physical address, 4 KiB pages (for NdkFastRegister; there is no privileged memory region token) |
//! | NdkReleaseLAM | implemented: nothing to free (no mapping is held for a LAM) |

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};

use ndis_abi::*;

use crate::adapter::Adapter;
use crate::ffi::log;
use crate::ndk::{self, cm, cq, pd};
use crate::ndk_logic;

/// One open NDK adapter (`NDK_ADAPTER` first, so the consumer's pointer is ours).
#[repr(C)]
pub(crate) struct NdkAdapter {
    /// The NDK object the consumer sees.
    pub ndk: NDK_ADAPTER,
    /// The miniport adapter.
    pub a: *mut Adapter,
    /// Live PDs, CQs, connectors and listeners created on it.
    pub children: AtomicU32,
}

/// The adapter's dispatch table.
static DISPATCH: NDK_ADAPTER_DISPATCH = NDK_ADAPTER_DISPATCH {
    NdkQueryExtension: Some(ndk::query_extension),
    NdkQueryAdapterInfo: Some(query_adapter_info),
    NdkCreateCq: Some(cq::create),
    NdkCreatePd: Some(pd::create),
    NdkCreateSharedEndpoint: Some(cm::create_shared_endpoint),
    NdkCreateConnector: Some(cm::create_connector),
    NdkCreateListener: Some(cm::create_listener),
    NdkBuildLAM: Some(build_lam),
    NdkReleaseLAM: Some(release_lam),
};

/// OpenNDKAdapterHandler. IRQL: PASSIVE_LEVEL. Opens an NDK adapter on the miniport adapter
/// for the NDKPI version asked for: major 1 only (`NDIS_STATUS_BAD_VERSION` otherwise); fails
/// with `NDIS_STATUS_ADAPTER_NOT_READY` while NDK is disabled or was never set up.
///
/// # Safety
/// Called by NDIS with the context registered in InitializeEx and valid pointers.
pub(crate) unsafe extern "win64" fn OpenNdkAdapter(
    context: NDIS_HANDLE,
    params: *mut NDIS_OPEN_NDK_ADAPTER_PARAMETERS,
    out: *mut *mut NDK_ADAPTER,
) -> NDIS_STATUS {
    let a = context.cast::<Adapter>();
    if params.is_null() || out.is_null() {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    // SAFETY: NDIS passes valid pointers; `a` is our live context.
    unsafe {
        let version = (*params).Version;
        if !ndk_logic::version_supported(version) {
            log!(
                "NDK open refused: version %u.%u\n",
                u32::from(version.Major),
                u32::from(version.Minor)
            );
            return NDIS_STATUS_BAD_VERSION;
        }
        if !(*a).ndk.enabled.load(Ordering::Acquire) {
            return NDIS_STATUS_ADAPTER_NOT_READY;
        }
        let na = ndk::alloc_zeroed::<NdkAdapter>(a);
        if na.is_null() {
            return NDIS_STATUS_RESOURCES;
        }
        (*na).ndk = NDK_ADAPTER {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeAdapter),
            Dispatch: &DISPATCH,
        };
        (*na).a = a;
        (*a).ndk.open_adapters.fetch_add(1, Ordering::AcqRel);
        *out = na.cast();
        log!(
            "NDK adapter opened (%u.%u)\n",
            u32::from(version.Major),
            u32::from(version.Minor)
        );
    }
    NDIS_STATUS_SUCCESS
}

/// CloseNDKAdapterHandler. IRQL: PASSIVE_LEVEL. NDIS calls it after every object of the
/// adapter was closed; an adapter that still has children is logged and kept (freeing it
/// would leave them dangling).
///
/// # Safety
/// `adapter` came from [`OpenNdkAdapter`] and is not used afterwards.
pub(crate) unsafe extern "win64" fn CloseNdkAdapter(
    context: NDIS_HANDLE,
    adapter: *mut NDK_ADAPTER,
) {
    let a = context.cast::<Adapter>();
    let na = adapter.cast::<NdkAdapter>();
    if na.is_null() {
        return;
    }
    // SAFETY: `na` is the object OpenNdkAdapter allocated.
    unsafe {
        let children = (*na).children.load(Ordering::Acquire);
        if children != 0 {
            log!("NDK adapter closed with %u live objects; kept\n", children);
            return;
        }
        ndk::free(na);
        (*a).ndk.open_adapters.fetch_sub(1, Ordering::AcqRel);
    }
    log!("NDK adapter closed\n");
}

/// NdkQueryAdapterInfo. IRQL: PASSIVE_LEVEL. Copies the adapter information: a buffer
/// smaller than `NDK_ADAPTER_INFO` fails with `STATUS_BUFFER_TOO_SMALL` and the needed size
/// in `*size`; a `Version` field with a major version other than 1 (0 means "any") fails
/// with `NDIS_STATUS_BAD_VERSION`.
unsafe extern "win64" fn query_adapter_info(
    adapter: *mut NDK_ADAPTER,
    info: *mut NDK_ADAPTER_INFO,
    size: *mut u32,
) -> NTSTATUS {
    if adapter.is_null() || size.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its adapter and valid buffers of `*size` bytes.
    unsafe {
        let a = ndk::device_of(adapter.cast());
        let asked = if info.is_null() || *size < 4 {
            NDK_VERSION::default()
        } else {
            core::ptr::read_unaligned(info.cast::<NDK_VERSION>())
        };
        let buffer = if info.is_null() { 0 } else { *size };
        match ndk_logic::query_adapter_info_check(buffer, asked) {
            Ok(n) => {
                core::ptr::write_unaligned(info, (*a).ndk.info);
                *size = n;
                STATUS_SUCCESS
            }
            Err((status, needed)) => {
                *size = needed;
                status
            }
        }
    }
}

/// NdkBuildLAM. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`, the request
/// completion is never called): for this device an adapter logical address is the
/// guest-physical address (`PFN << 12`, 4 KiB pages), so the mapping is the MDL chain's page
/// list, written straight into the consumer's `NDK_LOGICAL_ADDRESS_MAPPING` with the first
/// byte's offset in `*fbo`. The MDL's virtual address is never dereferenced. Fails with
/// `STATUS_BUFFER_TOO_SMALL` and the needed size in `*lam_size` when the buffer is short,
/// `STATUS_INVALID_PARAMETER` for a zero length, a length past the MDL chain or a chain that
/// is not virtually contiguous.
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn build_lam(
    adapter: *mut NDK_ADAPTER,
    mdl: *mut MDL,
    length: usize,
    _completion: Option<NDK_FN_REQUEST_COMPLETION>,
    _context: *mut c_void,
    lam: *mut NDK_LOGICAL_ADDRESS_MAPPING,
    lam_size: *mut u32,
    fbo: *mut u32,
) -> NTSTATUS {
    if adapter.is_null() || mdl.is_null() || lam_size.is_null() || fbo.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter, a locked MDL chain it leaves alone during
    // the call, and a LAM buffer of `*lam_size` bytes (only headers and PFN arrays of the
    // chain are read; the buffer is written within its size).
    unsafe {
        let Some(needed) = ndk_logic::lam_size((*mdl).ByteOffset, length as u64) else {
            return STATUS_INVALID_PARAMETER;
        };
        if lam.is_null() || *lam_size < needed {
            *lam_size = needed;
            return STATUS_BUFFER_TOO_SMALL;
        }
        let pages = ((needed - LAM_HEADER) / 8) as usize;
        let array = core::ptr::addr_of_mut!((*lam).AdapterPageArray).cast::<u64>();
        let out = core::slice::from_raw_parts_mut(array, pages);
        match ndk_logic::mdl_pages(crate::ndk::mr::segments(mdl), length as u64, out) {
            Ok(list) => {
                (*lam).AdapterContext = core::ptr::null_mut();
                (*lam).AdapterPageCount = list.page_count;
                *lam_size = needed;
                *fbo = list.fbo;
                STATUS_SUCCESS
            }
            Err(e) => e.status(),
        }
    }
}

/// Bytes of an `NDK_LOGICAL_ADDRESS_MAPPING` before its page array.
const LAM_HEADER: u32 = core::mem::offset_of!(NDK_LOGICAL_ADDRESS_MAPPING, AdapterPageArray) as u32;

/// NdkReleaseLAM. IRQL: <= DISPATCH_LEVEL. The provider holds nothing for a LAM (the
/// mapping lives in the consumer's buffer and its addresses are the pages' own, with no
/// IOMMU mapping to undo), so there is nothing to free and the LAM is left as it is.
unsafe extern "win64" fn release_lam(
    _adapter: *mut NDK_ADAPTER,
    _lam: *mut NDK_LOGICAL_ADDRESS_MAPPING,
) {
}

//! NDIS's NET_BUFFER_LIST pools, MDLs and the receive indication, as the driver's receive path
//! uses them. The guest tracks every pool, NBL and MDL it hands out (freeing an unknown one,
//! or leaving one allocated at unload, is a violation) and keeps every indicated frame for
//! the send/receive test, which checks the payloads and then returns the NBLs to the driver
//! through MiniportReturnNetBufferLists, as a protocol would.
#![allow(non_snake_case)]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use ndis_abi::*;

use super::contract::{export, refuse, require_adapter, require_irql, require_non_null, Checked};
use super::{violation, Phase, DISPATCH_LEVEL, IRQL, STATE};
use crate::sync::IrqLock;

const _: NdisAllocateNetBufferListPoolFn = NdisAllocateNetBufferListPool;
const _: NdisFreeNetBufferListPoolFn = NdisFreeNetBufferListPool;
const _: NdisAllocateNetBufferAndNetBufferListFn = NdisAllocateNetBufferAndNetBufferList;
const _: NdisFreeNetBufferListFn = NdisFreeNetBufferList;
const _: NdisAllocateMdlFn = NdisAllocateMdl;
const _: NdisFreeMdlFn = NdisFreeMdl;
const _: NdisMIndicateReceiveNetBufferListsFn = NdisMIndicateReceiveNetBufferLists;
const _: NdisMAllocateNetBufferSGListFn = NdisMAllocateNetBufferSGList;
const _: NdisMFreeNetBufferSGListFn = NdisMFreeNetBufferSGList;

/// Everything the guest handed out for NBLs and MDLs.
pub struct NetBufState {
    /// Live pools (their handles are boxed cookies).
    pub pools: BTreeSet<u64>,
    /// Live NBLs: address -> (pool, its NET_BUFFER).
    pub nbls: BTreeMap<u64, (u64, u64)>,
    /// Live MDLs.
    pub mdls: BTreeSet<u64>,
    /// Frames indicated and not yet returned: (NBL, frame bytes).
    pub received: Vec<(u64, Vec<u8>)>,
    /// The adapter that indicated each NBL of `received`.
    pub received_on: BTreeMap<u64, usize>,
    /// Scatter/gather lists handed to the driver: list address -> (NET_BUFFER, its bytes).
    pub sg_lists: BTreeMap<u64, (u64, usize)>,
}

impl NetBufState {
    /// Nothing allocated, nothing received.
    pub const fn new() -> Self {
        Self {
            pools: BTreeSet::new(),
            nbls: BTreeMap::new(),
            mdls: BTreeSet::new(),
            received: Vec::new(),
            received_on: BTreeMap::new(),
            sg_lists: BTreeMap::new(),
        }
    }
}

/// The guest's NBL/MDL bookkeeping.
pub static NETBUF: IrqLock<NetBufState> = IrqLock::new(NetBufState::new());

fn nbl_layout() -> Layout {
    Layout::from_size_align(NET_BUFFER_LIST_MIN_ALLOCATION, 16).expect("constant layout")
}
fn nb_layout() -> Layout {
    Layout::new::<NET_BUFFER>()
}

pub unsafe extern "win64" fn NdisAllocateNetBufferListPool(
    NdisHandle: NDIS_HANDLE,
    Parameters: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
) -> NDIS_HANDLE {
    const F: &str = "NdisAllocateNetBufferListPool";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        require_adapter(F, NdisHandle)?;
        require_non_null(F, Parameters, "Parameters")?;
        // SAFETY: non-null, the driver's parameters.
        let p = unsafe { *Parameters };
        if p.Header.Type != NDIS_OBJECT_TYPE_DEFAULT
            || p.Header.Revision < NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1
            || p.Header.Size < NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1
        {
            return refuse(
                F,
                format!("bad parameters header {:?}", p.Header),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        if p.fAllocateNetBuffer == 0 || p.DataSize != 0 || p.ContextSize != 0 {
            return refuse(
                F,
                "only pools of NBLs with one NET_BUFFER, no data or context preallocation, are provided",
                NDIS_STATUS_NOT_SUPPORTED,
            );
        }
        super::lowres::allocation(F)?;
        let cookie = Box::into_raw(Box::new(0u8)) as u64;
        NETBUF.lock().pools.insert(cookie);
        Ok(cookie as NDIS_HANDLE)
    })
}

pub unsafe extern "win64" fn NdisFreeNetBufferListPool(PoolHandle: NDIS_HANDLE) {
    const F: &str = "NdisFreeNetBufferListPool";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let pool = PoolHandle as u64;
        let mut s = NETBUF.lock();
        if !s.pools.remove(&pool) {
            drop(s);
            return refuse(
                F,
                format!("{PoolHandle:p} is not a live pool"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        let left = s.nbls.values().filter(|(p, _)| *p == pool).count();
        drop(s);
        // SAFETY: the cookie came from Box::into_raw in NdisAllocateNetBufferListPool.
        drop(unsafe { Box::from_raw(pool as *mut u8) });
        if left > 0 {
            violation(format!("{F}: {left} NBLs of the pool are still allocated"));
        }
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisAllocateNetBufferAndNetBufferList(
    PoolHandle: NDIS_HANDLE,
    ContextSize: u16,
    ContextBackFill: u16,
    MdlChain: *mut MDL,
    DataOffset: u32,
    DataLength: usize,
) -> *mut NET_BUFFER_LIST {
    const F: &str = "NdisAllocateNetBufferAndNetBufferList";
    export(|| -> Checked<*mut NET_BUFFER_LIST> {
        require_irql(F, DISPATCH_LEVEL)?;
        let pool = PoolHandle as u64;
        if !NETBUF.lock().pools.contains(&pool) {
            return refuse(
                F,
                format!("{PoolHandle:p} is not a live pool"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        if ContextSize != 0 || ContextBackFill != 0 {
            return refuse(
                F,
                "NBL contexts are not provided",
                NDIS_STATUS_NOT_SUPPORTED,
            );
        }
        super::lowres::allocation(F)?;
        // SAFETY: non-zero layouts; results checked.
        let (nbl, nb) = unsafe {
            (
                alloc_zeroed(nbl_layout()) as *mut NET_BUFFER_LIST,
                alloc_zeroed(nb_layout()) as *mut NET_BUFFER,
            )
        };
        if nbl.is_null() || nb.is_null() {
            // SAFETY: freeing only what was allocated, with its layout.
            unsafe {
                if !nbl.is_null() {
                    dealloc(nbl.cast(), nbl_layout());
                }
                if !nb.is_null() {
                    dealloc(nb.cast(), nb_layout());
                }
            }
            return Ok(core::ptr::null_mut());
        }
        // SAFETY: both freshly allocated and zeroed.
        unsafe {
            (*nb).MdlChain = MdlChain;
            (*nb).CurrentMdl = MdlChain;
            (*nb).DataOffset = DataOffset;
            (*nb).CurrentMdlOffset = DataOffset;
            (*nb).DataLength = DataLength as u64;
            (*nb).NdisPoolHandle = PoolHandle;
            (*nbl).FirstNetBuffer = nb.cast();
            (*nbl).NdisPoolHandle = PoolHandle;
        }
        NETBUF.lock().nbls.insert(nbl as u64, (pool, nb as u64));
        Ok(nbl)
    })
}

pub unsafe extern "win64" fn NdisFreeNetBufferList(NetBufferList: *mut NET_BUFFER_LIST) {
    const F: &str = "NdisFreeNetBufferList";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        if is_indicated(NetBufferList as u64) {
            return refuse(
                F,
                format!("NdisNblReceiveOwnership: {NetBufferList:p} is still indicated up (never returned): the driver does not own it"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        let Some((_, nb)) = NETBUF.lock().nbls.remove(&(NetBufferList as u64)) else {
            return refuse(
                F,
                format!("{NetBufferList:p} is not a live NBL"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        // SAFETY: allocated by NdisAllocateNetBufferAndNetBufferList with these layouts.
        unsafe {
            dealloc(nb as *mut u8, nb_layout());
            dealloc(NetBufferList.cast(), nbl_layout());
        }
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisAllocateMdl(
    NdisHandle: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    Length: u32,
) -> *mut MDL {
    const F: &str = "NdisAllocateMdl";
    export(|| -> Checked<*mut MDL> {
        require_irql(F, DISPATCH_LEVEL)?;
        require_adapter(F, NdisHandle)?;
        require_non_null(F, VirtualAddress, "VirtualAddress")?;
        super::lowres::allocation(F)?;
        let mdl = Box::into_raw(Box::new(MDL {
            Next: core::ptr::null_mut(),
            Size: core::mem::size_of::<MDL>() as i16,
            MdlFlags: MDL_SOURCE_IS_NONPAGED_POOL,
            AllocationProcessorNumber: 0,
            Reserved: 0,
            Process: core::ptr::null_mut(),
            MappedSystemVa: VirtualAddress,
            StartVa: ((VirtualAddress as u64) & !0xFFF) as *mut c_void,
            ByteCount: Length,
            ByteOffset: (VirtualAddress as u64 & 0xFFF) as u32,
        }));
        NETBUF.lock().mdls.insert(mdl as u64);
        Ok(mdl)
    })
}

pub unsafe extern "win64" fn NdisFreeMdl(Mdl: *mut MDL) {
    const F: &str = "NdisFreeMdl";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        if !NETBUF.lock().mdls.remove(&(Mdl as u64)) {
            return refuse(
                F,
                format!("{Mdl:p} is not a live MDL from NdisAllocateMdl"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        // SAFETY: created by Box::into_raw in NdisAllocateMdl.
        drop(unsafe { Box::from_raw(Mdl) });
        Ok(())
    })
}

/// Copies the frame a NET_BUFFER describes, walking its MDL chain; None if the chain is
/// shorter than `DataLength` or an MDL is not one the guest handed out.
fn frame_of(nb: *const NET_BUFFER) -> Option<Vec<u8>> {
    let s = NETBUF.lock();
    // SAFETY: `nb` belongs to a live NBL the guest allocated; every MDL is checked against
    // the guest's own set before it is read, and reads stay inside ByteCount.
    unsafe {
        let mut left = (*nb).DataLength as usize;
        let mut mdl = (*nb).CurrentMdl;
        let mut offset = (*nb).CurrentMdlOffset as usize;
        let mut out = Vec::with_capacity(left);
        while left > 0 {
            if mdl.is_null() || !s.mdls.contains(&(mdl as u64)) {
                return None;
            }
            let count = (*mdl).ByteCount as usize;
            if offset < count {
                let n = (count - offset).min(left);
                let src =
                    core::slice::from_raw_parts((*mdl).MappedSystemVa.cast::<u8>().add(offset), n);
                out.extend_from_slice(src);
                left -= n;
            }
            offset = 0;
            mdl = (*mdl).Next;
        }
        Some(out)
    }
}

pub unsafe extern "win64" fn NdisMIndicateReceiveNetBufferLists(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetBufferLists: *mut NET_BUFFER_LIST,
    _PortNumber: NDIS_PORT_NUMBER,
    NumberOfNetBufferLists: u32,
    ReceiveFlags: u32,
) {
    const F: &str = "NdisMIndicateReceiveNetBufferLists";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_non_null(F, NetBufferLists, "NetBufferLists")?;
        super::pause::require_not_paused(F, adapter, "a receive indication")?;
        let phase = STATE.lock().phase;
        if phase != Phase::Running {
            return refuse(
                F,
                format!("receive indicated while {phase:?} (only Running may indicate)"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        if let Some(why) = super::send::flags_mismatch(
            "ReceiveFlags",
            ReceiveFlags,
            NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
        ) {
            violation(format!("{F}: {why}"));
        }
        let mut nbl = NetBufferLists;
        let mut count = 0;
        while !nbl.is_null() {
            if is_indicated(nbl as u64) {
                return refuse(
                    F,
                    format!("NdisNblReceiveOwnership: {nbl:p} indicated again before NDIS returned it: the driver does not own it"),
                    NDIS_STATUS_INVALID_PARAMETER,
                );
            }
            let Some(&(_, nb)) = NETBUF.lock().nbls.get(&(nbl as u64)) else {
                return refuse(
                    F,
                    format!("{nbl:p} is not an NBL from NdisAllocateNetBufferAndNetBufferList"),
                    NDIS_STATUS_INVALID_PARAMETER,
                );
            };
            let Some(frame) = frame_of(nb as *const NET_BUFFER) else {
                return refuse(
                    F,
                    format!("{nbl:p}: its MDL chain does not hold DataLength bytes"),
                    NDIS_STATUS_INVALID_PARAMETER,
                );
            };
            let mut n = NETBUF.lock();
            n.received.push((nbl as u64, frame));
            n.received_on.insert(nbl as u64, adapter);
            drop(n);
            count += 1;
            // SAFETY: a live NBL of the guest's.
            nbl = unsafe { (*nbl).Next };
        }
        if count != NumberOfNetBufferLists {
            violation(format!(
                "{F}: NumberOfNetBufferLists {NumberOfNetBufferLists} but the chain holds {count}"
            ));
        }
        Ok(())
    })
}

/// Whether `nbl` is indicated up and not yet returned (NDIS owns it).
fn is_indicated(nbl: u64) -> bool {
    NETBUF.lock().received.iter().any(|(n, _)| *n == nbl)
}

/// Allocations still live (at unload): each is a leak the driver left.
pub fn leaks() -> Vec<alloc::string::String> {
    let s = NETBUF.lock();
    let mut out = Vec::new();
    if !s.pools.is_empty() {
        out.push(format!(
            "{} NBL pools never freed (NdisFreeNetBufferListPool)",
            s.pools.len()
        ));
    }
    if !s.nbls.is_empty() {
        out.push(format!(
            "{} NBLs never freed (NdisFreeNetBufferList)",
            s.nbls.len()
        ));
    }
    if !s.sg_lists.is_empty() {
        out.push(format!(
            "{} scatter/gather lists never freed (NdisMFreeNetBufferSGList)",
            s.sg_lists.len()
        ));
    }
    if !s.mdls.is_empty() {
        out.push(format!("{} MDLs never freed (NdisFreeMdl)", s.mdls.len()));
    }
    out
}

/// The pieces of a NET_BUFFER's data (guest virtual = physical addresses), walking its MDL
/// chain from `CurrentMdl` + `CurrentMdlOffset` for `DataLength` bytes; None if the chain is
/// shorter.
///
/// # Safety
/// `nb` and its MDLs are readable.
unsafe fn pieces(nb: *const NET_BUFFER) -> Option<Vec<(u64, u32)>> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let mut left = (*nb).DataLength as usize;
        let mut mdl = (*nb).CurrentMdl;
        let mut offset = (*nb).CurrentMdlOffset as usize;
        let mut out = Vec::new();
        while left > 0 {
            if mdl.is_null() || (*mdl).MappedSystemVa.is_null() {
                return None;
            }
            let count = (*mdl).ByteCount as usize;
            if offset < count {
                let n = (count - offset).min(left);
                out.push(((*mdl).MappedSystemVa as u64 + offset as u64, n as u32));
                left -= n;
            }
            offset = 0;
            mdl = (*mdl).Next;
        }
        Some(out)
    }
}

fn sg_layout(elements: usize) -> Option<Layout> {
    Layout::from_size_align(
        SCATTER_GATHER_LIST_ELEMENTS_OFFSET
            + elements * core::mem::size_of::<SCATTER_GATHER_ELEMENT>(),
        8,
    )
    .ok()
}

pub unsafe extern "win64" fn NdisMAllocateNetBufferSGList(
    NdisMiniportDmaHandle: NDIS_HANDLE,
    NetBuffer: *mut NET_BUFFER,
    Context: *mut c_void,
    Flags: u32,
    _ScatterGatherListBuffer: *mut c_void,
    _ScatterGatherListBufferSize: u32,
) -> NDIS_STATUS {
    const F: &str = "NdisMAllocateNetBufferSGList";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let adapter =
            super::contract::require_one_of(F, NdisMiniportDmaHandle, &super::COOKIES.dma, "DMA")?;
        require_non_null(F, NetBuffer, "NetBuffer")?;
        if Flags & NDIS_SG_LIST_WRITE_TO_DEVICE == 0 {
            return refuse(
                F,
                "a send maps with NDIS_SG_LIST_WRITE_TO_DEVICE",
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        let Some(handler) = STATE.lock().adapters[adapter].process_sg_list else {
            return refuse(
                F,
                "no MiniportProcessSGList registered",
                NDIS_STATUS_FAILURE,
            );
        };
        // SAFETY: a NET_BUFFER NDIS (the guest) handed to the driver; its MDLs are the guest's.
        let Some(parts) = (unsafe { pieces(NetBuffer) }) else {
            return refuse(
                F,
                format!("{NetBuffer:p}: its MDL chain does not hold DataLength bytes"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        super::lowres::allocation(F)?;
        let Some(layout) = sg_layout(parts.len()) else {
            return Ok(NDIS_STATUS_RESOURCES);
        };
        // SAFETY: a non-zero layout; checked below.
        let list = unsafe { alloc_zeroed(layout) } as *mut SCATTER_GATHER_LIST;
        if list.is_null() {
            return Ok(NDIS_STATUS_RESOURCES);
        }
        // SAFETY: `list` holds the header and `parts.len()` elements.
        unsafe {
            (*list).NumberOfElements = parts.len() as u32;
            let first = list
                .cast::<u8>()
                .add(SCATTER_GATHER_LIST_ELEMENTS_OFFSET)
                .cast::<SCATTER_GATHER_ELEMENT>();
            for (i, (address, length)) in parts.iter().enumerate() {
                first.add(i).write(SCATTER_GATHER_ELEMENT {
                    Address: *address as i64,
                    Length: *length,
                    Reserved: 0,
                });
            }
        }
        NETBUF
            .lock()
            .sg_lists
            .insert(list as u64, (NetBuffer as u64, parts.len()));
        // MiniportProcessSGList runs at DISPATCH_LEVEL.
        let old = IRQL.swap(DISPATCH_LEVEL, Ordering::Relaxed);
        // SAFETY: the driver's handler with a list the guest built and its own context.
        unsafe {
            handler(
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                list.cast(),
                Context,
            )
        };
        IRQL.store(old, Ordering::Relaxed);
        Ok(NDIS_STATUS_SUCCESS)
    })
}

pub unsafe extern "win64" fn NdisMFreeNetBufferSGList(
    NdisMiniportDmaHandle: NDIS_HANDLE,
    ScatterGatherList: *mut SCATTER_GATHER_LIST,
    NetBuffer: *mut NET_BUFFER,
) {
    const F: &str = "NdisMFreeNetBufferSGList";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        super::contract::require_one_of(F, NdisMiniportDmaHandle, &super::COOKIES.dma, "DMA")?;
        let entry = NETBUF.lock().sg_lists.remove(&(ScatterGatherList as u64));
        let Some((nb, elements)) = entry else {
            return refuse(
                F,
                format!("{ScatterGatherList:p} is not a live scatter/gather list"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        if nb != NetBuffer as u64 {
            violation(format!(
                "{F}: list {ScatterGatherList:p} belongs to NET_BUFFER {nb:#x}, not {NetBuffer:p}"
            ));
        }
        if let Some(layout) = sg_layout(elements) {
            // SAFETY: allocated by NdisMAllocateNetBufferSGList with this layout.
            unsafe { dealloc(ScatterGatherList.cast(), layout) };
        }
        Ok(())
    })
}

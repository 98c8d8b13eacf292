//! The Network Module Registrar (NMR, `netioddk.h`, exported by netio.sys): how a kernel module
//! offers a Network Programming Interface (NPI) as a *provider* and how another attaches to it
//! as a *client*, matched by NPI id. Also the project's own NPI that `rnic.sys` provides, the
//! RNIC diagnostics NPI ([`NPI_RNIC_DIAGNOSTICS_ID`], [`RNIC_DIAG_PROVIDER_DISPATCH`]), shared by
//! the driver (provider) and the guest (which plays a client).
//!
//! Layouts (x64) pinned by the tests below were checked against a copy of the WDK's
//! `netioddk.h` (the structures and callback typedefs between `_NPI_REGISTRATION_INSTANCE` and
//! `NmrProviderDetachClientComplete`) and the reference pages of
//! MicrosoftDocs/windows-driver-docs-ddi (`wdk-ddi-src/content/netioddk/`:
//! `ns-netioddk-_npi_registration_instance.md`, `ns-netioddk-_npi_client_characteristics.md`,
//! `ns-netioddk-_npi_provider_characteristics.md`); BRIEF section 6 gives the same sizes from a
//! second header copy.
//!
//! IRQL: NmrRegisterProvider/Client and NmrWaitFor*DeregisterComplete run at PASSIVE_LEVEL;
//! NmrDeregister*, NmrClientAttachProvider and the detach-complete calls at <= DISPATCH_LEVEL.

use core::ffi::c_void;

use crate::inet::GUID;
use crate::status::NTSTATUS;

/// Module name of the NMR's exports in an import table.
pub const NETIO_SYS: &str = "netio.sys";

/// `STATUS_NOT_FOUND`: the object named (here: an adapter index) does not exist.
pub const STATUS_NOT_FOUND: NTSTATUS = 0xC000_0225;

/// `NPIID`: the GUID naming one NPI (what clients and providers are matched by).
pub type NPIID = GUID;

/// `NPI_MODULEID_TYPE` value: the module id is a GUID.
pub const MIT_GUID: u32 = 1;
/// `NPI_MODULEID_TYPE` value: the module id is an interface LUID.
pub const MIT_IF_LUID: u32 = 2;

/// `NPI_MODULEID` (0x18 bytes): identifies one network module (its `Type` says which member
/// of the union is valid). `Length` is the structure's size, 0x18.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NPI_MODULEID {
    /// `Length`: `sizeof(NPI_MODULEID)`.
    pub Length: u16,
    /// `Type`: [`MIT_GUID`] or [`MIT_IF_LUID`].
    pub Type: u32,
    /// `Guid` (with [`MIT_GUID`]); an `IF_LUID` (8 bytes) shares the storage otherwise.
    pub Guid: GUID,
}

/// `NPI_REGISTRATION_INSTANCE` (0x28 bytes): what a module registers: which NPI, which module,
/// and NPI-specific data. `Version` is 0, `Size` its own size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NPI_REGISTRATION_INSTANCE {
    /// `Version`: 0.
    pub Version: u16,
    /// `Size`: `sizeof(NPI_REGISTRATION_INSTANCE)` (0x28).
    pub Size: u16,
    /// `NpiId`: the NPI this registration implements.
    pub NpiId: *const NPIID,
    /// `ModuleId`: the registering module.
    pub ModuleId: *const NPI_MODULEID,
    /// `Number`: an NPI-specific instance number.
    pub Number: u32,
    /// `NpiSpecificCharacteristics`: optional NPI-defined data (NULL for the diagnostics NPI).
    pub NpiSpecificCharacteristics: *const c_void,
}

/// `NPI_PROVIDER_ATTACH_CLIENT_FN`: `NTSTATUS(HANDLE NmrBindingHandle, PVOID ProviderContext,
/// const NPI_REGISTRATION_INSTANCE* ClientRegistrationInstance, PVOID ClientBindingContext,
/// const VOID* ClientDispatch, PVOID* ProviderBindingContext, const VOID** ProviderDispatch)`.
/// Called by the NMR (inside the client's NmrClientAttachProvider) at PASSIVE_LEVEL; success
/// fills both outputs.
pub type NpiProviderAttachClientFn = unsafe extern "win64" fn(
    NmrBindingHandle: *mut c_void,
    ProviderContext: *mut c_void,
    ClientRegistrationInstance: *const NPI_REGISTRATION_INSTANCE,
    ClientBindingContext: *mut c_void,
    ClientDispatch: *const c_void,
    ProviderBindingContext: *mut *mut c_void,
    ProviderDispatch: *mut *const c_void,
) -> NTSTATUS;

/// `NPI_PROVIDER_DETACH_CLIENT_FN`: `NTSTATUS(PVOID ProviderBindingContext)`; returns
/// `STATUS_SUCCESS` (detached) or `STATUS_PENDING` (NmrProviderDetachClientComplete follows,
/// exactly once). IRQL <= DISPATCH_LEVEL.
pub type NpiProviderDetachClientFn =
    unsafe extern "win64" fn(ProviderBindingContext: *mut c_void) -> NTSTATUS;

/// `NPI_PROVIDER_CLEANUP_BINDING_CONTEXT_FN`: `VOID(PVOID ProviderBindingContext)`: frees the
/// binding context once both sides detached. IRQL <= DISPATCH_LEVEL.
pub type NpiProviderCleanupBindingContextFn =
    unsafe extern "win64" fn(ProviderBindingContext: *mut c_void);

/// `NPI_CLIENT_ATTACH_PROVIDER_FN`: `NTSTATUS(HANDLE NmrBindingHandle, PVOID ClientContext,
/// const NPI_REGISTRATION_INSTANCE* ProviderRegistrationInstance)`: the NMR offers a matching
/// provider; the client attaches by calling NmrClientAttachProvider. PASSIVE_LEVEL.
pub type NpiClientAttachProviderFn = unsafe extern "win64" fn(
    NmrBindingHandle: *mut c_void,
    ClientContext: *mut c_void,
    ProviderRegistrationInstance: *const NPI_REGISTRATION_INSTANCE,
) -> NTSTATUS;

/// `NPI_CLIENT_DETACH_PROVIDER_FN`: `NTSTATUS(PVOID ClientBindingContext)`; `STATUS_PENDING`
/// means NmrClientDetachProviderComplete follows, exactly once. IRQL <= DISPATCH_LEVEL.
pub type NpiClientDetachProviderFn =
    unsafe extern "win64" fn(ClientBindingContext: *mut c_void) -> NTSTATUS;

/// `NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN`: `VOID(PVOID ClientBindingContext)`.
pub type NpiClientCleanupBindingContextFn =
    unsafe extern "win64" fn(ClientBindingContext: *mut c_void);

/// `NPI_PROVIDER_CHARACTERISTICS` (0x48 bytes): a provider's registration: its callbacks and
/// its registration instance. Must stay resident while registered. `Version` 0, `Length` its
/// size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NPI_PROVIDER_CHARACTERISTICS {
    /// `Version`: 0.
    pub Version: u16,
    /// `Length`: `sizeof(NPI_PROVIDER_CHARACTERISTICS)` (0x48).
    pub Length: u16,
    /// `ProviderAttachClient` (required).
    pub ProviderAttachClient: Option<NpiProviderAttachClientFn>,
    /// `ProviderDetachClient` (required).
    pub ProviderDetachClient: Option<NpiProviderDetachClientFn>,
    /// `ProviderCleanupBindingContext` (optional).
    pub ProviderCleanupBindingContext: Option<NpiProviderCleanupBindingContextFn>,
    /// `ProviderRegistrationInstance`.
    pub ProviderRegistrationInstance: NPI_REGISTRATION_INSTANCE,
}

/// `NPI_CLIENT_CHARACTERISTICS` (0x48 bytes): a client's registration, the mirror image of
/// [`NPI_PROVIDER_CHARACTERISTICS`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NPI_CLIENT_CHARACTERISTICS {
    /// `Version`: 0.
    pub Version: u16,
    /// `Length`: `sizeof(NPI_CLIENT_CHARACTERISTICS)` (0x48).
    pub Length: u16,
    /// `ClientAttachProvider` (required).
    pub ClientAttachProvider: Option<NpiClientAttachProviderFn>,
    /// `ClientDetachProvider` (required).
    pub ClientDetachProvider: Option<NpiClientDetachProviderFn>,
    /// `ClientCleanupBindingContext` (optional).
    pub ClientCleanupBindingContext: Option<NpiClientCleanupBindingContextFn>,
    /// `ClientRegistrationInstance`.
    pub ClientRegistrationInstance: NPI_REGISTRATION_INSTANCE,
}

/// `NTSTATUS NmrRegisterProvider(const NPI_PROVIDER_CHARACTERISTICS*, PVOID ProviderContext,
/// PHANDLE NmrProviderHandle)`. PASSIVE_LEVEL.
pub type NmrRegisterProviderFn = unsafe extern "win64" fn(
    ProviderCharacteristics: *const NPI_PROVIDER_CHARACTERISTICS,
    ProviderContext: *mut c_void,
    NmrProviderHandle: *mut *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NmrDeregisterProvider(HANDLE)`: starts deregistration (detaches every client);
/// `STATUS_PENDING` while detaches are outstanding. IRQL <= DISPATCH_LEVEL.
pub type NmrDeregisterProviderFn =
    unsafe extern "win64" fn(NmrProviderHandle: *mut c_void) -> NTSTATUS;
/// `NTSTATUS NmrWaitForProviderDeregisterComplete(HANDLE)`: waits until every binding is
/// detached and cleaned up, then frees the registration. PASSIVE_LEVEL.
pub type NmrWaitForProviderDeregisterCompleteFn =
    unsafe extern "win64" fn(NmrProviderHandle: *mut c_void) -> NTSTATUS;
/// `VOID NmrProviderDetachClientComplete(HANDLE NmrBindingHandle)`: completes a provider
/// detach that returned `STATUS_PENDING`. IRQL <= DISPATCH_LEVEL.
pub type NmrProviderDetachClientCompleteFn =
    unsafe extern "win64" fn(NmrBindingHandle: *mut c_void);
/// `NTSTATUS NmrRegisterClient(const NPI_CLIENT_CHARACTERISTICS*, PVOID ClientContext,
/// PHANDLE NmrClientHandle)`. PASSIVE_LEVEL.
pub type NmrRegisterClientFn = unsafe extern "win64" fn(
    ClientCharacteristics: *const NPI_CLIENT_CHARACTERISTICS,
    ClientContext: *mut c_void,
    NmrClientHandle: *mut *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NmrDeregisterClient(HANDLE)`. IRQL <= DISPATCH_LEVEL.
pub type NmrDeregisterClientFn = unsafe extern "win64" fn(NmrClientHandle: *mut c_void) -> NTSTATUS;
/// `NTSTATUS NmrWaitForClientDeregisterComplete(HANDLE)`. PASSIVE_LEVEL.
pub type NmrWaitForClientDeregisterCompleteFn =
    unsafe extern "win64" fn(NmrClientHandle: *mut c_void) -> NTSTATUS;
/// `NTSTATUS NmrClientAttachProvider(HANDLE NmrBindingHandle, PVOID ClientBindingContext,
/// const VOID* ClientDispatch, PVOID* ProviderBindingContext, const VOID** ProviderDispatch)`.
/// Only from inside ClientAttachProvider, PASSIVE_LEVEL.
pub type NmrClientAttachProviderFn = unsafe extern "win64" fn(
    NmrBindingHandle: *mut c_void,
    ClientBindingContext: *mut c_void,
    ClientDispatch: *const c_void,
    ProviderBindingContext: *mut *mut c_void,
    ProviderDispatch: *mut *const c_void,
) -> NTSTATUS;
/// `VOID NmrClientDetachProviderComplete(HANDLE NmrBindingHandle)`. IRQL <= DISPATCH_LEVEL.
pub type NmrClientDetachProviderCompleteFn =
    unsafe extern "win64" fn(NmrBindingHandle: *mut c_void);

/// `(module, function)` of the NMR imports of `rnic.sys` (all also in
/// [`crate::SKELETON_IMPORTS`]): the provider side only. Every name is exported by the real
/// netio.sys (artifact-check verifies it against mingw-w64's `libnetio.a`).
pub const NMR_PROVIDER_IMPORTS: &[(&str, &str)] = &[
    (NETIO_SYS, "NmrRegisterProvider"),
    (NETIO_SYS, "NmrDeregisterProvider"),
    (NETIO_SYS, "NmrWaitForProviderDeregisterComplete"),
    (NETIO_SYS, "NmrProviderDetachClientComplete"),
];

/// The client-side NMR functions (exported by the real netio.sys too, checked the same way);
/// the guest implements them for its own diagnostics client.
pub const NMR_CLIENT_FUNCTIONS: &[(&str, &str)] = &[
    (NETIO_SYS, "NmrRegisterClient"),
    (NETIO_SYS, "NmrDeregisterClient"),
    (NETIO_SYS, "NmrWaitForClientDeregisterComplete"),
    (NETIO_SYS, "NmrClientAttachProvider"),
    (NETIO_SYS, "NmrClientDetachProviderComplete"),
];

/// The RNIC diagnostics NPI, the project's own (guest-driver/README.md documents it):
/// `{6d1f3c52-8a47-4e0b-9c3a-52e1a7b40d19}`. A kernel client attaches to it to read the
/// per-adapter statistics of `rnic.sys`.
pub const NPI_RNIC_DIAGNOSTICS_ID: NPIID = GUID {
    Data1: 0x6d1f_3c52,
    Data2: 0x8a47,
    Data3: 0x4e0b,
    Data4: [0x9c, 0x3a, 0x52, 0xe1, 0xa7, 0xb4, 0x0d, 0x19],
};

/// Module id of `rnic.sys` as an NMR provider: `{b2c4e1a0-5f3d-4c7e-8e21-0a9d6c3b7f54}`.
pub const RNIC_NMR_MODULE_GUID: GUID = GUID {
    Data1: 0xb2c4_e1a0,
    Data2: 0x5f3d,
    Data3: 0x4c7e,
    Data4: [0x8e, 0x21, 0x0a, 0x9d, 0x6c, 0x3b, 0x7f, 0x54],
};

/// `Version` of [`RNIC_DIAG_PROVIDER_DISPATCH`] this ABI defines: 2 added
/// `QueryDeviceFaultCounters` at the end of the table (version 1 ended before it, size 0x20).
/// A client checks `Version >= 2` and `Size >= 0x28` before calling it.
pub const RNIC_DIAG_DISPATCH_VERSION: u16 = 2;
/// `Size` of a version-1 dispatch table (no `QueryDeviceFaultCounters`).
pub const RNIC_DIAG_DISPATCH_SIZE_V1: u16 = 0x20;

/// Per-adapter statistics the diagnostics NPI reports (0x30 bytes), the same counters as the
/// statistics OIDs (`OID_GEN_XMIT_OK`, `OID_GEN_RCV_OK`, ...): frames since the adapter was
/// initialized.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RNIC_DIAG_ADAPTER_STATISTICS {
    /// Size of this structure (0x30): the caller sets it; the provider refuses other sizes.
    pub Size: u32,
    /// Index of the adapter (order of MiniportInitializeEx).
    pub AdapterIndex: u32,
    /// Frames sent successfully (`OID_GEN_XMIT_OK`).
    pub FramesSent: u64,
    /// Frames received and indicated (`OID_GEN_RCV_OK`).
    pub FramesReceived: u64,
    /// Frames that failed to send (`OID_GEN_XMIT_ERROR`).
    pub SendErrors: u64,
    /// Frames received with an error (`OID_GEN_RCV_ERROR`).
    pub ReceiveErrors: u64,
    /// Frames dropped for lack of a receive buffer (`OID_GEN_RCV_NO_BUFFER`).
    pub ReceiveNoBuffer: u64,
}

/// `NTSTATUS QueryAdapterStatistics(PVOID ProviderBindingContext, ULONG AdapterIndex,
/// RNIC_DIAG_ADAPTER_STATISTICS* Statistics)`: fills `Statistics` (whose `Size` the caller
/// set). `STATUS_NOT_FOUND` when no adapter has that index, `STATUS_INVALID_PARAMETER` for a
/// NULL pointer or a wrong `Size`. IRQL <= DISPATCH_LEVEL.
pub type RnicDiagQueryAdapterStatisticsFn = unsafe extern "win64" fn(
    ProviderBindingContext: *mut c_void,
    AdapterIndex: u32,
    Statistics: *mut RNIC_DIAG_ADAPTER_STATISTICS,
) -> NTSTATUS;

/// `NTSTATUS ReferenceBinding(PVOID ProviderBindingContext)`: the client announces a call
/// sequence in flight; a detach arriving meanwhile pends until the matching
/// `DereferenceBinding`. `STATUS_SUCCESS` for a live binding, `STATUS_INVALID_PARAMETER` for
/// NULL, `STATUS_UNSUCCESSFUL` once a detach began (no new call sequence may start then).
/// IRQL <= DISPATCH_LEVEL.
pub type RnicDiagReferenceBindingFn =
    unsafe extern "win64" fn(ProviderBindingContext: *mut c_void) -> NTSTATUS;

/// `VOID DereferenceBinding(PVOID ProviderBindingContext)`: ends what `ReferenceBinding`
/// began; the last one completes a pended detach (NmrProviderDetachClientComplete).
/// IRQL <= DISPATCH_LEVEL.
pub type RnicDiagDereferenceBindingFn =
    unsafe extern "win64" fn(ProviderBindingContext: *mut c_void);

/// The device's own fault and error counters (0x58 bytes), read with its `GET_STATS` admin
/// command (docs/device-spec.md section 14.1; the index of each counter in the device's
/// block is given): totals since the device was powered on (a device reset keeps them), the
/// queue counters since the adapter's queues were created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RNIC_DIAG_DEVICE_FAULT_COUNTERS {
    /// Size of this structure (0x58): the caller sets it; the provider refuses other sizes.
    pub Size: u32,
    /// Index of the adapter (order of MiniportInitializeEx).
    pub AdapterIndex: u32,
    /// Frames not sent because the link was down or no wire attached (index 6).
    pub TxDroppedLinkDown: u64,
    /// Frames the wire refused (index 7).
    pub TxWireErrors: u64,
    /// Received frames dropped for lack of a free RX descriptor (index 11).
    pub RxDroppedNoBuffer: u64,
    /// Receive errors the wire reported (index 14).
    pub RxWireErrors: u64,
    /// Admin commands completed with a non-zero status (index 18).
    pub AdminFailed: u64,
    /// Device DMA accesses that failed, injected ones included (index 19).
    pub DmaErrors: u64,
    /// Device resets, those inside an FLR included (index 20).
    pub DeviceResets: u64,
    /// Events dropped on a full event ring (index 24; a device reset clears it).
    pub EventsOverflowed: u64,
    /// TX queue 0 descriptors completed with ERROR (index 27).
    pub TxQueue0Errors: u64,
    /// RX queue 0 buffer DMA failures (index 59).
    pub RxQueue0Errors: u64,
}

/// Index in the device's `GET_STATS` block (docs/device-spec.md section 14.1) of each
/// counter of [`RNIC_DIAG_DEVICE_FAULT_COUNTERS`], in field order after `AdapterIndex`.
pub const RNIC_DIAG_FAULT_COUNTER_INDICES: [usize; 10] = [6, 7, 11, 14, 18, 19, 20, 24, 27, 59];

/// `NTSTATUS QueryDeviceFaultCounters(PVOID ProviderBindingContext, ULONG AdapterIndex,
/// RNIC_DIAG_DEVICE_FAULT_COUNTERS* Counters)`: asks the device for its statistics
/// (`GET_STATS`) and fills `Counters` (whose `Size` the caller set). `STATUS_NOT_FOUND` when
/// no adapter has that index, `STATUS_INVALID_PARAMETER` for a NULL pointer or a wrong
/// `Size`, `STATUS_DEVICE_BUSY` while another read is in progress,
/// `STATUS_INSUFFICIENT_RESOURCES` without memory for the device's buffer,
/// `STATUS_IO_DEVICE_ERROR` when the device fails the command or does not answer.
/// IRQL = PASSIVE_LEVEL (it waits for the device). Dispatch table version 2 and later.
pub type RnicDiagQueryDeviceFaultCountersFn = unsafe extern "win64" fn(
    ProviderBindingContext: *mut c_void,
    AdapterIndex: u32,
    Counters: *mut RNIC_DIAG_DEVICE_FAULT_COUNTERS,
) -> NTSTATUS;

/// The provider dispatch table of the RNIC diagnostics NPI (0x28 bytes in version 2), what
/// `ProviderAttachClient` returns as `ProviderDispatch`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RNIC_DIAG_PROVIDER_DISPATCH {
    /// [`RNIC_DIAG_DISPATCH_VERSION`].
    pub Version: u16,
    /// `sizeof(RNIC_DIAG_PROVIDER_DISPATCH)` (0x28; 0x20 in version 1).
    pub Size: u16,
    /// Reads one adapter's statistics.
    pub QueryAdapterStatistics: Option<RnicDiagQueryAdapterStatisticsFn>,
    /// Holds the binding across calls (a detach meanwhile pends).
    pub ReferenceBinding: Option<RnicDiagReferenceBindingFn>,
    /// Releases what `ReferenceBinding` held.
    pub DereferenceBinding: Option<RnicDiagDereferenceBindingFn>,
    /// Reads one adapter's device fault counters (version 2).
    pub QueryDeviceFaultCounters: Option<RnicDiagQueryDeviceFaultCountersFn>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn npi_moduleid_layout() {
        type T = NPI_MODULEID;
        assert_eq!(size_of::<T>(), 0x18);
        assert_eq!(offset_of!(T, Type), 0x4);
        assert_eq!(offset_of!(T, Guid), 0x8);
    }

    #[test]
    fn npi_registration_instance_layout() {
        type T = NPI_REGISTRATION_INSTANCE;
        assert_eq!(size_of::<T>(), 0x28);
        assert_eq!(offset_of!(T, Size), 0x2);
        assert_eq!(offset_of!(T, NpiId), 0x8);
        assert_eq!(offset_of!(T, ModuleId), 0x10);
        assert_eq!(offset_of!(T, Number), 0x18);
        assert_eq!(offset_of!(T, NpiSpecificCharacteristics), 0x20);
    }

    #[test]
    fn npi_provider_characteristics_layout() {
        type T = NPI_PROVIDER_CHARACTERISTICS;
        assert_eq!(size_of::<T>(), 0x48);
        assert_eq!(offset_of!(T, Length), 0x2);
        assert_eq!(offset_of!(T, ProviderAttachClient), 0x8);
        assert_eq!(offset_of!(T, ProviderDetachClient), 0x10);
        assert_eq!(offset_of!(T, ProviderCleanupBindingContext), 0x18);
        assert_eq!(offset_of!(T, ProviderRegistrationInstance), 0x20);
    }

    #[test]
    fn npi_client_characteristics_layout() {
        type T = NPI_CLIENT_CHARACTERISTICS;
        assert_eq!(size_of::<T>(), 0x48);
        assert_eq!(offset_of!(T, ClientAttachProvider), 0x8);
        assert_eq!(offset_of!(T, ClientDetachProvider), 0x10);
        assert_eq!(offset_of!(T, ClientCleanupBindingContext), 0x18);
        assert_eq!(offset_of!(T, ClientRegistrationInstance), 0x20);
    }

    #[test]
    fn diagnostics_npi_layouts() {
        assert_eq!(size_of::<RNIC_DIAG_ADAPTER_STATISTICS>(), 0x30);
        assert_eq!(offset_of!(RNIC_DIAG_ADAPTER_STATISTICS, FramesSent), 0x8);
        assert_eq!(
            offset_of!(RNIC_DIAG_ADAPTER_STATISTICS, ReceiveNoBuffer),
            0x28
        );
        type D = RNIC_DIAG_PROVIDER_DISPATCH;
        assert_eq!(size_of::<D>(), 0x28);
        assert_eq!(offset_of!(D, QueryAdapterStatistics), 0x8);
        assert_eq!(offset_of!(D, DereferenceBinding), 0x18);
        assert_eq!(
            offset_of!(D, QueryDeviceFaultCounters),
            RNIC_DIAG_DISPATCH_SIZE_V1 as usize
        );
        type F = RNIC_DIAG_DEVICE_FAULT_COUNTERS;
        assert_eq!(size_of::<F>(), 0x58);
        assert_eq!(offset_of!(F, TxDroppedLinkDown), 0x8);
        assert_eq!(offset_of!(F, RxQueue0Errors), 0x50);
        assert_eq!(
            RNIC_DIAG_FAULT_COUNTER_INDICES.len(),
            (size_of::<F>() - 8) / 8
        );
    }

    /// The counter indices against docs/device-spec.md section 14.1 (an independent copy of
    /// the table's numbers): port counters 0..=16, device 17..=20, MSI-X 21..=22, events
    /// 23..=24, then four per TX queue from 25 and four per RX queue from 57 (frames, bytes,
    /// errors, drops).
    #[test]
    fn fault_counter_indices_follow_the_get_stats_block() {
        let tx_errors = |q: usize| 25 + 4 * q + 2;
        let rx_errors = |q: usize| 57 + 4 * q + 2;
        assert_eq!(
            RNIC_DIAG_FAULT_COUNTER_INDICES,
            [6, 7, 11, 14, 18, 19, 20, 24, tx_errors(0), rx_errors(0)]
        );
    }

    #[test]
    fn the_nmr_import_lists_name_netio_only() {
        for (module, _) in NMR_PROVIDER_IMPORTS.iter().chain(NMR_CLIENT_FUNCTIONS) {
            assert_eq!(*module, NETIO_SYS);
        }
        assert_ne!(NPI_RNIC_DIAGNOSTICS_ID, RNIC_NMR_MODULE_GUID);
    }
}

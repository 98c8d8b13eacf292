//! ntoskrnl/wdm types: `UNICODE_STRING`, `DRIVER_OBJECT`, `KEVENT` / `NDIS_EVENT`.

use core::ffi::c_void;

/// `UNICODE_STRING` (x64, 0x10 bytes). `Length`/`MaximumLength` are in bytes, not characters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    /// `Length`: bytes of text in `Buffer`, without a terminating NUL.
    pub Length: u16,
    /// `MaximumLength`: bytes `Buffer` can hold.
    pub MaximumLength: u16,
    /// `Buffer`: UTF-16 text, not necessarily NUL-terminated.
    pub Buffer: *mut u16,
}

/// `IO_TYPE_DRIVER`: value of `DRIVER_OBJECT::Type`.
pub const IO_TYPE_DRIVER: i16 = 4;
/// Number of IRP major functions (`IRP_MJ_MAXIMUM_FUNCTION + 1`).
pub const IRP_MJ_MAXIMUM_FUNCTION_COUNT: usize = 28;

/// `DRIVER_OBJECT` (x64, 0x150 bytes). The guest allocates one, zeroed, per loaded driver, with
/// `Type = IO_TYPE_DRIVER`, `Size = 0x150`, `DriverStart`/`DriverSize` describing the image and
/// `DriverName` set. An NDIS miniport never touches it directly (NDIS fills `DriverUnload` and
/// `MajorFunction` during `NdisMRegisterMiniportDriver`); it is declared in full so both sides
/// agree on its size.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DRIVER_OBJECT {
    /// `Type`: `IO_TYPE_DRIVER`.
    pub Type: i16,
    /// `Size`: 0x150, the size of this object.
    pub Size: i16,
    /// `DeviceObject`: the first device object the driver created (linked list), NULL if none.
    pub DeviceObject: *mut c_void,
    /// `Flags`: `DRVO_*` bits kept by the I/O manager.
    pub Flags: u32,
    /// `DriverStart`: base address of the loaded image.
    pub DriverStart: *mut c_void,
    /// `DriverSize`: bytes of the loaded image.
    pub DriverSize: u32,
    /// `DriverSection`: the loader's entry for the image (opaque).
    pub DriverSection: *mut c_void,
    /// `DriverExtension`: `PDRIVER_EXTENSION` (AddDevice routine, service key name; opaque here).
    pub DriverExtension: *mut c_void,
    /// `DriverName`: `\Driver\<service name>`.
    pub DriverName: UNICODE_STRING,
    /// `HardwareDatabase`: registry path of the hardware configuration (`\REGISTRY\MACHINE\HARDWARE\DESCRIPTION\SYSTEM`).
    pub HardwareDatabase: *mut UNICODE_STRING,
    /// `FastIoDispatch`: fast I/O entry points of file-system drivers; NULL for a miniport.
    pub FastIoDispatch: *mut c_void,
    /// `DriverInit`: the image's entry point (DriverEntry).
    pub DriverInit: *mut c_void,
    /// `DriverStartIo`: the StartIo routine of drivers that use the I/O manager's queue; NULL here.
    pub DriverStartIo: *mut c_void,
    /// `PDRIVER_UNLOAD`: `VOID (PDRIVER_OBJECT)`, win64.
    pub DriverUnload: Option<unsafe extern "win64" fn(*mut DRIVER_OBJECT)>,
    /// `MajorFunction`: one dispatch routine per IRP major code (`IRP_MJ_*`), filled by NDIS for a miniport.
    pub MajorFunction: [*mut c_void; IRP_MJ_MAXIMUM_FUNCTION_COUNT],
}

/// `KEVENT` = `DISPATCHER_HEADER` (x64, 0x18 bytes). Opaque to the driver: only the implementation
/// of `NdisInitializeEvent`/`NdisSetEvent`/... (the guest) interprets these bytes. The layout below
/// is Windows' (`Type`, `Signalling`, `Size`, `Reserved1`, `SignalState`, `WaitListHead`); the guest
/// may keep its own state in it as long as it fits in 0x18 bytes with 8-byte alignment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KEVENT {
    /// `Type`: the dispatcher object type (0 = notification event, 1 = synchronization event).
    pub Type: u8,
    /// `Signalling`: dispatcher-internal signalling flags.
    pub Signalling: u8,
    /// `Size`: object size in 32-bit units (6 for an event).
    pub Size: u8,
    /// `Reserved1`: dispatcher-internal.
    pub Reserved1: u8,
    /// `SignalState`: nonzero when the event is signalled.
    pub SignalState: i32,
    /// `WaitListHead`: `LIST_ENTRY` of threads waiting on the object.
    pub WaitListHead: [u64; 2],
}

/// `NDIS_EVENT { KEVENT Event; }` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NDIS_EVENT {
    /// `Event`: the kernel event underneath.
    pub Event: KEVENT,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn unicode_string_layout() {
        assert_eq!(size_of::<UNICODE_STRING>(), 0x10);
        assert_eq!(offset_of!(UNICODE_STRING, Length), 0);
        assert_eq!(offset_of!(UNICODE_STRING, MaximumLength), 2);
        assert_eq!(offset_of!(UNICODE_STRING, Buffer), 8);
    }

    #[test]
    fn driver_object_layout() {
        type T = DRIVER_OBJECT;
        assert_eq!(size_of::<T>(), 0x150);
        assert_eq!(offset_of!(T, Type), 0x00);
        assert_eq!(offset_of!(T, Size), 0x02);
        assert_eq!(offset_of!(T, DeviceObject), 0x08);
        assert_eq!(offset_of!(T, Flags), 0x10);
        assert_eq!(offset_of!(T, DriverStart), 0x18);
        assert_eq!(offset_of!(T, DriverSize), 0x20);
        assert_eq!(offset_of!(T, DriverSection), 0x28);
        assert_eq!(offset_of!(T, DriverExtension), 0x30);
        assert_eq!(offset_of!(T, DriverName), 0x38);
        assert_eq!(offset_of!(T, HardwareDatabase), 0x48);
        assert_eq!(offset_of!(T, FastIoDispatch), 0x50);
        assert_eq!(offset_of!(T, DriverInit), 0x58);
        assert_eq!(offset_of!(T, DriverStartIo), 0x60);
        assert_eq!(offset_of!(T, DriverUnload), 0x68);
        assert_eq!(offset_of!(T, MajorFunction), 0x70);
    }

    #[test]
    fn event_layout() {
        assert_eq!(size_of::<KEVENT>(), 0x18);
        assert_eq!(align_of::<KEVENT>(), 8);
        assert_eq!(offset_of!(KEVENT, SignalState), 4);
        assert_eq!(offset_of!(KEVENT, WaitListHead), 8);
        assert_eq!(size_of::<NDIS_EVENT>(), 0x18);
    }
}

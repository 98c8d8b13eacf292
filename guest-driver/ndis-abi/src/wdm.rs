//! ntoskrnl/wdm types: `UNICODE_STRING`, `DRIVER_OBJECT`, `KEVENT` / `NDIS_EVENT`.

use core::ffi::c_void;

/// `UNICODE_STRING` (x64, 0x10 bytes). `Length`/`MaximumLength` are in bytes, not characters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
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
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut c_void,
    pub Flags: u32,
    pub DriverStart: *mut c_void,
    pub DriverSize: u32,
    pub DriverSection: *mut c_void,
    pub DriverExtension: *mut c_void,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: *mut c_void,
    pub DriverStartIo: *mut c_void,
    /// `PDRIVER_UNLOAD`: `VOID (PDRIVER_OBJECT)`, win64.
    pub DriverUnload: Option<unsafe extern "win64" fn(*mut DRIVER_OBJECT)>,
    pub MajorFunction: [*mut c_void; IRP_MJ_MAXIMUM_FUNCTION_COUNT],
}

/// `KEVENT` = `DISPATCHER_HEADER` (x64, 0x18 bytes). Opaque to the driver: only the implementation
/// of `NdisInitializeEvent`/`NdisSetEvent`/... (the guest) interprets these bytes. The layout below
/// is Windows' (`Type`, `Signalling`, `Size`, `Reserved1`, `SignalState`, `WaitListHead`); the guest
/// may keep its own state in it as long as it fits in 0x18 bytes with 8-byte alignment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KEVENT {
    pub Type: u8,
    pub Signalling: u8,
    pub Size: u8,
    pub Reserved1: u8,
    pub SignalState: i32,
    pub WaitListHead: [u64; 2],
}

/// `NDIS_EVENT { KEVENT Event; }` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NDIS_EVENT {
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

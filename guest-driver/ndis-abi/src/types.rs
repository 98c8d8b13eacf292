//! Scalar Windows types (x64 LLP64 data model: `ULONG` is 32 bits, pointers 64).

use core::ffi::c_void;

/// `UCHAR` / `BOOLEAN`: one byte; `TRUE` is 1.
pub type BOOLEAN = u8;
/// `TRUE` as a `BOOLEAN`.
pub const TRUE: BOOLEAN = 1;
/// `FALSE` as a `BOOLEAN`.
pub const FALSE: BOOLEAN = 0;
/// `ULONG`, `UINT`: 32 bits on x64 Windows.
pub type ULONG = u32;
/// `UINT`: 32 bits.
pub type UINT = u32;
/// `USHORT`: 16 bits.
pub type USHORT = u16;
/// `UCHAR`: 8 bits.
pub type UCHAR = u8;
/// `KIRQL`: one byte.
pub type KIRQL = u8;
/// `KAFFINITY`: pointer-sized.
pub type KAFFINITY = u64;
/// `NDIS_HANDLE`: an opaque pointer.
pub type NDIS_HANDLE = *mut c_void;
/// `PHYSICAL_ADDRESS` / `NDIS_PHYSICAL_ADDRESS`: a `LARGE_INTEGER` (signed 64-bit, passed by
/// value in one register under the Microsoft x64 convention).
pub type PHYSICAL_ADDRESS = i64;
/// `NDIS_PHYSICAL_ADDRESS`: the same `LARGE_INTEGER` as `PHYSICAL_ADDRESS`.
pub type NDIS_PHYSICAL_ADDRESS = PHYSICAL_ADDRESS;
/// `NDIS_PORT_NUMBER`: ULONG.
pub type NDIS_PORT_NUMBER = u32;

/// `EX_POOL_PRIORITY` values accepted by `NdisAllocateMemoryWithTagPriority`.
pub type EX_POOL_PRIORITY = u32;
/// `LowPoolPriority`: the allocation may fail first when memory runs low.
pub const LowPoolPriority: EX_POOL_PRIORITY = 0;
/// `NormalPoolPriority`: ordinary allocations.
pub const NormalPoolPriority: EX_POOL_PRIORITY = 16;
/// `HighPoolPriority`: the allocation should succeed even when memory is low.
pub const HighPoolPriority: EX_POOL_PRIORITY = 32;

/// `NDIS_HALT_ACTION` (enum, 4 bytes).
pub type NDIS_HALT_ACTION = u32;
/// `NdisHaltDeviceDisabled`: the user disabled the device.
pub const NdisHaltDeviceDisabled: NDIS_HALT_ACTION = 0;
/// `NdisHaltDeviceInstanceDeInitialized`: an intermediate driver deinitialized the instance.
pub const NdisHaltDeviceInstanceDeInitialized: NDIS_HALT_ACTION = 1;
/// `NdisHaltDevicePoweredDown`: the system is entering a sleep state.
pub const NdisHaltDevicePoweredDown: NDIS_HALT_ACTION = 2;
/// `NdisHaltDeviceSurpriseRemoved`: the device was removed without warning; do not touch the hardware.
pub const NdisHaltDeviceSurpriseRemoved: NDIS_HALT_ACTION = 3;
/// `NdisHaltDeviceFailed`: the device failed (for example after a failed reset).
pub const NdisHaltDeviceFailed: NDIS_HALT_ACTION = 4;
/// `NdisHaltDeviceInitializationFailed`: initialization of the stack failed after MiniportInitializeEx succeeded.
pub const NdisHaltDeviceInitializationFailed: NDIS_HALT_ACTION = 5;
/// `NdisHaltDeviceStopped`: the device is stopped for a PnP rebalance or driver update.
pub const NdisHaltDeviceStopped: NDIS_HALT_ACTION = 6;

/// `NDIS_SHUTDOWN_ACTION` (enum, 4 bytes).
pub type NDIS_SHUTDOWN_ACTION = u32;
/// `NdisShutdownPowerOff`: orderly system shutdown (PASSIVE_LEVEL).
pub const NdisShutdownPowerOff: NDIS_SHUTDOWN_ACTION = 0;
/// `NdisShutdownBugCheck`: the system is crashing; only stop the hardware (HIGH_LEVEL).
pub const NdisShutdownBugCheck: NDIS_SHUTDOWN_ACTION = 1;

/// `NDIS_INTERFACE_TYPE` (enum, 4 bytes); the values the skeleton may use.
pub type NDIS_INTERFACE_TYPE = u32;
/// `NdisInterfaceInternal`: a device on the system board.
pub const NdisInterfaceInternal: NDIS_INTERFACE_TYPE = 0;
/// `NdisInterfacePci`: a PCI device (what the RNIC is).
pub const NdisInterfacePci: NDIS_INTERFACE_TYPE = 5;
/// `NdisInterfacePNPBus`: a device on a bus enumerated by a PnP bus driver.
pub const NdisInterfacePNPBus: NDIS_INTERFACE_TYPE = 15;

/// Builds a pool tag the way C's multi-character constant `'abcd'` does on MSVC: the first
/// character ends up in the most significant byte, so memory dumps show it reversed.
pub const fn pool_tag(tag: [u8; 4]) -> u32 {
    ((tag[0] as u32) << 24) | ((tag[1] as u32) << 16) | ((tag[2] as u32) << 8) | tag[3] as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn scalar_sizes() {
        assert_eq!(size_of::<BOOLEAN>(), 1);
        assert_eq!(size_of::<ULONG>(), 4);
        assert_eq!(size_of::<NDIS_HANDLE>(), 8);
        assert_eq!(size_of::<NDIS_PHYSICAL_ADDRESS>(), 8);
        assert_eq!(size_of::<KAFFINITY>(), 8);
    }

    #[test]
    fn pool_tag_matches_msvc_multichar_constant() {
        // MSVC: 'rnic' == 0x726E6963
        assert_eq!(pool_tag(*b"rnic"), 0x726E_6963);
    }
}

//! `NDIS_RESOURCE_LIST` = `CM_PARTIAL_RESOURCE_LIST` and `CM_PARTIAL_RESOURCE_DESCRIPTOR`.
//!
//! wdm.h declares the descriptor inside `#include <pshpack4.h>`: it is packed to 4 bytes, so on
//! x64 the 64-bit `Start` sits at offset 4 and the descriptor is 0x14 (20) bytes, not 0x18.

/// `CM_RESOURCE_TYPE` (UCHAR): the `Type` of a partial resource descriptor, which selects the live member of `u`.
pub type CM_RESOURCE_TYPE = u8;
/// `CmResourceTypeNull`: an unused descriptor.
pub const CmResourceTypeNull: CM_RESOURCE_TYPE = 0;
/// `CmResourceTypePort`: an I/O port range (`u.Port`).
pub const CmResourceTypePort: CM_RESOURCE_TYPE = 1;
/// `CmResourceTypeInterrupt`: an interrupt (`u.Interrupt`, or `u.MessageInterrupt` with `CM_RESOURCE_INTERRUPT_MESSAGE`).
pub const CmResourceTypeInterrupt: CM_RESOURCE_TYPE = 2;
/// `CmResourceTypeMemory`: a memory range below 4 GiB in length (`u.Memory`).
pub const CmResourceTypeMemory: CM_RESOURCE_TYPE = 3;
/// `CmResourceTypeDma`: a legacy DMA channel.
pub const CmResourceTypeDma: CM_RESOURCE_TYPE = 4;
/// `CmResourceTypeDeviceSpecific`: device-specific data follows the descriptor.
pub const CmResourceTypeDeviceSpecific: CM_RESOURCE_TYPE = 5;
/// `CmResourceTypeBusNumber`: a range of bus numbers.
pub const CmResourceTypeBusNumber: CM_RESOURCE_TYPE = 6;
/// `CmResourceTypeMemoryLarge`: a memory range whose length is stored scaled (`u.Memory40/48/64`).
pub const CmResourceTypeMemoryLarge: CM_RESOURCE_TYPE = 7;

/// `CmResourceShareUndetermined`: sharing not specified.
pub const CmResourceShareUndetermined: u8 = 0;
/// `CmResourceShareDeviceExclusive`: the resource belongs to this device alone.
pub const CmResourceShareDeviceExclusive: u8 = 1;
/// `CmResourceShareDriverExclusive`: the resource belongs to this driver alone.
pub const CmResourceShareDriverExclusive: u8 = 2;
/// `CmResourceShareShared`: the resource may be shared with other devices.
pub const CmResourceShareShared: u8 = 3;

/// `CM_RESOURCE_MEMORY_READ_WRITE` (memory descriptor flag value 0): the range is readable and writable.
pub const CM_RESOURCE_MEMORY_READ_WRITE: u16 = 0x0000;
/// `CM_RESOURCE_MEMORY_PREFETCHABLE`: the memory range may be prefetched (a prefetchable BAR).
pub const CM_RESOURCE_MEMORY_PREFETCHABLE: u16 = 0x0004;
/// `CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE` (interrupt descriptor flag value 0): level-triggered interrupt.
pub const CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE: u16 = 0x0000;
/// `CM_RESOURCE_INTERRUPT_LATCHED`: edge-triggered interrupt.
pub const CM_RESOURCE_INTERRUPT_LATCHED: u16 = 0x0001;
/// `CM_RESOURCE_INTERRUPT_MESSAGE`: a message-signalled interrupt (MSI/MSI-X).
pub const CM_RESOURCE_INTERRUPT_MESSAGE: u16 = 0x0002;

/// `u.Generic` / `u.Port` / `u.Memory`: `{ PHYSICAL_ADDRESS Start; ULONG Length; }` (12 bytes, packed 4).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default)]
pub struct CM_RESOURCE_RANGE {
    /// `Start`: first physical (or port) address of the range.
    pub Start: i64,
    /// `Length`: bytes in the range.
    pub Length: u32,
}

/// `u.Interrupt` (translated, processor-group build): `{ USHORT Level; USHORT Group; ULONG Vector;
/// KAFFINITY Affinity; }` (16 bytes, packed 4).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default)]
pub struct CM_RESOURCE_INTERRUPT {
    /// `Level`: the interrupt's IRQL (translated) or line (raw).
    pub Level: u16,
    /// `Group`: the processor group of `Affinity`.
    pub Group: u16,
    /// `Vector`: the IDT vector (translated) or interrupt line/message base (raw).
    pub Vector: u32,
    /// `Affinity`: processors the interrupt may be delivered to (bit per processor).
    pub Affinity: u64,
}

/// `u.MessageInterrupt.Raw`: `{ USHORT Reserved; USHORT MessageCount; ULONG Vector; KAFFINITY Affinity; }`.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default)]
pub struct CM_RESOURCE_MESSAGE_INTERRUPT_RAW {
    /// `Reserved`: unused.
    pub Reserved: u16,
    /// `MessageCount`: number of messages allocated to the device.
    pub MessageCount: u16,
    /// `Vector`: the first message's vector.
    pub Vector: u32,
    /// `Affinity`: processors the messages may be delivered to.
    pub Affinity: u64,
}

/// The descriptor's union `u` (16 bytes, packed 4).
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
pub union CM_PARTIAL_RESOURCE_DESCRIPTOR_U {
    /// `u.Generic`: any range; the same bytes as `Port` and `Memory`.
    pub Generic: CM_RESOURCE_RANGE,
    /// `u.Port`: live for `CmResourceTypePort`.
    pub Port: CM_RESOURCE_RANGE,
    /// `u.Memory`: live for `CmResourceTypeMemory`.
    pub Memory: CM_RESOURCE_RANGE,
    /// `u.Interrupt`: live for `CmResourceTypeInterrupt` (translated list).
    pub Interrupt: CM_RESOURCE_INTERRUPT,
    /// `u.MessageInterrupt.Raw`: live for a message interrupt in a raw list.
    pub MessageInterruptRaw: CM_RESOURCE_MESSAGE_INTERRUPT_RAW,
    /// The union's 16 bytes as words, for copying and debugging.
    pub Raw: [u32; 4],
}

/// `CM_PARTIAL_RESOURCE_DESCRIPTOR` (x64, 0x14 bytes, 4-byte packed).
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
pub struct CM_PARTIAL_RESOURCE_DESCRIPTOR {
    /// `Type`: which member of `u` is live (`CmResourceType*`).
    pub Type: CM_RESOURCE_TYPE,
    /// `ShareDisposition`: `CmResourceShare*`.
    pub ShareDisposition: u8,
    /// `Flags`: type-specific bits (`CM_RESOURCE_MEMORY_*`, `CM_RESOURCE_INTERRUPT_*`).
    pub Flags: u16,
    /// `u`: the type-specific description of the resource.
    pub u: CM_PARTIAL_RESOURCE_DESCRIPTOR_U,
}

impl CM_PARTIAL_RESOURCE_DESCRIPTOR {
    /// A `CmResourceTypeMemory` descriptor (what PnP reports for a memory BAR below 4 GiB of
    /// length < 4 GiB, which is our 64 KiB BAR0).
    pub const fn memory(start: i64, length: u32, flags: u16) -> Self {
        Self {
            Type: CmResourceTypeMemory,
            ShareDisposition: CmResourceShareDeviceExclusive,
            Flags: flags,
            u: CM_PARTIAL_RESOURCE_DESCRIPTOR_U {
                Memory: CM_RESOURCE_RANGE {
                    Start: start,
                    Length: length,
                },
            },
        }
    }

    /// A translated message-signalled `CmResourceTypeInterrupt` descriptor.
    pub const fn message_interrupt(vector: u32, level: u16, affinity: u64) -> Self {
        Self {
            Type: CmResourceTypeInterrupt,
            ShareDisposition: CmResourceShareDeviceExclusive,
            Flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            u: CM_PARTIAL_RESOURCE_DESCRIPTOR_U {
                Interrupt: CM_RESOURCE_INTERRUPT {
                    Level: level,
                    Group: 0,
                    Vector: vector,
                    Affinity: affinity,
                },
            },
        }
    }

    /// `(Start, Length)` if this is a `CmResourceTypeMemory` descriptor.
    pub fn memory_range(&self) -> Option<(i64, u32)> {
        if self.Type != CmResourceTypeMemory {
            return None;
        }
        // SAFETY: every bit pattern is a valid `CM_RESOURCE_RANGE` (plain integers), so reading
        // this union member is sound whatever was written; `Type` says it is the live one.
        let m = unsafe { self.u.Memory };
        Some((m.Start, m.Length))
    }
}

/// `CM_PARTIAL_RESOURCE_LIST` header: `Version` 0, `Revision` 2, `Count` 4, then `Count`
/// descriptors from offset 8 (declared `PartialDescriptors[1]`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CM_PARTIAL_RESOURCE_LIST {
    /// `Version`: list format version (1).
    pub Version: u16,
    /// `Revision`: list format revision (1).
    pub Revision: u16,
    /// `Count`: number of descriptors that follow.
    pub Count: u32,
    /// `PartialDescriptors`: the first of `Count` descriptors (the list continues past this struct).
    pub PartialDescriptors: [CM_PARTIAL_RESOURCE_DESCRIPTOR; 1],
}

/// `NDIS_RESOURCE_LIST` is a typedef of `CM_PARTIAL_RESOURCE_LIST`.
pub type NDIS_RESOURCE_LIST = CM_PARTIAL_RESOURCE_LIST;

/// Byte offset of the first descriptor in a `CM_PARTIAL_RESOURCE_LIST`.
pub const CM_PARTIAL_RESOURCE_LIST_DESCRIPTORS_OFFSET: usize = 8;

/// Bytes needed for a list with `count` descriptors (at least one, as in C).
pub const fn cm_partial_resource_list_size(count: usize) -> usize {
    let n = if count == 0 { 1 } else { count };
    CM_PARTIAL_RESOURCE_LIST_DESCRIPTORS_OFFSET
        + n * core::mem::size_of::<CM_PARTIAL_RESOURCE_DESCRIPTOR>()
}

impl CM_PARTIAL_RESOURCE_LIST {
    /// The `Count` descriptors of a list.
    ///
    /// # Safety
    /// `list` must point to a readable list whose memory holds `Count` descriptors, valid for `'a`.
    pub unsafe fn descriptors<'a>(list: *const Self) -> &'a [CM_PARTIAL_RESOURCE_DESCRIPTOR] {
        // SAFETY: guaranteed by the caller; the descriptors start at offset 8 and are 4-aligned
        // like the list itself.
        unsafe {
            let count = (*list).Count as usize;
            let first = core::ptr::addr_of!((*list).PartialDescriptors)
                .cast::<CM_PARTIAL_RESOURCE_DESCRIPTOR>();
            core::slice::from_raw_parts(first, count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn descriptor_layout_is_packed_to_4() {
        type D = CM_PARTIAL_RESOURCE_DESCRIPTOR;
        assert_eq!(size_of::<D>(), 0x14);
        assert_eq!(align_of::<D>(), 4);
        assert_eq!(offset_of!(D, Type), 0);
        assert_eq!(offset_of!(D, ShareDisposition), 1);
        assert_eq!(offset_of!(D, Flags), 2);
        assert_eq!(offset_of!(D, u), 4);
        assert_eq!(size_of::<CM_PARTIAL_RESOURCE_DESCRIPTOR_U>(), 16);
        // u.Memory.Start at descriptor offset 4, Length at 0xC
        assert_eq!(offset_of!(CM_RESOURCE_RANGE, Start), 0);
        assert_eq!(offset_of!(CM_RESOURCE_RANGE, Length), 8);
        assert_eq!(size_of::<CM_RESOURCE_RANGE>(), 12);
        // u.Interrupt: Level 4, Group 6, Vector 8, Affinity 0xC
        assert_eq!(offset_of!(CM_RESOURCE_INTERRUPT, Level), 0);
        assert_eq!(offset_of!(CM_RESOURCE_INTERRUPT, Group), 2);
        assert_eq!(offset_of!(CM_RESOURCE_INTERRUPT, Vector), 4);
        assert_eq!(offset_of!(CM_RESOURCE_INTERRUPT, Affinity), 8);
        assert_eq!(size_of::<CM_RESOURCE_INTERRUPT>(), 16);
        assert_eq!(
            offset_of!(CM_RESOURCE_MESSAGE_INTERRUPT_RAW, MessageCount),
            2
        );
    }

    #[test]
    fn list_layout() {
        type L = CM_PARTIAL_RESOURCE_LIST;
        assert_eq!(offset_of!(L, Version), 0);
        assert_eq!(offset_of!(L, Revision), 2);
        assert_eq!(offset_of!(L, Count), 4);
        assert_eq!(
            offset_of!(L, PartialDescriptors),
            CM_PARTIAL_RESOURCE_LIST_DESCRIPTORS_OFFSET
        );
        assert_eq!(size_of::<L>(), 0x1C);
        assert_eq!(cm_partial_resource_list_size(3), 8 + 3 * 0x14);
    }

    #[test]
    fn memory_descriptor_bytes() {
        let d = CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC000_0000, 0x1_0000, 0);
        // SAFETY: D is plain old data of exactly 20 bytes.
        let bytes: [u8; 20] = unsafe { core::mem::transmute(d) };
        assert_eq!(bytes[0], CmResourceTypeMemory);
        assert_eq!(&bytes[4..12], &0xC000_0000i64.to_le_bytes());
        assert_eq!(&bytes[12..16], &0x1_0000u32.to_le_bytes());
        assert_eq!(d.memory_range(), Some((0xC000_0000, 0x1_0000)));
        let irq = CM_PARTIAL_RESOURCE_DESCRIPTOR::message_interrupt(0x40, 5, 1);
        assert_eq!(irq.memory_range(), None);
    }

    #[test]
    fn descriptors_of_a_list() {
        #[repr(C)]
        struct Three {
            head: [u32; 2],
            d: [CM_PARTIAL_RESOURCE_DESCRIPTOR; 3],
        }
        let buf = Three {
            head: [0x0001_0001, 3],
            d: [
                CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC000_0000, 0x1_0000, 0),
                CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC001_0000, 0x2000, 0),
                CM_PARTIAL_RESOURCE_DESCRIPTOR::message_interrupt(0x40, 5, 1),
            ],
        };
        let list = (&buf as *const Three).cast::<CM_PARTIAL_RESOURCE_LIST>();
        // SAFETY: `buf` holds a header and three descriptors laid out as the C list.
        let ds = unsafe { CM_PARTIAL_RESOURCE_LIST::descriptors(list) };
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[1].memory_range(), Some((0xC001_0000, 0x2000)));
        assert_eq!(ds[2].Type, CmResourceTypeInterrupt);
    }
}

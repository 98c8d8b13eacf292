//! The one adapter between the vfio-user server and the device model: every use of
//! `rnic-device`'s PCI function API lives here, so a change of that API touches this
//! module only.
//!
//! [`RnicFunction`] owns one [`Rnic`] and answers the accesses a vfio-user client
//! makes through regions: configuration space (any length, split into the 1/2/4-byte
//! accesses the device takes), BAR0 and BAR2 (split into naturally aligned accesses
//! of at most 4 and 8 bytes). Offsets and lengths are checked by the caller
//! ([`crate::backend`]) against the region sizes published here.
//!
//! MSI-X: a vfio-user client such as QEMU emulates the MSI-X *table* itself and
//! tells the device which vectors it may signal by handing it one eventfd per vector
//! (SET_IRQS). The device model, however, delivers a vector only while its own table
//! entry is unmasked. The adapter therefore mirrors the client's choice into the
//! device's table: a vector with an eventfd is unmasked, one without is masked (the
//! device then keeps its pending bit in the PBA, which QEMU reads from the server).
//! Table writes are ignored by the device while memory decoding is off, so the
//! mirror is re-applied after every configuration write until the device shows it.

use std::sync::Arc;
use std::time::Duration;

use rnic_contract::pci::{
    BAR0_SIZE, BAR2_SIZE, MSIX_BAR, MSIX_ENTRY_SIZE, MSIX_TABLE_OFFSET, MSIX_VECTORS, REGISTER_BAR,
};
use rnic_device::wire::WireBackend;
use rnic_device::{InterruptSink, PciFunction, Rnic, RnicConfig};
use vm_memory::GuestMemoryMmap;

/// Size of the configuration space region in bytes (PCI Express extended space).
pub const CONFIG_SPACE_SIZE: u64 = 4096;

/// Number of MSI-X vectors the device implements.
pub const MSIX_VECTOR_COUNT: u32 = MSIX_VECTORS as u32;

/// What a region index of the vfio-user PCI layout refers to on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionTarget {
    /// A memory BAR of the device (index 0 = registers, 2 = MSI-X table and PBA).
    Bar(usize),
    /// The configuration space.
    Config,
}

/// Size in bytes of BAR `index`, or `None` for BARs the device does not implement
/// (BAR1 and BAR3 are the upper halves of the 64-bit BAR0 and BAR2).
pub fn bar_size(index: usize) -> Option<u64> {
    match index {
        REGISTER_BAR => Some(BAR0_SIZE),
        MSIX_BAR => Some(BAR2_SIZE),
        _ => None,
    }
}

/// Byte offset of the vector control dword of MSI-X table entry `vector` in BAR2.
fn vector_control_offset(vector: u16) -> u64 {
    MSIX_TABLE_OFFSET + MSIX_ENTRY_SIZE * u64::from(vector) + 12
}

/// Splits `[offset, offset + len)` into naturally aligned pieces of at most `max`
/// bytes (`max` a power of two), in address order, as (offset, length) pairs.
pub fn aligned_pieces(offset: u64, len: usize, max: usize) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    let (mut at, mut left) = (offset, len);
    while left > 0 {
        let mut size = max;
        while size > 1 && (at % size as u64 != 0 || size > left) {
            size /= 2;
        }
        out.push((at, size));
        at += size as u64;
        left -= size;
    }
    out
}

/// The RNIC as a vfio-user server presents it.
pub struct RnicFunction {
    rnic: Rnic,
    /// Vectors the client gave an eventfd for (the client's "unmasked" set).
    wanted_unmasked: [bool; MSIX_VECTORS as usize],
    /// What the device's own table shows for each vector, when known.
    applied: [Option<bool>; MSIX_VECTORS as usize],
}

impl std::fmt::Debug for RnicFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RnicFunction")
            .field("rnic", &self.rnic)
            .field("wanted_unmasked", &self.wanted_unmasked)
            .finish()
    }
}

impl RnicFunction {
    /// A powered-on RNIC over `memory` (the client's DMA-mapped RAM), signalling
    /// interrupts through `irq`, attached to `wire` when one is given.
    pub fn new(
        config: RnicConfig,
        memory: GuestMemoryMmap,
        irq: Arc<dyn InterruptSink>,
        wire: Option<Box<dyn WireBackend>>,
    ) -> Self {
        let mut rnic = Rnic::new(config, memory, irq);
        if let Some(wire) = wire {
            rnic.attach_wire(wire);
        }
        RnicFunction {
            rnic,
            wanted_unmasked: [false; MSIX_VECTORS as usize],
            applied: [None; MSIX_VECTORS as usize],
        }
    }

    /// Reads `data.len()` bytes of configuration space at `offset`.
    pub fn config_read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset + i as u64;
            let dword = u16::try_from(at & !3)
                .map(|o| self.rnic.config_read(o))
                .unwrap_or(u32::MAX);
            *byte = dword.to_le_bytes()[(at & 3) as usize];
        }
    }

    /// Writes `data` to configuration space at `offset`.
    pub fn config_write(&mut self, offset: u64, data: &[u8]) {
        for (at, len) in aligned_pieces(offset, data.len(), 4) {
            let Ok(o) = u16::try_from(at) else { break };
            let start = (at - offset) as usize;
            // The device reports how its decoded BARs moved; a vfio-user client maps
            // BARs itself, so the report is not needed here.
            self.rnic.config_write(o, &data[start..start + len]);
        }
        self.sync_vectors();
    }

    /// Reads `data.len()` bytes at `offset` in BAR `bar`.
    pub fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        let max = if bar == MSIX_BAR { 8 } else { 4 };
        for (at, len) in aligned_pieces(offset, data.len(), max) {
            let start = (at - offset) as usize;
            self.rnic.bar_read(bar, at, &mut data[start..start + len]);
        }
    }

    /// Writes `data` at `offset` in BAR `bar`.
    pub fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let max = if bar == MSIX_BAR { 8 } else { 4 };
        for (at, len) in aligned_pieces(offset, data.len(), max) {
            let start = (at - offset) as usize;
            self.rnic.bar_write(bar, at, &data[start..start + len]);
        }
    }

    /// Records whether the client can take vector `vector` (it gave an eventfd for
    /// it) and mirrors that into the device's MSI-X table. Out-of-range vectors are
    /// ignored (the caller validates them).
    pub fn set_vector_enabled(&mut self, vector: u16, enabled: bool) {
        if let Some(w) = self.wanted_unmasked.get_mut(vector as usize) {
            *w = enabled;
            self.sync_vectors();
        }
    }

    /// Function Level Reset (the vfio-user DEVICE_RESET): device, configuration
    /// space and MSI-X back to power-on. The client's eventfds stay assigned.
    pub fn reset(&mut self) {
        self.rnic.function_level_reset();
        self.applied = [None; MSIX_VECTORS as usize];
        self.sync_vectors();
    }

    /// The device's periodic work at device time `now`.
    pub fn poll(&mut self, now: Duration) {
        self.rnic.poll(now);
    }

    /// The device itself, for the control API (statistics, faults, link, fatal); the
    /// PCI accesses go through the methods above.
    pub fn rnic_mut(&mut self) -> &mut Rnic {
        &mut self.rnic
    }

    /// Applies `wanted_unmasked` to the device's table where it differs from what
    /// the device is known to show.
    fn sync_vectors(&mut self) {
        for vector in 0..MSIX_VECTORS {
            let i = vector as usize;
            let want = self.wanted_unmasked[i];
            if self.applied[i] == Some(want) {
                continue;
            }
            let off = vector_control_offset(vector);
            if want {
                // An address and data the device accepts; the client owns the real
                // message (its own emulated table), the eventfd only says "vector i".
                self.rnic
                    .bar_write(MSIX_BAR, off - 12, &0xFEE0_0000u32.to_le_bytes());
                self.rnic.bar_write(MSIX_BAR, off - 8, &0u32.to_le_bytes());
                self.rnic
                    .bar_write(MSIX_BAR, off - 4, &u32::from(vector).to_le_bytes());
            }
            let control = u32::from(!want);
            self.rnic.bar_write(MSIX_BAR, off, &control.to_le_bytes());
            let mut back = [0u8; 4];
            self.rnic.bar_read(MSIX_BAR, off, &mut back);
            // While memory decoding is off the device reads all ones and ignores the
            // write: try again after the next configuration write.
            if u32::from_le_bytes(back) == control {
                self.applied[i] = Some(want);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnic_device::RecordingSink;
    use vm_memory::GuestAddress;

    fn function() -> (RnicFunction, Arc<RecordingSink>) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let sink = Arc::new(RecordingSink::new());
        (
            RnicFunction::new(RnicConfig::default(), mem, sink.clone(), None),
            sink,
        )
    }

    #[test]
    fn pieces_are_naturally_aligned_and_cover_the_range() {
        assert_eq!(aligned_pieces(0, 4, 4), vec![(0, 4)]);
        assert_eq!(
            aligned_pieces(1, 6, 4),
            vec![(1, 1), (2, 2), (4, 2), (6, 1)]
        );
        assert_eq!(aligned_pieces(0, 16, 8), vec![(0, 8), (8, 8)]);
        assert_eq!(aligned_pieces(4, 8, 8), vec![(4, 4), (8, 4)]);
        assert!(aligned_pieces(0, 0, 4).is_empty());
    }

    #[test]
    fn whole_config_space_reads_as_the_device_shows_it() {
        let (mut f, _) = function();
        let mut all = vec![0u8; CONFIG_SPACE_SIZE as usize];
        f.config_read(0, &mut all);
        // Vendor 0x7E57, device 0x0001, class 02 00 00 (device-spec.md §1.1).
        assert_eq!(&all[0..4], &[0x57, 0x7E, 0x01, 0x00]);
        assert_eq!(&all[9..12], &[0x00, 0x00, 0x02]);
        let mut beyond = [0u8; 2];
        f.config_read(CONFIG_SPACE_SIZE, &mut beyond);
        assert_eq!(beyond, [0xFF, 0xFF]);
    }

    #[test]
    fn client_vector_choice_reaches_the_device_table_once_memory_decodes() {
        let (mut f, sink) = function();
        let mut bar0 = 0xC000_0000u32.to_le_bytes().to_vec();
        bar0.extend_from_slice(&0u32.to_le_bytes());
        f.config_write(0x10, &bar0);
        f.config_write(0x18, &0xC001_0000u32.to_le_bytes());
        // MSI-X enable (capability at 0x50, control at 0x52).
        f.config_write(0x52, &0x8000u16.to_le_bytes());
        f.set_vector_enabled(0, true);
        assert_eq!(
            f.applied[0], None,
            "not applied while memory decoding is off"
        );
        f.config_write(0x04, &0x0006u16.to_le_bytes());
        assert_eq!(f.applied[0], Some(true));
        let mut control = [0u8; 4];
        f.bar_read(MSIX_BAR, vector_control_offset(0), &mut control);
        assert_eq!(u32::from_le_bytes(control), 0, "vector 0 unmasked");
        assert!(sink.routes().iter().any(|(v, r)| *v == 0 && r.is_some()));
        f.set_vector_enabled(0, false);
        f.bar_read(MSIX_BAR, vector_control_offset(0), &mut control);
        assert_eq!(u32::from_le_bytes(control), 1, "vector 0 masked again");
        f.reset();
        let mut cmd = [0u8; 2];
        f.config_read(4, &mut cmd);
        assert_eq!(cmd, [0, 0], "reset clears the Command register");
    }
}

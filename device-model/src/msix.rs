//! MSI-X: the 16-entry vector table and the pending bit array (PBA) in BAR2.
//!
//! Semantics (PCI Local Bus / PCIe base specification, MSI-X):
//!
//! * A vector is *deliverable* when MSI-X is enabled, the function is not masked
//!   and the vector's own entry is not masked.
//! * Raising a deliverable vector sends its message at once. Raising a vector that
//!   is not deliverable sets its PBA bit; when the vector becomes deliverable the
//!   message is sent and the bit cleared.
//! * The [`InterruptSink`] hears about every change of deliverability and every
//!   change of a deliverable vector's message (`update_route`) before any trigger.
//!
//! Table layout: entry `n` at `16 * n`: `addr_lo`, `addr_hi`, `data`, `vector
//! control` (bit 0 = mask, other bits reserved, read 0). Accesses are 4 or 8 bytes,
//! naturally aligned; others read all ones and are ignored on write. The PBA is one
//! 64-bit word at [`crate::regs::MSIX_PBA_OFFSET`], read-only.

use std::sync::Arc;

use crate::irq::{InterruptSink, MsiMessage};
use rnic_contract::pci::{MSIX_PBA_OFFSET, MSIX_TABLE_OFFSET, MSIX_VECTORS};

const N: usize = MSIX_VECTORS as usize;
const ENTRY_SIZE: u64 = 16;
const TABLE_END: u64 = MSIX_TABLE_OFFSET + ENTRY_SIZE * N as u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    address: u64,
    data: u32,
    masked: bool,
}

impl Entry {
    const RESET: Entry = Entry {
        address: 0,
        data: 0,
        masked: true,
    };

    fn message(&self) -> MsiMessage {
        MsiMessage {
            address: self.address,
            data: self.data,
        }
    }
}

/// Counters kept by the MSI-X block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MsixCounters {
    /// Messages handed to the sink.
    pub delivered: u64,
    /// Interrupts that went to the PBA instead of being delivered.
    pub deferred: u64,
    /// Sink failures (route or trigger).
    pub sink_errors: u64,
    /// Raises of a vector number beyond the table.
    pub bad_vector: u64,
}

/// The MSI-X table, PBA and capability control state of the function.
pub struct Msix {
    entries: [Entry; N],
    pending: u64,
    enabled: bool,
    function_mask: bool,
    /// What the sink was last told about each vector.
    routed: [Option<MsiMessage>; N],
    sink: Arc<dyn InterruptSink>,
    counters: MsixCounters,
}

impl std::fmt::Debug for Msix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msix")
            .field("entries", &self.entries)
            .field("pending", &self.pending)
            .field("enabled", &self.enabled)
            .field("function_mask", &self.function_mask)
            .finish()
    }
}

impl Msix {
    /// Power-on state: all entries masked, MSI-X disabled, nothing pending.
    pub fn new(sink: Arc<dyn InterruptSink>) -> Self {
        Msix {
            entries: [Entry::RESET; N],
            pending: 0,
            enabled: false,
            function_mask: false,
            routed: [None; N],
            sink,
            counters: MsixCounters::default(),
        }
    }

    /// Function-level reset / power-on: entries masked and zeroed, nothing pending,
    /// MSI-X disabled. Routes that were live are withdrawn.
    pub fn reset(&mut self) {
        self.entries = [Entry::RESET; N];
        self.pending = 0;
        self.enabled = false;
        self.function_mask = false;
        self.sync();
    }

    /// Drops every pending bit (device reset: pending interrupts belong to the device).
    pub fn clear_pending(&mut self) {
        self.pending = 0;
    }

    /// Applies the capability's Message Control bits.
    pub fn set_control(&mut self, enabled: bool, function_mask: bool) {
        if (enabled, function_mask) != (self.enabled, self.function_mask) {
            self.enabled = enabled;
            self.function_mask = function_mask;
            self.sync();
        }
    }

    /// MSI-X Enable bit.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Function Mask bit.
    pub fn function_masked(&self) -> bool {
        self.function_mask
    }

    /// The PBA word (bit n = vector n pending).
    pub fn pending_bits(&self) -> u64 {
        self.pending
    }

    /// Whether `vector` would be delivered now.
    pub fn deliverable(&self, vector: u16) -> bool {
        (vector as usize) < N
            && self.enabled
            && !self.function_mask
            && !self.entries[vector as usize].masked
    }

    /// The message currently programmed for `vector`.
    pub fn message(&self, vector: u16) -> Option<MsiMessage> {
        self.entries.get(vector as usize).map(Entry::message)
    }

    /// Counters.
    pub fn counters(&self) -> MsixCounters {
        self.counters
    }

    /// Zeroes the counters.
    pub fn clear_counters(&mut self) {
        self.counters = MsixCounters::default();
    }

    /// Raises `vector`: delivers it if deliverable, otherwise sets its PBA bit.
    pub fn raise(&mut self, vector: u16) {
        if vector as usize >= N {
            self.counters.bad_vector += 1;
            tracing::warn!(
                vector,
                "interrupt raised on a vector beyond the MSI-X table"
            );
            return;
        }
        if self.deliverable(vector) {
            self.deliver(vector);
        } else {
            self.pending |= 1 << vector;
            self.counters.deferred += 1;
        }
    }

    /// Sends `vector`'s message to the sink unconditionally (it must be deliverable:
    /// callers use this for fault-injected duplicates and spurious interrupts).
    pub fn deliver(&mut self, vector: u16) {
        let Some(entry) = self.entries.get(vector as usize) else {
            return;
        };
        let msg = entry.message();
        self.counters.delivered += 1;
        if let Err(e) = self.sink.trigger(vector, msg) {
            self.counters.sink_errors += 1;
            tracing::warn!(vector, error = %e, "MSI-X delivery failed");
        }
    }

    /// Reads from BAR2. `data.len()` must be 4 or 8 and `offset` aligned to it.
    pub fn bar_read(&self, offset: u64, data: &mut [u8]) {
        let len = data.len();
        if !matches!(len, 4 | 8) || offset & (len as u64 - 1) != 0 {
            data.fill(0xFF);
            return;
        }
        let mut value: u64 = 0;
        for (i, dword) in (0..len / 4).map(|i| (i, self.read_dword(offset + 4 * i as u64))) {
            value |= (dword as u64) << (32 * i);
        }
        data.copy_from_slice(&value.to_le_bytes()[..len]);
    }

    /// Writes to BAR2. `data.len()` must be 4 or 8 and `offset` aligned to it.
    pub fn bar_write(&mut self, offset: u64, data: &[u8]) {
        let len = data.len();
        if !matches!(len, 4 | 8) || offset & (len as u64 - 1) != 0 {
            return;
        }
        for i in 0..len / 4 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&data[4 * i..4 * i + 4]);
            self.write_dword(offset + 4 * i as u64, u32::from_le_bytes(b));
        }
        // An aligned write of 4 or 8 bytes touches one table entry at most, and only
        // that vector's route or pending delivery can change.
        if (MSIX_TABLE_OFFSET..TABLE_END).contains(&offset) {
            self.sync_vector(((offset - MSIX_TABLE_OFFSET) / ENTRY_SIZE) as usize);
        }
    }

    fn read_dword(&self, offset: u64) -> u32 {
        if (MSIX_TABLE_OFFSET..TABLE_END).contains(&offset) {
            let rel = offset - MSIX_TABLE_OFFSET;
            let e = &self.entries[(rel / ENTRY_SIZE) as usize];
            match rel % ENTRY_SIZE {
                0 => e.address as u32,
                4 => (e.address >> 32) as u32,
                8 => e.data,
                _ => e.masked as u32,
            }
        } else if offset == MSIX_PBA_OFFSET {
            self.pending as u32
        } else if offset == MSIX_PBA_OFFSET + 4 {
            (self.pending >> 32) as u32
        } else {
            0
        }
    }

    fn write_dword(&mut self, offset: u64, value: u32) {
        if !(MSIX_TABLE_OFFSET..TABLE_END).contains(&offset) {
            return; // PBA is read-only; the rest of BAR2 is reserved.
        }
        let rel = offset - MSIX_TABLE_OFFSET;
        let e = &mut self.entries[(rel / ENTRY_SIZE) as usize];
        match rel % ENTRY_SIZE {
            0 => e.address = (e.address & !0xFFFF_FFFF) | value as u64,
            4 => e.address = (e.address & 0xFFFF_FFFF) | ((value as u64) << 32),
            8 => e.data = value,
            _ => e.masked = value & 1 != 0,
        }
    }

    /// Brings the sink's routes in line with the table, then delivers every pending
    /// vector that became deliverable.
    fn sync(&mut self) {
        for v in 0..N {
            self.sync_route(v);
        }
        for v in 0..N {
            self.deliver_if_pending(v);
        }
    }

    /// [`Msix::sync`] for one vector, after a change that concerns only its entry.
    fn sync_vector(&mut self, v: usize) {
        self.sync_route(v);
        self.deliver_if_pending(v);
    }

    /// Tells the sink vector `v`'s route when it changed.
    fn sync_route(&mut self, v: usize) {
        let vector = v as u16;
        let want = self.deliverable(vector).then(|| self.entries[v].message());
        if want != self.routed[v] {
            self.routed[v] = want;
            if let Err(e) = self.sink.update_route(vector, want) {
                self.counters.sink_errors += 1;
                tracing::warn!(vector, error = %e, "MSI-X route update failed");
            }
        }
    }

    /// Delivers vector `v` when it is pending and deliverable now.
    fn deliver_if_pending(&mut self, v: usize) {
        if self.pending & (1 << v) != 0 && self.deliverable(v as u16) {
            self.pending &= !(1 << v);
            self.deliver(v as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{RecordingSink, SinkEvent};

    fn setup() -> (Arc<RecordingSink>, Msix) {
        let sink = Arc::new(RecordingSink::new());
        let m = Msix::new(sink.clone());
        (sink, m)
    }

    fn program(m: &mut Msix, v: u16, addr: u64, data: u32) {
        let off = 16 * v as u64;
        m.bar_write(off, &addr.to_le_bytes());
        m.bar_write(off + 8, &data.to_le_bytes());
    }

    fn unmask(m: &mut Msix, v: u16) {
        m.bar_write(16 * v as u64 + 12, &0u32.to_le_bytes());
    }

    fn read32(m: &Msix, off: u64) -> u32 {
        let mut b = [0u8; 4];
        m.bar_read(off, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn reset_state_all_masked() {
        let (sink, m) = setup();
        for v in 0..16 {
            assert_eq!(read32(&m, 16 * v + 12), 1);
            assert_eq!(read32(&m, 16 * v), 0);
        }
        assert_eq!(read32(&m, MSIX_PBA_OFFSET), 0);
        assert!(sink.events().is_empty());
    }

    #[test]
    fn raise_while_masked_sets_pba_then_unmask_delivers_and_clears() {
        let (sink, mut m) = setup();
        program(&mut m, 2, 0xFEE0_0000, 0x42);
        m.set_control(true, false);
        m.raise(2);
        assert!(sink.triggers().is_empty());
        assert_eq!(read32(&m, MSIX_PBA_OFFSET), 1 << 2);
        unmask(&mut m, 2);
        let msg = MsiMessage {
            address: 0xFEE0_0000,
            data: 0x42,
        };
        assert_eq!(
            sink.events(),
            vec![
                SinkEvent::Route {
                    vector: 2,
                    route: Some(msg)
                },
                SinkEvent::Trigger { vector: 2, msg }
            ]
        );
        assert_eq!(read32(&m, MSIX_PBA_OFFSET), 0);
        // A raise now is delivered at once.
        m.raise(2);
        assert_eq!(sink.trigger_count(2), 2);
    }

    #[test]
    fn function_mask_defers_and_releases() {
        let (sink, mut m) = setup();
        program(&mut m, 0, 0xFEE0_0000, 0x30);
        unmask(&mut m, 0);
        m.set_control(true, true);
        assert!(sink.routes().is_empty(), "function masked: not deliverable");
        m.raise(0);
        assert_eq!(m.pending_bits(), 1);
        assert!(sink.triggers().is_empty());
        m.set_control(true, false);
        assert_eq!(sink.triggers(), vec![0]);
        assert_eq!(m.pending_bits(), 0);
        m.set_control(true, true);
        assert_eq!(sink.routes().last(), Some(&(0, None)));
    }

    #[test]
    fn disabled_msix_defers() {
        let (sink, mut m) = setup();
        program(&mut m, 1, 0xFEE0_0000, 0x31);
        unmask(&mut m, 1);
        m.raise(1);
        assert!(sink.events().is_empty());
        assert_eq!(m.pending_bits(), 2);
        m.set_control(true, false);
        assert_eq!(sink.triggers(), vec![1]);
        m.set_control(false, false);
        assert_eq!(sink.routes().last(), Some(&(1, None)));
        m.raise(1);
        assert_eq!(sink.trigger_count(1), 1);
        assert_eq!(m.pending_bits(), 2);
    }

    #[test]
    fn message_change_while_deliverable_updates_route() {
        let (sink, mut m) = setup();
        program(&mut m, 3, 0xFEE0_0000, 0x33);
        unmask(&mut m, 3);
        m.set_control(true, false);
        sink.take();
        m.bar_write(16 * 3 + 8, &0x34u32.to_le_bytes());
        assert_eq!(
            sink.routes(),
            vec![(
                3,
                Some(MsiMessage {
                    address: 0xFEE0_0000,
                    data: 0x34
                })
            )]
        );
        // Rewriting the same value does not announce anything.
        m.bar_write(16 * 3 + 8, &0x34u32.to_le_bytes());
        assert_eq!(sink.routes().len(), 1);
    }

    #[test]
    fn pba_read_only_and_bad_widths() {
        let (_sink, mut m) = setup();
        m.raise(5);
        m.bar_write(MSIX_PBA_OFFSET, &0u64.to_le_bytes());
        assert_eq!(m.pending_bits(), 1 << 5);
        let mut b = [0u8; 2];
        m.bar_read(0, &mut b);
        assert_eq!(b, [0xFF, 0xFF]);
        let mut b8 = [0u8; 8];
        m.bar_read(4, &mut b8);
        assert_eq!(b8, [0xFF; 8], "misaligned 8-byte access");
        m.bar_write(2, &[1, 2]);
        assert_eq!(read32(&m, 0), 0);
        m.raise(200);
        assert_eq!(m.counters().bad_vector, 1);
    }

    #[test]
    fn eight_byte_table_access() {
        let (_sink, mut m) = setup();
        m.bar_write(16 * 4, &0x1234_5678_FEE0_1000u64.to_le_bytes());
        let mut b = [0u8; 8];
        m.bar_read(16 * 4, &mut b);
        assert_eq!(u64::from_le_bytes(b), 0x1234_5678_FEE0_1000);
        m.bar_write(16 * 4 + 8, &((1u64 << 32) | 0x55).to_le_bytes());
        m.bar_read(16 * 4 + 8, &mut b);
        assert_eq!(u64::from_le_bytes(b), (1u64 << 32) | 0x55);
        // Reserved vector-control bits read 0.
        m.bar_write(16 * 4 + 12, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(read32(&m, 16 * 4 + 12), 1);
    }

    #[test]
    fn reset_withdraws_routes() {
        let (sink, mut m) = setup();
        program(&mut m, 0, 0xFEE0_0000, 0x30);
        unmask(&mut m, 0);
        m.set_control(true, false);
        m.reset();
        assert_eq!(sink.routes().last(), Some(&(0, None)));
        assert!(!m.enabled());
    }
}

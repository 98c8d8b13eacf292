//! The pure part of the diagnostics NPI's `QueryDeviceFaultCounters` (`crate::nmr`): the
//! device's `GET_STATS` admin command (docs/device-spec.md sections 3.7 and 14.1) and the
//! fault counters picked out of the block it writes. No FFI: host-tested (artifact-check
//! includes this file).

use ndis_abi::{RNIC_DIAG_DEVICE_FAULT_COUNTERS, RNIC_DIAG_FAULT_COUNTER_INDICES};
use rnic_contract::admin::{self as contract, operands};
use rnic_contract::field;

/// Version of the `GET_STATS` block this driver reads.
pub const BLOCK_VERSION: u32 = 1;
/// Bytes of the block header (version, count).
const HEADER_BYTES: usize = 8;
/// Highest counter index the fault counters need.
const LAST_INDEX: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < RNIC_DIAG_FAULT_COUNTER_INDICES.len() {
        if RNIC_DIAG_FAULT_COUNTER_INDICES[i] > max {
            max = RNIC_DIAG_FAULT_COUNTER_INDICES[i];
        }
        i += 1;
    }
    max
};
/// Bytes of the buffer the driver gives `GET_STATS`: the header and every counter up to the
/// last one needed (the device truncates the block to whole counters that fit).
pub const BUFFER_BYTES: u32 = (HEADER_BYTES + 8 * (LAST_INDEX + 1)) as u32;

/// `GET_STATS` operands: the output buffer's bus address and [`BUFFER_BYTES`].
pub fn get_stats_operands(buffer: u64) -> [u32; 14] {
    let mut b = [0u8; contract::OPERANDS_LEN];
    field::set_u64(&mut b, operands::buffer::ADDR, buffer);
    field::set_u32(&mut b, operands::buffer::LEN, BUFFER_BYTES);
    core::array::from_fn(|i| {
        u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// The fault counters of adapter `adapter_index` from the `GET_STATS` block `block`, of which
/// the device reported writing `bytes_written` bytes (result 0). None when the block is not
/// version [`BLOCK_VERSION`] or lacks one of the counters (a device that wrote less).
pub fn fault_counters(
    block: &[u8],
    bytes_written: u32,
    adapter_index: u32,
) -> Option<RNIC_DIAG_DEVICE_FAULT_COUNTERS> {
    let written = (bytes_written as usize).min(block.len());
    if written < HEADER_BYTES || field::get_u32(block, 0..4) != BLOCK_VERSION {
        return None;
    }
    let counters = (written - HEADER_BYTES) / 8;
    let get = |index: usize| {
        (index < counters).then(|| {
            let at = HEADER_BYTES + 8 * index;
            field::get_u64(block, at..at + 8)
        })
    };
    let mut values = [0u64; RNIC_DIAG_FAULT_COUNTER_INDICES.len()];
    for (v, &index) in values
        .iter_mut()
        .zip(RNIC_DIAG_FAULT_COUNTER_INDICES.iter())
    {
        *v = get(index)?;
    }
    let [tx_link, tx_wire, rx_no_buffer, rx_wire, admin_failed, dma, resets, overflowed, txq0, rxq0] =
        values;
    Some(RNIC_DIAG_DEVICE_FAULT_COUNTERS {
        Size: core::mem::size_of::<RNIC_DIAG_DEVICE_FAULT_COUNTERS>() as u32,
        AdapterIndex: adapter_index,
        TxDroppedLinkDown: tx_link,
        TxWireErrors: tx_wire,
        RxDroppedNoBuffer: rx_no_buffer,
        RxWireErrors: rx_wire,
        AdminFailed: admin_failed,
        DmaErrors: dma,
        DeviceResets: resets,
        EventsOverflowed: overflowed,
        TxQueue0Errors: txq0,
        RxQueue0Errors: rxq0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 block with counter `i` = 1000 + i for `count` counters.
    fn block(count: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES + 8 * count];
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[4..8].copy_from_slice(&89u32.to_le_bytes());
        for i in 0..count {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&(1000 + i as u64).to_le_bytes());
        }
        b
    }

    #[test]
    fn the_buffer_holds_every_counter_through_rx_queue_0_errors() {
        assert_eq!(BUFFER_BYTES, 8 + 8 * 60);
        let ops = get_stats_operands(0x1234_5678_9abc);
        assert_eq!(ops[0], 0x5678_9abc);
        assert_eq!(ops[1], 0x1234);
        assert_eq!(ops[2], BUFFER_BYTES);
        assert!(ops[3..].iter().all(|w| *w == 0));
    }

    #[test]
    fn each_fault_counter_comes_from_its_index() {
        let b = block(60);
        let c = fault_counters(&b, b.len() as u32, 3).expect("complete block");
        assert_eq!(c.Size, 0x58);
        assert_eq!(c.AdapterIndex, 3);
        assert_eq!(c.TxDroppedLinkDown, 1006);
        assert_eq!(c.TxWireErrors, 1007);
        assert_eq!(c.RxDroppedNoBuffer, 1011);
        assert_eq!(c.RxWireErrors, 1014);
        assert_eq!(c.AdminFailed, 1018);
        assert_eq!(c.DmaErrors, 1019);
        assert_eq!(c.DeviceResets, 1020);
        assert_eq!(c.EventsOverflowed, 1024);
        assert_eq!(c.TxQueue0Errors, 1027);
        assert_eq!(c.RxQueue0Errors, 1059);
    }

    #[test]
    fn a_short_or_foreign_block_is_refused() {
        let b = block(60);
        assert_eq!(fault_counters(&b, 8 + 8 * 59, 0), None, "index 59 missing");
        assert_eq!(fault_counters(&b, 4, 0), None, "no header");
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(
            fault_counters(&v2, b.len() as u32, 0),
            None,
            "unknown version"
        );
        assert!(
            fault_counters(&b, u32::MAX, 0).is_some(),
            "a bytes-written beyond the buffer is clamped to it"
        );
    }
}

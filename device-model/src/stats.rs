//! Statistics: counters of the port, the device core and each Ethernet queue,
//! aggregated with the MSI-X, event queue, verbs and fault engine counters into one
//! serde-serializable snapshot ([`RnicStats`], from `Rnic::stats()`).
//!
//! The guest reads a fixed subset through the `GET_STATS` admin command: a header
//! (`version` u32 = 1, `count` u32) followed by `count` u64 counters in the order of
//! [`guest_counters`] (`docs/device-spec.md` §14.1 lists the indices). New counters are
//! only ever appended.

use serde::{Deserialize, Serialize};

use crate::eth::{EthQueueStats, MAX_QUEUES};
use crate::events::EventCounters;
use crate::fault::FaultStats;
use crate::msix::MsixCounters;
use crate::verbs::VerbsStats;

/// Counters of the port (everything that crosses the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// Frames handed to the wire (Ethernet and RoCE).
    pub tx_frames: u64,
    /// Bytes handed to the wire.
    pub tx_bytes: u64,
    /// Frames taken from the wire.
    pub rx_frames: u64,
    /// Bytes taken from the wire.
    pub rx_bytes: u64,
    /// RoCEv2 frames sent (subset of `tx_frames`).
    pub tx_roce_frames: u64,
    /// RoCEv2 frames received and handed to the verbs engine.
    pub rx_roce_frames: u64,
    /// Frames not sent because the link was down (or no wire is attached).
    pub tx_dropped_link_down: u64,
    /// Frames the wire refused (transient wire errors).
    pub tx_wire_errors: u64,
    /// Received frames dropped because the link was down.
    pub rx_dropped_link_down: u64,
    /// Received frames rejected by the MAC filter.
    pub rx_dropped_filter: u64,
    /// Received frames dropped because no RX queue exists.
    pub rx_dropped_no_queue: u64,
    /// Received frames dropped for lack of an RX descriptor.
    pub rx_dropped_no_buffer: u64,
    /// Received frames longer than MTU + header or than the RX buffer.
    pub rx_dropped_too_long: u64,
    /// Received frames shorter than an Ethernet header.
    pub rx_runts: u64,
    /// Receive errors reported by the wire.
    pub rx_wire_errors: u64,
    /// Link up transitions.
    pub link_up_events: u64,
    /// Link down transitions.
    pub link_down_events: u64,
}

/// Counters of the device core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCounters {
    /// Admin commands consumed.
    pub admin_commands: u64,
    /// Admin commands completed with a non-zero status.
    pub admin_failed: u64,
    /// Admin commands that never completed (fault injection).
    pub admin_never_completed: u64,
    /// Times the admin queue stopped with `ADMIN_ERR`.
    pub admin_queue_errors: u64,
    /// Device resets (`DEV_CTRL.RESET` or `ENABLE` 1→0).
    pub resets: u64,
    /// Function level resets.
    pub function_level_resets: u64,
    /// Fatal errors.
    pub fatal_errors: u64,
    /// DMA accesses refused or failed (including injected ones).
    pub dma_errors: u64,
    /// DMA errors and corruptions injected by the fault engine.
    pub dma_faults: u64,
    /// Interrupts dropped by the fault engine.
    pub msix_dropped: u64,
    /// Interrupts delayed by the fault engine.
    pub msix_delayed: u64,
    /// Extra interrupts (duplicate or spurious) injected by the fault engine.
    pub msix_extra: u64,
}

/// Everything the device counts, for the host (control API, tests).
#[derive(Clone, Debug, Serialize)]
pub struct RnicStats {
    /// Port counters.
    pub port: PortStats,
    /// Device core counters.
    pub device: DeviceCounters,
    /// Per Ethernet TX queue (index = queue id; absent queues are zero).
    pub eth_tx: Vec<EthQueueStats>,
    /// Per Ethernet RX queue.
    pub eth_rx: Vec<EthQueueStats>,
    /// MSI-X counters.
    pub msix: MsixCounters,
    /// Event queue counters.
    pub events: EventCounters,
    /// Verbs engine statistics (totals, per QP, per CQ).
    pub verbs: VerbsStats,
    /// Fault engine statistics.
    pub faults: FaultStats,
}

/// Version of the `GET_STATS` buffer layout.
pub const GUEST_STATS_VERSION: u32 = 1;

/// The counters the guest sees through `GET_STATS`, in buffer order, with names.
pub fn guest_counters(s: &RnicStats) -> Vec<(String, u64)> {
    let p = &s.port;
    let d = &s.device;
    let mut v: Vec<(String, u64)> = [
        ("port.tx_frames", p.tx_frames),
        ("port.tx_bytes", p.tx_bytes),
        ("port.rx_frames", p.rx_frames),
        ("port.rx_bytes", p.rx_bytes),
        ("port.tx_roce_frames", p.tx_roce_frames),
        ("port.rx_roce_frames", p.rx_roce_frames),
        ("port.tx_dropped_link_down", p.tx_dropped_link_down),
        ("port.tx_wire_errors", p.tx_wire_errors),
        ("port.rx_dropped_link_down", p.rx_dropped_link_down),
        ("port.rx_dropped_filter", p.rx_dropped_filter),
        ("port.rx_dropped_no_queue", p.rx_dropped_no_queue),
        ("port.rx_dropped_no_buffer", p.rx_dropped_no_buffer),
        ("port.rx_dropped_too_long", p.rx_dropped_too_long),
        ("port.rx_runts", p.rx_runts),
        ("port.rx_wire_errors", p.rx_wire_errors),
        ("port.link_up_events", p.link_up_events),
        ("port.link_down_events", p.link_down_events),
        ("device.admin_commands", d.admin_commands),
        ("device.admin_failed", d.admin_failed),
        ("device.dma_errors", d.dma_errors),
        ("device.resets", d.resets),
        ("msix.delivered", s.msix.delivered),
        ("msix.deferred", s.msix.deferred),
        ("events.written", s.events.written),
        ("events.overflowed", s.events.overflowed),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (dir, qs) in [("tx", &s.eth_tx), ("rx", &s.eth_rx)] {
        for q in 0..MAX_QUEUES {
            let st = qs.get(q).copied().unwrap_or_default();
            v.push((format!("eth.{dir}{q}.frames"), st.frames));
            v.push((format!("eth.{dir}{q}.bytes"), st.bytes));
            v.push((format!("eth.{dir}{q}.errors"), st.errors));
            v.push((format!("eth.{dir}{q}.drops"), st.drops));
        }
    }
    v
}

/// Encodes the `GET_STATS` buffer.
pub fn encode_guest(s: &RnicStats) -> Vec<u8> {
    let c = guest_counters(s);
    let mut b = Vec::with_capacity(8 + 8 * c.len());
    b.extend_from_slice(&GUEST_STATS_VERSION.to_le_bytes());
    b.extend_from_slice(&(c.len() as u32).to_le_bytes());
    for (_, v) in c {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultEngine;

    fn sample() -> RnicStats {
        RnicStats {
            port: PortStats {
                tx_frames: 3,
                ..Default::default()
            },
            device: DeviceCounters {
                admin_commands: 7,
                ..Default::default()
            },
            eth_tx: vec![EthQueueStats {
                frames: 5,
                ..Default::default()
            }],
            eth_rx: vec![],
            msix: MsixCounters::default(),
            events: EventCounters::default(),
            verbs: VerbsStats::default(),
            faults: FaultEngine::new().stats(),
        }
    }

    #[test]
    fn guest_layout_is_pinned() {
        let s = sample();
        let c = guest_counters(&s);
        assert_eq!(c.len(), 25 + 2 * MAX_QUEUES * 4);
        assert_eq!(c[0], ("port.tx_frames".to_string(), 3));
        assert_eq!(c[17], ("device.admin_commands".to_string(), 7));
        assert_eq!(c[25], ("eth.tx0.frames".to_string(), 5));
        assert_eq!(c[25 + 4 * MAX_QUEUES].0, "eth.rx0.frames");
        let b = encode_guest(&s);
        assert_eq!(b.len(), 8 + 8 * c.len());
        assert_eq!(&b[0..4], &1u32.to_le_bytes());
        assert_eq!(&b[8..16], &3u64.to_le_bytes());
    }

    #[test]
    fn serializes() {
        fn is_serialize<T: Serialize>(_: &T) {}
        let s = sample();
        is_serialize(&s);
        assert_eq!(s.port.tx_frames, 3);
    }
}

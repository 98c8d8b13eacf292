//! Fault injection: the catalog of ways the device can misbehave on purpose.
//!
//! The device calls [`FaultEngine::check`] at each *fault site* (a DMA, an MSI-X
//! delivery, an admin command, a frame on the wire, ...) with a [`FaultPoint`]
//! saying what is happening and to what. The engine answers with the
//! [`FaultAction`] of the first armed rule whose site, scope and trigger match, or
//! `None`. Every hit is logged (tracing + [`FaultEngine::log`]) with what it hit.
//!
//! The types in this header are the interface the rest of the crate codes
//! against; the engine below implements them.

use serde::{Deserialize, Serialize};

/// Where in the device a fault can strike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultSite {
    /// A device read of guest memory (rings, WQEs, payload).
    DmaRead,
    /// A device write to guest memory (completions, payload).
    DmaWrite,
    /// Delivery of an MSI-X message.
    Msix,
    /// Execution of an admin command.
    AdminCommand,
    /// Writing a completion queue entry for a work request.
    Cqe,
    /// The port's link state.
    Link,
    /// A frame leaving the device on the wire.
    WireTx,
    /// A frame arriving from the wire.
    WireRx,
    /// The device as a whole (fatal error).
    Device,
}

/// What is happening at a fault site, and to which object. Unknown parts are `None`.
///
/// In a [`FaultRule`] the scope is a filter: every `Some` field must equal the
/// event's field (an event whose field is `None` does not match it); `None` fields
/// match anything. In JSON, absent fields are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultScope {
    /// Queue number: QP number, CQ number, Ethernet queue, or 0 for the admin queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// MSI-X vector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<u16>,
    /// Memory region index (key >> 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr: Option<u32>,
    /// Admin opcode, for [`FaultSite::AdminCommand`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode: Option<u8>,
}

/// One event at a fault site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaultPoint {
    pub site: FaultSite,
    pub scope: FaultScope,
}

/// What the device does instead of behaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultAction {
    /// DMA: the access fails (the device reports a DMA error).
    DmaError,
    /// DMA: the data is corrupted (XOR `mask` into byte `offset % len`).
    Corrupt { offset: u32, mask: u8 },
    /// MSI-X / wire: the message or frame is lost.
    Drop,
    /// MSI-X / wire / admin: deliver late, after `micros` microseconds.
    Delay { micros: u64 },
    /// MSI-X / wire: deliver twice.
    Duplicate,
    /// MSI-X: an extra interrupt with nothing behind it.
    Spurious,
    /// Wire: hold this frame back and send it after the next one.
    Reorder,
    /// Admin: the command is consumed and never completes.
    NeverComplete,
    /// Admin: the command completes with this status instead of running.
    FailStatus { status: u16 },
    /// CQE: the work request completes with this completion status instead.
    CqeError { status: u8 },
    /// Link: the link goes down.
    LinkDown,
    /// Link: the link comes back up.
    LinkUp,
    /// Device: fatal error; registers read all ones until reset.
    Fatal,
}

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
use std::collections::VecDeque;
use std::time::Duration;

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
/// Which fields each site sets is [`FaultSite::scope_fields`]; the full contract is
/// `docs/device-spec.md` Appendix A.3.
///
/// In a [`FaultRule`] the scope is a filter: every `Some` field must equal the
/// event's field (an event whose field is `None` does not match it); `None` fields
/// match anything. In JSON, absent fields are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultScope {
    /// The object concerned, in the one numbering shared by every site
    /// ([`scope_queue`]): 0 the admin queue, `1..=0xFFFF` a QP,
    /// `ETH_RX | n` / `ETH_TX | n` an Ethernet queue, `CQ | n` the ring of a CQ,
    /// `EVENT_QUEUE` the event ring. Set at `dma_read`, `dma_write`,
    /// `admin_command`, `cqe`, `wire_tx` and `wire_rx` (RoCEv2 frames only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// MSI-X vector: set only at `msix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<u16>,
    /// Memory region index (key >> 8): set only at `dma_read` / `dma_write`, for
    /// accesses through an MR (payload, and the page lists of `REG_MR` and
    /// `FAST_REG`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr: Option<u32>,
    /// Admin opcode, for [`FaultSite::AdminCommand`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode: Option<u8>,
}

/// One event at a fault site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaultPoint {
    /// The fault site the event happens at.
    pub site: FaultSite,
    /// What the event is about (queue, MR, vector, opcode), matched against rule scopes.
    pub scope: FaultScope,
}

/// What the device does instead of behaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultAction {
    /// DMA: the access fails (the device reports a DMA error).
    DmaError,
    /// DMA: the data is corrupted (XOR `mask` into byte `offset % len`).
    Corrupt {
        /// Byte to corrupt, taken modulo the access length.
        offset: u32,
        /// Bits to flip (XORed into the byte).
        mask: u8,
    },
    /// MSI-X / wire: the message or frame is lost.
    Drop,
    /// MSI-X / wire / admin: deliver late, after `micros` microseconds.
    Delay {
        /// Delay in microseconds of device time.
        micros: u64,
    },
    /// MSI-X / wire: deliver twice.
    Duplicate,
    /// MSI-X: an extra interrupt with nothing behind it.
    Spurious,
    /// Wire: hold this frame back and send it after the next one.
    Reorder,
    /// Admin: the command is consumed and never completes.
    NeverComplete,
    /// Admin: the command completes with this status instead of running.
    FailStatus {
        /// The 16-bit admin completion status to report.
        status: u16,
    },
    /// CQE: the work request completes with this completion status instead.
    CqeError {
        /// The completion status byte to report instead of success.
        status: u8,
    },
    /// Link: the link goes down.
    LinkDown,
    /// Link: the link comes back up.
    LinkUp,
    /// Device: fatal error; registers read all ones until reset.
    Fatal,
}

// ---------------------------------------------------------------------------
// Names, the site/action table, helpers
// ---------------------------------------------------------------------------

impl FaultSite {
    /// Every site, in a fixed order (the order of [`FaultStats::sites`]).
    pub const ALL: [FaultSite; 9] = [
        FaultSite::DmaRead,
        FaultSite::DmaWrite,
        FaultSite::Msix,
        FaultSite::AdminCommand,
        FaultSite::Cqe,
        FaultSite::Link,
        FaultSite::WireTx,
        FaultSite::WireRx,
        FaultSite::Device,
    ];

    /// The JSON / log name of the site.
    pub fn name(self) -> &'static str {
        match self {
            FaultSite::DmaRead => "dma_read",
            FaultSite::DmaWrite => "dma_write",
            FaultSite::Msix => "msix",
            FaultSite::AdminCommand => "admin_command",
            FaultSite::Cqe => "cqe",
            FaultSite::Link => "link",
            FaultSite::WireTx => "wire_tx",
            FaultSite::WireRx => "wire_rx",
            FaultSite::Device => "device",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The action kinds (JSON names) allowed at this site. `fatal` is allowed
    /// everywhere: "when this event happens, the device takes a fatal error".
    pub fn allowed_actions(self) -> &'static [&'static str] {
        match self {
            FaultSite::DmaRead | FaultSite::DmaWrite => &["dma_error", "corrupt", "fatal"],
            FaultSite::Msix => &["drop", "delay", "duplicate", "spurious", "fatal"],
            FaultSite::AdminCommand => &["never_complete", "fail_status", "delay", "fatal"],
            FaultSite::Cqe => &["cqe_error", "fatal"],
            FaultSite::Link => &["link_down", "link_up", "fatal"],
            FaultSite::WireTx | FaultSite::WireRx => {
                &["drop", "delay", "duplicate", "reorder", "corrupt", "fatal"]
            }
            FaultSite::Device => &["fatal"],
        }
    }

    /// The scope fields (JSON names) that events at this site can carry
    /// (`docs/device-spec.md` Appendix A.3). A rule naming any other field could
    /// never match and is refused ([`FaultError::ScopeNeverSet`]). Only DMA events
    /// name an MR: the device sets `mr` for accesses through a memory region
    /// (payload and page lists), at `dma_read` and `dma_write` only.
    pub fn scope_fields(self) -> &'static [&'static str] {
        match self {
            FaultSite::DmaRead | FaultSite::DmaWrite => &["queue", "mr"],
            FaultSite::Msix => &["vector"],
            FaultSite::AdminCommand => &["queue", "opcode"],
            FaultSite::Cqe | FaultSite::WireTx | FaultSite::WireRx => &["queue"],
            FaultSite::Link | FaultSite::Device => &[],
        }
    }

    /// Whether `action` may be used in a rule at this site.
    pub fn allows(self, action: &FaultAction) -> bool {
        self.allowed_actions().contains(&action.name())
    }
}

impl std::fmt::Display for FaultSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FaultAction {
    /// The JSON `kind` of the action.
    pub fn name(&self) -> &'static str {
        match self {
            FaultAction::DmaError => "dma_error",
            FaultAction::Corrupt { .. } => "corrupt",
            FaultAction::Drop => "drop",
            FaultAction::Delay { .. } => "delay",
            FaultAction::Duplicate => "duplicate",
            FaultAction::Spurious => "spurious",
            FaultAction::Reorder => "reorder",
            FaultAction::NeverComplete => "never_complete",
            FaultAction::FailStatus { .. } => "fail_status",
            FaultAction::CqeError { .. } => "cqe_error",
            FaultAction::LinkDown => "link_down",
            FaultAction::LinkUp => "link_up",
            FaultAction::Fatal => "fatal",
        }
    }

    /// For [`FaultAction::Corrupt`]: XOR `mask` into byte `offset % buf.len()` of
    /// `buf`. Returns whether a byte was changed (false for other actions, an
    /// empty buffer or a zero mask).
    pub fn corrupt_in_place(&self, buf: &mut [u8]) -> bool {
        match *self {
            FaultAction::Corrupt { offset, mask } if !buf.is_empty() && mask != 0 => {
                let i = offset as usize % buf.len();
                buf[i] ^= mask;
                true
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for FaultAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FaultAction::Corrupt { offset, mask } => {
                write!(f, "corrupt(offset={offset}, mask={mask:#04x})")
            }
            FaultAction::Delay { micros } => write!(f, "delay({micros} us)"),
            FaultAction::FailStatus { status } => write!(f, "fail_status({status})"),
            FaultAction::CqeError { status } => write!(f, "cqe_error({status})"),
            other => f.write_str(other.name()),
        }
    }
}

impl FaultScope {
    /// Whether an event with scope `event` matches this rule scope.
    pub fn matches(&self, event: &FaultScope) -> bool {
        fn field<T: PartialEq>(rule: Option<T>, event: Option<T>) -> bool {
            match rule {
                None => true,
                Some(want) => event == Some(want),
            }
        }
        field(self.queue, event.queue)
            && field(self.vector, event.vector)
            && field(self.mr, event.mr)
            && field(self.opcode, event.opcode)
    }
}

impl FaultPoint {
    /// An event at `site` with nothing known about its object.
    pub fn new(site: FaultSite) -> Self {
        FaultPoint {
            site,
            scope: FaultScope::default(),
        }
    }

    /// Builder: set the queue number.
    pub fn queue(mut self, queue: u32) -> Self {
        self.scope.queue = Some(queue);
        self
    }

    /// Builder: set the MSI-X vector.
    pub fn vector(mut self, vector: u16) -> Self {
        self.scope.vector = Some(vector);
        self
    }

    /// Builder: set the memory region index.
    pub fn mr(mut self, mr: u32) -> Self {
        self.scope.mr = Some(mr);
        self
    }

    /// Builder: set the admin opcode.
    pub fn opcode(mut self, opcode: u8) -> Self {
        self.scope.opcode = Some(opcode);
        self
    }
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// Identifier of a rule inside one [`FaultEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(pub u32);

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// When a rule fires, counted over the events that match its site, scope and window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Trigger {
    /// Every matching event.
    #[default]
    Always,
    /// Exactly once, at the `nth` matching event (1-based).
    Once {
        /// The 1-based matching event that fires.
        nth: u64,
    },
    /// At every `n`th matching event: n, 2n, 3n, ...
    Every {
        /// Period in matching events (1 = every event).
        n: u64,
    },
    /// Each matching event independently with probability `p` (0..=1), drawn from
    /// the rule's own PRNG seeded with `seed`: the same seed gives the same hits.
    Probability {
        /// Probability of firing per matching event, 0.0..=1.0.
        p: f64,
        /// Seed of the rule's PRNG.
        seed: u64,
    },
}

/// A span of device time, `from <= t < until`. In JSON: microseconds,
/// `{"from_us": 1000, "until_us": 5000}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    #[serde(rename = "from_us", with = "micros")]
    /// Start of the window (inclusive), device time.
    pub from: Duration,
    #[serde(rename = "until_us", with = "micros")]
    /// End of the window (exclusive), device time.
    pub until: Duration,
}

impl TimeWindow {
    /// Whether device time `now` is inside the window.
    pub fn contains(&self, now: Duration) -> bool {
        self.from <= now && now < self.until
    }
}

/// (De)serialize a [`Duration`] as whole microseconds.
mod micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_always(t: &Trigger) -> bool {
    *t == Trigger::Always
}

fn is_empty_scope(s: &FaultScope) -> bool {
    *s == FaultScope::default()
}

/// One fault rule: at `site`, for events matching `scope`, while device time is in
/// `window`, when `trigger` fires, do `action`.
///
/// JSON (absent `id` = engine picks one; absent `scope`/`window` = any; absent
/// `trigger` = always; absent `enabled` = true):
///
/// ```json
/// {"id": 3, "site": "msix", "scope": {"vector": 1},
///  "action": {"kind": "drop"}, "trigger": {"kind": "every", "n": 4},
///  "window": {"from_us": 0, "until_us": 2000000}, "enabled": true}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Set by [`FaultEngine::add_rule`] when `None`; must be unique when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RuleId>,
    /// The site whose events the rule watches.
    pub site: FaultSite,
    #[serde(default, skip_serializing_if = "is_empty_scope")]
    /// Filter on the event scope; unset fields match anything.
    pub scope: FaultScope,
    /// What the device does when the rule fires.
    pub action: FaultAction,
    #[serde(default, skip_serializing_if = "is_always")]
    /// Which matching events fire the rule.
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Device-time window outside which the rule ignores events; none = always.
    pub window: Option<TimeWindow>,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    /// Disabled rules see no events and never fire.
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Most hits (the Linux fault-injection `times` attribute): once the rule has hit
    /// this often it sees no more events and never fires again; none = no limit.
    pub max_hits: Option<u64>,
}

impl FaultRule {
    /// A rule at `site` doing `action` on every event, any scope, any time.
    pub fn new(site: FaultSite, action: FaultAction) -> Self {
        FaultRule {
            id: None,
            site,
            scope: FaultScope::default(),
            action,
            trigger: Trigger::Always,
            window: None,
            enabled: true,
            max_hits: None,
        }
    }

    /// Builder: set the scope filter.
    pub fn with_scope(mut self, scope: FaultScope) -> Self {
        self.scope = scope;
        self
    }

    /// Builder: set the trigger.
    pub fn with_trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Builder: restrict to device time `from <= t < until`.
    pub fn with_window(mut self, from: Duration, until: Duration) -> Self {
        self.window = Some(TimeWindow { from, until });
        self
    }

    /// Builder: set the id.
    pub fn with_id(mut self, id: RuleId) -> Self {
        self.id = Some(id);
        self
    }

    /// Check that the rule can ever do something sensible; see [`FaultError`].
    pub fn validate(&self) -> Result<(), FaultError> {
        if !self.site.allows(&self.action) {
            return Err(FaultError::ActionNotAllowed {
                site: self.site,
                action: self.action.name(),
                allowed: self.site.allowed_actions().join(", "),
            });
        }
        let named = [
            ("queue", self.scope.queue.is_some()),
            ("vector", self.scope.vector.is_some()),
            ("mr", self.scope.mr.is_some()),
            ("opcode", self.scope.opcode.is_some()),
        ];
        for (field, present) in named {
            if present && !self.site.scope_fields().contains(&field) {
                return Err(FaultError::ScopeNeverSet {
                    site: self.site,
                    field,
                    valid_at: FaultSite::ALL
                        .iter()
                        .filter(|s| s.scope_fields().contains(&field))
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        match self.trigger {
            Trigger::Once { nth: 0 } => return Err(FaultError::ZeroCount { field: "once.nth" }),
            Trigger::Every { n: 0 } => return Err(FaultError::ZeroCount { field: "every.n" }),
            Trigger::Probability { p, .. } if !(0.0..=1.0).contains(&p) => {
                return Err(FaultError::BadProbability { p })
            }
            _ => {}
        }
        if self.max_hits == Some(0) {
            return Err(FaultError::ZeroCount { field: "max_hits" });
        }
        if let Some(w) = self.window {
            if w.from >= w.until {
                return Err(FaultError::EmptyWindow {
                    from_us: w.from.as_micros(),
                    until_us: w.until.as_micros(),
                });
            }
        }
        Ok(())
    }
}

/// Why a rule was refused, or a rule operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error(
        "fault action `{action}` cannot be used at site `{site}`; actions allowed there: {allowed}"
    )]
    /// The action is not meaningful at the rule's site.
    ActionNotAllowed {
        /// The rule's site.
        site: FaultSite,
        /// The refused action's name.
        action: &'static str,
        /// The actions the site allows, comma-separated.
        allowed: String,
    },
    #[error("scope field `{field}` is never set by events at site `{site}` (only at: {valid_at}), so the rule could never match; remove it from the scope")]
    /// The rule filters on a scope field that events at its site never carry.
    ScopeNeverSet {
        /// The rule's site.
        site: FaultSite,
        /// The scope field the rule sets.
        field: &'static str,
        /// The sites whose events carry the field, comma-separated.
        valid_at: String,
    },
    #[error("trigger field `{field}` must be at least 1 (counts are 1-based)")]
    /// A 1-based trigger count is 0.
    ZeroCount {
        /// The trigger field that is 0.
        field: &'static str,
    },
    #[error("trigger probability {p} is not in 0.0..=1.0")]
    /// A trigger probability outside 0.0..=1.0.
    BadProbability {
        /// The probability given.
        p: f64,
    },
    #[error("time window from_us={from_us} until_us={until_us} is empty; `until_us` must be greater than `from_us`")]
    /// A time window that contains no instant.
    EmptyWindow {
        /// Window start in microseconds.
        from_us: u128,
        /// Window end in microseconds.
        until_us: u128,
    },
    #[error("rule id {0} is already in use; pick another id or omit it to let the engine choose")]
    /// A rule with this id is already installed.
    DuplicateId(RuleId),
    #[error("no fault rule with id {0}; list rules to see the ids in use")]
    /// No installed rule has this id.
    UnknownRule(RuleId),
    #[error("too many fault rules (limit {limit}); remove some first")]
    /// The engine holds its maximum number of rules.
    TooManyRules {
        /// The maximum ([`MAX_RULES`]).
        limit: usize,
    },
}

// ---------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------

/// Most rules an engine holds at once.
pub const MAX_RULES: usize = 4096;
/// Default capacity of the hit log.
pub const DEFAULT_LOG_CAPACITY: usize = 1024;

/// One fault that was injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultHit {
    /// Sequence number of the hit since the engine was created (0-based, never reused).
    pub seq: u64,
    /// The rule that fired.
    pub rule: RuleId,
    /// The site of the event.
    pub site: FaultSite,
    /// The scope of the event that was hit (not the rule's filter).
    pub scope: FaultScope,
    /// The action the device applied.
    pub action: FaultAction,
    /// Device time of the hit.
    #[serde(rename = "at_us", with = "micros")]
    pub at: Duration,
}

/// The bounded log of hits: the newest `capacity` entries, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct FaultLog {
    capacity: usize,
    entries: VecDeque<FaultHit>,
    /// Entries pushed out of the log because it was full.
    dropped: u64,
}

impl FaultLog {
    fn new(capacity: usize) -> Self {
        FaultLog {
            capacity,
            entries: VecDeque::with_capacity(capacity),
            dropped: 0,
        }
    }

    fn push(&mut self, hit: FaultHit) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(hit);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &FaultHit> + '_ {
        self.entries.iter()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries were pushed out because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Counters of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStats {
    /// The rule the counters belong to.
    pub rule: RuleId,
    /// Events that matched the rule's site, scope and window while it was enabled
    /// and reached it (see [`FaultEngine::check`] for ordering).
    pub events: u64,
    /// Events on which the rule fired.
    pub hits: u64,
}

/// Hits at one site, across all rules ever installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStats {
    /// The fault site.
    pub site: FaultSite,
    /// Faults injected at the site.
    pub hits: u64,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    /// Current rules, in evaluation order.
    pub rules: Vec<RuleStats>,
    /// Every site in [`FaultSite::ALL`] order.
    pub sites: Vec<SiteStats>,
    /// Total hits since creation (or [`FaultEngine::reset_stats`]).
    pub total_hits: u64,
    /// Log entries lost to the log bound.
    pub log_dropped: u64,
}

/// splitmix64: tiny, seedable, good enough to decide "does this event fail".
#[derive(Clone, Copy, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Clone, Debug)]
struct ArmedRule {
    rule: FaultRule,
    id: RuleId,
    events: u64,
    hits: u64,
    rng: SplitMix64,
}

impl ArmedRule {
    /// Count one matching event; return whether the trigger fires on it.
    fn fires(&mut self) -> bool {
        self.events += 1;
        match self.rule.trigger {
            Trigger::Always => true,
            Trigger::Once { nth } => self.events == nth,
            Trigger::Every { n } => self.events.is_multiple_of(n),
            Trigger::Probability { p, .. } => self.rng.next_f64() < p,
        }
    }
}

/// The fault engine: an ordered list of rules, their counters and a hit log.
///
/// Device-time only: the caller passes `now` (the device's own clock); the engine
/// never reads the wall clock, so a run is reproducible from its rules.
#[derive(Clone, Debug)]
pub struct FaultEngine {
    rules: Vec<ArmedRule>,
    /// Enabled rules per site, for the fast path.
    armed: [u32; FaultSite::ALL.len()],
    site_hits: [u64; FaultSite::ALL.len()],
    total_hits: u64,
    next_id: u32,
    seq: u64,
    log: FaultLog,
}

impl Default for FaultEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultEngine {
    /// An engine with no rules and a log of [`DEFAULT_LOG_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_log_capacity(DEFAULT_LOG_CAPACITY)
    }

    /// An engine whose log keeps the newest `capacity` hits.
    pub fn with_log_capacity(capacity: usize) -> Self {
        FaultEngine {
            rules: Vec::new(),
            armed: [0; FaultSite::ALL.len()],
            site_hits: [0; FaultSite::ALL.len()],
            total_hits: 0,
            next_id: 1,
            seq: 0,
            log: FaultLog::new(capacity),
        }
    }

    /// Validate and append a rule (rules are evaluated in the order added).
    pub fn add_rule(&mut self, mut rule: FaultRule) -> Result<RuleId, FaultError> {
        rule.validate()?;
        if self.rules.len() >= MAX_RULES {
            return Err(FaultError::TooManyRules { limit: MAX_RULES });
        }
        let id = match rule.id {
            Some(id) => {
                if self.rules.iter().any(|r| r.id == id) {
                    return Err(FaultError::DuplicateId(id));
                }
                id
            }
            None => self.fresh_id(),
        };
        rule.id = Some(id);
        let seed = match rule.trigger {
            Trigger::Probability { seed, .. } => seed,
            _ => 0,
        };
        if rule.enabled {
            self.armed[rule.site.index()] += 1;
        }
        self.rules.push(ArmedRule {
            rule,
            id,
            events: 0,
            hits: 0,
            rng: SplitMix64(seed),
        });
        Ok(id)
    }

    fn fresh_id(&mut self) -> RuleId {
        loop {
            let id = RuleId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.rules.iter().any(|r| r.id == id) {
                return id;
            }
        }
    }

    /// Remove a rule; returns it (with its id set).
    pub fn remove_rule(&mut self, id: RuleId) -> Result<FaultRule, FaultError> {
        let pos = self
            .rules
            .iter()
            .position(|r| r.id == id)
            .ok_or(FaultError::UnknownRule(id))?;
        let removed = self.rules.remove(pos);
        if removed.rule.enabled {
            self.armed[removed.rule.site.index()] -= 1;
        }
        Ok(removed.rule)
    }

    /// Enable or disable a rule without losing its counters.
    pub fn set_enabled(&mut self, id: RuleId, enabled: bool) -> Result<(), FaultError> {
        let r = self
            .rules
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(FaultError::UnknownRule(id))?;
        if r.rule.enabled != enabled {
            let slot = &mut self.armed[r.rule.site.index()];
            if enabled {
                *slot += 1;
            } else {
                *slot -= 1;
            }
            r.rule.enabled = enabled;
        }
        Ok(())
    }

    /// Remove every rule. Site counters and the log are kept.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.armed = [0; FaultSite::ALL.len()];
    }

    /// Zero every counter (rule events/hits, site hits, total) and empty the log.
    /// Triggers restart: `once` can fire again and probability streams restart
    /// from their seeds.
    pub fn reset_stats(&mut self) {
        for r in &mut self.rules {
            r.events = 0;
            r.hits = 0;
            r.rng = SplitMix64(match r.rule.trigger {
                Trigger::Probability { seed, .. } => seed,
                _ => 0,
            });
        }
        self.site_hits = [0; FaultSite::ALL.len()];
        self.total_hits = 0;
        self.log = FaultLog::new(self.log.capacity);
    }

    /// The current rules, in evaluation order, each with its id set.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|r| r.rule.clone()).collect()
    }

    /// One rule by id.
    pub fn rule(&self, id: RuleId) -> Option<&FaultRule> {
        self.rules.iter().find(|r| r.id == id).map(|r| &r.rule)
    }

    /// Whether any enabled rule exists at `site` (lets a caller skip building a
    /// [`FaultPoint`] on a hot path).
    pub fn armed(&self, site: FaultSite) -> bool {
        self.armed[site.index()] != 0
    }

    /// An event happened at `point` at device time `now`: should it misbehave?
    ///
    /// Rules are tried in the order added. A rule *sees* the event when it is
    /// enabled, its site equals the event's, its scope matches and `now` is in its
    /// window; seeing counts an event for that rule and advances its trigger. The
    /// first rule whose trigger fires wins: its action is returned, the hit is
    /// counted and logged, and later rules do not see the event.
    ///
    /// With no enabled rule at the site this is O(1) and never allocates; a hit
    /// never allocates either (the log is preallocated).
    pub fn check(&mut self, point: &FaultPoint, now: Duration) -> Option<FaultAction> {
        let site = point.site;
        if self.armed[site.index()] == 0 {
            return None;
        }
        let mut winner = None;
        for r in self.rules.iter_mut() {
            if r.rule.enabled
                && r.rule.max_hits.is_none_or(|max| r.hits < max)
                && r.rule.site == site
                && r.rule.scope.matches(&point.scope)
                && r.rule.window.is_none_or(|w| w.contains(now))
                && r.fires()
            {
                winner = Some(r);
                break;
            }
        }
        let r = winner?;
        r.hits += 1;
        let (id, action) = (r.id, r.rule.action);
        self.site_hits[site.index()] += 1;
        self.total_hits += 1;
        let hit = FaultHit {
            seq: self.seq,
            rule: id,
            site,
            scope: point.scope,
            action,
            at: now,
        };
        self.seq += 1;
        self.log.push(hit);
        tracing::warn!(
            rule = id.0,
            site = site.name(),
            queue = ?point.scope.queue,
            vector = ?point.scope.vector,
            mr = ?point.scope.mr,
            opcode = ?point.scope.opcode,
            at_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX),
            "fault injected: {action} at {site} by rule {id}"
        );
        Some(action)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            rules: self
                .rules
                .iter()
                .map(|r| RuleStats {
                    rule: r.id,
                    events: r.events,
                    hits: r.hits,
                })
                .collect(),
            sites: FaultSite::ALL
                .iter()
                .map(|&site| SiteStats {
                    site,
                    hits: self.site_hits[site.index()],
                })
                .collect(),
            total_hits: self.total_hits,
            log_dropped: self.log.dropped,
        }
    }

    /// The hit log (newest [`FaultLog::capacity`] hits).
    pub fn log(&self) -> &FaultLog {
        &self.log
    }

    /// Empty the log, returning its entries (oldest first); the dropped count stays.
    pub fn drain_log(&mut self) -> Vec<FaultHit> {
        self.log.entries.drain(..).collect()
    }
}

/// The `queue` field of fault scopes (`docs/device-spec.md` Appendix A.3): one
/// numbering shared by every site, so that a number names one object.
///
/// | value | object |
/// | --- | --- |
/// | `0` ([`ADMIN`](scope_queue::ADMIN)) | the admin queue: its rings and every admin command's buffer |
/// | `1..=0xFFFF` | the QP with that number (QPNs never reach `0x1_0000`) |
/// | [`ETH_RX`](scope_queue::ETH_RX)` \| n` | Ethernet RX queue `n` |
/// | [`ETH_TX`](scope_queue::ETH_TX)` \| n` | Ethernet TX queue `n` |
/// | [`CQ`](scope_queue::CQ)` \| n` | the ring of CQ `n` |
/// | [`EVENT_QUEUE`](scope_queue::EVENT_QUEUE) | the event ring |
pub mod scope_queue {
    use crate::env::Owner;

    /// The admin queue (rings, command buffers; the `admin_command` site).
    pub const ADMIN: u32 = 0;
    /// Bit set for Ethernet RX queues (the queue's event handle, too).
    pub const ETH_RX: u32 = 1 << 16;
    /// Bit set for Ethernet TX queues (their event handle is the bare number).
    pub const ETH_TX: u32 = 1 << 17;
    /// Bit set for CQ rings.
    pub const CQ: u32 = 1 << 18;
    /// The event ring.
    pub const EVENT_QUEUE: u32 = 1 << 19;

    /// Scope number of the object `owner`.
    pub const fn of(owner: Owner) -> u32 {
        match owner {
            Owner::Admin => ADMIN,
            Owner::Qp(qpn) => qpn,
            Owner::Cq(cqn) => CQ | cqn,
            Owner::EthTx(n) => ETH_TX | n as u32,
            Owner::EthRx(n) => ETH_RX | n as u32,
            Owner::EventQueue => EVENT_QUEUE,
        }
    }
}

/// The fault scope of everything queue `queue` (numbered as in [`scope_queue`]) does.
pub(crate) fn queue_scope(queue: u32) -> FaultScope {
    FaultScope {
        queue: Some(queue),
        ..FaultScope::default()
    }
}

/// The fault scope of the admin queue.
pub(crate) fn admin_scope() -> FaultScope {
    queue_scope(scope_queue::ADMIN)
}

/// The fault scope of an access for `s`.
pub(crate) fn dma_scope(s: crate::env::DmaScope) -> FaultScope {
    FaultScope {
        queue: Some(scope_queue::of(s.owner)),
        mr: s.mr,
        ..FaultScope::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn msix(vector: u16) -> FaultPoint {
        FaultPoint::new(FaultSite::Msix).vector(vector)
    }

    /// Run `n` events at `point`, returning the 1-based indices that hit.
    fn hits(engine: &mut FaultEngine, point: &FaultPoint, n: u64) -> Vec<u64> {
        (1..=n)
            .filter(|_| engine.check(point, T0).is_some())
            .collect()
    }

    /// `max_hits` is exact even for a burst of events between two host looks at the
    /// engine, and a capped rule lets the events after it reach the next rule.
    #[test]
    fn max_hits_caps_a_burst_exactly() {
        let mut e = FaultEngine::new();
        let capped = FaultRule {
            max_hits: Some(2),
            ..FaultRule::new(FaultSite::Msix, FaultAction::Drop)
        };
        let first = e.add_rule(capped).unwrap();
        let second = e
            .add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Duplicate))
            .unwrap();
        let point = FaultPoint::new(FaultSite::Msix);
        let actions: Vec<_> = (0..6).filter_map(|_| e.check(&point, T0)).collect();
        assert_eq!(
            actions,
            [
                FaultAction::Drop,
                FaultAction::Drop,
                FaultAction::Duplicate,
                FaultAction::Duplicate,
                FaultAction::Duplicate,
                FaultAction::Duplicate
            ]
        );
        let stats = e.stats();
        let hits = |id| stats.rules.iter().find(|r| r.rule == id).unwrap().hits;
        assert_eq!((hits(first), hits(second)), (2, 4));
        let zero = FaultRule {
            max_hits: Some(0),
            ..FaultRule::new(FaultSite::Msix, FaultAction::Drop)
        };
        assert_eq!(
            FaultEngine::new().add_rule(zero),
            Err(FaultError::ZeroCount { field: "max_hits" })
        );
    }

    #[test]
    fn no_rules_never_fires() {
        let mut e = FaultEngine::new();
        for site in FaultSite::ALL {
            assert_eq!(e.check(&FaultPoint::new(site), T0), None);
            assert!(!e.armed(site));
        }
        assert_eq!(e.stats().total_hits, 0);
        assert!(e.log().is_empty());
    }

    #[test]
    fn always_fires_every_event() {
        let mut e = FaultEngine::new();
        e.add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Drop))
            .unwrap();
        assert_eq!(hits(&mut e, &msix(0), 5), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn once_fires_only_at_nth() {
        let mut e = FaultEngine::new();
        let id = e
            .add_rule(
                FaultRule::new(FaultSite::DmaRead, FaultAction::DmaError)
                    .with_trigger(Trigger::Once { nth: 3 }),
            )
            .unwrap();
        assert_eq!(
            hits(&mut e, &FaultPoint::new(FaultSite::DmaRead), 10),
            vec![3]
        );
        let s = e.stats();
        assert_eq!(
            s.rules,
            vec![RuleStats {
                rule: id,
                events: 10,
                hits: 1
            }]
        );
    }

    #[test]
    fn once_at_first_event() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::Device, FaultAction::Fatal)
                .with_trigger(Trigger::Once { nth: 1 }),
        )
        .unwrap();
        assert_eq!(
            hits(&mut e, &FaultPoint::new(FaultSite::Device), 4),
            vec![1]
        );
    }

    #[test]
    fn every_nth() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::WireTx, FaultAction::Drop)
                .with_trigger(Trigger::Every { n: 3 }),
        )
        .unwrap();
        assert_eq!(
            hits(&mut e, &FaultPoint::new(FaultSite::WireTx), 10),
            vec![3, 6, 9]
        );
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::WireTx, FaultAction::Drop)
                .with_trigger(Trigger::Every { n: 1 }),
        )
        .unwrap();
        assert_eq!(
            hits(&mut e, &FaultPoint::new(FaultSite::WireTx), 3).len(),
            3
        );
    }

    fn prob_hits(p: f64, seed: u64, n: u64) -> Vec<u64> {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::WireRx, FaultAction::Drop)
                .with_trigger(Trigger::Probability { p, seed }),
        )
        .unwrap();
        hits(&mut e, &FaultPoint::new(FaultSite::WireRx), n)
    }

    #[test]
    fn probability_is_reproducible_per_seed() {
        let a = prob_hits(0.3, 42, 1000);
        let b = prob_hits(0.3, 42, 1000);
        let c = prob_hits(0.3, 43, 1000);
        assert_eq!(a, b, "same seed must give the same hit sequence");
        assert_ne!(a, c, "different seeds should give different hit sequences");
    }

    #[test]
    fn probability_hit_rate_is_plausible() {
        let n = 20_000;
        for (p, seed) in [(0.1, 1u64), (0.5, 2), (0.9, 3)] {
            let got = prob_hits(p, seed, n).len() as f64 / n as f64;
            // Binomial std dev at n=20000 is < 0.0036; allow ~5 sigma.
            assert!((got - p).abs() < 0.02, "p={p}: observed rate {got}");
        }
        assert!(prob_hits(0.0, 7, 1000).is_empty());
        assert_eq!(prob_hits(1.0, 7, 1000).len(), 1000);
    }

    #[test]
    fn probability_restarts_after_reset_stats() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::Cqe, FaultAction::CqeError { status: 4 })
                .with_trigger(Trigger::Probability { p: 0.5, seed: 9 }),
        )
        .unwrap();
        let p = FaultPoint::new(FaultSite::Cqe);
        let first = hits(&mut e, &p, 64);
        e.reset_stats();
        assert_eq!(hits(&mut e, &p, 64), first);
    }

    #[test]
    fn window_boundaries_are_half_open() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::Link, FaultAction::LinkDown).with_window(ms(10), ms(20)),
        )
        .unwrap();
        let p = FaultPoint::new(FaultSite::Link);
        let before = ms(10) - Duration::from_nanos(1);
        assert_eq!(e.check(&p, before), None);
        assert_eq!(e.check(&p, ms(10)), Some(FaultAction::LinkDown));
        assert_eq!(e.check(&p, ms(15)), Some(FaultAction::LinkDown));
        assert_eq!(
            e.check(&p, ms(20) - Duration::from_nanos(1)),
            Some(FaultAction::LinkDown)
        );
        assert_eq!(e.check(&p, ms(20)), None);
        assert_eq!(e.check(&p, ms(1000)), None);
        // Events outside the window are not counted.
        assert_eq!(e.stats().rules[0].events, 3);
    }

    #[test]
    fn window_combines_with_count_triggers() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::Msix, FaultAction::Drop)
                .with_trigger(Trigger::Every { n: 2 })
                .with_window(ms(5), ms(10)),
        )
        .unwrap();
        let p = msix(1);
        let fired: Vec<u64> = (0..15).filter(|&t| e.check(&p, ms(t)).is_some()).collect();
        // In-window events at t = 5,6,7,8,9 are counted 1..5; the 2nd and 4th fire.
        assert_eq!(fired, vec![6, 8]);
    }

    #[test]
    fn scope_filters_match_exactly() {
        let mut e = FaultEngine::new();
        e.add_rule(
            FaultRule::new(FaultSite::DmaWrite, FaultAction::DmaError).with_scope(FaultScope {
                queue: Some(5),
                mr: Some(2),
                ..FaultScope::default()
            }),
        )
        .unwrap();
        let base = FaultPoint::new(FaultSite::DmaWrite);
        assert_eq!(
            e.check(&base.queue(5).mr(2), T0),
            Some(FaultAction::DmaError)
        );
        assert_eq!(e.check(&base.queue(5).mr(3), T0), None);
        assert_eq!(e.check(&base.queue(4).mr(2), T0), None);
        // An event that does not know its MR does not match a rule that names one.
        assert_eq!(e.check(&base.queue(5), T0), None);
        // Other sites never match.
        assert_eq!(
            e.check(&FaultPoint::new(FaultSite::DmaRead).queue(5).mr(2), T0),
            None
        );
        // Extra event fields do not matter.
        let mut extra = base.queue(5).mr(2);
        extra.scope.opcode = Some(1);
        assert!(e.check(&extra, T0).is_some());
    }

    #[test]
    fn empty_scope_matches_everything_at_site() {
        let mut e = FaultEngine::new();
        e.add_rule(FaultRule::new(
            FaultSite::AdminCommand,
            FaultAction::FailStatus { status: 2 },
        ))
        .unwrap();
        for op in [0u8, 7, 255] {
            let p = FaultPoint::new(FaultSite::AdminCommand).opcode(op).queue(0);
            assert!(e.check(&p, T0).is_some());
        }
    }

    #[test]
    fn first_firing_rule_wins_and_later_rules_do_not_see_the_event() {
        let mut e = FaultEngine::new();
        let a = e
            .add_rule(
                FaultRule::new(FaultSite::Msix, FaultAction::Drop)
                    .with_trigger(Trigger::Every { n: 2 }),
            )
            .unwrap();
        let b = e
            .add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Duplicate))
            .unwrap();
        let got: Vec<_> = (0..4).map(|_| e.check(&msix(0), T0).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                FaultAction::Duplicate,
                FaultAction::Drop,
                FaultAction::Duplicate,
                FaultAction::Drop
            ]
        );
        let s = e.stats();
        assert_eq!(
            s.rules[0],
            RuleStats {
                rule: a,
                events: 4,
                hits: 2
            }
        );
        assert_eq!(
            s.rules[1],
            RuleStats {
                rule: b,
                events: 2,
                hits: 2
            }
        );
        let msix_hits = s.sites.iter().find(|x| x.site == FaultSite::Msix).unwrap();
        assert_eq!(msix_hits.hits, 4);
        assert_eq!(s.total_hits, 4);
    }

    #[test]
    fn disabled_rules_are_skipped_and_keep_counters() {
        let mut e = FaultEngine::new();
        let id = e
            .add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Spurious))
            .unwrap();
        assert!(e.check(&msix(0), T0).is_some());
        e.set_enabled(id, false).unwrap();
        assert!(!e.armed(FaultSite::Msix));
        assert_eq!(e.check(&msix(0), T0), None);
        e.set_enabled(id, false).unwrap();
        e.set_enabled(id, true).unwrap();
        assert!(e.armed(FaultSite::Msix));
        assert!(e.check(&msix(0), T0).is_some());
        assert_eq!(e.stats().rules[0].hits, 2);
        assert_eq!(
            e.set_enabled(RuleId(99), true),
            Err(FaultError::UnknownRule(RuleId(99)))
        );

        let mut off = FaultRule::new(FaultSite::Link, FaultAction::LinkUp);
        off.enabled = false;
        e.add_rule(off).unwrap();
        assert!(!e.armed(FaultSite::Link));
        assert_eq!(e.check(&FaultPoint::new(FaultSite::Link), T0), None);
    }

    #[test]
    fn ids_are_assigned_unique_and_removable() {
        let mut e = FaultEngine::new();
        let rule = || FaultRule::new(FaultSite::Msix, FaultAction::Drop);
        let a = e.add_rule(rule()).unwrap();
        assert_eq!(a, RuleId(1));
        assert_eq!(e.add_rule(rule().with_id(RuleId(2))), Ok(RuleId(2)));
        assert_eq!(
            e.add_rule(rule().with_id(RuleId(2))),
            Err(FaultError::DuplicateId(RuleId(2)))
        );
        // Automatic ids skip ids chosen by the user.
        let c = e.add_rule(rule()).unwrap();
        assert_eq!(c, RuleId(3));
        assert_eq!(e.rules().len(), 3);
        assert!(e.rules().iter().all(|r| r.id.is_some()));
        let removed = e.remove_rule(a).unwrap();
        assert_eq!(removed.id, Some(a));
        assert_eq!(e.remove_rule(a), Err(FaultError::UnknownRule(a)));
        assert_eq!(e.rules().len(), 2);
        e.remove_rule(RuleId(2)).unwrap();
        assert!(e.armed(FaultSite::Msix));
        e.clear();
        assert!(e.rules().is_empty());
        assert!(!e.armed(FaultSite::Msix));
        assert_eq!(e.check(&msix(0), T0), None);
    }

    #[test]
    fn too_many_rules_is_an_error() {
        let mut e = FaultEngine::new();
        for _ in 0..MAX_RULES {
            e.add_rule(FaultRule::new(FaultSite::Device, FaultAction::Fatal))
                .unwrap();
        }
        assert_eq!(
            e.add_rule(FaultRule::new(FaultSite::Device, FaultAction::Fatal)),
            Err(FaultError::TooManyRules { limit: MAX_RULES })
        );
    }

    fn all_actions() -> Vec<FaultAction> {
        vec![
            FaultAction::DmaError,
            FaultAction::Corrupt {
                offset: 1,
                mask: 0x80,
            },
            FaultAction::Drop,
            FaultAction::Delay { micros: 10 },
            FaultAction::Duplicate,
            FaultAction::Spurious,
            FaultAction::Reorder,
            FaultAction::NeverComplete,
            FaultAction::FailStatus { status: 3 },
            FaultAction::CqeError { status: 5 },
            FaultAction::LinkDown,
            FaultAction::LinkUp,
            FaultAction::Fatal,
        ]
    }

    #[test]
    fn action_site_table() {
        use FaultSite::*;
        let table: &[(FaultSite, &[&str])] = &[
            (DmaRead, &["dma_error", "corrupt", "fatal"]),
            (DmaWrite, &["dma_error", "corrupt", "fatal"]),
            (Msix, &["drop", "delay", "duplicate", "spurious", "fatal"]),
            (
                AdminCommand,
                &["never_complete", "fail_status", "delay", "fatal"],
            ),
            (Cqe, &["cqe_error", "fatal"]),
            (Link, &["link_down", "link_up", "fatal"]),
            (
                WireTx,
                &["drop", "delay", "duplicate", "reorder", "corrupt", "fatal"],
            ),
            (
                WireRx,
                &["drop", "delay", "duplicate", "reorder", "corrupt", "fatal"],
            ),
            (Device, &["fatal"]),
        ];
        for &(site, allowed) in table {
            for action in all_actions() {
                let res = FaultEngine::new().add_rule(FaultRule::new(site, action));
                if allowed.contains(&action.name()) {
                    assert!(res.is_ok(), "{site} + {action} should be allowed: {res:?}");
                } else {
                    let err = res.expect_err("combination must be refused");
                    assert!(
                        matches!(err, FaultError::ActionNotAllowed { .. }),
                        "{err:?}"
                    );
                    let msg = err.to_string();
                    assert!(
                        msg.contains(site.name()) && msg.contains(action.name()),
                        "{msg}"
                    );
                    assert!(msg.contains(&allowed.join(", ")), "{msg}");
                }
            }
        }
        // Every action is usable somewhere.
        for action in all_actions() {
            assert!(FaultSite::ALL.iter().any(|s| s.allows(&action)), "{action}");
        }
    }

    #[test]
    fn invalid_triggers_windows_and_scopes_are_refused() {
        let base = || FaultRule::new(FaultSite::Msix, FaultAction::Drop);
        let add = |r: FaultRule| FaultEngine::new().add_rule(r);
        assert_eq!(
            add(base().with_trigger(Trigger::Once { nth: 0 })),
            Err(FaultError::ZeroCount { field: "once.nth" })
        );
        assert_eq!(
            add(base().with_trigger(Trigger::Every { n: 0 })),
            Err(FaultError::ZeroCount { field: "every.n" })
        );
        for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = add(base().with_trigger(Trigger::Probability { p, seed: 1 })).unwrap_err();
            assert!(matches!(err, FaultError::BadProbability { .. }), "{err:?}");
        }
        assert!(matches!(
            add(base().with_window(ms(5), ms(5))),
            Err(FaultError::EmptyWindow { .. })
        ));
        assert!(matches!(
            add(base().with_window(ms(6), ms(5))),
            Err(FaultError::EmptyWindow { .. })
        ));
        let op_scope = FaultScope {
            opcode: Some(1),
            ..FaultScope::default()
        };
        let err = add(base().with_scope(op_scope)).unwrap_err();
        assert!(err.to_string().contains("opcode"), "{err}");
        let vec_scope = FaultScope {
            vector: Some(1),
            ..FaultScope::default()
        };
        assert!(add(
            FaultRule::new(FaultSite::DmaRead, FaultAction::DmaError).with_scope(vec_scope)
        )
        .is_err());
        assert!(add(base().with_scope(vec_scope)).is_ok());
        assert!(add(
            FaultRule::new(FaultSite::AdminCommand, FaultAction::NeverComplete)
                .with_scope(op_scope)
        )
        .is_ok());
    }

    #[test]
    fn mr_and_queue_scopes_only_where_events_carry_them() {
        let add = |site, action, scope| {
            FaultEngine::new().add_rule(FaultRule::new(site, action).with_scope(scope))
        };
        let mr = FaultScope {
            mr: Some(2),
            ..FaultScope::default()
        };
        // Only DMA events name an MR.
        for site in [FaultSite::DmaRead, FaultSite::DmaWrite] {
            assert!(add(site, FaultAction::DmaError, mr).is_ok(), "{site}");
        }
        for (site, action) in [
            (FaultSite::Msix, FaultAction::Drop),
            (FaultSite::AdminCommand, FaultAction::NeverComplete),
            (FaultSite::Cqe, FaultAction::CqeError { status: 4 }),
            (FaultSite::Link, FaultAction::LinkDown),
            (FaultSite::WireTx, FaultAction::Drop),
            (FaultSite::WireRx, FaultAction::Drop),
            (FaultSite::Device, FaultAction::Fatal),
        ] {
            let err = add(site, action, mr).unwrap_err();
            assert_eq!(
                err,
                FaultError::ScopeNeverSet {
                    site,
                    field: "mr",
                    valid_at: "dma_read, dma_write".into(),
                }
            );
            assert!(err.to_string().contains("remove it"), "{err}");
        }
        // `queue` is never set at msix, link or device.
        let queue = FaultScope {
            queue: Some(0),
            ..FaultScope::default()
        };
        for (site, action) in [
            (FaultSite::Msix, FaultAction::Drop),
            (FaultSite::Link, FaultAction::LinkDown),
            (FaultSite::Device, FaultAction::Fatal),
        ] {
            let err = add(site, action, queue).unwrap_err();
            assert!(
                matches!(err, FaultError::ScopeNeverSet { field: "queue", .. }),
                "{err:?}"
            );
        }
        // JSON rules go through the same check.
        let rule: FaultRule =
            serde_json::from_str(r#"{"site":"cqe","scope":{"mr":1},"action":{"kind":"fatal"}}"#)
                .unwrap();
        assert!(FaultEngine::new().add_rule(rule).is_err());
        // Every field a site lists is accepted there.
        for site in FaultSite::ALL {
            let action = FaultAction::Fatal;
            for &f in site.scope_fields() {
                let mut s = FaultScope::default();
                match f {
                    "queue" => s.queue = Some(1),
                    "vector" => s.vector = Some(1),
                    "mr" => s.mr = Some(1),
                    "opcode" => s.opcode = Some(1),
                    other => panic!("unknown scope field {other}"),
                }
                assert!(add(site, action, s).is_ok(), "{site} {f}");
            }
        }
    }

    #[test]
    fn hits_are_logged_with_what_they_hit() {
        let mut e = FaultEngine::new();
        let id = e
            .add_rule(FaultRule::new(
                FaultSite::Cqe,
                FaultAction::CqeError { status: 9 },
            ))
            .unwrap();
        let p = FaultPoint::new(FaultSite::Cqe).queue(17);
        e.check(&p, ms(3));
        let log: Vec<_> = e.log().entries().copied().collect();
        assert_eq!(
            log,
            vec![FaultHit {
                seq: 0,
                rule: id,
                site: FaultSite::Cqe,
                scope: p.scope,
                action: FaultAction::CqeError { status: 9 },
                at: ms(3),
            }]
        );
        assert_eq!(e.drain_log().len(), 1);
        assert!(e.log().is_empty());
    }

    #[test]
    fn log_is_bounded_and_counts_dropped_entries() {
        let mut e = FaultEngine::with_log_capacity(4);
        e.add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Drop))
            .unwrap();
        for t in 0..10 {
            e.check(&msix(0), ms(t));
        }
        assert_eq!(e.log().len(), 4);
        assert_eq!(e.log().capacity(), 4);
        assert_eq!(e.log().dropped(), 6);
        assert_eq!(e.stats().log_dropped, 6);
        let seqs: Vec<u64> = e.log().entries().map(|h| h.seq).collect();
        assert_eq!(seqs, vec![6, 7, 8, 9]);
        assert_eq!(e.stats().total_hits, 10);

        let mut zero = FaultEngine::with_log_capacity(0);
        zero.add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Drop))
            .unwrap();
        zero.check(&msix(0), T0);
        assert!(zero.log().is_empty());
        assert_eq!(zero.log().dropped(), 1);

        let mut big = FaultEngine::new();
        big.add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Drop))
            .unwrap();
        for _ in 0..(DEFAULT_LOG_CAPACITY + 5) {
            big.check(&msix(0), T0);
        }
        assert_eq!(big.log().len(), DEFAULT_LOG_CAPACITY);
        assert_eq!(big.log().dropped(), 5);
    }

    #[test]
    fn site_hits_survive_rule_removal_until_reset() {
        let mut e = FaultEngine::new();
        let id = e
            .add_rule(FaultRule::new(FaultSite::Link, FaultAction::LinkDown))
            .unwrap();
        e.check(&FaultPoint::new(FaultSite::Link), T0);
        e.remove_rule(id).unwrap();
        let s = e.stats();
        assert!(s.rules.is_empty());
        assert_eq!(s.sites.len(), FaultSite::ALL.len());
        assert_eq!(s.sites[FaultSite::Link as usize].hits, 1);
        e.reset_stats();
        assert_eq!(e.stats().total_hits, 0);
        assert!(e.stats().sites.iter().all(|s| s.hits == 0));
    }

    #[test]
    fn rule_json_round_trip_and_shape() {
        let json = r#"{"id": 3, "site": "msix", "scope": {"vector": 1},
            "action": {"kind": "drop"}, "trigger": {"kind": "every", "n": 4},
            "window": {"from_us": 0, "until_us": 2000000}, "enabled": false}"#;
        let rule: FaultRule = serde_json::from_str(json).unwrap();
        assert_eq!(
            rule,
            FaultRule {
                id: Some(RuleId(3)),
                site: FaultSite::Msix,
                scope: FaultScope {
                    vector: Some(1),
                    ..FaultScope::default()
                },
                action: FaultAction::Drop,
                trigger: Trigger::Every { n: 4 },
                window: Some(TimeWindow {
                    from: Duration::ZERO,
                    until: Duration::from_secs(2)
                }),
                enabled: false,
                max_hits: None,
            }
        );
        let back: FaultRule = serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
        assert_eq!(back, rule);

        // Minimal form: defaults fill in, and serialize back to the minimal form.
        let min = r#"{"site":"device","action":{"kind":"fatal"}}"#;
        let rule: FaultRule = serde_json::from_str(min).unwrap();
        assert_eq!(rule, FaultRule::new(FaultSite::Device, FaultAction::Fatal));
        assert_eq!(serde_json::to_string(&rule).unwrap(), min);

        // Every action and trigger round-trips.
        let triggers = [
            Trigger::Always,
            Trigger::Once { nth: 2 },
            Trigger::Every { n: 7 },
            Trigger::Probability {
                p: 0.25,
                seed: 12345,
            },
        ];
        for action in all_actions() {
            for trigger in triggers {
                let site = *FaultSite::ALL.iter().find(|s| s.allows(&action)).unwrap();
                let r = FaultRule::new(site, action)
                    .with_trigger(trigger)
                    .with_scope(FaultScope {
                        queue: Some(2),
                        mr: Some(9),
                        ..FaultScope::default()
                    })
                    .with_window(Duration::from_micros(5), Duration::from_micros(99));
                let s = serde_json::to_string(&r).unwrap();
                assert_eq!(serde_json::from_str::<FaultRule>(&s).unwrap(), r, "{s}");
            }
        }

        // Typos are errors, not silently ignored.
        assert!(serde_json::from_str::<FaultRule>(
            r#"{"site":"device","action":{"kind":"fatal"},"trigger":{"kind":"once","nht":1}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<FaultRule>(
            r#"{"site":"device","action":{"kind":"fatal"},"enabeld":true}"#
        )
        .is_err());
    }

    #[test]
    fn stats_and_log_serialize() {
        let mut e = FaultEngine::new();
        e.add_rule(FaultRule::new(FaultSite::Msix, FaultAction::Drop))
            .unwrap();
        e.check(&msix(3), Duration::from_micros(1500));
        let stats = e.stats();
        let back: FaultStats =
            serde_json::from_str(&serde_json::to_string(&stats).unwrap()).unwrap();
        assert_eq!(back, stats);
        let log = serde_json::to_value(e.log()).unwrap();
        assert_eq!(log["entries"][0]["at_us"], 1500);
        assert_eq!(log["entries"][0]["action"]["kind"], "drop");
        assert_eq!(log["entries"][0]["scope"]["vector"], 3);
        assert_eq!(log["dropped"], 0);
    }

    #[test]
    fn corrupt_in_place_xors_one_byte() {
        let mut buf = [0u8; 4];
        assert!(FaultAction::Corrupt {
            offset: 6,
            mask: 0xFF
        }
        .corrupt_in_place(&mut buf));
        assert_eq!(buf, [0, 0, 0xFF, 0]);
        assert!(!FaultAction::Corrupt {
            offset: 0,
            mask: 0xFF
        }
        .corrupt_in_place(&mut []));
        assert!(!FaultAction::Drop.corrupt_in_place(&mut buf));
    }
}

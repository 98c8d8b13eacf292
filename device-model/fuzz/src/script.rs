//! A scripted "driver" for the RNIC, shared by the cargo-fuzz target
//! (`fuzz_targets/mmio.rs`) and the property tests (`tests/prop_device.rs`, which
//! includes this file with `#[path]`).
//!
//! A script is a list of [`Op`]s: configuration-space and BAR accesses, admin
//! commands placed in the admin submission ring (raw ones with random operands and
//! well-formed verbs/Ethernet commands built from the driver's view of the device),
//! audits, doorbell writes, writes of random bytes to guest memory and device-time
//! advances. [`Rig::apply`] runs one op and then checks the device's invariants; a
//! violation panics with a message (that is what the fuzzer and proptest catch).
//!
//! Besides the safety invariants (no writes outside the RAM a script names, vectors
//! in range, consistent status, fault statistics that add up, object counts within
//! limits) the rig keeps a reference model of the object tables ([`model`]): every
//! admin completion the device writes is matched with the command it completes and
//! checked against the model, and after every op the model is compared with the
//! tables the device reports host-side. [`Op::Audit`] (and [`Rig::finish`]) also
//! query live and dead handles through the admin queue.
//!
//! Guest memory layout of the rig:
//!
//! | range | what |
//! | --- | --- |
//! | `PAGE_LIST_AT .. +0x800` | page lists of generated `REG_MR` commands |
//! | `ASQ_AT`, `ACQ_AT` | the admin rings of [`Op::BringUp`] |
//! | `SCRATCH_AT .. FREE_AT` | output buffers of generated queries |
//! | `FREE_AT .. FREE_END` | RAM the script may fill and point the device at (rings, buffers, WQEs) |
//! | `BAR0_AT .. +64 KiB`, `BAR2_AT .. +8 KiB` | inside the arena on purpose: the device's BARs are placed over RAM, so a DMA into its own BARs would show up as changed RAM bytes |
//! | `GUARD_BASE .. +GUARD_SIZE` | RAM no script ever names: filled with a pattern that must never change |

use std::sync::Arc;
use std::time::Duration;

use rnic_device::fault::{FaultAction, FaultRule, FaultSite, Trigger};
use rnic_device::irq::SinkEvent;
use rnic_device::verbs::VerbsLimits;
use rnic_device::{PciFunction, RecordingSink, Rnic, RnicConfig};
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
    VolatileSlice,
};

#[path = "model.rs"]
pub mod model;

use model::{attr, opc, qps, Cmd, Cpl, Kind, Model};

/// Start of the arena.
pub const ARENA_BASE: u64 = 0; // `bars_over_ram` relies on this being 0
/// Size of the arena.
pub const ARENA_SIZE: u64 = 0x4_0000;
/// Where the rig places BAR0 (inside the arena).
pub const BAR0_AT: u64 = 0x2_0000;
/// Where the rig places BAR2 (inside the arena).
pub const BAR2_AT: u64 = 0x3_0000;
/// Page lists of generated `REG_MR` commands (up to 256 entries).
pub const PAGE_LIST_AT: u64 = 0x800;
/// Admin submission ring used by [`Op::BringUp`].
pub const ASQ_AT: u64 = 0x1000;
/// Admin completion ring used by [`Op::BringUp`].
pub const ACQ_AT: u64 = 0x3000;
/// Output buffers (64 bytes each) of generated queries.
pub const SCRATCH_AT: u64 = 0x3400;
/// Free arena space for buffers and rings named by admin operands.
pub const FREE_AT: u64 = 0x4000;
/// End of the free arena space (BAR0 starts here).
pub const FREE_END: u64 = BAR0_AT;
/// Guard RAM: far away from anything a script names.
pub const GUARD_BASE: u64 = 0x0000_7000_0000_0000;
/// Size of the guard RAM.
pub const GUARD_SIZE: u64 = 0x1000;
/// Pattern byte of the guard RAM.
pub const GUARD_BYTE: u8 = 0xA5;

const SCRATCH_SLOTS: u64 = (FREE_AT - SCRATCH_AT) / 64;

const CFG_COMMAND: u16 = 0x04;
const CFG_BAR0: u16 = 0x10;
const CFG_BAR2: u16 = 0x18;
const CFG_MSIX_CTRL: u16 = 0x52;
const CMD_MEM_BM: u16 = (1 << 1) | (1 << 2);
const MSIX_ENABLE: u16 = 1 << 15;

const REG_VERSION: u64 = 0x000;
const VERSION_VALUE: u32 = 0x0001_0000;
const REG_DEV_CTRL: u64 = 0x008;
const REG_ASQ_BASE_LO: u64 = 0x020;
const REG_ASQ_BASE_HI: u64 = 0x024;
const REG_ASQ_SIZE: u64 = 0x028;
const REG_ACQ_BASE_LO: u64 = 0x030;
const REG_ACQ_BASE_HI: u64 = 0x034;
const REG_ACQ_SIZE: u64 = 0x038;
const REG_ASQ_TAIL: u64 = 0x040;
const REG_ACQ_HEAD: u64 = 0x048;
const REG_ACQ_TAIL: u64 = 0x04C;
const REG_ASQ_HEAD: u64 = 0x044;
const REG_DEV_STATUS: u64 = 0x00C;
const STATUS_READY: u32 = 1;
const STATUS_FATAL: u32 = 2;

/// BAR0 registers scripts like to hit (plus random offsets).
pub const INTERESTING_REGS: [u64; 16] = [
    0x000, 0x004, 0x008, 0x00C, 0x010, 0x018, 0x01C, 0x020, 0x024, 0x028, 0x030, 0x034, 0x038,
    0x040, 0x048, 0x04C,
];

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Op {
    /// Configuration write of 1, 2 or 4 bytes.
    ConfigWrite { offset: u16, data: Vec<u8> },
    /// Configuration read.
    ConfigRead { offset: u16 },
    /// BAR0 write (any width; the device accepts aligned 32-bit ones).
    Bar0Write { offset: u64, data: Vec<u8> },
    /// BAR0 read.
    Bar0Read { offset: u64, len: u8 },
    /// BAR2 (MSI-X) write.
    Bar2Write { offset: u64, data: Vec<u8> },
    /// BAR2 read.
    Bar2Read { offset: u64, len: u8 },
    /// The driver writes bytes into the arena (offset is taken modulo the arena).
    Mem { offset: u64, data: Vec<u8> },
    /// Places an admin command at the rig's submission tail and rings `ASQ_TAIL`.
    Admin {
        opcode: u8,
        flags: u8,
        id: u16,
        operands: [u8; 56],
    },
    /// Sets the ACQ head to the device's tail (frees all completions).
    ConsumeCompletions,
    /// A write to the doorbell area (0x1000..0x10000 of BAR0).
    Doorbell { offset: u64, value: u32 },
    /// Advances device time and calls `poll`.
    Poll { advance_us: u32 },
    /// Installs a fault rule (invalid combinations are refused by the engine and
    /// ignored here): site and action by index into [`FaultSite::ALL`] and
    /// [`fault_action`].
    Fault {
        site: u8,
        action: u8,
        param: u32,
        trigger: u8,
        n: u32,
    },
    /// Removes every fault rule.
    ClearFaults,
    /// The standard bring-up: memory + bus master, MSI-X on and unmasked, rings
    /// of the given sizes at `ASQ_AT`/`ACQ_AT`, `DEV_CTRL = ENABLE`.
    BringUp { asq_size: u32, acq_size: u32 },
    /// A well-formed verbs or Ethernet command built from the driver's view (the
    /// model): `kind` selects the command, `a`/`b` pick handles (mostly live ones,
    /// sometimes dead ones, 0 or never-used ones) and `c` fills the other fields
    /// (rings in free arena space, valid attribute sets, now and then a bad value).
    /// Submitted like a driver would: completions released, `ASQ_TAIL` resynced.
    /// Does nothing unless the rig's admin rings are live.
    Verb { kind: u8, a: u16, b: u16, c: u32 },
    /// Queries the device through the admin queue: `QUERY_DEVICE`, `QUERY_QP` and
    /// `QUERY_MR` on live and dead handles, `DESTROY_PD`/`DESTROY_CQ` on objects
    /// still in use (must be `BUSY`); each answer is checked against the model.
    Audit { sel: u16 },
    /// Creates PDs until the table is full (the last one must fail
    /// `NO_RESOURCES`), then destroys `destroy % 8 + 1` unused ones: later creations
    /// must reuse them longest-freed first (§0.1). Does nothing unless the model is
    /// exact and the rig's admin rings are live.
    FillPds { destroy: u16 },
}

/// Where the device's admin rings are, as far as the rig knows (set by
/// [`Op::BringUp`], forgotten at a device reset).
#[derive(Clone, Copy, Debug)]
struct RingTrack {
    asq_size: u32,
    acq_size: u32,
    /// Next completion slot the rig reads.
    acq_next: u32,
    /// Phase tag the rig expects there.
    phase: bool,
}

/// Guest memory a generated command names, written by the rig before submitting.
type Writes = Vec<(u64, Vec<u8>)>;

/// Device counters sampled before a device access.
#[derive(Clone, Copy)]
struct PreStep {
    resets: u64,
    admin_commands: u64,
    never_completed: u64,
}

/// The device plus the guest around it.
pub struct Rig {
    pub dev: Rnic,
    pub sink: Arc<RecordingSink>,
    pub mem: GuestMemoryMmap,
    pub now: Duration,
    asq_size: u32,
    asq_tail: u32,
    /// The arena RAM under the BARs (address and expected contents per BAR,
    /// clipped to the arena): taken when the BARs land somewhere, kept up to date
    /// by the rig's own writes (which reach RAM, as the rig plays the driver and the
    /// RAM at once), and compared with RAM when the BARs move and at the end of the
    /// script — any difference is a device DMA into its own BARs. No copy is taken
    /// around individual device accesses.
    bar_ram: Vec<(u64, Vec<u8>)>,
    /// The rig's record of its admin submission ring (at `ASQ_AT`, the size of
    /// [`RingTrack`]): taken at a bring-up, kept up to date by the rig's own writes
    /// and compared with RAM after every device access (a difference is a device
    /// write into the ring). Completions are matched with the commands recorded
    /// here, so the ring is read once per access instead of before and after it.
    asq_record: Vec<u8>,
    /// Reused buffer: the admin submission ring after a device access.
    asq_after: Vec<u8>,
    /// Device accesses so far (register and configuration accesses, fault-rule
    /// changes): an op that made none leaves the device's tables as they were.
    accesses: u64,
    /// Ops applied so far.
    pub steps: u64,
    /// The reference model of the object tables.
    pub model: Model,
    ring: Option<RingTrack>,
    /// A fault rule is installed that keeps the model from following the device
    /// (DMA faults, delayed admin commands, `fail_status` 0).
    blinding_rules: bool,
    /// A fault rule at `admin_command` is installed (statuses unpredictable).
    admin_rules: bool,
    /// Query buffers of the submission in flight: (ASQ slot, buffer address).
    pending_bufs: Vec<(u32, u64)>,
    next_id: u16,
    next_scratch: u64,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A powered-on device with its BARs placed over arena RAM (memory decoding off).
    pub fn new() -> Rig {
        let mem = take_memory();
        let sink = Arc::new(RecordingSink::new());
        let mut dev = Rnic::with_limits(
            RnicConfig::default(),
            rig_limits(),
            mem.clone(),
            sink.clone(),
        );
        place_bars(&mut dev);
        let model = Model::new(&dev);
        let mut rig = Rig {
            dev,
            sink,
            mem,
            now: Duration::ZERO,
            asq_size: 0,
            asq_tail: 0,
            bar_ram: Vec::new(),
            asq_record: Vec::new(),
            asq_after: Vec::new(),
            accesses: 0,
            steps: 0,
            model,
            ring: None,
            blinding_rules: false,
            admin_rules: false,
            pending_bufs: Vec::new(),
            next_id: 0,
            next_scratch: 0,
        };
        rig.cover_bars();
        rig
    }

    /// Where the BARs sit over arena RAM now ((address, size), clipped to the arena).
    fn bars_over_ram(&self) -> Vec<(u64, u64)> {
        // The arena starts at 0, so only its end clips a region.
        let arena_end = ARENA_BASE + ARENA_SIZE;
        self.dev
            .bar_regions()
            .iter()
            .filter_map(|r| {
                let start = r.address;
                let end = r.address.saturating_add(r.size).min(arena_end);
                (start < end).then(|| (start, end - start))
            })
            .collect()
    }

    /// Records the RAM under the BARs' current placement.
    fn cover_bars(&mut self) {
        self.bar_ram = self
            .bars_over_ram()
            .into_iter()
            .map(|(at, len)| {
                let mut copy = vec![0u8; len as usize];
                ram(&self.mem, at, copy.len()).copy_to(&mut copy);
                (at, copy)
            })
            .collect();
    }

    /// After a device access: when the BARs moved, the RAM under the old placement
    /// is verified (it covers every device access since the last move) and the new
    /// placement is recorded.
    fn check_bars_untouched(&mut self, op: &dyn std::fmt::Debug) {
        let now = self.bars_over_ram();
        let same = now.len() == self.bar_ram.len()
            && now
                .iter()
                .zip(&self.bar_ram)
                .all(|(&(at, len), (was, ram))| at == *was && len == ram.len() as u64);
        if !same {
            self.verify_bars(op);
            self.cover_bars();
        }
    }

    /// Panics if RAM under the BARs differs from what the rig expects there.
    fn verify_bars(&self, op: &dyn std::fmt::Debug) {
        let mut now = Vec::new();
        for (at, expected) in &self.bar_ram {
            now.resize(expected.len(), 0);
            ram(&self.mem, *at, now.len()).copy_to(&mut now);
            // Slice equality is one memcmp (not traced by the fuzzer's comparison hooks).
            if now != *expected {
                let i = now
                    .iter()
                    .zip(expected)
                    .position(|(a, b)| a != b)
                    .expect("a differing byte");
                panic!(
                    "device wrote guest RAM under its own BAR at {:#x} during {op:?}",
                    at + i as u64
                );
            }
        }
    }

    /// Ends a script: audits the object tables through the admin queue (when the
    /// model is exact and the rig's admin rings are live), then checks the guard
    /// RAM (no script ever writes it, so one check at the end covers every step).
    pub fn finish(&mut self) {
        let op = Op::Audit { sel: 0 };
        self.audit(&op, 0);
        self.check_state(&op, true);
        self.verify_bars(&format!("the script ({} steps)", self.steps));
        self.check_guard(&format!("the script ({} steps)", self.steps));
    }

    fn check_guard(&self, op: &dyn std::fmt::Debug) {
        if let Some(addr) = first_difference(&self.mem, GUARD_BASE, GUARD_SIZE, GUARD_BYTE) {
            panic!("device wrote guard RAM at {addr:#x} during {op:?}");
        }
    }

    /// Panics with a readable account of a disagreement between the model and the
    /// device.
    fn model_failure(&self, op: &Op, what: &str) -> ! {
        panic!(
            "the device disagrees with the driver's view of its object tables\n  \
             at step {} ({op:?})\n  {what}\n  driver's view: {}",
            self.steps,
            self.model.summary()
        );
    }

    /// The device's statistics and object tables: fault counts that add up, object
    /// counts within the limits, and the tables the device reports host-side equal
    /// to the model's.
    fn check_tables(&mut self, op: &Op) {
        // Only the statistics checked here (`Rnic::stats` also gathers every
        // queue's and vector's counters).
        let f = &self.dev.faults_mut().stats();
        assert_eq!(
            f.total_hits,
            f.sites.iter().map(|x| x.hits).sum::<u64>(),
            "fault hits per site do not add up after {op:?}"
        );
        assert!(
            f.rules.iter().all(|r| r.hits <= r.events),
            "a rule hit more often than it saw events"
        );
        let v = &self.dev.verbs().stats();
        let lim = self.dev.verbs().limits();
        assert!(
            v.pds <= lim.max_pd && v.mrs <= lim.max_mr,
            "object counts beyond limits after {op:?}"
        );
        assert!(v.qps.len() as u32 <= lim.max_qp && v.cqs.len() as u32 <= lim.max_cq);
        assert!(
            v.mr_pages <= lim.max_total_pages,
            "MR pages beyond the limit after {op:?}"
        );
        if let Err(e) = self.model.check_host(&self.dev, v) {
            self.model_failure(op, &e);
        }
    }

    /// The invariants after `op`. The comparisons with the device's tables and
    /// statistics run only when the op reached the device (`accessed`): an op that
    /// made no device access (a RAM write, a command the rig could not submit)
    /// leaves them and the model as the previous check saw them.
    fn check_state(&mut self, op: &Op, accessed: bool) {
        let st = self.dev.dev_status();
        if st & STATUS_READY != 0 {
            assert_eq!(
                st & STATUS_FATAL,
                0,
                "READY and FATAL together after {op:?}"
            );
        }
        if accessed {
            self.check_tables(op);
        }
        for e in self.sink.take() {
            match e {
                SinkEvent::Trigger { vector, .. } | SinkEvent::Route { vector, .. } => {
                    assert!(
                        vector < 16,
                        "interrupt on nonexistent vector {vector} after {op:?}"
                    )
                }
            }
        }
        // The ring indices stay inside the largest ring while the device runs.
        // (Only while BAR0 decodes: memory space off or a low-power state reads all ones.)
        let decoding = self.read32(REG_VERSION) == VERSION_VALUE;
        if decoding && st & STATUS_READY != 0 {
            for reg in [REG_ACQ_TAIL, REG_ASQ_HEAD] {
                let v = self.read32(reg);
                assert!(v < 4096, "ring index register {reg:#x} = {v} after {op:?}");
            }
            assert_eq!(
                self.read32(REG_DEV_STATUS),
                st,
                "DEV_STATUS register disagrees after {op:?}"
            );
        }
    }

    fn write32(&mut self, off: u64, v: u32) {
        self.dev.bar_write(0, off, &v.to_le_bytes());
    }

    fn read32(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.bar_read(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn read_mem<const N: usize>(&self, addr: u64) -> [u8; N] {
        let mut b = [0u8; N];
        ram(&self.mem, addr, N).copy_to(&mut b);
        b
    }

    /// Writes guest RAM as the rig; the record of the RAM under the BARs follows.
    fn write_mem(&mut self, addr: u64, data: &[u8]) {
        ram(&self.mem, addr, data.len()).copy_from(data);
        for (at, record) in &mut self.bar_ram {
            copy_overlap(*at, record, addr, data);
        }
        copy_overlap(ASQ_AT, &mut self.asq_record, addr, data);
    }

    /// One device access `f` (the rig's own RAM writes must come before it), with
    /// the checks around it: nothing written under the BARs, and every admin
    /// completion the access produced matched with its command and checked
    /// against the model.
    fn device_step(&mut self, op: &Op, f: impl FnOnce(&mut Rig)) {
        let d = self.dev.device_counters();
        let pre = PreStep {
            resets: d.resets,
            admin_commands: d.admin_commands,
            never_completed: d.admin_never_completed,
        };
        let tracked = self.ring.is_some();
        self.accesses += 1;
        f(self);
        if matches!(op, Op::ConfigWrite { .. }) {
            // Only a configuration write moves the BARs.
            self.check_bars_untouched(op);
        }
        self.after_device(op, pre, tracked);
    }

    /// Reads the rig's admin submission ring of `size` entries into `buf`.
    fn read_asq(&self, size: u32, buf: &mut Vec<u8>) {
        buf.resize(size as usize * 64, 0);
        ram(&self.mem, ASQ_AT, buf.len()).copy_to(buf);
    }

    /// After a device access: resets, then (when the rig's admin rings were live
    /// before the access, `tracked`) a device write into the submission ring and
    /// every completion the access produced, matched with its command.
    fn after_device(&mut self, op: &Op, pre: PreStep, tracked: bool) {
        let d = self.dev.device_counters();
        if d.resets > pre.resets {
            // DEV_CTRL.RESET, ENABLE 1→0 or an FLR: every object is gone and the
            // admin rings are unprogrammed (no command runs in such a step).
            self.ring = None;
            self.model.device_reset(!self.blinding_rules);
            return;
        }
        let (Some(mut ring), true) = (self.ring, tracked) else {
            if self.dev.dev_status() & STATUS_READY != 0 {
                self.model
                    .taint("the admin queue runs on rings the rig did not set up");
            }
            return;
        };
        let mut after = std::mem::take(&mut self.asq_after);
        self.read_asq(ring.asq_size, &mut after);
        // The commands as they were before the access (the record), and the ring
        // as the access left it (the record from now on).
        let asq = std::mem::replace(&mut self.asq_record, after);
        let rewritten = asq != self.asq_record;
        self.asq_after = asq;
        let asq = &self.asq_after;
        if rewritten {
            // Before the completions: a command may have run from altered bytes.
            self.model
                .taint("the device wrote into the admin submission ring");
        }
        let mut seen = 0u64;
        let mut since_clear: Option<u64> = None;
        for _ in 0..ring.acq_size {
            let at = ACQ_AT + u64::from(ring.acq_next) * 16;
            let cpl = Cpl::from_bytes(&self.read_mem::<16>(at));
            if cpl.phase != ring.phase {
                break;
            }
            ring.acq_next = (ring.acq_next + 1) % ring.acq_size;
            if ring.acq_next == 0 {
                ring.phase = !ring.phase;
            }
            seen += 1;
            if let Some(n) = since_clear.as_mut() {
                *n += 1;
            }
            if u32::from(cpl.sq_head) >= ring.asq_size {
                if self.model.exact() {
                    self.model_failure(
                        op,
                        &format!(
                            "completion {cpl:x?} names ASQ_HEAD {} outside a ring of {}",
                            cpl.sq_head, ring.asq_size
                        ),
                    );
                }
                continue;
            }
            let slot = (u32::from(cpl.sq_head) + ring.asq_size - 1) % ring.asq_size;
            let s = slot as usize * 64;
            let bytes: [u8; 64] = asq[s..s + 64].try_into().expect("64-byte slot");
            let cmd = Cmd::from_bytes(&bytes);
            let buf = self
                .pending_bufs
                .iter()
                .find(|&&(sl, addr)| sl == slot && query_buffer(&cmd) == Some(addr))
                .map(|&(_, addr)| self.read_mem::<64>(addr));
            if let Err(e) = self.model.on_completion(&cmd, &cpl, buf.as_ref()) {
                self.model_failure(op, &e);
            }
            if cpl.status == model::status::SUCCESS {
                if cmd.opcode == opc::CLEAR_STATS && cmd.flags == 0 && cmd.reserved == 0 {
                    since_clear = Some(0);
                }
                if let Some((addr, len)) = cmd.device_writes() {
                    if addr < SCRATCH_AT && addr.saturating_add(len) > ASQ_AT {
                        self.model.taint(&format!(
                            "{} makes the device write {addr:#x}+{len:#x}, over the admin rings",
                            opc::name(cmd.opcode)
                        ));
                    }
                }
            }
        }
        self.ring = Some(ring);
        // Every command consumed in this step completed, or never_complete held it.
        let lost = match since_clear {
            Some(n) => d.admin_commands as i64 - n as i64 - d.admin_never_completed as i64,
            None => {
                (d.admin_commands as i64 - pre.admin_commands as i64)
                    - seen as i64
                    - (d.admin_never_completed as i64 - pre.never_completed as i64)
            }
        };
        if lost > 0 {
            self.model
                .taint("a consumed admin command left no completion (admin error or fatal state)");
        }
    }

    /// Runs one op, then checks the invariants (panics on a violation).
    pub fn apply(&mut self, op: &Op) {
        self.steps += 1;
        let accesses = self.accesses;
        match op {
            Op::Mem { offset, data } => {
                let off = offset % ARENA_SIZE;
                let n = data.len().min((ARENA_SIZE - off) as usize);
                self.write_mem(ARENA_BASE + off, &data[..n]);
            }
            Op::Admin {
                opcode,
                flags,
                id,
                operands,
            } => {
                let size = self.asq_size;
                if size.is_power_of_two() && (2..=4096).contains(&size) {
                    let mut e = [0u8; 64];
                    e[0] = *opcode;
                    e[1] = *flags;
                    e[2..4].copy_from_slice(&id.to_le_bytes());
                    e[8..].copy_from_slice(operands);
                    let slot = ASQ_AT + u64::from(self.asq_tail % size) * 64;
                    if slot + 64 <= ARENA_SIZE {
                        if let Some(r) = self.ring {
                            let acq_end = ACQ_AT + u64::from(r.acq_size) * 16;
                            if slot < acq_end && slot + 64 > ACQ_AT {
                                // A raw ASQ_SIZE made the rig write over its own
                                // completion ring: what it reads there is not the
                                // device's any more.
                                self.model
                                    .taint("the script wrote a command over the completion ring");
                            }
                        }
                        self.write_mem(slot, &e);
                    }
                    self.asq_tail = (self.asq_tail + 1) % size;
                    let tail = self.asq_tail;
                    self.device_step(op, |r| r.write32(REG_ASQ_TAIL, tail));
                }
            }
            Op::BringUp { asq_size, acq_size } => {
                self.accesses += 1;
                let resets = self.dev.device_counters().resets;
                let rings = self.bring_up(*asq_size, *acq_size);
                self.check_bars_untouched(op);
                if self.dev.device_counters().resets > resets {
                    // The DEV_CTRL reset emptied the device; the rings are the rig's.
                    self.model.device_reset(!self.blinding_rules);
                    self.ring = Some(rings);
                    let mut record = std::mem::take(&mut self.asq_record);
                    self.read_asq(rings.asq_size, &mut record);
                    self.asq_record = record;
                } else {
                    // BAR0 did not decode (a low-power state): nothing happened, and
                    // the rig just zeroed whatever rings the device may be using.
                    self.ring = None;
                    if self.dev.dev_status() & STATUS_READY != 0 {
                        self.model.taint("bring-up did not reach a running device");
                    }
                }
            }
            Op::Fault {
                site,
                action,
                param,
                trigger,
                n,
            } => {
                let site = FaultSite::ALL[*site as usize % FaultSite::ALL.len()];
                let trigger = match trigger % 4 {
                    0 => Trigger::Always,
                    1 => Trigger::Once {
                        nth: u64::from(*n % 64) + 1,
                    },
                    2 => Trigger::Every {
                        n: u64::from(*n % 16) + 1,
                    },
                    _ => Trigger::Probability {
                        p: f64::from(*n % 1000) / 1000.0,
                        seed: u64::from(*n),
                    },
                };
                let action = fault_action(*action, *param);
                self.accesses += 1;
                let rule = FaultRule::new(site, action).with_trigger(trigger);
                if self.dev.faults_mut().add_rule(rule).is_ok() {
                    self.note_fault_rule(site, action);
                }
            }
            Op::ClearFaults => {
                self.accesses += 1;
                self.dev.faults_mut().clear();
                self.blinding_rules = false;
                self.admin_rules = false;
                self.model.predict = true;
            }
            Op::Verb { kind, a, b, c } => self.verb(op, *kind, *a, *b, *c),
            Op::Audit { sel } => self.audit(op, *sel),
            Op::FillPds { destroy } => self.fill_pds(op, *destroy),
            _ => self.device_step(op, |r| r.device_op(op)),
        }
        self.check_state(op, self.accesses != accesses);
    }

    /// What an installed fault rule means for the model.
    fn note_fault_rule(&mut self, site: FaultSite, action: FaultAction) {
        match site {
            FaultSite::DmaRead | FaultSite::DmaWrite => {
                // Commands read corrupted, completions lost or corrupted.
                self.blinding_rules = true;
                self.model
                    .taint("a DMA fault rule can corrupt or lose admin traffic");
            }
            FaultSite::AdminCommand => {
                self.admin_rules = true;
                self.model.predict = false;
                let blind = match action {
                    // Executed after its slot may have been reused.
                    FaultAction::Delay { .. } => true,
                    // SUCCESS without executing the command.
                    FaultAction::FailStatus { status } => status == 0,
                    _ => false,
                };
                if blind {
                    self.blinding_rules = true;
                    self.model
                        .taint("an admin_command fault rule hides what the device executed");
                }
            }
            _ => {}
        }
    }

    /// The ops that are a single device access.
    fn device_op(&mut self, op: &Op) {
        match op {
            Op::ConfigWrite { offset, data } => {
                let n = match data.len() {
                    0 => return,
                    1 => 1,
                    2 | 3 => 2,
                    _ => 4,
                };
                self.dev.config_write(*offset, &data[..n]);
            }
            Op::ConfigRead { offset } => {
                let _ = self.dev.config_read(*offset);
            }
            Op::Bar0Write { offset, data } => {
                if *offset == REG_ASQ_SIZE && data.len() == 4 {
                    self.asq_size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                    self.asq_tail = 0;
                }
                self.dev.bar_write(0, *offset, data);
            }
            Op::Bar0Read { offset, len } => {
                let mut b = vec![0u8; (*len as usize).min(8)];
                self.dev.bar_read(0, *offset, &mut b);
            }
            Op::Bar2Write { offset, data } => self.dev.bar_write(2, *offset, data),
            Op::Bar2Read { offset, len } => {
                let mut b = vec![0u8; (*len as usize).min(8)];
                self.dev.bar_read(2, *offset, &mut b);
            }
            Op::ConsumeCompletions => {
                let tail = self.read32(REG_ACQ_TAIL);
                self.write32(REG_ACQ_HEAD, tail);
            }
            Op::Doorbell { offset, value } => {
                let off = 0x1000 + (offset % 0xF000) / 4 * 4;
                self.write32(off, *value);
            }
            Op::Poll { advance_us } => {
                self.now += Duration::from_micros(u64::from(*advance_us));
                self.dev.poll(self.now);
            }
            _ => {}
        }
    }

    /// The standard bring-up; returns the rings it set up.
    fn bring_up(&mut self, asq_size: u32, acq_size: u32) -> RingTrack {
        place_bars(&mut self.dev);
        self.check_bars_untouched(&"the BAR placement of a bring-up");
        self.dev
            .config_write(CFG_COMMAND, &CMD_MEM_BM.to_le_bytes());
        self.dev
            .config_write(CFG_MSIX_CTRL, &MSIX_ENABLE.to_le_bytes());
        for v in 0..16u64 {
            // Quadword writes (address; data and vector control, unmasked).
            let e = v * 16;
            self.dev.bar_write(2, e, &0xFEE0_0000u64.to_le_bytes());
            self.dev.bar_write(2, e + 8, &(0x20 + v).to_le_bytes());
        }
        self.write32(REG_DEV_CTRL, 2);
        let asq = asq_size.clamp(2, 32).next_power_of_two();
        let acq = acq_size.clamp(2, 64).next_power_of_two();
        self.write_mem(ASQ_AT, &[0u8; 0x2000]);
        self.write_mem(ACQ_AT, &[0u8; 0x1000]);
        self.write32(REG_ASQ_BASE_LO, ASQ_AT as u32);
        self.write32(REG_ASQ_BASE_HI, 0);
        self.write32(REG_ASQ_SIZE, asq);
        self.write32(REG_ACQ_BASE_LO, ACQ_AT as u32);
        self.write32(REG_ACQ_BASE_HI, 0);
        self.write32(REG_ACQ_SIZE, acq);
        self.asq_size = asq;
        self.asq_tail = 0;
        self.write32(REG_DEV_CTRL, 1);
        RingTrack {
            asq_size: asq,
            acq_size: acq,
            acq_next: 0,
            phase: true,
        }
    }

    // ---- driver-like submissions ------------------------------------------------

    fn new_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        0xC000 | (self.next_id & 0x3FFF)
    }

    fn scratch(&mut self) -> u64 {
        self.next_scratch = (self.next_scratch + 1) % SCRATCH_SLOTS;
        SCRATCH_AT + self.next_scratch * 64
    }

    /// Submits one command like a driver: releases the completions (the rig has
    /// read them), resyncs with `ASQ_TAIL`, writes the slot (after `writes`, guest
    /// memory the command names) and rings the doorbell. Returns false when the
    /// rig's admin queue is not usable (not set up, not READY, BAR0 not decoding,
    /// ring full).
    fn submit(&mut self, op: &Op, cmd: &Cmd, writes: &[(u64, Vec<u8>)]) -> bool {
        self.submit_batch(op, std::slice::from_ref(cmd), writes) == 1
    }

    /// Submits `cmds` like a driver that queues several commands and rings the
    /// doorbell once per batch (as many as the submission ring has room for and
    /// the completion ring can take); returns false when the admin queue became
    /// unusable before every command was submitted.
    fn submit_all(&mut self, op: &Op, cmds: &[Cmd]) -> bool {
        let mut rest = cmds;
        while !rest.is_empty() {
            let n = self.submit_batch(op, rest, &[]);
            if n == 0 {
                return false;
            }
            rest = &rest[n..];
        }
        true
    }

    /// Submits the first of `cmds` that fit (see [`Rig::submit_all`]) with one
    /// `ASQ_TAIL` write, after writing `writes`; returns how many it submitted (0
    /// when the rig's admin queue is not usable).
    fn submit_batch(&mut self, op: &Op, cmds: &[Cmd], writes: &[(u64, Vec<u8>)]) -> usize {
        let Some(ring) = self.ring else { return 0 };
        if self.dev.dev_status() & STATUS_READY == 0 || self.read32(REG_VERSION) != VERSION_VALUE {
            return 0;
        }
        let (acq_head, acq_tail) = (self.read32(REG_ACQ_HEAD), self.read32(REG_ACQ_TAIL));
        if acq_head != acq_tail {
            self.device_step(op, |r| r.write32(REG_ACQ_HEAD, acq_tail));
            if self.dev.dev_status() & STATUS_READY == 0 {
                return 0;
            }
        }
        let (head, tail) = (self.read32(REG_ASQ_HEAD), self.read32(REG_ASQ_TAIL));
        let size = ring.asq_size;
        if tail >= size || (tail + 1) % size == head {
            return 0;
        }
        // Free submission slots (a head outside the ring leaves the one slot the
        // check above proved free); the completion ring, just emptied, takes
        // `acq_size - 1` completions.
        let room = if head < size {
            (head + size - tail - 1) % size
        } else {
            1
        };
        let n = cmds
            .len()
            .min(room as usize)
            .min(ring.acq_size as usize - 1);
        for (addr, data) in writes {
            self.write_mem(*addr, data);
        }
        let mut slot = tail;
        for cmd in &cmds[..n] {
            if let Some(addr) = query_buffer(cmd) {
                self.write_mem(addr, &[0u8; 64]);
                self.pending_bufs.push((slot, addr));
            }
            self.write_mem(ASQ_AT + u64::from(slot) * 64, &cmd.to_bytes());
            slot = (slot + 1) % size;
        }
        self.asq_size = size;
        self.asq_tail = slot;
        self.device_step(op, |r| r.write32(REG_ASQ_TAIL, slot));
        self.pending_bufs.clear();
        n
    }

    /// A ring (or buffer) of `bytes` in free arena space, aligned to `align`.
    fn free_ring(sel: u32, bytes: u64, align: u64) -> u64 {
        let span = (FREE_END - FREE_AT).saturating_sub(bytes).max(align);
        FREE_AT + (u64::from(sel) * align) % span / align * align
    }

    fn verb(&mut self, op: &Op, kind: u8, a: u16, b: u16, c: u32) {
        if let Some((cmd, writes)) = self.build_verb(kind, a, b, c) {
            self.submit(op, &cmd, &writes);
        }
    }

    fn build_verb(&mut self, kind: u8, a: u16, b: u16, c: u32) -> Option<(Cmd, Writes)> {
        let id = self.new_id();
        let buf = self.scratch();
        let m = &self.model;
        let mut writes = Vec::new();
        let opcode = match kind % 20 {
            0 | 1 => opc::CREATE_PD,
            2 => opc::DESTROY_PD,
            3 => opc::CREATE_CQ,
            4 => opc::DESTROY_CQ,
            5 | 6 => opc::CREATE_QP,
            7..=9 => opc::MODIFY_QP,
            10 => opc::QUERY_QP,
            11 => opc::DESTROY_QP,
            12 => opc::REG_MR,
            13 => opc::ALLOC_FR_MR,
            14 => opc::DEREG_MR,
            15 => opc::QUERY_MR,
            16 => {
                if b & 1 == 0 {
                    opc::CREATE_TXQ
                } else {
                    opc::CREATE_RXQ
                }
            }
            17 => {
                if b & 1 == 0 {
                    opc::DESTROY_TXQ
                } else {
                    opc::DESTROY_RXQ
                }
            }
            18 => opc::QUERY_DEVICE,
            _ => match a % 8 {
                0 if b.is_multiple_of(4) => opc::RESET_FUNCTION,
                0 => opc::NOP,
                1 => opc::SET_MTU,
                2 => opc::SET_MAC,
                3 => opc::SET_RX_FILTER,
                4 => opc::SET_PORT_ADDR,
                5 => opc::QUERY_CAPS,
                6 => opc::MODIFY_CQ,
                _ => opc::RESIZE_CQ,
            },
        };
        // Mostly build up what the command needs first (a driver creates a PD and
        // CQs before a QP), so scripts reach deep object graphs.
        let opcode = if a & 3 == 0 {
            opcode
        } else {
            let none = |k: Kind| m.live(k).is_empty();
            let needs_qp = [opc::MODIFY_QP, opc::QUERY_QP, opc::DESTROY_QP].contains(&opcode);
            let needs_mr = [opc::DEREG_MR, opc::QUERY_MR].contains(&opcode);
            let opcode = match opcode {
                _ if needs_qp && none(Kind::Qp) => opc::CREATE_QP,
                _ if needs_mr && none(Kind::Mr) => opc::REG_MR,
                opc::DESTROY_PD if none(Kind::Pd) => opc::CREATE_PD,
                opc::DESTROY_CQ | opc::MODIFY_CQ | opc::RESIZE_CQ if none(Kind::Cq) => {
                    opc::CREATE_CQ
                }
                o => o,
            };
            match opcode {
                opc::CREATE_QP | opc::REG_MR | opc::ALLOC_FR_MR if none(Kind::Pd) => opc::CREATE_PD,
                opc::CREATE_QP if none(Kind::Cq) => opc::CREATE_CQ,
                o => o,
            }
        };
        let mut cmd = Cmd::new(opcode, id);
        let odd = c >> 28 == 0xF; // now and then a bad value
        match opcode {
            opc::DESTROY_PD => {
                cmd.put32(0, m.pick(Kind::Pd, a));
            }
            opc::CREATE_CQ | opc::RESIZE_CQ => {
                let entries = if odd { 3 } else { 2u32 << (c % 6) };
                let base = Self::free_ring(c >> 8, u64::from(entries) * 32, 32);
                if opcode == opc::CREATE_CQ {
                    let vector = if b % 16 == 15 { 16 } else { b % 16 };
                    cmd.put64(0, base)
                        .put32(8, entries)
                        .put16(12, vector)
                        .put16(14, b >> 4)
                        .put32(16, c >> 12);
                } else {
                    cmd.put32(0, m.pick(Kind::Cq, b))
                        .put64(8, base)
                        .put32(16, entries);
                }
            }
            opc::DESTROY_CQ => {
                cmd.put32(0, m.pick(Kind::Cq, a));
            }
            opc::MODIFY_CQ => {
                cmd.put32(0, m.pick(Kind::Cq, b))
                    .put16(4, c as u16)
                    .put32(8, c >> 16);
            }
            opc::CREATE_QP => {
                let scq = m.pick(Kind::Cq, b);
                let rcq = if c & 1 == 1 {
                    scq
                } else {
                    m.pick(Kind::Cq, (c >> 16) as u16)
                };
                let sq = if odd { 0 } else { 2u32 << ((c >> 1) % 5) };
                let rq = if c & 0x40 != 0 {
                    0
                } else {
                    2u32 << ((c >> 3) % 4)
                };
                cmd.put32(0, m.pick(Kind::Pd, a))
                    .put32(4, scq)
                    .put32(8, rcq)
                    .put32(12, sq)
                    .put32(16, rq)
                    .put64(20, Self::free_ring(c >> 7, u64::from(sq) * 128, 128))
                    .put64(28, Self::free_ring(c >> 13, u64::from(rq) * 128, 128));
                cmd.o[36] = ((c >> 8) % 7) as u8;
                cmd.o[37] = ((c >> 11) % 7) as u8;
                cmd.put16(38, ((c >> 14) % 97) as u16);
                cmd.o[41] = ((c >> 24) & 1) as u8;
            }
            opc::MODIFY_QP => {
                let qpn = m.pick(Kind::Qp, a);
                let from = m.qp(qpn).map_or(qps::RESET, |q| q.state);
                build_modify(&mut cmd, qpn, from, b, c);
            }
            opc::QUERY_QP => {
                cmd.put32(0, m.pick(Kind::Qp, a)).put64(8, buf);
            }
            opc::DESTROY_QP => {
                cmd.put32(0, m.pick(Kind::Qp, a));
            }
            opc::REG_MR => {
                let shift: u8 = if c & 0x100 != 0 { 13 } else { 12 };
                let page = 1u64 << shift;
                let n = 1 + u64::from(c % 4);
                let fbo = u64::from((c >> 4) % 2048);
                let len = n * page - fbo - u64::from((c >> 16) % 256);
                let access = [0u32, 1, 3, 5, 7, 9, 0xF, 4][((c >> 24) % 8) as usize];
                let count = if odd { n + 1 } else { n };
                let mut list = Vec::new();
                for i in 0..count {
                    let p = FREE_AT + ((u64::from(b) + i) * page) % (FREE_END - FREE_AT - page);
                    list.extend_from_slice(&(p / page * page).to_le_bytes());
                }
                writes.push((PAGE_LIST_AT, list));
                cmd.put32(0, m.pick(Kind::Pd, a))
                    .put32(4, access)
                    .put64(8, u64::from(b) << 12)
                    .put64(16, len)
                    .put64(24, PAGE_LIST_AT)
                    .put32(32, count as u32)
                    .put32(36, fbo as u32);
                cmd.o[40] = shift;
                cmd.o[41] = (c >> 8) as u8;
            }
            opc::ALLOC_FR_MR => {
                let max = [1u32, 4, 16, 64, 262_144, 0, 262_145, 2][(c % 8) as usize];
                cmd.put32(0, m.pick(Kind::Pd, a)).put32(4, max);
                cmd.o[8] = (c >> 8) as u8;
            }
            opc::DEREG_MR => {
                cmd.put32(0, m.pick(Kind::Mr, a));
            }
            opc::QUERY_MR => {
                cmd.put32(0, m.pick(Kind::Mr, a)).put64(8, buf);
            }
            opc::CREATE_TXQ | opc::CREATE_RXQ => {
                let size = 2u32 << (c % 6);
                cmd.put64(0, Self::free_ring(c >> 8, u64::from(size) * 16, 16))
                    .put32(8, size)
                    .put16(12, (b >> 1) % 17)
                    .put16(14, a % 9);
            }
            opc::DESTROY_TXQ | opc::DESTROY_RXQ => {
                let rx = opcode == opc::DESTROY_RXQ;
                let live: Vec<u32> = (0..8u32).filter(|&q| m.eth_queue(rx, q as usize)).collect();
                let q = if live.is_empty() || c & 7 == 0 {
                    u32::from(a % 9)
                } else {
                    live[(c >> 3) as usize % live.len()]
                };
                cmd.put32(0, q);
            }
            opc::QUERY_DEVICE => {
                cmd.put64(0, buf).put32(8, 64 + (c % 3) * 32);
            }
            opc::QUERY_CAPS => {
                cmd.put64(0, buf);
            }
            opc::SET_MTU => {
                cmd.put32(0, 60 + c % 9000);
            }
            opc::SET_MAC | opc::SET_PORT_ADDR => {
                let first = if odd { 0x03 } else { 0x02 };
                cmd.o[..6].copy_from_slice(&[
                    first,
                    0x11,
                    0x22,
                    (c >> 8) as u8,
                    (c >> 16) as u8,
                    b as u8,
                ]);
                cmd.o[8..12].copy_from_slice(&[10, 77, (c >> 4) as u8, 1 + (b >> 8) as u8 % 250]);
            }
            opc::SET_RX_FILTER => {
                cmd.put32(0, c % 0x24);
            }
            _ => {}
        }
        Some((cmd, writes))
    }

    /// Queries live and dead handles through the admin queue; the completions are
    /// checked by the model like any other (with their output buffers).
    fn audit(&mut self, op: &Op, sel: u16) {
        if !self.model.exact() || self.ring.is_none() {
            return;
        }
        let mut cmds = Vec::new();
        let mut q = |opcode: u8, h: u32, rig: &mut Rig| {
            let id = rig.new_id();
            let buf = rig.scratch();
            let mut c = Cmd::new(opcode, id);
            c.put32(0, h).put64(8, buf);
            cmds.push(c);
        };
        let sel = usize::from(sel);
        for kind in [Kind::Qp, Kind::Mr] {
            let opcode = if kind == Kind::Qp {
                opc::QUERY_QP
            } else {
                opc::QUERY_MR
            };
            let live = self.model.live(kind);
            for i in 0..live.len().min(3) {
                q(opcode, live[(sel + i) % live.len()], self);
            }
            let dead = self.model.dead(kind);
            if !dead.is_empty() {
                q(opcode, dead[sel % dead.len()], self);
            }
        }
        let id = self.new_id();
        let buf = self.scratch();
        let mut dq = Cmd::new(opc::QUERY_DEVICE, id);
        dq.put64(0, buf).put32(8, 64);
        cmds.push(dq);
        // Objects still in use must refuse to go.
        let mut busy = Vec::new();
        for qpn in self.model.live(Kind::Qp) {
            if let Some(qp) = self.model.qp(qpn) {
                busy.push((opc::DESTROY_PD, qp.pdn));
                busy.push((opc::DESTROY_CQ, qp.send_cqn));
            }
        }
        for key in self.model.live(Kind::Mr) {
            if let Some(mr) = self.model.mr(key >> 8) {
                busy.push((opc::DESTROY_PD, mr.pdn));
            }
        }
        if !busy.is_empty() {
            let (opcode, h) = busy[sel % busy.len()];
            let id = self.new_id();
            let mut c = Cmd::new(opcode, id);
            c.put32(0, h);
            cmds.push(c);
        }
        self.submit_all(op, &cmds);
    }
}

impl Rig {
    fn fill_pds(&mut self, op: &Op, destroy: u16) {
        if !self.model.exact() || self.ring.is_none() {
            return;
        }
        let max = self.dev.verbs().limits().max_pd as usize;
        let missing = (max + 1).saturating_sub(self.model.live(Kind::Pd).len());
        let creates: Vec<Cmd> = (0..missing)
            .map(|_| Cmd::new(opc::CREATE_PD, self.new_id()))
            .collect();
        if !self.submit_all(op, &creates) {
            return;
        }
        // The PDs to destroy, picked one after the other from the unused ones left
        // (each destroy leaves the others unused), then destroyed in that order
        // in batches.
        let mut unused = self.model.unused_pds();
        let mut destroys = Vec::new();
        for i in 0..=u32::from(destroy % 8) {
            if unused.is_empty() {
                break;
            }
            let at = (u32::from(destroy).wrapping_mul(7919) + i * 104_729) as usize % unused.len();
            let mut c = Cmd::new(opc::DESTROY_PD, self.new_id());
            c.put32(0, unused.remove(at));
            destroys.push(c);
        }
        self.submit_all(op, &destroys);
    }
}

/// Copies the part of `data` (guest RAM at `addr`) that overlaps `record` (a copy of
/// guest RAM at `at`) into `record`.
fn copy_overlap(at: u64, record: &mut [u8], addr: u64, data: &[u8]) {
    let end = addr + data.len() as u64;
    let (lo, hi) = (addr.max(at), end.min(at + record.len() as u64));
    if lo < hi {
        record[(lo - at) as usize..(hi - at) as usize]
            .copy_from_slice(&data[(lo - addr) as usize..(hi - addr) as usize]);
    }
}

/// The 64-byte output buffer of a query command, if it has one.
fn query_buffer(c: &Cmd) -> Option<u64> {
    match c.opcode {
        opc::QUERY_QP | opc::QUERY_MR => Some(c.u64(8)),
        opc::QUERY_DEVICE => Some(c.u64(0)),
        _ => None,
    }
}

/// Fills a `MODIFY_QP` for QP `qpn` (model state `from`): the target state is
/// mostly the next one of a normal bring-up (RESET→INIT→RTR→RTS, RTS↔SQD, back to
/// RESET from ERR), with the required attributes and some optional ones; `c`
/// sometimes drops the STATE bit, flips an attribute bit or picks a random target.
fn build_modify(cmd: &mut Cmd, qpn: u32, from: u8, b: u16, c: u32) {
    use attr::*;
    let natural = match from {
        qps::RESET => qps::INIT,
        qps::INIT => qps::RTR,
        qps::RTR => qps::RTS,
        qps::RTS => qps::SQD,
        qps::SQD => qps::RTS,
        _ => qps::RESET,
    };
    let to = match b % 8 {
        1 => qps::ERR,
        2 => qps::RESET,
        7 => (c % 8) as u8,
        _ => natural,
    };
    let (req, opt) = model::transition(from, to).unwrap_or((0, 0));
    let mut mask = STATE | req | (opt & (c >> 4));
    match c >> 28 {
        0xF => mask &= !STATE,
        0xE => mask ^= 1 << ((c >> 20) % 12),
        _ => {}
    }
    cmd.put32(0, qpn).put32(4, mask);
    cmd.o[8] = to;
    cmd.o[9] = if c >> 28 == 0xD { 6 } else { 1 + (c % 5) as u8 };
    cmd.o[10] = ((c >> 3) % 8) as u8;
    cmd.o[11] = ((c >> 6) % 8) as u8;
    cmd.o[12] = ((c >> 9) % 32) as u8;
    cmd.o[13] = (((c >> 14) & 3) << 1) as u8;
    cmd.o[14] = ((c >> 16) % 32) as u8;
    cmd.put32(16, (c >> 4) & 0xFF_FFFF)
        .put32(20, c & 0xFF_FFFF)
        .put32(24, (c >> 8) & 0xFF_FFFF);
    cmd.o[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    cmd.o[36..40].copy_from_slice(&[10, 77, 0, 2]);
}

/// The action numbered `i` (modulo the number of actions), with `param` filling its
/// fields. Delays are kept short so scripts move on.
pub fn fault_action(i: u8, param: u32) -> FaultAction {
    match i % 13 {
        0 => FaultAction::DmaError,
        1 => FaultAction::Corrupt {
            offset: param,
            mask: (param >> 24) as u8,
        },
        2 => FaultAction::Drop,
        3 => FaultAction::Delay {
            micros: u64::from(param % 5000),
        },
        4 => FaultAction::Duplicate,
        5 => FaultAction::Spurious,
        6 => FaultAction::Reorder,
        7 => FaultAction::NeverComplete,
        8 => FaultAction::FailStatus {
            status: param as u16,
        },
        9 => FaultAction::CqeError {
            status: param as u8,
        },
        10 => FaultAction::LinkDown,
        11 => FaultAction::LinkUp,
        _ => FaultAction::Fatal,
    }
}

/// The device limits of the rig: the default limits with object tables small
/// enough that a script fills each of them in a few dozen commands (filling the
/// default 1,024-entry PD table took most of the fuzzer's time), so the
/// table-full paths are reached often.
pub fn rig_limits() -> VerbsLimits {
    VerbsLimits {
        max_pd: 32,
        max_cq: 32,
        max_qp: 32,
        max_mr: 64,
        ..VerbsLimits::default()
    }
}

thread_local! {
    /// Guest memory of rigs that ended on this thread, reused by the next rig (a
    /// fresh mapping per fuzzer input cost page faults and an munmap every time).
    static SPARE_MEMORY: std::cell::RefCell<Vec<GuestMemoryMmap>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Guest memory for a new rig: the arena zeroed and the guard filled, from a
/// mapping an ended rig left on this thread or a new one.
fn take_memory() -> GuestMemoryMmap {
    let spare = SPARE_MEMORY.with(|s| s.borrow_mut().pop());
    let mem = match spare {
        Some(mem) => {
            fill(&mem, ARENA_BASE, ARENA_SIZE, 0);
            mem
        }
        None => GuestMemoryMmap::from_ranges(&[
            (GuestAddress(ARENA_BASE), ARENA_SIZE as usize),
            (GuestAddress(GUARD_BASE), GUARD_SIZE as usize),
        ])
        .expect("rig guest memory"),
    };
    fill(&mem, GUARD_BASE, GUARD_SIZE, GUARD_BYTE);
    mem
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The device keeps a handle on the memory until it is dropped right after
        // this; the next rig on this thread is only made after that.
        let mem = self.mem.clone();
        SPARE_MEMORY.with(|s| s.borrow_mut().push(mem));
    }
}

/// Guest RAM `[addr, addr + len)` as a slice of the memory region holding it (the
/// arena or the guard: every range the rig itself reads or writes lies inside one
/// of them). The rig's own RAM accesses go through this, one `memcpy` each, rather
/// than through the guest memory's walk over its regions, whose instrumented
/// comparisons showed in profiles of the fuzz target.
fn ram(mem: &GuestMemoryMmap, addr: u64, len: usize) -> VolatileSlice<'_> {
    // Two regions, the arena first: no search needed.
    let region = mem
        .iter()
        .nth(usize::from(addr >= GUARD_BASE))
        .expect("the rig's two RAM regions");
    region
        .get_slice(MemoryRegionAddress(addr - region.start_addr().0), len)
        .expect("a range inside one region of the rig's RAM")
}

/// Fills `len` bytes of guest RAM at `at` (inside one region) with `byte`.
fn fill(mem: &GuestMemoryMmap, at: u64, len: u64, byte: u8) {
    let chunk = [byte; 4096];
    let region = ram(mem, at, len as usize);
    let mut done = 0;
    while done < region.len() {
        let n = (region.len() - done).min(chunk.len());
        region
            .subslice(done, n)
            .expect("inside the region")
            .copy_from(&chunk[..n]);
        done += n;
    }
}

/// The first address in `[at, at + len)` whose byte is not `byte`.
fn first_difference(mem: &GuestMemoryMmap, at: u64, len: u64, byte: u8) -> Option<u64> {
    const CHUNK: usize = 4096;
    let pattern = [byte; CHUNK];
    let mut chunk = [0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        let buf = &mut chunk[..n];
        ram(mem, at + done, n).copy_to(buf);
        // Slice equality is one memcmp (not traced by the fuzzer's comparison hooks).
        if *buf != pattern[..n] {
            let i = buf
                .iter()
                .position(|&b| b != byte)
                .expect("a differing byte");
            return Some(at + done + i as u64);
        }
        done += n as u64;
    }
    None
}

/// Programs BAR0 and BAR2 (64-bit memory BARs) at `BAR0_AT` and `BAR2_AT`; a BAR
/// dword that already holds its value is not written again (such a write changes
/// nothing).
fn place_bars(dev: &mut Rnic) {
    for (offset, value) in [
        (CFG_BAR0, BAR0_AT as u32 | 0x4),
        (CFG_BAR0 + 4, 0),
        (CFG_BAR2, BAR2_AT as u32 | 0x4),
        (CFG_BAR2 + 4, 0),
    ] {
        if dev.config_read(offset) != value {
            dev.config_write(offset, &value.to_le_bytes());
        }
    }
}

/// Reads a script from fuzzer bytes: a little interpreter that never fails (it
/// stops at the end of the input).
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.u8() as usize).min(max);
        (0..n).map(|_| self.u8()).collect()
    }

    fn width_data(&mut self) -> Vec<u8> {
        let n = match self.u8() % 8 {
            0 => 1,
            1 => 2,
            2 => 8,
            _ => 4,
        };
        (0..n).map(|_| self.u8()).collect()
    }

    /// An operand word: mostly addresses the device may legitimately use.
    fn operand_word(&mut self) -> u64 {
        match self.u8() % 6 {
            0 => FREE_AT + (u64::from(self.u16()) * 64) % (FREE_END - FREE_AT),
            1 => u64::from(self.u8()),
            2 => u64::from(self.u16()),
            3 => BAR0_AT + u64::from(self.u16()) % 0x1_2000,
            _ => self.u64(),
        }
    }

    /// The next op, or `None` at the end of the input.
    pub fn next_op(&mut self) -> Option<Op> {
        if self.done() {
            return None;
        }
        Some(match self.u8() % 20 {
            0 => Op::ConfigWrite {
                offset: self.u16() % 0x1010,
                data: self.width_data(),
            },
            1 => Op::ConfigRead { offset: self.u16() },
            2 | 3 => {
                let sel = self.u8();
                let offset = if sel < 200 {
                    INTERESTING_REGS[sel as usize % INTERESTING_REGS.len()]
                } else {
                    u64::from(self.u16())
                };
                let data = if sel < 200 {
                    self.u32().to_le_bytes().to_vec()
                } else {
                    self.width_data()
                };
                Op::Bar0Write { offset, data }
            }
            4 => Op::Bar0Read {
                offset: u64::from(self.u16()),
                len: self.u8() % 9,
            },
            5 => Op::Bar2Write {
                offset: u64::from(self.u16() % 0x2100),
                data: self.width_data(),
            },
            6 => Op::Bar2Read {
                offset: u64::from(self.u16() % 0x2100),
                len: self.u8() % 9,
            },
            7 => Op::Mem {
                offset: FREE_AT + u64::from(self.u32()) % (FREE_END - FREE_AT),
                data: self.bytes(255),
            },
            8 | 9 => {
                let opcode = self.u8() % 0x50;
                let flags = if self.u8() < 240 { 0 } else { self.u8() };
                let id = self.u16();
                let mut operands = [0u8; 56];
                for w in 0..7 {
                    let v = self.operand_word();
                    operands[w * 8..w * 8 + 8].copy_from_slice(&v.to_le_bytes());
                }
                Op::Admin {
                    opcode,
                    flags,
                    id,
                    operands,
                }
            }
            10 => Op::ConsumeCompletions,
            11 => Op::Doorbell {
                offset: u64::from(self.u16()),
                value: self.u32(),
            },
            12 => Op::Poll {
                advance_us: self.u32() % 2_000_000,
            },
            13 => Op::Fault {
                site: self.u8(),
                action: self.u8(),
                param: self.u32(),
                trigger: self.u8(),
                n: self.u32(),
            },
            14 => Op::ClearFaults,
            15 => Op::BringUp {
                asq_size: u32::from(self.u8()),
                acq_size: u32::from(self.u8()),
            },
            16..=18 => Op::Verb {
                kind: self.u8(),
                a: self.u16(),
                b: self.u16(),
                c: self.u32(),
            },
            _ => {
                let sel = self.u16();
                if sel < 0x400 {
                    Op::FillPds { destroy: sel }
                } else {
                    Op::Audit { sel }
                }
            }
        })
    }
}

/// Runs a whole fuzzer input: a bring-up, then the decoded ops.
pub fn run_bytes(data: &[u8]) -> Rig {
    let mut rig = Rig::new();
    rig.apply(&Op::BringUp {
        asq_size: 16,
        acq_size: 16,
    });
    let mut dec = Decoder::new(data);
    let mut budget = 4096;
    while let Some(op) = dec.next_op() {
        rig.apply(&op);
        budget -= 1;
        if budget == 0 {
            break;
        }
    }
    rig.finish();
    rig
}

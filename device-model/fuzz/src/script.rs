//! A scripted "driver" for the RNIC, shared by the cargo-fuzz target
//! (`fuzz_targets/mmio.rs`) and the property tests (`tests/prop_device.rs`, which
//! includes this file with `#[path]`).
//!
//! A script is a list of [`Op`]s: configuration-space and BAR accesses, admin
//! commands placed in the admin submission ring, doorbell writes, writes of random
//! bytes to guest memory and device-time advances. [`Rig::apply`] runs one op and
//! then checks the device's safety invariants; a violation panics with a message
//! (that is what the fuzzer and proptest catch).
//!
//! Guest memory layout of the rig:
//!
//! | range | what |
//! | --- | --- |
//! | `ARENA_BASE .. +ARENA_SIZE` | RAM the script may fill and point the device at (rings, buffers, WQEs) |
//! | `BAR0_AT .. +64 KiB`, `BAR2_AT .. +8 KiB` | inside the arena on purpose: the device's BARs are placed over RAM, so a DMA into its own BARs would show up as changed RAM bytes |
//! | `GUARD_BASE .. +GUARD_SIZE` | RAM no script ever names: filled with a pattern that must never change |

use std::sync::Arc;
use std::time::Duration;

use rnic_device::fault::{FaultAction, FaultRule, FaultSite, Trigger};
use rnic_device::irq::SinkEvent;
use rnic_device::{PciFunction, RecordingSink, Rnic, RnicConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Start of the arena.
pub const ARENA_BASE: u64 = 0; // `snapshot_bars` relies on this being 0
/// Size of the arena.
pub const ARENA_SIZE: u64 = 0x4_0000;
/// Where the rig places BAR0 (inside the arena).
pub const BAR0_AT: u64 = 0x2_0000;
/// Where the rig places BAR2 (inside the arena).
pub const BAR2_AT: u64 = 0x3_0000;
/// Admin submission ring used by [`Op::BringUp`].
pub const ASQ_AT: u64 = 0x1000;
/// Admin completion ring used by [`Op::BringUp`].
pub const ACQ_AT: u64 = 0x3000;
/// Free arena space for buffers and rings named by admin operands.
pub const FREE_AT: u64 = 0x4000;
/// End of the free arena space (BAR0 starts here).
pub const FREE_END: u64 = BAR0_AT;
/// Guard RAM: far away from anything a script names.
pub const GUARD_BASE: u64 = 0x0000_7000_0000_0000;
/// Size of the guard RAM.
pub const GUARD_SIZE: u64 = 0x1_0000;
/// Pattern byte of the guard RAM.
pub const GUARD_BYTE: u8 = 0xA5;

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
}

/// The device plus the guest around it.
pub struct Rig {
    pub dev: Rnic,
    pub sink: Arc<RecordingSink>,
    pub mem: GuestMemoryMmap,
    pub now: Duration,
    asq_size: u32,
    asq_tail: u32,
    /// Scratch copy of RAM under the BARs, compared after each device access.
    shadow: Vec<(u64, Vec<u8>)>,
    /// Ops applied so far.
    pub steps: u64,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A powered-on device with its BARs placed over arena RAM (memory decoding off).
    pub fn new() -> Rig {
        let mem = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(ARENA_BASE), ARENA_SIZE as usize),
            (GuestAddress(GUARD_BASE), GUARD_SIZE as usize),
        ])
        .expect("rig guest memory");
        mem.write_slice(
            &vec![GUARD_BYTE; GUARD_SIZE as usize],
            GuestAddress(GUARD_BASE),
        )
        .expect("guard fill");
        let sink = Arc::new(RecordingSink::new());
        let mut dev = Rnic::new(RnicConfig::default(), mem.clone(), sink.clone());
        place_bars(&mut dev);
        Rig {
            dev,
            sink,
            mem,
            now: Duration::ZERO,
            asq_size: 0,
            asq_tail: 0,
            shadow: Vec::new(),
            steps: 0,
        }
    }

    fn snapshot_bars(&mut self) {
        self.shadow.clear();
        for r in self.dev.bar_regions() {
            // The arena starts at 0, so only its end clips a region.
            let start = r.address;
            let end = r
                .address
                .saturating_add(r.size)
                .min(ARENA_BASE + ARENA_SIZE);
            if start < end {
                let mut buf = vec![0u8; (end - start) as usize];
                self.mem
                    .read_slice(&mut buf, GuestAddress(start))
                    .expect("arena read");
                self.shadow.push((start, buf));
            }
        }
    }

    fn check_bars_untouched(&self, op: &Op) {
        for (start, before) in &self.shadow {
            let mut now = vec![0u8; before.len()];
            self.mem
                .read_slice(&mut now, GuestAddress(*start))
                .expect("arena read");
            if let Some(i) = now.iter().zip(before).position(|(a, b)| a != b) {
                panic!(
                    "device wrote guest RAM under its own BAR at {:#x} during {op:?}",
                    start + i as u64
                );
            }
        }
    }

    /// Checks the guard RAM (no script ever writes it, so one check at the end of a
    /// script covers every step). Call after the last op.
    pub fn finish(&self) {
        self.check_guard(&format!("the script ({} steps)", self.steps));
    }

    fn check_guard(&self, op: &dyn std::fmt::Debug) {
        let mut buf = vec![0u8; GUARD_SIZE as usize];
        self.mem
            .read_slice(&mut buf, GuestAddress(GUARD_BASE))
            .expect("guard read");
        if let Some(i) = buf.iter().position(|&b| b != GUARD_BYTE) {
            panic!(
                "device wrote guard RAM at {:#x} during {op:?}",
                GUARD_BASE + i as u64
            );
        }
    }

    fn check_state(&mut self, op: &Op) {
        let st = self.dev.dev_status();
        if st & STATUS_READY != 0 {
            assert_eq!(
                st & STATUS_FATAL,
                0,
                "READY and FATAL together after {op:?}"
            );
        }
        let stats = self.dev.stats();
        let f = &stats.faults;
        assert_eq!(
            f.total_hits,
            f.sites.iter().map(|x| x.hits).sum::<u64>(),
            "fault hits per site do not add up after {op:?}"
        );
        assert!(
            f.rules.iter().all(|r| r.hits <= r.events),
            "a rule hit more often than it saw events"
        );
        let v = &stats.verbs;
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

    /// Runs one op, then checks the invariants (panics on a violation).
    pub fn apply(&mut self, op: &Op) {
        self.steps += 1;
        let device_access = !matches!(op, Op::Mem { .. });
        if device_access {
            self.snapshot_bars();
        }
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
            Op::Mem { offset, data } => {
                let off = offset % ARENA_SIZE;
                let n = data.len().min((ARENA_SIZE - off) as usize);
                self.mem
                    .write_slice(&data[..n], GuestAddress(ARENA_BASE + off))
                    .expect("arena write");
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
                        self.mem
                            .write_slice(&e, GuestAddress(slot))
                            .expect("asq write");
                    }
                    self.asq_tail = (self.asq_tail + 1) % size;
                    self.snapshot_bars();
                    self.write32(REG_ASQ_TAIL, self.asq_tail);
                }
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
            Op::BringUp { asq_size, acq_size } => self.bring_up(*asq_size, *acq_size),
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
                let rule =
                    FaultRule::new(site, fault_action(*action, *param)).with_trigger(trigger);
                let _ = self.dev.faults_mut().add_rule(rule);
            }
            Op::ClearFaults => self.dev.faults_mut().clear(),
        }
        if device_access {
            self.check_bars_untouched(op);
        }
        self.check_state(op);
    }

    fn bring_up(&mut self, asq_size: u32, acq_size: u32) {
        place_bars(&mut self.dev);
        self.dev
            .config_write(CFG_COMMAND, &CMD_MEM_BM.to_le_bytes());
        self.dev
            .config_write(CFG_MSIX_CTRL, &MSIX_ENABLE.to_le_bytes());
        for v in 0..16u64 {
            let e = v * 16;
            self.dev.bar_write(2, e, &0xFEE0_0000u32.to_le_bytes());
            self.dev.bar_write(2, e + 4, &0u32.to_le_bytes());
            self.dev
                .bar_write(2, e + 8, &(0x20 + v as u32).to_le_bytes());
            self.dev.bar_write(2, e + 12, &0u32.to_le_bytes());
        }
        self.write32(REG_DEV_CTRL, 2);
        let asq = asq_size.clamp(2, 32).next_power_of_two();
        let acq = acq_size.clamp(2, 64).next_power_of_two();
        self.mem
            .write_slice(&[0u8; 0x2000], GuestAddress(ASQ_AT))
            .expect("ring clear");
        self.mem
            .write_slice(&[0u8; 0x1000], GuestAddress(ACQ_AT))
            .expect("ring clear");
        // The rig's own writes above are not device writes.
        self.snapshot_bars();
        self.write32(REG_ASQ_BASE_LO, ASQ_AT as u32);
        self.write32(REG_ASQ_BASE_HI, 0);
        self.write32(REG_ASQ_SIZE, asq);
        self.write32(REG_ACQ_BASE_LO, ACQ_AT as u32);
        self.write32(REG_ACQ_BASE_HI, 0);
        self.write32(REG_ACQ_SIZE, acq);
        self.asq_size = asq;
        self.asq_tail = 0;
        self.write32(REG_DEV_CTRL, 1);
    }
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

fn place_bars(dev: &mut Rnic) {
    dev.config_write(CFG_BAR0, &(BAR0_AT as u32 | 0x4).to_le_bytes());
    dev.config_write(CFG_BAR0 + 4, &0u32.to_le_bytes());
    dev.config_write(CFG_BAR2, &(BAR2_AT as u32 | 0x4).to_le_bytes());
    dev.config_write(CFG_BAR2 + 4, &0u32.to_le_bytes());
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
        Some(match self.u8() % 16 {
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
            _ => Op::BringUp {
                asq_size: u32::from(self.u8()),
                acq_size: u32::from(self.u8()),
            },
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

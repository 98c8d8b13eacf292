//! The 8254 programmable interval timer (ports `0x40..=0x43`) and the gate/speaker
//! register at port `0x61`, emulated in user space as a clock a guest reads: counters
//! only, no interrupt (IRQ 0 is never raised; the guests here tick from the LAPIC
//! timer and read the PIT to calibrate the TSC).
//!
//! Why not KVM's in-kernel PIT: creating it costs little, but tearing it down
//! (`KVM_CREATE_PIT2`'s I/O bus devices and IRQ notifiers leave with SRCU grace
//! periods) added 10-16 ms to every run's exit on this host, about a third of a whole
//! no-RNIC boot, for a device the guest reads a few hundred times at most.
//!
//! What is modelled: control words (counter select, access mode low/high/low-then-
//! high, mode 0-5, the counter-latch command and the read-back command with count and
//! status latches), count loading, reads of the running count (latched or live),
//! each counter's OUT for its mode, and channel 2's gate and speaker-data bits at port
//! `0x61` (bit 5 reads OUT2, bit 4 the refresh toggle). Channels 0 and 1 have their
//! gates tied high. BCD counting is not supported: the count runs in binary and the
//! status reports the BCD bit as written.
//!
//! Time is a count of input clock ticks ([`PIT_HZ`]) passed in by the caller, so the
//! model is deterministic under test; [`Pit::ticks_since`] converts a host instant.

use std::time::Instant;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// The first of the counter and control ports (`0x40`, `0x41`, `0x42`, control `0x43`).
pub const PIT_BASE: u16 = 0x40;
/// Ports from [`PIT_BASE`]: three counters and the control word.
pub const PIT_PORT_COUNT: u16 = 4;
/// The gate/speaker register (NMI status and control port B on a PC).
pub const PORT_B: u16 = 0x61;

/// How a counter's 16-bit value travels through its 8-bit port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Low,
    High,
    LowHigh,
}

impl Access {
    fn from_bits(bits: u8) -> Option<Access> {
        match bits & 3 {
            1 => Some(Access::Low),
            2 => Some(Access::High),
            3 => Some(Access::LowHigh),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Access::Low => 1,
            Access::High => 2,
            Access::LowHigh => 3,
        }
    }
}

/// One of the three counters.
#[derive(Clone, Debug)]
struct Counter {
    mode: u8,
    bcd: bool,
    access: Access,
    /// The count written (0 means 65,536), once complete.
    reload: Option<u32>,
    /// Low byte of a low-then-high write in progress.
    pending_low: Option<u8>,
    /// Next byte of a low-then-high read is the high one.
    read_high_next: bool,
    /// Latched count (counter-latch or read-back command), read before the live count.
    latched_count: Option<u16>,
    /// Whether a latched count's low byte has been read (low-then-high access).
    latched_low_read: bool,
    /// Latched status byte (read-back command), read before any count.
    latched_status: Option<u8>,
    /// Ticks counted since the count was loaded (or triggered), up to `since`.
    counted: u64,
    /// Tick at which the counter (re)started counting with the gate high; None while
    /// it does not count (no count, gate low, or waiting for a gate trigger).
    since: Option<u64>,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            mode: 0,
            bcd: false,
            access: Access::LowHigh,
            reload: None,
            pending_low: None,
            read_high_next: false,
            latched_count: None,
            latched_low_read: false,
            latched_status: None,
            counted: 0,
            since: None,
        }
    }

    /// Modes 1 and 5 start counting at a rising edge of the gate, not at the load.
    fn gate_triggered(&self) -> bool {
        matches!(self.mode, 1 | 5)
    }

    /// Modes 2 and 3 reload at terminal count and run forever.
    fn periodic(&self) -> bool {
        matches!(self.mode, 2 | 3)
    }

    fn elapsed(&self, now: u64) -> u64 {
        self.counted + self.since.map_or(0, |s| now.saturating_sub(s))
    }

    /// The count the counter element holds at tick `now`.
    fn count(&self, now: u64) -> u16 {
        let Some(n) = self.reload else { return 0 };
        let n = u64::from(n);
        let e = self.elapsed(now);
        let value = if self.periodic() {
            if self.mode == 3 {
                // Square wave: the count steps by two, twice per period.
                let half = (n / 2).max(1);
                n - 2 * (e % half)
            } else {
                n - e % n
            }
        } else {
            // One-shot modes: down to zero, then the counter wraps and goes on.
            (n + 0x1_0000 - e % 0x1_0000) % 0x1_0000
        };
        value as u16
    }

    /// The OUT pin at tick `now`.
    fn out(&self, now: u64) -> bool {
        let Some(n) = self.reload else {
            // After a control word: mode 0 drives OUT low, the others high.
            return self.mode != 0;
        };
        let n = u64::from(n);
        let counting = self.since.is_some() || self.counted > 0;
        let e = self.elapsed(now);
        match self.mode {
            0 => e >= n,
            1 => !counting || e >= n,
            2 => !counting || e % n != n - 1,
            3 => !counting || e % n < n.div_ceil(2),
            // Modes 4 and 5: one low pulse at terminal count.
            _ => !counting || e != n,
        }
    }

    fn status(&self, now: u64) -> u8 {
        (u8::from(self.out(now)) << 7)
            | (u8::from(self.reload.is_none()) << 6)
            | (self.access.bits() << 4)
            | (self.mode << 1)
            | u8::from(self.bcd)
    }

    fn latch_count(&mut self, now: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.count(now));
            self.latched_low_read = false;
        }
    }

    fn program(&mut self, access: Access, mode: u8, bcd: bool) {
        *self = Counter {
            // Modes 6 and 7 are aliases of 2 and 3.
            mode: if mode >= 6 { mode - 4 } else { mode },
            bcd,
            access,
            ..Counter::new()
        };
    }

    fn load(&mut self, value: u16, gate: bool, now: u64) {
        self.reload = Some(if value == 0 {
            0x1_0000
        } else {
            u32::from(value)
        });
        self.counted = 0;
        self.since = (gate && !self.gate_triggered()).then_some(now);
    }

    fn write(&mut self, byte: u8, gate: bool, now: u64) {
        match self.access {
            Access::Low => self.load(u16::from(byte), gate, now),
            Access::High => self.load(u16::from(byte) << 8, gate, now),
            Access::LowHigh => match self.pending_low.take() {
                None => self.pending_low = Some(byte),
                Some(low) => self.load(u16::from(low) | u16::from(byte) << 8, gate, now),
            },
        }
    }

    fn read(&mut self, now: u64) -> u8 {
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        if let Some(latched) = self.latched_count {
            let [low, high] = latched.to_le_bytes();
            return match self.access {
                Access::Low => {
                    self.latched_count = None;
                    low
                }
                Access::High => {
                    self.latched_count = None;
                    high
                }
                Access::LowHigh if !self.latched_low_read => {
                    self.latched_low_read = true;
                    low
                }
                Access::LowHigh => {
                    self.latched_count = None;
                    high
                }
            };
        }
        let [low, high] = self.count(now).to_le_bytes();
        match self.access {
            Access::Low => low,
            Access::High => high,
            Access::LowHigh => {
                self.read_high_next = !self.read_high_next;
                if self.read_high_next {
                    low
                } else {
                    high
                }
            }
        }
    }

    /// Applies a gate level change at tick `now`.
    fn set_gate(&mut self, was: bool, gate: bool, now: u64) {
        if self.reload.is_none() || was == gate {
            return;
        }
        if self.gate_triggered() || self.periodic() {
            // A rising edge (re)starts the count; a falling one stops a periodic count.
            if gate {
                self.counted = 0;
                self.since = Some(now);
            } else if self.periodic() {
                self.counted = 0;
                self.since = None;
            }
            return;
        }
        // Modes 0 and 4: the gate pauses and resumes counting.
        if gate {
            self.since = Some(now);
        } else if let Some(s) = self.since.take() {
            self.counted += now.saturating_sub(s);
        }
    }
}

/// The three counters and port `0x61`'s gate and speaker bits.
#[derive(Clone, Debug)]
pub struct Pit {
    counters: [Counter; 3],
    /// Port 0x61 bit 0: channel 2's gate.
    gate2: bool,
    /// Port 0x61 bit 1: speaker data enable (stored, no sound).
    speaker: bool,
    /// When tick 0 was, for [`Pit::ticks_since`].
    epoch: Instant,
}

impl Default for Pit {
    fn default() -> Self {
        Pit::new()
    }
}

impl Pit {
    /// A PIT at power-on: no counts loaded, channel 2's gate low; tick 0 is now.
    pub fn new() -> Pit {
        Pit {
            counters: [Counter::new(), Counter::new(), Counter::new()],
            gate2: false,
            speaker: false,
            epoch: Instant::now(),
        }
    }

    /// Input clock ticks ([`PIT_HZ`]) from the PIT's creation to `now`.
    pub fn ticks_since(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.epoch).as_nanos();
        (ns * u128::from(PIT_HZ) / 1_000_000_000) as u64
    }

    /// Input clock ticks from the PIT's creation until this call.
    pub fn now(&self) -> u64 {
        self.ticks_since(Instant::now())
    }

    fn gate(&self, channel: usize) -> bool {
        channel != 2 || self.gate2
    }

    /// A guest byte write to `port` ([`PIT_BASE`]`..+4` or [`PORT_B`]) at tick `now`;
    /// other ports are ignored.
    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        match port {
            0x40..=0x42 => {
                let ch = usize::from(port - PIT_BASE);
                let gate = self.gate(ch);
                self.counters[ch].write(value, gate, now);
            }
            0x43 => self.control(value, now),
            PORT_B => {
                let was = self.gate2;
                self.gate2 = value & 1 != 0;
                self.speaker = value & 2 != 0;
                self.counters[2].set_gate(was, self.gate2, now);
            }
            _ => {}
        }
    }

    fn control(&mut self, value: u8, now: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches statuses, of the
            // counters whose bits 1-3 are set.
            for ch in 0..3 {
                if value & (2 << ch) == 0 {
                    continue;
                }
                if value & 0x20 == 0 {
                    self.counters[ch].latch_count(now);
                }
                if value & 0x10 == 0 && self.counters[ch].latched_status.is_none() {
                    let status = self.counters[ch].status(now);
                    self.counters[ch].latched_status = Some(status);
                }
            }
            return;
        }
        let ch = usize::from(select);
        match Access::from_bits(value >> 4) {
            None => self.counters[ch].latch_count(now),
            Some(access) => self.counters[ch].program(access, (value >> 1) & 7, value & 1 != 0),
        }
    }

    /// A guest byte read of `port` at tick `now`; other ports read all ones.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        match port {
            0x40..=0x42 => self.counters[usize::from(port - PIT_BASE)].read(now),
            // The control port is write-only.
            0x43 => 0xFF,
            PORT_B => {
                // The refresh request toggles every 15.085 us (18 input clock ticks).
                let refresh = (now / 18) & 1 == 1;
                u8::from(self.gate2)
                    | (u8::from(self.speaker) << 1)
                    | (u8::from(refresh) << 4)
                    | (u8::from(self.counters[2].out(now)) << 5)
            }
            _ => 0xFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latches channel 2 and reads its count, as a calibration loop does.
    fn latched(pit: &mut Pit, now: u64) -> u16 {
        pit.write(0x43, 0b1000_0000, now);
        let low = pit.read(0x42, now);
        let high = pit.read(0x42, now);
        u16::from_le_bytes([low, high])
    }

    #[test]
    fn channel_2_one_shot_counts_down_while_gated_and_raises_out() {
        let mut pit = Pit::new();
        // The NDK bench's calibration: gate on, speaker off, channel 2 mode 0, lo/hi.
        let b = pit.read(PORT_B, 0);
        pit.write(PORT_B, (b & !2) | 1, 0);
        pit.write(0x43, 0b1011_0000, 0);
        pit.write(0x42, 0xFF, 10);
        assert_eq!(pit.read(PORT_B, 10) & 0x20, 0, "OUT2 low while counting");
        pit.write(0x42, 0xFF, 10);
        assert_eq!(latched(&mut pit, 10), 0xFFFF);
        assert_eq!(latched(&mut pit, 1_010), 0xFFFF - 1_000);
        assert_eq!(pit.read(PORT_B, 1_010) & 0x21, 0x01, "gate on, OUT2 low");
        // At terminal count OUT2 goes high and the counter wraps on.
        assert_eq!(latched(&mut pit, 10 + 0xFFFF), 0);
        assert_eq!(pit.read(PORT_B, 10 + 0xFFFF) & 0x20, 0x20);
        assert_eq!(latched(&mut pit, 10 + 0xFFFF + 5), 0xFFFF - 4);
    }

    #[test]
    fn gate_low_pauses_mode_0() {
        let mut pit = Pit::new();
        pit.write(0x43, 0b1011_0000, 0);
        pit.write(0x42, 0x00, 0);
        pit.write(0x42, 0x10, 0);
        // Gate 2 is low at power-on: no counting yet.
        assert_eq!(latched(&mut pit, 500), 0x1000);
        pit.write(PORT_B, 1, 500);
        assert_eq!(latched(&mut pit, 600), 0x1000 - 100);
        pit.write(PORT_B, 0, 600);
        assert_eq!(latched(&mut pit, 900), 0x1000 - 100);
        pit.write(PORT_B, 1, 900);
        assert_eq!(latched(&mut pit, 950), 0x1000 - 150);
    }

    #[test]
    fn latch_holds_the_count_until_both_bytes_are_read() {
        let mut pit = Pit::new();
        pit.write(0x43, 0b0011_0100, 0); // channel 0, lo/hi, mode 2
        pit.write(0x40, 0x00, 0);
        pit.write(0x40, 0x01, 0); // 256, periodic
        pit.write(0x43, 0b0000_0000, 56); // latch channel 0
        assert_eq!(pit.read(0x40, 100), 200, "low byte of the count at tick 56");
        assert_eq!(pit.read(0x40, 120), 0, "high byte of the same latch");
        // Live reads follow the clock, and the period repeats.
        assert_eq!(pit.read(0x40, 256 + 10), 246);
        assert_eq!(pit.read(0x40, 256 + 10), 0);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let mut pit = Pit::new();
        pit.write(0x43, 0b0111_0010, 0); // channel 1, lo/hi, mode 1, binary
                                         // A mode 1 counter waits for a gate trigger; channel 1's gate is tied high and
                                         // never rises, so it holds its count.
        pit.write(0x41, 0x34, 0);
        pit.write(0x41, 0x12, 0);
        pit.write(0x43, 0b1100_0100, 70); // read back count and status of counter 1
        let status = pit.read(0x41, 80);
        assert_eq!(
            status & 0x3F,
            0b11_0010,
            "access lo/hi (11), mode 1 (001), binary (0)"
        );
        assert_eq!(status & 0x40, 0, "a count is loaded");
        assert_eq!(pit.read(0x41, 80), 0x34);
        assert_eq!(pit.read(0x41, 80), 0x12);
    }

    #[test]
    fn single_byte_access_modes_and_unclaimed_ports() {
        let mut pit = Pit::new();
        pit.write(0x43, 0b0001_0000, 0); // channel 0, low byte only, mode 0
        pit.write(0x40, 100, 0);
        assert_eq!(pit.read(0x40, 30), 70);
        pit.write(0x43, 0b0010_0000, 30); // channel 0, high byte only, mode 0
        pit.write(0x40, 2, 30);
        assert_eq!(pit.read(0x40, 30 + 0x100), 0x01, "0x200 - 0x100 = 0x100");
        assert_eq!(pit.read(0x43, 0), 0xFF);
        assert_eq!(pit.read(0x44, 0), 0xFF);
        pit.write(0x44, 0, 0);
    }

    #[test]
    fn mode_3_steps_by_two_and_out_is_a_square_wave() {
        let mut pit = Pit::new();
        pit.write(0x43, 0b0011_0110, 0); // channel 0, lo/hi, mode 3
        pit.write(0x40, 100, 0);
        pit.write(0x40, 0, 0);
        assert_eq!(latched_ch0(&mut pit, 10), 80);
        assert!(pit.counters[0].out(10));
        assert!(!pit.counters[0].out(60));
        assert!(pit.counters[0].out(110));
    }

    fn latched_ch0(pit: &mut Pit, now: u64) -> u16 {
        pit.write(0x43, 0, now);
        u16::from_le_bytes([pit.read(0x40, now), pit.read(0x40, now)])
    }

    #[test]
    fn host_time_converts_to_input_clock_ticks() {
        let pit = Pit::new();
        let later = pit.epoch + std::time::Duration::from_millis(50);
        assert_eq!(pit.ticks_since(later), PIT_HZ / 20);
        assert_eq!(pit.ticks_since(pit.epoch), 0);
    }
}

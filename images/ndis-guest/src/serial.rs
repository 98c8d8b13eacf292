//! Console output and the `println!` family: whole lines through rnic-vmm's line console when
//! the machine has one, else COM1 (a 16550, polled).
//!
//! Every port access is a VM exit (about 8.5 us on the nested KVM here) and KVM's instruction
//! emulator turns every byte of a `rep outsb` into its own exit, so COM1 costs one exit per byte.
//! rnic-vmm's line console (docs/platform.md, "Line console") takes a whole line from guest memory
//! in one exit: the writer collects a line in [`LineRecord`] and hands over its address. Machines
//! without it (QEMU) read all ones from its port, and the same bytes go to COM1.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::cpu::{inb, inl, outb, outl_after_stores};
use crate::sync::IrqLock;

const COM1: u16 = 0x3F8;
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Depth of the 16550A transmit FIFO (enabled in `init`).
const TX_FIFO_DEPTH: u8 = 16;

/// rnic-vmm's line console port: a 32-bit read returns [`CONSOLE_SIGNATURE`]; a 32-bit write of
/// the physical address of a [`LineRecord`] prints it.
const CONSOLE_PORT: u16 = 0xF8;
/// `"RVMC"`, little-endian: what the console port reads on rnic-vmm.
const CONSOLE_SIGNATURE: u32 = u32::from_le_bytes(*b"RVMC");
/// Bytes one record carries (rnic-vmm accepts up to 4096); a longer line goes out in pieces.
const LINE_CAPACITY: usize = 1024;

/// Bytes that may still be written without asking the UART: when LSR.THRE is set the transmit
/// FIFO is empty, so 16 bytes fit; polling LSR once per 16 bytes instead of once per byte halves
/// the exits of COM1 output.
static TX_FIFO_SPACE: AtomicU8 = AtomicU8::new(0);

/// Whether the machine has rnic-vmm's line console (probed in [`init`]).
static HAS_CONSOLE: AtomicBool = AtomicBool::new(false);

/// Sets up COM1 and probes the line console.
pub fn init() {
    outb(COM1 + 1, 0x00); // no UART interrupts
    outb(COM1 + 3, 0x80); // DLAB
    outb(COM1, 0x01); // 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    outb(COM1 + 2, 0xC7); // FIFO on, cleared
    outb(COM1 + 4, 0x03); // DTR | RTS
    HAS_CONSOLE.store(inl(CONSOLE_PORT) == CONSOLE_SIGNATURE, Ordering::Relaxed);
}

/// One byte to COM1, polling the line status once per transmit FIFO load.
fn put(b: u8) {
    let space = TX_FIFO_SPACE.load(Ordering::Relaxed);
    if space == 0 {
        // Bounded poll: a UART that never reports ready must not hang the guest.
        for _ in 0..100_000 {
            if inb(COM1 + 5) & LSR_THR_EMPTY != 0 {
                break;
            }
        }
        TX_FIFO_SPACE.store(TX_FIFO_DEPTH - 1, Ordering::Relaxed);
    } else {
        TX_FIFO_SPACE.store(space - 1, Ordering::Relaxed);
    }
    outb(COM1, b);
}

/// Unbuffered COM1 writer, for the panic and exception paths: it takes no lock and needs no
/// memory but its stack, so it works whatever state the kernel is in.
pub struct RawSerial;

impl RawSerial {
    pub fn write_bytes(&mut self, s: &[u8]) {
        s.iter().for_each(|&b| put(b));
    }
}

impl Write for RawSerial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// A line console record: the byte count, then the bytes (the layout rnic-vmm reads).
#[repr(C, align(8))]
struct LineRecord {
    len: u32,
    text: [u8; LINE_CAPACITY],
}

/// The kernel's console writer: collects bytes into a line record and sends it when a write ends
/// a line, when the record is full, and at the end of every `print!`.
pub struct Console {
    record: LineRecord,
}

impl Console {
    const fn new() -> Self {
        Console {
            record: LineRecord {
                len: 0,
                text: [0; LINE_CAPACITY],
            },
        }
    }

    /// Appends `s`; sends the line when `s` ends with a newline.
    pub fn write_bytes(&mut self, mut s: &[u8]) {
        if let [b] = s {
            // DbgPrint output comes one byte at a time: no slice copy (a `memcpy` call).
            let used = self.record.len as usize;
            self.record.text[used] = *b;
            self.record.len += 1;
            if *b == b'\n' || used + 1 == LINE_CAPACITY {
                self.flush();
            }
            return;
        }
        let ends_line = s.last() == Some(&b'\n');
        while !s.is_empty() {
            let used = self.record.len as usize;
            let n = s.len().min(LINE_CAPACITY - used);
            self.record.text[used..used + n].copy_from_slice(&s[..n]);
            self.record.len += n as u32;
            s = &s[n..];
            if self.record.len as usize == LINE_CAPACITY {
                self.flush();
            }
        }
        if ends_line {
            self.flush();
        }
    }

    /// Sends what has been collected: one exit on rnic-vmm, one byte at a time on COM1 otherwise.
    pub fn flush(&mut self) {
        let len = self.record.len as usize;
        if len == 0 {
            return;
        }
        if HAS_CONSOLE.load(Ordering::Relaxed) {
            // The kernel is identity-mapped below 4 GiB: the record's address is its physical
            // address, and fits the 32-bit port write.
            outl_after_stores(CONSOLE_PORT, &raw const self.record as u64 as u32);
        } else {
            self.record.text[..len].iter().for_each(|&b| put(b));
        }
        self.record.len = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

pub static SERIAL: IrqLock<Console> = IrqLock::new(Console::new());

pub fn print_args(args: fmt::Arguments) {
    let mut console = SERIAL.lock();
    let _ = console.write_fmt(args);
    console.flush();
}

/// Sends a partly collected line (a `DbgPrint` without a newline) before the machine stops;
/// does nothing when the writer is held (a fault while printing).
pub fn flush_before_exit() {
    if let Some(mut console) = SERIAL.try_lock() {
        console.flush();
    }
}

/// Writes formatted text to the console (like `std::print!`), holding the console for the text.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print_args(format_args!($($arg)*)) };
}

/// Writes formatted text and a newline to the console (like `std::println!`).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}

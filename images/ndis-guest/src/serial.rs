//! COM1 16550 output (polled) and the `println!` family.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::cpu::{inb, outb};
use crate::sync::IrqLock;

const COM1: u16 = 0x3F8;
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Depth of the 16550A transmit FIFO (enabled in `init`).
const TX_FIFO_DEPTH: u8 = 16;

/// Bytes that may still be written without asking the UART: when LSR.THRE is set the transmit
/// FIFO is empty, so 16 bytes fit. Every port access is a VM exit (about 8.5 us here), so polling
/// LSR once per 16 bytes instead of once per byte halves the cost of serial output.
static TX_FIFO_SPACE: AtomicU8 = AtomicU8::new(0);

pub fn init() {
    outb(COM1 + 1, 0x00); // no UART interrupts
    outb(COM1 + 3, 0x80); // DLAB
    outb(COM1, 0x01); // 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    outb(COM1 + 2, 0xC7); // FIFO on, cleared
    outb(COM1 + 4, 0x03); // DTR | RTS
}

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

/// Unlocked writer; used by the lock below and by the panic/exception paths.
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

pub static SERIAL: IrqLock<RawSerial> = IrqLock::new(RawSerial);

pub fn print_args(args: fmt::Arguments) {
    let _ = SERIAL.lock().write_fmt(args);
}

/// Writes formatted text to COM1 (like `std::print!`), holding the serial lock for the line.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print_args(format_args!($($arg)*)) };
}

/// Writes formatted text and a newline to COM1 (like `std::println!`).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}

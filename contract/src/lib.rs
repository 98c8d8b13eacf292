//! # rnic-contract: the RNIC device contract as code
//!
//! The single home of every number and byte layout the device, the monitor, the
//! Windows driver and the guest kernel must agree on. The written contract is
//! `docs/device-spec.md`; each module names the spec sections it transcribes.
//!
//! What it owns: register offsets and bits, doorbell layout, PCI identity and the
//! configuration-space offsets, admin opcodes and status codes, and the formats of
//! admin commands and completions, operand records, WQEs, SGEs, CQEs, event entries
//! and Ethernet descriptors, and the connection manager's messages on the wire. What it must not contain: behaviour (no device state, no
//! driver logic), allocation, floating point or `unsafe`: it is compiled into the
//! soft-float Windows driver (`-Zbuild-std=core`) and the bare-metal guest as well as
//! into host crates.
//!
//! Formats follow smoltcp's `wire` module: a view `Format<T: AsRef<[u8]>>` over a
//! buffer (checked length, typed getters, setters when `T: AsMut<[u8]>`), a
//! `mod field` of named byte ranges, and where a whole entry is built or read at once a
//! `FormatRepr` with `parse` and `emit`. Every multi-byte field is little-endian unless
//! its documentation says otherwise.
//!
//! | module | spec | what |
//! | --- | --- | --- |
//! | [`pci`] | §1 | PCI identity, configuration-space offsets, BAR sizes, MSI-X placement |
//! | [`bar0`] | §2, §5.3, §8.5, §9.3 | control registers, bits, `ADMIN_ERROR` causes, doorbell map |
//! | [`admin`] | §3 | admin rings, command and completion entries, opcodes, [`admin::AdminStatus`], operand layouts and output records |
//! | [`event`] | §4 | event ring entry and event codes |
//! | [`eth`] | §5 | Ethernet TX/RX descriptors, receive filter, MTU limits |
//! | [`verbs`] | §6, §7, §10.6 | MR access flags, QP states and attributes, path MTU and RNR timer codes |
//! | [`wqe`] | §8 | send WQE, FAST_REG WQE, SGE, receive WQE |
//! | [`cqe`] | §9 | CQE, completion opcodes, flags and [`cqe::WcStatus`] |
//! | [`cm`] | §3.14, §15 | connection manager: families, limits, private data sizes, states, reject reasons, timing, the `CM_QUERY` record |
//! | [`mad`] | §11.6 | CM on the wire: DETH and the 256-byte MAD with the IBTA CM messages (big-endian) |

#![no_std]
#![forbid(unsafe_code)]

pub mod admin;
pub mod bar0;
pub mod cm;
pub mod cqe;
pub mod eth;
pub mod event;
pub mod field;
pub mod mad;
pub mod pci;
pub mod verbs;
pub mod wqe;

/// A buffer was too short for the format it was viewed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// Bytes the format needs.
    pub needed: usize,
    /// Bytes the buffer holds.
    pub got: usize,
}

impl core::fmt::Display for Truncated {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "buffer of {} bytes is shorter than the {}-byte format; pass the whole entry",
            self.got, self.needed
        )
    }
}

/// Defines a fixed-size view type over a byte buffer: `new_checked`, `new_unchecked`,
/// `into_inner`, and `fields()` access. Used by every format module.
macro_rules! fixed_view {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Size of the format in bytes.
            pub const LEN: usize = $len;

            /// Wraps `buffer` without checking its length; getters panic on a short
            /// buffer. Use [`Self::new_checked`] for buffers of unknown size.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` after checking it holds at least [`Self::LEN`] bytes.
            pub fn new_checked(buffer: T) -> Result<Self, $crate::Truncated> {
                let got = buffer.as_ref().len();
                if got < Self::LEN {
                    return Err($crate::Truncated { needed: Self::LEN, got });
                }
                Ok(Self { buffer })
            }

            /// Gives the buffer back.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole buffer, read-only.
            fn bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// The buffer, writable.
            fn bytes_mut(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
        }
    };
}
pub(crate) use fixed_view;

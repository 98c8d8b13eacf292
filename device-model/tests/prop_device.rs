//! Property tests over the whole device: random scripts of configuration writes,
//! BAR0/BAR2 accesses, admin commands, doorbells and guest memory contents never
//! panic the device, never make it write guest RAM under its own BARs or outside
//! the RAM a script names, and keep its status registers consistent.
//!
//! The scripted driver and its invariant checks live in `fuzz/src/script.rs` and are
//! shared with the cargo-fuzz target.

#[path = "../fuzz/src/script.rs"]
#[allow(dead_code)]
mod script;

use proptest::prelude::*;
use script::{Decoder, Op, Rig, BAR0_AT, FREE_AT, FREE_END, INTERESTING_REGS};

fn operand_word() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0..(FREE_END - FREE_AT) / 64).prop_map(|i| FREE_AT + i * 64),
        0u64..256,
        0u64..0x1_0000,
        (0u64..0x1_2000).prop_map(|o| BAR0_AT + o),
        any::<u64>(),
    ]
}

fn admin_op() -> impl Strategy<Value = Op> {
    (
        0u8..0x50,
        prop_oneof![9 => Just(0u8), 1 => any::<u8>()],
        any::<u16>(),
        proptest::collection::vec(operand_word(), 7),
    )
        .prop_map(|(opcode, flags, id, words)| {
            let mut operands = [0u8; 56];
            for (i, w) in words.iter().enumerate() {
                operands[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
            Op::Admin {
                opcode,
                flags,
                id,
                operands,
            }
        })
}

fn width_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => any::<[u8; 4]>().prop_map(|b| b.to_vec()),
        1 => any::<[u8; 1]>().prop_map(|b| b.to_vec()),
        1 => any::<[u8; 2]>().prop_map(|b| b.to_vec()),
        1 => any::<[u8; 8]>().prop_map(|b| b.to_vec()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u16..0x110, width_data()).prop_map(|(offset, data)| Op::ConfigWrite { offset, data }),
        1 => any::<u16>().prop_map(|offset| Op::ConfigRead { offset }),
        4 => (proptest::sample::select(INTERESTING_REGS.to_vec()), any::<u32>())
            .prop_map(|(offset, v)| Op::Bar0Write { offset, data: v.to_le_bytes().to_vec() }),
        1 => (0u64..0x1_0010, width_data()).prop_map(|(offset, data)| Op::Bar0Write { offset, data }),
        1 => (0u64..0x1_0010, 0u8..9).prop_map(|(offset, len)| Op::Bar0Read { offset, len }),
        1 => (0u64..0x2100, width_data()).prop_map(|(offset, data)| Op::Bar2Write { offset, data }),
        1 => (0u64..0x2100, 0u8..9).prop_map(|(offset, len)| Op::Bar2Read { offset, len }),
        2 => (FREE_AT..FREE_END, proptest::collection::vec(any::<u8>(), 0..512))
            .prop_map(|(offset, data)| Op::Mem { offset, data }),
        6 => admin_op(),
        2 => Just(Op::ConsumeCompletions),
        2 => (any::<u64>(), any::<u32>()).prop_map(|(offset, value)| Op::Doorbell { offset, value }),
        2 => (0u32..2_000_000).prop_map(|advance_us| Op::Poll { advance_us }),
        1 => (0u32..80, 0u32..80).prop_map(|(asq_size, acq_size)| Op::BringUp { asq_size, acq_size }),
        1 => (any::<u8>(), any::<u8>(), any::<u32>(), any::<u8>(), any::<u32>())
            .prop_map(|(site, action, param, trigger, n)| Op::Fault { site, action, param, trigger, n }),
        1 => Just(Op::ClearFaults),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random driver scripts after a normal bring-up.
    #[test]
    fn random_scripts_keep_device_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let mut rig = Rig::new();
        rig.apply(&Op::BringUp { asq_size: 16, acq_size: 16 });
        for op in &ops {
            rig.apply(op);
        }
        rig.finish();
    }

    /// Random scripts on a device nobody brought up (BARs placed, decoding off
    /// until the script turns it on).
    #[test]
    fn random_scripts_from_power_on(ops in proptest::collection::vec(op(), 1..80)) {
        let mut rig = Rig::new();
        for op in &ops {
            rig.apply(op);
        }
        rig.finish();
    }

    /// The fuzz target's byte decoder on random bytes.
    #[test]
    fn random_fuzzer_inputs(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        script::run_bytes(&bytes);
    }
}

/// A well-behaved driver gets NOP completions; the checks see every one of them.
#[test]
fn nop_commands_complete_and_interrupt() {
    let mut rig = Rig::new();
    rig.apply(&Op::BringUp {
        asq_size: 8,
        acq_size: 8,
    });
    assert_eq!(
        rig.dev.dev_status() & 1,
        1,
        "device should be READY after bring-up"
    );
    for id in 0..20u16 {
        rig.apply(&Op::Admin {
            opcode: 0,
            flags: 0,
            id,
            operands: [0; 56],
        });
        rig.apply(&Op::ConsumeCompletions);
    }
    assert!(rig.dev.msix().counters() != Default::default());
    assert_eq!(rig.steps, 41);
}

/// Pointing the admin rings at the device's own BAR is refused, not executed.
#[test]
fn rings_over_own_bar_are_refused() {
    let mut rig = Rig::new();
    rig.apply(&Op::BringUp {
        asq_size: 8,
        acq_size: 8,
    });
    for (off, v) in [
        (0x008u64, 2u32),
        (0x020, BAR0_AT as u32),
        (0x024, 0),
        (0x028, 8),
        (0x030, 0x3000),
        (0x034, 0),
        (0x038, 8),
        (0x008, 1),
    ] {
        rig.apply(&Op::Bar0Write {
            offset: off,
            data: v.to_le_bytes().to_vec(),
        });
    }
    assert_eq!(
        rig.dev.dev_status() & 1,
        0,
        "rings over BAR0 must not make the device READY"
    );
    assert_ne!(rig.dev.dev_status() & 4, 0, "ADMIN_ERR expected");
}

/// The decoder is total: any input decodes to a finite script.
#[test]
fn decoder_terminates_on_all_byte_values() {
    let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut d = Decoder::new(&data);
    let mut n = 0;
    while d.next_op().is_some() {
        n += 1;
        assert!(n < 10_000);
    }
    assert!(n > 10);
}

/// The guard check is live: a write into the guard RAM is reported.
#[test]
#[should_panic(expected = "guard RAM")]
fn guard_check_detects_writes() {
    use vm_memory::{Bytes, GuestAddress};
    let rig = Rig::new();
    rig.mem
        .write_slice(&[0], GuestAddress(script::GUARD_BASE + 17))
        .unwrap();
    rig.finish();
}

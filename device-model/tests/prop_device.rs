//! Property tests over the whole device: random scripts of configuration writes,
//! BAR0/BAR2 accesses, admin commands, doorbells and guest memory contents never
//! panic the device, never make it write guest RAM under its own BARs or outside
//! the RAM a script names, and keep its status registers consistent.
//!
//! They also keep the object tables consistent: a reference model built from the
//! admin completions (`fuzz/src/model.rs`) must agree with every later completion,
//! with the tables the device reports host-side after every step, and with
//! `QUERY_QP` / `QUERY_MR` / `QUERY_DEVICE` answers for live and dead handles.
//!
//! The scripted driver and its invariant checks live in `fuzz/src/script.rs` and are
//! shared with the cargo-fuzz target. `PROPTEST_CASES=N` overrides the case counts
//! for longer hunts (in `--release`).

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
        8 => verb_op(),
        1 => any::<u16>().prop_map(|sel| Op::Audit { sel }),
    ]
}

/// A well-formed verbs / Ethernet command (see `Op::Verb`).
fn verb_op() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(kind, a, b, c)| Op::Verb {
        kind,
        a,
        b,
        c,
    })
}

/// Scripts that mostly manage objects like a driver, with some noise (raw
/// commands, completions released, doorbells, time, memory writes, resets) and no
/// fault rules, so the reference model stays exact from start to end.
fn driver_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        60 => verb_op(),
        4 => any::<u16>().prop_map(|sel| Op::Audit { sel }),
        3 => admin_op(),
        2 => Just(Op::ConsumeCompletions),
        2 => (any::<u64>(), any::<u32>()).prop_map(|(offset, value)| Op::Doorbell { offset, value }),
        2 => (0u32..2_000_000).prop_map(|advance_us| Op::Poll { advance_us }),
        1 => (FREE_AT..FREE_END, proptest::collection::vec(any::<u8>(), 0..256))
            .prop_map(|(offset, data)| Op::Mem { offset, data }),
        1 => (proptest::sample::select(INTERESTING_REGS.to_vec()), any::<u32>())
            .prop_map(|(offset, v)| Op::Bar0Write { offset, data: v.to_le_bytes().to_vec() }),
        1 => (0u32..80, 0u32..80).prop_map(|(asq_size, acq_size)| Op::BringUp { asq_size, acq_size }),
    ]
}

/// `n` cases, or `PROPTEST_CASES` when set (longer hunts:
/// `PROPTEST_CASES=20000 cargo test --release -p rnic-device --test prop_device`).
fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        ..ProptestConfig::default()
    }
}

// Case counts keep `cargo test -p rnic-device --test prop_device` (debug) near 15 s
// on an idle 2-core machine.
proptest! {
    #![proptest_config(cases(256))]

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
}

proptest! {
    #![proptest_config(cases(128))]

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
}

proptest! {
    #![proptest_config(cases(384))]

    /// Driver-like scripts: the object tables the device reports (host side and
    /// through QUERY_QP / QUERY_MR / QUERY_DEVICE) always match what its
    /// completions told the driver.
    #[test]
    fn driver_scripts_keep_object_tables_consistent(ops in proptest::collection::vec(driver_op(), 1..160)) {
        let mut rig = Rig::new();
        rig.apply(&Op::BringUp { asq_size: 16, acq_size: 16 });
        for op in &ops {
            rig.apply(op);
        }
        rig.finish();
    }
}

proptest! {
    #![proptest_config(cases(192))]

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

/// A full PD table refuses with NO_RESOURCES, and destroyed PDNs come back
/// longest-freed first (§0.1); the model checks every completion.
#[test]
fn full_pd_table_reuses_handles_in_fifo_order() {
    let mut rig = Rig::new();
    rig.apply(&Op::BringUp {
        asq_size: 8,
        acq_size: 4,
    });
    rig.apply(&Op::FillPds { destroy: 5 });
    let live = rig.model.live(script::model::Kind::Pd).len() as u32;
    assert_eq!(live, rig.dev.verbs().limits().max_pd - 6);
    let mut dead = rig.model.dead(script::model::Kind::Pd);
    assert_eq!(dead.len(), 6);
    // Recreate them (Verb kind 0 = CREATE_PD): the model insists on FIFO order.
    for _ in 0..6 {
        rig.apply(&Op::Verb {
            kind: 0,
            a: 0,
            b: 0,
            c: 0,
        });
    }
    dead.sort_unstable();
    let mut back: Vec<u32> = rig.model.live(script::model::Kind::Pd);
    back.retain(|p| dead.binary_search(p).is_ok());
    assert_eq!(back.len(), 6, "the destroyed PDNs were handed out again");
    rig.apply(&Op::FillPds { destroy: 0 });
    rig.finish();
    assert!(rig.model.exact(), "{:?}", rig.model.taint_reason());
    assert!(rig.model.seen[&(0x11, 0x10)] >= 2, "NO_RESOURCES seen");
}

/// The model checks are not vacuous: deterministic driver scripts stay exact
/// from start to end and exercise every object kind, successes and the refusals
/// the model predicts (dead handles, PDs and CQs in use, bad transitions).
#[test]
fn driver_scripts_exercise_the_model() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use script::model::{opc, status};
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(driver_op(), 100..160);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..12 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut rig = Rig::new();
        rig.apply(&Op::BringUp {
            asq_size: 16,
            acq_size: 16,
        });
        for op in &ops {
            rig.apply(op);
        }
        rig.finish();
        assert!(
            rig.model.exact(),
            "a fault-free driver script tainted the model: {:?}",
            rig.model.taint_reason()
        );
        for (k, n) in &rig.model.seen {
            *seen.entry(*k).or_insert(0u32) += n;
        }
    }
    let want = [
        (opc::CREATE_PD, status::SUCCESS),
        (opc::DESTROY_PD, status::SUCCESS),
        (opc::DESTROY_PD, status::BUSY),
        (opc::CREATE_CQ, status::SUCCESS),
        (opc::DESTROY_CQ, status::BUSY),
        (opc::CREATE_QP, status::SUCCESS),
        (opc::CREATE_QP, status::INVALID_HANDLE),
        (opc::MODIFY_QP, status::SUCCESS),
        (opc::MODIFY_QP, status::INVALID_STATE),
        (opc::QUERY_QP, status::SUCCESS),
        (opc::QUERY_QP, status::INVALID_HANDLE),
        (opc::DESTROY_QP, status::SUCCESS),
        (opc::REG_MR, status::SUCCESS),
        (opc::ALLOC_FR_MR, status::SUCCESS),
        (opc::QUERY_MR, status::SUCCESS),
        (opc::QUERY_MR, status::INVALID_HANDLE),
        (opc::DEREG_MR, status::SUCCESS),
        (opc::CREATE_TXQ, status::SUCCESS),
        (opc::CREATE_RXQ, status::SUCCESS),
        (opc::QUERY_DEVICE, status::SUCCESS),
    ];
    for (o, s) in want {
        assert!(
            seen.get(&(o, s)).copied().unwrap_or(0) > 0,
            "no {} completed with {} in 12 driver scripts: {seen:?}",
            opc::name(o),
            status::name(s)
        );
    }
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
    let mut rig = Rig::new();
    rig.mem
        .write_slice(&[0], GuestAddress(script::GUARD_BASE + 17))
        .unwrap();
    rig.finish();
}

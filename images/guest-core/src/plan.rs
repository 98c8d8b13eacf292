//! The guest's test plan, read from the kernel command line, and the choice of the driver
//! module: both checked strictly, so that a typo is an error the user sees instead of a run
//! that silently tests something else.
//!
//! Command line: whitespace-separated `KEY=VALUE` tokens. Known keys:
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `guest.selftest` | one of [`SELFTESTS`] | run that self test at boot (repeatable, in order) |
//! | `guest.ethernet` | `loopback` | the RNIC's wire sends every frame back: wait for the frames the guest sends to come back and check them (without it the guest does not wait: with no wire the device drops them) |
//! | `guest.ethernet` | `peer` | the wire goes to another guest running the same plan (`scripts/launch-pair.sh`): send the test frames to the broadcast address in rounds until the peer's arrive, and check the peer's frames byte for byte |
//! | `guest.ndk` | one of [`NDK_MODES`] (repeatable) | `suite`: run the NDK consumer suite through the NDK contract verifier once the NDK adapter is open; `bench`: print the NDK figures (RDMA WRITE latency and throughput next to the MMIO floor and a guest memcpy; slow under the instruction emulator). Without it the guest only enables, opens and closes the NDK adapter |
//!
//! | `guest.expect` | one of [`EXPECTATIONS`] | the outcome the plan expects: `pass` (default) every suite passes; `ndk-errors` a fault plan makes the device fail NDK work, so failed NDK suite tests are reported, not counted as contract violations — every NDK and NDIS contract rule still holds, nothing leaks, and the adapter still halts and unloads |
//! | `guest.lowres` | one of [`crate::lowres::FORMS`] | low-resources simulation ([`crate::lowres`]): fail the driver's allocation requests the value picks, in every phase; the plan then expects driver failures (a failed DriverEntry, InitializeEx, send, OID or NDK request) but still zero contract violations and zero leaks, and a clean halt and unload of whatever initialized |
//! | `guest.hostile` | `registers` | before loading any driver, write pseudo-random values to pseudo-random offsets of every RNIC's BAR0 (registers and doorbells, bus mastering off), check that the device still answers as its contract says and comes back after a reset, and end the boot (no driver runs) |
//!
//! Anything else (an unknown key, a token without `=`, an unknown self test, an empty value)
//! is a [`PlanError`]; the kernel reports it and exits with its "bad plan" status.

use alloc::vec::Vec;
use core::fmt;

use crate::lowres;

/// The self tests the kernel knows, in the order its documentation lists them.
///
/// The `ndk-*` ones each provoke one NDK contract-verifier rule with a misbehaving provider
/// the guest plays itself (`ndk-mdl-va` ends the boot: the access faults; the others report
/// and let the boot go on). The `nmr-*` ones each provoke one NMR verifier rule with a fake
/// provider and client the guest plays (they report and let the boot go on);
/// `nmr-refuse-provider` makes the driver's NmrRegisterProvider fail (out of resources), so the
/// boot shows how DriverEntry fails. `data-hang` holds a fake send pending for 22.5 s of real
/// time: Driver Verifier's `NdisTimedDataHang` must fire (it reports and lets the boot go on).
/// The `nbl-*` and `pause-*` ones each provoke one
/// NBL-ownership or pause/restart rule with a misbehaving miniport the guest plays (they
/// report and let the boot go on).
pub const SELFTESTS: &[&str] = &[
    "ud",
    "de",
    "pf",
    "panic",
    "timer",
    "contract",
    "ndk-mdl-va",
    "ndk-double-completion",
    "ndk-completion-without-pending",
    "ndk-callback-after-close",
    "ndk-parent-close",
    "ndk-irql",
    "ndk-leak",
    "nmr-double-attach",
    "nmr-detach-double-complete",
    "nmr-deregister-incomplete",
    "nmr-refuse-provider",
    "data-hang",
    "nbl-double-complete",
    "nbl-leak",
    "nbl-send-flags",
    "nbl-receive-flags",
    "nbl-receive-double-indicate",
    "nbl-receive-freed",
    "pause-return",
    "pause-complete-not-pausing",
    "pause-double-complete",
    "pause-paused-data-path",
];

/// Keys the command line may use.
pub const KEYS: &[&str] = &[
    "guest.selftest",
    "guest.ethernet",
    "guest.ndk",
    "guest.expect",
    "guest.hostile",
    "guest.lowres",
];

/// Values of `guest.hostile`.
pub const HOSTILE_MODES: &[&str] = &["registers"];

/// Values of `guest.expect`.
pub const EXPECTATIONS: &[&str] = &["pass", "ndk-errors"];

/// Values of `guest.ndk`.
pub const NDK_MODES: &[&str] = &["suite", "bench"];

/// Values of `guest.ethernet`.
pub const ETHERNET_MODES: &[&str] = &["loopback", "peer"];

/// A parsed, valid plan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestPlan<'a> {
    /// Self tests to run at boot, in command-line order.
    pub selftests: Vec<&'a str>,
    /// `guest.ethernet=loopback`: the frames the guest sends come back through the wire.
    pub ethernet_loopback: bool,
    /// `guest.ethernet=peer`: the wire goes to another guest that runs the same plan.
    pub ethernet_peer: bool,
    /// `guest.ndk=suite`: run the NDK consumer suite.
    pub ndk_suite: bool,
    /// `guest.ndk=bench`: print the NDK figures.
    pub ndk_bench: bool,
    /// `guest.expect=ndk-errors`: NDK suite tests may fail (injected faults); the
    /// contract rules still hold.
    pub ndk_errors_expected: bool,
    /// `guest.hostile=registers`: random register and doorbell writes instead of a driver.
    pub hostile_registers: bool,
    /// `guest.lowres=MODE`: which of the driver's allocation requests fail (None: none).
    pub lowres: Option<lowres::Mode>,
}

/// What is wrong with a command line.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError<'a> {
    /// A token is not `KEY=VALUE`.
    NotKeyValue(&'a str),
    /// The key is not one of [`KEYS`].
    UnknownKey(&'a str),
    /// `KEY=` with nothing after it.
    EmptyValue(&'a str),
    /// `guest.selftest=` names no known self test.
    UnknownSelftest(&'a str),
    /// `guest.ethernet=` names no known mode.
    UnknownEthernetMode(&'a str),
    /// `guest.ndk=` names no known mode.
    UnknownNdkMode(&'a str),
    /// `guest.expect=` names no known outcome.
    UnknownExpectation(&'a str),
    /// `guest.hostile=` names no known mode.
    UnknownHostileMode(&'a str),
    /// `guest.lowres=` is none of [`lowres::FORMS`].
    BadLowResources(lowres::BadMode<'a>),
}

/// Writes `items` as `a, b, c`.
struct List<'a>(&'a [&'a str]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

impl fmt::Display for PlanError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotKeyValue(t) => write!(
                f,
                "command-line token {t:?} is not KEY=VALUE (known keys: {})",
                List(KEYS)
            ),
            PlanError::UnknownKey(k) => {
                write!(
                    f,
                    "unknown command-line key {k:?} (known keys: {})",
                    List(KEYS)
                )
            }
            PlanError::EmptyValue(k) => write!(f, "command-line key {k:?} has an empty value"),
            PlanError::UnknownSelftest(s) => {
                write!(f, "unknown self test {s:?} (known: {})", List(SELFTESTS))
            }
            PlanError::UnknownEthernetMode(m) => write!(
                f,
                "unknown guest.ethernet mode {m:?} (known: {})",
                List(ETHERNET_MODES)
            ),
            PlanError::UnknownNdkMode(m) => write!(
                f,
                "unknown guest.ndk mode {m:?} (known: {})",
                List(NDK_MODES)
            ),
            PlanError::UnknownExpectation(m) => write!(
                f,
                "unknown guest.expect outcome {m:?} (known: {})",
                List(EXPECTATIONS)
            ),
            PlanError::UnknownHostileMode(m) => write!(
                f,
                "unknown guest.hostile mode {m:?} (known: {})",
                List(HOSTILE_MODES)
            ),
            PlanError::BadLowResources(e) => e.fmt(f),
        }
    }
}

/// Parses and checks the kernel command line.
pub fn parse(cmdline: &str) -> Result<GuestPlan<'_>, PlanError<'_>> {
    let mut plan = GuestPlan::default();
    for token in cmdline.split_whitespace() {
        let (key, value) = token.split_once('=').ok_or(PlanError::NotKeyValue(token))?;
        if !KEYS.contains(&key) {
            return Err(PlanError::UnknownKey(key));
        }
        if value.is_empty() {
            return Err(PlanError::EmptyValue(key));
        }
        match key {
            "guest.ethernet" => {
                if !ETHERNET_MODES.contains(&value) {
                    return Err(PlanError::UnknownEthernetMode(value));
                }
                plan.ethernet_loopback = value == "loopback";
                plan.ethernet_peer = value == "peer";
            }
            "guest.ndk" => {
                if !NDK_MODES.contains(&value) {
                    return Err(PlanError::UnknownNdkMode(value));
                }
                plan.ndk_suite |= value == "suite";
                plan.ndk_bench |= value == "bench";
            }
            "guest.expect" => {
                if !EXPECTATIONS.contains(&value) {
                    return Err(PlanError::UnknownExpectation(value));
                }
                plan.ndk_errors_expected = value == "ndk-errors";
            }
            "guest.hostile" => {
                if !HOSTILE_MODES.contains(&value) {
                    return Err(PlanError::UnknownHostileMode(value));
                }
                plan.hostile_registers = true;
            }
            "guest.lowres" => {
                plan.lowres = Some(lowres::parse(value).map_err(PlanError::BadLowResources)?);
            }
            _ => {
                if !SELFTESTS.contains(&value) {
                    return Err(PlanError::UnknownSelftest(value));
                }
                plan.selftests.push(value);
            }
        }
    }
    Ok(plan)
}

/// Why no single driver module could be chosen.
#[derive(Debug, PartialEq, Eq)]
pub enum DriverChoiceError<'a> {
    /// No module is a driver (none named `*.sys`, and not one lone unnamed PE image).
    None,
    /// More than one module is named `*.sys`: the guest loads exactly one driver.
    Several(&'a str, &'a str),
}

impl fmt::Display for DriverChoiceError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverChoiceError::None => {
                f.write_str("no driver module (a PVH boot module whose name ends in .sys)")
            }
            DriverChoiceError::Several(a, b) => write!(
                f,
                "more than one driver module ({a}, {b}): the guest loads exactly one; pass one .sys module"
            ),
        }
    }
}

/// Chooses the driver among the boot modules, given as `(name, starts with "MZ")`: the one
/// module whose name ends in `.sys` (case-insensitive), or a lone unnamed PE image (some
/// monitors pass no module names). Returns its index.
pub fn choose_driver<'a>(modules: &[(&'a str, bool)]) -> Result<usize, DriverChoiceError<'a>> {
    let is_sys = |n: &str| {
        n.len() > 4
            && n.is_char_boundary(n.len() - 4)
            && n[n.len() - 4..].eq_ignore_ascii_case(".sys")
    };
    let mut sys = modules.iter().enumerate().filter(|(_, (n, _))| is_sys(n));
    match (sys.next(), sys.next()) {
        (Some((i, _)), None) => Ok(i),
        (Some((_, (a, _))), Some((_, (b, _)))) => Err(DriverChoiceError::Several(a, b)),
        (None, _) => match modules {
            [("", true)] => Ok(0),
            _ => Err(DriverChoiceError::None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn an_empty_command_line_is_the_default_plan() {
        assert_eq!(parse("  "), Ok(GuestPlan::default()));
    }

    #[test]
    fn selftests_are_kept_in_order() {
        let plan = parse("guest.selftest=timer  guest.selftest=contract").unwrap();
        assert_eq!(plan.selftests, ["timer", "contract"]);
    }

    #[test]
    fn the_ethernet_mode_is_read_and_checked() {
        let plan = parse("guest.ethernet=loopback guest.selftest=timer").unwrap();
        assert!(plan.ethernet_loopback);
        assert_eq!(plan.selftests, ["timer"]);
        assert!(!plan.ethernet_peer);
        assert!(!parse("").unwrap().ethernet_loopback);
        let peer = parse("guest.ethernet=peer").unwrap();
        assert!(peer.ethernet_peer && !peer.ethernet_loopback);
        let e = parse("guest.ethernet=udp").unwrap_err();
        assert_eq!(e, PlanError::UnknownEthernetMode("udp"));
        assert!(e.to_string().contains("loopback"));
    }

    #[test]
    fn the_ndk_mode_and_ndk_selftests_are_read_and_checked() {
        let plan = parse("guest.ndk=suite guest.selftest=ndk-irql").unwrap();
        assert!(plan.ndk_suite);
        assert_eq!(plan.selftests, ["ndk-irql"]);
        assert!(!parse("").unwrap().ndk_suite);
        let both = parse("guest.ndk=bench guest.ndk=suite").unwrap();
        assert!(both.ndk_suite && both.ndk_bench);
        assert!(!plan.ndk_bench);
        let e = parse("guest.ndk=all").unwrap_err();
        assert_eq!(e, PlanError::UnknownNdkMode("all"));
        assert!(e.to_string().contains("suite"));
    }

    #[test]
    fn an_unknown_selftest_is_an_error_that_lists_the_known_ones() {
        let plan = parse("guest.ndk=suite guest.expect=ndk-errors").unwrap();
        assert!(plan.ndk_suite && plan.ndk_errors_expected);
        assert!(!parse("guest.expect=pass").unwrap().ndk_errors_expected);
        assert!(parse("guest.hostile=registers").unwrap().hostile_registers);
        assert_eq!(
            parse("guest.hostile=all").unwrap_err(),
            PlanError::UnknownHostileMode("all")
        );
        let e = parse("guest.expect=fail").unwrap_err();
        assert_eq!(e, PlanError::UnknownExpectation("fail"));
        assert!(e.to_string().contains("ndk-errors"), "{e}");
        let e = parse("guest.selftest=bogus").unwrap_err();
        assert_eq!(e, PlanError::UnknownSelftest("bogus"));
        let text = e.to_string();
        assert!(
            text.contains("\"bogus\"") && text.contains("contract"),
            "{text}"
        );
    }

    #[test]
    fn the_low_resources_mode_is_read_and_checked() {
        assert_eq!(parse("").unwrap().lowres, None);
        let plan = parse("guest.lowres=nth:3 guest.ndk=suite").unwrap();
        assert_eq!(plan.lowres, Some(lowres::Mode::Nth(3)));
        assert!(plan.ndk_suite);
        assert_eq!(
            parse("guest.lowres=seed:9,percent:10").unwrap().lowres,
            Some(lowres::Mode::Seeded {
                seed: 9,
                percent: 10,
                from: 1
            })
        );
        let e = parse("guest.lowres=often").unwrap_err();
        assert_eq!(e, PlanError::BadLowResources(lowres::BadMode("often")));
        let text = e.to_string();
        assert!(
            text.contains("guest.lowres") && text.contains("nth:N") && text.contains("seed:S"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_bare_words_and_empty_values_are_errors() {
        assert_eq!(
            parse("guest.selftst=ud"),
            Err(PlanError::UnknownKey("guest.selftst"))
        );
        assert_eq!(parse("quiet"), Err(PlanError::NotKeyValue("quiet")));
        assert_eq!(
            parse("guest.selftest="),
            Err(PlanError::EmptyValue("guest.selftest"))
        );
        assert!(parse("guest.selftst=ud")
            .unwrap_err()
            .to_string()
            .contains("guest.selftest"));
    }

    #[test]
    fn the_one_sys_module_is_the_driver() {
        assert_eq!(
            choose_driver(&[("plan.txt", false), ("rnic.SYS", true)]),
            Ok(1)
        );
        assert_eq!(choose_driver(&[("", true)]), Ok(0));
    }

    #[test]
    fn several_drivers_or_none_are_errors() {
        let e = choose_driver(&[("a.sys", true), ("b.sys", true)]).unwrap_err();
        assert_eq!(e, DriverChoiceError::Several("a.sys", "b.sys"));
        assert!(e.to_string().contains("exactly one"));
        assert_eq!(choose_driver(&[]), Err(DriverChoiceError::None));
        assert_eq!(choose_driver(&[("", false)]), Err(DriverChoiceError::None));
        assert_eq!(
            choose_driver(&[("", true), ("", true)]),
            Err(DriverChoiceError::None)
        );
        // A multi-byte name never panics the suffix check.
        assert_eq!(choose_driver(&[("é", true)]), Err(DriverChoiceError::None));
    }
}

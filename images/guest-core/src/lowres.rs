//! Low-resources simulation, as Driver Verifier's "Low Resources Simulation" and "Systematic
//! low resources simulation" do it, but deterministic: the guest counts every allocation
//! request the driver makes through its imports (pool memory, MDLs, NBL pools and NBLs,
//! shared memory, work items, scatter/gather lists, NMR registrations) and fails the ones the
//! plan's `guest.lowres=` value picks, so the driver's failure paths run.
//!
//! | value | fails |
//! | --- | --- |
//! | `every:N` | requests N, 2N, 3N, ... (N >= 1; `every:1` fails them all) |
//! | `every:N,from:F` | requests F, F+N, F+2N, ... (F >= 1): the phases before request F run untouched |
//! | `nth:N` | exactly request N (N >= 1): one boot per N is a systematic sweep |
//! | `seed:S,percent:P` | each request with probability P % (0..=100), from a pseudo-random sequence seeded by S (a u64): the same seed fails the same requests |
//! | `seed:S,percent:P,from:F` | the same, from request F on |
//! | `count` | none: every request is only numbered and listed (the first boot of a sweep, which learns what the life cycle asks for) |
//!
//! Requests are numbered from 1 in the order the driver makes them. Only the decision lives
//! here; the guest's exports ask [`Injector::request`] after their contract checks (a refused
//! call is not a request) and fail as the real function documents.

use core::fmt;

/// The values `guest.lowres=` accepts, as the error messages list them.
pub const FORMS: &str = "every:N, every:N,from:F, nth:N (N, F >= 1), seed:S,percent:P, seed:S,percent:P,from:F (S a u64, P 0..=100), count";

/// Which allocation requests fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Requests `from`, `from + every`, `from + 2 × every`, ... (both >= 1; `every:N` is
    /// `from` N).
    Every {
        /// Distance between two failed requests.
        every: u32,
        /// The first failed request.
        from: u32,
    },
    /// Exactly request number `n` (n >= 1).
    Nth(u32),
    /// Each request with probability `percent` % from a sequence seeded by `seed`.
    Seeded {
        /// Seed of the pseudo-random sequence.
        seed: u64,
        /// Chance of failure of each request, in percent (0..=100).
        percent: u8,
        /// The first request that may fail (1: any).
        from: u32,
    },
    /// Nothing fails; every request is listed.
    Count,
}

/// A `guest.lowres=` value that is none of [`FORMS`]; the value is kept for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMode<'a>(pub &'a str);

impl fmt::Display for BadMode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad guest.lowres value {:?} (accepted: {FORMS})", self.0)
    }
}

/// A number of at least 1.
fn positive(text: &str) -> Option<u32> {
    text.parse().ok().filter(|n| *n >= 1)
}

/// Parses a `guest.lowres=` value.
pub fn parse(value: &str) -> Result<Mode, BadMode<'_>> {
    let bad = BadMode(value);
    if value == "count" {
        return Ok(Mode::Count);
    }
    if let Some(n) = value.strip_prefix("nth:") {
        return positive(n).map(Mode::Nth).ok_or(bad);
    }
    // `every:` and `seed:` take an optional `,from:F` suffix.
    let (base, from) = match value.split_once(",from:") {
        Some((base, from)) => (base, Some(positive(from).ok_or(bad)?)),
        None => (value, None),
    };
    if let Some(every) = base.strip_prefix("every:") {
        let every = positive(every).ok_or(bad)?;
        return Ok(Mode::Every {
            every,
            from: from.unwrap_or(every),
        });
    }
    let (seed, percent) = base.split_once(',').ok_or(bad)?;
    let seed = seed.strip_prefix("seed:").and_then(|s| s.parse().ok());
    let percent = percent
        .strip_prefix("percent:")
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|p| *p <= 100);
    match (seed, percent) {
        (Some(seed), Some(percent)) => Ok(Mode::Seeded {
            seed,
            percent,
            from: from.unwrap_or(1),
        }),
        _ => Err(bad),
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Every { every, from } if every == from => write!(f, "every:{every}"),
            Mode::Every { every, from } => write!(f, "every:{every},from:{from}"),
            Mode::Nth(n) => write!(f, "nth:{n}"),
            Mode::Seeded {
                seed,
                percent,
                from: 1,
            } => write!(f, "seed:{seed},percent:{percent}"),
            Mode::Seeded {
                seed,
                percent,
                from,
            } => write!(f, "seed:{seed},percent:{percent},from:{from}"),
            Mode::Count => f.write_str("count"),
        }
    }
}

/// What the injector decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The request's number (from 1).
    pub number: u32,
    /// Whether the request must fail.
    pub fail: bool,
}

/// Counts allocation requests and decides which fail. Without a mode it only counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injector {
    mode: Option<Mode>,
    requests: u32,
    injected: u32,
    /// State of the xorshift64* sequence ([`Mode::Seeded`]); never zero.
    state: u64,
}

impl Default for Injector {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Injector {
    /// An injector for `mode` (None: count only), with no request seen yet.
    pub const fn new(mode: Option<Mode>) -> Self {
        let state = match mode {
            // splitmix64's increment keeps a zero seed away from xorshift's fixed point.
            Some(Mode::Seeded { seed, .. }) => seed ^ 0x9E37_79B9_7F4A_7C15,
            _ => 1,
        };
        Injector {
            mode,
            requests: 0,
            injected: 0,
            state: if state == 0 { 1 } else { state },
        }
    }

    /// The mode (None: nothing fails).
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Counts one more request and decides whether it fails.
    pub fn request(&mut self) -> Decision {
        self.requests = self.requests.saturating_add(1);
        let number = self.requests;
        let fail = match self.mode {
            None | Some(Mode::Count) => false,
            Some(Mode::Every { every, from }) => {
                number >= from && (number - from).is_multiple_of(every)
            }
            Some(Mode::Nth(n)) => number == n,
            Some(Mode::Seeded { percent, from, .. }) => {
                number >= from && self.next_percentile() < u64::from(percent)
            }
        };
        if fail {
            self.injected += 1;
        }
        Decision { number, fail }
    }

    /// Requests counted so far.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Requests failed so far.
    pub fn injected(&self) -> u32 {
        self.injected
    }

    /// The next value of the seeded sequence, reduced to 0..100 (xorshift64*).
    fn next_percentile(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn failed(mode: Mode, requests: u32) -> Vec<u32> {
        let mut inj = Injector::new(Some(mode));
        (0..requests)
            .map(|_| inj.request())
            .filter(|d| d.fail)
            .map(|d| d.number)
            .collect()
    }

    #[test]
    fn every_n_fails_the_multiples_of_n() {
        let every = |every, from| Mode::Every { every, from };
        assert_eq!(failed(every(3, 3), 10), [3, 6, 9]);
        assert_eq!(failed(every(1, 1), 4), [1, 2, 3, 4]);
        assert_eq!(failed(every(4, 7), 20), [7, 11, 15, 19]);
        assert_eq!(parse("every:3"), Ok(every(3, 3)));
        assert_eq!(parse("every:4,from:7"), Ok(every(4, 7)));
    }

    #[test]
    fn nth_fails_exactly_one_request() {
        assert_eq!(failed(Mode::Nth(5), 20), [5]);
        assert_eq!(failed(Mode::Nth(30), 20), [] as [u32; 0]);
    }

    #[test]
    fn seeded_runs_repeat_and_follow_the_percentage() {
        let mode = Mode::Seeded {
            seed: 42,
            percent: 20,
            from: 1,
        };
        let a = failed(mode, 1000);
        assert_eq!(
            a,
            failed(mode, 1000),
            "the same seed fails the same requests"
        );
        assert!((120..=280).contains(&a.len()), "{} of 1000", a.len());
        let other = failed(
            Mode::Seeded {
                seed: 43,
                percent: 20,
                from: 1,
            },
            1000,
        );
        assert_ne!(a, other, "another seed fails other requests");
        assert!(failed(
            Mode::Seeded {
                seed: 0,
                percent: 0,
                from: 1
            },
            500
        )
        .is_empty());
        assert_eq!(
            failed(
                Mode::Seeded {
                    seed: 0,
                    percent: 100,
                    from: 1
                },
                50
            )
            .len(),
            50
        );
    }

    #[test]
    fn seeded_runs_from_a_request_leave_the_earlier_ones_alone() {
        let all = Mode::Seeded {
            seed: 5,
            percent: 100,
            from: 30,
        };
        assert_eq!(failed(all, 33), [30, 31, 32, 33]);
        let some = failed(
            Mode::Seeded {
                seed: 5,
                percent: 30,
                from: 100,
            },
            400,
        );
        assert!(
            some.iter().all(|n| *n >= 100) && some.len() > 40,
            "{some:?}"
        );
    }

    #[test]
    fn without_a_mode_requests_are_only_counted() {
        let mut inj = Injector::default();
        for _ in 0..7 {
            assert!(!inj.request().fail);
        }
        assert_eq!((inj.requests(), inj.injected()), (7, 0));
        let mut count = Injector::new(Some(Mode::Count));
        assert!((0..9).all(|_| !count.request().fail));
        assert_eq!((count.requests(), count.injected()), (9, 0));
        let mut every = Injector::new(Some(Mode::Every { every: 2, from: 2 }));
        for _ in 0..5 {
            every.request();
        }
        assert_eq!((every.requests(), every.injected()), (5, 2));
    }

    #[test]
    fn the_accepted_forms_parse_and_print_back() {
        for text in [
            "every:4",
            "every:4,from:150",
            "nth:1",
            "seed:18446744073709551615,percent:100",
            "seed:3,percent:20,from:140",
            "count",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        assert_eq!(parse("nth:12"), Ok(Mode::Nth(12)));
        assert_eq!(
            parse("seed:7,percent:5"),
            Ok(Mode::Seeded {
                seed: 7,
                percent: 5,
                from: 1
            })
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_forms() {
        for text in [
            "every:0",
            "nth:",
            "nth:-1",
            "sometimes",
            "seed:1",
            "seed:x,percent:5",
            "seed:1,percent:101",
            "percent:5,seed:1",
            "counts",
            "every:2,from:0",
            "every:0,from:3",
            "every:2,from:",
            "nth:3,from:2",
            "count,from:2",
        ] {
            let e = parse(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("guest.lowres") && msg.contains("every:N") && msg.contains(text),
                "{msg}"
            );
        }
    }
}

//! The `DbgPrint` format engine: the Windows kernel printf subset, with LLP64 sizes.
//!
//! Supported: flags `-` `0` `+` ` ` `#`, width and precision (digits or `*`), length modifiers
//! `h` `hh` `l` `ll` `I64` `I32` `I` `z`, conversions `d i u x X o p c s %`. On x64 Windows
//! `long` is 32 bits, so `%lx` prints the low 32 bits while `%llx`/`%I64x` print 64; `%p` prints
//! 16 upper-case hex digits, as the Windows kernel does. An unknown conversion is copied out
//! verbatim, so no format string can make the engine misbehave.

/// Where the variadic arguments come from.
pub trait ArgSource {
    /// The next argument slot (every win64 variadic argument occupies 8 bytes).
    fn next_arg(&mut self) -> u64;
    /// Emits the NUL-terminated string at `ptr`, at most `max` bytes.
    fn emit_str(&mut self, ptr: u64, max: usize, out: &mut dyn FnMut(u8));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    Default,
    Short,
    Char,
    Long64,
    Pointer,
}

#[derive(Default, Clone, Copy)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
}

fn pad(out: &mut dyn FnMut(u8), n: usize, c: u8) {
    for _ in 0..n {
        out(c);
    }
}

fn emit_number(out: &mut dyn FnMut(u8), spec: Spec, neg: bool, mut v: u64, base: u64, upper: bool) {
    let digits = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf = [0u8; 24];
    let mut n = 0;
    while v != 0 {
        buf[n] = digits[(v % base) as usize];
        v /= base;
        n += 1;
    }
    let min_digits = spec.precision.unwrap_or(1);
    let zeros_prec = min_digits.saturating_sub(n);
    let sign: &[u8] = if neg {
        b"-"
    } else if spec.plus {
        b"+"
    } else if spec.space {
        b" "
    } else {
        b""
    };
    let prefix: &[u8] = match (spec.alt, base, n) {
        (true, 16, 1..) => {
            if upper {
                b"0X"
            } else {
                b"0x"
            }
        }
        (true, 8, 1..) if zeros_prec == 0 => b"0",
        _ => b"",
    };
    let body = sign.len() + prefix.len() + zeros_prec + n;
    let fill = spec.width.saturating_sub(body);
    let zero_fill = spec.zero && !spec.left && spec.precision.is_none();
    if !spec.left && !zero_fill {
        pad(out, fill, b' ');
    }
    sign.iter().chain(prefix).for_each(|&c| out(c));
    if zero_fill {
        pad(out, fill, b'0');
    }
    pad(out, zeros_prec, b'0');
    (0..n).rev().for_each(|i| out(buf[i]));
    if spec.left {
        pad(out, fill, b' ');
    }
}

/// Formats `fmt` (without its terminating NUL) with arguments from `args` into `out`.
pub fn format(fmt: &[u8], args: &mut dyn ArgSource, out: &mut dyn FnMut(u8)) {
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c != b'%' {
            out(c);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let mut spec = Spec::default();
        while i < fmt.len() {
            match fmt[i] {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        if i < fmt.len() && fmt[i] == b'*' {
            let w = args.next_arg() as u32 as i32;
            if w < 0 {
                spec.left = true;
            }
            spec.width = (w.unsigned_abs() as usize).min(256);
            i += 1;
        } else {
            while i < fmt.len() && fmt[i].is_ascii_digit() {
                spec.width = (spec.width * 10 + (fmt[i] - b'0') as usize).min(256);
                i += 1;
            }
        }
        if i < fmt.len() && fmt[i] == b'.' {
            i += 1;
            let mut p = 0usize;
            if i < fmt.len() && fmt[i] == b'*' {
                let v = args.next_arg() as u32 as i32;
                p = v.max(0) as usize;
                i += 1;
            } else {
                while i < fmt.len() && fmt[i].is_ascii_digit() {
                    p = (p * 10 + (fmt[i] - b'0') as usize).min(4096);
                    i += 1;
                }
            }
            spec.precision = Some(p);
        }
        let mut size = Size::Default;
        let rest = &fmt[i..];
        if rest.starts_with(b"I64") {
            size = Size::Long64;
            i += 3;
        } else if rest.starts_with(b"I32") {
            i += 3;
        } else if rest.starts_with(b"ll") {
            size = Size::Long64;
            i += 2;
        } else if rest.starts_with(b"hh") {
            size = Size::Char;
            i += 2;
        } else if let Some(&m) = rest.first() {
            match m {
                b'l' => i += 1, // LLP64: long is 32 bits
                b'h' => {
                    size = Size::Short;
                    i += 1
                }
                b'I' | b'z' => {
                    size = Size::Pointer;
                    i += 1
                }
                _ => {}
            }
        }
        let Some(&conv) = fmt.get(i) else {
            fmt[start..].iter().for_each(|&c| out(c));
            return;
        };
        i += 1;
        let unsigned = |raw: u64| match size {
            Size::Default => raw as u32 as u64,
            Size::Short => raw as u16 as u64,
            Size::Char => raw as u8 as u64,
            Size::Long64 | Size::Pointer => raw,
        };
        match conv {
            b'd' | b'i' => {
                let raw = args.next_arg();
                let v: i64 = match size {
                    Size::Default => raw as u32 as i32 as i64,
                    Size::Short => raw as u16 as i16 as i64,
                    Size::Char => raw as u8 as i8 as i64,
                    Size::Long64 | Size::Pointer => raw as i64,
                };
                emit_number(out, spec, v < 0, v.unsigned_abs(), 10, false);
            }
            b'u' => emit_number(out, spec, false, unsigned(args.next_arg()), 10, false),
            b'x' | b'X' => emit_number(
                out,
                spec,
                false,
                unsigned(args.next_arg()),
                16,
                conv == b'X',
            ),
            b'o' => emit_number(out, spec, false, unsigned(args.next_arg()), 8, false),
            b'p' => {
                let s = Spec {
                    zero: true,
                    width: spec.width.max(16),
                    ..spec
                };
                emit_number(out, s, false, args.next_arg(), 16, true);
            }
            b'c' => {
                let ch = args.next_arg() as u8;
                let fill = spec.width.saturating_sub(1);
                if !spec.left {
                    pad(out, fill, b' ');
                }
                out(ch);
                if spec.left {
                    pad(out, fill, b' ');
                }
            }
            b's' => {
                let ptr = args.next_arg();
                let max = spec.precision.unwrap_or(4096);
                let mut tmp = [0u8; 256];
                let mut n = 0usize;
                let mut overflow = false;
                // Collect up to 256 bytes to compute padding; longer strings are streamed.
                if spec.width == 0 {
                    args.emit_str(ptr, max, out);
                } else {
                    args.emit_str(ptr, max, &mut |b| {
                        if n < tmp.len() {
                            tmp[n] = b;
                            n += 1;
                        } else {
                            overflow = true;
                        }
                    });
                    let fill = if overflow {
                        0
                    } else {
                        spec.width.saturating_sub(n)
                    };
                    if !spec.left {
                        pad(out, fill, b' ');
                    }
                    tmp[..n].iter().for_each(|&b| out(b));
                    if spec.left {
                        pad(out, fill, b' ');
                    }
                }
            }
            b'%' => out(b'%'),
            _ => fmt[start..i].iter().for_each(|&c| out(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    struct Args {
        vals: Vec<u64>,
        strs: Vec<&'static str>,
        pos: usize,
    }

    impl ArgSource for Args {
        fn next_arg(&mut self) -> u64 {
            let v = self.vals.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            v
        }
        fn emit_str(&mut self, ptr: u64, max: usize, out: &mut dyn FnMut(u8)) {
            if ptr == 0 {
                b"(null)".iter().for_each(|&b| out(b));
                return;
            }
            let s = self.strs[(ptr - 1) as usize];
            s.bytes().take(max).for_each(out);
        }
    }

    fn f(fmt: &str, vals: &[u64], strs: &[&'static str]) -> String {
        let mut a = Args {
            vals: vals.to_vec(),
            strs: strs.to_vec(),
            pos: 0,
        };
        let mut s = Vec::new();
        format(fmt.as_bytes(), &mut a, &mut |b| s.push(b));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn plain_text_and_percent() {
        assert_eq!(
            f("rnic: NOP completed\n", &[], &[]),
            "rnic: NOP completed\n"
        );
        assert_eq!(f("100%%", &[], &[]), "100%");
    }

    #[test]
    fn integers_follow_llp64() {
        assert_eq!(f("%d", &[(-5i64) as u64], &[]), "-5");
        assert_eq!(f("%d", &[0xFFFF_FFFF], &[]), "-1");
        assert_eq!(f("%u", &[0x1_0000_0007], &[]), "7");
        assert_eq!(f("%x", &[0xDEAD_BEEF_1234], &[]), "beef1234");
        assert_eq!(f("%lx", &[0xDEAD_BEEF_1234], &[]), "beef1234");
        assert_eq!(f("%llx", &[0xDEAD_BEEF_1234], &[]), "deadbeef1234");
        assert_eq!(f("%I64X", &[0xDEAD_BEEF_1234], &[]), "DEADBEEF1234");
        assert_eq!(f("%lld", &[(-9i64) as u64], &[]), "-9");
        assert_eq!(f("%hx", &[0x12345], &[]), "2345");
        assert_eq!(f("%d", &[0], &[]), "0");
    }

    #[test]
    fn width_precision_flags() {
        assert_eq!(f("%08x", &[0xABC], &[]), "00000abc");
        assert_eq!(f("%8x|", &[0xABC], &[]), "     abc|");
        assert_eq!(f("%-6d|", &[42], &[]), "42    |");
        assert_eq!(f("%#x", &[255], &[]), "0xff");
        assert_eq!(f("%+d", &[3], &[]), "+3");
        assert_eq!(f("%.3d", &[7], &[]), "007");
        assert_eq!(f("%*d", &[5, 1], &[]), "    1");
        assert_eq!(f("%05d", &[(-42i64) as u64], &[]), "-0042");
    }

    #[test]
    fn pointers_chars_strings() {
        assert_eq!(f("%p", &[0x1000], &[]), "0000000000001000");
        assert_eq!(f("%c%c", &[b'o' as u64, b'k' as u64], &[]), "ok");
        assert_eq!(f("[%s]", &[1], &["hello"]), "[hello]");
        assert_eq!(f("[%s]", &[0], &[]), "[(null)]");
        assert_eq!(f("[%.3s]", &[1], &["hello"]), "[hel]");
        assert_eq!(f("[%6s]", &[1], &["ab"]), "[    ab]");
        assert_eq!(f("[%-4s]", &[1], &["ab"]), "[ab  ]");
        assert_eq!(
            f(
                "%s: %d of %u at 0x%llx\n",
                &[1, 3, 4, 0xFEE0_0000],
                &["rnic"]
            ),
            "rnic: 3 of 4 at 0xfee00000\n"
        );
    }

    #[test]
    fn malformed_formats_are_copied() {
        assert_eq!(f("%", &[], &[]), "%");
        assert_eq!(f("abc%l", &[], &[]), "abc%l");
        assert_eq!(f("%q|%d", &[9], &[]), "%q|9");
        assert_eq!(f("%99999999999999999999d", &[1], &[]).len(), 256);
    }
}

//! The lookup rules of the guest's export table: how an import `module!name` of a driver image
//! finds the guest function that implements it.
//!
//! The kernel builds the rows (function addresses are only known at run time) and hands
//! [`ExportTable::resolve`] to the PE loader ([`crate::pe::PeInfo::load`]) as its resolver.
//! Module names compare case-insensitively (Windows' loader does the same: images name
//! `NDIS.SYS` or `ndis.sys`), function names exactly.

/// One exported function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    /// Module the function is exported from, as Windows names it (`ndis.sys`, `ntoskrnl.exe`).
    pub module: &'static str,
    /// The function's exported name (case-sensitive).
    pub name: &'static str,
    /// Guest address of the implementation.
    pub address: u64,
}

/// A table of exports from a fixed set of modules.
#[derive(Debug, Clone, Copy)]
pub struct ExportTable<'a> {
    modules: &'a [&'a str],
    exports: &'a [Export],
}

impl<'a> ExportTable<'a> {
    /// A table over `exports`, accepting imports only from `modules` (a module the guest
    /// provides may still lack a given function).
    pub const fn new(modules: &'a [&'a str], exports: &'a [Export]) -> Self {
        ExportTable { modules, exports }
    }

    /// Whether the guest provides module `module` at all.
    pub fn provides_module(&self, module: &str) -> bool {
        self.modules.iter().any(|m| m.eq_ignore_ascii_case(module))
    }

    /// Address of `module!name`, or `None` when the guest does not provide it.
    pub fn resolve(&self, module: &str, name: &str) -> Option<u64> {
        if !self.provides_module(module) {
            return None;
        }
        // Every guest instruction is emulated on the nested KVM here (about 1.5 us each), so a
        // row is rejected on its length and last byte before any byte-wise compare: names of
        // equal length rarely share their last byte, and the byte compare of the library's
        // `memcmp` costs several instructions per byte.
        let last = *name.as_bytes().last()?;
        self.exports
            .iter()
            .find(|e| {
                e.name.len() == name.len()
                    && e.name.as_bytes()[name.len() - 1] == last
                    && e.name == name
                    && e.module.eq_ignore_ascii_case(module)
            })
            .map(|e| e.address)
    }

    /// The first `(module, name)` of `required` the table cannot resolve, if any (the boot
    /// checks that every import the ABI crate lists is exported).
    pub fn first_missing<'r>(&self, required: &[(&'r str, &'r str)]) -> Option<(&'r str, &'r str)> {
        required
            .iter()
            .copied()
            .find(|&(m, n)| self.resolve(m, n).is_none())
    }
}

/// `a == b`, usable in constants.
const fn const_eq(a: &str, b: &str, ignore_ascii_case: bool) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        let (x, y) = if ignore_ascii_case {
            (a[i].to_ascii_lowercase(), b[i].to_ascii_lowercase())
        } else {
            (a[i], b[i])
        };
        if x != y {
            return false;
        }
        i += 1;
    }
    true
}

/// Index in `required` of the first `(module, name)` that no row of `exported` provides, by the
/// rules of [`ExportTable::resolve`] (module case-insensitive, name exact), or `None`.
///
/// A `const fn`, so that the kernel checks at build time that its export table covers every
/// import the ABI crate lists (a boot-time check cost about 28,000 emulated instructions, some
/// 40 ms, on every boot). Quadratic: for tables of a few hundred rows.
pub const fn first_missing_at_build(
    exported: &[(&str, &str)],
    required: &[(&str, &str)],
) -> Option<usize> {
    let mut r = 0;
    while r < required.len() {
        let (module, name) = required[r];
        let mut e = 0;
        let mut found = false;
        while e < exported.len() && !found {
            found = const_eq(exported[e].1, name, false) && const_eq(exported[e].0, module, true);
            e += 1;
        }
        if !found {
            return Some(r);
        }
        r += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pe::{tests::sample_image, PeError, PeInfo};

    const MODULES: [&str; 2] = ["ndis.sys", "ntoskrnl.exe"];
    const EXPORTS: [Export; 3] = [
        Export {
            module: "ndis.sys",
            name: "NdisSetEvent",
            address: 0x1000,
        },
        Export {
            module: "ndis.sys",
            name: "NdisWaitEvent",
            address: 0x2000,
        },
        Export {
            module: "ntoskrnl.exe",
            name: "DbgPrint",
            address: 0x3000,
        },
    ];

    fn table() -> ExportTable<'static> {
        ExportTable::new(&MODULES, &EXPORTS)
    }

    #[test]
    fn module_case_is_ignored_function_case_is_not() {
        let t = table();
        assert_eq!(t.resolve("ndis.sys", "NdisSetEvent"), Some(0x1000));
        assert_eq!(t.resolve("NDIS.SYS", "NdisSetEvent"), Some(0x1000));
        assert_eq!(t.resolve("ntoskrnl.EXE", "DbgPrint"), Some(0x3000));
        assert_eq!(t.resolve("ndis.sys", "ndissetevent"), None);
    }

    #[test]
    fn a_function_resolves_only_from_its_own_module() {
        let t = table();
        assert_eq!(t.resolve("ndis.sys", "DbgPrint"), None);
        assert_eq!(t.resolve("ntoskrnl.exe", "NdisSetEvent"), None);
    }

    #[test]
    fn unknown_modules_resolve_nothing() {
        let t = table();
        assert!(!t.provides_module("hal.dll"));
        assert_eq!(t.resolve("hal.dll", "DbgPrint"), None);
        // A row whose module is not in the provided set is unreachable.
        let rows = [Export {
            module: "netio.sys",
            name: "NmrRegisterProvider",
            address: 0x4000,
        }];
        let t = ExportTable::new(&MODULES, &rows);
        assert_eq!(t.resolve("netio.sys", "NmrRegisterProvider"), None);
    }

    #[test]
    fn first_missing_names_the_gap() {
        let t = table();
        assert_eq!(
            t.first_missing(&[("ndis.sys", "NdisSetEvent"), ("ntoskrnl.exe", "DbgPrint")]),
            None
        );
        assert_eq!(
            t.first_missing(&[
                ("ndis.sys", "NdisSetEvent"),
                ("ndis.sys", "NdisFreeMemory"),
                ("hal.dll", "KeStallExecutionProcessor"),
            ]),
            Some(("ndis.sys", "NdisFreeMemory"))
        );
    }

    #[test]
    fn the_build_time_check_follows_the_lookup_rules() {
        let exported: Vec<(&str, &str)> = EXPORTS.iter().map(|e| (e.module, e.name)).collect();
        assert_eq!(
            first_missing_at_build(
                &exported,
                &[("NDIS.SYS", "NdisSetEvent"), ("ntoskrnl.exe", "DbgPrint")]
            ),
            None
        );
        // Function names are exact; a function resolves only from its own module.
        assert_eq!(
            first_missing_at_build(
                &exported,
                &[("ndis.sys", "NdisWaitEvent"), ("ndis.sys", "ndissetevent")]
            ),
            Some(1)
        );
        assert_eq!(
            first_missing_at_build(&exported, &[("ndis.sys", "DbgPrint")]),
            Some(0)
        );
        // A prefix or an extension of a name is another name.
        assert_eq!(
            first_missing_at_build(&exported, &[("ndis.sys", "NdisSetEven")]),
            Some(0)
        );
        assert_eq!(
            first_missing_at_build(&exported, &[("ndis.sys", "NdisSetEventX")]),
            Some(0)
        );
        // Evaluated by the compiler.
        const MISSING: Option<usize> = first_missing_at_build(
            &[("ndis.sys", "A")],
            &[("NDIS.sys", "A"), ("ndis.sys", "B")],
        );
        assert_eq!(MISSING, Some(1));
    }

    #[test]
    fn names_of_equal_length_and_last_byte_still_compare_in_full() {
        let rows = [
            Export {
                module: "ndis.sys",
                name: "NdisAllocateMdl",
                address: 0x1000,
            },
            Export {
                module: "ndis.sys",
                name: "NdisFreeXxxxMdl",
                address: 0x2000,
            },
        ];
        let t = ExportTable::new(&MODULES, &rows);
        assert_eq!(t.resolve("ndis.sys", "NdisFreeXxxxMdl"), Some(0x2000));
        assert_eq!(t.resolve("ndis.sys", "NdisFreeYyyyMdl"), None);
        assert_eq!(t.resolve("ndis.sys", ""), None);
    }

    #[test]
    fn loader_fills_the_iat_from_the_table() {
        // The sample image imports ndis.sys!NdisSetEvent and ndis.sys!DbgPrint.
        let image = sample_image();
        let info = PeInfo::parse(&image).unwrap();
        let mut dest = vec![0u8; info.size_of_image as usize];
        let rows = [
            EXPORTS[0],
            Export {
                module: "NDIS.SYS",
                name: "DbgPrint",
                address: 0x5000,
            },
        ];
        let t = ExportTable::new(&MODULES, &rows);
        let stats = info
            .load(&image, &mut dest, 0x40_0000, &mut |m, n| t.resolve(m, n))
            .unwrap();
        assert_eq!(stats.imports_resolved, 2);
        let iat = |rva: usize| u64::from_le_bytes(dest[rva..rva + 8].try_into().unwrap());
        assert_eq!(iat(0x2060), 0x1000);
        assert_eq!(iat(0x2068), 0x5000);
    }

    #[test]
    fn loader_reports_what_the_table_lacks() {
        let image = sample_image();
        let info = PeInfo::parse(&image).unwrap();
        let mut dest = vec![0u8; info.size_of_image as usize];
        let t = table();
        let err = info
            .load(&image, &mut dest, 0x40_0000, &mut |m, n| t.resolve(m, n))
            .unwrap_err();
        assert_eq!(
            err,
            PeError::UnresolvedImport {
                module: "ndis.sys".into(),
                name: "DbgPrint".into()
            }
        );
    }
}

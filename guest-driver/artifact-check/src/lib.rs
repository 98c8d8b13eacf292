//! Static checks on the built driver image `rnic.sys`.
//!
//! [`check_driver_image`] verifies, from the bytes alone, that the image is something a Windows
//! (or our guest's) kernel loader accepts as a driver:
//!
//! * a PE image with a PE32+ optional header (magic 0x20B) for machine x86-64 (0x8664);
//! * subsystem NATIVE (1);
//! * its entry point is `DriverEntry`. The build passes `/EXPORT:DriverEntry` to the linker, so
//!   the image carries an export table naming `DriverEntry`; the check requires that export and
//!   requires its RVA to equal `AddressOfEntryPoint`. This uses only what is in the image (no
//!   side files); an image without that export is rejected, since nothing else in it names the
//!   function;
//! * the entry point lies in an executable section;
//! * every import comes from a kernel module (`ndis.sys`, `ntoskrnl.exe`, `netio.sys`,
//!   `hal.dll`, case-insensitive) and is imported by name.
//!
//! The report lists the imported functions so callers (tests, the guest's plans) can compare them
//! with `ndis_abi::SKELETON_IMPORTS`.
//!
//! [`inf`] reads the driver's INF (`guest-driver/rnic-miniport/rnic.inf`) for its structure test.
//!
//! This crate only reads images and INF files; it never builds or modifies one.

pub mod inf;
pub mod winexports;

use std::fmt;

use goblin::pe::PE;

/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
pub const PE32_PLUS_MAGIC: u16 = 0x20B;
/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_X86_64: u16 = 0x8664;
/// `IMAGE_SUBSYSTEM_NATIVE`.
pub const SUBSYSTEM_NATIVE: u16 = 1;
/// `IMAGE_SCN_MEM_EXECUTE`.
const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// Modules a kernel-mode NDIS driver may import from.
pub const ALLOWED_IMPORT_MODULES: &[&str] = &["ndis.sys", "ntoskrnl.exe", "netio.sys", "hal.dll"];

/// Why an image is not an acceptable driver image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtifactError {
    /// goblin cannot parse the file as PE (the value is its reason).
    #[error("not a PE image ({0}); expected the rnic.sys produced by scripts/build-driver.sh")]
    NotPe(String),
    /// The PE has no optional header.
    #[error("PE image has no optional header; the linker output is damaged, rebuild with scripts/build-driver.sh")]
    NoOptionalHeader,
    /// The optional header's magic (the value) is not PE32+.
    #[error("optional header magic is {0:#x}, expected {PE32_PLUS_MAGIC:#x} (PE32+); build for x86_64-pc-windows-msvc")]
    NotPe32Plus(u16),
    /// The COFF machine (the value) is not x86-64.
    #[error("machine is {0:#x}, expected {MACHINE_X86_64:#x} (x86-64); build for x86_64-pc-windows-msvc")]
    WrongMachine(u16),
    /// The subsystem (the value) is not NATIVE.
    #[error("subsystem is {0}, expected {SUBSYSTEM_NATIVE} (NATIVE); link with /SUBSYSTEM:NATIVE")]
    WrongSubsystem(u16),
    /// The image has no `DriverEntry` export to compare the entry point with.
    #[error("image does not export DriverEntry, so its entry point cannot be verified; link with /EXPORT:DriverEntry")]
    NoDriverEntryExport,
    /// The entry point is not `DriverEntry`.
    #[error("entry point RVA {entry:#x} is not DriverEntry (RVA {driver_entry:#x}); link with /ENTRY:DriverEntry")]
    EntryNotDriverEntry {
        /// `AddressOfEntryPoint`.
        entry: u32,
        /// RVA of the `DriverEntry` export.
        driver_entry: u32,
    },
    /// The entry point (the value, an RVA) lies outside every executable section.
    #[error("entry point RVA {0:#x} is not inside an executable section; the image is malformed")]
    EntryNotExecutable(u32),
    /// An import from a module a kernel driver may not use.
    #[error("imports {function} from {module}; a kernel driver may import only from {allowed}")]
    ForbiddenImport {
        /// The module named by the image.
        module: String,
        /// The imported function.
        function: String,
        /// The allowed modules, comma-separated.
        allowed: String,
    },
    /// An import by ordinal instead of by name.
    #[error("imports ordinal {ordinal} from {module}; import kernel functions by name")]
    ImportByOrdinal {
        /// The module named by the image.
        module: String,
        /// The ordinal.
        ordinal: u16,
    },
}

/// One imported function.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImportedFunction {
    /// Module name as written in the image.
    pub module: String,
    /// The function's name.
    pub function: String,
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverImageReport {
    /// COFF `Machine` (x86-64).
    pub machine: u16,
    /// Optional-header `Subsystem` (NATIVE).
    pub subsystem: u16,
    /// `ImageBase`: the address the image was linked for.
    pub image_base: u64,
    /// `SizeOfImage` in bytes.
    pub size_of_image: u32,
    /// `AddressOfEntryPoint` (an RVA).
    pub entry_rva: u32,
    /// RVA of the `DriverEntry` export (equal to `entry_rva` in an accepted image).
    pub driver_entry_rva: u32,
    /// `DllCharacteristics` (`IMAGE_DLLCHARACTERISTICS_*`: NX, dynamic base, ...).
    pub dll_characteristics: u16,
    /// Section names in file order.
    pub sections: Vec<String>,
    /// Sorted by (module, function).
    pub imports: Vec<ImportedFunction>,
}

impl DriverImageReport {
    /// Imports as `(module lower-cased, function)` pairs, sorted: convenient to compare with a
    /// list such as `ndis_abi::SKELETON_IMPORTS`.
    pub fn import_pairs(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .imports
            .iter()
            .map(|i| (i.module.to_ascii_lowercase(), i.function.clone()))
            .collect();
        v.sort();
        v
    }
}

impl fmt::Display for DriverImageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "PE32+ x86-64 native driver image: OK")?;
        writeln!(f, "  image base        {:#x}", self.image_base)?;
        writeln!(f, "  size of image     {:#x}", self.size_of_image)?;
        writeln!(
            f,
            "  entry point RVA   {:#x} (= DriverEntry)",
            self.entry_rva
        )?;
        writeln!(f, "  dll characteristics {:#06x}", self.dll_characteristics)?;
        writeln!(f, "  sections          {}", self.sections.join(" "))?;
        writeln!(f, "  imports ({}):", self.imports.len())?;
        for i in &self.imports {
            writeln!(f, "    {}!{}", i.module, i.function)?;
        }
        Ok(())
    }
}

/// Checks a driver image; see the crate documentation for the rules.
pub fn check_driver_image(bytes: &[u8]) -> Result<DriverImageReport, ArtifactError> {
    let pe = PE::parse(bytes).map_err(|e| ArtifactError::NotPe(e.to_string()))?;
    let opt = pe
        .header
        .optional_header
        .ok_or(ArtifactError::NoOptionalHeader)?;
    let magic = opt.standard_fields.magic;
    if magic != PE32_PLUS_MAGIC {
        return Err(ArtifactError::NotPe32Plus(magic));
    }
    let machine = pe.header.coff_header.machine;
    if machine != MACHINE_X86_64 {
        return Err(ArtifactError::WrongMachine(machine));
    }
    let subsystem = opt.windows_fields.subsystem;
    if subsystem != SUBSYSTEM_NATIVE {
        return Err(ArtifactError::WrongSubsystem(subsystem));
    }

    let entry_rva = opt.standard_fields.address_of_entry_point as u32;
    let driver_entry_rva = pe
        .exports
        .iter()
        .find(|e| e.name == Some("DriverEntry") && e.reexport.is_none())
        .map(|e| e.rva as u32)
        .ok_or(ArtifactError::NoDriverEntryExport)?;
    if entry_rva != driver_entry_rva {
        return Err(ArtifactError::EntryNotDriverEntry {
            entry: entry_rva,
            driver_entry: driver_entry_rva,
        });
    }
    let in_exec_section = pe.sections.iter().any(|s| {
        let start = s.virtual_address;
        let len = s.virtual_size.max(s.size_of_raw_data);
        s.characteristics & SCN_MEM_EXECUTE != 0
            && entry_rva >= start
            && u64::from(entry_rva) < u64::from(start) + u64::from(len)
    });
    if !in_exec_section {
        return Err(ArtifactError::EntryNotExecutable(entry_rva));
    }

    let mut imports = Vec::with_capacity(pe.imports.len());
    for imp in &pe.imports {
        let allowed = ALLOWED_IMPORT_MODULES
            .iter()
            .any(|m| m.eq_ignore_ascii_case(imp.dll));
        if imp.rva == 0 && imp.name.starts_with("ORDINAL ") {
            return Err(ArtifactError::ImportByOrdinal {
                module: imp.dll.to_string(),
                ordinal: imp.ordinal,
            });
        }
        if !allowed {
            return Err(ArtifactError::ForbiddenImport {
                module: imp.dll.to_string(),
                function: imp.name.to_string(),
                allowed: ALLOWED_IMPORT_MODULES.join(", "),
            });
        }
        imports.push(ImportedFunction {
            module: imp.dll.to_string(),
            function: imp.name.to_string(),
        });
    }
    imports.sort();

    Ok(DriverImageReport {
        machine,
        subsystem,
        image_base: opt.windows_fields.image_base,
        size_of_image: opt.windows_fields.size_of_image,
        entry_rva,
        driver_entry_rva,
        dll_characteristics: opt.windows_fields.dll_characteristics,
        sections: pe
            .sections
            .iter()
            .map(|s| {
                String::from_utf8_lossy(&s.name)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect(),
        imports,
    })
}

#[cfg(test)]
mod synth;

#[cfg(test)]
mod tests {
    use super::synth::{ImageSpec, PeKind};
    use super::*;

    fn good() -> ImageSpec {
        ImageSpec::driver()
    }

    #[test]
    fn synthetic_driver_passes() {
        let report = check_driver_image(&good().build()).expect("valid image");
        assert_eq!(report.machine, MACHINE_X86_64);
        assert_eq!(report.subsystem, SUBSYSTEM_NATIVE);
        assert_eq!(report.entry_rva, report.driver_entry_rva);
        assert_eq!(
            report.import_pairs(),
            vec![
                (
                    "ndis.sys".to_string(),
                    "NdisMRegisterMiniportDriver".to_string()
                ),
                ("ntoskrnl.exe".to_string(), "DbgPrint".to_string()),
            ]
        );
        let text = report.to_string();
        assert!(
            text.contains("ndis.sys!NdisMRegisterMiniportDriver"),
            "{text}"
        );
    }

    #[test]
    fn rejects_non_pe() {
        let err = check_driver_image(b"this is not a PE file at all, just text").unwrap_err();
        assert!(matches!(err, ArtifactError::NotPe(_)), "{err}");
        assert!(matches!(
            check_driver_image(&[]),
            Err(ArtifactError::NotPe(_))
        ));
    }

    #[test]
    fn rejects_pe32() {
        let mut spec = good();
        spec.kind = PeKind::Pe32;
        assert_eq!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::NotPe32Plus(0x10B))
        );
    }

    #[test]
    fn rejects_wrong_machine() {
        let mut spec = good();
        spec.machine = 0xAA64; // arm64
        assert_eq!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::WrongMachine(0xAA64))
        );
    }

    #[test]
    fn rejects_wrong_subsystem() {
        let mut spec = good();
        spec.subsystem = 3; // WINDOWS_CUI
        assert_eq!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::WrongSubsystem(3))
        );
    }

    #[test]
    fn rejects_missing_driver_entry_export() {
        let mut spec = good();
        spec.export_name = None;
        assert_eq!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::NoDriverEntryExport)
        );
        let mut spec = good();
        spec.export_name = Some("SomethingElse");
        assert_eq!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::NoDriverEntryExport)
        );
    }

    #[test]
    fn rejects_entry_elsewhere() {
        let mut spec = good();
        spec.entry_offset = 0x10;
        let err = check_driver_image(&spec.build()).unwrap_err();
        assert!(
            matches!(err, ArtifactError::EntryNotDriverEntry { entry, driver_entry } if entry == driver_entry + 0x10),
            "{err}"
        );
    }

    #[test]
    fn rejects_entry_outside_code() {
        let mut spec = good();
        spec.text_executable = false;
        assert!(matches!(
            check_driver_image(&spec.build()),
            Err(ArtifactError::EntryNotExecutable(_))
        ));
    }

    #[test]
    fn rejects_user_mode_import() {
        let mut spec = good();
        spec.imports.push(("KERNEL32.dll", "ExitProcess"));
        let err = check_driver_image(&spec.build()).unwrap_err();
        assert!(
            matches!(&err, ArtifactError::ForbiddenImport { module, function, .. }
                if module == "KERNEL32.dll" && function == "ExitProcess"),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("ndis.sys, ntoskrnl.exe, netio.sys, hal.dll"));
    }

    #[test]
    fn module_names_are_case_insensitive() {
        let mut spec = good();
        spec.imports = vec![
            ("NDIS.SYS", "NdisFreeMemory"),
            ("HAL.dll", "KeStallExecutionProcessor"),
        ];
        let report = check_driver_image(&spec.build()).expect("kernel modules in any case");
        assert_eq!(
            report.import_pairs(),
            vec![
                (
                    "hal.dll".to_string(),
                    "KeStallExecutionProcessor".to_string()
                ),
                ("ndis.sys".to_string(), "NdisFreeMemory".to_string()),
            ]
        );
    }

    #[test]
    fn rejects_truncated_real_looking_image() {
        let bytes = good().build();
        assert!(check_driver_image(&bytes[..0x100]).is_err());
    }
}

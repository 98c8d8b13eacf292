//! PE32+ (x64 Windows image) parser and loader.
//!
//! [`PeInfo::parse`] validates the headers of a file image; [`PeInfo::load`] lays the image out in
//! a caller-provided buffer that will live at `load_base`: it copies headers and sections,
//! zero-fills the rest, applies base relocations (only `IMAGE_REL_BASED_DIR64`, with `ABSOLUTE`
//! padding skipped) and fills the import address table by name through a resolver. Every
//! malformed input is reported as a [`PeError`]; nothing here panics on bad data.

use alloc::string::String;
use alloc::vec::Vec;

/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_AMD64: u16 = 0x8664;
/// Optional-header magic of PE32+.
pub const PE32PLUS_MAGIC: u16 = 0x20B;
const IMAGE_FILE_EXECUTABLE_IMAGE: u16 = 0x0002;
const IMAGE_FILE_RELOCS_STRIPPED: u16 = 0x0001;
const DIR_IMPORT: usize = 1;
const DIR_BASERELOC: usize = 5;
const REL_ABSOLUTE: u16 = 0;
const REL_DIR64: u16 = 10;
/// Largest image the loader accepts (SizeOfImage).
pub const MAX_IMAGE_SIZE: u32 = 64 << 20;
/// `IMAGE_SUBSYSTEM_NATIVE`: the subsystem of kernel-mode drivers (`/SUBSYSTEM:NATIVE`).
pub const SUBSYSTEM_NATIVE: u16 = 1;
/// Most imported functions the loader resolves in one image. Real kernel drivers import a few
/// hundred; every import costs the guest about a thousand emulated instructions here, so an
/// image past this bound is refused at once instead of looking like a hang.
pub const MAX_IMPORTS: usize = 4096;
const MAX_NAME: usize = 256;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    /// The file ends inside a header or table.
    #[error("file too small or truncated at {what}")]
    Truncated {
        /// Which header or table was cut short.
        what: &'static str,
    },
    /// The file does not start with `MZ`.
    #[error("no MZ signature: not a PE image")]
    NoDosSignature,
    /// `e_lfanew` (the value) does not point at `PE\0\0`.
    #[error("no PE\\0\\0 signature at offset {0:#x}")]
    NoPeSignature(u32),
    /// The COFF `Machine` (the value) is not AMD64.
    #[error("machine {0:#06x} is not AMD64 (0x8664)")]
    WrongMachine(u16),
    /// The optional header's magic (the value) is not PE32+.
    #[error("optional header magic {0:#x} is not PE32+ (0x20b)")]
    NotPe32Plus(u16),
    /// `IMAGE_FILE_EXECUTABLE_IMAGE` is clear.
    #[error("image is not marked executable")]
    NotExecutable,
    /// A header field has a value the loader refuses (zero or misaligned alignment, size too big, ...).
    #[error("invalid header field {field}: {value:#x}")]
    BadHeader {
        /// The field's name in the PE specification.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A section header describes data outside the file or the image.
    #[error("section {index} ({name}) is invalid: {why}")]
    BadSection {
        /// Index of the section in the section table.
        index: usize,
        /// The section's name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The buffer given to [`PeInfo::load`] cannot hold the image.
    #[error("destination buffer of {got} bytes is smaller than SizeOfImage {need}")]
    BufferTooSmall {
        /// `SizeOfImage` in bytes.
        need: usize,
        /// Length of the buffer in bytes.
        got: usize,
    },
    /// The load base differs from `ImageBase` and the image has no relocations.
    #[error("image must be relocated but its relocations were stripped")]
    RelocsStripped,
    /// A base-relocation block is malformed.
    #[error("bad base relocation block at rva {rva:#x}: {why}")]
    BadRelocBlock {
        /// RVA of the block's page.
        rva: u32,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A relocation of a type other than `DIR64`/`ABSOLUTE`.
    #[error("unsupported base relocation type {kind} at rva {rva:#x}")]
    UnsupportedReloc {
        /// The relocation type (`IMAGE_REL_BASED_*`).
        kind: u16,
        /// RVA the relocation applies to.
        rva: u32,
    },
    /// The import directory or one of its tables is malformed.
    #[error("bad import directory: {why}")]
    BadImports {
        /// What is wrong with it.
        why: &'static str,
    },
    /// An import names its function by ordinal, which the guest does not resolve.
    #[error("import by ordinal {ordinal} from {module} is not supported")]
    ImportByOrdinal {
        /// The exporting module.
        module: String,
        /// The ordinal.
        ordinal: u16,
    },
    /// The image's `Subsystem` (the value) is not native: it is not a kernel-mode driver.
    #[error("subsystem {0} is not native (1): a kernel driver is linked with /SUBSYSTEM:NATIVE")]
    NotNative(u16),
    /// The image imports more functions than [`MAX_IMPORTS`].
    #[error("more than {limit} imported functions: refusing to resolve them (a kernel driver imports a few hundred)")]
    TooManyImports {
        /// The bound that was exceeded ([`MAX_IMPORTS`]).
        limit: usize,
    },
    /// The resolver has no function of that name.
    #[error("unresolved import {module}!{name}")]
    UnresolvedImport {
        /// The exporting module named by the image.
        module: String,
        /// The function's name.
        name: String,
    },
}

/// One section header, as far as the loader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name (up to 8 bytes, NULs trimmed).
    pub name: String,
    /// `VirtualAddress`: RVA where the section is loaded.
    pub virtual_address: u32,
    /// `VirtualSize`: bytes the section occupies in memory (the rest past the raw data is zero).
    pub virtual_size: u32,
    /// `PointerToRawData`: file offset of the section's data.
    pub raw_offset: u32,
    /// `SizeOfRawData`: bytes of data in the file.
    pub raw_size: u32,
    /// `Characteristics`: `IMAGE_SCN_*` flags (code, data, read/write/execute).
    pub characteristics: u32,
}

/// A data directory entry (RVA and size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataDir {
    /// RVA of the table.
    pub rva: u32,
    /// Bytes of the table.
    pub size: u32,
}

/// Validated header facts of a PE32+ image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeInfo {
    /// COFF `Machine` (always [`MACHINE_AMD64`] once parsed).
    pub machine: u16,
    /// COFF `Characteristics` (`IMAGE_FILE_*` flags).
    pub characteristics: u16,
    /// `ImageBase`: the address the image was linked for.
    pub image_base: u64,
    /// `AddressOfEntryPoint`: RVA of the entry point (DriverEntry for a driver).
    pub entry_rva: u32,
    /// `SectionAlignment`: alignment of sections in memory (bytes, a power of two).
    pub section_alignment: u32,
    /// `FileAlignment`: alignment of section data in the file (bytes, a power of two).
    pub file_alignment: u32,
    /// `SizeOfImage`: bytes the loaded image occupies (at most [`MAX_IMAGE_SIZE`]).
    pub size_of_image: u32,
    /// `SizeOfHeaders`: bytes of headers copied to the start of the image.
    pub size_of_headers: u32,
    /// `Subsystem` (1 = native, what a kernel driver has).
    pub subsystem: u16,
    /// The import directory (data directory 1).
    pub imports: DataDir,
    /// The base-relocation directory (data directory 5).
    pub relocs: DataDir,
    /// The section table, in file order.
    pub sections: Vec<Section>,
}

/// What [`PeInfo::load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadStats {
    /// Import address table entries filled through the resolver.
    pub imports_resolved: usize,
    /// `DIR64` base relocations applied.
    pub relocations_applied: usize,
}

fn rd_u16(d: &[u8], off: usize, what: &'static str) -> Result<u16, PeError> {
    d.get(off..off.checked_add(2).ok_or(PeError::Truncated { what })?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(PeError::Truncated { what })
}

fn rd_u32(d: &[u8], off: usize, what: &'static str) -> Result<u32, PeError> {
    d.get(off..off.checked_add(4).ok_or(PeError::Truncated { what })?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(PeError::Truncated { what })
}

fn rd_u64(d: &[u8], off: usize, what: &'static str) -> Result<u64, PeError> {
    let lo = rd_u32(d, off, what)? as u64;
    let hi = rd_u32(d, off + 4, what)? as u64;
    Ok(lo | (hi << 32))
}

/// Reads a NUL-terminated name of at most [`MAX_NAME`] printable ASCII bytes, in place (no copy:
/// the loader runs on an emulated CPU where every instruction counts).
fn rd_name(d: &[u8], off: usize) -> Option<&str> {
    let tail = d.get(off..)?;
    // One pass: find the NUL and check each byte on the way.
    let mut len = 0;
    loop {
        let b = *tail.get(len)?;
        if b == 0 {
            break;
        }
        if len == MAX_NAME || !b.is_ascii_graphic() {
            return None;
        }
        len += 1;
    }
    if len == 0 {
        return None;
    }
    // SAFETY: every byte of `tail[..len]` is printable ASCII (checked above), which is UTF-8;
    // a second validation pass would cost emulated instructions for nothing.
    Some(unsafe { core::str::from_utf8_unchecked(&tail[..len]) })
}

fn is_pow2(v: u32) -> bool {
    v != 0 && v & (v - 1) == 0
}

fn bad(field: &'static str, value: impl Into<u64>) -> PeError {
    PeError::BadHeader {
        field,
        value: value.into(),
    }
}

impl PeInfo {
    /// Parses and validates the headers of the file image `data`.
    pub fn parse(data: &[u8]) -> Result<PeInfo, PeError> {
        if rd_u16(data, 0, "DOS header")? != 0x5A4D {
            return Err(PeError::NoDosSignature);
        }
        let lfanew = rd_u32(data, 0x3C, "DOS header")?;
        let pe = lfanew as usize;
        if rd_u32(data, pe, "PE signature")? != 0x0000_4550 {
            return Err(PeError::NoPeSignature(lfanew));
        }
        let coff = pe + 4;
        let machine = rd_u16(data, coff, "COFF header")?;
        if machine != MACHINE_AMD64 {
            return Err(PeError::WrongMachine(machine));
        }
        let nsections = rd_u16(data, coff + 2, "COFF header")? as usize;
        let opt_size = rd_u16(data, coff + 16, "COFF header")? as usize;
        let characteristics = rd_u16(data, coff + 18, "COFF header")?;
        if characteristics & IMAGE_FILE_EXECUTABLE_IMAGE == 0 {
            return Err(PeError::NotExecutable);
        }
        let opt = coff + 20;
        let magic = rd_u16(data, opt, "optional header")?;
        if magic != PE32PLUS_MAGIC {
            return Err(PeError::NotPe32Plus(magic));
        }
        if opt_size < 112 {
            return Err(bad("SizeOfOptionalHeader", opt_size as u64));
        }
        let opt_hdr = data.get(opt..opt + opt_size).ok_or(PeError::Truncated {
            what: "optional header",
        })?;
        let entry_rva = rd_u32(opt_hdr, 16, "optional header")?;
        let image_base = rd_u64(opt_hdr, 24, "optional header")?;
        let section_alignment = rd_u32(opt_hdr, 32, "optional header")?;
        let file_alignment = rd_u32(opt_hdr, 36, "optional header")?;
        let size_of_image = rd_u32(opt_hdr, 56, "optional header")?;
        let size_of_headers = rd_u32(opt_hdr, 60, "optional header")?;
        let subsystem = rd_u16(opt_hdr, 68, "optional header")?;
        if subsystem != SUBSYSTEM_NATIVE {
            return Err(PeError::NotNative(subsystem));
        }
        let ndirs = rd_u32(opt_hdr, 108, "optional header")? as usize;
        if ndirs > 16 || 112 + ndirs * 8 > opt_size {
            return Err(bad("NumberOfRvaAndSizes", ndirs as u64));
        }
        let dir = |i: usize| -> Result<DataDir, PeError> {
            if i >= ndirs {
                return Ok(DataDir::default());
            }
            Ok(DataDir {
                rva: rd_u32(opt_hdr, 112 + i * 8, "data directory")?,
                size: rd_u32(opt_hdr, 116 + i * 8, "data directory")?,
            })
        };
        let imports = dir(DIR_IMPORT)?;
        let relocs = dir(DIR_BASERELOC)?;

        if !is_pow2(section_alignment) || section_alignment < 16 {
            return Err(bad("SectionAlignment", section_alignment));
        }
        if !is_pow2(file_alignment) || file_alignment > section_alignment {
            return Err(bad("FileAlignment", file_alignment));
        }
        if image_base & 0xFFFF != 0 {
            return Err(bad("ImageBase", image_base));
        }
        if size_of_image == 0 || size_of_image > MAX_IMAGE_SIZE {
            return Err(bad("SizeOfImage", size_of_image));
        }
        let sec_table = opt + opt_size;
        let sec_end = sec_table + nsections * 40;
        if size_of_headers as usize > data.len()
            || size_of_headers > size_of_image
            || (size_of_headers as usize) < sec_end
        {
            return Err(bad("SizeOfHeaders", size_of_headers));
        }
        if entry_rva < size_of_headers || entry_rva >= size_of_image {
            return Err(bad("AddressOfEntryPoint", entry_rva));
        }
        for (name, d) in [
            ("import directory", imports),
            ("relocation directory", relocs),
        ] {
            if d.rva != 0 && (d.rva as u64 + d.size as u64 > size_of_image as u64) {
                return Err(bad(name, d.rva));
            }
        }

        let mut sections = Vec::with_capacity(nsections);
        let mut prev_end = size_of_headers as u64;
        for index in 0..nsections {
            let s = sec_table + index * 40;
            let raw = data.get(s..s + 40).ok_or(PeError::Truncated {
                what: "section table",
            })?;
            let name: String = raw[..8]
                .iter()
                .take_while(|&&b| b != 0)
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect();
            let sec = Section {
                name,
                virtual_size: rd_u32(raw, 8, "section table")?,
                virtual_address: rd_u32(raw, 12, "section table")?,
                raw_size: rd_u32(raw, 16, "section table")?,
                raw_offset: rd_u32(raw, 20, "section table")?,
                characteristics: rd_u32(raw, 36, "section table")?,
            };
            let fail = |why| PeError::BadSection {
                index,
                name: sec.name.clone(),
                why,
            };
            if !sec.virtual_address.is_multiple_of(section_alignment) {
                return Err(fail("VirtualAddress not aligned to SectionAlignment"));
            }
            if (sec.virtual_address as u64) < prev_end {
                return Err(fail("overlaps the headers or the previous section"));
            }
            let span = sec.virtual_size.max(sec.raw_size) as u64;
            let end = sec.virtual_address as u64 + span;
            if end > size_of_image as u64 {
                return Err(fail("extends beyond SizeOfImage"));
            }
            if sec.raw_size != 0 && sec.raw_offset as u64 + sec.raw_size as u64 > data.len() as u64
            {
                return Err(fail("raw data lies beyond the end of the file"));
            }
            prev_end = end;
            sections.push(sec);
        }
        Ok(PeInfo {
            machine,
            characteristics,
            image_base,
            entry_rva,
            section_alignment,
            file_alignment,
            size_of_image,
            size_of_headers,
            subsystem,
            imports,
            relocs,
            sections,
        })
    }

    /// Lays the image out in `dest` (which will be mapped at `load_base`), relocates it and
    /// resolves its imports with `resolve(module, name)`. `dest` must hold at least
    /// `size_of_image` bytes; it is fully overwritten (zero-filled where the file has no data).
    pub fn load(
        &self,
        data: &[u8],
        dest: &mut [u8],
        load_base: u64,
        resolve: &mut dyn FnMut(&str, &str) -> Option<u64>,
    ) -> Result<LoadStats, PeError> {
        let size = self.size_of_image as usize;
        if dest.len() < size {
            return Err(PeError::BufferTooSmall {
                need: size,
                got: dest.len(),
            });
        }
        let dest = &mut dest[..size];
        let hdr = self.size_of_headers as usize;
        dest[..hdr].copy_from_slice(&data[..hdr]);
        // Every byte is written once: file data where the file has it, zeros in between (the
        // parser checked that sections ascend without overlapping, after the headers).
        let mut filled = hdr;
        for s in &self.sections {
            let n = if s.virtual_size == 0 {
                s.raw_size
            } else {
                s.raw_size.min(s.virtual_size)
            } as usize;
            if n == 0 {
                continue;
            }
            let src = &data[s.raw_offset as usize..s.raw_offset as usize + n];
            let va = s.virtual_address as usize;
            dest[filled..va].fill(0);
            dest[va..va + n].copy_from_slice(src);
            filled = va + n;
        }
        dest[filled..].fill(0);
        let relocations_applied = self.relocate(dest, load_base)?;
        let imports_resolved = self.resolve_imports(dest, resolve)?;
        Ok(LoadStats {
            imports_resolved,
            relocations_applied,
        })
    }

    fn relocate(&self, img: &mut [u8], load_base: u64) -> Result<usize, PeError> {
        let delta = load_base.wrapping_sub(self.image_base);
        if self.relocs.rva == 0 || self.relocs.size == 0 {
            if delta != 0 && self.characteristics & IMAGE_FILE_RELOCS_STRIPPED != 0 {
                return Err(PeError::RelocsStripped);
            }
            return Ok(0);
        }
        let mut off = self.relocs.rva as usize;
        let end = off + self.relocs.size as usize;
        let mut applied = 0;
        while off + 8 <= end {
            let page = rd_u32(img, off, "relocation block")?;
            let bsize = rd_u32(img, off + 4, "relocation block")? as usize;
            if bsize < 8 || !bsize.is_multiple_of(2) || off + bsize > end {
                return Err(PeError::BadRelocBlock {
                    rva: off as u32,
                    why: "block size out of range",
                });
            }
            if page >= self.size_of_image {
                return Err(PeError::BadRelocBlock {
                    rva: off as u32,
                    why: "page rva beyond SizeOfImage",
                });
            }
            for e in (off + 8..off + bsize).step_by(2) {
                let entry = rd_u16(img, e, "relocation entry")?;
                let kind = entry >> 12;
                let target = page as usize + (entry & 0xFFF) as usize;
                match kind {
                    REL_ABSOLUTE => {}
                    REL_DIR64 => {
                        let v = rd_u64(img, target, "relocation target").map_err(|_| {
                            PeError::BadRelocBlock {
                                rva: off as u32,
                                why: "DIR64 target beyond SizeOfImage",
                            }
                        })?;
                        img[target..target + 8]
                            .copy_from_slice(&v.wrapping_add(delta).to_le_bytes());
                        applied += 1;
                    }
                    _ => {
                        return Err(PeError::UnsupportedReloc {
                            kind,
                            rva: target as u32,
                        })
                    }
                }
            }
            off += bsize;
        }
        if off != end {
            return Err(PeError::BadRelocBlock {
                rva: off as u32,
                why: "trailing bytes after the last block",
            });
        }
        Ok(applied)
    }

    fn resolve_imports(
        &self,
        img: &mut [u8],
        resolve: &mut dyn FnMut(&str, &str) -> Option<u64>,
    ) -> Result<usize, PeError> {
        if self.imports.rva == 0 || self.imports.size == 0 {
            return Ok(0);
        }
        let err = |why| PeError::BadImports { why };
        let mut resolved = 0;
        let mut desc = self.imports.rva as usize;
        loop {
            let d = img
                .get(desc..desc + 20)
                .ok_or(err("descriptor table runs past the image"))?;
            if d.iter().all(|&b| b == 0) {
                break;
            }
            let oft = rd_u32(d, 0, "import descriptor")? as usize;
            let name_rva = rd_u32(d, 12, "import descriptor")? as usize;
            let ft = rd_u32(d, 16, "import descriptor")? as usize;
            let module = rd_name(img, name_rva).ok_or(err("module name invalid"))?;
            if ft == 0 {
                return Err(err("FirstThunk is zero"));
            }
            let lookup = if oft != 0 { oft } else { ft };
            // The names are read in place (no copies), so the addresses of one descriptor are
            // collected first and written to its import address table after the walk.
            let mut addrs = Vec::new();
            loop {
                let thunk = rd_u64(img, lookup + addrs.len() * 8, "import lookup table")
                    .map_err(|_| err("lookup table runs past the image"))?;
                if thunk == 0 {
                    break;
                }
                if resolved >= MAX_IMPORTS {
                    return Err(PeError::TooManyImports { limit: MAX_IMPORTS });
                }
                if thunk >> 63 != 0 {
                    return Err(PeError::ImportByOrdinal {
                        module: module.into(),
                        ordinal: thunk as u16,
                    });
                }
                if thunk >> 31 != 0 {
                    return Err(err("hint/name rva out of range"));
                }
                let name = rd_name(img, thunk as usize + 2).ok_or(err("import name invalid"))?;
                let addr = resolve(module, name).ok_or_else(|| PeError::UnresolvedImport {
                    module: module.into(),
                    name: name.into(),
                })?;
                addrs.push(addr);
                resolved += 1;
            }
            let iat = img
                .get_mut(ft..)
                .and_then(|t| t.get_mut(..addrs.len() * 8))
                .ok_or(err("import address table runs past the image"))?;
            for (slot, addr) in iat.chunks_exact_mut(8).zip(&addrs) {
                slot.copy_from_slice(&addr.to_le_bytes());
            }
            desc += 20;
        }
        Ok(resolved)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small valid PE32+ image: headers (0x200), .text at rva 0x1000 (raw 0x200),
    /// .data at 0x2000 (raw 0x400) holding the import tables, .reloc at 0x3000 (raw 0x600).
    pub fn sample_image() -> Vec<u8> {
        let mut f = vec![0u8; 0x800];
        let w16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let w32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
        let w64 = |f: &mut Vec<u8>, o: usize, v: u64| f[o..o + 8].copy_from_slice(&v.to_le_bytes());
        f[0] = b'M';
        f[1] = b'Z';
        w32(&mut f, 0x3C, 0x80);
        f[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        w16(&mut f, coff, MACHINE_AMD64);
        w16(&mut f, coff + 2, 3);
        w16(&mut f, coff + 16, 240);
        w16(&mut f, coff + 18, 0x22);
        let opt = coff + 20;
        w16(&mut f, opt, PE32PLUS_MAGIC);
        w32(&mut f, opt + 16, 0x1000); // entry
        w64(&mut f, opt + 24, 0x1_4000_0000);
        w32(&mut f, opt + 32, 0x1000);
        w32(&mut f, opt + 36, 0x200);
        w32(&mut f, opt + 56, 0x4000);
        w32(&mut f, opt + 60, 0x200);
        w16(&mut f, opt + 68, 1);
        w32(&mut f, opt + 108, 16);
        w32(&mut f, opt + 112 + 8, 0x2000); // import dir
        w32(&mut f, opt + 116 + 8, 40);
        w32(&mut f, opt + 112 + 40, 0x3000); // reloc dir
        w32(&mut f, opt + 116 + 40, 12);
        let st = opt + 240;
        let sec = |f: &mut Vec<u8>, i: usize, name: &[u8], va: u32, raw: u32| {
            let s = st + i * 40;
            f[s..s + name.len()].copy_from_slice(name);
            f[s + 8..s + 12].copy_from_slice(&0x100u32.to_le_bytes());
            f[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
            f[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
            f[s + 20..s + 24].copy_from_slice(&raw.to_le_bytes());
        };
        sec(&mut f, 0, b".text", 0x1000, 0x200);
        sec(&mut f, 1, b".data", 0x2000, 0x400);
        sec(&mut f, 2, b".reloc", 0x3000, 0x600);
        // .text: a pointer to be relocated at rva 0x1010
        w64(&mut f, 0x200 + 0x10, 0x1_4000_1234);
        // .data (rva 0x2000, raw 0x400): import descriptor, then terminator (20 zero bytes)
        let d = 0x400;
        w32(&mut f, d, 0x2040); // OriginalFirstThunk
        w32(&mut f, d + 12, 0x2080); // Name
        w32(&mut f, d + 16, 0x2060); // FirstThunk
        w64(&mut f, d + 0x40, 0x2090); // ILT[0] -> hint/name
        w64(&mut f, d + 0x48, 0x20B0);
        w64(&mut f, d + 0x60, 0x2090); // IAT copy
        w64(&mut f, d + 0x68, 0x20B0);
        f[d + 0x80..d + 0x88].copy_from_slice(b"ndis.sys");
        f[d + 0x92..d + 0x92 + 13].copy_from_slice(b"NdisSetEvent\0");
        f[d + 0xB2..d + 0xB2 + 9].copy_from_slice(b"DbgPrint\0");
        // .reloc: one block, page 0x1000, one DIR64 at 0x10 and one ABSOLUTE pad
        w32(&mut f, 0x600, 0x1000);
        w32(&mut f, 0x604, 12);
        w16(&mut f, 0x608, (10 << 12) | 0x10);
        w16(&mut f, 0x60A, 0);
        f
    }

    /// A PE32+ image whose one import descriptor (ndis.sys) lists `count` functions, all named
    /// `NdisSetEvent`; no relocations (it is loaded at its ImageBase).
    fn image_with_imports(count: usize) -> Vec<u8> {
        let mut f = sample_image();
        let w16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let w32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
        let (coff, opt) = (0x84, 0x84 + 20);
        let data_len = (0x100 + (count + 1) * 8).next_multiple_of(0x1000);
        w16(&mut f, coff + 2, 2); // .text and .data only
        w32(&mut f, opt + 56, (0x2000 + data_len) as u32); // SizeOfImage
        w32(&mut f, opt + 112 + 40, 0); // no relocation directory
        w32(&mut f, opt + 116 + 40, 0);
        let data_hdr = opt + 240 + 40;
        w32(&mut f, data_hdr + 8, data_len as u32); // VirtualSize
        w32(&mut f, data_hdr + 16, data_len as u32); // SizeOfRawData
        w32(&mut f, data_hdr + 20, 0x800); // PointerToRawData
        f.resize(0x800 + data_len, 0);
        let d = 0x800;
        w32(&mut f, d + 12, 0x2040); // Name
        w32(&mut f, d + 16, 0x2100); // FirstThunk (no separate lookup table)
        f[d + 0x40..d + 0x48].copy_from_slice(b"ndis.sys");
        f[d + 0x62..d + 0x62 + 13].copy_from_slice(b"NdisSetEvent\0");
        for i in 0..count {
            let o = d + 0x100 + i * 8;
            f[o..o + 8].copy_from_slice(&0x2060u64.to_le_bytes());
        }
        f
    }

    #[test]
    fn imports_up_to_the_bound_resolve_and_past_it_are_refused() {
        for (count, ok) in [
            (MAX_IMPORTS, true),
            (MAX_IMPORTS + 1, false),
            (50_000, false),
        ] {
            let f = image_with_imports(count);
            let info = PeInfo::parse(&f).unwrap();
            let mut dest = vec![0u8; info.size_of_image as usize];
            let mut calls = 0usize;
            let r = info.load(&f, &mut dest, info.image_base, &mut |m, n| {
                calls += 1;
                resolver(m, n)
            });
            if ok {
                assert_eq!(r.unwrap().imports_resolved, count);
            } else {
                assert_eq!(
                    r.unwrap_err(),
                    PeError::TooManyImports { limit: MAX_IMPORTS }
                );
                // Refused at the bound: no work is done for the imports past it.
                assert_eq!(calls, MAX_IMPORTS);
            }
        }
    }

    #[test]
    fn a_non_native_subsystem_is_refused() {
        let mut f = sample_image();
        let opt = 0x84 + 20;
        f[opt + 68..opt + 70].copy_from_slice(&2u16.to_le_bytes()); // IMAGE_SUBSYSTEM_WINDOWS_GUI
        let e = PeInfo::parse(&f).unwrap_err();
        assert_eq!(e, PeError::NotNative(2));
        assert!(e.to_string().contains("/SUBSYSTEM:NATIVE"), "{e}");
    }

    fn resolver(m: &str, n: &str) -> Option<u64> {
        match (m.to_ascii_lowercase().as_str(), n) {
            ("ndis.sys", "NdisSetEvent") => Some(0xAAAA),
            ("ndis.sys", "DbgPrint") => Some(0xBBBB),
            _ => None,
        }
    }

    #[test]
    fn names_are_read_in_place_up_to_the_limit() {
        let mut d = vec![b'A'; MAX_NAME];
        d.push(0);
        assert_eq!(rd_name(&d, 0).map(str::len), Some(MAX_NAME));
        assert_eq!(rd_name(&d, 5).map(str::len), Some(MAX_NAME - 5));
        // One byte longer than the limit, an empty name, a control byte, no NUL at all.
        let mut long = vec![b'A'; MAX_NAME + 1];
        long.push(0);
        assert_eq!(rd_name(&long, 0), None);
        assert_eq!(rd_name(b"\0", 0), None);
        assert_eq!(rd_name(b"Ndis\tX\0", 0), None);
        assert_eq!(rd_name(b"NdisSetEvent", 0), None);
        assert_eq!(rd_name(b"x\0", 2), None);
        assert_eq!(
            rd_name(b"ndis.sys\0NdisSetEvent\0", 9),
            Some("NdisSetEvent")
        );
    }

    #[test]
    fn parses_and_loads_a_valid_image() {
        let f = sample_image();
        let info = PeInfo::parse(&f).unwrap();
        assert_eq!(info.sections.len(), 3);
        assert_eq!(info.entry_rva, 0x1000);
        assert_eq!(info.size_of_image, 0x4000);
        let mut dest = vec![0xCCu8; 0x4000];
        let base = 0x20_0000u64;
        let stats = info
            .load(&f, &mut dest, base, &mut |m, n| resolver(m, n))
            .unwrap();
        assert_eq!(stats.imports_resolved, 2);
        assert_eq!(stats.relocations_applied, 1);
        let ptr = u64::from_le_bytes(dest[0x1010..0x1018].try_into().unwrap());
        assert_eq!(ptr, base + 0x1234);
        let iat0 = u64::from_le_bytes(dest[0x2060..0x2068].try_into().unwrap());
        let iat1 = u64::from_le_bytes(dest[0x2068..0x2070].try_into().unwrap());
        assert_eq!((iat0, iat1), (0xAAAA, 0xBBBB));
        // zero fill beyond raw data of .text (vsize 0x100 < raw 0x200: only 0x100 copied)
        assert!(dest[0x1100..0x2000].iter().all(|&b| b == 0));
        assert_eq!(&dest[0..2], b"MZ");
        // Every byte the file does not provide is zero, though `dest` held 0xCC: between the
        // headers and the first section, and after the last section's data.
        assert!(dest[0x200..0x1000].iter().all(|&b| b == 0));
        assert!(dest[0x3100..0x4000].iter().all(|&b| b == 0));
    }

    #[test]
    fn unresolved_import_names_module_and_function() {
        let f = sample_image();
        let info = PeInfo::parse(&f).unwrap();
        let mut dest = vec![0u8; 0x4000];
        let e = info
            .load(&f, &mut dest, 0x20_0000, &mut |_, n| {
                (n == "NdisSetEvent").then_some(1)
            })
            .unwrap_err();
        assert_eq!(
            e,
            PeError::UnresolvedImport {
                module: "ndis.sys".into(),
                name: "DbgPrint".into()
            }
        );
        assert_eq!(e.to_string(), "unresolved import ndis.sys!DbgPrint");
    }

    fn bad_header(e: &PeError, want: &str) -> bool {
        matches!(e, PeError::BadHeader { field, .. } if *field == want)
    }

    #[test]
    fn header_corruptions_are_errors() {
        let good = sample_image();
        type Case = (usize, Vec<u8>, fn(&PeError) -> bool);
        let cases: Vec<Case> = vec![
            (0, b"ZM".to_vec(), |e| *e == PeError::NoDosSignature),
            (0x80, b"PX".to_vec(), |e| {
                matches!(e, PeError::NoPeSignature(_))
            }),
            (0x84, 0x14Cu16.to_le_bytes().to_vec(), |e| {
                matches!(e, PeError::WrongMachine(0x14C))
            }),
            (0x98, 0x10Bu16.to_le_bytes().to_vec(), |e| {
                matches!(e, PeError::NotPe32Plus(0x10B))
            }),
            (0x84 + 18, vec![0, 0], |e| *e == PeError::NotExecutable),
            (0x98 + 32, 0x3000u32.to_le_bytes().to_vec(), |e| {
                bad_header(e, "SectionAlignment")
            }),
            (0x98 + 56, 0u32.to_le_bytes().to_vec(), |e| {
                bad_header(e, "SizeOfImage")
            }),
            (0x98 + 16, 0x9000u32.to_le_bytes().to_vec(), |e| {
                bad_header(e, "AddressOfEntryPoint")
            }),
            (0x98 + 108, 17u32.to_le_bytes().to_vec(), |e| {
                bad_header(e, "NumberOfRvaAndSizes")
            }),
            // first section's raw offset beyond the file
            (0x98 + 240 + 20, 0x10000u32.to_le_bytes().to_vec(), |e| {
                matches!(e, PeError::BadSection { index: 0, .. })
            }),
            // second section's VA overlapping the first
            (
                0x98 + 240 + 40 + 12,
                0x1000u32.to_le_bytes().to_vec(),
                |e| matches!(e, PeError::BadSection { index: 1, .. }),
            ),
            // e_lfanew far beyond the file
            (0x3C, 0xFFFF_FF00u32.to_le_bytes().to_vec(), |e| {
                matches!(e, PeError::Truncated { .. })
            }),
        ];
        for (off, bytes, check) in cases {
            let mut f = good.clone();
            f[off..off + bytes.len()].copy_from_slice(&bytes);
            let e = PeInfo::parse(&f).unwrap_err();
            assert!(check(&e), "offset {off:#x}: unexpected {e:?}");
        }
    }

    #[test]
    fn truncations_never_panic() {
        let good = sample_image();
        for len in 0..good.len() {
            let r = PeInfo::parse(&good[..len]);
            if let Ok(info) = r {
                let mut dest = vec![0u8; info.size_of_image as usize];
                let _ = info.load(&good[..len], &mut dest, 0x20_0000, &mut |m, n| {
                    resolver(m, n)
                });
            }
        }
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        let good = sample_image();
        for off in 0..good.len() {
            for v in [0x00u8, 0xFF, 0x7F] {
                let mut f = good.clone();
                f[off] = v;
                if let Ok(info) = PeInfo::parse(&f) {
                    let mut dest = vec![0u8; info.size_of_image as usize];
                    let _ = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
                }
            }
        }
    }

    #[test]
    fn relocation_errors() {
        let mut f = sample_image();
        // HIGHLOW (3) is not accepted
        f[0x608..0x60A].copy_from_slice(&((3u16 << 12) | 0x10).to_le_bytes());
        let info = PeInfo::parse(&f).unwrap();
        let mut dest = vec![0u8; 0x4000];
        let e = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
        assert!(matches!(e, Err(PeError::UnsupportedReloc { kind: 3, .. })));
        // block size larger than the directory
        let mut f = sample_image();
        f[0x604..0x608].copy_from_slice(&64u32.to_le_bytes());
        let info = PeInfo::parse(&f).unwrap();
        let e = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
        assert!(matches!(e, Err(PeError::BadRelocBlock { .. })));
        // DIR64 target at the very end of the image
        let mut f = sample_image();
        f[0x600..0x604].copy_from_slice(&0x3000u32.to_le_bytes());
        f[0x608..0x60A].copy_from_slice(&((10u16 << 12) | 0xFFC).to_le_bytes());
        let info = PeInfo::parse(&f).unwrap();
        let e = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
        assert!(matches!(e, Err(PeError::BadRelocBlock { .. })));
    }

    #[test]
    fn ordinal_imports_are_rejected() {
        let mut f = sample_image();
        f[0x440..0x448].copy_from_slice(&(0x8000_0000_0000_0005u64).to_le_bytes());
        let info = PeInfo::parse(&f).unwrap();
        let mut dest = vec![0u8; 0x4000];
        let e = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
        assert_eq!(
            e,
            Err(PeError::ImportByOrdinal {
                module: "ndis.sys".into(),
                ordinal: 5
            })
        );
    }

    #[test]
    fn small_destination_is_an_error() {
        let f = sample_image();
        let info = PeInfo::parse(&f).unwrap();
        let mut dest = vec![0u8; 0x100];
        let e = info.load(&f, &mut dest, 0x20_0000, &mut |m, n| resolver(m, n));
        assert!(matches!(e, Err(PeError::BufferTooSmall { .. })));
    }
}

//! Validation of a PVH kernel image before any VM exists.
//!
//! The loader proper is linux-loader's `Elf`; this module reads the headers itself
//! first so that a bad kernel gets a precise one-line error (not an ELF, wrong
//! class or machine, no `XEN_ELFNOTE_PHYS32_ENTRY` note, segments outside RAM) and
//! so that the monitor knows where the kernel ends before it places modules.

/// ELF note type of the PVH 32-bit entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// One loadable segment of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address (`p_paddr`).
    pub paddr: u64,
    /// Bytes in memory (`p_memsz`).
    pub memsz: u64,
    /// Bytes in the file (`p_filesz`).
    pub filesz: u64,
}

/// What the monitor needs to know about a validated PVH kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhKernel {
    /// 32-bit PVH entry point from the ELF note.
    pub entry: u32,
    /// Loadable segments with a non-zero memory size.
    pub segments: Vec<Segment>,
}

impl PvhKernel {
    /// First address after the highest segment.
    pub fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.paddr.saturating_add(s.memsz))
            .max()
            .unwrap_or(0)
    }
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// Parses `image` as a PVH-bootable x86-64 ELF. The error string says what is wrong.
pub fn parse_pvh_kernel(image: &[u8]) -> Result<PvhKernel, String> {
    if image.len() < EHDR_SIZE || &image[0..4] != b"\x7fELF" {
        return Err("not an ELF file (a PVH kernel is an ELF64 image such as vmlinux)".into());
    }
    if image[4] != 2 {
        return Err("not a 64-bit ELF (ELFCLASS64 required)".into());
    }
    if image[5] != 1 {
        return Err("not a little-endian ELF".into());
    }
    let e_type = u16_at(image, 16).unwrap_or(0);
    let e_machine = u16_at(image, 18).unwrap_or(0);
    if e_machine != EM_X86_64 {
        return Err(format!("ELF machine is {e_machine}, not x86-64 (62)"));
    }
    if e_type != ET_EXEC {
        return Err(format!(
            "ELF type is {e_type}, not an executable (ET_EXEC); link the kernel statically"
        ));
    }
    let phoff = u64_at(image, 32).unwrap_or(0);
    let phentsize = u16_at(image, 54).unwrap_or(0) as usize;
    let phnum = u16_at(image, 56).unwrap_or(0) as usize;
    if phentsize != PHDR_SIZE {
        return Err(format!(
            "ELF program header size is {phentsize}, expected 56"
        ));
    }
    let ph_table_end = usize::try_from(phoff)
        .ok()
        .and_then(|o| o.checked_add(phnum * PHDR_SIZE))
        .filter(|&end| end <= image.len() && phoff as usize >= EHDR_SIZE);
    if ph_table_end.is_none() {
        return Err("ELF program header table lies outside the file".into());
    }

    let mut segments = Vec::new();
    let mut entry = None;
    for i in 0..phnum {
        let ph = &image[phoff as usize + i * PHDR_SIZE..][..PHDR_SIZE];
        let p_type = u32_at(ph, 0).unwrap_or(0);
        let p_offset = u64_at(ph, 8).unwrap_or(0);
        let p_paddr = u64_at(ph, 24).unwrap_or(0);
        let p_filesz = u64_at(ph, 32).unwrap_or(0);
        let p_memsz = u64_at(ph, 40).unwrap_or(0);
        let in_file = p_offset
            .checked_add(p_filesz)
            .is_some_and(|end| end <= image.len() as u64);
        match p_type {
            PT_LOAD => {
                if !in_file {
                    return Err(format!("segment {i} extends past the end of the file"));
                }
                if p_memsz < p_filesz {
                    return Err(format!("segment {i} has p_memsz < p_filesz"));
                }
                if p_paddr.checked_add(p_memsz).is_none() {
                    return Err(format!("segment {i} address overflows"));
                }
                if p_memsz > 0 {
                    segments.push(Segment {
                        paddr: p_paddr,
                        memsz: p_memsz,
                        filesz: p_filesz,
                    });
                }
            }
            PT_NOTE => {
                if !in_file {
                    return Err(format!("note segment {i} extends past the end of the file"));
                }
                let notes = &image[p_offset as usize..(p_offset + p_filesz) as usize];
                if let Some(e) = find_pvh_note(notes)? {
                    entry.get_or_insert(e);
                }
            }
            _ => {}
        }
    }
    let entry = entry.ok_or_else(|| {
        "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, type 18, name \"Xen\"); \
         build the kernel with PVH support"
            .to_string()
    })?;
    if segments.is_empty() {
        return Err("no loadable (PT_LOAD) segment".into());
    }
    let entry64 = u64::from(entry);
    if !segments
        .iter()
        .any(|s| entry64 >= s.paddr && entry64 < s.paddr + s.memsz)
    {
        return Err(format!(
            "PVH entry {entry:#x} is not inside any loadable segment"
        ));
    }
    Ok(PvhKernel { entry, segments })
}

/// Walks a note segment; returns the PVH entry if a `Xen` type-18 note is present.
fn find_pvh_note(notes: &[u8]) -> Result<Option<u32>, String> {
    let mut off = 0usize;
    while off + 12 <= notes.len() {
        let namesz = u32_at(notes, off).unwrap_or(0) as usize;
        let descsz = u32_at(notes, off + 4).unwrap_or(0) as usize;
        let n_type = u32_at(notes, off + 8).unwrap_or(0);
        let name_off = off + 12;
        let desc_off = name_off + namesz.div_ceil(4) * 4;
        let next = desc_off + descsz.div_ceil(4) * 4;
        if desc_off + descsz > notes.len() {
            return Err("malformed ELF note (runs past its segment)".into());
        }
        if n_type == XEN_ELFNOTE_PHYS32_ENTRY && &notes[name_off..name_off + namesz] == b"Xen\0" {
            if descsz < 4 {
                return Err("PVH entry note is shorter than 4 bytes".into());
            }
            return Ok(u32_at(notes, desc_off));
        }
        off = next;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Asm, PvhImage};

    fn sample() -> Vec<u8> {
        let mut a = Asm::new();
        a.exit(7);
        PvhImage::new(0x10_0000, a.finish()).build()
    }

    #[test]
    fn accepts_fixture_kernel() {
        let k = parse_pvh_kernel(&sample()).unwrap();
        assert_eq!(k.entry, 0x10_0000);
        assert_eq!(k.segments.len(), 1);
        assert_eq!(k.segments[0].paddr, 0x10_0000);
        assert!(k.end() > 0x10_0000);
    }

    #[test]
    fn rejects_non_elf() {
        assert!(parse_pvh_kernel(
            b"hello world, this is not an ELF file at all......................"
        )
        .unwrap_err()
        .contains("not an ELF"));
        assert!(parse_pvh_kernel(b"").is_err());
    }

    #[test]
    fn rejects_missing_note() {
        let mut a = Asm::new();
        a.exit(0);
        let img = PvhImage::new(0x10_0000, a.finish()).without_note().build();
        assert!(parse_pvh_kernel(&img)
            .unwrap_err()
            .contains("no PVH entry note"));
    }

    #[test]
    fn rejects_wrong_class_and_machine() {
        let mut img = sample();
        img[4] = 1;
        assert!(parse_pvh_kernel(&img).unwrap_err().contains("64-bit"));
        let mut img = sample();
        img[18] = 3;
        assert!(parse_pvh_kernel(&img).unwrap_err().contains("machine"));
    }

    #[test]
    fn rejects_truncated_segments() {
        let img = sample();
        let cut = &img[..img.len() - 4];
        assert!(parse_pvh_kernel(cut).is_err());
    }

    #[test]
    fn rejects_entry_outside_segments() {
        let mut a = Asm::new();
        a.exit(0);
        let img = PvhImage::new(0x10_0000, a.finish())
            .entry(0x40_0000)
            .build();
        assert!(parse_pvh_kernel(&img).unwrap_err().contains("not inside"));
    }
}

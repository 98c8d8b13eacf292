//! Validation of a PVH kernel image before any VM exists.
//!
//! The loader proper is linux-loader's `Elf`; this module reads the headers itself
//! first so that a bad kernel gets a precise one-line error (not an ELF, wrong
//! class or machine, no `XEN_ELFNOTE_PHYS32_ENTRY` note, segments outside RAM) and
//! so that the monitor knows where the kernel ends before it places modules. Only
//! the ELF header, the program headers and the notes are read here, and only the
//! loadable segments by the loader ([`KernelImage`]): a kernel built with debug
//! information is mostly debug sections, which the monitor never reads.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};

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

/// Largest note segment read (a PVH kernel's notes take a few hundred bytes).
const MAX_NOTE_SEGMENT: u64 = 1 << 20;

/// A kernel image: an open file read by seeks (only the ELF header, the program
/// headers, the notes and the loadable segments are read: a kernel's debug sections,
/// most of its file, never are), or bytes already in memory.
#[derive(Debug)]
pub enum KernelImage {
    /// The kernel file.
    File(File),
    /// The kernel's bytes.
    Bytes(Vec<u8>),
}

/// Something [`KernelImage::reader`] hands out: the file or a cursor over the bytes.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl KernelImage {
    /// A reader over the whole image, positioned anywhere (callers seek).
    pub fn reader(&self) -> Box<dyn ReadSeek + '_> {
        match self {
            KernelImage::File(f) => Box::new(f),
            KernelImage::Bytes(b) => Box::new(Cursor::new(b.as_slice())),
        }
    }

    /// Length of the image in bytes.
    pub fn len(&self) -> std::io::Result<u64> {
        match self {
            KernelImage::File(f) => Ok(f.metadata()?.len()),
            KernelImage::Bytes(b) => Ok(b.len() as u64),
        }
    }

    /// Whether the image has no bytes.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl From<Vec<u8>> for KernelImage {
    fn from(bytes: Vec<u8>) -> Self {
        KernelImage::Bytes(bytes)
    }
}

/// Reads `len` bytes at `offset` (the caller checked they lie inside the image).
fn read_at(r: &mut dyn ReadSeek, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    r.seek(SeekFrom::Start(offset))
        .and_then(|_| r.read_exact(&mut buf))
        .map_err(|e| format!("cannot read the kernel at offset {offset:#x}: {e}"))?;
    Ok(buf)
}

/// Parses `image` as a PVH-bootable x86-64 ELF. The error string says what is wrong.
pub fn parse_pvh_kernel(image: &[u8]) -> Result<PvhKernel, String> {
    parse_pvh_kernel_image(&KernelImage::Bytes(image.to_vec()))
}

/// [`parse_pvh_kernel`] over a [`KernelImage`], reading only the ELF header, the
/// program header table and the note segments.
pub fn parse_pvh_kernel_image(kernel: &KernelImage) -> Result<PvhKernel, String> {
    let file_len = kernel
        .len()
        .map_err(|e| format!("cannot read the kernel's size: {e}"))?;
    parse_from(&mut *kernel.reader(), file_len)
}

/// [`parse_pvh_kernel_image`] over a reader of a `file_len`-byte image.
fn parse_from(r: &mut dyn ReadSeek, file_len: u64) -> Result<PvhKernel, String> {
    let head_len = file_len.min(EHDR_SIZE as u64) as usize;
    let head = read_at(r, 0, head_len)?;
    let image = head.as_slice();
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
    let ph_table_end = phoff
        .checked_add((phnum * PHDR_SIZE) as u64)
        .filter(|&end| end <= file_len && phoff >= EHDR_SIZE as u64);
    if ph_table_end.is_none() {
        return Err("ELF program header table lies outside the file".into());
    }
    let table = read_at(r, phoff, phnum * PHDR_SIZE)?;

    let mut segments = Vec::new();
    let mut entry = None;
    for i in 0..phnum {
        let ph = &table[i * PHDR_SIZE..][..PHDR_SIZE];
        let p_type = u32_at(ph, 0).unwrap_or(0);
        let p_offset = u64_at(ph, 8).unwrap_or(0);
        let p_paddr = u64_at(ph, 24).unwrap_or(0);
        let p_filesz = u64_at(ph, 32).unwrap_or(0);
        let p_memsz = u64_at(ph, 40).unwrap_or(0);
        let in_file = p_offset
            .checked_add(p_filesz)
            .is_some_and(|end| end <= file_len);
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
                if p_filesz > MAX_NOTE_SEGMENT {
                    return Err(format!(
                        "note segment {i} is {p_filesz} bytes long (more than {MAX_NOTE_SEGMENT})"
                    ));
                }
                let notes = read_at(r, p_offset, p_filesz as usize)?;
                if let Some(e) = find_pvh_note(&notes)? {
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

    /// Reads through a file, and records every byte range read.
    struct Recorder {
        inner: std::io::Cursor<Vec<u8>>,
        read: std::sync::Arc<std::sync::Mutex<Vec<(u64, usize)>>>,
    }

    impl Read for Recorder {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let at = self.inner.position();
            let n = self.inner.read(buf)?;
            self.read.lock().unwrap().push((at, n));
            Ok(n)
        }
    }

    impl Seek for Recorder {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_kernel_file_is_parsed_from_its_headers_and_notes_only() {
        // A kernel followed by 4 MiB of "debug sections" that no program header covers.
        let mut img = sample();
        let loaded_end = img.len();
        img.resize(loaded_end + (4 << 20), 0xDB);
        let path = std::env::temp_dir().join(format!("rnic-vmm-elf-{}.elf", std::process::id()));
        std::fs::write(&path, &img).unwrap();
        let file = KernelImage::File(File::open(&path).unwrap());
        let parsed = parse_pvh_kernel_image(&file);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(parsed.unwrap(), parse_pvh_kernel(&img).unwrap());
        assert_eq!(file.len().unwrap(), img.len() as u64);

        // What the parser reads: the header, the program headers, the notes: nothing past
        // the loaded part of the file.
        let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut r = Recorder {
            inner: std::io::Cursor::new(img.clone()),
            read: read.clone(),
        };
        parse_from(&mut r, img.len() as u64).unwrap();
        let read = read.lock().unwrap();
        let phnum = u16_at(&img, 56).unwrap() as usize;
        let total: usize = read.iter().map(|&(_, n)| n).sum();
        assert!(total < EHDR_SIZE + phnum * PHDR_SIZE + 64, "{read:?}");
        assert!(
            read.iter().all(|&(at, n)| at as usize + n <= loaded_end),
            "{read:?}"
        );
    }

    #[test]
    fn a_note_segment_past_the_limit_is_refused_before_it_is_read() {
        let mut img = sample();
        // Find the PT_NOTE header and make it claim more than the limit.
        let phoff = u64_at(&img, 32).unwrap() as usize;
        let phnum = u16_at(&img, 56).unwrap() as usize;
        let note = (0..phnum)
            .map(|i| phoff + i * PHDR_SIZE)
            .find(|&ph| u32_at(&img, ph).unwrap() == PT_NOTE)
            .expect("the fixture has a note segment");
        img.resize(img.len() + MAX_NOTE_SEGMENT as usize + 8, 0);
        img[note + 32..note + 40].copy_from_slice(&(MAX_NOTE_SEGMENT + 1).to_le_bytes());
        let e = parse_pvh_kernel(&img).unwrap_err();
        assert!(e.contains("note segment") && e.contains("long"), "{e}");
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

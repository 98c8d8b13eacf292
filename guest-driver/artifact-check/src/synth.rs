//! Test-only builder of small synthetic PE images (good and deliberately broken), so the checks
//! are exercised without depending on the real build.

/// Optional-header flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeKind {
    Pe32,
    Pe32Plus,
}

/// Knobs of a synthetic image. `driver()` gives one that passes every check.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub kind: PeKind,
    pub machine: u16,
    pub subsystem: u16,
    /// Name of the single export (pointing at the function at `DRIVER_ENTRY_RVA`), or none.
    pub export_name: Option<&'static str>,
    /// AddressOfEntryPoint = DRIVER_ENTRY_RVA + entry_offset.
    pub entry_offset: u32,
    pub text_executable: bool,
    /// (module, function) pairs imported by name.
    pub imports: Vec<(&'static str, &'static str)>,
}

/// e_lfanew: goblin wants the PE header strictly after the 64-byte DOS header.
const PE_OFF: usize = 0x80;
const FILE_ALIGN: u32 = 0x200;
const TEXT_RVA: u32 = 0x1000;
const TEXT_RAW: u32 = 0x200;
const RDATA_RVA: u32 = 0x2000;
const RDATA_RAW: u32 = 0x400;
const RDATA_SIZE: u32 = 0x400;
const DRIVER_ENTRY_RVA: u32 = TEXT_RVA + 0x20;

impl ImageSpec {
    pub fn driver() -> Self {
        Self {
            kind: PeKind::Pe32Plus,
            machine: 0x8664,
            subsystem: 1,
            export_name: Some("DriverEntry"),
            entry_offset: 0,
            text_executable: true,
            imports: vec![
                ("ndis.sys", "NdisMRegisterMiniportDriver"),
                ("ntoskrnl.exe", "DbgPrint"),
            ],
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let (rdata, export_dir, import_dir) = self.rdata();
        let mut f = vec![0u8; (RDATA_RAW + RDATA_SIZE) as usize];
        // DOS header
        f[0..2].copy_from_slice(b"MZ");
        put32(&mut f, 0x3C, PE_OFF as u32);
        // PE signature + COFF header
        f[PE_OFF..PE_OFF + 4].copy_from_slice(b"PE\0\0");
        let opt_size: u16 = match self.kind {
            PeKind::Pe32Plus => 0xF0,
            PeKind::Pe32 => 0xE0,
        };
        put16(&mut f, PE_OFF + 4, self.machine);
        put16(&mut f, PE_OFF + 6, 2); // sections
        put16(&mut f, PE_OFF + 20, opt_size);
        put16(&mut f, PE_OFF + 22, 0x0022); // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
                                            // Optional header
        let o = PE_OFF + 24;
        let entry = DRIVER_ENTRY_RVA + self.entry_offset;
        put16(
            &mut f,
            o,
            if self.kind == PeKind::Pe32Plus {
                0x20B
            } else {
                0x10B
            },
        );
        put32(&mut f, o + 4, FILE_ALIGN); // SizeOfCode
        put32(&mut f, o + 8, RDATA_SIZE); // SizeOfInitializedData
        put32(&mut f, o + 16, entry);
        put32(&mut f, o + 20, TEXT_RVA); // BaseOfCode
        let w = match self.kind {
            PeKind::Pe32Plus => {
                put64(&mut f, o + 24, 0x1_4000_0000); // ImageBase
                o + 32
            }
            PeKind::Pe32 => {
                put32(&mut f, o + 24, RDATA_RVA); // BaseOfData
                put32(&mut f, o + 28, 0x1_0000); // ImageBase
                o + 32
            }
        };
        put32(&mut f, w, 0x1000); // SectionAlignment
        put32(&mut f, w + 4, FILE_ALIGN);
        put16(&mut f, w + 8, 10); // OS version
        put16(&mut f, w + 16, 10); // subsystem version
        put32(&mut f, w + 24, 0x3000); // SizeOfImage
        put32(&mut f, w + 28, FILE_ALIGN); // SizeOfHeaders
        put16(&mut f, w + 36, self.subsystem);
        put16(&mut f, w + 38, 0x0160); // HIGH_ENTROPY_VA | DYNAMIC_BASE | NX_COMPAT
        let dirs = match self.kind {
            PeKind::Pe32Plus => {
                put64(&mut f, w + 40, 0x10_0000);
                put64(&mut f, w + 48, 0x1000);
                put64(&mut f, w + 56, 0x10_0000);
                put64(&mut f, w + 64, 0x1000);
                put32(&mut f, w + 76, 16); // NumberOfRvaAndSizes
                w + 80
            }
            PeKind::Pe32 => {
                put32(&mut f, w + 40, 0x10_0000);
                put32(&mut f, w + 44, 0x1000);
                put32(&mut f, w + 48, 0x10_0000);
                put32(&mut f, w + 52, 0x1000);
                put32(&mut f, w + 60, 16);
                w + 64
            }
        };
        assert_eq!(dirs + 16 * 8, o + opt_size as usize);
        if let Some((rva, size)) = export_dir {
            put32(&mut f, dirs, rva);
            put32(&mut f, dirs + 4, size);
        }
        if let Some((rva, size)) = import_dir {
            put32(&mut f, dirs + 8, rva);
            put32(&mut f, dirs + 12, size);
        }
        // Section headers
        let s = o + opt_size as usize;
        let text_chars = if self.text_executable {
            0x6000_0020
        } else {
            0x4000_0020
        };
        section(
            &mut f, s, b".text", 0x100, TEXT_RVA, FILE_ALIGN, TEXT_RAW, text_chars,
        );
        section(
            &mut f,
            s + 40,
            b".rdata",
            RDATA_SIZE,
            RDATA_RVA,
            RDATA_SIZE,
            RDATA_RAW,
            0x4000_0040,
        );
        // .text: a `ret` at DriverEntry, int3 padding around it
        for b in &mut f[TEXT_RAW as usize..(TEXT_RAW + FILE_ALIGN) as usize] {
            *b = 0xCC;
        }
        f[(TEXT_RAW + (DRIVER_ENTRY_RVA - TEXT_RVA)) as usize] = 0xC3;
        f[RDATA_RAW as usize..(RDATA_RAW + RDATA_SIZE) as usize].copy_from_slice(&rdata);
        f
    }

    /// Builds .rdata (exports, then imports). Returns the section bytes and the export and
    /// import data-directory entries.
    #[allow(clippy::type_complexity)]
    fn rdata(&self) -> (Vec<u8>, Option<(u32, u32)>, Option<(u32, u32)>) {
        let mut r = Rdata {
            buf: vec![0; RDATA_SIZE as usize],
            used: 0,
        };
        let export_dir = self.export_name.map(|name| {
            let dir = r.alloc(40, 4);
            let funcs = r.alloc(4, 4);
            let names = r.alloc(4, 4);
            let ords = r.alloc(2, 2);
            let name_rva = r.string(name);
            let dll_rva = r.string("synthetic.sys");
            r.w32(dir + 12, dll_rva);
            r.w32(dir + 16, 1); // Base
            r.w32(dir + 20, 1); // NumberOfFunctions
            r.w32(dir + 24, 1); // NumberOfNames
            r.w32(dir + 28, funcs);
            r.w32(dir + 32, names);
            r.w32(dir + 36, ords);
            r.w32(funcs, DRIVER_ENTRY_RVA);
            r.w32(names, name_rva);
            r.w16(ords, 0);
            (dir, r.used - (dir - RDATA_RVA))
        });

        let mut modules: Vec<&str> = Vec::new();
        for (m, _) in &self.imports {
            if !modules.contains(m) {
                modules.push(m);
            }
        }
        let import_dir = if modules.is_empty() {
            None
        } else {
            let desc_len = 20 * (modules.len() as u32 + 1);
            let descs = r.alloc(desc_len, 4);
            let thunk = if self.kind == PeKind::Pe32Plus { 8 } else { 4 };
            for (i, m) in modules.iter().enumerate() {
                let funcs: Vec<&str> = self
                    .imports
                    .iter()
                    .filter(|(mm, _)| mm == m)
                    .map(|(_, f)| *f)
                    .collect();
                let n = funcs.len() as u32 + 1;
                let ilt = r.alloc(n * thunk, 8);
                let iat = r.alloc(n * thunk, 8);
                for (j, func) in funcs.iter().enumerate() {
                    let hint = r.alloc(2, 2);
                    r.string(func);
                    let off = j as u32 * thunk;
                    r.w32(ilt + off, hint);
                    r.w32(iat + off, hint);
                }
                let name = r.string(m);
                let d = descs + 20 * i as u32;
                r.w32(d, ilt); // OriginalFirstThunk
                r.w32(d + 12, name);
                r.w32(d + 16, iat); // FirstThunk
            }
            Some((descs, desc_len))
        };
        (r.buf, export_dir, import_dir)
    }
}

struct Rdata {
    buf: Vec<u8>,
    used: u32,
}

impl Rdata {
    /// Reserves `len` bytes aligned to `align`; returns their RVA.
    fn alloc(&mut self, len: u32, align: u32) -> u32 {
        self.used = self.used.div_ceil(align) * align;
        let rva = RDATA_RVA + self.used;
        self.used += len;
        assert!(self.used <= RDATA_SIZE, "synthetic .rdata overflow");
        rva
    }
    fn string(&mut self, s: &str) -> u32 {
        let rva = self.alloc(s.len() as u32 + 1, 1);
        let off = (rva - RDATA_RVA) as usize;
        self.buf[off..off + s.len()].copy_from_slice(s.as_bytes());
        rva
    }
    fn w32(&mut self, rva: u32, v: u32) {
        put32(&mut self.buf, (rva - RDATA_RVA) as usize, v);
    }
    fn w16(&mut self, rva: u32, v: u16) {
        put16(&mut self.buf, (rva - RDATA_RVA) as usize, v);
    }
}

#[allow(clippy::too_many_arguments)]
fn section(
    f: &mut [u8],
    at: usize,
    name: &[u8],
    vsize: u32,
    rva: u32,
    raw_size: u32,
    raw: u32,
    chars: u32,
) {
    f[at..at + name.len()].copy_from_slice(name);
    put32(f, at + 8, vsize);
    put32(f, at + 12, rva);
    put32(f, at + 16, raw_size);
    put32(f, at + 20, raw);
    put32(f, at + 36, chars);
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(f: &mut [u8], at: usize, v: u64) {
    f[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

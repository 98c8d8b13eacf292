//! Tiny PVH test kernels, built in memory.
//!
//! The monitor's own tests (and anyone checking a monitor against
//! `docs/platform.md`) need guests that do one thing: print to COM1, read PCI
//! configuration space, exit through port 0xF4. [`Asm`] emits the handful of
//! 32-bit protected-mode instructions they need; [`PvhImage`] wraps the code in an
//! ELF64 executable with a `XEN_ELFNOTE_PHYS32_ENTRY` note. No assembler or linker
//! is needed at test time.

use crate::elf::XEN_ELFNOTE_PHYS32_ENTRY;

/// COM1 data port.
pub const COM1: u16 = 0x3F8;
pub use crate::exit::EXIT_PORT;

/// A jump target inside an [`Asm`] program.
#[derive(Clone, Copy, Debug)]
pub struct Label(usize);

/// A minimal emitter of 32-bit x86 machine code.
#[derive(Default)]
pub struct Asm {
    code: Vec<u8>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.code.extend_from_slice(b);
        self
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the current position.
    pub fn bind(&mut self, l: Label) -> &mut Self {
        self.labels[l.0] = Some(self.code.len());
        self
    }

    fn rel8(&mut self, opcode: u8, l: Label) -> &mut Self {
        self.code.push(opcode);
        self.fixups.push((self.code.len(), l));
        self.code.push(0);
        self
    }

    /// `jmp short l`.
    pub fn jmp(&mut self, l: Label) -> &mut Self {
        self.rel8(0xEB, l)
    }

    /// `je short l`.
    pub fn je(&mut self, l: Label) -> &mut Self {
        self.rel8(0x74, l)
    }

    /// `jne short l`.
    pub fn jne(&mut self, l: Label) -> &mut Self {
        self.rel8(0x75, l)
    }

    /// `mov dx, port`.
    pub fn mov_dx(&mut self, port: u16) -> &mut Self {
        let p = port.to_le_bytes();
        self.bytes(&[0x66, 0xBA, p[0], p[1]])
    }

    /// `mov al, v`.
    pub fn mov_al(&mut self, v: u8) -> &mut Self {
        self.bytes(&[0xB0, v])
    }

    /// `mov eax, v`.
    pub fn mov_eax(&mut self, v: u32) -> &mut Self {
        self.code.push(0xB8);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `out dx, al`.
    pub fn out_al(&mut self) -> &mut Self {
        self.bytes(&[0xEE])
    }

    /// `out dx, eax`.
    pub fn out_eax(&mut self) -> &mut Self {
        self.bytes(&[0xEF])
    }

    /// `in eax, dx`.
    pub fn in_eax(&mut self) -> &mut Self {
        self.bytes(&[0xED])
    }

    /// `in al, dx`.
    pub fn in_al(&mut self) -> &mut Self {
        self.bytes(&[0xEC])
    }

    /// `cmp al, v`.
    pub fn cmp_al(&mut self, v: u8) -> &mut Self {
        self.bytes(&[0x3C, v])
    }

    /// `cmp eax, v`.
    pub fn cmp_eax(&mut self, v: u32) -> &mut Self {
        self.code.push(0x3D);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `mov eax, [ebx + disp]`.
    pub fn mov_eax_ebx_disp(&mut self, disp: i8) -> &mut Self {
        self.bytes(&[0x8B, 0x43, disp as u8])
    }

    /// `mov esi, [ebx + disp]`.
    pub fn mov_esi_ebx_disp(&mut self, disp: i8) -> &mut Self {
        self.bytes(&[0x8B, 0x73, disp as u8])
    }

    /// `mov esi, [esi + disp]`.
    pub fn mov_esi_esi_disp(&mut self, disp: i8) -> &mut Self {
        self.bytes(&[0x8B, 0x76, disp as u8])
    }

    /// `mov eax, [esi + disp]`.
    pub fn mov_eax_esi_disp(&mut self, disp: i8) -> &mut Self {
        self.bytes(&[0x8B, 0x46, disp as u8])
    }

    /// `and eax, v`.
    pub fn and_eax(&mut self, v: u32) -> &mut Self {
        self.code.push(0x25);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `mov esi, eax`.
    pub fn mov_esi_eax(&mut self) -> &mut Self {
        self.bytes(&[0x89, 0xC6])
    }

    /// `mov dword [addr], v`.
    pub fn store_abs(&mut self, addr: u32, v: u32) -> &mut Self {
        self.bytes(&[0xC7, 0x05]);
        self.code.extend_from_slice(&addr.to_le_bytes());
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `mov dword [esi + disp], v`.
    pub fn store_esi_disp(&mut self, disp: i8, v: u32) -> &mut Self {
        self.bytes(&[0xC7, 0x46, disp as u8]);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `lidt [addr]`.
    pub fn lidt_abs(&mut self, addr: u32) -> &mut Self {
        self.bytes(&[0x0F, 0x01, 0x1D]);
        self.code.extend_from_slice(&addr.to_le_bytes());
        self
    }

    /// `mov eax, [addr]`.
    pub fn load_abs(&mut self, addr: u32) -> &mut Self {
        self.code.push(0xA1);
        self.code.extend_from_slice(&addr.to_le_bytes());
        self
    }

    /// `mov esp, v` (the PVH entry leaves the stack pointer undefined).
    pub fn mov_esp(&mut self, v: u32) -> &mut Self {
        self.code.push(0xBC);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `add esi, v`.
    pub fn add_esi(&mut self, v: u32) -> &mut Self {
        self.bytes(&[0x81, 0xC6]);
        self.code.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `sti`.
    pub fn sti(&mut self) -> &mut Self {
        self.bytes(&[0xFB])
    }

    /// Writes `value` to PCI configuration dword `reg` of bus 0 `dev`.`func`.
    pub fn pci_write(&mut self, dev: u8, func: u8, reg: u8, value: u32) -> &mut Self {
        let addr = 0x8000_0000u32
            | (u32::from(dev & 0x1F) << 11)
            | (u32::from(func & 7) << 8)
            | u32::from(reg & 0xFC);
        self.mov_dx(0xCF8).mov_eax(addr).out_eax();
        self.mov_dx(0xCFC).mov_eax(value).out_eax()
    }

    /// Current length of the program (the offset of the next instruction).
    pub fn offset(&self) -> usize {
        self.code.len()
    }

    /// Writes `s` to COM1 byte by byte.
    pub fn serial_str(&mut self, s: &str) -> &mut Self {
        self.mov_dx(COM1);
        for b in s.bytes() {
            self.mov_al(b).out_al();
        }
        self
    }

    /// Writes the NUL-terminated string at `[esi]` to COM1.
    pub fn serial_cstr_at_esi(&mut self) -> &mut Self {
        let top = self.label();
        let done = self.label();
        self.mov_dx(COM1);
        self.bind(top);
        self.bytes(&[0xAC]); // lodsb
        self.bytes(&[0x84, 0xC0]); // test al, al
        self.je(done);
        self.out_al();
        self.jmp(top);
        self.bind(done)
    }

    /// Writes `status` to the exit port, then halts forever.
    pub fn exit(&mut self, status: u32) -> &mut Self {
        self.mov_dx(EXIT_PORT).mov_eax(status).out_eax();
        self.halt_forever()
    }

    /// `hlt` in a loop.
    pub fn halt_forever(&mut self) -> &mut Self {
        let l = self.label();
        self.bind(l);
        self.bytes(&[0xF4]);
        self.jmp(l)
    }

    /// Reads PCI configuration dword `reg` of bus 0 `dev`.`func` into `eax`
    /// through configuration mechanism #1.
    pub fn pci_read(&mut self, dev: u8, func: u8, reg: u8) -> &mut Self {
        let addr = 0x8000_0000u32
            | (u32::from(dev & 0x1F) << 11)
            | (u32::from(func & 7) << 8)
            | u32::from(reg & 0xFC);
        self.mov_dx(0xCF8).mov_eax(addr).out_eax();
        self.mov_dx(0xCFC).in_eax()
    }

    /// Exits with `status` unless `eax == value`.
    pub fn expect_eax(&mut self, value: u32, status: u32) -> &mut Self {
        let ok = self.label();
        self.cmp_eax(value).je(ok);
        self.exit(status);
        self.bind(ok)
    }

    /// Resolves jumps; panics only on a programming error in a fixture (unbound
    /// label or a jump farther than 127 bytes).
    pub fn finish(mut self) -> Vec<u8> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].expect("fixture label never bound");
            let rel = target as i64 - (at as i64 + 1);
            let rel = i8::try_from(rel).expect("fixture jump out of rel8 range");
            self.code[at] = rel as u8;
        }
        self.code
    }
}

/// An ELF64 PVH kernel image around a block of 32-bit code.
pub struct PvhImage {
    load_addr: u64,
    entry: u64,
    code: Vec<u8>,
    note: bool,
}

impl PvhImage {
    /// Code loaded at `load_addr`, PVH entry at its first byte.
    pub fn new(load_addr: u64, code: Vec<u8>) -> Self {
        PvhImage {
            load_addr,
            entry: load_addr,
            code,
            note: true,
        }
    }

    /// Overrides the PVH entry address.
    pub fn entry(mut self, entry: u64) -> Self {
        self.entry = entry;
        self
    }

    /// Leaves out the PVH note (for negative tests).
    pub fn without_note(mut self) -> Self {
        self.note = false;
        self
    }

    /// The ELF file bytes.
    pub fn build(&self) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let phnum: u16 = if self.note { 2 } else { 1 };
        let note_off = EHDR + PHDR * phnum as usize;
        let note_len = if self.note { 20 } else { 0 };
        let code_off = (note_off + note_len).div_ceil(16) * 16;

        let mut f = Vec::new();
        // ELF header.
        f.extend_from_slice(b"\x7fELF");
        f.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, LE, version 1, SysV ABI
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&self.entry.to_le_bytes());
        f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        f.extend_from_slice(&(EHDR as u16).to_le_bytes());
        f.extend_from_slice(&(PHDR as u16).to_le_bytes());
        f.extend_from_slice(&phnum.to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        debug_assert_eq!(f.len(), EHDR);

        let phdr = |f: &mut Vec<u8>, p_type: u32, flags: u32, off: u64, addr: u64, size: u64| {
            f.extend_from_slice(&p_type.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&addr.to_le_bytes()); // vaddr
            f.extend_from_slice(&addr.to_le_bytes()); // paddr
            f.extend_from_slice(&size.to_le_bytes()); // filesz
            f.extend_from_slice(&size.to_le_bytes()); // memsz
            f.extend_from_slice(&16u64.to_le_bytes()); // align
        };
        let code_len = self.code.len() as u64;
        phdr(&mut f, 1, 5, code_off as u64, self.load_addr, code_len);
        if self.note {
            phdr(&mut f, 4, 4, note_off as u64, 0, note_len as u64);
            f.extend_from_slice(&4u32.to_le_bytes());
            f.extend_from_slice(&4u32.to_le_bytes());
            f.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
            f.extend_from_slice(b"Xen\0");
            f.extend_from_slice(&(self.entry as u32).to_le_bytes());
        }
        f.resize(code_off, 0);
        f.extend_from_slice(&self.code);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_backwards_and_forwards() {
        let mut a = Asm::new();
        let fwd = a.label();
        a.jmp(fwd);
        a.bytes(&[0x90, 0x90]);
        a.bind(fwd);
        let code = a.finish();
        assert_eq!(code, vec![0xEB, 0x02, 0x90, 0x90]);

        let mut a = Asm::new();
        a.halt_forever();
        assert_eq!(a.finish(), vec![0xF4, 0xEB, 0xFD]);
    }

    #[test]
    fn exit_encoding() {
        let mut a = Asm::new();
        a.mov_dx(EXIT_PORT).mov_eax(7).out_eax();
        assert_eq!(
            a.finish(),
            vec![0x66, 0xBA, 0xF4, 0x00, 0xB8, 7, 0, 0, 0, 0xEF]
        );
    }

    #[test]
    fn memory_and_system_encodings() {
        let mut a = Asm::new();
        a.store_abs(0x2_0200, 0x11)
            .store_esi_disp(12, 0)
            .lidt_abs(0x2_1000)
            .and_eax(0xFFFF_FFF0)
            .mov_esi_eax()
            .sti();
        assert_eq!(
            a.finish(),
            vec![
                0xC7, 0x05, 0x00, 0x02, 0x02, 0x00, 0x11, 0, 0,
                0, // mov dword [0x20200], 0x11
                0xC7, 0x46, 0x0C, 0, 0, 0, 0, // mov dword [esi+12], 0
                0x0F, 0x01, 0x1D, 0x00, 0x10, 0x02, 0x00, // lidt [0x21000]
                0x25, 0xF0, 0xFF, 0xFF, 0xFF, // and eax, 0xfffffff0
                0x89, 0xC6, // mov esi, eax
                0xFB, // sti
            ]
        );
    }

    #[test]
    fn image_has_code_at_entry_offset() {
        let img = PvhImage::new(0x20_0000, vec![0xF4]).build();
        assert_eq!(&img[0..4], b"\x7fELF");
        assert_eq!(*img.last().unwrap(), 0xF4);
    }
}

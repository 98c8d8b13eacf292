//! vCPU set-up: CPUID and the PVH entry state (32-bit protected mode, paging off,
//! flat 4 GiB segments).

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs, CpuId};
use kvm_ioctls::VcpuFd;

use crate::error::{Result, VmmError};
use crate::layout::BOOT_GDT_ADDR;

/// Selector of the flat 32-bit code segment.
pub const CODE_SELECTOR: u16 = 0x10;
/// Selector of the flat 32-bit data segment.
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the boot TSS.
pub const TSS_SELECTOR: u16 = 0x20;

/// The boot GDT written at [`BOOT_GDT_ADDR`]: null, unused, code32, data32, TSS.
pub const BOOT_GDT: [u64; 5] = [
    0,
    0,
    gdt_entry(0xC09B, 0, 0xF_FFFF), // code: P, DPL0, S, exec/read/accessed; G, D
    gdt_entry(0xC093, 0, 0xF_FFFF), // data: P, DPL0, S, read/write/accessed; G, B
    gdt_entry(0x008B, 0, 0x67),     // TSS: P, 32-bit busy TSS
];

/// CR0.PE.
const CR0_PE: u64 = 1;
/// CR0.ET.
const CR0_ET: u64 = 1 << 4;

/// Encodes a GDT descriptor from its flags (bits 15:12 = G, D/B, L, AVL; bits 7:0 =
/// P, DPL, S, type), base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let flags = flags as u64;
    let base = base as u64;
    let limit = limit as u64;
    ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0xF_0000) << 32)
        | ((base & 0x00FF_FFFF) << 16)
        | (limit & 0xFFFF)
}

/// Decodes a GDT descriptor into the segment KVM loads (what the CPU would cache
/// after loading `selector`).
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xFF_FFFF) | ((entry >> 32) & 0xFF00_0000);
    let raw_limit = (entry & 0xFFFF) | ((entry >> 32) & 0xF_0000);
    let granularity_4k = (entry >> 55) & 1 == 1;
    let limit = if granularity_4k {
        (raw_limit << 12) | 0xFFF
    } else {
        raw_limit
    };
    kvm_segment {
        base,
        limit: limit as u32,
        selector,
        type_: ((entry >> 40) & 0xF) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: u8::from(granularity_4k),
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Fills in the PVH entry state on top of the vCPU's reset `sregs`.
pub fn pvh_sregs(mut sregs: kvm_sregs) -> kvm_sregs {
    let code = segment_from_gdt(BOOT_GDT[(CODE_SELECTOR >> 3) as usize], CODE_SELECTOR);
    let data = segment_from_gdt(BOOT_GDT[(DATA_SELECTOR >> 3) as usize], DATA_SELECTOR);
    let tss = segment_from_gdt(BOOT_GDT[(TSS_SELECTOR >> 3) as usize], TSS_SELECTOR);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.ldt = kvm_segment {
        selector: 0,
        type_: 2,
        present: 1,
        limit: 0xFFFF,
        ..Default::default()
    };
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = (BOOT_GDT.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    sregs
}

/// General registers at the PVH entry.
pub fn pvh_regs(entry: u32, start_info: u64) -> kvm_regs {
    kvm_regs {
        rip: u64::from(entry),
        rbx: start_info,
        rflags: 0x2,
        ..Default::default()
    }
}

/// Sets the APIC id fields of a CPUID table copy for vCPU `id`.
pub fn cpuid_for_vcpu(supported: &CpuId, id: u8) -> CpuId {
    let mut cpuid = supported.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => e.ebx = (e.ebx & 0x00FF_FFFF) | (u32::from(id) << 24),
            0xB | 0x1F => e.edx = u32::from(id),
            _ => {}
        }
    }
    cpuid
}

/// CPUID for every vCPU; the boot vCPU also gets the PVH entry state.
pub fn configure_vcpu(
    vcpu: &VcpuFd,
    id: u8,
    supported: &CpuId,
    boot: Option<(u32, u64)>,
) -> Result<()> {
    vcpu.set_cpuid2(&cpuid_for_vcpu(supported, id))
        .map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
    let Some((entry, start_info)) = boot else {
        return Ok(());
    };
    let sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&pvh_sregs(sregs))
        .map_err(VmmError::kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&pvh_regs(entry, start_info))
        .map_err(VmmError::kvm("KVM_SET_REGS"))?;
    let fpu = kvm_fpu {
        fcw: 0x37F,
        mxcsr: 0x1F80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(VmmError::kvm("KVM_SET_FPU"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_are_the_usual_flat_descriptors() {
        assert_eq!(BOOT_GDT[2], 0x00CF_9B00_0000_FFFF);
        assert_eq!(BOOT_GDT[3], 0x00CF_9300_0000_FFFF);
        assert_eq!(BOOT_GDT[4], 0x0000_8B00_0000_0067);
    }

    #[test]
    fn decoded_segments_are_flat_32_bit() {
        let s = pvh_sregs(kvm_sregs::default());
        assert_eq!(s.cs.base, 0);
        assert_eq!(s.cs.limit, 0xFFFF_FFFF);
        assert_eq!(s.cs.selector, CODE_SELECTOR);
        assert_eq!(
            (s.cs.type_, s.cs.db, s.cs.l, s.cs.s, s.cs.present),
            (0xB, 1, 0, 1, 1)
        );
        assert_eq!(s.ss.limit, 0xFFFF_FFFF);
        assert_eq!((s.ds.type_, s.ds.db, s.ds.s), (0x3, 1, 1));
        assert_eq!(
            (s.tr.type_, s.tr.s, s.tr.limit, s.tr.present),
            (0xB, 0, 0x67, 1)
        );
        assert_eq!(s.cr0 & 1, 1, "protected mode");
        assert_eq!(s.cr0 & (1 << 31), 0, "paging off");
        assert_eq!(s.efer, 0);
        assert_eq!(s.gdt.base, BOOT_GDT_ADDR);
        assert_eq!(s.gdt.limit, 39);
    }

    #[test]
    fn regs_carry_entry_and_start_info() {
        let r = pvh_regs(0x10_0040, 0x6000);
        assert_eq!((r.rip, r.rbx, r.rflags), (0x10_0040, 0x6000, 2));
    }

    #[test]
    fn cpuid_apic_ids() {
        let mut c = CpuId::new(2).unwrap();
        c.as_mut_slice()[0].function = 1;
        c.as_mut_slice()[0].ebx = 0xAA12_3456;
        c.as_mut_slice()[1].function = 0xB;
        let out = cpuid_for_vcpu(&c, 1);
        assert_eq!(out.as_slice()[0].ebx, 0x0112_3456);
        assert_eq!(out.as_slice()[1].edx, 1);
    }
}

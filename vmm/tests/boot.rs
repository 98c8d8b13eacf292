//! Boot tests with tiny PVH fixture kernels (need /dev/kvm; see common::kvm_available).

mod common;

use common::*;
use rnic_vmm::fixture::{Asm, PvhImage};

const LOAD: u64 = 0x10_0000;

fn kernel(s: &Scratch, a: Asm) -> String {
    let img = PvhImage::new(LOAD, a.finish()).build();
    path_str(&s.file("kernel.elf", &img)).to_string()
}

fn assert_guest_exit(o: &std::process::Output, status: i32) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(status),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!(
            "rnic-vmm: guest exited with status {status} after "
        )),
        "{err}"
    );
}

#[test]
fn hello_and_exit_status() {
    if !kvm_available("hello_and_exit_status") {
        return;
    }
    let s = Scratch::new("hello");
    let mut a = Asm::new();
    a.serial_str("hello\n").exit(7);
    let k = kernel(&s, a);
    let o = vmm(&["--kernel", &k, "--no-rnic"]);
    assert_guest_exit(&o, 7);
    assert_eq!(stdout(&o), "hello\n");
}

#[test]
fn exit_status_is_low_byte_of_the_port_write() {
    if !kvm_available("exit_status_is_low_byte_of_the_port_write") {
        return;
    }
    let s = Scratch::new("lowbyte");
    let mut a = Asm::new();
    a.exit(0x1234_5600);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic", "--memory", "16"]);
    assert_guest_exit(&o, 0);
}

#[test]
fn start_info_cmdline_and_modules_reach_the_guest() {
    if !kvm_available("start_info_cmdline_and_modules_reach_the_guest") {
        return;
    }
    let s = Scratch::new("startinfo");
    let mut a = Asm::new();
    // ebx -> hvm_start_info: magic, version, nr_modules.
    a.mov_eax_ebx_disp(0).expect_eax(0x336e_c578, 10);
    a.mov_eax_ebx_disp(4).expect_eax(1, 11);
    a.mov_eax_ebx_disp(12).expect_eax(2, 12);
    // Command line, then the two module names, then the first module's bytes.
    a.mov_esi_ebx_disp(24).serial_cstr_at_esi();
    a.serial_str("|");
    a.mov_esi_ebx_disp(16)
        .mov_esi_esi_disp(16)
        .serial_cstr_at_esi();
    a.serial_str("|");
    a.mov_esi_ebx_disp(16)
        .mov_esi_esi_disp(32 + 16)
        .serial_cstr_at_esi();
    a.serial_str("|");
    a.mov_esi_ebx_disp(16)
        .mov_esi_esi_disp(0)
        .serial_cstr_at_esi();
    // Second module's size.
    a.mov_esi_ebx_disp(16)
        .mov_eax_esi_disp(32 + 8)
        .expect_eax(3, 13);
    a.exit(0);
    let k = kernel(&s, a);
    let m1 = s.file("driver.bin", b"MZ-payload\0");
    let m2 = s.file("plan.txt", b"abc");
    let o = vmm(&[
        "--kernel",
        &k,
        "--no-rnic",
        "--cmdline",
        "verdict=serial quiet",
        "--module",
        &format!("{}=rnic.sys", path_str(&m1)),
        "--module",
        path_str(&m2),
    ]);
    assert_guest_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "verdict=serial quiet|rnic.sys|plan.txt|MZ-payload"
    );
}

#[test]
fn pci_host_bridge_and_absent_devices() {
    if !kvm_available("pci_host_bridge_and_absent_devices") {
        return;
    }
    let s = Scratch::new("pci");
    let mut a = Asm::new();
    a.pci_read(0, 0, 0).expect_eax(0x29C0_8086, 20);
    a.pci_read(0, 0, 8).expect_eax(0x0600_0000, 21);
    a.pci_read(1, 0, 0).expect_eax(0xFFFF_FFFF, 22);
    a.pci_read(2, 0, 0).expect_eax(0xFFFF_FFFF, 23);
    a.exit(0);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic"]);
    assert_guest_exit(&o, 0);
}

#[test]
fn in_kernel_pit_answers_port_0x61() {
    if !kvm_available("in_kernel_pit_answers_port_0x61") {
        return;
    }
    let s = Scratch::new("pit");
    let mut a = Asm::new();
    let ok = a.label();
    // Unclaimed ports read 0xFF; KVM's PIT speaker port has bits 7:6 clear.
    a.mov_dx(0x61).in_al().cmp_al(0xFF).jne(ok);
    a.exit(1);
    a.bind(ok);
    a.exit(0);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic"]);
    assert_guest_exit(&o, 0);
}

#[test]
fn serial_to_file() {
    if !kvm_available("serial_to_file") {
        return;
    }
    let s = Scratch::new("serialfile");
    let mut a = Asm::new();
    a.serial_str("to a file\n").exit(3);
    let k = kernel(&s, a);
    let out = s.0.join("serial.log");
    let o = vmm(&["--kernel", &k, "--no-rnic", "--serial", path_str(&out)]);
    assert_guest_exit(&o, 3);
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "to a file\n");
}

#[test]
fn timeout_ends_a_hung_guest_with_124() {
    if !kvm_available("timeout_ends_a_hung_guest_with_124") {
        return;
    }
    let s = Scratch::new("timeout");
    let mut a = Asm::new();
    let l = a.label();
    a.serial_str("spinning\n");
    a.bind(l).jmp(l);
    let t0 = std::time::Instant::now();
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic", "--timeout", "1"]);
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert_one_line_error(&o, 124, "--timeout");
    assert_eq!(stdout(&o), "spinning\n");
}

#[test]
fn triple_fault_is_a_guest_crash() {
    if !kvm_available("triple_fault_is_a_guest_crash") {
        return;
    }
    let s = Scratch::new("triple");
    let mut a = Asm::new();
    // IDT limit is 0 at entry: ud2 -> #UD -> #GP -> #DF -> shutdown.
    a.serial_str("boom\n").bytes(&[0x0F, 0x0B]);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic"]);
    assert_one_line_error(&o, 123, "crashed");
    assert_eq!(stdout(&o), "boom\n");
}

#[test]
fn two_vcpus_boot_on_vcpu0() {
    if !kvm_available("two_vcpus_boot_on_vcpu0") {
        return;
    }
    let s = Scratch::new("smp");
    let mut a = Asm::new();
    a.serial_str("smp\n").exit(5);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic", "--vcpus", "2"]);
    assert_guest_exit(&o, 5);
    assert_eq!(stdout(&o), "smp\n");
}

#[test]
fn large_memory_above_4g() {
    if !kvm_available("large_memory_above_4g") {
        return;
    }
    let s = Scratch::new("bigmem");
    let mut a = Asm::new();
    // memmap_entries == 4 when RAM continues above 4 GiB.
    a.mov_eax_ebx_disp(48).expect_eax(4, 30);
    a.exit(0);
    let o = vmm(&["--kernel", &kernel(&s, a), "--no-rnic", "--memory", "3200"]);
    assert_guest_exit(&o, 0);
}

#[test]
fn stop_signals_end_the_guest_with_128_plus_the_signal() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    if !kvm_available("stop_signals_end_the_guest_with_128_plus_the_signal") {
        return;
    }
    let s = Scratch::new("signals");
    let mut a = Asm::new();
    let l = a.label();
    a.serial_str("up\n");
    a.bind(l).jmp(l);
    let k = kernel(&s, a);
    for (signal, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rnic-vmm"))
            .args(["--kernel", &k, "--no-rnic", "--timeout", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the guest runs (handlers are installed before the vCPU starts).
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 3];
        out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"up\n");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let o = child.wait_with_output().unwrap();
        assert_one_line_error(&o, 128 + signal, &format!("interrupted ({name})"));
    }
}

#[test]
fn a_failing_serial_output_is_a_monitor_error() {
    if !kvm_available("a_failing_serial_output_is_a_monitor_error") {
        return;
    }
    let s = Scratch::new("devfull");
    let mut a = Asm::new();
    a.serial_str("lost\n").exit(0);
    let o = vmm(&[
        "--kernel",
        &kernel(&s, a),
        "--no-rnic",
        "--serial",
        "/dev/full",
    ]);
    assert_one_line_error(&o, 125, "serial output failed");
}

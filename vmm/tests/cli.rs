//! Command-line and input errors: each is one `rnic-vmm: error:` line on stderr,
//! exit status 125, no panic, and happens before any VM exists (these tests do
//! not need /dev/kvm).

mod common;

use common::*;
use rnic_vmm::fixture::{Asm, PvhImage};

fn good_kernel(s: &Scratch) -> String {
    let mut a = Asm::new();
    a.exit(0);
    let img = PvhImage::new(0x10_0000, a.finish()).build();
    path_str(&s.file("k.elf", &img)).to_string()
}

#[test]
fn missing_kernel_file() {
    let o = vmm(&["--kernel", "/nonexistent/vmlinux"]);
    assert_one_line_error(&o, 125, "cannot read kernel /nonexistent/vmlinux");
}

#[test]
fn kernel_option_is_required() {
    let o = vmm(&["--memory", "64"]);
    assert_one_line_error(&o, 125, "--kernel");
}

#[test]
fn kernel_that_is_not_elf() {
    let s = Scratch::new("notelf");
    let k = s.file(
        "k",
        b"#!/bin/sh\necho this is not a kernel, but it is long enough to parse\n",
    );
    let o = vmm(&["--kernel", path_str(&k)]);
    assert_one_line_error(&o, 125, "not an ELF");
}

#[test]
fn kernel_without_pvh_note() {
    let s = Scratch::new("nonote");
    let mut a = Asm::new();
    a.exit(0);
    let img = PvhImage::new(0x10_0000, a.finish()).without_note().build();
    let k = s.file("k.elf", &img);
    let o = vmm(&["--kernel", path_str(&k)]);
    assert_one_line_error(&o, 125, "no PVH entry note");
}

#[test]
fn kernel_that_is_a_directory() {
    let s = Scratch::new("kdir");
    let o = vmm(&["--kernel", path_str(&s.0)]);
    assert_one_line_error(&o, 125, "not a regular file");
}

#[test]
fn module_that_is_a_directory_is_unreadable() {
    // Root can read any file regardless of mode bits, so "unreadable" is tested with
    // things no one can read as a module: a directory, a FIFO and a missing path.
    let s = Scratch::new("moddir");
    let k = good_kernel(&s);
    let sub = s.0.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = vmm(&["--kernel", &k, "--module", path_str(&sub)]);
    assert_one_line_error(&o, 125, "cannot read module");
}

#[test]
fn module_that_is_a_fifo_is_rejected_without_blocking() {
    let s = Scratch::new("modfifo");
    let k = good_kernel(&s);
    let fifo = s.0.join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let o = vmm(&["--kernel", &k, "--module", path_str(&fifo)]);
    assert_one_line_error(&o, 125, "not a regular file");
}

#[test]
fn missing_module_file() {
    let s = Scratch::new("modmissing");
    let k = good_kernel(&s);
    let o = vmm(&["--kernel", &k, "--module", "/nonexistent/rnic.sys=drv.sys"]);
    assert_one_line_error(&o, 125, "cannot read module /nonexistent/rnic.sys");
}

#[test]
fn zero_and_huge_memory() {
    let s = Scratch::new("mem");
    let k = good_kernel(&s);
    for m in ["0", "1", "99999999", "lots"] {
        let o = vmm(&["--kernel", &k, "--memory", m]);
        assert_one_line_error(&o, 125, "--memory");
    }
}

#[test]
fn bad_vcpus() {
    let s = Scratch::new("vcpus");
    let k = good_kernel(&s);
    for n in ["0", "3", "two", "-1"] {
        let o = vmm(&["--kernel", &k, "--vcpus", n]);
        assert_one_line_error(&o, 125, "--vcpus");
    }
}

#[test]
fn unknown_option() {
    let o = vmm(&["--kernel", "k", "--frobnicate"]);
    assert_one_line_error(&o, 125, "--frobnicate");
}

#[test]
fn serial_file_in_missing_directory() {
    let s = Scratch::new("serial");
    let k = good_kernel(&s);
    let o = vmm(&["--kernel", &k, "--serial", "/nonexistent/dir/serial.log"]);
    assert_one_line_error(&o, 125, "cannot open serial output");
}

#[test]
fn module_too_large_for_memory() {
    let s = Scratch::new("bigmod");
    let k = good_kernel(&s);
    let m = s.file("big.bin", &vec![0u8; 9 << 20]);
    let o = vmm(&["--kernel", &k, "--memory", "8", "--module", path_str(&m)]);
    assert_one_line_error(&o, 125, "raise --memory");
}

#[test]
fn help_and_version_succeed() {
    let o = vmm(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for opt in [
        "--kernel",
        "--module",
        "--memory",
        "--cmdline",
        "--serial",
        "--no-rnic",
        "--rnic",
        "--config",
        "--api-socket",
        "--hold",
        "--timeout",
        "--vcpus",
        "wire=none|unix:LOCAL,PEER",
        "faults=PLANFILE",
        "at most 16 RNICs",
    ] {
        assert!(out.contains(opt), "{opt} missing from help");
    }
    let o = vmm(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("rnic-vmm"));
}

#[test]
fn a_bad_fault_plan_names_its_line_and_field() {
    let s = Scratch::new("plan");
    let k = good_kernel(&s);
    let plan = s.file(
        "plan.toml",
        b"# comment\n[[fault]]\nsite = \"msix\"\naction = \"drop\"\nintervall = 4\n",
    );
    let rnic = format!("faults={}", path_str(&plan));
    let o = vmm(&["--kernel", &k, "--rnic", &rnic]);
    assert_one_line_error(&o, 125, "line 5: field `intervall`: unknown field");
    let plan = s.file(
        "plan2.toml",
        b"[[fault]]\nsite = \"msix\"\naction = \"drop\"\nqueue = 1\n",
    );
    let rnic = format!("faults={}", path_str(&plan));
    let o = vmm(&["--kernel", &k, "--rnic", &rnic]);
    assert_one_line_error(&o, 125, "line 1: field `queue`");
    let o = vmm(&["--kernel", &k, "--rnic", "faults=/nonexistent/plan.toml"]);
    assert_one_line_error(&o, 125, "cannot read fault plan /nonexistent/plan.toml");
}

#[test]
fn bad_rnic_settings_and_config_files_are_one_line_errors() {
    let s = Scratch::new("rnicopts");
    let k = good_kernel(&s);
    let o = vmm(&["--kernel", &k, "--rnic", "wire=tcp:1"]);
    assert_one_line_error(&o, 125, "wire `tcp:1` is not one of");
    let o = vmm(&["--kernel", &k, "--rnic", "id=a", "--rnic", "id=a"]);
    assert_one_line_error(&o, 125, "same id");
    let config = s.file("vm.json", b"{\"rnics\": [{\"mac\": 5}]}");
    let o = vmm(&["--kernel", &k, "--config", path_str(&config)]);
    assert_one_line_error(&o, 125, "config file");
    let o = vmm(&["--kernel", &k, "--hold"]);
    assert_one_line_error(&o, 125, "--api-socket");
}

#[test]
fn vfio_device_without_vfio_is_one_line_naming_what_is_missing() {
    // These machines have no VFIO; where a host has it, this test has nothing to say.
    if std::path::Path::new("/dev/vfio/vfio").exists() {
        return;
    }
    let s = Scratch::new("vfio");
    let k = good_kernel(&s);
    let o = vmm(&[
        "--kernel",
        &k,
        "--vfio-device",
        "/sys/bus/pci/devices/0000:00:00.0",
    ]);
    assert_one_line_error(
        &o,
        125,
        "--vfio-device /sys/bus/pci/devices/0000:00:00.0: /dev/vfio/vfio does not exist",
    );
}

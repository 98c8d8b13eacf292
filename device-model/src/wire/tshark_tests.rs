//! Cross-check with a dissector nobody here wrote: if `tshark` (Wireshark) is on
//! PATH, our captures must dissect as InfiniBand over RoCEv2 with the opcodes,
//! PSNs and QPs we sent, good IPv4 checksums, no malformed-packet or expert
//! warnings, and the ICRC where we put it. tshark 4.0 shows the ICRC but does not
//! verify it; the ICRC value itself is checked by `roce::tests` against an
//! independent computation. If tshark is absent the test says so loudly and
//! passes (the parser tests still run). Install with `apt-get install tshark`.

use super::tests::{capture_script, TempDir, SCRIPT};
use crate::roce;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn skip_notice() {
    // Written to the real stderr, not through `eprintln!`, so the test harness
    // does not swallow it for a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: the tshark cross-check did NOT run: `tshark` is not on PATH \
         (install the Debian package `tshark`)"
    );
}

/// Runs tshark over `path` and returns one row of fields per frame.
fn tshark_fields(path: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tshark output is UTF-8")
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

const FIELDS: [&str; 8] = [
    "frame.protocols",
    "infiniband.bth.opcode",
    "infiniband.bth.psn",
    "infiniband.bth.destqp",
    "infiniband.invariant.crc",
    "ip.checksum.status",
    "_ws.malformed",
    "_ws.expert",
];

#[test]
fn tshark_dissects_our_capture_as_roce() {
    if !tshark_available() {
        skip_notice();
        return;
    }
    let dir = TempDir::new("tshark");
    let path = dir.path().join("script.pcap");
    let frames = capture_script(&path);
    let rows = tshark_fields(&path, &FIELDS);
    assert_eq!(rows.len(), SCRIPT.len(), "{rows:?}");
    for (i, row) in rows.iter().enumerate() {
        let (op, psn, qp, _) = SCRIPT[i];
        assert_eq!(row.len(), FIELDS.len(), "frame {i}: {row:?}");
        assert!(
            row[0].ends_with("eth:ethertype:ip:udp:infiniband")
                || row[0].contains("eth:ethertype:ip:udp:infiniband:"),
            "frame {i} protocols {}",
            row[0]
        );
        assert_eq!(row[1], op.to_string(), "frame {i} opcode");
        assert_eq!(row[2], psn.to_string(), "frame {i} psn");
        assert_eq!(row[3], format!("0x{qp:06x}"), "frame {i} qp");
        // tshark prints the four trailer bytes in wire order.
        let f = &frames[i];
        let range = roce::transport_range(f).unwrap();
        let t = &f[range.end - 4..range.end];
        let icrc = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        assert_eq!(row[4], format!("0x{icrc:08x}"), "frame {i} ICRC position");
        assert_eq!(row[5], "1", "frame {i}: IPv4 checksum not good");
        assert_eq!(row[6], "", "frame {i} malformed");
        assert_eq!(row[7], "", "frame {i} expert info");
    }
    println!(
        "tshark cross-check ran: {} frames dissected as RoCEv2",
        rows.len()
    );
}

#[test]
fn tshark_names_the_reference_frame() {
    if !tshark_available() {
        skip_notice();
        return;
    }
    let dir = TempDir::new("tshark-ref");
    let path = dir.path().join("ref.pcap");
    let mut w = super::pcap::PcapWriter::create(&path).unwrap();
    w.write_frame(
        std::time::Duration::from_secs(1),
        &roce::tests::REFERENCE_WRITE_ONLY,
    )
    .unwrap();
    drop(w);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-V")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Reliable Connection (RC) - RDMA WRITE Only (10)"),
        "{text}"
    );
    assert!(text.contains("Packet Sequence Number: 266"), "{text}");
    assert!(text.contains("Invariant CRC: 0xa67bd9a2"), "{text}");
    assert!(text.contains("DMA Length: 4096"), "{text}");
}

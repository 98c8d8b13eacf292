#!/usr/bin/env bash
# Counts the guest's instructions per function: on the nested KVM here every guest instruction
# runs in KVM's instruction emulator (about 1.5 us each, docs/platform.md), so this count is what
# the guest's share of boot time is made of.
#
# QEMU (scripts/setup-qemu.sh) runs the same kernel and driver under TCG with one instruction per
# translation block and logs every executed block (`-d exec,nochain`); scripts/guest_profile.py
# attributes the instructions to the kernel's symbols and to the driver image.
#   no-rnic     QEMU microvm (qboot), no RNIC: the guest boots and finds none (status 2);
#   lifecycle   QEMU pc with the RNIC served by rnic-device-server over vfio-user: the whole
#               driver life cycle (status 0).
# Differences from rnic-vmm: under QEMU there is no line console, so output goes to COM1 byte by
# byte (the `put` and LSR-poll instructions are QEMU-only), and TCG's timer runs against a slower
# guest, so more timer ticks land (irq_common, irq_dispatch) than under KVM.
#
# Usage: scripts/profile-guest.sh [no-rnic|lifecycle] [TOP]   (default no-rnic, 40 rows)
# Logs: target/test-artifacts/guest-profile/ (the exec log is large; it is removed after use
# unless KEEP_EXEC_LOG=1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

what="${1:-no-rnic}"
top="${2:-40}"
case "$what" in no-rnic | lifecycle) ;; *) die "usage: scripts/profile-guest.sh [no-rnic|lifecycle] [TOP]" ;; esac
[[ "$top" =~ ^[1-9][0-9]*$ ]] || die "TOP must be a positive integer (got '$top')"

kernel="$RIG_ROOT/target/images/ndis-guest.elf"
driver="$RIG_ROOT/target/images/rnic.sys"
[ -f "$kernel" ] && [ -f "$driver" ] || die "build first (scripts/build.sh): $kernel and $driver are needed"
qemu="$("$RIG_ROOT/scripts/setup-qemu.sh")"
out="$RIG_ROOT/target/test-artifacts/guest-profile"
mkdir -p "$out"
exec_log="$out/$what.exec"
serial="$out/$what.serial"
rm -f "$exec_log" "$serial"

status=0
if [ "$what" = no-rnic ]; then
    "$qemu" -M microvm,pic=on,pit=on,rtc=off,isa-serial=on -bios qboot.rom \
        -accel tcg,one-insn-per-tb=on -cpu max -m 256 -nodefaults -display none \
        -serial "file:$serial" -kernel "$kernel" -initrd "$driver" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -d exec,nochain -D "$exec_log" || status=$?
    [ "$status" = 5 ] || die "QEMU exited with $status, expected 5 (guest status 2: no RNIC); serial in $serial"
else
    server_bin="$(host_target_dir)/debug/rnic-device-server"
    [ -x "$server_bin" ] || die "$server_bin is missing: run scripts/build.sh"
    sock="$out/rnic.sock"
    rm -f "$sock"
    "$server_bin" --socket "$sock" >/dev/null 2>"$out/server.log" &
    server=$!
    trap 'kill "$server" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
    [ -S "$sock" ] || die "rnic-device-server did not listen on $sock (see $out/server.log)"
    "$qemu" -nodefaults -no-user-config -display none -accel tcg,one-insn-per-tb=on \
        -machine pc,memory-backend=mem -object memory-backend-memfd,id=mem,size=256M,share=on -m 256 \
        -serial "file:$serial" -kernel "$kernel" -initrd "$driver" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"$sock\"}}" \
        -d exec,nochain -D "$exec_log" 2>"$out/qemu.log" || status=$?
    [ "$status" = 1 ] || die "QEMU exited with $status, expected 1 (guest status 0: pass); serial in $serial"
fi

# The driver's load address and size, from the guest's own line and the PE header.
base="$(sed -n 's/^loader: .* loaded at \(0x[0-9a-f]*\).*/\1/p' "$serial" | head -n1)"
size="$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); p=struct.unpack_from("<I",d,0x3c)[0]; print(hex(struct.unpack_from("<I",d,p+24+56)[0]))' "$driver")"
echo "guest profile: $what ($(date -u +%Y-%m-%d), $("$qemu" --version | head -n1), TCG one instruction per block)"
python3 "$RIG_ROOT/scripts/guest_profile.py" "$exec_log" "$kernel" "${base:-0}" "${base:+$size}" "$top"
[ "${KEEP_EXEC_LOG:-0}" = 1 ] || rm -f "$exec_log"
log "serial output: $serial"

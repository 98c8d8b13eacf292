#!/usr/bin/env bash
# Boots the guest under QEMU (>= 10.1) with the RNIC served out of process by rnic-device-server
# over vfio-user: the same guest, driver and verdict as scripts/launch-vm.sh, with QEMU as the
# monitor. Streams the guest's serial console to this terminal and exits with the guest's status
# (0 = pass; see the README's table).
#
# Usage: scripts/run-qemu.sh [--kernel PATH] [--driver PATH] [rnic-device-server options...]
#   --kernel PATH   the PVH guest kernel (default: target/images/ndis-guest.elf)
#   --driver PATH   the driver image, passed as QEMU's -initrd (default: target/images/rnic.sys)
#   Other options go to rnic-device-server (e.g. --mac 02:7e:57:00:00:09 --wire loopback).
# Environment: RNIC_SKIP_BUILD=1 uses the artifacts already built; RNIC_QEMU=PATH picks a QEMU.
#
# What runs: rnic-device-server --socket <tmp>/rnic.sock, then QEMU's pc machine with guest RAM
# as memory-backend-memfd,share=on (vfio-user DMA needs shared, fd-backed RAM), the exit port
# isa-debug-exit at 0xf4 and -device vfio-user-pci on the socket. QEMU exits with
# (guest status << 1) | 1; this script turns that back into the guest's status (125 when QEMU
# itself failed).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

parse_image_args "$@"
server_args=("${rest_args[@]}")

if [ "${RNIC_SKIP_BUILD:-0}" != 1 ]; then
    "$RIG_ROOT/scripts/build.sh"
fi
server="$(host_target_dir)/debug/rnic-device-server"
[ -f "$server" ] || die "$server is missing: run scripts/build.sh"
[ -f "$kernel" ] || die "$kernel is missing: run scripts/build.sh (or pass --kernel PATH)"
[ -f "$driver" ] || die "$driver is missing: run scripts/build.sh (or pass --driver PATH)"
qemu="$("$RIG_ROOT/scripts/setup-qemu.sh")" || die "no QEMU >= 10.1 (scripts/setup-qemu.sh failed, see above)"

work="$(mktemp -d "${TMPDIR:-/tmp}/rnic-qemu.XXXXXX")"
socket="$work/rnic.sock"
server_pid=""
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$server" --socket "$socket" "${server_args[@]}" &
server_pid=$!
for _ in $(seq 200); do
    [ -S "$socket" ] && break
    kill -0 "$server_pid" 2>/dev/null || die "rnic-device-server exited before it listened (its error is above)"
    sleep 0.05
done
[ -S "$socket" ] || die "rnic-device-server did not listen on $socket within 10 s"

accel=(-accel kvm -accel tcg)
log "booting under $("$qemu" --version | head -n1) with the RNIC served over vfio-user ($socket)"
set +e
"$qemu" -nodefaults -no-user-config -display none "${accel[@]}" \
    -machine pc,memory-backend=mem -object memory-backend-memfd,id=mem,size=256M,share=on -m 256 \
    -serial stdio -kernel "$kernel" -initrd "$driver" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"$socket\"}}" \
    | tee "$work/serial.log"
qemu_status=${PIPESTATUS[0]}
set -e
wait "$server_pid" 2>/dev/null || true
server_pid=""
# QEMU's own start-up errors also exit 1, which reads as guest status 0: a pass needs the
# guest's verdict line too.
if [ "$qemu_status" = 1 ] && ! grep -q '^verdict: PASS' "$work/serial.log"; then
    log "no verdict: QEMU exited with status 1 before the guest gave one (its error is above)"
    exit 125
fi
if [ $((qemu_status & 1)) = 1 ]; then
    status=$((qemu_status >> 1))
    log "$(describe_vm_status "$status")"
    exit "$status"
fi
log "no verdict: QEMU exited with status $qemu_status without a guest status (its error is above)"
exit 125

#!/usr/bin/env bash
# Runs every benchmark and prints side-by-side figures measured in this one run:
#   1. boot: rnic-vmm vs QEMU's microvm booting the same guest without an RNIC (wall time of
#      the whole process, median of N runs), and rnic-vmm's full driver life cycle with the RNIC
#      (wall time of the whole process, monitor start to exit, and the monitor's own "guest
#      exited ... after T ms", vCPU start to verdict; medians of N runs). Both boot figures
#      time the RELEASE build of rnic-vmm (`cargo build --release -p rnic-vmm`, built here), as
#      QEMU is an optimised build too;
#   2. ndk: one boot of the guest with two RNICs on the pair wire and `guest.ndk=bench`: through
#      rnic.sys, 64-byte RDMA WRITE latency (doorbell to completion seen by the NDK consumer,
#      p50/p99) next to the raw floor measured in the same boot (an MMIO exit round trip), and
#      64 KiB / 1 MiB RDMA WRITE throughput between the two RNICs next to a guest memcpy of the
#      same size (the guest's own `ndk: bench:` lines, printed as they are);
#   3. the device benchmarks (`cargo bench -p rnic-device`, every bench target there), then a
#      summary: RDMA WRITE vs memcpy per size (ratio memcpy time / write time), 64-byte WRITEs
#      per second, the slowest single admin doorbell a guest can cause.
# Figures are printed, never asserted: the machines are shared and noisy. Record them in
# docs/performance.md with the machine and the date.
#
# Usage: scripts/bench.sh [boot|ndk|device|all]   (default all)
# Environment: BENCH_RUNS (default 7) boots per configuration.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

what="${1:-all}"
case "$what" in boot | ndk | device | all) ;; *) die "usage: scripts/bench.sh [boot|ndk|device|all]" ;; esac
runs="${BENCH_RUNS:-7}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$runs')"

median() { sort -n | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else print a[int((NR + 1) / 2)]}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

bench_boot() {
    "$RIG_ROOT/scripts/build.sh"
    log "boot: building the release rnic-vmm (cargo build --release -p rnic-vmm)"
    cargo build --release --quiet -p rnic-vmm || die "cargo build --release -p rnic-vmm failed"
    local vmm kernel driver qemu i start end status
    vmm="$(host_target_dir)/release/rnic-vmm"
    kernel="$RIG_ROOT/target/images/ndis-guest.elf"
    driver="$RIG_ROOT/target/images/rnic.sys"
    qemu="$("$RIG_ROOT/scripts/setup-qemu.sh")"
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable: the boot benchmark needs KVM"
    local tmp
    tmp="$(mktemp -d)"
    log "boot: $runs runs each (release rnic-vmm --no-rnic, QEMU microvm, release rnic-vmm with the RNIC)"
    for i in $(seq "$runs"); do
        start=$(now_ms)
        status=0
        "$vmm" --kernel "$kernel" --module "$driver" --no-rnic >/dev/null 2>&1 || status=$?
        end=$(now_ms)
        [ "$status" = 2 ] || die "rnic-vmm --no-rnic exited with $status, expected 2 (no RNIC)"
        echo $((end - start)) >>"$tmp/vmm"

        start=$(now_ms)
        status=0
        "$qemu" -M microvm,pic=on,pit=on,rtc=off,isa-serial=on -bios qboot.rom -accel kvm -cpu host -m 256 \
            -nodefaults -nographic -serial stdio -kernel "$kernel" -initrd "$driver" \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 >/dev/null 2>&1 || status=$?
        end=$(now_ms)
        [ "$status" = 5 ] || die "QEMU microvm exited with $status, expected 5 (guest status 2: no RNIC)"
        echo $((end - start)) >>"$tmp/qemu"

        start=$(now_ms)
        status=0
        "$vmm" --kernel "$kernel" --module "$driver" >/dev/null 2>"$tmp/lifecycle.err" || status=$?
        end=$(now_ms)
        [ "$status" = 0 ] || die "the driver life cycle failed (status $status): $(tail -n1 "$tmp/lifecycle.err")"
        echo $((end - start)) >>"$tmp/lifecycle-process"
        sed -n 's/.*guest exited with status 0 after \([0-9]*\) ms.*/\1/p' "$tmp/lifecycle.err" >>"$tmp/lifecycle"
    done
    local v q l lp
    v=$(median <"$tmp/vmm")
    q=$(median <"$tmp/qemu")
    l=$(median <"$tmp/lifecycle")
    lp=$(median <"$tmp/lifecycle-process")
    rm -rf "$tmp"
    echo
    echo "boot (median of $runs, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $("$qemu" --version | head -n1))"
    printf '  %-66s %8s ms\n' "rnic-vmm (release) --no-rnic, process start to exit" "$v"
    printf '  %-66s %8s ms\n' "QEMU microvm (qboot, KVM), same guest, start to exit" "$q"
    printf '  %-66s %8s\n' "ratio rnic-vmm / QEMU microvm" "$(awk -v a="$v" -v b="$q" 'BEGIN {printf "%.2fx", a / b}')"
    printf '  %-66s %8s ms\n' "rnic-vmm (release) with RNIC, life cycle: process start to exit" "$lp"
    printf '  %-66s %8s ms\n' "rnic-vmm (release) with RNIC, life cycle: vCPU start to verdict" "$l"
}

bench_ndk() {
    "$RIG_ROOT/scripts/build.sh"
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable: the NDK benchmark needs KVM"
    local vmm kernel driver serial status
    vmm="$(host_target_dir)/debug/rnic-vmm"
    kernel="$RIG_ROOT/target/images/ndis-guest.elf"
    driver="$RIG_ROOT/target/images/rnic.sys"
    serial="$(host_target_dir)/bench-ndk.serial"
    log "ndk: one boot with two RNICs and guest.ndk=bench (a few minutes: every guest instruction is emulated); serial log: $serial"
    status=0
    "$vmm" --kernel "$kernel" --module "$driver" --rnic id=a,wire=pair:b --rnic id=b,wire=pair:a \
        --cmdline guest.ndk=bench --timeout 900 --serial "$serial" >/dev/null 2>"$serial.err" || status=$?
    [ "$status" = 0 ] || die "the NDK benchmark boot failed (status $status): $(tail -n1 "$serial.err"); serial log: $serial"
    echo
    echo "ndk in the guest ($(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    grep -E '^ndk: bench: ' "$serial" | sed 's/^ndk: bench: /  /' \
        || die "the NDK benchmark boot printed no figures; serial log: $serial"
}

bench_device() {
    log "device benchmarks: cargo bench -p rnic-device (a few minutes)"
    local out
    out="$(host_target_dir)/bench-device.log"
    if ! cargo bench -p rnic-device >"$out" 2>&1; then
        tail -n 20 "$out" >&2
        die "cargo bench -p rnic-device failed; full output in $out"
    fi
    echo
    echo "device ($(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "  RDMA WRITE vs memcpy, loopback, same run (ratio = memcpy time / write time; 1.00x = memcpy speed):"
    sed -n '/^rdma_write vs memcpy/,/^ *1MiB /p' "$out" | tail -n +2 | sed 's/^/  /'
    grep -E '^wr_rate: ' "$out" | sed 's/^/  /' || echo "  wr_rate: not printed (see $out)"
    grep -E '^admin_doorbell/.*slowest' "$out" | sed 's/^/  worst-case doorbell: /' \
        || echo "  worst-case doorbell: not printed (see $out)"
    grep -E '^mr_lookup: registered' "$out" | sed 's/^/  /' || true
    log "full criterion output: $out"
}

case "$what" in
    boot) bench_boot ;;
    ndk) bench_ndk ;;
    device) bench_device ;;
    all)
        bench_boot
        bench_ndk
        bench_device
        ;;
esac

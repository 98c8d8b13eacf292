#!/usr/bin/env bash
# fuzz.sh TARGET SECONDS: runs the cargo-fuzz target TARGET for SECONDS seconds and
# prints libFuzzer's statistics (exec/s, coverage, corpus). Targets live next to the
# code they fuzz: device-model/fuzz (mmio, wire), images/guest-core/fuzz (pe_loader),
# vmm/fuzz (config).
#
# Installs cargo-fuzz when it is missing (cargo install cargo-fuzz --locked). The
# stable toolchain acts as nightly through RUSTC_BOOTSTRAP=1. Sanitizer: cargo-fuzz's
# default (AddressSanitizer); set FUZZ_SANITIZER=none to measure without one.
# The run starts from the repository's minimised corpus (DIR/corpus-min/TARGET,
# read-only) and grows a working corpus in DIR/corpus/TARGET (not in git). Crashes
# land in DIR/artifacts/TARGET. An interrupted run (Ctrl-C, SIGTERM) says so and still
# prints libFuzzer's statistics; only a build failure or a finding ends with an error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

fuzz_dirs=("$RIG_ROOT/device-model/fuzz" "$RIG_ROOT/images/guest-core/fuzz" "$RIG_ROOT/vmm/fuzz")
all_targets() {
    local d
    for d in "${fuzz_dirs[@]}"; do ls "$d/fuzz_targets"; done | sed 's/\.rs$//' | tr '\n' ' ' | sed 's/ $//'
}
[ $# -eq 2 ] || die "usage: scripts/fuzz.sh TARGET SECONDS (targets: $(all_targets))"
target="$1"
seconds="$2"
case "$seconds" in
    '' | *[!0-9]*) die "SECONDS must be a whole number of seconds (got '$seconds')" ;;
esac
fuzz_dir=""
for d in "${fuzz_dirs[@]}"; do
    [ -f "$d/fuzz_targets/$target.rs" ] && fuzz_dir="$d"
done
[ -n "$fuzz_dir" ] || die "no fuzz target '$target' (targets: $(all_targets))"

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked || die "could not install cargo-fuzz; install it by hand and run again"
fi

sanitizer="${FUZZ_SANITIZER:-address}"
corpus="$fuzz_dir/corpus/$target"
seeds="$fuzz_dir/corpus-min/$target"
mkdir -p "$corpus"
inputs=("$corpus")
[ -d "$seeds" ] && inputs+=("$seeds")

cd "$fuzz_dir"
log "building $target (sanitizer: $sanitizer)"
RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer "$sanitizer" "$target" \
    || die "fuzz target $target failed to build (see the compiler's messages above)"
host="$(rustc -vV | sed -n 's/^host: //p')"
binary="$fuzz_dir/target/$host/release/$target"
[ -x "$binary" ] || die "cargo fuzz build did not leave the fuzz binary at $binary"

# The binary runs directly (not under `cargo fuzz run`) so its exit status is libFuzzer's
# own: 0 at the end of the time, 72 when interrupted (SIGINT/SIGTERM; libFuzzer prints its
# final statistics itself before leaving), anything else a crash, a timeout or an
# out-of-memory stop. A SIGINT/SIGTERM sent to this script is passed on to the fuzzer.
log "fuzzing $target for ${seconds}s (sanitizer: $sanitizer)"
mkdir -p "$fuzz_dir/artifacts/$target"
"$binary" -artifact_prefix="$fuzz_dir/artifacts/$target/" -max_total_time="$seconds" \
    -print_final_stats=1 -rss_limit_mb=2048 "${inputs[@]}" &
fuzzer=$!
trap 'kill -INT "$fuzzer" 2>/dev/null || true' INT TERM
status=0
# `wait` returns early (status > 128) when a trapped signal arrives; wait again until the
# fuzzer itself has exited.
while :; do
    wait "$fuzzer" && status=0 || status=$?
    kill -0 "$fuzzer" 2>/dev/null || break
done
trap - INT TERM
case "$status" in
    0) log "fuzz target $target ran for ${seconds}s without a finding (statistics above)" ;;
    72) log "fuzz target $target was interrupted before ${seconds}s; it found nothing up to then (libFuzzer's statistics above)" ;;
    *) die "fuzz target $target stopped with libFuzzer exit status $status: a crash, timeout or out-of-memory finding (see above; the input is saved under $fuzz_dir/artifacts/$target)" ;;
esac

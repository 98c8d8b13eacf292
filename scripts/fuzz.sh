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
# land in DIR/artifacts/TARGET.
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

log "fuzzing $target for ${seconds}s (sanitizer: $sanitizer)"
cd "$fuzz_dir"
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    || die "fuzz target $target failed to build or found a crash (see above; crashes are saved under $fuzz_dir/artifacts/$target)"

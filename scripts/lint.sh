#!/usr/bin/env bash
# The lint gate: rustfmt and clippy (-D warnings) for the host workspace and for the two
# cross-built crates (rnic.sys and the guest kernel), with the lints of the root Cargo.toml
# ([workspace.lints]: undocumented unsafe blocks denied, missing docs on public items).
# scripts/test.sh runs it first; run it alone before committing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"
"$RIG_ROOT/scripts/setup-toolchain.sh"

failed=()
step() {
    local what="$1"
    shift
    log "$what"
    if ! "$@"; then
        failed+=("$what")
    fi
}

CROSS_DIR="${CARGO_TARGET_DIR:-$RIG_ROOT/target/cross}"
SPEC="$(driver_target_spec "$CROSS_DIR")"

step "rustfmt: host workspace" cargo fmt --all -- --check
step "rustfmt: rnic.sys" bash -c 'cd guest-driver/rnic-miniport && cargo fmt -- --check'
step "rustfmt: guest kernel" bash -c 'cd images/ndis-guest && cargo fmt -- --check'
step "clippy: host workspace" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "clippy: rnic.sys" bash -c "cd guest-driver/rnic-miniport && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR='$CROSS_DIR' \
    cargo clippy --quiet --release --target '$SPEC' -Zjson-target-spec \
    -Zbuild-std=core,compiler_builtins -Zbuild-std-features=compiler-builtins-mem -- -D warnings"
step "clippy: guest kernel" bash -c "cd images/ndis-guest && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR='$CROSS_DIR' \
    cargo clippy --quiet --release --target x86_64-unknown-none \
    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem -- -D warnings"

if [ "${#failed[@]}" -gt 0 ]; then
    die "lint gate failed: ${failed[*]} (fix the findings above; cargo fmt --all fixes formatting)"
fi
log "lint gate clean"

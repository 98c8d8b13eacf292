#!/usr/bin/env bash
# build-guest.sh: build the guest kernel images/ndis-guest (bare-metal x86_64, PVH-bootable ELF)
# and copy it to <repo>/target/images/ndis-guest.elf.
#
# Needs rust-src (scripts/setup-toolchain.sh provides it). Uses $CARGO_TARGET_DIR when set,
# else <repo>/target/cross. Extra arguments go to cargo (e.g. --quiet).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
ROOT="$RIG_ROOT"
"$ROOT/scripts/setup-toolchain.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/cross}"
OUT_DIR="$ROOT/target/images"
mkdir -p "$OUT_DIR"

cd "$ROOT/images/ndis-guest"
log "building the guest kernel into $TARGET_DIR"
# -Zbuild-std on the installed stable compiler (as the Linux kernel does for its Rust code).
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release \
    --target x86_64-unknown-none \
    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem "$@"

ELF="$TARGET_DIR/x86_64-unknown-none/release/ndis-guest"
[ -f "$ELF" ] || die "$ELF was not produced"
tmp="$(mktemp "$OUT_DIR/.ndis-guest.elf.XXXXXX")"
cp "$ELF" "$tmp"
mv "$tmp" "$OUT_DIR/ndis-guest.elf"
log "wrote $OUT_DIR/ndis-guest.elf"

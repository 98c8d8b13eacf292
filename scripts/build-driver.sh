#!/usr/bin/env bash
# build-driver.sh: cross-build the Windows NDIS miniport rnic.sys on Linux and copy it to
# <repo>/target/images/rnic.sys.
#
# Recipe (see guest-driver/rnic-miniport/.cargo/config.toml): target x86_64-pc-windows-msvc,
# -Zbuild-std=core,compiler_builtins with compiler-builtins-mem, rust-lld in lld-link flavour,
# /DRIVER /SUBSYSTEM:NATIVE /ENTRY:DriverEntry /NODEFAULTLIB. RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept -Zbuild-std (the Linux kernel builds its Rust the same way).
#
# Environment: CARGO_TARGET_DIR (default <repo>/target/cross), PROFILE (release | dev,
# default release), RNIC_IMAGES_DIR (default <repo>/target/images).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
REPO="$RIG_ROOT"
"$REPO/scripts/setup-toolchain.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target/cross}"
# The guest runs under KVM's instruction emulator on this nested (PVM) host, which
# cannot execute SSE arithmetic (xorps, ...) nor cmpxchg16b (measured: the VM stops
# with "instruction emulation failed"). So the driver is built soft-float: a custom
# target derived from rustc's own x86_64-pc-windows-msvc spec (same ABI for integer
# and pointer arguments, same PE/COFF output) with SSE, MMX and cmpxchg16b off.
# Generated from the installed rustc each time, so it always matches the compiler.
TARGET=x86_64-rnic-windows
SPEC="$TARGET_DIR/$TARGET.json"
mkdir -p "$TARGET_DIR"
RUSTC_BOOTSTRAP=1 rustc -Zunstable-options --print target-spec-json --target x86_64-pc-windows-msvc \
    | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec.pop("is-builtin", None)
spec["features"] = "-mmx,-sse,-sse2,-cmpxchg16b,+soft-float"
spec["rustc-abi"] = "x86-softfloat"
json.dump(spec, sys.stdout, indent=2, sort_keys=True)
' > "$SPEC.tmp" || die "could not derive the soft-float target spec from rustc (needs python3)"
mv "$SPEC.tmp" "$SPEC"
PROFILE="${PROFILE:-release}"
case "$PROFILE" in
    release) OUT_SUBDIR=release ;;
    dev) OUT_SUBDIR=debug ;;
    *) die "PROFILE must be 'release' or 'dev' (got '$PROFILE')" ;;
esac
IMAGES="${RNIC_IMAGES_DIR:-$REPO/target/images}"

log "building rnic.sys ($PROFILE) into $TARGET_DIR"
(
    cd "$REPO/guest-driver/rnic-miniport"
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_DIR" cargo build \
        --profile "$PROFILE" --target "$SPEC" -Zjson-target-spec \
        -Zbuild-std=core,compiler_builtins -Zbuild-std-features=compiler-builtins-mem
) || die "cargo build of guest-driver/rnic-miniport failed (see the errors above)"

BUILT="$TARGET_DIR/$TARGET/$OUT_SUBDIR/rnic.exe"
[ -f "$BUILT" ] || die "expected linker output $BUILT is missing"
mkdir -p "$IMAGES"
cp "$BUILT" "$IMAGES/rnic.sys.tmp"
mv "$IMAGES/rnic.sys.tmp" "$IMAGES/rnic.sys"
log "wrote $IMAGES/rnic.sys ($(stat -c %s "$IMAGES/rnic.sys") bytes)"

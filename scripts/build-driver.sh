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
# Soft-float target: see driver_target_spec in lib.sh for why.
SPEC="$(driver_target_spec "$TARGET_DIR")"
TARGET="$(basename "$SPEC" .json)"
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
tmp="$(mktemp "$IMAGES/.rnic.sys.XXXXXX")"
cp "$BUILT" "$tmp"
mv "$tmp" "$IMAGES/rnic.sys"
# The INF that installs it on Windows goes next to it (guest-driver/README.md says how).
tmp="$(mktemp "$IMAGES/.rnic.inf.XXXXXX")"
cp "$REPO/guest-driver/rnic-miniport/rnic.inf" "$tmp"
mv "$tmp" "$IMAGES/rnic.inf"
log "wrote $IMAGES/rnic.sys ($(stat -c %s "$IMAGES/rnic.sys") bytes) and $IMAGES/rnic.inf"

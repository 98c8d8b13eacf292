#!/usr/bin/env bash
# Builds everything: the host crates (rnic-vmm and friends) and the two cross-built
# guest-side artifacts:
#   target/images/rnic.sys         the Windows NDIS miniport (PE32+, native)
#   target/images/ndis-guest.elf   the guest kernel (PVH ELF)
# Sets up the toolchain first if anything is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

"$RIG_ROOT/scripts/setup-toolchain.sh"
if [ ! -x "$(host_target_dir)/debug/rnic-vmm" ]; then
    log "first build: about 300 crates plus two cross builds of the standard library; expect several minutes on 2 cores (later builds take seconds)"
fi
log "building host crates (cargo build --workspace --all-targets)"
cargo build --workspace --all-targets
log "building the driver (rnic.sys)"
"$RIG_ROOT/scripts/build-driver.sh"
log "building the guest kernel (ndis-guest.elf)"
"$RIG_ROOT/scripts/build-guest.sh"
for f in rnic.sys ndis-guest.elf; do
    [ -f "$RIG_ROOT/target/images/$f" ] || die "build finished but target/images/$f is missing"
done
log "done: $(host_target_dir)/debug/rnic-vmm, target/images/rnic.sys, target/images/ndis-guest.elf"

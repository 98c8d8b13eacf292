# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

RIG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RIG_ROOT

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Host-side build directory (the workspace's target/ unless CARGO_TARGET_DIR says otherwise).
host_target_dir() { echo "${CARGO_TARGET_DIR:-$RIG_ROOT/target}"; }

# Fails unless /dev/kvm can be opened read-write, or RNIC_ALLOW_NO_KVM=1.
require_kvm() {
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        return 0
    fi
    if [ "${RNIC_ALLOW_NO_KVM:-0}" = 1 ]; then
        log "WARNING: /dev/kvm is not usable; guest boot tests will be SKIPPED because RNIC_ALLOW_NO_KVM=1"
        return 0
    fi
    die "/dev/kvm is missing or not read/writable by $(id -un). The guest boot tests need KVM. Load kvm_intel/kvm_amd or run on a KVM-capable host; to run without them on purpose, set RNIC_ALLOW_NO_KVM=1."
}

# Writes the soft-float driver target spec (x86_64-rnic-windows.json) into directory $1 and
# prints its path. The guest runs under KVM's instruction emulator on this nested (PVM) host,
# which cannot execute SSE arithmetic (xorps, ...) nor cmpxchg16b (measured: the VM stops with
# "instruction emulation failed"). So the driver is built soft-float: a target derived from
# rustc's own x86_64-pc-windows-msvc spec (same ABI for integer and pointer arguments, same
# PE/COFF output) with SSE, MMX and cmpxchg16b off. Generated from the installed rustc each
# time, so it always matches the compiler; written through a private temporary file, so
# concurrent builds never see a half-written spec.
driver_target_spec() {
    local dir="$1" spec tmp
    spec="$dir/x86_64-rnic-windows.json"
    mkdir -p "$dir"
    tmp="$(mktemp "$dir/.x86_64-rnic-windows.XXXXXX")"
    if ! RUSTC_BOOTSTRAP=1 rustc -Zunstable-options --print target-spec-json --target x86_64-pc-windows-msvc \
        | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec.pop("is-builtin", None)
spec["features"] = "-mmx,-sse,-sse2,-cmpxchg16b,+soft-float"
spec["rustc-abi"] = "x86-softfloat"
json.dump(spec, sys.stdout, indent=2, sort_keys=True)
' > "$tmp"; then
        rm -f "$tmp"
        die "could not derive the soft-float target spec from rustc (needs python3)"
    fi
    if cmp -s "$tmp" "$spec"; then rm -f "$tmp"; else mv "$tmp" "$spec"; fi
    echo "$spec"
}

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

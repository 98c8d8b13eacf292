#!/usr/bin/env bash
# Runs the fault scenario matrix (scenarios/matrix.toml): each scenario boots the guest with
# rnic.sys under rnic-vmm with a fault plan and checks the driver's expected behaviour (the
# life cycle completes, or the driver fails the operation cleanly; never a hang, a crash, a
# contract violation or a leak; and the fault really fired). Prints a table and the closing
# line "faults: N passed, N failed, N skipped"; writes target/test-artifacts/faults/junit.xml,
# summary.json, and per scenario its plan, serial log and monitor log.
#
# Usage: scripts/faults.sh [--only TEXT]... [--timeout SECS]   (runs scripts/build.sh first)
# Environment: RNIC_SKIP_BUILD=1 uses the artifacts already built; RNIC_ALLOW_NO_KVM=1 skips
# the run on purpose when /dev/kvm is unusable (it says so).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
    if [ "${RNIC_ALLOW_NO_KVM:-0}" = 1 ]; then
        log "SKIPPED on purpose: /dev/kvm is not usable and RNIC_ALLOW_NO_KVM=1"
        echo "faults: 0 passed, 0 failed, $(grep -c '^\[\[scenario\]\]' scenarios/matrix.toml) skipped"
        exit 0
    fi
    require_kvm
fi
if [ "${RNIC_SKIP_BUILD:-0}" != 1 ]; then
    "$RIG_ROOT/scripts/build.sh"
fi
out="$RIG_ROOT/target/test-artifacts/faults"
rm -rf "$out"
bin="$(host_target_dir)/debug"
[ -x "$bin/rnic-scenarios" ] || die "$bin/rnic-scenarios is missing: run scripts/build.sh"
log "running the fault scenarios of scenarios/matrix.toml (about a minute)"
exec "$bin/rnic-scenarios" --vmm "$bin/rnic-vmm" --kernel target/images/ndis-guest.elf \
    --driver target/images/rnic.sys --matrix scenarios/matrix.toml --out "$out" "$@"

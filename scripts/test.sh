#!/usr/bin/env bash
# Runs every test: sets up the toolchain, builds everything, runs the lint gate
# (scripts/lint.sh), then runs the unit tests and the guest boot tests (cargo test --workspace). Exits non-zero on any
# failure.
#
# The guest boot tests need /dev/kvm. Without it this script fails, unless you set
# RNIC_ALLOW_NO_KVM=1 to skip them on purpose (they then say so).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

require_kvm
"$RIG_ROOT/scripts/setup-packages.sh"
"$RIG_ROOT/scripts/build.sh"
"$RIG_ROOT/scripts/lint.sh"

export RNIC_VMM="$(host_target_dir)/debug/rnic-vmm"
export RNIC_ARTIFACT_DIR="$RIG_ROOT/target/images"
log "running all tests (cargo test --workspace)"
set +e
cargo test --workspace --no-fail-fast -- --show-output 2>&1 | tee "$(host_target_dir)/test-output.log"
status=${PIPESTATUS[0]}
set -e
log "running the script tests (scripts/tests/run.sh)"
if ! "$RIG_ROOT/scripts/tests/run.sh" 2>&1 | tee "$(host_target_dir)/script-tests.log"; then
    status=1
fi
log "running the fault scenarios (scripts/faults.sh)"
if ! RNIC_SKIP_BUILD=1 "$RIG_ROOT/scripts/faults.sh" 2>&1 | tee "$(host_target_dir)/faults.log"; then
    status=1
fi
artifacts="$RIG_ROOT/target/test-artifacts/junit"
python3 "$RIG_ROOT/scripts/junit.py" "$artifacts" "$(host_target_dir)/test-output.log" "$(host_target_dir)/script-tests.log" \
    && log "JUnit XML and a JSON summary: $artifacts/ (fault scenarios: target/test-artifacts/faults/)" \
    || { log "could not write the JUnit files (scripts/junit.py failed)"; status=1; }
summary="$(summarize_test_log "$(host_target_dir)/test-output.log" "$(host_target_dir)/script-tests.log" "$(host_target_dir)/faults.log")"
if [ "$status" != 0 ]; then
    log "FAILED (exit $status); full output in $(host_target_dir)/test-output.log"
    echo "tests: $summary"
    exit "$status"
fi
log "all tests passed; full output in $(host_target_dir)/test-output.log"
echo "tests: $summary"

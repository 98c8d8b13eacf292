#!/usr/bin/env bash
# Launches a VM: the guest kernel with one emulated RNIC and the driver rnic.sys.
# Sets up and builds whatever is missing, streams the guest's serial console to this
# terminal and exits with the guest's verdict (0 = pass).
#
# Usage: scripts/launch-vm.sh [rnic-vmm options...]
#   Extra options go to rnic-vmm (see `target/debug/rnic-vmm --help`), e.g.
#   scripts/launch-vm.sh --memory 512 --no-rnic
# Environment: RNIC_SKIP_BUILD=1 uses the artifacts already built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RIG_ROOT"

if [ "${RNIC_SKIP_BUILD:-0}" != 1 ]; then
    "$RIG_ROOT/scripts/build.sh"
fi
vmm="$(host_target_dir)/debug/rnic-vmm"
for f in "$vmm" target/images/ndis-guest.elf target/images/rnic.sys; do
    [ -f "$f" ] || die "$f is missing: run scripts/build.sh"
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is missing or not accessible: the VM needs KVM"
log "booting: $vmm --kernel target/images/ndis-guest.elf --module target/images/rnic.sys $*"
set +e
"$vmm" --kernel target/images/ndis-guest.elf --module target/images/rnic.sys "$@"
status=$?
set -e
log "guest verdict: exit status $status ($( [ $status = 0 ] && echo pass || echo fail ))"
exit $status

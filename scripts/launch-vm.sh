#!/usr/bin/env bash
# Launches a VM: the guest kernel with one emulated RNIC and the driver rnic.sys.
# Sets up and builds whatever is missing, streams the guest's serial console to this
# terminal and exits with the guest's verdict (0 = pass).
#
# Usage: scripts/launch-vm.sh [--kernel PATH] [--driver PATH] [rnic-vmm options...]
#   --kernel PATH   the guest kernel to boot (default: target/images/ndis-guest.elf)
#   --driver PATH   the driver image the guest loads (default: target/images/rnic.sys)
#   Other options go to rnic-vmm unchanged (see `target/debug/rnic-vmm --help`), e.g.
#   scripts/launch-vm.sh --memory 512 --no-rnic
# Relative paths are taken from the directory you run the script in, as for any command.
# Environment: RNIC_SKIP_BUILD=1 uses the artifacts already built.
#
# The last line on stderr says what the exit status means: a guest verdict (0 pass, 1..4 see
# the README), or a monitor outcome (123 guest crash, 124 timeout, 125 monitor error, 130
# interrupted) that is not a verdict of the guest.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kernel="$RIG_ROOT/target/images/ndis-guest.elf"
driver="$RIG_ROOT/target/images/rnic.sys"
custom_kernel=0
custom_driver=0
vmm_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel | --driver)
            [ $# -ge 2 ] || die "$1 needs a path"
            [ -f "$2" ] || die "$1 $2: no such file (relative paths are taken from $(pwd))"
            path="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
            if [ "$1" = --kernel ]; then kernel="$path"; custom_kernel=1; else driver="$path"; custom_driver=1; fi
            shift 2
            ;;
        --kernel=* | --driver=*)
            die "write ${1%%=*} PATH with a space, not ${1%%=*}=PATH"
            ;;
        *)
            vmm_args+=("$1")
            shift
            ;;
    esac
done

if [ "${RNIC_SKIP_BUILD:-0}" != 1 ]; then
    "$RIG_ROOT/scripts/build.sh"
fi
vmm="$(host_target_dir)/debug/rnic-vmm"
[ -f "$vmm" ] || die "$vmm is missing: run scripts/build.sh"
[ -f "$kernel" ] || die "$kernel is missing: run scripts/build.sh (or pass --kernel PATH)"
[ -f "$driver" ] || die "$driver is missing: run scripts/build.sh (or pass --driver PATH)"
[ "$custom_kernel$custom_driver" = 00 ] || log "using kernel $kernel and driver $driver"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is missing or not accessible: the VM needs KVM"
log "booting: $vmm --kernel $kernel --module $driver ${vmm_args[*]:-}"
set +e
"$vmm" --kernel "$kernel" --module "$driver" "${vmm_args[@]}"
status=$?
set -e
log "$(describe_vm_status "$status")"
exit $status

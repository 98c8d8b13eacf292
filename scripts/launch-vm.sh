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

parse_image_args "$@"
vmm_args=("${rest_args[@]}")

prepare_launch
log "booting: $vmm --kernel $kernel --module $driver ${vmm_args[*]:-}"
set +e
"$vmm" --kernel "$kernel" --module "$driver" "${vmm_args[@]}"
status=$?
set -e
log "$(describe_vm_status "$status")"
exit $status

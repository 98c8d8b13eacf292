#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing (needs root and
# the Debian archive). Idempotent: does nothing when all are present.
#   tshark   cross-checks the RoCEv2 frames the wire captures
#   curl     drives rnic-vmm's control API over its Unix socket (vmm/tests/api.rs)
#   mingw-w64-x86-64-dev   its import libraries list the names Windows' kernel modules export:
#            every import of rnic.sys is checked against them (artifact-check)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

want=(tshark curl mingw-w64-x86-64-dev)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    die "missing packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
fi
log "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

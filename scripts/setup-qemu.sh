#!/usr/bin/env bash
# setup-qemu.sh: provides a QEMU >= 10.1 (vfio-user client, microvm machine) for the interop and
# comparison tests, and leaves a wrapper at target/qemu/qemu-system-x86_64 that runs it.
#
# Order of attempts:
#   1. the machine's own qemu-system-x86_64, when it is version 10.1 or newer;
#   2. an earlier private extraction in the cache (no network);
#   3. Debian trixie-backports' qemu-system-x86 and its whole library closure (trixie's libc6
#      included), fetched through a PRIVATE apt configuration (the system's apt sources and
#      installed packages are never changed), unpacked with `dpkg -x` into the cache and run
#      through that folder's own dynamic loader (ld-linux-x86-64.so.2 --library-path ...), with
#      QEMU_MODULE_DIR pointing into the folder (otherwise a system QEMU's modules load and abort).
#
# Idempotent: a second run takes well under a second. Prints the wrapper's path on stdout.
# Environment:
#   RNIC_QEMU_CACHE      cache dir for the extraction (default /var/cache/rnic-rig/qemu)
#   RNIC_DEBIAN_MIRROR   Debian mirror URI (default: the one configured in /etc/apt)
#   RNIC_QEMU=PATH       use this qemu-system-x86_64 (>= 10.1) instead of looking for one
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MIN_MAJOR=10
MIN_MINOR=1
WRAPPER_DIR="$RIG_ROOT/target/qemu"
WRAPPER="$WRAPPER_DIR/qemu-system-x86_64"
CACHE="${RNIC_QEMU_CACHE:-/var/cache/rnic-rig/qemu}"
ROOTFS="$CACHE/root"

# "QEMU emulator version 11.1.3 (Debian ...)" -> 0 when >= MIN_MAJOR.MIN_MINOR.
version_ok() {
    local v major minor
    v="$(echo "$1" | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
    [ -n "$v" ] || return 1
    read -r major minor <<<"$v"
    [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" = "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }
}

write_wrapper() { # $1 = the wrapper's body (after the shebang)
    mkdir -p "$WRAPPER_DIR"
    local tmp
    tmp="$(mktemp "$WRAPPER_DIR/.qemu-wrapper.XXXXXX")"
    printf '#!/bin/sh\n# Written by scripts/setup-qemu.sh: runs QEMU >= %s.%s.\n%s\n' \
        "$MIN_MAJOR" "$MIN_MINOR" "$1" >"$tmp"
    chmod +x "$tmp"
    mv "$tmp" "$WRAPPER"
    version_ok "$("$WRAPPER" --version | head -n1)" \
        || die "the wrapper $WRAPPER does not run a QEMU >= $MIN_MAJOR.$MIN_MINOR: $("$WRAPPER" --version 2>&1 | head -n1)"
    log "QEMU ready: $("$WRAPPER" --version | head -n1) via $WRAPPER"
    echo "$WRAPPER"
}

# 1. A QEMU named by the user or installed on the machine.
for candidate in "${RNIC_QEMU:-}" "$(command -v qemu-system-x86_64 || true)"; do
    [ -n "$candidate" ] || continue
    if version_ok "$("$candidate" --version 2>/dev/null | head -n1)"; then
        write_wrapper "exec '$candidate' \"\$@\""
        exit 0
    fi
    [ "$candidate" != "${RNIC_QEMU:-}" ] || die "RNIC_QEMU=$candidate is not a QEMU >= $MIN_MAJOR.$MIN_MINOR"
    log "$candidate is older than $MIN_MAJOR.$MIN_MINOR; using a private extraction instead"
done

extracted_wrapper() {
    local loader="$ROOTFS/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    [ -x "$ROOTFS/usr/bin/qemu-system-x86_64" ] && [ -f "$loader" ] || return 1
    write_wrapper "root='$ROOTFS'
QEMU_MODULE_DIR=\"\$root/usr/lib/x86_64-linux-gnu/qemu\" exec \"\$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\" \\
    --library-path \"\$root/usr/lib/x86_64-linux-gnu:\$root/lib/x86_64-linux-gnu\" \\
    \"\$root/usr/bin/qemu-system-x86_64\" -L \"\$root/usr/share/qemu\" -L \"\$root/usr/share/seabios\" \"\$@\""
}

# 2. An earlier extraction.
if extracted_wrapper >/dev/null 2>&1; then
    extracted_wrapper
    exit 0
fi

# 3. Fetch from trixie-backports with a private apt configuration.
command -v apt-get >/dev/null && command -v dpkg >/dev/null \
    || die "no QEMU >= $MIN_MAJOR.$MIN_MINOR here and apt-get/dpkg are missing: install QEMU $MIN_MAJOR.$MIN_MINOR or newer and set RNIC_QEMU=PATH"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING not found; install the 'debian-archive-keyring' package"
MIRROR="$(debian_mirror)"
log "first run: fetching QEMU and its libraries from Debian trixie-backports on $MIRROR (about 80 packages, a minute or two)"

APTDIR="$CACHE/apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/state" \
    || die "cannot create $APTDIR; run as a user who may write there or set RNIC_QEMU_CACHE"
SRCFILE="$APTDIR/rnic-trixie.sources"
cat >"$SRCFILE" <<SRC
Types: deb
URIs: $MIRROR
Suites: trixie trixie-backports
Components: main
Signed-By: $KEYRING
SRC
# An empty package status: apt computes the whole closure as for an empty system, so trixie's
# libc6 and every library come along, and nothing installed on this machine is considered.
: >"$APTDIR/state/status"
APT_OPTS=(
    -o "Dir::Etc::sourcelist=$SRCFILE"
    -o "Dir::Etc::sourceparts=/dev/null"
    -o "Dir::Etc::preferences=/dev/null"
    -o "Dir::Etc::preferencesparts=/dev/null"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::State::status=$APTDIR/state/status"
    -o "Dir::Cache=$APTDIR"
    -o "Dir::Cache::archives=$APTDIR/archives"
    -o "APT::Get::List-Cleanup=0"
    -o "APT::Default-Release=trixie-backports"
    -o "Debug::NoLocking=1"
)
UPDATE_LOG="$APTDIR/update.log"
apt-get "${APT_OPTS[@]}" -q update >"$UPDATE_LOG" 2>&1 \
    || die "apt-get update for trixie on $MIRROR failed (full output: $UPDATE_LOG)"
ls "$APTDIR/lists/"*trixie-backports*Packages* >/dev/null 2>&1 \
    || die "could not download the trixie-backports package index from $MIRROR: $(grep -E 'Failed to fetch|Could not connect|^E:' "$UPDATE_LOG" | head -n1) (check the network or set RNIC_DEBIAN_MIRROR; full output: $UPDATE_LOG)"

FETCH_LOG="$APTDIR/fetch.log"
log "resolving and downloading qemu-system-x86 from trixie-backports with its library closure"
if ! apt-get "${APT_OPTS[@]}" -q -y --no-install-recommends --download-only \
    install qemu-system-x86/trixie-backports >"$FETCH_LOG" 2>&1; then
    die "apt-get could not fetch qemu-system-x86 from trixie-backports: $(grep -E '^E:' "$FETCH_LOG" | head -n1) (full output: $FETCH_LOG)"
fi
debs=("$APTDIR"/archives/*.deb)
[ -f "${debs[0]}" ] || die "apt-get fetched no packages (full output: $FETCH_LOG)"
log "unpacking ${#debs[@]} packages into $ROOTFS"
rm -rf "$ROOTFS.tmp" && mkdir -p "$ROOTFS.tmp"
for deb in "${debs[@]}"; do
    dpkg -x "$deb" "$ROOTFS.tmp" || die "dpkg -x $deb failed"
done
# Debian's merged /usr: the loader lives in /usr/lib/x86_64-linux-gnu.
[ -f "$ROOTFS.tmp/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] \
    || die "the unpacked libc6 has no usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; package layout changed?"
rm -rf "$ROOTFS" && mv "$ROOTFS.tmp" "$ROOTFS"
rm -f "$APTDIR"/archives/*.deb
extracted_wrapper || die "unpacked QEMU does not run; see $WRAPPER"

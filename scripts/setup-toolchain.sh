#!/usr/bin/env bash
# setup-toolchain.sh: make the Rust standard library sources (rust-src) available to the
# installed rustc, so the cross builds (-Zbuild-std) of the driver and the guest work, and check
# that rust-lld is present.
#
# Order of attempts:
#   1. already installed -> nothing to do;
#   2. `rustup component add rust-src` (works on an online machine);
#   3. Debian's `rust-src` package from trixie-backports whose upstream version equals rustc's,
#      fetched through a PRIVATE apt configuration (the system's apt sources are never changed),
#      unpacked with `dpkg -x` into a cache dir and linked into the sysroot.
#
# Idempotent; takes well under a second when everything is in place.
# Environment:
#   RNIC_TOOLCHAIN_CACHE   cache dir for the unpacked package (default /var/cache/rnic-rig)
#   RNIC_DEBIAN_MIRROR     Debian mirror URI (default: the one configured in /etc/apt)
#   RNIC_RUSTUP_TIMEOUT    seconds allowed for `rustup component add` (default 60)
#   RNIC_NO_RUSTUP=1       skip the rustup attempt (go straight to the Debian package)
set -euo pipefail

. "$(dirname "$0")/lib.sh"

command -v rustc >/dev/null || die "rustc not found in PATH; install a Rust toolchain (rustup) first"
SYSROOT="$(rustc --print sysroot)"
RUSTC_VER="$(rustc --version | awk '{print $2}')"
HOST="$(rustc -vV | awk '/^host:/ {print $2}')"
LIB_DST="$SYSROOT/lib/rustlib/src/rust/library"
LLD="$SYSROOT/lib/rustlib/$HOST/bin/rust-lld"

check_lld() {
    [ -x "$LLD" ] || die "rust-lld not found at $LLD; it ships with rustup toolchains (component 'rustc'); reinstall the toolchain with rustup"
    log "rust-lld present: $LLD"
}

have_src() { [ -f "$LIB_DST/core/Cargo.toml" ]; }

if have_src; then
    log "rust-src for rustc $RUSTC_VER already present at $LIB_DST"
    check_lld
    exit 0
fi

# 2. rustup
if [ "${RNIC_NO_RUSTUP:-0}" != 1 ] && command -v rustup >/dev/null; then
    log "trying: rustup component add rust-src (timeout ${RNIC_RUSTUP_TIMEOUT:-60}s)"
    if timeout "${RNIC_RUSTUP_TIMEOUT:-60}" rustup component add rust-src >&2 2>&1 && have_src; then
        log "rust-src installed by rustup"
        check_lld
        exit 0
    fi
    log "rustup could not install rust-src (offline toolchain server?); falling back to Debian's package"
fi

# 3. Debian trixie-backports rust-src
command -v apt-get >/dev/null && command -v dpkg >/dev/null \
    || die "rust-src missing, rustup failed and apt-get/dpkg are not available; install rust-src for rustc $RUSTC_VER by hand into $LIB_DST"

CACHE="${RNIC_TOOLCHAIN_CACHE:-/var/cache/rnic-rig}"

link_library() { # $1 = unpacked library dir
    mkdir -p "$(dirname "$LIB_DST")"
    if [ -L "$LIB_DST" ] || [ -e "$LIB_DST" ]; then
        [ -L "$LIB_DST" ] || die "$LIB_DST exists but is not a complete rust-src; remove it and rerun"
        rm -f "$LIB_DST"
    fi
    ln -s "$1" "$LIB_DST"
    have_src || die "linked $1 to $LIB_DST but $LIB_DST/core/Cargo.toml is still missing"
}

# A package unpacked by an earlier run for this exact upstream version: relink, no network.
for dir in "$CACHE"/rust-src-"$RUSTC_VER"+* "$CACHE"/rust-src-"$RUSTC_VER"-*; do
    if [ -f "$dir/usr/lib/rustlib/src/rust/library/core/Cargo.toml" ]; then
        link_library "$dir/usr/lib/rustlib/src/rust/library"
        log "rust-src ${dir##*/rust-src-} (cached in $CACHE) linked at $LIB_DST"
        check_lld
        exit 0
    fi
done

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING not found; install the 'debian-archive-keyring' package"

MIRROR="$(debian_mirror)"
log "using Debian mirror $MIRROR (suite trixie-backports, private apt configuration)"

APTDIR="$CACHE/apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/state" \
    || die "cannot create $APTDIR; run as a user who may write there or set RNIC_TOOLCHAIN_CACHE"
SRCFILE="$APTDIR/rnic-trixie-backports.sources"
cat >"$SRCFILE" <<SRC
Types: deb
URIs: $MIRROR
Suites: trixie-backports
Components: main
Signed-By: $KEYRING
SRC

APT_OPTS=(
    -o "Dir::Etc::sourcelist=$SRCFILE"
    -o "Dir::Etc::sourceparts=/dev/null"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR"
    -o "Dir::Cache::archives=$APTDIR/archives"
    -o "Dir::State::status=/var/lib/dpkg/status"
    -o "APT::Get::List-Cleanup=0"
)

log "apt-get update (private lists in $APTDIR/lists)"
# apt-get update exits 0 even when it could not fetch anything ("W: Failed to fetch ..."), so its
# output is kept and the fetched index is checked: an unreachable mirror is reported as such, not
# as a missing package.
UPDATE_LOG="$APTDIR/update.log"
apt_failure() { # the line of apt's output that says why nothing was fetched
    grep -E 'Failed to fetch|Could not connect|Temporary failure|^E:' "$UPDATE_LOG" | head -n1 | grep . \
        || echo 'no index fetched'
}
if ! apt-get "${APT_OPTS[@]}" -q update >"$UPDATE_LOG" 2>&1; then
    die "apt-get update for trixie-backports on $MIRROR failed: $(apt_failure) (full output: $UPDATE_LOG)"
fi
if ! ls "$APTDIR/lists/"*trixie-backports*Packages* >/dev/null 2>&1; then
    die "could not download the trixie-backports package index from $MIRROR: $(apt_failure) (check the network, or set RNIC_DEBIAN_MIRROR; full output: $UPDATE_LOG)"
fi

CANDIDATES="$(apt-cache "${APT_OPTS[@]}" madison rust-src | awk -F'|' '{gsub(/ /, "", $2); print $2}')"
[ -n "$CANDIDATES" ] || die "no rust-src package found in trixie-backports on $MIRROR"
PKG_VER=""
while read -r v; do
    [ -n "$v" ] || continue
    upstream="${v#*:}"          # drop epoch
    upstream="${upstream%%+*}"  # drop +dfsg... suffix
    upstream="${upstream%%-*}"  # drop Debian revision
    if [ "$upstream" = "$RUSTC_VER" ]; then PKG_VER="$v"; break; fi
done <<<"$CANDIDATES"
if [ -z "$PKG_VER" ]; then
    die "installed rustc is $RUSTC_VER but trixie-backports only has rust-src $(echo "$CANDIDATES" | paste -sd, -); install a rustc with one of those versions (rustup toolchain install <version>) or install rust-src $RUSTC_VER by other means"
fi
log "rustc $RUSTC_VER matches Debian rust-src $PKG_VER"

UNPACK="$CACHE/rust-src-$PKG_VER"
PKG_LIB="$UNPACK/usr/lib/rustlib/src/rust/library"
if [ ! -f "$PKG_LIB/core/Cargo.toml" ]; then
    DL="$APTDIR/download"
    rm -rf "$DL" && mkdir -p "$DL"
    log "downloading rust-src=$PKG_VER"
    (cd "$DL" && apt-get "${APT_OPTS[@]}" -q download "rust-src=$PKG_VER" >&2) \
        || die "apt-get download rust-src=$PKG_VER failed"
    DEB="$(ls "$DL"/rust-src_*.deb | head -n1)"
    DEB_VER="$(dpkg-deb -f "$DEB" Version)"
    [ "$DEB_VER" = "$PKG_VER" ] || die "downloaded package has version $DEB_VER, expected $PKG_VER"
    rm -rf "$UNPACK.tmp" && mkdir -p "$UNPACK.tmp"
    dpkg -x "$DEB" "$UNPACK.tmp"
    [ -f "$UNPACK.tmp/usr/lib/rustlib/src/rust/library/core/Cargo.toml" ] \
        || die "package $DEB does not contain usr/lib/rustlib/src/rust/library/core/Cargo.toml; layout changed?"
    rm -rf "$UNPACK" && mv "$UNPACK.tmp" "$UNPACK"
    rm -rf "$DL"
    log "unpacked into $UNPACK"
fi

link_library "$PKG_LIB"
log "rust-src $PKG_VER linked at $LIB_DST"
check_lld

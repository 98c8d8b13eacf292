# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

RIG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RIG_ROOT

# Every script logs as "<name>: ..." (its file name without .sh), errors as "<name>: error: ...".
RIG_SCRIPT="$(basename "$0" .sh)"
log() { printf '%s: %s\n' "$RIG_SCRIPT" "$*" >&2; }
die() { printf '%s: error: %s\n' "$RIG_SCRIPT" "$*" >&2; exit 1; }

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

# One line saying what an rnic-vmm exit status means (see the README's table): a verdict of the
# guest, or an outcome of the monitor that is not a verdict.
describe_vm_status() {
    case "$1" in
        0) echo "guest verdict: PASS (exit status 0)" ;;
        1) echo "guest verdict: FAIL, the driver broke the NDIS contract (exit status 1)" ;;
        2) echo "guest verdict: FAIL, no RNIC found on the PCI bus (exit status 2)" ;;
        3) echo "guest verdict: FAIL, the driver image could not be loaded (exit status 3)" ;;
        4) echo "guest verdict: FAIL, CPU exception or panic in the guest (exit status 4)" ;;
        5) echo "guest verdict: FAIL, the guest's plan (--cmdline) is invalid (exit status 5)" ;;
        123) echo "no verdict: the guest crashed (triple fault or KVM emulation failure; exit status 123)" ;;
        124) echo "no verdict: the timeout expired before the guest finished (exit status 124)" ;;
        125) echo "no verdict: the monitor could not start the VM (its error is above; exit status 125)" ;;
        121) echo "no verdict: the out-of-process device (--rnic socket=) was lost (exit status 121)" ;;
        122) echo "no verdict: the run was ended through the control API before the guest's verdict (exit status 122)" ;;
        129 | 130 | 143) echo "no verdict: ended by a signal (exit status $1: 129 SIGHUP, 130 SIGINT, 143 SIGTERM)" ;;
        *) echo "exit status $1 (not one of the documented statuses; see the README)" ;;
    esac
}

# Reads a `cargo test` log ($1) and the logs of other suites (further arguments: each ends with
# a line "<suite>: N passed, N failed, N skipped", as the script tests and the fault scenarios
# print) and prints the closing line "N passed, N failed, N skipped" of them all. Cargo tests
# that skipped themselves on purpose print a line containing "SKIPPED on purpose" (the Rust
# harness has no runtime skip, so they end as "ok"): they are counted as skipped, not passed.
summarize_test_log() {
    local log_file="$1" passed failed skipped line extra
    shift
    passed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed.*/\1/p' "$log_file" | awk '{s+=$1} END {print s+0}')
    failed=$(sed -n 's/^test result: .* \([0-9]*\) failed.*/\1/p' "$log_file" | awk '{s+=$1} END {print s+0}')
    skipped=$(grep -ci 'SKIPPED on purpose' "$log_file" || true)
    passed=$((passed - skipped))
    for extra in "$@"; do
        [ -f "$extra" ] || continue
        line="$(grep -E '^[a-z ]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$extra" | tail -n1 || true)"
        [ -n "$line" ] || continue
        set -- $(echo "${line#*:}" | tr -cs '0-9' ' ')
        passed=$((passed + $1))
        failed=$((failed + $2))
        skipped=$((skipped + $3))
    done
    echo "$passed passed, $failed failed, $skipped skipped"
}

# The Debian archive to fetch from: $RNIC_DEBIAN_MIRROR, else the first Debian archive URI (not
# the security archive) configured on this machine in deb822 *.sources or one-line *.list files.
debian_mirror() {
    local f mirror="${RNIC_DEBIAN_MIRROR:-}"
    if [ -z "$mirror" ]; then
        mirror="$(
            {
            for f in /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] || continue
                awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
            done
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -f "$f" ] || continue
                awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
            done
            } | grep -i 'debian' | grep -vi 'security' | head -n1 || true
        )"
    fi
    [ -n "$mirror" ] || die "no Debian mirror configured in /etc/apt; set RNIC_DEBIAN_MIRROR=http://deb.debian.org/debian (or your mirror)"
    echo "$mirror"
}

# Parses the image options the launch scripts share and leaves the rest for the program they
# start. Sets: kernel, driver (absolute paths; defaults target/images/ndis-guest.elf and
# target/images/rnic.sys), custom_images (1 when --kernel or --driver was given) and the array
# rest_args. Relative paths are taken from the caller's directory, as for any command.
parse_image_args() {
    kernel="$RIG_ROOT/target/images/ndis-guest.elf"
    driver="$RIG_ROOT/target/images/rnic.sys"
    custom_images=0
    rest_args=()
    local path
    while [ $# -gt 0 ]; do
        case "$1" in
            --kernel | --driver)
                [ $# -ge 2 ] || die "$1 needs a path"
                [ -f "$2" ] || die "$1 $2: no such file (relative paths are taken from $(pwd))"
                path="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
                if [ "$1" = --kernel ]; then kernel="$path"; else driver="$path"; fi
                custom_images=1
                shift 2
                ;;
            --kernel=* | --driver=*)
                die "write ${1%%=*} PATH with a space, not ${1%%=*}=PATH"
                ;;
            *)
                rest_args+=("$1")
                shift
                ;;
        esac
    done
}
# What the launch scripts do before they start rnic-vmm (after parse_image_args): build unless
# RNIC_SKIP_BUILD=1, then check that rnic-vmm, $kernel and $driver exist and that /dev/kvm is
# usable. Sets vmm (the rnic-vmm binary).
prepare_launch() {
    if [ "${RNIC_SKIP_BUILD:-0}" != 1 ]; then
        "$RIG_ROOT/scripts/build.sh"
    fi
    vmm="$(host_target_dir)/debug/rnic-vmm"
    [ -f "$vmm" ] || die "$vmm is missing: run scripts/build.sh"
    [ -f "$kernel" ] || die "$kernel is missing: run scripts/build.sh (or pass --kernel PATH)"
    [ -f "$driver" ] || die "$driver is missing: run scripts/build.sh (or pass --driver PATH)"
    [ "$custom_images" = 0 ] || log "using kernel $kernel and driver $driver"
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is missing or not accessible: rnic-vmm needs KVM"
}

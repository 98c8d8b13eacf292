#!/usr/bin/env bash
# Regression tests of the user-facing scripts (scripts/*.sh). Run by scripts/test.sh after the
# build; runnable alone once scripts/build.sh has run. Each test prints "ok NAME" or
# "FAIL NAME: why"; the last line is "script tests: N passed, N failed, N skipped".
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$RIG_ROOT"

passed=0
failed=0
skipped=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
skip() { echo "skip $1: SKIPPED on purpose: $2"; skipped=$((skipped + 1)); }
have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# --- test.sh's closing line counts tests that skipped themselves as skipped, not passed.
t=summary_counts_skipped_tests
cat >"$WORK/cargo.log" <<'LOG'
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s
boots: SKIPPED on purpose: /dev/kvm is not usable and RNIC_ALLOW_NO_KVM=1
SKIPPED ON PURPOSE: /dev/kvm unavailable (no such file) and RNIC_ALLOW_NO_KVM=1
test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s
LOG
got="$(summarize_test_log "$WORK/cargo.log")"
echo "script tests: 4 passed, 1 failed, 1 skipped" >"$WORK/scripts.log"
got2="$(summarize_test_log "$WORK/cargo.log" "$WORK/scripts.log")"
[ "$got" = "6 passed, 2 failed, 2 skipped" ] && [ "$got2" = "10 passed, 3 failed, 3 skipped" ] \
    && ok $t || fail $t "got '$got' and '$got2'"

# --- junit.py turns cargo's --show-output log into JUnit XML that a standard XML parser reads,
# with failures carrying the test's output and self-skipped tests reported as skipped.
t=junit_from_cargo_log
cat >"$WORK/show-output.log" <<'LOG'
     Running tests/boot.rs (target/debug/deps/boot-0123456789abcdef)

running 3 tests
test boots ... ok
test kvm_only ... ok
test lifecycle ... FAILED

successes:

---- boots stdout ----
boot figure: 42 ms

---- kvm_only stdout ----
kvm_only: SKIPPED on purpose: /dev/kvm is not usable and RNIC_ALLOW_NO_KVM=1

successes:
    boots
    kvm_only

failures:

---- lifecycle stdout ----
thread 'lifecycle' panicked at src/lib.rs:1:1:
serial log lacks "verdict: PASS" <&>

failures:
    lifecycle

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s
LOG
if python3 scripts/junit.py "$WORK/junit" "$WORK/show-output.log" >"$WORK/junit.err" 2>&1 \
    && python3 - "$WORK/junit/cargo-tests.xml" <<'PY'
import sys, xml.etree.ElementTree as E
suite = E.parse(sys.argv[1]).getroot().find("testsuite")
assert suite.get("name") == "boot (tests/boot.rs)", suite.get("name")
assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1"), suite.attrib
failure = suite.find("testcase[@name='lifecycle']/failure")
assert 'serial log lacks "verdict: PASS" <&>' in failure.text, failure.text
assert suite.find("testcase[@name='kvm_only']/skipped") is not None
PY
then ok $t; else fail $t "$(cat "$WORK/junit.err")"; fi

# --- every monitor status gets a label that says whether it is a guest verdict.
t=status_labels_tell_verdicts_from_monitor_outcomes
labels_ok=1
for s in 0 1 2 3 4 5; do describe_vm_status $s | grep -q '^guest verdict' || labels_ok=0; done
for s in 121 122 123 124 125 129 130 143; do describe_vm_status $s | grep -q '^no verdict' || labels_ok=0; done
[ $labels_ok = 1 ] && ok $t || fail $t "a status has the wrong kind of label"

# --- setup-toolchain.sh names an unreachable mirror instead of "no rust-src package found".
t=setup_toolchain_reports_unreachable_mirror
mkdir -p "$WORK/fakebin" "$WORK/sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin"
cat >"$WORK/fakebin/rustc" <<FAKE
#!/bin/sh
case "\$*" in
  *sysroot*) echo "$WORK/sysroot" ;;
  -vV) echo "host: x86_64-unknown-linux-gnu" ;;
  *) echo "rustc 1.95.0 (fake 2026-01-01)" ;;
esac
FAKE
chmod +x "$WORK/fakebin/rustc"
if [ "$(id -u)" != 0 ]; then
    skip $t "needs root for apt-get's private lists"
else
    out="$(PATH="$WORK/fakebin:$PATH" RNIC_NO_RUSTUP=1 RNIC_TOOLCHAIN_CACHE="$WORK/cache" \
        RNIC_DEBIAN_MIRROR=http://127.0.0.1:9/debian timeout 120 scripts/setup-toolchain.sh 2>&1)"
    st=$?
    if [ $st = 0 ]; then
        fail $t "succeeded against an unreachable mirror"
    elif grep -q 'no rust-src package found' <<<"$out"; then
        fail $t "blamed the package: $out"
    elif grep -q '127.0.0.1:9' <<<"$out"; then
        ok $t
    else
        fail $t "message does not name the mirror: $out"
    fi
fi

# --- concurrent builds of the driver and the guest do not race on temporary files.
t=concurrent_cross_builds_succeed
pids=()
for i in 1 2; do
    scripts/build-driver.sh >"$WORK/driver-$i.log" 2>&1 &
    pids+=($!)
    scripts/build-guest.sh >"$WORK/guest-$i.log" 2>&1 &
    pids+=($!)
done
all_ok=1
for p in "${pids[@]}"; do wait "$p" || all_ok=0; done
if [ $all_ok = 1 ] && [ -s target/images/rnic.sys ] && [ -s target/images/ndis-guest.elf ]; then
    ok $t
else
    fail $t "$(cat "$WORK"/driver-*.log "$WORK"/guest-*.log | grep -i error | head -n3)"
fi

# --- launch-vm.sh takes relative paths from the caller's directory.
t=launch_vm_resolves_paths_from_the_callers_directory
mkdir -p "$WORK/user"
cp target/images/rnic.sys "$WORK/user/my-driver.sys"
if ! have_kvm; then
    skip $t "/dev/kvm is not usable"
else
    out="$(cd "$WORK/user" && RNIC_SKIP_BUILD=1 "$RIG_ROOT/scripts/launch-vm.sh" --driver ./my-driver.sys --timeout 60 2>&1)"
    st=$?
    if [ $st = 0 ] && grep -q "using kernel .* and driver $WORK/user/my-driver.sys" <<<"$out" \
        && grep -q 'guest verdict: PASS' <<<"$out"; then
        ok $t
    else
        fail $t "status $st: $(echo "$out" | tail -n3)"
    fi
fi

t=launch_vm_names_a_missing_file_with_the_callers_directory
out="$(cd "$WORK/user" && RNIC_SKIP_BUILD=1 "$RIG_ROOT/scripts/launch-vm.sh" --driver ./absent.sys 2>&1)"
st=$?
[ $st != 0 ] && grep -q "absent.sys: no such file (relative paths are taken from $WORK/user)" <<<"$out" \
    && ok $t || fail $t "status $st: $out"

# --- a monitor error is labelled as such, not as a guest verdict.
t=launch_vm_labels_monitor_errors
out="$(RNIC_SKIP_BUILD=1 scripts/launch-vm.sh --memory 0 2>&1)"
st=$?
if [ $st = 125 ] && echo "$out" | tail -n1 | grep -q 'no verdict: the monitor could not start' \
    && ! grep -q 'guest verdict' <<<"$out"; then
    ok $t
else
    fail $t "status $st: $(echo "$out" | tail -n2)"
fi

# --- setup-qemu.sh leaves a working QEMU >= 10.1, and QEMU's microvm boots our PVH guest (a
# second host of the same guest): without an RNIC the guest must say so and exit with status 2,
# which isa-debug-exit reports as (2 << 1) | 1 = 5.
t=qemu_microvm_boots_the_guest
if [ "${RNIC_ALLOW_NO_QEMU:-0}" = 1 ]; then
    skip $t "RNIC_ALLOW_NO_QEMU=1"
elif ! qemu="$(scripts/setup-qemu.sh 2>"$WORK/qemu-setup.log")"; then
    fail $t "scripts/setup-qemu.sh failed: $(tail -n1 "$WORK/qemu-setup.log") (set RNIC_ALLOW_NO_QEMU=1 to skip the QEMU tests on purpose)"
elif ! have_kvm; then
    skip $t "/dev/kvm is not usable"
else
    out="$(timeout 120 "$qemu" -M microvm,pic=on,pit=on,rtc=off,isa-serial=on -bios qboot.rom -accel kvm -cpu host \
        -m 256 -nodefaults -nographic -serial stdio -kernel target/images/ndis-guest.elf \
        -initrd target/images/rnic.sys -device isa-debug-exit,iobase=0xf4,iosize=0x04 2>&1)"
    st=$?
    if [ $st = 5 ] && grep -q 'pci: no rnic found' <<<"$out"; then
        ok $t
    else
        mkdir -p target/test-artifacts
        echo "$out" >target/test-artifacts/qemu-microvm-boot.log
        fail $t "status $st (want 5); serial log in target/test-artifacts/qemu-microvm-boot.log"
    fi
fi

# --- two VMs on one wire (launch-pair.sh): both guests exchange their frames over the Unix
# wire and over the UDP wire, and tshark decodes the capture: each guest's frames of 60, 512
# and 1514 bytes, to the broadcast address, in both directions; the counts match what the
# guests report (the left VM's capture holds each of its own sends once, and each frame the
# right VM sent at most once: at least the ones the left guest received, more when the right
# guest was still sending after the left one had stopped listening).
pair_capture_matches() {
    local pcap="$1" serial="$2" right_serial="$3" rounds repeats right_rounds left_frames right_frames sizes
    rounds="$(sed -n 's/.*ndis: peer: 3 of 3 frames from the peer intact (\([0-9]*\) rounds sent, \([0-9]*\) repeats, 0 other frames).*/\1/p' "$serial")"
    repeats="$(sed -n 's/.*ndis: peer: 3 of 3 frames from the peer intact ([0-9]* rounds sent, \([0-9]*\) repeats, 0 other frames).*/\1/p' "$serial")"
    right_rounds="$(sed -n 's/.*ndis: peer: 3 of 3 frames from the peer intact (\([0-9]*\) rounds sent, .*/\1/p' "$right_serial")"
    [ -n "$rounds" ] && [ -n "$repeats" ] && [ -n "$right_rounds" ] || { echo "no peer result line in $serial or $right_serial"; return 1; }
    tshark -r "$pcap" -T fields -e eth.src -e eth.dst -e eth.type -e frame.len >"$WORK/pair.fields" 2>"$WORK/tshark.err" \
        || { echo "tshark cannot read $pcap: $(head -n1 "$WORK/tshark.err")"; return 1; }
    left_frames=$(grep -c '^02:7e:57:00:00:01	ff:ff:ff:ff:ff:ff	0x88b5	' "$WORK/pair.fields" || true)
    right_frames=$(grep -c '^02:7e:57:00:00:02	ff:ff:ff:ff:ff:ff	0x88b5	' "$WORK/pair.fields" || true)
    [ "$left_frames" = $((3 * rounds)) ] || { echo "left->right: $left_frames frames captured, $rounds rounds of 3 sent"; return 1; }
    [ "$right_frames" -ge $((3 + repeats)) ] && [ "$right_frames" -le $((3 * right_rounds)) ] \
        || { echo "right->left: $right_frames frames captured; left received $((3 + repeats)), right sent $((3 * right_rounds))"; return 1; }
    [ "$(wc -l <"$WORK/pair.fields")" = $((left_frames + right_frames)) ] || { echo "frames of neither guest in the capture"; return 1; }
    for mac in 01 02; do
        sizes="$(grep "^02:7e:57:00:00:$mac" "$WORK/pair.fields" | cut -f4 | sort -n | uniq | tr '\n' ' ')"
        [ "$sizes" = "60 512 1514 " ] || { echo "sizes from ...:$mac: $sizes"; return 1; }
    done
}
for wire in unix udp; do
    t=launch_pair_exchanges_frames_over_the_${wire}_wire
    if ! have_kvm; then
        skip $t "/dev/kvm is not usable"
        continue
    fi
    flag=$([ $wire = udp ] && echo --udp || true)
    out="$(RNIC_SKIP_BUILD=1 scripts/launch-pair.sh $flag --logs "$WORK/pair-$wire" --timeout 120 2>&1)"
    st=$?
    mkdir -p target/test-artifacts
    cp "$WORK/pair-$wire/pair.pcap" "target/test-artifacts/pair-$wire.pcap" 2>/dev/null || true
    if [ $st != 0 ] || [ "$(echo "$out" | grep -c 'guest verdict: PASS (exit status 0)')" != 2 ] \
        || [ "$(echo "$out" | grep -c 'ndis: peer: 3 of 3 frames from the peer intact')" != 2 ]; then
        # Keep both guests' serial logs and monitor output for the person reading the failure.
        mkdir -p "target/test-artifacts/pair-$wire"
        cp "$WORK/pair-$wire/"*.serial "$WORK/pair-$wire/"*.stderr "target/test-artifacts/pair-$wire/" 2>/dev/null || true
        fail $t "status $st: $(echo "$out" | tail -n4 | tr '\n' ' ') (serial logs kept in target/test-artifacts/pair-$wire/)"
    elif why="$(pair_capture_matches "$WORK/pair-$wire/pair.pcap" "$WORK/pair-$wire/left.serial" "$WORK/pair-$wire/right.serial")"; then
        ok $t
    else
        fail $t "$why (capture kept at target/test-artifacts/pair-$wire.pcap)"
    fi
done

# --- launch-pair.sh: when the VMs fail, each one's status is labelled and the exit status is
# not zero.
t=launch_pair_reports_each_vms_failure
out="$(RNIC_SKIP_BUILD=1 scripts/launch-pair.sh --memory 0 --logs "$WORK/pair-fail" 2>/dev/null)"
st=$?
if ! have_kvm; then
    skip $t "/dev/kvm is not usable"
elif [ $st = 125 ] && [ "$(echo "$out" | grep -c '^\(left\|right\): no verdict: the monitor could not start the VM')" = 2 ] \
    && [ "$(echo "$out" | grep -c '^\(left\|right\): rnic-vmm: error: --memory 0')" = 2 ]; then
    ok $t
else
    fail $t "status $st: $(echo "$out" | tr '\n' ' ')"
fi

t=launch_pair_refuses_options_it_sets_itself
out="$(RNIC_SKIP_BUILD=1 scripts/launch-pair.sh --rnic id=x 2>&1)"
st=$?
[ $st != 0 ] && [ "$(echo "$out" | wc -l)" = 1 ] \
    && grep -q '^launch-pair: error: --rnic: launch-pair.sh sets the RNICs' <<<"$out" \
    && ok $t || fail $t "status $st: $out"

echo "script tests: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]

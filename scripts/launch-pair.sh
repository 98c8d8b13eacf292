#!/usr/bin/env bash
# Launches two VMs on one wire: two rnic-vmm processes, each with one emulated RNIC, the two
# RNICs connected by the Unix-socket wire (or, with --udp, the UDP wire on 127.0.0.1). Each
# guest runs its side of the plan guest.ethernet=peer: it sends its test frames (60, 512 and
# 1514 bytes, payload patterns) to the broadcast address until the other guest's frames have
# arrived, and checks those byte for byte ("ndis: peer: 3 of 3 frames from the peer intact").
# The left VM's RNIC captures the wire (both directions, each frame once) into a pcap file.
#
# Usage: scripts/launch-pair.sh [--udp] [--pcap FILE] [--logs DIR] [--kernel PATH] [--driver PATH]
#                               [rnic-vmm options for both VMs...]
#   --udp           the UDP wire instead of Unix datagram sockets
#   --pcap FILE     where the capture goes (default: DIR/pair.pcap)
#   --logs DIR      serial logs and monitor logs of both VMs (default: target/test-artifacts/pair)
#   --kernel, --driver as for scripts/launch-vm.sh; other options (e.g. --timeout 60) go to both
#   rnic-vmm processes unchanged.
# Environment: RNIC_SKIP_BUILD=1 uses the artifacts already built.
#
# Output: one line per VM, "left: guest verdict: PASS (exit status 0)" (the labels of
# launch-vm.sh) followed by its guest's peer result line; exit status 0 when both guests
# passed, else the first non-zero status (left's, then right's).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

udp=0
pcap=""
logs="$RIG_ROOT/target/test-artifacts/pair"
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --udp) udp=1; shift ;;
        --pcap | --logs)
            [ $# -ge 2 ] || die "$1 needs a path"
            case "$2" in /*) path="$2" ;; *) path="$(pwd)/$2" ;; esac
            if [ "$1" = --pcap ]; then pcap="$path"; else logs="$path"; fi
            shift 2
            ;;
        *) args+=("$1"); shift ;;
    esac
done
parse_image_args "${args[@]+"${args[@]}"}"
vmm_args=("${rest_args[@]+"${rest_args[@]}"}")
for a in "${vmm_args[@]+"${vmm_args[@]}"}"; do
    case "$a" in
        --rnic* | --config* | --no-rnic | --cmdline* | --serial*)
            die "$a: launch-pair.sh sets the RNICs, the guest plan and the serial logs of both VMs itself" ;;
    esac
done
[ -n "$pcap" ] || pcap="$logs/pair.pcap"

prepare_launch
mkdir -p "$logs" "$(dirname "$pcap")"
rm -f "$pcap" "$logs"/left.* "$logs"/right.*

sockets="$(mktemp -d "${TMPDIR:-/tmp}/rnic-pair.XXXXXX")"
pids=()
cleanup() {
    local p
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$sockets"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$udp" = 1 ]; then
    # Two free UDP ports on the loopback interface (bound and released; the monitors bind them
    # again at once).
    read -r left_port right_port < <(python3 -c '
import socket
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
    left_wire="udp:127.0.0.1:$left_port,127.0.0.1:$right_port"
    right_wire="udp:127.0.0.1:$right_port,127.0.0.1:$left_port"
else
    left_wire="unix:$sockets/left.sock,$sockets/right.sock"
    right_wire="unix:$sockets/right.sock,$sockets/left.sock"
fi

start_vm() {
    local side="$1" rnic="$2"
    "$vmm" --kernel "$kernel" --module "$driver" --cmdline guest.ethernet=peer \
        --rnic "$rnic" --serial "$logs/$side.serial" ${vmm_args[@]+"${vmm_args[@]}"} \
        2>"$logs/$side.stderr" &
    pids+=($!)
}
log "booting two VMs on the ${left_wire%%:*} wire; logs in $logs, capture in $pcap"
start_vm left "id=left,mac=02:7e:57:00:00:01,ipv4=10.77.0.1,wire=$left_wire,pcap=$pcap"
start_vm right "id=right,mac=02:7e:57:00:00:02,ipv4=10.77.0.2,wire=$right_wire"

statuses=()
for p in "${pids[@]}"; do
    set +e
    wait "$p"
    statuses+=($?)
    set -e
done
pids=()

result=0
for i in 0 1; do
    side=$([ $i = 0 ] && echo left || echo right)
    st="${statuses[$i]}"
    echo "$side: $(describe_vm_status "$st")"
    peer_line="$(grep -a 'ndis: peer:' "$logs/$side.serial" 2>/dev/null | tail -n1 || true)"
    echo "$side: ${peer_line:-no peer result line in $logs/$side.serial}"
    if [ "$st" != 0 ]; then
        grep -a -m3 'violation\|verdict' "$logs/$side.serial" 2>/dev/null | sed "s/^/$side: /" || true
        tail -n1 "$logs/$side.stderr" | sed "s/^/$side: /"
        [ "$result" != 0 ] || result="$st"
    fi
done
exit "$result"

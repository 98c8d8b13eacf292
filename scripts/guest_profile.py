#!/usr/bin/env python3
"""Guest instruction profile from a QEMU exec log (used by scripts/profile-guest.sh).

The log comes from `-accel tcg,one-insn-per-tb=on -d exec,nochain`: one "Trace" line per
executed guest instruction. Counting starts at the kernel's PVH entry (firmware before it is
left out) and stops at the end of the log (the guest's exit). Instructions are attributed to the
kernel's symbols (`nm` of the ELF), to the driver image (by its load address, which the guest
prints as "loader: ... loaded at 0x..."), or to "other".

Prints: the total, then the symbols by instruction count, then calls per symbol (entries at its
first instruction), so that a cost per call can be read off.

Usage: guest_profile.py EXEC_LOG KERNEL_ELF [DRIVER_BASE_HEX DRIVER_SIZE_HEX] [TOP]
"""
import bisect
import collections
import re
import subprocess
import sys


def kernel_symbols(elf):
    out = subprocess.run(["nm", "-n", "-C", "--defined-only", elf],
                         capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return syms


def entry_point(elf):
    out = subprocess.run(["readelf", "-n", elf], capture_output=True, text=True).stdout
    # The PVH note's descriptor is the 32-bit entry (readelf prints it as raw bytes or a value).
    m = re.search(r"Xen.*?\n\s+description data: ((?:[0-9a-f]{2} ?){4})", out)
    if m:
        return int.from_bytes(bytes.fromhex(m.group(1).replace(" ", "")), "little")
    sym = [a for a, n in kernel_symbols(elf) if n == "pvh_start32"]
    return sym[0] if sym else None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    log, elf = sys.argv[1], sys.argv[2]
    arg = lambda i: sys.argv[i] if len(sys.argv) > i and sys.argv[i] else None
    drv_base = int(arg(3), 16) if arg(3) and arg(4) else 0
    drv_end = drv_base + int(arg(4), 16) if arg(3) and arg(4) else 0
    top = int(arg(5)) if arg(5) else 40
    syms = kernel_symbols(elf)
    addrs = [a for a, _ in syms]
    starts = {a: n for a, n in syms}
    kernel_end = max(addrs) + 0x10000 if addrs else 0
    entry = entry_point(elf)

    def name(pc):
        if drv_base <= pc < drv_end:
            return "rnic.sys (driver image)"
        if not addrs or pc < addrs[0] or pc >= kernel_end:
            return "other"
        return syms[bisect.bisect_right(addrs, pc) - 1][1]

    pat = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")
    counts, calls, names = collections.Counter(), collections.Counter(), {}
    started, total = entry is None, 0
    with open(log, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if not m:
                continue
            pc = int(m.group(1), 16)
            if not started:
                if pc != entry:
                    continue
                started = True
            total += 1
            n = names.get(pc)
            if n is None:
                n = names[pc] = name(pc)
            counts[n] += 1
            if pc in starts:
                calls[starts[pc]] += 1
    print(f"{total} guest instructions from the PVH entry to the exit")
    print(f"{'instructions':>12} {'share':>6} {'calls':>7} {'per call':>8}  symbol")
    for n, v in counts.most_common(top):
        c = calls.get(n, 0)
        per = f"{v // c}" if c else "-"
        print(f"{v:12d} {100 * v / max(total, 1):5.1f}% {c:7d} {per:>8}  {n[:110]}")


if __name__ == "__main__":
    main()

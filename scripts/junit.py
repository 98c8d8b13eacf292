#!/usr/bin/env python3
"""Turns the logs of scripts/test.sh into JUnit XML and a JSON summary.

Usage: scripts/junit.py OUT_DIR CARGO_LOG [SCRIPT_TESTS_LOG]

CARGO_LOG is the output of `cargo test ... -- --show-output`: one testsuite per test binary
("Running <target> (<path>)"), one testcase per "test NAME ... ok|FAILED|ignored" line; a test's
captured output (the "---- NAME stdout ----" sections, which carry the guest's serial log when a
boot test fails) goes into <system-out>, and into <failure> for failed tests. A test that printed
"SKIPPED on purpose" is reported as skipped. SCRIPT_TESTS_LOG is the output of
scripts/tests/run.sh ("ok NAME", "FAIL NAME: why", "skip NAME: why").

Writes OUT_DIR/cargo-tests.xml, OUT_DIR/script-tests.xml and OUT_DIR/summary.json.
Only the standard library is used.
"""

import json
import os
import re
import sys
from xml.sax.saxutils import escape, quoteattr

RUNNING = re.compile(r"^\s*Running (.+?) \((.+)\)\s*$")
DOCTESTS = re.compile(r"^\s*Doc-tests (\S+)\s*$")
RESULT = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored)(?:, .*)?$")
SECTION = re.compile(r"^---- (.+?) stdout ----$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def clean(text):
    """XML 1.0 cannot carry most control characters: replace them."""
    return CONTROL.sub("?", text)


def parse_cargo(lines):
    """Returns [(suite, [case])], case = dict(name, status, output)."""
    suites = []
    current = None
    outputs = {}
    section = None
    for line in lines:
        line = line.rstrip("\n")
        m = RUNNING.match(line)
        d = DOCTESTS.match(line)
        if m or d:
            if m:
                binary = os.path.basename(m.group(2)).rsplit("-", 1)[0]
                name = f"{binary} ({m.group(1)})"
            else:
                name = f"doc-tests {d.group(1)}"
            current = (name, [])
            suites.append(current)
            outputs = {}
            section = None
            continue
        if current is None:
            continue
        s = SECTION.match(line)
        if s:
            section = s.group(1)
            outputs[section] = []
            for case in current[1]:
                if case["name"] == section:
                    case["output_lines"] = outputs[section]
            continue
        if line in ("successes:", "failures:") or line.startswith("test result:"):
            section = None
        r = RESULT.match(line)
        if r and section is None:
            status = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}[r.group(2)]
            current[1].append({"name": r.group(1), "status": status, "output_lines": []})
            continue
        if section is not None:
            outputs[section].append(line)
    for _, cases in suites:
        for case in cases:
            case["output"] = "\n".join(case.pop("output_lines")).strip()
            if case["status"] == "passed" and "skipped on purpose" in case["output"].lower():
                case["status"] = "skipped"
    return [s for s in suites if s[1]]


def parse_scripts(lines):
    cases = []
    for line in lines:
        line = line.rstrip("\n")
        for prefix, status in (("ok ", "passed"), ("FAIL ", "failed"), ("skip ", "skipped")):
            if line.startswith(prefix):
                rest = line[len(prefix):]
                name, _, why = rest.partition(": ")
                cases.append({"name": name, "status": status, "output": why})
    return [("script tests (scripts/tests/run.sh)", cases)] if cases else []


def junit(suites):
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for name, cases in suites:
        count = lambda st: sum(1 for c in cases if c["status"] == st)
        out.append(
            f"  <testsuite name={quoteattr(name)} tests=\"{len(cases)}\" "
            f"failures=\"{count('failed')}\" errors=\"0\" skipped=\"{count('skipped')}\">"
        )
        for c in cases:
            out.append(f"    <testcase classname={quoteattr(name)} name={quoteattr(c['name'])}>")
            text = clean(c["output"])
            if c["status"] == "failed":
                first = next((l for l in text.splitlines() if "panicked" in l or l.strip()), "failed")
                out.append(f"      <failure message={quoteattr(clean(first)[:500])}>{escape(text)}</failure>")
            elif c["status"] == "skipped":
                out.append(f"      <skipped message={quoteattr(text[:500] or 'skipped')}/>")
            if text and c["status"] != "failed":
                out.append(f"      <system-out>{escape(text)}</system-out>")
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: scripts/junit.py OUT_DIR CARGO_LOG [SCRIPT_TESTS_LOG]\n")
        return 2
    out_dir, cargo_log = argv[1], argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(cargo_log, encoding="utf-8", errors="replace") as f:
        cargo = parse_cargo(f)
    scripts = []
    if len(argv) == 4 and os.path.exists(argv[3]):
        with open(argv[3], encoding="utf-8", errors="replace") as f:
            scripts = parse_scripts(f)
    with open(os.path.join(out_dir, "cargo-tests.xml"), "w", encoding="utf-8") as f:
        f.write(junit(cargo))
    with open(os.path.join(out_dir, "script-tests.xml"), "w", encoding="utf-8") as f:
        f.write(junit(scripts))
    summary = {}
    for label, suites in (("cargo", cargo), ("scripts", scripts)):
        cases = [c for _, cs in suites for c in cs]
        summary[label] = {
            st: sum(1 for c in cases if c["status"] == st) for st in ("passed", "failed", "skipped")
        }
        summary[label]["failed_tests"] = [
            f"{s}: {c['name']}" for s, cs in suites for c in cs if c["status"] == "failed"
        ]
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""The transcripts of a tool in a documentation page are what the tool prints.

usage: doc_transcripts.py PAGE.md TOOL_BINARY

In every fenced block, a line "$ NAME ARGS..." (NAME = the tool's file name)
runs the tool with ARGS (shell-quoted); the lines up to the next "$ " line or
the end of the block are its stdout followed by its stderr. An optional last
line "(exit N)" gives the exit status, or "(exit N; stderr: TEXT)" the status
and a one-line stderr that is not shown above it. The "version" member of
JSON documents is not compared, so that a new version does not invalidate the
pages.
"""
import os
import re
import shlex
import subprocess
import sys

page, tool = sys.argv[1], os.path.abspath(sys.argv[2])
name = os.path.basename(tool)
text = open(page, encoding="utf-8").read()
checked = failed = 0
for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
    parts = re.split(rf"^\$ ({re.escape(name)}(?: [^\n]*)?)\n", block, flags=re.M)
    for command, expected in zip(parts[1::2], parts[2::2]):
        args = shlex.split(command)[1:]
        status, stderr_inline = 0, None
        m = re.search(r"^\(exit (\d+)(?:; stderr: (.*))?\)\n\Z", expected, re.M)
        if m:
            status = int(m.group(1))
            stderr_inline = m.group(2)
            expected = expected[:m.start()]
        r = subprocess.run([tool, *args], capture_output=True, text=True)
        got = r.stdout + (r.stderr if stderr_inline is None else "")
        unversioned = lambda t: re.sub(r'"version":"[0-9.]+"', '"version":"X"', t)
        ok = unversioned(got) == unversioned(expected) and r.returncode == status and (
            stderr_inline is None or r.stderr == stderr_inline + "\n")
        checked += 1
        if not ok:
            failed += 1
            print(f"FAIL {page}: $ {command}\n  exit {r.returncode} (expected {status})")
            for line in (got if got != expected else r.stderr).splitlines()[:10]:
                print("  got: " + line)
        else:
            print(f"ok   $ {command}")
print(f"{page}: {checked} transcript(s), {failed} differ")
sys.exit(1 if failed or checked == 0 else 0)

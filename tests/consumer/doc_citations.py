#!/usr/bin/env python3
"""Every rule the code, the tests and the docs cite exists in the docs.

usage: doc_citations.py ROOT

The sources cite docs/semantics.md by section ("§2.3", "§10") and edge case
("E7"), and docs/vfio-user.md's protocol reference by number ("vfio-user P7").
Each citation must name a heading of its page, so that a reader can follow it
and a renumbered page cannot leave stale citations behind. Citations of
anything outside the repository (a spec file, an issue) are refused too: the
project's docs stand alone.
"""
import os
import re
import sys

root = sys.argv[1]
SCANNED_DIRS = ["include", "tools", "tests", "examples", "bench", "docs", "scripts"]
SCANNED_FILES = ["README.md", "CHANGELOG.md", "CMakeLists.txt"]
EXTENSIONS = (".hpp", ".cpp", ".h", ".md", ".py", ".sh", ".txt", ".cmake", "")


def headings(page):
    with open(os.path.join(root, "docs", page), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.startswith("#")]


semantics = headings("semantics.md")
sections = set()
edge_cases = set()
for h in semantics:
    m = re.match(r"^#{2,3} (\d+)(?:\.(\d+))?\.? ", h)
    if m:
        sections.add(m.group(1) if m.group(2) is None else f"{m.group(1)}.{m.group(2)}")
    m = re.match(r"^### E(\d+) ", h)
    if m:
        edge_cases.add(int(m.group(1)))
protocol = set()
for h in headings("vfio-user.md"):
    m = re.match(r"^### P(\d+) ", h)
    if m:
        protocol.add(int(m.group(1)))

SECTION = re.compile(r"§ ?(\d+(?:\.\d+)?)")
EDGE = re.compile(r"(?<![\w.])E(\d{1,2})(?![\w])")
PROTOCOL = re.compile(r"vfio-user P(\d+)\b")
OUTSIDE = re.compile(r"shared/(?:spec|rigs|tools)/|\bissue items?\b|\bissue #?\d|\bvu §", re.IGNORECASE)

problems = []
checked = 0


def scan(path):
    global checked
    rel = os.path.relpath(path, root)
    try:
        text = open(path, encoding="utf-8").read()
    except (UnicodeDecodeError, OSError):
        return
    for number, line in enumerate(text.split("\n"), 1):
        for m in SECTION.finditer(line):
            checked += 1
            if m.group(1) not in sections:
                problems.append(f"{rel}:{number}: §{m.group(1)} is no section of docs/semantics.md")
        for m in EDGE.finditer(line):
            # "E" followed by a number is an edge case only next to a § or on its own
            # word; hex digits and errno names never match the pattern.
            checked += 1
            if int(m.group(1)) not in edge_cases:
                problems.append(f"{rel}:{number}: E{m.group(1)} is no edge case of docs/semantics.md")
        for m in PROTOCOL.finditer(line):
            checked += 1
            if int(m.group(1)) not in protocol:
                problems.append(f"{rel}:{number}: vfio-user P{m.group(1)} is no heading of docs/vfio-user.md")
        if OUTSIDE.search(line) and rel != os.path.join("tests", "consumer", "doc_citations.py"):
            problems.append(f"{rel}:{number}: cites something outside the project's docs: {line.strip()}")


for d in SCANNED_DIRS:
    for base, dirs, files in os.walk(os.path.join(root, d)):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for name in files:
            if os.path.splitext(name)[1] in EXTENSIONS:
                scan(os.path.join(base, name))
for name in SCANNED_FILES:
    scan(os.path.join(root, name))

for p in problems:
    print(p)
print(f"doc_citations: {checked} citations, {len(problems)} problems "
      f"({len(sections)} sections, {len(edge_cases)} edge cases, {len(protocol)} protocol headings)")
sys.exit(1 if problems else 0)

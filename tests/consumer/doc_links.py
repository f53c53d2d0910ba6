#!/usr/bin/env python3
"""Every relative link of a Markdown page resolves: the file exists and, for
"page.md#anchor" or "#anchor", the anchor is a heading of that page (GitHub's
rule: lower case, punctuation dropped, spaces become '-').

usage: doc_links.py PAGE.md...
"""
import os
import re
import sys


def anchors(path):
    out = set()
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    seen = {}
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = m.group(1).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


failures = 0
count = 0
for page in sys.argv[1:]:
    text = open(page, encoding="utf-8").read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        count += 1
        file, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
        if not os.path.exists(path):
            print(f"FAIL {page}: link {target}: {path} does not exist")
            failures += 1
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            print(f"FAIL {page}: link {target}: no heading '#{anchor}' in {path}")
            failures += 1
print(f"{count} link(s) checked, {failures} broken")
sys.exit(1 if failures else 0)

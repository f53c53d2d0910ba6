#!/usr/bin/env python3
"""Compile every C++ snippet of a Markdown page, as a reader would use it.

usage: doc_snippets.py --cxx COMPILER --include DIR --work DIR [--std N] PAGE.md

Each fenced block that opens with ```cpp (or ```c++) is compiled against the
library's headers with -Wall -Wextra -Wpedantic -Werror and nothing else (no
GSL, no project flags): what a consumer of the installed headers gets. An
HTML comment on the line before the fence says how:

  (none)                            a whole translation unit, compiled (-c)
  <!-- snippet: fragment -->        statements: its #include lines go first, the
                                    rest becomes the body of a function
  <!-- snippet: run -->             a whole program: compiled, linked and run;
                                    it must exit 0
  <!-- snippet: skip REASON -->     not compiled (say why: pseudo-code, output, ...)

Exit status 0 when every snippet compiles (and runs), 1 otherwise; each
failure is printed with the page, the line of the fence and the compiler's
first lines of output.
"""
import argparse
import os
import re
import subprocess
import sys

FENCE_OPEN = re.compile(r"^```(cpp|c\+\+)\s*$")
MARKER = re.compile(r"^<!--\s*snippet:\s*(fragment|run|skip)\b(.*?)-->\s*$")


def snippets(path):
    """Yield (line number of the fence, kind, code)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if FENCE_OPEN.match(lines[i]):
            kind = "unit"
            j = i - 1
            while j >= 0 and lines[j].strip() == "":
                j -= 1
            if j >= 0:
                m = MARKER.match(lines[j].strip())
                if m:
                    kind = m.group(1)
                    if kind == "skip" and not m.group(2).strip():
                        raise SystemExit(f"{path}:{j + 1}: 'snippet: skip' needs a reason")
            start = i + 1
            end = start
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise SystemExit(f"{path}:{i + 1}: unterminated code block")
            yield i + 1, kind, "\n".join(lines[start:end]) + "\n"
            i = end + 1
        else:
            i += 1


def source_for(kind, code, page, line):
    """The translation unit; #line makes the compiler's messages point into the page."""
    origin = f'#line {line + 1} "{page}"\n'
    if kind != "fragment":
        return origin + code
    # The #include lines go first; in the body they become blank lines, so that
    # the line numbers still match the page.
    lines = code.split("\n")
    includes = [l for l in lines if l.lstrip().startswith("#include")]
    body = ["" if l.lstrip().startswith("#include") else l for l in lines]
    return ("\n".join(includes) + "\n\n[[maybe_unused]] static void nvgrace_doc_snippet() {\n" + origin +
            "\n".join(body) + "\n}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--std", default="20")
    parser.add_argument("page")
    args = parser.parse_args()

    std = {"20": "-std=c++20", "23": "-std=c++2b"}.get(args.std, f"-std=c++{args.std}")
    os.makedirs(args.work, exist_ok=True)
    name = os.path.basename(args.page)
    compiled = skipped = failed = 0
    for line, kind, code in snippets(args.page):
        if kind == "skip":
            skipped += 1
            continue
        stem = os.path.join(args.work, f"{os.path.splitext(name)[0]}_{line}")
        with open(stem + ".cpp", "w", encoding="utf-8") as f:
            f.write(source_for(kind, code, name, line))
        flags = [args.cxx, std, "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I", args.include]
        if kind == "run":
            cmd = flags + ["-pthread", stem + ".cpp", "-o", stem]
        else:
            cmd = flags + ["-c", stem + ".cpp", "-o", stem + ".o"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0 and kind == "run":
            result = subprocess.run([stem], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            failed += 1
            output = (result.stderr or result.stdout).strip().split("\n")
            print(f"FAIL {args.page}:{line} ({kind}): exit {result.returncode}")
            for out_line in output[:25]:
                print("    " + out_line)
        else:
            compiled += 1
            print(f"ok   {args.page}:{line} ({kind})")
    print(f"{name}: {compiled} snippet(s) built, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

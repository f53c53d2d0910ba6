#!/usr/bin/env python3
"""Every C++ file of the project is formatted as .clang-format says.

check_format.py --clang-format BIN ROOT: lists the C++ sources (git ls-files when ROOT is
a checkout, else a walk of the source folders), runs BIN --dry-run -Werror on them and
names each file that differs. Exit 0 when none does, 1 otherwise; the fix is
`clang-format -i FILE` (the project is formatted with clang-format 14, Debian 12's).
"""
import argparse
import os
import subprocess
import sys

SUFFIXES = (".cpp", ".hpp", ".h", ".cc")
FOLDERS = ("include", "tests", "tools", "examples", "bench", "fuzz")


def sources(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f.endswith(SUFFIXES)]
        if files:
            return sorted(files)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for folder in FOLDERS:
        for base, _, names in os.walk(os.path.join(root, folder)):
            found += [os.path.relpath(os.path.join(base, n), root) for n in names if n.endswith(SUFFIXES)]
    return sorted(found)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clang-format", required=True)
    parser.add_argument("root")
    args = parser.parse_args()
    files = sources(args.root)
    if not files:
        print("check_format: no C++ source found under", args.root)
        return 1
    # One run over every file; each violation names its file first ("FILE:LINE:COL: error: ...").
    done = subprocess.run([args.clang_format, "--dry-run", "-Werror", "--style=file", *files], cwd=args.root,
                          capture_output=True, text=True)
    differing = []
    for line in done.stderr.splitlines():
        name = line.split(":", 1)[0]
        if name in files and name not in differing and ("error:" in line or "warning:" in line):
            differing.append(name)
            print(f"not formatted: {line}")
    if done.returncode != 0 and not differing:
        print(done.stderr[-2000:])
        differing.append("(clang-format failed)")
    print(f"check_format: {len(files)} files, {len(differing)} not formatted")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

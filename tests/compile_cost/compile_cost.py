#!/usr/bin/env python3
"""The compile cost of including nvgrace, as ratios to a TU that includes only <vector>.

Each translation unit is parsed with `-fsyntax-only`, round-robin, `--runs` times; the
cost of one is the least CPU time (user + system of the compiler) over its runs, which
shrugs off the load of other processes better than wall time. Fails (exit 1) when the
constexpr model (nvgrace/model.hpp) costs more than --model-limit times the baseline or
the whole library (nvgrace/nvgrace.hpp) more than --umbrella-limit times.
"""
import argparse
import os
import subprocess
import sys
import tempfile

UNITS = {
    "baseline": "#include <vector>\n",
    "model": "#include <nvgrace/model.hpp>\n",
    "umbrella": "#include <nvgrace/nvgrace.hpp>\n",
}


def cpu_seconds(command):
    pid = os.fork()
    if pid == 0:
        os.execvp(command[0], command)
    _, status, usage = os.wait4(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        sys.exit(f"compile_cost: {' '.join(command)} failed")
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("--std", default="c++20")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model-limit", type=float, default=2.0)
    parser.add_argument("--umbrella-limit", type=float, default=6.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        commands = {}
        for name, text in UNITS.items():
            path = os.path.join(work, name + ".cpp")
            with open(path, "w") as f:
                f.write(text)
            commands[name] = [args.cxx, f"-std={args.std}", "-fsyntax-only", "-I", args.include, path]
        best = {name: float("inf") for name in UNITS}
        for _ in range(args.runs):
            for name, command in commands.items():
                best[name] = min(best[name], cpu_seconds(command))

    base = best["baseline"]
    model = best["model"] / base
    umbrella = best["umbrella"] / base
    print(f"compile cost ({os.path.basename(args.cxx)}, -std={args.std}, least CPU time of {args.runs} runs):")
    print(f"  <vector> alone        {base * 1000:7.1f} ms")
    print(f"  nvgrace/model.hpp     {best['model'] * 1000:7.1f} ms  {model:5.2f}x  (limit {args.model_limit}x)")
    print(f"  nvgrace/nvgrace.hpp   {best['umbrella'] * 1000:7.1f} ms  {umbrella:5.2f}x  (limit {args.umbrella_limit}x)")
    failed = model > args.model_limit or umbrella > args.umbrella_limit
    print("compile cost: " + ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

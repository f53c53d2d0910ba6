#!/usr/bin/env python3
"""The compile cost of including nvgrace, as ratios to a TU that includes only <vector>.

Each translation unit is parsed with `-fsyntax-only`. A round parses the baseline, then
each nvgrace unit followed by the baseline again, and takes each unit's ratio to the mean
of the two baseline parses around it; the result is the median of each unit's ratios over
`--runs` rounds. CPU time (user + system of the compiler and its children) is measured,
not wall time. Comparing neighbours and taking a median, rather than the least time of
each unit over the whole run, is what keeps the verdict stable on a virtual machine whose
CPU is shared with others: a slow stretch slows the baseline beside a unit as much as the
unit, and one odd round moves no median. Fails (exit 1) when the constexpr model
(nvgrace/model.hpp) costs more than --model-limit times the baseline or the whole library
(nvgrace/nvgrace.hpp) more than --umbrella-limit times.
"""
import argparse
import os
import statistics
import sys
import tempfile

UNITS = {
    "model": "#include <nvgrace/model.hpp>\n",
    "umbrella": "#include <nvgrace/nvgrace.hpp>\n",
}
BASELINE = "#include <vector>\n"


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
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--model-limit", type=float, default=2.0)
    parser.add_argument("--umbrella-limit", type=float, default=6.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        def command(name, text):
            path = os.path.join(work, name + ".cpp")
            with open(path, "w") as f:
                f.write(text)
            return [args.cxx, f"-std={args.std}", "-fsyntax-only", "-I", args.include, path]

        baseline = command("baseline", BASELINE)
        units = {name: command(name, text) for name, text in UNITS.items()}
        ratios = {name: [] for name in UNITS}
        times = {name: [] for name in UNITS}
        base_times = []
        before = cpu_seconds(baseline)
        base_times.append(before)
        for _ in range(args.runs):
            for name, cmd in units.items():
                t = cpu_seconds(cmd)
                after = cpu_seconds(baseline)
                base_times.append(after)
                times[name].append(t)
                ratios[name].append(t / ((before + after) / 2))
                before = after

    median = {name: statistics.median(r) for name, r in ratios.items()}
    limits = {"model": args.model_limit, "umbrella": args.umbrella_limit}
    labels = {"model": "nvgrace/model.hpp", "umbrella": "nvgrace/nvgrace.hpp"}
    print(f"compile cost ({os.path.basename(args.cxx)}, -std={args.std}, median of {args.runs} rounds):")
    print(f"  <vector> alone        {statistics.median(base_times) * 1000:7.1f} ms")
    for name in UNITS:
        r = ratios[name]
        print(f"  {labels[name]:<21} {statistics.median(times[name]) * 1000:7.1f} ms  {median[name]:5.2f}x "
              f"(rounds {min(r):.2f}-{max(r):.2f}; limit {limits[name]}x)")
    failed = any(median[name] > limits[name] for name in UNITS)
    print("compile cost: " + ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

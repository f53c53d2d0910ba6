#!/usr/bin/env python3
"""The compile cost of including nvgrace, as ratios to a TU that includes only <vector>.

Each translation unit is parsed with `-fsyntax-only` under valgrind's cachegrind (no cache
simulation), which counts the instructions the compiler executes, its children included.
The verdict is the ratio of those counts: an nvgrace unit against the <vector>-only
baseline, in the same run. A count is a property of the headers and the compiler, not of
the machine's load: parsing the same unit twice gives the same count to within a few
instructions in a billion, where the CPU time of the same parses on a shared two-vCPU VM
has put the umbrella anywhere from 3.6x to 7.0x the baseline. The baseline is counted
before and after the units; the two counts must agree to --repeat-tolerance, or the run
fails as unrepeatable instead of judging.

Because a count does not depend on load, the parses run side by side (--jobs) and the test
needs no machine to itself. `--runs N` adds the CPU time (user + system) of N interleaved
rounds beside the counts, for information only: it includes the page faults of loading the
compiler, which the counts do not, so its ratios are lower, and it is only meaningful on an
idle machine.

Fails (exit 1) when the constexpr model (nvgrace/model.hpp) counts more than --model-limit
times the baseline or the whole library (nvgrace/nvgrace.hpp) more than --umbrella-limit
times.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

UNITS = {
    "model": "#include <nvgrace/model.hpp>\n",
    "umbrella": "#include <nvgrace/nvgrace.hpp>\n",
}
BASELINE = "#include <vector>\n"
LABELS = {"baseline": "<vector> alone", "model": "nvgrace/model.hpp", "umbrella": "nvgrace/nvgrace.hpp"}
INSTRUCTIONS = re.compile(r"^==\d+== I\s+refs:\s+([\d,]+)\s*$", re.MULTILINE)


def cpu_seconds(command):
    pid = os.fork()
    if pid == 0:
        os.execvp(command[0], command)
    _, status, usage = os.wait4(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        sys.exit(f"compile_cost: {' '.join(command)} failed")
    return usage.ru_utime + usage.ru_stime


def instructions(valgrind, command, log):
    """The instructions `command` and its children execute, as cachegrind counts them."""
    vg = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
          "--cachegrind-out-file=/dev/null", f"--log-file={log}"]
    done = subprocess.run(vg + command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"compile_cost: {' '.join(command)} failed under valgrind:\n{done.stderr}")
    with open(log) as f:
        counts = [int(m.replace(",", "")) for m in INSTRUCTIONS.findall(f.read())]
    if not counts:
        sys.exit(f"compile_cost: cachegrind printed no instruction count for {' '.join(command)}")
    return sum(counts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("--std", default="c++20")
    parser.add_argument("--runs", type=int, default=0, help="interleaved CPU-time rounds (information only)")
    parser.add_argument("--jobs", type=int, default=2, help="parses counted at once")
    parser.add_argument("--model-limit", type=float, default=2.0)
    parser.add_argument("--umbrella-limit", type=float, default=6.0)
    parser.add_argument("--repeat-tolerance", type=float, default=0.001)
    parser.add_argument("--valgrind", default=shutil.which("valgrind"))
    args = parser.parse_args()
    if not args.valgrind:
        sys.exit("compile_cost: valgrind not found (Debian package valgrind); it counts the compiler's instructions")

    with tempfile.TemporaryDirectory() as work:
        def command(name, text):
            path = os.path.join(work, name + ".cpp")
            with open(path, "w") as f:
                f.write(text)
            return [args.cxx, f"-std={args.std}", "-fsyntax-only", "-I", args.include, path]

        commands = {"baseline": command("baseline", BASELINE)}
        commands.update({name: command(name, text) for name, text in UNITS.items()})

        # The baseline twice (first and last), to show the count repeats.
        order = ["baseline"] + list(UNITS) + ["baseline"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(instructions, args.valgrind, commands[name], os.path.join(work, f"{i}.log"))
                       for i, name in enumerate(order)]
            measured = [f.result() for f in futures]
        base_first, base_last = measured[0], measured[-1]
        counts = dict(zip(UNITS, measured[1:-1]))

        times = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(cpu_seconds(cmd))

    baseline = (base_first + base_last) / 2
    drift = abs(base_first - base_last) / baseline
    limits = {"model": args.model_limit, "umbrella": args.umbrella_limit}
    timed = args.runs > 0
    base_time = statistics.median(times["baseline"]) if timed else 0.0
    print(f"compile cost ({os.path.basename(args.cxx)}, -std={args.std}, -fsyntax-only; instructions counted by "
          f"cachegrind" + (f"; CPU time the median of {args.runs} rounds, for information" if timed else "") + "):")
    print(f"  {LABELS['baseline']:<21} {baseline / 1e6:8.1f} M instructions" +
          (f"                    {base_time * 1000:7.1f} ms" if timed else ""))
    ratios = {}
    for name in UNITS:
        ratios[name] = counts[name] / baseline
        line = (f"  {LABELS[name]:<21} {counts[name] / 1e6:8.1f} M instructions  {ratios[name]:5.2f}x "
                f"(limit {limits[name]}x)")
        if timed:
            unit_time = statistics.median(times[name])
            line += f"  {unit_time * 1000:7.1f} ms  {unit_time / base_time:5.2f}x"
        print(line)
    print(f"  the baseline counted twice: {base_first:,} and {base_last:,} ({drift * 100:.4f} % apart)")
    if drift > args.repeat_tolerance:
        print(f"compile cost: UNREPEATABLE (the baseline's two counts differ by more than "
              f"{args.repeat_tolerance * 100:g} %)")
        return 1
    failed = any(ratios[name] > limits[name] for name in UNITS)
    print("compile cost: " + ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

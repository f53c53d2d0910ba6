#!/usr/bin/env python3
"""The command-line convention of the three tools, tried as a user would.

usage: tools_cli_test.py NVGRACE_LAYOUT NVGRACE_PROBE NVGRACE_VFIO_USER_SERVER

For every tool: --help on stdout (exit 0), --version from
include/nvgrace/version.hpp, one "TOOL: error: ... (ERRNO)" line on stderr for
a usage error (exit 2), --opt=value and --opt value alike, "--" ending the
options, exit 3 when something cannot be opened, exit 1 for a failed check
or a failure at run time, JSON on stdout when a --json run fails, and an
error (not silence) when the output cannot be written.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

LAYOUT, PROBE, SERVER = sys.argv[1:4]
NAMES = {LAYOUT: "nvgrace-layout", PROBE: "nvgrace-probe", SERVER: "nvgrace-vfio-user-server"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open(os.path.join(ROOT, "include", "nvgrace", "version.hpp")) as f:
    header = f.read()
VERSION = ".".join(re.search(rf"#define NVGRACE_VERSION_{part} (\d+)", header).group(1)
                   for part in ("MAJOR", "MINOR", "PATCH"))

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(tool, *args, stdout=subprocess.PIPE, env=None, timeout=20):
    return subprocess.run([tool, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=timeout)


def one_error_line(tool, result, status, pattern):
    """Exit `status`, nothing on stdout, one line on stderr 'TOOL: error: ... (ERRNO)...' matching pattern."""
    name = NAMES[tool]
    what = f"{name} {result.args[1:]}"
    check(result.returncode == status, f"{what}: exit {result.returncode}, expected {status}; stderr {result.stderr!r}")
    check(result.stdout == "", f"{what}: stdout should be empty, is {result.stdout!r}")
    lines = result.stderr.splitlines()
    check(len(lines) == 1, f"{what}: expected one line on stderr, got {lines!r}")
    if lines:
        check(lines[0].startswith(f"{name}: error: "), f"{what}: line does not start with '{name}: error: ': {lines[0]!r}")
        check(re.search(r"\(E[A-Z0-9]+\)", lines[0]) is not None, f"{what}: no (ERRNO) in {lines[0]!r}")
        check(re.search(pattern, lines[0]) is not None, f"{what}: {lines[0]!r} does not match {pattern!r}")


def json_failure(tool, result, status, errno_name, message_pattern, schema):
    """A failed --json run: one JSON document on stdout naming the error, and the line on stderr."""
    name = NAMES[tool]
    what = f"{name} {result.args[1:]}"
    check(result.returncode == status, f"{what}: exit {result.returncode}, expected {status}")
    try:
        doc = json.loads(result.stdout)
    except ValueError as e:
        check(False, f"{what}: stdout is not JSON ({e}): {result.stdout!r}")
        return
    check(result.stdout.count("\n") == 1, f"{what}: the document should be one line")
    check(doc.get("schema") == schema, f"{what}: schema {doc.get('schema')!r}")
    check(doc.get("tool") == name and doc.get("version") == VERSION, f"{what}: tool/version {doc!r}")
    error = doc.get("error", {})
    check(set(error) == {"errno", "name", "message"}, f"{what}: error members {sorted(error)}")
    check(error.get("name") == errno_name and isinstance(error.get("errno"), int) and error.get("errno") > 0,
          f"{what}: error {error!r}")
    check(re.search(message_pattern, error.get("message", "")) is not None, f"{what}: message {error!r}")
    check(doc.get("exit_status") == status, f"{what}: exit_status {doc.get('exit_status')}")
    check(result.stderr.startswith(f"{name}: error: "), f"{what}: stderr {result.stderr!r}")


def test_help_and_version():
    for tool, name in NAMES.items():
        for flag in ("--help", "-h"):
            r = run(tool, flag)
            check(r.returncode == 0 and r.stderr == "", f"{name} {flag}: exit {r.returncode}, stderr {r.stderr!r}")
            check(r.stdout.startswith(f"Usage: {name} "), f"{name} {flag}: stdout starts {r.stdout[:40]!r}")
            for status in "0123":
                check(re.search(rf"^  {status}  ", r.stdout, re.M), f"{name} --help: no exit status {status} line")
        r = run(tool, "--version")
        check((r.returncode, r.stdout, r.stderr) == (0, f"{name} {VERSION}\n", ""),
              f"{name} --version: {(r.returncode, r.stdout, r.stderr)!r}")
        # --help wins over a bad option.
        check(run(tool, "--frobnicate", "--help").returncode == 0, f"{name}: --help after a bad option")


def test_usage_errors():
    for tool, name in NAMES.items():
        r = run(tool, "--frobnicate")
        one_error_line(tool, r, 2, rf"^{name}: error: unknown option '--frobnicate' \(EINVAL\); see '{name} --help'$")
        r = run(tool, "--json=1" if tool != SERVER else "--verbose=1")
        one_error_line(tool, r, 2, r"takes no value")
        r = run(tool, "-Z")
        one_error_line(tool, r, 2, r"unknown option '-Z'")
    one_error_line(LAYOUT, run(LAYOUT, "--base"), 2, r"option '--base' needs a value \(ADDR\)")
    one_error_line(LAYOUT, run(LAYOUT, "--generation", "x", "--generation=y"), 2, r"given twice")
    one_error_line(PROBE, run(PROBE), 2, r"no target given")
    one_error_line(PROBE, run(PROBE, "/dev/vfio/7", "--device"), 2, r"option '--device' needs a value \(BDF\)")
    one_error_line(SERVER, run(SERVER), 2, r"no socket: give --socket-path PATH or --fd N")
    one_error_line(SERVER, run(SERVER, "--socket-path", "/tmp/x", "--socket", "/tmp/y"), 2,
                   r"--socket-path and --socket name the same thing")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size=12Q"), 2,
                   r"bad SIZE '12Q' \(at character 3\): unknown unit")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--socket-mode=999"), 2, r"octal mode")
    one_error_line(SERVER, run(SERVER, "--fd=3", "--socket-mode=0600"), 2, r"apply to --socket-path only")
    one_error_line(SERVER, run(SERVER, "--fd", "x"), 2, r"--fd must be a file descriptor number")
    one_error_line(SERVER, run(SERVER, "--socket-path", "/tmp/x", "--", "extra"), 2, r"unexpected argument 'extra'")


def test_sizes_are_one_syntax():
    # The same spellings work in the layout tool and the server.
    for size in ("96G", "96GiB", "96 GiB", "0x1800000000", "103079215104", "95G+1024M"):
        r = run(LAYOUT, size)
        check(r.returncode == 0 and "96 GiB (0x1800000000 bytes)" in r.stdout, f"nvgrace-layout {size!r}: {r.stderr!r}")
    one_error_line(LAYOUT, run(LAYOUT, "96GB"), 2, r"decimal units .* ambiguous")
    # The server refuses a memory whose BAR does not fit the 1 TiB VFIO region window, and sizes the driver refuses.
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "64T"), 2,
                   r"needs a 64 TiB BAR at region 4, which does not fit the 1 TiB window .*\(EOVERFLOW\)")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "2T", "--generation", "blackwell"), 2,
                   r"needs a 2 TiB BAR")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "16777215T"), 2,
                   r"usable memory has no 64-bit power of two above it \(EOVERFLOW\)")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "16777216T"), 2,
                   r"size does not fit in 64 bits")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "1G"), 2,
                   r"on Hopper: usable memory rounds down to 0 \(a Hopper device needs at least 1536M\) \(EINVAL\)")
    one_error_line(SERVER, run(SERVER, "--socket-path=/tmp/x", "--size", "0"), 2, r"more than 0 bytes")


def test_option_forms_and_double_dash():
    a = run(LAYOUT, "186G", "--generation", "blackwell")
    b = run(LAYOUT, "--generation=blackwell", "186G")
    c = run(LAYOUT, "--generation=blackwell", "--", "186G")
    check(a.returncode == 0 and a.stdout == b.stdout == c.stdout, "nvgrace-layout: --opt value, --opt=value and --")
    one_error_line(LAYOUT, run(LAYOUT, "--", "--json"), 2, r"bad SIZE '--json'")
    one_error_line(PROBE, run(PROBE, "--", "-x"), 2, r"'-x' is neither a PCI address")
    r1 = run(PROBE, "--sysfs", "/nonexistent", "0000:01:00.0")
    r2 = run(PROBE, "--sysfs=/nonexistent", "0000:01:00.0")
    check(r1.returncode == r2.returncode == 3 and r1.stderr == r2.stderr, f"nvgrace-probe --sysfs forms: {r2.stderr!r}")


def test_cannot_open_is_3_and_failures_are_1():
    one_error_line(PROBE, run(PROBE, "0000:fe:1f.7"), 3, r"no PCI device 0000:fe:1f.7 .*\(ENOENT\)")
    one_error_line(PROBE, run(PROBE, "/dev/vfio/devices/vfio-none"), 3, r"cannot open the VFIO device cdev")
    one_error_line(SERVER, run(SERVER, "--socket-path", "/nonexistent-dir/s", "--size=1M", "--generation=blackwell"),
                   3, r"cannot listen on '/nonexistent-dir/s': No such file or directory \(ENOENT\)")
    with tempfile.TemporaryDirectory() as d:
        one_error_line(SERVER, run(SERVER, "--socket-path", f"{d}/s", "--size=2M", "--generation=blackwell",
                                   "--memory-file", f"{d}/no/such/file"), 3, r"cannot open memory file")
        check(not os.path.exists(f"{d}/s"), "nvgrace-vfio-user-server: a failed start leaves no socket behind")
        # An fd that is not a listening socket.
        with open(f"{d}/plain", "w") as plain:
            r = subprocess.run([SERVER, "--fd", str(plain.fileno()), "--size=1M", "--generation=blackwell"],
                               pass_fds=[plain.fileno()], capture_output=True, text=True, timeout=20)
        one_error_line(SERVER, r, 3, r"is not a UNIX stream socket \(ENOTSOCK\)")
        one_error_line(SERVER, run(SERVER, "--fd", "97", "--size=1M", "--generation=blackwell"), 3,
                       r"--fd 97 is not an open file descriptor \(EBADF\)")
        # A failure while serving (accept fails: the listening socket is shut down under it) is exit 1.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(f"{d}/inherited")
        listener.listen(4)
        server = subprocess.Popen([SERVER, "--fd", str(listener.fileno()), "--size=1M", "--generation=blackwell"],
                                  pass_fds=[listener.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        time.sleep(0.5)
        listener.shutdown(socket.SHUT_RDWR)
        out, err = server.communicate(timeout=20)
        check(server.returncode == 1, f"server: accept failure exits {server.returncode}, expected 1; {err!r}")
        check(err.rstrip("\n").splitlines()[-1:] ==
              ["nvgrace-vfio-user-server: error: accept failed: Invalid argument (EINVAL)"], f"server: {err!r}")
        listener.close()
    one_error_line(LAYOUT, run(LAYOUT, "1.25G"), 1, r"1.25 GiB on Hopper: usable memory rounds down to 0 \(EINVAL\)$")


def test_json_on_failure():
    json_failure(LAYOUT, run(LAYOUT, "--json", "1.25G"), 1, "EINVAL", r"^1.25 GiB on Hopper: usable memory",
                 "nvgrace-layout/1")
    json_failure(LAYOUT, run(LAYOUT, "--json", "12XB"), 2, "EINVAL", r"^bad SIZE '12XB'", "nvgrace-layout/1")
    json_failure(LAYOUT, run(LAYOUT, "--json", "--frobnicate"), 2, "EINVAL", r"^unknown option '--frobnicate'$",
                 "nvgrace-layout/1")
    json_failure(PROBE, run(PROBE, "--json", "0000:fe:1f.7"), 3, "ENOENT", r"^no PCI device 0000:fe:1f.7",
                 "nvgrace-probe/1")
    json_failure(PROBE, run(PROBE, "--json"), 2, "EINVAL", r"^no target given", "nvgrace-probe/1")
    json_failure(PROBE, run(PROBE, "--json", "/dev/vfio/devices/vfio-none"), 3, "ENOENT", r"cannot open",
                 "nvgrace-probe/1")


def test_unwritable_output():
    for tool, name in NAMES.items():
        with open("/dev/full", "w") as full:
            r = run(tool, "--help", stdout=full)
        check(r.returncode == 1, f"{name} --help > /dev/full: exit {r.returncode}")
        check(r.stderr == f"{name}: error: cannot write to standard output: No space left on device (ENOSPC)\n",
              f"{name} --help > /dev/full: {r.stderr!r}")
    with open("/dev/full", "w") as full:
        r = run(LAYOUT, stdout=full)
        check(r.returncode == 1 and "ENOSPC" in r.stderr, f"nvgrace-layout > /dev/full: {r.returncode} {r.stderr!r}")
        r = run(LAYOUT, "--json", stdout=full)
        check(r.returncode == 1 and "ENOSPC" in r.stderr, f"nvgrace-layout --json > /dev/full: {r.stderr!r}")


def test_server_socket_path_forms():
    with tempfile.TemporaryDirectory() as d:
        for form in (["--socket-path", f"{d}/a"], [f"--socket-path={d}/a"], ["--socket", f"{d}/a"],
                     [f"--socket={d}/a"]):
            server = subprocess.Popen([SERVER, *form, "--size=1M", "--generation=blackwell"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 10
            while not os.path.exists(f"{d}/a") and time.time() < deadline:
                time.sleep(0.02)
            check(os.path.exists(f"{d}/a"), f"server {form}: no socket")
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=20)
            check(server.returncode == 0, f"server {form}: exit {server.returncode} {err!r}")
            check(f"listening on {d}/a (blackwell, 1 MiB of GPU memory in a memfd)" in err, f"server {form}: {err!r}")
            check(not os.path.exists(f"{d}/a"), f"server {form}: socket left behind")


for test in [test_help_and_version, test_usage_errors, test_sizes_are_one_syntax, test_option_forms_and_double_dash,
             test_cannot_open_is_3_and_failures_are_1, test_json_on_failure, test_unwritable_output,
             test_server_socket_path_forms]:
    before = len(failures)
    test()
    print(("ok  " if len(failures) == before else "FAIL") + " " + test.__name__)
if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("all checks passed")

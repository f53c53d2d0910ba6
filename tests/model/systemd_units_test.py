#!/usr/bin/env python3
"""The sample systemd units of docs/vfio-user-server.md, as far as a container allows.

usage: systemd_units_test.py DOCS_PAGE NVGRACE_VFIO_USER_SERVER

1. The page's two unit files (the ```ini blocks after <!-- file: NAME --> markers)
   pass `systemd-analyze verify` (skipped when systemd-analyze is not installed).
2. This script plays the service manager for the template instance "test": it creates
   the socket the .socket unit describes (path, SocketMode=), starts the .service's
   ExecStart= line (with Environment= expanded and the binary replaced by the one
   under test) with the socket as fd 3, LISTEN_FDS=1, LISTEN_PID=<the server> and
   NOTIFY_SOCKET=<a datagram socket of its own>, waits for READY=1, negotiates
   vfio-user VERSION on the socket, sends SIGTERM, and expects STOPPING=1, exit 0
   and the socket file still there (it belongs to the socket unit).
3. The same server under systemd-socket-activate (skipped when not installed).
"""
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

page, server_binary = sys.argv[1], os.path.abspath(sys.argv[2])
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def unit_files(path):
    """{name: text} of the blocks marked <!-- file: NAME --> in the page."""
    text = open(path, encoding="utf-8").read()
    return {m.group(1): m.group(2) for m in
            re.finditer(r"<!-- file: (\S+) -->\n```ini\n(.*?)\n```", text, re.S)}


def settings(text):
    """The Key=Value lines of a unit (later ones win), per key a list."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def vfio_user_version(path):
    """Connect to a vfio-user server, send VERSION 0.0, return the reply header fields."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    payload = struct.pack("<HH", 0, 0) + b'{"capabilities":{}}\0'
    s.sendall(struct.pack("<HHIII", 7, 1, 16 + len(payload), 0, 0) + payload)
    def receive(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    header = receive(16)
    fields = struct.unpack("<HHIII", header) if len(header) == 16 else None
    if fields:
        receive(fields[2] - 16)  # the rest of the reply, so that closing sends no reset
    s.close()
    return fields


def notify_socket(directory):
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(directory, "notify")
    n.bind(path)
    n.settimeout(10)
    return n, path


units = unit_files(page)
socket_unit = units.get("nvgrace-vfio-user-server@.socket")
service_unit = units.get("nvgrace-vfio-user-server@.service")
check(socket_unit is not None and service_unit is not None, f"{page} has the .socket and the .service unit")
if socket_unit is None or service_unit is None:
    sys.exit(1)
sock_settings, svc_settings = settings(socket_unit), settings(service_unit)

with tempfile.TemporaryDirectory() as work:
    # ---- 1. systemd-analyze verify ---------------------------------------------------------
    analyze = shutil.which("systemd-analyze")
    if analyze:
        unit_dir = os.path.join(work, "units")
        os.makedirs(unit_dir)
        # The instance "test" of the template, with the binary under test in ExecStart=.
        for name, text in units.items():
            instance = name.replace("@.", "@test.")
            text = re.sub(r"^ExecStart=\S+", "ExecStart=" + server_binary, text, flags=re.M)
            with open(os.path.join(unit_dir, instance), "w") as f:
                f.write(text)
        r = subprocess.run([analyze, "verify", "--man=no",
                            os.path.join(unit_dir, "nvgrace-vfio-user-server@test.socket"),
                            os.path.join(unit_dir, "nvgrace-vfio-user-server@test.service")],
                           capture_output=True, text=True)
        # Lines about the host (no running systemd, a missing group) are not about the units.
        complaints = [l for l in (r.stdout + r.stderr).splitlines()
                      if l.strip() and "nvgrace-vfio-user-server@" in l and "group" not in l.lower()]
        check(r.returncode == 0 and not complaints, f"systemd-analyze verify: rc {r.returncode} {complaints}")
    else:
        print("skip systemd-analyze verify (systemd-analyze is not installed)")

    # ---- 2. socket activation by hand, as systemd does it -----------------------------------
    instance = "test"
    listen = sock_settings["ListenStream"][-1].replace("%i", instance)
    check(listen.startswith("/run/nvgrace/"), f"ListenStream= is under /run/nvgrace: {listen}")
    sock_path = os.path.join(work, "run", os.path.relpath(listen, "/run"))
    os.makedirs(os.path.dirname(sock_path))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    mode = int(sock_settings["SocketMode"][-1], 8)
    os.chmod(sock_path, mode)
    listener.listen(16)

    environment = {}
    for assignment in svc_settings.get("Environment", []):
        key, _, value = assignment.partition("=")
        environment[key] = value
    command = svc_settings["ExecStart"][-1].replace("%i", instance)
    state_dir = os.path.join(work, "state")
    os.makedirs(state_dir)
    command = command.replace("/var/lib/nvgrace", state_dir)
    # systemd splits an unbraced $VAR at whitespace into words.
    argv = []
    for word in shlex.split(command):
        if word.startswith("$") and word[1:] in environment:
            argv += environment[word[1:]].split()
        else:
            argv.append(word)
    argv[0] = server_binary
    check(svc_settings.get("Type") == ["notify"], "the service is Type=notify")

    notify, notify_path = notify_socket(work)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_fd, 2)
            os.dup2(listener.fileno(), 3)
            os.set_inheritable(3, True)
            env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), NOTIFY_SOCKET=notify_path)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(write_fd)
    try:
        ready = notify.recv(4096).decode()
    except socket.timeout:
        ready = ""
    check(ready.startswith("READY=1\n"), f"READY=1 from the server: {ready!r}")
    reply = vfio_user_version(sock_path)
    check(reply is not None and reply[0] == 7 and reply[1] == 1 and reply[3] == 1,
          f"vfio-user VERSION answered on the activated socket: {reply}")
    check(os.path.exists(os.path.join(state_dir, f"{instance}.mem")), "the memory file is in the state directory")
    check(stat.S_IMODE(os.stat(sock_path).st_mode) == mode, "the socket keeps SocketMode=")
    os.kill(pid, signal.SIGTERM)
    try:
        stopping = notify.recv(4096).decode()
    except socket.timeout:
        stopping = ""
    check(stopping == "STOPPING=1", f"STOPPING=1 at SIGTERM: {stopping!r}")
    _, status = os.waitpid(pid, 0)
    log = os.read(read_fd, 65536).decode(errors="replace")
    os.close(read_fd)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"exit 0 after SIGTERM (status {status}): {log!r}")
    check("listening on fd 3 from socket activation" in log, f"the log names the activation: {log!r}")
    check(os.path.exists(sock_path), "the socket unit's socket file is left in place")
    listener.close()

    # ---- 3. under systemd-socket-activate ------------------------------------------------------
    activate = shutil.which("systemd-socket-activate")
    if activate:
        path = os.path.join(work, "activate.sock")
        proc = subprocess.Popen([activate, "-l", path, server_binary, "--size=1M", "--generation=blackwell"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.02)
        reply = vfio_user_version(path) if os.path.exists(path) else None
        check(reply is not None and reply[3] == 1, f"systemd-socket-activate: VERSION answered: {reply}")
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        check("from socket activation" in err, f"systemd-socket-activate: the server was activated: {err!r}")
    else:
        print("skip systemd-socket-activate (not installed)")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("all checks passed")

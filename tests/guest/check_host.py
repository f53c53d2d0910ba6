#!/usr/bin/env python3
"""Host-side checks after the guest run (tests/guest/run.sh calls this).

Usage: check_host.py seed SHM_FILE SIZE      write the seed the guest reads
       check_host.py check SHM_FILE SIZE LOG  check the BAR2 file and the
                                              nvgrace-probe output in LOG

Prints one "PASS: ..." or "FAIL: ..." line per check. The offsets and
patterns are those of tests/guest/layout.hpp.
"""
import json
import re
import struct
import sys

SEED_OFFSET, SEED_TEXT, SEED_SIZE = 0x8000, b"NVGRACE-HOST-SEED", 256
MMAP_TEXT_OFFSET, MMAP_TEXT = 0x0, b"NVGRACE-GUEST-MMAP"
PWRITE_TEXT_OFFSET, PWRITE_TEXT = 0x100, b"NVGRACE-GUEST-PWRITE"
WORDS_OFFSET, WORD_COUNT = 0x1000, 1024
BLOCK_OFFSET, BLOCK_SIZE = 0x3000, 4096
ODD_OFFSET = 0x4001
END_TEXT = b"NVGRACE-GUEST-END"
ACCESSOR_MAP_OFFSET, ACCESSOR_MAP_TEXT = 0x5000, b"NVGRACE-ACCESSOR-MAPPED"
ACCESSOR_FILE_OFFSET, ACCESSOR_FILE_TEXT = 0x5100, b"NVGRACE-ACCESSOR-PWRITE"


def seed_bytes():
    tail = bytes((i * 5 + 7) & 0xFF for i in range(len(SEED_TEXT), SEED_SIZE))
    return SEED_TEXT + tail


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        print(("PASS: " if ok else "FAIL: ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def seed(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(SEED_OFFSET)
        f.write(seed_bytes())


def sections(log):
    """{tag: (output lines, exit status)} from the NVGRACE-PROBE markers."""
    found, tag, lines = {}, None, []
    for line in log.splitlines():
        m = re.match(r"^NVGRACE-PROBE-BEGIN:(\S+)$", line)
        if m:
            tag, lines = m.group(1), []
            continue
        m = re.match(r"^NVGRACE-PROBE-END:(\S+):(\d+)$", line)
        if m and tag == m.group(1):
            found[tag] = (lines, int(m.group(2)))
            tag = None
            continue
        if tag is not None:
            lines.append(line)
    return found


def check_file(c, path, size):
    data = open(path, "rb").read()
    c.check(len(data) == size, f"host file: {len(data)} bytes (BAR2 size {size})")
    c.check(data[MMAP_TEXT_OFFSET:MMAP_TEXT_OFFSET + len(MMAP_TEXT)] == MMAP_TEXT,
            "host file: mmap text at BAR2+0x0")
    c.check(data[PWRITE_TEXT_OFFSET:PWRITE_TEXT_OFFSET + len(PWRITE_TEXT)] == PWRITE_TEXT,
            "host file: pwrite text at BAR2+0x100")
    words = struct.unpack_from(f"<{WORD_COUNT}I", data, WORDS_OFFSET)
    c.check(all(w == (0x5A000000 | i) for i, w in enumerate(words)),
            f"host file: {WORD_COUNT} u32 words 0x5a000000|i at BAR2+0x1000 (mmap)")
    block = bytes((i * 7 + 3) & 0xFF for i in range(BLOCK_SIZE))
    c.check(data[BLOCK_OFFSET:BLOCK_OFFSET + BLOCK_SIZE] == block, "host file: 4 KiB pwrite block at BAR2+0x3000")
    c.check(data[ODD_OFFSET - 1:ODD_OFFSET + 4] == b"\x00\x11\x22\x33\x00",
            "host file: 3 unaligned bytes at BAR2+0x4001, neighbours untouched")
    c.check(data[ACCESSOR_MAP_OFFSET:ACCESSOR_MAP_OFFSET + len(ACCESSOR_MAP_TEXT)] == ACCESSOR_MAP_TEXT,
            "host file: accessor write through its mapping at BAR2+0x5000")
    c.check(data[ACCESSOR_FILE_OFFSET:ACCESSOR_FILE_OFFSET + len(ACCESSOR_FILE_TEXT)] == ACCESSOR_FILE_TEXT,
            "host file: accessor write through pwrite at BAR2+0x5100")
    c.check(data[size - len(END_TEXT):] == END_TEXT, "host file: end text at BAR2+size-17 (mmap)")
    c.check(data[SEED_OFFSET:SEED_OFFSET + SEED_SIZE] == seed_bytes(), "host file: seed at BAR2+0x8000 intact")


def region(report, index):
    return next((r for r in report["regions"] if r["index"] == index), None)


def check_probe(c, log, size):
    found = sections(log)
    text, status = found.get("text", ([], -1))
    body = "\n".join(text)
    c.check(status == 0, f"probe text: exit status {status}")
    c.check("pci: 1af4:1110" in body, "probe text: identifies 1af4:1110")
    c.check(re.search(r"^  2   BAR2 +0x1000000 +0x20000000000 +0x7 RWM- +32$", body, re.M) is not None,
            "probe text: BAR2 row (size, offset, flags, argsz)")
    c.check(re.search(r"^  BAR2  mem64 size 0x1000000 +prefetchable register 0x[0-9a-f]*c$", body, re.M) is not None,
            "probe text: BAR2 sized through config space")
    c.check("grace rules: do not apply (1af4:1110 is not an NVIDIA Grace GPU)" in body,
            "probe text: Grace rules do not apply")

    lines, status = found.get("json", ([], -1))
    c.check(status == 0 and len(lines) == 1, f"probe --json: exit {status}, {len(lines)} line(s)")
    try:
        report = json.loads(lines[0]) if lines else {}
    except ValueError as e:
        report = {}
        c.check(False, f"probe --json: parses ({e})")
    if report:
        c.check(report.get("schema") == "nvgrace-probe/1" and report.get("tool") == "nvgrace-probe",
                "probe --json: schema nvgrace-probe/1")
        c.check(report.get("mode") == "group" and report.get("iommu_type") in (3, 8),
                "probe --json: group mode with a type1v2 or no-IOMMU container")
        dev = report.get("device", {})
        c.check(dev == {"error": None, "flags": 2, "reset": False, "pci": True, "num_regions": 9, "num_irqs": 5},
                f"probe --json: device {dev}")
        ids = report.get("pci") or {}
        c.check(ids.get("vendor") == 0x1AF4 and ids.get("device") == 0x1110 and ids.get("class") == 0x050000,
                "probe --json: pci ids and class")
        r2, r7, r8 = region(report, 2) or {}, region(report, 7) or {}, region(report, 8) or {}
        c.check(r2.get("size") == size and r2.get("offset") == 2 << 40 and r2.get("flags") == 7
                and r2.get("argsz") == 32 and r2.get("caps") == [] and r2.get("error") is None,
                "probe --json: region 2 size/offset/flags/argsz/caps")
        c.check(r7.get("size") == 256 and r7.get("flags") == 3, "probe --json: config region")
        c.check(r8 == {"index": 8, "name": "VGA", "error": "EINVAL"}, "probe --json: VGA absent (EINVAL)")
        irqs = {i["index"]: i for i in report.get("irqs", [])}
        c.check(irqs.get(3, {}).get("error") == "EINVAL" and irqs.get(4, {}).get("count") == 1,
                "probe --json: irqs (ERR absent, REQ count 1)")
        bars = {b["index"]: b for b in report.get("bars", {}).get("list", [])}
        c.check(bars.get(0, {}).get("kind") == "mem32" and bars.get(0, {}).get("size") == 256,
                "probe --json: BAR0 mem32 256 bytes")
        b2 = bars.get(2, {})
        c.check(b2.get("kind") == "mem64" and b2.get("prefetchable") is True and b2.get("size") == size
                and b2.get("restored") is True and 3 not in bars,
                "probe --json: BAR2 mem64 prefetchable, region-sized, restored (BAR3 is its high half)")
        grace = report.get("grace", {})
        c.check(grace == {"applies": False, "reason": "not an NVIDIA Grace GPU", "rules": []},
                "probe --json: Grace rules do not apply")
        c.check(report.get("summary") == {"passed": 0, "failed": 0, "skipped": 0} and report.get("exit_status") == 0,
                "probe --json: summary and exit status")

    lines, status = found.get("group-json", ([], -1))
    try:
        by_group = json.loads(lines[0]) if status == 0 and lines else {}
    except ValueError:
        by_group = {}
    c.check(by_group.get("bdf") == report.get("bdf") and by_group.get("regions") == report.get("regions"),
            "probe --json by group node: same device, same regions")

    lines, status = found.get("rng-json", ([], -1))
    try:
        rng = json.loads(lines[0]) if status == 0 and lines else {}
    except ValueError:
        rng = {}
    r1 = region(rng, 1) if rng else None
    c.check(r1 is not None and r1.get("flags") == 0xF and r1.get("argsz") == 40
            and r1.get("caps") == [{"id": 3, "name": "MSIX_MAPPABLE"}],
            "probe --json virtio-rng: BAR1 flags 0xf, argsz 40, cap id 3")

    for tag, want_status, pattern in (("missing", 3, r"^nvgrace-probe: error: no PCI device 0000:00:1f\.7 .*\(ENOENT\)$"),
                                      ("bad-address", 2, r"^nvgrace-probe: error: '0000:00:1f' is neither.*\(EINVAL\)$"),
                                      ("cdev", 3, r"^nvgrace-probe: error: cannot open the VFIO device cdev .*\(ENOENT\)$")):
        lines, status = found.get(tag, ([], -1))
        c.check(status == want_status and len(lines) == 1 and re.match(pattern, lines[0]) is not None,
                f"probe error path '{tag}': exit {status}, one line: {lines[:1]}")


def main(argv):
    if len(argv) == 4 and argv[1] == "seed":
        seed(argv[2], int(argv[3]))
        return 0
    if len(argv) != 5 or argv[1] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    c = Checks()
    check_file(c, argv[2], int(argv[3]))
    check_probe(c, open(argv[4], errors="replace").read(), int(argv[3]))
    print(f"host checks: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

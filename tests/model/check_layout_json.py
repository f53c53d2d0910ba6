"""Validate `nvgrace-layout --json` output read from stdin (used by ctest).

usage: check_layout_json.py hopper|blackwell|plain
"""
import json
import sys

GiB = 1 << 30
case = sys.argv[1]
doc = json.load(sys.stdin)
assert isinstance(doc, dict), doc
for key in ("mode", "generation", "base", "size", "regions"):
    assert key in doc, key
assert doc["base"] == 0x400000000000, doc["base"]
for region in doc["regions"]:
    for key in ("index", "name", "file_offset", "phys", "real_length", "reported_size"):
        assert type(region[key]) is (str if key == "name" else int), (key, region[key])
    assert region["file_offset"] == region["index"] << 40
    assert region["reported_size"] & (region["reported_size"] - 1) == 0
    assert region["real_length"] <= region["reported_size"]
    assert region["bar_probe"]["size"] == region["reported_size"]

if case == "hopper":
    assert doc["mode"] == "emulated" and doc["generation"] == "hopper" and doc["size"] == 96 * GiB
    use, res = doc["regions"]
    assert (use["index"], use["name"], use["phys"]) == (4, "usemem", 0x400000000000)
    assert (use["real_length"], use["reported_size"]) == (0x17C0000000, 0x2000000000)
    assert (res["index"], res["name"], res["phys"]) == (2, "resmem", 0x4017C0000000)
    assert (res["real_length"], res["reported_size"]) == (GiB, GiB)
    assert use["region_info"]["argsz_64"].startswith("400000000f0000000400000020000000")
elif case == "blackwell":
    assert doc["mode"] == "emulated" and doc["generation"] == "blackwell"
    (use,) = doc["regions"]
    assert (use["index"], use["real_length"], use["reported_size"]) == (4, 186 * GiB, 256 * GiB)
elif case == "plain":
    assert doc["mode"] == "plain" and doc["regions"] == [] and doc["size"] == 0
else:
    raise SystemExit("unknown case " + case)
print("ok", case)

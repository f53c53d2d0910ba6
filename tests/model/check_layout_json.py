"""Validate `nvgrace-layout --json` output read from stdin (used by ctest).

usage: check_layout_json.py hopper|blackwell|plain|error

Every document names its schema, the tool and its version; every 64-bit
number X comes with X_hex, a "0x..." string of the same value.
"""
import json
import sys

GiB = 1 << 30
case = sys.argv[1]
text = sys.stdin.read()
assert text.endswith("\n") and text.count("\n") == 1, "one document on one line"
doc = json.loads(text)
assert isinstance(doc, dict), doc
assert doc["schema"] == "nvgrace-layout/1", doc.get("schema")
assert doc["tool"] == "nvgrace-layout", doc.get("tool")
assert isinstance(doc["version"], str) and doc["version"].count(".") == 2, doc.get("version")


def check_hex(obj):
    """Every key K with a K_hex twin: the twin is the same value in hex (or both null)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.endswith("_hex"):
                base = obj[key[:-4]]
                assert (value is None and base is None) or value == hex(base), (key, value, base)
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 2**32:
                assert key + "_hex" in obj, f"{key} = {value} has no {key}_hex"
            check_hex(value)
    elif isinstance(obj, list):
        for value in obj:
            check_hex(value)


check_hex(doc)

if case == "error":
    assert set(doc) == {"schema", "tool", "version", "error", "exit_status"}, doc
    assert doc["exit_status"] == 1
    assert doc["error"] == {"errno": 22, "name": "EINVAL",
                            "message": "1.25 GiB on Hopper: usable memory rounds down to 0"}, doc["error"]
    print("ok", case)
    sys.exit(0)

for key in ("mode", "generation", "base", "size", "regions", "exit_status"):
    assert key in doc, key
assert doc["base"] == 0x400000000000 and doc["base_hex"] == "0x400000000000", doc["base"]
assert doc["exit_status"] == 0
for region in doc["regions"]:
    for key in ("index", "name", "file_offset", "phys", "real_length", "reported_size"):
        assert type(region[key]) is (str if key == "name" else int), (key, region[key])
    assert region["file_offset"] == region["index"] << 40
    assert region["reported_size"] & (region["reported_size"] - 1) == 0
    assert region["real_length"] <= region["reported_size"]
    assert region["bar_probe"]["size"] == region["reported_size"]
    assert int(region["bar_probe"]["after_hex"], 16) == region["bar_probe"]["after"]

if case == "hopper":
    assert doc["mode"] == "emulated" and doc["generation"] == "hopper" and doc["size"] == 96 * GiB
    use, res = doc["regions"]
    assert (use["index"], use["name"], use["phys"]) == (4, "usemem", 0x400000000000)
    assert (use["real_length"], use["reported_size"]) == (0x17C0000000, 0x2000000000)
    assert (res["index"], res["name"], res["phys"]) == (2, "resmem", 0x4017C0000000)
    assert (res["real_length"], res["reported_size"]) == (GiB, GiB)
    assert use["region_info"]["argsz_64"].startswith("400000000f0000000400000020000000")
    # The value jq 1.6 prints as 18446743936270598000: exact in the hex twin.
    assert use["bar_probe"]["after_hex"] == "0xffffffe00000000c"
elif case == "blackwell":
    assert doc["mode"] == "emulated" and doc["generation"] == "blackwell"
    (use,) = doc["regions"]
    assert (use["index"], use["real_length"], use["reported_size"]) == (4, 186 * GiB, 256 * GiB)
elif case == "plain":
    assert doc["mode"] == "plain" and doc["regions"] == [] and doc["size"] == 0
else:
    raise SystemExit("unknown case " + case)
print("ok", case)

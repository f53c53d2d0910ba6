#!/usr/bin/env python3
"""Write the seed corpora of nvgrace's fuzzers (small binary files).

fuzz/vfio_user_server/corpus: one valid message stream per command (options
byte 0x01 = the harness prepends VERSION; seed byte 0 = one receive), plus a
VERSION with JSON, a pipelined mix, a split delivery, writes to the readiness
registers before a reset, and a trigger of an eventfd whose counter is full.
fuzz/cap_chain/corpus: valid region-info replies (Grace's 64-byte reply, the
argsz-too-small reply, a chain of two caps, no caps) and round-trip seeds.

Usage: fuzz/make_corpus.py   (rewrites both corpus directories)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def header(msg_id, cmd, payload, flags=0):
    return struct.pack("<HHIII", msg_id, cmd, 16 + len(payload), flags, 0) + payload


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def server_corpus():
    d = os.path.join(HERE, "vfio_user_server", "corpus")
    for old in os.listdir(d) if os.path.isdir(d) else []:
        os.remove(os.path.join(d, old))
    bar = 4
    json = b'{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096}}\0'
    msgs = {
        "version_json": (0x00, header(1, 1, struct.pack("<HH", 0, 0) + json)),
        "version_bare": (0x00, header(1, 1, struct.pack("<HH", 0, 0))),
        "get_info": (0x01, header(2, 4, struct.pack("<IIII", 16, 0, 0, 0))),
        "region_info_32": (0x01, header(3, 5, struct.pack("<IIIIQQ", 32, 0, bar, 0, 0, 0))),
        "region_info_64": (0x01, header(4, 5, struct.pack("<IIIIQQ", 64, 0, bar, 0, 0, 0))),
        "region_info_config": (0x01, header(5, 5, struct.pack("<IIIIQQ", 32, 0, 7, 0, 0, 0))),
        "read_8": (0x01, header(6, 9, struct.pack("<QII", 0x100, bar, 8))),
        "read_cross_memlength": (0x01, header(7, 9, struct.pack("<QII", 0x10060, bar, 16))),
        "read_config": (0x01, header(8, 9, struct.pack("<QII", 0, 7, 64))),
        "write_8": (0x01, header(9, 10, struct.pack("<QII", 0x100, bar, 8) + bytes(range(8)))),
        "write_config_bar": (0x01, header(10, 10, struct.pack("<QII", 0x20, 7, 4) + b"\xff\xff\xff\xff")),
        "irq_info": (0x01, header(11, 7, struct.pack("<IIII", 16, 0, 0, 0))),
        "set_irqs_disable": (0x01, header(12, 8, struct.pack("<IIIII", 20, 0x21, 0, 0, 0))),
        "set_irqs_eventfd": (0x03, header(13, 8, struct.pack("<IIIII", 20, 0x24, 3, 0, 1))),
        "dma_map": (0x01, header(14, 2, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0x10000))),
        "dma_unmap": (0x01, header(15, 3, struct.pack("<IIQQ", 24, 0, 0x100000, 0x10000))),
        "reset": (0x01, header(16, 13, b"")),
        "no_reply_write": (0x01, header(17, 10, struct.pack("<QII", 0, bar, 4) + b"abcd", 0x10)),
    }
    for name, (options, data) in msgs.items():
        write(d, name, bytes([options, 0]) + data)
    mix = b"".join(m for _, m in list(msgs.values())[2:])
    write(d, "pipelined_mix", bytes([0x01, 0]) + mix)
    write(d, "pipelined_mix_split", bytes([0x03, 0x5A]) + mix)
    write(d, "map_then_unmap", bytes([0x01, 0]) + msgs["dma_map"][1] + msgs["dma_unmap"][1])
    # A peer zeroes both readiness registers, resets, then reads usemem: the read must not wait.
    zero_c2c = header(20, 10, struct.pack("<QII", 0x1498, 0, 4) + bytes(4))
    zero_hbm = header(21, 10, struct.pack("<QII", 0x200BC, 0, 4) + bytes(4))
    write(d, "readiness_then_reset", bytes([0x01, 0]) + zero_c2c + zero_hbm + msgs["reset"][1] + msgs["read_8"][1])
    # An eventfd whose counter is full (options bit 2), assigned, then triggered: must not block.
    trigger = header(22, 8, struct.pack("<IIIII", 21, 0x22, 3, 0, 1) + b"\x01")
    # Seed 48 cuts the stream so that the one eventfd rides with the SET_IRQS(EVENTFD) message.
    write(d, "full_eventfd_trigger", bytes([0x07, 48]) + msgs["set_irqs_eventfd"][1] + trigger)


def region_info(argsz, flags, index, cap_offset, size, offset):
    return struct.pack("<IIIIQQ", argsz, flags, index, cap_offset, size, offset)


def sparse(next_off, areas):
    out = struct.pack("<HHIII", 1, 1, next_off, len(areas), 0)
    for off, size in areas:
        out += struct.pack("<QQ", off, size)
    return out


def cap_corpus():
    d = os.path.join(HERE, "cap_chain", "corpus")
    for old in os.listdir(d) if os.path.isdir(d) else []:
        os.remove(os.path.join(d, old))
    bar, mem = 1 << 37, 0x17C0000000
    write(d, "grace_usemem_64", region_info(64, 0xF, 4, 32, bar, 4 << 40) + sparse(0, [(0, mem)]))
    write(d, "grace_argsz_small", region_info(64, 0xF, 4, 0, bar, 4 << 40))
    write(d, "no_caps", region_info(32, 0x7, 2, 0, 1 << 24, 2 << 40))
    type_cap = struct.pack("<HHIII", 2, 1, 0, 0x80000000 | 0x10DE, 1)
    write(d, "sparse_then_type",
          region_info(96, 0xF, 4, 32, 0x4000, 4 << 40) + sparse(80, [(0, 0x1000), (0x2000, 0x1000)]) + type_cap)
    write(d, "msix_then_sparse",
          region_info(72, 0xF, 0, 32, 0x4000, 0) + struct.pack("<HHI", 3, 1, 40) + sparse(0, [(0x1000, 0x3000)]))
    # Round-trip seeds: 0xA5, size u64, count u8, areas (offset, size), argsz u16, type flag.
    rt = bytes([0xA5]) + struct.pack("<QB", 0x40000000, 1) + struct.pack("<QQ", 0, 0x3FFFF000) + struct.pack("<HB", 64, 0)
    write(d, "round_trip_one", rt)
    rt2 = (bytes([0xA5]) + struct.pack("<QB", 0x10000, 2) + struct.pack("<QQQQ", 0, 0x1000, 0x8000, 0x8000)
           + struct.pack("<HBII", 32, 1, 5, 6))
    write(d, "round_trip_small_argsz", rt2)


if __name__ == "__main__":
    server_corpus()
    cap_corpus()
